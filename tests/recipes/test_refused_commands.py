"""Commands a recipe refuses, tried against a real finished run: every one exits with status 2 and one line, and every
file of the run directory is byte-identical before and after (the whole tree hashed), nothing written elsewhere.

For every recipe (found from ``recipes/*.py``; the tiny run of a training recipe is its first recorded case in
``tests/recipes/test_recorded_metrics.py`` on an env without an extra, the planning recipe's a one-episode search),
the table of :func:`refused_rows`: a resume with another config (a key no resume may change, a budget that shrinks;
named by ``run_dir`` or by Hydra's ``hydra.run.dir``), the same on a live run (its lock held), a logger backend and
each optional dependency the recipe's options need (ale-py, MinAtar, MuJoCo)
made absent for the command, a ``run_dir`` holding files no run wrote, and a key the chosen option leaves unread.
Then what Hydra used to write before the run's checks, which it no longer writes (``hydra.output_subdir=null``, a
job log of the run's own): ``.hydra/config.yaml`` a symlink to a file outside, ``.hydra`` a symlink to a folder
outside, ``<recipe>.log`` a hard link, ``replay`` a symlink: each refused, nothing written outside; and one legitimate
resume in a fresh process with ``.hydra/overrides.yaml`` a hard link of a file outside, which stays as it was.

The commands run in this process (``main()`` with ``sys.argv`` set: every refusal is decided before Hydra starts), so
the battery costs one tiny run per recipe; only the legitimate resume and the full disk start a process.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.recipes.recipe_cases import CONF, RECIPES, ROOT, TRAINING_RECIPES, recipe
from tests.recipes.test_recorded_metrics import CASES
from torchrl_reg.configs import compose_config, config_sources
from torchrl_reg.envs.ids import EXTRAS
from torchrl_reg.loops.entry import EXIT_REFUSED
from torchrl_reg.run.rundir import lock_run_dir, release_run_dir
from torchrl_reg.validation import unread_keys

#: The tiny run of a recipe that trains nothing (the planning family): one short episode of a small search.
PLANNING_TINY = ["episodes=1", "task.max_steps=3", "planner.simulations=5", "logger.progress_bar=false"]


def tiny_overrides(name: str) -> list[str]:
    """The overrides of recipe ``name``'s tiny run: its first recorded case whose env needs no extra (the recorded
    cases are the one list a new recipe extends), or :data:`PLANNING_TINY` for a recipe that trains nothing."""
    if name not in TRAINING_RECIPES:
        return list(PLANNING_TINY)
    for case, overrides in CASES.values():
        if case == name:
            cfg = recipe(name).validate(compose_config(CONF, name, list(overrides)))
            if cfg.env.family not in EXTRAS:
                return list(overrides)
    raise AssertionError(f"recipes/{name}.py has no recorded case on an env without an extra (classic control)")


def tree_digest(folder: Path) -> dict[str, str]:
    """Every entry below ``folder``: a file's SHA-256, a link's target, a folder's mark (the whole tree, hidden files
    and ``run.lock`` included)."""
    found = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink():
            found[key] = "-> " + os.readlink(path)
        elif path.is_dir():
            found[key] = "dir"
        else:
            found[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


@pytest.fixture(scope="module", params=RECIPES)
def finished(request, tmp_path_factory):
    """``(recipe name, its tiny run's overrides, the finished run's directory)``, built once per recipe."""
    name = request.param
    overrides = tiny_overrides(name)
    run_dir = tmp_path_factory.mktemp(f"finished-{name}") / "run"
    metrics = recipe(name).train(compose_config(CONF, name, [*overrides, f"run_dir={run_dir}"]))
    assert metrics["status"] == "completed"
    return name, overrides, run_dir


def command(name: str, argv: list[str], monkeypatch, capsys, missing: str | None = None) -> tuple[int, str, str]:
    """``python recipes/<name>.py argv`` in this process (``main()``), with the package ``missing`` made absent:
    ``(exit status, stdout, stderr)``."""
    module = recipe(name)
    capsys.readouterr()
    with monkeypatch.context() as patch:
        patch.setattr(sys, "argv", [module.__file__, *argv])
        if missing is not None:
            patch.setitem(sys.modules, missing, None)
        with pytest.raises(SystemExit) as stop:
            module.main()
    out, err = capsys.readouterr()
    return stop.value.code, out, err


def _other(value):
    """A value of ``value``'s type that differs from it (``None`` where there is no obvious one)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value + 0.5 if value == value else None
    return None


