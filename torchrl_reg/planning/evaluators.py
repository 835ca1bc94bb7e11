"""Leaf evaluation: what a search believes about a node it has just added.

An evaluator returns ``(value, q_init)``: an estimate of the node's value and, optionally, the
initial action values of its untried actions (``None`` keeps the search's constant default). One evaluator object
serves both searches, as a part does: :class:`~torchrl_reg.planning.search.TreeSearch` calls it on one simulator,
``evaluator(simulator) -> (value, q_init or None)``, and :class:`~torchrl_reg.planning.batched.BatchedTreeSearch` on a
batch of states of a tensor simulator, ``evaluator(simulator, states, gamma) -> (values [B], q_init [B, A] or None)``
(all rows stepped together, one network forward for all leaves).

* :class:`RandomRollout` - the return of uniformly random actions (the classic MCTS default).
* :class:`QNetworkEvaluator` - a Q network as in MENTS's Atari experiment (Xiao et al.,
  Maximum Entropy Monte-Carlo Planning, NeurIPS 2019, Sec. 5): the leaf value is the network's
  soft (``tau logsumexp(Q / tau)``) or max value, and the untried actions start from the
  network's Q values (``init="q"``), the log of its Boltzmann prior or the search's constant.
"""
from __future__ import annotations

import inspect
import math
import random
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from torchrl_reg.plain_state import decode, encode
from torchrl_reg.planning.simulators import Simulator
from torchrl_reg.planning.tensor_simulators import TensorSimulator
from torchrl_reg.validation import check_positive

__all__ = ["RandomRollout", "QNetworkEvaluator", "check_evaluator", "evaluator_result_refusal"]


class RandomRollout:
    """Sum of (discounted) rewards of uniformly random actions until the episode ends or ``max_steps``, in both searches.

    One simulator (:class:`~torchrl_reg.planning.search.TreeSearch`): the actions are drawn from a ``random.Random``
    seeded ``seed``, discounted by ``gamma`` (the search refuses another ``gamma`` than its own). A batch of states
    ``[B, *S]`` (:class:`~torchrl_reg.planning.batched.BatchedTreeSearch`): all rows stepped together, the action
    ``floor(u |A|)`` of a uniform ``u`` (the draw of the single simulator's), drawn from a ``torch.Generator`` seeded
    ``seed`` per device, or from ``uniform`` (``n -> [n]`` uniforms in [0, 1)) where given; discounted by the
    search's ``gamma``, passed in.
    """

    def __init__(
        self, *, max_steps: int = 100, gamma: float = 1.0, seed: int = 0, uniform: Callable[[int], torch.Tensor] | None = None,
    ):
        if not isinstance(max_steps, int) or max_steps < 0:
            raise ValueError(f"max_steps must be an int >= 0, got max_steps={max_steps!r}")
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got gamma={gamma}")
        self.max_steps = max_steps
        self.gamma = gamma
        self.seed = seed
        self.rng = random.Random(seed)
        self.uniform = uniform
        self._generators: dict[torch.device, torch.Generator] = {}

    def rng_state(self) -> dict[str, Any]:
        """The rollouts' random streams as plain data (a checkpoint's: the single simulator's stream and the batch's
        generators, one per device drawn on); :meth:`load_rng_state` restores them. Refused where ``uniform`` replaces
        the generator (its state is the caller's)."""
        if self.uniform is not None:
            raise TypeError("RandomRollout(uniform=...) draws from the caller's stream: it has no state of its own to save")
        return {"rng": encode(self.rng.getstate()),
                "generators": {str(device): generator.get_state() for device, generator in self._generators.items()}}

    def load_rng_state(self, state: dict[str, Any]) -> None:
        if self.uniform is not None:
            raise TypeError("RandomRollout(uniform=...) draws from the caller's stream: it has no state of its own to load")
        if not (isinstance(state, dict) and set(state) == {"rng", "generators"}):  # a checkpoint of one form's stream alone
            state = {"rng": encode(self.rng.getstate()), "generators": state} if isinstance(state, dict) else {
                "rng": state, "generators": {str(device): g.get_state() for device, g in self._generators.items()}}
        self.rng.setstate(decode(state["rng"]))
        self._generators = {}
        for device, generator_state in state["generators"].items():
            generator = torch.Generator(device=torch.device(device))
            generator.set_state(generator_state)
            self._generators[torch.device(device)] = generator

    def __call__(self, sim: Any, states: torch.Tensor | None = None, gamma: float | None = None) -> tuple[Any, None]:
        if states is not None:
            return self._rows(sim, states, gamma), None
        total, discount, k = 0.0, 1.0, sim.num_actions
        rand = self.rng.random
        for _ in range(self.max_steps):
            reward, done = sim.step(int(rand() * k))
            total += discount * reward
            discount *= self.gamma
            if done:
                break
        return total, None

    def _draw(self, n: int, device: torch.device) -> torch.Tensor:
        if self.uniform is not None:
            return self.uniform(n).to(device)
        if device not in self._generators:
            self._generators[device] = torch.Generator(device=device).manual_seed(self.seed)
        return torch.rand(n, generator=self._generators[device], dtype=torch.float64, device=device)

    def _rows(self, sim: TensorSimulator, state: torch.Tensor, gamma: float) -> torch.Tensor:
        batch, k = state.shape[0], sim.num_actions
        total = torch.zeros(batch, dtype=torch.float64, device=state.device)
        alive = torch.ones(batch, dtype=torch.bool, device=state.device)
        discount = 1.0
        for _ in range(self.max_steps):
            action = (self._draw(batch, state.device) * k).long().clamp_max(k - 1)
            state, reward, done = sim.step(state, action)
            total = torch.add(total, torch.where(alive, reward, 0.0), alpha=discount)
            discount *= gamma
            alive = alive & ~done
            if not bool(alive.any()):
                break
        return total


