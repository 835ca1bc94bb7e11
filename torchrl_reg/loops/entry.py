"""A recipe's three entry points, ``validate(cfg)``, ``train(cfg)`` and the command line, built from its schema.

Every recipe ends the same way: ``validate`` runs every check before anything is built or written (the
generic steps for every recipe, from its schema and the registry entry of ``cfg.loss.name``, then the
recipe's own rules across groups), ``train`` validates and runs the loop of the config's family
(:data:`LOOPS`, by the schema's ``family``: :class:`~torchrl_reg.configs.ValueBasedConfig` -> the
value-based loop, :class:`~torchrl_reg.configs.ActorCriticConfig` -> the actor-critic loop), which builds
the loss named ``cfg.loss.name``; the command line composes ``recipes/conf/<name>/<name>.yaml`` with Hydra
(the shared groups of ``recipes/conf/`` on its search path: :func:`~torchrl_reg.configs.recipe_config_path`),
trains, logs the summary line and exits with :data:`~torchrl_reg.run.stop.EXIT_INTERRUPTED` (75) after a
stop. :func:`recipe_entry` builds the three, so a recipe declares only what is its own::

    validate, train, main = recipe_entry("m_dqn", MDQNConfig, check_soft_dqn)

    if __name__ == "__main__":
        main()
"""
from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import hydra
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from torchrl_reg.configs import (
    check_config,
    compose_config,
    config_help,
    config_sources,
    preset_overrides,
    recipe_config_path,
    with_search_path,
)
from torchrl_reg.cli import shown
from torchrl_reg.configs.compose import env_preset_id
from torchrl_reg.loops import actor_critic, planning, value_based
from torchrl_reg.loops.registry import BUILDERS, check_update_mode, get_loss, offered_losses
from torchrl_reg.run import exit_if_interrupted, report_summary
from torchrl_reg.run.files import DiskFullError, FileRefused
from torchrl_reg.run.rundir import ResumeRefused, RunDirLocked, StorageRefused, check_run_dir, job_log
from torchrl_reg.validation import check_choice, closest

__all__ = ["EXIT_FAILED", "EXIT_REFUSED", "JOB_LOGGING", "LOOPS", "RUN_REFUSALS", "misspelled_key_hint", "override_refusal", "recipe_entry", "train_loop"]

#: Loop family (a config schema's ``family``, a loss's registry family) -> its loop. The planning loop
#: trains nothing and builds no loss: it has no family in the loss registry.
LOOPS: dict[str, Callable[[DictConfig], dict[str, Any]]] = {
    value_based.FAMILY: value_based.train,
    actor_critic.FAMILY: actor_critic.train,
    "planning": planning.plan,
}


def train_loop(cfg: DictConfig) -> Callable[[DictConfig], dict[str, Any]]:
    """The loop of a validated config's family: its schema's ``family`` (a ``ValueError`` names the
    schema when it has none, e.g. a config that was not validated against a recipe's schema)."""
    schema = OmegaConf.get_type(cfg)
    family = getattr(schema, "family", None)
    if family not in LOOPS:
        raise ValueError(
            f"the config's schema {getattr(schema, '__name__', schema)} names no training loop (family={family!r}; "
            f"the loops are {sorted(LOOPS)}): validate it against a recipe's schema (e.g. a ValueBasedConfig)"
        )
    return LOOPS[family]


