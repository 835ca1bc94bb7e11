"""The documentation site (docs/): it builds with warnings as errors, its code examples (guides and docstrings)
pass as doctests, and the API reference documents every public name (each package's ``__all__``).

This is how CI builds the docs: the README's test command runs this file, so it stays CI's single entry."""
from __future__ import annotations

import json
import os
import posixpath
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sphinx", reason="the docs build needs sphinx, in the test extra (pip install -e '.[all,test]')")
from sphinx.util.inventory import InventoryFile  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# Every package whose API the reference documents (docs/api/<name>.rst), the modules of torchrl_reg.__all__ first.
PUBLIC = ["functional", "validation", "objectives", "value", "modules", "data", "tabular", "planning", "envs", "loops",
          "configs", "run", "trainer_configs", "sweep", "report"]


def _public_names() -> dict[str, list[str]]:
    """Each package's ``__all__``, read in a fresh interpreter: importing trainer_configs here would register
    TorchRL's trainer config groups (logger/csv, ...) in this process's Hydra ConfigStore, over the recipes'."""
    code = ("import importlib, json; print(json.dumps({'__init__': importlib.import_module('torchrl_reg').__all__, "
            f"**{{p: importlib.import_module('torchrl_reg.' + p).__all__ for p in {PUBLIC!r}}}}}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=600, check=True)
    return json.loads(done.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("docs")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    for builder in ("html", "doctest"):  # one doctree cache: the doctest build reads no source again
        cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", builder, "-d", str(out / "doctrees"),
               str(ROOT / "docs"), str(out / builder)]
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
        report = (out / builder / "output.txt").read_text() if builder == "doctest" and done.returncode else ""
        assert done.returncode == 0, f"sphinx -b {builder}:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}\n{report[-6000:]}"
    return out


def test_the_docs_build_without_warnings_and_their_examples_pass(built):
    summary = (built / "doctest" / "output.txt").read_text()
    assert "0 failures in tests" in summary and " 0 tests" not in summary


def test_the_api_reference_documents_every_public_name(built):
    with open(built / "html" / "objects.inv", "rb") as f:
        inventory = InventoryFile.load(f, "", posixpath.join)
    data = getattr(inventory, "data", inventory)  # Sphinx >= 8.2 wraps the mapping in an Inventory object
    documented = {name for entries in data.values() for name in entries}
    public = _public_names()
    assert {f"torchrl_reg.{name}" for name in public["__init__"] if name != "__version__"} <= {
        f"torchrl_reg.{name}" for name in PUBLIC}
    missing = [f"torchrl_reg.{package}.{name}" for package in PUBLIC for name in public[package]
               if f"torchrl_reg.{package}.{name}" not in documented]
    assert not missing, missing
    assert sorted(p.stem for p in (ROOT / "docs" / "api").glob("*.rst") if p.stem != "index") == sorted(PUBLIC)
    # docs/losses.rst tells VIREL users to call keep_temperature, defined in the losses' shared base
    assert {"torchrl_reg.objectives.VIRELLoss.keep_temperature",
            "torchrl_reg.objectives.DiscreteVIRELLoss.keep_temperature"} <= documented


def _light_install(root: Path) -> Path:
    """A folder of links to the packages of the core install and sphinx (torch, torchrl, tensordict, numpy,
    sphinx and what they require, by their metadata): with ``python -S`` and this folder on the path, an
    interpreter sees what ``pip install -e . sphinx`` gives a loss user, none of the extras' packages."""
    import importlib.metadata as metadata
    import re

    from packaging.markers import default_environment
    from packaging.requirements import Requirement

    environment = {**default_environment(), "extra": ""}
    todo, found = ["torch", "torchrl", "tensordict", "numpy", "sphinx"], {}
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in found:
            continue
        try:
            found[name] = dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        todo += [req.name for req in map(Requirement, dist.requires or []) if not req.marker or req.marker.evaluate(environment)]
    root.mkdir()
    for dist in found.values():
        site = Path(dist.locate_file(""))
        for top in {Path(f).parts[0] for f in dist.files or [] if not str(f).startswith("..")}:
            if not (root / top).exists() and (site / top).exists():
                (root / top).symlink_to(site / top)
    return root


@pytest.mark.slow
def test_the_html_docs_build_with_the_core_install_and_sphinx_alone(tmp_path):
    # The API reference imports the modules of the recipes extra (Hydra, gymnasium, ale-py, ...): docs/conf.py mocks
    # those that are not installed. Built here as a loss user would, from `pip install -e . sphinx`.
    light = _light_install(tmp_path / "site")
    code = (f"import sys; sys.path[:0] = [{str(light)!r}, {str(ROOT)!r}]; import importlib.util; "
            "assert importlib.util.find_spec('hydra') is None and importlib.util.find_spec('gymnasium') is None; "
            "from sphinx.cmd.build import main; "
            f"sys.exit(main(['-W', '--keep-going', '-q', '-b', 'html', {str(ROOT / 'docs')!r}, {str(tmp_path / 'html')!r}]))")
    done = subprocess.run([sys.executable, "-S", "-c", code], cwd=ROOT, env={**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    assert "MDACLossConfig" in (tmp_path / "html" / "api" / "trainer_configs.html").read_text()
