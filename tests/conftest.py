from __future__ import annotations

import os

import pytest

# Target networks updated by hand in the tests would otherwise warn on every call.
os.environ.setdefault("RL_WARNINGS", "False")
# The memory bounds of the config checks (torchrl_reg.validation.available_memory) see a 24 GiB machine, whatever
# the machine running the tests has free at that moment: a preset is accepted or refused the same way everywhere
# (tests/configs/test_bounds.py checks every shipped preset against 24 GiB, and the refusals against it).
os.environ.setdefault("TORCHRL_REG_MEMORY_BYTES", str(24 << 30))


_LOADGROUP_BROKEN = (
    "its --dist loadgroup does not work with pytest >= 9.2 (pytest-dev/pytest-xdist#1386): every group of tests "
    "sharing a fixture would be split across workers. Install pytest < 9.2 (pyproject's test extra pins it), or run "
    "python -m pytest -n 0.")


def pytest_configure(config):
    """Refuse, before any test runs, the pytest / pytest-xdist pair whose loadgroup is known not to group."""
    if hasattr(config, "workerinput") or config.getoption("dist", "no") != "loadgroup":
        return
    if not config.getoption("numprocesses", None):
        return
    from importlib.metadata import version

    from packaging.version import Version

    xdist_version = version("pytest-xdist")
    if Version(pytest.__version__) >= Version("9.2") and Version(xdist_version) <= Version("3.8.0"):
        raise pytest.UsageError(f"pytest-xdist {xdist_version} under pytest {pytest.__version__}: {_LOADGROUP_BROKEN}")


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(config, items):
    """Keep what a shared fixture builds on one pytest-xdist worker (``--dist loadgroup`` in pyproject's addopts).

    A test that uses a module- or session-scoped fixture of ours goes in one group with the other users of that
    fixture: a module's expensive fixture (a docs build, a trained network, a stopped run) is then built once, not
    once per worker, and the session's SLURM cluster is started, used and stopped by one worker alone. Every other
    test is handed to whichever worker is free. The marks are added before any other plugin's hook runs (this is a
    wrapper), and after them it checks that pytest-xdist kept the groups: with pytest 9.2 its loadgroup marking no
    longer takes effect (pytest-dev/pytest-xdist#1386), which would split every group without a word.
    """
    grouped = []
    for item in items:
        fixture_info = getattr(item, "_fixtureinfo", None)
        if fixture_info is None:
            continue
        groups = set()
        for name, defs in fixture_info.name2fixturedefs.items():
            for d in defs:
                if d.scope in ("module", "package", "session") and d.baseid.startswith("tests"):
                    groups.add(name if d.scope != "module" else item.module.__name__)
        for group in sorted(groups):
            item.add_marker(pytest.mark.xdist_group(group))
        if groups:
            grouped.append(item)
    result = yield
    if getattr(config.option, "loadgroup", False):
        lost = [item.nodeid for item in grouped if "@" not in item.nodeid.rsplit("]", 1)[-1]]
        if lost:  # a pair the version check above does not know (shown by the controller as an INTERNALERROR)
            raise pytest.UsageError(f"{len(lost)} tests sharing a fixture were not grouped (e.g. {lost[0]}): "
                                    f"{_LOADGROUP_BROKEN}")
    return result


@pytest.fixture
def plant_symlink(tmp_path):
    """``plant(directory, name, folder=...)``: ``directory / name`` made a symlink to ``tmp_path / "outside" /
    "victim"``, a folder or a file holding ``"precious\\n"`` (the directories above ``name`` created); returns the
    victim, so a test checks that nothing was written through the link."""

    def plant(directory, name, *, folder):
        target = tmp_path / "outside" / "victim"
        target.parent.mkdir(exist_ok=True)
        if folder:
            target.mkdir()
        else:
            target.write_text("precious\n")
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).symlink_to(target)
        return target

    return plant