def recipe_entry(
    name: str,
    schema: type | tuple[type, ...],
    rules: Callable[[DictConfig], None] | None = None,
) -> tuple[Callable[[DictConfig | dict], DictConfig], Callable[[DictConfig | dict], dict[str, Any]], Callable[[], None]]:
    """``(validate, train, main)`` of the recipe ``recipes/<name>.py``, the module that calls it.

    Args:
        name: the recipe's name, its Hydra config ``conf/<name>/<name>.yaml`` (or ``conf/<name>.yaml``) beside
            the recipe file.
        schema: the recipe's config schema (its ``family`` picks the loop: :func:`train_loop`), or several, one
            per family (VIREL's Box and discrete configs): the one whose family has the config's ``loss.name``
            among the recipe's losses (the first when the config names none).
        rules: the recipe's own checks, ``rules(cfg)`` raising ``ValueError`` on a typed, checked config: only
            the rules across groups or keys that no loss class owns (e.g. Soft-DQN's ``alpha = 0``).

    ``validate(cfg)`` takes a composed config or a plain dict and returns it typed and checked, before anything
    is built or written; a training family runs, in this order: :func:`~torchrl_reg.configs.check_config`
    (schema, the family's ranges, ``loss.name`` among the losses this module registered,
    :func:`~torchrl_reg.loops.offered_losses`, keys the chosen loss ignores), the entry's loss argument checks
    (:meth:`~torchrl_reg.loops.LossEntry.check_config`), :func:`~torchrl_reg.loops.check_update_mode`
    (``cuda_graph=true`` needs a fused update), then ``rules``. A family without losses (planning) runs
    :func:`~torchrl_reg.configs.check_config` (schema, the family's checks, keys its settings leave unread), then
    ``rules``. ``train(cfg)`` validates and returns the final
    metrics (also written to ``<run_dir>/metrics.json``); ``main()`` is the recipe's ``@hydra.main``, which composes
    and validates the command line's config before Hydra makes a directory (a single run: no flag, no multirun): a
    refused one prints one line (:func:`override_refusal` for what Hydra refuses) and exits with :data:`EXIT_REFUSED`,
    writing nothing; then the run directory's refusals (:func:`~torchrl_reg.run.rundir.check_run_dir`: a resume with
    another config, a live run, files no run wrote, a link), each one line, exit :data:`EXIT_REFUSED`, every file as it
    was. Hydra writes nothing into the run directory (``hydra.output_subdir=null``, a job logging of its console only:
    :data:`JOB_LOGGING`); the run writes its job log ``<name>.log`` itself once the directory is accepted and locked
    (:func:`~torchrl_reg.run.rundir.job_log`). ``run_dir=X`` makes ``X`` Hydra's run directory too.
    """
    module = sys._getframe(1).f_globals["__name__"]
    schemas = schema if isinstance(schema, tuple) else (schema,)
    conf = Path(sys.modules[module].__file__).parent / "conf"
    primary, shared = recipe_config_path(conf, name)

    def accepted(family: str) -> list[str]:
        return offered_losses(module, family)

    def schema_of(cfg: Any, names: list[str]) -> type:
        """The schema whose family has the config's ``loss.name`` (the first when it names none); a name that
        no schema's family has is refused here, listing the recipe's losses."""
        loss = cfg.get("loss") if isinstance(cfg, (Mapping, DictConfig)) else None
        given = loss.get("name") if isinstance(loss, (Mapping, DictConfig)) else None
        if given is None or len(schemas) == 1:
            return schemas[0]
        check_choice("loss.name", given, names)
        return next(s for s in schemas if given in accepted(s.family))

    def validate(cfg: DictConfig | dict) -> DictConfig:
        names = [n for s in schemas if s.family in BUILDERS for n in accepted(s.family)]
        chosen = schema_of(cfg, names)
        if chosen.family in BUILDERS:
            cfg = check_config(cfg, chosen, loss_names=names)
            get_loss(cfg.loss.name, chosen.family).check_config(cfg)
            check_update_mode(cfg, chosen.family)
        else:
            cfg = check_config(cfg, chosen)
        if rules is not None:
            rules(cfg)
        return cfg

    validate.__module__ = module
    validate.__doc__ = (
        f"Check a {name} config before anything is built or written; returns it typed "
        "(:func:`~torchrl_reg.loops.recipe_entry`: schema, ranges, the loss's argument checks, update mode"
        + (f", then :func:`{rules.__name__}`)." if rules is not None else ").")
    )

    def train(cfg: DictConfig | dict) -> dict[str, Any]:
        cfg = validate(cfg)
        return train_loop(cfg)(cfg)

    train.__module__ = module
    train.__doc__ = f"Train one {name} agent; returns the final metrics (also written to ``<run_dir>/metrics.json``)."

    def run_command_line(cfg: DictConfig) -> None:
        try:
            cfg = validate(cfg)
        except (ValueError, FileNotFoundError) as err:  # a refused config: its one-line reason, no traceback
            _refuse(f"{name}: config refused: {err}")
        # the env option chosen on the command line, which only Hydra's runtime knows: named in the preset line
        launch = {"preset_id": env_preset_id()} if "env" in cfg else {}
        try:
            with job_log(name):  # <run_dir>/<name>.log, opened once the run directory is accepted and locked
                metrics = train_loop(cfg)(cfg, **launch)
                report_summary(metrics)
        except RUN_REFUSALS as err:  # refused by the run directory (checked again under its lock): nothing written
            _refuse(f"{name}: run refused: {err}")
        except DiskFullError as err:  # the file it names is as it was
            _refuse(f"{name}: {err.strerror}", EXIT_FAILED)
        exit_if_interrupted(metrics)  # exit status 75 after a stop: the run is not finished

    # Hydra names the job (the run's <name>.log) after the module or file of the function it runs, unwrapped:
    # a class of the recipe's module stands for it, as a @hydra.main in the recipe file would.
    run_command_line.__wrapped__ = type(name, (), {"__module__": module})  # type: ignore[attr-defined]
    hydra_main = hydra.main(config_path=str(primary), config_name=name, version_base=None)(run_command_line)

    def checked_command_line(overrides: list[str]) -> DictConfig:
        """The validated config of the command line's ``overrides``; a refused one (a misspelled key or option,
        a value out of range) exits with :data:`EXIT_REFUSED`, its reason on one line."""
        try:
            cfg = validate(compose_config(conf, name, overrides))
        except HydraException as err:  # a key or option the config does not have, or an override Hydra cannot read
            _refuse(override_refusal(conf, name, overrides, err))
        except (ValueError, FileNotFoundError) as err:
            # a preset's value the choice does not read: its file and the override that unsets it
            _refuse(f"{name}: config refused: {err}{preset_overrides(conf, name, overrides, err)}")
        # The run directory's refusals (a resume with another config, a live run, files no run wrote, a link), decided
        # before Hydra starts: a refused command leaves every file of the directory as it was.
        try:
            with job_log(name):
                check_run_dir(cfg, cfg.run_dir if cfg.run_dir is not None else _literal_run_dir(overrides))
        except RUN_REFUSALS as err:
            _refuse(f"{name}: run refused: {err}")
        return cfg

    def main() -> None:
        if "--help" in sys.argv[1:]:
            print(recipe_help(conf, name, sys.argv[1:]))
            return
        # The shared groups' directory on Hydra's search path, as one more override: next to the others
        # (Hydra's parser refuses overrides split by a flag, ``x=1 --cfg job y=2``), or first when there
        # are none (after a flag such as --info it would be read as the flag's value).
        given = [arg for arg in sys.argv[1:] if arg.startswith("hydra.searchpath=")]
        rest = [arg for arg in sys.argv[1:] if arg not in given]
        first = next((i for i, arg in enumerate(rest) if not arg.startswith("-") and ("=" in arg or arg.startswith("~"))), 0)
        sys.argv[1:] = [*rest[:first], *with_search_path(shared, given), *_no_hydra_writes(rest), *rest[first:]]
        if not any(arg.startswith("-") or arg.startswith("hydra.mode=") for arg in rest):
            # One run (no flag, no multirun): its config is composed and checked before Hydra makes the run
            # directory, so that a refused one leaves nothing on disk and says why in one line.
            cfg = checked_command_line([*given, *rest])
            if cfg.run_dir is not None and not any(arg.startswith("hydra.run.dir=") for arg in rest):
                sys.argv.append("hydra.run.dir=${run_dir}")  # Hydra makes no directory of its own
        try:
            hydra_main()
        except SystemExit as stop:
            if stop.code == 1:  # Hydra's own refusal (printed): a misspelled key gets its closest key
                hint = misspelled_key_hint(conf, name, sys.argv[1:])
                if hint:
                    print(hint, file=sys.stderr)
            raise

    return validate, train, main


