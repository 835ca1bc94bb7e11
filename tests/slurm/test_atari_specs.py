"""Sweep specs of the papers' Atari protocols (benchmarks/atari_*.yaml). Each names its
papers' games (all ALE v5 ids of the installed ale-py), and every method's tasks validate against its recipe
(planned on one game and seed: planning composes each task's config, ~700 of them for the 57-game list)."""
from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import pytest

from torchrl_reg.sweep.spec import load_sweep_spec, plan_tasks

REPO = Path(__file__).resolve().parents[2]
# spec -> (games, seeds, methods): the papers' game sets (Munchausen's quoted five, Atari-57, MIRL's Table 1,
# Atari-100k's 26) and the seeds and methods each spec declares.
SPECS = {
    "atari_munchausen.yaml": (5, 3, ["dqn", "m_dqn", "iqn", "m_iqn"]),
    "atari_munchausen_57.yaml": (57, 3, ["dqn", "m_dqn", "iqn", "m_iqn"]),
    "atari_mirl.yaml": (19, 3, ["dqn", "sql", "sql_m", "mirl"]),
    "atari_100k.yaml": (26, 5, ["dqn", "m_dqn", "iqn", "m_iqn"]),
}


def _games(methods) -> list[str]:
    names = {o.split("=", 1)[1] for m in methods for o in m.overrides if o.startswith("env.name=")}
    assert len(names) == 1, names  # the same games for every method
    return names.pop().split(",")


@pytest.mark.parametrize("name", sorted(SPECS))
def test_atari_specs_name_their_papers_games_and_validate(tmp_path, name):
    import ale_py

    gym.register_envs(ale_py)
    n_games, n_seeds, method_names = SPECS[name]
    methods = load_sweep_spec(REPO / "benchmarks" / name)
    assert [m.name for m in methods] == method_names
    games = _games(methods)
    assert len(games) == len(set(games)) == n_games
    for game in games:
        gym.spec(f"ALE/{game}-v5")  # raises for a name ALE does not know
    for method in load_sweep_spec(REPO / "benchmarks" / name, ["env.name=Pong"]):
        tasks, swept = plan_tasks(method.recipe, method.overrides, tmp_path / method.name)
        assert len(tasks) == n_seeds and swept == ["seed"]
        assert "env=atari" in tasks[0].overrides


def test_the_57_game_list_contains_the_five_quoted_games_and_mirls_19():
    five = _games(load_sweep_spec(REPO / "benchmarks" / "atari_munchausen.yaml"))
    all57 = set(_games(load_sweep_spec(REPO / "benchmarks" / "atari_munchausen_57.yaml")))
    assert set(five) <= all57
    assert set(_games(load_sweep_spec(REPO / "benchmarks" / "atari_mirl.yaml"))) <= all57
    assert set(_games(load_sweep_spec(REPO / "benchmarks" / "atari_100k.yaml"))) <= all57
