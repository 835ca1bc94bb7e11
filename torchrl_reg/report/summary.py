"""Turn finished runs into tables, learning-curve plots and a Markdown summary.

Per environment: raw final scores per method (runs, mean, std, IQM with a 95% bootstrap CI).
Across environments: IQM, mean, median and optimality gap of normalized scores with stratified
bootstrap 95% CIs, and the probability of improvement between every pair of methods
(Agarwal et al. 2021; see :mod:`torchrl_reg.report.stats`). Runs that did not complete are left
out of every number and listed with their log files.
"""
from __future__ import annotations

import io
import json
import math
import os
import re
import shlex
import sys
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from torchrl_reg.report.atari import (
    MUNCHAUSEN_SCORES,
    budget_text,
    dopamine_agents,
    dopamine_beside,
    env_family,
    protocol_title,
    runs_each_text,
    score_scale,
)
from torchrl_reg.report.rliable_figures import FIGURES, INSTALL_HINT, rliable_figures, rliable_missing
from torchrl_reg.cli import printable, shown
from torchrl_reg.report.runs import (
    CURVE_METRICS,
    ReportedRun,
    check_report_keys,
    collect_runs,
    final_score,
    method_labels,
    plan_records,
    read_curve,
)
from torchrl_reg.report.stats import (
    ESTIMATORS,
    check_reps,
    interquartile_mean,
    probability_of_improvement,
    stratified_bootstrap_ci,
    stratified_bootstrap_ci_two_sample,
)
from torchrl_reg.run.files import DiskFullError, check_components, read_json, write_atomic_set

__all__ = ["make_report", "normalize"]


def normalize(scores: dict[str, np.ndarray], reference: dict[str, tuple[float, float]]) -> dict[str, np.ndarray]:
    """``(score - low) / (high - low)`` per environment, with ``(low, high)`` from ``reference``."""
    out = {}
    for env, s in scores.items():
        low, high = reference[env]
        if not high > low:
            raise ValueError(f"reference scores of {env} must satisfy low < high, got low={low}, high={high}")
        out[env] = (s - low) / (high - low)
    return out


def _fmt(x: float) -> str:
    if not math.isfinite(x):
        return "nan"
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:.0f}"


def _ci(point: float, low: float, high: float) -> str:
    return f"{_fmt(point)} [{_fmt(low)}, {_fmt(high)}]"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "env"


#: The y axis of a learning curve, in words, by ``--curve`` (any other CSV scalar is named by its key).
CURVE_AXES = {"train/episode_return": "training episode return", "eval": "evaluation return"}


def _plot_curves(
    env: str, curves: dict[str, list[tuple[np.ndarray, np.ndarray]]], curve: str, reps: int,
    published: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = (),
) -> bytes:
    """IQM over runs per method, with a 95% bootstrap band, on a common frame grid; each ``published`` curve
    ``(label, frames, mean, [min, max])`` dashed beside them; the PNG's bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for method, runs in sorted(curves.items()):
        runs = [(x, y) for x, y in runs if len(x) > 0]
        if not runs:
            continue
        start = max(x[0] for x, _ in runs)
        stop = min(x[-1] for x, _ in runs)
        if stop < start:
            continue
        grid = np.unique(np.concatenate([x[(x >= start) & (x <= stop)] for x, _ in runs]))
        if len(grid) > 200:
            grid = np.linspace(start, stop, 200)
        table = np.stack([np.interp(grid, x, y) for x, y in runs])  # (runs, points)
        mid, low, high = [], [], []
        for j in range(len(grid)):
            p, lo, hi = stratified_bootstrap_ci([table[:, j]], interquartile_mean, reps=reps, seed=j)
            mid.append(p)
            low.append(lo)
            high.append(hi)
        line = ax.plot(grid, mid, lw=1.8, label=f"{method} ({len(runs)} runs)")
        ax.fill_between(grid, low, high, color=line[0].get_color(), alpha=0.2)
    for label, x, y, band in published:
        line = ax.plot(x, y, lw=1.5, ls="--", marker=".", label=label)
        ax.fill_between(x, band[0], band[1], color=line[0].get_color(), alpha=0.1)
    ax.set_xlabel("environment frames")
    ax.set_ylabel(CURVE_AXES.get(curve, curve))
    ax.set_title(f"{env}: IQM over runs, 95% bootstrap CI")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return _png(fig)


def _plot_aggregate(aggregate: dict[str, dict[str, list[float]]], title: str, xlabel: str) -> bytes:
    """The four aggregates of every method with their intervals, titled in the field's terms (``title``: which
    scores, the protocol, runs and budget) and the x axis labelled as rliable's figures are (``xlabel``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = sorted(aggregate)
    fig, axes = plt.subplots(1, len(ESTIMATORS), figsize=(3.2 * len(ESTIMATORS), 0.6 * len(methods) + 1.9), dpi=100)
    for ax, name in zip(np.atleast_1d(axes), ESTIMATORS):
        for k, m in enumerate(methods):
            p, lo, hi = aggregate[m][name]
            ax.errorbar([p], [k], xerr=[[p - lo], [hi - p]], fmt="o", capsize=4)
        ax.set_yticks(range(len(methods)))
        ax.set_yticklabels(methods if name == next(iter(ESTIMATORS)) else [""] * len(methods), fontsize=8)
        ax.set_title(name)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(f"{title}\n95% stratified bootstrap intervals", fontsize=9)
    fig.supxlabel(xlabel, fontsize=9)
    fig.tight_layout()
    return _png(fig)


