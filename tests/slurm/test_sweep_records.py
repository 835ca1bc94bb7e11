"""A sweep's names stay inside it, its sweep.json has one creator, and each task is believed by its run's own record.

Each case asserts the refusal and that the files it concerns are byte-identical afterwards: ``.``/``..`` and hidden
method or task names, two creations of one sweep at once, two task directories swapped, a sweep directory replaced
under its driver, and two drivers running one sweep (``done elsewhere``, not ``failed``).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from tests.slurm.sweep_testlib import RECIPE, TINY, copy_sweep_with, task_env

from torchrl_reg.report.summary import main as report_main
from torchrl_reg.run.rundir import lock_run_dir, release_run_dir
from torchrl_reg.sweep import launch
from torchrl_reg.sweep.__main__ import main
from torchrl_reg.sweep.launch import MISMATCH, create_sweep, run_local, sweep_status, unfinished_tasks
from torchrl_reg.sweep.spec import SweepError, load_sweep_spec
from torchrl_reg.sweep.task import SWEEP_DIR_ID, folder_id, held_sweep_dir, read_sweep_file, sweep_dir_replaced


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (or ``root`` itself) with its bytes: what "byte-identical" compares."""
    root = Path(root)
    if root.is_file():
        return {root.name: root.read_bytes()}
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory):
    """A sweep of two tasks (m_dqn and dqn) whose runs are written as the recipe writes its record: each task's
    config.yaml (its config) and a completed metrics.json, no training (the records are what is tested)."""
    sweep_dir = tmp_path_factory.mktemp("finished") / "sweep"
    create_sweep(RECIPE, ["loss=m_dqn,dqn", "seed=0", *TINY, "collector.total_frames=640"], sweep_dir, "test")
    for task, score in zip(read_sweep_file(sweep_dir)["tasks"], (100.0, 10.0)):
        run_dir = Path(task["run_dir"])
        run_dir.mkdir()
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(task["config"])))
        (run_dir / "metrics.json").write_text(json.dumps({"status": "completed", "train_return_mean": score,
                                                          "eval_frames": [640], "eval_returns": [score]}))
    return sweep_dir


@pytest.mark.parametrize("name", [".", "..", ".hidden"])
def test_a_dot_or_hidden_method_name_is_refused_dry_run_too_and_nothing_is_written(tmp_path, capsys, name):
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"methods: {{'{name}': {{recipe: {RECIPE}}}}}\n")
    with pytest.raises(SweepError, match=f"method name '{name}' may not start with '.'"):
        load_sweep_spec(spec)
    before = _tree(tmp_path)
    for extra in (["--dry-run"], []):
        assert main([str(spec), *TINY, "--executor", "local", "--dir", str(tmp_path / "s"), *extra]) == 2
        assert "may not start with '.'" in capsys.readouterr().err
    assert _tree(tmp_path) == before and not (tmp_path / "s").exists()


@pytest.mark.parametrize("name, run_dir, message", [
    ("..", "..", "may not start with '.'"),
    (".", ".", "may not start with '.'"),
    ("000_x", ".", "is the sweep directory itself"),
    ("000_x", "local", "one of its own entries"),
    ("000_x", ".hidden/run", "is a hidden folder"),
])
def test_a_task_named_or_placed_at_dot_dot_is_refused_in_sweep_json(finished_sweep, tmp_path, capsys, name, run_dir, message):
    def plant(stored):
        stored["tasks"][0]["name"] = name
        stored["tasks"][0]["run_dir"] = stored["tasks"][0]["config"]["run_dir"] = run_dir

    sweep_dir = copy_sweep_with(finished_sweep, tmp_path / "sweep", plant)
    with pytest.raises(SweepError, match=message):
        read_sweep_file(sweep_dir)
    before = _tree(tmp_path)
    assert main(["--status", str(sweep_dir)]) == 2
    assert main(["--resume", str(sweep_dir), "--executor", "local"]) == 2
    assert report_main([str(sweep_dir)]) == 2
    assert message in capsys.readouterr().err
    assert _tree(tmp_path) == before


