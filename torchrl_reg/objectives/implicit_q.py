"""Implicit Q-values (IQ, M-IQ): one loss that trains a policy and a value.

Reference: [IQ] Vieillard, Andrychowicz, Raichuk, Pietquin, Geist, "Implicitly Regularized RL
with Implicit Q-Values", AISTATS 2022, arXiv:2108.07041.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from tensordict import TensorDict, TensorDictBase, TensorDictParams
from tensordict.nn import ProbabilisticTensorDictSequential, TensorDictModule
from tensordict.utils import NestedKey
from torchrl.objectives.utils import distance_loss

from torchrl_reg.functional import clipped_munchausen_term
from torchrl_reg.modules.policies import policy_logit_tau
from torchrl_reg.objectives.common import ActorCriticLossBase
from torchrl_reg.validation import (
    check_bound,
    check_choice,
    check_clip_interval_relation,
    check_positive,
    check_unit_interval,
    optional,
)

__all__ = ["ImplicitQLoss"]

_BOOTSTRAPS = ("target", "online")
_LOSS_FUNCTIONS = ("l2", "l1", "smooth_l1")


class ImplicitQLoss(ActorCriticLossBase):
    r"""IQ / M-IQ loss ([IQ] Eq. 2): a policy and a value trained jointly by one regression.

    Not to be confused with TorchRL's :class:`~torchrl.objectives.IQLLoss`, which is
    *Implicit Q-Learning* (Kostrikov et al., offline RL, expectile regression); this
    is *Implicit Q-values*. The Q-function is never a network: it is implicitly
    :math:`Q_{\theta,\phi}(s,a) = \tau\ln\pi_\theta(a|s) + V_\phi(s)` ([IQ] Eq. 1), so
    that :math:`\pi_\theta = \mathrm{softmax}(Q_{\theta,\phi}/\tau)` holds exactly and
    :math:`V_\phi = \tau\ln\sum_a\exp(Q_{\theta,\phi}/\tau)` by construction. The loss is

    .. math::
        \mathcal{L}_{IQ}(\theta, \phi) = \hat{\mathbb{E}}\Big[\big(r_t
            + \alpha\tau\ln\pi_{\bar\theta}(a_t|s_t) + \gamma V_{\bar\phi}(s_{t+1})
            - \tau\ln\pi_\theta(a_t|s_t) - V_\phi(s_t)\big)^2\Big]

    with target (Polyak-averaged) parameters :math:`\bar\theta, \bar\phi`. ``alpha = 0``
    is IQ (entropy regularization only); ``alpha > 0`` is M-IQ, whose Munchausen term
    :math:`\alpha\tau\ln\pi_{\bar\theta}` adds an implicit KL regularization: in the
    tabular case the iterates are those of MD-VI(:math:`\alpha\tau, (1-\alpha)\tau`)
    ([IQ] Eq. 3 and Theorem 1). ``bootstrap="online"`` replaces :math:`V_{\bar\phi}(s_{t+1})`
    by the online :math:`V_\phi(s_{t+1})`, gradient included: the residual Trust-PCL
    (``alpha > 0``) / PCL (``alpha = 0``) ablation of [IQ] Section 6 (the target
    policy still gives the Munchausen term, the trust region of Trust-PCL).

    Eq. (2) does not clip the Munchausen term. With ``clip_value_min`` and ``clip_value_max``
    it is :math:`\alpha\,\mathrm{clip}(\tau\ln\pi_{\bar\theta}(a_t|s_t), l_0, u)`, the clipping
    of M-DQN (Vieillard, Pietquin, Geist, "Munchausen Reinforcement Learning", NeurIPS 2020,
    arXiv:2007.14430, Eq. 2 with :math:`[l_0, 0]`, :math:`l_0 = -1`): it bounds the penalty that a
    replayed action the current policy has all but ruled out (a very negative
    :math:`\ln\pi_{\bar\theta}`) adds to the target.

    :math:`\gamma` lives in the value estimator (``loss.make_value_estimator(gamma=...)``,
    TD(0) only); a terminated transition cuts the bootstrap, a truncated one does not,
    and after :class:`torchrl_reg.data.MultiStep` the discount is ``gamma ** steps_to_next_obs``
    (the Munchausen term then rewards the first action of the n-step segment).
    Train both networks with one optimizer over ``loss.parameters()`` and update the
    targets with ``SoftUpdate(loss, eps=0.995)`` (SAC's Polyak rate 0.005, as in the paper).

    Args:
        policy_network: a :class:`~torchrl.modules.ProbabilisticActor` whose
            distribution has a ``log_prob`` for the stored actions, e.g. from
            :mod:`torchrl_reg.modules.policies` (multicategorical, tanh-Gaussian, categorical).
        value_network: a state-value module (e.g. :class:`~torchrl.modules.ValueOperator`)
            writing ``"state_value"`` of shape ``[..., 1]``.

    Keyword Args:
        tau: entropy temperature :math:`\tau > 0` (paper: 0.01 on MuJoCo, 0.001 on Adroit).
        alpha: Munchausen coefficient in ``[0, 1)`` (paper: 0.9 for M-IQ, 0 for IQ).
        clip_value_min, clip_value_max: clip of :math:`\tau\ln\pi_{\bar\theta}(a_t|s_t)` in the
            Munchausen term, both or neither (default: neither, Eq. 2 unclipped; M-DQN: -1, 0).
        bootstrap: ``"target"`` (IQ, [IQ] Eq. 2) or ``"online"`` (residual (Trust-)PCL).
        loss_function: ``"l2"`` (the paper's square), ``"l1"`` or ``"smooth_l1"``.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` (then the diagnostics
            are per sample too).
        use_prioritized_weights: weight the loss by ``"priority_weight"`` when present
            (``"auto"``), always (``True``) or never (``False``).

    The output has ``"loss"`` and the detached diagnostics ``"entropy"`` (of
    :math:`\pi_\theta(\cdot|s_t)`, exact when the distribution has an ``entropy``,
    otherwise the one-sample estimate :math:`-\ln\pi_\theta(a'|s_t)`, :math:`a'\sim\pi_\theta`),
    ``"log_pi"`` (:math:`\ln\pi_\theta(a_t|s_t)`), ``"state_value"`` (:math:`V_\phi(s_t)`),
    ``"implicit_q"`` (:math:`Q_{\theta,\phi}(s_t,a_t)`) and ``"td_error"``
    (:math:`(y_t - Q_{\theta,\phi}(s_t,a_t))^2`, also written in place, shape ``[..., 1]``, under
    the priority key, as by TorchRL's ``DQNLoss``), ``"munchausen_bonus"`` (the term added to
    the target, after the clip) and ``"clip_fraction"`` (share of :math:`\tau\ln\pi_{\bar\theta}(a_t|s_t)`
    outside the clip bounds; 0 without a clip).

    A policy built with the scaled softmax of [IQ] Section 3.3 (``tau=`` of
    :func:`~torchrl_reg.modules.policies.multicategorical_policy`) must use this loss's ``tau``:
    a different one is refused (the two would silently define two temperatures).

    Examples:
        >>> from tensordict import TensorDict
        >>> from torchrl.data import Bounded
        >>> from torchrl.objectives import SoftUpdate
        >>> from torchrl_reg.modules import multicategorical_policy, state_value_network
        >>> spec = Bounded(-1.0, 1.0, shape=(2,))
        >>> policy = multicategorical_policy(3, spec, num_bins=11, num_cells=[32])
        >>> value = state_value_network(3, num_cells=[32])  # the recipes: [256, 256], ReLU, SAC's critic torso
        >>> loss = ImplicitQLoss(policy, value, tau=0.01, alpha=0.9)
        >>> _ = loss.make_value_estimator(gamma=0.99)
        >>> optim = torch.optim.Adam(loss.parameters(), lr=3e-4)
        >>> updater = SoftUpdate(loss, eps=0.995)
        >>> batch = policy(TensorDict({"observation": torch.randn(8, 3)}, [8]))  # actions on the policy's grid
        >>> batch["next"] = TensorDict({"observation": torch.randn(8, 3), "reward": torch.randn(8, 1),
        ...     "done": torch.zeros(8, 1, dtype=torch.bool), "terminated": torch.zeros(8, 1, dtype=torch.bool)}, [8])
        >>> out = loss(batch); out["loss"].backward(); optim.step(); optim.zero_grad(); updater.step()
    """

    @dataclass
    class _AcceptedKeys:
        """Configurable tensordict keys (``loss.set_keys(...)``; nested keys accepted).

        Attributes:
            action: the action taken, scored by the policy. Defaults to ``"action"``.
            value: the state value written by the value network. Defaults to ``"state_value"``.
            reward, done, terminated: read under ``"next"``.
            priority: where the squared TD error is written in place. Defaults to ``"td_error"``.
            priority_weight: importance weights of a prioritized buffer. Defaults to ``"priority_weight"``.
            steps_to_next_obs: number of steps to the bootstrap state, written by
                :class:`torchrl_reg.data.MultiStep`. Defaults to ``"steps_to_next_obs"``.
        """

        action: NestedKey = "action"
        value: NestedKey = "state_value"
        reward: NestedKey = "reward"
        done: NestedKey = "done"
        terminated: NestedKey = "terminated"
        priority: NestedKey = "td_error"
        priority_weight: NestedKey = "priority_weight"
        steps_to_next_obs: NestedKey = "steps_to_next_obs"

    default_keys = _AcceptedKeys
    tensor_keys: _AcceptedKeys
    out_keys = ["loss", "entropy", "log_pi", "state_value", "implicit_q", "td_error", "munchausen_bonus", "clip_fraction"]
    _network_names = ("policy_network", "value_network")
    network_outputs = {"value_network": "value"}
    actor_argument = "policy_network"
    critic_argument = "value_network"
    critic_kind = "a state-value module (e.g. a ValueOperator writing 'state_value')"
    state_value_critic = "torchrl_reg.modules.critics.state_value_network(observation_dim) (a ValueOperator writing 'state_value')"
    actor_attribute = "policy_network"
    actor_sample = "log_prob"
    actor_use = "regresses the implicit Q-value tau ln pi(a_t|s_t) + V(s_t), the log-density of the replayed actions"

    policy_network: ProbabilisticTensorDictSequential
    value_network: TensorDictModule
    policy_network_params: TensorDictParams
    value_network_params: TensorDictParams
    target_policy_network_params: TensorDictParams
    target_value_network_params: TensorDictParams

    argument_checks = {
        "tau": check_positive,
        "alpha": partial(check_unit_interval, closed_right=False),
        "clip_value_min": optional(check_bound),
        "clip_value_max": optional(check_bound),
        "bootstrap": partial(check_choice, choices=_BOOTSTRAPS),
        "loss_function": partial(check_choice, choices=_LOSS_FUNCTIONS),
    }

    @classmethod
    def check_argument_relations(cls, arguments, prefix):
        check_clip_interval_relation(arguments, prefix, optional=True)  # both or neither (Eq. 2: no clip)

    def __init__(
        self,
        policy_network: ProbabilisticTensorDictSequential,
        value_network: TensorDictModule,
        *,
        tau: float = 0.01,
        alpha: float = 0.9,
        clip_value_min: float | None = None,
        clip_value_max: float | None = None,
        bootstrap: str = "target",
        loss_function: str = "l2",
        **kwargs,
    ) -> None:
        policy_tau = policy_logit_tau(policy_network)
        if policy_tau is not None and policy_tau != tau:
            raise ValueError(
                f"the policy is a scaled softmax softmax(F / tau) with tau={policy_tau}, but the loss has tau={tau}: "
                "build the policy with the loss's tau (one temperature), or without tau= for softmax(F)"
            )
        super().__init__(**kwargs)
        self.tau = tau
        self.alpha = alpha
        self.clip_value_min = clip_value_min
        self.clip_value_max = clip_value_max
        self.bootstrap = bootstrap
        self.loss_function = loss_function
        self.convert_to_functional(policy_network, "policy_network", create_target_params=True)
        self.convert_to_functional(value_network, "value_network", create_target_params=True)

    def _in_key_list(self) -> list[NestedKey]:
        next_keys = (self.tensor_keys.reward, self.tensor_keys.done, self.tensor_keys.terminated)
        return [
            self.tensor_keys.action,
            *self.policy_network.in_keys,
            *self.value_network.in_keys,
            *[("next", key) for key in (*next_keys, *self.value_network.in_keys)],
        ]

    def _log_prob(self, params: TensorDictParams, tensordict: TensorDictBase, action: torch.Tensor):
        with params.to_module(self.policy_network, preserve_module_state=False):
            dist = self.policy_network.get_dist(tensordict.select(*self.policy_network.in_keys))
        return dist.log_prob(action), dist

    def _state_value(self, params: TensorDictParams, tensordict: TensorDictBase) -> torch.Tensor:
        with params.to_module(self.value_network, preserve_module_state=False):
            return self.value_network(tensordict.select(*self.value_network.in_keys)).get(self.tensor_keys.value)

    def implicit_q(self, tensordict: TensorDictBase) -> torch.Tensor:
        r"""Implicit Q-value :math:`\tau\ln\pi_\theta(a|s) + V_\phi(s)` of the tensordict's action ([IQ] Eq. 1)."""
        log_pi, _ = self._log_prob(self.policy_network_params, tensordict, tensordict.get(self.tensor_keys.action))
        return self.tau * log_pi + self._state_value(self.value_network_params, tensordict).squeeze(-1)

    @staticmethod
    def _entropy(dist: torch.distributions.Distribution) -> torch.Tensor:
        try:
            return dist.entropy()
        except NotImplementedError:
            # No closed form (tanh-Gaussian): one-sample Monte-Carlo estimate.
            return -dist.log_prob(dist.sample())

    #: ``make_update(..., compile=True)`` fuses loss, gradient and Adam into one graph (both networks).
    fusable_update = True

    def _loss_params(self) -> TensorDictBase:
        return self.fused_params

    @property
    def fused_params(self) -> TensorDictBase:
        """The trainable parameters as one tree, ``{"policy": ..., "value": ...}``: what the fused
        update of :func:`torchrl_reg.objectives.make_update` differentiates and steps."""
        return TensorDict({"policy": self.policy_network_params, "value": self.value_network_params}, batch_size=[])

    def loss_and_outputs(
        self, tensordict: TensorDictBase, params: TensorDictBase
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Eq. (2) as a function of the online parameters ``params`` (the tree of :attr:`fused_params`):
        ``(loss, priority, diagnostics)``, reduced as ``reduction`` says.

        :meth:`forward` is this function at :attr:`fused_params`, followed by the in-place priority
        write; it neither writes to ``tensordict`` nor reads the online parameters from the module,
        so that ``torch.func.grad`` can differentiate it with respect to ``params``.
        """
        tensordict = self._bool_flags(tensordict)
        action = tensordict.get(self.tensor_keys.action)
        next_td = tensordict.get("next")
        log_pi, dist = self._log_prob(params["policy"], tensordict, action)
        value = self._state_value(params["value"], tensordict).squeeze(-1)
        implicit_q = self.tau * log_pi + value

        with torch.no_grad():
            log_pi_target, _ = self._log_prob(self.target_policy_network_params, tensordict, action)
        if self.bootstrap == "target":
            with torch.no_grad():
                next_value = self._state_value(self.target_value_network_params, next_td)
        else:
            next_value = self._state_value(params["value"], next_td)
        target = self.value_estimator.value_estimate(tensordict, next_value=next_value).squeeze(-1)
        scaled_log_pi_target = self.tau * log_pi_target
        if self.clip_value_min is None:
            # alpha * tau first, as Eq. (2) has always been computed here: unchanged numbers, bit for bit.
            bonus = self.alpha * self.tau * log_pi_target
            clipped = torch.zeros_like(scaled_log_pi_target)
        else:
            bonus = clipped_munchausen_term(
                scaled_log_pi_target, alpha=self.alpha, clip_value_min=self.clip_value_min, clip_value_max=self.clip_value_max
            )
            clipped = ((scaled_log_pi_target < self.clip_value_min) | (scaled_log_pi_target > self.clip_value_max)).to(bonus.dtype)
        target = target + bonus

        loss = distance_loss(implicit_q, target, self.loss_function)
        with torch.no_grad():
            td_error = (target - implicit_q).pow(2)
        loss = self._reduce_loss(loss, tensordict=tensordict, weights=self._weights(tensordict, loss.shape))

        with torch.no_grad():
            diagnostics = {
                "entropy": self._entropy(dist),
                "log_pi": log_pi,
                "state_value": value,
                "implicit_q": implicit_q,
                "td_error": td_error,
                "munchausen_bonus": bonus,
                "clip_fraction": clipped,
            }
            if self.reduction != "none":
                diagnostics = {k: v.mean() for k, v in diagnostics.items()}
        return loss, td_error.unsqueeze(-1), diagnostics
