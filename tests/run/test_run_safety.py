"""Run safety: checkpoints that cannot run code, corrupt checkpoints, clean CSV logs, one writer per
run directory, stop signals and exit codes."""
from __future__ import annotations

import json
import logging
import math
import os
import pickle
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from recipes import m_dqn
from tests.recipes.test_m_dqn import SMALL
from tests.slurm.sweep_testlib import wait_for
from torchrl_reg.configs import BufferConfig, EnvConfig, compose_config
from torchrl_reg.data import make_replay_buffer
from torchrl_reg.envs import get_env_state, make_env, set_env_state
from torchrl_reg.plain_state import check_plain
from torchrl_reg.run import (
    EXIT_INTERRUPTED,
    CheckpointError,
    RunDirLocked,
    UntrustedCheckpointError,
    clear_stop,
    load_checkpoint,
    request_stop_at,
    save_checkpoint,
    truncate_csv_logs,
)
from torchrl_reg.run.checkpoint import load_replay_buffer_state, replay_buffer_state
from torchrl_reg.run.rundir import LOCK_NAME, EarlierRunRefused, lock_run_dir, release_run_dir, run_dir_holder
from torchrl_reg.run.stop import _handler, exit_if_interrupted, set_loop_active, stop_requested

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "recipes" / "conf"
# The m_dqn smoke settings with a checkpoint and a log row every batch (40 frames).
TINY = [
    *(o for o in SMALL if not o.startswith(("checkpoint.interval=", "logger.interval=", "buffer.storage="))),
    "checkpoint.interval=40",
    "logger.interval=40",
]


def _cfg(run_dir: Path, *overrides: str):
    return compose_config(CONF, "m_dqn", [*TINY, *overrides, f"run_dir={run_dir}"])


def _logs(run_dir: Path) -> dict[str, str]:
    root = run_dir / "csv" / "scalars"
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*.csv"))}


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env



# -- 1. no unpickling of checkpoint contents -----------------------------------------------------------


