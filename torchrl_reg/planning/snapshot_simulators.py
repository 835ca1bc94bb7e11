"""MinAtar and ALE as tensor simulators for :class:`~torchrl_reg.planning.batched.BatchedTreeSearch`: states are handles into a store of snapshots.

An emulator cannot step a tensor of states, so a state here is a handle ``[B, 1]`` (int64): the
index of a snapshot (the game, its random stream, the last action applied, whether the episode
ended, the observation) kept by the simulator object. ``step`` restores each row's snapshot into
one working emulator, acts, and stores the result under a new handle; nothing stored is changed, so
``step`` is a pure function of the handles as the batched search needs (the recurrent function of
mctx's search). The B rows are stepped one after the other in a Python loop: an emulator steps one
state at a time, so this loop cannot be avoided; the search's own work stays batched.

**Determinization.** A snapshot holds its random stream, so one (state, action) always gives one
next state: the search plans in a determinized model (Xiao et al., Maximum Entropy Monte-Carlo
Planning, NeurIPS 2019, Sec. 5, searched Atari this way: a saved emulator state replays its
future). :meth:`roots` builds the roots from the real envs' current game state with a *fresh*
stream drawn from the planner's seed (:func:`planner_rng`), never the real env's: with the real
stream the search would foresee the real step's spawns and sticky actions. The streams are numpy
``RandomState`` objects over ``PCG64`` (their state is two integers: saving one is cheap, where a
Mersenne-Twister state is 2.5 KB).

**The sampled model** (``BatchedMinAtar(model="sampled")``): the stream is not part of the snapshot. Every step draws
from one working stream that goes on from step to step (seeded by the planner's seed at each :meth:`roots`), so a
(state, action) leads to a fresh outcome at every visit: the simulator is stochastic (``deterministic = False``) and
the batched search keeps chance nodes, its children keyed by :meth:`BatchedMinAtar.state_key`, an id per distinct game
state (the game's attributes but its stream, and the last action, which sticky actions repeat). A step draws the
sticky action, then steps the game by the action applied; where the game drew nothing on that step (a step of
SpaceInvaders or Breakout never draws; Asterix, Seaquest and Freeway draw when they spawn or respeed), the next state
depends on (state, action applied) alone, so the store keeps that transition and gives its handle again the next time
it is drawn, without stepping the game: the stream is drawn from exactly as a fresh step draws, and the search is the
same, at about half the cost on SpaceInvaders (most of a search's steps walk down edges it has taken before).

**Memory.** Every step adds B snapshots at most (a random rollout of ``n`` steps ``n B``; a kept transition none);
nothing is freed until :meth:`clear`, which :meth:`root` and :meth:`roots` call first: the handles of earlier roots
are invalid after them. A MinAtar snapshot is a few KB (the game object); an ALE one is about 41 KB (the emulator
state and the 210 x 160 grayscale screen).

* :class:`BatchedMinAtar` - a MinAtar game (its 6 actions, its sticky actions drawn from the
  snapshot's stream as ``minatar.Environment.act`` draws them).
* :class:`BatchedALE` - an ALE game, ``frameskip`` frames per move over the minimal action set,
  stepped by :class:`~torchrl_reg.planning.simulators.ALESimulator` (sticky actions drawn per frame with
  ALE's rule, from the snapshot's stream, after the snapshot's last action; ALE's own are off, since
  ``cloneState`` does not carry the action applied last and a (state, action) would not fix the next state).
"""
from __future__ import annotations

import copy
import pickle
from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from torchrl_reg.planning.models import DEFAULT_MODEL, OWN, Model, Seed, get_model, planner_rng
from torchrl_reg.planning.simulators import ALESimulator, MinAtarSimulator, minatar_module
from torchrl_reg.planning.tensor_simulators import check_index_states

__all__ = ["planner_rng", "copy_minatar_game", "SnapshotStore", "BatchedMinAtar", "BatchedALE"]


@dataclass(frozen=True)
class _Snapshot:
    """One stored state: the emulator's (a game object or an ``ALEState``; never changed once stored), the
    random stream's ``get_state(legacy=False)``, the last action applied, the episode's end, the observation (None
    where the store computes it when asked: a MinAtar game's grid, read from the stored game)."""

    game: Any
    rng: dict[str, Any]
    last_action: int
    done: bool
    observation: np.ndarray | None


