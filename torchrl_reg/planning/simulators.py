"""Simulators a tree search can rewind: a small save/restore protocol and its adapters.

A search restores the root state at the start of every simulation, so a simulator must give back
its *whole* state (including the random stream where there is one: a restored MinAtar or ALE
state replays the same future for the same actions, i.e. the search plans in the determinized
model drawn at the root).

Adapters:

* :class:`DChain` - the D-chain of Painter et al. (NeurIPS 2023, arXiv:2404.07732, Sec. 5):
  states 0..D-1; ``down`` at state i pays ``(D - i - 1) / D`` and ends, ``right`` moves on and
  at the last state pays ``R_f`` and ends.
* :class:`SyntheticTree` - the synthetic k-ary tree of Xiao et al. (Maximum Entropy Monte-Carlo
  Planning, NeurIPS 2019, Sec. 5): random edge rewards, leaves with a random value observed
  with Gaussian noise.
* :class:`ChanceTree` - a synthetic tree with a chance node after every action: each (node, action) leads to
  one of ``outcomes`` children with known probabilities (the stochastic test problem of the exact checks).
* :class:`FrozenLakeSimulator` - gymnasium ``FrozenLake-v1`` (the agent's cell is its state).
* :class:`MinAtarSimulator` - a ``minatar.Environment`` (a deep copy of the game and its RNG).
* :class:`ALESimulator` - an ALE emulator (``cloneState`` / ``restoreState``, sticky actions applied
  per frame in Python, their stream and the action applied last in the saved state).
"""
from __future__ import annotations

import copy
import math
import random
from collections.abc import Hashable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from torchrl_reg.plain_state import decode, encode, is_minatar_object, object_state, restore_attributes
from torchrl_reg.validation import check_range

__all__ = [
    "Simulator",
    "check_simulator",
    "as_simulator",
    "DChain",
    "SyntheticTree",
    "ChanceTree",
    "FrozenLakeSimulator",
    "check_frozenlake_env",
    "MinAtarSimulator",
    "ALESimulator",
]


@runtime_checkable
class Simulator(Protocol):
    """What the search needs from an environment model.

    ``num_actions``: size of the discrete action set. ``deterministic``: whether one (state,
    action) always leads to one next state; when False the search keys chance outcomes by
    :meth:`state_key`. ``step`` returns ``(reward, done)``.
    """

    num_actions: int
    deterministic: bool

    def save(self) -> Any: ...

    def restore(self, state: Any) -> None: ...

    def step(self, action: int) -> tuple[float, bool]: ...

    def observation(self) -> np.ndarray: ...

    def state_key(self) -> Hashable: ...


_REQUIRED = ("save", "restore", "step", "observation", "state_key")


def check_simulator(sim: Any) -> Any:
    """Raise a ``TypeError`` naming what is missing unless ``sim`` follows :class:`Simulator`."""
    missing = [name for name in _REQUIRED if not callable(getattr(sim, name, None))]
    if missing:
        label = getattr(getattr(sim, "spec", None), "id", None) or type(sim).__name__
        raise TypeError(
            f"{label} cannot be searched: it has no {', '.join(missing)}; a tree search "
            "needs an environment whose state can be saved and restored. Wrap it in one of "
            "DChain, SyntheticTree, FrozenLakeSimulator, MinAtarSimulator, ALESimulator "
            "(as_simulator does this for FrozenLake, MinAtar and ALE envs)"
        )
    n = getattr(sim, "num_actions", None)
    if not isinstance(n, int) or n < 1:
        raise TypeError(f"{type(sim).__name__}.num_actions must be an int >= 1, got {n!r}")
    _check_round_trip(sim, n)
    return sim


