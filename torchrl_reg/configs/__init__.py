"""Recipe configs in one place: schemas, their checks, their Hydra composition and key docs.

BenchMARL-style: each config group (``env``, ``collector``, ``buffer``, ``optim``, ``logger``) has a dataclass
schema; a recipe defines its own loss dataclass and a top-level dataclass that inherits the schema of its
loop's family (:func:`recipe_schema`), registered in Hydra's ConfigStore.

* :mod:`~torchrl_reg.configs.schemas`: the dataclasses (:class:`RunConfig`, the base of :class:`PlanningConfig` and
  :class:`RecipeConfig`, :class:`ValueBasedConfig`, :class:`ActorCriticConfig`, the groups, the loss configs' bases) and :func:`default_of` / :func:`arguments_of`,
  which tie a loss config's fields to the loss class's arguments;
* :mod:`~torchrl_reg.configs.checks`: :func:`check_config` (schema, ranges, closed and conditionally read keys),
  run before anything is built;
* :mod:`~torchrl_reg.configs.compose`: :func:`recipe_schema`, :func:`register_schema`, :func:`compose_config`
  and where a recipe's config files are (:func:`recipe_config_path`: ``recipes/conf/<name>/``, its own groups,
  the shared groups of ``recipes/conf/`` and the env set its primary config names on Hydra's search path);
* :mod:`~torchrl_reg.configs.key_docs`: what each key sets, the ``#:`` comment above its field (a recipe's
  ``--help``; autodoc reads the same comment).

Our losses in TorchRL's own trainer configs are :mod:`torchrl_reg.trainer_configs`, kept apart: importing it
registers TorchRL's config groups in Hydra's global ConfigStore, where they shadow the recipes' groups of the
same names, and its ``_target_`` paths are written into users' trainer YAML files.
"""
from __future__ import annotations

from torchrl_reg.configs.checks import check_config, check_loss_config, structured
from torchrl_reg.configs.compose import (
    compose_config,
    config_sources,
    preset_overrides,
    recipe_config_path,
    recipe_schema,
    register_schema,
    with_search_path,
)
from torchrl_reg.configs.key_docs import config_help, key_docs
from torchrl_reg.configs.schemas import (
    ActorCriticConfig,
    ActorCriticLossConfig,
    BoltzmannValueBasedConfig,
    BufferConfig,
    CollectorConfig,
    EnvConfig,
    GaussianPolicyConfig,
    PlanningConfig,
    RecipeConfig,
    RunConfig,
    ValueBasedConfig,
    ValueBasedLossConfig,
    arguments_of,
    default_of,
)

__all__ = [
    "ActorCriticConfig",
    "ActorCriticLossConfig",
    "BoltzmannValueBasedConfig",
    "BufferConfig",
    "CollectorConfig",
    "EnvConfig",
    "GaussianPolicyConfig",
    "PlanningConfig",
    "RecipeConfig",
    "RunConfig",
    "ValueBasedConfig",
    "ValueBasedLossConfig",
    "arguments_of",
    "check_config",
    "check_loss_config",
    "compose_config",
    "config_help",
    "config_sources",
    "preset_overrides",
    "default_of",
    "key_docs",
    "recipe_config_path",
    "recipe_schema",
    "register_schema",
    "structured",
    "with_search_path",
]
