"""The models a planner plans in: one :class:`Model` object per ``planner.model``, in the registry :data:`MODELS`.

A model matters where the task is stochastic (MinAtar's spawns, sticky actions); on the deterministic D-chain and
FrozenLake every model is the task itself. Each model says, as data, what the searches need of it:

* :attr:`Model.stream` - where the random draws of the search's steps come from, which is also what a snapshot
  store (:class:`~torchrl_reg.planning.snapshot_simulators.BatchedMinAtar`) copies into a root and saves with
  each state: :data:`WORKING` (one working stream that goes on across simulations, saved with no state: a
  (state, action) leads to a fresh outcome at every visit, and the searches keep chance nodes), :data:`PLANNER`
  (a fresh stream per root from the planner's seed,
  :func:`~torchrl_reg.planning.snapshot_simulators.planner_rng`, saved with every state: an action always leads
  to one next state) or :data:`OWN` (a copy of the real env's own stream, saved with every state).
* :attr:`Model.many_futures` - whether a move searches ``planner.futures`` futures (K >= 2, each with ``N / K``
  of the move's ``N`` simulations, their roots combined by :func:`~torchrl_reg.planning.ensemble.combine_futures`)
  or one (:meth:`Model.futures`).
* :attr:`Model.diagnostic` - a measurement of what the model costs, not a planner (no agent reads its env's stream).

A model also owns its roots' streams (:meth:`Model.root_streams`): the single-tree engine's simulator of a move and the
batched engine's roots (:class:`~torchrl_reg.planning.tasks.Task`'s ``simulator`` and ``roots``) both take them from
it; nothing else interprets a model's name or stream. :data:`DEFAULT_MODEL` is the one default, of the tasks, the
snapshot stores and the planning recipe's ``planner.model``. The registry:

================  ==============  ==========  ====================================================================
model             stream          futures     what the search plans in
================  ==============  ==========  ====================================================================
``sampled``       ``working``     1           fresh outcomes at every chance visit (chance nodes)
``determinized``  ``planner``     1           one sampled future per move, replayed by every simulation (Xiao et
                                              al., NeurIPS 2019, Sec. 5 searched Atari this way)
``ensemble``      ``planner``     K >= 2      K determinized futures per move (future ``k``: planner stream row
                                              ``k``; future 0 is the determinized model's), roots combined
``oracle``        ``own``         1           the real future for the same actions: a diagnostic, not a planner
================  ==============  ==========  ====================================================================
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["DEFAULT_MODEL", "MODELS", "Model", "OWN", "PLANNER", "WORKING", "get_model", "planner_rng"]

Seed = int | Sequence[int]


def planner_rng(seed: Seed, row: int) -> np.random.RandomState:
    """The fresh random stream of root ``row`` drawn from the planner's ``seed`` (an int or ints, e.g. (episode seed,
    move)): ``RandomState(PCG64([*seed, row]))``."""
    entropy = [seed] if isinstance(seed, int) else list(seed)
    return np.random.RandomState(np.random.PCG64([*entropy, row]))

#: The stream of the sampled model: one working stream, not part of any state.
WORKING = "working"
#: A fresh stream per root from the planner's seed, saved with every state.
PLANNER = "planner"
#: A copy of the real env's own stream, saved with every state.
OWN = "own"


@dataclass(frozen=True)
class Model:
    """One model a planner plans in (module docstring)."""

    #: its ``planner.model`` name
    name: str
    #: where the search's random draws come from: :data:`WORKING`, :data:`PLANNER` or :data:`OWN`
    stream: str
    #: whether a move searches ``planner.futures`` futures (else one)
    many_futures: bool = False
    #: a measurement of what the model costs, not a planner
    diagnostic: bool = False

    @property
    def chance(self) -> bool:
        """Whether a (state, action) leads to a fresh outcome at every visit (the searches keep chance nodes)."""
        return self.stream == WORKING

    @property
    def snapshot_stream(self) -> bool:
        """Whether a state carries its random stream (so that every simulation replays it)."""
        return self.stream != WORKING

    def root_streams(self, seed: Seed, reals: Sequence[Any] | int, first: int = 0) -> list[np.random.RandomState]:
        """The random stream of each root, one per real MinAtar env of ``reals`` (``minatar.Environment`` objects), or
        ``reals`` roots of no env: :data:`WORKING`, one fresh working stream :func:`planner_rng` ``(seed, 0)`` that every
        root shares (it goes on across the simulations); :data:`PLANNER`, :func:`planner_rng` ``(seed, first + row)``
        each (``first``: the future of a single-tree search, whose rows are its futures); :data:`OWN`, a copy of each
        real env's own stream (refused unless its game draws from it too, as ``minatar.Environment.seed`` sets them)."""
        count = reals if isinstance(reals, int) else len(reals)
        if self.stream == WORKING:
            return [planner_rng(seed, 0)] * count
        if self.stream == PLANNER:
            return [planner_rng(seed, first + row) for row in range(count)]
        if isinstance(reals, int):
            raise ValueError(f"the {self.name} model copies the streams of real envs: take its roots from roots(envs, seed), not root(batch_size)")
        return [_own_stream(real, row, self.name) for row, real in enumerate(reals)]

    def futures(self, futures: int) -> int:
        """The futures a move searches when ``planner.futures`` is ``futures``."""
        return futures if self.many_futures else 1

    def label(self, futures: int) -> str:
        """The model for a figure: ``sampled model``, ``determinized model, 1 future``, ``ensemble model, 4 futures``
        (the futures of the models that plan in futures drawn from the planner's stream)."""
        if self.stream != PLANNER:
            return f"{self.name} model"
        k = self.futures(futures)
        return f"{self.name} model, {k} future{'s' if k != 1 else ''}"


#: The models a planner plans in, by name (module docstring); ``planner.model`` is one of its keys.
MODELS: dict[str, Model] = {m.name: m for m in (
    Model("sampled", WORKING),
    Model("determinized", PLANNER),
    Model("ensemble", PLANNER, many_futures=True),
    Model("oracle", OWN, diagnostic=True),
)}


#: The model a planner plans in when none is named: the planning recipe's ``planner.model``, the tasks' and the
#: snapshot stores'.
DEFAULT_MODEL = "sampled"


def _own_stream(real: Any, row: int, name: str) -> np.random.RandomState:
    """A copy of the real MinAtar env's stream (the oracle model), refused unless its game draws from it too."""
    if real.env.random is not real.random:
        raise ValueError(
            f"envs[{row}]: the {name} model needs the real game and its sticky actions on one stream "
            "(minatar.Environment.seed(s) sets both)"
        )
    return copy.deepcopy(real.random)


def get_model(model: str | Model) -> Model:
    """The :class:`Model` named ``model`` (one of :data:`MODELS`; a :class:`Model` is returned as it is)."""
    if isinstance(model, Model):
        return model
    if model not in MODELS:
        raise ValueError(f"the model must be one of {list(MODELS)}, got {model!r}")
    return MODELS[model]
