"""Recipe configs in Hydra: schemas registered in the ConfigStore, where a recipe's config files are, and
composing a recipe's config without running it."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, make_dataclass
from pathlib import Path

from omegaconf import DictConfig

from torchrl_reg.configs.schemas import ActorCriticConfig, ActorCriticLossConfig, ValueBasedConfig, ValueBasedLossConfig

__all__ = [
    "ConfigSources",
    "compose_config",
    "config_sources",
    "preset_overrides",
    "env_preset_id",
    "recipe_config_path",
    "recipe_schema",
    "register_schema",
    "search_path_of",
    "with_search_path",
]

_LOSS_FAMILIES = {ValueBasedLossConfig: ValueBasedConfig, ActorCriticLossConfig: ActorCriticConfig}


def register_schema(name: str, node: type) -> None:
    """Store ``node`` (a dataclass) in Hydra's ConfigStore as ``<name>_schema``; list it first in the defaults."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name=f"{name}_schema", node=node)


def recipe_schema(name: str, family: type | None = None, **groups: type) -> type:
    """A recipe's top-level schema: its family's (:class:`ValueBasedConfig`, :class:`ActorCriticConfig`)
    plus the recipe's own groups (``loss=MyLossConfig``, ``policy=...``), registered as ``<name>_schema``
    (:func:`register_schema`). ``family`` ``None``: the family whose loss config ``loss`` inherits
    (:class:`ValueBasedLossConfig` or :class:`ActorCriticLossConfig`)."""
    if family is None:
        family = next(f for base, f in _LOSS_FAMILIES.items() if issubclass(groups["loss"], base))
    schema = make_dataclass(
        f"{name}_config",
        [(group, node, field(default_factory=node)) for group, node in groups.items()],
        bases=(family,),
    )
    register_schema(name, schema)
    return schema


def recipe_config_path(config_dir: str | Path, config_name: str) -> tuple[Path, tuple[Path, ...]]:
    """Where Hydra finds the recipe config ``config_name`` under ``config_dir`` (``recipes/conf``): its primary
    config directory and the directories to add to Hydra's search path after it, in order (empty: none).

    A recipe with its own directory, ``<config_dir>/<name>/<name>.yaml``, composes from there (its ``loss/``
    group and any other group of its own: another recipe's option is not found, and Hydra's error lists the
    recipe's options), with ``config_dir`` on the search path for the groups every recipe shares
    (``buffer/``, ``collector/``, ``logger/``, ``optim/``, ``policy/``) and the env protocols (``protocol/``), then
    the directories its primary config lists in ``hydra.searchpath``, relative to its own directory: the env set
    whose ``env`` group it offers (``file://../envs/control``: SAC's control protocols, ``env=hopper``, shared by
    the recipes that run on them; :func:`search_path_of`). Any other recipe keeps the flat layout,
    ``<config_dir>/<name>.yaml``, and needs nothing more.
    """
    config_dir = Path(config_dir).resolve()
    own = config_dir / config_name
    if (own / f"{config_name}.yaml").is_file():
        return own, (config_dir, *search_path_of(own / f"{config_name}.yaml"))
    return config_dir, ()


def search_path_of(primary: Path) -> tuple[Path, ...]:
    """The directories the primary config file ``primary`` lists in ``hydra.searchpath`` (``file://`` entries or
    plain paths), a relative one taken from ``primary``'s directory, so that the recipe composes from any working
    directory (Hydra alone would take it from the working directory; a recipe's command line passes these
    directories resolved, :func:`with_search_path`)."""
    from omegaconf import OmegaConf

    entries = OmegaConf.select(OmegaConf.load(primary), "hydra.searchpath") or []
    paths = []
    for entry in entries:
        scheme, _, path = str(entry).rpartition("://")
        if scheme not in ("", "file"):
            raise ValueError(f"{primary}: hydra.searchpath entry {entry!r}: a recipe's search path holds directories "
                             "(file://<dir>, relative to the config's directory)")
        paths.append((primary.parent / path).resolve())
    return tuple(paths)


