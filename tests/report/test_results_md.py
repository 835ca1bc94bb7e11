"""RESULTS.md: generated from the committed results, and the targets it checks, against hand computations."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from torchrl_reg.report.results_md import COMMAND, ResultsSpecError, _verdict, results_markdown
from torchrl_reg.report.runs import collect_runs, final_score, method_labels

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results"


def test_committed_results_md_is_what_the_report_generates():
    expected = results_markdown(REPO / "benchmarks" / "results.yaml")
    assert (REPO / "RESULTS.md").read_text() == expected, f"RESULTS.md is stale: run `{COMMAND}`"


def _table_cells(text: str) -> list[str]:
    return [cell.strip() for line in text.splitlines() if line.startswith("|") for cell in line.strip("|").split("|")]


def test_no_table_cell_is_longer_than_a_sentence():
    cells = _table_cells((REPO / "RESULTS.md").read_text())
    assert len(cells) > 400
    for cell in cells:
        assert len(cell) <= 80 and not re.search(r"[.;] \w", cell), cell  # one sentence at most


@pytest.mark.parametrize(
    "folder, count, methods",
    [
        ("learning_classic", 60, {"dqn", "m_dqn", "soft_dqn"}),
        ("learning_minatar", 27, {"m_dqn", "iqn", "m_iqn"}),
        ("mirl/minatar", 27, {"dqn", "sql", "mirl"}),
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
    runs = tmp_path / "runs"
    runs.mkdir()
    # IQM of 4 runs drops one at each end: a -> mean(2, 3) = 2.5; b -> mean(10, 20) = 15; c on one run = 1.
    for seed, score in enumerate([1.0, 2.0, 3.0, 100.0]):
        _record(runs, "a", "E", seed, score)
    for seed, score in enumerate([0.0, 10.0, 20.0, 30.0]):
        _record(runs, "b", "E", seed, score)
    _record(runs, "c", "E", 0, 1.0)
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
  - title: Speed
    interval: median [min, max]
    rows:
      - {name: step ratio, file: m.json, value: [r, x], range: [[r, lo], [r, hi]], n: [reps], target: {max: 1.1}}
"""
    )
    text = results_markdown(spec, reps=200)
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith(("| result", "| ---"))]
    assert rows[0].startswith("| a, E | 2.5 [") and rows[0].endswith("| 4 | paper 3 | >= 2.5 | yes |")
    # b: 15 > 2.5 and 15 >= 6 x 2.5
    assert rows[1].startswith("| b, E[^2] | 15 [") and rows[1].endswith("| 4 | - | > a, >= 6 x a | yes |")
    # c: 1 < 2.5 but 1 is outside [1.5, 2]
    assert rows[2] == "| c, E | 1 [1, 1] | 1 | - | in [1.5, 2], < a | no |"
    assert rows[3] == "| step ratio | 1.07 [1, 1.2] | 15 | - | <= 1.1 | yes |"
    assert "## Learning[^1]" in text and "[^1]: A caveat." in text and "[^2]: Why b." in text

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
    assert lines[2].startswith("| a, E | 4 [") and lines[2].endswith("| 3 | 1.00x sac [0.50, 1.50] | - | ratio >= 0.8 x sac | yes |")
    assert lines[3].endswith("| 3 | 1.00x sac [0.50, 1.50] | - | >= 1, ratio >= 1.2 x sac | no |")

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
summary:
  - {method: A, section: s, row: {method: a, env: E}, score: last3_eval, claim: a above b, source: "a paper, Table 1",
     expect: above}
  - {method: A, section: s, row: {method: a, env: E}, claim: a above b, source: "a paper, Table 1", expect: below}
  - {method: D, section: m, row: {name: d - b}, baseline: b, reference: 0, claim: d above b, source: "b/c, d.json",
     expect: above}
