"""Mirror Descent Actor Critic (MDAC): SAC's actor and twin critics with MDVI's KL + entropy target, bounded.

Reference: [MDAC] Iwaki, "Mirror Descent Actor Critic via Bounded Advantage Learning",
arXiv:2502.03854, 2025. [MRL] Vieillard, Pietquin, Geist, "Munchausen Reinforcement Learning",
NeurIPS 2020, arXiv:2007.14430 (the Munchausen form of MDVI that MDAC instantiates).
"""
from __future__ import annotations

from functools import partial

import torch
from tensordict import TensorDict, TensorDictBase, TensorDictParams
from tensordict.nn import ProbabilisticTensorDictSequential, TensorDictModule
from tensordict.utils import NestedKey
from torch import nn
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.modules.distributions.utils import rsample_and_log_prob
from torchrl.objectives.utils import _vmap_func, distance_loss

from torchrl_reg import functional as F
from torchrl_reg.objectives.common import ActorCriticKeys, RegularizedLossBase, _box_bounds, _queue_box_check
from torchrl_reg.validation import check_bool, check_choice, check_critic_count, check_positive, check_range, check_unit_interval

__all__ = ["MDACLoss"]

_LOSS_FUNCTIONS = ("l2", "l1", "smooth_l1")


def _check_target_entropy(name: str, value: float | str) -> float | str:
    """``"auto"`` (``-dim(A)``) or a finite number."""
    if value == "auto":
        return value
    if isinstance(value, (str, bool)) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number or 'auto', got {name}={value!r}")
    return check_range(name, value)


