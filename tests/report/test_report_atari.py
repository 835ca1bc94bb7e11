"""Atari reports in human-normalized scores, from run records whose numbers are worked out by hand here."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from torchrl_reg.report import summary
from torchrl_reg.report.atari import (
    ATARI_100K_GAMES,
    ATARI_SCORES,
    atari_game,
    budget_text,
    dopamine_curve,
    human_normalized,
    score_scale,
)
from torchrl_reg.report.rliable_figures import FIGURES, INSTALL_HINT, rliable_missing
from torchrl_reg.report.summary import main, make_report

REPO = Path(__file__).resolve().parents[2]

# Final training returns per (game, loss): chosen so that their human-normalized scores are round numbers.
# Breakout: random 1.7, human 30.5 (range 28.8); Pong: random -20.7, human 14.6 (range 35.3).
SCORES = {
    ("Breakout", "dqn"): [1.7, 16.1, 30.5],  # HNS 0, 0.5, 1
    ("Breakout", "m_dqn"): [30.5, 59.3, 88.1],  # HNS 1, 2, 3
    ("Pong", "dqn"): [-20.7, -20.7, -3.05],  # HNS 0, 0, 0.5
    ("Pong", "m_dqn"): [14.6, -3.05, 14.6],  # HNS 1, 0.5, 1
}


def _record(root: Path, game: str, loss: str, seed: int, score: float, family: str = "atari", frames: int = 1_000_000) -> None:
    steps = np.linspace(frames / 4, frames, 4)
    record = {
        "method": loss, "env": game, "seed": seed,
        "config": {"env": {"family": family, "name": game, "frame_skip": 4}, "loss": {"name": loss},
                   "collector": {"total_frames": frames}, "seed": seed},
        "metrics": {"status": "completed", "train_return_mean": score, "frames": frames},
        "curves": {"train/episode_return": {"frames": steps.astype(int).tolist(), "values": (score * steps / frames).tolist()}},
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{loss}_{game}_{seed}.json").write_text(json.dumps(record))


@pytest.fixture
def records(tmp_path):
    root = tmp_path / "records"
    for (game, loss), scores in SCORES.items():
        for seed, score in enumerate(scores):
            _record(root, game, loss, seed, score)
    return root


def test_the_table_holds_the_57_games_of_the_57_game_spec_each_an_ale_id():
    import ale_py
    import gymnasium as gym

    from torchrl_reg.sweep.spec import load_sweep_spec

    gym.register_envs(ale_py)
    (names,) = {o.split("=", 1)[1] for m in load_sweep_spec(REPO / "benchmarks" / "atari_munchausen_57.yaml")
                for o in m.overrides if o.startswith("env.name=")}
    assert sorted(names.split(",")) == sorted(ATARI_SCORES)
    assert set(ATARI_100K_GAMES) < set(ATARI_SCORES) and len(ATARI_100K_GAMES) == 26
    for game in ATARI_SCORES:
        gym.spec(f"ALE/{game}-v5")
    # The values quoted with the formula in the reference notes (DQN Nature / Rainbow / Agent57 tables).
    assert ATARI_SCORES["Breakout"] == (1.7, 30.5) and ATARI_SCORES["Pong"] == (-20.7, 14.6)
    assert ATARI_SCORES["SpaceInvaders"] == (148.0, 1668.7)
    assert all(random < human for random, human in ATARI_SCORES.values())


def test_game_names_and_the_formula():
    assert atari_game("ALE/Breakout-v5") == atari_game("breakout") == atari_game("Breakout") == "Breakout"
    assert atari_game("up_n_down") == "UpNDown"
    assert human_normalized("ALE/Pong-v5", [14.6, -20.7, -3.05]) == pytest.approx([1.0, 0.0, 0.5])
    with pytest.raises(ValueError, match="'Carnival'"):
        human_normalized("Carnival", 1.0)
    assert budget_text([100_000], [4]) == "100k agent steps (400k frames)"
    assert budget_text([50_000_000], [4]) == "50M agent steps (200M frames)"


def test_a_game_missing_from_the_table_or_a_mixed_report_is_refused_by_name():
    with pytest.raises(ValueError, match=r"\['Carnival'\]"):
        score_scale({"Pong": {"atari"}, "Carnival": {"atari"}})
    with pytest.raises(ValueError, match="mix Atari games \\(Pong\\) with other environments \\(Breakout\\)"):
        score_scale({"Pong": {"atari"}, "Breakout": {"minatar"}})
    raw = score_scale({"Breakout": {"minatar"}, "Asterix": {"minatar"}})
    assert not raw.human and "raw scores: minatar environments" in raw.note


def test_atari_report_in_human_normalized_scores(records, tmp_path):
    res = make_report([records], tmp_path / "out", reps=2000, curve_reps=200)
    assert res["scale"]["human"] and "DQN Zoo" in res["scale"]["note"]
    rows = {(r["env"], r["method"]): r for r in res["per_env"]}
    assert rows[("Breakout", "dqn")]["hns_mean"] == pytest.approx(0.5)
    assert rows[("Breakout", "m_dqn")]["hns_mean"] == pytest.approx(2.0)
    assert rows[("Pong", "dqn")]["hns_mean"] == pytest.approx(1 / 6)
    assert rows[("Pong", "m_dqn")]["hns_mean"] == pytest.approx(2.5 / 3)
    assert rows[("Breakout", "m_dqn")]["mean"] == pytest.approx(59.3)  # raw scores stay in the table
    agg = res["aggregate"]
    # dqn: Breakout [0, 0.5, 1], Pong [0, 0, 0.5]; m_dqn: Breakout [1, 2, 3], Pong [1, 0.5, 1]
    assert agg["dqn"]["Mean"][0] == pytest.approx((0.5 + 1 / 6) / 2)
    assert agg["m_dqn"]["Median"][0] == pytest.approx((2.0 + 2.5 / 3) / 2)
    # 6 pooled scores, one trimmed at each end: dqn mean(0, 0, 0.5, 0.5); m_dqn mean(1, 1, 1, 2)
    assert agg["dqn"]["IQM"][0] == pytest.approx(0.25)
    assert agg["m_dqn"]["IQM"][0] == pytest.approx(1.25)
    # min(HNS, 1): m_dqn Breakout [1, 1, 1], Pong [1, 0.5, 1] -> gap 1 - 5.5/6
    assert agg["m_dqn"]["Optimality gap"][0] == pytest.approx(1 - 5.5 / 6)
    assert res["title"] == "Atari (2 games, 3 runs each), 1M agent steps (4M frames)"
    text = (tmp_path / "out" / "summary.md").read_text()
    assert "## Human-normalized scores" in text and "| Breakout | 1.7 | 30.5 | m_dqn | 3 | 2 |" in text
    # The Munchausen paper's quoted scores of the games we ran: m_dqn Breakout 331 -> (331 - 1.7) / 28.8.
    published = {(p["method"], p["env"]): p for p in res["published_scores"]}
    assert published[("m_dqn", "Breakout")]["hns"] == pytest.approx((331 - 1.7) / 28.8)
    assert set(published) == {(m, g) for m in ("m_dqn", "m_iqn") for g in ("Breakout", "Pong")}


@pytest.mark.skipif(rliable_missing() is not None, reason=f"the figures need rliable: {rliable_missing()}")
def test_rliable_figures_are_written_and_named_in_the_summary(records, tmp_path):
    res = make_report([records], tmp_path / "out", reps=500, curve_reps=100)
    assert res["figures"] == FIGURES and res["figure_notes"] == []
    text = (tmp_path / "out" / "summary.md").read_text()
    for name in FIGURES.values():
        assert (tmp_path / "out" / name).stat().st_size > 10_000
        assert f"({name})" in text


def test_without_rliable_the_report_says_how_to_get_the_figures_and_keeps_the_scores(records, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(summary, "rliable_missing", lambda: "rliable does not import (ModuleNotFoundError: No module named 'rliable')")
    assert main([str(records), "--out", str(tmp_path / "out"), "--reps", "200"]) == 0
    out = capsys.readouterr().out
    assert INSTALL_HINT in out and INSTALL_HINT in (tmp_path / "out" / "summary.md").read_text()
    assert "Breakout         m_dqn                    2" in out
    assert "aggregates over 2 games" in out and "IQM 1.25 [" in out
    assert not any((tmp_path / "out" / name).exists() for name in FIGURES.values())


def test_minatar_keeps_raw_scores_and_says_so(tmp_path, capsys):
    root = tmp_path / "records"
    for seed, score in enumerate([10.0, 20.0]):
        _record(root, "Breakout", "dqn", seed, score, family="minatar")
        _record(root, "Breakout", "m_dqn", seed, score + 5, family="minatar")
    assert main([str(root), "--out", str(tmp_path / "out"), "--reps", "100"]) == 0
    assert "scores: raw scores: minatar environments have no human reference" in capsys.readouterr().out
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert not res["scale"]["human"] and "hns_mean" not in res["per_env"][0] and res["figures"] == {}


def _dopamine_rows(agent: str, runs: list[list[float]]) -> list[dict]:
    return [{"Iteration": i, "Value": v, "Agent": agent} for run in runs for i, v in enumerate(run)]


def test_dopamine_curves_beside_ours(records, tmp_path):
    data = tmp_path / "dopamine"
    data.mkdir()
    rows = _dopamine_rows("DQN", [[-20.0, -10.0, 0.0, 10.0, 20.0], [-18.0, -6.0, 2.0, 12.0, 20.0]])
    (data / "pong.json").write_text(json.dumps(rows + _dopamine_rows("C51", [[1.0, 2.0]])))
    x, y, band, n = dopamine_curve(data, "Pong", "DQN")
    # iteration i: 250k agent steps, drawn at its middle
    assert n == 2 and x.tolist() == [125_000, 375_000, 625_000, 875_000, 1_125_000]
    assert y.tolist() == [-19.0, -8.0, 1.0, 11.0, 20.0] and band[:, 1].tolist() == [-10.0, -6.0]
    assert dopamine_curve(data, "Pong", "IQN") is None and dopamine_curve(data, "Breakout", "DQN") is None

    res = make_report([records], tmp_path / "out", reps=200, curve_reps=50, dopamine=data)
    assert res["published_notes"] == [f"Breakout: no Dopamine DQN curve in {data}"]
    assert res["curves"] == {"Breakout": "curves_Breakout.png", "Pong": "curves_Pong.png"}
    assert "Dopamine's published training returns" in (tmp_path / "out" / "summary.md").read_text()
    with pytest.raises(ValueError, match="--curve train/episode_return"):
        make_report([records], tmp_path / "out2", reps=100, curve="eval", dopamine=data)


def test_the_figures_titles_name_atari_100k_and_atari_57():
    from torchrl_reg.report.atari import protocol_title

    s100 = score_scale({game: {"atari"} for game in ATARI_100K_GAMES})
    assert protocol_title(list(ATARI_100K_GAMES), s100, [5] * 26, budget_text([100_000], [4])) == (
        "Atari-100k (26 games, 5 runs each), 100k agent steps (400k frames)")
    s57 = score_scale({game: {"atari"} for game in ATARI_SCORES})
    assert protocol_title(list(ATARI_SCORES), s57, [3, 2], budget_text([50_000_000], [4])) == (
        "Atari-57 (57 games, 2-3 runs each), 50M agent steps (200M frames)")
    assert protocol_title(list(ATARI_100K_GAMES), s100, [1] * 26, budget_text([100_000], [4])) == (
        "Atari-100k (26 games, 1 run each), 100k agent steps (400k frames)")
