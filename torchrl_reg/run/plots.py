"""``learning_curve.png``: training returns, their moving mean and the greedy evaluations against frames."""
from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import torch

from torchrl_reg.run.files import write_atomic

__all__ = ["moving_mean_label", "plot_learning_curve"]


def moving_mean_label(num_episodes: int, window: int) -> str:
    """What the smoothed curve averages: the last ``window`` episodes, or all so far when there are fewer."""
    if num_episodes < window:
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
    train_label: str = "training episode",
) -> None:
    """Training returns (raw and moving average over ``window`` episodes) and greedy evaluations vs frames
    (``xlabel``), and beside them one panel per ``(label, frames, values)`` of ``panels`` (e.g. VIREL's
    temperature, the policy entropy), on the same frame axis. ``train_label`` names the episodes in the legend
    (a planning run's are played by a search, not training episodes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 1 + len(panels), figsize=(7 + 4 * len(panels), 4), dpi=100, squeeze=False)
    ax = axes[0, 0]
    if len(train_returns):
        ax.plot(train_frames, train_returns, color="tab:blue", alpha=0.25, lw=0.8, label=train_label)
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
    image = io.BytesIO()
    fig.savefig(image, format="png")
    plt.close(fig)
    write_atomic(path, image.getvalue())
