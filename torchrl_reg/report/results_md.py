"""``RESULTS.md`` from committed results: one table row per result, with its target and whether it is met.

A results spec (YAML, e.g. ``benchmarks/results.yaml``) lists sections of rows. A learning row
names a method and an environment; its score is the IQM over the runs' scores with a 95%
stratified-bootstrap confidence interval (:mod:`torchrl_reg.report.stats`), read from the run
records or sweeps under the section's ``runs``. A measurement row reads a number (or a list of
numbers, one per repeat) from a JSON file. Each row may carry an ``anchor`` (a published number, as
text), a ``target`` and a ``note`` (a footnote, for caveats)::

    sections:
      - title: Classic control, 500k steps
        runs: [results/learning_classic]            # relative to the spec file
        metric: final_return                         # or last_eval
        score: mean return of the last 100 training episodes
        rows:
          - {method: m_dqn, env: CartPole-v1, anchor: "CleanRL DQN 488.69 +- 16.11", target: {min: 490}}
      - title: Speed
        rows:
          - name: M-DQN / DQN update time
            file: results/update_cost/update_cost.json
            value: [results, cartpole_mlp, ratio_median]        # keys, list indices; "*" maps over a list or mapping
            range: [[results, cartpole_mlp, ratio_min], [results, cartpole_mlp, ratio_max]]
            target: {max: 1.1}

Targets: ``min`` / ``max`` (bounds on the score), ``band: [low, high]``, ``above`` / ``below``
(another method of the section on the same environment) and ``ratio: {of: METHOD, min: X}``.

A learning row may compare itself with a baseline run on the same seeds: ``vs: {method: sac, runs:
[results/iq/learning], min: 0.8}`` (``runs`` defaults to the section's, ``min`` is an optional target) adds a
column with the ratio of the row's mean score to the baseline's over the row's seeds, with a 95% paired-bootstrap
interval (:func:`~torchrl_reg.report.stats.paired_ratio_ci`). A seed without a baseline run, two runs of one
method on one seed, or a baseline score <= 0 is refused: the pairing must be exact.
``seeds: [0, 1, 2]`` scores a learning row on those seeds' runs only (each of them must be there), e.g. a method with
five seeds beside methods with three, compared on the seeds all of them have.

A learning section with ``robust: true`` adds a table of curve scores (:data:`~torchrl_reg.report.runs.CURVE_METRICS`):
the mean of the last three evaluations and the normalized area under the evaluation curve, each with its ratio to the
baseline on the same seeds, and the row's targets that compare it with other methods (``above``, ``below``,
``ratio``, ``vs``) checked again on the mean of the last three evaluations (``min`` / ``max`` / ``band`` bound the
section's own score, often a paper's number at one step); its runs, and each run and its baseline, must share their
evaluation frames. A measurement
row may read the same scores from a list of run files (``file: [...]``, ``value`` naming the mapping that holds
``eval_frames`` / ``eval_returns``, ``curve_score: last3_eval`` or ``eval_auc``), and compare them with a baseline's
files paired by position (``vs: {name: SAC, file: [...]}``).

A section may carry an ``id``, a ``provenance``: one line (the command, the code's commit, the machine and its
load), the rest in its ``notes``, and a ``setting`` (its budget, score or model, in a few words) naming where its
rows test a claim. An ``anchor`` is text, or ``{text: ..., source: ...}`` whose source (the paper and its table or
figure, or the repository and file) becomes a footnote.

Every "met" cell is decided by a 95% interval (:data:`VERDICT_RULE`): a bound or band by the row's interval, a
comparison with another method by the paired ratio when the row's ``vs`` is that method, else by the two rows'
intervals; yes, no, not resolved, or consistent for a band; "(one value)" where no interval exists, and "k of n
seeds" where n <= 3.

The spec's ``claims`` make the summary at the top: per method, each claim of its paper (``claim``, its ``source``,
``expect``: the side of the comparison's 95% interval that bears it out, against 1 for a ratio or ``reference`` for a
measured difference named with its ``baseline`` text) and a rule, ``match``, that finds every row testing it: a
learning or measurement row of method ``method`` (a name or a list of variants) with ``vs`` that baseline, or a
measurement row whose name holds ``name``. No row is picked by hand; rows of a section with a ``role``
(``diagnostic``: a model no agent has; ``repeat``: rows shown again) never count. A claim may carry a ``diagnosis``
(a paragraph under it); a method with no claim tested says why (``untested``)::

    claims:
      - {method: MDAC, claim: MDAC above SAC on MuJoCo, source: "Iwaki (arXiv 2502.03854), abstract", expect: above,
         match: {method: mdac, vs: sac}}
      - {method: AL / PAL, untested: no learning benchmark is committed}

With ``notebook: NAME.md`` the spec makes two files: ``RESULTS.md`` (the summary, then each section marked
``page: true`` in short: its provenance, text, ``figure`` and decisive table, a robust section's robust table) and
the notebook beside it, every section in full with its notes.

Every setting of a claim that is "not resolved" gets a power estimate (:mod:`torchrl_reg.report.power`): the seeds
(or, for a measured difference, the pairs) at which its 95% interval would exclude the reference with probability
0.8 if the observed effect and spread held, or the statement that no effect was observed in the claim's direction;
a section of the notebook (of ``RESULTS.md`` without one) lists them, and the summary points to it.

``python -m torchrl_reg.report --results benchmarks/results.yaml --out RESULTS.md`` writes the files;
a test checks that the committed ones equal what this module generates.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from torchrl_reg.report.power import (
    MAX_PAIRS,
    MAX_SEEDS,
    POWER,
    SIMS,
    paired_differences,
    sd_from_interval,
    seeds_needed,
    simulated_seeds_needed,
)
from torchrl_reg.report.runs import CURVE_METRICS, collect_runs, final_score, method_labels, read_curve
from torchrl_reg.run.files import parse_yaml, read_json, read_text
from torchrl_reg.report.stats import (
    interquartile_mean,
    last_evaluations_mean,
    normalized_curve_area,
    paired_ratio_ci,
    stratified_bootstrap_ci,
)

__all__ = ["COMMAND", "results_files", "results_markdown"]

COMMAND = "python -m torchrl_reg.report --results benchmarks/results.yaml --out RESULTS.md"
#: Targets that compare a row with other rows (checked on every score of a robust section).
RELATIVE_TARGETS = ("above", "below", "ratio")
SECTION_KEYS = ("id", "title", "provenance", "text", "runs", "metric", "score", "robust", "interval", "env_key", "rows",
                "notes", "setting", "role", "page", "figure")
#: Sections whose rows never stand in the summary: a diagnostic (a model no agent has), rows shown again.
ROLES = ("diagnostic", "repeat")
SPEC_KEYS = ("title", "text", "claims", "notebook", "sections")
LEARNING_ROW_KEYS = ("method", "env", "name", "anchor", "target", "note", "metric", "vs", "seeds")
VS_KEYS = ("method", "runs", "min")
MEASURED_ROW_KEYS = ("name", "method", "file", "value", "curve_score", "range", "n", "unit", "anchor", "target", "note",
                     "vs")
MEASURED_VS_KEYS = ("name", "file", "min")
ANCHOR_KEYS = ("text", "source")
CLAIM_KEYS = ("method", "claim", "source", "expect", "match", "baseline", "reference", "diagnosis", "untested")
MATCH_KEYS = ("method", "vs", "name")
ROBUST_METRICS = ("last3_eval", "eval_auc")
ROBUST_NAMES = {"last3_eval": "mean of the evaluations at", "eval_auc": "curve area / frames,"}
EXPECTS = ("above", "below", "near", "not_below")
TARGET_KEYS = ("min", "max", "band", "above", "below", "ratio")


class Paired(NamedTuple):
    """A row against its baseline on the same seeds: the ratio of means with its 95% paired-bootstrap interval, the
    baseline's name and the two score lists, paired by seed (for the count of seeds on a side)."""

    ratio: float
    low: float
    high: float
    of: str
    mine: tuple[float, ...] = ()
    theirs: tuple[float, ...] = ()


