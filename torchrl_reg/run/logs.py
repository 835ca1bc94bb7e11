"""The run's scalar log: a TorchRL logger (csv, tensorboard) under the run directory, and its CSV files,
which a resumed run cuts back to its checkpoint and the learning curve reads back."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torchrl_reg.envs.ids import require_extra
from torchrl_reg.run.files import descriptor_path, make_dirs, open_file, read_bytes, remove_file, write_atomic
from torchrl_reg.run.rundir import hold_run_subfolder
from torchrl_reg.validation import check_choice

__all__ = ["CSV_DIR", "LOGGER_BACKENDS", "check_logger_backend", "close_logger", "make_logger", "read_csv_scalar",
           "sync_csv_logs", "truncate_csv_logs"]

#: The TorchRL logger backends of ``logger.backend`` (``none``: no logger).
LOGGER_BACKENDS = ("csv", "tensorboard", "wandb", "none")
CSV_DIR = "csv"


def check_logger_backend(backend: Any) -> None:
    """Refuse (``ValueError``, one line) a ``logger.backend`` that is not one of :data:`LOGGER_BACKENDS`, one whose
    package is not installed (``tensorboard``: the extra named) and ``wandb``: wandb writes the run's files by path
    from a service process of its own, which no descriptor of this run can keep to the checked folder (a link swapped
    into the run directory would take them elsewhere)."""
    check_choice("logger.backend", backend, LOGGER_BACKENDS)
    if backend == "wandb":
        raise ValueError(
            "logger.backend='wandb' is refused: wandb writes its files by path from a service process of its own, where "
            "a run directory's files are written only into folders this run has checked and holds open; log with "
            "logger.backend=tensorboard (wandb can import its event files) or csv"
        )
    if backend == "tensorboard":
        require_extra("tensorboard", "logger.backend='tensorboard'")


def make_logger(cfg: Any, run_dir: Path, exp_name: str):
    """A TorchRL logger writing under ``run_dir`` (``cfg.backend``: csv | tensorboard | none;
    :func:`check_logger_backend`).

    CSV scalars land in ``<run_dir>/csv/scalars/<name>.csv`` as ``step,value`` lines, each file opened as every file
    of a run directory is; tensorboard's event files in ``<run_dir>/tensorboard/<exp_name>/``, a folder made from the
    locked run directory's descriptor and named to tensorboard by its own
    (:func:`~torchrl_reg.run.rundir.hold_run_subfolder`).
    """
    check_logger_backend(cfg.backend)
    if cfg.backend == "none":
        return None
    if cfg.backend == "csv":
        return _csv_logger(run_dir)
    from torchrl.record.loggers import TensorboardLogger

    folder = descriptor_path(hold_run_subfolder(run_dir, f"tensorboard/{exp_name}"))
    return TensorboardLogger(exp_name=".", log_dir=folder)


def close_logger(logger: Any) -> None:
    """Close what a logger of :func:`make_logger` holds open: the CSV logger's files (each kept open while the run
    logs), tensorboard's event writer. Idempotent; ``None`` (``logger.backend=none``) is nothing."""
    experiment = getattr(logger, "experiment", None)
    files = getattr(experiment, "files", None)
    if isinstance(files, dict):
        for f in files.values():
            f.close()
        files.clear()
    elif callable(getattr(experiment, "close", None)):  # tensorboard's SummaryWriter
        experiment.close()


def _csv_logger(run_dir: Path):
    """TorchRL's ``CSVLogger`` whose files are opened as every file of a run directory is
    (:func:`~torchrl_reg.run.files.open_file`: no link followed, a regular file of one link, from the run directory's
    held descriptor), each once, then kept open."""
    from torchrl.record.loggers import CSVLogger
    from torchrl.record.loggers.csv import CSVExperiment

    class RunCSVExperiment(CSVExperiment):
        def __init__(self, log_dir: str, **kwargs: Any):
            for sub in ("scalars", "videos", "texts"):
                make_dirs(Path(log_dir) / sub, root=run_dir)
            super().__init__(log_dir, **kwargs)

        def add_scalar(self, name: str, value: float, global_step: int | None = None) -> None:
            if global_step is None:
                global_step = len(self.scalars[name])
            value = float(value)
            self.scalars[name].append((global_step, value))
            path = os.path.join(self.log_dir, "scalars", name + ".csv")
            if path not in self.files:
                self.files[path] = open_file(path, "a", root=run_dir, create_dirs=True)
            self.files[path].write(f"{global_step},{value}\n")
            self.files[path].flush()

    class RunCSVLogger(CSVLogger):
        def _create_experiment(self) -> CSVExperiment:
            return RunCSVExperiment(os.path.join(self.log_dir, self.exp_name), video_format=self.video_format,
                                    video_fps=self.video_fps)

    return RunCSVLogger(exp_name=CSV_DIR, log_dir=str(run_dir))


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
    or stop the resume. A file left without rows is removed. Every file is read as a regular file of one link
    (the run appends to it next: one shared with a ``cp -al`` copy's original is refused, naming it).
    """
    root = Path(run_dir) / CSV_DIR / "scalars"
    if not root.is_dir():
        return
    for path in sorted(root.rglob("*.csv")):
        data = read_bytes(path, "csv", root=run_dir, in_place=True)
        *complete, _partial = data.split(b"\n")  # what follows the last newline is a cut row (or nothing)
        kept, previous = [], -1
        for line in complete:
            step = _csv_row_step(line)
            if step is not None and previous < step and (last_step is not None and step <= last_step):
                kept.append(line + b"\n")
                previous = step
        if not kept:
            remove_file(path, root=run_dir)
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
    if path.exists():
        for line in read_bytes(path, "csv", root=run_dir).split(b"\n"):
            step = _csv_row_step(line)
            if step is not None:
                steps.append(step)
                values.append(float(line.partition(b",")[2]))
    return steps, values
