"""RESULTS.md: generated from the committed results, and the targets it checks, against hand computations."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from torchrl_reg.report.results_md import COMMAND, ResultsSpecError, _verdict, results_files, results_markdown
from torchrl_reg.report.runs import collect_runs, final_score, method_labels

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results"


def test_committed_results_md_is_what_the_report_generates():
    expected = results_files(REPO / "benchmarks" / "results.yaml")
    assert sorted(expected) == ["RESULTS.md", "RESULTS_NOTEBOOK.md"]
    for name, text in expected.items():
        assert (REPO / name).read_text() == text, f"{name} is stale: run `{COMMAND}`"


def _table_cells(text: str) -> list[str]:
    return [cell.strip() for line in text.splitlines() if line.startswith("|") for cell in line.strip("|").split("|")]


def test_no_table_cell_is_longer_than_a_sentence():
    cells = _table_cells((REPO / "RESULTS.md").read_text() + (REPO / "RESULTS_NOTEBOOK.md").read_text())
    assert len(cells) > 400
    for cell in cells:
        assert len(cell) <= 80 and not re.search(r"[.;] \w", cell), cell  # one sentence at most


@pytest.mark.parametrize(
    "folder, count, methods",
    [
        ("learning_classic", 60, {"dqn", "m_dqn", "soft_dqn"}),  # a choice, not the registry's list: the benchmark's methods
        ("learning_minatar", 27, {"m_dqn", "iqn", "m_iqn"}),  # a choice, not the registry's list: the benchmark's methods
        ("mirl/minatar", 27, {"dqn", "sql", "mirl"}),  # a choice, not the registry's list: the benchmark's methods
        ("iq/learning", 37, {"m_iq", "iq", "iq_gaussian", "trust_pcl", "pcl", "sac", "sac_dopamine"}),
        ("iq/tanh_value_net", 26, {"m_iq", "iq", "iq_gaussian", "trust_pcl", "pcl", "sac"}),
    ],
)
def test_every_committed_learning_result_is_read(folder, count, methods):
    """Every per-run JSON under the folder is a run record the report reads, with a finite score."""
    files = [p for p in (RESULTS / folder).rglob("*.json") if p.name != "summary.json"]
    runs = collect_runs([RESULTS / folder])
    assert len(runs) == len(files) == count
    assert set(method_labels(runs, "env.name")) == methods
    assert all(r.status == "completed" and math.isfinite(final_score(r, "final_return")) for r in runs)
    assert all(math.isfinite(final_score(r, "last_eval")) for r in runs)


def _record(root: Path, method: str, env: str, seed: int, score: float) -> None:
    record = {"method": method, "env": env, "seed": seed,
              "metrics": {"status": "completed", "final_return": score, "eval_frames": [1], "eval_returns": [score]}}
    (root / f"{method}_{env}_{seed}.json").write_text(json.dumps(record))


def _refused(spec: Path, row: str, message: str) -> None:
    """A one-row learning section over the folder ``runs`` beside ``spec`` is refused with ``message``."""
    spec.write_text(f"sections:\n  - {{title: x, runs: [runs], rows: [{row}]}}\n")
    with pytest.raises(ResultsSpecError, match=message):
        results_markdown(spec, reps=10)


def test_targets_against_hand_computed_scores(tmp_path):
    """Each target is judged by an interval: constant scores have the interval [x, x], so every verdict below is
    worked out by hand; a row whose interval spans its target is not resolved, never met."""
    runs = tmp_path / "runs"
    runs.mkdir()
    for seed in range(4):
        _record(runs, "a", "E", seed, 3.0)  # IQM 3 [3, 3]
        _record(runs, "b", "E", seed, 20.0)  # IQM 20 [20, 20]
    _record(runs, "c", "E", 0, 1.0)  # one run: 1 [1, 1]
    # d: 1, 2, 3, 100: the IQM drops one run at each end, mean(2, 3) = 2.5; a resample of four 1s gives 1 and one
    # of four 100s gives 100, so the 95% interval spans 2.5 on both sides.
    for seed, score in enumerate([1.0, 2.0, 3.0, 100.0]):
        _record(runs, "d", "E", seed, score)
    measured = tmp_path / "m.json"
    measured.write_text(json.dumps({"r": {"x": 1.07, "lo": 1.0, "hi": 1.2}, "reps": 15}))
    spec = tmp_path / "results.yaml"
    spec.write_text(
        """
sections:
  - title: Learning
    runs: [runs]
    notes: [A caveat.]
    rows:
      - {method: a, env: E, anchor: paper 3, target: {min: 2.5}}
      - {method: b, env: E, target: {above: a, ratio: {of: a, min: 6}}, note: Why b.}
      - {method: c, env: E, target: {below: a, band: [1.5, 2]}}
      - {method: d, env: E, target: {min: 2.5}}
  - title: Speed
    interval: median [min, max]
    rows:
      - {name: step ratio, file: m.json, value: [r, x], range: [[r, lo], [r, hi]], n: [reps], target: {max: 1.1}}
      - {name: step ratio alone, file: m.json, value: [r, x], target: {max: 1.1}}