class ResultsSpecError(ValueError):
    """A results spec that cannot be rendered exactly; the message names the section and row."""


def _fmt(x: float) -> str:
    if not math.isfinite(x):
        return "nan"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.3g}" if abs(x) >= 1 else f"{x:.2g}"


def _lookup(data: Any, path: list[Any], where: str) -> Any:
    node = data
    for i, key in enumerate(path):
        if key == "*":
            if isinstance(node, dict):
                node = list(node.values())
            if not isinstance(node, list):
                raise ResultsSpecError(f"{where}: '*' at {path[:i]} needs a list or a mapping, found {type(node).__name__}")
            return [_lookup(item, path[i + 1:], where) for item in node]
        if isinstance(node, list) and isinstance(key, int) and not isinstance(key, bool):
            if not -len(node) <= key < len(node):
                raise ResultsSpecError(f"{where}: index {key} at {path[:i]} is outside a list of {len(node)}")
            node = node[key]
            continue
        if not isinstance(node, dict) or key not in node:
            raise ResultsSpecError(f"{where}: no key {key!r} at {path[:i]}")
        node = node[key]
    return node


class _Footnotes:
    def __init__(self) -> None:
        self.texts: list[str] = []

    def mark(self, text: str | None) -> str:
        if not text:
            return ""
        text = " ".join(str(text).split())
        if text not in self.texts:
            self.texts.append(text)
        return f"[^{self.texts.index(text) + 1}]"


def _names(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _target_text(target: dict[str, Any]) -> str:
    parts = []
    if "min" in target:
        parts.append(f">= {_fmt(target['min'])}")
    if "max" in target:
        parts.append(f"<= {_fmt(target['max'])}")
    if "band" in target:
        low, high = target["band"]
        parts.append(f"in [{_fmt(low)}, {_fmt(high)}]")
    for key, sign in (("above", ">"), ("below", "<")):
        if key in target:
            parts.append(f"{sign} {', '.join(_names(target[key]))}")
    if "ratio" in target:
        parts.append(f">= {_fmt(target['ratio']['min'])} x {target['ratio']['of']}")
    return ", ".join(parts) or "-"


class Check(NamedTuple):
    """One target judged by a 95% interval: the verdict, whether an interval decided it (not one value alone) and,
    per seed, whether that seed meets the target (None where the row has no per-seed scores)."""

    verdict: str
    interval: bool
    seeds: tuple[bool, ...] | None = None


#: Verdicts from the best to the worst: several targets on one row give the worst of theirs.
VERDICTS = ("yes", "consistent", "not resolved", "no")
VERDICT_RULE = (
    'Every "met" and "holds" cell is decided by a 95% interval: yes when the interval lies on the side the target '
    "or claim names, no when it lies on the other side, not resolved when it spans the target; a claim of parity (a "
    "band, \"level with\") or of no loss is consistent unless the interval rules it out. A comparison with a baseline "
    "on the same seeds reads the paired ratio's interval; a comparison with another row, the two rows' intervals "
    '(yes only when they do not overlap). A measurement without an interval says "(one value)". Where n <= 3 the cell '
    "also counts the seeds that meet the target (k of n seeds)."
)


def _finite(low: float, high: float) -> bool:
    return math.isfinite(low) and math.isfinite(high)


def _bound_check(low: float, high: float, point: float, op: str, bound: float,
                 seeds: list[bool] | None = None) -> Check:
    """``score op bound`` (op: >=, >, <=, <) judged by the score's interval (its value where it has none)."""
    interval = _finite(low, high)
    lo, hi = (low, high) if interval else (point, point)
    verdict = _verdict(lo, hi, bound, "above" if op in (">=", ">") else "below")
    if not interval and verdict == "not resolved":  # one value on the bound itself
        verdict = "yes" if op in (">=", "<=") else "no"
    return Check(verdict, interval, None if seeds is None else tuple(seeds))


def _band_check(low: float, high: float, point: float, band: list[float], values: list[float] | None) -> Check:
    """A band is a claim of parity: consistent unless the interval (or the value) lies outside it."""
    interval = _finite(low, high)
    lo, hi = (low, high) if interval else (point, point)
    verdict = "consistent" if lo <= band[1] and hi >= band[0] else "no"
    return Check(verdict, interval, None if values is None else tuple(band[0] <= v <= band[1] for v in values))


def _target_checks(row: dict[str, Any], score: tuple[float, float, float], values: list[float] | None,
                   target: dict[str, Any], others: dict[str, tuple[float, float, float]], paired: Paired | None,
                   where: str) -> list[Check]:
    """The row's targets, each judged by an interval: bounds and bands by the row's own interval; a comparison with
    another method by the paired ratio when the row's baseline on the same seeds is that method, else by the two
    rows' intervals."""
    point, low, high = score

    def other(name: str) -> tuple[float, float, float]:
        if name not in others:
            raise ResultsSpecError(f"{where}: the target compares with {name!r}, which has no row on this environment")
        return others[name]

    def per_seed(test: Any) -> list[bool] | None:
        return None if values is None else [bool(test(v)) for v in values]

    def relative(name: str, op: str, factor: float) -> Check:
        if paired is not None and paired.of == name:  # the paired ratio of means, against the factor
            seeds = [op(a, factor * b) for a, b in zip(paired.mine, paired.theirs)]
            sign = ">=" if op in (_gt, _ge) else "<"
            return _bound_check(paired.low, paired.high, paired.ratio, sign, factor, seeds)
        o_point, o_low, o_high = other(name)
        seeds = per_seed(lambda v: op(v, factor * o_point))
        sign = ">" if op in (_gt, _ge) else "<"
        if _finite(low, high) and _finite(o_low, o_high):  # the difference's ends: its two intervals' far ends
            return _bound_check(low - factor * o_high, high - factor * o_low, point - factor * o_point, sign, 0.0, seeds)
        return _bound_check(math.nan, math.nan, point - factor * o_point, sign, 0.0, seeds)

    checks = []
    if "min" in target:
        checks.append(_bound_check(low, high, point, ">=", target["min"], per_seed(lambda v: v >= target["min"])))
    if "max" in target:
        checks.append(_bound_check(low, high, point, "<=", target["max"], per_seed(lambda v: v <= target["max"])))
    if "band" in target:
        checks.append(_band_check(low, high, point, target["band"], values))
    if "above" in target:
        checks += [relative(name, _gt, 1.0) for name in _names(target["above"])]
    if "below" in target:
        checks += [relative(name, _lt, 1.0) for name in _names(target["below"])]
    if "ratio" in target:
        checks.append(relative(target["ratio"]["of"], _ge, float(target["ratio"]["min"])))
    return checks


def _gt(a: float, b: float) -> bool:
    return a > b


def _ge(a: float, b: float) -> bool:
    return a >= b


def _lt(a: float, b: float) -> bool:
    return a < b


def _met_cell(checks: list[Check], n: int) -> str:
    """The worst verdict of the row's targets, "(one value)" where no interval decided it and, for n <= 3, how many
    seeds meet every target."""
    if not checks:
        return "-"
    text = max((c.verdict for c in checks), key=VERDICTS.index)
    if not all(c.interval for c in checks):
        text += " (one value)"
    if 0 < n <= 3 and all(c.seeds is not None and len(c.seeds) == n for c in checks):
        k = sum(all(c.seeds[i] for c in checks) for i in range(n))
        text += f", {k} of {n} seeds"
    return text


def _check_keys(entry: Any, accepted: tuple[str, ...], where: str) -> None:
    if not isinstance(entry, dict):
        raise ResultsSpecError(f"{where} must be a mapping, got {entry!r}")
    unknown = [k for k in entry if k not in accepted]
    if unknown:
        raise ResultsSpecError(f"{where}: unknown keys {unknown} (accepted: {', '.join(accepted)})")
    target = entry.get("target", {})
    _check_keys_flat(target, TARGET_KEYS, f"{where} target")


def _check_keys_flat(entry: Any, accepted: tuple[str, ...], where: str) -> None:
    if not isinstance(entry, dict) or any(k not in accepted for k in entry):
        raise ResultsSpecError(f"{where} must be a mapping with keys among {', '.join(accepted)}, got {entry!r}")


def _matching_runs(runs: list[Any], labels: list[str], method: str, env: Any, env_key: str) -> list[Any]:
    return [r for r, label in zip(runs, labels)
            if label == method and str(r.value(env_key)) == str(env) and r.status == "completed"]


def _row_runs(runs: list[Any], labels: list[str], row: dict[str, Any], env_key: str, where: str) -> list[Any]:
    """The completed runs of a row's method on its env; with ``seeds``, those seeds' runs only, each of them present."""
    mine = _matching_runs(runs, labels, row["method"], row["env"], env_key)
    if "seeds" not in row:
        return mine
    seeds = row["seeds"]
    if (not isinstance(seeds, list) or not seeds or len(set(map(str, seeds))) != len(seeds)
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)):
        raise ResultsSpecError(f"{where}: seeds must be a list of distinct integers, got {seeds!r}")
    have = {str(r.value("seed")) for r in mine}
    missing = [s for s in seeds if str(s) not in have]
    if missing:
        raise ResultsSpecError(f"{where}: {row['method']!r} has no completed run on {row['env']!r} with seeds {missing} "
                               f"(it has {sorted(have)})")
    return [r for r in mine if _row_keeps(row, r.value("seed"))]