class QNetworkEvaluator:
    """Leaf value and initial values from a Q network over the simulator's observations, in both searches: one forward
    of ``sim.observation()`` (one simulator) or of ``sim.observation(states)`` (a batch of states).

    Args:
        q_network: maps a batch of observations ``(B, *obs_shape)`` to ``(B, num_actions)``. Observations are
            cast to the dtype of the network's floating parameters, except uint8 images (the image torsos
            scale those themselves): the D-chain's, a synthetic tree's and FrozenLake's int64 indices feed a
            float network as they are.
        num_actions: the simulator's action count; a search over a simulator with another one, and a network
            with another output size, are refused.
        tau: temperature of the prior ``softmax(Q / tau)`` and of the soft leaf value (> 0).
        value: ``"soft"`` (``tau logsumexp(Q / tau)``, MENTS) or ``"max"`` (``max_a Q``).
        init: the initial value of a new node's untried actions, which the search's values are
            compared with before the action is tried (E2W's and BTS/DENTS's softmax, MENTS's soft
            backup over all actions):

            * ``"q"`` (default) - the network's Q values, in the units of the backed-up returns:
              the prior stays in play (our reading of MENTS's Atari setting, Sec. 5: the pretrained
              DQN initialises the soft values of new nodes). Use it whenever the network's values
              are returns of the searched task (same reward scale and discount).
            * ``"log_prior"`` - ``log softmax(Q / tau)`` (<= 0, log-probability units). Against
              returns of 5-30 every untried action looks worthless: the first action at each node
              is near uniform and untried actions drop out of the soft value, so the network only
              enters through the leaf values. Kept for the earlier MinAtar rows.
            * ``"none"`` - the search's constant ``q_init`` (0 by default), for a network whose
              values are on another scale than the search's returns.

    The batched search checks that the values of the leaves it evaluates are finite.
    """

    VALUES = ("soft", "max")
    INITS = ("log_prior", "q", "none")

    def __init__(
        self,
        q_network: Any,
        *,
        num_actions: int,
        tau: float = 1.0,
        value: str = "soft",
        init: str = "q",
        device: str | torch.device = "cpu",
    ):
        if value not in self.VALUES:
            raise ValueError(f"value must be one of {self.VALUES}, got value={value!r}")
        if init not in self.INITS:
            raise ValueError(f"init must be one of {self.INITS}, got init={init!r}")
        self.q_network = q_network
        self.num_actions = num_actions
        self.tau = check_positive("tau", tau)
        self.value = value
        self.init = init
        self.device = torch.device(device)
        self.calls = 0
        parameters = getattr(q_network, "parameters", None)
        floating = [p.dtype for p in parameters() if p.is_floating_point()] if callable(parameters) else []
        # the dtype observations are cast to (None: a plain function, fed what the simulator observes)
        self.input_dtype = floating[0] if floating else None

    def check_actions(self, num_actions: int) -> None:
        """Refuse a simulator whose action count is not this evaluator's (the searches call it when built)."""
        if num_actions != self.num_actions:
            raise ValueError(
                f"{type(self).__name__}(num_actions={self.num_actions}) cannot evaluate a simulator with {num_actions} "
                "actions: one action value per simulator action"
            )

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        """The network's action values ``[B, num_actions]`` (float64) of observations ``[B, *obs_shape]``, cast as
        the class docstring says; a network with another output shape is refused."""
        obs = observations.to(self.device)
        if self.input_dtype is not None and obs.dtype not in (torch.uint8, self.input_dtype):
            obs = obs.to(self.input_dtype)
        q = self.q_network(obs)
        if q.shape != (obs.shape[0], self.num_actions):
            raise ValueError(
                f"the Q network outputs action values of shape {tuple(q.shape)} for {obs.shape[0]} observations, "
                f"expected ({obs.shape[0]}, {self.num_actions}): one value per simulator action"
            )
        return q.double()

    @torch.no_grad()
    def q_values(self, observation: np.ndarray) -> np.ndarray:
        """The network's action values of one observation (float64 numpy)."""
        return self.forward(torch.as_tensor(observation).unsqueeze(0))[0].cpu().numpy()

    def __call__(self, sim: Any, states: torch.Tensor | None = None, gamma: float | None = None) -> tuple[Any, Any]:
        self.calls += 1
        self.check_actions(sim.num_actions)
        if states is not None:
            return self._rows(sim, states)
        q = self.q_values(sim.observation())
        top = float(q.max())
        log_z = math.log(float(np.exp((q - top) / self.tau).sum()))
        value = top + self.tau * log_z if self.value == "soft" else top
        if not np.isfinite(q).all():
            raise ValueError(f"the Q network returned non-finite action values {q.tolist()}; a tree search needs finite values")
        if self.init == "log_prior":
            return value, ((q - top) / self.tau - log_z).tolist()
        if self.init == "q":
            return value, q.tolist()
        return value, None

    @torch.no_grad()
    def _rows(self, sim: TensorSimulator, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        q = self.forward(sim.observation(state))
        soft = self.tau * torch.logsumexp(q / self.tau, dim=-1)
        value = soft if self.value == "soft" else q.amax(-1)
        if self.init == "log_prior":
            return value, torch.log_softmax(q / self.tau, dim=-1)
        return value, q if self.init == "q" else None


def evaluator_rng_state(evaluator: Any) -> Any:
    """An evaluator's random streams as plain data: its ``rng_state()``, or None for one that draws nothing (a Q
    network); a search's ``rng_state`` holds it."""
    own = getattr(evaluator, "rng_state", None)
    return own() if callable(own) else None


def load_evaluator_rng_state(evaluator: Any, state: Any) -> None:
    """Inverse of :func:`evaluator_rng_state`."""
    own = getattr(evaluator, "load_rng_state", None)
    if callable(own):
        own(state)
    elif state is not None:
        raise ValueError(f"the saved state has the streams of an evaluator that draws; {type(evaluator).__name__} draws nothing")


#: How each loop calls its leaf evaluation, and the loop and factory call of the other (:func:`check_evaluator`).
_LOOPS = {
    False: ("evaluator(simulator) -> (value, q_init or None), one leaf at a time", "(simulator)",
            "BatchedTreeSearch (make_search(..., batched=True))"),
    True: ("evaluator(simulator, states, gamma) -> (values, q_init or None), all new leaves at once",
           "(simulator, states, gamma)", "TreeSearch (make_search(..., batched=False))"),
}


def check_evaluator(evaluator: Any, *, batched: bool, owner: str, gamma: float, num_actions: int) -> None:
    """Refuse a leaf evaluation that ``owner`` (the search being built: ``batched`` for
    :class:`~torchrl_reg.planning.batched.BatchedTreeSearch`, else :class:`~torchrl_reg.planning.search.TreeSearch`)
    cannot call, before any simulation runs: one that is not callable, or one whose signature does not take the
    loop's arguments (the error names them), one whose discount (``gamma``, where it has one) is not the search's,
    and one that cannot evaluate ``num_actions`` actions (``check_actions``, where it has one: a Q network's). ``None``
    (the loop's random rollout) and a callable without a readable signature pass."""
    if evaluator is None:
        return
    evaluator_gamma = getattr(evaluator, "gamma", gamma)
    if evaluator_gamma != gamma:
        raise ValueError(
            f"{type(evaluator).__name__}(gamma={evaluator_gamma}) and the search's gamma={gamma} disagree: one "
            "discount for the tree and its leaf estimates"
        )
    check_actions = getattr(evaluator, "check_actions", None)
    if check_actions is not None:  # a Q network evaluator: one action value per simulator action
        check_actions(num_actions)
    calls, arguments, other = _LOOPS[batched]
    name = getattr(evaluator, "__name__", None) or type(evaluator).__name__  # a function's name, else its class's
    if not callable(evaluator):
        raise TypeError(f"{owner} calls its evaluator as {calls}; got a {name}, which is not callable")
    try:
        signature = inspect.signature(evaluator)
    except (TypeError, ValueError):
        return  # a builtin or extension callable: nothing to read, called as is
    if not _takes(signature, 3 if batched else 1):
        fix = f"give it the arguments {arguments}"
        if _takes(signature, 1 if batched else 3):
            fix += f", or search with {other}, whose evaluator it is"
        takes = ", ".join(str(p.replace(annotation=inspect.Parameter.empty)) for p in signature.parameters.values())
        raise TypeError(f"{owner} calls its evaluator as {calls}; {name}({takes}) cannot be called so: {fix}")


def evaluator_result_refusal(owner: str, result: Any, *, batched: bool) -> TypeError:
    """The refusal of what an evaluator returned when it is not the pair the search ``owner`` reads: ``(value,
    q_init or None)``, a number (``batched``: a ``[B]`` tensor of values) and the initial action values or ``None``.
    Raised at the search's first leaf, where unpacking failed with "cannot unpack non-iterable float object"."""
    calls, _, _ = _LOOPS[batched]
    shown = repr(result)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    value = "a [B] tensor of leaf values" if batched else "a number (the leaf's value)"
    example = "lambda simulator, states, gamma: (values, None)" if batched else "lambda simulator: (0.0, None)"
    return TypeError(
        f"{owner} calls its evaluator as {calls}: it must return a pair, {value} and the initial action values or "
        f"None; it returned {shown} (a {type(result).__name__}). Return the pair, e.g. {example}"
    )


def _takes(signature: inspect.Signature, count: int) -> bool:
    try:
        signature.bind(*(None,) * count)
    except TypeError:
        return False
    return True
