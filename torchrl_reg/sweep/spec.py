"""What a sweep is: a recipe, the cartesian product of its overrides, one validated config per task.

Everything here runs on the submitting machine before anything is submitted: the overrides are
parsed with Hydra's own override grammar (``a=1,2``, ``range(0,3)``, ``choice(x,y)``, quoting),
expanded like Hydra's basic sweeper does for ``--multirun``, and every task's config is composed
with Hydra's compose API against the recipe's schema and checked by the recipe's validator. Any
problem raises :class:`SweepError` listing every failing task, so nothing half-valid is submitted.
"""
from __future__ import annotations

import importlib.util
import itertools
import math
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from omegaconf import DictConfig, OmegaConf

from torchrl_reg.cli import printable
from torchrl_reg.configs import recipe_config_path, with_search_path
from torchrl_reg.run.files import parse_yaml, read_text
from torchrl_reg.run.rundir import added_unread
from torchrl_reg.sweep.errors import SweepError
from torchrl_reg.sweep.resources import SlurmResources

__all__ = [
    "MAX_TASKS",
    "SweepError",
    "Recipe",
    "SpecMethod",
    "Task",
    "check_recorded_configs",
    "expand_overrides",
    "load_sweep_spec",
    "name_problem",
    "plan_tasks",
]

# Keys the sweep sets itself, one value per task.
RESERVED_KEYS = ("run_dir",)
#: The most tasks one sweep may have: each is validated and recorded in sweep.json before anything is submitted, and
#: a range that lists more (``seed=range(0,1000000000000)``) is refused before its values are made.
MAX_TASKS = 100_000


class _NameTaken(ImportError):
    """A module name already bound to another file."""


