"""Shared plumbing of every loss of the library, and the base of the regularized DQN family.

:class:`RegularizedLossBase` holds what every loss does the same way, as TorchRL's ``DQNLoss``
does it: the accepted keys forwarded to the value estimator (``set_keys``), the TD(0) value
estimator that owns gamma, the reduction and the prioritized-replay weights, keyword-tensor calls
(``@dispatch``), the input checks that refuse an ambiguous batch instead of computing a silently
wrong number (:meth:`~RegularizedLossBase.check_batch`), and ``reset_parameters_recursive``.

:class:`RegularizedDQNLossBase` adds the regularized DQN family. Every loss of the family
regresses the online ``q(s_t, a_t)`` on a target of the form

    target = [r_t + gamma^n * (1 - terminated) * V_next(s_{t+n})] + bonus(s_t, a_t)

The bracket is TorchRL's TD(0) value estimator (which owns gamma, reads ``steps_to_next_obs``
written by :class:`torchrl_reg.data.MultiStep` and cuts the bootstrap on ``terminated`` only,
never on ``truncated``; TorchRL's own ``MultiStep`` leaves step ``t``'s done flags on an n-step
row, see :mod:`torchrl_reg.data.multistep`); ``V_next`` and the bonus are what each method
changes, and both are computed from the **target** network's action values at ``s_t`` and
``s_{t+n}``. Subclasses implement :meth:`~RegularizedDQNLossBase.next_value_and_bonus`.

Only TD(0) (with n-step rows from ``MultiStep``) is supported, for a reason: these losses train on
transitions sampled from a replay buffer, one (n-step) row at a time, while TD(1) and TD(lambda)
returns need whole trajectories in order; for the soft and Munchausen targets an off-policy
lambda-return would also need importance corrections that the papers do not define.
"""
from __future__ import annotations

import functools
import inspect
import itertools
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from tensordict import TensorDict, TensorDictBase, TensorDictParams
from tensordict.nn import ProbabilisticTensorDictModule, TensorDictModule, TensorDictSequential, dispatch
from tensordict.nn.distributions import Delta
from tensordict.utils import NestedKey, unravel_key
from torch import nn
from torch.compiler import is_compiling
from torchrl.data.tensor_specs import Composite, TensorSpec
from torchrl.data.utils import _find_action_space
from torchrl.modules import TanhDelta
from torchrl.modules.tensordict_module.actors import QValueActor, QValueModule
from torchrl.modules.tensordict_module.common import ensure_tensordict_compatible
from torchrl.objectives.common import LossModule
from torchrl.objectives.utils import ValueEstimators, dispatch_value_estimator, distance_loss
from torchrl.objectives.value import TD0Estimator, ValueEstimatorBase

from torchrl_reg import functional as F
from torchrl_reg.validation import ArgumentChecks, check_bool, check_choice, check_gamma, check_keywords, refusals_named
from torchrl_reg.value import RegValueEstimators, SoftTD0Estimator

__all__ = [
    "ActorCriticKeys",
    "ActorCriticLossBase",
    "QValueKeys",
    "RegularizedDQNLossBase",
    "RegularizedLossBase",
    "TD_ONLY_NOTE",
]

_LOSS_FUNCTIONS = ("l1", "l2", "smooth_l1")
_REDUCTIONS = ("none", "mean", "sum")
_DISCRETE_SPACES = ("categorical", "one_hot", "one-hot")
#: The estimator keys a loss forwards (those its ``_AcceptedKeys`` has).
_ESTIMATOR_KEYS = ("advantage", "value_target", "value", "reward", "done", "terminated", "steps_to_next_obs")
#: The longest n-step horizon (``steps_to_next_obs``) a loss accepts: 2**24, the largest integer float32 (the
#: discount's dtype) holds exactly. Past it the horizon is no count of steps, and ``gamma ** steps`` is 0 for any
#: gamma < 1 (already 0.999 ** 2**24 underflows), the bootstrap cut as by the refused ``inf``.
MAX_HORIZON = 2**24

TD_ONLY_NOTE = (
    "Only TD(0) is supported (n-step returns come from torchrl_reg.data.MultiStep, which writes "
    "steps_to_next_obs): these losses train on transitions sampled from a replay buffer one (n-step) "
    "row at a time, while TD(1)/TD(lambda) returns need whole trajectories in order, and for the soft and "
    "Munchausen targets an off-policy lambda-return would need importance corrections the papers do not define."
)


def _action_value_part(value_network: TensorDictModule) -> TensorDictModule:
    """The part of a Q-value actor that writes the action values (all but a final QValueModule)."""
    if isinstance(value_network, TensorDictSequential) and isinstance(value_network.module[-1], QValueModule):
        modules = list(value_network.module[:-1])
        return modules[0] if len(modules) == 1 else TensorDictSequential(*modules)
    return value_network


def _tensor_slots(network: nn.Module, params: TensorDictBase) -> list[tuple[dict, str]] | None:
    """The parameter or buffer table and name that hold each leaf of ``params`` in ``network``, in the order of
    ``params.values(True, True)`` (``None`` if a leaf has no such slot)."""
    slots = []
    for key in params.keys(True, True):
        *path, name = key if isinstance(key, tuple) else (key,)
        module = network
        for part in path:
            module = module._modules.get(part)
            if module is None:
                return None
        table = module._parameters if name in module._parameters else module._buffers
        if name not in table:
            return None
        slots.append((table, name))
    return slots


def _first_floating(value: nn.Module | torch.Tensor | None) -> torch.Tensor | None:
    """``value`` itself (a tensor), or a module's first floating-point parameter or buffer."""
    if isinstance(value, nn.Module):
        tensors = itertools.chain(value.parameters(), value.buffers())
        return next((t for t in tensors if t.is_floating_point()), None)
    return value if isinstance(value, torch.Tensor) else None


def check_same_dtype_and_device(
    owner: str, reference_name: str, reference: nn.Module | torch.Tensor | None, name: str,
    value: nn.Module | torch.Tensor | None, fix: str,
) -> None:
    """Refuse ``value`` (a tensor, or a module read by a loss but not owned by it, which the loss's
    ``.to(...)`` leaves as it is) in another dtype or on another device than ``reference`` (the loss's networks):
    torch would fail deep inside a matmul, or promote without a word. One ``TypeError`` names the loss (``owner``),
    both sides with their dtype and device, and ``fix``; a module without floating-point tensors passes."""
    have, want = _first_floating(value), _first_floating(reference)
    if have is None or want is None or (have.dtype, have.device) == (want.dtype, want.device):
        return
    raise TypeError(
        f"{owner}: the {name} is {have.dtype} on {have.device}, the {reference_name} {want.dtype} on {want.device} "
        f"(accepted: one dtype and device for both); {fix}"
    )


def _first_index(bad: torch.Tensor) -> tuple[int, ...]:
    return tuple(int(i) for i in bad.nonzero()[0])