def _png(fig: Any) -> bytes:
    """The figure as PNG bytes, then closed (the report writes every file at once: :func:`make_report`)."""
    import matplotlib.pyplot as plt

    image = io.BytesIO()
    fig.savefig(image, format="png")
    plt.close(fig)
    return image.getvalue()


def _output_root(paths: Sequence[str | Path], out_dir: Path) -> Path:
    """Where the report's output folder stops being the user's choice: an input folder it lies in (the
    default ``<RUN_DIR>/report``, inside the data, whose folders may not be symlinks), else ``out_dir``.
    Compared as written, symlinks not followed (a symlinked ``report`` must not move the outputs)."""
    for p in paths:
        folder = Path(os.path.abspath(p))
        if folder.is_dir() and out_dir.is_relative_to(folder):
            return folder
    return out_dir


def make_report(
    paths: Sequence[str | Path],
    out_dir: str | Path,
    *,
    metric: str = "train_return_mean",
    curve: str = "train/episode_return",
    env_key: str = "env.name",
    method_keys: Sequence[str] | None = None,
    reference_scores: dict[str, tuple[float, float]] | None = None,
    reps: int = 50_000,
    curve_reps: int = 2_000,
    command: str | None = None,
    dopamine: str | Path | None = None,
    extra_files: Sequence[tuple[Path, bytes, Path | None]] = (),
) -> dict[str, Any]:
    """Write ``summary.md``, ``results.json`` and the PNG plots to ``out_dir``; returns the results.

    Everything is checked before a byte is written (``metric``, ``curve``, ``env_key`` and ``method_keys`` against
    the runs: :func:`check_report_keys`), and every file is written as one set (``extra_files`` too, e.g. the run
    records of ``--records``: ``(path, bytes, root)``), renamed only when all are whole
    (:func:`~torchrl_reg.run.files.write_atomic_set`).

    Atari games are reported in human-normalized scores (:mod:`torchrl_reg.report.atari`), unless
    ``reference_scores`` are given; ``dopamine`` is a folder of Dopamine's baseline curves
    (``baselines/atari/data``), drawn beside our DQN and IQN training curves.

    The steps, each a function of this module: the runs read and checked, split into completed and not
    (:func:`_completed_runs`), their final scores per environment and method (:func:`_final_scores`), the score scale
    (:func:`_scale`), the rows per environment (:func:`_per_env_rows`), the normalization of the aggregates
    (:func:`_normalization`), the aggregates and probabilities of improvement (:func:`_aggregates`), the curves
    (:func:`_curve_figures`), the aggregate and rliable figures (:func:`_aggregate_figures`), then the results and
    the summary, written as one set."""
    if dopamine is not None and curve != "train/episode_return":  # the arguments' own conflict, before any run is read
        raise ValueError(f"Dopamine publishes training returns: --dopamine needs --curve train/episode_return, got {curve!r}")
    runs = collect_runs(paths)
    # Every name the command line gave is checked against the runs before anything is written.
    check_report_keys(runs, metric=metric, curve=curve, env_key=env_key, method_keys=method_keys)
    out_dir = Path(os.path.abspath(out_dir))
    # The outputs go inside the data by default (<RUN_DIR>/report): no symlink there may take them elsewhere.
    root = _output_root(paths, out_dir)
    check_components(root, out_dir)
    done, problems = _completed_runs(runs, method_labels(runs, env_key, method_keys), metric)
    envs, methods, scores = _final_scores(done, env_key, metric)
    scale = _scale(done, envs, env_key, reference_scores, dopamine)
    human = scale is not None and scale.human
    per_env = _per_env_rows(envs, methods, scores, scale, reps)
    common, reference, normalization = _normalization(envs, methods, scores, scale, reference_scores)
    aggregate, normalized_tasks, improvement = _aggregates(envs, methods, scores, common, reference, reps)
    # Every output as bytes first, written as one set at the end (write_atomic_set): a failure leaves the earlier
    # report whole, never a summary beside figures of another generation.
    outputs, curve_files, published_notes = _curve_figures(done, envs, methods, env_key, curve, curve_reps, dopamine)
    budget = budget_text([r.metrics.get("frames", r.setting("collector.total_frames")) for r, _ in done],
                         [r.setting("env.frame_skip") for r, _ in done])
    title = protocol_title(common, scale, [len(scores[m][e]) for m in methods for e in common], budget) if human else (
        f"{len(common)} environments, {budget}")
    figure_files, figure_notes = _aggregate_figures(
        outputs, aggregate, normalized_tasks, improvement, scores, methods, common, scale, reference_scores, title,
        budget, curve_reps)

    results = {
        "command": command,
        "inputs": [str(Path(p).resolve()) for p in paths],
        "metric": metric,
        "curve": curve,
        "env_key": env_key,
        "method_keys": list(method_keys) if method_keys is not None else None,
        "runs_expected": len(runs),
        "runs_completed": len(done),
        "per_env": per_env,
        "normalization": normalization,
        "reference": {e: list(v) for e, v in reference.items()},
        "aggregate_envs": common,
        "aggregate": aggregate,
        "probability_of_improvement": improvement,
        "curves": curve_files,
        "missing_or_failed": problems,
        "bootstrap_reps": reps,
        "scale": {"human": human, "note": scale.note if scale is not None else normalization},
        "title": title,
        "figures": figure_files,
        "figure_notes": figure_notes,
        "dopamine": str(Path(dopamine).resolve()) if dopamine is not None else None,
        "published_notes": published_notes,
        "published_scores": [
            {"method": m, "env": e, "score": table[scale.games[e]],
             "hns": float(normalize({e: np.asarray(table[scale.games[e]])}, scale.reference)[e])}
            for m, table in MUNCHAUSEN_SCORES.items() for e in envs if human and scale.games[e] in table
        ],
    }
    outputs["results.json"] = (json.dumps(results, indent=1, default=float) + "\n").encode()
    outputs["summary.md"] = _markdown(results, methods, envs).encode()
    for folder in {out_dir, *(Path(path).parent for path, _, _ in extra_files)}:
        folder.mkdir(parents=True, exist_ok=True)
    write_atomic_set([(out_dir / name, data, root) for name, data in outputs.items()] + list(extra_files))
    return results


