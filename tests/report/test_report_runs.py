"""Which directories the report counts as runs, and how it labels methods."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from torchrl_reg.report.runs import ReportedRun, collect_runs, method_labels
from torchrl_reg.sweep.spec import Recipe, plan_tasks

REPO = Path(__file__).resolve().parents[2]
TINY = [
    "compile=false",
    "collector.num_envs=64",
    "collector.frames_per_batch=640",
    "collector.total_frames=640",
    "optim.learning_starts=640",
    "eval.interval=640",
    "eval.episodes=1",
    "checkpoint.interval=640",
    "logger.interval=640",
    "logger.progress_bar=false",
    "num_threads=1",
]


@pytest.mark.slow
def test_a_plain_hydra_run_directory_is_one_run(tmp_path):
    """A recipe's Hydra writes nothing in the run directory; a copy of the config at <run dir>/.hydra/config.yaml
    (what Hydra writes with hydra.output_subdir=.hydra, and what runs of older versions hold) is not a second run."""
    run_dir = tmp_path / "runs" / "r0"
    subprocess.run(
        [sys.executable, str(REPO / "recipes" / "m_dqn.py"), f"hydra.run.dir={run_dir}", *TINY],
        check=True, capture_output=True, cwd=tmp_path, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert not (run_dir / ".hydra").exists()
    (run_dir / ".hydra").mkdir()
    (run_dir / ".hydra" / "config.yaml").write_bytes((run_dir / "config.yaml").read_bytes())
    runs = collect_runs([tmp_path / "runs"])
    assert [(r.run_dir, r.status) for r in runs] == [(run_dir, "completed")]
    assert [r.run_dir for r in collect_runs([run_dir])] == [run_dir]


def _runs(recipe: str, overrides: list[str], tmp_path: Path) -> list[ReportedRun]:
    tasks, _ = plan_tasks(Recipe.from_path(REPO / "recipes" / f"{recipe}.py"), overrides, tmp_path / recipe)
    return [ReportedRun(Path(t.run_dir), recipe, t.config, "completed") for t in tasks]


def test_labels_name_the_recipe_and_the_fewest_keys_that_vary(tmp_path):
    # m_dqn, mirl and m_iqn differ in dozens of config keys (buffer, budgets, loss parameters):
    # the recipe's name tells them apart; within a recipe, the loss group's name does.
    runs = (
        _runs("m_dqn", ["loss=m_dqn,dqn", "seed=0,1"], tmp_path)
        + _runs("mirl", ["loss=mirl,sql"], tmp_path)
        + _runs("m_iqn", [], tmp_path)
    )
    assert method_labels(runs, "env.name") == [
        "m_dqn,loss.name=m_dqn", "m_dqn,loss.name=m_dqn", "m_dqn,loss.name=dqn", "m_dqn,loss.name=dqn",
        "mirl,loss.name=mirl", "mirl,loss.name=sql",
        "m_iqn",
    ]
    # One recipe alone: no recipe prefix; a swept value outside any group names itself.
    runs = _runs("m_dqn", ["optim.lr=0.001,0.0001", "seed=0,1"], tmp_path / "lr")
    assert sorted(set(method_labels(runs, "env.name"))) == ["optim.lr=0.0001", "optim.lr=0.001"]
    assert json.dumps(method_labels(runs, "env.name", ["optim.lr", "loss.name"])).count("loss.name=m_dqn") == 4


@pytest.mark.parametrize("files, status", [
    ((), "not started"),
    (("checkpoint.pt",), "started"),
    (("checkpoint.pt", "checkpoint.prev.pt"), "started"),
    # checkpoint.pt lost (e.g. removed as unreadable): the run resumes from the previous one, so it has started
    (("checkpoint.prev.pt",), "started"),
])
def test_a_run_with_a_checkpoint_to_resume_from_counts_as_started(tmp_path, files, status):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("seed: 0\nenv:\n  name: CartPole-v1\n")
    for name in files:
        (run_dir / name).write_bytes(b"")
    assert [(r.run_dir, r.status) for r in collect_runs([run_dir])] == [(run_dir, status)]


def test_an_unparsable_config_lists_its_run_as_unreadable_and_the_report_goes_on(tmp_path):
    """One damaged config.yaml is one unreadable run, not a traceback."""
    from torchrl_reg.report.summary import make_report

    good, bad = tmp_path / "good", tmp_path / "bad"
    for run_dir in (good, bad):
        run_dir.mkdir()
        (run_dir / "config.yaml").write_text("seed: 0\nenv:\n  name: CartPole-v1\n")
        (run_dir / "metrics.json").write_text(json.dumps({"status": "completed", "final_return": 10.0}))
    (bad / "config.yaml").write_text("seed: [0\nenv: {name: CartPole-v1\n")  # cut mid-write
    runs = {r.run_dir: r.status for r in collect_runs([tmp_path])}
    assert runs[good] == "completed" and runs[bad].startswith("unreadable config.yaml (")
    results = make_report([tmp_path], tmp_path / "report", reps=50, curve_reps=50)
    assert results["runs_completed"] == 1
    assert [p["run_dir"] for p in results["missing_or_failed"]] == [str(bad)]


def test_a_run_whose_metrics_say_running_but_no_process_holds_it_is_reported_as_stopped(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("seed: 0\nenv:\n  name: CartPole-v1\n")
    (run_dir / "metrics.json").write_text(json.dumps({"status": "running", "frames": 640}))  # killed (SIGKILL)
    [run] = collect_runs([run_dir])
    assert run.status.startswith("stopped without a word")


def test_the_final_score_reads_run_directories_of_both_namings_of_the_returns():
    # metrics.json names the running mean of the training episodes train_return_mean (final_return before) and the
    # last greedy evaluation final_eval_return: every metric name reads runs of both namings alike.
    from torchrl_reg.report.runs import final_score

    before = {"status": "completed", "final_return": -1149.9, "eval_returns": [-300.0, -134.2]}
    now = {"status": "completed", "train_return_mean": -1149.9, "final_eval_return": -134.2, "eval_returns": [-300.0, -134.2]}
    for metrics in (before, now):
        run = ReportedRun(Path("r"), "mdac", {}, "completed", metrics)
        assert final_score(run, "train_return_mean") == final_score(run, "final_return") == -1149.9
        assert final_score(run, "final_eval_return") == final_score(run, "last_eval") == -134.2
    assert math.isnan(final_score(ReportedRun(Path("r"), "mdac", {}, "completed", {"eval_returns": []}), "final_eval_return"))


def _two_runs(root: Path) -> None:
    for name, score in (("a", 10.0), ("b", 12.0)):
        run_dir = root / name
        run_dir.mkdir(parents=True)
        (run_dir / "config.yaml").write_text("seed: 0\nenv:\n  name: CartPole-v1\n")
        (run_dir / "metrics.json").write_text(json.dumps({"status": "completed", "final_return": score}))


def test_a_stray_invalid_json_under_the_tree_is_skipped_with_a_warning_naming_it(tmp_path, caplog):
    """One half-written JSON anywhere under the folder aborted the whole report."""
    import logging

    from torchrl_reg.report.summary import make_report

    _two_runs(tmp_path / "runs")
    stray = tmp_path / "runs" / "notes" / "draft.json"
    stray.parent.mkdir()
    stray.write_text('{"method": "m_dqn", ')  # cut short
    with caplog.at_level(logging.WARNING):
        results = make_report([tmp_path / "runs"], tmp_path / "out", reps=50, curve_reps=50)
    assert results["runs_completed"] == 2
    assert f"skipping {stray}: {stray} is not valid JSON" in caplog.text
    with pytest.raises(ValueError, match="is not valid JSON"):  # named on the command line: an error, as before
        collect_runs([stray])


@pytest.mark.parametrize("planted", ["report", "report/summary.md", "report/results.json.tmp"])
def test_the_report_never_writes_through_a_symlink_in_the_directory_it_reports(tmp_path, capsys, plant_symlink, planted):
    """``python -m torchrl_reg.report DIR`` writes DIR/report/...: a downloaded DIR whose report (or a file in
    it) is a symlink would have it write outside DIR."""
    from torchrl_reg.report.summary import main

    data, outside = tmp_path / "downloaded", tmp_path / "outside"
    _two_runs(data)
    target = plant_symlink(data, planted, folder=planted == "report")
    assert main([str(data), "--reps", "50"]) == 2
    assert f"error: {data / planted} is a symlink inside {data}" in capsys.readouterr().err
    assert sorted(p.name for p in outside.rglob("*")) == ["victim"]
    assert target.is_dir() or target.read_text() == "precious\n"
    main([str(data), "--reps", "50", "--out", str(tmp_path / "elsewhere")])  # an output folder the user names
    assert (tmp_path / "elsewhere" / "summary.md").is_file()


def _completed(tmp_path, name, overrides, recipe="recipes/mdac.py"):
    run_dir = tmp_path / "runs" / name
    run_dir.mkdir(parents=True)
    return ReportedRun(run_dir, "mdac", {"env": {"name": "HalfCheetah-v5"}, "seed": 0}, "completed", metrics={"final_return": 1.0},
               recipe_path=recipe, overrides=tuple(overrides))


def test_a_record_of_another_run_under_the_same_name_is_refused_before_anything_is_written(tmp_path):
    """Two methods of a spec reported one at a time are labelled by the key they vary alone, so the second would
    take the first's file name: refused, naming what differs, and the first record is kept as it was."""
    from torchrl_reg.report.runs import write_records

    records = tmp_path / "records"
    bounded = _completed(tmp_path, "a", ["loss=mdac", "policy.scale_lb=0.1"])
    [path] = write_records([bounded], ["policy.scale_lb=0.1"], records)
    before = path.read_text()
    assert write_records([bounded], ["policy.scale_lb=0.1"], records) == [path]  # the same run again: replaced
    unbounded = _completed(tmp_path, "b", ["loss=mdac_unbounded", "policy.scale_lb=0.1"])
    other = _completed(tmp_path, "c", ["loss=mdac_unbounded", "policy.scale_lb=0.1"])
    with pytest.raises(ValueError, match=r"another run \(overrides: .*'loss=mdac'.* there, .*'loss=mdac_unbounded'.* now\)"):
        write_records([other, unbounded], ["x", "policy.scale_lb=0.1"], records)
    assert path.read_text() == before and not (records / "x_HalfCheetah-v5_seed0.json").exists()  # nothing written
    # The same overrides in another order are the same run.
    reordered = _completed(tmp_path, "d", ["policy.scale_lb=0.1", "loss=mdac"], recipe="/elsewhere/recipes/mdac.py")
    assert write_records([reordered], ["policy.scale_lb=0.1"], records) == [path]  # and the recipe from another checkout
    sac = _completed(tmp_path, "e", ["loss=mdac", "policy.scale_lb=0.1"], recipe="recipes/sac.py")
    with pytest.raises(ValueError, match="recipe: '/elsewhere/recipes/mdac.py' there, 'recipes/sac.py' now"):
        write_records([sac], ["policy.scale_lb=0.1"], records)


