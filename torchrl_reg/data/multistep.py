"""n-step returns whose done flags belong to the state they bootstrap from.

TorchRL's :class:`~torchrl.data.MultiStep` (on collector batches) and
:class:`~torchrl.envs.transforms.MultiStepTransform` (on a replay buffer) move every
``("next", ...)`` entry of step ``t`` to step ``t + k - 1`` (``k = steps_to_next_obs``) and sum
the ``k`` rewards, but leave the done flags (``done``, ``terminated``, ``truncated``) at step
``t``'s values. A window that ends on a termination then pairs the terminal next observation
with ``terminated = False``, and every TD target built from it bootstraps from the terminal state
(measured on CartPole-v1 with ``n_steps=3``: the two steps before each termination). The classes
here are those transforms with one change: the done flags of a row are the flags of the step
whose next observation the row now holds, so that ``terminated`` cuts the bootstrap exactly
when the ``k``-step return reached a terminal state, and ``truncated`` never does.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey
from torchrl.data import MultiStep as _TorchRLMultiStep
from torchrl.envs.transforms import MultiStepTransform as _TorchRLMultiStepTransform

__all__ = ["MultiStep", "MultiStepTransform", "bootstrap_done_flags"]


def bootstrap_done_flags(
    out: TensorDictBase,
    source: TensorDictBase,
    done_keys: Iterable[NestedKey],
    steps_key: NestedKey = "steps_to_next_obs",
) -> TensorDictBase:
    """Set ``out``'s ``("next", flag)`` entries to ``source``'s flags at step ``t + k - 1``.

    ``source`` is the one-step data (time last) that ``out`` was computed from, row for row:
    ``out[..., t]`` came from ``source[..., t]`` and its ``steps_to_next_obs`` is ``k``.
    ``source`` may be longer than ``out`` along time (a replay-buffer transform keeps its last
    steps for the next call). Returns ``out``, modified in place.
    """
    *batch, horizon = out.batch_size
    time_dim = len(batch)
    steps = out.get(steps_key).reshape(*batch, horizon).long()
    index = torch.arange(horizon, device=steps.device) + steps - 1
    for key in done_keys:
        flags = source.get(("next", key), None)
        if flags is None:
            continue
        flag_index = index.reshape(*index.shape, *[1] * (flags.ndim - time_dim - 1)).expand(
            *batch, horizon, *flags.shape[time_dim + 1 :]
        )
        out.set(("next", key), flags.gather(time_dim, flag_index))
    return out


class MultiStep(_TorchRLMultiStep):
    """TorchRL's :class:`~torchrl.data.MultiStep` with the done flags of the bootstrap state.

    Same arguments and outputs (summed rewards, ``steps_to_next_obs``, ``gamma``, ``nonterminal``);
    ``("next", "done" | "terminated" | "truncated")`` of each row are those of the step whose
    next observation the row bootstraps from (see the module docstring). Apply it to collector
    batches (time last) before they are stored.
    """

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        return bootstrap_done_flags(super().forward(tensordict), tensordict, self.done_keys)


class MultiStepTransform(_TorchRLMultiStepTransform):
    """TorchRL's :class:`~torchrl.envs.transforms.MultiStepTransform` (a replay-buffer transform)
    with the done flags of the bootstrap state, as :class:`MultiStep`."""

    def _inv_call(self, tensordict: TensorDictBase) -> TensorDictBase:
        # The steps that the parent carries over from the previous call come first in its window.
        previous = self._buffer
        out = super()._inv_call(tensordict)
        if out is None:
            return out
        source = tensordict if previous is None else torch.cat([previous, tensordict], -1)
        return bootstrap_done_flags(out, source, self.done_keys)