"""
    )
    text = results_markdown(spec, reps=200)
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith(("| result", "| ---"))]
    assert rows[0] == "| a, E | 3 [3, 3] | 4 | paper 3 | >= 2.5 | yes |"
    # b: [20, 20] lies above a's [3, 3] and above 6 x [3, 3] = [18, 18]
    assert rows[1] == "| b, E[^2] | 20 [20, 20] | 4 | - | > a, >= 6 x a | yes |"
    # c: [1, 1] lies below a's [3, 3] but outside [1.5, 2]; one run (n <= 3): it meets the one target, not both
    assert rows[2] == "| c, E | 1 [1, 1] | 1 | - | in [1.5, 2], < a | no, 0 of 1 seeds |"
    assert rows[3].startswith("| d, E | 2.5 [") and rows[3].endswith("| 4 | - | >= 2.5 | not resolved |")
    # the range [1, 1.2] spans 1.1: not resolved; the value alone has no interval and says so
    assert rows[4] == "| step ratio | 1.07 [1, 1.2] | 15 | - | <= 1.1 | not resolved |"
    assert rows[5] == "| step ratio alone | 1.07 | 1 | - | <= 1.1 | yes (one value) |"
    assert "## Learning[^1]" in text and "[^1]: A caveat." in text and "[^2]: Why b." in text
    assert 'Every "met" and "holds" cell is decided by a 95% interval' in text

    _refused(spec, "{method: z, env: E}", "no runs of method 'z' on 'E'")
    _refused(spec, "{method: a, env: E, target: {above: q}}", "compares with 'q', which has no row on this environment")


def test_measured_values_by_list_index_and_over_mapping_values(tmp_path):
    """``value`` paths index lists (negative from the end) and map ``*`` over a mapping's values
    (per-seed results keyed by seed); ``n`` may name what it counts."""
    (tmp_path / "m.json").write_text(json.dumps({
        "budgets": [10, 100], "rate": {"a": [0.5, 0.25]}, "per_seed": {"0": 1.0, "1": 2.0, "2": 3.0, "3": 100.0},
        "seeds": [0, 1, 2, 3],
    }))
    spec = tmp_path / "results.yaml"
    spec.write_text(
        """
sections:
  - title: Measured
    interval: value
    rows:
      - {name: first, file: m.json, value: [rate, a, 0], n: [seeds]}
      - {name: last, file: m.json, value: [rate, a, -1]}
  - title: Seeds
    rows:
      - {name: per seed, file: m.json, value: [per_seed, "*"]}
"""
    )
    rows = [line for line in results_markdown(spec, reps=200).splitlines()
            if line.startswith("| ") and not line.startswith(("| result", "| ---"))]
    assert rows[0] == "| first | 0.5 | 4 | - | - | - |"  # n: the length of the list it names
    assert rows[1] == "| last | 0.25 | 1 | - | - | - |"
    # IQM of 1, 2, 3, 100 drops one at each end: mean(2, 3) = 2.5
    assert rows[2].startswith("| per seed | 2.5 [") and rows[2].endswith("| 4 | - | - | - |")
    spec.write_text("sections:\n  - {title: x, rows: [{name: y, file: m.json, value: [budgets, 2]}]}\n")
    with pytest.raises(ResultsSpecError, match="index 2 at \\['budgets'\\] is outside a list of 2"):
        results_markdown(spec, reps=10)


def test_a_ratio_to_a_baseline_on_the_same_seeds(tmp_path):
    runs, base = tmp_path / "runs", tmp_path / "base"
    runs.mkdir()
    base.mkdir()
    for seed, score in enumerate([2.0, 4.0, 6.0]):
        _record(runs, "a", "E", seed, score)
    # The baseline has a fourth seed (100), which the row does not pair with: the ratio is (2 + 4 + 6) / 12 = 1.
    for seed, score in enumerate([4.0, 4.0, 4.0, 100.0]):
        _record(base, "sac", "E", seed, score)
    spec = tmp_path / "results.yaml"
    spec.write_text(
        """
sections:
  - title: Learning
    runs: [runs]
    rows:
      - {method: a, env: E, vs: {method: sac, runs: [base], min: 0.8}}
      - {method: a, env: E, name: a again, vs: {method: sac, runs: [base], min: 1.2}, target: {min: 1}}