class MDACLoss(RegularizedLossBase):
    r"""MDAC ([MDAC] Sec. 3): a SAC-style actor :math:`\pi_\theta`, critics :math:`Q_{\psi_i}` and the KL + entropy
    target of MDVI in its Munchausen form, whose two log-density terms pass through a bounding function :math:`f`.

    With :math:`\alpha` the temperature (SAC's, tuned towards a target entropy) and :math:`\beta \in [0, 1)` the
    Munchausen coefficient (MDVI's KL and entropy weights are :math:`\lambda = \beta\alpha`,
    :math:`\tau = (1-\beta)\alpha`, [MRL] "Implicit KL regularization"), each critic regresses

    .. math::
        y_t = r_t + \beta f\big(\alpha\ln\pi_\theta(a_t|s_t)\big)
              + \gamma^n (1 - \mathrm{terminated}) \Big[\min_i Q_{\bar\psi_i}(s_{t+n}, a')
              - f\big(\alpha\ln\pi_\theta(a'|s_{t+n})\big)\Big], \qquad a' \sim \pi_\theta(\cdot|s_{t+n})

    (target critics :math:`\bar\psi`, the current actor, no gradient through the target): the Munchausen term on
    the replayed action and the next state's entropy term, both bounded. In the tabular case
    :math:`\alpha\ln\pi_{k+1} = q_k - V_k` is the soft advantage, so MDAC is advantage learning with a bounded
    advantage ("bounded / balancing advantage learning", :mod:`torchrl_reg.tabular.mdac`). The actor and the
    temperature are SAC's (Haarnoja et al., "Soft Actor-Critic Algorithms and Applications", arXiv:1812.05905):

    .. math::
        \text{actor} = \mathbb E\big[\alpha\ln\pi_\theta(\tilde a|s_t) - \min_i Q_{\psi_i}(s_t, \tilde a)\big], \qquad
        \text{alpha} = -\ln\alpha\;\mathbb E\big[\ln\pi_\theta(\tilde a|s_t) + \bar{\mathcal H}\big]

    with a reparametrized :math:`\tilde a \sim \pi_\theta(\cdot|s_t)` (critics detached) and target entropy
    :math:`\bar{\mathcal H}` (``"auto"``: :math:`-\dim\mathcal A`). A policy with a finite support
    (``has_enumerate_support``: categorical) gets the exact expectations over its actions instead of samples,
    which makes the loss exact on tabular data (``tests/tabular/test_mdac_bridge.py``).

    ``bound``: ``"tanh"`` :math:`f(x) = \tanh(x/c)` (default), ``"clip"`` :math:`\mathrm{clip}(x/c, -1, 1)`, or
    ``"none"``: :math:`f(x) = x`, the naive unbounded instantiation (an M-SAC), the ablation of [MDAC];
    :math:`c` = ``bound_scale`` (10). ``beta = 0`` with ``bound="none"`` is SAC.

    Temperature: tuned as SAC's by default (``fixed_alpha=False``, as [MDAC] keeps SAC's tuning); with
    ``fixed_alpha=True`` it stays at ``alpha_init`` and there is no temperature loss.

    Sources: of [MDAC] only the abstract and the public reviews of its OpenReview submission could be read
    here (not the equations' numbering nor the hyperparameter table). The target above, the bounded choices
    ``tanh(x/10)`` and ``clip(x/10, -1, 1)`` against the identity, and SAC's automatic temperature (target
    :math:`-\dim\mathcal A`) follow those descriptions; ``beta = 0.9`` is M-DQN's and M-IQ's value, not
    confirmed from the paper.

    Args:
        actor_network: a :class:`~torchrl.modules.ProbabilisticActor` whose distribution has ``log_prob`` for the
            replayed actions and ``rsample`` (or a finite support), e.g.
            :func:`torchrl_reg.modules.policies.tanh_normal_policy`.
        qvalue_network: ``Q(s, a)`` writing ``"state_action_value"``, e.g.
            :func:`torchrl_reg.modules.critics.state_action_value_network`.

    Keyword Args:
        beta (float): Munchausen coefficient in ``[0, 1)``. Default 0.9.
        bound (str): ``"tanh"``, ``"clip"`` or ``"none"``. Default ``"tanh"``.
        bound_scale (float): :math:`c > 0` of the bounded choices. Default 10.
        alpha_init (float): initial (or fixed) temperature, > 0. Default 1.0 (SAC's).
        fixed_alpha (bool): keep the temperature at ``alpha_init``. Default ``False``.
        target_entropy (float or "auto"): :math:`\bar{\mathcal H}`; ``"auto"`` is :math:`-\dim\mathcal A` of the
            actor's box spec. Default ``"auto"``.
        num_qvalue_nets (int): 1 or 2 critics. Default 2.
        loss_function (str): ``"l2"`` (default), ``"l1"`` or ``"smooth_l1"`` for the critics.
        delay_qvalue (bool): target critics (update with ``SoftUpdate``). Default ``True``.
        reduction, use_prioritized_weights, check_finite: as :class:`RegularizedLossBase`.

    gamma is the value estimator's: ``loss.make_value_estimator(gamma=0.99)``.

    Output: ``loss``, the sum of the three terms (they touch disjoint parameters, so one Adam over
    ``loss.parameters()`` steps them as three optimizers would), and the detached ``actor_loss``,
    ``qvalue_loss``, ``alpha_loss``, ``alpha``, ``entropy`` (of :math:`\pi_\theta(\cdot|s_t)`: exact for a finite
    support, else :math:`-\ln\pi_\theta(\tilde a|s_t)`), ``q_value`` (mean over critics), ``td_error``
    (:math:`\mathrm{mean}_i (y_t - Q_{\psi_i})^2`, also written in place under the priority key, ``[..., 1]``),
    ``munchausen_term`` (:math:`\beta f(\cdot)` as added), ``clip_fraction`` (share of the two log-density terms
    with :math:`|x| > c`, where ``"clip"`` clips and ``"tanh"`` is past its linear range; 0 for ``"none"``) and
    the range of the scaled log-densities :math:`\alpha\ln\pi` entering the target, ``scaled_log_pi_min`` /
    ``scaled_log_pi_max`` (reduced by min / max, not mean).
    """

    _AcceptedKeys = ActorCriticKeys
    default_keys = ActorCriticKeys
    tensor_keys: ActorCriticKeys
    out_keys = [
        "loss", "actor_loss", "qvalue_loss", "alpha_loss", "alpha", "entropy", "q_value", "td_error",
        "munchausen_term", "clip_fraction", "scaled_log_pi_min", "scaled_log_pi_max",
    ]
    _network_names = ("actor_network", "qvalue_network")
    #: ``loss_and_outputs`` traces into one graph; the critics are vmapped over stacked parameters, which the
    #: flat stand-in of the fused update cannot bind, so it passes the parameter TensorDict itself.
    flat_fused_params = False

    actor_network: ProbabilisticTensorDictSequential
    qvalue_network: TensorDictModule
    actor_network_params: TensorDictParams
    qvalue_network_params: TensorDictParams
    target_actor_network_params: TensorDictParams
    target_qvalue_network_params: TensorDictParams

    argument_checks = {
        "beta": partial(check_unit_interval, closed_right=False),
        "bound": partial(check_choice, choices=F.LOG_DENSITY_BOUNDS),
        "bound_scale": check_positive,
        "alpha_init": check_positive,
        "fixed_alpha": check_bool,
        "target_entropy": _check_target_entropy,
        "num_qvalue_nets": check_critic_count,
        "loss_function": partial(check_choice, choices=_LOSS_FUNCTIONS),
        "delay_qvalue": check_bool,
    }

    def __init__(
        self,
        actor_network: ProbabilisticTensorDictSequential,
        qvalue_network: TensorDictModule,
        *,
        beta: float = 0.9,
        bound: str = "tanh",
        bound_scale: float = 10.0,
        alpha_init: float = 1.0,
        fixed_alpha: bool = False,
        target_entropy: float | str = "auto",
        num_qvalue_nets: int = 2,
        loss_function: str = "l2",
        delay_qvalue: bool = True,
        reduction: str | None = None,
        use_prioritized_weights: str | bool = "auto",
        check_finite: bool = False,
    ) -> None:
        checked = self.check_arguments({
            "beta": beta, "bound": bound, "bound_scale": bound_scale, "alpha_init": alpha_init,
            "fixed_alpha": fixed_alpha, "target_entropy": target_entropy, "num_qvalue_nets": num_qvalue_nets,
            "loss_function": loss_function, "delay_qvalue": delay_qvalue,
        })
        beta, bound_scale, alpha_init = checked["beta"], checked["bound_scale"], checked["alpha_init"]
        if not hasattr(actor_network, "get_dist"):
            raise TypeError(
                "actor_network must be a probabilistic actor (a ProbabilisticTensorDictSequential with get_dist, e.g. "
                f"tanh_normal_policy), got {type(actor_network).__name__}; are the two networks swapped?"
            )
        if hasattr(qvalue_network, "get_dist"):
            raise TypeError(
                "qvalue_network must be a Q(s, a) module writing 'state_action_value', got a probabilistic actor "
                f"({type(qvalue_network).__name__}); are the two networks swapped?"
            )
        super().__init__(reduction=reduction, use_prioritized_weights=use_prioritized_weights, check_finite=check_finite)
        self.target_entropy = self._target_entropy(actor_network, target_entropy, fixed_alpha)
        self.beta = beta
        self.bound = bound
        self.bound_scale = bound_scale
        self.fixed_alpha = fixed_alpha
        self.num_qvalue_nets = int(num_qvalue_nets)
        self.loss_function = loss_function
        self.delay_qvalue = delay_qvalue
        first = next(actor_network.parameters())
        dtype = first.dtype
        self.convert_to_functional(actor_network, "actor_network", create_target_params=False)
        self.convert_to_functional(
            qvalue_network, "qvalue_network", self.num_qvalue_nets, create_target_params=delay_qvalue,
            compare_against=list(actor_network.parameters()),
        )
        self._vmap_qvalue = _vmap_func(self.qvalue_network, (None, 0), randomness="different")
        # On the actor's device, as TorchRL's SACLoss puts it: a CPU log_alpha beside CUDA networks broke the
        # compiled fused Adam step on a GPU (a CPU exp_avg, a CUDA beta; gpu_check 2026-11-26).
        log_alpha = torch.tensor(alpha_init, dtype=dtype, device=first.device).log()
        if fixed_alpha:
            self.register_buffer("log_alpha", log_alpha)
        else:
            self.log_alpha = nn.Parameter(log_alpha)

    def _target_entropy(self, actor_network: TensorDictModule, target_entropy: float | str, fixed_alpha: bool) -> float:
        if target_entropy != "auto":
            return float(target_entropy)
        bounds = _box_bounds(getattr(actor_network, "spec", None), self.tensor_keys.action)
        if bounds is None:
            if fixed_alpha:
                return 0.0  # never read: no temperature loss
            raise ValueError(
                "target_entropy='auto' is -dim(A) of a continuous (box) action spec, and this actor has none: "
                "give target_entropy as a number (or fixed_alpha=True)"
            )
        return -float(bounds[0].numel())

    # -- keys, checks, parameters (the rest of the plumbing is RegularizedLossBase's) ---------
    def _in_key_list(self) -> list[NestedKey]:
        keys = self.tensor_keys
        obs_keys = [*self.actor_network.in_keys, *[k for k in self.qvalue_network.in_keys if k != keys.action]]
        return [keys.action, *obs_keys, *[("next", k) for k in (keys.reward, keys.done, keys.terminated, *obs_keys)]]

    def _check_action(self, action: torch.Tensor, batch_shape: torch.Size, checks: list) -> None:
        _queue_box_check(self.actor_network, self.tensor_keys.action, action, checks)

    def _loss_params(self) -> TensorDictBase:
        return self.fused_params

    @property
    def fused_params(self) -> TensorDictBase:
        """The trainable parameters, ``{"actor", "qvalue"[, "log_alpha"]}``: what the fused update of
        :func:`torchrl_reg.objectives.make_update` differentiates and steps."""
        params = {"actor": self.actor_network_params, "qvalue": self.qvalue_network_params}
        if not self.fixed_alpha:
            params["log_alpha"] = self.log_alpha
        return TensorDict(params, batch_size=[])

    # -- pieces -------------------------------------------------------------------------------
    def _critics(
        self, tensordict: TensorDictBase, action: torch.Tensor, params: TensorDictBase, *, support: bool = False
    ) -> torch.Tensor:
        """``Q_i(s, action)`` for every critic: ``[num_qvalue_nets, *batch]``; with ``support``, ``action`` holds
        every action of a finite support, ``[K, *batch, ...]``, and the result is ``[num_qvalue_nets, K, *batch]``."""
        td = tensordict.select(*[k for k in self.qvalue_network.in_keys if k != self.tensor_keys.action], strict=False)
        if support:
            td = td.expand(action.shape[0], *td.batch_size)
        td.set(self.tensor_keys.action, action)
        return self._vmap_qvalue(td, params).get(self.tensor_keys.state_action_value).squeeze(-1)

    def _dist(self, tensordict: TensorDictBase, params: TensorDictBase) -> torch.distributions.Distribution:
        with params.to_module(self.actor_network, preserve_module_state=False):
            return self.actor_network.get_dist(tensordict.select(*self.actor_network.in_keys, strict=False))

    def _policy_terms(
        self, dist: torch.distributions.Distribution, tensordict: TensorDictBase, qvalue_params: TensorDictBase,
        alpha: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(E[ln pi], E[min_i Q_i], E[min_i Q_i - f(alpha ln pi)])`` under ``pi(.|s)``: exact over a finite support,
        else at one reparametrized sample (the expectations of the actor loss and of the bootstrap)."""
        if getattr(dist, "has_enumerate_support", False):
            support = dist.enumerate_support(expand=True)
            log_prob = dist.log_prob(support)  # [K, *batch]
            prob = log_prob.exp()
            q = self._critics(tensordict, support, qvalue_params, support=True).min(0).values
            soft = F.bounded_soft_next_value(q, alpha * log_prob, bound=self.bound, scale=self.bound_scale)
            return (prob * log_prob).sum(0), (prob * q).sum(0), (prob * soft).sum(0)
        with set_exploration_type(ExplorationType.RANDOM):
            action, log_prob = rsample_and_log_prob(dist)
        q = self._critics(tensordict, action, qvalue_params).min(0).values
        return log_prob, q, F.bounded_soft_next_value(q, alpha * log_prob, bound=self.bound, scale=self.bound_scale)

    def _scaled_log_pi_next(self, next_td: TensorDictBase, params: TensorDictBase, alpha: torch.Tensor) -> tuple:
        """The bootstrap and the scaled log-densities it used (for the diagnostics)."""
        dist = self._dist(next_td, params)
        log_prob, _, soft = self._policy_terms(dist, next_td, self._target_qvalue_params(), alpha)
        return soft, alpha * log_prob

    def _target_qvalue_params(self) -> TensorDictBase:
        return self.target_qvalue_network_params if self.delay_qvalue else self.qvalue_network_params.detach()

    @torch.no_grad()
    def _target_and_terms(
        self, tensordict: TensorDictBase, actor_params: TensorDictBase, alpha: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(y, munchausen term, alpha ln pi(a_t|s_t), alpha ln pi(a'|s'))`` (class docstring)."""
        next_td = tensordict.get("next")
        next_value, next_scaled = self._scaled_log_pi_next(next_td, actor_params, alpha)
        bootstrap = self.value_estimator.value_estimate(tensordict, next_value=next_value.unsqueeze(-1)).squeeze(-1)
        scaled = alpha * self._dist(tensordict, actor_params).log_prob(tensordict.get(self.tensor_keys.action))
        bonus = F.bounded_munchausen_term(scaled, beta=self.beta, bound=self.bound, scale=self.bound_scale)
        return bootstrap + bonus, bonus, scaled, next_scaled

    def target(self, tensordict: TensorDictBase) -> torch.Tensor:
        r"""The critics' target :math:`y_t` of the class docstring for each transition (no gradient)."""
        tensordict = self._bool_flags(tensordict)
        return self._target_and_terms(tensordict, self.actor_network_params, self.log_alpha.detach().exp())[0]

    # -- the loss -----------------------------------------------------------------------------
    def loss_and_outputs(
        self, tensordict: TensorDictBase, params: TensorDictBase
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """The three terms as a function of the online parameters ``params`` (the tree of :attr:`fused_params`):
        ``(loss, priority, diagnostics)``, reduced as ``reduction`` says. Reads no online parameter from the
        module and writes nothing to ``tensordict``, so that ``torch.func.grad`` can differentiate it."""
        tensordict = self._bool_flags(tensordict)
        weights = self._weights(tensordict, tensordict.batch_size)
        log_alpha = self.log_alpha if self.fixed_alpha else params["log_alpha"]
        alpha = log_alpha.detach().exp()
        actor_params = params["actor"]

        target, bonus, scaled, next_scaled = self._target_and_terms(tensordict, actor_params.detach(), alpha)
        q_taken = self._critics(tensordict, tensordict.get(self.tensor_keys.action), params["qvalue"])
        qvalue_loss = distance_loss(q_taken, target.expand_as(q_taken), self.loss_function).sum(0)

        dist = self._dist(tensordict, actor_params)
        log_prob, q_policy, _ = self._policy_terms(dist, tensordict, params["qvalue"].detach(), alpha)
        actor_loss = alpha * log_prob - q_policy
        if self.fixed_alpha:
            alpha_loss = torch.zeros_like(log_prob)
        else:
            alpha_loss = -log_alpha * (log_prob.detach() + self.target_entropy)

        loss = self._reduce_loss(actor_loss + qvalue_loss + alpha_loss, tensordict=tensordict, weights=weights)
        with torch.no_grad():
            td_error = (target - q_taken).pow(2).mean(0)
            both = torch.stack([scaled, next_scaled])
            per_sample = {
                "actor_loss": actor_loss, "qvalue_loss": qvalue_loss, "alpha_loss": alpha_loss,
                "alpha": alpha.expand(log_prob.shape), "entropy": -log_prob, "q_value": q_taken.mean(0),
                "td_error": td_error, "munchausen_term": bonus,
                "clip_fraction": torch.zeros_like(bonus) if self.bound == "none" else (both.abs() > self.bound_scale).to(bonus.dtype).mean(0),
            }
            diagnostics = {k: self._reduce_diagnostic(v.detach()) for k, v in per_sample.items()}
            low, high = both.min(0).values, both.max(0).values
            diagnostics["scaled_log_pi_min"] = low if self.reduction == "none" else low.min()
            diagnostics["scaled_log_pi_max"] = high if self.reduction == "none" else high.max()
        return loss, td_error.unsqueeze(-1), diagnostics
