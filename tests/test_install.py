"""The light core install (pyproject's `dependencies`: torch, torchrl, tensordict, numpy): every core module
imports without the packages of the extras, and imports none of them where they are installed; the README's
first command runs with the `recipes` extra alone. Each check runs in a fresh interpreter, as a user's would."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.recipes.test_m_dqn import SMALL

ROOT = Path(__file__).resolve().parents[1]
CORE = ["functional", "validation", "value", "data", "modules", "objectives", "tabular", "planning"]
# Top-level import names of the extras' packages (hydra-core, omegaconf, gymnasium, ale-py, mujoco, minatar,
# submitit, matplotlib, scipy, tqdm, PyYAML).
EXTRAS = ["hydra", "omegaconf", "gymnasium", "ale_py", "mujoco", "minatar", "submitit", "matplotlib", "scipy", "tqdm", "yaml"]
# What the README's first command (`pip install -e ".[recipes]"`, M-DQN on CartPole) must run without.
NOT_IN_RECIPES = ["ale_py", "mujoco", "minatar", "submitit"]

_ABSENT = """
import sys
for name in {absent!r}:
    sys.modules[name] = None  # what `import name` finds for a package that is not installed: ModuleNotFoundError
"""

_IMPORT_CORE = """
import importlib, pkgutil
import torchrl_reg
core = ["torchrl_reg"]
for name in {core!r}:
    module = importlib.import_module("torchrl_reg." + name)
    core.append(module.__name__)
    core += [m.name for m in pkgutil.walk_packages(getattr(module, "__path__", []), module.__name__ + ".")]
for name in core:
    importlib.import_module(name)
"""


def _python(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_core_dependencies_are_torch_torchrl_tensordict_numpy():
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {dep.split(">")[0].split("=")[0].split("<")[0].strip() for dep in project["dependencies"]}
    assert names == {"torch", "torchrl", "tensordict", "numpy"}
    extras = project["optional-dependencies"]
    assert {"recipes", "atari", "mujoco", "minatar", "slurm", "all", "test"} <= set(extras)


def test_every_core_module_imports_without_the_extras():
    code = _ABSENT.format(absent=EXTRAS) + _IMPORT_CORE.format(core=CORE) + "print(len(core))"
    assert int(_python(code).strip().splitlines()[-1]) > len(CORE)


def test_importing_the_core_imports_no_extra_where_they_are_installed():
    # TorchRL's own modules import some of them when installed (torchrl.envs imports mujoco): only what the
    # core adds on top of TorchRL counts.
    code = textwrap.dedent("""
        import json, sys
        import torchrl.collectors, torchrl.data, torchrl.envs, torchrl.modules, torchrl.objectives
        before = {m.split(".")[0] for m in sys.modules}
    """) + _IMPORT_CORE.format(core=CORE) + textwrap.dedent("""
        print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} - before)))
    """)
    added = set(json.loads(_python(code).strip().splitlines()[-1]))
    assert not added & set(EXTRAS), sorted(added & set(EXTRAS))


@pytest.mark.slow
def test_the_readme_first_command_needs_only_the_recipes_extra(tmp_path):
    # recipes/m_dqn.py on CartPole (the README's first command, a tiny budget) with the Atari, MuJoCo, MinAtar
    # and SLURM packages absent.
    argv = ["recipes/m_dqn.py", *SMALL, "eval.episodes=1", f"hydra.run.dir={tmp_path}"]
    code = _ABSENT.format(absent=NOT_IN_RECIPES) + textwrap.dedent(f"""
        import runpy
        sys.argv = {argv!r}
        runpy.run_path("recipes/m_dqn.py", run_name="__main__")
    """)
    _python(code)
    assert json.loads((tmp_path / "metrics.json").read_text())["frames"] == 240