"""
    )
    text = results_markdown(spec, reps=40_000)
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    assert lines[0] == "| result | IQM [95% CI] | n | ratio to baseline, same seeds [95% CI] | anchor | target | met |"
    # The 95% interval of the paired bootstrap is [0.5, 1.5] exactly (tests/report/test_report_stats.py).
    # [0.5, 1.5] spans 0.8: not resolved; per seed 2, 4, 6 against 0.8 x 4 = 3.2: seeds 1 and 2 meet it.
    assert lines[2].startswith("| a, E | 4 [") and lines[2].endswith(
        "| 3 | 1.00x sac [0.50, 1.50] | - | ratio >= 0.8 x sac | not resolved, 2 of 3 seeds |")
    # The IQM's interval (>= 2) lies above 1; the ratio's spans 1.2 (4.8 per seed: seed 2 alone meets both).
    assert lines[3].endswith("| 3 | 1.00x sac [0.50, 1.50] | - | >= 1, ratio >= 1.2 x sac | not resolved, 1 of 3 seeds |")

    _record(runs, "a", "E", 7, 3.0)  # a seed the baseline lacks
    with pytest.raises(ResultsSpecError, match=r"'sac' has no completed run on 'E' with seeds \[7\] .*needs its pair"):
        results_markdown(spec, reps=10)
    (runs / "a_E_7.json").unlink()
    _record(base, "sac", "E", 1, 5.0)  # seed 1 twice: which one pairs?
    (base / "sac_E_1.json").rename(base / "sac_E_1_again.json")
    _record(base, "sac", "E", 1, 4.0)
    with pytest.raises(ResultsSpecError, match="two completed runs of 'sac' on 'E' with seed 1: pairing by seed would be ambiguous"):
        results_markdown(spec, reps=10)
    (base / "sac_E_1_again.json").unlink()
    _record(base, "sac", "E", 0, 0.0)  # a baseline score of 0: no ratio
    with pytest.raises(ResultsSpecError, match="must all be > 0"):
        results_markdown(spec, reps=10)
    _refused(spec, "{method: a, env: E, vs: {runs: [base]}}", "name the baseline's method")
    _refused(spec, "{method: a, env: E, vs: {method: a, min: yes}}", "min must be a finite number")


def _curve_record(root: Path, method: str, seed: int, returns: list[float], frames: list[int] | None = None) -> None:
    frames = frames or [10_000 * (i + 1) for i in range(len(returns))]
    record = {"method": method, "env": "E", "seed": seed,
              "metrics": {"status": "completed", "final_return": 0.0, "eval_frames": frames, "eval_returns": returns}}
    (root / f"{method}_E_{seed}.json").write_text(json.dumps(record))


ROBUST_SPEC = """
claims:
  - {method: A, claim: a above b, source: "a paper, Table 1", expect: above, match: {method: a, vs: b}}
  - {method: D, claim: d above b, source: "b/c, d.json", expect: above, match: {name: d - b}, baseline: b,
     reference: 0, diagnosis: "Not run yet: a check of d."}
  - {method: E, untested: no run of e}
sections:
  - id: s
    title: Learning
    setting: 40k steps
    runs: [runs]
    metric: last_eval
    robust: true
    rows:
      - {method: a, env: E, vs: {method: b, min: 1.9}, anchor: {text: paper 5, source: "a paper, Table 2"}}
      - {method: b, env: E}
  - title: Learning, the last evaluation
    setting: last evaluation
    runs: [runs]
    metric: last_eval
    rows:
      - {method: a, env: E, vs: {method: b}}
      - {method: b, env: E}
  - id: m
    title: Measured
    setting: here
    rows:
      - {name: d - b, file: m.json, value: [d], range: [[lo], [hi]]}
  - title: Diagnostics
    role: diagnostic
    rows:
      - {name: d - b with an oracle, file: m.json, value: [d], range: [[lo], [hi]]}
