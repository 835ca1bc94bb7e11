"""The whole path of an Atari sweep: the Atari-100k spec cut to 2 games, 2 methods (dqn, m_dqn), 2 seeds and a budget
of seconds, run by ``torchrl_reg.sweep`` on the local executor, then reported in human-normalized scores with the
aggregates, their intervals and rliable's three figures. The same sweep on the local SLURM cluster is
tests/slurm/test_atari_report_slurm.py."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.slurm.sweep_testlib import task_env

from torchrl_reg.report.rliable_figures import FIGURES, rliable_missing
from torchrl_reg.report.summary import main as report_main
from torchrl_reg.sweep.__main__ import main as sweep_main
from torchrl_reg.sweep.task import read_sweep_file

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "benchmarks" / "atari_100k.yaml"
# 64 agent steps per run, updates from step 32, one greedy evaluation of 100 steps at the end: seconds per run.
TINY_ATARI_SWEEP = [
    "--methods", "dqn,m_dqn", "env.name=Pong,Breakout", "seed=0,1", "collector.total_frames=64",
    "optim.learning_starts=32", "buffer.size=1000", "eval.interval=64", "eval.episodes=1", "eval.max_steps=100",
    "compile=false", "num_threads=1",
]
# (random, human) of the two games, as the DQN / Rainbow / Agent57 tables give them (not read from the library).
REFERENCE = {"Pong": (-20.7, 14.6), "Breakout": (1.7, 30.5)}


def check_atari_report(sweep_dir: Path, out: str, seeds: int = 2) -> dict:
    """The report of the tiny sweep (``seeds`` runs per game and method): each run's human-normalized score from its
    own metrics.json, the four aggregates with intervals for both methods, and the figures (rliable's when it
    imports)."""
    results = json.loads((sweep_dir / "report" / "results.json").read_text())
    assert results["runs_completed"] == 4 * seeds and results["missing_or_failed"] == []
    assert results["scale"]["human"]
    expected: dict[tuple[str, str], list[float]] = {}
    for method in ("dqn", "m_dqn"):
        for task in read_sweep_file(sweep_dir / method)["tasks"]:
            metrics = json.loads((Path(task["run_dir"]) / "metrics.json").read_text())
            assert (metrics["status"], metrics["frames"], metrics["loss"]) == ("completed", 64, method)
            random, human = REFERENCE[metrics["env"]]
            expected.setdefault((metrics["env"], method), []).append((metrics["final_eval_return"] - random) / (human - random))
    rows = {(r["env"], r["method"]): r for r in results["per_env"]}
    assert set(rows) == set(expected)
    for key, hns in expected.items():
        assert rows[key]["runs"] == seeds and rows[key]["hns_mean"] == pytest.approx(sum(hns) / seeds), key
    for method in ("dqn", "m_dqn"):
        means = [sum(expected[(game, method)]) / seeds for game in ("Breakout", "Pong")]
        assert results["aggregate"][method]["Mean"][0] == pytest.approx(sum(means) / 2)
        for name, (point, low, high) in results["aggregate"][method].items():
            assert low <= point + 1e-12 and point <= high + 1e-12, (method, name)
    runs = "2 runs each" if seeds == 2 else "1 run each"
    assert results["title"] == f"Atari (2 games, {runs}), 64 agent steps (256 frames)"
    assert "IQM" in out and "aggregates over 2 games" in out and "Breakout" in out
    if rliable_missing() is None:
        assert results["figures"] == FIGURES
        for name in FIGURES.values():
            assert (sweep_dir / "report" / name).stat().st_size > 10_000
    return results


@pytest.mark.slow
def test_a_tiny_atari_sweep_runs_locally_and_reports_human_normalized_scores(tmp_path, capsys, monkeypatch):
    pytest.importorskip("ale_py", reason="the Atari games need ale-py (pip install -e '.[atari]')")
    for key, value in task_env().items():
        monkeypatch.setenv(key, value)
    sweep_dir = tmp_path / "atari"
    assert sweep_main([str(SPEC), *TINY_ATARI_SWEEP, "--executor", "local", "--parallel", "2", "--dir", str(sweep_dir)]) == 0
    capsys.readouterr()
    assert report_main([str(sweep_dir), "--metric", "final_eval_return", "--reps", "2000"]) == 0
    check_atari_report(sweep_dir, capsys.readouterr().out)
