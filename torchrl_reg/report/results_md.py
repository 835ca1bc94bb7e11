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
``python -m torchrl_reg.report --results benchmarks/results.yaml --out RESULTS.md`` writes the file;
a test checks that the committed one equals what this module generates.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from torchrl_reg.report.runs import collect_runs, final_score, method_labels
from torchrl_reg.report.stats import interquartile_mean, paired_ratio_ci, stratified_bootstrap_ci

__all__ = ["COMMAND", "results_markdown"]

COMMAND = "python -m torchrl_reg.report --results benchmarks/results.yaml --out RESULTS.md"
SECTION_KEYS = ("title", "text", "runs", "metric", "score", "interval", "env_key", "rows", "notes")
LEARNING_ROW_KEYS = ("method", "env", "name", "anchor", "target", "note", "metric", "vs")
VS_KEYS = ("method", "runs", "min")
MEASURED_ROW_KEYS = ("name", "method", "file", "value", "range", "n", "unit", "anchor", "target", "note")
TARGET_KEYS = ("min", "max", "band", "above", "below", "ratio")


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


def _met(score: float, target: dict[str, Any], others: dict[str, float], where: str) -> bool:
    def other(name: str) -> float:
        if name not in others:
            raise ResultsSpecError(f"{where}: the target compares with {name!r}, which has no row on this environment")
        return others[name]

    checks = []
    if "min" in target:
        checks.append(score >= target["min"])
    if "max" in target:
        checks.append(score <= target["max"])
    if "band" in target:
        checks.append(target["band"][0] <= score <= target["band"][1])
    if "above" in target:
        checks += [score > other(name) for name in _names(target["above"])]
    if "below" in target:
        checks += [score < other(name) for name in _names(target["below"])]
    if "ratio" in target:
        checks.append(score >= target["ratio"]["min"] * other(target["ratio"]["of"]))
    return all(checks)


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
        scores = [
            final_score(r, metric)
            for r, label in zip(runs, labels)
            if label == row["method"] and str(r.value(env_key)) == str(row["env"]) and r.status == "completed"
        ]
        if not scores or not all(math.isfinite(s) for s in scores):
            raise ResultsSpecError(f"{here}: no runs of method {row['method']!r} on {row['env']!r} with a finite {metric!r}")
        point, low, high = stratified_bootstrap_ci([np.asarray(scores)], interquartile_mean, reps=reps)
        rows.append({**row, "name": row.get("name", f"{row['method']}, {row['env']}"), "score": point,
                     "low": low, "high": high, "n": len(scores)})
        if "vs" in row:
            rows[-1]["vs_ratio"] = _paired_ratio(row, metric, runs, labels, section, base, here, reps)
    return rows


def _scores_by_seed(runs: list[Any], labels: list[str], method: str, env: Any, env_key: str, metric: str,
                    where: str) -> dict[Any, float]:
    by_seed: dict[Any, float] = {}
    for run, label in zip(runs, labels):
        if label == method and str(run.value(env_key)) == str(env) and run.status == "completed":
            seed = run.value("seed")
            if seed in by_seed:
                raise ResultsSpecError(f"{where}: two completed runs of {method!r} on {env!r} with seed {seed!r}: "
                                       "pairing by seed would be ambiguous")
            by_seed[seed] = final_score(run, metric)
    return by_seed


def _paired_ratio(row: dict[str, Any], metric: str, runs: list[Any], labels: list[str], section: dict[str, Any],
                  base: Path, where: str, reps: int) -> tuple[float, float, float, str]:
    vs = row["vs"]
    _check_keys_flat(vs, VS_KEYS, f"{where} vs")
    if "method" not in vs:
        raise ResultsSpecError(f"{where} vs: name the baseline's method (vs: {{method: ...}}), got {vs!r}")
    if "min" in vs and (isinstance(vs["min"], bool) or not isinstance(vs["min"], (int, float))
                        or not math.isfinite(vs["min"])):
        raise ResultsSpecError(f"{where} vs: min must be a finite number (a target ratio), got {vs['min']!r}")
    if "runs" in vs and (not isinstance(vs["runs"], list) or not all(isinstance(p, str) for p in vs["runs"])):
        raise ResultsSpecError(f"{where} vs: runs must be a list of paths relative to the spec, got {vs['runs']!r}")
    env_key = section.get("env_key", "env.name")
    if "runs" in vs:
        base_runs = collect_runs([base / p for p in vs["runs"]])
        base_labels = method_labels(base_runs, env_key)
    else:
        base_runs, base_labels = runs, labels
    mine = _scores_by_seed(runs, labels, row["method"], row["env"], env_key, metric, where)
    theirs = _scores_by_seed(base_runs, base_labels, vs["method"], row["env"], env_key, metric, where)
    missing = [seed for seed in mine if seed not in theirs]
    if missing:
        raise ResultsSpecError(f"{where} vs: {vs['method']!r} has no completed run on {row['env']!r} with seeds "
                               f"{missing} (it has {sorted(theirs, key=str)}): every seed of the row needs its pair")
    seeds = sorted(mine, key=str)
    try:
        ratio, low, high = paired_ratio_ci([mine[s] for s in seeds], [theirs[s] for s in seeds], reps=reps)
    except ValueError as err:
        raise ResultsSpecError(f"{where} vs {vs['method']!r}: {err}") from None
    return ratio, low, high, str(vs["method"])


