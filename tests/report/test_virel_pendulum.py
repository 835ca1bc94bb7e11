"""benchmarks/virel_pendulum.py: run directories summarized, and --keep adding a run to a committed summary."""
from __future__ import annotations

import json

import yaml

from benchmarks.virel_pendulum import main


def _run(folder, seed, variant=None, evals=(), temperatures=(), status="completed"):
    """A run directory as recipes/virel.py (``variant``) or recipes/sac.py (None) leaves it."""
    loss = {"alpha_init": 1.0} if variant is None else {"variant": variant, "temperature_estimator": "replay"}
    (folder / "csv" / "scalars" / "eval").mkdir(parents=True)
    (folder / "csv" / "scalars" / "train").mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({"seed": seed, "loss": loss}))
    (folder / "csv" / "scalars" / "eval" / "return.csv").write_text("".join(f"{f},{v}\n" for f, v in evals))
    name = "alpha.csv" if variant is None else "temperature.csv"
    (folder / "csv" / "scalars" / "train" / name).write_text("".join(f"{f},{v}\n" for f, v in temperatures))
    (folder / "metrics.json").write_text(json.dumps({"status": status, "final_return": -1.0, "wall_time_s": 5.0}))


def _earlier(seeds):
    """A summary as the script wrote it before, its run directories gone."""
    def entry(method, seed, last, completed=True):
        return {"method": method, "seed": seed, "run_dir": "/gone", "sweep_command": "old", "completed": completed,
                "status": "completed" if completed else "stopped", "last_eval_frame": 20, "last_eval_return": last,
                "final_return": None, "wall_time_s": None, "eval": [[20, last]], "temperature": [[20, 0.5]]}
    runs = {"virel_em": [entry("virel_em", 0, -1216.0, completed=False), entry("virel_em", 1, -169.0)],
            "sac": [entry("sac", s, -100.0 - s) for s in seeds]}
    return {"command": "python benchmarks/virel_pendulum.py /gone", "platform": "p",
            "summary": {m: {"seeds": r} for m, r in runs.items()}}


def test_runs_summarized_by_method_with_only_finished_runs_scored(tmp_path):
    _run(tmp_path / "runs" / "a", 0, "practical", evals=[(10, -900.0), (20, -150.0)], temperatures=[(10, 1.0), (20, 0.01)])
    _run(tmp_path / "runs" / "b", 1, "practical", evals=[(10, -800.0)], status="running")
    _run(tmp_path / "runs" / "c", 0, None, evals=[(20, -170.0)], temperatures=[(20, 0.03)])
    out = tmp_path / "out"
    assert main([str(tmp_path / "runs"), "--out", str(out)]) == 0
    summary = json.loads((out / "pendulum.json").read_text())["summary"]
    assert summary["virel_practical"]["completed_seeds"] == [0]
    assert summary["virel_practical"]["completed_last_eval"] == [-150.0]
    assert [r["temperature"] for r in summary["virel_practical"]["seeds"]] == [[[10, 1.0], [20, 0.01]], []]
    assert summary["sac"]["completed_last_eval"] == [-170.0]
    assert (out / "pendulum.png").stat().st_size > 0


def test_keep_adds_a_run_and_replaces_the_one_of_the_same_method_and_seed(tmp_path):
    earlier = tmp_path / "pendulum.json"
    earlier.write_text(json.dumps(_earlier(seeds=(0, 1))))
    _run(tmp_path / "new" / "000", 0, "em", evals=[(10, -700.0), (20, -175.0)])
    out = tmp_path / "out"
    assert main([str(tmp_path / "new"), "--keep", str(earlier), "--keep", str(earlier), "--out", str(out)]) == 0
    payload = json.loads((out / "pendulum.json").read_text())
    em = payload["summary"]["virel_em"]
    # The stopped seed-0 run of the earlier summary is replaced by the new finished one; seed 1 is kept once.
    assert [(r["seed"], r["completed"], r["last_eval_return"]) for r in em["seeds"]] == [(0, True, -175.0), (1, True, -169.0)]
    assert em["completed_last_eval"] == [-175.0, -169.0]
    assert em["mean_last_eval_completed"] == -172.0
    assert payload["summary"]["sac"]["completed_last_eval"] == [-100.0, -101.0]
    assert payload["earlier_commands"] == ["python benchmarks/virel_pendulum.py /gone"]
    # Kept again, the commands accumulate in order, each once.
    again = tmp_path / "again"
    assert main([str(tmp_path / "nothing"), "--keep", str(out / "pendulum.json"), "--out", str(again)]) == 0
    payload = json.loads((again / "pendulum.json").read_text())
    assert payload["earlier_commands"] == ["python benchmarks/virel_pendulum.py /gone", " ".join(
        ["python benchmarks/virel_pendulum.py", str(tmp_path / "new"), "--keep", str(earlier), "--keep", str(earlier),
         "--out", str(out)])]
    assert [r["last_eval_return"] for r in payload["summary"]["virel_em"]["seeds"]] == [-175.0, -169.0]
