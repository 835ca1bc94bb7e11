"""The report over run directories laid out as the recipes write them, checked against hand computations."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from torchrl_reg.report.summary import main, make_report

# final_return per (env, loss, seed)
SCORES = {
    ("CartPole-v1", "m_dqn"): [100.0, 200.0, 300.0],
    ("CartPole-v1", "dqn"): [50.0, 150.0, 250.0],
    ("Acrobot-v1", "m_dqn"): [-100.0, -90.0, -80.0],
    ("Acrobot-v1", "dqn"): [-100.0, -200.0, -300.0],
}


def _write_run(root: Path, env: str, loss: str, seed: int, status: str | None, final_return: float = math.nan) -> Path:
    run_dir = root / f"{env}-{loss}-{seed}"
    (run_dir / "csv" / "scalars" / "train").mkdir(parents=True)
    config = {"seed": seed, "run_dir": str(run_dir), "env": {"name": env}, "loss": {"name": loss, "alpha": 0.9},
              "logger": {"progress_bar": seed % 2 == 0}, "collector": {"total_frames": 300 if env == "Acrobot-v1" else 200}}
    OmegaConf.save(OmegaConf.create(config), run_dir / "config.yaml")
    if status is not None:
        metrics = {"status": status, "final_return": final_return, "eval_frames": [100, 200], "eval_returns": [1.0, 2.0]}
        (run_dir / "metrics.json").write_text(json.dumps(metrics))
    rows = [f"{f},{final_return * f / 200}" for f in (100, 200)]
    (run_dir / "csv" / "scalars" / "train" / "episode_return.csv").write_text("\n".join(rows) + "\n")
    return run_dir


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "runs"
    for (env, loss), scores in SCORES.items():
        for seed, s in enumerate(scores):
            _write_run(root, env, loss, seed, "completed", s)
    interrupted = _write_run(root, "CartPole-v1", "m_dqn", 7, "interrupted", 1.0)
    never = _write_run(root, "CartPole-v1", "dqn", 8, None)
    return root, interrupted, never


def test_tables_match_hand_computations(runs, tmp_path):
    root, interrupted, never = runs
    reference = {"CartPole-v1": (0.0, 500.0), "Acrobot-v1": (-500.0, 0.0)}
    res = make_report([root], tmp_path / "out", reference_scores=reference, reps=2000, curve_reps=200)
    assert (res["runs_expected"], res["runs_completed"]) == (14, 12)

    rows = {(r["env"], r["method"]): r for r in res["per_env"]}
    # Collector budgets differ between the envs (presets), not within one: only loss.name names a method.
    assert set(rows) == {(e, f"loss.name={m}") for e, m in SCORES}
    cart = rows[("CartPole-v1", "loss.name=m_dqn")]
    assert cart["runs"] == 3 and cart["mean"] == pytest.approx(200.0) and cart["std"] == pytest.approx(100.0)
    assert cart["iqm"][0] == pytest.approx(200.0)  # floor(0.25 * 3) = 0 runs trimmed: IQM = mean
    acro = rows[("Acrobot-v1", "loss.name=dqn")]
    assert acro["mean"] == pytest.approx(-200.0) and acro["std"] == pytest.approx(100.0)

    # Normalized: m_dqn CartPole [0.2, 0.4, 0.6], Acrobot [0.8, 0.82, 0.84]
    #             dqn   CartPole [0.1, 0.3, 0.5], Acrobot [0.8, 0.6, 0.4]
    agg = res["aggregate"]
    assert agg["loss.name=m_dqn"]["Mean"][0] == pytest.approx((0.4 + 0.82) / 2)
    assert agg["loss.name=m_dqn"]["Median"][0] == pytest.approx((0.4 + 0.82) / 2)
    # 6 pooled scores, one trimmed at each end: mean(0.4, 0.6, 0.8, 0.82)
    assert agg["loss.name=m_dqn"]["IQM"][0] == pytest.approx((0.4 + 0.6 + 0.8 + 0.82) / 4)
    assert agg["loss.name=dqn"]["Optimality gap"][0] == pytest.approx(1 - (0.3 + 0.6) / 2)
    for name, (point, low, high) in agg["loss.name=dqn"].items():
        assert low <= point <= high, name

    # P(m_dqn > dqn): CartPole, 9 pairs: 100 beats 50; 200 beats 50, 150; 300 beats all -> 6/9.
    # Acrobot: -100 ties -100 (0.5) and beats -200, -300; -90 and -80 beat all -> 8.5/9.
    (poi,) = res["probability_of_improvement"]
    assert (poi["x"], poi["y"]) == ("loss.name=dqn", "loss.name=m_dqn")
    assert poi["p"][0] == pytest.approx(1 - (6 / 9 + 8.5 / 9) / 2)

    problems = {Path(p["run_dir"]).name: p["status"] for p in res["missing_or_failed"]}
    assert problems == {interrupted.name: "interrupted", never.name: "not started"}

    out = tmp_path / "out"
    summary = (out / "summary.md").read_text()
    assert "| CartPole-v1 | loss.name=m_dqn | 3 | 200 | 100 | 200 [" in summary
    assert "12 of 14 runs completed; 2 missing or failed" in summary
    assert f"| `{interrupted}` | loss.name=m_dqn | interrupted |" in summary
    for png in ("curves_CartPole-v1.png", "curves_Acrobot-v1.png", "aggregate.png"):
        assert (out / png).stat().st_size > 0
    assert json.loads((out / "results.json").read_text())["runs_completed"] == 12


def test_default_normalization_is_min_max_per_env(runs, tmp_path):
    root, _, _ = runs
    res = make_report([root], tmp_path / "out", reps=500, curve_reps=50)
    # CartPole: all runs span [50, 300]; Acrobot: [-300, -80]
    assert res["reference"] == {"CartPole-v1": [50.0, 300.0], "Acrobot-v1": [-300.0, -80.0]}
    m = res["aggregate"]["loss.name=m_dqn"]["Mean"][0]
    assert m == pytest.approx(np.mean([(200 - 50) / 250, (-90 + 300) / 220]))


def test_command_line_and_explicit_method_keys(runs, tmp_path, capsys):
    root, interrupted, _ = runs
    ref = tmp_path / "ref.json"
    ref.write_text(json.dumps({"CartPole-v1": [0, 500], "Acrobot-v1": [-500, 0]}))
    out = tmp_path / "cli"
    assert main([str(root), "--out", str(out), "--reference-scores", str(ref), "--reps", "200",
                 "--method-keys", "loss.name,loss.alpha", "--metric", "last_eval", "--curve", "eval"]) == 0
    printed = capsys.readouterr().out
    assert "12 of 14 runs completed" in printed and f"interrupted: {interrupted}" in printed
    res = json.loads((out / "results.json").read_text())
    assert {r["method"] for r in res["per_env"]} == {"loss.name=m_dqn,loss.alpha=0.9", "loss.name=dqn,loss.alpha=0.9"}
    assert all(r["mean"] == 2.0 for r in res["per_env"])  # last evaluation return of every run
    assert res["command"].endswith(f"--curve eval")


def test_missing_reference_scores_are_named(runs, tmp_path):
    root, _, _ = runs
    with pytest.raises(ValueError, match="reference scores are missing for \\['Acrobot-v1'\\]"):
        make_report([root], tmp_path / "out", reference_scores={"CartPole-v1": (0.0, 500.0)}, reps=10, curve_reps=10)


def test_not_a_run_directory(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    assert "holds no sweep.json, no run directory (config.yaml) and no run record" in capsys.readouterr().err


def test_curve_scores_of_any_sweep(runs, tmp_path):
    """The evaluations 1 at 100 frames and 2 at 200: area (100 * (1 + 2) / 2) over 100 frames = 1.5; three
    evaluations are needed for the mean of the last three, so every run is reported as lacking it."""
    root, _, _ = runs
    res = make_report([root], tmp_path / "auc", metric="eval_auc", reps=50, curve_reps=10)
    assert res["runs_completed"] == 12 and all(r["mean"] == pytest.approx(1.5) for r in res["per_env"])
    assert "(the area under the evaluation curve divided by the frames it spans)" in (tmp_path / "auc" / "summary.md").read_text()
    res = make_report([root], tmp_path / "last3", metric="last3_eval", reps=50, curve_reps=10)
    assert res["runs_completed"] == 0
    assert sum(p["status"] == "no finite 'last3_eval' in metrics.json" for p in res["missing_or_failed"]) == 12