_IMMUTABLE = (int, float, str, bytes, type(None), np.generic)
# tables every MinAtar game fills in __init__ and only reads afterwards (channel indices, action letters)
_READ_ONLY = frozenset({"channels", "action_map"})


def copy_minatar_game(game: Any, rng: np.random.RandomState) -> Any:
    """A copy of a MinAtar game object whose random stream is ``rng``: the game
    ``copy.deepcopy(game, {id(game.random): rng})`` gives, at a fraction of its cost.

    The attributes MinAtar's games have are copied by kind: numbers, booleans and None as they are; numpy
    arrays with ``.copy()``; lists of entities (None or lists of numbers: Asterix's ``entities``, Seaquest's
    bullets, fish, subs and divers, Freeway's cars) one level deeper; the read-only ``channels`` and
    ``action_map`` tables shared. A game with anything else (another kind of attribute, two attributes holding
    one object) is deep-copied as a whole, so the result is always the deep copy's. Copying the game is the
    larger part of a MinAtar step in the search (``copy.deepcopy`` 30-50 us of a ~120 us step)."""
    copied = _copy_by_kind(game, rng)
    return copied if copied is not None else copy.deepcopy(game, {id(game.random): rng})


def _copy_by_kind(game: Any, rng: np.random.RandomState) -> Any | None:
    """:func:`copy_minatar_game`'s copy by attribute kind; None where the game has something else."""
    state = dict(vars(game))
    seen: set[int] = set()
    for key, value in state.items():
        if key == "random":
            state[key] = rng
        elif key in _READ_ONLY or isinstance(value, _IMMUTABLE):
            continue
        elif type(value) is np.ndarray and value.dtype != object and id(value) not in seen:
            seen.add(id(value))
            state[key] = value.copy()
        elif type(value) is list and all(_is_entity(item) for item in value):
            inner = [id(value)] + [id(item) for item in value if item is not None]
            if seen.intersection(inner) or len(set(inner)) < len(inner):
                return None
            seen.update(inner)
            state[key] = [list(item) if item is not None else None for item in value]
        else:
            return None
    new = object.__new__(type(game))
    new.__dict__.update(state)
    return new


def _exact(value: Any) -> Hashable:
    """A hashable key of ``value`` that equals another's exactly when the two have one type and one value bit for bit:
    an array by its dtype, shape, memory order and bytes, a float by its bits (``-0.0`` is not ``0.0``), a list of
    MinAtar entities item by item; anything else by its pickle (never unpickled)."""
    kind = type(value)
    if kind is np.ndarray and value.dtype != object:
        return kind, value.dtype.str, value.shape, value.flags.c_contiguous, value.tobytes()
    if kind is int or kind is bool or value is None or kind is str or kind is bytes:
        return kind, value
    if kind is float:
        return kind, value.hex()
    if isinstance(value, np.generic) and value.dtype != object:
        return kind, value.tobytes()
    if kind is list and all(_is_entity(item) for item in value):
        return kind, tuple(None if item is None else tuple(_exact(x) for x in item) for item in value)
    return object, pickle.dumps(value)


def _is_entity(item: Any) -> bool:
    return item is None or (type(item) is list and all(isinstance(x, _IMMUTABLE) for x in item))


