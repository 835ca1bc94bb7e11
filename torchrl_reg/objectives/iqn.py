"""IQN and Munchausen-IQN as TorchRL loss modules.

References:

* [IQN] Dabney, Ostrovski, Silver, Munos. "Implicit Quantile Networks for Distributional
  Reinforcement Learning", ICML 2018, arXiv:1806.06923, Sec. 3: the sample TD errors
  ``delta_ij = r + gamma Z_{tau'_j}(s', a*) - Z_{tau_i}(s, a)`` with
  ``a* = argmax_a 1/K sum_k Z_{tau~_k}(s', a)``, and the loss
  ``1/N' sum_i sum_j rho^kappa_{tau_i}(delta_ij)`` (quantile Huber).
* [MRL] Vieillard, Pietquin, Geist. "Munchausen Reinforcement Learning", NeurIPS 2020,
  arXiv:2007.14430, Sec. 2 (M-IQN): the softmax policy comes from the mean of ``K``
  target-network quantiles, at ``s`` (for the bonus) and at ``s'`` (for the bootstrap); per
  target fraction ``tau'_j``

  ``r + alpha clip(tau ln pi(a|s), l0, u)
  + gamma sum_a' pi(a'|s') (Z_{tau'_j}(s', a') - tau ln pi(a'|s'))``.

  The official M-IQN code clips the bonus to ``[l0, 0]`` (the defaults here);
  Revisiting Rainbow's JAX port clips to ``[l0, 1]`` (inactive upper bound).

The equations are the pure functions :func:`~torchrl_reg.functional.quantile_huber_loss`,
:func:`~torchrl_reg.functional.iqn_next_quantiles` and
:func:`~torchrl_reg.functional.munchausen_iqn_next_quantiles`.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from tensordict import TensorDictBase, TensorDictParams
from tensordict.nn import TensorDictModule
from tensordict.utils import NestedKey
from torch import nn
from torchrl.data.tensor_specs import TensorSpec
from torchrl.modules.tensordict_module.actors import QValueActor
from torchrl.modules.tensordict_module.common import ensure_tensordict_compatible

from torchrl_reg import functional as F
from torchrl_reg.modules.iqn import ImplicitQuantileNetwork, sample_fractions
from torchrl_reg.objectives.common import (
    QValueKeys,
    RegularizedLossBase,
    _check_discrete_action,
    _discrete_action_space,
    _num_actions,
    one_hot_index,
)
from torchrl_reg.objectives.munchausen import MunchausenArguments
from torchrl_reg.validation import check_bool, check_count, check_positive

__all__ = ["IQNLoss", "MunchausenIQNLoss"]


def _find_quantile_network(module: nn.Module) -> ImplicitQuantileNetwork:
    for m in module.modules():
        if isinstance(m, ImplicitQuantileNetwork):
            return m
    raise TypeError(
        f"value_network must contain an ImplicitQuantileNetwork (e.g. QValueActor(ImplicitQuantileNetwork(...))), "
        f"got {type(module).__name__}"
    )


class IQNLoss(RegularizedLossBase):
    r"""Implicit quantile network loss ([IQN], Sec. 3).

    For each transition, ``N`` online fractions ``tau_i`` and ``N'`` target fractions ``tau'_j``
    are drawn; the target samples are ``r + gamma^n (1 - terminated) Z_{tau'_j}(s', a*)`` with
    ``a*`` greedy for the mean of ``K`` target quantiles at ``s'`` (target network, as in
    Dopamine's IQN). The loss is :func:`~torchrl_reg.functional.quantile_huber_loss`.

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
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` (then the diagnostics are per sample too).
        use_prioritized_weights: weight the per-transition loss by ``priority_weight`` when present
            (``"auto"``).
        check_finite: refuse NaN/inf in the batch, naming the key and index (``False``).

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

    _AcceptedKeys = QValueKeys
    tensor_keys: QValueKeys
    default_keys = QValueKeys
    out_keys = ["loss", "td_error", "q_value", "action_gap"]
    _network_names = ("value_network",)

    value_network: TensorDictModule
    value_network_params: TensorDictParams
    target_value_network_params: TensorDictParams

    argument_checks = {
        **{key: check_count for key in ("num_quantiles", "num_target_quantiles", "num_policy_quantiles")},
        "kappa": check_positive,
        "independent_fractions": check_bool,
        "delay_value": check_bool,
    }

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
        **kwargs,
    ) -> None:
        self.num_quantiles, self.num_target_quantiles = num_quantiles, num_target_quantiles
        self.num_policy_quantiles = num_policy_quantiles
        super().__init__(**kwargs)
        self.kappa = kappa
        self.independent_fractions = independent_fractions
        self.delay_value = delay_value
        value_network = ensure_tensordict_compatible(
            module=value_network, wrapper_type=QValueActor, action_space=action_space
        )
        quantile_network = _find_quantile_network(value_network)
        if len(value_network.in_keys) != 1:
            raise ValueError(
                "the ImplicitQuantileNetwork must read exactly one observation key, "
                f"got in_keys={value_network.in_keys}"
            )
        if action_space is None:
            action_space = getattr(value_network, "action_space", None) or getattr(value_network, "spec", None)
        if action_space is None:
            raise ValueError(
                "the action space could not be read from value_network; pass action_space='one-hot' "
                "or 'categorical' (or the action spec)"
            )
        self.action_space = _discrete_action_space(self, action_space)
        spec_actions = _num_actions(action_space, value_network)
        if spec_actions is not None and spec_actions != quantile_network.num_actions:
            raise ValueError(
                f"the action spec has {spec_actions} actions, the ImplicitQuantileNetwork "
                f"num_actions={quantile_network.num_actions}"
            )
        self.num_actions = quantile_network.num_actions
        self.convert_to_functional(value_network, "value_network", create_target_params=delay_value)
        # Kept out of the submodule registry: its parameters belong to value_network_params.
        self.__dict__["quantile_network"] = quantile_network
        self.observation_key = value_network.in_keys[0]

    def _in_key_list(self) -> list[NestedKey]:
        return [
            self.tensor_keys.action,
            ("next", self.tensor_keys.reward),
            ("next", self.tensor_keys.done),
            ("next", self.tensor_keys.terminated),
            self.observation_key,
            ("next", self.observation_key),
        ]

    def _check_action(self, action: torch.Tensor, batch_shape: torch.Size, checks: list) -> None:
        _check_discrete_action(self, action, self.tensor_keys.action, self.num_actions, batch_shape, checks)

    def _fractions(self, batch: int, n: int, device: torch.device) -> torch.Tensor:
        return sample_fractions((batch,), n, independent=self.independent_fractions, device=device)

    def _action_index(self, action: torch.Tensor, batch: int) -> torch.Tensor:
        if self.action_space == "categorical":
            return action.reshape(batch).long()
        return one_hot_index(action.reshape(batch, -1))

    def _next_quantiles(
        self, obs: torch.Tensor, next_obs: torch.Tensor, action: torch.Tensor, reduce: Callable
    ) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, torch.Tensor]]:
        """Target samples at ``s'`` (``[B, N']``), the reward bonus (``[B]`` or None) and diagnostics
        (per-sample values ``[B]`` passed through ``reduce``).

        Runs under the target parameters and ``no_grad``.
        """
        net = self.quantile_network
        batch, device = next_obs.shape[0], next_obs.device
        features = net.features(next_obs)
        q_t = net.action_values_from_features(features, self._fractions(batch, self.num_policy_quantiles, device))
        theta_t = net.quantiles_from_features(features, self._fractions(batch, self.num_target_quantiles, device))
        return F.iqn_next_quantiles(q_t, theta_t), None, {}

    def loss_and_outputs(
        self, tensordict: TensorDictBase, params: TensorDictBase
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """The loss as a function of the online parameters ``params``: ``(loss, priority, diagnostics)``.

        :meth:`forward` is this function at ``self.value_network_params``, followed by the in-place
        priority write; it writes nothing to ``tensordict``, so that ``torch.func.grad`` can
        differentiate it with respect to ``params`` (the fused update of
        :func:`torchrl_reg.objectives.make_update`). ``priority`` is the per-transition loss,
        shaped like the batch with a trailing singleton dimension.
        """
        batch_shape = tensordict.batch_size
        data = self._bool_flags(tensordict).reshape(-1)
        batch = data.batch_size[0]
        obs = data.get(self.observation_key)
        next_obs = data.get(("next", self.observation_key))
        action = self._action_index(data.get(self.tensor_keys.action), batch)
        net = self.quantile_network

        fractions = self._fractions(batch, self.num_quantiles, obs.device)
        with params.to_module(self.value_network, preserve_module_state=False):
            quantiles = net.quantile_values(obs, fractions)  # [B, N, A]
        quantiles_tm1 = F.gather_quantiles(quantiles, action)  # [B, N]

        per_sample = self.reduction == "none"

        def reduce(value: torch.Tensor) -> torch.Tensor:
            return value.reshape(batch_shape) if per_sample else value.mean()

        with torch.no_grad(), self.target_value_network_params.to_module(
            self.value_network, preserve_module_state=False
        ):
            next_quantiles, bonus, diagnostics = self._next_quantiles(obs, next_obs, action, reduce)
        target = self._bootstrap(data, next_quantiles, bonus)  # [B, N']

        loss = F.quantile_huber_loss(quantiles_tm1, target, fractions, self.kappa)  # [B]
        priority = loss.detach()
        # tensordict=data: TorchRL's padding mask (("collector", "mask"), reshaped with the batch) drops padded rows.
        loss = self._reduce_loss(loss, tensordict=data, weights=self._weights(data, loss.shape))
        if per_sample:
            loss = loss.reshape(batch_shape)
        q_tm1 = quantiles.detach().mean(-2)  # online Q(s, .) from the N online samples
        diagnostics = {
            "td_error": reduce(priority),
            "q_value": quantiles_tm1.detach().mean(-1).reshape(batch_shape) if per_sample else quantiles_tm1.detach().mean(),
            "action_gap": reduce(F.action_gap(q_tm1)),
            **diagnostics,
        }
        return loss, priority.reshape(*batch_shape, 1), diagnostics

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


class MunchausenIQNLoss(MunchausenArguments, IQNLoss):
    r"""Munchausen-IQN loss ([MRL], Sec. 2, M-IQN; the details of the official M-IQN code).

    Same as :class:`IQNLoss` except for the target samples, per target fraction ``tau'_j``:

    .. math:: r + \alpha\,\mathrm{clip}(\tau \ln\pi(a|s), l_0, u)
              + \gamma^n (1 - \mathrm{terminated}) \sum_{a'} \pi(a'|s')
                \big(Z_{\tau'_j}(s', a') - \tau \ln\pi(a'|s')\big)

    where ``pi = softmax(q / tau)`` and ``q`` is the mean of ``K`` **target-network** quantiles,
    at ``s`` for the bonus and at ``s'`` for the bootstrap (two independent fraction draws).
    ``alpha = 0`` gives a soft (entropy-regularized) IQN.

    Keyword Args:
        alpha: Munchausen scaling in ``[0, 1]`` (0.9).
        tau: entropy temperature in [1e-4, 10] (:data:`~torchrl_reg.validation.STABLE_TAU`) (0.03).
        clip_value_min: ``l0``, lower clip of ``tau ln pi`` (-1.0).
        clip_value_max: upper clip (0.0 as in the paper and official M-IQN).
        **kwargs: as :class:`IQNLoss`.

    Outputs ``loss`` and detached diagnostics: ``munchausen_bonus`` (mean bonus),
    ``clip_fraction`` (share of ``tau ln pi(a|s)`` outside the clip bounds), ``entropy`` (of the
    target policy at ``s``), ``action_gap`` (online, at ``s``), ``td_error`` (mean priority) and
    ``q_value``, the names :class:`~torchrl_reg.objectives.munchausen.MunchausenDQNLoss` uses.
    """

    out_keys = ["loss", "td_error", "q_value", "action_gap", "munchausen_bonus", "clip_fraction", "entropy"]

    argument_checks = {**IQNLoss.argument_checks, **MunchausenArguments.argument_checks}

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
        super().__init__(value_network, **kwargs)
        self.alpha = alpha
        self._tau = tau
        self.clip_value_min = clip_value_min
        self.clip_value_max = clip_value_max

    def _next_quantiles(
        self, obs: torch.Tensor, next_obs: torch.Tensor, action: torch.Tensor, reduce: Callable
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
            "munchausen_bonus": reduce(bonus),
            "clip_fraction": reduce(clipped.float()),
            "entropy": reduce(-((log_pi / self.tau).exp() * log_pi).sum(-1)) / self.tau,
        }
        return F.munchausen_iqn_next_quantiles(q_t, theta_t, tau=self.tau), bonus, diagnostics
