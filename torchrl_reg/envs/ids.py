"""Which gymnasium id an ``EnvConfig`` names, per env family (cheap: registry look-ups, no env is built)."""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import gymnasium as gym

from torchrl_reg.validation import check_choice

__all__ = ["ENV_BACKENDS", "ENV_FAMILIES", "EXTRAS", "MINATAR_GAMES", "MissingExtra", "gym_env_id", "require_extra"]

#: The preprocessing families of :func:`torchrl_reg.envs.make.make_single_env` (``EnvConfig.family``).
ENV_FAMILIES = ("classic", "minatar", "atari", "mujoco")
#: Atari env backends (``EnvConfig.backend``): gymnasium wrappers per env, or ale-py's C++ vector env.
ENV_BACKENDS = ("wrappers", "vector")
MINATAR_GAMES = ("Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders")
#: The optional packages a config can ask for: an env family's simulator beyond gymnasium, a logger backend's package;
#: name -> (module imported, extra of pyproject.toml that installs it).
EXTRAS = {"minatar": ("minatar", "minatar"), "atari": ("ale_py", "atari"), "mujoco": ("mujoco", "mujoco"),
          "tensorboard": ("tensorboard", "tensorboard")}


class MissingExtra(ValueError):
    """An env family, a task or a logger whose package is not installed: the message names the extra that installs it."""


def require_extra(name: str, what: str) -> ModuleType:
    """The module of the optional package ``name`` (:data:`EXTRAS`: an env family's simulator, a logger's package),
    imported; :class:`MissingExtra` naming the extra to install when it is absent (``what``: who needs it, e.g.
    ``env.family='atari'``), in one line, before anything is built or written."""
    module, extra = EXTRAS[name]
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtra(
            f"{what} needs the {module} package, which is not installed here ({type(err).__name__}: {err}); install "
            f"the {extra} extra: pip install -e \".[{extra}]\" in a checkout (pip install \"torchrl_reg[{extra}]\" "
            "otherwise)"
        ) from None


def _minatar_id(name: str) -> str:
    game = name.split("/")[-1].split("-")[0]
    matches = [g for g in MINATAR_GAMES if g.lower() == game.replace("_", "").lower()]
    if not matches:
        raise ValueError(f"env.name must name a MinAtar game, one of {list(MINATAR_GAMES)}, got env.name={name!r}")
    return f"MinAtar/{matches[0]}-v0"


def _atari_id(name: str) -> str:
    gym.register_envs(require_extra("atari", "env.family='atari'"))
    env_id = name if name.startswith("ALE/") else f"ALE/{name}-v5"
    if env_id not in gym.registry:
        games = sorted(k[4:-3] for k in gym.registry if k.startswith("ALE/") and k.endswith("-v5"))
        raise ValueError(
            f"env.name must be an ALE game such as 'Pong' or 'ALE/Pong-v5', got env.name={name!r}; "
            f"valid games: {games}"
        )
    return env_id


def gym_env_id(cfg: Any) -> str:
    """The registered gymnasium id that ``cfg`` (an ``EnvConfig``) names; ``ValueError`` naming the
    value and what is accepted when there is none. Cheap (registry look-ups, no env is built), so
    that a sweep can check every task's env before it submits anything."""
    check_choice("env.family", cfg.family, ENV_FAMILIES)
    if cfg.family == "minatar":
        env_id = _minatar_id(cfg.name)
        require_extra("minatar", "env.family='minatar'")
        if env_id not in gym.registry:
            import minatar.gym

            minatar.gym.register_envs()
        return env_id
    if cfg.family == "atari":
        return _atari_id(cfg.name)
    if cfg.family == "mujoco":
        require_extra("mujoco", "env.family='mujoco'")
    if cfg.name not in gym.registry:
        raise ValueError(f"env.name must be a registered gymnasium id such as 'CartPole-v1', got env.name={cfg.name!r}")
    return cfg.name
