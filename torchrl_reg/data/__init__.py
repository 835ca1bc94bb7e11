"""Replay-buffer storages for torchrl_reg."""
from __future__ import annotations

from torchrl_reg.data.frame_stack import FrameStackStorage, frame_stack_replay_buffer

__all__ = ["FrameStackStorage", "frame_stack_replay_buffer"]
