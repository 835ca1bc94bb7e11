"""Process set-up of a run: the locked run directory, stop signals, threads, device selection, seeding."""
from __future__ import annotations

import logging
import random
import warnings
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from torchrl_reg.run.rundir import open_run_dir, released_on_error
from torchrl_reg.run.stop import install_stop_signal_handlers
from torchrl_reg.validation import select_device

__all__ = ["open_process", "quiet_third_party_notices", "seed_everything", "start_process"]


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
