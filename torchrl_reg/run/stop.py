"""Cooperative stop flag: a signal or a caller asks the training loop to checkpoint and return.

The loop polls :func:`stop_requested` once per collector batch, writes a checkpoint and returns
``metrics["status"] == "interrupted"``; a recipe run from the command line then exits with
:data:`EXIT_INTERRUPTED` (75, ``EX_TEMPFAIL``: "try again later"), so that schedulers and scripts
never mistake a stopped run for a finished one. SLURM sends SIGUSR2 (submitit's
``--signal``), SIGUSR1 (``scancel --signal``) or SIGTERM before it kills a job, Ctrl-C sends
SIGINT, and a closing terminal (or a dropped ssh session) sends SIGHUP: each only sets the flag,
so the checkpoint is written from the main loop at a batch boundary, where every piece of state
(env, collector carrier, replay buffer) is consistent. While
no training loop is running (building the run, or after it returned), and at a second Ctrl-C,
SIGINT raises ``KeyboardInterrupt`` as usual.
"""
from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_NOT_RESUMABLE",
    "STOP_SIGNALS",
    "request_stop",
    "request_stop_at",
    "stop_requested",
    "clear_stop",
    "install_stop_signal_handlers",
    "set_loop_active",
    "loop_active",
    "stop_state",
    "restore_stop_state",
    "exit_if_interrupted",
]

#: Exit status of a recipe whose run was stopped after writing its checkpoint (sysexits' EX_TEMPFAIL).
log = logging.getLogger("torchrl_reg.recipes")

EXIT_INTERRUPTED = 75
#: A stopped run that cannot be resumed (``env.backend='vector'``): a failure, not "try again later".
EXIT_NOT_RESUMABLE = 1
#: Signals that ask a run to checkpoint and stop.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2)

_STOP = threading.Event()
_STOP_AT: list[int] = []
_LOOP_ACTIVE = threading.Event()
#: How many times a stop was acted on (:func:`clear_stop`): tells a run that acted on a request from one that did not.
_CLEARED = [0]


def request_stop() -> None:
    """Ask the (running or next) training loop to checkpoint and return at its next batch boundary."""
    _STOP.set()


def request_stop_at(frames: int) -> None:
    """Ask the training loop to stop at the first batch boundary at or after ``frames`` frames
    (deterministic stops, e.g. to test resuming, or to split a long run into fixed chunks)."""
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 0:
        raise ValueError(f"frames must be an integer >= 0, got frames={frames!r}")
    _STOP_AT[:] = [frames]


def stop_requested(frames: int | None = None) -> bool:
    """Whether a stop was requested (by a call, a signal, or :func:`request_stop_at` once ``frames`` reached it)."""
    return _STOP.is_set() or (frames is not None and bool(_STOP_AT) and frames >= _STOP_AT[0])


def clear_stop() -> None:
    """Reset the flag; the loop calls it once it has acted on a stop, so that one stop ends one run."""
    _STOP.clear()
    _STOP_AT.clear()
    _CLEARED[0] += 1


def stop_state() -> tuple[bool, tuple[int, ...], int]:
    """The stop requests pending now (the flag, the frames of :func:`request_stop_at`) and how many stops were acted
    on so far: what :func:`restore_stop_state` puts back."""
    return _STOP.is_set(), tuple(_STOP_AT), _CLEARED[0]


def restore_stop_state(state: tuple[bool, tuple[int, ...], int]) -> None:
    """End a run's hold on the stop requests (``state``: :func:`stop_state` when it began): a run that acted on a stop
    leaves none pending (one stop ends one run, a request that came after it included); a run that acted on none
    leaves the requests pending when it began, and drops those made while it ran (a Ctrl-C that met a failure)."""
    requested, at, cleared = state
    if _CLEARED[0] != cleared:
        clear_stop()
        return
    (_STOP.set if requested else _STOP.clear)()
    _STOP_AT[:] = list(at)


def set_loop_active(active: bool) -> None:
    """Mark a training loop as running (Ctrl-C then checkpoints and stops) or not (Ctrl-C interrupts)."""
    (_LOOP_ACTIVE.set if active else _LOOP_ACTIVE.clear)()


def loop_active() -> bool:
    """Whether a training loop is marked as running (:func:`set_loop_active`)."""
    return _LOOP_ACTIVE.is_set()


def _handler(signum: int, frame: object) -> None:
    if signum == signal.SIGINT and (not _LOOP_ACTIVE.is_set() or _STOP.is_set()):
        raise KeyboardInterrupt
    if signum == signal.SIGINT:
        print("\nCtrl-C: checkpointing at the end of this batch, then stopping (Ctrl-C again: stop now, "
              "without a checkpoint)", file=sys.stderr, flush=True)
    _STOP.set()


def install_stop_signal_handlers(signals: Iterable[int] = STOP_SIGNALS) -> dict[int, object]:
    """Make ``signals`` set the stop flag; returns the previous handlers.

    Only possible from the main thread (a Python rule); elsewhere nothing is installed and an
    empty dict is returned, the flag can still be set with :func:`request_stop`.
    """
    previous: dict[int, object] = {}
    if threading.current_thread() is not threading.main_thread():
        return previous
    for sig in signals:
        previous[sig] = signal.signal(sig, _handler)
    return previous


def exit_if_interrupted(metrics: Mapping[str, Any]) -> None:
    """End the process with :data:`EXIT_INTERRUPTED` if the run was stopped (its checkpoint is
    written); a completed run returns, so that a Hydra multirun goes on to its next job.

    A stopped run whose checkpoint cannot be continued (``metrics["resumable"]`` false: ``env.backend='vector'``)
    exits with :data:`EXIT_NOT_RESUMABLE` instead: 75 would tell a scheduler to run it again, and the rerun would
    be refused."""
    if metrics.get("status") == "completed":
        return
    if metrics.get("resumable", True) is False:
        log.error(
            "the run was stopped and cannot be resumed (env.backend='vector': ale-py's vector env cannot save its "
            "emulators); start it again in a new run_dir, or train with env.backend=wrappers where a run must "
            "survive a stop"
        )
        sys.exit(EXIT_NOT_RESUMABLE)
    sys.exit(EXIT_INTERRUPTED)
