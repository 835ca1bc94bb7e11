"""Recipe configs in Hydra: schemas registered in the ConfigStore, the options of the shared groups each recipe
accepts, and composing a recipe's config without running it."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import field, make_dataclass
from pathlib import Path

from omegaconf import DictConfig, open_dict

from torchrl_reg.configs.schemas import ActorCriticConfig, ActorCriticLossConfig, ValueBasedConfig, ValueBasedLossConfig
from torchrl_reg.validation import check_choice

__all__ = ["check_group_choice", "compose_config", "recipe_schema", "register_group_choices", "register_schema"]

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


#: config name -> {group: the options of that shared config group the recipe accepts}, filled by
#: :func:`register_group_choices` (each recipe's ``recipe_entry``) and checked by :func:`compose_config`.
_GROUP_CHOICES: dict[str, dict[str, tuple[str, ...]]] = {}


def register_group_choices(config_name: str, group: str, choices: Iterable[str]) -> None:
    """Declare the options of the shared config ``group`` that the recipe config ``config_name`` accepts
    (``recipe_entry(..., losses=...)`` does it for the ``loss`` group): :func:`compose_config` then
    refuses any other, as the recipe's command line does."""
    _GROUP_CHOICES.setdefault(config_name, {})[group] = tuple(choices)


def compose_config(config_dir: str | Path, config_name: str, overrides: Iterable[str] = ()) -> DictConfig:
    """Compose a recipe config without running it (tests, notebooks); the recipe must be imported
    (its schema registered).

    The recipes share ``recipes/conf/loss/``, so Hydra composes another recipe's option too
    (``loss=iq`` on m_dqn would keep M-DQN with IQ's ``alpha: 0.0``, a silently different method):
    an option outside those the recipe declared (:func:`register_group_choices`) raises ``ValueError``
    naming the option and the accepted ones, as the command line does.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    overrides = list(overrides)
    groups = _GROUP_CHOICES.get(config_name, {})
    # An option named on the command line is checked before composing: another recipe's file may set
    # keys this schema lacks (loss=soft_q on virel), which Hydra would report as a key error instead.
    for override in overrides:
        key, sep, value = override.partition("=")
        if sep and key in groups:
            check_choice(key, value, groups[key])
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(Path(config_dir).resolve()), version_base=None):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    picked = cfg.hydra.runtime.choices
    for group, accepted in groups.items():
        choice = picked.get(group)
        if choice is not None:
            check_choice(group, choice, accepted)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def check_group_choice(group: str, choices: Iterable[str]) -> None:
    """In a Hydra run, raise ``ValueError`` unless the option picked for config ``group`` is one of
    ``choices``. The recipes share ``recipes/conf/<group>/``, so Hydra composes any recipe's option;
    one without a ``name`` key (``loss=iq`` on m_dqn) would silently keep the recipe's default loss
    with the other recipe's values. Call it from the recipe's ``@hydra.main``, before training."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        choice = HydraConfig.get().runtime.choices.get(group)
        if choice is not None:
            check_choice(group, choice, choices)