def _check_round_trip(sim: Any, num_actions: int) -> None:
    """Step each action from the current state and restore it: a ``restore`` that does not rewind is refused.

    The search restores the root before every simulation; a restore that does nothing would plan
    from wherever the last simulation ended. An action that leaves the state key unchanged (a wall
    in FrozenLake) cannot tell, so each action is tried until one moves the state.
    """
    saved = sim.save()
    key = sim.state_key()
    for action in range(num_actions):
        sim.step(action)
        moved = sim.state_key() != key
        sim.restore(saved)
        if sim.state_key() != key:
            raise TypeError(
                f"{type(sim).__name__}.restore does not rewind: after save(), step({action}) and restore() the state "
                "differs from the saved one; a tree search restores the root before every simulation"
            )
        if moved:
            return


def as_simulator(env: Any) -> Simulator:
    """The adapter for ``env``: a Simulator as is, FrozenLake (gymnasium), MinAtar, or ALE; else ``TypeError``."""
    if all(callable(getattr(env, name, None)) for name in _REQUIRED):
        return check_simulator(env)
    unwrapped = getattr(env, "unwrapped", env)
    name = type(unwrapped).__name__
    if name == "FrozenLakeEnv":
        return FrozenLakeSimulator(env)
    if hasattr(unwrapped, "game") or type(unwrapped).__module__.startswith("minatar"):
        return MinAtarSimulator(env)
    if hasattr(unwrapped, "ale"):
        return ALESimulator(unwrapped.ale)
    if name == "ALEInterface":
        return ALESimulator(env)
    return check_simulator(env)


class DChain:
    """D-chain of Painter et al. (NeurIPS 2023, arXiv:2404.07732, Sec. 5); actions ``DOWN = 0``, ``RIGHT = 1``.

    From state ``i`` (``0 <= i < D``), ``down`` pays ``(D - i - 1) / D`` and ends the episode;
    ``right`` pays 0 and moves to ``i + 1``, except at ``D - 1`` where it pays ``final_reward``
    and ends. The best return is ``max((D - 1) / D, final_reward)``.
    """

    DOWN = 0
    RIGHT = 1
    num_actions = 2
    deterministic = True

    def __init__(self, length: int = 10, final_reward: float = 1.0):
        if not isinstance(length, int) or length < 2:
            raise ValueError(f"length must be an int >= 2, got length={length!r}")
        self.length = length
        self.final_reward = check_range("final_reward", final_reward)  # NaN or inf: no return, no optimum
        self.state = 0
        self.done = False

    def reset(self) -> None:
        self.state, self.done = 0, False

    def save(self) -> tuple[int, bool]:
        return self.state, self.done

    def restore(self, state: tuple[int, bool]) -> None:
        self.state, self.done = state

    def plain_state(self) -> dict[str, Any]:
        """The env's whole state as plain data (a checkpoint's: :mod:`torchrl_reg.plain_state`), restored by
        :meth:`load_plain_state` into a chain built the same way."""
        return {"state": self.state, "done": self.done}

    def load_plain_state(self, state: dict[str, Any]) -> None:
        position = state["state"]
        if not (type(position) is int and 0 <= position < self.length):
            raise ValueError(f"a D-chain of length {self.length} has no state {position!r}")
        self.state, self.done = position, bool(state["done"])

    def step(self, action: int) -> tuple[float, bool]:
        if self.done:
            raise RuntimeError("DChain.step after the episode ended; restore or reset first")
        d, i = self.length, self.state
        if action == self.DOWN:
            self.done = True
            return (d - i - 1) / d, True
        if action != self.RIGHT:
            raise ValueError(f"DChain actions are 0 (down) and 1 (right), got action={action!r}")
        if i == d - 1:
            self.done = True
            return self.final_reward, True
        self.state = i + 1
        return 0.0, False

    def observation(self) -> np.ndarray:
        return np.array([self.state], dtype=np.int64)

    def state_key(self) -> Hashable:
        return self.state, self.done