def _row_keeps(row: dict[str, Any], seed: Any) -> bool:
    """Whether a row scores a run of this seed: every seed, or one of its ``seeds``."""
    return "seeds" not in row or str(seed) in {str(s) for s in row["seeds"]}


def _eval_frames(run: Any) -> tuple[float, ...]:
    return tuple(read_curve(run, "eval")[0].tolist())


def _frame_text(frame: float) -> str:
    for size, suffix in ((1_000_000, "M"), (1_000, "k")):
        if frame >= size:
            return f"{frame / size:g}{suffix}"
    return f"{frame:g}"


def _window(frames: tuple[float, ...], metric: str) -> str:
    """The evaluations a curve score reads: ``80k-100k`` for the last three of a 100k run evaluated every 10k."""
    if metric == "last3_eval":
        return f"{_frame_text(frames[-3])}-{_frame_text(frames[-1])}" if len(frames) >= 3 else "?"
    if metric == "eval_auc":
        return f"{_frame_text(frames[0])}-{_frame_text(frames[-1])}" if len(frames) >= 2 else "?"
    return _frame_text(frames[-1]) if frames else "?"


def _compared_frames(frames: tuple[float, ...], metric: str) -> tuple[float, ...]:
    """The evaluation frames on which two runs must agree for their ``metric`` scores to compare."""
    return {"last_eval": frames[-1:], "last3_eval": frames[-3:]}.get(metric, frames)


def _learning_rows(section: dict[str, Any], base: Path, where: str, reps: int) -> list[dict[str, Any]]:
    paths = [base / p for p in section["runs"]]
    runs = collect_runs(paths)
    env_key = section.get("env_key", "env.name")
    labels = method_labels(runs, env_key)
    rows = []
    for k, row in enumerate(section["rows"]):
        here = f"{where} row {k + 1}"
        _check_keys(row, LEARNING_ROW_KEYS, here)
        metric = row.get("metric", section.get("metric", "final_return"))
        mine = sorted(_row_runs(runs, labels, row, env_key, here), key=lambda r: str(r.value("seed")))
        scores = [final_score(r, metric) for r in mine]
        if not scores or not all(math.isfinite(s) for s in scores):
            raise ResultsSpecError(f"{here}: no runs of method {row['method']!r} on {row['env']!r} with a finite {metric!r}")
        point, low, high = stratified_bootstrap_ci([np.asarray(scores)], interquartile_mean, reps=reps)
        rows.append({**row, "name": row.get("name", f"{row['method']}, {row['env']}"), "score": point,
                     "low": low, "high": high, "n": len(scores), "seeds": sorted({str(r.value("seed")) for r in mine}),
                     "values": scores})
        if "vs" in row:
            rows[-1]["vs_ratio"] = _paired_ratio(row, metric, runs, labels, section, base, here, reps)
        if section.get("robust"):
            rows[-1]["robust"] = _robust_scores(row, mine, runs, labels, section, base, here, reps)
    return rows


