"""Values a run used to meet only when it built its env, task or loss (inside a sweep's task, or after the run
directory existed) are refused by the recipe's ``validate``: at a sweep's planning and before any directory."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tests.recipes.test_m_dqn import SMALL

from recipes import m_dqn, mdac, tree_search
from torchrl_reg.configs import compose_config, register_schema
from torchrl_reg.sweep.spec import Recipe, SweepError, plan_tasks

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "recipes" / "conf"
MODULES = {"m_dqn": (m_dqn, "MDQNConfig"), "mdac": (mdac, "MDACConfig"), "tree_search": (tree_search, "TreeSearchConfig")}

CASES = [
    ("tree_search", ["tree_search_preset=frozenlake", "task.map_name=foo"],
     r"task.map_name must be one of \['4x4', '8x8'\], got task.map_name='foo'"),
    ("tree_search", ["tree_search_preset=atari", "task.game=foo"], r"task.game must be one of \[.*'pong'.*\], got task.game='foo'"),
    # HalfCheetah-v5's 6 actions in [-1, 1]: the uniform's entropy 6 ln 2
    ("mdac", ["env=halfcheetah", "loss.target_entropy=1e9"],
     r"loss.target_entropy=1000000000.0 is above the largest entropy .*: 4.15888 nats"),
    ("m_dqn", ["env.name=NoSuchEnv-v0"], r"env.name must be a registered gymnasium id such as 'CartPole-v1', got env.name='NoSuchEnv-v0'"),
]


@pytest.mark.parametrize("recipe, overrides, message", CASES)
def test_refused_by_validate_before_any_directory(recipe, overrides, message, tmp_path):
    module, _ = MODULES[recipe]
    run_dir = tmp_path / "run"
    with pytest.raises(ValueError, match=message):
        module.train(compose_config(CONF, recipe, [*overrides, f"run_dir={run_dir}"]))
    assert not run_dir.exists()


@pytest.mark.parametrize("recipe, overrides, message", CASES)
def test_refused_at_the_sweeps_planning(recipe, overrides, message, tmp_path):
    module, schema = MODULES[recipe]
    try:
        with pytest.raises(SweepError, match=message):
            plan_tasks(Recipe.from_path(REPO / "recipes" / f"{recipe}.py"), [*overrides, "seed=0,1"], tmp_path / "sweep")
    finally:  # the sweep imports the recipe as its own module, with its own schema class: put ours back
        register_schema(recipe, getattr(module, schema))
    assert not (tmp_path / "sweep").exists()


def test_a_target_entropy_below_the_bound_passes():
    mdac.validate(compose_config(CONF, "mdac", ["env=halfcheetah", "loss.target_entropy=4.1"]))


@pytest.mark.slow
def test_an_unknown_env_id_is_one_line_from_the_command_line(tmp_path):
    """It was a traceback, after the run directory existed."""
    run_dir = tmp_path / "run"
    done = subprocess.run([sys.executable, str(REPO / "recipes" / "m_dqn.py"), *SMALL, "env.name=NoSuchEnv-v0",
                           f"run_dir={run_dir}"], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "env.name must be a registered gymnasium id" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not run_dir.exists()