def test_bombs_and_special_files_under_a_report_tree_are_named_runs_or_skipped_never_read_without_bound(tmp_path, caplog):
    """A config.yaml of YAML "billion laughs" grew the report past 1.5 GB, a deep metrics.json raised RecursionError,
    a FIFO metrics.json blocked it and a stray notes.json linked to /dev/zero was read until killed."""
    import logging
    import os

    _two_runs(tmp_path / "runs")
    laughs, deep, fifo = (tmp_path / "runs" / name for name in ("laughs", "deep", "fifo"))
    for run_dir in (laughs, deep, fifo):
        run_dir.mkdir()
        (run_dir / "config.yaml").write_text("seed: 0\nenv:\n  name: CartPole-v1\n")
    (laughs / "config.yaml").write_text("a: &a [lol, lol]\nb: &b [*a, *a]\nc: [*b, *b]\n")
    (deep / "metrics.json").write_text("[" * 100_000 + "]" * 100_000)
    os.mkfifo(fifo / "metrics.json")
    (tmp_path / "runs" / "notes.json").symlink_to("/dev/zero")
    with caplog.at_level(logging.WARNING):
        runs = {r.run_dir: r.status for r in collect_runs([tmp_path / "runs"])}
    assert runs[tmp_path / "runs" / "a"] == runs[tmp_path / "runs" / "b"] == "completed"
    assert runs[laughs].startswith("unreadable config.yaml (FileRefused:") and "YAML alias (*a)" in runs[laughs]
    assert runs[deep].startswith("unreadable metrics.json (") and "nest more than 100 deep" in runs[deep]
    assert runs[fifo] == f"unreadable metrics.json ({fifo / 'metrics.json'} is a FIFO, not a regular file: a run or " \
        "sweep directory holds only regular files, and reading or writing this one could block or never end. Remove " \
        "it (or replace it by the file it stands for))"
    assert f"skipping {tmp_path / 'runs' / 'notes.json'}: {tmp_path / 'runs' / 'notes.json'} is a symlink" in caplog.text


