"""Aggregate estimators and stratified-bootstrap confidence intervals for RL results.

Agarwal et al. 2021, "Deep Reinforcement Learning at the Edge of the Statistical Precipice"
(NeurIPS; the ``rliable`` library): report the interquartile mean (IQM), mean, median and optimality
gap of normalized scores across runs and tasks, each with a 95% percentile confidence interval from a
*stratified* bootstrap (runs are resampled with replacement within each task, never across tasks),
and the average probability of improvement P(X > Y) between two methods.

Scores are given per task as a list of 1-D arrays, one array of per-run scores for each task, so a
task may have fewer runs than another (a missing seed). With equal run counts the estimators equal
rliable's on the ``(num_runs, num_tasks)`` matrix. Every estimator is vectorized over leading axes:
an array of shape ``(reps, n_runs)`` per task yields ``reps`` values at once, which is how the
bootstrap evaluates its resamples.

A run's score can also be read off its whole evaluation curve rather than its last point, which one noisy
evaluation can swing (a Hopper agent scoring 3073, 2718 and 756 at its last three evaluations):
:func:`last_evaluations_mean` (the mean of the last evaluations, 80k-100k for a 100k-step run evaluated every
10k) and :func:`normalized_curve_area` (the area under the curve divided by the frames it spans).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats as _scipy_stats

from torchrl_reg.validation import check_memory

__all__ = [
    "bootstrap_bytes",
    "check_reps",
    "interquartile_mean",
    "aggregate_mean",
    "aggregate_median",
    "last_evaluations_mean",
    "normalized_curve_area",
    "optimality_gap",
    "paired_ratio_ci",
    "pooled_std",
    "probability_of_improvement",
    "stratified_bootstrap_ci",
    "stratified_bootstrap_ci_two_sample",
    "ESTIMATORS",
]

TaskScores = Sequence[np.ndarray]
"""One array per task whose last axis holds the runs' scores on that task."""


def _as_tasks(scores: TaskScores) -> list[np.ndarray]:
    tasks = [np.asarray(s, dtype=np.float64) for s in scores]
    if not tasks:
        raise ValueError("scores must hold at least one task, got an empty list")
    for t, s in enumerate(tasks):
        if s.shape[-1] == 0:
            raise ValueError(f"task {t} has no runs: every task needs at least one score")
    return tasks


def _task_means(tasks: list[np.ndarray]) -> np.ndarray:
    return np.stack([s.mean(axis=-1) for s in tasks], axis=-1)


def interquartile_mean(scores: TaskScores) -> np.ndarray:
    """IQM: the mean of the middle 50% of all run scores pooled across tasks.

    ``scipy.stats.trim_mean(x, 0.25)`` on the pooled runs, as ``rliable.metrics.aggregate_iqm``:
    ``floor(0.25 * n)`` scores are cut from each end of the ``n`` pooled scores.
    """
    pooled = np.concatenate(_as_tasks(scores), axis=-1)
    return np.asarray(_scipy_stats.trim_mean(pooled, proportiontocut=0.25, axis=-1))


def aggregate_mean(scores: TaskScores) -> np.ndarray:
    """Mean over tasks of each task's mean over runs."""
    return _task_means(_as_tasks(scores)).mean(axis=-1)


def aggregate_median(scores: TaskScores) -> np.ndarray:
    """Median over tasks of each task's mean over runs."""
    return np.median(_task_means(_as_tasks(scores)), axis=-1)


def optimality_gap(scores: TaskScores, gamma: float = 1.0) -> np.ndarray:
    """``gamma - mean(min(score, gamma))``: how far normalized scores fall short of ``gamma``.

    Averaged per task then across tasks (rliable pools all runs; identical with equal run counts).
    """
    tasks = _as_tasks(scores)
    return gamma - _task_means([np.minimum(s, gamma) for s in tasks]).mean(axis=-1)