def _completed_runs(
    runs: Sequence[ReportedRun], labels: Sequence[str], metric: str
) -> tuple[list[tuple[ReportedRun, str]], list[dict[str, Any]]]:
    """``(done, problems)``: the completed runs with a finite ``metric``, each with its method's label; every other
    run with why it is left out (its status, or no finite metric), its queue and its logs."""
    done: list[tuple[ReportedRun, str]] = []
    problems: list[dict[str, Any]] = []
    for run, label in zip(runs, labels):
        score = final_score(run, metric) if run.status == "completed" else math.nan
        if run.status == "completed" and math.isfinite(score):
            done.append((run, label))
            continue
        reason = run.status if run.status != "completed" else f"no finite {metric!r} in metrics.json"
        problems.append(
            {"run_dir": str(run.run_dir), "method": label, "status": reason, "queue": run.queue, "logs": run.logs}
        )
    return done, problems


def _final_scores(
    done: Sequence[tuple[ReportedRun, str]], env_key: str, metric: str
) -> tuple[list[str], list[str], dict[str, dict[str, np.ndarray]]]:
    """``(envs, methods, scores)``: the sorted environments and methods, and ``scores[method][env]``, the final
    ``metric`` of each of that method's runs on that environment (a pair without runs is absent)."""
    envs = sorted({str(r.value(env_key)) for r, _ in done})
    methods = sorted({m for _, m in done})
    scores: dict[str, dict[str, np.ndarray]] = {m: {} for m in methods}
    for env in envs:
        for m in methods:
            s = [final_score(r, metric) for r, label in done if label == m and str(r.value(env_key)) == env]
            if s:
                scores[m][env] = np.asarray(s)
    return envs, methods, scores


