"""Exploration modules for Q-value actors.

* :class:`BoltzmannExploration` samples ``a ~ softmax(q / tau)`` (the stochastic policy of
  soft Q-learning and Munchausen RL, [MRL] Sec. 2); it acts greedily when
  TorchRL's exploration type is deterministic (``set_exploration_type(ExplorationType.DETERMINISTIC)``),
  which is how evaluation is run.
* :class:`AnnealedEpsilonGreedy` is TorchRL's :class:`~torchrl.modules.EGreedyModule` with a
  linear schedule from ``eps_init`` to ``eps_end`` over ``annealing_num_steps`` environment
  steps (call ``.step(frames)`` after each collected batch), greedy under deterministic
  exploration.
"""
from __future__ import annotations

import numbers
from collections.abc import Callable

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from tensordict.utils import NestedKey
from torchrl.data.tensor_specs import TensorSpec
from torchrl.data.utils import _find_action_space
from torchrl.envs.utils import ExplorationType, exploration_type
from torchrl.modules import EGreedyModule

from torchrl_reg import functional as F
from torchrl_reg.validation import check_tau

__all__ = ["BoltzmannExploration", "AnnealedEpsilonGreedy", "discrete_action_space", "linear_schedule"]


def discrete_action_space(owner: str, spec: TensorSpec | str, *, names: bool = False) -> str:
    """``"categorical"`` or ``"one_hot"``: how ``spec`` (a ``Categorical`` or ``OneHot`` spec; with ``names`` also the
    strings ``"categorical"`` / ``"one-hot"``) encodes a discrete action, read when ``owner`` (an exploration module
    drawing one of ``n`` actions) is built; anything else is refused naming ``owner``, the spec and what is
    accepted, where a ``Bounded`` spec was taken and failed at the first forward."""
    accepted = "a Categorical or OneHot action spec" + (" (or 'categorical' / 'one-hot')" if names else "")
    if isinstance(spec, str) and not names:
        space = None
    else:
        try:
            space = _find_action_space(spec)
        except (ValueError, KeyError, NotImplementedError, TypeError, AttributeError):
            space = None
    space = "one_hot" if space == "one-hot" else space
    if space not in ("categorical", "one_hot"):
        shown = spec if isinstance(spec, str) else type(spec).__name__
        raise ValueError(
            f"{owner} draws one of n discrete actions and needs {accepted}; got {shown!r}: a Box action (Bounded) is "
            "explored by the policy's own noise, not by this module"
        )
    return space


class BoltzmannExploration(TensorDictModuleBase):
    """Replace the greedy action of a Q-value actor by a sample of ``softmax(q / tau)``.

    Append it to a :class:`~torchrl.modules.QValueActor`:
    ``TensorDictSequential(actor, BoltzmannExploration(spec, tau=0.03))``.

    Args:
        spec (TensorSpec): the action spec (``Categorical`` or ``OneHot``).
        tau (float or callable): temperature > 0, or a function returning the current temperature
            (a 0-dim tensor, 0 meaning greedy), read at every call: VIREL's Bellman-error temperature
            (``tau=lambda: loss.temperature`` with :class:`~torchrl_reg.objectives.DiscreteVIRELLoss`).
            A tensor (or array) is refused: it may be a live buffer that changes in place, which a fixed
            float would silently freeze at its construction value; pass ``lambda: t`` (live) or
            ``float(t)`` (fixed).

    Keyword Args:
        action_key (NestedKey): action written by the actor. Defaults to ``"action"``.
        action_value_key (NestedKey): action values written by the actor. Defaults to ``"action_value"``.
    """

    def __init__(
        self,
        spec: TensorSpec,
        tau: float | Callable[[], torch.Tensor],
        *,
        action_key: NestedKey = "action",
        action_value_key: NestedKey = "action_value",
    ) -> None:
        if not callable(tau) and (not isinstance(tau, numbers.Real) or isinstance(tau, bool)):
            raise TypeError(
                f"BoltzmannExploration takes a number or a callable tau, got {type(tau).__name__} tau={tau!r}: "
                "pass tau=lambda: t to read a live temperature (e.g. loss.temperature) at every call, or "
                "tau=float(t) for a fixed one"
            )
        discrete_action_space("BoltzmannExploration", spec)
        super().__init__()
        self.tau = tau if callable(tau) else check_tau(tau)
        self.spec = spec
        self.action_key = action_key
        self.action_value_key = action_value_key
        self.in_keys = [action_value_key]
        self.out_keys = [action_key]

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        if exploration_type() in (ExplorationType.DETERMINISTIC, ExplorationType.MODE, ExplorationType.MEAN):
            return tensordict
        q = tensordict.get(self.action_value_key)
        if callable(self.tau):
            pi = F.boltzmann_policy_at_temperature(q, self.tau().to(q.device))
        else:
            pi = F.boltzmann_policy(q, self.tau)
        index = torch.multinomial(pi.reshape(-1, pi.shape[-1]), 1).reshape(pi.shape[:-1])
        action = tensordict.get(self.action_key)
        if action.shape == q.shape:  # one-hot
            action = torch.nn.functional.one_hot(index, q.shape[-1]).to(action.dtype)
        else:
            action = index.view(action.shape).to(action.dtype)
        tensordict.set(self.action_key, action)
        return tensordict


class AnnealedEpsilonGreedy(EGreedyModule):
    """Epsilon-greedy with linear annealing (TorchRL's ``EGreedyModule``), argument-checked.

    Args:
        spec (TensorSpec): the action spec.
        eps_init (float): initial epsilon in [0, 1]. Default 1.0.
        eps_end (float): final epsilon in [0, 1]. Default 0.01 (Atari protocol).
        annealing_num_steps (int): environment steps of the linear schedule (> 0).
    """

    def __init__(
        self,
        spec: TensorSpec,
        eps_init: float = 1.0,
        eps_end: float = 0.01,
        annealing_num_steps: int = 250_000,
        **kwargs,
    ) -> None:
        for name, value in (("eps_init", eps_init), ("eps_end", eps_end)):
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {name}={value}")
        if int(annealing_num_steps) < 1:
            raise ValueError(f"annealing_num_steps must be >= 1, got annealing_num_steps={annealing_num_steps}")
        super().__init__(
            spec, eps_init=eps_init, eps_end=eps_end, annealing_num_steps=int(annealing_num_steps), **kwargs
        )


def linear_schedule(start: float, end: float, duration: int, t: int) -> float:
    """``start`` moved linearly to ``end`` over ``duration`` steps, then held (CleanRL's epsilon schedule):
    :class:`AnnealedEpsilonGreedy`'s epsilon in closed form, which the value-based loop sets after each batch."""
    if t >= duration:
        return end
    return start + (end - start) * t / duration
