"""Shared plumbing of the regularized DQN-family losses.

Every loss of the family regresses the online ``q(s_t, a_t)`` on a target of the form

    target = [r_t + gamma^n * (1 - terminated) * V_next(s_{t+n})] + bonus(s_t, a_t)

The bracket is TorchRL's TD(0) value estimator (which owns gamma, reads
``steps_to_next_obs`` written by :class:`torchrl_reg.data.MultiStep` and
cuts the bootstrap on ``terminated`` only, never on ``truncated``; TorchRL's own ``MultiStep``
leaves step ``t``'s done flags on an n-step row, see :mod:`torchrl_reg.data.multistep`); ``V_next`` and
the bonus are what each method changes, and both are computed from the **target**
network's action values at ``s_t`` and ``s_{t+n}``. Subclasses implement
:meth:`_next_value_and_bonus`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from tensordict import TensorDict, TensorDictBase, TensorDictParams
from tensordict.nn import TensorDictModule, TensorDictSequential
from tensordict.utils import NestedKey, unravel_key
from torch import nn
from torchrl.data.tensor_specs import TensorSpec
from torchrl.data.utils import _find_action_space
from torchrl.modules.tensordict_module.actors import QValueActor, QValueModule
from torchrl.modules.tensordict_module.common import ensure_tensordict_compatible
from torchrl.objectives.common import LossModule
from torchrl.objectives.utils import ValueEstimators, dispatch_value_estimator, distance_loss
from torchrl.objectives.value import ValueEstimatorBase

from torchrl_reg import functional as F

_LOSS_FUNCTIONS = ("l1", "l2", "smooth_l1")
_REDUCTIONS = ("none", "mean", "sum")
_DISCRETE_SPACES = ("categorical", "one_hot", "one-hot")


def check_unit_interval(name: str, value: float, *, closed_right: bool = True) -> float:
    """Return ``value`` as a float if it lies in [0, 1] (or [0, 1) when ``closed_right=False``)."""
    value = float(value)
    ok = 0.0 <= value <= 1.0 if closed_right else 0.0 <= value < 1.0
    if not ok:
        interval = "[0, 1]" if closed_right else "[0, 1)"
        raise ValueError(f"{name} must lie in {interval}, got {name}={value}")
    return value


def _action_value_part(value_network: TensorDictModule) -> TensorDictModule:
    """The part of a Q-value actor that writes the action values (all but a final QValueModule)."""
    if isinstance(value_network, TensorDictSequential) and isinstance(value_network.module[-1], QValueModule):
        modules = list(value_network.module[:-1])
        return modules[0] if len(modules) == 1 else TensorDictSequential(*modules)
    return value_network


class RegularizedDQNLossBase(LossModule):
    """Base class of the regularized DQN losses (not meant to be used directly).

    Subclasses set :meth:`_next_value_and_bonus`; everything else (keys, target
    parameters, value estimator, priorities, weights, reduction) follows
    :class:`torchrl.objectives.DQNLoss`.
    """

    @dataclass
    class _AcceptedKeys:
        """Configurable tensordict keys (rename with ``.set_keys(...)``; nested keys work).

        Attributes:
            advantage (NestedKey): forwarded to the value estimator. Defaults to ``"advantage"``.
            value_target (NestedKey): forwarded to the value estimator. Defaults to ``"value_target"``.
            value (NestedKey): forwarded to the value estimator. Defaults to ``"chosen_action_value"``.
            action_value (NestedKey): the action values written by the value network.
                Defaults to ``"action_value"``.
            action (NestedKey): the action taken. Defaults to ``"action"``.
            priority (NestedKey): where the TD-error priority is written, in place.
                Defaults to ``"td_error"``.
            priority_weight (NestedKey): importance weights of prioritized replay.
                Defaults to ``"priority_weight"``.
            reward (NestedKey): reward, read under ``"next"``. Defaults to ``"reward"``.
            done (NestedKey): done flag, read under ``"next"``. Defaults to ``"done"``.
            terminated (NestedKey): terminated flag (cuts the bootstrap), read under ``"next"``.
                Defaults to ``"terminated"``.
            steps_to_next_obs (NestedKey): number of steps to the bootstrap state, written by
                :class:`torchrl_reg.data.MultiStep`. Defaults to ``"steps_to_next_obs"``.
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
    out_keys = ["loss"]
    #: ``loss_and_outputs`` traces into one graph (no ``.item()``), so
    #: :func:`torchrl_reg.recipe_utils.make_update` may fuse gradient and optimizer step.
    fusable_update = True

    value_network: TensorDictModule
    value_network_params: TensorDictParams
    target_value_network_params: TensorDictParams

    def __init__(
        self,
        value_network: QValueActor | nn.Module,
        *,
        loss_function: str = "smooth_l1",
        delay_value: bool = True,
        action_space: str | TensorSpec | None = None,
        reduction: str | None = None,
        use_prioritized_weights: str | bool = "auto",
    ) -> None:
        if reduction is None:
            reduction = "mean"
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}, got reduction={reduction!r}")
        if loss_function not in _LOSS_FUNCTIONS:
            raise ValueError(f"loss_function must be one of {_LOSS_FUNCTIONS}, got loss_function={loss_function!r}")
        if use_prioritized_weights not in (True, False, "auto"):
            raise ValueError(
                f"use_prioritized_weights must be True, False or 'auto', got {use_prioritized_weights!r}"
            )
        if action_space is not None:
            self._check_action_space(action_space)
        super().__init__()
        self._in_keys = None
        self.delay_value = delay_value
        self.loss_function = loss_function
        self.reduction = reduction
        self.use_prioritized_weights = use_prioritized_weights
        value_network = ensure_tensordict_compatible(
            module=value_network, wrapper_type=QValueActor, action_space=action_space
        )
        if action_space is None:
            action_space = getattr(value_network, "spec", None)
            action_space = getattr(value_network, "action_space", None) if action_space is None else action_space
        if action_space is None:
            raise ValueError(
                f"{type(self).__name__} needs the action space: pass action_space='categorical' or 'one-hot' "
                "(or a Categorical/OneHot spec), or a QValueActor built with one."
            )
        self.action_space = self._check_action_space(action_space)
        self.convert_to_functional(value_network, "value_network", create_target_params=self.delay_value)
        # The action values are all the losses need: skip QValueModule's greedy action.
        # A plain (unregistered) view on the same submodules, so ``to_module`` swaps its params too.
        self.__dict__["_q_network"] = _action_value_part(value_network)

    def _check_action_space(self, action_space: str | TensorSpec) -> str:
        try:
            space = _find_action_space(action_space)
        except (ValueError, KeyError, NotImplementedError, TypeError) as err:
            raise ValueError(
                f"{type(self).__name__} needs a discrete action space ('categorical' or 'one-hot', or a "
                f"Categorical/OneHot spec); got action_space={action_space!r}"
            ) from err
        if space not in _DISCRETE_SPACES:
            raise ValueError(
                f"{type(self).__name__} needs a single discrete action ('categorical' or 'one-hot'); got {space!r}"
            )
        return space

    # -- keys ---------------------------------------------------------------------------------
    def _estimator_keys(self) -> dict:
        keys = self.tensor_keys
        return {
            "advantage": keys.advantage,
            "value_target": keys.value_target,
            "value": keys.value,
            "reward": keys.reward,
            "done": keys.done,
            "terminated": keys.terminated,
            "steps_to_next_obs": keys.steps_to_next_obs,
        }

    def _forward_value_estimator_keys(self, **kwargs) -> None:
        if self._value_estimator is not None:
            self._value_estimator.set_keys(**self._estimator_keys())
        self._set_in_keys()

    def _set_in_keys(self) -> None:
        keys = [
            self.tensor_keys.action,
            ("next", self.tensor_keys.reward),
            ("next", self.tensor_keys.done),
            ("next", self.tensor_keys.terminated),
            *self.value_network.in_keys,
            *[unravel_key(("next", key)) for key in self.value_network.in_keys],
        ]
        self._in_keys = list(dict.fromkeys(unravel_key(k) for k in keys))

    @property
    def in_keys(self) -> list:
        if self._in_keys is None:
            self._set_in_keys()
        return self._in_keys

    # -- value estimator ----------------------------------------------------------------------
    def make_value_estimator(self, value_type: ValueEstimators | None = None, **hyperparams):
        """Build the value estimator that owns gamma, e.g. ``loss.make_value_estimator(gamma=0.99)``.

        Only one-step bootstraps (TD(0)) fit a replay-buffer loss; n-step returns come from
        :class:`torchrl_reg.data.MultiStep`. A :class:`ValueEstimatorBase` instance or
        subclass is accepted too, as in TorchRL.
        """
        if value_type is None:
            value_type = self.default_value_estimator
        if isinstance(value_type, ValueEstimatorBase) or (
            isinstance(value_type, type) and issubclass(value_type, ValueEstimatorBase)
        ):
            LossModule.make_value_estimator(self, value_type, **hyperparams)
            self._value_estimator.set_keys(**self._estimator_keys())
            return self
        # The loss hands the estimator its next-state value, so the estimator never calls a network.
        hyperparams.setdefault("value_network", None)
        dispatch_value_estimator(
            self,
            value_type,
            supported=self.SUPPORTED_VALUE_ESTIMATORS,
            tensor_keys=self._estimator_keys(),
            **hyperparams,
        )
        return self

    # -- forward ------------------------------------------------------------------------------
    def _action_index(self, action: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        if self.action_space in ("one_hot", "one-hot"):
            return action.argmax(-1)
        if action.ndim == q.ndim:
            action = action.squeeze(-1)
        return action.long()

    def _target_action_values(self, tensordict: TensorDictBase) -> torch.Tensor:
        """Target-network action values at ``s_t`` (first half) and ``s_{t+n}`` (second half),
        in one forward pass on the concatenated batch."""
        batch = tensordict.batch_size
        inputs = TensorDict(
            {
                key: torch.cat([tensordict.get(key), tensordict.get(unravel_key(("next", key)))], 0)
                for key in self._q_network.in_keys
            },
            batch_size=[2 * batch[0], *batch[1:]],
        )
        with self.target_value_network_params.to_module(self.value_network, preserve_module_state=False):
            return self._q_network(inputs).get(self.tensor_keys.action_value)

    def _next_value_and_bonus(
        self,
        q_target: torch.Tensor,
        a_tm1: torch.Tensor,
        not_terminal_t: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """From the target-network action values ``q_target`` (``s_t`` stacked over ``s_{t+n}``
        along dim 0), return ``V_next(s_{t+n})``, the bonus at ``(s_t, a_t)`` and diagnostics."""
        raise NotImplementedError

    def loss_and_outputs(
        self, tensordict: TensorDictBase, params: TensorDictBase
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """The loss as a function of the online parameters ``params``: ``(loss, priority, diagnostics)``.

        :meth:`forward` is this function at ``self.value_network_params``, followed by the
        in-place priority write. It neither writes to ``tensordict`` nor reads the online
        parameters from the module, so that ``torch.func.grad`` can differentiate it with respect to
        ``params`` (the fused update of :func:`torchrl_reg.recipe_utils.make_update` does).
        ``priority`` is the per-sample squared TD error, shaped like the action key's batch with a
        trailing singleton dimension, as :meth:`forward` writes it.
        """
        keys = self.tensor_keys
        td = tensordict.clone(False)
        with params.to_module(self.value_network, preserve_module_state=False):
            self._q_network(td)
        q_tm1 = td.get(keys.action_value)
        a_tm1 = self._action_index(tensordict.get(keys.action), q_tm1)
        pred = q_tm1.gather(-1, a_tm1.unsqueeze(-1)).squeeze(-1)

        reward = tensordict.get(("next", keys.reward))
        with torch.no_grad():
            q_target = self._target_action_values(tensordict)
            terminated = tensordict.get(("next", keys.terminated), None)
            if terminated is None:
                terminated = tensordict.get(("next", keys.done))
            not_terminal = ~terminated.view(pred.shape)
            next_value, bonus, diagnostics = self._next_value_and_bonus(q_target, a_tm1, not_terminal)
            bootstrap = self.value_estimator.value_estimate(td, next_value=next_value.view_as(reward))
            target = bootstrap.view(pred.shape) + bonus
            td_error = (pred - target).pow(2)

        loss = distance_loss(pred, target, self.loss_function)
        weights = None
        if self.use_prioritized_weights in (True, "auto") and keys.priority_weight in tensordict.keys(True):
            weights = tensordict.get(keys.priority_weight).view(loss.shape)
        loss = self._reduce_loss(loss, tensordict=tensordict, weights=weights)
        diagnostics["td_error"] = td_error.mean()
        diagnostics["q_value"] = pred.detach().mean()
        diagnostics["action_gap"] = F.action_gap(q_tm1.detach()).mean()
        return loss, td_error.unsqueeze(-1), diagnostics

    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        """Compute the loss on a batch sampled from a replay buffer.

        Writes the squared TD error in place under ``tensor_keys.priority`` (for
        :class:`~torchrl.data.PrioritizedSampler`) and uses ``priority_weight`` when present.
        Returns ``loss`` plus detached diagnostics.
        """
        loss, priority, diagnostics = self.loss_and_outputs(tensordict, self.value_network_params)
        tensordict.set(self.tensor_keys.priority, priority, inplace=True)
        out = TensorDict({"loss": loss, **diagnostics})
        self._clear_weakrefs(tensordict, out, "value_network_params", "target_value_network_params")
        return out