def _scale(
    done: Sequence[tuple[ReportedRun, str]], envs: Sequence[str], env_key: str,
    reference_scores: dict[str, tuple[float, float]] | None, dopamine: str | Path | None,
) -> Any:
    """The score scale (:func:`~torchrl_reg.report.atari.score_scale`: Atari games human-normalized, a game the table
    lacks refused by name; other envs raw), ``None`` with ``reference_scores``; ``dopamine`` is refused for runs that
    are not Atari games and for a path that is no folder."""
    families = {e: {env_family(r.setting("env.family"), r.value(env_key)) for r, _ in done if str(r.value(env_key)) == e}
                for e in envs}
    scale = score_scale(families) if reference_scores is None else None
    human = scale is not None and scale.human
    if dopamine is not None:
        if not human:
            raise ValueError(f"--dopamine draws Dopamine's Atari curves, and these runs are not Atari games ({', '.join(envs)})")
        if not Path(dopamine).is_dir():
            raise FileNotFoundError(f"--dopamine {dopamine} is not a directory (Dopamine's baselines/atari/data)")
    return scale


def _per_env_rows(
    envs: Sequence[str], methods: Sequence[str], scores: dict[str, dict[str, np.ndarray]], scale: Any, reps: int
) -> list[dict[str, Any]]:
    """One row per environment and method that ran on it: runs, mean, std, the IQM with its interval, and for Atari
    games the human-normalized mean and IQM."""
    human = scale is not None and scale.human
    per_env = []
    for env in envs:
        for m in methods:
            if env not in scores[m]:
                continue
            s = scores[m][env]
            per_env.append(
                {
                    "env": env,
                    "method": m,
                    "runs": int(len(s)),
                    "mean": float(s.mean()),
                    "std": float(s.std(ddof=1)) if len(s) > 1 else math.nan,
                    "iqm": stratified_bootstrap_ci([s], interquartile_mean, reps=reps),
                }
            )
            if human:
                h = normalize({env: s}, scale.reference)[env]
                per_env[-1]["hns_mean"] = float(h.mean())
                per_env[-1]["hns_iqm"] = stratified_bootstrap_ci([h], interquartile_mean, reps=reps)
    return per_env


def _normalization(
    envs: Sequence[str], methods: Sequence[str], scores: dict[str, dict[str, np.ndarray]], scale: Any,
    reference_scores: dict[str, tuple[float, float]] | None,
) -> tuple[list[str], dict[str, tuple[float, float]], str]:
    """``(common, reference, normalization)``: the environments every method ran on (what the aggregates use), the
    ``(low, high)`` of each (the given reference scores, the human table's, or min-max over every run there) and a
    sentence that says which."""
    common = [e for e in envs if all(e in scores[m] for m in methods)]
    if reference_scores is not None:
        missing = [e for e in common if e not in reference_scores]
        if missing:
            raise ValueError(f"reference scores are missing for {missing}; give [low, high] for every environment")
        reference = {e: tuple(reference_scores[e]) for e in common}
        normalization = "(score - low) / (high - low) with the given reference scores"
    elif scale is not None and scale.human:
        reference = {e: scale.reference[e] for e in common}
        normalization = scale.note
    else:
        reference = {}
        for e in common:
            pooled = np.concatenate([scores[m][e] for m in methods])
            low, high = float(pooled.min()), float(pooled.max())
            reference[e] = (low, high if high > low else low + 1.0)
        normalization = (
            "min-max over all runs of all methods on that environment (relative scores: 0 is the worst "
            "run, 1 the best; give --reference-scores for absolute ones)"
        )
    return common, reference, normalization


