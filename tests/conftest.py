from __future__ import annotations

import os

import pytest

# Target networks updated by hand in the tests would otherwise warn on every call.
os.environ.setdefault("RL_WARNINGS", "False")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Keep what a shared fixture builds on one pytest-xdist worker (``--dist loadgroup`` in pyproject's addopts).

    A test that uses a module- or session-scoped fixture of ours goes in one group with the other users of that
    fixture: a module's expensive fixture (a docs build, a trained network, a stopped run) is then built once, not
    once per worker, and the session's SLURM cluster is started, used and stopped by one worker alone. Every other
    test is handed to whichever worker is free.
    """
    for item in items:
        fixture_defs = getattr(item, "_fixtureinfo", None)
        if fixture_defs is None:
            continue
        groups = set()
        for name, defs in fixture_defs.name2fixturedefs.items():
            ours = [d for d in defs if d.scope in ("module", "package", "session") and d.baseid.startswith("tests")]
            for d in ours:
                groups.add(name if d.scope != "module" else item.module.__name__)
        for group in sorted(groups):
            item.add_marker(pytest.mark.xdist_group(group))
