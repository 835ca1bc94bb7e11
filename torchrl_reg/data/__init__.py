"""Replay-buffer storages and n-step transforms for torchrl_reg."""
from __future__ import annotations

from torchrl_reg.data.frame_stack import FrameStackStorage, frame_stack_replay_buffer
from torchrl_reg.data.multistep import MultiStep, MultiStepTransform, bootstrap_done_flags

__all__ = ["FrameStackStorage", "MultiStep", "MultiStepTransform", "bootstrap_done_flags", "frame_stack_replay_buffer"]