def _aggregates(
    envs: Sequence[str], methods: Sequence[str], scores: dict[str, dict[str, np.ndarray]], common: Sequence[str],
    reference: dict[str, tuple[float, float]], reps: int,
) -> tuple[dict[str, dict[str, list[float]]], dict[str, list[np.ndarray]], list[dict[str, Any]]]:
    """``(aggregate, normalized_tasks, improvement)``: each method's estimators (:data:`ESTIMATORS`) with their
    stratified-bootstrap intervals over the common environments, normalized; the normalized scores per method; and
    the probability of improvement of every pair of methods over the environments both ran on."""
    aggregate: dict[str, dict[str, list[float]]] = {}
    normalized_tasks: dict[str, list[np.ndarray]] = {}
    if common:
        for m in methods:
            normalized = normalize({e: scores[m][e] for e in common}, reference)
            tasks = normalized_tasks[m] = [normalized[e] for e in common]
            aggregate[m] = {name: list(stratified_bootstrap_ci(tasks, fn, reps=reps)) for name, fn in ESTIMATORS.items()}
    improvement = []
    for x, y in combinations(methods, 2):
        shared = [e for e in envs if e in scores[x] and e in scores[y]]
        if shared:
            p = stratified_bootstrap_ci_two_sample(
                [scores[x][e] for e in shared], [scores[y][e] for e in shared], probability_of_improvement, reps=reps
            )
            improvement.append({"x": x, "y": y, "envs": len(shared), "p": list(p)})
    return aggregate, normalized_tasks, improvement


def _curve_figures(
    done: Sequence[tuple[ReportedRun, str]], envs: Sequence[str], methods: Sequence[str], env_key: str, curve: str,
    curve_reps: int, dopamine: str | Path | None,
) -> tuple[dict[str, bytes], dict[str, str], list[str]]:
    """``(outputs, curve_files, published_notes)``: one PNG of ``curve`` per environment with a curve (bytes, by file
    name), the file of each environment, and what Dopamine's folder lacked. Dopamine's published curve of a method we
    ran (our dqn and iqn losses) is drawn beside ours, over the frames our runs span; a run record has no
    loss.name: its method is its loss."""
    agents = dopamine_agents({m: {r.setting("loss.name") or label for r, label in done if label == m} for m in methods})
    outputs: dict[str, bytes] = {}
    published_notes: list[str] = []
    curve_files = {}
    for env in envs:
        curves: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        for r, m in done:
            if str(r.value(env_key)) == env:
                curves.setdefault(m, []).append(read_curve(r, curve))
        published = []
        ours = [x for runs_ in curves.values() for x, _ in runs_ if len(x)]
        if dopamine is not None and ours:
            wanted = sorted({agent for m, agent in agents.items() if m in curves})
            published, notes = dopamine_beside(dopamine, env, wanted, max(float(x[-1]) for x in ours))
            published_notes += notes
        if ours:
            name = f"curves_{_slug(env)}.png"
            outputs[name] = _plot_curves(env, curves, curve, curve_reps, published)
            curve_files[env] = name
    return outputs, curve_files, published_notes


def _aggregate_figures(
    outputs: dict[str, bytes], aggregate: dict[str, dict[str, list[float]]],
    normalized_tasks: dict[str, list[np.ndarray]], improvement: list[dict[str, Any]],
    scores: dict[str, dict[str, np.ndarray]], methods: Sequence[str], common: Sequence[str], scale: Any,
    reference_scores: dict[str, tuple[float, float]] | None, title: str, budget: str, curve_reps: int,
) -> tuple[dict[str, str], list[str]]:
    """Add ``aggregate.png`` and, for absolute normalized scores (human-normalized, or the given reference scores),
    rliable's figures to ``outputs``; returns ``(figure_files, figure_notes)``. The axis is labelled as rliable's
    figures beside it label theirs; the title says which scores, the protocol and the budget."""
    human = scale is not None and scale.human
    xlabel = ("Human-normalized score" if human else "Normalized score" if reference_scores is not None
              else "Min-max normalized score (0: worst run, 1: best)")
    scores_title = ("Human-normalized scores" if human else "Scores normalized by the given reference scores"
                    if reference_scores is not None else "Raw scores, min-max normalized per environment")
    if aggregate:
        runs_each = sorted({len(scores[m][e]) for m in methods for e in common})
        protocol = title if human else (
            f"{len(common)} environment{'s' if len(common) != 1 else ''} ("
            + f"{runs_each_text(runs_each)}), {budget}")
        outputs["aggregate.png"] = _plot_aggregate(aggregate, f"{scores_title}: {protocol}", xlabel)

    figure_files: dict[str, str] = {}
    figure_notes: list[str] = []
    if aggregate and (human or reference_scores is not None):
        missing = rliable_missing()
        if missing is None:
            figures, figure_notes = rliable_figures(normalized_tasks, aggregate, improvement, title, xlabel,
                                                    profile_reps=curve_reps)
            for key, fig in figures.items():
                outputs[FIGURES[key]] = _png(fig)
                figure_files[key] = FIGURES[key]
        else:
            figure_notes.append(f"{missing}: {INSTALL_HINT}")
    return figure_files, figure_notes