@dataclass
class QValueKeys:
    """Configurable tensordict keys of the Q-value losses (rename with ``.set_keys(...)``; nested keys work).

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


@dataclass
class ActorCriticKeys:
    """Configurable tensordict keys of the actor-critic losses with ``Q(s, a)`` critics (VIRELLoss, MDACLoss;
    rename with ``.set_keys(...)``; nested keys work).

    Attributes:
        action (NestedKey): the action taken (and the key the actor writes). Defaults to ``"action"``.
        state_action_value (NestedKey): written by the critic. Defaults to ``"state_action_value"``.
        value (NestedKey): the next-state value handed to the estimator. Defaults to ``"state_value"``.
        reward, done, terminated (NestedKey): read under ``"next"``.
        priority (NestedKey): the squared TD error, written in place. Defaults to ``"td_error"``.
        priority_weight (NestedKey): importance weights of prioritized replay. Defaults to ``"priority_weight"``.
        steps_to_next_obs (NestedKey): steps to the bootstrap state, written by :class:`torchrl_reg.data.MultiStep`.
            Defaults to ``"steps_to_next_obs"``.
    """

    action: NestedKey = "action"
    state_action_value: NestedKey = "state_action_value"
    value: NestedKey = "state_value"
    reward: NestedKey = "reward"
    done: NestedKey = "done"
    terminated: NestedKey = "terminated"
    priority: NestedKey = "td_error"
    priority_weight: NestedKey = "priority_weight"
    steps_to_next_obs: NestedKey = "steps_to_next_obs"


#: What a one-hot loss accepts, and the fix for the multi-hot rows TorchRL's one-hot QValueActor writes.
MULTI_HOT_NOTE = (
    "one-hot (each row has exactly one 1, the rest 0; TorchRL's one-hot QValueActor writes a multi-hot row "
    "when two action values tie: build the actor and the loss with a Categorical spec / "
    "action_space='categorical', whose argmax picks one action)"
)


def _discrete_action_space(loss: LossModule, action_space: str | TensorSpec) -> str:
    """``"categorical"`` or ``"one_hot"`` from a name or a spec; anything else is refused naming it."""
    try:
        space = _find_action_space(action_space)
    except (ValueError, KeyError, NotImplementedError, TypeError) as err:
        raise ValueError(
            f"{type(loss).__name__} needs a discrete action space ('categorical' or 'one-hot', or a "
            f"Categorical/OneHot spec); got action_space={action_space!r}"
        ) from err
    if space not in _DISCRETE_SPACES:
        raise ValueError(
            f"{type(loss).__name__} needs a single discrete action ('categorical' or 'one-hot'); got {space!r}"
        )
    return "one_hot" if space == "one-hot" else space


class RegularizedLossBase(ArgumentChecks, LossModule):
    """Plumbing shared by every loss of the library (not meant to be used directly).

    A subclass sets ``_AcceptedKeys`` (with at least ``reward``, ``done``, ``terminated``,
    ``priority``, ``priority_weight``), ``out_keys``, :meth:`_in_key_list` (the keys it reads),
    ``_network_names`` (its functional networks), and ``loss_and_outputs(tensordict, params) ->
    (loss, priority, diagnostics)`` with :meth:`_loss_params` the online parameters it takes;
    :meth:`forward` then checks the batch, runs it, writes the priority in place and returns
    ``loss`` with the diagnostics (per sample under ``reduction="none"``, reduced otherwise).

    Keyword Args:
        reduction (str): ``"none"``, ``"mean"`` (default) or ``"sum"``.
        use_prioritized_weights (bool or "auto"): weight the per-sample loss by
            ``priority_weight`` when present (``"auto"``, default), always (``True``) or never.
        check_finite (bool): refuse a batch whose rewards, observations or actions hold NaN or
            inf, naming the key and the first bad index (one device sync per batch). Default ``False``.
    """

    default_value_estimator = ValueEstimators.TD0
    SUPPORTED_VALUE_ESTIMATORS: tuple = (ValueEstimators.TD0,)
    out_keys: list[str] = ["loss"]
    #: ``loss_and_outputs`` traces into one graph (no ``.item()``), so
    #: :func:`torchrl_reg.objectives.make_update` may fuse gradient and optimizer step.
    fusable_update = True
    #: ``loss_and_outputs`` uses its ``params`` only as ``params[name]`` and ``params.to_module(network)``
    #: with the networks held as attributes, so the fused update may pass its flat stand-in.
    flat_fused_params = True
    _network_names: tuple[str, ...] = ()
    #: Network attribute -> the field of ``tensor_keys`` it must write (``{"qvalue_network": "state_action_value"}``):
    #: a network that writes another key is refused by the layout check, naming both keys and the fix.
    network_outputs: ClassVar[Mapping[str, str]] = {}
    #: Set only inside :meth:`inputs_checked`: the caller has run :meth:`check_inputs` on these transitions.
    _caller_checked_inputs = False
    #: The words telling how to convert a module of :meth:`_read_modules` that :meth:`_check_read_modules` refuses.
    read_module_fix: ClassVar[str] = "convert it too (module.to(...))"

    def __init__(
        self,
        *,
        reduction: str | None = None,
        use_prioritized_weights: str | bool = "auto",
        check_finite: bool = False,
    ) -> None:
        reduction = "mean" if reduction is None else reduction
        check_choice("reduction", reduction, _REDUCTIONS)
        check_choice("use_prioritized_weights", use_prioritized_weights, (True, False, "auto"))
        check_bool("check_finite", check_finite)
        super().__init__()
        self._in_keys = None
        self.reduction = reduction
        self.use_prioritized_weights = use_prioritized_weights
        self.check_finite = check_finite

    # -- keys ---------------------------------------------------------------------------------
    def _estimator_keys(self) -> dict[str, NestedKey]:
        keys = self.tensor_keys
        return {name: getattr(keys, name) for name in _ESTIMATOR_KEYS if hasattr(keys, name)}

    def _forward_value_estimator_keys(self, **kwargs) -> None:
        if self._value_estimator is not None:
            self._value_estimator.set_keys(**self._estimator_keys())
        self._set_in_keys()

    def _in_key_list(self) -> list[NestedKey]:
        raise NotImplementedError

    def _set_in_keys(self) -> None:
        self._in_keys = list(dict.fromkeys(unravel_key(key) for key in self._in_key_list()))

    @property
    def in_keys(self) -> list[NestedKey]:
        if self._in_keys is None:
            self._set_in_keys()
        return self._in_keys

    # -- value estimator ----------------------------------------------------------------------
    def __setattr__(self, name: str, value) -> None:
        # nn.Module would register an estimator assigned to ``loss.value_estimator`` as a submodule
        # and leave LossModule's property (and the loss) on the old one: route it to the estimator.
        if name == "value_estimator":
            self.make_value_estimator(value)
            return
        super().__setattr__(name, value)

    def _check_estimator_type(self, estimator_type: type) -> None:
        if issubclass(estimator_type, SoftTD0Estimator) and RegValueEstimators.SoftTD0 not in self.SUPPORTED_VALUE_ESTIMATORS:
            raise NotImplementedError(
                f"{type(self).__name__} does not take a SoftTD0Estimator: its bootstrap is its own "
                f"(supported: {[v.name for v in self.SUPPORTED_VALUE_ESTIMATORS]}). {TD_ONLY_NOTE}"
            )
        if not issubclass(estimator_type, TD0Estimator):
            raise NotImplementedError(f"{type(self).__name__} got a {estimator_type.__name__}. {TD_ONLY_NOTE}")

    def make_value_estimator(self, value_type: ValueEstimators | str | None = None, **hyperparams) -> RegularizedLossBase:
        """Build the value estimator that owns gamma, e.g. ``loss.make_value_estimator(gamma=0.99)``.

        ``value_type`` is a member of ``SUPPORTED_VALUE_ESTIMATORS`` or its name (``"td0"``;
        ``"softtd0"`` where supported), or a TD(0) :class:`~torchrl.objectives.value.ValueEstimatorBase`
        instance or subclass, as in TorchRL. gamma must lie in [0, 1]. TD(1) and TD(lambda) are
        refused with the reason (see the module docstring).
        """
        if "gamma" in hyperparams:
            check_gamma(hyperparams["gamma"])
        if value_type is None:
            value_type = self.default_value_estimator
        if isinstance(value_type, ValueEstimatorBase) or (
            isinstance(value_type, type) and issubclass(value_type, ValueEstimatorBase)
        ):
            self._check_estimator_type(value_type if isinstance(value_type, type) else type(value_type))
            if isinstance(value_type, ValueEstimatorBase):
                check_gamma(value_type.gamma)
            LossModule.make_value_estimator(self, value_type, **hyperparams)
            self._value_estimator.set_keys(**self._estimator_keys())
            return self
        # The loss hands the estimator its next-state value, so the estimator never calls a network.
        hyperparams.setdefault("value_network", None)
        try:
            dispatch_value_estimator(
                self,
                value_type,
                supported=self.SUPPORTED_VALUE_ESTIMATORS,
                tensor_keys=self._estimator_keys(),
                **hyperparams,
            )
        except NotImplementedError as err:
            if value_type is RegValueEstimators.SoftTD0 or str(value_type).lower() == "softtd0":
                self._check_estimator_type(SoftTD0Estimator)
            raise NotImplementedError(f"{err} {TD_ONLY_NOTE}") from None
        return self

    # -- input checks -------------------------------------------------------------------------
    def _required_keys(self) -> list[NestedKey]:
        """Keys a batch must hold: the in-keys, with ``terminated`` standing in for a missing ``done``."""
        done = unravel_key(("next", self.tensor_keys.done))
        return [key for key in self.in_keys if key != done]

    def _check_action(self, action: torch.Tensor, batch_shape: torch.Size, checks: list) -> None:
        """Check the action's dtype and shape (raise) and queue value checks (``checks``)."""

    def check_batch(self, tensordict: TensorDictBase, *, layout: bool = True, inputs: bool = True) -> None:
        """Refuse a batch that would give a silently wrong loss, naming the key and what is accepted.

        Always: an empty batch (no transition). With ``layout``: missing keys, a network that writes
        another key than the one the loss reads (:attr:`network_outputs`), inputs in another dtype (floating
        point) or on another device than the loss's networks, and ``done``/``terminated`` flags that are not bool or
        integer (integer flags are read as ``flag != 0``). With ``inputs`` (the transitions
        themselves): actions whose encoding does not match the loss's action space,
        ``steps_to_next_obs`` that is not a positive integer up to ``MAX_HORIZON`` (2**24; when present), and with
        ``check_finite`` NaN or inf rewards, observations or actions (key and first bad index).
        Always: negative, NaN or infinite priority weights (they come with each sample).
        The value checks cost one device sync together (and are skipped under ``torch.vmap``,
        which cannot branch on a value). Called by :meth:`forward` and by
        :class:`~torchrl_reg.objectives.FusedAdamUpdate` (``layout`` on its first batch only: its
        compiled step already refuses a batch whose keys differ from the first one's; ``inputs``
        only on its first batch when built with ``inputs_checked=True``, for a caller that
        checks every transition once with :meth:`check_inputs` before it enters the buffer).
        """
        self._check(tensordict, layout=layout, inputs=inputs, weights=True)

    def check_inputs(self, tensordict: TensorDictBase) -> None:
        """Check transitions once, before they enter a replay buffer: the layout and input checks of
        :meth:`check_batch` (actions against the action space; with ``check_finite``, NaN or inf
        rewards, observations or actions), not the priority weights, which come with each sample.

        A training loop that checks every collected batch here can build its update with
        ``make_update(..., inputs_checked=True)``, so that each sampled minibatch is not checked
        again (on CartPole that re-check cost as much as a tenth of each update).
        """
        self._check(tensordict, layout=True, inputs=True, weights=False)

    @contextmanager
    def inputs_checked(self) -> Iterator[None]:
        """Within this block, :meth:`forward` skips the layout and input checks (the priority weights,
        which come with each sample, are still checked): for a caller that ran :meth:`check_inputs` on
        every transition before it entered the replay buffer, as the eager update of
        ``make_update(..., inputs_checked=True)`` does. Outside it, every call is checked.
        """
        self._caller_checked_inputs = True
        try:
            yield
        finally:
            self._caller_checked_inputs = False

    def _check(self, tensordict: TensorDictBase, *, layout: bool, inputs: bool, weights: bool) -> None:
        keys = self.tensor_keys
        if tensordict.batch_size.numel() == 0:
            raise ValueError(
                f"{type(self).__name__} got an empty batch (batch_size {list(tensordict.batch_size)}): a loss needs at "
                "least one transition; sample a non-empty batch (replay buffer batch_size >= 1, and learning_starts "
                "before the first update)"
            )
        self._check_read_modules()
        if layout:
            self._check_layout(tensordict)
        # (key, ok: 0-d bool tensor, bad: () -> per-element mask, what is accepted: a string, or () -> string)
        checks: list = []
        if inputs:
            self._check_action(tensordict.get(keys.action), tensordict.batch_size, checks)
            self._check_steps(tensordict, checks)
        if weights and self.use_prioritized_weights in (True, "auto"):
            weight = tensordict.get(keys.priority_weight, None)
            if weight is not None:
                self._check_signal_shape(keys.priority_weight, weight, tensordict.batch_size, "one weight per transition")
                low, high = torch.aminmax(weight)  # a NaN propagates to both
                checks.append(
                    (keys.priority_weight, _within(low, high, 0, float("inf")),
                     lambda w=weight: ~(w >= 0) | ~torch.isfinite(w), "finite and >= 0")
                )
        if inputs and self.check_finite:
            for key in self.in_keys:
                value = tensordict.get(key)
                if value.is_floating_point():
                    finite = torch.isfinite(value)
                    checks.append((key, finite.all(), lambda f=finite: ~f, "finite (check_finite=True)"))
        if not checks:
            return
        # One sync for all the value checks left on the device (_within decides some on the host);
        # the message is built only when one fails.
        pending = [check[1] for check in checks if isinstance(check[1], torch.Tensor)]
        host_ok = all(check[1] for check in checks if not isinstance(check[1], torch.Tensor))
        if pending:
            ok = pending[0] if len(pending) == 1 else torch.stack(pending).all()
            if torch._C._functorch.is_batchedtensor(ok):
                # Under torch.vmap a value cannot decide a branch: the value checks are skipped there.
                return
            if host_ok and bool(ok):
                return
        elif host_ok:
            return
        for key, ok, bad, accepted in checks:
            if not bool(ok):
                bad = bad()
                index = _first_index(bad)
                value = tensordict.get(key)
                shown = value[index[: value.ndim]] if value.ndim else value
                accepted = accepted() if callable(accepted) else accepted
                raise ValueError(
                    f"{type(self).__name__}: {key!r} must be {accepted}; first bad entry at index "
                    f"{list(index)}: {shown.tolist()}"
                )

    def _check_steps(self, tensordict: TensorDictBase, checks: list) -> None:
        """Queue the check of ``steps_to_next_obs`` (the n-step horizon the estimator raises gamma to):
        a positive integer, or the discount becomes gamma^0, gamma^-1 or gamma^1.5 without a word."""
        key = getattr(self.tensor_keys, "steps_to_next_obs", None)
        steps = None if key is None else tensordict.get(key, None)
        if steps is None:
            return
        if steps.dtype == torch.bool or steps.is_complex():
            raise TypeError(f"{type(self).__name__}: {key!r} must hold positive integers (the n-step horizon), got dtype {steps.dtype}")
        # at most MAX_HORIZON: 1e300 or 2**62 cut the bootstrap to gamma^steps = 0 as inf does
        whole = (steps >= 1) & (steps <= MAX_HORIZON)
        if steps.is_floating_point():
            # NaN fails both; inf passes >= 1 and inf == floor(inf)
            whole = whole & (steps == steps.floor()) & torch.isfinite(steps)
        checks.append((key, whole.all(), lambda w=whole: ~w, f"a positive integer (the n-step horizon) <= {MAX_HORIZON}"))

    def _check_layout(self, tensordict: TensorDictBase) -> None:
        keys = self.tensor_keys
        present = set(tensordict.keys(True, True))
        missing = [key for key in self._required_keys() if key not in present]
        terminated = unravel_key(("next", keys.terminated))
        if terminated in missing and unravel_key(("next", keys.done)) in present:
            missing.remove(terminated)
        if missing:
            raise KeyError(
                f"{type(self).__name__} is missing the key(s) {missing} in its input; it reads {self.in_keys} "
                "(rename them with loss.set_keys(...))"
            )
        self._check_network_outputs()
        self._check_dtype_and_device(tensordict)
        for name in ("terminated", "done"):
            flag = tensordict.get(("next", getattr(keys, name)), None)
            if flag is not None and (flag.is_floating_point() or flag.is_complex()):
                raise TypeError(
                    f"{type(self).__name__}: ('next', {getattr(keys, name)!r}) must be a bool or integer 0/1 flag, got "
                    f"dtype {flag.dtype}"
                )
        self._check_signal_shapes(tensordict)
        if not self.__dict__.get("_networks_probed") and not is_compiling():
            self._probe_networks(tensordict)
            self.__dict__["_networks_probed"] = True

    def _check_signal_shape(self, key: NestedKey, value: torch.Tensor, batch_shape: torch.Size, what: str) -> None:
        """Refuse ``value`` (a reward, a flag, a priority weight) unless it is shaped as the batch, or as the batch with
        a trailing 1: another shape broadcasts (``[N]`` against ``[N, 1]`` is ``[N, N]``) or fails deep in a reshape."""
        batch = list(batch_shape)
        if list(value.shape) not in (batch, [*batch, 1]):
            raise ValueError(
                f"{type(self).__name__}: {key!r} must hold {what}, shaped as the batch {batch} or {[*batch, 1]}; got "
                f"shape {list(value.shape)}"
            )

    def _check_signal_shapes(self, tensordict: TensorDictBase) -> None:
        """The reward and the ``done`` / ``terminated`` flags: each shaped as the batch (or with a trailing 1), all
        three alike (TorchRL's estimators refuse ``[N]`` beside ``[N, 1]`` deep inside, with no key named)."""
        keys, batch = self.tensor_keys, tensordict.batch_size
        shapes = {}
        for name in ("reward", "done", "terminated"):
            key = ("next", getattr(keys, name)) if hasattr(keys, name) else None
            value = None if key is None else tensordict.get(key, None)
            if isinstance(value, torch.Tensor):
                self._check_signal_shape(key, value, batch, f"one {name} per transition")
                shapes[key] = list(value.shape)
        if len({tuple(shape) for shape in shapes.values()}) > 1:
            seen = ", ".join(f"{key!r} {shape}" for key, shape in shapes.items())
            raise ValueError(
                f"{type(self).__name__}: the reward and the done / terminated flags must share one shape, {list(batch)} "
                f"or {[*batch, 1]} (TorchRL's envs write {[*batch, 1]}); got {seen}: reshape them alike "
                "(.unsqueeze(-1) or .squeeze(-1))"
            )

    def _probe_networks(self, tensordict: TensorDictBase) -> None:
        """Called once, on the first batch whose layout is checked (before the replay buffer when the loop checks
        transitions there): call the networks on one transition and refuse outputs of a shape the loss would
        broadcast or fail on deep inside (a subclass checks its own networks). None by default."""

    def _read_modules(self) -> dict[str, nn.Module]:
        """The modules the loss reads but does not own, by what they are in words (``{"critic": module}``): held
        outside its parameters, so that ``loss.to(...)`` leaves them as they are. None by default."""
        return {}

    def _check_read_modules(self) -> None:
        """Refuse a module of :meth:`_read_modules` in another dtype or on another device than the loss's networks
        (:func:`check_same_dtype_and_device`), before any computation: on every batch, whatever was checked before
        (a host-side comparison, no device sync), since a module the loss does not own may be converted at any
        time."""
        modules = self._read_modules()
        if not modules:
            return
        networks = next((p for p in self.parameters() if p.is_floating_point()), None)
        for name, module in modules.items():
            check_same_dtype_and_device(
                type(self).__name__, "loss's own networks", networks, name, module,
                f"it is read, not owned, so loss.to(...) leaves it as it is: {self.read_module_fix}",
            )

    def _check_network_outputs(self) -> None:
        """Refuse a network that does not write the key the loss reads from it (:attr:`network_outputs`): the read
        would return ``None`` deep inside the loss."""
        for attribute, field in self.network_outputs.items():
            written = [unravel_key(key) for key in getattr(getattr(self, attribute), "out_keys", ())]
            key = unravel_key(getattr(self.tensor_keys, field))
            if written and key not in written:
                raise KeyError(
                    f"{type(self).__name__}: its {attribute} writes {written}, not {key!r}, which the loss reads as "
                    f"{field!r}: rename the loss's key with loss.set_keys({field}={written[-1]!r}), or build the "
                    f"network with out_keys=[{key!r}]"
                )

    def _check_dtype_and_device(self, tensordict: TensorDictBase) -> None:
        """Refuse inputs on another device than the loss's networks, and floating-point network inputs (observations,
        continuous actions) in another dtype: torch fails deep inside a matmul, or promotes without a word."""
        reference = next((p for p in self.parameters() if p.is_floating_point()), None)
        if reference is None:
            return
        keys = self.tensor_keys
        signals = {unravel_key(("next", getattr(keys, n))) for n in ("reward", "done", "terminated") if hasattr(keys, n)}
        for key in self.in_keys:
            value = tensordict.get(key, None)
            if not isinstance(value, torch.Tensor):
                continue
            wrong_dtype = key not in signals and value.is_floating_point() and value.dtype != reference.dtype
            if value.device != reference.device or wrong_dtype:
                raise TypeError(
                    f"{type(self).__name__}: {key!r} is {value.dtype} on {value.device}, but the loss's networks are "
                    f"{reference.dtype} on {reference.device}: move the batch with batch.to({str(reference.device)!r}) "
                    f"and cast its floating-point inputs to {reference.dtype}, or convert the loss with loss.to(...)"
                )

    # -- forward ------------------------------------------------------------------------------
    def _loss_params(self) -> TensorDictBase:
        """The online parameters ``loss_and_outputs`` takes (what the fused update differentiates)."""
        return self.value_network_params

    def _reduce_diagnostic(self, value: torch.Tensor) -> torch.Tensor:
        """A per-sample diagnostic as the output shows it: per sample under ``reduction="none"``, else its mean."""
        return value if self.reduction == "none" else value.mean()

    def _weights(self, tensordict: TensorDictBase, shape: torch.Size) -> torch.Tensor | None:
        return prioritized_weights(self, tensordict, shape)

    def _bool_flags(self, tensordict: TensorDictBase) -> TensorDictBase:
        """``tensordict`` with integer ``done``/``terminated`` flags read as ``flag != 0``.

        TorchRL's TD(0) inverts the flag with ``~``, which on an integer 1 gives -2, not 0: the
        bootstrap would be multiplied by -1 or -2 instead of cut. Bool flags pass untouched."""
        keys = self.tensor_keys
        out = tensordict
        for name in ("terminated", "done"):
            key = ("next", getattr(keys, name))
            flag = tensordict.get(key, None)
            if flag is not None and flag.dtype != torch.bool:
                if out is tensordict:
                    out = tensordict.clone(False)  # copies the nested structure, not the data
                out.set(key, flag != 0)
        return out

    @dispatch
    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        """Compute the loss on a batch sampled from a replay buffer.

        Checks the batch (:meth:`check_batch`), writes the per-sample priority in place under
        ``tensor_keys.priority`` (for :class:`~torchrl.data.PrioritizedSampler`), uses
        ``priority_weight`` when present, and returns ``loss`` plus detached diagnostics (per
        sample under ``reduction="none"``). Keyword-tensor calls work as in TorchRL
        (``loss(observation=..., action=..., next_reward=..., ...)``, the in-keys joined by ``_``).
        """
        self._check_call(tensordict)
        return self._forward_checked(tensordict)

    def _check_call(self, tensordict: TensorDictBase) -> None:
        """The checks of every public entry point that takes transitions (:meth:`forward`, a loss's ``target``):
        :meth:`check_batch`, less the layout and input checks inside :meth:`inputs_checked`."""
        checked = self._caller_checked_inputs
        self.check_batch(tensordict, layout=not checked, inputs=not checked)

    def _forward_outputs(self, tensordict: TensorDictBase, params: TensorDictBase) -> tuple[dict, torch.Tensor]:
        """The entries :meth:`forward` returns (``loss`` with its gradient, then the detached diagnostics) and the
        priority; a loss of several terms returns each term with its gradient instead of ``loss``."""
        loss, priority, diagnostics = self.loss_and_outputs(tensordict, params)
        return {"loss": loss, **diagnostics}, priority

    def _forward_checked(self, tensordict: TensorDictBase) -> TensorDict:
        """:meth:`forward` after :meth:`check_batch` (a subclass whose forward checks first calls this)."""
        outputs, priority = self._forward_outputs(tensordict, self._loss_params())
        tensordict.set(self.tensor_keys.priority, priority.to(tensordict.device or priority.device), inplace=True)
        batch_size = tensordict.batch_size if self.reduction == "none" else []
        out = TensorDict(outputs, batch_size=batch_size)
        self._clear_weakrefs(tensordict, out, *self._param_names())
        return out

    def _param_names(self) -> list[str]:
        names = []
        for net in self._network_names:
            names += [f"{net}_params", f"target_{net}_params"]
        return [name for name in names if name in self._modules]

    def reset_parameters_recursive(self) -> None:
        """Re-initialize the online and target parameters of every network of the loss."""
        for name in self._network_names:
            self._reset_module_parameters(name, getattr(self, name))