class SyntheticTree:
    """Synthetic k-ary tree of depth ``depth`` (Xiao et al., NeurIPS 2019, Sec. 5: synthetic tree).

    Node ids number the complete tree breadth first (root 0, the children of ``i`` are
    ``k i + 1 .. k i + k``). Every edge into node ``j`` pays ``edge_reward[j]``, drawn uniformly
    from ``[0, 1 / depth)`` (a path's return is the mean of its edge values, in ``[0, 1)``, as in the
    paper); stepping into a leaf also pays the leaf's value ``leaf_value[l]`` (uniform in
    ``[0, leaf_scale)``) plus Gaussian evaluation noise of standard deviation ``noise_std``, then the
    episode ends. Exact soft and Bellman values are in :mod:`torchrl_reg.planning.exact`.
    """

    deterministic = True
    max_nodes = 50_000_000

    def __init__(self, branching: int, depth: int, *, seed: int = 0, noise_std: float = 0.1, leaf_scale: float = 1.0):
        if not isinstance(branching, int) or branching < 2:
            raise ValueError(f"branching must be an int >= 2, got branching={branching!r}")
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be an int >= 1, got depth={depth!r}")
        total = (branching ** (depth + 1) - 1) // (branching - 1)
        if total > self.max_nodes:
            raise ValueError(f"a {branching}-ary tree of depth {depth} has {total} nodes, more than {self.max_nodes}")
        if not (math.isfinite(noise_std) and noise_std >= 0):
            raise ValueError(f"noise_std must be a finite number >= 0, got noise_std={noise_std}")
        gen = np.random.default_rng(seed)
        self.num_actions = branching
        self.depth = depth
        self.noise_std = float(noise_std)
        self.first_leaf = (branching**depth - 1) // (branching - 1)
        self.edge_reward = gen.uniform(0.0, 1.0 / depth, size=total)
        self.edge_reward[0] = 0.0
        self.leaf_value = gen.uniform(0.0, 1.0, size=branching**depth) * leaf_scale
        self._edge_reward = self.edge_reward.tolist()
        self._leaf_value = self.leaf_value.tolist()
        self._noise = random.Random(seed + 1)
        self.node = 0
        self.level = 0

    def reseed_noise(self, seed: int) -> None:
        self._noise.seed(seed)

    def save(self) -> tuple[int, int]:
        return self.node, self.level

    def restore(self, state: tuple[int, int]) -> None:
        self.node, self.level = state

    def step(self, action: int) -> tuple[float, bool]:
        node = self.node * self.num_actions + action + 1
        self.node = node
        self.level += 1
        reward = self._edge_reward[node]
        if self.level == self.depth:
            reward += self._leaf_value[node - self.first_leaf]
            if self.noise_std:
                reward += self._noise.gauss(0.0, self.noise_std)
            return reward, True
        return reward, False

    def observation(self) -> np.ndarray:
        return np.array([self.node], dtype=np.int64)

    def state_key(self) -> Hashable:
        return self.node


