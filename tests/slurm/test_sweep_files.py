"""What a sweep refuses before submitting (unknown env ids) and how its sweep.json survives damage and moves."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tests.slurm.sweep_testlib import RECIPE, TINY

from torchrl_reg.report.summary import main as report_main
from torchrl_reg.sweep.__main__ import main
from torchrl_reg.sweep.launch import create_sweep
from torchrl_reg.sweep.spec import Recipe, SweepError, plan_tasks
from torchrl_reg.sweep.task import read_sweep_file


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["env.name=NoSuchEnv-v0"], "env.name must be a registered gymnasium id such as 'CartPole-v1', got env.name='NoSuchEnv-v0'"),
        (["env=minatar", "env.name=Pong"], "env.name must name a MinAtar game, one of .*'Breakout'.*, got env.name='Pong'"),
        (["env=atari", "env.name=NoSuchGame"], "env.name must be an ALE game such as 'Pong'"),
    ],
)
def test_unknown_env_ids_are_refused_before_submission(tmp_path, overrides, message):
    with pytest.raises(SweepError, match=message):
        plan_tasks(Recipe.from_path(RECIPE), [*overrides, *TINY], tmp_path / "sweep")


def test_the_command_refuses_an_unknown_env_and_writes_nothing(tmp_path, capsys):
    sweep_dir = tmp_path / "sweep"
    assert main([str(RECIPE), "env.name=CartPole-v1,NoSuchEnv-v0", *TINY, "--executor", "local", "--dir", str(sweep_dir)]) == 2
    assert "1 of 2 tasks are invalid" in capsys.readouterr().err
    assert not sweep_dir.exists()


def test_a_damaged_sweep_file_is_named(tmp_path, capsys):
    sweep_dir = tmp_path / "sweep"
    create_sweep(RECIPE, ["seed=0,1", *TINY], sweep_dir, "test")
    path = sweep_dir / "sweep.json"
    path.write_text(path.read_text()[:200])  # cut short, as by a full disk
    with pytest.raises(SweepError, match=f"{path} is not valid JSON"):
        read_sweep_file(sweep_dir)
    assert main(["--status", str(sweep_dir)]) == 2
    assert main(["--resume", str(sweep_dir), "--executor", "local"]) == 2
    assert report_main([str(sweep_dir)]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 3 and all(f"error: {path} is not valid JSON" in e for e in errors)

    path.write_text(json.dumps({"tasks": []}))
    with pytest.raises(SweepError, match=f"{path} lacks \\['recipe', 'submissions'\\]"):
        read_sweep_file(sweep_dir)


@pytest.mark.slow
def test_a_moved_sweep_directory_runs_and_reports_where_it_now_is(tmp_path):
    first = tmp_path / "first"
    create_sweep(RECIPE, ["seed=0,1", "collector.total_frames=640", *TINY], first, "test")
    stored = json.loads((first / "sweep.json").read_text())
    # On disk, paths inside the sweep directory are relative to it.
    assert [t["run_dir"] for t in stored["tasks"]] == ["000_seed=0", "001_seed=1"]
    assert [t["config"]["run_dir"] for t in stored["tasks"]] == ["000_seed=0", "001_seed=1"]

    moved = tmp_path / "moved"
    shutil.move(first, moved)
    tasks = read_sweep_file(moved)["tasks"]
    assert [t["run_dir"] for t in tasks] == [str(moved / "000_seed=0"), str(moved / "001_seed=1")]
    assert all(t["config"]["run_dir"] == t["run_dir"] for t in tasks)

    assert main(["--resume", str(moved), "--executor", "local"]) == 0
    assert not first.exists()
    for task in tasks:
        metrics = json.loads((Path(task["run_dir"]) / "metrics.json").read_text())
        assert metrics["status"] == "completed" and metrics["frames"] == 640
        assert Path(metrics["run_dir"]) == Path(task["run_dir"])
    submission = json.loads((moved / "sweep.json").read_text())["submissions"][0]
    assert submission["tasks"]["0"]["stdout"] == "local/0_log.out"
    assert report_main([str(moved), "--reps", "50"]) == 0
    assert json.loads((moved / "report" / "results.json").read_text())["runs_completed"] == 2