def _robust_scores(row: dict[str, Any], mine: list[Any], runs: list[Any], labels: list[str], section: dict[str, Any],
                   base: Path, where: str, reps: int) -> dict[str, dict[str, Any]]:
    """Per robust metric: the IQM over the row's runs [95% CI], the evaluations it reads and, with ``vs``, the
    ratio to the baseline on the same seeds."""
    frames = {_eval_frames(r) for r in mine}
    if len(frames) > 1:
        raise ResultsSpecError(f"{where}: the runs of {row['method']!r} on {row['env']!r} were evaluated at different "
                               f"frames ({sorted(frames)}): their curve scores do not compare")
    (curve_frames,) = frames
    out = {}
    for metric in ROBUST_METRICS:
        scores = [final_score(r, metric) for r in mine]
        if not all(math.isfinite(s) for s in scores):
            raise ResultsSpecError(f"{where}: the runs of {row['method']!r} on {row['env']!r} have too few evaluations "
                                   f"({len(curve_frames)}) for {metric!r}")
        point, low, high = stratified_bootstrap_ci([np.asarray(scores)], interquartile_mean, reps=reps)
        out[metric] = {"score": (point, low, high), "window": _window(curve_frames, metric), "values": scores}
        if "vs" in row:
            out[metric]["ratio"] = _paired_ratio(row, metric, runs, labels, section, base, where, reps)
    return out


def _runs_by_seed(runs: list[Any], labels: list[str], method: str, env: Any, env_key: str,
                  where: str) -> dict[Any, Any]:
    by_seed: dict[Any, Any] = {}
    for run in _matching_runs(runs, labels, method, env, env_key):
        seed = run.value("seed")
        if seed in by_seed:
            raise ResultsSpecError(f"{where}: two completed runs of {method!r} on {env!r} with seed {seed!r}: "
                                   "pairing by seed would be ambiguous")
        by_seed[seed] = run
    return by_seed


def _paired_ratio(row: dict[str, Any], metric: str, runs: list[Any], labels: list[str], section: dict[str, Any],
                  base: Path, where: str, reps: int) -> Paired:
    vs = row["vs"]
    _check_keys_flat(vs, VS_KEYS, f"{where} vs")
    if "method" not in vs:
        raise ResultsSpecError(f"{where} vs: name the baseline's method (vs: {{method: ...}}), got {vs!r}")
    _check_min(vs, where)
    if "runs" in vs and (not isinstance(vs["runs"], list) or not all(isinstance(p, str) for p in vs["runs"])):
        raise ResultsSpecError(f"{where} vs: runs must be a list of paths relative to the spec, got {vs['runs']!r}")
    env_key = section.get("env_key", "env.name")
    if "runs" in vs:
        base_runs = collect_runs([base / p for p in vs["runs"]])
        base_labels = method_labels(base_runs, env_key)
    else:
        base_runs, base_labels = runs, labels
    mine = _runs_by_seed(runs, labels, row["method"], row["env"], env_key, where)
    mine = {seed: run for seed, run in mine.items() if _row_keeps(row, seed)}
    theirs = _runs_by_seed(base_runs, base_labels, vs["method"], row["env"], env_key, where)
    missing = [seed for seed in mine if seed not in theirs]
    if missing:
        raise ResultsSpecError(f"{where} vs: {vs['method']!r} has no completed run on {row['env']!r} with seeds "
                               f"{missing} (it has {sorted(theirs, key=str)}): every seed of the row needs its pair")
    seeds = sorted(mine, key=str)
    if metric in CURVE_METRICS:
        for seed in seeds:
            a, b = (_compared_frames(_eval_frames(x[seed]), metric) for x in (mine, theirs))
            if a != b:
                raise ResultsSpecError(f"{where} vs {vs['method']!r}: seed {seed!r} was evaluated at frames {list(a)} "
                                       f"and its baseline at {list(b)}: {metric!r} scores of the two do not compare")
    return _pair([final_score(mine[s], metric) for s in seeds], [final_score(theirs[s], metric) for s in seeds],
                 vs, str(vs["method"]), where, reps)


def _pair(mine: list[float], theirs: list[float], vs: dict[str, Any], of: str, where: str, reps: int) -> Paired:
    try:
        ratio, low, high = paired_ratio_ci(mine, theirs, reps=reps)
    except ValueError as err:
        raise ResultsSpecError(f"{where} vs {of!r}: {err}") from None
    return Paired(ratio, low, high, of, tuple(mine), tuple(theirs))


def _vs_checks(vs: dict[str, Any], paired: Paired) -> tuple[list[Check], list[str]]:
    """The target a ``vs`` sets on its comparison: ``min`` on the ratio's interval."""
    if "min" not in vs:
        return [], []
    check = _bound_check(paired.low, paired.high, paired.ratio, ">=", vs["min"],
                         [a >= vs["min"] * b for a, b in zip(paired.mine, paired.theirs)])
    return [check], [f"ratio >= {_fmt(vs['min'])} x {paired.of}"]


def _check_min(vs: dict[str, Any], where: str) -> None:
    if "min" in vs and (isinstance(vs["min"], bool) or not isinstance(vs["min"], (int, float))
                        or not math.isfinite(vs["min"])):
        raise ResultsSpecError(f"{where} vs: min must be a finite number (a target ratio), got {vs['min']!r}")


def _measured_value(row: dict[str, Any], files: Any, base: Path, where: str) -> tuple[Any, list[tuple[float, ...]]]:
    """The value a measurement row names in each of its files (one file: its value; a list: one value per file)
    and, for a ``curve_score`` row, the evaluation frames each score reads."""
    names = [files] if isinstance(files, str) else files
    if not isinstance(names, list) or not names or not all(isinstance(f, str) for f in names):
        raise ResultsSpecError(f"{where}: file must be a path or a non-empty list of paths, got {files!r}")
    values, frames = [], []
    for name in names:
        path = base / name
        value = _lookup(read_json(path), list(row["value"]), f"{where} ({path.name})")
        if "curve_score" in row:
            metric = row["curve_score"]
            if metric not in ROBUST_METRICS:
                raise ResultsSpecError(f"{where}: curve_score must be one of {', '.join(ROBUST_METRICS)}, got {metric!r}")
            if not isinstance(value, dict) or not {"eval_frames", "eval_returns"} <= set(value):
                raise ResultsSpecError(f"{where} ({path.name}): a curve_score row's value must be a mapping with "
                                       "eval_frames and eval_returns (a run's metrics)")
            curve = (value["eval_frames"], value["eval_returns"])
            try:
                value = last_evaluations_mean(*curve) if metric == "last3_eval" else normalized_curve_area(*curve)
            except ValueError as err:
                raise ResultsSpecError(f"{where} ({path.name}): {err}") from None
            frames.append(tuple(float(f) for f in curve[0]))
        values.append(value)
    return (values[0] if isinstance(files, str) else values), frames


