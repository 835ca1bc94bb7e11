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

__all__ = ["request_stop", "stop_requested", "clear_stop", "install_stop_signal_handlers"]

_STOP = threading.Event()


def request_stop() -> None:
    """Ask the running training loop to checkpoint and return at its next batch boundary."""
    _STOP.set()


def stop_requested() -> bool:
    """Whether a stop was requested since the last :func:`clear_stop`."""
    return _STOP.is_set()


def clear_stop() -> None:
    """Reset the flag; ``train`` calls it when it starts so that one stop ends one run."""
    _STOP.clear()


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
