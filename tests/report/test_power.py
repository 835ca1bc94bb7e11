"""The seeds a comparison that is not resolved would need, against power tables and hand computations."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from torchrl_reg.report.power import (
    paired_differences,
    sd_from_interval,
    seeds_needed,
    simulated_power,
    simulated_seeds_needed,
    t_power,
)
from torchrl_reg.report.results_md import POWER_TITLE, results_files

REPO = Path(__file__).resolve().parents[2]
Z975, Z80 = 1.959964, 0.841621  # the normal quantiles at 0.975 and 0.8, from a table


@pytest.mark.parametrize("effect_size, published", [(0.2, 199), (0.5, 34), (0.8, 15), (1.0, 10)])
def test_seeds_at_power_08_are_the_power_tables(effect_size, published):
    """A paired t test at alpha 0.05 (two-sided) and power 0.8 needs 199, 34, 15 and 10 pairs for standardized
    effects 0.2, 0.5, 0.8 and 1 (G*Power's one-sample / matched-pairs t test; Cohen 1988's tables). Guenther's
    (1981) hand formula, ((z_0.975 + z_0.8) / d)^2 + z_0.975^2 / 2 rounded up, gives the same counts:
    198.1, 33.3, 14.2 and 9.8."""
    assert math.ceil(((Z975 + Z80) / effect_size) ** 2 + Z975 ** 2 / 2) == published
    for scale in (1.0, 37.5):  # only the effect over the sd counts: any unit of score gives the same count
        above = seeds_needed(effect_size * scale, scale, "above", cap=1000)
        below = seeds_needed(-effect_size * scale, scale, "below", cap=1000)
        assert above.n == below.n == published and above.reason == below.reason == "estimate"
        assert above.effect == pytest.approx(effect_size * scale) and below.effect == pytest.approx(effect_size * scale)
        assert t_power(effect_size * scale, scale, published) >= 0.8 > t_power(effect_size * scale, scale, published - 1)


def test_at_power_one_half_the_count_is_where_the_observed_mean_just_resolves():
    """With the observed effect as the truth, the t interval of n seeds excludes 0 about half the time from the n
    where t_{0.975, n-1} s / sqrt(n) < |d|. Effect 1, sd 2, from a t table: n = 17: t_{0.975, 16} = 2.120,
    2 x 2.120 / sqrt(17) = 1.028 > 1; n = 18: t_{0.975, 17} = 2.110, 2 x 2.110 / sqrt(18) = 0.995 < 1."""
    assert seeds_needed(1.0, 2.0, "above", power=0.5).n == 18
    assert seeds_needed(1.0, 2.0, "above").n > 18  # power 0.8 asks for more


def test_no_count_for_an_effect_on_the_wrong_side_or_too_small():
    for effect, side in ((0.0, "above"), (-0.3, "above"), (0.3, "below"), (0.0, "below")):
        estimate = seeds_needed(effect, 1.0, side)
        assert estimate.n is None and estimate.reason == "wrong side"
    # Effect 0.2 sd needs 199 seeds (above): beyond a cap of 100.
    estimate = seeds_needed(0.2, 1.0, "above", cap=100)
    assert estimate.n is None and estimate.reason == "beyond cap" and estimate.cap == 100
    assert seeds_needed(1.0, 0.0, "above").n == 2  # no spread: the smallest count with an interval


def test_a_ratio_of_means_is_read_as_the_mean_of_paired_differences():
    """sum(x) / sum(y) > r exactly when mean(x - r y) > 0: x = 9.5, 10.5, 11.5 against y = 10 each is 1.05x, the
    differences -0.5, 0.5, 1.5 (mean 0.5, sd 1): 34 seeds, as effect 0.5 in the table. Against r = 1.1 the
    differences are -1.5, -0.5, 0.5: mean -0.5, on the wrong side of "above"."""
    x, y = [9.5, 10.5, 11.5], [10.0, 10.0, 10.0]
    d = paired_differences(x, y)
    assert d.tolist() == [-0.5, 0.5, 1.5] and d.std(ddof=1) == pytest.approx(1.0)
    assert seeds_needed(float(d.mean()), float(d.std(ddof=1)), "above").n == 34
    assert paired_differences(x, y, 1.1).tolist() == pytest.approx([-1.5, -0.5, 0.5])
    with pytest.raises(ValueError, match="must all be > 0"):
        paired_differences([1.0], [0.0])
    with pytest.raises(ValueError, match="side must be one of above, below"):
        seeds_needed(1.0, 1.0, "near")


def test_the_sd_behind_an_interval():
    """A 95% normal interval [1, 3] of the mean of 4 pairs: half-width 1 = 1.959964 s / 2, so s = 2 / 1.959964."""
    assert sd_from_interval(1.0, 3.0, 4) == pytest.approx(2 / Z975, rel=1e-6)
    with pytest.raises(ValueError, match="n must be an integer >= 2"):
        sd_from_interval(1.0, 3.0, 1)


def test_the_simulation_applies_the_reports_interval():
    # Every seed at 1.5x: every draw's interval is [1.5, 1.5], above 1 always, below it never.
    x, y = [3.0, 6.0, 9.0], [2.0, 4.0, 6.0]
    assert simulated_power(x, y, 5, 1.0, "above", sims=50, reps=200) == 1.0
    assert simulated_power(x, y, 5, 1.0, "below", sims=50, reps=200) == 0.0
    # Two seeds, one at 2 / 1 and one at 1 / 2: differences +1 and -1, no effect. Of 10 seeds drawn, the interval
    # excludes 1 above only for 8 or more of the first kind (mean 0.6 against 1.96 x 0.8 / sqrt(10) = 0.50; with 7,
    # 0.4 against 0.57): probability 56 / 1024 = 0.055, and as often below.
    for side in ("above", "below"):
        assert simulated_power([2.0, 1.0], [1.0, 2.0], 10, 1.0, side, sims=400, reps=500) < 0.12
    # Counts: the constant 1.5x resolves at the smallest count with an interval; no effect never reaches 0.8.
    assert simulated_seeds_needed(x, y, 1.0, "above", sims=50, reps=200) == 2
    assert simulated_seeds_needed([2.0, 1.0], [1.0, 2.0], 1.0, "above", cap=12, sims=100, reps=200) is None


def _record(root: Path, method: str, seed: int, score: float) -> None:
    record = {"method": method, "env": "E", "seed": seed,
              "metrics": {"status": "completed", "final_return": score, "eval_frames": [1], "eval_returns": [score]}}
    (root / f"{method}_E_{seed}.json").write_text(json.dumps(record))


SPEC = """
claims:
  - {method: A, claim: a above b, source: "a paper", expect: above, match: {method: a, vs: b}}
  - {method: C, claim: c above b, source: "a paper", expect: above, match: {method: c, vs: b}}
  - {method: D, claim: d above b, source: "a paper", expect: above, match: {name: d - b}, baseline: b, reference: 0}