class _Payload:
    """Unpickling it creates ``path``: the stand-in for ``os.system`` in a crafted checkpoint."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
    """A real m_dqn run (prioritized replay) stopped at 80 frames: its checkpoint is the one to tamper with."""
    run_dir = tmp_path_factory.mktemp("stopped")
    request_stop_at(80)
    metrics = m_dqn.train(_cfg(run_dir, "buffer=prioritized"))
    assert metrics["status"] == "interrupted"
    return run_dir


def _save_with_valid_checksum(path: Path, state: dict) -> None:
    """What an attacker writes: any objects, behind a header whose checksum matches (it is no signature)."""
    import hashlib
    import io

    from torchrl_reg.run.checkpoint import MAGIC

    payload = io.BytesIO()
    torch.save(state, payload)
    path.write_bytes(MAGIC + hashlib.sha256(payload.getvalue()).digest() + payload.getvalue())


def _planted(place: str, payload: _Payload) -> tuple[tuple[str, ...], object]:
    if place == "sampler bytes":  # what today's format stored there: a pickle
        return ("replay_buffer", "_sampler"), pickle.dumps(payload)
    if place == "env bytes":
        return ("collector", "env"), pickle.dumps(payload)
    if place == "env object":  # an object, not bytes: the weights-only unpickler's own refusal
        return ("collector", "env"), payload
    return ("rng", "python"), payload


@pytest.mark.parametrize("place", ["sampler bytes", "env bytes", "env object", "rng object"])
def test_crafted_checkpoint_is_refused_and_runs_nothing(stopped_run, tmp_path, place):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for name in ("config.yaml", "checkpoint.pt"):
        (run_dir / name).write_bytes((stopped_run / name).read_bytes())
    marker = tmp_path / "payload_ran"
    state = load_checkpoint(run_dir / "checkpoint.pt")
    keys, value = _planted(place, _Payload(marker))
    state[keys[0]][keys[1]] = value
    _save_with_valid_checksum(run_dir / "checkpoint.pt", state)

    with pytest.raises(UntrustedCheckpointError, match=f"refusing checkpoint {run_dir / 'checkpoint.pt'}"):
        m_dqn.train(_cfg(run_dir, "buffer=prioritized"))
    assert not marker.exists(), "the crafted checkpoint ran code"
    assert not (run_dir / "metrics.json").exists()
    with pytest.raises(TypeError, match="bytes"):
        save_checkpoint(tmp_path / "x.pt", {"blob": b"\x80\x04"})  # and nothing writes bytes either


def test_real_checkpoint_is_plain_data(stopped_run):
    state = load_checkpoint(stopped_run / "checkpoint.pt")
    check_plain(state)  # no bytes anywhere
    assert state["replay_buffer"]["_sampler"]["_sum_tree"]["leaves"].shape == (500,)


_ENV_CASES = {
    "acrobot": EnvConfig(name="Acrobot-v1"),
    "cartpole-native": EnvConfig(),
    "minatar-asterix": EnvConfig(family="minatar", name="Asterix", sticky_action_prob=0.1),
    "minatar-breakout": EnvConfig(family="minatar", name="Breakout", sticky_action_prob=0.1),
    "minatar-freeway": EnvConfig(family="minatar", name="Freeway", sticky_action_prob=0.1),
    "minatar-seaquest": EnvConfig(family="minatar", name="Seaquest", sticky_action_prob=0.1),
    "minatar-spaceinvaders": EnvConfig(family="minatar", name="SpaceInvaders", sticky_action_prob=0.1),
    "atari": EnvConfig(family="atari", name="Pong", sticky_action_prob=0.25, frame_skip=4, frame_stack=4, max_episode_steps=300),
    "mujoco": EnvConfig(family="mujoco", name="Hopper-v5", max_episode_steps=40),
}


@pytest.mark.parametrize("case", list(_ENV_CASES))
def test_env_state_is_plain_and_continues_a_fresh_env_exactly(case, tmp_path):
    """The state goes through a weights-only file into an env built with another seed and stepped
    elsewhere; the same actions must then give the same observations, rewards and resets."""
    cfg = _ENV_CASES[case]
    env, fresh = make_env(cfg, num_envs=2, seed=1), make_env(cfg, num_envs=2, seed=99)
    g = torch.Generator().manual_seed(0)
    spec = env.action_spec

    def actions(n):
        if cfg.family == "mujoco":
            return [torch.rand(spec.shape, generator=g) * 2 - 1 for _ in range(n)]
        return [torch.randint(0, int(spec.space.n), spec.shape, generator=g) for _ in range(n)]

    def roll(e, td, acts):
        out = []
        for a in acts:
            step, td = e.step_and_maybe_reset(td.clone().set("action", a))
            out.append((td["observation"].clone(), step["next", "reward"].clone(), step["next", "done"].clone()))
        return out, td

    _, td = roll(env, env.reset(), actions(25))
    _, td_fresh = roll(fresh, fresh.reset(), actions(7))
    torch.save({"env": get_env_state(env)}, tmp_path / "env.pt")
    state = torch.load(tmp_path / "env.pt", weights_only=True)["env"]
    check_plain(state)
    set_env_state(fresh, state)
    plan = actions(120)
    expected, _ = roll(env, td, plan)
    got, _ = roll(fresh, td_fresh.update(td.select("observation", "done", "terminated", "truncated")), plan)
    for (o1, r1, d1), (o2, r2, d2) in zip(expected, got):
        torch.testing.assert_close(o2, o1, rtol=0, atol=0)
        torch.testing.assert_close(r2, r1, rtol=0, atol=0)
        assert torch.equal(d1, d2)


def test_prioritized_sampler_state_round_trips_through_a_weights_only_file(tmp_path):
    from tensordict import TensorDict

    cfg = BufferConfig(size=64, batch_size=8, prioritized=True)
    buffer = make_replay_buffer(cfg)
    buffer.extend(TensorDict({"observation": torch.arange(40.0)[:, None]}, [40]))
    buffer.update_priority(torch.arange(40), torch.linspace(0.1, 4.0, 40))
    torch.save(replay_buffer_state(buffer), tmp_path / "rb.pt")
    restored = make_replay_buffer(cfg)
    load_replay_buffer_state(restored, torch.load(tmp_path / "rb.pt", weights_only=True))
    for a, b in ((buffer.sampler._sum_tree, restored.sampler._sum_tree), (buffer.sampler._min_tree, restored.sampler._min_tree)):
        assert a.query(0, 64) == b.query(0, 64) and torch.equal(a[torch.arange(64)], b[torch.arange(64)])
    np.random.seed(3)  # TorchRL's prioritized sampler draws its masses from numpy's global RNG
    first = buffer.sample()
    np.random.seed(3)
    second = restored.sample()
    assert torch.equal(first["index"], second["index"]) and torch.equal(first["priority_weight"], second["priority_weight"])


# -- 7. corrupt or partial checkpoints -----------------------------------------------------------------


def test_unreadable_checkpoint_is_named_and_the_previous_one_is_used(tmp_path, caplog):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"frames": 40})
    save_checkpoint(path, {"frames": 80})
    assert load_checkpoint(tmp_path / "checkpoint.prev.pt")["frames"] == 40
    path.write_bytes(path.read_bytes()[:100])  # cut short, as a disk that lost the end of the file
    with caplog.at_level(logging.WARNING):
        assert load_checkpoint(path)["frames"] == 40
    assert str(path) in caplog.text and "checkpoint.prev.pt" in caplog.text and "frame 40" in caplog.text
    assert (tmp_path / "checkpoint.pt.corrupt").exists() and not path.exists()

    lone = tmp_path / "lone" / "checkpoint.pt"
    lone.parent.mkdir()
    lone.write_bytes(b"")
    with pytest.raises(CheckpointError, match=f"checkpoint {lone} is corrupt.*no previous checkpoint"):
        load_checkpoint(lone)


def _corrupted(data: bytes, how: str, rng: np.random.Generator) -> bytes:
    if how == "random bytes":  # a block of garbage of the same size, as a disk returning another file's sectors
        return rng.integers(0, 256, len(data), dtype=np.uint8).tobytes()
    position = int(rng.integers(0, len(data)))  # one flipped bit anywhere: header, pickle, tensor data, zip index
    flipped = bytearray(data)
    flipped[position] ^= 1 << int(rng.integers(0, 8))
    return bytes(flipped)


@pytest.mark.parametrize("how", ["random bytes", "bit flip"])
@pytest.mark.parametrize("seed", range(7))
def test_a_corrupt_checkpoint_is_detected_and_the_previous_one_is_used(stopped_run, tmp_path, caplog, how, seed):
    """Every random-byte file and every single flipped bit is caught by the checksum
    and reported as corruption (never as a crafted file), and the previous checkpoint is loaded."""
    for name in ("checkpoint.pt", "checkpoint.prev.pt"):
        (tmp_path / name).write_bytes((stopped_run / name).read_bytes())
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(_corrupted(path.read_bytes(), how, np.random.default_rng(seed)))
    with caplog.at_level(logging.WARNING):
        state = load_checkpoint(path)
    assert state["frames"] == 40  # the previous checkpoint's, bit-identical to what was saved
    assert f"checkpoint {path} is corrupt" in caplog.text and str(tmp_path / "checkpoint.prev.pt") in caplog.text
    assert "crafted" not in caplog.text


def test_both_checkpoints_corrupt_is_a_clear_error_naming_both(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"frames": 40})
    save_checkpoint(path, {"frames": 80})
    rng = np.random.default_rng(0)
    for name in ("checkpoint.pt", "checkpoint.prev.pt"):
        (tmp_path / name).write_bytes(_corrupted((tmp_path / name).read_bytes(), "bit flip", rng))
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(path)
    assert not isinstance(raised.value, UntrustedCheckpointError)
    message = str(raised.value)
    assert f"checkpoint {path} is corrupt" in message and f"checkpoint {tmp_path / 'checkpoint.prev.pt'} is corrupt" in message
    assert "start over in a new run directory" in message


def test_a_checkpoint_carries_the_sha256_of_its_payload(tmp_path):
    import hashlib

    from torchrl_reg.run.checkpoint import MAGIC

    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"frames": 40, "w": torch.arange(6.0)})
    data = path.read_bytes()
    assert data[:8] == MAGIC and data[8:40] == hashlib.sha256(data[40:]).digest()
    assert data[40:44] == b"PK\x03\x04"  # the payload is a plain torch.save zip
    legacy = tmp_path / "legacy.pt"  # a checkpoint written before checksums: loads, unverified
    legacy.write_bytes(data[40:])
    assert load_checkpoint(legacy)["frames"] == 40


@pytest.mark.slow
def test_resume_from_a_corrupt_checkpoint_falls_back_and_ends_like_the_uninterrupted_run(tmp_path, caplog):
    full = m_dqn.train(_cfg(tmp_path / "full"))
    run_dir = tmp_path / "run"
    request_stop_at(160)
    assert m_dqn.train(_cfg(run_dir))["frames"] == 160
    checkpoint = run_dir / "checkpoint.pt"
    checkpoint.write_bytes(b"\0" * 4096)  # zeroed blocks, as a crashed filesystem leaves them
    with caplog.at_level(logging.WARNING):
        resumed = m_dqn.train(_cfg(run_dir))
    assert f"checkpoint {checkpoint} is corrupt" in caplog.text and "frame 120" in caplog.text
    assert {k: v for k, v in resumed.items() if k not in ("wall_time_s", "steps_per_s", "run_dir")} == {
        k: v for k, v in full.items() if k not in ("wall_time_s", "steps_per_s", "run_dir")
    }
    assert _logs(run_dir) == _logs(tmp_path / "full")


# -- 4. CSV logs ---------------------------------------------------------------------------------------


def test_csv_truncation_survives_nul_bytes_cut_rows_and_duplicates(tmp_path):
    d = tmp_path / "csv" / "scalars" / "train"
    d.mkdir(parents=True)
    (d / "loss.csv").write_bytes(b"40,1.0\n80,2.0\n\0\0\0\0\n120,3.0\n80,2.0\n160,4.")
    (d / "late.csv").write_bytes(b"200,1.0\n")
    (d / "garbage.csv").write_bytes(b"\xff\xfe,1\nabc\n")
    truncate_csv_logs(tmp_path, 160)
    # the NUL block and the cut last row go, the repeated step 80 goes, a file left empty is removed
    assert (d / "loss.csv").read_text() == "40,1.0\n80,2.0\n120,3.0\n"
    assert not (d / "late.csv").exists() and not (d / "garbage.csv").exists()
    truncate_csv_logs(tmp_path, None)
    assert not list(d.iterdir())


def _killed_run(run_dir: Path, tmp_path: Path, ready, *overrides: str) -> None:
    """Run the m_dqn recipe as a process until ``ready()`` holds, then SIGKILL it (no word, no checkpoint)."""
    args = [a for a in TINY if not a.startswith("collector.total_frames")]
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "recipes" / "m_dqn.py"), *args, "collector.total_frames=4000000", *overrides,
         f"run_dir={run_dir}", f"hydra.run.dir={tmp_path / 'hydra'}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(), cwd=tmp_path,
    )
    try:
        wait_for(ready, 600, "the run to get there")
    finally:
        proc.kill()
        proc.wait()


def test_a_run_killed_before_its_first_checkpoint_says_running_and_starts_over_clean(tmp_path):
    """metrics.json says "running" from the start; a run killed before its first
    checkpoint left rows the new run logs again, so the new run starts a clean log."""
    reference = tmp_path / "reference"
    m_dqn.train(_cfg(reference))
    run_dir = tmp_path / "run"
    _killed_run(run_dir, tmp_path, lambda: bool(list(run_dir.glob("csv/scalars/train/*.csv"))), "checkpoint.interval=0")
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "running"
    assert json.loads((run_dir / "metrics.json").read_text())["frames"] == 0
    m_dqn.train(_cfg(run_dir))
    assert _logs(run_dir) == _logs(reference)


def test_a_killed_run_says_running_at_its_checkpoint_frames(tmp_path):
    run_dir = tmp_path / "run"
    _killed_run(run_dir, tmp_path, (run_dir / "checkpoint.prev.pt").exists)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    frames = {load_checkpoint(run_dir / name)["frames"] for name in ("checkpoint.pt", "checkpoint.prev.pt")}
    # written right after each checkpoint: the newest one's frames, or the previous one's if killed in between
    assert metrics["status"] == "running" and metrics["frames"] in frames and metrics["frames"] > 0
    for name in ("checkpoint.pt", "checkpoint.prev.pt"):
        (run_dir / name).unlink()
    with pytest.raises(EarlierRunRefused, match=r"status 'running', \d+ frames"):
        m_dqn.train(_cfg(run_dir))


def test_a_rerun_whose_checkpoints_were_deleted_is_refused_and_wipes_nothing(tmp_path):
    """Deleting the checkpoints of a finished run (to free disk) and running it
    again must not delete its logs and retrain from frame 0 without a word."""
    m_dqn.train(_cfg(tmp_path))
    for name in ("checkpoint.pt", "checkpoint.prev.pt"):
        (tmp_path / name).unlink()
    logs, metrics = _logs(tmp_path), (tmp_path / "metrics.json").read_text()
    with pytest.raises(EarlierRunRefused) as refused:
        m_dqn.train(_cfg(tmp_path))
    message = str(refused.value)
    assert f"run directory {tmp_path} holds an earlier run's results but no checkpoint" in message
    assert "status 'completed', 240 frames" in message and f"{len(logs)} CSV log files" in message
    assert "To start over on purpose, delete the directory (or its csv/ and metrics.json) first" in message
    assert _logs(tmp_path) == logs and (tmp_path / "metrics.json").read_text() == metrics
    assert not (tmp_path / LOCK_NAME).exists()
    (tmp_path / "metrics.json").unlink()  # logs without metrics (an older version's run): refused too
    with pytest.raises(EarlierRunRefused, match="no metrics.json"):
        m_dqn.train(_cfg(tmp_path))


# -- 3. one writer per run directory ---------------------------------------------------------------------

HOLDER = textwrap.dedent(
    """
    import sys, time
    from torchrl_reg.run.rundir import lock_run_dir
    lock_run_dir(sys.argv[1])
    print("locked", flush=True)
    time.sleep(600)
    """
)


def test_second_writer_is_refused_and_a_dead_writers_lock_is_taken_over(tmp_path, caplog):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], stdout=subprocess.PIPE, text=True, env=_env())
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert run_dir_holder(run_dir)["pid"] == holder.pid
        with pytest.raises(RunDirLocked, match=rf"in use by pid {holder.pid} on host {socket.gethostname()}"):
            lock_run_dir(run_dir)
        with pytest.raises(RunDirLocked):
            m_dqn.train(_cfg(run_dir))  # a recipe is refused before it writes anything
        assert sorted(p.name for p in run_dir.iterdir()) == [LOCK_NAME]
    finally:
        holder.kill()
        holder.wait()
    assert run_dir_holder(run_dir) is None
    with caplog.at_level(logging.WARNING):
        lock_run_dir(run_dir)  # SIGKILLed: its lock file stays, its lock went with it
    assert f"stale lock of pid {holder.pid}" in caplog.text
    assert json.loads((run_dir / LOCK_NAME).read_text())["pid"] == os.getpid()
    release_run_dir(run_dir)
    assert not (run_dir / LOCK_NAME).exists()


def test_a_deleted_lock_file_does_not_let_a_second_writer_in(tmp_path):
    """The directory itself is locked, so deleting run.lock by hand changes nothing."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], stdout=subprocess.PIPE, text=True, env=_env())
    try:
        assert holder.stdout.readline().strip() == "locked"
        (run_dir / LOCK_NAME).unlink()
        with pytest.raises(RunDirLocked, match=f"in use by another process \\(its lock file {run_dir / LOCK_NAME} was deleted\\)"):
            lock_run_dir(run_dir)
        assert run_dir_holder(run_dir) == {}  # held, by a process it can no longer name
    finally:
        holder.kill()
        holder.wait()
    lock_run_dir(run_dir)
    release_run_dir(run_dir)