def test_of_two_identical_creations_at_once_the_second_is_refused_and_the_first_kept_whole(tmp_path, monkeypatch):
    """Both passed "already holds a sweep" before either wrote; the later write replaced the earlier's sweep.json
    (its submission lost). The check is made again under sweep.lock: here the other creator writes its sweep.json
    between this one's first check and its write, as a concurrent command does."""
    sweep_dir = tmp_path / "sweep"
    planned = launch.plan_tasks

    def plan_then_the_other_creates(recipe, overrides, where):
        result = planned(recipe, overrides, where)
        monkeypatch.setattr(launch, "plan_tasks", planned)  # the other command plans as usual
        create_sweep(RECIPE, overrides, sweep_dir, "the other command")
        return result

    monkeypatch.setattr(launch, "plan_tasks", plan_then_the_other_creates)
    with pytest.raises(SweepError, match="already holds a sweep \\(made meanwhile by another command\\)"):
        create_sweep(RECIPE, ["seed=0", *TINY], sweep_dir, "this command")
    first = (sweep_dir / "sweep.json").read_bytes()
    assert json.loads(first)["command"] == "the other command"
    monkeypatch.undo()
    with pytest.raises(SweepError, match="already holds a sweep"):
        create_sweep(RECIPE, ["seed=0", *TINY], sweep_dir, "a third")
    assert (sweep_dir / "sweep.json").read_bytes() == first


def test_two_swapped_task_directories_are_flagged_never_counted_under_the_other_name(finished_sweep, tmp_path, capsys):
    sweep_dir = tmp_path / "sweep"
    shutil.copytree(finished_sweep, sweep_dir)
    a, b = (Path(t["run_dir"]) for t in read_sweep_file(sweep_dir)["tasks"])
    a.rename(tmp_path / "x")
    b.rename(a)
    (tmp_path / "x").rename(b)
    rows = sweep_status(sweep_dir)
    assert [r["status"] for r in rows] == [MISMATCH, MISMATCH]
    assert "loss.name: 'dqn' in config.yaml, 'm_dqn' in sweep.json" in rows[0]["mismatch"]
    assert unfinished_tasks(sweep_dir) == ([], [])  # never run again over the other task's run

    before = _tree(sweep_dir)
    assert main(["--status", str(sweep_dir)]) == 1
    out = capsys.readouterr().out
    assert "2 config mismatch" in out and "holds the run of another config" in out
    assert _tree(sweep_dir) == before

    out_dir = tmp_path / "report"
    assert report_main([str(sweep_dir), "--out", str(out_dir), "--reps", "100"]) == 0
    results = json.loads((out_dir / "results.json").read_text())
    assert results["runs_completed"] == 0 and results["per_env"] == []  # dqn's 10.0 is never m_dqn's
    assert all(p["status"].startswith("config mismatch") for p in results["missing_or_failed"])


def test_an_unswapped_sweep_agrees_with_its_records(finished_sweep):
    assert [(r["status"], r["mismatch"]) for r in sweep_status(finished_sweep)] == [("completed", None)] * 2


def test_a_task_started_in_another_folder_than_its_driver_holds_is_refused(finished_sweep, tmp_path):
    """The sweep directory replaced by a link to another sweep between the driver's check and the task's start: the
    task finds another folder than the one its driver holds, and runs nothing of it."""
    sweep_dir = tmp_path / "sweep"
    other = tmp_path / "other"
    shutil.copytree(finished_sweep, sweep_dir)
    shutil.copytree(finished_sweep, other)
    for task in read_sweep_file(other)["tasks"]:  # the other sweep's tasks are still to run
        (Path(task["run_dir"]) / "metrics.json").unlink()
    with held_sweep_dir(sweep_dir) as fd:
        held = folder_id(fd)
        sweep_dir.rename(tmp_path / "moved")
        sweep_dir.symlink_to(other)
        assert sweep_dir_replaced(sweep_dir, fd)
        before = _tree(other)
        proc = subprocess.run([sys.executable, "-P", "-m", "torchrl_reg.sweep.task", str(sweep_dir), "0"],
                              capture_output=True, text=True, env=task_env() | {SWEEP_DIR_ID: held}, timeout=300)
    assert proc.returncode != 0 and "is no longer the one its driver started the task in" in proc.stderr
    assert _tree(other) == before