sections:
  - title: Learning
    setting: 1M steps
    runs: [runs]
    rows:
      - {method: a, env: E, vs: {method: b}}
      - {method: c, env: E, vs: {method: b}}
      - {method: b, env: E}
  - title: Measured
    setting: here
    rows:
      - {name: d - b, file: m.json, value: [d], range: [[lo], [hi]], n: [n]}
"""


def test_every_setting_not_resolved_gets_its_count(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    # a: 9.5, 10.5, 11.5 against b's 10: 1.05x, seed 0 drawn three times (1/27 > 2.5%) gives 0.95, not resolved;
    # differences mean 0.5, sd 1: 34 seeds. c: 9, 10, 10.5: 0.98x, seed 2 thrice 1.05: not resolved, wrong side;
    # its differences -1, 0, 0.5: mean -1/6, sd sqrt(7/12) = 0.764.
    for seed, (a, c) in enumerate([(9.5, 9.0), (10.5, 10.0), (11.5, 10.5)]):
        _record(runs, "a", seed, a)
        _record(runs, "c", seed, c)
        _record(runs, "b", seed, 10.0)
    # d - b: mean 2 over 9 pairs with the interval 2 +- 1.959964 x 4 / 3: per-pair sd 4, effect 0.5 sd: 34 pairs.
    half = Z975 * 4 / 3
    (tmp_path / "m.json").write_text(json.dumps({"d": 2.0, "lo": 2.0 - half, "hi": 2.0 + half, "n": 9}))
    spec = tmp_path / "results.yaml"
    spec.write_text(SPEC)
    page = results_files(spec, reps=2000)["RESULTS.md"]
    assert f'the section "{POWER_TITLE}" below estimates the seeds' in page
    section = page.split(f"## {POWER_TITLE}")[1].split("\n## ")[0]
    a, c, d = [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines()
               if line.startswith(("| E, 1M steps |", "| here: d - b |"))]  # in the claims' order
    assert a[2:5] == ["3 seeds", "+0.5 (1)", "34 seeds (31 more)"] and a[6] == "lack of seeds"
    assert 3 < int(a[5].split()[0]) <= 34  # three seeds resampled understate the spread: the simulation's count is lower
    assert c[2:7] == ["3 seeds", "-0.17 (0.76)", "-", "-", "no observed effect in the claim's direction"]
    assert d[2:7] == ["9 pairs", "+2 (4)", "34 pairs (25 more)", "-", "lack of pairs"]


def test_the_committed_notebook_counts_every_setting_not_resolved():
    page, notebook = (REPO / "RESULTS.md").read_text(), (REPO / "RESULTS_NOTEBOOK.md").read_text()
    summary = page.split("## Summary")[1].split("### Methods with no claim tested")[0]
    open_settings = [line.split(" | ")[0] for line in summary.splitlines()
                     if re.search(r"\| not resolved(, \d of \d seeds \w+)? \|$", line)]
    section = notebook.split(f"## {POWER_TITLE}")[1].split("\n## ")[0]
    estimated = [line.split(" | ")[0] for line in section.splitlines() if line.startswith("| ")
                 and not line.startswith(("| setting |", "| --- |"))]
    assert open_settings and estimated == open_settings
    assert f"(RESULTS_NOTEBOOK.md#{POWER_TITLE.lower().replace(' ', '-')})" in page
