"""``--help`` explains every key of every recipe in one line, from the schema's docs."""
from __future__ import annotations

import pytest

from tests.recipes.recipe_cases import CONF, RECIPES, family_cases, recipe
from torchrl_reg.configs import compose_config, config_help
from torchrl_reg.loops.entry import recipe_help


@pytest.mark.parametrize("name", RECIPES)
def test_every_key_has_a_one_line_doc(name):
    """Every key of every recipe's config, one config per loop family it runs on (VIREL: Box and discrete)."""
    recipe(name)
    for overrides in family_cases(name).values():
        lines = config_help(compose_config(CONF, name, list(overrides)))
        undocumented = [line for line in lines if "  " not in line]
        assert not undocumented, (overrides, undocumented)


def test_help_shows_the_composed_values_and_their_docs():
    recipe("sql")
    text = recipe_help(CONF, "sql", ["--help", "loss.space=pre_tanh"])
    assert text.startswith("python recipes/sql.py [group=option ...]")
    assert "loss.space=pre_tanh  where SVGD moves the particles: pre_tanh (exact at the box's edge), squashed (actions) or barrier" in text
    assert "loss.fixed_ratio=0.5  fraction of the K particles held fixed in the Stein direction" in text
    assert "buffer.prioritized=false  prioritized replay" in text
