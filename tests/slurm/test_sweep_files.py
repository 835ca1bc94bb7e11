"""What a sweep refuses before submitting (unknown env ids) and how its sweep.json survives damage and moves."""
from __future__ import annotations

import json
import re
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
    with pytest.raises(SweepError, match=f"{path} is damaged: it lacks \\['recipe', 'submissions'\\]"):
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


# -- a sweep directory is data, never code ------------------------------------------------------------


@pytest.fixture(scope="module")
def one_task_sweep(tmp_path_factory):
    sweep_dir = tmp_path_factory.mktemp("made") / "sweep"
    create_sweep(RECIPE, ["seed=0", *TINY], sweep_dir, "test")
    return sweep_dir


def _copy_with(source: Path, target: Path, edit) -> Path:
    shutil.copytree(source, target)
    stored = json.loads((target / "sweep.json").read_text())
    edit(stored)
    (target / "sweep.json").write_text(json.dumps(stored))
    return target


def test_resume_never_imports_a_recipe_the_sweep_file_names(one_task_sweep, tmp_path, capsys):
    """A crafted sweep.json naming a script shipped inside the sweep directory: --resume refuses it
    with the reason and imports nothing; naming a recipe by hand must match the recorded name."""
    marker = tmp_path / "payload_ran"
    sweep_dir = tmp_path / "sweep"

    def plant(stored):
        stored["recipe"] = str(sweep_dir / "evil.py")

    _copy_with(one_task_sweep, sweep_dir, plant)
    (sweep_dir / "evil.py").write_text(f"open({str(marker)!r}, 'w')\ndef train(cfg):\n    return {{}}\n")
    (sweep_dir / "conf").mkdir()
    (sweep_dir / "conf" / "evil.yaml").write_text("seed: 0\n")
    assert main(["--resume", str(sweep_dir), "--executor", "local"]) == 2
    err = capsys.readouterr().err
    assert f"names the recipe '{sweep_dir / 'evil.py'}', which is not one of the project's recipes" in err
    assert "--resume does not import a script it names" in err
    assert main(["--resume", str(sweep_dir), str(RECIPE), "--executor", "local"]) == 2
    assert "the sweep was made with the recipe evil.py, not m_dqn.py" in capsys.readouterr().err
    assert not marker.exists() and not (sweep_dir / "local").exists()


def test_a_recipe_outside_the_project_runs_only_when_named(tmp_path):
    from torchrl_reg.sweep.task import PROJECT_RECIPES, sweep_recipe

    own = tmp_path / "mine" / "m_dqn.py"  # the user's own copy, with the project recipe's name
    (own.parent / "conf").mkdir(parents=True)
    own.write_text("def train(cfg):\n    return {}\n")
    (own.parent / "conf" / "m_dqn.yaml").write_text("seed: 0\n")
    with pytest.raises(SweepError, match="not one of the project's recipes"):
        sweep_recipe({"recipe": str(own)})
    assert sweep_recipe({"recipe": str(own)}, own).path == own
    assert sweep_recipe({"recipe": str(RECIPE)}).path == PROJECT_RECIPES / "m_dqn.py" == RECIPE