PROBER = textwrap.dedent(
    """
    import sys
    from torchrl_reg.run.rundir import run_dir_holder
    print("probing", flush=True)
    while True:
        run_dir_holder(sys.argv[1])
    """
)


def test_status_probes_in_a_tight_loop_never_make_a_starting_run_fail(tmp_path):
    """A probe takes a shared lock for an instant; a writer starting then retries
    past it instead of reporting the directory in use (half of the starts failed before)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    prober = subprocess.Popen([sys.executable, "-c", PROBER, str(run_dir)], stdout=subprocess.PIPE, text=True, env=_env())
    try:
        assert prober.stdout.readline().strip() == "probing"
        for _ in range(300):
            lock_run_dir(run_dir)
            release_run_dir(run_dir)
    finally:
        prober.kill()
        prober.wait()


def test_sweep_resume_leaves_a_task_whose_run_directory_is_held(tmp_path):
    """A killed sweep driver leaves its task running: --resume must not start a second writer."""
    from torchrl_reg.sweep.launch import create_sweep, unfinished_tasks

    sweep_dir = tmp_path / "sweep"
    try:
        create_sweep(REPO / "recipes" / "m_dqn.py", [*TINY, "seed=0,1"], sweep_dir, "test")
    finally:  # the sweep imports the recipe as its own module: put this module's schema back
        from torchrl_reg.configs import register_schema

        register_schema("m_dqn", m_dqn.MDQNConfig)
    held = sweep_dir / "000_seed=0"
    held.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(held)], stdout=subprocess.PIPE, text=True, env=_env())
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert unfinished_tasks(sweep_dir) == ([1], [0])  # task 0 runs: only task 1 is resubmitted
    finally:
        holder.kill()
        holder.wait()
    assert unfinished_tasks(sweep_dir) == ([0, 1], [])


def test_a_finished_run_releases_its_lock(tmp_path):
    m_dqn.train(_cfg(tmp_path))
    assert not (tmp_path / LOCK_NAME).exists()


# -- 6. signals and exit codes ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGUSR2, signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signalled_recipe_checkpoints_and_exits_with_the_interrupted_code(tmp_path, sig):
    run_dir = tmp_path / "run"
    args = [a for a in TINY if not a.startswith("collector.total_frames")]
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "recipes" / "m_dqn.py"), *args, "collector.total_frames=4000000",
         f"run_dir={run_dir}", f"hydra.run.dir={tmp_path / 'hydra'}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(), cwd=tmp_path,
    )
    try:
        wait_for((run_dir / "checkpoint.pt").exists, 600, "the first checkpoint")
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=600)
    finally:
        proc.kill()
    assert proc.returncode == EXIT_INTERRUPTED, out
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "interrupted" and 40 <= metrics["frames"] < 4000000
    assert load_checkpoint(run_dir / "checkpoint.pt")["frames"] == metrics["frames"]
    assert not (run_dir / LOCK_NAME).exists()


def test_ctrl_c_stops_the_loop_once_and_interrupts_outside_it():
    clear_stop()
    with pytest.raises(KeyboardInterrupt):  # no training loop: Ctrl-C is Ctrl-C
        _handler(signal.SIGINT, None)
    set_loop_active(True)
    try:
        _handler(signal.SIGINT, None)
        assert stop_requested()
        with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C: stop now
            _handler(signal.SIGINT, None)
    finally:
        set_loop_active(False)
        clear_stop()
    exit_if_interrupted({"status": "completed"})
    with pytest.raises(SystemExit) as stopped:
        exit_if_interrupted({"status": "interrupted"})
    assert stopped.value.code == EXIT_INTERRUPTED == 75
    with pytest.raises(SystemExit) as stopped:  # env.backend='vector': a rerun would be refused
        exit_if_interrupted({"status": "interrupted", "resumable": False})
    assert stopped.value.code == 1


def test_numpy_state_codec_keeps_dtypes():
    from torchrl_reg.plain_state import decode, encode

    value = {"a": np.float64(0.5), "b": np.arange(6, dtype=np.uint32).reshape(2, 3), "c": (1, [True, None]),
             "g": np.random.default_rng(3)}
    back = decode(encode(value))
    assert type(back["a"]) is np.float64 and back["b"].dtype == np.uint32 and np.array_equal(back["b"], value["b"])
    assert back["c"] == (1, [True, None]) and back["g"].random() == np.random.default_rng(3).random()
    with pytest.raises(ValueError, match="dtype"):
        decode(("ndarray", "|O", (1,), torch.zeros(8, dtype=torch.uint8)))


def test_metrics_json_is_strict_json_with_null_for_no_number(tmp_path):
    # A run with no finished episode has train_return_mean NaN: written as null, since Python's NaN token is not JSON
    # (jq and JavaScript refuse the whole file). numpy and 0-d torch scalars are written as numbers.
    from torchrl_reg.run.metrics import write_json

    path = tmp_path / "metrics.json"
    write_json(path, {"train_return_mean": math.nan, "eval_returns": [1.5, math.inf], "steps_per_s": np.float32(2.5),
                      "loss": torch.tensor(0.25), "nested": {"x": -math.inf}, "status": "completed"})

    def refuse(token):
        raise ValueError(f"not strict JSON: {token}")

    assert json.loads(path.read_text(), parse_constant=refuse) == {
        "train_return_mean": None, "eval_returns": [1.5, None], "steps_per_s": 2.5, "loss": 0.25, "nested": {"x": None},
        "status": "completed",
    }


# -- 8. a run directory is data: no write through a symlink, another run's checkpoint never touched ------------


@pytest.mark.parametrize(
    "planted, kind",
    [("run.lock", "file"), ("config.yaml", "file"), ("metrics.json.tmp", "file"), ("checkpoint.pt.tmp", "file"),
     ("learning_curve.png.tmp", "file"), ("csv", "folder"), ("csv/scalars", "folder")],
)
def test_a_symlink_in_a_run_directory_is_refused_before_anything_is_written(tmp_path, plant_symlink, planted, kind):
    """Each of these was opened by path and followed (run.lock truncated its target): a downloaded run
    directory could write anywhere its user may."""
    from torchrl_reg.run.files import SymlinkRefused

    run_dir, outside = tmp_path / "run", tmp_path / "outside"
    target = plant_symlink(run_dir, planted, folder=kind == "folder")
    with pytest.raises(SymlinkRefused, match=f"{run_dir / planted} is a symlink inside {run_dir}"):
        m_dqn.train(_cfg(run_dir))
    assert sorted(p.name for p in outside.rglob("*")) == ["victim"]
    assert target.is_dir() or target.read_text() == "precious\n"
    assert not (run_dir / LOCK_NAME).exists() or planted == LOCK_NAME


def test_run_files_are_never_written_through_a_symlink_planted_later(tmp_path):
    """The writers themselves follow no symlink (O_NOFOLLOW on the file and every folder below the root)."""
    from torchrl_reg.run.files import SymlinkRefused
    from torchrl_reg.run.files import open_file, write_atomic

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("precious\n")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.json").symlink_to(outside / "victim")
    with pytest.raises(SymlinkRefused, match="metrics.json is a symlink"):
        write_atomic(run_dir / "metrics.json", "{}")
    (run_dir / "local").symlink_to(outside)
    with pytest.raises(SymlinkRefused, match=f"{run_dir / 'local'} is a symlink inside {run_dir}"):
        open_file(run_dir / "local" / "0_log.out", "a", root=run_dir)
    (run_dir / "checkpoint.pt").symlink_to(outside / "victim")
    with pytest.raises(SymlinkRefused):
        save_checkpoint(run_dir / "checkpoint.pt", {"frames": 40})
    (run_dir / LOCK_NAME).symlink_to(outside / "victim")
    with pytest.raises(SymlinkRefused, match=f"{run_dir / LOCK_NAME} is a symlink"):
        lock_run_dir(run_dir)
    release_run_dir(run_dir)
    assert (outside / "victim").read_text() == "precious\n" and sorted(p.name for p in outside.iterdir()) == ["victim"]


_FILL = textwrap.dedent(
    """
    import resource, signal, sys, torch
    from torchrl_reg.run import save_checkpoint
    from torchrl_reg.run.files import DiskFullError
    save_checkpoint(sys.argv[1], {"frames": 40, "w": torch.zeros(10)})
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the kernel then fails the write with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, resource.RLIM_INFINITY))
    try:
        save_checkpoint(sys.argv[1], {"frames": 80, "w": torch.zeros(100_000)})
    except DiskFullError as err:
        print(err)
    """
)


def test_a_full_disk_is_named_with_the_space_the_checkpoint_needs_and_leaves_no_partial_file(tmp_path):
    """It ended in torch's ``unexpected pos 253888 vs 253776`` (the OSError lost inside torch.save), and the
    partial checkpoint.pt.tmp stayed. A file-size limit (EFBIG) stands for the full disk (ENOSPC): one path."""
    path = tmp_path / "checkpoint.pt"
    out = subprocess.run([sys.executable, "-c", _FILL, str(path)], capture_output=True, text=True, env=_env())
    assert out.returncode == 0, out.stderr
    assert f"File too large: writing {path} stopped after" in out.stdout and "about 0.4 MB in all" in out.stdout
    assert "MB free on that filesystem" in out.stdout and "the partial checkpoint.pt.tmp was removed" in out.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]
    assert load_checkpoint(path)["frames"] == 40  # the last good checkpoint, untouched


def test_another_runs_checkpoint_is_read_without_changing_its_directory(stopped_run, tmp_path, caplog):
    """tree_search's evaluator.checkpoint loaded another run's checkpoint through the training loop's fallback:
    a damaged checkpoint.pt was renamed to .corrupt in a directory it does not own, and the previous one used."""
    from torchrl_reg.run import read_checkpoint

    for name in ("config.yaml", "checkpoint.pt", "checkpoint.prev.pt"):
        (tmp_path / name).write_bytes((stopped_run / name).read_bytes())
    path = tmp_path / "checkpoint.pt"
    assert read_checkpoint(path)["frames"] == 80
    path.write_bytes(_corrupted(path.read_bytes(), "bit flip", np.random.default_rng(0)))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(CheckpointError, match=f"checkpoint {path} is corrupt.*read only: nothing was changed.*"
                                              f"previous checkpoint {tmp_path / 'checkpoint.prev.pt'}: name that file"):
        read_checkpoint(path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    with caplog.at_level(logging.WARNING):  # the previous one, as an explicit choice, said in the log
        assert read_checkpoint(tmp_path / "checkpoint.prev.pt")["frames"] == 40
    assert f"reading the previous checkpoint {tmp_path / 'checkpoint.prev.pt'}, as named" in caplog.text


def test_the_planner_reads_a_damaged_network_checkpoint_read_only(tmp_path):
    from recipes import tree_search  # noqa: F401 - registers the planning schema
    from torchrl_reg.loops.planning import load_q_network
    from torchrl_reg.planning import make_task

    network = tmp_path / "Breakout_seed0"
    network.mkdir()
    for p in (REPO / "benchmarks" / "results" / "planning" / "networks" / "Breakout_seed0").iterdir():
        (network / p.name).write_bytes(p.read_bytes())
    data = (network / "checkpoint.pt").read_bytes()
    (network / "checkpoint.prev.pt").write_bytes(data)
    (network / "checkpoint.pt").write_bytes(_corrupted(data, "bit flip", np.random.default_rng(1)))
    before = {p.name: p.read_bytes() for p in network.iterdir()}
    cfg = compose_config(CONF, "tree_search", ["task.name=minatar", "task.game=breakout", "task.sticky_action_prob=0.1"])
    sim, _ = make_task(cfg.task, 0)
    with pytest.raises(CheckpointError, match=f"checkpoint {network / 'checkpoint.pt'} is corrupt"):
        load_q_network(network / "checkpoint.pt", sim, "breakout")
    assert {p.name: p.read_bytes() for p in network.iterdir()} == before  # nothing renamed, nothing written


def test_a_valid_checkpoint_copied_from_another_run_is_refused(stopped_run, tmp_path):
    """A seed-1 checkpoint copied into a seed-0 run directory resumed silently: it names its config now."""
    from torchrl_reg.run.checkpoint import ConfigMismatchError

    other = tmp_path / "seed1"
    request_stop_at(40)
    assert m_dqn.train(_cfg(other, "buffer=prioritized", "seed=1"))["status"] == "interrupted"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for name in ("config.yaml", "checkpoint.pt", "checkpoint.prev.pt", "metrics.json"):
        (run_dir / name).write_bytes((stopped_run / name).read_bytes())
    (run_dir / "checkpoint.pt").write_bytes((other / "checkpoint.pt").read_bytes())
    with pytest.raises(ConfigMismatchError, match=f"checkpoint {run_dir / 'checkpoint.pt'} is refused: it was written "
                                                  "by a run of another config"):
        m_dqn.train(_cfg(run_dir, "buffer=prioritized"))
    assert (run_dir / "checkpoint.pt").read_bytes() == (other / "checkpoint.pt").read_bytes()


def test_an_unverified_checkpoint_beside_a_verified_one_is_refused(stopped_run, tmp_path, caplog):
    """A file without the checksum header skipped verification, also as the fallback of a damaged checksummed
    file (2 of 4 bit flips in one resumed with other CSVs). Nothing this version writes lacks the header."""
    for name in ("checkpoint.pt", "checkpoint.prev.pt"):
        (tmp_path / name).write_bytes((stopped_run / name).read_bytes())
    path, previous = tmp_path / "checkpoint.pt", tmp_path / "checkpoint.prev.pt"
    path.write_bytes(_corrupted(path.read_bytes()[40:], "bit flip", np.random.default_rng(2)))  # bare zip, one bit off
    with caplog.at_level(logging.WARNING):
        assert load_checkpoint(path)["frames"] == 40  # the verified previous one
    assert f"checkpoint {path} is refused: it carries no checksum while {previous} beside it does" in caplog.text
    # a damaged verified file whose fallback is unverified: both refused
    (tmp_path / "checkpoint.pt").write_bytes(b"\0" * 64)
    (tmp_path / "checkpoint.prev.pt").write_bytes((stopped_run / "checkpoint.prev.pt").read_bytes()[40:])
    save_checkpoint(tmp_path / "other.pt", {"frames": 1})
    (tmp_path / "checkpoint.pt").write_bytes((tmp_path / "other.pt").read_bytes()[:50])
    with pytest.raises(CheckpointError, match=f"checkpoint {previous} is refused: it carries no checksum"):
        load_checkpoint(path)
    legacy = tmp_path / "legacy" / "checkpoint.pt"  # a run older than checksums: both files unverified, trusted
    legacy.parent.mkdir()
    legacy.write_bytes((stopped_run / "checkpoint.pt").read_bytes()[40:])
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert load_checkpoint(legacy)["frames"] == 80
    assert f"checkpoint {legacy} carries no checksum" in caplog.text and "trusting it unverified" in caplog.text
