"""Parts shared by the continuous-control recipes (``recipes/iq.py``, ``recipes/sac.py``).

Their loop is the usual replay loop with :class:`~torchrl_reg.recipe_utils.run.RecipeRun`; what
differs from the Q-learning recipes is the action space (a Box), the evaluation policy (the
deterministic mode of a stochastic actor instead of an argmax) and Polyak-averaged targets.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from omegaconf import DictConfig
from tensordict import TensorDict, TensorDictBase
from torchrl.envs.utils import ExplorationType, set_exploration_type

from torchrl_reg.recipe_utils.config import check_choice, validate_recipe_config

__all__ = ["CONTROL_FAMILIES", "check_control_config", "deterministic_actor"]

#: Env families with Box actions (``classic`` for Pendulum-v1).
CONTROL_FAMILIES = ("classic", "mujoco")


def check_control_config(cfg: DictConfig) -> None:
    """The shared checks of :func:`validate_recipe_config` plus those of Polyak-averaged control recipes."""
    validate_recipe_config(cfg)
    check_choice("env.family", cfg.env.family, CONTROL_FAMILIES)
    check_choice("network.kind", cfg.network.kind, ("mlp",))
    if cfg.optim.target_update_interval != cfg.optim.frames_per_update:
        raise ValueError(
            "the target networks are Polyak-averaged after every update: optim.target_update_interval "
            f"must equal optim.frames_per_update={cfg.optim.frames_per_update}, "
            f"got optim.target_update_interval={cfg.optim.target_update_interval}"
        )


def deterministic_actor(policy: Callable[[TensorDictBase], TensorDictBase]) -> Callable[[torch.Tensor], torch.Tensor]:
    """Observation batch -> action batch of a TorchRL actor in its deterministic mode (for evaluation)."""

    @torch.no_grad()
    def act(obs: torch.Tensor) -> torch.Tensor:
        with set_exploration_type(ExplorationType.DETERMINISTIC):
            return policy(TensorDict({"observation": obs}, batch_size=obs.shape[:1]))["action"]

    return act