class ChanceTree:
    """A synthetic tree with chance: after every action one of ``outcomes`` next states is drawn with known probabilities.

    The complete tree of ``depth`` decisions numbers its nodes breadth first: the root is 0 and the children of
    node ``i`` are ``i K + a m + o + 1`` for action ``a`` and outcome ``o`` (``K = branching * outcomes``, ``m =
    outcomes``). Action ``a`` at node ``i`` leads to outcome ``o`` with probability ``probs[i, a, o]`` (drawn once
    from a Dirichlet(2, ..., 2) by ``seed``) and pays ``edge_reward`` of the child (uniform in ``[0, 1 / depth)``,
    as :class:`SyntheticTree`'s), plus the leaf's ``leaf_value`` (uniform in ``[0, 1)``) on the step into a leaf,
    where the episode ends. The outcome is the first whose cumulative probability (``cumulative``, summed in
    order) exceeds a uniform of the simulator's stream (the last one for a uniform at or above their float sum),
    the rule of :class:`FrozenLakeSimulator`; ``include_rng=True`` saves the stream with the state, so that a restore
    replays the same outcomes (a determinized model). Exact values: :func:`~torchrl_reg.planning.exact.chance_tree_values`.

    ``seed`` draws the tree and also starts the outcomes' stream: trees built alike (same arguments, same ``seed``)
    draw the same outcomes step for step, so N single-tree searches over N such copies see the same futures, not N
    samples of them. :meth:`reseed` restarts the stream alone (the tree stays): reseed each copy (with its search's
    index, say) for independent outcomes.
    """

    max_nodes = 5_000_000

    def __init__(self, branching: int, outcomes: int, depth: int, *, seed: int = 0, include_rng: bool = False):
        if not isinstance(branching, int) or branching < 1:
            raise ValueError(f"branching must be an int >= 1, got branching={branching!r}")
        if not isinstance(outcomes, int) or outcomes < 1:
            raise ValueError(f"outcomes must be an int >= 1, got outcomes={outcomes!r}")
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be an int >= 1, got depth={depth!r}")
        fan = branching * outcomes
        total = sum(fan**level for level in range(depth + 1))
        if total > self.max_nodes:
            raise ValueError(f"a tree of {branching} actions, {outcomes} outcomes and depth {depth} has {total} nodes, more than {self.max_nodes}")
        gen = np.random.default_rng(seed)
        self.num_actions = branching
        self.outcomes = outcomes
        self.depth = depth
        self.fan = fan
        self.internal = total - fan**depth  # nodes at levels 0 .. depth - 1
        self.first_leaf = self.internal
        self.probs = gen.dirichlet(np.full(outcomes, 2.0), size=(self.internal, branching))
        self.cumulative = self.probs.cumsum(-1)
        self.edge_reward = gen.uniform(0.0, 1.0 / depth, size=total)
        self.edge_reward[0] = 0.0
        self.leaf_value = gen.uniform(0.0, 1.0, size=fan**depth)
        # what stepping into each node pays: its edge reward, plus the leaf value for a leaf
        self.step_reward = self.edge_reward.copy()
        self.step_reward[self.first_leaf :] += self.leaf_value
        self.deterministic = outcomes == 1
        self.include_rng = include_rng
        self._cumulative = self.cumulative.tolist()
        self._step_reward = self.step_reward.tolist()
        # the outcomes' stream, drawn from the tree's generator: never the stream of a search seeded alike
        self.rng = random.Random(int(gen.integers(2**62)))
        self.node = 0
        self.level = 0

    def reseed(self, seed: int) -> None:
        """Restart the outcomes' stream as ``random.Random(seed)``, leaving the tree (probabilities, rewards) as
        ``seed=`` at construction drew it: copies of one tree reseeded apart draw independent outcomes."""
        self.rng.seed(seed)

    def save(self) -> tuple:
        return (self.node, self.level, self.rng.getstate()) if self.include_rng else (self.node, self.level)

    def restore(self, state: tuple) -> None:
        self.node, self.level = state[0], state[1]
        if self.include_rng:
            self.rng.setstate(state[2])

    def step(self, action: int) -> tuple[float, bool]:
        if self.level >= self.depth:
            raise RuntimeError("ChanceTree.step after the episode ended; restore first")
        cumulative = self._cumulative[self.node][action]
        outcome = len(cumulative) - 1
        if outcome:
            u = self.rng.random()
            outcome = next((o for o, c in enumerate(cumulative) if u < c), outcome)
        self.node = self.node * self.fan + action * self.outcomes + outcome + 1
        self.level += 1
        return self._step_reward[self.node], self.level == self.depth

    def observation(self) -> np.ndarray:
        return np.array([self.node], dtype=np.int64)

    def state_key(self) -> Hashable:
        return self.node


def check_frozenlake_env(env: Any, owner: str) -> None:
    """Refuse an env ``owner`` (:class:`FrozenLakeSimulator`, :class:`~torchrl_reg.planning.tensor_simulators.TensorFrozenLake`)
    cannot read: it needs gymnasium's ``FrozenLake-v1`` (any wrapper of it), whose transition table ``P`` it steps by."""
    unwrapped = getattr(env, "unwrapped", env)
    table = getattr(unwrapped, "P", None)
    if isinstance(table, dict) and table and hasattr(getattr(unwrapped, "action_space", None), "n"):
        return
    spec = getattr(getattr(env, "spec", None), "id", None)
    label = f"{spec} ({type(unwrapped).__name__})" if spec else type(unwrapped).__name__
    raise TypeError(
        f"{owner} needs gymnasium's FrozenLake-v1 (it steps by the env's transition table P); got {label}, which has "
        "none: build it on gymnasium.make('FrozenLake-v1', map_name=..., is_slippery=...)"
    )


