"""Reports of finished sweeps: tables with honest statistics, learning curves, Markdown summary.

``python -m torchrl_reg.report SWEEP_DIR ...``; estimators in :mod:`torchrl_reg.report.stats`.
"""
from __future__ import annotations

from torchrl_reg.report.runs import ReportedRun, collect_runs
from torchrl_reg.report.stats import (
    aggregate_mean,
    aggregate_median,
    interquartile_mean,
    last_evaluations_mean,
    normalized_curve_area,
    optimality_gap,
    paired_ratio_ci,
    pooled_std,
    probability_of_improvement,
    stratified_bootstrap_ci,
    stratified_bootstrap_ci_two_sample,
)
from torchrl_reg.report.summary import make_report

__all__ = [
    "ReportedRun",
    "aggregate_mean",
    "aggregate_median",
    "collect_runs",
    "interquartile_mean",
    "last_evaluations_mean",
    "make_report",
    "normalized_curve_area",
    "optimality_gap",
    "paired_ratio_ci",
    "pooled_std",
    "probability_of_improvement",
    "stratified_bootstrap_ci",
    "stratified_bootstrap_ci_two_sample",
]
