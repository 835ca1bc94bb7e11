"""Checks of an env's action space against what a loop family needs, and the number of discrete actions."""
from __future__ import annotations

from typing import Any

from torchrl.data import Bounded, Categorical, OneHot, TensorSpec
from torchrl.envs import EnvBase

from torchrl_reg.envs.make import make_env

__all__ = [
    "ACTION_SPACE_CHECKS", "action_spec_of", "check_action_space", "check_box_action_spec", "check_discrete_action_spec",
    "num_actions",
]


def check_discrete_action_spec(env: EnvBase) -> None:
    """Raise ``ValueError`` unless the env has one discrete (categorical or one-hot) action."""
    spec = env.action_spec_unbatched
    if not isinstance(spec, (Categorical, OneHot)):
        raise ValueError(
            f"this recipe needs a discrete action space (Categorical or OneHot spec), "
            f"got action_spec={type(spec).__name__} with shape {tuple(spec.shape)} and dtype {spec.dtype}"
        )


def check_box_action_spec(env: EnvBase) -> None:
    """Raise ``ValueError`` unless the env's action is a bounded box of floats (what a tanh policy maps onto)."""
    spec = env.action_spec_unbatched
    if not (isinstance(spec, Bounded) and spec.dtype.is_floating_point):
        raise ValueError(
            f"this recipe needs a Box action space (bounded, continuous: a Bounded float spec), "
            f"got action_spec={type(spec).__name__} with shape {tuple(spec.shape)} and dtype {spec.dtype}"
        )


#: What each loop family needs (the ``action_space`` of its config schema) and the check of it.
ACTION_SPACE_CHECKS = {"discrete": check_discrete_action_spec, "box": check_box_action_spec}


def check_action_space(cfg: Any, kind: str) -> None:
    """Build one copy of the env of ``cfg`` (an :class:`~torchrl_reg.configs.EnvConfig`) and raise
    ``ValueError`` naming ``env.name`` unless its action space is of ``kind`` (``"discrete"`` or ``"box"``):
    what a sweep checks for every task before it submits any (a run would otherwise fail only when it starts)."""
    env = make_env(cfg, num_envs=1)
    try:
        ACTION_SPACE_CHECKS[kind](env)
    except ValueError as err:
        raise ValueError(f"env.name={cfg.name!r}: {err}") from None
    finally:
        env.close()


_ACTION_SPECS: dict[str, TensorSpec] = {}


def action_spec_of(cfg: Any) -> TensorSpec:
    """The unbatched action spec of the env of ``cfg`` (an :class:`~torchrl_reg.configs.EnvConfig`), from one copy
    built and closed (once per env config in a process): for a config check that needs the action space (a
    target entropy against its largest value) before the run builds anything."""
    key = str(cfg)
    if key not in _ACTION_SPECS:
        env = make_env(cfg, num_envs=1)
        try:
            _ACTION_SPECS[key] = env.action_spec_unbatched.clone()
        finally:
            env.close()
    return _ACTION_SPECS[key]


def num_actions(env: EnvBase) -> int:
    """Number of discrete actions of ``env``."""
    spec = env.action_spec_unbatched
    return int(spec.n if isinstance(spec, Categorical) else spec.shape[-1])