def unread_key_row(name: str) -> tuple[list[str], str] | None:
    """A command that picks an option of one of the recipe's groups and sets a key that option leaves unread (a
    preset's setting the chosen method does not read): ``(overrides, the key)``; ``None`` when no option leaves one."""
    module = recipe(name)
    for group, (_, options) in config_sources(CONF, name).groups.items():
        for option in options:
            try:
                cfg = module.validate(compose_config(CONF, name, [f"{group}={option}"]))
            except (ValueError, FileNotFoundError):  # an option that needs more (a network's checkpoint)
                continue
            for field in dataclasses.fields(OmegaConf.get_type(cfg)):
                node = field.default_factory if isinstance(field.default_factory, type) else None
                if node is None or not dataclasses.is_dataclass(node):
                    continue
                for key in unread_keys(node, cfg[field.name]):
                    value = _other(cfg[field.name][key])
                    if value is not None:
                        return [f"{group}={option}", f"{field.name}.{key}={value}"], f"{field.name}.{key}"
    return None


def extra_rows(name: str) -> dict[str, list[str]]:
    """``extra -> overrides``: for each extra (:data:`EXTRAS`) that an option of the recipe's env group (a training
    recipe's ``env``, the planning recipe's ``<name>_preset``: the groups that pick what is simulated) needs, one
    command choosing that option."""
    rows: dict[str, list[str]] = {}
    for group, (_, options) in config_sources(CONF, name).groups.items():
        if group not in ("env", f"{name}_preset"):
            continue
        for option in options:
            cfg = compose_config(CONF, name, [f"{group}={option}"])
            needs = OmegaConf.select(cfg, "env.family") or OmegaConf.select(cfg, "task.name")
            if needs in EXTRAS and needs not in rows:
                rows[needs] = [f"{group}={option}"]
    return rows


def refused_rows(name: str, overrides: list[str], run_dir: Path, foreign: Path) -> list[tuple[str, list[str], str | None, str]]:
    """``(label, argv, package made absent, text the one line must hold)`` of every refused command of the table."""
    cfg = recipe(name).validate(compose_config(CONF, name, [*overrides, f"run_dir={run_dir}"]))
    rows = [
        ("another seed", [*overrides, f"run_dir={run_dir}", f"seed={cfg.seed + 1}"], None,
         f"seed: {cfg.seed} -> {cfg.seed + 1}"),
        ("files no run wrote", [*overrides, f"run_dir={foreign}"], None, "holds files no run wrote (notes.txt)"),
        ("hydra.run.dir without run_dir", [*overrides, f"hydra.run.dir={run_dir}", f"seed={cfg.seed + 1}"], None,
         f"seed: {cfg.seed} -> {cfg.seed + 1}"),
        ("a logger backend that is not installed", [*overrides, f"run_dir={run_dir}", "logger.backend=tensorboard"],
         EXTRAS["tensorboard"][0], 'pip install -e ".[tensorboard]"'),
    ]
    if "collector" in cfg:
        smaller = cfg.collector.total_frames - cfg.collector.frames_per_batch
        rows.append(("a smaller budget", [*overrides, f"run_dir={run_dir}", f"collector.total_frames={smaller}"], None,
                     "collector.total_frames"))
    for extra, chosen in extra_rows(name).items():
        module, pip = EXTRAS[extra][0], f'pip install -e ".[{EXTRAS[extra][1]}]"'
        rows.append((f"{extra} absent, run_dir given", [*chosen, f"run_dir={run_dir}"], module, pip))
        rows.append((f"{extra} absent, Hydra's directory", chosen, module, pip))
    unread = unread_key_row(name)
    if unread is not None:
        rows.append(("a key the option leaves unread", [*unread[0], f"run_dir={run_dir}"], None, unread[1]))
    return rows


