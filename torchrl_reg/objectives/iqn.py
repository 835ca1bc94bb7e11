"""IQN and Munchausen-IQN as TorchRL loss modules.

References:

* [IQN] Dabney, Ostrovski, Silver, Munos. Implicit Quantile Networks for
  Distributional Reinforcement Learning, ICML 2018 (arXiv:1806.06923), Sec. 3:
  the sample TD errors ``delta_ij = r + gamma Z_{tau'_j}(s', a*) - Z_{tau_i}(s, a)``
  with ``a* = argmax_a 1/K sum_k Z_{tau~_k}(s', a)``, and the loss
  ``1/N' sum_i sum_j rho^kappa_{tau_i}(delta_ij)`` (quantile Huber, Sec. 2 / 3).
* [MRL] Vieillard, Pietquin, Geist, Munchausen Reinforcement Learning
  (``munchausen-rl-slides.txt``, slides "Case study: DQN" and "Case study: IQN"),
  with the M-IQN details of ``REFERENCE.md``: the softmax policy comes from the mean
  of ``K`` target-network quantiles, at ``s`` (for the bonus) and at ``s'`` (for the
  bootstrap); per target fraction ``tau'_j``

  ``r + alpha clip(tau ln pi(a|s), l0, u)
  + gamma sum_a' pi(a'|s') (Z_{tau'_j}(s', a') - tau ln pi(a'|s'))``.

  The official M-IQN code clips the bonus to ``[l0, 0]`` (the defaults here);
  Revisiting Rainbow's JAX port clips to ``[l0, 1]`` (inactive upper bound).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from tensordict import TensorDict, TensorDictBase, TensorDictParams
from tensordict.nn import TensorDictModule
from tensordict.utils import NestedKey, unravel_key_list
from torch import nn
from torchrl.data.tensor_specs import TensorSpec
from torchrl.data.utils import _find_action_space
from torchrl.modules.tensordict_module.actors import QValueActor
from torchrl.modules.tensordict_module.common import ensure_tensordict_compatible
from torchrl.objectives.common import LossModule
from torchrl.objectives.utils import ValueEstimators, dispatch_value_estimator
from torchrl.objectives.value import ValueEstimatorBase

from torchrl_reg import functional as F
from torchrl_reg.modules.iqn import ImplicitQuantileNetwork, sample_fractions
from torchrl_reg.objectives.common import check_unit_interval

__all__ = [
    "quantile_huber_loss",
    "iqn_next_quantiles",
    "munchausen_iqn_next_quantiles",
    "IQNLoss",
    "MunchausenIQNLoss",
]


def quantile_huber_loss(
    quantiles_tm1: torch.Tensor,
    target_quantiles: torch.Tensor,
    fractions: torch.Tensor,
    kappa: float = 1.0,
) -> torch.Tensor:
    r"""Quantile-Huber loss of one transition, summed over online and averaged over target quantiles.

    .. math:: \frac{1}{N'} \sum_{i=1}^{N} \sum_{j=1}^{N'} \rho^\kappa_{\tau_i}(\delta_{ij}),\quad
              \delta_{ij} = T\theta_j - \theta_i,\quad
              \rho^\kappa_\tau(\delta) = |\tau - \mathbb{1}\{\delta < 0\}|\, \frac{L_\kappa(\delta)}{\kappa}

    with the Huber loss :math:`L_\kappa(\delta) = \delta^2/2` if :math:`|\delta| \le \kappa`, else
    :math:`\kappa(|\delta| - \kappa/2)` ([IQN], Sec. 3; [MRL] uses it unchanged for M-IQN).

    Args:
        quantiles_tm1: online quantiles of the taken action ``theta_i``, ``[..., N]``.
        target_quantiles: target samples ``T theta_j`` (no gradient flows into them), ``[..., N']``.
        fractions: the fractions ``tau_i`` of ``quantiles_tm1``, ``[..., N]`` or ``[N]``.
        kappa: Huber threshold, > 0.

    Returns:
        the loss per transition, ``[...]``.
    """
    if not kappa > 0:
        raise ValueError(f"kappa must be > 0, got kappa={kappa}")
    delta = target_quantiles.detach().unsqueeze(-1) - quantiles_tm1.unsqueeze(-2)  # [..., N', N]
    abs_delta = delta.abs()
    huber = torch.where(abs_delta <= kappa, 0.5 * delta.pow(2), kappa * (abs_delta - 0.5 * kappa))
    weight = (fractions.unsqueeze(-2) - (delta.detach() < 0).to(delta.dtype)).abs()
    return (weight * huber).sum(-1).mean(-1) / kappa


def _gather_action(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``x[..., n, a]`` for actions ``a`` of shape ``x.shape[:-2]``: ``[..., n]``."""
    index = a.long().reshape(*a.shape, 1, 1).expand(*x.shape[:-1], 1)
    return x.gather(-1, index).squeeze(-1)


def iqn_next_quantiles(q_t: torch.Tensor, theta_t: torch.Tensor) -> torch.Tensor:
    r"""IQN bootstrap samples ``Z_{tau'_j}(s', a*)`` with ``a* = argmax_a q_t(a)`` ([IQN], Sec. 3).

    ``q_t`` ``[..., A]`` is the mean over ``K`` target quantiles at ``s'``, ``theta_t``
    ``[..., N', A]`` the target quantiles at the ``N'`` target fractions. Returns ``[..., N']``.
    """
    return _gather_action(theta_t, q_t.argmax(-1))


def munchausen_iqn_next_quantiles(q_t: torch.Tensor, theta_t: torch.Tensor, *, tau: float) -> torch.Tensor:
    r"""M-IQN soft bootstrap samples ([MRL], "Case study: IQN"; REFERENCE.md):

    .. math:: \sum_{a'} \pi(a'|s') \big(\theta_j(s', a') - \tau \ln \pi(a'|s')\big),
              \quad \pi = \mathrm{softmax}(q_t / \tau)

    ``q_t`` ``[..., A]`` is the mean over ``K`` target quantiles at ``s'`` (it defines the
    policy), ``theta_t`` ``[..., N', A]`` the target quantiles. Returns ``[..., N']``. This is
    not ``tau * logsumexp(theta_j / tau)``: the policy comes from the mean, not from ``theta_j``.
    """
    log_pi = F.scaled_log_policy(q_t, tau)
    pi = (log_pi / tau).exp()
    return (pi.unsqueeze(-2) * (theta_t - log_pi.unsqueeze(-2))).sum(-1)


def _check_count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {name}={value!r}")
    return value


def _find_quantile_network(module: nn.Module) -> ImplicitQuantileNetwork:
    for m in module.modules():
        if isinstance(m, ImplicitQuantileNetwork):
            return m
    raise TypeError(
        f"value_network must contain an ImplicitQuantileNetwork (e.g. QValueActor(ImplicitQuantileNetwork(...))), "
        f"got {type(module).__name__}"
    )


class IQNLoss(LossModule):
    r"""Implicit quantile network loss ([IQN], Sec. 3).

    For each transition, ``N`` online fractions ``tau_i`` and ``N'`` target fractions ``tau'_j``
    are drawn; the target samples are ``r + gamma^n (1 - terminated) Z_{tau'_j}(s', a*)`` with
    ``a*`` greedy for the mean of ``K`` target quantiles at ``s'`` (target network, as in
    Dopamine's IQN). The loss is :func:`quantile_huber_loss`.

    Args:
        value_network: a :class:`~torchrl.modules.QValueActor` (or any TensorDictModule) wrapping an
            :class:`~torchrl_reg.modules.iqn.ImplicitQuantileNetwork` that reads one observation key.

    Keyword Args:
        num_quantiles: ``N``, online fractions per transition (64 on Atari, 32 on MinAtar).
        num_target_quantiles: ``N'``, target fractions per transition (64 on Atari, 32 on MinAtar).
        num_policy_quantiles: ``K``, fractions averaged to get the greedy/softmax policy (32).
        kappa: quantile-Huber threshold (1.0).
        independent_fractions: ``True`` draws fractions per transition ([IQN], Dopamine's
            TensorFlow agents); ``False`` draws one set shared by the batch (Dopamine's JAX
            agents, used by Revisiting Rainbow), which is much cheaper when the embedding
            layer dominates (MinAtar).
        delay_value: keep a separate target network (``True``, update it with
            :class:`~torchrl.objectives.HardUpdate` / :class:`~torchrl.objectives.SoftUpdate`).
        action_space: ``"one-hot"`` or ``"categorical"`` (or the spec); read from the
            value network when omitted.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
        use_prioritized_weights: weight the per-transition loss by ``priority_weight`` when present
            (``"auto"``).

    Gamma and n-step discounting live in the value estimator:
    ``loss.make_value_estimator(gamma=0.99)`` (TD(0) on each target sample, ``gamma **
    steps_to_next_obs`` when :class:`torchrl_reg.data.MultiStepTransform` wrote that key; ``terminated``
    cuts the bootstrap, ``truncated`` does not). The per-transition loss is written in place
    under ``"td_error"`` as the replay priority.

    Examples:
        >>> net = ImplicitQuantileNetwork.mlp(4, 2)
        >>> actor = QValueActor(net, in_keys=["observation"], spec=Categorical(2))  # doctest: +SKIP
        >>> loss = IQNLoss(actor, num_quantiles=32, num_target_quantiles=32)  # doctest: +SKIP
        >>> loss.make_value_estimator(gamma=0.99)  # doctest: +SKIP
        >>> loss(replay_buffer.sample())["loss"].backward()  # doctest: +SKIP
    """

    @dataclass
    class _AcceptedKeys:
        """Configurable tensordict keys (``loss.set_keys(...)``; nested keys are accepted).

        Attributes:
            advantage, value_target, value: forwarded to the value estimator.
            action_value: the network's action values (``"action_value"``).
            action: the taken action (``"action"``).
            priority: where the per-transition loss is written for prioritized replay (``"td_error"``).
            priority_weight: importance weights of prioritized replay (``"priority_weight"``).
            reward, done, terminated: read under ``"next"``.
            steps_to_next_obs: n-step horizon written by :class:`torchrl_reg.data.MultiStepTransform`.
        """

        advantage: NestedKey = "advantage"
        value_target: NestedKey = "value_target"
        value: NestedKey = "chosen_action_value"
        action_value: NestedKey = "action_value"
        action: NestedKey = "action"
        priority: NestedKey = "td_error"
        priority_weight: NestedKey = "priority_weight"
        reward: NestedKey = "reward"
        done: NestedKey = "done"
        terminated: NestedKey = "terminated"
        steps_to_next_obs: NestedKey = "steps_to_next_obs"

    tensor_keys: _AcceptedKeys
    default_keys = _AcceptedKeys
    default_value_estimator = ValueEstimators.TD0
    SUPPORTED_VALUE_ESTIMATORS = (ValueEstimators.TD0,)
    out_keys = ["loss", "td_error", "q_value", "action_gap"]
    #: ``loss_and_outputs`` traces into one graph, so :func:`torchrl_reg.recipe_utils.make_update`
    #: may fuse gradient and optimizer step.
    fusable_update = True

    value_network: TensorDictModule
    value_network_params: TensorDictParams
    target_value_network_params: TensorDictParams

    def __init__(
        self,
        value_network: QValueActor | nn.Module,
        *,
        num_quantiles: int = 64,
        num_target_quantiles: int = 64,
        num_policy_quantiles: int = 32,
        kappa: float = 1.0,
        independent_fractions: bool = True,
        delay_value: bool = True,
        action_space: str | TensorSpec | None = None,
        reduction: str | None = None,
        use_prioritized_weights: str | bool = "auto",
    ) -> None:
        self.num_quantiles = _check_count("num_quantiles", num_quantiles)
        self.num_target_quantiles = _check_count("num_target_quantiles", num_target_quantiles)
        self.num_policy_quantiles = _check_count("num_policy_quantiles", num_policy_quantiles)
        kappa = float(kappa)
        if not kappa > 0 or kappa == float("inf"):
            raise ValueError(f"kappa must be a finite number > 0, got kappa={kappa}")
        if reduction is None:
            reduction = "mean"
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be one of 'mean', 'sum', 'none', got reduction={reduction!r}")
        super().__init__()
        self.kappa = kappa
        self.independent_fractions = bool(independent_fractions)
        self.delay_value = delay_value
        self.reduction = reduction
        self.use_prioritized_weights = use_prioritized_weights
        self._in_keys = None
        value_network = ensure_tensordict_compatible(
            module=value_network, wrapper_type=QValueActor, action_space=action_space
        )
        quantile_network = _find_quantile_network(value_network)
        if len(value_network.in_keys) != 1:
            raise ValueError(
                "the ImplicitQuantileNetwork must read exactly one observation key, "
                f"got in_keys={value_network.in_keys}"
            )
        self.convert_to_functional(value_network, "value_network", create_target_params=delay_value)
        # Kept out of the submodule registry: its parameters belong to value_network_params.
        self.__dict__["quantile_network"] = quantile_network
        self.observation_key = value_network.in_keys[0]
        if action_space is None:
            action_space = getattr(value_network, "action_space", None) or getattr(value_network, "spec", None)
        if action_space is None:
            raise ValueError(
                "the action space could not be read from value_network; pass action_space='one-hot' "
                "or 'categorical' (or the action spec)"
            )
        self.action_space = _find_action_space(action_space)
        if self.action_space not in ("one_hot", "categorical"):
            raise ValueError(
                f"{type(self).__name__} supports one-hot and categorical actions, got {self.action_space!r}"
            )

    def _forward_value_estimator_keys(self, **kwargs) -> None:
        if self._value_estimator is not None:
            self._value_estimator.set_keys(
                advantage=self.tensor_keys.advantage,
                value_target=self.tensor_keys.value_target,
                value=self.tensor_keys.value,
                reward=self.tensor_keys.reward,
                done=self.tensor_keys.done,
                terminated=self.tensor_keys.terminated,
                steps_to_next_obs=self.tensor_keys.steps_to_next_obs,
            )
        self._set_in_keys()

    def _set_in_keys(self) -> None:
        keys = [
            self.tensor_keys.action,
            ("next", self.tensor_keys.reward),
            ("next", self.tensor_keys.done),
            ("next", self.tensor_keys.terminated),
            self.observation_key,
            ("next", self.observation_key),
        ]
        self._in_keys = list(dict.fromkeys(unravel_key_list(keys)))

    @property
    def in_keys(self) -> list[NestedKey]:
        if self._in_keys is None:
            self._set_in_keys()
        return self._in_keys

    def make_value_estimator(self, value_type: ValueEstimators | None = None, **hyperparams) -> IQNLoss:
        """Set the discount: ``loss.make_value_estimator(gamma=0.99)`` (TD(0) only; n-step
        returns come from :class:`torchrl_reg.data.MultiStepTransform`)."""
        if value_type is None:
            value_type = self.default_value_estimator
        if isinstance(value_type, ValueEstimatorBase) or (
            isinstance(value_type, type) and issubclass(value_type, ValueEstimatorBase)
        ):
            LossModule.make_value_estimator(self, value_type, **hyperparams)
            self._forward_value_estimator_keys()
            return self
        # The loss hands the estimator its next-state samples, so the estimator never calls a network.
        hyperparams.setdefault("value_network", None)
        dispatch_value_estimator(
            self,
            value_type,
            supported=self.SUPPORTED_VALUE_ESTIMATORS,
            tensor_keys={
                "advantage": self.tensor_keys.advantage,
                "value_target": self.tensor_keys.value_target,
                "value": self.tensor_keys.value,
                "reward": self.tensor_keys.reward,
                "done": self.tensor_keys.done,
                "terminated": self.tensor_keys.terminated,
                "steps_to_next_obs": self.tensor_keys.steps_to_next_obs,
            },
            **hyperparams,
        )
        return self

    def _fractions(self, batch: int, n: int, device: torch.device) -> torch.Tensor:
        return sample_fractions((batch,), n, independent=self.independent_fractions, device=device)

    def _action_index(self, action: torch.Tensor, batch: int) -> torch.Tensor:
        if self.action_space == "categorical":
            return action.reshape(batch).long()
        return action.reshape(batch, -1).argmax(-1)

    def _next_quantiles(
        self, obs: torch.Tensor, next_obs: torch.Tensor, action: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, torch.Tensor]]:
        """Target samples at ``s'`` (``[B, N']``), the reward bonus (``[B]`` or None) and diagnostics.

        Runs under the target parameters and ``no_grad``.
        """
        net = self.quantile_network
        batch, device = next_obs.shape[0], next_obs.device
        features = net.features(next_obs)
        q_t = net.action_values_from_features(features, self._fractions(batch, self.num_policy_quantiles, device))
        theta_t = net.quantiles_from_features(features, self._fractions(batch, self.num_target_quantiles, device))
        return iqn_next_quantiles(q_t, theta_t), None, {}

    def loss_and_outputs(
        self, tensordict: TensorDictBase, params: TensorDictBase
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """The loss as a function of the online parameters ``params``: ``(loss, priority, diagnostics)``.

        :meth:`forward` is this function at ``self.value_network_params``, followed by the in-place
        priority write; it writes nothing to ``tensordict``, so that ``torch.func.grad`` can
        differentiate it with respect to ``params`` (the fused update of
        :func:`torchrl_reg.recipe_utils.make_update`). ``priority`` is the per-transition loss,
        shaped like the batch with a trailing singleton dimension.
        """
        batch_shape = tensordict.batch_size
        data = tensordict.reshape(-1)
        batch = data.batch_size[0]
        obs = data.get(self.observation_key)
        next_obs = data.get(("next", self.observation_key))
        action = self._action_index(data.get(self.tensor_keys.action), batch)
        net = self.quantile_network

        fractions = self._fractions(batch, self.num_quantiles, obs.device)
        with params.to_module(self.value_network, preserve_module_state=False):
            quantiles = net.quantile_values(obs, fractions)  # [B, N, A]
        quantiles_tm1 = _gather_action(quantiles, action)  # [B, N]

        with torch.no_grad(), self.target_value_network_params.to_module(
            self.value_network, preserve_module_state=False
        ):
            next_quantiles, bonus, diagnostics = self._next_quantiles(obs, next_obs, action)
        target = self._bootstrap(data, next_quantiles, bonus)  # [B, N']

        loss = quantile_huber_loss(quantiles_tm1, target, fractions, self.kappa)  # [B]
        priority = loss.detach()
        weights = None
        if self.use_prioritized_weights in (True, "auto") and self.tensor_keys.priority_weight in data.keys(True):
            weights = data.get(self.tensor_keys.priority_weight).reshape(batch)
        loss = self._reduce_loss(loss, weights=weights)
        if self.reduction == "none":
            loss = loss.reshape(batch_shape)
        q_tm1 = quantiles.detach().mean(-2)  # online Q(s, .) from the N online samples
        diagnostics = {
            "td_error": priority.mean(),
            "q_value": quantiles_tm1.detach().mean(),
            "action_gap": F.action_gap(q_tm1).mean(),
            **diagnostics,
        }
        return loss, priority.reshape(*batch_shape, 1), diagnostics

    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        """Loss of a batch sampled from the replay buffer; writes ``"td_error"`` in place."""
        loss, priority, diagnostics = self.loss_and_outputs(tensordict, self.value_network_params)
        tensordict.set(self.tensor_keys.priority, priority.to(tensordict.device or priority.device), inplace=True)
        out = TensorDict(loss=loss, **diagnostics)
        self._clear_weakrefs(tensordict, out, "value_network_params", "target_value_network_params")
        return out

    def _bootstrap(
        self, data: TensorDictBase, next_quantiles: torch.Tensor, bonus: torch.Tensor | None
    ) -> torch.Tensor:
        """``r (+ bonus) + gamma^n (1 - terminated) * next_quantiles`` through the TD(0) estimator."""
        keys = self.tensor_keys
        batch, n = next_quantiles.shape
        selected = [("next", keys.reward), ("next", keys.done), ("next", keys.terminated)]
        if keys.steps_to_next_obs in data.keys(True):
            selected.append(keys.steps_to_next_obs)
        sub = data.select(*selected, strict=True)
        reward = sub.get(("next", keys.reward)).reshape(batch, 1)
        if bonus is not None:
            reward = reward + bonus.unsqueeze(-1)
        sub = sub.apply(lambda x: x.reshape(batch, 1, -1).expand(batch, n, -1), batch_size=[batch, n])
        sub.set(("next", keys.reward), reward.unsqueeze(-1).expand(batch, n, 1))
        target = self.value_estimator.value_estimate(sub, next_value=next_quantiles.unsqueeze(-1))
        return target.squeeze(-1)


class MunchausenIQNLoss(IQNLoss):
    r"""Munchausen-IQN loss ([MRL], "Case study: IQN"; the M-IQN facts of REFERENCE.md).

    Same as :class:`IQNLoss` except for the target samples, per target fraction ``tau'_j``:

    .. math:: r + \alpha\,\mathrm{clip}(\tau \ln\pi(a|s), l_0, u)
              + \gamma^n (1 - \mathrm{terminated}) \sum_{a'} \pi(a'|s')
                \big(Z_{\tau'_j}(s', a') - \tau \ln\pi(a'|s')\big)

    where ``pi = softmax(q / tau)`` and ``q`` is the mean of ``K`` **target-network** quantiles,
    at ``s`` for the bonus and at ``s'`` for the bootstrap (two independent fraction draws).
    ``alpha = 0`` gives a soft (entropy-regularized) IQN.

    Keyword Args:
        alpha: Munchausen scaling in ``[0, 1]`` (0.9).
        tau: entropy temperature, > 0 (0.03).
        clip_value_min: ``l0``, lower clip of ``tau ln pi`` (-1.0).
        clip_value_max: upper clip (0.0 as in the paper and official M-IQN).
        **kwargs: as :class:`IQNLoss`.

    Outputs ``loss`` and detached diagnostics: ``munchausen_bonus`` (mean bonus),
    ``clip_fraction`` (share of ``tau ln pi(a|s)`` outside the clip bounds), ``entropy`` (of the
    target policy at ``s``), ``action_gap`` (online, at ``s``), ``td_error`` (mean priority) and
    ``q_value``, the names :class:`~torchrl_reg.objectives.munchausen.MunchausenDQNLoss` uses.
    """

    out_keys = ["loss", "td_error", "q_value", "action_gap", "munchausen_bonus", "clip_fraction", "entropy"]

    def __init__(
        self,
        value_network: QValueActor | nn.Module,
        *,
        alpha: float = 0.9,
        tau: float = 0.03,
        clip_value_min: float = -1.0,
        clip_value_max: float = 0.0,
        **kwargs,
    ) -> None:
        alpha = check_unit_interval("alpha", alpha)
        tau = F.check_tau(tau)
        clip_value_min, clip_value_max = float(clip_value_min), float(clip_value_max)
        if not clip_value_min <= clip_value_max:
            raise ValueError(
                f"clip_value_min must be <= clip_value_max, got clip_value_min={clip_value_min}, "
                f"clip_value_max={clip_value_max}"
            )
        super().__init__(value_network, **kwargs)
        self.alpha = alpha
        self.tau = tau
        self.clip_value_min = clip_value_min
        self.clip_value_max = clip_value_max

    def _next_quantiles(
        self, obs: torch.Tensor, next_obs: torch.Tensor, action: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        net = self.quantile_network
        batch, device = next_obs.shape[0], next_obs.device
        # One torso pass and one K-quantile pass over [s; s'] instead of two of each.
        features = net.features(torch.cat([obs, next_obs]))
        policy_fractions = self._fractions(2 * batch, self.num_policy_quantiles, device)
        q_tm1, q_t = net.action_values_from_features(features, policy_fractions).split(batch)
        theta_t = net.quantiles_from_features(
            features[batch:], self._fractions(batch, self.num_target_quantiles, device)
        )
        log_pi = F.scaled_log_policy(q_tm1, self.tau)
        log_pi_a = log_pi.gather(-1, action.unsqueeze(-1)).squeeze(-1)
        bonus = F.clipped_munchausen_term(
            log_pi_a, alpha=self.alpha, clip_value_min=self.clip_value_min, clip_value_max=self.clip_value_max
        )
        clipped = (log_pi_a < self.clip_value_min) | (log_pi_a > self.clip_value_max)
        diagnostics = {
            "munchausen_bonus": bonus.mean(),
            "clip_fraction": clipped.float().mean(),
            "entropy": -((log_pi / self.tau).exp() * log_pi).sum(-1).mean() / self.tau,
        }
        return munchausen_iqn_next_quantiles(q_t, theta_t, tau=self.tau), bonus, diagnostics
