"""Soft (entropy-regularized) TD(0) value estimator, registered with TorchRL.

The bootstrap of soft Q-learning (Haarnoja, Tang, Abbeel, Levine, "Reinforcement Learning with
Deep Energy-Based Policies", ICML 2017, arXiv:1702.08165; Soft-DQN in Vieillard, Pietquin, Geist,
"Munchausen Reinforcement Learning", NeurIPS 2020, arXiv:2007.14430, Sec. 2):

.. math:: G_t = r_t + \\gamma^n (1 - \\mathrm{terminated})\\,
          \\tau \\ln \\sum_{a'} \\exp\\bigl(q_{\\bar\\theta}(s_{t+n}, a') / \\tau\\bigr)

Plug it into any Q-value loss that uses TorchRL's value-estimator API, e.g. TorchRL's own
``DQNLoss``, which then becomes Soft-DQN::

    from torchrl.objectives import DQNLoss
    from torchrl_reg.value import SoftTD0Estimator

    loss = DQNLoss(actor, action_space="categorical")
    loss.make_value_estimator(SoftTD0Estimator, gamma=0.99, tau=0.03, value_network=loss.value_network)

It is registered under the name ``"softtd0"`` (``RegValueEstimators.SoftTD0``), so
``torchrl.objectives.utils.build_value_estimator(loss, "softtd0", gamma=0.99, tau=0.03)``
builds it from a config string, and importing this module adds it to the estimators TorchRL's
``DQNLoss`` accepts, so the short form works there too::

    loss.make_value_estimator("softtd0", gamma=0.99, tau=0.03)   # or RegValueEstimators.SoftTD0

(``loss.value_estimator = SoftTD0Estimator(...)`` is ignored by TorchRL's ``DQNLoss``: ``nn.Module``
registers the assigned estimator as a submodule beside the one the loss uses; use
``make_value_estimator``. The losses of :mod:`torchrl_reg.objectives` accept both.)
"""
from __future__ import annotations

from enum import Enum

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModule
from torchrl.envs.utils import step_mdp
from torchrl.objectives import DQNLoss
from torchrl.objectives.utils import hold_out_net, register_value_estimator
from torchrl.objectives.value import TD0Estimator

from torchrl_reg import functional as F
from torchrl_reg.validation import check_tau

__all__ = ["RegValueEstimators", "SoftTD0Estimator"]


class RegValueEstimators(Enum):
    """Value estimators added by torchrl_reg to TorchRL's registry."""

    SoftTD0 = "Soft (entropy-regularized) TD(0): tau * logsumexp(q / tau) bootstrap"


@register_value_estimator(
    RegValueEstimators.SoftTD0, default_kwargs={"gamma": 0.99, "tau": 0.03, "differentiable": True}
)
class SoftTD0Estimator(TD0Estimator):
    """TD(0) estimator whose next-state value is the soft value of the network's action values.

    Keyword Args:
        gamma (float): discount factor.
        tau (float): entropy temperature > 0.
        value_network (TensorDictModule): a Q-value network writing ``action_value``
            (e.g. a :class:`~torchrl.modules.QValueActor`).
        action_value_key (NestedKey): where the network writes the action values.
            Defaults to ``"action_value"``.
        **kwargs: the other arguments of :class:`~torchrl.objectives.value.TD0Estimator`.

    ``value_estimate(td, target_params=...)`` gives the soft TD(0) target (n-step aware through
    ``steps_to_next_obs``; ``terminated`` cuts the bootstrap, ``truncated`` does not);
    ``forward`` also writes ``advantage = target - q(s_t, a_t)``.
    """

    def __init__(
        self,
        *,
        gamma: float | torch.Tensor,
        tau: float,
        value_network: TensorDictModule,
        action_value_key="action_value",
        action_key="action",
        **kwargs,
    ) -> None:
        super().__init__(gamma=gamma, value_network=value_network, **kwargs)
        self.tau = check_tau(tau)
        self.action_value_key = action_value_key
        self.action_key = action_key

    def _next_value(self, tensordict: TensorDictBase, target_params, kwargs) -> torch.Tensor:
        step_td = step_mdp(tensordict, keep_other=False)
        context = (
            hold_out_net(self.value_network)
            if target_params is None
            else target_params.to_module(self.value_network, preserve_module_state=False)
        )
        with context:
            self.value_network(step_td)
        q_t = step_td.get(self.action_value_key)
        return F.soft_value(q_t, self.tau).unsqueeze(-1)

    def forward(
        self,
        tensordict: TensorDictBase,
        *,
        params: TensorDictBase | None = None,
        target_params: TensorDictBase | None = None,
    ) -> TensorDictBase:
        """Write ``value_target`` (soft TD(0)) and ``advantage`` (target minus q of the taken action)."""
        td = tensordict.clone(False)
        context = params.to_module(self.value_network) if params is not None else hold_out_net(self.value_network)
        with context:
            self.value_network(td)
        q = td.get(self.action_value_key)
        action = tensordict.get(self.action_key)
        if action.shape == q.shape:  # one-hot
            action = action.argmax(-1)
        elif action.ndim == q.ndim:
            action = action.squeeze(-1)
        value = q.gather(-1, action.long().unsqueeze(-1))
        with torch.no_grad():
            value_target = self.value_estimate(tensordict, target_params=target_params)
        tensordict.set(self.tensor_keys.value_target, value_target)
        tensordict.set(self.tensor_keys.advantage, value_target - value)
        return tensordict


# TorchRL's DQNLoss checks a requested estimator against this tuple before building it from the
# registry; SoftTD0Estimator builds itself from the loss's value network (``for_loss``).
if RegValueEstimators.SoftTD0 not in DQNLoss.SUPPORTED_VALUE_ESTIMATORS:
    DQNLoss.SUPPORTED_VALUE_ESTIMATORS = (*DQNLoss.SUPPORTED_VALUE_ESTIMATORS, RegValueEstimators.SoftTD0)
