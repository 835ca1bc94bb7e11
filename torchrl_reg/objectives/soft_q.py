"""Soft Q-learning with continuous actions: the soft Q critic and the amortized SVGD actor.

Reference: [SQL] Haarnoja, Tang, Abbeel, Levine, "Reinforcement Learning with Deep Energy-Based
Policies", ICML 2017, arXiv:1702.08165 (Algorithm 1; Eq. 10-11 for the critic, Eq. 13-14 for the
sampler), with Stein variational gradient descent from Liu & Wang, NeurIPS 2016, arXiv:1608.04471.

Two losses, as the paper trains two networks: :class:`SoftQLoss` regresses ``Q(s, a)`` on the
importance-sampled soft Bellman target; :class:`SVGDPolicyLoss` moves the particles of the
:class:`~torchrl_reg.modules.soft_q.AmortizedSampler` towards ``exp(Q(s, .)/tau)``.
:class:`TemperatureSchedule` anneals ``tau`` of both.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from tensordict import TensorDict, TensorDictBase, TensorDictParams
from tensordict.nn import TensorDictModule, dispatch
from tensordict.utils import NestedKey, unravel_key
from torchrl.data import TensorSpec
from torchrl.objectives import LossModule
from torchrl.objectives.utils import ValueEstimators, distance_loss

from torchrl_reg import functional as F
from torchrl_reg.modules.policies import box_bounds
from torchrl_reg.modules.soft_q import AmortizedSampler, defensive_mixture_proposal, mixture_split, uniform_proposal
from torchrl_reg.objectives.common import ActorCriticLossBase, check_same_dtype_and_device, prioritized_weights
from torchrl_reg.validation import (
    ArgumentChecks,
    check_choice,
    check_count,
    check_positive,
    check_range,
    check_read,
    check_stable_tau,
)

__all__ = ["SoftQLoss", "SVGDPolicyLoss", "SoftQLearningLoss", "TemperatureSchedule"]

_PROPOSALS = ("uniform", "mixture")
_SPACES = ("squashed", "pre_tanh", "barrier")
#: ``|a| > SATURATION`` (on the Box scaled to ``[-1, 1]``) counts a sampler particle as saturated.
SATURATION = 0.99
_LOSS_FUNCTIONS = ("l2", "l1", "smooth_l1")
_REDUCTIONS = ("mean", "sum", "none")

#: ``uniform_weight``'s default, the only value accepted with ``proposal="uniform"`` (which has no mixture).
DEFAULT_UNIFORM_WEIGHT = 0.5


def _check_reduction(reduction: str | None) -> str:
    reduction = "mean" if reduction is None else reduction
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got reduction={reduction!r}")
    return reduction


def _sampler_of(actor: TensorDictModule) -> AmortizedSampler:
    module = getattr(actor, "module", None)
    if not isinstance(module, AmortizedSampler):
        raise ValueError(
            "the actor must be a TensorDictModule around an AmortizedSampler "
            f"(see torchrl_reg.modules.soft_q.svgd_sampler_actor), got a module of type {type(module).__name__}"
        )
    return module


class _TemperatureMixin:
    """``tau`` kept as a 0-dim buffer, so that :class:`TemperatureSchedule` can change it in place; the
    schedule's start value and step count are buffers too, so a checkpoint of the loss resumes it."""

    def _init_tau(self, tau: float) -> None:
        """``tau`` as :meth:`check_arguments` returned it."""
        self.register_buffer("_tau", torch.tensor(tau))
        self.register_buffer("_tau_initial", torch.tensor(tau))
        self.register_buffer("_tau_annealing_steps", torch.tensor(0, dtype=torch.long))

    @property
    def tau(self) -> torch.Tensor:
        return self._tau

    def set_tau(self, tau: float) -> None:
        """Set the temperature (checked: in [1e-4, 10], :data:`~torchrl_reg.validation.STABLE_TAU`)."""
        self._tau.fill_(check_stable_tau("tau", tau))


def _particle_values(
    qvalue_network: TensorDictModule,
    params: TensorDictBase,
    observations: TensorDictBase,
    actions: torch.Tensor,
    action_key: NestedKey,
    value_key: NestedKey,
) -> torch.Tensor:
    """``Q(s, a_j)`` for the states of ``observations`` (batch ``[...]``) and particles ``actions [..., M, d]``
    -> ``[..., M]``."""
    num_particles = actions.shape[-2]
    td = observations.unsqueeze(-1).expand(*observations.batch_size, num_particles).clone(False)
    td.set(action_key, actions)
    with params.to_module(qvalue_network, preserve_module_state=False):
        return qvalue_network(td).get(value_key).squeeze(-1)