def _markdown(res: dict[str, Any], methods: list[str], envs: list[str]) -> str:
    lines = ["# Results", ""]
    if res["command"]:
        lines += [f"Made by `{res['command']}`.", ""]
    lines += [
        f"{res['runs_completed']} of {res['runs_expected']} runs completed"
        + (f"; {len(res['missing_or_failed'])} missing or failed (listed at the end)." if res["missing_or_failed"] else "."),
        f"Final score: `{res['metric']}` from each run's metrics.json"
        + (" (mean return of the last 100 training episodes)." if res["metric"] in ("train_return_mean", "final_return")
           else " (the last greedy evaluation)." if res["metric"] == "final_eval_return"
           else f" ({CURVE_METRICS[res['metric']]})." if res["metric"] in CURVE_METRICS else "."),
        f"Confidence intervals: 95% percentile intervals of {res['bootstrap_reps']} stratified bootstrap resamples "
        "(runs resampled within each environment; Agarwal et al. 2021).",
        f"Scores: {res['scale']['note']}.",
        "",
        "## Per environment",
        "",
        "| env | method | runs | mean | std | IQM [95% CI] |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for row in res["per_env"]:
        lines.append(
            f"| {row['env']} | {row['method']} | {row['runs']} | {_fmt(row['mean'])} | {_fmt(row['std'])} | {_ci(*row['iqm'])} |"
        )
    if res["scale"]["human"]:
        lines += [
            "",
            "## Human-normalized scores",
            "",
            "(score - random) / (human - random): 0 is a random policy, 1 a human game tester.",
            "",
            "| game | random | human | method | runs | mean | IQM [95% CI] |",
            "| --- | ---: | ---: | --- | ---: | ---: | --- |",
        ]
        for row in res["per_env"]:
            low, high = res["reference"].get(row["env"], (math.nan, math.nan))
            lines.append(f"| {row['env']} | {_fmt(low)} | {_fmt(high)} | {row['method']} | {row['runs']} | "
                         f"{_fmt(row['hns_mean'])} | {_ci(*row['hns_iqm'])} |")
    if res["aggregate"]:
        lines += [
            "",
            f"## Aggregate over {len(res['aggregate_envs'])} environments" + (f": {res['title']}" if res["scale"]["human"] else ""),
            "",
            f"Normalized per environment: {res['normalization']}.",
            "",
            "| method | " + " | ".join(f"{name} [95% CI]" for name in ESTIMATORS) + " |",
            "| --- |" + " --- |" * len(ESTIMATORS),
        ]
        for m in methods:
            lines.append(f"| {m} | " + " | ".join(_ci(*res["aggregate"][m][name]) for name in ESTIMATORS) + " |")
        lines += ["", "![aggregate](aggregate.png)"]
        lines += [f"![{key}]({name})" for key, name in res["figures"].items()]
        lines += [f"{note}." for note in res["figure_notes"]]
        skipped = [e for e in envs if e not in res["aggregate_envs"]]
        if skipped:
            lines += ["", f"Left out of the aggregate (not run by every method): {', '.join(skipped)}."]
    if res["probability_of_improvement"]:
        lines += [
            "",
            "## Probability of improvement",
            "",
            "P(X > Y): chance that a run of X scores higher than a run of Y on the same environment, averaged "
            "over environments.",
            "",
            "| X | Y | envs | P(X > Y) [95% CI] |",
            "| --- | --- | ---: | --- |",
        ]
        for row in res["probability_of_improvement"]:
            lines.append(f"| {row['x']} | {row['y']} | {row['envs']} | {_ci(*row['p'])} |")
    if res["published_scores"]:
        lines += [
            "",
            "## Published scores",
            "",
            "The Munchausen paper's final scores at 200M frames (NeurIPS 2020), as quoted in the \"Reported score\" "
            "column of sony/nnabla-rl's reproductions (reproductions/algorithms/atari/munchausen_dqn and munchausen_iqn, "
            "README.md); compare at the same budget only.",
            "",
            "| method | game | score | human-normalized |",
            "| --- | --- | ---: | ---: |",
        ]
        lines += [f"| {p['method']} | {p['env']} | {_fmt(p['score'])} | {_fmt(p['hns'])} |" for p in res["published_scores"]]
    if res["curves"]:
        lines += ["", "## Learning curves", "", f"`{res['curve']}`, IQM over runs with a 95% bootstrap band."]
        if res["dopamine"]:
            lines.append(f"Dashed: Dopamine's published training returns of the same method (google/dopamine, "
                         f"baselines/atari/data, Apache-2.0; read from `{res['dopamine']}`), mean and range over its runs, "
                         "each 250k-step iteration drawn at its middle.")
        lines += [f"{note}." for note in res["published_notes"]]
        lines.append("")
        for env, name in res["curves"].items():
            lines += [f"![{env}]({name})", ""]
    if res["missing_or_failed"]:
        lines += ["", "## Missing or failed runs", "", "| run | method | status | logs |", "| --- | --- | --- | --- |"]
        for p in res["missing_or_failed"]:
            status = p["status"] + (f" ({p['queue'].lower()} in SLURM)" if p["queue"] else "")
            logs = "<br>".join(f"`{x}`" for x in p["logs"]) or "-"
            lines.append(f"| `{p['run_dir']}` | {p['method']} | {status} | {logs} |")
    return "\n".join(lines) + "\n"


def _human_lines(res: dict[str, Any]) -> list[str]:
    """What the command prints of an Atari report: each game's mean human-normalized score per method, the four
    aggregates with their intervals, and how to get rliable's figures when they are missing; a raw report says so."""
    if not res["scale"]["human"]:
        return [f"scores: {res['scale']['note']}"] if res["per_env"] else []
    lines = ["human-normalized scores (mean over runs):"]
    lines += [f"  {row['env']:<16} {row['method']:<24} {_fmt(row['hns_mean'])}" for row in res["per_env"]]
    if res["aggregate"]:
        lines.append(f"aggregates over {len(res['aggregate_envs'])} games, 95% stratified bootstrap CIs ({res['title']}):")
        for m, values in res["aggregate"].items():
            lines.append(f"  {m}: " + "; ".join(f"{name} {_ci(*v)}" for name, v in values.items()))
    lines += [f"  {note}" for note in res["figure_notes"]]
    return lines


def main(argv: list[str] | None = None) -> int:
    import argparse

    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="python -m torchrl_reg.report",
        description="Tables (mean, std, IQM, optimality gap with stratified-bootstrap CIs), probability of "
        "improvement, learning curves and a Markdown summary of finished sweeps or runs.",
    )
    parser.add_argument("run_dirs", nargs="*", metavar="RUN_DIR",
                        help="sweep directories, run directories, run records (JSON), or folders holding them")
    parser.add_argument("--out", help="output directory (default: <first RUN_DIR>/report); with --results, the Markdown file")
    parser.add_argument("--records", metavar="DIR",
                        help="also write one run record per completed run to DIR (the form committed under benchmarks/results/)")
    parser.add_argument("--results", metavar="SPEC",
                        help="write RESULTS.md (to --out, default RESULTS.md; its companion notebook beside it) from the results spec SPEC "
                             "(e.g. benchmarks/results.yaml) instead of reporting RUN_DIRs")
    parser.add_argument("--metric", default="train_return_mean",
                        help="final score: a number in metrics.json (default train_return_mean, the mean of the last 100 "
                             "training episodes, final_return in runs written before that name: either name reads "
                             "both; final_eval_return: the last greedy evaluation), last_eval (the last evaluation), "
                             "last3_eval (the mean of the last three) or eval_auc (the area under the evaluation "
                             "curve divided by the frames it spans)")
    parser.add_argument("--curve", default="train/episode_return",
                        help="learning curve: a CSV scalar name (default train/episode_return) or eval")
    parser.add_argument("--env-key", default="env.name", help="config key naming the environment (default env.name)")
    parser.add_argument("--method-keys", help="comma-separated config keys naming a method (default: those that vary)")
    parser.add_argument("--reference-scores", help='JSON file {"<env>": [low, high], ...} for normalization')
    parser.add_argument("--reps", type=int, default=50_000, help="bootstrap resamples for the tables (default 50000)")
    parser.add_argument("--dopamine", metavar="DIR",
                        help="Dopamine's published Atari curves (a copy of google/dopamine's baselines/atari/data): "
                             "drawn beside our DQN and IQN training curves of the same game")
    args = parser.parse_args(argv)
    try:  # before any run is read or file written: --reps 10**9 would fail in the allocator
        check_reps(args.reps)
    except ValueError as err:
        print(f"error: --{err}", file=sys.stderr)
        return 2
    if args.results:
        if args.run_dirs or args.records:
            parser.error("--results reads the runs named in its spec: give no RUN_DIR and no --records")
        from torchrl_reg.report.results_md import results_files

        try:
            files = results_files(args.results)
        except (FileNotFoundError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        out_file = Path(args.out or "RESULTS.md")
        # the page and its companion beside it, as one set: both written whole before either replaces its old file,
        # so a full disk leaves the earlier pair whole (never a page linking a notebook of another generation)
        paths = {name: (out_file if name == "RESULTS.md" else out_file.parent / name) for name in files}
        try:
            write_atomic_set([(paths[name].absolute(), text, None) for name, text in files.items()])
        except (OSError, ValueError) as err:  # DiskFullError names the file, the bytes needed and the free space
            print(f"error: {printable(err)}", file=sys.stderr)
            return 1
        for path in paths.values():
            print(f"wrote {path}")
        return 0
    if not args.run_dirs:
        parser.error("give at least one RUN_DIR (or --results SPEC)")
    reference = None
    if args.reference_scores:
        reference = {k: tuple(v) for k, v in read_json(Path(args.reference_scores).absolute()).items()}
    out = args.out or str(Path(args.run_dirs[0]) / "report")
    try:
        records: dict[Path, bytes] = {}
        if args.records:  # planned (and refused) before the report writes anything; written in its set
            runs = collect_runs(args.run_dirs)
            check_report_keys(runs, metric=args.metric, curve=args.curve, env_key=args.env_key,
                              method_keys=args.method_keys.split(",") if args.method_keys else None)
            labels = method_labels(runs, args.env_key, args.method_keys.split(",") if args.method_keys else None)
            records = plan_records(runs, labels, args.records, args.env_key)
        res = make_report(
            args.run_dirs,
            out,
            metric=args.metric,
            curve=args.curve,
            env_key=args.env_key,
            method_keys=args.method_keys.split(",") if args.method_keys else None,
            reference_scores=reference,
            reps=args.reps,
            command=shlex.join([sys.executable, "-m", "torchrl_reg.report", *argv]),
            dopamine=args.dopamine,
            extra_files=[(path, data, None) for path, data in records.items()],
        )
        if args.records:
            print(f"{len(records)} run records in {printable(Path(args.records).resolve())}")
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {printable(err)}", file=sys.stderr)
        return 2
    except DiskFullError as err:  # names the file, the bytes needed and the free space; the earlier file is whole
        print(f"error: {printable(err)}", file=sys.stderr)
        return 1
    print(f"{res['runs_completed']} of {res['runs_expected']} runs completed; report in "
          f"{printable(Path(out).resolve() / 'summary.md')}")
    for line in _human_lines(res):
        print(printable(line))
    # statuses and directory names come from the runs' files and folders: escaped and cut (cli.shown)
    for p in res["missing_or_failed"]:
        print(f"  {shown(p['status'])}: {printable(p['run_dir'])}"
              + (f" (logs: {' '.join(printable(x) for x in p['logs'])})" if p["logs"] else ""))
    return 0