def _action_spec(actor: nn.Module, key: NestedKey) -> TensorSpec | None:
    """The actor's spec of the action ``key`` (``None`` if it has none)."""
    spec = getattr(actor, "spec", None)
    if isinstance(spec, Composite):
        return spec.get(key, None) if key in spec.keys(True, True) else None
    return spec


#: What an actor-critic loss draws from its actor's distribution (:attr:`ActorCriticLossBase.actor_sample`) ->
#: what the actor needs, in words.
_ACTOR_NEEDS = {
    "log_prob": "a finite log-density",
    "rsample": "a finite log-density and a reparametrized sample (rsample)",
    "rsample_or_support": "a finite log-density and a reparametrized sample (rsample), or a finite support",
}


def _distribution_problem(actor: nn.Module, sample: str) -> str | None:
    """Why ``actor``'s distribution cannot serve a loss that draws ``sample`` from it (:data:`_ACTOR_NEEDS`), or
    ``None``: a deterministic actor or a point mass (``log_prob`` is -inf off its own action), and for ``"rsample"``
    a distribution without a reparametrized sample (``"rsample_or_support"``: unless it has a finite support to take
    exact expectations over). What the class alone cannot tell (a transformed distribution's ``has_rsample`` is a
    property) is left to the loss's forward."""
    modules = [m for m in actor.modules() if isinstance(m, ProbabilisticTensorDictModule)]
    if not modules:
        return (
            f"{type(actor).__name__} is deterministic: its get_dist is a Delta, whose log_prob is -inf off its own "
            "action and which has no reparametrized sample"
        )
    cls = modules[-1].distribution_class
    if not isinstance(cls, type):
        return None
    if issubclass(cls, (Delta, TanhDelta)):
        return f"its distribution {cls.__name__} is a point mass: no finite log-density, no reparametrized sample"
    if sample == "log_prob":
        return None
    if sample == "rsample_or_support" and getattr(cls, "has_enumerate_support", False) is True:
        return None
    if inspect.getattr_static(cls, "has_rsample", None) is False:
        support = " and no finite support" if sample == "rsample_or_support" else ""
        return f"its distribution {cls.__name__} has no reparametrized sample (rsample){support}"
    return None


