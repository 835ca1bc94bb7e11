"""Process set-up of a run: seeding, threads, device selection, the run directory, stop signals."""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from torchrl_reg.recipe_utils.stop import install_stop_signal_handlers
from torchrl_reg.validation import select_device  # re-exported: the device check lives with the other checks

__all__ = ["seed_everything", "select_device", "resolve_run_dir", "crossed", "start_process"]


def start_process(cfg: DictConfig) -> tuple[Path, torch.device]:
    """What every loop does first, on a validated config: create and lock the run directory
    (:func:`~torchrl_reg.recipe_utils.rundir.open_run_dir`), let SIGTERM, SIGHUP, SIGINT, SIGUSR1 and SIGUSR2
    request a stop, set the torch thread count, pick the device and seed every RNG. Returns
    ``(run_dir, device)``. Writes no file but the lock (``config.yaml`` is written by
    :meth:`~torchrl_reg.recipe_utils.run.RecipeRun.start`, after the resume step)."""
    from torchrl_reg.recipe_utils.rundir import open_run_dir

    run_dir = open_run_dir(cfg)
    install_stop_signal_handlers()
    torch.set_num_threads(cfg.num_threads)
    device = select_device(cfg.device)
    seed_everything(cfg.seed)
    return run_dir, device


def crossed(interval: int, frames: int, batch_frames: int) -> bool:
    """Whether the last batch of ``batch_frames`` frames crossed a multiple of ``interval`` frames (0: never)."""
    return interval > 0 and frames // interval > (frames - batch_frames) // interval


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and every CUDA device)."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got seed={seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_run_dir(run_dir: str | None) -> Path:
    """The run directory: ``run_dir`` when given, else Hydra's output directory, else the working directory.

    Hydra's output directory is only known inside a ``@hydra.main`` call; a programmatic
    ``train(cfg)`` passes ``run_dir`` explicitly (or runs in the current directory).
    """
    if run_dir is not None:
        path = Path(run_dir)
    else:
        from hydra.core.hydra_config import HydraConfig

        path = Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else Path(os.getcwd())
    path.mkdir(parents=True, exist_ok=True)
    return path