class FrozenLakeSimulator:
    """gymnasium ``FrozenLake-v1``: the state is the agent's cell (``env.unwrapped.s``).

    Moves are read from the env's own transition table ``P`` (what its ``step`` samples from),
    about 20x cheaper than ``step``; ``env.unwrapped.s`` is kept in sync, so the env and the
    simulator never disagree. Slippery maps draw their outcome with the simulator's own RNG and
    are searched as stochastic (chance outcomes keyed by cell).
    """

    def __init__(self, env: Any, *, seed: int = 0):
        check_frozenlake_env(env, type(self).__name__)
        self.env = env.unwrapped
        if not hasattr(self.env, "s"):
            env.reset(seed=seed)  # a fresh gymnasium env has no state before its first reset
        self.num_actions = int(self.env.action_space.n)
        self.transitions = self.env.P
        slippery = any(len(outcomes) > 1 for moves in self.transitions.values() for outcomes in moves.values())
        self.deterministic = not slippery
        self.rng = random.Random(seed)
        self.done = False

    def save(self) -> tuple[int, bool]:
        return int(self.env.s), self.done

    def restore(self, state: tuple[int, bool]) -> None:
        self.env.s, self.done = state

    def plain_state(self) -> dict[str, Any]:
        """The env's whole state as plain data (a checkpoint's): the cell, the last action, the end, the outcome stream;
        restored by :meth:`load_plain_state` into a simulator of the same map."""
        return {"s": int(self.env.s), "lastaction": self.env.lastaction, "done": self.done, "rng": encode(self.rng.getstate())}

    def load_plain_state(self, state: dict[str, Any]) -> None:
        cell = state["s"]
        if not (type(cell) is int and cell in self.transitions):
            raise ValueError(f"this FrozenLake map has no cell {cell!r}")
        self.rng.setstate(decode(state["rng"]))
        self.env.s, self.env.lastaction, self.done = cell, state["lastaction"], bool(state["done"])

    def step(self, action: int) -> tuple[float, bool]:
        outcomes = self.transitions[int(self.env.s)][action]
        outcome = outcomes[0]
        if len(outcomes) > 1:
            u, acc = self.rng.random(), 0.0
            for outcome in outcomes:
                acc += outcome[0]
                if u < acc:
                    break
        _, cell, reward, terminated = outcome
        self.env.s = cell
        self.env.lastaction = action
        self.done = bool(terminated)
        return float(reward), self.done

    def observation(self) -> np.ndarray:
        return np.array([int(self.env.s)], dtype=np.int64)

    def state_key(self) -> Hashable:
        return int(self.env.s)


def minatar_module(game: str) -> str:
    """MinAtar's module name of ``game`` (``"SpaceInvaders"`` or ``"space_invaders"`` -> ``"space_invaders"``)."""
    key = game.lower().replace("_", "")
    return "space_invaders" if key == "spaceinvaders" else key