@pytest.mark.parametrize("field", ["run_dir", "config.run_dir"])
@pytest.mark.parametrize("where", ["../escaped_0", "/tmp/escaped_0"])
def test_a_task_directory_outside_the_sweep_directory_is_refused(one_task_sweep, tmp_path, capsys, field, where):
    sweep_dir = tmp_path / "sweep"

    def escape(stored):
        task = stored["tasks"][0]
        if field == "run_dir":
            task["run_dir"] = task["config"]["run_dir"] = where
        else:
            task["config"]["run_dir"] = where  # the directory the recipe would really write to

    _copy_with(one_task_sweep, sweep_dir, escape)
    with pytest.raises(SweepError, match=rf"task 0: {field} '{where}' is not inside the sweep directory"):
        read_sweep_file(sweep_dir)
    assert main(["--resume", str(sweep_dir), "--executor", "local"]) == 2
    assert "every task's run directory must be inside" in capsys.readouterr().err
    assert not (tmp_path / "escaped_0").exists() and not (sweep_dir / "local").exists()


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda s: s.update(tasks={"0": s["tasks"][0]}), "'tasks' must be a list, got dict"),
        (lambda s: s["tasks"][0].pop("config"), "task 0: 'config' must be a dict, got '<absent>'"),
        (lambda s: s["tasks"][0].update(run_dir=None), "task 0: 'run_dir' must be a str, got None"),
        (lambda s: s["tasks"].__setitem__(0, 7), "task 0 must be a mapping, got 7"),
        (lambda s: s["tasks"][0].update(index=3), "task 0 has index 3"),
        (lambda s: s.update(submissions=[{"executor": "local", "tasks": None}]), "'submissions' must be a list of mappings"),
        (lambda s: s.update(recipe=None), "'recipe' must be a path string, got None"),
    ],
)
def test_a_structurally_damaged_sweep_file_gives_a_clear_error(one_task_sweep, tmp_path, capsys, damage, message):
    sweep_dir = _copy_with(one_task_sweep, tmp_path / "sweep", damage)
    with pytest.raises(SweepError, match=re.escape(message)):
        read_sweep_file(sweep_dir)
    for command in (["--status", str(sweep_dir)], ["--resume", str(sweep_dir), "--executor", "local"]):
        assert main(command) == 2
    assert report_main([str(sweep_dir)]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 3 and all(e.startswith(f"error: {sweep_dir / 'sweep.json'} is damaged") for e in errors)


@pytest.mark.parametrize(
    "recipe, env_names, message",
    [
        ("m_dqn.py", "CartPole-v1,Pendulum-v1", "env.name='Pendulum-v1': this recipe needs a discrete action space"),
        ("sac.py", "Pendulum-v1,CartPole-v1", "env.name='CartPole-v1': this recipe needs a Box action space"),
        ("sql.py", "Pendulum-v1,CartPole-v1", "env.name='CartPole-v1': this recipe needs a Box action space"),
    ],
)
def test_an_action_space_the_recipe_cannot_use_is_refused_when_the_sweep_is_made(tmp_path, recipe, env_names, message):
    """Checked for every task before submission, not when the run starts."""
    with pytest.raises(SweepError, match=rf"1 of 2 tasks are invalid:\n  - task 1 \(env.name=\S+\): {re.escape(message)}"):
        plan_tasks(Recipe.from_path(RECIPE.parent / recipe), [f"env.name={env_names}"], tmp_path / "sweep")


# -- a sweep directory is data all the way down: no symlink, no interpolation, no import from the working directory


def test_a_symlinked_log_folder_or_run_directory_is_refused_and_nothing_is_written_through_it(one_task_sweep, tmp_path, capsys):
    """local/<i>_log.out was opened by path: a downloaded sweep directory's ``local -> ~/.local/lib/.../site-packages``
    received the task's log lines (a .pth file there runs at Python's next start)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    sweep_dir = tmp_path / "sweep"
    shutil.copytree(one_task_sweep, sweep_dir)
    (sweep_dir / "local").symlink_to(outside)
    assert main(["--resume", str(sweep_dir), "--executor", "local"]) == 2
    assert f"{sweep_dir / 'local'} is a symlink inside {sweep_dir}" in capsys.readouterr().err
    (sweep_dir / "local").unlink()
    run_dir = Path(read_sweep_file(sweep_dir)["tasks"][0]["run_dir"])
    (sweep_dir / "elsewhere").mkdir()
    run_dir.symlink_to(sweep_dir / "elsewhere")  # a run directory pointing elsewhere, even inside the sweep
    with pytest.raises(SweepError, match=re.escape(f"{run_dir} is a symlink inside {sweep_dir}")):
        read_sweep_file(sweep_dir)
    assert not list(outside.iterdir()) and not list((sweep_dir / "elsewhere").iterdir())


@pytest.mark.parametrize("field", ["override", "name"])
def test_a_newline_in_a_task_override_or_name_is_refused(one_task_sweep, tmp_path, capsys, field):
    """Printed into the task's log unvalidated, a newline put a line of the file's choosing into the log."""
    def plant(stored):
        task = stored["tasks"][0]
        if field == "override":
            task["overrides"].append("seed=0\nimport os; os.system('touch pwned')")
        else:
            task["name"] += "\nimport os"

    sweep_dir = _copy_with(one_task_sweep, tmp_path / "sweep", plant)
    with pytest.raises(SweepError, match=r"holds the control character '\\n'"):
        read_sweep_file(sweep_dir)
    assert main(["--resume", str(sweep_dir), "--executor", "local"]) == 2
    assert not (sweep_dir / "local").exists()

    def two_in_one(stored):
        stored["tasks"][0]["overrides"] = ["seed=0,1"]

    other = _copy_with(one_task_sweep, tmp_path / "other", two_in_one)
    with pytest.raises(SweepError, match=r"override 'seed=0,1' is not one key=value override"):
        read_sweep_file(other)


def test_an_interpolated_run_dir_is_refused(one_task_sweep, tmp_path, capsys):
    """The containment check ran on the literal string and the task resolved it: it trained in ../escaped."""
    def plant(stored):
        config = stored["tasks"][0]["config"]
        config["run_dir"] = "${logger.project}"
        config["logger"]["project"] = str(tmp_path / "escaped")

    sweep_dir = _copy_with(one_task_sweep, tmp_path / "sweep", plant)
    with pytest.raises(SweepError, match=r"task 0: config.run_dir holds an interpolation"):
        read_sweep_file(sweep_dir)
    assert main(["--resume", str(sweep_dir), "--executor", "local"]) == 2
    assert main(["--status", str(sweep_dir)]) == 2
    assert not (tmp_path / "escaped").exists()


def test_a_task_config_stripped_of_keys_is_refused(one_task_sweep, tmp_path, capsys):
    """It trained the schema's defaults (500,000 frames) while its log showed the recorded overrides."""
    from torchrl_reg.sweep.task import SweepTask

    def strip(stored):
        del stored["tasks"][0]["config"]["collector"]

    sweep_dir = _copy_with(one_task_sweep, tmp_path / "sweep", strip)
    assert main(["--resume", str(sweep_dir), "--executor", "local"]) == 2
    err = capsys.readouterr().err
    assert "sweep.json records task configs that their overrides do not compose to" in err
    assert "task 0 (seed=0 " in err and "config.collector.num_envs is '<absent>', the overrides give 64" in err
    with pytest.raises(SweepError, match="config.collector.frames_per_batch is '<absent>'"):
        SweepTask(str(sweep_dir), 0)()
    assert not (sweep_dir / "local").exists() and not (sweep_dir / "000").exists()


def test_empty_tasks_is_a_clear_error_on_status(one_task_sweep, tmp_path, capsys):
    sweep_dir = _copy_with(one_task_sweep, tmp_path / "sweep", lambda s: s.update(tasks=[]))
    assert main(["--status", str(sweep_dir)]) == 2
    assert "'tasks' is empty: a sweep has at least one task" in capsys.readouterr().err


_RECORD = """
import sys
from pathlib import Path
from torchrl_reg.sweep.launch import _record_submission
for k in range(int(sys.argv[3])):
    _record_submission(Path(sys.argv[1]), {"executor": "local", "tasks": {}, "by": f"{sys.argv[2]}-{k}"})
"""


def test_concurrent_resumes_lose_no_submission_record(one_task_sweep, tmp_path):
    """Two --resume at once read sweep.json, each appended its submission, and the later write dropped the other's."""
    import subprocess
    import sys

    from tests.slurm.sweep_testlib import task_env

    sweep_dir = tmp_path / "sweep"
    shutil.copytree(one_task_sweep, sweep_dir)
    procs = [subprocess.Popen([sys.executable, "-c", _RECORD, str(sweep_dir), who, "25"], env=task_env())
             for who in ("a", "b")]
    assert [p.wait() for p in procs] == [0, 0]
    recorded = [s["by"] for s in read_sweep_file(sweep_dir)["submissions"]]
    assert sorted(recorded) == sorted(f"{w}-{k}" for w in "ab" for k in range(25))


_SHADOW = """
import sys
from torchrl_reg.sweep.spec import Recipe
module = Recipe.from_path(sys.argv[1]).module()
print(module.__file__)
"""


def test_a_recipes_package_in_the_working_directory_is_never_imported(tmp_path):
    """--resume run from inside a downloaded sweep directory shipping recipes/__init__.py ran it: the recipe was
    found with find_spec("recipes.<name>"), which imports the first recipes package on sys.path."""
    import subprocess
    import sys

    from tests.slurm.sweep_testlib import task_env

    marker = tmp_path / "payload_ran"
    (tmp_path / "recipes").mkdir()
    for name in ("__init__.py", "m_dqn.py"):
        (tmp_path / "recipes" / name).write_text(f"open({str(marker)!r}, 'w').close()\n")
    out = subprocess.run([sys.executable, "-c", _SHADOW, str(RECIPE)], cwd=tmp_path, env=task_env(),
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(RECIPE) and not marker.exists()


# -- every file of a sweep directory a regular file, read within bounds


def test_a_hard_linked_task_log_is_refused_before_anything_runs(one_task_sweep, tmp_path, capsys):
    """local/0_log.out hard-linked to a file outside: ``--resume`` appended the task's log to it."""
    import os

    outside = tmp_path / "outside.txt"
    outside.write_text("precious\n")
    sweep_dir = tmp_path / "sweep"
    shutil.copytree(one_task_sweep, sweep_dir)
    (sweep_dir / "local").mkdir()
    os.link(outside, sweep_dir / "local" / "0_log.out")
    before = (sweep_dir / "sweep.json").read_text()
    assert main(["--resume", str(sweep_dir), "--executor", "local"]) == 2
    [error] = capsys.readouterr().err.splitlines()
    assert error.startswith(f"error: {sweep_dir / 'local' / '0_log.out'} has 2 hard links, and it is written in place")
    assert "`cp -a`, or rsync without --link-dest" in error
    assert outside.read_text() == "precious\n" and (sweep_dir / "sweep.json").read_text() == before


def test_status_refuses_a_fifo_run_lock_and_a_bomb_in_one_line_without_blocking(one_task_sweep, tmp_path, capsys):
    """A task's run.lock or metrics.json as a FIFO blocked ``--status`` forever; a sweep.json or metrics.json nested
    100,000 deep raised RecursionError."""
    import os
    import signal

    sweep_dir = tmp_path / "sweep"
    shutil.copytree(one_task_sweep, sweep_dir)
    run_dir = Path(read_sweep_file(sweep_dir)["tasks"][0]["run_dir"])
    run_dir.mkdir(parents=True)

    def blocked(*_):
        raise TimeoutError("--status blocked")

    previous = signal.signal(signal.SIGALRM, blocked)
    signal.alarm(20)
    try:
        os.mkfifo(run_dir / "run.lock")
        assert main(["--status", str(sweep_dir)]) == 2
        (run_dir / "run.lock").unlink()
        os.mkfifo(run_dir / "metrics.json")
        assert main(["--status", str(sweep_dir)]) == 2
        (run_dir / "metrics.json").unlink()
        (run_dir / "metrics.json").write_text("[" * 100_000 + "]" * 100_000)
        assert main(["--status", str(sweep_dir)]) == 2
        (run_dir / "metrics.json").unlink()
        (sweep_dir / "sweep.json").write_text('{"tasks": ' + "[" * 100_000 + "]" * 100_000 + "}")
        assert main(["--status", str(sweep_dir)]) == 2
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    errors = capsys.readouterr().err.splitlines()
    assert errors == [
        f"error: {run_dir / 'run.lock'} is a FIFO, not a regular file: a run or sweep directory holds only regular "
        "files, and reading or writing this one could block or never end. Remove it (or replace it by the file it "
        "stands for)",
        f"error: {run_dir / 'metrics.json'} is a FIFO, not a regular file: a run or sweep directory holds only regular "
        "files, and reading or writing this one could block or never end. Remove it (or replace it by the file it "
        "stands for)",
        f"error: {run_dir / 'metrics.json'} is refused: its lists and objects nest more than 100 deep, which no file "
        "of this library does",
        f"error: {sweep_dir / 'sweep.json'} is refused: its lists and objects nest more than 100 deep, which no file "
        "of this library does",
    ]


def test_a_sweep_spec_with_yaml_aliases_is_refused_in_one_line(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text("a: &a [x, x]\nb: [*a, *a]\nmethods: {m: {recipe: recipes/m_dqn.py}}\n")
    assert main([str(spec), "--dir", str(tmp_path / "sweep"), "--dry-run"]) == 2
    [error] = capsys.readouterr().err.splitlines()
    assert error == (f"error: {spec} is refused: it uses a YAML alias (*a), which this library never writes and which "
                     "can make a small file expand without bound. Write the value out instead of the alias")