"""


def test_robust_scores_and_summary_against_hand_computations(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    # Evaluations at 10k, 20k, 30k, 40k. Seed s of a: 0, 2k, 4k, 6k with k = s + 1.
    # Mean of the last three: 4k (4, 8, 12); curve area / 30k frames: 10 * (k + 3k + 5k) / 30 = 3k (3, 6, 9).
    for seed in range(3):
        k = seed + 1
        _curve_record(runs, "a", seed, [0.0, 2.0 * k, 4.0 * k, 6.0 * k])
        # b: 0, 4, 4, 4 on every seed: the last three 4, the area (20 + 40 + 40) / 30 = 10/3, the last one 4.
        _curve_record(runs, "b", seed, [0.0, 4.0, 4.0, 4.0])
    (tmp_path / "m.json").write_text(json.dumps({"d": 1.0, "lo": 0.5, "hi": 2.0}))
    spec = tmp_path / "results.yaml"
    spec.write_text(ROBUST_SPEC)
    text = results_markdown(spec, reps=4000)
    lines = text.splitlines()
    robust = [line for line in lines if line.startswith("| a, E |")]
    # The main table: last evaluations 6, 12, 18 (mean 12; IQM of 3 runs is their mean) over b's 4: 36 / 12 = 3. A
    # resample of seed 0 three times (probability 1/27, above 2.5%) gives 6 / 4 = 1.5, so the interval's low end is
    # 1.5, which spans 1.9; per seed 6, 12, 18 against 1.9 x 4 = 7.6: two of three.
    assert robust[0].startswith("| a, E | 12 [") and "| 3.00x b [1.50, " in robust[0]
    assert robust[0].endswith("| ratio >= 1.9 x b | not resolved, 2 of 3 seeds |")
    # The robust table: last three 8 over 4 (ratio 24 / 12 = 2, low end 4 / 4 = 1), area 6 over 10/3 (ratio 1.8).
    cells = [c.strip() for c in robust[1].strip("|").split("|")]
    assert cells[1].startswith("8 [") and cells[2].startswith("2.00x b [1.00, ")
    assert cells[3].startswith("6 [") and cells[4].startswith("1.80x b [")
    assert cells[5:] == ["3", "ratio >= 1.9 x b", "not resolved, 2 of 3 seeds"]  # 4, 8, 12 against 7.6
    b_row = [c.strip() for c in [line for line in lines if line.startswith("| b, E |")][1].strip("|").split("|")]
    assert b_row[1].startswith("4 [") and b_row[3].startswith("3.33 [")
    assert "| result | mean of evaluations 20k-40k [95% CI] |" in text and "from 10k to 40k" in text
    # The summary: the claim's rule finds both sections' rows of a against b, and the measured difference, not its
    # diagnostic twin. Robust: the last three's ratio [1.00, ...] touches 1, not resolved (seeds 1 and 2 above).
    summary = [line for line in text.split("## Seeds")[0].splitlines()
               if line.startswith(("| E, 40k steps |", "| E, last evaluation |", "| here: "))]
    assert len(summary) == 3
    assert summary[0].startswith("| E, 40k steps | 8 [") and " at 20k-40k (last 12) | b, 3 seeds | 2.00x [1.00, " in summary[0]
    assert summary[0].endswith("| not resolved, 2 of 3 seeds above |")
    # The last evaluation: per seed 1.5, 3, 4.5; the low end 1.5 lies above 1.
    assert "| b, 3 seeds | 3.00x [1.50, " in summary[1] and summary[1].endswith("| yes, 3 of 3 seeds above |")
    assert "**a above b**[^1]: holds on 1 of 2 settings; not resolved on 1." in text
    # The measured row: the interval [0.5, 2] lies above the reference 0.
    assert summary[2] == "| here: d - b | - | b | 1 [0.5, 2] | yes |"
    assert "oracle" not in text.split("## Learning")[0]
    assert "Diagnosis: Not run yet: a check of d." in text
    assert "| E | no run of e |" in text
    assert "Claim source: a paper, Table 1" in text and "Anchor source: a paper, Table 2" in text


def test_a_claim_finds_its_rows_by_rule_and_refuses_what_it_cannot_place(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    for seed in range(3):
        _curve_record(runs, "a", seed, [0.0, 2.0, 4.0, 6.0])
        _curve_record(runs, "b", seed, [0.0, 4.0, 4.0, 4.0])
    (tmp_path / "m.json").write_text(json.dumps({"d": 1.0, "lo": 0.5, "hi": 2.0}))
    spec = tmp_path / "results.yaml"
    spec.write_text(ROBUST_SPEC.replace("    setting: 40k steps\n", ""))
    with pytest.raises(ResultsSpecError, match="the section 'Learning' tests the claim: give it a setting"):
        results_markdown(spec, reps=10)
    spec.write_text(ROBUST_SPEC.replace("match: {method: a, vs: b}", "match: {method: a, vs: z}"))
    with pytest.raises(ResultsSpecError, match="no row of the sections matches"):
        results_markdown(spec, reps=10)
    spec.write_text(ROBUST_SPEC.replace("match: {method: a, vs: b}", "match: {method: a}"))
    with pytest.raises(ResultsSpecError, match="give method and vs"):
        results_markdown(spec, reps=10)
    spec.write_text(ROBUST_SPEC.replace("role: diagnostic", "role: oracle"))
    with pytest.raises(ResultsSpecError, match="role must be one of diagnostic, repeat"):
        results_markdown(spec, reps=10)


def test_a_page_and_its_notebook(tmp_path):
    """With a notebook, RESULTS.md holds the summary and the sections marked for the page (a robust one by its
    robust table, with its anchors; no section notes); the notebook holds every section in full."""
    runs = tmp_path / "runs"
    runs.mkdir()
    for seed in range(3):
        _curve_record(runs, "a", seed, [0.0, 2.0, 4.0, 6.0])
        _curve_record(runs, "b", seed, [0.0, 4.0, 4.0, 4.0])
    (tmp_path / "m.json").write_text(json.dumps({"d": 1.0, "lo": 0.5, "hi": 2.0}))
    spec = tmp_path / "results.yaml"
    spec.write_text("notebook: NOTEBOOK.md\n" + ROBUST_SPEC.replace("    robust: true\n", "    robust: true\n    page: true\n"
                                                                   "    notes: [A long account.]\n"))
    files = results_files(spec, reps=200)
    page, notebook = files["RESULTS.md"], files["NOTEBOOK.md"]
    assert "[NOTEBOOK.md](NOTEBOOK.md)" in page and "[RESULTS.md](RESULTS.md)" in notebook
    assert "## Learning\n" in page and "## Measured" not in page and "A long account." not in page
    assert "| 3 | paper 5[^" in page  # the robust table carries the anchors on the page
    assert "## Measured" in notebook and "## Diagnostics" in notebook and "A long account." in notebook
    assert "## Summary" not in notebook
    spec.write_text("notebook: sub/NOTEBOOK.md\n" + ROBUST_SPEC)
    with pytest.raises(ResultsSpecError, match="notebook is the companion's file name"):
        results_files(spec, reps=10)


def test_a_row_on_named_seeds_and_a_between_target_on_both_scores(tmp_path):
    """``seeds`` scores a method on the seeds another method has; ``above`` / ``below`` are checked on the last
    evaluation in the main table and on the mean of the last three in the robust one."""
    runs = tmp_path / "runs"
    runs.mkdir()
    # Evaluations at 10k, 20k, 30k. hi: 0, 9, 9 on seeds 0-2, and 0, 100, 100 on seeds 3-4 (left out by seeds).
    for seed in range(5):
        _curve_record(runs, "hi", seed, [0.0, 9.0, 9.0] if seed < 3 else [0.0, 100.0, 100.0])
    for seed in range(3):
        _curve_record(runs, "lo", seed, [0.0, 1.0, 1.0])
        # mid: last evaluation 5 (between 1 and 9); last three (0 + 12 + 5) / 3 = 5.67 (between 0.67 and 6).
        _curve_record(runs, "mid", seed, [0.0, 12.0, 5.0])
    spec = tmp_path / "results.yaml"
    spec.write_text(
        """
