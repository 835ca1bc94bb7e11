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

The scalar engine's simulator of a move (:func:`~torchrl_reg.planning.tasks.model_simulator`) and the batched
engine's (:func:`~torchrl_reg.planning.tasks.make_tensor_task`) read these attributes; nothing else interprets a
model's name. The registry:

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

from dataclasses import dataclass

__all__ = ["MODELS", "Model", "OWN", "PLANNER", "WORKING", "get_model"]

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


def get_model(model: str | Model) -> Model:
    """The :class:`Model` named ``model`` (one of :data:`MODELS`; a :class:`Model` is returned as it is)."""
    if isinstance(model, Model):
        return model
    if model not in MODELS:
        raise ValueError(f"the model must be one of {list(MODELS)}, got {model!r}")
    return MODELS[model]