class SnapshotStore(ABC):
    """The store of snapshots and the row loop shared by :class:`BatchedMinAtar` and :class:`BatchedALE`.

    A subclass defines ``_advance(snapshot, action) -> (snapshot, reward)``, which restores, acts and
    snapshots in the working emulator. A finished row stays put (same handle, reward 0, done): the
    search steps all rows and ignores the finished ones.
    """

    deterministic = True  # given the handle: the stream is in the snapshot
    deterministic_rewards = True  # so is the reward: the search steps an edge once (BatchedTreeSearch)
    num_actions: int

    def __init__(self, *, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self._store: list[_Snapshot] = []
        # state_key's ids: one per distinct game state (by its exact key, _state_of), and each handle's, filled in when asked
        self._state_ids: dict[bytes, int] = {}
        self._key_ids: dict[int, int] = {}

    def __len__(self) -> int:
        """The number of stored snapshots."""
        return len(self._store)

    def clear(self) -> None:
        """Forget every snapshot: earlier handles become invalid (:meth:`root` and :meth:`roots` call it)."""
        self._store.clear()
        self._key_ids.clear()
        self._state_ids.clear()

    def _add(self, snapshot: _Snapshot) -> int:
        self._store.append(snapshot)
        return len(self._store) - 1

    def _handles(self, handles: list[int]) -> torch.Tensor:
        return torch.tensor(handles, dtype=torch.long, device=self.device).unsqueeze(-1)

    def check_states(self, state: torch.Tensor) -> None:
        """Refuse anything but handles ``[B, 1]`` (int64) of snapshots in the store."""
        size = len(self._store)
        if not size:
            raise ValueError(f"{type(self).__name__}'s store is empty: take the roots from root() or roots()")
        try:
            check_index_states(self, state, [("handle", 0, size - 1)])
        except ValueError as err:
            raise ValueError(f"{err} (root() and roots() clear the store: a handle from before them is stale)") from None

    def _snapshots(self, state: torch.Tensor) -> list[_Snapshot]:
        self.check_states(state)
        return [self._store[h] for h in state[:, 0].tolist()]

    def step(self, state: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Step each row's snapshot by its action (a Python loop over the B rows); ``(handles, reward, done)``."""
        snapshots = self._snapshots(state)
        actions = action.tolist()
        if len(actions) != len(snapshots):
            raise ValueError(f"{len(snapshots)} states and {len(actions)} actions")
        handles, rewards, dones = state[:, 0].tolist(), [0.0] * len(actions), [True] * len(actions)
        for row, (snapshot, move) in enumerate(zip(snapshots, actions)):
            if snapshot.done:
                continue
            if not 0 <= move < self.num_actions:
                raise ValueError(f"action {move} in row {row} is not one of the {self.num_actions} actions")
            handles[row], rewards[row], dones[row] = self._step_row(handles[row], snapshot, move)
        done = torch.tensor(dones, dtype=torch.bool, device=self.device)
        return self._handles(handles), torch.tensor(rewards, dtype=torch.float64, device=self.device), done

    def state_key(self, state: torch.Tensor) -> torch.Tensor:
        """An id ``[B, 1]`` (int64) per distinct stored state: equal ids for equal states, whatever their handles.

        Two snapshots get one id exactly when :meth:`_state_of` of them are equal (a dict lookup on the key, which
        compares it in full): the chance search's children are keyed by it. Valid until :meth:`clear`.
        """
        return torch.tensor([self._state_id(h) for h in state[:, 0].tolist()], dtype=torch.long, device=self.device).unsqueeze(-1)

    def _state_id(self, handle: int) -> int:
        key = self._key_ids.get(handle)
        if key is None:
            key = self._state_ids.setdefault(self._state_of(self._store[handle]), len(self._state_ids))
            self._key_ids[handle] = key
        return key

    def _state_of(self, snapshot: _Snapshot) -> Hashable:
        """An exact key of what a snapshot's future depends on but its stream (a subclass with a sampled model)."""
        raise TypeError(f"{type(self).__name__} has no sampled model: its states need no keys")

    def observation(self, state: torch.Tensor) -> torch.Tensor:
        """The observations of the rows, ``[B, *obs_shape]`` (uint8)."""
        return torch.from_numpy(np.stack([self._observe(s) for s in self._snapshots(state)])).to(self.device)

    def _observe(self, snapshot: _Snapshot) -> np.ndarray:
        """A snapshot's observation: the stored one (a subclass that stores none reads it from the snapshot's game)."""
        return snapshot.observation

    def _step_row(self, handle: int, snapshot: _Snapshot, action: int) -> tuple[int, float, bool]:
        """One row of :meth:`step` (``snapshot`` is the store's at ``handle``, not done): the next handle, reward and end."""
        nxt, reward = self._advance(snapshot, action)
        return self._add(nxt), reward, nxt.done

    @abstractmethod
    def _advance(self, snapshot: _Snapshot, action: int) -> tuple[_Snapshot, float]:
        """Restore ``snapshot`` in the working emulator, play ``action``; the new snapshot and the reward."""


class BatchedMinAtar(SnapshotStore):
    """A MinAtar game searched by handles (module docstring); observations are the channels-first uint8 grids of
    :meth:`MinAtarSimulator.observation <torchrl_reg.planning.simulators.MinAtarSimulator.observation>`.

    Args:
        game: MinAtar's game (``"breakout"``, ``"space_invaders"``, ...; ``"SpaceInvaders"`` is accepted).
        sticky_action_prob: the probability that a step repeats the last action, as in the real envs
            (:meth:`roots` refuses an env with another one).
        seed: the planner's seed of :meth:`root`'s new games.
        model: what :meth:`roots` gives the search of the real envs' futures, one of
            :data:`~torchrl_reg.planning.models.MODELS` (its :attr:`~torchrl_reg.planning.models.Model.stream` is read
            here, and its :meth:`~torchrl_reg.planning.models.Model.root_streams` give the roots' streams; an
            ensemble's futures are rows of their own). ``"sampled"`` (default,
            :data:`~torchrl_reg.planning.models.DEFAULT_MODEL`): fresh outcomes at every visit, from one working stream
            seeded by the planner's seed at each :meth:`root` / :meth:`roots` (module docstring); stochastic, searched
            with chance nodes. ``"determinized"``: a fresh stream per root from the planner's seed, one sampled future per
            search (module docstring).
            ``"oracle"``, a diagnostic and not a planner: the real env's own stream, copied, so that the model's
            future is the real one for the same actions (sticky actions and spawns included); no agent can
            read the env's stream, so only a study of how much the model costs uses it. It needs the real game
            and its sticky actions on one stream, as ``minatar.Environment.seed`` sets them.
    """

    def __init__(
        self, game: str, *, sticky_action_prob: float = 0.0, seed: int = 0, model: str | Model = DEFAULT_MODEL,
        device: str | torch.device = "cpu",
    ):
        import minatar

        model = get_model(model)
        super().__init__(device=device)
        self.model = model
        # the sampled model draws anew at every step: a (handle, action) has many next states, and many rewards
        self.deterministic = self.deterministic_rewards = not model.chance
        self.game = minatar_module(game)
        self.env = minatar.Environment(self.game, sticky_action_prob=sticky_action_prob)
        self.num_actions = int(self.env.num_actions())
        self.seed = seed
        # the working stream: every restore loads a snapshot's state into it (the oracle's are minatar's MT19937 ones)
        self._rng = planner_rng(seed, 0) if model.stream != OWN else np.random.RandomState()
        # the sampled model's transitions that drew nothing from the stream: (state id, action applied) -> (handle, reward, end)
        self._transitions: dict[tuple[int, int], tuple[int, float, bool]] = {}

    def root(self, batch_size: int) -> torch.Tensor:
        """``batch_size`` new games (cleared store), game ``b`` reset and played with :func:`planner_rng` ``(seed, b)``."""
        streams = self.model.root_streams(self.seed, batch_size)
        self.clear()
        handles = []
        if self.model.chance:
            self._rng = streams[0]
        for rng in streams:
            game = copy.deepcopy(self.env.env, {id(self.env.env.random): rng})
            game.reset()
            handles.append(self._add(self._snapshot(game, rng, 0)))
        return self._handles(handles)

    def roots(self, envs: Sequence[Any], seed: Seed) -> torch.Tensor:
        """Handles ``[len(envs), 1]`` of the real envs' current games with fresh streams :func:`planner_rng` ``(seed, b)``
        (with ``model="oracle"``: copies of their own streams, ``seed`` unused).

        ``envs``: ``minatar.Environment`` objects, gymnasium ``MinAtar/*`` envs or
        :class:`~torchrl_reg.planning.simulators.MinAtarSimulator` objects. The games are copied (the
        real envs are not changed, and their random streams are neither shared nor, but for the oracle,
        copied); the store is cleared first. The caller varies ``seed`` from move to move, so each search draws anew.
        """
        reals = [self._environment(env, row) for row, env in enumerate(envs)]
        streams = self.model.root_streams(seed, reals)
        self.clear()
        handles = []
        if self.model.chance:
            self._rng = streams[0]
        for real, rng in zip(reals, streams):
            # the real stream is mapped to the root's: deepcopy never copies it
            game = copy.deepcopy(real.env, {id(real.env.random): rng, id(real.random): rng})
            handles.append(self._add(self._snapshot(game, rng, real.last_action)))
        return self._handles(handles)

    def _environment(self, env: Any, row: int) -> Any:
        import minatar

        env = env.env if isinstance(env, MinAtarSimulator) else getattr(getattr(env, "unwrapped", env), "game", env)
        if not isinstance(env, minatar.Environment):
            raise TypeError(f"envs[{row}] must be a minatar.Environment, a MinAtar gymnasium env or a MinAtarSimulator, got {type(env).__name__}")
        if env.env_name != self.game or env.sticky_action_prob != self.env.sticky_action_prob:
            raise ValueError(
                f"envs[{row}] is {env.env_name!r} with sticky_action_prob={env.sticky_action_prob}; this simulator searches "
                f"{self.game!r} with sticky_action_prob={self.env.sticky_action_prob}"
            )
        return env

    def _snapshot(self, game: Any, rng: np.random.RandomState, last_action: int) -> _Snapshot:
        """Store ``game`` itself (it is never stepped again: :meth:`_advance` steps a copy) and ``rng``'s state (none in
        the sampled model, whose stream is not part of the state); its observation is read from it when asked (most
        states a search steps through are never evaluated)."""
        stream = rng.get_state(legacy=False) if self.model.snapshot_stream else {}
        return _Snapshot(game, stream, int(last_action), bool(game.terminal), None)

    def _observe(self, snapshot: _Snapshot) -> np.ndarray:
        return np.ascontiguousarray(snapshot.game.state().transpose(2, 0, 1), dtype=np.uint8)

    def clear(self) -> None:
        super().clear()
        self._transitions.clear()

    def _step_row(self, handle: int, snapshot: _Snapshot, action: int) -> tuple[int, float, bool]:
        """The sampled model's step, as :meth:`_advance` takes it, without replaying a transition already taken.

        The sticky action is drawn first (``minatar.Environment.act``'s one ``rand()``), then the game steps by the action
        applied. Where the game drew nothing from the stream on that step, the next state is a function of the state
        and the action applied alone: the transition (state id, action applied) is kept and the next time it is drawn
        its stored handle and reward are given without stepping the game. The stream is drawn from exactly as
        :meth:`_advance` draws from it (a kept transition drew only the sticky action), so the search is the same."""
        if not self.model.chance:
            return super()._step_row(handle, snapshot, action)
        rng = self._rng
        applied = snapshot.last_action if rng.rand() < self.env.sticky_action_prob else action
        transition = (self._state_id(handle), applied)
        known = self._transitions.get(transition)
        if known is not None:
            return known
        watch = _DrawWatch(rng)
        game = copy_minatar_game(snapshot.game, watch)
        reward, _ = game.act(applied)
        game.random = rng
        step = self._add(self._snapshot(game, rng, applied)), float(reward), bool(game.terminal)
        if not watch.drew:
            self._transitions[transition] = step
        return step

    def _state_of(self, snapshot: _Snapshot) -> Hashable:
        """The game's attributes but its stream and its read-only tables, each by name, type and exact value
        (:func:`_exact`), its class, the last action and the end."""
        game = tuple((k, _exact(v)) for k, v in vars(snapshot.game).items() if k != "random" and k not in _READ_ONLY)
        return type(snapshot.game).__qualname__, game, snapshot.last_action, snapshot.done

    def _advance(self, snapshot: _Snapshot, action: int) -> tuple[_Snapshot, float]:
        env, rng = self.env, self._rng
        if self.model.snapshot_stream:  # the sampled model's working stream goes on instead
            rng.set_state(snapshot.rng)
        # the stored game's stream (whichever RandomState it points at) becomes the working one, uncopied
        game = copy_minatar_game(snapshot.game, rng)
        env.env, env.random, env.last_action = game, rng, snapshot.last_action
        reward, _ = env.act(action)
        return self._snapshot(game, rng, env.last_action), float(reward)


class _DrawWatch:
    """A game's stream for one step that notes whether the game drew from it (every MinAtar game draws through
    ``self.random.<method>``); draws go to the stream itself."""

    __slots__ = ("stream", "drew")

    def __init__(self, stream: np.random.RandomState):
        self.stream, self.drew = stream, False

    def __getattr__(self, name: str) -> Any:
        self.drew = True
        return getattr(self.stream, name)


class BatchedALE(SnapshotStore):
    """An ALE game searched by handles (module docstring); one move is ``frameskip`` frames, as in
    :class:`~torchrl_reg.planning.simulators.ALESimulator`, and observations are grayscale screens ``[B, 210, 160]``.

    Every row is stepped by one working :class:`~torchrl_reg.planning.simulators.ALESimulator` (its sticky
    actions: per frame, ALE's rule) restored to the row's snapshot: emulator state, stream, last action.

    Args:
        game: the ROM's name (``ale_py.roms.get_rom_path(game)``).
        frameskip: emulator frames per move.
        sticky_action_prob: the real envs' probability of repeating the action applied last (:meth:`roots` refuses another).
        seed: the planner's seed of :meth:`root`'s streams.
    """

    def __init__(self, game: str, *, frameskip: int = 4, sticky_action_prob: float = 0.0, seed: int = 0, device: str | torch.device = "cpu"):
        from ale_py import ALEInterface, roms

        super().__init__(device=device)
        self.ale = ALEInterface()
        self.ale.setFloat("repeat_action_probability", 0.0)
        self.ale.loadROM(roms.get_rom_path(game.lower()))
        # the working simulator: every _advance loads a snapshot into it (its stream included)
        self.sim = ALESimulator(self.ale, frameskip, sticky_action_prob=sticky_action_prob, include_rng=True)
        self.frameskip = frameskip
        self.actions = self.sim.actions
        self.num_actions = self.sim.num_actions
        self.sticky_action_prob = self.sim.sticky_action_prob
        self.seed = seed

    def root(self, batch_size: int) -> torch.Tensor:
        """``batch_size`` copies of the reset game (cleared store), row ``b`` with the stream :func:`planner_rng` ``(seed, b)``."""
        self.clear()
        self.ale.reset_game()
        state, noop = self.ale.cloneState(), self.sim.noop
        return self._handles([self._add(self._snapshot(state, self.ale, planner_rng(self.seed, row), noop)) for row in range(batch_size)])

    def roots(self, ales: Sequence[Any], seed: Seed, last_actions: Sequence[int] | None = None) -> torch.Tensor:
        """Handles ``[len(ales), 1]`` of the real emulators' current games with fresh streams :func:`planner_rng` ``(seed, b)``.

        ``ales``: :class:`~torchrl_reg.planning.simulators.ALESimulator` objects (their sticky actions must be
        this simulator's), or ``ALEInterface`` objects and gymnasium ALE envs (their own
        ``repeat_action_probability`` must be this simulator's); their states are cloned without their
        random streams. ``last_actions`` (minimal-set indices) are the actions a sticky first frame repeats;
        by default an ALESimulator's ``last_action``, and NOOP for an emulator, which does not expose the
        action it applied last (pass the last move played). The store is cleared first.
        """
        self.clear()
        if last_actions is not None and len(last_actions) != len(ales):
            raise ValueError(f"{len(ales)} emulators and {len(last_actions)} last actions")
        handles = []
        for row, ale in enumerate(ales):
            if isinstance(ale, ALESimulator):
                real, prob, last = ale.ale, ale.sticky_action_prob, ale.last_action
            else:
                real = getattr(getattr(ale, "unwrapped", ale), "ale", ale)
                if not callable(getattr(real, "cloneState", None)):
                    raise TypeError(f"ales[{row}] must be an ALEInterface, an ALESimulator or an ALE gymnasium env, got {type(ale).__name__}")
                prob, last = real.getFloat("repeat_action_probability"), self.sim.noop
            if abs(prob - self.sticky_action_prob) > 1e-6:  # ALE keeps it as a float32
                raise ValueError(f"ales[{row}] has sticky action probability {prob:g}; this simulator searches sticky_action_prob={self.sticky_action_prob}")
            if last_actions is not None:
                last = last_actions[row]
            if not 0 <= last < self.num_actions:
                raise ValueError(f"last_actions[{row}]={last} is not one of the {self.num_actions} actions")
            handles.append(self._add(self._snapshot(real.cloneState(), real, planner_rng(seed, row), last)))
        return self._handles(handles)

    @staticmethod
    def _snapshot(state: Any, ale: Any, rng: np.random.RandomState, last_action: int) -> _Snapshot:
        """``state`` (an ``ALEState`` of ``ale``, which shows it: screen, game over) and ``rng``'s state."""
        return _Snapshot(state, rng.get_state(legacy=False), last_action, bool(ale.game_over()), ale.getScreenGrayscale())

    def _advance(self, snapshot: _Snapshot, action: int) -> tuple[_Snapshot, float]:
        sim = self.sim
        sim.restore((snapshot.game, snapshot.rng, snapshot.last_action))
        reward, _ = sim.step(action)
        # the ALEState without ALE's own stream, which moves nothing once its sticky actions are off
        return self._snapshot(self.ale.cloneState(), self.ale, sim.rng, sim.last_action), reward