sections:
  - title: Between
    runs: [runs]
    metric: last_eval
    robust: true
    rows:
      - {method: hi, env: E, seeds: [0, 1, 2]}
      - {method: lo, env: E}
      - {method: mid, env: E, target: {above: lo, below: hi}, vs: {method: hi}}
"""
    )
    lines = [line for line in results_markdown(spec, reps=200).splitlines() if line.startswith("| ")]
    hi = [line for line in lines if line.startswith("| hi, E |")]
    assert hi[0].startswith("| hi, E | 9 [9, 9] | 3 |")  # seeds 3-4 (100) left out
    assert [c.strip() for c in hi[1].strip("|").split("|")][1] == "6 [6, 6]"  # (0 + 9 + 9) / 3
    mid = [line for line in lines if line.startswith("| mid, E |")]
    # 5 / 9; [5, 5] lies above lo's [1, 1], and the paired ratio [0.56, 0.56] below 1, on every seed
    assert "| 0.56x hi [0.56, 0.56] |" in mid[0] and mid[0].endswith("| > lo, < hi | yes, 3 of 3 seeds |")
    # The robust table: 5.67 lies between lo's 0.67 and hi's 6 (ratio 5.67 / 6 = 0.94).
    cells = [c.strip() for c in mid[1].strip("|").split("|")]
    assert cells[1].startswith("5.67 [") and cells[2] == "0.94x hi [0.94, 0.94]"
    assert cells[-2:] == ["> lo, < hi", "yes, 3 of 3 seeds"]

    _refused(spec, "{method: hi, env: E, seeds: [0, 7]}", r"'hi' has no completed run on 'E' with seeds \[7\]")
    _refused(spec, "{method: hi, env: E, seeds: [0, 0]}", "seeds must be a list of distinct integers")
    _refused(spec, "{method: hi, env: E, seeds: 2}", "seeds must be a list of distinct integers")


def test_robust_scores_refuse_curves_that_do_not_compare(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    spec = tmp_path / "results.yaml"
    spec.write_text(ROBUST_SPEC)
    (tmp_path / "m.json").write_text(json.dumps({"d": 1.0, "lo": 0.5, "hi": 2.0}))
    for seed in range(2):
        _curve_record(runs, "a", seed, [1.0, 2.0, 3.0, 4.0])
        _curve_record(runs, "b", seed, [1.0, 2.0, 3.0, 4.0])
    _curve_record(runs, "b", 1, [1.0, 2.0, 3.0, 4.0], frames=[10_000, 20_000, 30_000, 50_000])
    with pytest.raises(ResultsSpecError, match="seed 1 was evaluated at frames .* do not compare"):
        results_markdown(spec, reps=10)
    _curve_record(runs, "b", 1, [2.0, 3.0])
    _curve_record(runs, "a", 1, [2.0, 3.0])
    with pytest.raises(ResultsSpecError, match="evaluated at different frames"):
        results_markdown(spec, reps=10)
    _curve_record(runs, "a", 0, [2.0, 3.0])
    _curve_record(runs, "b", 0, [2.0, 3.0])
    with pytest.raises(ResultsSpecError, match="too few evaluations \\(2\\) for 'last3_eval'"):
        results_markdown(spec, reps=10)


def test_measured_curve_scores_pair_files_by_position(tmp_path):
    for name, curves in {"x": [[0.0, 2.0, 4.0, 6.0], [0.0, 4.0, 8.0, 12.0]], "y": [[0.0, 4.0, 4.0, 4.0]] * 2}.items():
        for seed, returns in enumerate(curves):
            (tmp_path / f"{name}{seed}.json").write_text(json.dumps(
                {"metrics": {"eval_frames": [100, 200, 300, 400], "eval_returns": returns}}))
    spec = tmp_path / "results.yaml"
    spec.write_text("""
sections:
  - title: Measured
    rows:
      - {name: x, file: [x0.json, x1.json], value: [metrics], curve_score: last3_eval,
         vs: {name: y, file: [y0.json, y1.json]}}
      - {name: x, file: [x0.json, x1.json], value: [metrics], curve_score: eval_auc}
