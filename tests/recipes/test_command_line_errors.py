"""What a recipe's command line prints when it refuses a config: the one-line reason (naming the key and what it
accepts) and a non-zero exit, no traceback, nothing written; a misspelled key gets the closest key."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.recipes.recipe_cases import CONF, ROOT, recipe
from torchrl_reg.configs import compose_config
from torchrl_reg.loops.entry import EXIT_REFUSED, misspelled_key_hint


def _run(tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *args, f"hydra.run.dir={tmp_path / 'hydra'}"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_a_refused_config_prints_its_one_line_reason_alone(tmp_path):
    run_dir = tmp_path / "run"
    done = _run(tmp_path, "recipes/m_dqn.py", "loss.tau=100", f"run_dir={run_dir}")
    assert done.returncode == EXIT_REFUSED != 0
    reason = "m_dqn: config refused: loss.tau must be a finite number in [0.0001, 10.0], got loss.tau=100.0"
    assert done.stderr.splitlines()[-1] == reason
    assert "Traceback" not in done.stderr and "Error executing job" not in done.stderr
    assert not run_dir.exists()


@pytest.mark.slow
def test_a_misspelled_key_gets_the_closest_key(tmp_path):
    done = _run(tmp_path, "recipes/tree_search.py", "planner.simulation=200", f"run_dir={tmp_path / 'run'}")
    assert done.returncode != 0
    assert "tree_search: planner.simulation is not a config key; did you mean `planner.simulations`?" in done.stderr
    assert not (tmp_path / "run").exists()


def test_the_hint_names_the_closest_key_of_the_composed_config():
    recipe("m_dqn")
    hint = misspelled_key_hint(CONF, "m_dqn", ["env=minatar", "optim.lrr=0.1", "seed=3"])
    assert hint.startswith("m_dqn: optim.lrr is not a config key; did you mean `optim.lr`? (optim has: lr, eps, ")
    assert misspelled_key_hint(CONF, "m_dqn", ["loss.tua=0.1"]).startswith("m_dqn: loss.tua is not a config key; "
                                                                         "did you mean `loss.tau`?")
    assert misspelled_key_hint(CONF, "m_dqn", ["optim.lr=0.1", "env=minatar"]) is None  # every key exists
    assert misspelled_key_hint(CONF, "m_dqn", ["optim.zzzzzz=1"]) is None  # nothing close: Hydra's message stands


def test_a_plus_prefixed_misspelled_key_is_refused_with_the_closest_key():
    m_dqn = recipe("m_dqn")
    with pytest.raises(ValueError, match=r"invalid config entry 'optim.lrr': not a key of the schema .*; did you "
                                         r"mean 'optim.lr'\? Accepted keys at this level: \['lr', "):
        m_dqn.validate(compose_config(CONF, "m_dqn", ["+optim.lrr=0.1"]))
