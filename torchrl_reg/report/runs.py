"""Find the runs of one or more sweeps (or loose run directories) and read what the report needs.

A run directory follows the recipe contract (:mod:`torchrl_reg.run`): ``config.yaml``,
``metrics.json`` (``status``, ``final_eval_return``, ``train_return_mean``, ``eval_frames``, ``eval_returns``, ...) and CSV
scalars under ``csv/scalars/<name>.csv`` as ``step,value`` rows. A sweep directory adds
``sweep.json``, which lists every task that should exist, so runs that never started are found
too, with the scheduler log files of their last submission.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from torchrl_reg.cli import printable, shown
from torchrl_reg.report.records import REQUIRED_KEYS, read_record
from torchrl_reg.report.stats import last_evaluations_mean, normalized_curve_area
from torchrl_reg.run.checkpoint import has_checkpoint
from torchrl_reg.run.metrics import read_metric
from torchrl_reg.run.files import load_yaml_config, read_bytes, read_json, write_atomic_set
from torchrl_reg.run.rundir import run_dir_holder

__all__ = [
    "CURVE_METRICS",
    "ReportedRun",
    "check_report_keys",
    "collect_runs",
    "method_labels",
    "plan_records",
    "read_curve",
    "write_records",
]

logger = logging.getLogger(__name__)

# Config keys that never distinguish methods: where a run lives, how it logs, which seed it used.
IGNORED_PREFIXES = ("run_dir", "seed", "device", "logger.", "num_threads", "compile")


@dataclass
class ReportedRun:
    """One expected run: where it is, what it ran, how it ended."""

    run_dir: Path
    recipe: str
    config: dict[str, Any]
    status: str
    metrics: dict[str, Any] = field(default_factory=dict)
    logs: list[str] = field(default_factory=list)
    queue: str | None = None
    # Where it came from: the recipe script, the overrides and the command that launched it.
    recipe_path: str | None = None
    overrides: tuple[str, ...] = ()
    command: str | None = None
    # Curves stored with the run (run records) rather than as CSV files: name -> (frames, values).
    curves: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)
    # A run record's whole config: ``config`` keeps only its env and seed, which is what labels the methods.
    record_config: dict[str, Any] = field(default_factory=dict)

    def value(self, dotted: str) -> Any:
        return _lookup(self.config, dotted)

    def setting(self, dotted: str) -> Any:
        """The run's setting ``dotted``, a run record's included (``env.family``, ``env.frame_skip``, ...), which
        :meth:`value` does not read (it reads what labels a method)."""
        found = self.value(dotted)
        return found if found is not None else _lookup(self.record_config, dotted)


def _lookup(config: dict[str, Any], dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = json.dumps(v) if isinstance(v, (list, dict)) else v
    return out


def _read_metrics(run_dir: Path) -> tuple[str, dict[str, Any]]:
    path = run_dir / "metrics.json"
    if path.exists():
        try:
            metrics = read_json(path, "metrics")  # a regular file, bounded
        except ValueError as err:
            return f"unreadable metrics.json ({' '.join(str(err).split())[:300]})", {}
        if not isinstance(metrics, dict):
            return "unreadable metrics.json (not a JSON object)", {}
        status = str(metrics.get("status", "unknown"))
        if status == "running" and run_dir_holder(run_dir) is None:
            status = "stopped without a word (metrics.json says running, no process holds the run)"
        return status, metrics
    if has_checkpoint(run_dir):  # checkpoint.pt, or the previous one a resume falls back to
        return "started", {}
    return "not started", {}


def _read_config(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "config.yaml"
    if not path.exists():
        return None
    from omegaconf import OmegaConf

    container = OmegaConf.to_container(load_yaml_config(path), resolve=False)
    return container if isinstance(container, dict) else None


def _runs_of_sweep(sweep_dir: Path) -> list[ReportedRun]:
    from torchrl_reg.sweep.launch import sweep_status
    from torchrl_reg.sweep.task import read_sweep_file

    sweep = read_sweep_file(sweep_dir)
    # A sweep of a spec's method is labelled by the method's name, a plain sweep by its recipe.
    recipe = sweep.get("method") or Path(sweep["recipe"]).stem
    rows = {row["index"]: row for row in sweep_status(sweep_dir)}
    runs = []
    for task in sweep["tasks"]:
        run_dir = Path(task["run_dir"])
        status, metrics = _read_metrics(run_dir)
        row = rows[task["index"]]
        if row["mismatch"] is not None:  # another run's record in this task's directory: never its numbers
            status, metrics = f"config mismatch: {row['mismatch']}", {}
        logs = [p for p in (row["stdout"], row["stderr"]) if p]
        runs.append(
            ReportedRun(run_dir, recipe, task["config"], status, metrics, logs, row["queue"],
                recipe_path=sweep["recipe"], overrides=tuple(task["overrides"]), command=sweep.get("command"))
        )
    return runs


def _run_of_record(path: Path, record: dict[str, Any]) -> ReportedRun:
    metrics = record["metrics"]
    curves = {name: (c["frames"], c["values"]) for name, c in record.get("curves", {}).items()}
    config = record.get("config")
    return ReportedRun(
        path, str(record["method"]), {"env": {"name": record["env"]}, "seed": record["seed"]},
        str(metrics.get("status", "unknown")), metrics,
        recipe_path=record.get("recipe"), overrides=tuple(record.get("overrides", ())),
        command=record.get("command"), curves=curves, record_config=config if isinstance(config, dict) else {},
    )


def _records_under(root: Path, skip: set[Path] = frozenset()) -> list[ReportedRun]:
    """The run records in ``root`` (a file or a folder), leaving out hidden folders and the run
    directories in ``skip`` (their metrics.json belongs to a run already found)."""
    paths = [root] if root.is_file() else sorted(
        p for p in root.rglob("*.json") if not _hidden(p.relative_to(root)) and not (set(p.parents) & skip)
    )
    runs = []
    for path in paths:
        try:
            record = read_record(path)
        except ValueError as err:
            if path == root:
                raise  # named on the command line: not a stray file
            # A stray file under the tree (a half-written download, an editor's backup) is not a run record.
            logger.warning("skipping %s: %s", path, err)
            continue
        if record is not None:
            runs.append(_run_of_record(path, record))
    return runs


def _hidden(relative: Path) -> bool:
    """Inside a hidden folder, such as the ``.hydra/`` that Hydra writes into every run directory
    (its ``config.yaml`` is a copy of the run's config, not another run)."""
    return any(part.startswith(".") for part in relative.parts)


def collect_runs(paths: Sequence[str | Path]) -> list[ReportedRun]:
    """Every run under ``paths``: sweep directories, run directories, run records
    (:mod:`torchrl_reg.report.records`), or folders holding any of them."""
    runs: list[ReportedRun] = []
    seen: set[Path] = set()
    for p in paths:
        root = Path(p).resolve()
        if root.is_file() and root.suffix == ".json":
            records = _records_under(root)
            if not records:
                raise FileNotFoundError(f"{p} is not a run record (a JSON file with {', '.join(REQUIRED_KEYS)})")
            runs += [r for r in records if r.run_dir not in seen]
            seen.update(r.run_dir for r in records)
            continue
        if not root.is_dir():
            raise FileNotFoundError(f"{p} is not a directory")
        sweeps = [root] if (root / "sweep.json").is_file() else sorted(x.parent for x in root.rglob("sweep.json"))
        for sweep_dir in sweeps:
            for run in _runs_of_sweep(sweep_dir):
                if run.run_dir not in seen:
                    seen.add(run.run_dir)
                    runs.append(run)
        candidates = [root] if (root / "config.yaml").is_file() else sorted(
            x.parent for x in root.rglob("config.yaml") if not _hidden(x.parent.relative_to(root))
        )
        for run_dir in candidates:
            if run_dir in seen or (run_dir / "sweep.json").is_file():
                continue
            try:
                config = _read_config(run_dir)
            except Exception as err:  # noqa: BLE001 - YAML, OmegaConf and decoding raise many types
                # One damaged file is one run the report cannot read, not a report that cannot be made.
                seen.add(run_dir)
                reason = " ".join(str(err).split())[:200]
                runs.append(ReportedRun(run_dir, "run", {}, f"unreadable config.yaml ({type(err).__name__}: {reason})"))
                continue
            if config is None:
                continue
            seen.add(run_dir)
            status, metrics = _read_metrics(run_dir)
            runs.append(ReportedRun(run_dir, "run", config, status, metrics))
        records = _records_under(root, seen)
        for run in records:
            seen.add(run.run_dir)
            runs.append(run)
        if not sweeps and not candidates and not records:
            raise FileNotFoundError(f"{p} holds no sweep.json, no run directory (config.yaml) and no run record")
    return runs


def _label_keys(flat: Sequence[dict[str, Any]], envs: Sequence[Any], env_key: str) -> list[str]:
    """The fewest config keys that tell apart the methods of one group of runs.

    A key is a candidate when it takes different values among the runs of one environment (seeds,
    run directories and logging excluded, so env presets that change budgets between environments
    do not split a method). Keys are then picked greedily, the one that separates the most runs
    first (``*.name`` keys first on ties, then the shortest), until they separate the runs as all
    candidates together do: a loss group swapped by ``loss=dqn`` changes many keys at once, and
    one of them names it.
    """
    candidates: set[str] = set()
    for env in set(envs):
        indices = [i for i, e in enumerate(envs) if e == env]
        for k in set().union(*(flat[i].keys() for i in indices)):
            if k == env_key or k.startswith(IGNORED_PREFIXES):
                continue
            if len({json.dumps(flat[i].get(k), default=str) for i in indices}) > 1:
                candidates.add(k)

    def classes(keys: Sequence[str]) -> int:
        return len({(json.dumps(e, default=str), *(json.dumps(f.get(k), default=str) for k in keys)) for f, e in zip(flat, envs)})

    target = classes(sorted(candidates))
    chosen: list[str] = []
    while classes(chosen) < target:
        best = max(
            sorted(candidates - set(chosen)),
            key=lambda k: (classes([*chosen, k]), k.endswith(".name"), -len(k)),
        )
        chosen.append(best)
    return sorted(chosen)


def method_labels(runs: Sequence[ReportedRun], env_key: str, method_keys: Sequence[str] | None = None) -> list[str]:
    """A method label per run: its recipe (or the sweep's method name) and the config values that
    tell it apart from the other runs of that recipe on one env (see :func:`_label_keys`).

    Runs of different recipes are told apart by the recipe's name, not by the dozens of config keys
    in which two recipes differ. ``method_keys`` fixes the keys instead.
    """
    flat = [_flatten(r.config) for r in runs]
    groups = [r.recipe for r in runs]
    keys_of: dict[str, list[str]] = {}
    for group in dict.fromkeys(groups):
        members = [i for i, g in enumerate(groups) if g == group]
        keys_of[group] = list(method_keys) if method_keys is not None else _label_keys(
            [flat[i] for i in members], [runs[i].value(env_key) for i in members], env_key
        )
    several_groups = len(keys_of) > 1
    labels = []
    for group, f in zip(groups, flat):
        parts = [f"{k}={f.get(k)}" for k in keys_of[group]]
        if several_groups or not parts:
            parts.insert(0, group)
        labels.append(",".join(parts))
    return labels


def read_curve(run: ReportedRun, curve: str) -> tuple[np.ndarray, np.ndarray]:
    """``(frames, values)`` of a run: ``curve="eval"`` reads the evaluations in ``metrics.json``,
    anything else is a CSV scalar name such as ``train/episode_return``."""
    if curve in run.curves:
        frames, values = (np.asarray(v, dtype=np.float64) for v in run.curves[curve])
        keep = np.isfinite(values)
        return frames[keep], values[keep]
    if curve == "eval":
        frames = np.asarray(run.metrics.get("eval_frames", []), dtype=np.float64)
        values = np.asarray(run.metrics.get("eval_returns", []), dtype=np.float64)
        return frames, values
    path = run.run_dir / "csv" / "scalars" / f"{curve}.csv"
    if not path.exists():
        return np.zeros(0), np.zeros(0)
    text = read_bytes(path, "csv", root=run.run_dir).decode()
    rows = [line.split(",") for line in text.splitlines() if line.strip()]
    frames = np.asarray([float(r[0]) for r in rows], dtype=np.float64)
    values = np.asarray([float(r[1]) for r in rows], dtype=np.float64)
    keep = np.isfinite(values)
    return frames[keep], values[keep]


CURVE_METRICS = {
    "last_eval": "the last evaluation",
    "last3_eval": "the mean of the last three evaluations",
    "eval_auc": "the area under the evaluation curve divided by the frames it spans",
}
"""Scores read off a run's evaluations (``metrics.json``'s ``eval_frames`` / ``eval_returns``) rather than
taken from one ``metrics.json`` number; see :mod:`torchrl_reg.report.stats`."""


def final_score(run: ReportedRun, metric: str) -> float:
    """The run's final score: ``metrics.json[metric]``, or one of :data:`CURVE_METRICS` read off its evaluations
    (NaN when the run has too few of them). Either naming of the training return reads runs of both
    (``final_return``, its name before ``train_return_mean``: :func:`~torchrl_reg.run.read_metric`)."""
    if metric in CURVE_METRICS:
        frames, returns = read_curve(run, "eval")
        if metric == "last_eval":
            return float(returns[-1]) if len(returns) else math.nan
        try:
            if metric == "last3_eval":
                return last_evaluations_mean(frames, returns, 3)
            return normalized_curve_area(frames, returns)
        except ValueError:
            return math.nan
    value = read_metric(run.metrics, metric)
    return float(value) if isinstance(value, (int, float)) else math.nan


#: The curve a report draws unless told otherwise: the training episodes' returns.
DEFAULT_CURVE = "train/episode_return"
#: A curve's name: a CSV scalar under ``csv/scalars/`` (``train/episode_return``), never a path out of it.
_CURVE_NAME = re.compile(r"[A-Za-z0-9_.=-]+(/[A-Za-z0-9_.=-]+)*")


def _listed(names: Any, limit: int = 12) -> str:
    names = sorted({str(n) for n in names})
    return ", ".join(shown(n, 60) for n in names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "") or "none"


def _curve_names(run: ReportedRun) -> set[str]:
    names = set(run.curves)
    scalars = run.run_dir / "csv" / "scalars"
    if not run.curves and scalars.is_dir():
        names |= {p.relative_to(scalars).with_suffix("").as_posix() for p in scalars.rglob("*.csv")}
    if run.metrics.get("eval_returns"):
        names.add("eval")
    return names


def check_report_keys(
    runs: Sequence[ReportedRun], *, metric: str, curve: str, env_key: str, method_keys: Sequence[str] | None = None
) -> None:
    """Refuse, before a report writes anything, a ``metric``, ``curve``, ``env_key`` or one of ``method_keys`` that
    no completed run has (a misspelled name would report every run as missing its score, or label every method
    ``key=None``): ``ValueError`` on one line naming each and what the runs have. Nothing is checked when no run
    completed (the report then lists every run as missing)."""
    done = [r for r in runs if r.status == "completed"]
    if not done:
        return
    problems = []
    if metric not in CURVE_METRICS and not any(isinstance(read_metric(r.metrics, metric), (int, float)) for r in done):
        numbers = {k for r in done for k, v in r.metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        problems.append(f"--metric {shown(metric, 80)}: no completed run's metrics.json has a number of that name "
                        f"(they have: {_listed(numbers)}; or one of {', '.join(CURVE_METRICS)})")
    logged = set().union(*(_curve_names(r) for r in done))
    if curve == "eval":
        if "eval" not in logged:
            problems.append("--curve eval: no completed run's metrics.json holds evaluations (eval_returns)")
    elif not _CURVE_NAME.fullmatch(curve) or ".." in curve.split("/"):
        problems.append(f"--curve {shown(curve, 80)}: a curve is a CSV scalar's name (train/episode_return) or eval, "
                        "not a path")
    elif curve != DEFAULT_CURVE and logged - {"eval"} and curve not in logged:
        # (runs that logged no CSV curve at all get none drawn, as records without curves do; the default curve is
        # not the user's choice: runs too short to end a training episode have none, and get none drawn)
        problems.append(f"--curve {shown(curve, 80)}: no completed run logged that curve (they have: {_listed(logged)})")
    if all(r.value(env_key) is None for r in done):
        problems.append(f"--env-key {shown(env_key, 80)}: no completed run's config has that key (e.g. env.name)")
    flat = [_flatten(r.config) for r in done]
    for key in method_keys or ():
        if not any(key in f for f in flat):
            problems.append(f"--method-keys {shown(key, 80)}: no completed run's config has that key")
    if problems:
        raise ValueError("; ".join(problems) + "; nothing was written")


def _slug(text: Any) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", str(text)).strip("_")


def write_records(runs: Sequence[Any], labels: Sequence[str], out_dir: str | Path, env_key: str = "env.name") -> list[Path]:
    """One record per completed run in ``out_dir`` (``<method>_<env>_seed<seed>.json``), written as one set
    (:func:`plan_records`, then :func:`~torchrl_reg.run.files.write_atomic_set`); returns the paths."""
    pending = plan_records(runs, labels, out_dir, env_key)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    write_atomic_set([(path, data, None) for path, data in pending.items()])
    return list(pending)


def plan_records(runs: Sequence[Any], labels: Sequence[str], out_dir: str | Path, env_key: str = "env.name") -> dict[Path, bytes]:
    """The records :func:`write_records` would write, as ``{path: bytes}``, every refusal raised first (``ValueError``)
    and nothing written: the report writes them in its own set (``--records``).

    ``runs`` are :class:`ReportedRun` objects and ``labels`` their method labels (the record format:
    :mod:`torchrl_reg.report.records`).
    Every CSV scalar under ``train/`` and ``eval/`` of the run goes into ``curves``.
    A record already in ``out_dir`` is replaced only by the same run (same method label, recipe file, overrides, env and
    seed: a rerun, or the same run read again); a different run under its file name (two methods of a spec reported
    one at a time, whose labels then name only the key they vary) is refused before anything is written.
    """
    out = Path(os.path.abspath(out_dir))
    if out.exists() and not out.is_dir():
        raise ValueError(f"--records {shown(out_dir)} is a file, not a folder: name a folder for the run records; "
                         "nothing was written")
    pending: dict[Path, dict[str, Any]] = {}
    for run, label in zip(runs, labels):
        if run.status != "completed":
            continue
        env, seed = run.value(env_key), run.value("seed")
        curves = {}
        scalars = run.run_dir / "csv" / "scalars"
        for csv in sorted(scalars.rglob("*.csv")) if scalars.is_dir() else []:
            name = csv.relative_to(scalars).with_suffix("").as_posix()
            frames, values = read_curve(run, name)
            curves[name] = {"frames": frames.astype(int).tolist(), "values": values.tolist()}
        record = {
            "method": label,
            "env": env,
            "seed": seed,
            "recipe": run.recipe_path,
            "overrides": list(run.overrides),
            "command": run.command,
            "config": run.config,
            "metrics": {k: v for k, v in run.metrics.items() if k != "run_dir"},
            "curves": curves,
        }
        path = out / f"{_slug(label)}_{_slug(env)}_seed{seed}.json"
        if path in pending:
            raise ValueError(f"two runs would both be written to {path}: give them distinct method labels")
        _refuse_another_run(path, record)
        pending[path] = record
    return {path: (json.dumps(record, indent=1, default=float) + "\n").encode() for path, record in pending.items()}


_RUN_IDENTITY = ("method", "recipe", "overrides", "env", "seed")


def _refuse_another_run(path: Path, record: dict[str, Any]) -> None:
    """Raise if ``path`` holds the record of a different run than ``record`` (see :func:`write_records`)."""
    if not path.exists():
        return
    try:
        old = read_json(path, "record")
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} exists and is not a readable run record ({error}): move it away to write this run's") from None
    differ = [key for key in _RUN_IDENTITY if _identity(old.get(key), key) != _identity(record.get(key), key)]
    if differ:
        shown = "; ".join(f"{key}: {old.get(key)!r} there, {record.get(key)!r} now" for key in differ)
        raise ValueError(
            f"{path} holds the record of another run ({shown}): write these records to another --records directory, "
            "or report the sweeps together (a spec's directory) so that their labels name the method"
        )


def _identity(value: Any, key: str) -> Any:
    """What must agree for two records to be of one run: the overrides in any order, the recipe by its file name
    (the same recipe in another checkout is the same recipe)."""
    if key == "overrides" and isinstance(value, list):
        return sorted(map(str, value))
    if key == "recipe" and isinstance(value, str):
        return Path(value).name
    return value