#: Exit status of a command line whose config ``validate`` refused (nothing was built or written), or whose run
#: directory refused the run (:data:`RUN_REFUSALS`: every file of it as it was).
EXIT_REFUSED = 2
#: Exit status of a command line that failed as it wrote (a full disk: :class:`~torchrl_reg.run.files.DiskFullError`).
EXIT_FAILED = 1
#: What a run directory refuses, each said in one line: a resume with another config, an earlier run's results or
#: files no run wrote (:class:`~torchrl_reg.run.rundir.ResumeRefused`), a live run
#: (:class:`~torchrl_reg.run.rundir.RunDirLocked`), a link, a special file or a file of several links
#: (:class:`~torchrl_reg.run.files.FileRefused`).
RUN_REFUSALS = (ResumeRefused, RunDirLocked, FileRefused, StorageRefused)

#: Hydra's job logging as its default writes it to the console, without the file handler (``<job>.log`` by path, in the
#: run directory, before any check): the run writes its own job log (:func:`~torchrl_reg.run.rundir.job_log`).
JOB_LOGGING = "torchrl_reg_console"


def _register_job_logging() -> None:
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(group="hydra/job_logging", name=JOB_LOGGING, node={
        "version": 1,
        "formatters": {"simple": {"format": "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "simple", "stream": "ext://sys.stdout"}},
        "root": {"level": "INFO", "handlers": ["console"]},
        "disable_existing_loggers": False,
    })


_register_job_logging()


def _no_hydra_writes(argv: list[str]) -> list[str]:
    """The overrides that keep Hydra from writing into the run directory: no ``.hydra/`` copies of the config
    (``hydra.output_subdir=null``: the run writes its resolved ``config.yaml`` itself, once accepted) and no job log of
    its own (:data:`JOB_LOGGING`); each left out where the command line sets it."""
    out = []
    if not any(arg.startswith(("hydra.output_subdir=", "++hydra.output_subdir=")) for arg in argv):
        out.append("hydra.output_subdir=null")
    if not any(arg.startswith("hydra/job_logging=") for arg in argv):
        out.append(f"hydra/job_logging={JOB_LOGGING}")
    return out


def _literal_run_dir(overrides: list[str]) -> str | None:
    """The directory of a ``hydra.run.dir=X`` override without interpolation (Hydra's run directory, known before
    Hydra starts), else ``None``."""
    given = [arg.split("=", 1)[1] for arg in overrides if arg.startswith("hydra.run.dir=")]
    return given[-1] if given and "${" not in given[-1] else None


def _refuse(reason: str, status: int = EXIT_REFUSED) -> None:
    """Print ``reason`` as one line on stderr (a newline, a control or bidi character escaped: the reason may quote a
    file or a directory's names) and exit with ``status``."""
    print(shown(" ".join(reason.split("\n")), MESSAGE_CHARS), file=sys.stderr)
    sys.exit(status)
#: The most characters of a refusal printed (what was typed is echoed in it; a 100 KB override is not echoed whole).
MESSAGE_CHARS = 2000


def override_refusal(conf: Path, name: str, argv: list[str], error: Exception) -> str:
    """The one line saying why Hydra refused the command line ``argv`` (``error``, raised composing recipe ``name``'s
    config): an option its group does not have, with the closest option and the group's options; a key the config
    does not have, with the closest key and the keys beside it (:func:`misspelled_key_hint`); else Hydra's reason
    (and its cause's first line) on one line."""
    from hydra.errors import MissingConfigException

    if isinstance(error, MissingConfigException) and error.options and error.missing_cfg_file:
        group, _, option = error.missing_cfg_file.rpartition("/")
        options = sorted(error.options)
        guess = closest(option, options)
        return (f"{name}: {group}={option} is not an option of {group}"
                + (f"; did you mean `{group}={guess}`?" if guess else "") + f" ({group} has: {', '.join(options)})")
    unknown = re.match(r"Could not override '([^']+)'", str(error))
    hint = misspelled_key_hint(conf, name, argv, unknown.group(1)) if unknown else None
    if hint:
        return hint
    lines = [line.strip() for line in str(error).splitlines() if line.strip() and not line.startswith("See https://")]
    if error.__cause__ is not None and str(error.__cause__).strip():
        lines.append(str(error.__cause__).strip().splitlines()[0])
    return f"{name}: config refused: {'; '.join(lines)}"


def misspelled_key_hint(conf: Path, name: str, argv: list[str], key: str | None = None) -> str | None:
    """``planner.simulation is not a config key; did you mean `planner.simulations`?`` when an override of ``argv``
    (or ``key``, the one Hydra named) sets a key the recipe's config does not have (Hydra refuses it and suggests
    ``+planner.simulation=...``, which the schema would refuse too): the config key closest to it, if any, and the
    keys beside it; ``None`` when every key exists or there is no config to compare with."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    overrides = [arg for arg in argv if "=" in arg and not arg.startswith(("-", "+", "~", "hydra."))]
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception:  # noqa: BLE001 -- an override Hydra cannot read: its own message stands
        return None
    # The group choices (undotted overrides but the unknown key), else the primary config's own choices.
    groups = [o.input_line for o in parsed if "." not in o.key_or_group and o.key_or_group != key]
    cfg = None
    for tried in (groups, []):
        try:
            cfg = compose_config(conf, name, tried)
            break
        except Exception:  # noqa: BLE001 -- a refused choice: try the defaults
            continue
    if cfg is None:
        return None
    keys = list(dict.fromkeys([*cfg.keys(), *_leaf_keys(cfg)]))  # the groups and top-level keys, then the leaves
    for wrong in [key] if key is not None else [o.key_or_group for o in parsed if "." in o.key_or_group]:
        if wrong in keys:
            continue
        parent = wrong.rpartition(".")[0]
        beside = [k.rpartition(".")[2] for k in keys if k.rpartition(".")[0] == parent]
        guess = closest(wrong, keys)
        return (f"{name}: {wrong} is not a config key" + (f"; did you mean `{guess}`?" if guess else "")
                + (f" ({parent or 'the config'} has: {', '.join(beside)})" if beside else ""))
    return None


def _leaf_keys(cfg: DictConfig, prefix: str = "") -> list[str]:
    """The dotted keys of ``cfg``'s values."""
    keys = []
    for key in cfg:
        child = cfg._get_node(key)
        keys += _leaf_keys(child, f"{prefix}{key}.") if isinstance(child, DictConfig) else [f"{prefix}{key}"]
    return keys


def recipe_help(conf: Path, name: str, argv: list[str]) -> str:
    """``--help``: the recipe's help text (``hydra.help.template`` of its primary config), its config groups
    with their options (``*``: the one in use), and each key of the config composed with the other
    arguments, ``key=value  what it sets  [where the value came from]``: the config file (relative to
    ``conf``), ``command line`` or ``schema default`` (:func:`~torchrl_reg.configs.config_sources`)."""
    overrides = [arg for arg in argv if arg != "--help"]
    primary, _ = recipe_config_path(conf, name)
    header = OmegaConf.load(primary / f"{name}.yaml").hydra.help.template.split("== Config ==")[0].rstrip()
    cfg = compose_config(conf, name, overrides)
    sources = config_sources(conf, name, overrides)
    groups = [
        f"{group}: " + ", ".join(option + "*" * (option == picked) for option in options)
        for group, (picked, options) in sources.groups.items()
    ]
    return "\n".join([
        header,
        "",
        "== Groups (group=option; * the option in use) ==",
        *groups,
        "",
        "== Keys (key=value  what it sets  [the file under recipes/conf/ that set it, command line, or schema default]) ==",
        *config_help(cfg, sources.values),
    ])
