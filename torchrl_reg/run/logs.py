"""The run's scalar log: a TorchRL logger (csv, tensorboard, wandb) under the run directory, and its CSV files,
which a resumed run cuts back to its checkpoint and the learning curve reads back."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torchrl_reg.run.files import write_atomic
from torchrl_reg.validation import check_choice

__all__ = ["CSV_DIR", "LOGGER_BACKENDS", "make_logger", "read_csv_scalar", "sync_csv_logs", "truncate_csv_logs"]

#: The TorchRL logger backends of ``logger.backend`` (``none``: no logger).
LOGGER_BACKENDS = ("csv", "tensorboard", "wandb", "none")
CSV_DIR = "csv"


def make_logger(cfg: Any, run_dir: Path, exp_name: str):
    """A TorchRL logger writing under ``run_dir`` (``cfg.backend``: csv | tensorboard | wandb | none).

    CSV scalars land in ``<run_dir>/csv/scalars/<name>.csv`` as ``step,value`` lines.
    """
    check_choice("logger.backend", cfg.backend, LOGGER_BACKENDS)
    if cfg.backend == "none":
        return None
    if cfg.backend == "csv":
        from torchrl.record.loggers import CSVLogger

        return CSVLogger(exp_name=CSV_DIR, log_dir=str(run_dir))
    if cfg.backend == "tensorboard":
        from torchrl.record.loggers import TensorboardLogger

        return TensorboardLogger(exp_name=exp_name, log_dir=str(run_dir / "tensorboard"))
    from torchrl.record.loggers import WandbLogger

    return WandbLogger(exp_name=exp_name, save_dir=str(run_dir), project=cfg.project, id=exp_name, resume="allow")


def _csv_row_step(line: bytes) -> int | None:
    """The step of a complete ``step,value`` row, ``None`` for anything else (NUL bytes, a cut row, garbage)."""
    step, sep, value = line.partition(b",")
    if not sep or not step.isdigit() or not value or not value.isascii():
        return None
    try:
        float(value)
    except ValueError:
        return None
    return int(step)


def truncate_csv_logs(run_dir: Path, last_step: int | None) -> None:
    """Keep only the CSV rows a resumed run must not log again: those up to ``last_step``.

    A run killed after its last checkpoint logged rows that the resumed run logs again; a run
    killed before its first checkpoint starts over (``last_step=None``: every row goes). Only
    complete, well-formed rows are kept, with strictly increasing steps: a kill mid-write leaves a
    last row without its newline, a crash can leave NUL-filled blocks, and neither may survive
    or stop the resume. A file left without rows is removed.
    """
    root = Path(run_dir) / CSV_DIR / "scalars"
    if not root.is_dir():
        return
    for path in root.rglob("*.csv"):
        data = path.read_bytes()
        *complete, _partial = data.split(b"\n")  # what follows the last newline is a cut row (or nothing)
        kept, previous = [], -1
        for line in complete:
            step = _csv_row_step(line)
            if step is not None and previous < step and (last_step is not None and step <= last_step):
                kept.append(line + b"\n")
                previous = step
        if not kept:
            path.unlink()
        elif len(kept) != len(complete) or _partial:
            write_atomic(path, b"".join(kept))


def sync_csv_logs(logger: Any) -> None:
    """fsync the files of a TorchRL ``CSVLogger`` (before a checkpoint: rows it counts as logged are on disk)."""
    experiment = getattr(logger, "experiment", None)
    for f in getattr(experiment, "files", {}).values():
        f.flush()
        os.fsync(f.fileno())


def read_csv_scalar(run_dir: Path, key: str) -> tuple[list[int], list[float]]:
    """``(steps, values)`` of the CSV scalar ``key`` (e.g. ``"train/temperature"``); empty when not logged."""
    path = Path(run_dir) / CSV_DIR / "scalars" / f"{key}.csv"
    steps, values = [], []
    if path.is_file():
        for line in path.read_bytes().split(b"\n"):
            step = _csv_row_step(line)
            if step is not None:
                steps.append(step)
                values.append(float(line.partition(b",")[2]))
    return steps, values
