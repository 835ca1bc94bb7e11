"""The figures of Agarwal et al. 2021 drawn by rliable (its ``plot_utils``), the library readers of these metrics know:
aggregate intervals (IQM, median, mean, optimality gap with their stratified-bootstrap intervals), the performance
profile (the fraction of runs scoring above each tau, with its bootstrap band, over games x runs) and the probability
of improvement between every pair of methods.

rliable is an optional extra (``pip install 'torchrl_reg[report]'``): without it the report says how to get these
figures and still writes every table. The intervals drawn are the report's own (:mod:`torchrl_reg.report.stats`,
which ``tests/report/test_report_rliable.py`` checks against rliable's on the same score matrices); the performance
profile and its band are rliable's ``create_performance_profile``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["FIGURES", "INSTALL_HINT", "rliable_figures", "rliable_missing"]

#: Figure -> its file in the report directory.
FIGURES = {
    "aggregates": "aggregate_intervals.png",
    "profile": "performance_profile.png",
    "improvement": "probability_of_improvement.png",
}
INSTALL_HINT = (
    "pip install 'torchrl_reg[report]' (rliable) for the aggregate-interval, performance-profile and "
    "probability-of-improvement figures"
)
_PAIR = "\t"  # joins a pair's names for rliable's improvement plot (no method label holds a tab)


def rliable_missing() -> str | None:
    """None when rliable and its plotting import, else why not (not installed, or a dependency that fails to import:
    rliable 1.2 pins arch < 8, and arch 7 fails to import under pandas 3, hence the extra's pandas < 3)."""
    try:
        from rliable import library, plot_utils  # noqa: F401
    except Exception as err:  # noqa: BLE001 - an installed rliable whose dependency breaks raises TypeError, not ImportError
        reason = " ".join(str(err).split())[:160]
        return f"rliable does not import ({type(err).__name__}: {reason})"
    return None


def _equal_runs(scores: Mapping[str, Sequence[np.ndarray]]) -> bool:
    counts = {len(s) for tasks in scores.values() for s in tasks}
    return len(counts) == 1


def rliable_figures(
    scores: Mapping[str, Sequence[np.ndarray]],
    aggregate: Mapping[str, Mapping[str, Sequence[float]]],
    improvement: Sequence[Mapping[str, Any]],
    title: str,
    xlabel: str,
    *,
    profile_reps: int = 2000,
) -> tuple[dict[str, Any], list[str]]:
    """``({figure: matplotlib Figure}, notes)``: the three figures (keys of :data:`FIGURES`) of the normalized
    ``scores`` (method -> one array of run scores per environment, the environments in one order for every method),
    the report's ``aggregate`` (method -> estimator -> [point, low, high]) and ``improvement`` rows ({x, y, p}), each
    titled ``title``. A figure that cannot be drawn is left out with a note saying why (the performance profile needs
    as many runs on every environment for every method). rliable must import (:func:`rliable_missing`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from rliable import library, plot_utils

    figures: dict[str, Any] = {}
    notes: list[str] = []
    methods = sorted(aggregate)
    if methods:
        names = list(next(iter(aggregate.values())))
        points = {m: np.array([aggregate[m][n][0] for n in names]) for m in methods}
        intervals = {m: np.array([[aggregate[m][n][1] for n in names], [aggregate[m][n][2] for n in names]]) for m in methods}
        fig, axes = plot_utils.plot_interval_estimates(
            points, intervals, metric_names=names, algorithms=methods, xlabel=xlabel, max_ticks=3,
            row_height=0.45, subfigure_width=3.6, xlabel_y_coordinate=0.03,
        )
        for ax in np.atleast_1d(axes):
            ax.tick_params(axis="x", labelsize=12)
        fig.set_size_inches(3.6 * len(names), 1.9 + 0.45 * len(methods))
        fig.suptitle(f"{title}\n95% stratified bootstrap intervals", fontsize=11, y=0.98)
        fig.subplots_adjust(left=0.16, right=0.98, bottom=0.32, top=0.66, wspace=0.15)
        figures["aggregates"] = fig

        if _equal_runs({m: scores[m] for m in methods}):
            matrices = {m: np.stack([np.asarray(s, dtype=np.float64) for s in scores[m]], axis=1) for m in methods}
            pooled = np.concatenate([x.ravel() for x in matrices.values()])
            low, high = min(0.0, float(pooled.min())), max(1.0, float(pooled.max()))
            taus = np.linspace(low, high, 101)
            profiles, bands = library.create_performance_profile(matrices, taus, reps=profile_reps)
            fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
            plot_utils.plot_performance_profiles(
                profiles, taus, performance_profile_cis=bands, ax=ax, xlabel=fr"{xlabel} ($\tau$)",
                ylabel=r"Fraction of runs with score > $\tau$", labelsize="large", ticklabelsize="medium",
                legend=True, legendsize="small",
            )
            ax.set_title(f"{title}\nperformance profile, 95% stratified bootstrap band", fontsize=10)
            fig.tight_layout()
            figures["profile"] = fig
        else:
            notes.append("no performance profile: it needs as many runs on every environment for every method")
    if improvement:
        estimates = {f"{row['x']}{_PAIR}{row['y']}": row["p"][0] for row in improvement}
        bands = {f"{row['x']}{_PAIR}{row['y']}": np.array(row["p"][1:]) for row in improvement}
        fig, ax = plt.subplots(figsize=(6.5, 1.8 + 0.6 * len(improvement)), dpi=100)
        plot_utils.plot_probability_of_improvement(
            estimates, bands, pair_separator=_PAIR, ax=ax, xticks=[0.0, 0.25, 0.5, 0.75, 1.0],
            labelsize="medium", ticklabelsize="medium",
        )
        ax.set_title(f"{title}\nP(X > Y), 95% stratified bootstrap intervals", fontsize=10)
        fig.tight_layout()
        figures["improvement"] = fig
    return figures, notes