sections:
  - id: s
    title: Learning
    runs: [runs]
    metric: last_eval
    robust: true
    rows:
      - {method: a, env: E, vs: {method: b, min: 1.9, within_pooled_std: true},
         anchor: {text: paper 5, source: "a paper, Table 2"}}
      - {method: b, env: E}
  - id: m
    title: Measured
    rows:
      - {name: d - b, file: m.json, value: [d], range: [[lo], [hi]]}
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
    # The main table: last evaluations 6, 12, 18 (mean 12; IQM of 3 runs is their mean) over b's 4: 36 / 12 = 3.
    assert robust[0].startswith("| a, E | 12 [") and "| 3.00x b [" in robust[0]
    # Pooled std of (6, 12, 18) and (4, 4, 4): sqrt((2 * 36 + 0) / 4) = sqrt(18) = 4.243; margin 12 - (4 - 4.243).
    assert robust[0].endswith("| ratio >= 1.9 x b, >= b - pooled std (margin 12.2) | yes |")
    # The robust table: last three 8 over 4 (ratio 24 / 12 = 2), area 6 over 10/3 (ratio 18 / 10 = 1.8).
    cells = [c.strip() for c in robust[1].strip("|").split("|")]
    assert cells[1].startswith("8 [") and cells[2].startswith("2.00x b [")
    assert cells[3].startswith("6 [") and cells[4].startswith("1.80x b [")
    # Pooled std of (4, 8, 12) and (4, 4, 4): sqrt((2 * 16 + 0) / 4) = sqrt(8) = 2.828; margin 8 - (4 - 2.828) = 6.83.
    assert cells[5:] == ["3", "ratio >= 1.9 x b, >= b - pooled std (margin 6.83)", "yes"]
    b_row = [c.strip() for c in [line for line in lines if line.startswith("| b, E |")][1].strip("|").split("|")]
    assert b_row[1].startswith("4 [") and b_row[3].startswith("3.33 [")
    assert "| result | mean of evaluations 20k-40k [95% CI] |" in text and "from 10k to 40k" in text
    # The summary. Per seed the last-three ratios are 1, 2, 3: a resample of seed 0 three times (probability 1/27,
    # above 2.5%) gives ratio 1, so the interval's low end is exactly 1 and "above" is not resolved.
    summary = [line for line in lines if line.startswith(("| A |", "| D |"))]
    assert summary[0].startswith("| A | E, mean of the evaluations at 20k-40k | 8 [") and " (last evaluation 12) |" in summary[0]
    assert "| b, 3 seeds | 2.00x [1.00, " in summary[0] and summary[0].endswith("| not resolved |")
    # On the section's metric (the last evaluation) the ratios per seed are 1.5, 3, 4.5: the low end is 1.5 > 1,
    # so a claim of "below" is contradicted.
    assert "| 3.00x [1.50, " in summary[1] and summary[1].endswith("| no |")
    # The measured row: the interval [0.5, 2] lies above the reference 0.
    assert summary[2].startswith("| D | d - b | 1 [0.5, 2] | b |") and summary[2].endswith("| yes |")
    assert "Claim source: a paper, Table 1" in text and "Anchor source: a paper, Table 2" in text


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
    assert "| 0.56x hi [0.56, 0.56] |" in mid[0] and mid[0].endswith("| > lo, < hi | yes |")  # 5 / 9; 1 < 5 < 9
    # The robust table: 5.67 lies between lo's 0.67 and hi's 6 (ratio 5.67 / 6 = 0.94).
    cells = [c.strip() for c in mid[1].strip("|").split("|")]
    assert cells[1].startswith("5.67 [") and cells[2] == "0.94x hi [0.94, 0.94]" and cells[-2:] == ["> lo, < hi", "yes"]

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
USER_READ = ["RESULTS.md", "README.md", "ARCHITECTURE.md", "docs", "recipes", "torchrl_reg", "benchmarks/results.yaml",
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
    anchors += [{"text": e["claim"], "source": e["source"]} for e in spec.get("summary", [])]
    assert len(anchors) > 100
    for anchor in anchors:
        assert isinstance(anchor, dict) and set(anchor) == {"text", "source"}, anchor
        assert SOURCE.search(anchor["source"]), anchor
        for path in re.findall(r"([\w./-]+/[\w./-]+) \(this repository\)", anchor["source"]):
            assert (REPO / path).exists(), anchor
    ments = {a["text"] for a in anchors if "Xiao et al." in a["source"] and "Table 1" in a["source"]}
    # Table 1 (DQN / UCT / MENTS): BeamRider 19280 / 21952 / 18576, Breakout 345 / 367 / 386, Q*bert 14558 / 16010 /
    # 18336, Seaquest 1142 / 1129 / 1161, SpaceInvaders 625 / 656 / 1503: MENTS above UCT on all but BeamRider.
    assert ments and all("4 of 5" in text and "3 of 5" not in text for text in ments), ments


def test_the_readme_headline_ratios_are_those_of_results_md():
    """Every ratio the README's Results section quotes is a ratio cell of RESULTS.md (robust or single evaluation)."""
    readme = (REPO / "README.md").read_text()
    results = readme.split("## Results", 1)[1].split("\n## ", 1)[0]
    quoted = re.findall(r"(-?\d+\.\d\d)x", results)
    assert len(quoted) >= 8
    cells = set(re.findall(r"\| (-?\d+\.\d\dx) \w", (REPO / "RESULTS.md").read_text()))
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