class MinAtarSimulator:
    """A ``minatar.Environment`` rewound by deep copies of its game object and last action.

    Actions are MinAtar's full set (6), as in the ``MinAtar/<Game>-v0`` envs the recipes train
    on; :meth:`observation` is the channels-first ``uint8`` grid those recipes feed their
    networks. The search treats it as stochastic and keys chance outcomes by the grid.

    ``include_rng=True`` saves the RNG too, so a restore replays the same future exactly. A
    planner acting in the env it searches wants ``False``: every simulation then draws fresh
    spawns and sticky actions instead of foreseeing the ones the real step will get.
    """

    deterministic = False

    def __init__(self, env: Any, *, include_rng: bool = True):
        env = getattr(env, "unwrapped", env)
        # a gymnasium ``MinAtar/*`` env holds the ``minatar.Environment`` as ``.game``
        self.env = getattr(env, "game", env)
        self.num_actions = int(self.env.num_actions())
        self.include_rng = include_rng
        self.done = False

    def save(self) -> Any:
        env = self.env
        rng = env.random if self.include_rng else None
        return copy.deepcopy((env.env, rng, env.last_action, self.done))

    def restore(self, state: Any) -> None:
        game, rng, last_action, done = copy.deepcopy(state)
        rng = self.env.random if rng is None else rng
        game.random = rng
        self.env.env, self.env.random, self.env.last_action, self.done = game, rng, last_action, done

    def plain_state(self) -> dict[str, Any]:
        """The env's whole state as plain data (a checkpoint's, never pickled: :func:`~torchrl_reg.plain_state.object_state`):
        the game's grids, timers and entities, the random stream the game and its sticky actions share, the last
        action and the end; restored by :meth:`load_plain_state` into an env of the same game."""
        return {"env": object_state(self.env, descend=is_minatar_object), "done": self.done}

    def load_plain_state(self, state: dict[str, Any]) -> None:
        saved = state["env"].get("env_name")
        if saved != self.env.env_name:
            raise ValueError(f"the state is of MinAtar {saved!r}, this simulator plays {self.env.env_name!r}")
        restore_attributes(self.env, state["env"], "the MinAtar env")  # the shared stream restored in place
        self.done = bool(state["done"])

    def step(self, action: int) -> tuple[float, bool]:
        reward, terminal = self.env.act(action)
        self.done = bool(terminal)
        return float(reward), self.done

    def observation(self) -> np.ndarray:
        return np.ascontiguousarray(self.env.state().transpose(2, 0, 1), dtype=np.uint8)

    def state_key(self) -> Hashable:
        return self.env.state().tobytes()


