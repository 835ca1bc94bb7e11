"""How many seeds a comparison that is not resolved would need, if the effect and the spread we observe held.

A comparison of RESULTS.md is "not resolved" when its 95% interval spans the target. That happens for two reasons a
reader must tell apart: too few seeds for an effect that is there, or no effect (or one too small to matter). This
module estimates, from the runs we have, the number of seeds ``n`` at which the 95% interval would exclude the
target, on the claimed side, with probability :data:`POWER` (0.8, the usual convention of power analysis: a
comparison planned at that count misses a real effect of the observed size one time in five).

The reduction to one sample. A comparison with a baseline on the same seeds reads the ratio of means
``sum(x) / sum(y)`` against a reference ``r`` (1 for "above"). With positive baseline scores, ``sum(x) / sum(y) > r``
exactly when ``mean(x - r y) > 0``, resample by resample, so the paired bootstrap interval of the ratio excludes
``r`` exactly when that of the mean paired difference ``d_i = x_i - r y_i`` excludes 0. The question is then one of
a mean: with per-seed differences of mean ``e`` (the observed mean of ``d``) and standard deviation ``s`` (their
sample sd), at which ``n`` does a 95% interval lie wholly on the side of 0 the claim names with probability 0.8?

The estimate (:func:`t_power`, :func:`seeds_needed`): normal per-seed differences and the t interval
``mean +- t_{0.975, n-1} s / sqrt(n)``; its lower end is above 0 with probability ``P(T' > t_{0.975, n-1})`` for
``T'`` noncentral t with ``n - 1`` degrees of freedom and noncentrality ``|e| sqrt(n) / s`` (the power of a paired t
test, as tabulated by Cohen 1988 and computed by G*Power). The smallest ``n`` with power >= 0.8 is the answer,
capped (:data:`MAX_SEEDS`): beyond the cap the effect is too small for seeds to be the remedy. An observed effect of
0 or on the other side has no finite answer: more seeds would not resolve it for the claim.

A measured difference given only by its interval (a mean of ``n`` pairs with a 95% interval ``[low, high]``, no
per-pair values in the row) has its per-pair sd read off the interval's width, ``s = sqrt(n) (high - low) /
(2 z_{0.975})`` (:func:`sd_from_interval`), and goes through the same estimate.

The cross-check (:func:`simulated_power`, :func:`simulated_seeds_needed`): draw ``n`` seeds with replacement from
the observed pairs, apply the report's own interval (:func:`~torchrl_reg.report.stats.paired_ratio_ci`, the paired
percentile bootstrap) and count how often it excludes the reference on the claimed side; the smallest ``n`` where
that reaches 0.8 is the simulation's count. Resampling a handful of observed seeds understates the spread (three
seeds have a plug-in variance 2/3 of their sample variance, and only their three values recur) and the percentile
bootstrap is narrower than the t interval at small ``n``, so the simulation's count is usually below the t
estimate: the t estimate is the cautious one, and the two bracket what the observed seeds can tell.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy import stats as _scipy_stats

from torchrl_reg.report.stats import paired_ratio_ci

__all__ = ["CONFIDENCE", "MAX_PAIRS", "MAX_SEEDS", "POWER", "SIMS", "SIM_REPS", "SeedsNeeded", "paired_differences",
           "sd_from_interval", "seeds_needed", "simulated_power", "simulated_seeds_needed", "t_power"]

#: The probability with which the interval at the estimated count must exclude the target.
POWER = 0.8
#: The intervals' level, as the report's.
CONFIDENCE = 0.95
#: The largest count of seeds estimated; beyond it the answer is "more than MAX_SEEDS".
MAX_SEEDS = 100
#: The largest count of pairs (evaluation episodes of a measured difference, cheaper than training seeds).
MAX_PAIRS = 1000
#: The simulation's draws of n seeds per count, and the bootstrap resamples of each draw's interval: the simulated
#: power's Monte Carlo error is about sqrt(0.8 x 0.2 / 200) = 0.03 near 0.8.
SIMS, SIM_REPS = 200, 500
SIDES = ("above", "below")


class SeedsNeeded(NamedTuple):
    """The estimate for one comparison: ``n`` (the smallest count with power >= ``power``; None when there is no
    finite answer), ``reason`` (``"estimate"``, ``"beyond cap"``: above ``cap``, or ``"wrong side"``: the observed
    effect is 0 or on the side the claim denies), the observed per-seed effect on the claimed side (``effect`` > 0
    when the observation favours the claim) and its standard deviation ``sd``."""

    n: int | None
    reason: str
    effect: float
    sd: float
    power: float
    cap: int


def _check_side(side: str) -> None:
    if side not in SIDES:
        raise ValueError(f"side must be one of {', '.join(SIDES)} (the side of the reference the claim names), "
                         f"got side={side!r}")


def _check_level(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be a number in (0, 1), got {name}={value!r}")


def paired_differences(x: Sequence[float], y: Sequence[float], reference: float = 1.0) -> np.ndarray:
    """``x_i - reference * y_i``: the per-seed differences whose mean is above 0 exactly when the ratio of means
    ``sum(x) / sum(y)`` is above ``reference`` (the baseline's scores ``y`` positive, as the report's ratio needs)."""
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if xs.ndim != 1 or xs.shape != ys.shape or xs.size == 0:
        raise ValueError(f"x and y must be paired 1-D score lists of one nonzero length, got shapes {xs.shape} and "
                         f"{ys.shape}")
    if not (np.isfinite(xs).all() and np.isfinite(ys).all() and math.isfinite(reference)):
        raise ValueError(f"scores and reference must be finite, got x={xs.tolist()}, y={ys.tolist()}, "
                         f"reference={reference!r}")
    if (ys <= 0).any():
        raise ValueError(f"the baseline's scores y must all be > 0 for a ratio, got y={ys.tolist()}")
    return xs - reference * ys


def sd_from_interval(low: float, high: float, n: int, confidence: float = CONFIDENCE) -> float:
    """The per-pair standard deviation a normal interval of the mean of ``n`` pairs implies:
    ``sqrt(n) (high - low) / (2 z)`` with ``z`` the normal quantile at ``(1 + confidence) / 2``."""
    _check_level("confidence", confidence)
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer >= 2 (the pairs behind the interval), got n={n!r}")
    if not (math.isfinite(low) and math.isfinite(high)) or high < low:
        raise ValueError(f"the interval must be finite with low <= high, got [{low!r}, {high!r}]")
    return math.sqrt(n) * (high - low) / (2.0 * float(_scipy_stats.norm.ppf((1.0 + confidence) / 2.0)))


def t_power(effect: float, sd: float, n: int, confidence: float = CONFIDENCE) -> float:
    """The probability that the t interval of the mean of ``n`` normal per-seed differences (mean ``effect``,
    standard deviation ``sd``) lies wholly on the side of 0 that ``effect`` is on: ``P(T' > t_{(1+c)/2, n-1})``,
    ``T'`` noncentral t with ``n - 1`` degrees of freedom and noncentrality ``|effect| sqrt(n) / sd``."""
    _check_level("confidence", confidence)
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer >= 2 (a t interval needs two seeds), got n={n!r}")
    if not (math.isfinite(effect) and math.isfinite(sd)) or sd < 0:
        raise ValueError(f"effect must be finite and sd finite and >= 0, got effect={effect!r}, sd={sd!r}")
    if sd == 0:
        return 1.0 if effect != 0 else 0.0
    critical = float(_scipy_stats.t.ppf((1.0 + confidence) / 2.0, n - 1))
    return float(_scipy_stats.nct.sf(critical, n - 1, abs(effect) * math.sqrt(n) / sd))


def seeds_needed(effect: float, sd: float, side: str, *, power: float = POWER, confidence: float = CONFIDENCE,
                 cap: int = MAX_SEEDS) -> SeedsNeeded:
    """The smallest count ``n`` (2 to ``cap``) at which :func:`t_power` reaches ``power``, for a per-seed effect
    ``effect`` (the mean difference against the reference, signed) with standard deviation ``sd`` and a claim that
    it lies ``side`` ("above" or "below") 0. An effect of 0 or on the other side: ``reason="wrong side"``, no n."""
    _check_side(side)
    _check_level("power", power)
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 2:
        raise ValueError(f"cap must be an integer >= 2, got cap={cap!r}")
    if not (math.isfinite(effect) and math.isfinite(sd)) or sd < 0:
        raise ValueError(f"effect must be finite and sd finite and >= 0, got effect={effect!r}, sd={sd!r}")
    claimed = effect if side == "above" else -effect
    if claimed <= 0:
        return SeedsNeeded(None, "wrong side", claimed, sd, power, cap)
    if t_power(claimed, sd, cap, confidence) < power:
        return SeedsNeeded(None, "beyond cap", claimed, sd, power, cap)
    low, high = 1, cap  # t_power rises with n: the power at high reaches the goal, at low (none) it does not
    while high - low > 1:
        mid = (low + high) // 2
        if t_power(claimed, sd, mid, confidence) >= power:
            high = mid
        else:
            low = mid
    return SeedsNeeded(high, "estimate", claimed, sd, power, cap)


def simulated_power(x: Sequence[float], y: Sequence[float], n: int, reference: float, side: str, *,
                    sims: int = SIMS, reps: int = SIM_REPS, confidence: float = CONFIDENCE, seed: int = 0) -> float:
    """The fraction of ``sims`` draws of ``n`` seeds (pairs ``(x_i, y_i)`` drawn with replacement from the observed
    ones) whose paired bootstrap interval of the ratio of means (:func:`~torchrl_reg.report.stats.paired_ratio_ci`,
    ``reps`` resamples) lies wholly ``side`` ("above" or "below") ``reference``: the report's own rule, applied to
    seeds like the observed ones."""
    _check_side(side)
    paired_differences(x, y, reference)  # the checks on the pairs
    for name, value in (("n", n), ("sims", sims)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {name}={value!r}")
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    draws = np.random.default_rng(seed).integers(0, xs.size, size=(sims, n))
    hits = 0
    for k, idx in enumerate(draws):
        _, low, high = paired_ratio_ci(xs[idx], ys[idx], reps=reps, confidence=confidence, seed=seed + k)
        hits += bool(low > reference) if side == "above" else bool(high < reference)
    return hits / sims


def simulated_seeds_needed(x: Sequence[float], y: Sequence[float], reference: float, side: str, *,
                           power: float = POWER, cap: int = MAX_SEEDS, start: int | None = None, sims: int = SIMS,
                           reps: int = SIM_REPS, confidence: float = CONFIDENCE, seed: int = 0) -> int | None:
    """The smallest ``n`` (2 to ``cap``) at which :func:`simulated_power` reaches ``power``, by bisection (the
    simulated power rises with ``n`` up to its Monte Carlo error of about ``sqrt(p (1 - p) / sims)``); None when it
    stays below ``power`` at ``cap``. ``start``: a count to try first as the upper end (the t estimate)."""
    _check_level("power", power)
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 2:
        raise ValueError(f"cap must be an integer >= 2, got cap={cap!r}")

    def enough(n: int) -> bool:
        return simulated_power(x, y, n, reference, side, sims=sims, reps=reps, confidence=confidence,
                               seed=seed) >= power

    high = start if start is not None and 2 <= start <= cap and enough(start) else cap
    if high == cap and not enough(cap):
        return None
    low = 1  # below the range: no interval
    while high - low > 1:
        mid = (low + high) // 2
        if enough(mid):
            high = mid
        else:
            low = mid
    return high
