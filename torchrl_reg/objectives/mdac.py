"""Mirror Descent Actor Critic (MDAC): SAC's actor and twin critics with MDVI's KL + entropy target, bounded.

Reference: [MDAC] Iwaki, "Mirror Descent Actor Critic via Bounded Advantage Learning",
arXiv:2502.03854, 2025. [MRL] Vieillard, Pietquin, Geist, "Munchausen Reinforcement Learning",
NeurIPS 2020, arXiv:2007.14430 (the Munchausen form of MDVI that MDAC instantiates).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from functools import partial
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase, TensorDictParams
from tensordict.nn import ProbabilisticTensorDictSequential, TensorDictModule
from tensordict.utils import NestedKey
from torch import nn
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.modules.distributions.utils import rsample_and_log_prob
from torchrl.objectives.utils import _vmap_func, distance_loss

from torchrl_reg import functional as F
from torchrl_reg.objectives.common import ActorCriticKeys, ActorCriticLossBase, _action_spec, _box_bounds
from torchrl_reg.validation import (
    check_bool,
    check_choice,
    check_critic_count,
    check_positive,
    check_range,
    check_unit_interval,
)

__all__ = ["MDACLoss", "resolve_bounds"]

_LOSS_FUNCTIONS = ("l2", "l1", "smooth_l1")


#: The scale ``c`` of the bounded choices when none is given (``tanh(x / 10)``, ``clip(x / 10, -1, 1)``).
DEFAULT_BOUND_SCALE = 10.0
#: The two log-density terms of the critics' target, each with its own bounding function.
TERMS = ("current", "successor")


def _check_target_entropy(name: str, value: float | str) -> float | str:
    """``"auto"`` (``-dim(A)``) or a finite number."""
    if value == "auto":
        return value
    if isinstance(value, (str, bool)) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number or 'auto', got {name}={value!r}")
    return check_range(name, value)


def _check_term_bound(name: str, value: str | None) -> str | None:
    """``None`` (the term takes ``bound``) or one of the bounding functions."""
    return None if value is None else check_choice(name, value, F.LOG_DENSITY_BOUNDS)


def _check_term_scale(name: str, value: float | None) -> float | None:
    """``None`` (the term takes ``bound_scale``) or a finite number > 0."""
    return None if value is None else check_positive(name, value)


def _check_delay_actor(name: str, value: bool) -> bool:
    """``False`` only (TorchRL's ``SACLoss`` keyword, which its SAC example passes as ``delay_actor=False``): MDAC's
    target samples ``a'`` from the current actor, as SAC's does, so there is no target actor to delay."""
    check_bool(name, value)
    if value:
        raise ValueError(
            f"{name}=True asks for a target actor, and MDACLoss has none: its critics' target samples a' from the "
            "current actor (as SAC's does) and only the critics have target copies (delay_qvalue); pass "
            f"{name}=False or leave it out"
        )
    return value


def resolve_bounds(arguments: Mapping[str, Any]) -> dict[str, tuple[str, float | None]]:
    """``{"current": (bound, scale), "successor": (bound, scale)}`` from :class:`MDACLoss`'s keyword arguments
    (``bound``, ``bound_scale`` and the per-term ``bound_<term>``, ``bound_<term>_scale``, ``None`` taking the
    shared one; missing ones at their defaults); the scale is ``None`` for ``"none"``, which has none."""
    resolved = {}
    for term in TERMS:
        bound = arguments.get(f"bound_{term}")
        bound = arguments.get("bound", "tanh") if bound is None else bound
        scale = arguments.get(f"bound_{term}_scale")
        scale = arguments.get("bound_scale", DEFAULT_BOUND_SCALE) if scale is None else scale
        resolved[term] = (bound, None if bound == "none" else float(scale))
    return resolved


def check_target_entropy(target_entropy: float, action_spec: TensorSpec | None, key: NestedKey = "action",
                         prefix: str = "") -> None:
    """Raise ``ValueError`` when ``target_entropy`` is above the largest entropy of any policy on ``action_spec``
    (its ``key`` entry for a composite): the temperature would then grow without bound. What
    :class:`MDACLoss` checks against its actor's spec, and a recipe against its env's action spec before
    anything is built; ``prefix`` names the config group in the message (``"loss."``)."""
    most = _max_entropy(action_spec, key)
    if most is not None and target_entropy > most[0]:
        raise ValueError(
            f"{prefix}target_entropy={target_entropy} is above the largest entropy of any policy on the actor's "
            f"action spec, {most[1]}: {most[0]:.6g} nats; the temperature would grow without bound. Give a "
            "value below it ('auto' is -dim(A))"
        )


def _max_entropy(spec: TensorSpec | None, key: NestedKey) -> tuple[float, str] | None:
    """The largest entropy of any policy on the action spec ``spec`` (or its ``key`` entry) and what it is:
    ``sum_j ln(high_j - low_j)`` (the uniform's) on a box, ``ln n`` on ``n`` discrete actions; ``None`` if the spec
    says neither."""
    if spec is not None and key in getattr(spec, "keys", lambda *a, **k: ())(True, True):
        spec = spec[key]
    bounds = _box_bounds(spec, key)
    if bounds is not None:
        low, high = bounds
        return float((high.double() - low.double()).log().sum()), "sum_j ln(high_j - low_j), the uniform's on the box"
    n = getattr(getattr(spec, "space", None), "n", None)
    if isinstance(n, int) and spec.shape == torch.Size([]):
        return math.log(n), f"ln {n}, the uniform's over the {n} actions"
    return None


class MDACLoss(ActorCriticLossBase):
    r"""MDAC ([MDAC] Sec. 3): a SAC-style actor :math:`\pi_\theta`, critics :math:`Q_{\psi_i}` and the KL + entropy
    target of MDVI in its Munchausen form, whose two log-density terms pass through a bounding function :math:`f`.

    With :math:`\alpha` the temperature (SAC's, tuned towards a target entropy) and :math:`\beta \in [0, 1)` the
    Munchausen coefficient (MDVI's KL and entropy weights are :math:`\lambda = \beta\alpha`,
    :math:`\tau = (1-\beta)\alpha`, [MRL] "Implicit KL regularization"), each critic regresses

    .. math::
        y_t = r_t + \beta f_c\big(\alpha\ln\pi_\theta(a_t|s_t)\big)
              + \gamma^n (1 - \mathrm{terminated}) \Big[\min_i Q_{\bar\psi_i}(s_{t+n}, a')
              - f_s\big(\alpha\ln\pi_\theta(a'|s_{t+n})\big)\Big], \qquad a' \sim \pi_\theta(\cdot|s_{t+n})

    (target critics :math:`\bar\psi`, the current actor, no gradient through the target): the Munchausen term on
    the replayed action (the *current* term, bounded by :math:`f_c`) and the next state's entropy term (the
    *successor* term, bounded by :math:`f_s`); MDAC bounds both with the same :math:`f`. In the tabular case
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
    :math:`c` = ``bound_scale`` (10). ``beta = 0`` with ``bound="none"`` is SAC. ``bound`` and ``bound_scale``
    set both terms; ``bound_current`` / ``bound_current_scale`` and ``bound_successor`` /
    ``bound_successor_scale`` set one term each (``None``: the shared value), e.g. the ablations that bound only
    the current term (``bound_successor="none"``) or only the successor term (``bound_current="none"``), which
    the reviews of [MDAC]'s first version describe (measured on HalfCheetah-v5 at 100k in RESULTS.md: the current
    term's bound alone reaches MDAC's level, the successor term's alone diverges as the unbounded variant does). A
    scale that no term reads is refused, as is a scale given to a ``"none"`` term.

    Temperature: tuned as SAC's by default (``fixed_alpha=False``, as [MDAC] keeps SAC's tuning); with
    ``fixed_alpha=True`` it stays at ``alpha_init`` and there is no temperature loss.

    Sources: of [MDAC] only the abstract and the public reviews of its OpenReview submission could be read
    here (not the equations' numbering nor the hyperparameter table). The target above, the bounded choices
    ``tanh(x/10)`` and ``clip(x/10, -1, 1)`` against the identity, and SAC's automatic temperature (target
    :math:`-\dim\mathcal A`) follow those descriptions. Not from the paper: ``beta = 0.9`` (M-DQN's and M-IQ's
    value), the scale ``c = 10`` of ``tanh`` (the reviews quote ``clip(x/10, -1, 1)``) and the recipe's network
    sizes (SAC's 2x256), until the paper's body is read.

    Args:
        actor_network: a :class:`~torchrl.modules.ProbabilisticActor` whose distribution has ``log_prob`` for the
            replayed actions and ``rsample`` (or a finite support), e.g.
            :func:`torchrl_reg.modules.policies.tanh_normal_policy`; a deterministic actor (TorchRL's ``Actor``,
            a Delta) or a distribution without ``rsample`` is refused.
        qvalue_network: ``Q(s, a)`` writing ``"state_action_value"``, e.g.
            :func:`torchrl_reg.modules.critics.state_action_value_network`.

    Keyword Args:
        beta (float): Munchausen coefficient in ``[0, 1)``. Default 0.9.
        bound (str): ``"tanh"``, ``"clip"`` or ``"none"``, for both terms. Default ``"tanh"``.
        bound_scale (float): :math:`c > 0` of the bounded choices, for both terms. Default 10.
        bound_current, bound_successor (str or None): the bound of one term (:math:`f_c`, :math:`f_s`); ``None``
            (default): ``bound``.
        bound_current_scale, bound_successor_scale (float or None): its scale; ``None`` (default): ``bound_scale``.
        alpha_init (float): initial (or fixed) temperature, > 0. Default 1.0 (SAC's).
        fixed_alpha (bool): keep the temperature at ``alpha_init``. Default ``False``.
        target_entropy (float or "auto"): :math:`\bar{\mathcal H}`; ``"auto"`` is :math:`-\dim\mathcal A` of the
            actor's box spec; a number above the largest entropy on the action spec (the uniform's,
            :math:`\sum_j \ln(\mathrm{high}_j - \mathrm{low}_j)` on a box) is refused. Default ``"auto"``.
        num_qvalue_nets (int): 1 or 2 critics. Default 2.
        loss_function (str): ``"l2"`` (default), ``"l1"`` or ``"smooth_l1"`` for the critics.
        delay_qvalue (bool): target critics (update with ``SoftUpdate``). Default ``True``.
        delay_actor (bool): ``False`` only, TorchRL's ``SACLoss`` keyword (its SAC example passes
            ``delay_actor=False``): the target samples from the current actor, which has no target copy.
        reduction, use_prioritized_weights, check_finite: as :class:`RegularizedLossBase`.

    gamma is the value estimator's: ``loss.make_value_estimator(gamma=0.99)``.

    Input: the batch is checked as :meth:`~torchrl_reg.objectives.common.RegularizedLossBase.check_batch` says,
    by :meth:`forward` and :meth:`target` alike; the action must have the shape ``[*batch, *spec.shape]`` of the
    actor's action spec (``[N, 1]`` for a one-dimensional box, not ``[N]``) and lie inside its box.

    Output, as TorchRL's ``SACLoss``: ``loss_actor``, ``loss_qvalue`` (summed over the critics) and
    ``loss_alpha`` with their gradients (0 with ``fixed_alpha``, without one). They touch disjoint parameters:
    one optimizer per term (TorchRL's SAC example) or one Adam over ``loss.parameters()`` stepping their sum
    (:func:`~torchrl_reg.objectives.make_update`, which also fuses it) take the same step. Beside them, detached:
    ``alpha``, ``entropy`` (of :math:`\pi_\theta(\cdot|s_t)`: exact for a finite
    support, else :math:`-\ln\pi_\theta(\tilde a|s_t)`), ``q_value`` (mean over critics), ``td_error``
    (:math:`\mathrm{mean}_i (y_t - Q_{\psi_i})^2`, also written in place under the priority key, ``[..., 1]``),
    ``munchausen_term`` (:math:`\beta f_c(\cdot)` as added), ``clip_fraction`` (share of the two log-density
    terms with :math:`|x| > c` of its own bound, where ``"clip"`` clips and ``"tanh"`` is past its linear range;
    a ``"none"`` term counts as inside) and
    the range of the scaled log-densities :math:`\alpha\ln\pi` entering the target, ``scaled_log_pi_min`` /
    ``scaled_log_pi_max`` (reduced by min / max, not mean).
    """

    _AcceptedKeys = ActorCriticKeys
    default_keys = ActorCriticKeys
    tensor_keys: ActorCriticKeys
    out_keys = [
        "loss_actor", "loss_qvalue", "loss_alpha", "alpha", "entropy", "q_value", "td_error",
        "munchausen_term", "clip_fraction", "scaled_log_pi_min", "scaled_log_pi_max",
    ]
    _network_names = ("actor_network", "qvalue_network")
    network_outputs = {"qvalue_network": "state_action_value"}
    actor_argument = "actor_network"
    critic_argument = "qvalue_network"
    actor_sample = "rsample_or_support"
    actor_use = (
        "differentiates its actor loss, alpha ln pi(a~|s) - min_i Q_i(s, a~), through a reparametrized sample a~ and "
        "reads ln pi of the replayed actions"
    )
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
        "bound_current": _check_term_bound,
        "bound_current_scale": _check_term_scale,
        "bound_successor": _check_term_bound,
        "bound_successor_scale": _check_term_scale,
        "alpha_init": check_positive,
        "fixed_alpha": check_bool,
        "target_entropy": _check_target_entropy,
        "num_qvalue_nets": check_critic_count,
        "loss_function": partial(check_choice, choices=_LOSS_FUNCTIONS),
        "delay_qvalue": check_bool,
        "delay_actor": _check_delay_actor,
    }

    def __init__(
        self,
        actor_network: ProbabilisticTensorDictSequential,
        qvalue_network: TensorDictModule,
        *,
        beta: float = 0.9,
        bound: str = "tanh",
        bound_scale: float = DEFAULT_BOUND_SCALE,
        bound_current: str | None = None,
        bound_current_scale: float | None = None,
        bound_successor: str | None = None,
        bound_successor_scale: float | None = None,
        alpha_init: float = 1.0,
        fixed_alpha: bool = False,
        target_entropy: float | str = "auto",
        num_qvalue_nets: int = 2,
        loss_function: str = "l2",
        delay_qvalue: bool = True,
        delay_actor: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.target_entropy = self._target_entropy(actor_network, target_entropy, fixed_alpha)
        self.beta = beta
        self.bound = bound
        self.bound_scale = bound_scale
        bounds = resolve_bounds({
            "bound": bound, "bound_scale": bound_scale, "bound_current": bound_current,
            "bound_current_scale": bound_current_scale, "bound_successor": bound_successor,
            "bound_successor_scale": bound_successor_scale,
        })
        #: The bounding function and scale of each term (``"none"`` has no scale): ``f_c``, ``f_s``.
        self.bound_current, self.bound_current_scale = bounds["current"]
        self.bound_successor, self.bound_successor_scale = bounds["successor"]
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

    @classmethod
    def check_argument_relations(cls, arguments: Mapping[str, Any], prefix: str) -> None:
        """A scale no term reads is refused: a per-term scale of a ``"none"`` term, and ``bound_scale`` (away from
        its default) when each term is ``"none"`` or has its own scale."""
        names = ("bound", "bound_scale", *(f"bound_{t}{s}" for t in TERMS for s in ("", "_scale")))
        if any(name not in arguments for name in names):
            return
        bounds = resolve_bounds(arguments)
        for term in TERMS:
            scale = arguments[f"bound_{term}_scale"]
            if scale is not None and bounds[term][0] == "none":
                by = f"bound_{term}" if arguments[f"bound_{term}"] is not None else "bound"
                raise ValueError(
                    f"{prefix}bound_{term}_scale={scale} is not used by {prefix}{by}='none' (the identity has no "
                    f"scale): leave {prefix}bound_{term}_scale unset or bound the {term} term"
                )
        if arguments["bound_scale"] == DEFAULT_BOUND_SCALE:
            return
        readers = [t for t in TERMS if bounds[t][0] != "none" and arguments[f"bound_{t}_scale"] is None]
        if not readers:
            if all(arguments[f"bound_{t}"] is None for t in TERMS) and arguments["bound"] == "none":
                why = f"{prefix}bound='none'"
            else:
                why = ", ".join(
                    f"{prefix}bound_{t}_scale={arguments[f'bound_{t}_scale']}" if bounds[t][0] != "none"
                    else f"{prefix}bound_{t}='none'" if arguments[f"bound_{t}"] is not None else f"{prefix}bound='none'"
                    for t in TERMS
                )
            raise ValueError(
                f"{prefix}bound_scale={arguments['bound_scale']} is not used by {why}: leave it at its default "
                f"{DEFAULT_BOUND_SCALE} or give it to a bounded term"
            )

    def _target_entropy(self, actor_network: TensorDictModule, target_entropy: float | str, fixed_alpha: bool) -> float:
        if target_entropy != "auto":
            check_target_entropy(target_entropy, _action_spec(actor_network, self.tensor_keys.action), self.tensor_keys.action)
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
        """``(E[ln pi], E[min_i Q_i], E[min_i Q_i - f_s(alpha ln pi)])`` under ``pi(.|s)``: exact over a finite
        support, else at one reparametrized sample (the expectations of the actor loss and of the bootstrap)."""
        if getattr(dist, "has_enumerate_support", False):
            support = dist.enumerate_support(expand=True)
            log_prob = dist.log_prob(support)  # [K, *batch]
            prob = log_prob.exp()
            q = self._critics(tensordict, support, qvalue_params, support=True).min(0).values
            return (prob * log_prob).sum(0), (prob * q).sum(0), (prob * self._successor_value(q, alpha * log_prob)).sum(0)
        if not dist.has_rsample:  # what the constructor could not tell from the distribution's class
            raise TypeError(self.actor_refusal(f"its distribution {type(dist).__name__} has no reparametrized sample"))
        with set_exploration_type(ExplorationType.RANDOM):
            action, log_prob = rsample_and_log_prob(dist)
        q = self._critics(tensordict, action, qvalue_params).min(0).values
        return log_prob, q, self._successor_value(q, alpha * log_prob)

    def _successor_value(self, q: torch.Tensor, scaled_log_pi: torch.Tensor) -> torch.Tensor:
        """``Q - f_s(alpha ln pi)``, the successor term through its bound."""
        scale = self.bound_successor_scale or 1.0  # "none" reads no scale
        return F.bounded_soft_next_value(q, scaled_log_pi, bound=self.bound_successor, scale=scale)

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
        scale = self.bound_current_scale or 1.0  # "none" reads no scale
        bonus = F.bounded_munchausen_term(scaled, beta=self.beta, bound=self.bound_current, scale=scale)
        return bootstrap + bonus, bonus, scaled, next_scaled

    def target(self, tensordict: TensorDictBase) -> torch.Tensor:
        r"""The critics' target :math:`y_t` of the class docstring for each transition (no gradient). The batch is
        checked as :meth:`forward` checks it (the same path: layout, action shape and box, ``steps_to_next_obs``,
        with ``check_finite`` NaN/inf inputs); integer flags are read as ``flag != 0``."""
        self._check_call(tensordict)
        tensordict = self._bool_flags(tensordict)
        return self._target_and_terms(tensordict, self.actor_network_params, self.log_alpha.detach().exp())[0]

    # -- the loss -----------------------------------------------------------------------------
    def loss_terms(
        self, tensordict: TensorDictBase, params: TensorDictBase
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor, dict[str, torch.Tensor]]:
        """``({"loss_actor", "loss_qvalue", "loss_alpha"}, priority, diagnostics)`` as a function of the online
        parameters ``params`` (the tree of :attr:`fused_params`), each term with its gradient and reduced as
        ``reduction`` says, the diagnostics detached. Reads no online parameter from the module and writes nothing
        to ``tensordict``; the batch is taken as checked (:meth:`forward` and :meth:`target` check it)."""
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

        terms = {
            name: self._reduce_loss(value, tensordict=tensordict, weights=weights)
            for name, value in (("loss_actor", actor_loss), ("loss_qvalue", qvalue_loss), ("loss_alpha", alpha_loss))
        }
        with torch.no_grad():
            td_error = (target - q_taken).pow(2).mean(0)
            per_sample = {
                "alpha": alpha.expand(log_prob.shape), "entropy": -log_prob, "q_value": q_taken.mean(0),
                "td_error": td_error, "munchausen_term": bonus,
                "clip_fraction": (self._beyond_scale(scaled, self.bound_current, self.bound_current_scale)
                                  + self._beyond_scale(next_scaled, self.bound_successor, self.bound_successor_scale)) / 2,
            }
            diagnostics = {k: self._reduce_diagnostic(v.detach()) for k, v in per_sample.items()}
            both = torch.stack([scaled, next_scaled])
            low, high = both.min(0).values, both.max(0).values
            diagnostics["scaled_log_pi_min"] = low if self.reduction == "none" else low.min()
            diagnostics["scaled_log_pi_max"] = high if self.reduction == "none" else high.max()
        return terms, td_error.unsqueeze(-1), diagnostics

    @staticmethod
    def _beyond_scale(scaled: torch.Tensor, bound: str, scale: float | None) -> torch.Tensor:
        """1 where a bounded term's ``|alpha ln pi|`` exceeds its scale (the clip clips, tanh is past its linear
        range), else 0; always 0 for ``"none"``."""
        return torch.zeros_like(scaled) if bound == "none" else (scaled.abs() > scale).to(scaled.dtype)

    def loss_and_outputs(
        self, tensordict: TensorDictBase, params: TensorDictBase
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """:meth:`loss_terms` for the fused update: ``(loss, priority, outputs)`` with ``loss`` the sum of the three
        terms (disjoint parameters: one gradient of the sum is the three gradients) and ``outputs`` the terms,
        detached, beside the diagnostics, the entries :meth:`forward` returns."""
        terms, priority, diagnostics = self.loss_terms(tensordict, params)
        loss = terms["loss_actor"] + terms["loss_qvalue"] + terms["loss_alpha"]
        return loss, priority, {**{name: value.detach() for name, value in terms.items()}, **diagnostics}

    def _forward_outputs(self, tensordict: TensorDictBase, params: TensorDictBase) -> tuple[dict, torch.Tensor]:
        terms, priority, diagnostics = self.loss_terms(tensordict, params)
        return {**terms, **diagnostics}, priority