def test_a_folder_held_below_a_held_sweep_directory_is_opened_from_its_descriptor(tmp_path):
    from torchrl_reg.run.files import hold_folder, release_folder, write_atomic

    sweep_dir, other = tmp_path / "sweep", tmp_path / "other"
    (sweep_dir / "task").mkdir(parents=True)
    (other / "task").mkdir(parents=True)
    with held_sweep_dir(sweep_dir):
        sweep_dir.rename(tmp_path / "moved")
        sweep_dir.symlink_to(other)
        hold_folder(sweep_dir / "task")
        try:
            write_atomic(sweep_dir / "task" / "metrics.json", "{}")
        finally:
            release_folder(sweep_dir / "task")
    assert (tmp_path / "moved" / "task" / "metrics.json").read_text() == "{}"
    assert not (other / "task" / "metrics.json").exists()


def test_tasks_another_driver_ran_or_runs_are_done_elsewhere_not_failed(finished_sweep, tmp_path, capsys):
    """Two --resume drivers at once: each printed "failed (exit 1)" for the tasks the other ran, and exited 1."""
    sweep_dir = tmp_path / "sweep"
    shutil.copytree(finished_sweep, sweep_dir)
    tasks = read_sweep_file(sweep_dir)["tasks"]
    (Path(tasks[1]["run_dir"]) / "metrics.json").unlink()  # task 1 is being run by the other driver
    lock_run_dir(tasks[1]["run_dir"])
    try:
        codes = run_local(sweep_dir, [0, 1])
    finally:
        release_run_dir(tasks[1]["run_dir"])
    printed = capsys.readouterr().out
    assert dict(codes) == {0: 0, 1: 0} and codes.elsewhere == {0, 1} and codes.refused is None
    assert printed.count("done elsewhere") == 2 and "failed" not in printed
    assert not any((sweep_dir / "local").glob("*_log.err")) or all(
        p.read_text() == "" for p in (sweep_dir / "local").glob("*_log.err"))


def test_the_command_exits_0_when_the_other_driver_completed_every_task(finished_sweep, tmp_path, capsys, monkeypatch):
    """--resume finds task 1 unfinished; by the time its turn comes another driver has completed it."""
    sweep_dir = tmp_path / "sweep"
    shutil.copytree(finished_sweep, sweep_dir)
    metrics = Path(read_sweep_file(sweep_dir)["tasks"][1]["run_dir"]) / "metrics.json"
    completed = metrics.read_bytes()
    metrics.unlink()
    found = launch.unfinished_tasks

    def found_then_completed_elsewhere(where):
        result = found(where)
        metrics.write_bytes(completed)
        return result

    monkeypatch.setattr("torchrl_reg.sweep.__main__.unfinished_tasks", found_then_completed_elsewhere)
    assert main(["--resume", str(sweep_dir), "--executor", "local"]) == 0
    out = capsys.readouterr().out
    assert "done elsewhere" in out and "failed" not in out and "2 completed" in out


def test_the_local_driver_starts_nothing_in_a_replaced_sweep_directory(finished_sweep, tmp_path):
    sweep_dir, other = tmp_path / "sweep", tmp_path / "other"
    shutil.copytree(finished_sweep, sweep_dir)
    shutil.copytree(finished_sweep, other)
    for task in read_sweep_file(other)["tasks"]:
        (Path(task["run_dir"]) / "metrics.json").unlink()
    before = _tree(other)
    real = launch.read_sweep_file

    def read_then_replaced(where):
        sweep = real(where)
        if not sweep_dir.is_symlink():
            sweep_dir.rename(tmp_path / "moved")
            sweep_dir.symlink_to(other)
        return sweep

    launch.read_sweep_file = read_then_replaced
    try:
        codes = run_local(sweep_dir, [0, 1])
    finally:
        launch.read_sweep_file = real
    assert codes.refused is not None and "was replaced while the sweep ran" in codes.refused and not dict(codes)
    assert _tree(other) == before
    assert os.path.islink(sweep_dir)


def test_records_into_the_sweeps_own_sweep_json_are_refused_before_the_report(finished_sweep, tmp_path, capsys):
    """``report S --records S/sweep.json`` wrote the report, then failed with a FileExistsError traceback."""
    sweep_dir = tmp_path / "sweep"
    shutil.copytree(finished_sweep, sweep_dir)
    before = _tree(sweep_dir)
    assert report_main([str(sweep_dir), "--records", str(sweep_dir / "sweep.json"), "--reps", "100"]) == 2
    err = capsys.readouterr().err
    assert "sweep.json is a file, not a folder" in err and err.count("\n") == 1
    assert _tree(sweep_dir) == before and not (sweep_dir / "report").exists()
