"""``--help`` explains every key of every recipe in one line, from the schema's docs."""
from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from torchrl_reg.configs import compose_config, config_help
from torchrl_reg.loops.entry import recipe_help

CONF = Path(__file__).resolve().parents[2] / "recipes" / "conf"
CASES = [("m_dqn", []), ("tree_search", []), ("m_iqn", []), ("mirl", []), ("iq", []), ("sac", []), ("sql", []), ("mdac", []), ("virel", []), ("virel", ["env=cartpole"])]


@pytest.mark.parametrize("recipe, overrides", CASES)
def test_every_key_has_a_one_line_doc(recipe, overrides):
    importlib.import_module(f"recipes.{recipe}")
    lines = config_help(compose_config(CONF, recipe, overrides))
    undocumented = [line for line in lines if "  " not in line]
    assert not undocumented, undocumented


def test_help_shows_the_composed_values_and_their_docs():
    importlib.import_module("recipes.sql")
    text = recipe_help(CONF, "sql", ["--help", "loss.space=pre_tanh"])
    assert text.startswith("python recipes/sql.py [group=option ...]")
    assert "loss.space=pre_tanh  where SVGD moves the particles: pre_tanh (exact at the box's edge), squashed (actions) or barrier" in text
    assert "loss.fixed_ratio=0.5  fraction of the K particles held fixed in the Stein direction" in text
    assert "buffer.prioritized=false  prioritized replay" in text
