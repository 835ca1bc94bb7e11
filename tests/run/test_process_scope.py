"""A process left as it was found: ``train(cfg)`` called again and again in one process (a notebook), failing at
every point a run can fail, releases its run directory's lock and descriptors, clears the loop-active flag, puts back
the stop requests and the signal handlers, and a good run afterwards trains exactly as in a fresh process."""
from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from torchrl_reg.configs import compose_config
from torchrl_reg.loops import value_based
from torchrl_reg.run import contract, recipe_run
from torchrl_reg.run.rundir import ResumeRefused, held_run_dirs, run_dir_holder
from torchrl_reg.run.stop import STOP_SIGNALS, loop_active, request_stop, stop_requested
from torchrl_reg.sweep.spec import Recipe

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "recipes" / "conf"
RECIPE = REPO / "recipes" / "m_dqn.py"
#: A tiny CartPole M-DQN run: six batches, two evaluations, two checkpoints; seconds.
GOOD = [
    "env=cartpole", "compile=false", "collector.total_frames=240", "collector.num_envs=4", "collector.frames_per_batch=40",
    "optim.learning_starts=80", "optim.frames_per_update=4", "optim.target_update_interval=40", "buffer.size=500",
    "buffer.batch_size=16", "buffer.storage=tensor", "exploration.annealing_frames=200", "eval.interval=120",
    "eval.episodes=2", "eval.max_steps=50", "checkpoint.interval=120", "logger.interval=80", "logger.progress_bar=false",
]
#: What differs between two runs of one config: where and how fast.
UNSTABLE = ("run_dir", "wall_time_s", "steps_per_s", "updates_per_s")


@functools.cache
def _composed(*extra: str) -> str:
    Recipe.from_path(RECIPE).module()  # the recipe's schema registered, as a notebook's import does
    return json.dumps(OmegaConf.to_container(compose_config(CONF, "m_dqn", [*GOOD, *extra]), resolve=True))


def _config(run_dir: Path, *extra: str) -> dict:
    """The plain config a notebook would pass (``train`` validates it), composed once per set of overrides."""
    return {**json.loads(_composed(*extra)), "run_dir": str(run_dir)}