def _measured_rows(section: dict[str, Any], base: Path, where: str, reps: int) -> list[dict[str, Any]]:
    rows = []
    for k, row in enumerate(section["rows"]):
        here = f"{where} row {k + 1}"
        _check_keys(row, MEASURED_ROW_KEYS, here)
        value, frames = _measured_value(row, row["file"], base, here)
        name, window = row["name"], None
        if frames:
            if len(set(frames)) > 1:
                raise ResultsSpecError(f"{here}: the runs were evaluated at different frames: their curve scores do "
                                       "not compare")
            metric = row["curve_score"]
            window = _window(frames[0], metric)
            name = f"{name}, {ROBUST_NAMES[metric]} {window}"
        if isinstance(value, list):
            point, low, high = stratified_bootstrap_ci([np.asarray(value, dtype=float)], interquartile_mean, reps=reps)
            n = len(value)
        else:
            point = float(value)
            path = base / row["file"]
            data = read_json(path) if "n" in row or "range" in row else None
            count = _lookup(data, list(row["n"]), f"{here} ({path.name})") if "n" in row else 1
            n = len(count) if isinstance(count, (list, dict)) else int(count)  # a count, or what it counts
            low = high = math.nan
            if "range" in row:
                low, high = (float(_lookup(data, list(key), f"{here} ({path.name})")) for key in row["range"])
        rows.append({**row, "name": name, "own_name": row["name"], "window": window, "score": point, "low": low,
                     "high": high, "n": n, "env": None,
                     "values": [float(v) for v in value] if isinstance(value, list) else None})
        if "vs" in row:
            rows[-1]["vs_ratio"] = _measured_ratio(row, value, frames, base, here, reps)
    return rows


def _measured_ratio(row: dict[str, Any], value: Any, frames: list[tuple[float, ...]], base: Path, where: str,
                    reps: int) -> Paired:
    """A measurement row over several runs against a baseline's runs, paired by position in their file lists."""
    vs = row["vs"]
    _check_keys_flat(vs, MEASURED_VS_KEYS, f"{where} vs")
    _check_min(vs, where)
    if "name" not in vs or "file" not in vs:
        raise ResultsSpecError(f"{where} vs: name the baseline and its files (vs: {{name: ..., file: [...]}}), got {vs!r}")
    theirs, their_frames = _measured_value(row, vs["file"], base, f"{where} vs")
    if not isinstance(value, list) or not isinstance(theirs, list) or len(value) != len(theirs):
        raise ResultsSpecError(f"{where} vs: the row and its baseline need file lists of one length, paired by "
                               f"position (the same seeds in the same order), got {row['file']!r} and {vs['file']!r}")
    metric = row.get("curve_score")
    if metric and any(_compared_frames(a, metric) != _compared_frames(b, metric) for a, b in zip(frames, their_frames)):
        raise ResultsSpecError(f"{where} vs: a run and its baseline were evaluated at different frames: their "
                               f"{metric!r} scores do not compare")
    return _pair([float(v) for v in value], [float(v) for v in theirs], vs, str(vs["name"]), where, reps)


def _anchor(row: dict[str, Any], notes: _Footnotes, where: str) -> str:
    """An anchor cell: its text, and its source as a footnote (``anchor: {text: ..., source: ...}``)."""
    anchor = row.get("anchor")
    if not anchor:
        return "-"
    if isinstance(anchor, str):
        return anchor
    _check_keys_flat(anchor, ANCHOR_KEYS, f"{where} anchor")
    if not anchor.get("text"):
        raise ResultsSpecError(f"{where} anchor: give its text (anchor: {{text: ..., source: ...}}), got {anchor!r}")
    source = anchor.get("source")
    return f"{anchor['text']}{notes.mark(f'Anchor source: {source}' if source else None)}"


def _ci_cell(point: float, low: float, high: float) -> str:
    return f"{_fmt(point)} [{_fmt(low)}, {_fmt(high)}]"


def _ratio_cell(paired: Paired) -> str:
    return f"{paired.ratio:.2f}x {paired.of} [{paired.low:.2f}, {paired.high:.2f}]"


def _robust_table(rows: list[dict[str, Any]], where: str, notes: _Footnotes | None = None) -> list[str]:
    """The section's robust scores: the mean of the last three evaluations and the normalized curve area; with
    ``notes`` (the page, where it stands alone), the rows' anchors too."""
    windows = {m: {row["robust"][m]["window"] for row in rows} for m in ROBUST_METRICS}
    if any(len(w) > 1 for w in windows.values()):
        raise ResultsSpecError(f"{where}: a robust section needs one evaluation schedule for all its rows, got {windows}")
    last3, area = (next(iter(windows[m])) for m in ROBUST_METRICS)
    lines = [f"Robust score, from the same runs' evaluation curves: the mean of the last three evaluations ({last3}) "
             f"and the area under the evaluation curve from {area.replace('-', ' to ')} divided by the frames it spans "
             "(the curve's average return); IQM over runs [95% stratified-bootstrap CI], ratios of means on the "
             "same seeds [95% paired-bootstrap CI]; the targets that compare methods (above, below, a ratio) are "
             "checked on the mean of the last three evaluations.", "",
             f"| result | mean of evaluations {last3} [95% CI] | ratio, same seeds [95% CI] | curve area / frames "
             "[95% CI] | ratio, same seeds [95% CI] | n |" + (" anchor |" if notes else "") + " target | met |",
             "| --- | --- | --- | --- | --- | ---: |" + (" --- |" if notes else "") + " --- | --- |"]
    for row in rows:
        cells = [row["name"]]
        for m in ROBUST_METRICS:
            entry = row["robust"][m]
            cells += [_ci_cell(*entry["score"]), _ratio_cell(entry["ratio"]) if "ratio" in entry else "-"]
        last3 = row["robust"]["last3_eval"]
        checks, texts = _vs_checks(row["vs"], last3["ratio"]) if "vs" in row else ([], [])
        relative = {k: v for k, v in (row.get("target") or {}).items() if k in RELATIVE_TARGETS}
        if relative:  # the row's comparisons with other methods, on this score too
            others = {r.get("method", r["name"]): r["robust"]["last3_eval"]["score"] for r in rows
                      if r.get("env") == row.get("env")}
            checks[:0] = _target_checks(row, last3["score"], last3["values"], relative, others, last3.get("ratio"),
                                        f"{where}, {row['name']}")
            texts.insert(0, _target_text(relative))
        target = ", ".join(texts) or "-"
        met = _met_cell(checks, row["n"])
        anchor = [_anchor(row, notes, f"{where}, {row['name']}")] if notes else []
        lines.append("| " + " | ".join([*cells, str(row["n"]), *anchor, target, met]) + " |")
    return lines


def _verdict(low: float, high: float, reference: float, expect: str) -> str:
    """Whether a claim holds, from a 95% interval: resolved on the claimed side (yes), on the other (no), or not
    resolved; a claim of parity (near) or of no loss (not_below) is "consistent" unless the interval excludes it."""
    if expect == "near":
        return "consistent" if low <= reference <= high else "no"
    if expect == "not_below":
        return "no" if high < reference else "consistent"
    above, below = low > reference, high < reference
    if (expect == "above" and above) or (expect == "below" and below):
        return "yes"
    if (expect == "above" and below) or (expect == "below" and above):
        return "no"
    return "not resolved"


