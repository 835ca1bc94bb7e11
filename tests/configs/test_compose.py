"""Where a recipe's config files are: its own directory, the shared groups on Hydra's search path, and a
user's own search path kept beside them."""
from __future__ import annotations

import importlib
from pathlib import Path

from torchrl_reg.configs import compose_config, config_sources, recipe_config_path, with_search_path

CONF = Path(__file__).resolve().parents[2] / "recipes" / "conf"


def test_a_recipe_composes_from_its_own_directory_with_the_shared_one_on_the_search_path(tmp_path):
    assert recipe_config_path(CONF, "m_dqn") == (CONF / "m_dqn", CONF)
    assert recipe_config_path(CONF, "tree_search") == (CONF, None)  # the flat layout: conf/<name>.yaml
    assert recipe_config_path(tmp_path, "m_dqn") == (tmp_path.resolve(), None)
    assert with_search_path(None, ["seed=1"]) == ["seed=1"]
    assert with_search_path(Path("/a,b"), ["seed=1"]) == ["hydra.searchpath=['file:///a,b']", "seed=1"]


def test_a_users_search_path_is_searched_after_the_shared_groups(tmp_path):
    # A user's own env option beside the recipe's, in a directory whose name Hydra's grammar would split.
    extra = tmp_path / "my,conf"
    (extra / "env").mkdir(parents=True)
    (extra / "env" / "mountaincar.yaml").write_text(
        "# @package _global_\ndefaults:\n  - /m_dqn/env/cartpole\n  - _self_\n\nenv:\n  name: MountainCar-v0\n"
    )
    importlib.import_module("recipes.m_dqn")
    overrides = [f"hydra.searchpath=['file://{extra.as_posix()}']", "env=mountaincar"]
    cfg = compose_config(CONF, "m_dqn", overrides)
    cartpole = compose_config(CONF, "m_dqn", ["env=cartpole"])
    assert cfg.env.name == "MountainCar-v0" and cfg.collector == cartpole.collector and cfg.buffer == cartpole.buffer
    sources = config_sources(CONF, "m_dqn", overrides)
    assert sources.values["collector.num_envs"] == "protocol/dqn/cartpole.yaml"
    assert sources.values["env.name"] == str(extra / "env" / "mountaincar.yaml")
    assert sources.groups["env"][0] == "mountaincar"
