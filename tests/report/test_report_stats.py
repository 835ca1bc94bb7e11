"""The report's estimators against values worked out by hand or by naive loops written here."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

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


def test_iqm_by_hand():
    # 8 scores: floor(0.25 * 8) = 2 cut at each end -> mean(3, 4, 5, 6) = 4.5
    assert interquartile_mean([np.arange(1.0, 9.0)]) == pytest.approx(4.5)
    # 10 scores: floor(2.5) = 2 cut at each end -> mean(3..8) = 5.5
    assert interquartile_mean([np.arange(1.0, 11.0)]) == pytest.approx(5.5)
    # Pooled across tasks of different sizes: [0, 5, 10, 20, 30, 100], 1 cut at each end
    assert interquartile_mean([np.array([0.0, 10, 20, 30]), np.array([5.0, 100])]) == pytest.approx(16.25)


def test_mean_median_optimality_gap_by_hand():
    tasks = [np.array([0.0, 10, 20, 30]), np.array([5.0, 100]), np.array([1.0])]
    # task means 15, 52.5, 1
    assert aggregate_mean(tasks) == pytest.approx((15 + 52.5 + 1) / 3)
    assert aggregate_median(tasks) == pytest.approx(15.0)
    # min(., 1): [0.5, 1] -> 0.75 and [0.2, 0.4] -> 0.3; mean 0.525; gap 1 - 0.525
    assert optimality_gap([np.array([0.5, 1.5]), np.array([0.2, 0.4])]) == pytest.approx(0.475)
    assert optimality_gap([np.array([0.5, 1.5])], gamma=2.0) == pytest.approx(1.0)


def test_probability_of_improvement_by_hand():
    # x=[1,2,3] vs y=[2,2,0]: 1 beats 0 (1), 2 ties 2,2 and beats 0 (0.5+0.5+1), 3 beats all (3): 6/9
    x, y = [np.array([1.0, 2, 3])], [np.array([2.0, 2, 0])]
    assert probability_of_improvement(x, y) == pytest.approx(2 / 3)
    assert probability_of_improvement(y, x) == pytest.approx(1 / 3)
    # a second task where X always loses averages to (2/3 + 0) / 2
    assert probability_of_improvement(x + [np.array([0.0])], y + [np.array([1.0])]) == pytest.approx(1 / 3)


def test_probability_of_improvement_matches_naive_pair_loop():
    rng = np.random.default_rng(3)
    xs = [rng.integers(0, 5, size=n).astype(float) for n in (3, 5, 4)]
    ys = [rng.integers(0, 5, size=n).astype(float) for n in (4, 2, 6)]
    naive = []
    for x, y in zip(xs, ys):
        total = 0.0
        for a in x:
            for b in y:
                total += 1.0 if a > b else 0.5 if a == b else 0.0
        naive.append(total / (len(x) * len(y)))
    assert probability_of_improvement(xs, ys) == pytest.approx(sum(naive) / len(naive))


def test_bootstrap_resamples_within_each_task_only():
    tasks = [np.array([0.0, 1.0]), np.array([10.0, 14.0, 18.0])]
    seen = []

    def record(resampled):
        seen.append([np.asarray(t) for t in resampled])
        return aggregate_mean(resampled)

    stratified_bootstrap_ci(tasks, record, reps=2000, seed=1)
    point_call, boot_call = seen
    assert [t.tolist() for t in point_call] == [t.tolist() for t in tasks]
    assert boot_call[0].shape == (2000, 2) and boot_call[1].shape == (2000, 3)
    assert set(np.unique(boot_call[0])) <= {0.0, 1.0}
    assert set(np.unique(boot_call[1])) <= {10.0, 14.0, 18.0}


def test_bootstrap_distribution_matches_exact_enumeration():
    # Exact stratified bootstrap distribution of the aggregate mean, by enumerating every resample.
    tasks = [np.array([0.0, 1.0]), np.array([0.0, 4.0])]
    exact: dict[float, float] = {}
    for ia in itertools.product(range(2), repeat=2):
        for ib in itertools.product(range(2), repeat=2):
            value = (tasks[0][list(ia)].mean() + tasks[1][list(ib)].mean()) / 2
            exact[value] = exact.get(value, 0.0) + 1 / 16
    values = []

    def record(resampled):
        out = aggregate_mean(resampled)
        values.append(np.atleast_1d(out))
        return out

    reps = 40_000
    stratified_bootstrap_ci(tasks, record, reps=reps, seed=0)
    boot = values[1]
    for value, prob in exact.items():
        freq = np.mean(np.isclose(boot, value))
        assert freq == pytest.approx(prob, abs=4 * np.sqrt(prob * (1 - prob) / reps))


def test_percentile_interval_by_hand():
    # One task, runs {0, 1}: resampled mean is 0 (1/4), 0.5 (1/2), 1 (1/4); the 2.5% and 97.5%
    # percentiles of that distribution are 0 and 1.
    point, low, high = stratified_bootstrap_ci([np.array([0.0, 1.0])], aggregate_mean, reps=20_000)
    assert (point, low, high) == (0.5, 0.0, 1.0)
    # A task whose runs agree has a degenerate interval.
    assert stratified_bootstrap_ci([np.full(5, 3.0)], interquartile_mean, reps=100) == (3.0, 3.0, 3.0)


def test_two_sample_interval_for_separated_methods():
    # X beats Y in every pair of every resample: P(X > Y) = 1 with a degenerate interval.
    x = [np.array([5.0, 6.0, 7.0]), np.array([1.0, 2.0])]
    y = [np.array([1.0, 2.0, 3.0]), np.array([0.0, 0.5, 0.7])]
    assert stratified_bootstrap_ci_two_sample(x, y, reps=500) == (1.0, 1.0, 1.0)
    point, low, high = stratified_bootstrap_ci_two_sample([np.array([1.0, 2.0])], [np.array([1.5])], reps=20_000)
    # resampled X: {1,1}: P=0, {1,2} or {2,1}: 0.5, {2,2}: 1
    assert (point, low, high) == (0.5, 0.0, 1.0)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"reps": 0}, "reps must be an integer >= 1"), ({"confidence": 1.0}, "confidence must be in \\(0, 1\\)")],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        stratified_bootstrap_ci([np.array([1.0])], aggregate_mean, **kwargs)


def test_task_without_runs_is_refused():
    with pytest.raises(ValueError, match="task 1 has no runs"):
        aggregate_mean([np.array([1.0]), np.array([])])


def test_paired_ratio_against_exact_enumeration():
    """Scores (x, y) on three seeds: (2, 4), (4, 4), (6, 4). The point is 12 / 12 = 1. The paired bootstrap draws
    3 seed indices uniformly: all 27 index triples are equally likely, and the ratio of sums is smallest (0.5)
    only on (0, 0, 0) and largest (1.5) only on (2, 2, 2), each with probability 1/27 > 2.5%: the 95% percentile
    interval is [0.5, 1.5] exactly. The mean of the bootstrap's ratios is the enumeration's."""
    x, y = [2.0, 4.0, 6.0], [4.0, 4.0, 4.0]
    ratio, low, high = paired_ratio_ci(x, y, reps=40_000)
    assert ratio == 1.0 and (low, high) == (0.5, 1.5)
    exact = np.mean([sum(x[i] for i in t) / sum(y[i] for i in t) for t in itertools.product(range(3), repeat=3)])
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 3, size=(40_000, 3))
    assert (np.asarray(x)[idx].sum(-1) / np.asarray(y)[idx].sum(-1)).mean() == pytest.approx(exact, abs=0.01)
    # The pairs stay whole: a seed that is hard for both methods does not widen the interval of equal methods.
    ratio, low, high = paired_ratio_ci([100.0, 5000.0, 9000.0], [100.0, 5000.0, 9000.0], reps=1000)
    assert (ratio, low, high) == (1.0, 1.0, 1.0)


@pytest.mark.parametrize(
    "x, y, message",
    [
        ([1.0, 2.0], [1.0], "paired 1-D score lists of the same nonzero length"),
        ([], [], "paired 1-D score lists of the same nonzero length"),
        ([1.0], [0.0], r"baseline's scores y must all be > 0 for a ratio, got y=\[0.0\]"),
        ([1.0, 2.0], [3.0, -1.0], "must all be > 0"),
        ([float("nan")], [1.0], "scores must be finite"),
    ],
)
def test_paired_ratio_refuses_what_it_cannot_pair(x, y, message):
    with pytest.raises(ValueError, match=message):
        paired_ratio_ci(x, y, reps=10)


def test_curve_scores_by_hand():
    # The last three of 1, 2, 4, 9: (2 + 4 + 9) / 3 = 5; the last one alone: 9.
    assert last_evaluations_mean([10, 20, 30, 40], [1.0, 2.0, 4.0, 9.0]) == pytest.approx(5.0)
    assert last_evaluations_mean([10, 20, 30, 40], [1.0, 2.0, 4.0, 9.0], count=1) == pytest.approx(9.0)
    # Trapezoids over uneven gaps: 10 * (0 + 10) / 2 = 50, then 20 * (10 + 10) / 2 = 200; 250 over 30 frames.
    assert normalized_curve_area([0, 10, 30], [0.0, 10.0, 10.0]) == pytest.approx(25 / 3)
    # A constant curve scores its constant; a curve that learns early scores above one that learns late.
    assert normalized_curve_area([5, 6, 9], [-2.0, -2.0, -2.0]) == pytest.approx(-2.0)
    early = normalized_curve_area([0, 10, 20], [0.0, 10.0, 10.0])  # (50 + 100) / 20 = 7.5
    late = normalized_curve_area([0, 10, 20], [0.0, 0.0, 10.0])  # (0 + 50) / 20 = 2.5
    assert (early, late) == (pytest.approx(7.5), pytest.approx(2.5))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: last_evaluations_mean([1, 2], [1.0, 2.0]), "needs 3 of them, the curve has 2"),
        (lambda: last_evaluations_mean([1, 2, 3], [1.0, 2.0, 3.0], count=0), "count must be an integer >= 1"),
        (lambda: normalized_curve_area([1], [1.0]), "at least 2 evaluations, got 1"),
        (lambda: normalized_curve_area([1, 1, 2], [1.0, 2.0, 3.0]), "must increase strictly"),
        (lambda: normalized_curve_area([1, 2], [1.0]), "of one length"),
        (lambda: last_evaluations_mean([1, 2, 3], [1.0, float("nan"), 3.0]), "must be finite"),
    ],
)
def test_curve_scores_refuse_what_they_cannot_score(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_pooled_std_by_hand():
    # (1, 2, 3): sample variance 1; (2, 4, 6): 4; pooled sqrt((2 * 1 + 2 * 4) / 4) = sqrt(2.5)
    assert pooled_std([1.0, 2.0, 3.0], [2.0, 4.0, 6.0]) == pytest.approx(2.5 ** 0.5)
    # unequal sizes: (0, 2): variance 2, (1, 1, 1, 1): 0; sqrt((1 * 2 + 3 * 0) / 4)
    assert pooled_std([0.0, 2.0], [1.0] * 4) == pytest.approx(0.5 ** 0.5)
    with pytest.raises(ValueError, match="2 or more scores"):
        pooled_std([1.0], [1.0, 2.0])
