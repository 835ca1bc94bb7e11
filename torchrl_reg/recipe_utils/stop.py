"""Cooperative stop flag: a signal or a caller asks the training loop to checkpoint and return.

The loop polls :func:`stop_requested` once per collector batch, writes a checkpoint and returns
``metrics["status"] == "interrupted"``. SLURM sends SIGUSR1 (``--signal``) or SIGTERM before it
kills a job; both only set the flag, so the checkpoint is written from the main loop at a batch
boundary, where every piece of state (env, collector carrier, replay buffer) is consistent.
"""
from __future__ import annotations

import signal
import threading
from collections.abc import Iterable

__all__ = ["request_stop", "request_stop_at", "stop_requested", "clear_stop", "install_stop_signal_handlers"]

_STOP = threading.Event()
_STOP_AT: list[int] = []


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


def _handler(signum: int, frame: object) -> None:
    _STOP.set()


def install_stop_signal_handlers(
    signals: Iterable[int] = (signal.SIGTERM, signal.SIGUSR1),
) -> dict[int, object]:
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
