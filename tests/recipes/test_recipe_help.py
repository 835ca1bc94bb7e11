"""Each recipe's ``--help`` lists the groups and options that recipe accepts, and no other
recipe's (``env=pendulum`` on m_dqn): every listed option composes and validates, every unlisted env
option of the shared ``env`` group is refused."""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from torchrl_reg.configs import compose_config

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "recipes" / "conf"
RECIPES = ("m_dqn", "m_iqn", "mirl", "iq", "sac", "sql", "virel")


def listed_options(recipe: str) -> dict[str, list[str]]:
    template = OmegaConf.load(CONF / f"{recipe}.yaml").hydra.help.template
    groups = {}
    for line in template.splitlines():
        head, _, rest = line.partition(": ")
        if head in ("env", "loss", "policy", "buffer", "logger") and rest:
            groups[head] = [option.strip() for option in rest.split(",")]
    return groups


def accepts(recipe: str, group: str, option: str) -> bool:
    module = importlib.import_module(f"recipes.{recipe}")  # registers the schema
    try:
        module.validate(compose_config(CONF, recipe, [f"{group}={option}"]))
    except Exception:  # noqa: BLE001 -- any refusal (missing preset, schema mismatch, range check)
        return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize("recipe", RECIPES)
def test_help_lists_the_options_the_recipe_accepts(recipe):
    listed = listed_options(recipe)
    for option in sorted(path.stem for path in (CONF / "env").glob("*.yaml")):
        assert accepts(recipe, "env", option) == (option in listed["env"]), (recipe, option)
    for group in ("loss", "policy", "buffer", "logger"):
        for option in listed.get(group, []):
            assert accepts(recipe, group, option), (recipe, group, option)


@pytest.mark.slow
def test_help_command_prints_the_recipe_help():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "recipes/m_dqn.py", "--help"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    ).stdout
    assert "loss: m_dqn, soft_dqn, al, pal, dqn" in out and "env.name=<any gymnasium id>" in out
    assert "pendulum" not in out and "trust_pcl" not in out


@pytest.mark.slow
@pytest.mark.parametrize(
    ("recipe", "option", "accepted"),
    [
        ("m_dqn", "iq", "['m_dqn', 'soft_dqn', 'al', 'pal', 'dqn']"),
        ("m_iqn", "m_iq", "['m_iqn', 'iqn']"),
        ("mirl", "sac", "['mirl', 'sql', 'sql_m', 'dqn']"),
        ("iq", "sac", "['m_iq', 'iq', 'trust_pcl', 'pcl']"),
        ("sac", "virel", "['sac']"),
        ("sql", "m_iq", "['soft_q']"),
    ],
)
def test_recipe_refuses_another_recipes_loss_group(tmp_path, recipe, option, accepted):
    # These options have no ``name`` key: they used to compose and run the recipe's default loss
    # with the other recipe's values (loss=iq on m_dqn: M-DQN with alpha=0, i.e. Soft-DQN; loss=sac
    # on iq: the default M-IQ, whose file is as empty as SAC's).
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    run_dir = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, f"recipes/{recipe}.py", f"loss={option}", f"run_dir={run_dir}", f"hydra.run.dir={tmp_path / 'hydra'}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode != 0
    assert f"loss must be one of {accepted}, got loss='{option}'" in done.stderr
    assert not run_dir.exists() or not any(run_dir.iterdir())
