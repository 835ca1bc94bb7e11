"""The report's estimators (torchrl_reg.report.stats) agree with rliable's on the same (runs x games) score matrices:
point estimates exactly, stratified-bootstrap intervals to the bootstrap's own spread (fixed seeds, both sides)."""
from __future__ import annotations

import numpy as np
import pytest

from torchrl_reg.report.rliable_figures import rliable_missing
from torchrl_reg.report.stats import (
    ESTIMATORS,
    probability_of_improvement,
    stratified_bootstrap_ci,
    stratified_bootstrap_ci_two_sample,
)

pytestmark = pytest.mark.skipif(rliable_missing() is not None, reason=f"the comparison needs rliable: {rliable_missing()}")

REPS = 2000
# The intervals here are ~0.3 wide; two independent bootstraps of 2000 resamples put their bounds within ~0.016 of
# each other (measured over three seeds): 0.04 is the bootstrap's tolerance, not a loose fit. rliable evaluates one
# resample per Python call, so more resamples cost CI seconds, not precision the comparison needs.
TOLERANCE = 0.04


def _matrices() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    # 5 runs x 6 games of human-normalized-like scores, skewed as Atari scores are.
    return {"a": rng.gamma(2.0, 0.5, size=(5, 6)), "b": rng.gamma(2.0, 0.35, size=(5, 6))}


def _rliable_metrics():
    from rliable import metrics

    return {
        "IQM": metrics.aggregate_iqm,
        "Mean": metrics.aggregate_mean,
        "Median": metrics.aggregate_median,
        "Optimality gap": metrics.aggregate_optimality_gap,
    }


def test_point_estimates_equal_rliables():
    from rliable import metrics

    theirs = _rliable_metrics()
    assert set(theirs) == set(ESTIMATORS)
    for x in _matrices().values():
        tasks = list(x.T)  # one array of runs per game
        for name, fn in ESTIMATORS.items():
            assert float(fn(tasks)) == pytest.approx(float(theirs[name](x)), abs=1e-12), name
    a, b = _matrices().values()
    assert float(probability_of_improvement(list(a.T), list(b.T))) == pytest.approx(metrics.probability_of_improvement(a, b))


def test_stratified_bootstrap_intervals_agree_with_rliables():
    from rliable import library

    theirs = _rliable_metrics()
    names = list(ESTIMATORS)
    points, intervals = library.get_interval_estimates(
        _matrices(), lambda x: np.array([theirs[n](x) for n in names]), reps=REPS,
        random_state=np.random.RandomState(0),
    )
    for method, x in _matrices().items():
        for k, name in enumerate(names):
            point, low, high = stratified_bootstrap_ci(list(x.T), ESTIMATORS[name], reps=REPS, seed=0)
            assert point == pytest.approx(points[method][k], abs=1e-12), (method, name)
            assert (low, high) == pytest.approx((intervals[method][0, k], intervals[method][1, k]), abs=TOLERANCE), (method, name)


def test_probability_of_improvement_interval_agrees_with_rliables():
    from rliable import library, metrics

    a, b = (x[:, :3] for x in _matrices().values())  # 3 games: rliable runs one Mann-Whitney test per game and resample
    points, intervals = library.get_interval_estimates(
        {"a,b": (a, b)}, metrics.probability_of_improvement, reps=500, random_state=np.random.RandomState(0)
    )
    point, low, high = stratified_bootstrap_ci_two_sample(list(a.T), list(b.T), reps=500, seed=0)
    assert point == pytest.approx(float(np.squeeze(points["a,b"])), abs=1e-12)
    # ~0.44 wide; 500 resamples each put the bounds within ~0.04 of each other (measured over three seeds).
    assert (low, high) == pytest.approx(tuple(np.ravel(intervals["a,b"])), abs=0.06)