""")
    rows = [line for line in results_markdown(spec, reps=200).splitlines() if line.startswith("| x,")]
    # last three: 4 and 8 (mean 6) against 4 and 4: 12 / 8 = 1.5; area: 3 and 6 (mean 4.5)
    assert rows[0].startswith("| x, mean of the evaluations at 200-400 | 6 [") and "| 2 | 1.50x y [" in rows[0]
    assert rows[1].startswith("| x, curve area / frames, 100-400 | 4.5 [")
    spec.write_text(spec.read_text().replace("[y0.json, y1.json]", "[y0.json]"))
    with pytest.raises(ResultsSpecError, match="file lists of one length, paired by position"):
        results_markdown(spec, reps=10)


# What users read speaks of the product (commands, commits, machines, loads), never of how its work was organised.
NARRATION = re.compile(
    r"coding sessions?|session'?s end|sessions' tests|other sessions|earlier sessions?|by the session of"
    r"|\(issue [0-9]+|\bissues? [0-9]+\b|\bissue [0-9]+'s|\bissue[0-9]+|this afternoon",
    re.IGNORECASE,
)
USER_READ = ["RESULTS.md", "RESULTS_NOTEBOOK.md", "README.md", "ARCHITECTURE.md", "docs", "recipes", "torchrl_reg", "benchmarks/results.yaml",
             "benchmarks/*.yaml", "benchmarks/*.py", "benchmarks/results/**/*.md", "benchmarks/results/**/*.sh"]


def test_what_users_read_does_not_narrate_internal_work():
    files = set()
    for pattern in USER_READ:
        for path in REPO.glob(pattern):
            files.update([path] if path.is_file() else (p for p in path.rglob("*") if p.is_file()))
    files = {p for p in files if p.suffix in {".md", ".rst", ".py", ".yaml", ".txt", ".toml", ".sh"}}
    assert len(files) > 50
    found = [f"{p.relative_to(REPO)}:{n}: {m.group(0)!r}" for p in sorted(files)
             for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1) for m in [NARRATION.search(line)] if m]
    assert not found, "\n".join(found[:20])


SOURCE = re.compile(
    r"\b(Table [0-9]|Fig\. [0-9]|figures?\b|Eq\. \(|Section [0-9]|abstract\b)"  # a paper's part
    r"|\b[\w.-]+/[\w.-]+, [\w./-]+\.\w+"  # owner/repository, path/to/file.ext
    r"|\b[\w./-]+/[\w./-]+ \(this repository\)"  # a file or folder of this repository
)


def test_every_anchor_names_its_source():
    """Every anchor in benchmarks/results.yaml is {text, source}; the source names a paper's table or figure, a
    repository and file, or a file or folder of this repository (which must exist), and the MENTS table is quoted exactly."""
    import yaml

    spec = yaml.safe_load((REPO / "benchmarks" / "results.yaml").read_text())
    anchors = [row["anchor"] for section in spec["sections"] for row in section["rows"] if "anchor" in row]
    anchors += [{"text": e["claim"], "source": e["source"]} for e in spec["claims"] if "claim" in e]
    assert len(anchors) > 100
    for anchor in anchors:
        assert isinstance(anchor, dict) and set(anchor) == {"text", "source"}, anchor
        assert SOURCE.search(anchor["source"]), anchor
        for path in re.findall(r"([\w./-]+/[\w./-]+) \(this repository\)", anchor["source"]):
            assert (REPO / path).exists(), anchor
    ments = [a for a in anchors if "Xiao et al." in a["source"] and "Table 1" in a["source"]]
    # Table 1 (DQN / UCT / MENTS): BeamRider 19280 / 21952 / 18576, Breakout 345 / 367 / 386, Q*bert 14558 / 16010 /
    # 18336, Seaquest 1142 / 1129 / 1161, SpaceInvaders 625 / 656 / 1503: MENTS above UCT on all but BeamRider, the
    # highest of the three on 4 of 5 (Seaquest too), in bold on 3 of 5. No text we can read says its prior was a DQN.
    assert ments and all("4 of 5" in a["text"] and "3 of 5" not in a["text"].replace("bold on 3 of 5", "")
                         for a in ments), ments
    assert all("DQN prior" not in a["source"] or "not found in any text we can read" in a["source"] for a in ments)
    (claim,) = [a for a in ments if a["text"].startswith("MENTS above UCT")]
    assert "bold on 3 of 5" in claim["text"] and "4 of 5" in claim["source"] and "3 of 5" in claim["source"]


QUOTES = {  # what each source says, against the wording it was once misquoted with
    "Iwaki": ("performs better than strong non-regularized and entropy-only-regularized methods", "above SAC and TD3"),
    "Fellows et al., VIREL": ("outperform state-of-the-art methods based on soft value functions", "competitive"),
}


def test_the_claims_are_quoted_as_their_sources_say():
    import yaml

    spec = yaml.safe_load((REPO / "benchmarks" / "results.yaml").read_text())
    for author, (quote, misquote) in QUOTES.items():
        (entry,) = [e for e in spec["claims"] if "claim" in e and e["source"].startswith(author)
                    and e["expect"] == "above"]
        assert quote in entry["source"] and misquote not in entry["claim"] + entry["source"].split(" (SAC")[0], entry
    for path in [REPO / "RESULTS.md", REPO / "RESULTS_NOTEBOOK.md", *(REPO / "docs").rglob("*.rst")]:
        text = path.read_text()
        assert "abstract: MDAC above SAC and TD3" not in text and "VIREL competitive with SAC" not in text, path
        assert "(Atari, DQN prior)" not in text, path


def test_the_readme_headline_ratios_are_those_of_results_md():
    """Every ratio the README's Results section quotes is a ratio cell of RESULTS.md or its notebook (robust or
    single evaluation)."""
    readme = (REPO / "README.md").read_text()
    results = readme.split("## Results", 1)[1].split("\n## ", 1)[0]
    quoted = re.findall(r"(-?\d+\.\d\d)x", results)
    assert len(quoted) >= 8
    cells = set(re.findall(r"\| (-?\d+\.\d\dx) \w", (REPO / "RESULTS.md").read_text() + (REPO / "RESULTS_NOTEBOOK.md").read_text()))
    assert all(f"{r}x" in cells for r in quoted), [r for r in quoted if f"{r}x" not in cells]


@pytest.mark.parametrize(
    "low, high, expect, verdict",
    [
        (1.1, 1.5, "above", "yes"), (0.5, 0.9, "above", "no"), (0.9, 1.1, "above", "not resolved"),
        (0.5, 0.9, "below", "yes"), (1.1, 1.5, "below", "no"), (1.0, 1.2, "below", "not resolved"),
        (0.9, 1.1, "near", "consistent"), (1.1, 1.5, "near", "no"),
        (1.1, 1.5, "not_below", "consistent"), (0.9, 1.1, "not_below", "consistent"), (0.5, 0.9, "not_below", "no"),
    ],
)
def test_a_claim_is_judged_by_which_side_of_the_reference_its_interval_lies(low, high, expect, verdict):
    assert _verdict(low, high, 1.0, expect) == verdict


def test_each_section_opens_short_with_its_provenance_in_one_line():
    """Every section names its provenance in one line (the generator caps its length), or reuses the runs of the
    section above; long accounts of how runs were made live in the footnotes, not in a section's opening text."""
    import yaml

    spec = yaml.safe_load((REPO / "benchmarks" / "results.yaml").read_text())
    for section in spec["sections"]:
        text = " ".join(str(section.get("text", "")).split())
        assert len(text) <= 500, section["title"]
        assert "provenance" in section or text == "The runs of the section above.", section["title"]
    assert "Provenance: " in (REPO / "RESULTS.md").read_text()