def _import_from_file(name: str, path: Path) -> ModuleType:
    """The module ``name`` loaded from ``path`` (and, for ``package.module``, the package from the
    ``__init__.py`` beside it), or the one already imported from that very file; :class:`_NameTaken`
    when a module of that name was imported from another file."""
    package, _, _ = name.rpartition(".")
    if package:
        _import_from_file(package, path.parent / "__init__.py")
    loaded = sys.modules.get(name)
    if loaded is not None:
        origin = getattr(loaded, "__file__", None)
        if origin is not None and Path(origin).resolve() == path.resolve():
            return loaded
        raise _NameTaken(f"{name!r} is already imported from {origin}, not from {path}")
    is_package = path.name == "__init__.py"
    spec = importlib.util.spec_from_file_location(
        name, path, submodule_search_locations=[str(path.parent)] if is_package else None
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    if package:
        setattr(sys.modules[package], name.rpartition(".")[2], module)
    return module


@dataclass(frozen=True)
class Recipe:
    """A recipe script ``recipes/<name>.py`` with its Hydra config ``recipes/conf/<name>/<name>.yaml`` (the
    shared groups of ``recipes/conf/`` on the search path) or ``recipes/conf/<name>.yaml``
    (:func:`~torchrl_reg.configs.recipe_config_path`).

    The contract of :mod:`torchrl_reg.run`: a Hydra main on that config, a ``train(cfg) -> dict`` callable programmatically, a schema
    registered in Hydra's ConfigStore when the module is imported, and ``validate(cfg)`` running
    every check ``train`` runs before it builds anything.
    """

    path: Path

    @classmethod
    def from_path(cls, path: str | Path) -> "Recipe":
        p = Path(path).expanduser().resolve()
        if p.suffix != ".py" or not p.is_file():
            raise SweepError(f"recipe must be an existing recipes/<name>.py script, got {str(path)!r}")
        recipe = cls(p)
        primary, _ = recipe_config_path(recipe.config_dir, recipe.name)
        if not (primary / f"{recipe.name}.yaml").is_file():
            raise SweepError(
                f"recipe {p.name} has no config {recipe.config_dir / recipe.name / (recipe.name + '.yaml')} "
                f"or {recipe.config_dir / (recipe.name + '.yaml')} (a recipe's primary config is "
                "conf/<name>/<name>.yaml or conf/<name>.yaml next to it)"
            )
        return recipe

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def config_dir(self) -> Path:
        return self.path.parent / "conf"

    def module(self) -> ModuleType:
        """Import the script as a module (once per process), from its file: never through ``sys.path``.

        A recipe of a package (``recipes/m_dqn.py`` beside ``recipes/__init__.py``) is imported under its
        package name, ``recipes.m_dqn``, the package itself from that ``__init__.py``: a second copy of
        the module would register a second schema class under the same ConfigStore name, and configs
        composed for one copy would then fail the other's validation. A ``recipes`` package found first
        on ``sys.path`` (the working directory's, say a downloaded sweep directory's) is never imported.
        Any other script (or one whose package name another file already holds) is loaded from its file
        alone, as ``python <script>`` would see it.
        """
        module = None
        if (self.path.parent / "__init__.py").is_file():
            try:
                module = _import_from_file(f"{self.path.parent.name}.{self.name}", self.path)
            except _NameTaken:  # a package of that name from elsewhere (another project's recipes/): load the file alone
                pass
        if module is None:
            # A script run directly has its own directory first on sys.path; keep that true here.
            if str(self.path.parent) not in sys.path:
                sys.path.insert(0, str(self.path.parent))
            module = _import_from_file(f"_torchrl_reg_recipe_{self.name}", self.path)
        if not callable(getattr(module, "train", None)):
            raise SweepError(f"recipe {self.path} defines no train(cfg) function")
        return module

    def validate(self, cfg: DictConfig) -> Any:
        """The recipe's ``validate(cfg)``: schema and every range check ``train`` runs before building
        anything; returns what it returns (the config merged onto the recipe's schema)."""
        validator = getattr(self.module(), "validate", None)
        if not callable(validator):
            raise SweepError(f"recipe {self.path} defines no validate(cfg) function")
        return validator(cfg)


@dataclass(frozen=True)
class Task:
    """One run of a sweep: its overrides, its run directory and its composed, resolved config."""

    index: int
    name: str
    overrides: tuple[str, ...]
    run_dir: str
    config: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "overrides": list(self.overrides),
            "run_dir": self.run_dir,
            "config": self.config,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Task":
        return cls(d["index"], d["name"], tuple(d["overrides"]), d["run_dir"], d["config"])


def _override_key(override: Any) -> str:
    return override.key_or_group if override.package is None else f"{override.key_or_group}@{override.package}"


def expand_overrides(args: Sequence[str]) -> tuple[list[list[str]], list[str]]:
    """The cartesian product of Hydra sweep overrides, in Hydra's order (the last key varies fastest).

    Returns ``(tasks, swept_keys)``: one list of plain overrides per task, and the keys that take
    more than one value. ``seed=0,1,2``, ``seed=range(0,3)`` and ``env=choice(a,b)`` sweep;
    quoting keeps commas (``x='a,b'``). ``interval()`` and ``glob()`` sweeps are refused.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    problems: list[str] = []
    columns: list[list[str]] = []
    swept: list[str] = []
    seen: dict[str, str] = {}
    for arg in args:
        try:
            override = parser.parse_override(arg)
        except HydraException as err:
            problems.append(f"cannot parse override {arg!r}: {str(err).strip().splitlines()[0]}")
            continue
        key = _override_key(override)
        if key in seen:
            problems.append(f"{key!r} is given twice ({seen[key]!r} and {arg!r}): give it once, with all its values")
            continue
        seen[key] = arg
        if key.split(".")[0] == "hydra":
            problems.append(
                f"{arg!r}: hydra.* overrides are not used by sweeps (each task's run directory is "
                "<sweep dir>/<task name>; set the sweep directory with --dir)"
            )
            continue
        if key in RESERVED_KEYS:
            problems.append(f"{arg!r}: {key} is set by the sweep (one run directory per task under --dir)")
            continue
        prefix = override.get_key_element()
        if override.is_sweep_override():
            count = _sweep_length(override.value())
            if count is not None and count > MAX_TASKS:  # before the values exist: range(0, 10**12) is never listed
                problems.append(f"{arg!r} gives {key} {count} values, more than the {MAX_TASKS} tasks a sweep may have")
                continue
            try:
                values = list(override.sweep_string_iterator())
            except HydraException:
                problems.append(
                    f"{arg!r}: only list sweeps (a=1,2), range() and choice() can be expanded, "
                    f"not {override.value_type.name.lower()}"
                )
                continue
            if not values:
                problems.append(f"{arg!r} gives {key} no value at all: the sweep would be empty")
                continue
            columns.append([f"{prefix}={v}" for v in values])
            if len(values) > 1:
                swept.append(key)
        elif override.is_delete():
            columns.append([arg])
        else:
            columns.append([f"{prefix}={override.get_value_element_as_str()}"])
    tasks = math.prod(len(column) for column in columns)
    if tasks > MAX_TASKS:
        problems.append(f"the overrides make {tasks} tasks ({' x '.join(str(len(c)) for c in columns if len(c) > 1)}), "
                        f"more than the {MAX_TASKS} a sweep may have: split it into several sweeps")
    if problems:
        raise SweepError("invalid overrides:\n  - " + "\n  - ".join(problems))
    return [list(combo) for combo in itertools.product(*columns)], swept


def _sweep_length(sweep: Any) -> int | None:
    """How many values a ``range()`` sweep gives, counted without listing them (``None`` for another sweep: its values
    are on the command line already)."""
    from hydra.core.override_parser.types import RangeSweep

    if not isinstance(sweep, RangeSweep) or sweep.step in (None, 0):
        return None
    start, stop, step = sweep.start, sweep.stop, sweep.step
    if all(isinstance(v, int) for v in (start, stop, step)):
        return len(range(start, stop, step))
    return max(math.ceil((stop - start) / step), 0)


@dataclass(frozen=True)
class SpecMethod:
    """One method of a sweep spec: a recipe and its overrides (sweeps allowed), run as one sweep."""

    name: str | None
    recipe: Recipe
    overrides: tuple[str, ...]
    label: str | None = None
    #: The spec's SLURM resources per task as ``(key, value)`` pairs, the form of ``--slurm.KEY=VALUE``.
    slurm: tuple[tuple[str, str], ...] = ()
    #: The table of measured throughput the dry run estimates the cost from (see :mod:`torchrl_reg.sweep.cost`).
    throughput: Path | None = None


def _merge_overrides(base: Sequence[str], later: Sequence[str]) -> list[str]:
    """``base`` with every override of ``later`` appended, replacing a ``base`` override of the same key."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()

    def key(arg: str) -> str:
        try:
            return _override_key(parser.parse_override(arg))
        except HydraException:
            return arg  # expand_overrides reports it with the reason

    replaced = {key(a) for a in later}
    return [a for a in base if key(a) not in replaced] + list(later)


#: What a spec's method name may hold (it names a sweep's folder), and a task's name (its swept values too).
METHOD_NAME_CHARS, TASK_NAME_CHARS = "A-Za-z0-9._-", "A-Za-z0-9._=,+-"


def name_problem(name: str, chars: str = METHOD_NAME_CHARS) -> str | None:
    """Why ``name`` cannot name a folder of a sweep (a spec's method; a task, with :data:`TASK_NAME_CHARS`), or
    None: one or more of ``chars``, not starting with a dot (``.`` is the folder itself, ``..`` its parent,
    ``.name`` a hidden folder that reports skip)."""
    if not re.fullmatch(f"[{chars}]+", name):
        shown = ", ".join(repr(c) for c in chars.replace("A-Za-z0-9", "").replace("-", "")) + " or '-'"
        return f"must be letters, digits, {shown} (it names a directory)"
    if name.startswith("."):
        return ("may not start with '.': '.' names the sweep directory itself, '..' the folder above it, and a "
                "hidden folder is skipped by reports")
    return None


SPEC_KEYS = ("description", "overrides", "slurm", "throughput", "methods")
SPEC_METHOD_KEYS = ("recipe", "overrides", "label")


def _slurm_items(resources: Any, problems: list[str]) -> tuple[tuple[str, str], ...]:
    """A spec's ``slurm:`` mapping as ``(key, value)`` pairs, checked like ``--slurm.*`` (problems appended)."""
    if not isinstance(resources, dict):
        problems.append(f"'slurm' must be a mapping of SLURM resources per task (e.g. {{gpus_per_node: 1, "
                        f"cpus_per_task: 8}}), got {resources!r}")
        return ()
    items: list[tuple[str, str]] = []
    for key, value in resources.items():
        values = value if key == "setup" and isinstance(value, list) else [value]
        if key == "additional" and isinstance(value, dict):
            keyed = [(f"additional.{k}", v) for k, v in value.items()]
        else:
            keyed = [(str(key), v) for v in values]
        for k, v in keyed:
            # YAML types the values: a bool or a list would pass through str() as a wrong value.
            if isinstance(v, bool) or not isinstance(v, (str, int, float)):
                problems.append(f"slurm.{k}={v!r}: expected a number or a string")
            else:
                items.append((k, str(v)))
    try:
        SlurmResources.from_items(items, prefix="slurm.")
    except SweepError as err:
        problems += str(err).splitlines()[1:]
    return tuple(items)


def load_sweep_spec(path: str | Path, overrides: Sequence[str] = ()) -> list[SpecMethod]:
    """The methods of a sweep spec file, each with its overrides; ``overrides`` (from the command
    line) replace the spec's overrides of the same key in every method.

    A spec is a YAML file::

        description: CartPole-v1 and Acrobot-v1, 500k steps, 10 seeds
        overrides: [env=cartpole,acrobot, "seed=range(0,10)"]   # every method
        slurm: {cpus_per_task: 2, mem_gb: 4, time_min: 120}     # optional: SLURM resources per task
        throughput: throughput.yaml                             # optional: measured steps/s, for --dry-run
        methods:
          dqn: {recipe: ../recipes/m_dqn.py, overrides: [loss=dqn]}
          m_dqn: {recipe: ../recipes/m_dqn.py, overrides: [loss=m_dqn]}

    Recipe paths are relative to the spec file. Each method is one sweep (the cartesian product of
    the shared and its own overrides) in its own directory ``<sweep dir>/<method>``; the report
    labels its runs by the method's ``label`` (default: its name; two methods may share a label,
    e.g. one recipe run on two sets of environments). ``slurm`` takes the keys of ``--slurm.KEY=VALUE``
    (``setup``: a list of lines, ``additional``: a mapping), each checked here; ``--slurm.*`` on the
    command line replaces the spec's value of the same key. ``throughput`` names a table of measured
    throughput (relative to the spec) from which ``--dry-run`` estimates each task's cost.
    """
    path = Path(path)
    if not path.is_file():
        raise SweepError(f"sweep spec {str(path)!r} does not exist")
    try:
        spec = parse_yaml(read_text(path, "config"), path)  # bounded: no alias, a nesting limit
    except ValueError as err:  # invalid YAML, or refused (FileRefused)
        raise SweepError(str(err)) from None
    if not isinstance(spec, dict) or not isinstance(spec.get("methods"), dict) or not spec["methods"]:
        raise SweepError(f"{path}: a sweep spec is a mapping with a non-empty 'methods' mapping (name -> recipe, overrides)")
    problems = [f"unknown key {k!r} (accepted: {', '.join(SPEC_KEYS)})" for k in spec if k not in SPEC_KEYS]
    shared = spec.get("overrides") or []
    if not isinstance(shared, list) or not all(isinstance(o, str) for o in shared):
        problems.append(f"'overrides' must be a list of strings, got {shared!r}")
        shared = []
    slurm = _slurm_items(spec["slurm"], problems) if "slurm" in spec else ()
    throughput = None
    if "throughput" in spec:
        throughput = path.parent / str(spec["throughput"])
        if not isinstance(spec["throughput"], str) or not throughput.is_file():
            problems.append(f"'throughput' must name an existing table of measured throughput relative to the spec, "
                            f"got {spec['throughput']!r}")
    methods = []
    for name, entry in spec["methods"].items():
        if not isinstance(entry, dict) or "recipe" not in entry:
            problems.append(f"method {name!r} must be a mapping with a 'recipe' (and optional 'overrides'), got {entry!r}")
            continue
        problems += [f"method {name!r}: unknown key {k!r} (accepted: {', '.join(SPEC_METHOD_KEYS)})"
                     for k in entry if k not in SPEC_METHOD_KEYS]
        own = entry.get("overrides") or []
        if not isinstance(own, list) or not all(isinstance(o, str) for o in own):
            problems.append(f"method {name!r}: 'overrides' must be a list of strings, got {own!r}")
            continue
        if (reason := name_problem(str(name))) is not None:
            problems.append(f"method name {printable(repr(str(name)))[:80]} {reason}")
            continue
        try:
            recipe = Recipe.from_path(path.parent / entry["recipe"])
        except SweepError as err:
            problems.append(f"method {name!r}: {err}")
            continue
        merged = tuple(_merge_overrides(_merge_overrides(shared, own), overrides))
        methods.append(SpecMethod(str(name), recipe, merged, str(entry.get("label", name)), slurm, throughput))
    if problems:
        raise SweepError(f"invalid sweep spec {path}:\n  - " + "\n  - ".join(problems))
    return methods


def select_methods(methods: Sequence[SpecMethod], names: str | None, spec: str | Path = "the spec") -> list[SpecMethod]:
    """The methods of a spec named in ``names`` (comma-separated, as ``--methods`` takes them), in the
    spec's order; all of them when ``names`` is None. An unknown or repeated name is refused."""
    if names is None:
        return list(methods)
    wanted = [n.strip() for n in names.split(",")]
    known = [m.name for m in methods]
    unknown = [n for n in wanted if n not in known]
    if unknown or not all(wanted) or len(set(wanted)) != len(wanted):
        raise SweepError(f"--methods {names!r}: {spec} has the methods {', '.join(known)}; give some of them, "
                         f"comma-separated, each once" + (f" (unknown: {', '.join(map(repr, unknown))})" if unknown else ""))
    return [m for m in methods if m.name in wanted]


def _error_message(err: BaseException) -> str:
    """The error and its causes on one line (Hydra puts the useful part in the cause)."""
    parts = []
    cause: BaseException | None = err
    while cause is not None:
        text = " ".join(str(cause).split())
        if text and text not in parts:
            parts.append(text)
        cause = cause.__cause__
    return ": ".join(parts) or type(err).__name__


def _check_env(cfg: DictConfig, checked: Any, seen: dict[str, str | None]) -> None:
    """Refuse an env whose action space the recipe's loop cannot use (``action_space`` of its config schema:
    Pendulum on m_dqn, CartPole on sac): recipes meet it only when they build the env, minutes after a sweep was
    submitted (an env id that names no registered environment the recipe's ``validate`` refuses).
    One env is built per distinct env config and action space (``seen`` keeps the outcomes)."""
    env = cfg.get("env")
    if isinstance(env, DictConfig) and "family" in env and "name" in env:
        from torchrl_reg.envs import check_action_space

        kind = getattr(OmegaConf.get_type(checked), "action_space", None) if OmegaConf.is_config(checked) else None
        if kind is None:
            return
        key = f"{kind}\n{OmegaConf.to_yaml(env)}"
        if key not in seen:
            try:
                check_action_space(env, kind)
                seen[key] = None
            except ValueError as err:
                seen[key] = str(err)
        if seen[key] is not None:
            raise ValueError(seen[key])


def _task_name(index: int, width: int, overrides: Sequence[str], swept: Sequence[str]) -> str:
    parts = []
    for o in overrides:
        key = o.split("=", 1)[0].lstrip("+~")
        if key in swept:
            parts.append(o.lstrip("+~"))
    label = re.sub(f"[^{TASK_NAME_CHARS}]", "_", ",".join(parts))[:120]
    return f"{index:0{width}d}" + (f"_{label}" if label else "")


def plan_tasks(recipe: Recipe, overrides: Sequence[str], sweep_dir: str | Path) -> tuple[list[Task], list[str]]:
    """Expand, compose and validate every task; raises :class:`SweepError` listing all failures.

    Each task's config is composed with Hydra's compose API (then ``run_dir`` is set to its own
    directory under ``sweep_dir``), so unknown keys and ill-typed values fail exactly as they would on the
    command line, then checked by the recipe's validator. Identical tasks are refused.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    combos, swept = expand_overrides(overrides)
    sweep_dir = Path(sweep_dir).resolve()
    width = max(3, len(str(len(combos) - 1)))
    recipe.module()  # registers the recipe's schema in Hydra's ConfigStore
    primary, shared = recipe_config_path(recipe.config_dir, recipe.name)
    tasks: list[Task] = []
    failures: dict[str, list[int]] = {}
    configs_seen: dict[str, int] = {}
    envs_seen: dict[str, str | None] = {}
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(primary), version_base=None):
            for i, combo in enumerate(combos):
                name = _task_name(i, width, combo, swept)
                run_dir = sweep_dir / name
                try:
                    cfg = compose(config_name=recipe.name, overrides=with_search_path(shared, combo))
                    # Set after composing: a path is not always a valid override value (',', '=').
                    cfg.run_dir = str(run_dir)
                    checked = recipe.validate(cfg)
                    _check_env(cfg, checked, envs_seen)
                    container = OmegaConf.to_container(cfg, resolve=True)
                except Exception as err:  # noqa: BLE001 - Hydra, OmegaConf and validators raise many types
                    message = _error_message(err)
                    failures.setdefault(message, []).append(i)
                    continue
                assert isinstance(container, dict)
                fingerprint = OmegaConf.to_yaml({k: v for k, v in container.items() if k != "run_dir"})
                if fingerprint in configs_seen:
                    failures.setdefault(
                        f"gives the same config as task {configs_seen[fingerprint]}: a sweep runs each config once",
                        [],
                    ).append(i)
                    continue
                configs_seen[fingerprint] = i
                tasks.append(Task(i, name, tuple(combo), str(run_dir), container))
    finally:
        GlobalHydra.instance().clear()
    if failures:
        lines = []
        for message, indices in failures.items():
            first = " ".join(combos[indices[0]]) or "(no overrides)"
            where = f"task {indices[0]} ({first})"
            if len(indices) > 1:
                where = f"{len(indices)} tasks, e.g. {where}"
            lines.append(f"{where}: {message}")
        raise SweepError(f"{sum(map(len, failures.values()))} of {len(combos)} tasks are invalid:\n  - " + "\n  - ".join(lines))
    return tasks, swept


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        return {k: v for key, value in node.items() for k, v in _flat(value, f"{prefix}{key}.").items()}
    return {prefix[:-1]: node}


def _same(a: Any, b: Any) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and a != a and b != b)


def check_recorded_configs(recipe: Recipe, tasks: Sequence[dict[str, Any]]) -> None:
    """Refuse recorded tasks (``sweep.json``'s, paths absolute) whose config is not what their overrides compose
    to (composed and validated as :func:`plan_tasks` did, ``run_dir`` set to the task's): a config stripped of
    keys would train the schema's defaults, an edited one something else, while the task's log names the
    recorded overrides. Raises :class:`SweepError` naming each task and key."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    recipe.module()  # registers the recipe's schema in Hydra's ConfigStore
    primary, shared = recipe_config_path(recipe.config_dir, recipe.name)
    problems: list[str] = []
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(primary), version_base=None):
            for task in tasks:
                try:
                    cfg = compose(config_name=recipe.name, overrides=with_search_path(shared, list(task["overrides"])))
                    cfg.run_dir = task["run_dir"]
                    recipe.validate(cfg)
                    container = OmegaConf.to_container(cfg, resolve=True)
                    composed = _flat(container)
                    # a key added to a group since the sweep was made, for another option of it: not a difference
                    unchanged = added_unread(task["config"], container, cfg)
                except Exception as err:  # noqa: BLE001 - Hydra, OmegaConf and validators raise many types
                    problems.append(f"task {task['index']}: its overrides no longer compose: {_error_message(err)}")
                    continue
                recorded = _flat(task["config"])
                diffs = [
                    f"config.{printable(key)} is {recorded.get(key, '<absent>')!r}, the overrides give "
                    f"{composed.get(key, '<absent>')!r}"
                    for key in sorted(set(composed) | set(recorded))
                    if not _same(composed.get(key, "<absent>"), recorded.get(key, "<absent>"))
                    and key not in unchanged
                ]
                if diffs:
                    more = f" (and {len(diffs) - 5} more)" if len(diffs) > 5 else ""
                    problems.append(f"task {task['index']} ({' '.join(task['overrides']) or 'no overrides'}): "
                                    + "; ".join(diffs[:5]) + more)
    finally:
        GlobalHydra.instance().clear()
    if problems:
        raise SweepError(
            "sweep.json records task configs that their overrides do not compose to (a file edited or stripped of keys, "
            "or a recipe whose config changed since the sweep was made); a task runs its recorded config only when "
            "the two agree: make a new sweep\n  - " + "\n  - ".join(problems)
        )