class SoftQLoss(_TemperatureMixin, ActorCriticLossBase):
    r"""Soft Q-learning critic loss ([SQL] Eq. 10-11, Algorithm 1):

    .. math:: J_Q(\theta) = \hat{\mathbb E}\Big[\tfrac12\big(Q_\theta(s_t, a_t)
              - (c\, r_t + \gamma (1 - d_t) \hat V_{\bar\theta}(s_{t+1}))\big)^2\Big],
    .. math:: \hat V_{\bar\theta}(s) = \tau \ln \frac1M \sum_{j=1}^M
              \frac{\exp(Q_{\bar\theta}(s, a_j)/\tau)}{q(a_j)}, \quad a_j \sim q

    with ``c = reward_scale`` and the target parameters :math:`\bar\theta`. The temperature ``tau``
    is explicit; the reference implementation fixes ``tau = 1`` and sets ``reward_scale`` instead
    (30 on Hopper and HalfCheetah): ``SoftQLoss(..., tau=1, reward_scale=30)`` runs it as published,
    and ``(tau, c)`` and ``(tau / c, 1)`` give the same policy with Q scaled by ``1/c``.

    Proposals ``q`` (``M = num_value_particles`` draws per next state, independent across states):

    * ``"uniform"`` (the reference): uniform on the Box, :math:`\ln q = -\sum_k \ln(\mathrm{high}_k -
      \mathrm{low}_k)`, the ``d ln 2`` term on :math:`[-1, 1]^d`.
    * ``"mixture"``: the defensive mixture of
      :func:`~torchrl_reg.modules.soft_q.defensive_mixture_proposal`, uniform (weight
      ``uniform_weight``) plus a tanh-Gaussian fitted to ``num_fit_particles`` particles of the
      sampler at :math:`s_{t+1}`. Needs ``actor``. Lower variance when ``exp(Q/tau)`` is peaked, as in
      higher dimensions (``benchmarks/sql_soft_value.py`` measures it).

    Both make the mean inside the logarithm unbiased for :math:`\exp(V/\tau)`; :math:`\hat V` is biased
    low by Jensen's inequality, less so with fewer weight fluctuations.

    Target network: :math:`\bar\theta` is a separate copy (``convert_to_functional``; never an alias
    of the online parameters). Update it with TorchRL's ``HardUpdate(loss,
    value_network_update_interval=999)``, a copy every 1000 updates as in the reference (TorchRL's
    ``HardUpdate`` copies on every ``(interval + 1)``-th step), or ``SoftUpdate(loss, tau=...)``.
    ``gamma`` lives in the value estimator (``loss.make_value_estimator(gamma=0.99)``, TD(0));
    a terminated transition cuts the bootstrap, a truncated one does not.

    Args:
        qvalue_network: ``Q(s, a)``, e.g. :func:`~torchrl_reg.modules.state_action_value_network`,
            reading the observation keys and ``"action"`` and writing ``"state_action_value"``.

    Keyword Args:
        action_spec: the Box action spec (bounds of the proposal). Unbounded spaces are refused.
        tau: temperature in [1e-4, 10] (:data:`~torchrl_reg.validation.STABLE_TAU`; ``tau=1e-30`` divides Q
            by 1e-30 and diverges). reward_scale: multiplies the rewards (> 0).
        num_value_particles: ``M >= 2`` (reference: 16). proposal: ``"uniform"`` or ``"mixture"``.
        actor: the sampler actor (for ``proposal="mixture"``).
        num_fit_particles: sampler particles per state fitted by the mixture's Gaussian (>= 2).
        uniform_weight: the mixture's uniform weight in ``(0, 1)``; with ``proposal="uniform"`` only its
            default is accepted (a value there would be ignored).
        loss_function: ``"l2"`` (the paper's square, halved), ``"l1"`` or ``"smooth_l1"``.
        delay_qvalue: keep target parameters (True, the paper); False bootstraps from the online ones.
        reduction, use_prioritized_weights, check_finite: as in
            :class:`~torchrl_reg.objectives.RegularizedLossBase`.

    The output holds ``"loss"`` and the detached diagnostics ``"state_action_value"``,
    ``"next_state_value"`` (:math:`\hat V(s_{t+1})`), ``"td_error"`` and ``"effective_sample_size"``
    (:math:`(\sum w)^2 / \sum w^2` of the importance weights, between 1 and M). The squared TD error is
    written in place under the priority key (shape ``[..., 1]``).
    """

    @dataclass
    class _AcceptedKeys:
        """Configurable tensordict keys (``loss.set_keys(...)``).

        Attributes:
            action: the action taken and the Q-network's action input. Defaults to ``"action"``.
            value: the Q-network's output. Defaults to ``"state_action_value"``.
            reward, done, terminated: read under ``"next"``.
            priority: where the squared TD error is written. Defaults to ``"td_error"``.
            priority_weight: importance weights of a prioritized buffer. Defaults to ``"priority_weight"``.
            steps_to_next_obs: steps to the bootstrap state (:class:`torchrl_reg.data.MultiStep`).
        """

        action: NestedKey = "action"
        value: NestedKey = "state_action_value"
        reward: NestedKey = "reward"
        done: NestedKey = "done"
        terminated: NestedKey = "terminated"
        priority: NestedKey = "td_error"
        priority_weight: NestedKey = "priority_weight"
        steps_to_next_obs: NestedKey = "steps_to_next_obs"

    default_keys = _AcceptedKeys
    tensor_keys: _AcceptedKeys
    out_keys = ["loss", "state_action_value", "next_state_value", "td_error", "effective_sample_size"]
    _network_names = ("qvalue_network",)
    network_outputs = {"qvalue_network": "value"}
    #: The critic alone: the sampler (``actor``, read by the mixture proposal) is checked as one (``_sampler_of``).
    critic_argument = "qvalue_network"
    #: the proposal's particles are drawn inside the loss: no fused, compiled update.
    fusable_update = False
    read_module_fix = "convert it too (actor.to(...)), or convert the SoftQLearningLoss that holds both"

    qvalue_network: TensorDictModule
    qvalue_network_params: TensorDictParams
    target_qvalue_network_params: TensorDictParams

    argument_checks = {
        "tau": check_stable_tau,
        "reward_scale": check_positive,
        "num_value_particles": partial(check_count, minimum=2),
        "proposal": partial(check_choice, choices=_PROPOSALS),
        "num_fit_particles": partial(check_count, minimum=2),
        "uniform_weight": partial(check_range, low=0.0, high=1.0, low_inclusive=False, high_inclusive=False),
        "loss_function": partial(check_choice, choices=_LOSS_FUNCTIONS),
    }

    @classmethod
    def check_argument_relations(cls, arguments, prefix):
        proposal, weight = arguments.get("proposal"), arguments.get("uniform_weight")
        if proposal == "uniform" and weight is not None:
            check_read(f"{prefix}uniform_weight", weight, DEFAULT_UNIFORM_WEIGHT, f"{prefix}proposal='uniform'")
        elif proposal == "mixture" and weight is not None and "num_value_particles" in arguments:
            mixture_split(weight, arguments["num_value_particles"])  # both components drawn at least once

    def __init__(
        self,
        qvalue_network: TensorDictModule,
        *,
        action_spec: TensorSpec,
        tau: float = 1.0,
        reward_scale: float = 1.0,
        num_value_particles: int = 16,
        proposal: str = "uniform",
        actor: TensorDictModule | None = None,
        num_fit_particles: int = 16,
        uniform_weight: float = DEFAULT_UNIFORM_WEIGHT,
        loss_function: str = "l2",
        delay_qvalue: bool = True,
        **kwargs,
    ) -> None:
        low, high = box_bounds(action_spec, "SoftQLoss's importance-sampled soft value")
        if proposal == "mixture":
            if actor is None:
                raise ValueError("proposal='mixture' fits a tanh-Gaussian to the sampler's particles: pass actor=")
            _sampler_of(actor)
        super().__init__(**kwargs)
        self._init_tau(tau)
        self.register_buffer("low", low.float())
        self.register_buffer("high", high.float())
        self.reward_scale = reward_scale
        self.num_value_particles = num_value_particles
        self.proposal = proposal
        self.num_fit_particles = num_fit_particles
        self.uniform_weight = float(uniform_weight)
        self.loss_function = loss_function
        self.delay_qvalue = delay_qvalue
        self.convert_to_functional(qvalue_network, "qvalue_network", create_target_params=delay_qvalue)
        # The sampler is only read (its current parameters fit the proposal): a plain reference, so
        # that its parameters are neither trained nor saved by this loss.
        self.__dict__["_actor"] = actor

    # -- keys ---------------------------------------------------------------------------------
    def _observation_keys(self) -> list[NestedKey]:
        return [key for key in self.qvalue_network.in_keys if unravel_key(key) != unravel_key(self.tensor_keys.action)]

    def _in_key_list(self) -> list[NestedKey]:
        keys = self.tensor_keys
        observation_keys = self._observation_keys()
        return [
            keys.action,
            *observation_keys,
            *[("next", key) for key in (keys.reward, keys.done, keys.terminated, *observation_keys)],
        ]

    def _loss_params(self) -> TensorDictBase:
        return self.qvalue_network_params

    def _action_shape(self) -> torch.Size:
        return self.low.shape

    def _action_bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        # The proposal covers [low, high] only: Q learned outside the box is never sampled nor bootstrapped.
        return self.low, self.high

    def _read_modules(self) -> dict[str, torch.nn.Module]:
        # The sampler fits the mixture proposal, of the loss or of soft_value(proposal="mixture"): checked when held.
        actor = self.__dict__["_actor"]
        return {} if actor is None else {"mixture proposal's sampler (actor=)": actor}

    # -- soft value ---------------------------------------------------------------------------
    def _proposal(
        self, next_observations: TensorDictBase, proposal: str, num_particles: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        batch_shape = next_observations.batch_size
        if proposal == "uniform":
            return uniform_proposal(self.low, self.high, batch_shape, num_particles)
        actor = self.__dict__["_actor"]
        if actor is None:
            raise ValueError("proposal='mixture' fits a tanh-Gaussian to the sampler's particles: build the loss with actor=")
        sampler = _sampler_of(actor)
        observation = next_observations.get(actor.in_keys[0])
        pre_tanh, _ = sampler.sample_particles(observation, self.num_fit_particles)
        return defensive_mixture_proposal(pre_tanh, self.low, self.high, num_particles, uniform_weight=self.uniform_weight)

    def soft_value(
        self,
        next_observations: TensorDictBase,
        params: TensorDictBase | None = None,
        *,
        proposal: str | None = None,
        num_particles: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """``V_hat(s)`` ([SQL] Eq. 10) at the states of ``next_observations`` with ``params`` (default:
        the target parameters), and the effective sample size of its importance weights.

        ``proposal`` and ``num_particles`` default to the loss's own (``proposal``,
        ``num_value_particles``); other values measure another estimator at the same parameters (the SQL
        recipe logs the bias and ESS of both proposals against a many-particle estimate this way).
        """
        proposal = self.proposal if proposal is None else proposal
        if proposal not in _PROPOSALS:
            raise ValueError(f"proposal must be one of {_PROPOSALS}, got proposal={proposal!r}")
        num_particles = self.num_value_particles if num_particles is None else check_count("num_particles", num_particles, 2)
        self._check_read_modules()
        if params is None:
            params = self.target_qvalue_network_params if self.delay_qvalue else self.qvalue_network_params
        with torch.no_grad():
            actions, log_q = self._proposal(next_observations, proposal, num_particles)
            q = _particle_values(
                self.qvalue_network, params, next_observations, actions, self.tensor_keys.action, self.tensor_keys.value
            )
            value = F.importance_sampled_soft_value(q, log_q, self.tau)
            log_w = q / self.tau - log_q
            ess = torch.exp(2 * torch.logsumexp(log_w, -1) - torch.logsumexp(2 * log_w, -1))
        return {"value": value, "effective_sample_size": ess}

    # -- loss ---------------------------------------------------------------------------------
    def loss_and_outputs(
        self, tensordict: TensorDictBase, params: TensorDictBase
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """[SQL] Eq. 11 at the online parameters ``params``: ``(loss, priority, diagnostics)``.

        :meth:`forward` (the shared base's) checks the batch, calls this at ``qvalue_network_params``
        and writes the priority (the squared TD error, ``[..., 1]``) in place.
        """
        keys = self.tensor_keys
        observation_keys = self._observation_keys()
        with params.to_module(self.qvalue_network, preserve_module_state=False):
            pred = self.qvalue_network(tensordict.select(*observation_keys, keys.action)).get(keys.value).squeeze(-1)

        soft = self.soft_value(tensordict.get("next").select(*observation_keys))
        td = self._bool_flags(tensordict).clone(False)
        td.set(("next", keys.reward), tensordict.get(("next", keys.reward)) * self.reward_scale)
        with torch.no_grad():
            target = self.value_estimator.value_estimate(td, next_value=soft["value"].unsqueeze(-1)).squeeze(-1)
            td_error = (pred - target).pow(2)
        loss = 0.5 * distance_loss(pred, target, self.loss_function)
        loss = self._reduce_loss(loss, tensordict=tensordict, weights=self._weights(tensordict, loss.shape))
        diagnostics = {
            "state_action_value": pred.detach(),
            "next_state_value": soft["value"],
            "td_error": td_error,
            "effective_sample_size": soft["effective_sample_size"],
        }
        return loss, td_error.unsqueeze(-1), {k: self._reduce_diagnostic(v) for k, v in diagnostics.items()}


class SVGDPolicyLoss(_TemperatureMixin, ArgumentChecks, LossModule):
    r"""Amortized Stein variational gradient for the sampler of soft Q-learning ([SQL] Eq. 13-14).

    For each state, ``K = num_particles`` actions ``a = squash(f(s, xi))``, ``xi ~ N(0, I)``, are
    split into ``K_f = round(fixed_ratio * K)`` fixed particles (no gradient) and ``K - K_f`` updated
    ones. With the target log-density :math:`\ln p`, the direction at an updated particle is

    .. math:: \Delta(x_i) = \frac{1}{K_f}\sum_{j \le K_f}\big[k(x_j, x_i) \nabla_{x_j}\ln p(x_j)
              + \nabla_{x_j} k(x_j, x_i)\big]

    (:func:`~torchrl_reg.functional.svgd_direction`, RBF kernel with the median bandwidth
    :func:`~torchrl_reg.functional.median_bandwidth`, no gradient through ``h``), and the loss
    :math:`-\hat{\mathbb E}[\Delta(x_i)^\top x_i]` with :math:`\Delta` held fixed, whose gradient is
    :math:`-\hat{\mathbb E}[\Delta\, \partial x_i / \partial\phi]` ([SQL] Eq. 14): descending it moves
    the sampler's outputs along :math:`\Delta`. The mean runs over states and updated particles.

    ``space`` says where the particles live; what each does at the Box's boundary decides whether the
    sampler can represent a policy whose ``exp(Q/tau)`` rises towards the boundary (measured on the
    truncated exponential target ``exp(G a)`` per dimension on ``[-1, 1]^d``, whose mean and standard
    deviation are closed-form: ``tests/objectives/test_soft_q.py::test_sampler_on_a_truncated_exponential``):

    * ``"pre_tanh"`` (the default): :math:`x = u`, with :math:`a = \mathrm{squash}(u)`;
      :math:`\ln p(u) = Q(s, \mathrm{squash}(u))/\tau + \ln|\det \partial a/\partial u|`, the density
      of ``u`` whose image is :math:`\exp(Q/\tau)`. It vanishes at infinity, so SVGD's fixed point is
      exact: the boundary is never reached (``|u|`` finite) and the mass near it is right (G = 5,
      d = 2: mean 0.80-0.82 against 0.800, 4-5% of actions beyond 0.99 against the exact 4.9%).
    * ``"squashed"``: :math:`x = a`, the action in the Box; :math:`\ln p(a) = Q(s, a)/\tau`, no
      Jacobian. The target does not vanish at the boundary, so Stein's identity gets a boundary term:
      when ``Q`` rises towards the boundary the particles are pushed out of the Box, the sampler's
      pre-squash output grows while ``da/du -> 0``, and once ``tanh`` saturates the particles coincide
      (G = 5, d = 2: ~60% of actions beyond 0.99, standard deviation 0.11-0.13 against 0.20; G = 30,
      d = 6: a point mass, the bandwidth at its floor). Kept for comparison with earlier runs.
    * ``"barrier"``: the reference implementation's target, squashed variables with the barrier
      :math:`\sum_k \ln(1 - a_k^2 + 10^{-6})` (``a`` scaled to ``[-1, 1]``) added to ``Q/\tau``. The
      barrier vanishes at the boundary, so the particles stay inside, but the fixed point is the density
      :math:`\exp(Q/\tau) \prod_k (1 - a_k^2)`, not :math:`\exp(Q/\tau)`: biased away from the
      boundary (G = 5: mean 0.650 against 0.800 in closed form). The reference describes the term as the
      pre-tanh Jacobian while taking gradients and kernel in the squashed variables (`rail-berkeley/softlearning#143
      <https://github.com/rail-berkeley/softlearning/issues/143>`_).

    The temperature enters as :math:`\ln p = Q/\tau`: [SQL] Eq. 13 writes
    :math:`\tau` times this direction (a step size).

    The saturated fraction of the particles (``|a| > 0.99`` on the Box scaled to ``[-1, 1]``) is a
    logged diagnostic: far above what the critic's ``exp(Q/tau)`` puts there, it signals the collapse above.

    Args:
        actor: the sampler, :func:`~torchrl_reg.modules.soft_q.svgd_sampler_actor`.
        qvalue_network: the critic trained by :class:`SoftQLoss` (its online parameters are read,
            never trained or stored by this loss).

    Keyword Args:
        tau: temperature in [1e-4, 10] (use the critic's). num_particles: ``K`` (reference: 16, 32 on MultiGoal).
        fixed_ratio: fraction of fixed particles in ``(0, 1)`` (reference: 0.5); ``K_f >= 2`` (the
            median heuristic divides by ``ln K_f``) and ``K - K_f >= 1`` are required.
        space: ``"pre_tanh"`` (default), ``"squashed"`` or ``"barrier"`` (above). min_bandwidth: lower bound of ``h`` (reference 1e-3).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per state).
        use_prioritized_weights: weight each state's term by ``priority_weight`` when present
            (``"auto"``, default), always (``True``) or never (``False``), as SACLoss weights its actor term:
            the weights correct the replay's state distribution, which the actor's expectation runs over.

    The critic is read, not owned: ``.to(...)`` converts the sampler only (convert the critic with its
    :class:`SoftQLoss`, or convert the :class:`SoftQLearningLoss` holding both; a mismatch is refused),
    ``reset_parameters_recursive`` resets the sampler only, and there is no value estimator (no reward is
    read: gamma belongs to the critic). ``torch.vmap`` over batches works: the score
    :math:`\nabla_x \ln p(x)` is taken with ``torch.func.grad``, which composes with it.

    The output holds ``"loss_actor"`` and the detached diagnostics ``"bandwidth"`` (mean ``h``),
    ``"particle_q"`` (mean ``Q`` of the fixed particles), ``"direction_norm"`` (mean
    :math:`\|\Delta\|`) and ``"saturated_fraction"`` (the fraction of particle coordinates with
    ``|a| > 0.99``, Box scaled to ``[-1, 1]``).
    """

    @dataclass
    class _AcceptedKeys:
        """Configurable tensordict keys (``loss.set_keys(...)``).

        Attributes:
            action: the Q-network's action input. Defaults to ``"action"``.
            value: the Q-network's output. Defaults to ``"state_action_value"``.
            priority_weight: importance weights of a prioritized buffer. Defaults to ``"priority_weight"``.
        """

        action: NestedKey = "action"
        value: NestedKey = "state_action_value"
        priority_weight: NestedKey = "priority_weight"

    default_keys = _AcceptedKeys
    tensor_keys: _AcceptedKeys
    out_keys = ["loss_actor", "bandwidth", "particle_q", "direction_norm", "saturated_fraction"]

    actor_network: TensorDictModule
    actor_network_params: TensorDictParams
    target_actor_network_params: TensorDictParams | None

    argument_checks = {
        "tau": check_stable_tau,
        "num_particles": partial(check_count, minimum=2),
        "fixed_ratio": partial(check_range, low=0.0, high=1.0, low_inclusive=False, high_inclusive=False),
        "space": partial(check_choice, choices=_SPACES),
        "min_bandwidth": check_positive,
    }

    @classmethod
    def check_argument_relations(cls, arguments, prefix):
        if "num_particles" in arguments and "fixed_ratio" in arguments:
            num_particles, ratio = arguments["num_particles"], arguments["fixed_ratio"]
            num_fixed = round(ratio * num_particles)
            if not 2 <= num_fixed <= num_particles - 1:
                raise ValueError(
                    f"{prefix}num_particles={num_particles} with {prefix}fixed_ratio={ratio} gives {num_fixed} fixed "
                    f"and {num_particles - num_fixed} updated particles: at least 2 fixed (the median heuristic "
                    "divides by ln K_fixed) and 1 updated are needed"
                )

    def __init__(
        self,
        actor: TensorDictModule,
        qvalue_network: TensorDictModule,
        *,
        tau: float = 1.0,
        num_particles: int = 16,
        fixed_ratio: float = 0.5,
        space: str = "pre_tanh",
        min_bandwidth: float = 1e-3,
        reduction: str | None = None,
        use_prioritized_weights: str | bool = "auto",
    ) -> None:
        _sampler_of(actor)
        check_choice("use_prioritized_weights", use_prioritized_weights, (True, False, "auto"))
        num_fixed = round(fixed_ratio * num_particles)
        reduction = _check_reduction(reduction)
        super().__init__()
        self._in_keys = None
        self._init_tau(tau)
        self.num_particles = num_particles
        self.num_fixed = num_fixed
        self.fixed_ratio = fixed_ratio
        self.space = space
        self.min_bandwidth = float(min_bandwidth)
        self.reduction = reduction
        self.use_prioritized_weights = use_prioritized_weights
        self.convert_to_functional(actor, "actor_network", create_target_params=False)
        self.__dict__["_qvalue"] = qvalue_network

    @property
    def in_keys(self) -> list[NestedKey]:
        return list(dict.fromkeys(unravel_key(k) for k in self.actor_network.in_keys))

    def _set_in_keys(self) -> None:
        self._in_keys = self.in_keys

    def _forward_value_estimator_keys(self, **kwargs) -> None:
        self._set_in_keys()

    def make_value_estimator(self, value_type: ValueEstimators | str | None = None, **hyperparams) -> None:
        raise NotImplementedError(
            "SVGDPolicyLoss has no value estimator: it reads no reward and bootstraps nothing. gamma belongs to the "
            "critic: SoftQLoss.make_value_estimator(gamma=...) (or SoftQLearningLoss.make_value_estimator)"
        )

    def reset_parameters_recursive(self) -> None:
        """Re-initialize the sampler (the critic is the :class:`SoftQLoss`'s, reset there)."""
        self._reset_module_parameters("actor_network", self.actor_network)

    def _check_critic_matches(self, observation: torch.Tensor) -> None:
        """Refuse a critic left in another dtype or on another device than the sampler (``.to`` converts
        the sampler only: the critic is not this loss's)."""
        sampler = next(iter(self.actor_network_params.values(True, True)))
        check_same_dtype_and_device(
            "SVGDPolicyLoss", "sampler", sampler, "critic", self.__dict__["_qvalue"],
            "the critic is read, not owned, so .to() converts the sampler only: convert the critic too (its "
            "SoftQLoss.to(...)), or the SoftQLearningLoss that holds both",
        )
        check_same_dtype_and_device(
            "SVGDPolicyLoss", "sampler", sampler, "observation", observation,
            f"cast the batch's floating-point inputs to {sampler.dtype} and move them to {sampler.device}",
        )

    def _log_target(
        self, observations: TensorDictBase, x: torch.Tensor, sampler: AmortizedSampler
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ln p(x), Q)``, ``ln p`` up to a constant in the variables of ``space``, for particles ``x [..., K, d]``."""
        qvalue = self.__dict__["_qvalue"]
        actions = sampler.squash(x) if self.space == "pre_tanh" else x
        num_particles = x.shape[-2]
        td = observations.unsqueeze(-1).expand(*observations.batch_size, num_particles).clone(False)
        td.set(self.tensor_keys.action, actions)
        q = qvalue(td).get(self.tensor_keys.value).squeeze(-1)
        log_p = q / self.tau
        if self.space == "pre_tanh":
            log_p = log_p + sampler.log_abs_det_jacobian(x)
        elif self.space == "barrier":
            unit = sampler.unit(actions)
            log_p = log_p + torch.log1p(-unit.pow(2) + 1e-6).sum(-1)
        return log_p, q

    @dispatch
    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """[SQL] Eq. 13-14 on the states of ``tensordict``."""
        sampler = _sampler_of(self.actor_network)
        observation_key = self.actor_network.in_keys[0]
        observation = tensordict.get(observation_key)
        self._check_critic_matches(observation)
        if tensordict.batch_size != observation.shape[:-1]:
            # A keyword call infers the batch from its one tensor (all its dims): the states are its leading dims.
            tensordict = tensordict.clone(False)
            tensordict.batch_size = observation.shape[:-1]
        with self.actor_network_params.to_module(self.actor_network, preserve_module_state=False):
            pre_tanh, actions = sampler.sample_particles(observation, self.num_particles)
        particles = pre_tanh if self.space == "pre_tanh" else actions
        fixed = particles[..., : self.num_fixed, :].detach()
        updated = particles[..., self.num_fixed :, :]

        observations = tensordict.select(*[k for k in self.__dict__["_qvalue"].in_keys if k != self.tensor_keys.action])

        def total_log_p(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            log_p, q = self._log_target(observations, x, sampler)
            return log_p.sum(), q

        # Only the particles' gradient (torch.func.grad: the critic's parameters get none, and it composes
        # with torch.vmap, which torch.autograd.grad inside a vmapped function does not).
        with torch.enable_grad():
            score, q = torch.func.grad(total_log_p, has_aux=True)(fixed)
        with torch.no_grad():
            h = F.median_bandwidth(fixed, updated, min_bandwidth=self.min_bandwidth)
            direction = F.svgd_direction(fixed, score, updated.detach(), h)
        loss = -(direction * updated).sum(-1).mean(-1)
        loss = self._reduce_loss(loss, tensordict=tensordict, weights=prioritized_weights(self, tensordict, loss.shape))

        diagnostics = {
            "bandwidth": h,
            "particle_q": q.detach().mean(-1),
            "direction_norm": direction.norm(dim=-1).mean(-1),
            "saturated_fraction": (sampler.unit(actions.detach()).abs() > SATURATION)
            .to(actions.dtype)
            .mean((-2, -1)),
        }
        if self.reduction != "none":
            diagnostics = {k: v.mean() for k, v in diagnostics.items()}
        batch_size = tensordict.batch_size if self.reduction == "none" else []
        out = TensorDict({"loss_actor": loss, **diagnostics}, batch_size=batch_size)
        self._clear_weakrefs(tensordict, out, "actor_network_params")
        return out


class SoftQLearningLoss(ArgumentChecks, LossModule):
    r"""Soft Q-learning's two losses as one module ([SQL] Algorithm 1, lines 8-9): ``loss_qvalue`` (the
    ``loss`` of :class:`SoftQLoss`) plus ``loss_actor`` of :class:`SVGDPolicyLoss`, with their diagnostics.

    The two terms touch disjoint parameters (the critic's and the sampler's: the actor loss reads the
    critic without a gradient), so one backward pass of their sum and one Adam over
    ``loss.parameters()`` are the paper's two updates. The critic's online and target parameters are
    exposed as ``qvalue_network_params`` / ``target_qvalue_network_params``, where TorchRL's
    ``SoftUpdate`` / ``HardUpdate`` look for them; ``make_value_estimator`` sets the critic's gamma.

    As one TorchRL loss: ``set_keys`` renames a key in each of the two losses that reads it (the accepted
    keys are :class:`SoftQLoss`'s, which include the actor's), ``reset_parameters_recursive`` resets the
    critic (online and target) and the sampler, ``.to(...)`` converts both, and each term is weighted by
    ``priority_weight`` as its own loss's ``use_prioritized_weights`` says (SACLoss weights every term).

    Raises:
        ValueError: if the actor loss reads another Q-network than the critic trains, or if the two
            temperatures differ.
    """

    #: Why ``make_update(..., cuda_graph=True)`` refuses it (a CUDA graph records no host read).
    cuda_graph_unsupported = (
        "SoftQLoss.forward checks every batch's actions on the host (it has no check_inputs path for a loop "
        "that checks transitions before the buffer): a CUDA graph cannot record a host read"
    )

    def __init__(self, critic: SoftQLoss, actor: SVGDPolicyLoss) -> None:
        if not (isinstance(critic, SoftQLoss) and isinstance(actor, SVGDPolicyLoss)):
            swapped = isinstance(critic, SVGDPolicyLoss) and isinstance(actor, SoftQLoss)
            raise TypeError(
                f"SoftQLearningLoss(critic, actor) takes a SoftQLoss, then an SVGDPolicyLoss; got "
                f"{type(critic).__name__} and {type(actor).__name__}"
                + ("; are the two swapped? Pass SoftQLearningLoss(critic=SoftQLoss(...), actor=SVGDPolicyLoss(...))"
                   if swapped else "")
            )
        if actor.__dict__["_qvalue"] is not critic.qvalue_network:
            raise ValueError("the SVGDPolicyLoss must read the Q-network that the SoftQLoss trains (the same module)")
        if float(actor.tau) != float(critic.tau):
            raise ValueError(f"the critic and the actor need one temperature, got tau={float(critic.tau)} and {float(actor.tau)}")
        super().__init__()
        self.critic = critic
        self.actor = actor
        self._tensor_keys = self._AcceptedKeys(**vars(critic.tensor_keys))
        self.qvalue_network_params = critic.qvalue_network_params
        # Read from the module dict where it is: the attribute would warn that no target updater is attached yet.
        target = critic._modules.get("target_qvalue_network_params")
        self.target_qvalue_network_params = critic.target_qvalue_network_params if target is None else target
        # One record for both modules: an updater attached here also counts for the critic.
        self._has_update_associated = critic._has_update_associated

    _AcceptedKeys = SoftQLoss._AcceptedKeys
    default_keys = SoftQLoss._AcceptedKeys

    @property
    def out_keys(self) -> list[str]:
        return ["loss_qvalue", *self.critic.out_keys[1:], *self.actor.out_keys]

    def _forward_value_estimator_keys(self, **kwargs) -> None:
        for loss in (self.critic, self.actor):
            accepted = loss._AcceptedKeys.__dataclass_fields__
            loss.set_keys(**{key: getattr(self.tensor_keys, key) for key in kwargs if key in accepted})

    def reset_parameters_recursive(self) -> None:
        """Re-initialize the critic (online and target parameters) and the sampler."""
        self.critic.reset_parameters_recursive()
        self.actor.reset_parameters_recursive()

    @property
    def in_keys(self) -> list[NestedKey]:
        return list(dict.fromkeys([*self.critic.in_keys, *self.actor.in_keys]))

    @property
    def actor_network(self) -> TensorDictModule:
        """The sampler that :class:`SVGDPolicyLoss` trains, where TorchRL's trainers read the policy's weights."""
        return self.actor.actor_network

    def make_value_estimator(self, value_type: ValueEstimators | str | None = None, **hyperparams) -> SoftQLearningLoss:
        """The critic's value estimator (``gamma``), :meth:`SoftQLoss.make_value_estimator`."""
        self.critic.make_value_estimator(value_type, **hyperparams)
        return self

    @property
    def value_estimator(self):
        """The critic's value estimator (the actor loss has none)."""
        return self.critic.value_estimator

    @dispatch
    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Both losses on one minibatch (the critic writes the TD-error priority in place)."""
        critic_out = self.critic(tensordict)
        critic_out.rename_key_("loss", "loss_qvalue")
        return critic_out.update(self.actor(tensordict))


class TemperatureSchedule(ArgumentChecks):
    r"""Linear annealing of ``tau`` of soft Q-learning losses, from the first loss's initial ``tau`` to
    ``tau_final`` over ``annealing_num_steps`` calls of :meth:`step` (users of the reference asked for
    annealing the temperature towards 0 near convergence; ``tau_final`` must stay > 0, the soft value
    and the target density are undefined at 0). Pass the critic and the actor loss together so that
    they share the temperature, then call ``schedule.step()`` after each update, as TorchRL's
    exploration modules. The step count lives in the losses' buffers, so it is saved and restored
    with their ``state_dict``.
    """

    argument_checks = {"tau_final": check_stable_tau, "annealing_num_steps": check_count}

    def __init__(self, *losses: _TemperatureMixin, tau_final: float, annealing_num_steps: int) -> None:
        if not losses:
            raise ValueError("TemperatureSchedule needs at least one loss with a tau (SoftQLoss, SVGDPolicyLoss)")
        for loss in losses:
            if not isinstance(loss, _TemperatureMixin):
                raise ValueError(f"TemperatureSchedule anneals SoftQLoss/SVGDPolicyLoss, got {type(loss).__name__}")
        self.losses = losses
        self.tau_final, self.annealing_num_steps = tau_final, annealing_num_steps
        self._apply(self.num_steps)

    @property
    def tau_init(self) -> float:
        return float(self.losses[0]._tau_initial)

    @property
    def num_steps(self) -> int:
        return int(self.losses[0]._tau_annealing_steps)

    @property
    def tau(self) -> float:
        fraction = min(self.num_steps / self.annealing_num_steps, 1.0)
        return self.tau_init + fraction * (self.tau_final - self.tau_init)

    def _apply(self, num_steps: int) -> None:
        tau_init = self.tau_init
        for loss in self.losses:
            loss._tau_initial.fill_(tau_init)
            loss._tau_annealing_steps.fill_(num_steps)
            loss.set_tau(self.tau)

    def step(self, num_steps: int = 1) -> None:
        self._apply(self.num_steps + int(num_steps))
