"""Process set-up of a run: the locked run directory, stop signals, threads, device selection, seeding; and the
scope that gives the process back as it was found when the loop returns or raises (:func:`process_scope`)."""
from __future__ import annotations

import functools
import logging
import random
import signal
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from omegaconf import DictConfig

from torchrl_reg.run.rundir import held_run_dirs, open_run_dir, release_run_dir, released_on_error
from torchrl_reg.run.stop import (
    STOP_SIGNALS,
    install_stop_signal_handlers,
    loop_active,
    restore_stop_state,
    set_loop_active,
    stop_state,
)
from torchrl_reg.validation import select_device

__all__ = [
    "open_process", "process_scope", "quiet_third_party_notices", "release_at_exit", "scoped_loop", "seed_everything",
    "start_process",
]

Loop = TypeVar("Loop", bound=Callable[..., Any])
log = logging.getLogger(__name__)
#: What each open :func:`process_scope` closes when it ends, innermost last (:func:`release_at_exit`).
_RELEASES: list[list[Callable[[], None]]] = []


def release_at_exit(release: Callable[[], None]) -> None:
    """Have the innermost :func:`process_scope` call ``release`` when it ends, after a failure as after a success
    (what a run holds open besides its directory: its logger's files, its collector's envs); ``release`` must be
    idempotent (a run that finished has called it already). Outside a scope, nothing: the caller closes what it
    opened."""
    if _RELEASES:
        _RELEASES[-1].append(release)


@contextmanager
def process_scope() -> Iterator[None]:
    """Give the process back as the block found it, whether the block returns or raises (a notebook that calls
    ``train(cfg)`` again and again, failing or not, keeps a process like a fresh one):

    * every run directory the block locked is released (its ``run.lock`` removed, its descriptors closed:
      :func:`~torchrl_reg.run.rundir.release_run_dir`), so that no later run in this process writes through a
      descriptor of a folder renamed since, and no other process sees the run as still running;
    * the loop-active flag is put back (after a failed loop, Ctrl-C interrupts again instead of asking a loop
      that is gone to stop), and so are the stop requests (:func:`~torchrl_reg.run.stop.restore_stop_state`: a
      stop the loop acted on leaves none pending; one made while a loop failed is dropped);
    * what a run registered with :func:`release_at_exit` is closed (a :class:`~torchrl_reg.run.Run`: its logger's
      files and its collector), so no descriptor of the run outlives it;
    * the handlers of :data:`~torchrl_reg.run.stop.STOP_SIGNALS` are the ones before the block (SIGTERM ends
      the process again, Ctrl-C raises ``KeyboardInterrupt``), and so is torch's CPU thread count.

    What a loop sets for its run and nothing after it reads (the seeds of the RNGs, the two notices
    :func:`quiet_third_party_notices` silences) stays."""
    main = threading.current_thread() is threading.main_thread()
    handlers = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS} if main else {}
    held = set(held_run_dirs())
    active, stops, threads = loop_active(), stop_state(), torch.get_num_threads()
    _RELEASES.append([])
    try:
        yield
    finally:
        try:
            for release in reversed(_RELEASES.pop()):
                try:
                    release()
                except Exception as err:  # noqa: BLE001 -- a close that fails must not hide the run's own error
                    log.warning("closing %r after the run failed: %s", release, err)
            for run_dir in held_run_dirs():
                if run_dir not in held:
                    release_run_dir(run_dir)
        finally:
            set_loop_active(active)
            restore_stop_state(stops)
            for sig, handler in handlers.items():
                if handler is not None:  # None: a handler installed outside Python, which signal cannot put back
                    signal.signal(sig, handler)
            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)


def scoped_loop(loop: Loop) -> Loop:
    """``loop`` (a family's ``train(cfg)``) run inside :func:`process_scope`: every loop returns the process as it
    found it, on success and on failure."""

    @functools.wraps(loop)
    def scoped(*args: Any, **kwargs: Any) -> Any:
        with process_scope():
            return loop(*args, **kwargs)

    scoped.process_scoped = True  # type: ignore[attr-defined]  # what the registry test of the loops checks
    return scoped  # type: ignore[return-value]


def open_process(cfg: DictConfig) -> Path:
    """What every loop does first, on a validated config: create and lock the run directory
    (:func:`~torchrl_reg.run.rundir.open_run_dir`), let SIGTERM, SIGHUP, SIGINT, SIGUSR1 and SIGUSR2
    request a stop, set the torch thread count, silence two notices of other libraries that say nothing about
    the run (:func:`quiet_third_party_notices`) and seed every RNG. Returns the run directory. Writes no
    file but the lock (``config.yaml`` is written by :meth:`~torchrl_reg.run.contract.Run.start`, after
    the resume step)."""
    run_dir = open_run_dir(cfg)
    with released_on_error(run_dir):  # a failure here leaves no run.lock behind
        install_stop_signal_handlers()
        quiet_third_party_notices()
        torch.set_num_threads(cfg.num_threads)
        seed_everything(cfg.seed)
    return run_dir


def start_process(cfg: DictConfig) -> tuple[Path, torch.device]:
    """:func:`open_process` and the device of a training loop (``cfg.device``): ``(run_dir, device)``."""
    run_dir = open_process(cfg)
    with released_on_error(run_dir):  # a device this machine lacks leaves no run.lock behind
        return run_dir, select_device(cfg.device)


class _DropMessage(logging.Filter):
    """Drops a logger's records whose message starts with ``prefix``; lets every other through."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


#: The torch logger that says, when ``torch.compile`` first builds a CPU kernel on a machine with a CUDA toolkit
#: but no GPU, that it found no CUDA runtime: true, and nothing a CPU run needs.
_CPP_EXTENSION_LOGGER = "torch.utils.cpp_extension"
_NO_CUDA_RUNTIME = "No CUDA runtime is found"


def quiet_third_party_notices() -> None:
    """Silence, for this process, two notices that other libraries print during a compiled run and that say
    nothing about it: torch's "No CUDA runtime is found" (its ``torch.utils.cpp_extension`` logger, that record
    only) and the ``FutureWarning`` that torch raises when tensordict's ``to_module`` reads the deprecated
    ``torch._dynamo.config.inline_inbuilt_nn_modules`` under ``torch.compile`` (that message, from
    ``tensordict.utils`` only). Every other record and warning of both libraries still shows. Idempotent."""
    cpp_extension = logging.getLogger(_CPP_EXTENSION_LOGGER)
    if not any(isinstance(f, _DropMessage) and f.prefix == _NO_CUDA_RUNTIME for f in cpp_extension.filters):
        cpp_extension.addFilter(_DropMessage(_NO_CUDA_RUNTIME))
    warnings.filterwarnings(
        "ignore", message=r"torch\._dynamo\.config\.inline_inbuilt_nn_modules is deprecated", category=FutureWarning,
        module=r"tensordict\.utils",
    )


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and every CUDA device)."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got seed={seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
