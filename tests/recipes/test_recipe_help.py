"""Each recipe's ``--help`` lists its groups with their options, each from the recipe's own directory
(``recipes/conf/<recipe>/``) or the shared one: every listed option composes and validates, and no other
recipe's composes (``env=pendulum`` on m_dqn); each key shows the file, override or schema default that set it."""
from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest

from tests.recipes.recipe_cases import CONF, ROOT, TRAINING_RECIPES
from torchrl_reg.configs import compose_config, config_sources
from torchrl_reg.loops.entry import EXIT_REFUSED
from torchrl_reg.run.logs import check_logger_backend

ALL_ENVS = sorted({path.stem for path in CONF.glob("**/env/*.yaml")})  # recipes' own and the env sets'


def _options(group_dir: str) -> tuple[str, ...]:
    """The options of a group directory under recipes/conf/, as Hydra lists them: its files' names, sorted."""
    return tuple(sorted(path.stem for path in (CONF / group_dir).glob("*.yaml")))


def accepts(recipe: str, group: str, option: str) -> bool:
    module = importlib.import_module(f"recipes.{recipe}")  # registers the schema
    try:
        module.validate(compose_config(CONF, recipe, [f"{group}={option}"]))
    except Exception:  # noqa: BLE001 -- any refusal (option not found, schema mismatch, range check)
        return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize("recipe", TRAINING_RECIPES)
def test_help_lists_the_options_the_recipe_accepts(recipe):
    importlib.import_module(f"recipes.{recipe}")  # registers the schema
    groups = config_sources(CONF, recipe).groups
    assert {"env", "loss", "buffer", "logger"} <= set(groups)
    for option in ALL_ENVS:  # every env option of any recipe: accepted exactly when listed
        assert accepts(recipe, "env", option) == (option in groups["env"][1]), (recipe, option)
    for group in ("loss", "policy", "buffer", "logger"):
        for option in groups.get(group, ("", ()))[1]:
            if group == "logger" and not accepts(recipe, group, option):
                # a logger backend is refused by its own check, naming it: wandb always (it writes by path from its
                # own process), tensorboard where its package is absent
                with pytest.raises(ValueError, match=rf"logger.backend='{option}'"):
                    check_logger_backend(option)
                continue
            assert accepts(recipe, group, option), (recipe, group, option)


def test_sources_name_the_file_the_override_or_the_schema_default():
    importlib.import_module("recipes.m_dqn")
    sources = config_sources(CONF, "m_dqn", ["env=minatar", "optim.lr=1e-4"])
    # each group's options are its files, sorted: the DQN env set's and the recipe's own loss options
    assert sources.groups["env"] == ("minatar", _options("envs/dqn/env"))
    assert sources.groups["loss"] == ("m_dqn", _options("m_dqn/loss"))
    values = sources.values
    # One file per env family holds the DQN protocol; the DQN env set's option adds its epsilon schedule.
    assert values["collector.total_frames"] == values["env.sticky_action_prob"] == "protocol/dqn/minatar.yaml"
    assert values["exploration.eps_end"] == "envs/dqn/env/minatar.yaml"
    assert values["loss.name"] == "m_dqn/loss/m_dqn.yaml"
    assert values["buffer.prioritized"] == "buffer/uniform.yaml"
    assert values["optim.lr"] == "command line"  # the protocol sets it too: the override comes last
    assert "loss.alpha" not in values  # no file sets it: the schema's default (MunchausenDQNLoss's)


@pytest.mark.slow
def test_help_command_prints_the_groups_and_where_each_value_came_from():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "recipes/m_dqn.py", "--help", "env=minatar", "seed=3"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    ).stdout
    starred = lambda options, used: ", ".join(f"{o}*" if o == used else o for o in options)  # noqa: E731
    assert f"loss: {starred(_options('m_dqn/loss'), 'm_dqn')}\n" in out
    assert f"env: {starred(_options('envs/dqn/env'), 'minatar')}\n" in out
    assert "env.name=<any gymnasium id>" in out
    assert "pendulum" not in out and "trust_pcl" not in out
    lines = out.splitlines()
    assert "seed=3  seed of the networks, the envs and the replay  [command line]" in lines
    assert "optim.lr=0.00025  Adam learning rate  [protocol/dqn/minatar.yaml]" in lines
    assert "exploration.eps_end=0.01  epsilon after the annealing  [envs/dqn/env/minatar.yaml]" in lines
    assert any(line.startswith("loss.alpha=0.9  ") and line.endswith("  [schema default]") for line in lines)


@pytest.mark.parametrize("args", [["--cfg", "job", "env=hopper", "seed=3"], ["env=hopper", "seed=3", "--cfg", "job"]])
def test_command_line_finds_the_shared_groups_around_hydra_flags(args):
    # The recipe adds recipes/conf/ to Hydra's search path as an override beside the user's.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(ROOT / "recipes" / "sac.py"), *args],
                          cwd=ROOT.parent, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "seed: 3" in done.stdout and "name: Hopper-v5" in done.stdout and "backend: csv" in done.stdout


@pytest.mark.slow
@pytest.mark.parametrize(("recipe", "option"), [("m_dqn", "iq"), ("sql", "soft_q")])  # a choice, not the registry's list: another recipe's option
def test_command_line_refuses_another_recipes_loss_option(tmp_path, recipe, option):
    # loss=iq on m_dqn used to compose (the recipes shared one loss group) into M-DQN with alpha=0, i.e.
    # Soft-DQN; soft_q is the SQL recipe's loss before each recipe had its own group.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    run_dir = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, f"recipes/{recipe}.py", f"loss={option}", f"run_dir={run_dir}", f"hydra.run.dir={tmp_path / 'hydra'}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == EXIT_REFUSED
    accepted = ", ".join(_options(f"{recipe}/loss"))
    assert done.stderr.splitlines() == [f"{recipe}: loss={option} is not an option of loss (loss has: {accepted})"]
    assert not run_dir.exists() and not (tmp_path / "hydra").exists()
