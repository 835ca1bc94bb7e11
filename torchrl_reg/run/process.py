"""Process set-up of a run: the locked run directory, stop signals, threads, device selection, seeding."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from torchrl_reg.run.rundir import open_run_dir, released_on_error
from torchrl_reg.run.stop import install_stop_signal_handlers
from torchrl_reg.validation import select_device

__all__ = ["open_process", "seed_everything", "start_process"]


def open_process(cfg: DictConfig) -> Path:
    """What every loop does first, on a validated config: create and lock the run directory
    (:func:`~torchrl_reg.run.rundir.open_run_dir`), let SIGTERM, SIGHUP, SIGINT, SIGUSR1 and SIGUSR2
    request a stop, set the torch thread count and seed every RNG. Returns the run directory. Writes no
    file but the lock (``config.yaml`` is written by :meth:`~torchrl_reg.run.contract.Run.start`, after
    the resume step)."""
    run_dir = open_run_dir(cfg)
    with released_on_error(run_dir):  # a failure here leaves no run.lock behind
        install_stop_signal_handlers()
        torch.set_num_threads(cfg.num_threads)
        seed_everything(cfg.seed)
    return run_dir


def start_process(cfg: DictConfig) -> tuple[Path, torch.device]:
    """:func:`open_process` and the device of a training loop (``cfg.device``): ``(run_dir, device)``."""
    run_dir = open_process(cfg)
    with released_on_error(run_dir):  # a device this machine lacks leaves no run.lock behind
        return run_dir, select_device(cfg.device)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and every CUDA device)."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got seed={seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