class ALESimulator:
    """An ALE emulator rewound by ``cloneState`` / ``restoreState``; one step plays the action for ``frameskip`` frames.

    Actions index the minimal action set. **Sticky actions are this simulator's, not ALE's.** At every
    frame a uniform ``u`` is drawn and the action applied becomes the chosen one when ``u >=
    sticky_action_prob``, else the action applied at the frame before is applied again (Machado et al.,
    Revisiting the Arcade Learning Environment, JAIR 2018, arXiv:1709.06009, Sec. 5.2). That is ALE's own
    rule as its ``act`` draws it, one uniform per emulated frame for player A's action, so an env stepped
    through this simulator moves with the distribution of ALE with ``repeat_action_probability =
    sticky_action_prob``; only the stream differs (``rng``, a numpy ``RandomState`` over ``PCG64(seed)``, where ALE draws from its own
    Mersenne Twister). ALE's own sticky actions cannot be rewound: ``cloneState`` does not carry the action
    applied last, so a restored emulator repeats whatever it applied last (in a search, the end of the
    previous simulation), not the action applied at the saved state. An emulator whose
    ``repeat_action_probability`` is not 0 is therefore refused (ALE's default is 0.25; ALE reads the setting
    at ``loadROM``, so set it to 0 before loading the ROM).

    ``save`` holds the emulator's state, the action applied last and, with ``include_rng=True``, the state
    of ``rng`` (and ALE's own stream): a restore then replays the same future exactly. A planner acting in
    the env it searches wants ``include_rng=False``, as in :class:`MinAtarSimulator`: ``rng`` goes on
    across restores, so every simulation and the real step draw fresh sticky frames.

    ``last_action`` (a minimal-set index) is the action applied last: NOOP at construction, as after ALE's
    reset; set it when an emulator is handed over in mid-episode. Stochastic when ``sticky_action_prob > 0``,
    chance outcomes keyed by the RAM and, then, the action applied last (the next frame may repeat it).
    """

    deterministic = False

    def __init__(
        self, ale: Any, frameskip: int = 4, *, sticky_action_prob: float = 0.0, include_rng: bool = True, seed: int | Sequence[int] = 0
    ):
        from ale_py import Action

        if not isinstance(frameskip, int) or frameskip < 1:
            raise ValueError(f"frameskip must be an int >= 1, got frameskip={frameskip!r}")
        if not 0.0 <= sticky_action_prob <= 1.0:
            raise ValueError(f"sticky_action_prob must be in [0, 1], got sticky_action_prob={sticky_action_prob}")
        own = ale.getFloat("repeat_action_probability")
        if own != 0.0:
            raise ValueError(
                f"the emulator has repeat_action_probability={own:g}; ALESimulator applies sticky actions itself "
                "(ALE's cannot be rewound: cloneState does not carry the action applied last): load the ROM after "
                "ale.setFloat('repeat_action_probability', 0.0) (gymnasium: repeat_action_probability=0.0) and build "
                f"ALESimulator(ale, frameskip, sticky_action_prob={own:g})"
            )
        self.ale = ale
        self.include_rng = include_rng
        self.frameskip = frameskip
        self.sticky_action_prob = float(sticky_action_prob)
        self.rng = np.random.RandomState(np.random.PCG64(seed))
        self.actions = list(ale.getMinimalActionSet())
        self.num_actions = len(self.actions)
        self.noop = self.actions.index(Action.NOOP)
        self.last_action = self.noop

    def save(self) -> tuple[Any, dict[str, Any] | None, int]:
        rng = self.rng.get_state(legacy=False) if self.include_rng else None
        return self.ale.cloneState(include_rng=self.include_rng), rng, self.last_action

    def restore(self, state: tuple[Any, dict[str, Any] | None, int]) -> None:
        game, rng, self.last_action = state
        self.ale.restoreState(game)
        if rng is not None:
            self.rng.set_state(rng)

    def plain_state(self) -> dict[str, Any]:
        """The whole state as plain data (a checkpoint's): the emulator with its own stream (ALE's serialization as a
        uint8 tensor), the sticky-action stream and the action applied last; :meth:`load_plain_state` restores it
        into a simulator of the same game (ALE's ``restoreState``: nothing is unpickled)."""
        serialized = self.ale.cloneState(include_rng=True).serialize()
        return {
            "ale": torch.frombuffer(bytearray(serialized), dtype=torch.uint8),
            "rng": encode(self.rng.get_state(legacy=False)), "last_action": self.last_action,
        }

    def load_plain_state(self, state: dict[str, Any]) -> None:
        import ale_py

        action = state["last_action"]
        if not (type(action) is int and 0 <= action < self.num_actions):
            raise ValueError(f"last_action {action!r} is not one of the {self.num_actions} actions of the minimal set")
        rng, own = decode(state["rng"]), self.rng.get_state(legacy=False)["bit_generator"]
        if not (isinstance(rng, dict) and rng.get("bit_generator") == own):
            raise ValueError(f"the sticky-action stream's state is not a {own} state")
        self.ale.restoreState(ale_py.ALEState(state["ale"].numpy().tobytes()))
        self.rng.set_state(rng)
        self.last_action = action

    def step(self, action: int) -> tuple[float, bool]:
        if not 0 <= action < self.num_actions:
            raise ValueError(f"action {action} is not one of the {self.num_actions} actions of the minimal set")
        ale, rng, p = self.ale, self.rng, self.sticky_action_prob
        applied, reward, done = self.last_action, 0.0, False
        for _ in range(self.frameskip):
            if rng.random_sample() >= p:
                applied = action
            reward += ale.act(self.actions[applied])
            done = ale.game_over()
            if done:
                break
        self.last_action = applied
        return reward, done

    def observation(self) -> np.ndarray:
        return self.ale.getScreenGrayscale()

    def state_key(self) -> Hashable:
        ram = self.ale.getRAM().tobytes()
        return (ram, self.last_action) if self.sticky_action_prob > 0 else ram
