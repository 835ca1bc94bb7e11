"""Names read from a sweep directory reach the terminal escaped (or are refused), a NUL in a run directory is one
clear refusal, and the local sweep driver stopped by a signal exits 75, as its tasks do."""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tests.slurm.sweep_testlib import RECIPE, TINY, task_env, wait_for

from torchrl_reg.run.stop import EXIT_INTERRUPTED
from torchrl_reg.sweep.__main__ import main
from torchrl_reg.sweep.launch import create_sweep
from torchrl_reg.sweep.spec import Recipe, SweepError, plan_tasks
from torchrl_reg.sweep.task import read_sweep_file


@pytest.fixture(scope="module")
def made_sweep(tmp_path_factory):
    sweep_dir = tmp_path_factory.mktemp("made") / "sweep"
    create_sweep(RECIPE, ["seed=0", *TINY, "collector.total_frames=640000"], sweep_dir, "test")
    return sweep_dir


def _copy_with(source: Path, target: Path, edit) -> Path:
    shutil.copytree(source, target)
    stored = json.loads((target / "sweep.json").read_text())
    edit(stored)
    (target / "sweep.json").write_text(json.dumps(stored))
    return target


def _no_raw_control(text: str) -> bool:
    """Nothing in ``text`` but printable characters and the lines' own newlines."""
    return all(c.isprintable() or c == "\n" for c in text)


def test_a_bidi_override_in_a_task_name_is_refused_and_printed_escaped(made_sweep, tmp_path, capsys):
    def plant(stored):
        stored["tasks"][0]["name"] = "000_seed=0\u202egpj.exe"

    sweep_dir = _copy_with(made_sweep, tmp_path / "sweep", plant)
    with pytest.raises(SweepError, match=r"holds the control character '\\u202e'"):
        read_sweep_file(sweep_dir)
    assert main(["--status", str(sweep_dir)]) == 2
    err = capsys.readouterr().err
    assert "\\u202e" in err and _no_raw_control(err)


def test_a_config_key_with_escape_sequences_is_printed_escaped(made_sweep, tmp_path, capsys):
    """ESC[2J in a key cleared the screen through the refusal that named it, and its newline added a line."""
    key = "x\x1b[2J\nfake: line"

    def plant(stored):
        stored["tasks"][0]["config"][key] = "${seed}"

    sweep_dir = _copy_with(made_sweep, tmp_path / "sweep", plant)
    assert main(["--status", str(sweep_dir)]) == 2
    err = capsys.readouterr().err
    assert "config.x\\x1b[2J\\nfake: line holds an interpolation" in err
    assert _no_raw_control(err) and len(err.strip().splitlines()) == 1

    def edited(stored):
        stored["tasks"][0]["config"][key] = 1  # not what the overrides compose to

    sweep_dir = _copy_with(made_sweep, tmp_path / "edited", edited)
    assert main(["--resume", str(sweep_dir), "--executor", "local"]) == 2
    err = capsys.readouterr().err
    assert "config.x\\x1b[2J\\nfake: line is 1, the overrides give '<absent>'" in err and _no_raw_control(err)
    assert not (sweep_dir / "local").exists()


def test_a_nul_in_a_tasks_config_run_dir_is_refused_clearly(made_sweep, tmp_path, capsys):
    """It was ``ValueError: embedded null byte``, a traceback."""
    def plant(stored):
        stored["tasks"][0]["config"]["run_dir"] += "\x00x"

    sweep_dir = _copy_with(made_sweep, tmp_path / "sweep", plant)
    assert main(["--status", str(sweep_dir)]) == 2
    err = capsys.readouterr().err
    assert "task 0: config.run_dir" in err and "holds the control character '\\x00'" in err and _no_raw_control(err)


def test_a_nul_in_run_dir_is_refused_by_the_recipes_validation(tmp_path):
    module = Recipe.from_path(RECIPE).module()
    with pytest.raises(ValueError, match=r"run_dir must be a path of printable characters, .* it holds a NUL"):
        module.validate({"run_dir": str(tmp_path / "a\x00b")})
    with pytest.raises(ValueError, match=r"it holds the control character '\\x1b'"):
        module.validate({"run_dir": str(tmp_path / "a\x1bb")})
    assert not list(tmp_path.iterdir())
    with pytest.raises(SweepError, match="run_dir must be a path of printable characters"):
        plan_tasks(Recipe.from_path(RECIPE), ["seed=0", *TINY], tmp_path / "new\nline")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_the_local_driver_stopped_by_a_signal_exits_75(made_sweep, tmp_path, sig):
    """SIGINT (Ctrl-C): tests/slurm/test_sweep_local.py::test_local_sweep_ctrl_c_resume_and_report."""
    sweep_dir = tmp_path / "sweep"
    shutil.copytree(made_sweep, sweep_dir)
    task = read_sweep_file(sweep_dir)["tasks"][0]
    run_dir = Path(task["run_dir"])
    driver = subprocess.Popen([sys.executable, "-m", "torchrl_reg.sweep", "--resume", str(sweep_dir), "--executor", "local"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=task_env())
    # The task is in its training loop (its handlers installed) once it has checkpointed.
    wait_for(lambda: (run_dir / "checkpoint.pt").exists() or driver.poll() is not None, 240, "the task to checkpoint")
    assert driver.poll() is None
    driver.send_signal(sig)
    out, _ = driver.communicate(timeout=240)
    assert driver.returncode == EXIT_INTERRUPTED, out
    assert f"task {task['name']}: interrupted" in out
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "interrupted"
