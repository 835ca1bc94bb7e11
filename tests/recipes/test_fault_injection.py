"""Fault injection: a tiny m_dqn run SIGKILLed again and again, at random moments and
inside its checkpoint writes, then resumed, ends byte-identical to its uninterrupted twin."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tests.slurm.sweep_testlib import assert_logged_once, comparable_metrics, csv_logs

REPO = Path(__file__).resolve().parents[2]

# One process imports everything once, then forks a child per attempt (a fresh interpreter per
# attempt would cost seconds of imports each). A child either runs to the end ("twin", "final")
# or dies by SIGKILL: sent by a timer thread at a random moment ("time"), or sent by itself in
# the middle of its k-th checkpoint: after writing a random part of the temporary file ("write"),
# or after the previous checkpoint was rotated to checkpoint.prev.pt and before the new one is
# renamed into place ("rename"). The parent only waits and reports.
DRIVER = textwrap.dedent(
    """
    import json, os, random, signal, sys, threading
    import torch
    from recipes import m_dqn
    from torchrl_reg.configs import compose_config
    from torchrl_reg.run import checkpoint as ckpt

    conf, twin_dir, run_dir, plan = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    overrides = json.loads(sys.argv[5])

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    def child(kind, arg, fraction, directory):
        if kind == "time":
            threading.Timer(arg, die).start()
        elif kind in ("write", "rename"):
            calls = [0]
            real_save, real_replace = torch.save, os.replace

            def save(obj, f, *a, **k):
                calls[0] += 1
                if kind == "write" and calls[0] == arg:
                    real_save(obj, f, *a, **k)
                    f = f.file  # the temporary file under save_checkpoint's hashing writer
                    f.flush()
                    f.truncate(int(f.tell() * fraction))
                    f.flush()
                    die()
                return real_save(obj, f, *a, **k)

            def replace(src, dst, **dir_fds):
                if kind == "rename" and calls[0] == arg and str(dst).endswith("checkpoint.pt"):
                    die()
                return real_replace(src, dst, **dir_fds)

            ckpt.torch.save = save
            ckpt.os.replace = replace
        m_dqn.train(compose_config(conf, "m_dqn", [*overrides, f"run_dir={directory}"]))

    report = []
    for kind, arg, fraction in [["twin", 0, 0]] + plan + [["final", 0, 0]]:
        directory = twin_dir if kind == "twin" else run_dir
        pid = os.fork()
        if pid == 0:
            try:
                child(kind, arg, fraction, directory)
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        left = sorted(p for p in os.listdir(run_dir)) if os.path.isdir(run_dir) else []
        saved = os.path.join(run_dir, "checkpoint.pt")
        frames = ckpt.load_checkpoint(saved)["frames"] if os.path.exists(saved) else None
        report.append({"kind": kind, "arg": arg, "killed": killed, "files": left, "checkpoint_frames": frames})
    print("REPORT " + json.dumps(report), flush=True)
    """
)

OVERRIDES = [
    "compile=false",
    "collector.total_frames=1600",
    "collector.num_envs=4",
    "collector.frames_per_batch=40",
    "optim.learning_starts=80",
    "optim.frames_per_update=4",
    "optim.target_update_interval=40",
    "buffer.size=1000",
    "buffer.batch_size=16",
    "buffer=prioritized",
    "exploration.annealing_frames=800",
    "eval.interval=400",
    "eval.episodes=2",
    "eval.max_steps=50",
    "checkpoint.interval=40",
    "logger.interval=40",
    "logger.progress_bar=false",
    "num_threads=1",
]


@pytest.mark.slow
def test_sigkilled_at_random_points_and_resumed_equals_the_uninterrupted_twin(tmp_path):
    import random

    rng = random.Random(26)
    plan = [
        ["write", 1, rng.random()],  # inside the very first checkpoint: no checkpoint yet, rows logged
        ["time", rng.uniform(0.5, 2.0), 0],
        ["write", rng.randint(2, 5), rng.random()],
        ["rename", rng.randint(1, 5), 0],
        ["time", rng.uniform(0.5, 2.0), 0],
        ["write", rng.randint(1, 5), rng.random()],
        ["time", rng.uniform(0.5, 2.0), 0],
    ]
    twin, run = tmp_path / "twin", tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, str(REPO / "recipes" / "conf"), str(twin), str(run), json.dumps(plan), json.dumps(OVERRIDES)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("REPORT "))[7:])
    twin_report, *attempts, final = report
    assert not twin_report["killed"] and not final["killed"], report
    # every checkpoint fault fired (they all fall inside the run); a timed kill may come after the end
    assert all(a["killed"] for a in attempts if a["kind"] != "time"), report
    assert sum(a["killed"] for a in attempts) >= len(attempts) - 1, report
    # the first kill hit the first checkpoint write: nothing to resume from, only logged rows
    assert "checkpoint.pt" not in attempts[0]["files"] and "csv" in attempts[0]["files"], report

    assert comparable_metrics(twin)["status"] == "completed" and comparable_metrics(twin)["frames"] == 1600
    assert comparable_metrics(run) == comparable_metrics(twin)
    assert csv_logs(run) == csv_logs(twin)
    for directory in (twin, run):
        assert_logged_once(directory)
        for name in ("csv/scalars/train/epsilon.csv", "csv/scalars/eval/return.csv"):
            assert (directory / name).read_bytes() == (twin / name).read_bytes()
    assert not (run / "run.lock").exists()