def test_a_provenance_longer_than_a_line_is_refused(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps({"x": 1.0}))
    spec = tmp_path / "results.yaml"
    spec.write_text(f"sections:\n  - {{title: t, provenance: \"{'word ' * 70}\", rows: [{{name: x, file: m.json, value: [x]}}]}}\n")
    with pytest.raises(ResultsSpecError, match="provenance is one line of at most 320 characters"):
        results_markdown(spec, reps=10)


NUMBER = r"-?[\d,]*\.?\d+(?:e[+-]?\d+)?"
INTERVAL = re.compile(rf"^({NUMBER})(?: \w+)? \[({NUMBER}), ({NUMBER})\]")
RATIO = re.compile(rf"^({NUMBER})x (\S+) \[({NUMBER}), ({NUMBER})\]$")


def _num(text: str) -> float:
    return float(text.replace(",", ""))


def _tables(text: str) -> list[list[list[str]]]:
    """The Markdown tables of a page, each a list of rows of cells (the header first, the rule left out)."""
    tables, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            if not line.startswith("| ---"):
                current.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif current:
            tables.append(current)
            current = []
    return tables


def _other(names: dict[str, list[str]], of: str, env: str) -> list[str]:
    """The row a target compares with: "METHOD, ENV" (a learning row) or the one row whose name starts with it."""
    if f"{of}, {env}" in names:
        return names[f"{of}, {env}"]
    (row,) = [row for name, row in names.items() if name.lower().startswith(of.lower())]
    return row


def _yes_violations(text: str) -> list[str]:
    """Every "yes" cell whose interval spans its target, read back from the Markdown alone."""
    bad = []
    for table in _tables(text):
        head, rows = table[0], table[1:]
        if head[-1] == "holds":  # the summary: the comparison's interval against 1 (a ratio) or 0 (a difference)
            for row in rows:
                m = re.search(rf"({NUMBER})(x?) \[({NUMBER}), ({NUMBER})\]", row[3])
                reference = 1.0 if m.group(2) else 0.0
                if row[-1].startswith("yes") and _num(m.group(3)) <= reference <= _num(m.group(4)):
                    bad.append(" | ".join(row))
            continue
        if head[-1] != "met":
            continue
        names = {re.sub(r"\[\^\d+\]", "", row[0]): row for row in rows}
        for row in rows:
            if not row[-1].startswith("yes") or "(one value)" in row[-1]:
                continue
            score = INTERVAL.match(row[1])
            low, high = _num(score.group(2)), _num(score.group(3))
            ratio = next((RATIO.match(c) for c in row[2:] if RATIO.match(c)), None)
            env = re.sub(r"\[\^\d+\]", "", row[0]).split(", ", 1)[-1]
            for target in row[-2].split(", "):
                if m := re.fullmatch(rf"(>=|<=) ({NUMBER})", target):
                    ok = low > _num(m.group(2)) if m.group(1) == ">=" else high < _num(m.group(2))
                elif m := re.fullmatch(rf"(?:ratio )?>= ({NUMBER}) x (\w+)", target):
                    factor, of = _num(m.group(1)), m.group(2)
                    if ratio and ratio.group(2) == of:
                        ok = _num(ratio.group(3)) > factor
                    else:
                        other = INTERVAL.match(_other(names, of, env)[1])
                        ok = low > factor * _num(other.group(3))
                elif m := re.fullmatch(r"(>|<) (\w+)", target):
                    if ratio and ratio.group(2) == m.group(2):
                        ok = _num(ratio.group(3)) > 1 if m.group(1) == ">" else _num(ratio.group(4)) < 1
                    else:
                        other = INTERVAL.match(_other(names, m.group(2), env)[1])
                        ok = (low > _num(other.group(3))) if m.group(1) == ">" else (high < _num(other.group(2)))
                else:
                    ok = target.startswith("in [")  # a band is never a "yes" on its own
                if not ok:
                    bad.append(" | ".join(row))
    return bad


