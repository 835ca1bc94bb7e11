"""What the gradient step (:func:`~torchrl_reg.objectives.make_update`) and the training loops of
:mod:`torchrl_reg.loops` need from a loss beyond TorchRL's ``LossModule``, as two ``typing.Protocol`` s.

Any TorchRL loss runs on the generic update (``loss(batch)``, the sum of its ``loss*`` terms
differentiated, as TorchRL's trainers do). A loss that also satisfies

* :class:`FusableLoss` gets the fused compiled step (:class:`~torchrl_reg.objectives.FusedAdamUpdate`:
  gradient and Adam in one graph); every loss of this library built on
  :class:`~torchrl_reg.objectives.RegularizedLossBase` does, unless it says ``fusable_update = False``;
* :class:`InputChecks` has each collected transition checked once, before the replay buffer, instead of
  each sampled minibatch at every update (the loops call ``check_inputs`` and build the update with
  ``inputs_checked=True``).

Both are checked structurally (``isinstance`` on a loss, :func:`protocol_gaps` on a class): a loss need
not inherit from them. The loss registry (:func:`torchrl_reg.loops.register_loss`) refuses a loss whose
declared ``fused_update`` does not match :func:`protocol_gaps` of :class:`FusableLoss`.
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

import torch
from tensordict import TensorDictBase

__all__ = ["FusableLoss", "InputChecks", "protocol_gaps"]


@runtime_checkable
class FusableLoss(Protocol):
    """A loss whose update :func:`~torchrl_reg.objectives.make_update` can fuse into one compiled graph.

    * ``loss_and_outputs(batch, params) -> (loss, priority, diagnostics)``: the loss as a pure function
      of the online parameters ``params`` (it reads no online parameter from the module and writes
      nothing to ``batch``), the per-sample priority that ``forward`` writes in place, and the detached
      diagnostics;
    * ``fusable_update``: ``True`` when ``loss_and_outputs`` traces into one graph (no ``.item()``, no
      data-dependent Python branch); a loss that has ``loss_and_outputs`` but cannot be traced says
      ``False`` (VIREL's temperature, soft Q-learning's sampler).

    Optional, read when present: ``fused_params`` (the parameters it differentiates; default
    ``value_network_params``), ``check_batch(batch, *, layout, inputs)`` (the checks that need a value
    of the batch, run eagerly before the compiled step) and ``flat_fused_params = True`` (``params`` used
    only as ``params[name]`` and ``params.to_module(module)``: the fused update then passes a stand-in
    over a flat tuple of tensors, which traces about twice as fast).
    """

    fusable_update: bool

    def loss_and_outputs(
        self, batch: TensorDictBase, params: TensorDictBase
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]: ...


@runtime_checkable
class InputChecks(Protocol):
    """A loss that checks transitions once, before they enter a replay buffer.

    * ``check_inputs(transitions)``: the checks of the transitions' own values and layout (actions
      against the action space, NaN/inf values with ``check_finite``), not of the priority weights,
      which come with each sample;
    * ``inputs_checked()``: a context in which ``forward`` skips those checks (the eager update of
      ``make_update(..., inputs_checked=True)`` runs the loss inside it).
    """

    def check_inputs(self, transitions: TensorDictBase) -> None: ...

    def inputs_checked(self) -> AbstractContextManager[None]: ...


def protocol_gaps(loss: object, protocol: type) -> list[str]:
    """Why ``loss`` (a loss class or instance) does not satisfy ``protocol``, one phrase each, e.g.
    ``"has no loss_and_outputs"`` (empty: it does). A :class:`FusableLoss` must also say
    ``fusable_update = True``: the attribute alone only declares whether it traces."""
    members = [name for name in (*vars(protocol), *vars(protocol).get("__annotations__", {})) if not name.startswith("_")]
    gaps = [f"has no {name}" for name in dict.fromkeys(members) if not hasattr(loss, name)]
    if protocol is FusableLoss and not gaps and loss.fusable_update is not True:
        gaps.append(f"does not trace into one graph (fusable_update={loss.fusable_update!r})")
    return gaps