def test_results_on_a_full_disk_keep_the_earlier_file_whole_and_name_the_bytes_and_free_space(tmp_path, monkeypatch, capsys):
    """``report --results`` over an existing RESULTS.md on a full filesystem left the cut new text and a bare OSError."""
    import errno
    import os

    from torchrl_reg.report import results_md
    from torchrl_reg.report.summary import main

    out = tmp_path / "RESULTS.md"
    out.write_text("# the earlier results\n")
    text = "# Results\n" + "row\n" * 3000
    monkeypatch.setattr(results_md, "results_files", lambda spec: {"RESULTS.md": text})
    real_write, room = os.write, [4096]

    def full_after_4096(fd, data):  # as a filesystem that fills: a short write, then ENOSPC
        if room[0] == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        wrote = real_write(fd, bytes(data)[:room[0]])
        room[0] -= wrote
        return wrote

    monkeypatch.setattr(os, "write", full_after_4096)
    assert main(["--results", "spec.yaml", "--out", str(out)]) == 1
    monkeypatch.setattr(os, "write", real_write)
    [error] = capsys.readouterr().err.splitlines()
    assert error.startswith(f"error: [Errno {errno.ENOSPC}] No space left on device: writing {out} stopped after 4096 "
                            f"bytes, about {len(text)} bytes in all (") and "free on that filesystem" in error
    assert out.read_text() == "# the earlier results\n" and sorted(p.name for p in tmp_path.iterdir()) == ["RESULTS.md"]
    assert main(["--results", "spec.yaml", "--out", str(out)]) == 0 and out.read_text() == text
