"""Logging for recipes: TorchRL loggers, episode returns, tqdm bar, learning-curve PNG, metrics JSON."""
from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDictBase

from torchrl_reg.recipe_utils.config import LOGGER_BACKENDS
from torchrl_reg.validation import check_choice

__all__ = [
    "make_logger",
    "truncate_csv_logs",
    "sync_csv_logs",
    "EpisodeTracker",
    "ProgressBar",
    "plot_learning_curve",
    "moving_mean_label",
    "read_csv_scalar",
    "write_json",
    "mean_last",
    "summary_line",
]

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
            tmp = path.with_suffix(".csv.tmp")
            tmp.write_bytes(b"".join(kept))
            os.replace(tmp, path)


def sync_csv_logs(logger: Any) -> None:
    """fsync the files of a TorchRL ``CSVLogger`` (before a checkpoint: rows it counts as logged are on disk)."""
    experiment = getattr(logger, "experiment", None)
    for f in getattr(experiment, "files", {}).values():
        f.flush()
        os.fsync(f.fileno())


class EpisodeTracker:
    """Returns and lengths of training episodes, summed from collected batches of shape ``[num_envs, T]``.

    Doing this on the collected batch (T small loops over a ``[num_envs]`` tensor) instead of with a
    ``RewardSum`` transform keeps the per-step env overhead down. ``done`` ends an episode
    (terminated or truncated). The reward read is the raw env reward, before any clipping.
    """

    def __init__(self, num_envs: int):
        self.running_return = torch.zeros(num_envs, dtype=torch.float64)
        self.running_length = torch.zeros(num_envs, dtype=torch.int64)
        self.returns: list[float] = []
        self.lengths: list[int] = []
        self.end_frames: list[int] = []

    def update(self, data: TensorDictBase, frames_before: int) -> list[float]:
        """Add a batch collected after ``frames_before`` frames; returns the episodes it completed."""
        # Bookkeeping on the CPU whatever the collector's storing device (one copy per batch).
        reward = data.get(("next", "reward")).reshape(data.shape[0], data.shape[1]).cpu()
        done = data.get(("next", "done")).reshape(data.shape[0], data.shape[1]).cpu()
        num_envs, steps = done.shape
        finished: list[float] = []
        if not bool(done.any()):
            self.running_return += reward.sum(1, dtype=torch.float64)
            self.running_length += steps
            return finished
        for t in range(steps):
            self.running_return += reward[:, t]
            self.running_length += 1
            ended = done[:, t]
            if bool(ended.any()):
                idx = ended.nonzero().squeeze(-1)
                frame = frames_before + (t + 1) * num_envs
                for i in idx.tolist():
                    finished.append(float(self.running_return[i]))
                    self.returns.append(finished[-1])
                    self.lengths.append(int(self.running_length[i]))
                    self.end_frames.append(frame)
                self.running_return[idx] = 0.0
                self.running_length[idx] = 0
        return finished

    def state_dict(self) -> dict[str, Any]:
        return {
            "running_return": self.running_return.clone(),
            "running_length": self.running_length.clone(),
            "returns": torch.tensor(self.returns, dtype=torch.float64),
            "lengths": torch.tensor(self.lengths, dtype=torch.int64),
            "end_frames": torch.tensor(self.end_frames, dtype=torch.int64),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.running_return = state["running_return"].clone()
        self.running_length = state["running_length"].clone()
        self.returns = state["returns"].tolist()
        self.lengths = state["lengths"].tolist()
        self.end_frames = state["end_frames"].tolist()


def mean_last(values: Sequence[float], n: int = 100) -> float:
    """Mean of the last ``n`` values (NaN when there are none): the usual 'final return'."""
    tail = list(values)[-n:]
    return float(sum(tail) / len(tail)) if tail else math.nan


class ProgressBar:
    """tqdm bar over frames (or another ``unit``) showing the recent training return and the steps per second."""

    def __init__(self, total: int, initial: int = 0, enabled: bool = True, desc: str = "train", unit: str = "frames"):
        from tqdm.auto import tqdm

        self._bar = tqdm(total=total, initial=initial, disable=not enabled, unit=unit, desc=desc, dynamic_ncols=True)
        self._t0 = time.perf_counter()
        self._f0 = initial

    def update(self, frames: int, **postfix: float) -> None:
        self._bar.update(frames)
        elapsed = time.perf_counter() - self._t0
        sps = (self._bar.n - self._f0) / elapsed if elapsed > 0 else 0.0
        shown = {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in postfix.items() if v == v}
        self._bar.set_postfix(shown | {"steps/s": f"{sps:.0f}"}, refresh=False)

    def close(self) -> None:
        self._bar.close()


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


def moving_mean_label(num_episodes: int, window: int) -> str:
    """What the smoothed curve averages: the last ``window`` episodes, or all so far when there are fewer."""
    if num_episodes <= window:
        return f"mean of all episodes so far ({num_episodes} in all, fewer than {window})"
    return f"mean of the last {window} episodes"


def plot_learning_curve(
    path: Path,
    train_frames: Sequence[int],
    train_returns: Sequence[float],
    eval_frames: Sequence[int] = (),
    eval_returns: Sequence[float] = (),
    title: str = "",
    window: int = 100,
    xlabel: str = "environment frames",
    panels: Sequence[tuple[str, Sequence[int], Sequence[float]]] = (),
) -> None:
    """Training returns (raw and moving average over ``window`` episodes) and greedy evaluations vs frames
    (``xlabel``), and beside them one panel per ``(label, frames, values)`` of ``panels`` (e.g. VIREL's
    temperature, the policy entropy), on the same frame axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 1 + len(panels), figsize=(7 + 4 * len(panels), 4), dpi=100, squeeze=False)
    ax = axes[0, 0]
    if len(train_returns):
        ax.plot(train_frames, train_returns, color="tab:blue", alpha=0.25, lw=0.8, label="training episode")
        r = torch.tensor(list(train_returns), dtype=torch.float64)
        csum = torch.cat([torch.zeros(1, dtype=torch.float64), r.cumsum(0)])
        idx = torch.arange(1, len(r) + 1)
        lo = (idx - window).clamp(min=0)
        smooth = (csum[idx] - csum[lo]) / (idx - lo)
        ax.plot(train_frames, smooth.tolist(), color="tab:blue", lw=1.8, label=moving_mean_label(len(r), window))
    if len(eval_returns):
        ax.plot(eval_frames, eval_returns, "o-", color="tab:orange", lw=1.5, label="greedy evaluation")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    for side, (label, frames, values) in zip(axes[0, 1:], panels):
        side.plot(frames, values, color="tab:green", lw=1.5)
        side.set_xlabel(xlabel)
        side.set_ylabel(label)
        side.set_title(label)
        side.grid(alpha=0.3)
    fig.tight_layout()
    tmp = Path(path).with_suffix(".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


def write_json(path: Path, obj: Mapping[str, Any]) -> None:
    """Write ``obj`` as indented JSON atomically (temp file + ``os.replace``)."""
    tmp = Path(path).with_suffix(".json.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=float) + "\n")
    os.replace(tmp, path)


def summary_line(metrics: Mapping[str, Any]) -> str:
    """One line of a run's final metrics, what a recipe's command line prints at the end."""
    rates = f"{metrics['steps_per_s']:.0f} steps/s"
    if "updates_per_s" in metrics:
        rates += f", {metrics['updates_per_s']:.0f} updates/s"
    if metrics.get("episodes", 1) == 0 or math.isnan(metrics["final_return"]):
        outcome = "no finished episode (raise collector.total_frames)"
    else:
        outcome = f"final return {metrics['final_return']:.1f}"
    return (
        f"{metrics['status']}: {metrics['frames']} frames in {metrics['wall_time_s']:.0f}s ({rates}), "
        f"{outcome} -> {metrics['run_dir']}"
    )


def report_summary(metrics: Mapping[str, Any]) -> str:
    """Log :func:`summary_line` at INFO (under Hydra: on the console and in the run's ``<recipe>.log``,
    which would otherwise stay empty) and return it."""
    line = summary_line(metrics)
    logging.getLogger("torchrl_reg.recipes").info(line)
    return line