def test_every_refused_command_is_one_line_exit_2_and_changes_no_file(finished, tmp_path, monkeypatch, capsys):
    name, overrides, run_dir = finished
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine\n")
    cwd = tmp_path / "cwd"  # where Hydra's runs/... would go
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    before, notes = tree_digest(run_dir), tree_digest(foreign)
    rows = refused_rows(name, overrides, run_dir, foreign)
    assert {"another seed", "files no run wrote"} <= {label for label, *_ in rows}
    for label, argv, missing, said in rows:
        status, out, err = command(name, argv, monkeypatch, capsys, missing)
        where = f"{name}, {label}: {argv}"
        assert status == EXIT_REFUSED, f"{where}: exit {status}\n{err}"
        assert len(err.splitlines()) == 1 and out == "", f"{where}: not one line:\n{out}{err}"
        assert said in err, f"{where}: {err!r} does not say {said!r}"
        assert tree_digest(run_dir) == before, f"{where}: the run directory changed"
        assert tree_digest(foreign) == notes and not any(cwd.iterdir()), f"{where}: wrote outside the run directory"


def test_a_live_run_is_refused_and_its_files_stay_as_they_are(finished, monkeypatch, capsys):
    """The run's lock held (as a live run holds it): the second command is refused, every file (``run.lock`` too)
    byte-identical, whatever its config says."""
    name, overrides, run_dir = finished
    lock_run_dir(run_dir)
    try:
        before = tree_digest(run_dir)
        assert "run.lock" in before
        for change in ([], ["seed=12345"]):
            status, out, err = command(name, [*overrides, f"run_dir={run_dir}", *change], monkeypatch, capsys)
            assert status == EXIT_REFUSED and len(err.splitlines()) == 1 and "is in use by pid" in err, err
            assert tree_digest(run_dir) == before
    finally:
        release_run_dir(run_dir)


@pytest.fixture
def copy_of(finished, tmp_path):
    """A copy of the finished run (a test that plants links in it, or resumes it, does so in its copy)."""
    name, overrides, run_dir = finished
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    outside = tmp_path / "outside"
    outside.mkdir()
    return name, overrides, copy, outside


@pytest.mark.parametrize("plant", [".hydra/config.yaml -> file", ".hydra -> folder", "replay -> folder", "log hard link"])
def test_links_where_hydra_or_a_library_wrote_by_path_are_refused_and_nothing_is_written_outside(
        copy_of, plant, monkeypatch, capsys, tmp_path):
    name, overrides, run_dir, outside = copy_of
    victim = outside / "victim"
    if plant.endswith("file") or plant == "log hard link":
        victim.write_text("precious\n")
    else:
        victim.mkdir()
    if plant == "log hard link":
        (run_dir / f"{name}.log").unlink(missing_ok=True)
        os.link(victim, run_dir / f"{name}.log")
    else:
        link = run_dir / plant.split(" -> ")[0]
        link.parent.mkdir(exist_ok=True)
        link.symlink_to(victim)
    before, kept = tree_digest(run_dir), tree_digest(outside)
    status, out, err = command(name, [*overrides, f"run_dir={run_dir}"], monkeypatch, capsys)
    assert status == EXIT_REFUSED and len(err.splitlines()) == 1 and out == "", err
    assert ("hard links" if plant == "log hard link" else "is a symlink") in err
    assert tree_digest(run_dir) == before and tree_digest(outside) == kept


def _python(args: list[str], cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
                          **kwargs)


