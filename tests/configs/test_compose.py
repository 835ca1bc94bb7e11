"""Where a recipe's config files are: its own directory, the shared groups on Hydra's search path, and a
user's own search path kept beside them."""
from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from torchrl_reg.configs import compose_config, config_sources, recipe_config_path, with_search_path

CONF = Path(__file__).resolve().parents[2] / "recipes" / "conf"


def test_a_recipe_composes_from_its_own_directory_with_the_shared_one_on_the_search_path(tmp_path):
    # m_dqn's primary config lists its env set (hydra.searchpath: file://../envs/dqn), after the shared groups.
    assert recipe_config_path(CONF, "m_dqn") == (CONF / "m_dqn", (CONF, CONF / "envs" / "dqn"))
    assert recipe_config_path(CONF, "sql") == (CONF / "sql", (CONF,))  # its env group is its own
    assert recipe_config_path(CONF, "tree_search") == (CONF, ())  # the flat layout: conf/<name>.yaml
    assert recipe_config_path(tmp_path, "m_dqn") == (tmp_path.resolve(), ())
    assert with_search_path(None, ["seed=1"]) == with_search_path((), ["seed=1"]) == ["seed=1"]
    assert with_search_path(Path("/a,b"), ["seed=1"]) == ["hydra.searchpath=['file:///a,b']", "seed=1"]
    assert with_search_path((Path("/a"), Path("/b")), []) == ["hydra.searchpath=['file:///a','file:///b']"]


def test_a_search_path_entry_of_a_primary_config_is_relative_to_it_and_a_directory(tmp_path):
    own = tmp_path / "mine"
    own.mkdir()
    (own / "mine.yaml").write_text("hydra:\n  searchpath:\n    - file://../envs/x\n    - /abs/y\n")
    assert recipe_config_path(tmp_path, "mine") == (own.resolve(), (tmp_path.resolve(), (tmp_path / "envs" / "x").resolve(), Path("/abs/y")))
    (own / "mine.yaml").write_text("hydra:\n  searchpath:\n    - pkg://somewhere\n")
    with pytest.raises(ValueError, match=r"hydra.searchpath entry 'pkg://somewhere': a recipe's search path holds directories"):
        recipe_config_path(tmp_path, "mine")


def test_each_env_option_is_written_once_and_no_recipe_reads_another_recipes_directory():
    """The control recipes share one env set (envs/control/), the DQN-family recipes another (envs/dqn/): no two
    env options are the same bytes, and no config names a file of another recipe's directory in its defaults list
    (a recipe's directory holds what is its own; what two recipes read is shared)."""
    seen: dict[bytes, Path] = {}
    for path in sorted(CONF.glob("**/env/*.yaml")):
        assert path.read_bytes() not in seen, (path, seen.get(path.read_bytes()))
        seen[path.read_bytes()] = path
    files = sorted(CONF.rglob("*.yaml"))
    recipes = {path.parent.name for path in CONF.glob("*/*.yaml") if path.stem == path.parent.name}
    for path in files:
        own = path.relative_to(CONF).parts[0]
        for entry in OmegaConf.load(path).get("defaults", []) if path.read_text().strip() else []:
            target = str(next(iter(entry.values())) if isinstance(entry, dict) else entry)
            group = (next(iter(entry)) if isinstance(entry, dict) else target).split()[-1].lstrip("/").split("/")[0]
            assert group not in recipes - {own}, (path, entry)


def test_a_users_search_path_is_searched_after_the_shared_groups(tmp_path):
    # A user's own env option beside the recipe's, in a directory whose name Hydra's grammar would split.
    extra = tmp_path / "my,conf"
    (extra / "env").mkdir(parents=True)
    (extra / "env" / "mountaincar.yaml").write_text(
        "# @package _global_\ndefaults:\n  - /envs/dqn/env/cartpole\n  - _self_\n\nenv:\n  name: MountainCar-v0\n"
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