def with_search_path(shared: Path | Iterable[Path] | None, overrides: Iterable[str]) -> list[str]:
    """``overrides`` with ``shared`` (a directory or several, :func:`recipe_config_path`) first on
    ``hydra.searchpath`` (a ``hydra.searchpath=[...]`` among them keeps its entries after it: Hydra reads only
    one such override)."""
    overrides = list(overrides)
    shared = () if shared is None else (shared,) if isinstance(shared, Path) else tuple(shared)
    if not shared:
        return overrides
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    given = [i for i, override in enumerate(parsed) if override.get_key_element() == "hydra.searchpath"]
    entries = [*(f"file://{path.as_posix()}" for path in shared), *(parsed[given[0]].value() if given else [])]
    # Quoted: a path may hold characters Hydra's override grammar reads (',', '=', spaces).
    quoted = ",".join("'" + entry.replace("\\", "\\\\").replace("'", "\\'") + "'" for entry in entries)
    kept = [override for i, override in enumerate(overrides) if i not in given]
    return [f"hydra.searchpath=[{quoted}]", *kept]


def compose_config(config_dir: str | Path, config_name: str, overrides: Iterable[str] = ()) -> DictConfig:
    """Compose a recipe config without running it (tests, notebooks, sweeps), as the recipe's command line
    does; the recipe must be imported (its schema registered). ``config_dir`` is the directory of the
    recipes' configs (``recipes/conf``): :func:`recipe_config_path` finds the recipe's own."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    primary, shared = recipe_config_path(config_dir, config_name)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(primary), version_base=None):
        return compose(config_name=config_name, overrides=with_search_path(shared, overrides))


@dataclass(frozen=True)
class ConfigSources:
    """Where a composed recipe config came from (a recipe's ``--help``).

    ``groups``: each config group the recipe's primary config lets the user pick (``group=option``; not
    those its defaults list derives from another choice, e.g. ``virel_schema: ${env}``) -> the option
    picked and every option in the recipe's directory and the shared one. ``values``: each key a config file or a command-line
    override set -> that file (the last one to set it, in Hydra's merge order), relative to ``config_dir``
    when it is under it, or ``"command line"``; a key in neither keeps its schema default (a config of
    Hydra's ConfigStore or of a ``pkg://`` search path entry is not shown).
    """

    groups: dict[str, tuple[str, tuple[str, ...]]]
    values: dict[str, str]


def config_sources(config_dir: str | Path, config_name: str, overrides: Iterable[str] = ()) -> ConfigSources:
    """The :class:`ConfigSources` of ``compose_config(config_dir, config_name, overrides)``, from Hydra's
    defaults list of that composition (the files in merge order) and its config overrides."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    config_dir = Path(config_dir).resolve()
    primary, shared = recipe_config_path(config_dir, config_name)
    overrides = with_search_path(shared, overrides)
    # The directories Hydra searches, in its order: the primary one, then hydra.searchpath's file:// entries.
    parsed = OverridesParser.create().parse_overrides(overrides)
    search = next((o.value() for o in parsed if o.get_key_element() == "hydra.searchpath"), [])
    roots = [primary, *(Path(entry[len("file://"):]) for entry in search if entry.startswith("file://"))]
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(primary), version_base=None):
        loader = GlobalHydra.instance().config_loader()
        defaults = loader.compute_defaults_list(config_name, overrides, RunMode.RUN)
        picked = {d.config_path.rpartition("/")[0]: d.config_path.rpartition("/")[2]
                  for d in defaults.defaults if d.parent == config_name and d.config_path}
        groups = {}
        for entry in OmegaConf.to_container(OmegaConf.load(primary / f"{config_name}.yaml")).get("defaults", []):
            if isinstance(entry, dict):
                (key, option), = entry.items()
                group = key.split()[-1]  # "optional mirl_preset" -> mirl_preset
                if "${" not in str(option):
                    options = sorted({path.stem for root in roots for path in (root / group).glob("*.yaml")})
                    groups[group] = (picked.get(group, str(option)), tuple(options))
    values: dict[str, str] = {}
    for default in defaults.defaults:
        if default.config_path is None or default.config_path.startswith("hydra/"):
            continue
        found = next((root / f"{default.config_path}.yaml" for root in roots
                      if (root / f"{default.config_path}.yaml").is_file()), None)
        if found is None:  # a structured config of the ConfigStore: the schema's own defaults
            continue
        node = OmegaConf.load(found)
        node.pop("defaults", None)
        node.pop("hydra", None)
        prefix = f"{default.package}." if default.package else ""
        shown = found.relative_to(config_dir).as_posix() if found.is_relative_to(config_dir) else str(found)
        for key in _leaf_keys(OmegaConf.to_container(node)):
            values[prefix + key] = shown
    for override in defaults.config_overrides:
        key = override.key_or_group
        if not key.startswith("hydra."):
            values[key] = "command line"
    return ConfigSources(groups, values)


def preset_overrides(config_dir: str | Path, config_name: str, overrides: Iterable[str], error: Exception) -> str:
    """What to add to the refusal ``error`` of the config ``compose_config(config_dir, config_name, overrides)`` when
    it refuses a value that a config file set, not the command line (``planner.tau=0.1`` of
    ``tree_search_preset/minatar.yaml`` with ``planner.algorithm=dents``): the file and the override that unsets it
    (``planner.tau=null``), from the ``settings`` of an :class:`~torchrl_reg.validation.UnreadValue`; ``""`` for any
    other error, or a value of the command line."""
    settings = getattr(error, "settings", None)
    if not settings:
        return ""
    try:
        sources = config_sources(config_dir, config_name, overrides).values
    except Exception:  # noqa: BLE001 -- the refusal stands without its note
        return ""
    notes = [
        f"{key} was set by {sources[key]}, add {key}={value} to the command line"
        for key, value in settings.items() if sources.get(key, "command line") != "command line"
    ]
    return f" ({'; '.join(notes)})" if notes else ""


def _leaf_keys(node: object, prefix: str = "") -> list[str]:
    """The dotted keys of a plain config's values (a list is one value)."""
    if not isinstance(node, dict):
        return [prefix.rstrip(".")]
    return [key for name, child in node.items() for key in _leaf_keys(child, f"{prefix}{name}.")]


def env_preset_id() -> str | None:
    """The gymnasium id the chosen ``env`` option names (the ``env.name`` its file, or a file its defaults
    list includes, sets), read under Hydra's command line from the recipe's config directories; ``None``
    elsewhere (``train(cfg)``: the chosen option is not recorded). A recipe's command line passes it to its loop
    (:class:`~torchrl_reg.run.recipe_run.RecipeRun`'s ``preset_id``: the preset line logged at the start)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    runtime = HydraConfig.get().runtime
    roots = [Path(source.path) for source in runtime.config_sources if source.schema == "file"]
    return _env_name_set_by(roots, f"env/{runtime.choices.get('env')}", package="env")


def _env_name_set_by(roots: list[Path], config_path: str, package: str) -> str | None:
    """The ``env.name`` the config ``config_path`` (first found under ``roots``, as Hydra searches) sets,
    itself or through the configs its defaults list names (``/protocol/dqn/minatar``); ``package``: where
    its keys go unless its header says ``@package _global_``."""
    path = next((root / f"{config_path}.yaml" for root in roots if (root / f"{config_path}.yaml").is_file()), None)
    if path is None:
        return None
    from omegaconf import OmegaConf

    node = OmegaConf.load(path)
    if "# @package _global_" in path.read_text().splitlines()[:1]:
        package = ""
    name = None
    for entry in node.get("defaults", []):  # merged before the file's own keys (_self_ last)
        if isinstance(entry, str) and entry != "_self_":  # absolute, or relative to the file's group
            target = entry[1:] if entry.startswith("/") else f"{config_path.rpartition('/')[0]}/{entry}".lstrip("/")
            name = _env_name_set_by(roots, target, package="") or name
    own = OmegaConf.select(node, "env.name" if package == "" else "name")
    return own if own is not None else name
