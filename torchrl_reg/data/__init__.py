"""Data for training: the collector and the replay buffer of a run, replay storages and n-step transforms.

* :mod:`~torchrl_reg.data.collector`: :func:`make_collector`;
* :mod:`~torchrl_reg.data.replay`: :func:`make_replay_buffer`, :func:`sample_minibatches`, :data:`TRANSITION_KEYS`;
* :mod:`~torchrl_reg.data.frame_stack`: :class:`FrameStackStorage` (each frame of stacked pixel observations stored once);
* :mod:`~torchrl_reg.data.multistep`: n-step returns.
"""
from __future__ import annotations

from torchrl_reg.data.collector import make_collector
from torchrl_reg.data.frame_stack import FrameStackStorage, frame_stack_replay_buffer
from torchrl_reg.data.multistep import MultiStep, MultiStepTransform, bootstrap_done_flags
from torchrl_reg.data.replay import TRANSITION_KEYS, ToDevice, make_replay_buffer, sample_minibatches

__all__ = [
    "FrameStackStorage",
    "MultiStep",
    "MultiStepTransform",
    "TRANSITION_KEYS",
    "ToDevice",
    "bootstrap_done_flags",
    "frame_stack_replay_buffer",
    "make_collector",
    "make_replay_buffer",
    "sample_minibatches",
]