class ActorCriticLossBase(RegularizedLossBase):
    """Base of the actor-critic losses (MDAC, VIREL, IQ / M-IQ, soft Q-learning's critic): the guards of the family,
    in one place, on top of :class:`RegularizedLossBase`'s (empty batch, keys, the keys each network writes, dtype and
    device, flags, ``steps_to_next_obs``, NaN with ``check_finite``).

    * **The networks**, refused when the loss is built, before its body runs: an actor without ``get_dist`` (a critic
      passed as the actor: "are the two networks swapped?"), a probabilistic critic, and an actor whose distribution
      the actor loss cannot use (:attr:`actor_sample`): a deterministic actor (TorchRL's ``Actor``, whose
      ``get_dist`` is a Delta), a point mass (Delta, TanhDelta), and where the loss differentiates through a sample
      a distribution without ``rsample``. A subclass names the constructor arguments (:attr:`actor_argument`,
      :attr:`critic_argument`) and says what its actor loss does (:attr:`actor_use`); the check wraps its
      ``__init__``, so no loss calls it.
    * **The action** of each transition: shape ``[*batch, *spec.shape]`` of the action spec (an ``[N]`` action of a
      one-dimensional box would broadcast against ``[N, 1]`` values), and inside its box (:meth:`_action_shape`,
      :meth:`_action_bounds`: the actor's spec, :attr:`actor_attribute`, by default).
    """

    #: The constructor argument holding the actor, checked before the constructor's body (``None``: none).
    actor_argument: ClassVar[str | None] = None
    #: The constructor argument holding the critic, which must not be a probabilistic actor (``None``: none).
    critic_argument: ClassVar[str | None] = None
    #: What the critic must be, in words (for the refusal of a probabilistic one).
    critic_kind: ClassVar[str] = "a Q(s, a) module writing 'state_action_value'"
    #: For a state-value critic ``V(s)``: the fix named when the critic reads the action (a ``Q(s, a)`` passed where
    #: ``V(s)`` is read); ``None``: the critic reads the action.
    state_value_critic: ClassVar[str | None] = None
    #: What the actor loss draws from the actor's distribution: ``"log_prob"`` (the density of replayed actions),
    #: ``"rsample"`` (also a reparametrized sample), ``"rsample_or_support"`` (or exact sums over a finite support).
    actor_sample: ClassVar[str] = "rsample"
    #: What the actor loss does with the actor, in words: the reason of a refusal.
    actor_use: ClassVar[str] = "differentiates its actor loss through a reparametrized sample of the actor"
    #: The attribute holding the actor once built: its action spec gives the action's shape and box.
    actor_attribute: ClassVar[str] = "actor_network"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.actor_sample not in _ACTOR_NEEDS:
            raise TypeError(f"{cls.__qualname__}.actor_sample must be one of {list(_ACTOR_NEEDS)}, got {cls.actor_sample!r}")
        if "__init__" in vars(cls) and (cls.actor_argument or cls.critic_argument):
            cls.__init__ = _networks_checked(cls, cls.__init__)  # type: ignore[method-assign]

    @classmethod
    def check_networks(cls, actor: nn.Module | None, critic: nn.Module | None, name: str | None = None) -> None:
        """Refuse an actor or a critic this loss cannot train (class docstring), naming the class (``name``: the
        class being built), the argument, what is wrong and the fix."""
        name = name or cls.__name__
        if actor is not None and not hasattr(actor, "get_dist"):
            raise TypeError(
                f"{name}: {cls.actor_argument} must be a probabilistic actor (a ProbabilisticTensorDictSequential with "
                f"get_dist, e.g. from torchrl_reg.modules.policies), got {type(actor).__name__}; are the two networks "
                "swapped?"
            )
        if critic is not None and hasattr(critic, "get_dist"):
            raise TypeError(
                f"{name}: {cls.critic_argument} must be {cls.critic_kind}, got a probabilistic actor "
                f"({type(critic).__name__}); are the two networks swapped?"
            )
        action = getattr(getattr(cls, "default_keys", None), "action", "action")
        if critic is not None and cls.state_value_critic and action in getattr(critic, "in_keys", ()):
            raise TypeError(
                f"{name}: {cls.critic_argument} must be {cls.critic_kind}, a V(s) critic of the observation alone; got "
                f"one that reads {action!r} (in_keys {list(critic.in_keys)}), a Q(s, a) critic. Use "
                f"{cls.state_value_critic}"
            )
        if actor is not None:
            problem = _distribution_problem(actor, cls.actor_sample)
            if problem is not None:
                raise TypeError(cls.actor_refusal(problem, name))

    @classmethod
    def actor_refusal(cls, problem: str, name: str | None = None) -> str:
        """The refusal of an actor whose distribution has ``problem``: the class, why the actor loss needs what it
        lacks, and the fix."""
        fix = "torchrl_reg.modules.policies.tanh_normal_policy (a ProbabilisticActor over TanhNormal)"
        if cls.actor_sample == "rsample_or_support":
            fix += ", or a policy with a finite support (categorical) for exact expectations"
        elif cls.actor_sample == "log_prob":
            fix += ", or another policy of torchrl_reg.modules.policies (multicategorical, categorical)"
        return (
            f"{name or cls.__name__} {cls.actor_use}, so its {cls.actor_argument} needs "
            f"{_ACTOR_NEEDS[cls.actor_sample]}; {problem}. Use {fix}"
        )

    # -- the action ---------------------------------------------------------------------------
    def _action_shape(self) -> torch.Size | None:
        """The shape of one action (``None``: unknown, not checked): the actor's action spec's."""
        spec = _action_spec(getattr(self, self.actor_attribute), self.tensor_keys.action)
        return None if spec is None else spec.shape

    def _action_bounds(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(low, high)`` of the action box (``None``: none, not checked): the actor's action spec's."""
        return _box_bounds(getattr(getattr(self, self.actor_attribute), "spec", None), self.tensor_keys.action)

    def _check_action(self, action: torch.Tensor, batch_shape: torch.Size, checks: list) -> None:
        """The action's shape, ``[*batch, *spec.shape]``, and its box (queued)."""
        key = self.tensor_keys.action
        shape = self._action_shape()
        if shape is not None:
            expected = [*batch_shape, *shape]
            if list(action.shape) != expected:
                hint = ""
                if list(action.shape) == list(batch_shape) and list(shape) == [1]:
                    hint = " (a one-dimensional action keeps its trailing dimension: action.unsqueeze(-1))"
                raise ValueError(
                    f"{type(self).__name__}: {key!r} must have shape {expected}, the batch {list(batch_shape)} "
                    f"followed by the action spec shape {list(shape)}; got shape {list(action.shape)}{hint}"
                )
        _queue_bounds_check(self._action_bounds(), key, action, checks)

    # -- the networks, probed once ------------------------------------------------------------
    def _probe_action(self, one: TensorDictBase) -> torch.Tensor:
        """An action of the action spec for one transition (the box's middle), else the batch's own."""
        bounds, shape = self._action_bounds(), self._action_shape()
        action = one.get(self.tensor_keys.action)
        if bounds is not None:
            low, high = bounds
            return ((low + high) / 2).to(action).expand(*one.batch_size, *low.shape)
        if shape is not None:
            return torch.zeros(*one.batch_size, *shape, dtype=action.dtype, device=action.device)
        return action

    def _probe_networks(self, tensordict: TensorDictBase) -> None:
        """The actor's log-density and the critic, each called once on one transition with an action of the action
        spec: a log-probability per action dimension (a ``Normal`` not wrapped in ``Independent``) broadcasts against
        the batch's values, and a critic built for another action width fails inside its first matmul."""
        one = tensordict[:1] if tensordict.batch_dims else tensordict.unsqueeze(0)
        if torch._C._functorch.is_batchedtensor(one.get(self.tensor_keys.action)):
            return
        key = self.tensor_keys.action
        action = self._probe_action(one)
        with torch.no_grad():
            actor = getattr(self, self.actor_attribute, None) if self.actor_attribute else None
            if actor is not None and hasattr(actor, "get_dist"):
                self._probe_actor(actor, one, action)
            critic = getattr(self, self.critic_argument, None) if self.critic_argument else None
            if isinstance(critic, nn.Module):
                self._probe_critic(critic, one.exclude(key).set(key, action))

    def _probe_actor(self, actor: nn.Module, one: TensorDictBase, action: torch.Tensor) -> None:
        name, batch = type(self).__name__, list(one.batch_size)
        log_prob = actor.get_dist(one.select(*actor.in_keys, strict=False)).log_prob(action)
        if list(log_prob.shape) != batch:
            modules = [m for m in actor.modules() if isinstance(m, ProbabilisticTensorDictModule)]
            cls = getattr(modules[-1].distribution_class, "__name__", "?") if modules else "?"
            raise ValueError(
                f"{name}: its {self.actor_attribute}'s log_prob of one action has shape {list(log_prob.shape)}, not "
                f"{batch} (one log-density per transition, the action of shape {list(action.shape[len(batch):])} "
                f"scored whole): its distribution {cls} scores each action dimension apart. Use a distribution over "
                "the whole action: torchrl.modules.IndependentNormal (or TanhNormal), or "
                "torchrl_reg.modules.policies.tanh_normal_policy"
            )

    def _probe_critic(self, critic: nn.Module, one: TensorDictBase) -> None:
        name, attribute = type(self).__name__, self.critic_argument
        inputs = one.select(*critic.in_keys, strict=False)
        shapes = {key: list(inputs.get(key).shape[1:]) for key in critic.in_keys if key in inputs.keys(True, True)}
        try:
            out = critic(inputs)
        except RuntimeError as err:
            widths = [shape[-1] for shape in shapes.values() if len(shape) == 1]
            fix = ""
            if len(widths) == len(shapes) and widths:
                fix = f"; an MLP critic takes {' + '.join(map(str, widths))} = {sum(widths)} input features"
            if self.tensor_keys.action in critic.in_keys:
                fix += f" (e.g. state_action_value_network({', '.join(map(str, widths))}))" if len(widths) == 2 else ""
            raise ValueError(
                f"{name}: its {attribute} fails on one transition's inputs {shapes} (the action of the action "
                f"spec's shape {list(self._action_shape() or [])}): {str(err).splitlines()[0]}{fix}"
            ) from None
        field = self.network_outputs.get(attribute)
        key = getattr(self.tensor_keys, field) if field else (critic.out_keys[-1] if getattr(critic, "out_keys", None) else None)
        value = out.get(key, None) if key is not None and isinstance(out, TensorDictBase) else None
        if isinstance(value, torch.Tensor) and list(value.shape) not in (list(one.batch_size), [*one.batch_size, 1]):
            raise ValueError(
                f"{name}: its {attribute} writes {key!r} of shape {list(value.shape)} for one transition; one value per "
                f"transition is read ({list(one.batch_size)} or {[*one.batch_size, 1]}): build it with out_features=1"
            )


def _networks_checked(owner: type[ActorCriticLossBase], init: Any) -> Any:
    """``init`` (the constructor of ``owner``) with its actor and critic checked first (:meth:`~ActorCriticLossBase.check_networks`)."""
    signature = inspect.signature(init)

    @refusals_named
    @functools.wraps(init)
    def networks_checked_init(self: Any, *args: Any, **kwargs: Any) -> None:
        check_keywords(type(self), owner, kwargs)
        bound = signature.bind(self, *args, **kwargs)
        actor = bound.arguments.get(owner.actor_argument) if owner.actor_argument else None
        critic = bound.arguments.get(owner.critic_argument) if owner.critic_argument else None
        owner.check_networks(actor, critic, type(self).__name__)
        init(self, *args, **kwargs)

    networks_checked_init.__kwdefaults__ = init.__kwdefaults__
    return networks_checked_init


class RegularizedDQNLossBase(RegularizedLossBase):
    """Base class of the regularized DQN losses: a new value-based loss is this class plus one method.

    A subclass overrides :meth:`next_value_and_bonus` (M-DQN's is 15 lines), declares its own arguments'
    checks in ``argument_checks`` (applied with :meth:`check_arguments` in its ``__init__``) and, when it
    returns diagnostics, lists them in ``out_keys``. Everything else comes with this class, as
    :class:`torchrl.objectives.DQNLoss` does it: keys, target parameters, the value estimator (gamma, n-step),
    the regression loss, priorities, importance weights, reduction, input checks, and the fused compiled update
    (:class:`~torchrl_reg.objectives.FusableLoss`). ``docs/adding_a_method.rst`` builds one and trains it.
    """

    _AcceptedKeys = QValueKeys
    tensor_keys: QValueKeys
    default_keys = QValueKeys
    #: The diagnostics every loss of the family returns (subclasses add theirs in front).
    out_keys = ["loss", "td_error", "q_value", "action_gap"]
    _network_names = ("value_network",)
    network_outputs = {"_q_network": "action_value"}

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
        check_finite: bool = False,
    ) -> None:
        check_choice("loss_function", loss_function, _LOSS_FUNCTIONS)
        check_bool("delay_value", delay_value)
        if action_space is not None:
            self._check_action_space(action_space)
        super().__init__(reduction=reduction, use_prioritized_weights=use_prioritized_weights, check_finite=check_finite)
        self.delay_value = delay_value
        self.loss_function = loss_function
        value_network = ensure_tensordict_compatible(
            module=value_network, wrapper_type=QValueActor, action_space=action_space
        )
        if action_space is None:
            action_space = getattr(value_network, "spec", None)
            if isinstance(action_space, Composite) and action_space.get("action", None) is None:
                action_space = None  # a QValueActor built with action_space= and no spec: its spec holds no action
            action_space = getattr(value_network, "action_space", None) if action_space is None else action_space
        if action_space is None:
            raise ValueError(
                f"{type(self).__name__} needs the action space: pass action_space='categorical' or 'one-hot' "
                "(or a Categorical/OneHot spec), or a QValueActor built with one."
            )
        self.action_space = self._check_action_space(action_space)
        self.num_actions = _num_actions(action_space, value_network)
        self.convert_to_functional(value_network, "value_network", create_target_params=self.delay_value)
        # The action values are all the losses need: skip QValueModule's greedy action.
        # A plain (unregistered) view on the same submodules, so ``to_module`` swaps its params too.
        self.__dict__["_q_network"] = _action_value_part(value_network)
        self.__dict__["_slots"] = _tensor_slots(value_network, self.value_network_params)

    def _check_action_space(self, action_space: str | TensorSpec) -> str:
        return _discrete_action_space(self, action_space)

    def _in_key_list(self) -> list[NestedKey]:
        return [
            self.tensor_keys.action,
            ("next", self.tensor_keys.reward),
            ("next", self.tensor_keys.done),
            ("next", self.tensor_keys.terminated),
            *self.value_network.in_keys,
            *[("next", key) for key in self.value_network.in_keys],
        ]

    # -- input checks -------------------------------------------------------------------------
    def _probe_networks(self, tensordict: TensorDictBase) -> None:
        """The action values of one transition against the action spec's ``n``: more outputs than actions train a
        softmax (and a max) over actions the env never takes, without a word."""
        if self.num_actions is None:
            return
        one = tensordict[:1] if tensordict.batch_dims else tensordict.unsqueeze(0)
        inputs = one.select(*self._q_network.in_keys, strict=False)
        if any(torch._C._functorch.is_batchedtensor(value) for value in inputs.values(True, True)):
            return
        with torch.no_grad():
            width = self._action_values(inputs).shape[-1]
        if width != self.num_actions:
            raise ValueError(
                f"{type(self).__name__}: its value network writes {width} action values per state, but the action "
                f"spec has n={self.num_actions} actions: the loss's softmax and max would range over actions the env "
                f"never takes; build the network with {self.num_actions} outputs (out_features={self.num_actions}), or "
                f"the spec with the network's {width}"
            )

    def _check_action(self, action: torch.Tensor, batch_shape: torch.Size, checks: list) -> None:
        _check_discrete_action(self, action, self.tensor_keys.action, self.num_actions, batch_shape, checks)

    # -- forward ------------------------------------------------------------------------------
    def _action_index(self, action: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        if self.action_space == "one_hot":
            return one_hot_index(action)
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
        return self.action_values(inputs, self.target_value_network_params)

    def action_values(self, inputs: TensorDictBase, params: TensorDictBase) -> torch.Tensor:
        """The action values ``Q(s, .)`` of the value network with the parameters ``params`` on ``inputs`` (a
        TensorDict holding the network's in_keys), shaped ``[*inputs.batch_size, num_actions]``.

        The loss's one call of its network: at ``s_t`` with the online parameters (:attr:`value_network_params`, or
        the stand-in of a fused update) and at ``s_t`` and ``s_{t+n}`` with :attr:`target_value_network_params`. The
        numbers are those of ``params.to_module(self.value_network)`` and the network's action-value module; in eager
        mode the loss's own parameters are written straight into the network's tables and a plain
        :class:`~tensordict.nn.TensorDictModule` is called through its module, which skips the costs of both. A
        subclass may override it to call its network another way.
        """
        with self._network_holding(params):
            return self._action_values(inputs)

    @contextmanager
    def _network_holding(self, params: TensorDictBase) -> Iterator[None]:
        """``params.to_module(self.value_network)`` (``preserve_module_state=False``), at a fraction of its cost
        for the loss's own parameters in eager mode.

        ``to_module`` walks and locks nested TensorDicts: on CartPole a swap in and out cost as much as the
        network's forward. For :attr:`value_network_params` or :attr:`target_value_network_params` (not a fused
        update's stand-in, and not under ``torch.compile``, which traces ``to_module``), the tensors are written
        straight into the parameter and buffer tables they replace and put back on exit; when the network already
        holds them (the online parameters: ``convert_to_functional`` keeps the network's own tensors) nothing is
        swapped. Anything else (a slot that moved, a different layout) takes ``to_module``.
        """
        slots = self.__dict__.get("_slots")
        leaves = None
        own = (self._modules.get("value_network_params"), self._modules.get("target_value_network_params"))
        if slots is not None and not is_compiling() and any(params is mine for mine in own):
            leaves = list(params.values(True, True))
            held = [table.get(name) for table, name in slots]
            if len(leaves) != len(slots) or any(tensor is None for tensor in held):
                leaves = None
        if leaves is None:
            with params.to_module(self.value_network, preserve_module_state=False):
                yield
            return
        if all(tensor is leaf for tensor, leaf in zip(held, leaves)):
            yield
            return
        for (table, name), leaf in zip(slots, leaves):
            table[name] = leaf
        try:
            yield
        finally:
            for (table, name), tensor in zip(slots, held):
                table[name] = tensor

    def _action_values(self, inputs: TensorDictBase) -> torch.Tensor:
        """The action values of ``self._q_network`` on ``inputs``. A plain :class:`TensorDictModule` that writes
        only them (no hooks, method or keyword inputs) is called through its module, which skips its TensorDict
        bookkeeping (as costly as the network's forward on CartPole); the numbers are the module's either way."""
        net = self._q_network
        if (
            type(net) is TensorDictModule
            and not is_compiling()
            and net._kwargs is None
            and net.method is None
            and not net.method_kwargs
            and not net._get_kwargs
            and not net._forward_hooks
            and not net._forward_pre_hooks
            and net.out_keys == [unravel_key(self.tensor_keys.action_value)]
        ):
            out = net.module(*(inputs.get(key) for key in net.in_keys))
            if isinstance(out, torch.Tensor):
                return out
        return net(inputs).get(self.tensor_keys.action_value)

    def next_value_and_bonus(
        self,
        q_target: torch.Tensor,
        a_tm1: torch.Tensor,
        not_terminal_t: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """The method's part of the regression target ``y = r + bonus + gamma^n (1 - terminated) V_next``: the
        one method a value-based loss overrides (the rest is :meth:`loss_and_outputs`).

        Args:
            q_target: the target network's action values, ``[2B, ..., num_actions]``: those at ``s_t`` (first
                ``B`` rows) stacked over those at ``s_{t+n}`` (last ``B`` rows), computed without a gradient.
            a_tm1: the replayed actions ``a_t`` as indices, ``[B, ...]``.
            not_terminal_t: ``True`` where ``s_{t+n}`` is not terminal, ``[B, ...]`` (the value estimator
                already zeroes ``V_next`` at terminal states; a bonus that must not cross them uses it).

        Returns:
            ``(next_value, bonus, diagnostics)``: ``V_next(s_{t+n})`` shaped ``[B, ...]`` (bootstrapped by the
            loss's value estimator), the bonus added at ``(s_t, a_t)`` shaped ``[B, ...]`` (zeros for none), and
            a dict of extra outputs, each reduced with :meth:`_reduce_diagnostic` (listed in ``out_keys``).
        """
        raise NotImplementedError

    def loss_and_outputs(
        self, tensordict: TensorDictBase, params: TensorDictBase
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """The loss as a function of the online parameters ``params``: ``(loss, priority, diagnostics)``.

        :meth:`forward` is this function at ``self.value_network_params``, after :meth:`check_batch`
        and followed by the in-place priority write. It neither writes to ``tensordict`` nor reads
        the online parameters from the module, so that ``torch.func.grad`` can differentiate it
        with respect to ``params`` (the fused update of :func:`torchrl_reg.objectives.make_update`
        does). ``priority`` is the per-sample squared TD error, shaped like the action key's batch
        with a trailing singleton dimension, as :meth:`forward` writes it.
        """
        if not tensordict.batch_dims:
            # The one forward pass over s_t and s_{t+n} concatenates along the batch: a single
            # transition (batch_size=()) runs as a batch of one, its outputs squeezed back.
            loss, priority, diagnostics = self.loss_and_outputs(tensordict.unsqueeze(0), params)
            return _squeeze_first(loss), priority.squeeze(0), {k: _squeeze_first(v) for k, v in diagnostics.items()}
        keys = self.tensor_keys
        tensordict = self._bool_flags(tensordict)
        td = tensordict.clone(False)
        q_tm1 = self.action_values(td, params)
        a_tm1 = self._action_index(tensordict.get(keys.action), q_tm1)
        pred = q_tm1.gather(-1, a_tm1.unsqueeze(-1)).squeeze(-1)

        reward = tensordict.get(("next", keys.reward))
        with torch.no_grad():
            q_target = self._target_action_values(tensordict)
            terminated = tensordict.get(("next", keys.terminated), None)
            if terminated is None:
                terminated = tensordict.get(("next", keys.done))
            not_terminal = ~terminated.view(pred.shape)
            next_value, bonus, diagnostics = self.next_value_and_bonus(q_target, a_tm1, not_terminal)
            bootstrap = self.value_estimator.value_estimate(td, next_value=next_value.view_as(reward))
            target = bootstrap.view(pred.shape) + bonus
            td_error = (pred - target).pow(2)

        loss = distance_loss(pred, target, self.loss_function)
        loss = self._reduce_loss(loss, tensordict=tensordict, weights=self._weights(tensordict, loss.shape))
        diagnostics["td_error"] = self._reduce_diagnostic(td_error)
        diagnostics["q_value"] = self._reduce_diagnostic(pred.detach())
        diagnostics["action_gap"] = self._reduce_diagnostic(F.action_gap(q_tm1.detach()))
        return loss, td_error.unsqueeze(-1), diagnostics


def at_second_batch(loss: nn.Module, counter: str) -> bool:
    """True exactly once, at the second call, for a loss's warn-once check of a driver method never called
    (MIRLLoss's prior and beta, VIREL's replay temperature): counts the int attribute ``counter`` of ``loss`` up
    to 2 and no further. torch.compile guards on a module's int attributes, so a count that grew at every
    batch made a compiled forward recompile at every call until Dynamo's limit (the GPU check of 2026-11-26;
    ``tests/torchrl_conventions`` checks that every loss's Python scalars settle)."""
    count = getattr(loss, counter)
    if count >= 2:
        return False
    setattr(loss, counter, count + 1)
    return count + 1 == 2


def prioritized_weights(loss: LossModule, tensordict: TensorDictBase, shape: torch.Size) -> torch.Tensor | None:
    """The importance weights of ``tensordict`` shaped ``shape`` as ``loss.use_prioritized_weights`` asks:
    when present (``"auto"``), always (``True``: a batch without them is refused) or never (``False``)."""
    key = loss.tensor_keys.priority_weight
    if loss.use_prioritized_weights in (True, "auto") and key in tensordict.keys(True):
        return tensordict.get(key).reshape(shape)
    if loss.use_prioritized_weights is True:
        raise KeyError(
            f"use_prioritized_weights=True, but the batch has no {key!r} "
            "(sample it from a PrioritizedSampler, or pass use_prioritized_weights='auto')"
        )
    return None


def _squeeze_first(value: torch.Tensor) -> torch.Tensor:
    """A batch-of-one output back to a single transition's (a reduced 0-dim value stays as it is)."""
    return value.squeeze(0) if value.ndim else value


def _num_actions(action_space: str | TensorSpec | None, value_network: nn.Module) -> int | None:
    """The number of actions, read from an action spec or from a QValueActor's spec (``None`` if unknown)."""
    for spec in (action_space, getattr(value_network, "spec", None)):
        if spec is None or isinstance(spec, str):
            continue
        if "action" in getattr(spec, "keys", lambda: ())():
            spec = spec["action"]
        space = getattr(spec, "space", None)
        if space is not None and hasattr(space, "n"):
            return int(space.n)
    return None


def _box_bounds(spec: TensorSpec | None, key: NestedKey) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(low, high)`` of a bounded continuous action spec (or of its ``key`` entry), else ``None``."""
    if spec is None:
        return None
    if key in getattr(spec, "keys", lambda *a, **k: ())(True, True):
        spec = spec[key]
    space = getattr(spec, "space", None)
    low, high = getattr(space, "low", None), getattr(space, "high", None)
    if low is None or high is None or not spec.dtype.is_floating_point:
        return None
    return low, high


def _queue_box_check(policy: TensorDictModule, key: NestedKey, action: torch.Tensor, checks: list) -> None:
    """Queue the check that ``action`` lies inside the box of ``policy``'s action spec (when it has one): a
    tanh-Gaussian's log-prob clamps an action outside the box to its edge, a silently wrong number."""
    _queue_bounds_check(_box_bounds(getattr(policy, "spec", None), key), key, action, checks)


def _queue_bounds_check(
    bounds: tuple[torch.Tensor, torch.Tensor] | None, key: NestedKey, action: torch.Tensor, checks: list
) -> None:
    """Queue the check that ``action`` lies inside ``bounds = (low, high)`` (nothing when unknown): refused,
    never clamped (a critic trained outside the box learns values of actions never taken or sampled)."""
    if bounds is not None:
        low, high = (bound.to(action.device) for bound in bounds)
        outside = ~((action >= low) & (action <= high))  # NaN fails both comparisons: outside the box
        # The message is built only when the check fails: .tolist() here broke a compiled forward's graph, and its
        # resume function recompiled at every call until Dynamo's limit (the GPU check of 2026-11-26).
        checks.append((key, ~outside.any(), lambda: outside, lambda: f"inside the action box [{low.tolist()}, {high.tolist()}]"))


def _within(low: torch.Tensor, high: torch.Tensor, lower: float, upper: float) -> bool | torch.Tensor:
    """``lower <= low`` and ``high < upper`` (``low``, ``high``: 0-d tensors, e.g. of ``torch.aminmax``; NaN fails),
    a value check of :meth:`RegularizedLossBase._check`. On the CPU, outside ``torch.vmap``, it is decided on the
    host: two scalar reads cost a quarter of the three tensor ops of the comparison, and there is no device sync
    to save. Elsewhere it is a 0-d bool tensor, read with the other value checks in one sync."""
    if low.device.type == "cpu" and not torch._C._functorch.is_batchedtensor(low):
        return lower <= low.item() and high.item() < upper
    return (low >= lower) & (high < upper)


def one_hot_index(action: torch.Tensor) -> torch.Tensor:
    """The index of each one-hot row (last dim); bool rows too (TorchRL's ``OneHot.rand()`` draws bool), which
    ``argmax`` does not take."""
    return (action.to(torch.uint8) if action.dtype == torch.bool else action).argmax(-1)


def _check_discrete_action(
    loss: LossModule,
    action: torch.Tensor,
    key: NestedKey,
    num_actions: int | None,
    batch_shape: torch.Size,
    checks: list,
) -> None:
    """Refuse an action whose encoding does not match ``loss.action_space`` (naming both), and queue
    the value checks: indices in ``[0, num_actions)``, one-hot rows with exactly one 1."""
    name = type(loss).__name__
    batch_shape = list(batch_shape)
    shape = list(action.shape)
    if loss.action_space == "categorical":
        if shape not in (batch_shape, [*batch_shape, 1]):
            raise ValueError(
                f"{name} has action_space='categorical': {key!r} must hold action indices of shape {batch_shape} "
                f"or {[*batch_shape, 1]}; got shape {shape} (one-hot actions need action_space='one-hot')"
            )
        if action.is_floating_point() or action.dtype == torch.bool:
            raise TypeError(
                f"{name} has action_space='categorical' and reads {key!r} as integer action indices; got dtype "
                f"{action.dtype} (a float index would be truncated: cast exact indices with .long())"
            )
        if num_actions is not None:
            low, high = torch.aminmax(action)
            checks.append(
                (key, _within(low, high, 0, num_actions), lambda: (action < 0) | (action >= num_actions),
                 f"an action index in [0, {num_actions})")
            )
        return
    expected = [*batch_shape, num_actions if num_actions is not None else "num_actions"]
    if len(shape) != len(batch_shape) + 1 or shape[:-1] != batch_shape or (
        shape[-1] != num_actions if num_actions is not None else shape[-1] < 2
    ):
        raise ValueError(
            f"{name} has action_space='one-hot': {key!r} must hold one-hot actions of shape {expected}; got shape "
            f"{shape} (action indices need action_space='categorical')"
        )
    not_one_hot = ((action != 0) & (action != 1)).any(-1) | (action.sum(-1) != 1)
    checks.append((key, ~not_one_hot.any(), lambda: not_one_hot, MULTI_HOT_NOTE))