def _measured_rows(section: dict[str, Any], base: Path, where: str, reps: int) -> list[dict[str, Any]]:
    rows = []
    for k, row in enumerate(section["rows"]):
        here = f"{where} row {k + 1}"
        _check_keys(row, MEASURED_ROW_KEYS, here)
        path = base / row["file"]
        data = json.loads(path.read_text())
        value = _lookup(data, list(row["value"]), f"{here} ({path.name})")
        if isinstance(value, list):
            point, low, high = stratified_bootstrap_ci([np.asarray(value, dtype=float)], interquartile_mean, reps=reps)
            n = len(value)
        else:
            point = float(value)
            count = _lookup(data, list(row["n"]), f"{here} ({path.name})") if "n" in row else 1
            n = len(count) if isinstance(count, (list, dict)) else int(count)  # a count, or what it counts
            low = high = math.nan
            if "range" in row:
                low, high = (float(_lookup(data, list(key), f"{here} ({path.name})")) for key in row["range"])
        rows.append({**row, "score": point, "low": low, "high": high, "n": n, "env": None})
    return rows


def results_markdown(spec_path: str | Path, *, reps: int = 20_000) -> str:
    """The Markdown of ``RESULTS.md`` for the results spec at ``spec_path`` (deterministic: fixed bootstrap seeds)."""
    import yaml

    spec_path = Path(spec_path)
    spec = yaml.safe_load(spec_path.read_text())
    if not isinstance(spec, dict) or not isinstance(spec.get("sections"), list):
        raise ResultsSpecError(f"{spec_path}: a results spec is a mapping with a 'sections' list")
    base = spec_path.parent
    notes = _Footnotes()
    lines = [f"# {spec.get('title', 'Results')}", "",
             f"Generated by `{COMMAND}` from the committed results; edit "
             f"`{spec_path.parent.name}/{spec_path.name}`, not this file.", ""]
    if spec.get("text"):
        lines += [" ".join(str(spec["text"]).split()), ""]
    for s, section in enumerate(spec["sections"]):
        where = f"{spec_path} section {s + 1}"
        _check_keys_flat(section, SECTION_KEYS, where)
        learning = "runs" in section
        rows = (_learning_rows if learning else _measured_rows)(section, base, where, reps)
        section_marks = "".join(notes.mark(n) for n in section.get("notes", []))
        lines += [f"## {section['title']}{section_marks}", ""]
        if section.get("text"):
            lines += [" ".join(str(section["text"]).split()), ""]
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
            others = {r.get("method", r["name"]): r["score"] for r in rows if r.get("env") == row.get("env")}
            checks = [_met(row["score"], target, others, f"{where}, {row['name']}")] if target else []
            target_text = [_target_text(target)] if target else []
            if "vs_ratio" in row and "min" in row["vs"]:
                checks.append(row["vs_ratio"][0] >= row["vs"]["min"])
                target_text.append(f"ratio >= {_fmt(row['vs']['min'])} x {row['vs_ratio'][3]}")
            met = ("yes" if all(checks) else "no") if checks else "-"
            bounds = f" [{_fmt(row['low'])}, {_fmt(row['high'])}]" if math.isfinite(row["low"]) else ""
            unit = f" {row['unit']}" if row.get("unit") else ""
            ratio_cell = []
            if paired:
                ratio_cell = ["-"]
                if "vs_ratio" in row:
                    ratio, low, high, of = row["vs_ratio"]
                    ratio_cell = [f"{ratio:.2f}x {of} [{low:.2f}, {high:.2f}]"]
            cells = [
                f"{row['name']}{notes.mark(row.get('note'))}",
                f"{_fmt(row['score'])}{bounds}{unit}",
                str(row["n"]),
                *ratio_cell,
                row.get("anchor") or "-",
                ", ".join(target_text) or "-",
                met,
            ]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if notes.texts:
        lines += [f"[^{i}]: {text}" for i, text in enumerate(notes.texts, 1)]
        lines.append("")
    return "\n".join(lines)