def probability_of_improvement(scores_x: TaskScores, scores_y: TaskScores) -> np.ndarray:
    """Average over tasks of P(X_m > Y_m), ties counting one half.

    For one task, P(X > Y) is the Mann-Whitney U statistic of X against Y divided by ``n * m``:
    the fraction of (run of X, run of Y) pairs in which X scores higher. Scores need no
    normalization (only their order within a task matters).
    """
    xs, ys = _as_tasks(scores_x), _as_tasks(scores_y)
    if len(xs) != len(ys):
        raise ValueError(f"both methods need the same tasks, got {len(xs)} and {len(ys)} tasks")
    per_task = []
    for x, y in zip(xs, ys):
        diff = x[..., :, None] - y[..., None, :]
        per_task.append((diff > 0).mean(axis=(-2, -1)) + 0.5 * (diff == 0).mean(axis=(-2, -1)))
    return np.stack(per_task, axis=-1).mean(axis=-1)


def _curve(frames: Sequence[float], values: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(frames, dtype=np.float64), np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"frames and values must be 1-D and of one length, got shapes {x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError(f"an evaluation curve must be finite, got frames={x.tolist()} and values={y.tolist()}")
    if (np.diff(x) <= 0).any():
        raise ValueError(f"evaluation frames must increase strictly, got {x.tolist()}")
    return x, y


def last_evaluations_mean(frames: Sequence[float], values: Sequence[float], count: int = 3) -> float:
    """The mean of the last ``count`` evaluations of one run (its frames only checked to increase).

    For a 100k-step run evaluated every 10k, ``count=3`` averages the evaluations at 80k, 90k and 100k. A curve
    with fewer than ``count`` evaluations is refused: a shorter window would be another score.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be an integer >= 1, got count={count!r}")
    _, y = _curve(frames, values)
    if y.size < count:
        raise ValueError(f"the mean of the last {count} evaluations needs {count} of them, the curve has {y.size}")
    return float(y[-count:].mean())


def normalized_curve_area(frames: Sequence[float], values: Sequence[float]) -> float:
    """The area under one run's evaluation curve (trapezoids between evaluations) divided by the frames it spans,
    from the first evaluation to the last: the curve's average return, in return units.

    A constant curve scores its constant; a run that learns early scores above one that reaches the same final
    return late. Runs compare only over the same evaluation frames (the caller checks them).
    """
    x, y = _curve(frames, values)
    if x.size < 2:
        raise ValueError(f"the area under an evaluation curve needs at least 2 evaluations, got {x.size}")
    area = float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))
    return area / float(x[-1] - x[0])


ESTIMATORS: dict[str, Callable[[TaskScores], np.ndarray]] = {
    "IQM": interquartile_mean,
    "Mean": aggregate_mean,
    "Median": aggregate_median,
    "Optimality gap": optimality_gap,
}


def bootstrap_bytes(reps: int, runs: int) -> int:
    """An upper estimate of the memory of ``reps`` resamples of ``runs`` runs: ``32 * reps * runs`` bytes, the
    resampled indices (int64) and scores (float64) and as much again for a statistic's sorted or masked copy."""
    return 32 * reps * max(runs, 1)


def check_reps(reps: int, runs: int = 1) -> int:
    """``reps`` when it is an integer >= 1 whose bootstrap of ``runs`` runs fits this machine's memory
    (:func:`bootstrap_bytes` against :func:`~torchrl_reg.validation.available_memory`); else ``ValueError`` naming it,
    before anything is drawn. With ``runs=1`` (the least a report resamples) it is the check of ``--reps`` itself."""
    if isinstance(reps, bool) or not isinstance(reps, int) or reps < 1:
        raise ValueError(f"reps must be an integer >= 1, got reps={reps!r}")
    check_memory("reps", reps, bootstrap_bytes(reps, runs), f"bootstrap: {reps} resamples x {max(runs, 1)} runs x 32 B")
    return reps


def _check_ci_args(reps: int, confidence: float, runs: int = 1) -> None:
    check_reps(reps, runs)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got confidence={confidence!r}")


def _resample(tasks: list[np.ndarray], reps: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``reps`` resamples of each task's runs, with replacement, within that task only."""
    return [s[rng.integers(0, s.shape[-1], size=(reps, s.shape[-1]))] for s in tasks]


def _percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


def stratified_bootstrap_ci(
    scores: TaskScores,
    statistic: Callable[[TaskScores], np.ndarray],
    *,
    reps: int = 50_000,
    confidence: float = 0.95,
    seed: int | None = 0,
) -> tuple[float, float, float]:
    """``(point estimate, low, high)``: percentile interval of ``statistic`` under a stratified bootstrap.

    Each of ``reps`` resamples draws, for every task independently, as many runs as that task has,
    with replacement from that task's runs (rliable's ``StratifiedBootstrap`` with
    ``method="percentile"``). ``statistic`` must be vectorized like the estimators of this module.
    """
    tasks = _as_tasks(scores)
    _check_ci_args(reps, confidence, sum(t.shape[-1] for t in tasks))
    point = float(statistic(tasks))
    values = np.asarray(statistic(_resample(tasks, reps, np.random.default_rng(seed))))
    return (point, *_percentile_interval(values, confidence))


def stratified_bootstrap_ci_two_sample(
    scores_x: TaskScores,
    scores_y: TaskScores,
    statistic: Callable[[TaskScores, TaskScores], np.ndarray] = probability_of_improvement,
    *,
    reps: int = 50_000,
    confidence: float = 0.95,
    seed: int | None = 0,
) -> tuple[float, float, float]:
    """As :func:`stratified_bootstrap_ci` for a statistic of two methods, resampled independently.

    rliable's ``StratifiedIndependentBootstrap``: the runs of X and the runs of Y are resampled
    separately within each task.
    """
    xs, ys = _as_tasks(scores_x), _as_tasks(scores_y)
    _check_ci_args(reps, confidence, sum(t.shape[-1] for t in (*xs, *ys)))
    point = float(statistic(xs, ys))
    rng = np.random.default_rng(seed)
    values = np.asarray(statistic(_resample(xs, reps, rng), _resample(ys, reps, rng)))
    return (point, *_percentile_interval(values, confidence))


def paired_ratio_ci(
    x: Sequence[float],
    y: Sequence[float],
    *,
    reps: int = 50_000,
    confidence: float = 0.95,
    seed: int | None = 0,
) -> tuple[float, float, float]:
    """``(ratio, low, high)``: ``sum(x) / sum(y)`` (the ratio of the means) over paired runs, with a percentile
    interval from a paired bootstrap.

    ``x[i]`` and ``y[i]`` are two methods' scores on the same seed and task (e.g. a method and its baseline). Each
    resample draws ``n`` pair indices with replacement and keeps the pairs whole, so what the seeds share (the
    environment's randomness, a hard seed) cancels in the ratio. The baseline's scores must be positive: a ratio
    to a sum that can reach zero or change sign has no meaning, and it is refused rather than reported.
    """
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    _check_ci_args(reps, confidence, 2 * xs.size)
    if xs.ndim != 1 or xs.shape != ys.shape or xs.size == 0:
        raise ValueError(f"x and y must be paired 1-D score lists of the same nonzero length, got shapes {xs.shape} and {ys.shape}")
    if not (np.isfinite(xs).all() and np.isfinite(ys).all()):
        raise ValueError(f"scores must be finite, got x={xs.tolist()} and y={ys.tolist()}")
    if (ys <= 0).any():
        raise ValueError(f"the baseline's scores y must all be > 0 for a ratio, got y={ys.tolist()}")
    idx = np.random.default_rng(seed).integers(0, xs.size, size=(reps, xs.size))
    values = xs[idx].sum(axis=-1) / ys[idx].sum(axis=-1)
    return (float(xs.sum() / ys.sum()), *_percentile_interval(values, confidence))


def pooled_std(a: Sequence[float], b: Sequence[float]) -> float:
    """The pooled sample standard deviation of two groups of seeds:
    ``sqrt(((n_a - 1) var_a + (n_b - 1) var_b) / (n_a + n_b - 2))`` with sample variances (``ddof=1``).

    The yardstick of targets such as "a method's mean >= the baseline's mean - one pooled std" over seeds.
    """
    xs, ys = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if xs.ndim != 1 or ys.ndim != 1 or xs.size < 2 or ys.size < 2:
        raise ValueError(f"a pooled std needs two 1-D groups of 2 or more scores, got shapes {xs.shape} and {ys.shape}")
    dof = xs.size + ys.size - 2
    return float(np.sqrt(((xs.size - 1) * xs.var(ddof=1) + (ys.size - 1) * ys.var(ddof=1)) / dof))