def _claim_matches(entry: dict[str, Any], sections: list[tuple[dict[str, Any], list[dict[str, Any]]]],
                   where: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Every row that tests a claim, by its rule: ``match: {method: M, vs: B}`` takes each row of method M (one
    name or a list of variants) compared with baseline B on the same seeds (a learning row's ``vs`` method, a
    measurement row's ``vs`` name; curve areas left out: the summary reads the mean of the last three evaluations);
    ``match: {name: TEXT}`` takes each measurement row with an interval whose name holds TEXT. Rows of a section
    with a ``role`` (diagnostic: a model no agent has; repeat: rows shown again from other sections) never count."""
    match = entry["match"]
    _check_keys_flat(match, MATCH_KEYS, f"{where} match")
    if not (("method" in match and "vs" in match) ^ ("name" in match)):
        raise ResultsSpecError(f"{where} match: give method and vs (a comparison with a baseline on the same seeds) "
                               f"or name (text in a measurement row's name), got {match!r}")
    found = []
    for section, rows in sections:
        if section.get("role"):
            continue
        for row in rows:
            if "name" in match:
                ok = "runs" not in section and match["name"] in row["name"] and _finite(row["low"], row["high"])
            else:
                vs = row.get("vs") or {}
                baseline = str(vs.get("method", vs.get("name", "")))
                ok = (str(row.get("method")) in map(str, _names(match["method"])) and "vs_ratio" in row
                      and baseline.lower() == str(match["vs"]).lower() and row.get("curve_score") != "eval_auc")
            if ok:
                if not section.get("setting"):
                    raise ResultsSpecError(f"{where}: the section {section['title']!r} tests the claim: give it a "
                                           "setting (its budget, score or model, in a few words)")
                found.append((section, row))
    return found


def _claim_row(entry: dict[str, Any], section: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    """One setting of a claim: its label, score, baseline, comparison interval and the seeds on each side."""
    setting = " ".join(str(section["setting"]).split())
    match = entry["match"]
    if "runs" in section:  # a learning row: its ratio to the baseline, the robust score in a robust section
        variant = "" if str(row["method"]) == str(_names(match["method"])[0]) else f", variant {row['method']}"
        label = f"{row['env']}, {setting}{variant}"
        if section.get("robust"):
            robust = row["robust"]["last3_eval"]
            paired = robust["ratio"]
            score = f"{_ci_cell(*robust['score'])} at {robust['window']} (last {_fmt(row['score'])})"
        else:
            paired, score = row["vs_ratio"], _ci_cell(row["score"], row["low"], row["high"])
    elif "vs_ratio" in row:
        paired, label = row["vs_ratio"], f"{setting}: {row['own_name']}"
        score = _ci_cell(row["score"], row["low"], row["high"]) + (f" at {row['window']}" if row["window"] else "")
    else:  # a measured difference
        return {"label": f"{setting}: {row['name']}", "score": "-", "baseline": str(entry.get("baseline", "-")),
                "comparison": _ci_cell(row["score"], row["low"], row["high"]), "low": row["low"], "high": row["high"],
                "reference": float(entry.get("reference", 0.0)), "pairs": (), "point": row["score"], "n": row["n"]}
    return {"label": label, "score": score, "baseline": f"{paired.of}, {len(paired.mine)} seeds",
            "comparison": f"{paired.ratio:.2f}x [{paired.low:.2f}, {paired.high:.2f}]", "low": paired.low,
            "high": paired.high, "reference": float(entry.get("reference", 1.0)),
            "pairs": tuple(zip(paired.mine, paired.theirs)), "point": paired.ratio, "n": len(paired.mine)}


def _holds_cell(found: dict[str, Any], expect: str) -> str:
    verdict = _verdict(found["low"], found["high"], found["reference"], expect)
    pairs = found["pairs"]
    if 0 < len(pairs) <= 3:
        below = expect in ("below", "not_below")
        k = sum((a < b) if below else (a > b) for a, b in pairs)
        verdict += f", {k} of {len(pairs)} seeds {'below' if below else 'above'}"
    return verdict


POWER_TITLE = "Seeds a claim not resolved would need"
POWER_ANCHOR = "seeds-a-claim-not-resolved-would-need"
POWER_POINTER = (" For every setting not resolved, {where} estimates the seeds the observed effect would need to "
                 "resolve it at 95%, or says that no effect was observed in the claim's direction.")
POWER_TEXT = (
    "For every setting of a claim that the summary leaves not resolved: the seeds that would resolve it if the "
    "observed effect and the observed spread between seeds held, so that a claim unresolved for lack of seeds reads "
    "apart from one unresolved for lack of effect. A comparison with a baseline on the same seeds reads the ratio of "
    "means against r (1 for above or below); it is above r exactly when the mean of the per-seed differences x - r y "
    "is above 0, so the estimate works on those differences, their mean (in score units) and their sample sd. The "
    "count (all seeds, those we have included) is the smallest n at which the 95% t interval of n such differences "
    f"lies wholly on the claimed side with probability {POWER:g} (the power of a paired t test, from the noncentral "
    f"t; {POWER:g} is the usual planning convention: a count planned so misses a real effect of the observed size "
    f"one time in five), capped at {MAX_SEEDS} seeds. A measured difference given as the mean of n pairs with its 95% "
    "interval takes its per-pair sd from the interval's width, sqrt(n) (high - low) / 3.92, and counts pairs (capped "
    f"at {MAX_PAIRS:,}). The cross-check applies the report's own rule: n seeds drawn with replacement from the "
    f"observed ones, the paired bootstrap interval, {SIMS} draws per n; its count is the smallest n resolved in "
    f"{POWER:.0%} of them (to about 0.03 of power). It is mostly below the t count, because a few observed seeds "
    "understate the spread (three seeds recur as three values, with 2/3 of their sample variance) and the percentile "
    "interval is narrower than the t interval at small n: the t count is the cautious one, and the two bracket what "
    "the observed seeds can tell. Where the observed effect is 0 or on the side the claim denies, no count is given: "
    "no observed effect in the claim's direction, and more seeds would not resolve it for the claim."
)


def _power_cells(entry: dict[str, Any], found: dict[str, Any]) -> list[str]:
    """One setting's power estimate: the count now, the per-seed difference's mean (sd), the count needed by the t
    estimate and by the simulation (seeds only: a measured difference has no per-pair values here), and why the
    setting is not resolved."""
    side, reference = entry["expect"], found["reference"]
    if found["pairs"]:
        mine, theirs = (list(v) for v in zip(*found["pairs"]))
        diffs = paired_differences(mine, theirs, reference)
        n, unit, cap = len(diffs), "seeds", MAX_SEEDS
        effect = float(diffs.mean())
        spread = float(diffs.std(ddof=1)) if n >= 2 else math.nan
    else:  # a measured difference: its mean and interval, over its pairs
        n, unit, cap = int(found["n"]), "pairs", MAX_PAIRS
        effect = found["point"] - reference
        spread = sd_from_interval(found["low"], found["high"], n) if n >= 2 else math.nan
    now = f"{n} {unit}"
    if n < 2:
        return [now, "-", "-", "-", f"one of {unit}: no spread to read"]
    estimate = seeds_needed(effect, spread, side, cap=cap)
    difference = f"{'+' if effect > 0 else ''}{_fmt(effect)} ({_fmt(spread)})"
    if estimate.reason == "wrong side":
        return [now, difference, "-", "-", "no observed effect in the claim's direction"]

    def count(k: int | None) -> str:
        return f"{k} {unit}" + (f" ({k - n} more)" if k > n else "") if k is not None else f"> {cap:,} {unit}"

    simulated = "-"
    if found["pairs"]:
        simulated = count(simulated_seeds_needed(mine, theirs, reference, side, cap=cap, start=estimate.n))
    reason = f"lack of {unit}" if estimate.n is not None else f"too small an effect: more than {cap:,} {unit}"
    return [now, difference, count(estimate.n), simulated, reason]


def _power_lines(unresolved: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[str]:
    """The section that estimates, per setting not resolved, the seeds its observed effect would need."""
    lines = [f"## {POWER_TITLE}", "", POWER_TEXT, ""]
    claim = None
    for entry, found in unresolved:
        if entry["claim"] != claim:
            claim = entry["claim"]
            lines += ([""] if lines[-1] else []) + [
                f"**{claim}** ({entry['method']}, expected {entry['expect']} {_fmt(found['reference'])}):", "",
                f"| setting | comparison [95% CI] | n | difference per seed: mean (sd) | needed at power {POWER:g}, t "
                "| needed, simulated | not resolved for |", "| --- | --- | ---: | --- | --- | --- | --- |"]
        lines.append("| " + " | ".join([found["label"], found["comparison"], *_power_cells(entry, found)]) + " |")
    return [*lines, ""]


def _summary(spec: dict[str, Any], sections: list[tuple[dict[str, Any], list[dict[str, Any]]]],
             notes: _Footnotes, where: str, unresolved: list[tuple[dict[str, Any], dict[str, Any]]],
             power_page: str | None) -> list[str]:
    """Per method, each claim of its paper with one row per setting where a row of the sections tests it (found by
    the claim's rule, never picked by hand), and a line that counts the settings where it holds. Each setting that
    is not resolved is appended to ``unresolved`` (the claim's entry, the setting's row) for its power estimate,
    which the page ``power_page`` holds (None: this one)."""
    entries = spec.get("claims") or []
    if not isinstance(entries, list):
        raise ResultsSpecError(f"{where} claims must be a list of entries, got {entries!r}")
    where_power = (f"[{power_page}]({power_page}#{POWER_ANCHOR})" if power_page
                   else f'the section "{POWER_TITLE}" below')
    lines = ["## Summary", "", VERDICT_RULE + POWER_POINTER.format(where=where_power), "",
             "Each claim of a method's paper has one row per setting where a result below tests it: every row of the "
             "sections that compares the method (or a named variant) with the claim's baseline on the same seeds, or "
             "every measured difference the claim names. Rows of diagnostic sections (a model no agent has) never "
             "count. MuJoCo rows read the mean of the last three evaluations, the last evaluation in parentheses.", ""]
    heading, untested = None, []
    for k, entry in enumerate(entries):
        here = f"{where} claims entry {k + 1}"
        _check_keys_flat(entry, CLAIM_KEYS, here)
        if "method" not in entry:
            raise ResultsSpecError(f"{here}: 'method' is required (keys: {', '.join(CLAIM_KEYS)})")
        if entry["method"] != heading and "untested" not in entry:
            heading = entry["method"]
            lines += [f"### {heading}", ""]
        if "untested" in entry:
            untested.append(f"| {entry['method']} | {' '.join(str(entry['untested']).split())} |")
            continue
        for key in ("claim", "source", "expect", "match"):
            if key not in entry:
                raise ResultsSpecError(f"{here}: {key!r} is required (keys: {', '.join(CLAIM_KEYS)})")
        if entry["expect"] not in EXPECTS:
            raise ResultsSpecError(f"{here}: expect must be one of {', '.join(EXPECTS)}, got {entry['expect']!r}")
        rows = [_claim_row(entry, section, row) for section, row in _claim_matches(entry, sections, here)]
        if not rows:
            raise ResultsSpecError(f"{here}: no row of the sections matches {entry['match']!r}")
        verdicts = [_verdict(r["low"], r["high"], r["reference"], entry["expect"]) for r in rows]
        held = sum(v in ("yes", "consistent") for v in verdicts)
        overall = f"holds on {held} of {len(rows)} settings"
        no = [r["label"] for r, v in zip(rows, verdicts) if v == "no"]
        open_rows = [r for r, v in zip(rows, verdicts) if v == "not resolved"]
        unresolved += [(entry, r) for r in open_rows]
        if no:
            overall += f"; no on {'; '.join(no)}"
        if open_rows:
            overall += f"; not resolved on {len(open_rows)}"
        lines += [f"**{entry['claim']}**{notes.mark('Claim source: ' + str(entry['source']))}: {overall}.", "",
                  "| setting | score [95% CI] | baseline | comparison [95% CI] | holds |",
                  "| --- | --- | --- | --- | --- |"]
        lines += ["| " + " | ".join([r["label"], r["score"], r["baseline"], r["comparison"],
                                     _holds_cell(r, entry["expect"])]) + " |" for r in rows]
        lines.append("")
        if entry.get("diagnosis"):
            lines += [f"Diagnosis: {' '.join(str(entry['diagnosis']).split())}", ""]
    if untested:
        lines += ["### Methods with no claim tested", "", "| method | why |", "| --- | --- |", *untested, ""]
    return lines if entries else []


MAX_PROVENANCE = 320
"""The longest provenance line: the command, the code's commit, the machine and its load; the rest is a note."""


def _section_lines(section: dict[str, Any], rows: list[dict[str, Any]], notes: _Footnotes, where: str,
                   full: bool) -> list[str]:
    """A section: in full (its notes as footnotes, both tables of a robust section), or short for the page (its
    provenance line, text, figure and tables, the notes left to the notebook)."""
    learning = "runs" in section
    section_marks = "".join(notes.mark(n) for n in section.get("notes", [])) if full else ""
    lines = [f"## {section['title']}{section_marks}", ""]
    if section.get("provenance"):
        lines += [f"Provenance: {' '.join(section['provenance'].split())}", ""]
    if section.get("text"):
        lines += [" ".join(str(section["text"]).split()), ""]
    if section.get("figure") and not full:
        lines += [f"![{section['title']}]({section['figure']})", ""]
    if section.get("robust") and not full:  # the decisive score: the mean of the last evaluations
        return [*lines, *_robust_table(rows, where, notes), ""]
    if learning:
        score = section.get("score", section.get("metric", "final_return"))
        lines += [f"Score: {score}; IQM over runs [95% stratified-bootstrap CI].", ""]
    interval = section.get("interval", "IQM [95% CI]")
    paired = any("vs_ratio" in row for row in rows)
    ratio_head = " ratio to baseline, same seeds [95% CI] |" if paired else ""
    lines += [f"| result | {interval} | n |{ratio_head} anchor | target | met |",
              "| --- | --- | ---: |" + (" --- |" if paired else "") + " --- | --- | --- |"]
    for row in rows:
        target = row.get("target") or {}
        others = {r.get("method", r["name"]): (r["score"], r["low"], r["high"]) for r in rows
                  if r.get("env") == row.get("env")}
        checks = _target_checks(row, (row["score"], row["low"], row["high"]), row.get("values"), target, others,
                                row.get("vs_ratio"), f"{where}, {row['name']}") if target else []
        target_text = [_target_text(target)] if target else []
        if "vs_ratio" in row:
            vs_checks, vs_texts = _vs_checks(row["vs"], row["vs_ratio"])
            checks += vs_checks
            target_text += vs_texts
        bounds = f" [{_fmt(row['low'])}, {_fmt(row['high'])}]" if math.isfinite(row["low"]) else ""
        unit = f" {row['unit']}" if row.get("unit") else ""
        ratio_cell = [_ratio_cell(row["vs_ratio"]) if "vs_ratio" in row else "-"] if paired else []
        cells = [
            f"{row['name']}{notes.mark(row.get('note'))}",
            f"{_fmt(row['score'])}{bounds}{unit}",
            str(row["n"]),
            *ratio_cell,
            _anchor(row, notes, f"{where}, {row['name']}"),
            ", ".join(target_text) or "-",
            _met_cell(checks, row["n"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if section.get("robust"):
        lines += [*_robust_table(rows, where), ""]
    return lines


def _footnote_lines(notes: _Footnotes) -> list[str]:
    return [*(f"[^{i}]: {text}" for i, text in enumerate(notes.texts, 1)), ""] if notes.texts else []


def results_files(spec_path: str | Path, *, reps: int = 20_000) -> dict[str, str]:
    """The Markdown files a results spec makes, by name: ``RESULTS.md`` (the summary, then the sections marked
    ``page: true`` in short) and, with ``notebook: NAME`` in the spec, that companion (every section in full, with
    its notes); without it, ``RESULTS.md`` holds every section in full. Deterministic: fixed bootstrap seeds."""
    spec_path = Path(spec_path)
    spec = parse_yaml(read_text(spec_path, "config"), spec_path)
    if not isinstance(spec, dict) or not isinstance(spec.get("sections"), list):
        raise ResultsSpecError(f"{spec_path}: a results spec is a mapping with a 'sections' list")
    unknown = [k for k in spec if k not in SPEC_KEYS]
    if unknown:
        raise ResultsSpecError(f"{spec_path}: unknown keys {unknown} (accepted: {', '.join(SPEC_KEYS)})")
    notebook = spec.get("notebook")
    if notebook is not None and (not isinstance(notebook, str) or not notebook.endswith(".md") or "/" in notebook):
        raise ResultsSpecError(f"{spec_path}: notebook is the companion's file name (NAME.md, beside RESULTS.md), "
                               f"got {notebook!r}")
    base = spec_path.parent
    computed: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    ids: set[str] = set()
    for s, section in enumerate(spec["sections"]):
        where = f"{spec_path} section {s + 1}"
        _check_keys_flat(section, SECTION_KEYS, where)
        provenance = section.get("provenance")
        if provenance is not None and (not isinstance(provenance, str) or len(" ".join(provenance.split())) > MAX_PROVENANCE):
            raise ResultsSpecError(f"{where}: provenance is one line of at most {MAX_PROVENANCE} characters (command, "
                                   f"commit, machine, load); the rest goes in notes, got {provenance!r}")
        if section.get("robust") and "runs" not in section:
            raise ResultsSpecError(f"{where}: robust: true needs a learning section (runs); a measurement row takes "
                                   f"curve_score: {' or '.join(ROBUST_METRICS)}")
        if section.get("role") not in (None, *ROLES):
            raise ResultsSpecError(f"{where}: role must be one of {', '.join(ROLES)}, got {section['role']!r}")
        if section.get("figure") and not (base.parent / section["figure"]).is_file():
            raise ResultsSpecError(f"{where}: figure {section['figure']!r} is no file (a path from the repository root)")
        if "id" in section:
            if section["id"] in ids:
                raise ResultsSpecError(f"{where}: the id {section['id']!r} is used by another section")
            ids.add(section["id"])
        computed.append((section, (_learning_rows if "runs" in section else _measured_rows)(section, base, where, reps)))
    generated = (f"Generated by `{COMMAND}` from the committed results; edit "
                 f"`{spec_path.parent.name}/{spec_path.name}`, not this file.")
    notes = _Footnotes()
    lines = [f"# {spec.get('title', 'Results')}", "", generated, ""]
    if spec.get("text"):
        lines += [" ".join(str(spec["text"]).split()), ""]
    if notebook:
        lines += [f"Every result in full, with its notes, commands and the diagnostics: [{notebook}]({notebook}).", ""]
    unresolved: list[tuple[dict[str, Any], dict[str, Any]]] = []
    lines += _summary(spec, computed, notes, str(spec_path), unresolved, notebook)
    if not spec.get("claims"):
        lines += [VERDICT_RULE, ""]
    power = _power_lines(unresolved) if unresolved else []
    if notebook is None:
        lines += power
    for s, (section, rows) in enumerate(computed):
        if notebook is None or section.get("page"):
            lines += _section_lines(section, rows, notes, f"{spec_path} section {s + 1}", full=notebook is None)
    if notebook:
        lines += [f"Every other result, and these in full: [{notebook}]({notebook}).", ""]
    files = {"RESULTS.md": "\n".join(lines + _footnote_lines(notes))}
    if notebook:
        notes = _Footnotes()
        lines = [f"# {spec.get('title', 'Results')}: the notebook", "", generated, "",
                 "Every result in full, with its notes and diagnostics; the summary and the decisive tables are in "
                 "[RESULTS.md](RESULTS.md).", "", VERDICT_RULE, "", *power]
        for s, (section, rows) in enumerate(computed):
            lines += _section_lines(section, rows, notes, f"{spec_path} section {s + 1}", full=True)
        files[notebook] = "\n".join(lines + _footnote_lines(notes))
    return files


def results_markdown(spec_path: str | Path, *, reps: int = 20_000) -> str:
    """The Markdown of ``RESULTS.md`` for the results spec at ``spec_path`` (:func:`results_files`)."""
    return results_files(spec_path, reps=reps)["RESULTS.md"]