@pytest.mark.slow
def test_a_legitimate_resume_writes_only_through_the_run_and_no_hydra_files(copy_of, tmp_path):
    """A resume with a larger budget, ``.hydra/overrides.yaml`` (of an earlier version) a hard link of a file outside:
    the run continues (exit 0), Hydra writes no ``.hydra/`` file and no log of its own, the outside file stays as it
    was, and the run's job log gets its lines through the run's own file."""
    name, overrides, run_dir, outside = copy_of
    if name != "m_dqn":
        pytest.skip("the entry is the same for every recipe: one legitimate resume in a fresh process is enough")
    victim = outside / "victim"
    victim.write_text("precious\n")
    (run_dir / ".hydra").mkdir()
    os.link(victim, run_dir / ".hydra" / "overrides.yaml")
    cfg = recipe(name).validate(compose_config(CONF, name, [*overrides, f"run_dir={run_dir}"]))
    more = cfg.collector.total_frames + cfg.collector.frames_per_batch
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    done = _python([str(ROOT / "recipes" / f"{name}.py"), *overrides, f"run_dir={run_dir}",
                    f"collector.total_frames={more}"], cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    assert victim.read_text() == "precious\n" and sorted(os.listdir(run_dir / ".hydra")) == ["overrides.yaml"]
    assert not any(cwd.iterdir())
    assert "runs with these preset settings" in (run_dir / f"{name}.log").read_text()


@pytest.mark.slow
def test_a_full_disk_is_one_line_naming_the_file(copy_of, tmp_path):
    """A resume whose checkpoint cannot be written (the file-size limit: ``EFBIG``): the library's one line, exit 1,
    no traceback; the checkpoint it would have replaced is whole."""
    name, overrides, run_dir, outside = copy_of
    if name != "m_dqn":
        pytest.skip("the entry is the same for every recipe: one full disk in a fresh process is enough")
    cfg = recipe(name).validate(compose_config(CONF, name, [*overrides, f"run_dir={run_dir}"]))
    more = cfg.collector.total_frames + cfg.collector.frames_per_batch
    checkpoint = (run_dir / "checkpoint.pt").read_bytes()
    limit = len(checkpoint) // 2
    code = ("import resource, runpy, sys; resource.setrlimit(resource.RLIMIT_FSIZE, ({0}, {0})); "
            "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')").format(limit)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    done = _python(["-c", code, str(ROOT / "recipes" / f"{name}.py"), *overrides, f"run_dir={run_dir}",
                    f"collector.total_frames={more}"], cwd)
    assert done.returncode == 1, done.stderr[-3000:]
    last = done.stderr.splitlines()[-1]
    assert "Traceback" not in done.stderr and last.startswith(f"{name}: File too large: writing "), done.stderr[-3000:]
    assert (run_dir / "checkpoint.pt").read_bytes() == checkpoint


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None,
                    reason="tensorboard is not installed (the test extra installs it; the tensorboard extra alone too)")
def test_tensorboard_writes_its_events_only_inside_the_run_and_a_linked_folder_is_refused(
        copy_of, monkeypatch, capsys, tmp_path):
    """``logger.backend=tensorboard``: TorchRL's writer opens its folder by path, so the run makes ``tensorboard/`` from
    its locked directory's descriptor after the checks. A ``tensorboard`` symlink to a folder outside is refused (exit
    2, one line, nothing written on either side); without it, a resume writes its event files under
    ``tensorboard/<exp>/`` and nothing outside the run."""
    name, overrides, run_dir, outside = copy_of
    if name != "m_dqn":
        pytest.skip("the logger is the same for every recipe: one recipe's run is enough")
    cfg = recipe(name).validate(compose_config(CONF, name, [*overrides, f"run_dir={run_dir}"]))
    argv = [*overrides, f"run_dir={run_dir}", "logger.backend=tensorboard",
            f"collector.total_frames={cfg.collector.total_frames + cfg.collector.frames_per_batch}"]
    victim = outside / "victim"
    victim.mkdir()
    (run_dir / "tensorboard").symlink_to(victim)
    before, kept = tree_digest(run_dir), tree_digest(outside)
    status, out, err = command(name, argv, monkeypatch, capsys)
    assert status == EXIT_REFUSED and len(err.splitlines()) == 1 and "is a symlink" in err, err
    assert tree_digest(run_dir) == before and tree_digest(outside) == kept

    (run_dir / "tensorboard").unlink()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    done = _python([str(ROOT / "recipes" / f"{name}.py"), *argv], cwd)  # a run in a process of its own, as a user's
    assert done.returncode == 0, done.stderr[-3000:]
    events = [p for p in (run_dir / "tensorboard").rglob("*") if p.is_file()]
    assert events and all(p.name.startswith("events.out.tfevents") for p in events), events
    assert tree_digest(outside) == kept and not any(cwd.iterdir())