def _descriptors() -> dict[int, str]:
    out = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            out[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # the listing's own descriptor, closed by now
            pass
    return out


def _process_state() -> dict:
    return {
        "descriptors": _descriptors(),
        "handlers": {signal.Signals(sig).name: signal.getsignal(sig) for sig in STOP_SIGNALS},
        "loop_active": loop_active(),
        "stop_requested": stop_requested(),
        "threads": sorted(t.name for t in threading.enumerate()),
        "torch_threads": torch.get_num_threads(),
        "held_run_dirs": held_run_dirs(),
    }


class Injected(RuntimeError):
    """A failure of the run's own making (a full device, a bug in a hook): what the scope must survive."""


def _fail_in_loop(exc: type[BaseException]):
    """``RecipeRun.end_batch`` failing at 120 frames: after the first log rows (80 frames), before a checkpoint."""
    end_batch = recipe_run.RecipeRun.end_batch

    def failing(self, batch_frames, **scalars):
        if self.frames >= 120:
            raise exc("injected in the loop")
        return end_batch(self, batch_frames, **scalars)

    return failing


def _fail_at_collector(*args, **kwargs):
    raise Injected("injected while the run is set up, after its lock")


def _failing_runs(tmp_path: Path, resumable: Path) -> list:
    """One ``train`` call per way a run fails: refused configs, a refused resume, a failure while the run is set up
    (after its lock), a failure in the loop (after config.yaml, the loop flag and the handlers), a second Ctrl-C."""
    train = Recipe.from_path(RECIPE).module().train
    cases = [
        ("config refused", lambda i: train(_config(tmp_path / f"c{i}", "buffer.size=0")), ValueError, None),
        ("a key no loss reads", lambda i: train(_config(tmp_path / f"k{i}", "loss=dqn", "loss.tau=0.5")), ValueError, None),
        ("resume refused", lambda i: train(_config(resumable, "optim.lr=0.5")), ResumeRefused, None),
        ("set-up failure after the lock", lambda i: train(_config(tmp_path / f"s{i}")), Injected,
         (value_based, "make_collector", _fail_at_collector)),
        ("failure in the loop", lambda i: train(_config(tmp_path / f"l{i}")), Injected,
         (recipe_run.RecipeRun, "end_batch", _fail_in_loop(Injected))),
        ("a second Ctrl-C in the loop", lambda i: train(_config(tmp_path / f"i{i}")), KeyboardInterrupt,
         (recipe_run.RecipeRun, "end_batch", _fail_in_loop(KeyboardInterrupt))),
    ]
    return cases


def _run_failing(case, i: int, monkeypatch: pytest.MonkeyPatch) -> None:
    name, call, exc, patch = case
    with monkeypatch.context() as m:
        if patch is not None:
            m.setattr(*patch)
        with pytest.raises(exc):
            call(i)


def _fresh_process_metrics(run_dir: Path) -> dict:
    """The good run's metrics from a fresh interpreter."""
    code = (
        "import json, sys\n"
        "from omegaconf import OmegaConf\n"
        "from torchrl_reg.configs import compose_config\n"
        "from torchrl_reg.sweep.spec import Recipe\n"
        f"module = Recipe.from_path({str(RECIPE)!r}).module()\n"
        f"cfg = compose_config({str(CONF)!r}, 'm_dqn', {[*GOOD, f'run_dir={run_dir}']!r})\n"
        "print(json.dumps(module.train(OmegaConf.to_container(cfg, resolve=True))))\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _comparable(metrics: dict) -> dict:
    return {key: value for key, value in metrics.items() if key not in UNSTABLE}


@pytest.mark.slow
def test_fifty_failed_trains_leave_the_process_as_a_fresh_one(tmp_path, monkeypatch):
    train = Recipe.from_path(RECIPE).module().train
    resumable = tmp_path / "resumable"
    train(_config(resumable))  # a finished run: its directory holds a checkpoint, so another config is refused
    cases = _failing_runs(tmp_path, resumable)
    for case in cases:  # once each first: what a library opens once per process (lazy imports) is not a leak
        _run_failing(case, -1, monkeypatch)
    before = _process_state()
    assert before["loop_active"] is False and before["held_run_dirs"] == []
    for i in range(50):
        _run_failing(cases[i % len(cases)], i, monkeypatch)
        folder = tmp_path / f"{'ckrsli'[i % len(cases)]}{i}"
        if folder.exists():  # a failure after the lock: no other process sees the run as running
            assert not (folder / "run.lock").exists() and run_dir_holder(folder) is None
    after = _process_state()
    assert after == before

    good = train(_config(tmp_path / "good"))
    assert good["status"] == "completed" and good["frames"] == 240
    assert _process_state() == before
    assert _comparable(good) == _comparable(_fresh_process_metrics(tmp_path / "fresh"))


def test_ctrl_c_after_a_failed_train_interrupts_as_in_a_fresh_process(tmp_path, monkeypatch):
    """It set only a stop flag (the loop-active flag stayed set), and the next good train returned "interrupted"
    after one batch."""
    train = Recipe.from_path(RECIPE).module().train
    handlers = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    with monkeypatch.context() as m:
        m.setattr(recipe_run.RecipeRun, "end_batch", _fail_in_loop(Injected))
        with pytest.raises(Injected):
            train(_config(tmp_path / "failed"))
    assert {sig: signal.getsignal(sig) for sig in STOP_SIGNALS} == handlers  # SIGTERM ends the process again
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        threading.Event().wait(5)  # the handler runs at the next bytecode boundary of the main thread
    assert not stop_requested()
    out = train(_config(tmp_path / "good"))
    assert out["status"] == "completed" and out["frames"] == 240


def test_a_stop_requested_before_train_is_kept_for_the_next_run_when_one_fails(tmp_path, monkeypatch):
    """A request made before a failed run waits for the next one (request_stop: "the running or next loop"); one made
    while a run failed does not outlive it."""
    train = Recipe.from_path(RECIPE).module().train
    request_stop()
    with pytest.raises(ValueError):
        train(_config(tmp_path / "refused", "buffer.size=0"))
    assert stop_requested()
    out = train(_config(tmp_path / "stopped"))
    assert out["status"] == "interrupted" and out["frames"] == 40 and not stop_requested()

    def stop_then_fail(self, batch_frames, **scalars):
        request_stop()  # a signal in the last batch, then a failure before the stop is acted on
        raise Injected("injected after a stop request")

    with monkeypatch.context() as m:
        m.setattr(recipe_run.RecipeRun, "end_batch", stop_then_fail)
        with pytest.raises(Injected):
            train(_config(tmp_path / "failed"))
    assert not stop_requested()


def test_a_failed_run_keeps_no_descriptor_that_would_write_into_its_renamed_folder(tmp_path, monkeypatch):
    """A failed run's held descriptor of its folder outlived it: after the folder was renamed, the next run of the same
    name wrote its files into the renamed one."""
    train = Recipe.from_path(RECIPE).module().train
    run_dir, moved = tmp_path / "run", tmp_path / "renamed"
    with monkeypatch.context() as m:
        m.setattr(contract.Run, "checkpoint", lambda self: (_ for _ in ()).throw(Injected("injected at a checkpoint")))
        with pytest.raises(Injected):
            train(_config(run_dir))
    run_dir.rename(moved)
    snapshot = {p.relative_to(moved): p.read_bytes() for p in sorted(moved.rglob("*")) if p.is_file()}
    out = train(_config(run_dir))
    assert out["status"] == "completed" and (run_dir / "checkpoint.pt").is_file()
    assert {p.relative_to(moved): p.read_bytes() for p in sorted(moved.rglob("*")) if p.is_file()} == snapshot


#: A tiny config of the other two loops (the value-based one is above).
OTHER_LOOPS = {
    "sac": ["env=pendulum", "compile=false", "collector.total_frames=40", "collector.num_envs=2",
            "collector.frames_per_batch=20", "optim.learning_starts=20", "buffer.size=100", "buffer.batch_size=8",
            "eval.interval=0", "eval.episodes=1", "eval.max_steps=5", "logger.progress_bar=false"],
    "tree_search": ["logger.progress_bar=false"],
}


@pytest.mark.parametrize("recipe", sorted(OTHER_LOOPS))
def test_every_loop_gives_the_process_back_after_a_failure_past_its_start(recipe, tmp_path, monkeypatch):
    """The actor-critic and planning loops fail after ``run.start()`` (lock held, config.yaml written, loop flag set,
    handlers installed) and leave the process as they found it; the same call then completes."""
    module = Recipe.from_path(REPO / "recipes" / f"{recipe}.py").module()
    cfg = OmegaConf.to_container(compose_config(CONF, recipe, OTHER_LOOPS[recipe]), resolve=True)
    module.train({**cfg, "run_dir": str(tmp_path / "warm")})  # lazy imports and caches of a first run
    before = _process_state()
    start = contract.Run.start

    def start_then_fail(self, *args, **kwargs):
        start(self, *args, **kwargs)
        raise Injected("injected after the run started")

    with monkeypatch.context() as m:
        m.setattr(contract.Run, "start", start_then_fail)
        with pytest.raises(Injected):
            module.train({**cfg, "run_dir": str(tmp_path / "failed")})
    assert _process_state() == before
    assert not (tmp_path / "failed" / "run.lock").exists() and run_dir_holder(tmp_path / "failed") is None
    assert module.train({**cfg, "run_dir": str(tmp_path / "good")})["status"] == "completed"
    assert _process_state() == before


def test_every_registered_loop_runs_inside_the_process_scope():
    """Every loop a recipe can reach (:data:`~torchrl_reg.loops.entry.LOOPS`) is wrapped by ``scoped_loop``: a loop
    added to the registry without it is caught here, before any of the tests above would run it."""
    from torchrl_reg.loops.entry import LOOPS

    assert LOOPS and all(getattr(loop, "process_scoped", False) for loop in LOOPS.values()), {
        family: getattr(loop, "process_scoped", False) for family, loop in LOOPS.items()}


def test_a_run_that_fails_before_writing_a_file_leaves_no_new_directory(tmp_path, monkeypatch):
    """A run refused under its lock (a set-up failure after the lock, before any file) in a directory it created takes
    the directory and the parents it created away again; a directory that existed before stays, and so does one the
    run wrote into."""
    train = Recipe.from_path(RECIPE).module().train
    new = tmp_path / "made" / "for" / "the_run"
    existing = tmp_path / "existing"
    existing.mkdir()
    with monkeypatch.context() as m:
        m.setattr(value_based, "make_collector", _fail_at_collector)
        for run_dir in (new, existing):
            with pytest.raises(Injected):
                train(_config(run_dir))
    assert not (tmp_path / "made").exists()
    assert existing.is_dir() and not any(existing.iterdir())
    assert train(_config(new))["status"] == "completed" and (new / "config.yaml").is_file()
