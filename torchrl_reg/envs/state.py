"""The state of a :func:`~torchrl_reg.envs.make.make_env` env as plain data, and back.

:func:`get_env_state` / :func:`set_env_state` save and restore every sub-env (physics, emulator, grids,
RNGs, wrapper counters) as tensors, numbers and tagged tuples (:mod:`torchrl_reg.plain_state`) that a
``torch.load(weights_only=True)`` checkpoint can hold: no pickle is ever written or read, and no class
path is stored (a layer is named by its class name only to check that the resumed run wraps its envs the
same way).
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
from torchrl.envs import EnvBase

from torchrl_reg.envs.cartpole import VectorCartPole
from torchrl_reg.plain_state import decode, encode, is_minatar_object, object_state, restore_attributes

__all__ = ["get_env_state", "layer_states", "load_layer_states", "set_env_state"]


def _vector_env(env: EnvBase) -> gym.vector.VectorEnv:
    base = env.base_env if hasattr(env, "base_env") else env
    return base._env


def _layers(env: gym.Env) -> list[gym.Env]:
    """The wrapper chain of ``env``, outermost first, down to the unwrapped env."""
    layers = [env]
    while isinstance(layers[-1], gym.Wrapper):
        layers.append(layers[-1].env)
    return layers


def layer_states(env: gym.Env) -> list[dict[str, Any]]:
    """Per layer: its class name, and its state (its own ``plain_state()``, else its plain attributes)."""
    states = []
    for layer in _layers(env):
        own = getattr(layer, "plain_state", None)
        state = own() if callable(own) else object_state(layer, skip=("env",), descend=is_minatar_object)
        states.append({"class": type(layer).__name__, "state": state})
    return states


def load_layer_states(env: gym.Env, states: list[dict[str, Any]], where: str) -> None:
    layers = _layers(env)
    saved = [s["class"] for s in states]
    built = [type(layer).__name__ for layer in layers]
    if saved != built:
        raise ValueError(f"{where}: the checkpoint holds an env wrapped as {saved}, this run builds {built}")
    for layer, state in zip(layers, states):
        own = getattr(layer, "load_plain_state", None)
        if callable(own):
            own(state["state"])
        else:
            restore_attributes(layer, state["state"], f"{where}.{type(layer).__name__}")


def get_env_state(env: EnvBase) -> dict[str, Any]:
    """State of every sub-env (physics, emulator, grids, RNGs, wrapper counters) of a :func:`make_env`
    env, as plain data (tensors, numbers, tagged tuples) that a weights-only checkpoint holds."""
    venv = _vector_env(env)
    if isinstance(venv, VectorCartPole):
        return {"kind": "VectorCartPole", "state": encode(venv.__getstate__())}
    if not isinstance(venv, gym.vector.SyncVectorEnv):
        # ale-py's vector env cannot save its emulators: the checkpoint says so, and set_env_state refuses it.
        return {"kind": type(venv).__name__}
    return {"kind": "SyncVectorEnv", "envs": [layer_states(sub) for sub in venv.envs]}


def set_env_state(env: EnvBase, state: dict[str, Any]) -> None:
    """Restore, in place, the sub-envs saved by :func:`get_env_state` into an env built the same way."""
    venv = _vector_env(env)
    kind = state.get("kind") if isinstance(state, dict) else None
    if kind == "DopamineAtariVectorEnv" or not isinstance(venv, (VectorCartPole, gym.vector.SyncVectorEnv)):
        raise ValueError(
            f"the checkpoint holds env state {kind!r} and this run steps {type(venv).__name__}: ale-py's Atari "
            "vector env (env.backend=vector) cannot save or restore its emulators, so a run on it cannot be "
            "resumed exactly; start a new run_dir (or train with env.backend=wrappers to resume exactly)"
        )
    if kind not in ("VectorCartPole", "SyncVectorEnv"):
        raise ValueError(f"not an env state written by get_env_state (kind={kind!r})")
    if (kind == "VectorCartPole") != isinstance(venv, VectorCartPole):
        raise ValueError(
            "checkpoint and run disagree on env.native_vector (one steps a numpy-vectorized "
            "CartPole, the other a SyncVectorEnv of gymnasium envs); resume with the checkpoint's setting"
        )
    if kind == "VectorCartPole":
        venv.load_state(decode(state["state"]))
        return
    if len(state["envs"]) != len(venv.envs):
        raise ValueError(f"checkpoint holds {len(state['envs'])} envs, this run has collector.num_envs={len(venv.envs)}")
    for i, (sub, layers) in enumerate(zip(venv.envs, state["envs"])):
        load_layer_states(sub, layers, f"env {i}")