def test_no_yes_stands_on_an_interval_that_spans_its_target():
    """Every "yes" in RESULTS.md and its notebook, read back from the tables: the interval lies wholly on the
    target's side (the summary: the comparison's interval excludes 1 or 0)."""
    for name in ("RESULTS.md", "RESULTS_NOTEBOOK.md"):
        text = (REPO / name).read_text()
        assert text.count("| yes") > 10
        assert not _yes_violations(text), (name, _yes_violations(text)[:5])
    # The check itself catches a "yes" on an interval that spans its target.
    assert _yes_violations("| result | IQM [95% CI] | n | anchor | target | met |\n| --- |\n"
                           "| a, E | 5 [4, 6] | 3 | - | >= 4.5 | yes |\n")
    assert _yes_violations("| setting | score | baseline | comparison [95% CI] | holds |\n| --- |\n"
                           "| E | - | b | 1.17x [0.73, 1.73] | yes |\n")


def test_results_md_is_a_short_page_that_links_its_notebook():
    page = (REPO / "RESULTS.md").read_text()
    assert len(page.splitlines()) < 400
    assert "[RESULTS_NOTEBOOK.md](RESULTS_NOTEBOOK.md)" in page and (REPO / "RESULTS_NOTEBOOK.md").is_file()
    for gone in ("before the redesign", "SIGSTOP", "oracle model (diagnostics)"):
        assert gone not in page, gone
    for figure in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page):
        assert (REPO / figure).is_file(), figure


def test_the_summary_covers_every_readme_method_by_rule_without_diagnostics():
    """Every method of the README's table has a claim or says why not; each claim has exactly the rows the rule
    finds in the spec (counted here from the YAML alone), and no row of a diagnostic section."""
    import yaml

    spec = yaml.safe_load((REPO / "benchmarks" / "results.yaml").read_text())
    page = (REPO / "RESULTS.md").read_text()
    summary = page.split("## Summary", 1)[1].split("\n## ", 1)[0]
    readme = (REPO / "README.md").read_text()
    table = readme.split("| method | class | recipe | paper |", 1)[1].split("\n\n", 1)[0]
    methods = [line.split("|")[1].strip() for line in table.splitlines()[2:] if line.startswith("|")]
    assert len(methods) >= 14
    named = {e["method"] for e in spec["claims"]}
    for method in methods:
        parts = {p.strip() for p in re.split(r"[,/(]", method.split(" (")[0])} | {method.split(" (")[0]}
        assert any(p in named for p in parts) or method.split(" (")[0] in named, method
        assert any(f"### {p}\n" in summary or f"| {p} |" in summary for p in parts), method
    for entry in spec["claims"]:
        if "claim" not in entry:
            continue
        match, expected = entry["match"], 0
        for section in spec["sections"]:
            if section.get("role"):
                continue
            for row in section["rows"]:
                if "name" in match:
                    expected += "runs" not in section and match["name"] in row.get("name", "") and "range" in row
                else:
                    vs = row.get("vs") or {}
                    wanted = match["method"] if isinstance(match["method"], list) else [match["method"]]
                    expected += (row.get("method") in wanted and str(vs.get("method", vs.get("name", ""))).lower()
                                 == match["vs"] and row.get("curve_score") != "eval_auc")
        block = summary.split(f"**{entry['claim']}**", 1)[1].split("\n\n", 2)[1]
        assert len(block.splitlines()) - 2 == expected > 0, entry["claim"]
        assert f"of {expected} settings" in summary.split(f"**{entry['claim']}**", 1)[1].split("\n", 1)[0]
    assert "oracle" not in summary
    for claim in ("the Munchausen term never detrimental", "MDAC above SAC on MuJoCo", "MENTS above UCT"):
        after = summary.split(f"**{claim}", 1)[1].split("\n### ", 1)[0].split("\n**", 1)[0]
        assert "\nDiagnosis: " in after, claim


def test_the_command_writes_the_page_and_its_notebook_beside_it(tmp_path):
    from torchrl_reg.report.summary import main

    (tmp_path / "m.json").write_text(json.dumps({"x": 2.0}))
    spec = tmp_path / "results.yaml"
    spec.write_text("notebook: NOTES.md\nsections:\n  - {title: t, page: true, rows: [{name: y, file: m.json, value: [x]}]}\n")
    out = tmp_path / "out" / "RESULTS.md"
    out.parent.mkdir()
    assert main(["--results", str(spec), "--out", str(out)]) == 0
    assert "[NOTES.md](NOTES.md)" in out.read_text() and "| y | 2 | 1 |" in (out.parent / "NOTES.md").read_text()
