"""Frame-deduplicated replay storage for stacked pixel observations.

A stored Atari transition ``(s_t, a_t, r_t, s_{t+n})`` with 4-frame stacks of 84x84 frames
costs 2 x 4 x 7056 = 56 KB when both stacks are kept; consecutive transitions share 7 of
those 8 frames. :class:`FrameStackStorage` keeps every frame once, in a ring of frames, and
stores with each transition the ids of the frames of its two stacks; the stacks are rebuilt
when the transition is read. Everything else in the transition is kept as given.

It is a TorchRL :class:`~torchrl.data.replay_buffers.Storage`: any sampler (uniform,
:class:`~torchrl.data.PrioritizedSampler`), writer and buffer transform
(:class:`~torchrl.envs.transforms.MultiStepTransform`) works on top of it, and both the
transition rows and the frames live in TorchRL storages (in memory or memory-mapped).

How frames are matched to steps: transitions must arrive as consecutive steps of their
trajectories, in order (what collectors produce; several trajectories may interleave when
the data carries ``("collector", "traj_ids")``). Within a trajectory, step ``t``'s newest
frame is stored once; the stack of ``s_t`` is the frames of steps ``t-S+1..t``; steps before
the first one are padding, either the first frame (``padding="same"``: TorchRL's
``CatFrames``, gymnasium's ``FrameStackObservation``) or zeros (``padding="zeros"``: Dopamine).
The next observation is rebuilt from the frames of steps ``t+k-S+1..t+k`` with
``k = steps_to_next_obs`` (1 without the n-step transform), so the final observation of an
episode is kept too (one extra frame per episode). With ``validate=True`` (default) every
written transition is rebuilt and compared with what it was given, so a layout mismatch
(wrong padding, wrong stack size, steps out of order) raises at once instead of corrupting
the buffer.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.utils import NestedKey, unravel_key
from torchrl.data import TensorDictReplayBuffer
from torchrl.data.replay_buffers.samplers import Sampler
from torchrl.data.replay_buffers.storages import LazyMemmapStorage, LazyTensorStorage, Storage
from torchrl.envs.transforms import Transform

__all__ = ["FrameStackStorage", "frame_stack_replay_buffer"]

_FRAME_IDS = "_frame_ids"
_PADDINGS = ("same", "zeros")
_PAD = -1  # frame id of a zero frame


class _Lane:
    """Frame ids of the recent steps of one trajectory (step index -> frame id)."""

    __slots__ = ("t", "first", "ids", "after_done")

    def __init__(self, after_done: bool = False) -> None:
        self.after_done = after_done  # its next step starts an episode: the history must be padding
        self.t = 0
        self.first = _PAD  # id of the trajectory's first frame ("same" padding)
        self.ids: dict[int, int] = {}


class FrameStackStorage(Storage):
    """TorchRL storage that keeps each pixel frame of stacked observations once.

    Args:
        max_size: number of transitions.

    Keyword Args:
        pixel_key: the stacked observation key, ``[..., frame_stack, H, W]``; its ``("next", key)``
            counterpart is rebuilt too. Defaults to ``"observation"``.
        frame_stack: frames per stack (4 on Atari).
        padding: ``"same"`` (first frame repeated before an episode's start) or ``"zeros"``.
        frame_capacity: frames kept in the ring. Each transition owns one frame and each episode
            one more (its final observation); the default ``max_size + max_size // 32 + 1024``
            is enough as long as episodes average at least 32 steps (Atari episodes are hundreds
            to thousands of agent steps). Reading a transition whose frames were overwritten
            raises with this advice.
        storage: ``"tensor"`` (in memory, :class:`~torchrl.data.LazyTensorStorage`) or ``"memmap"``
            (:class:`~torchrl.data.LazyMemmapStorage`).
        scratch_dir: directory for the memory-mapped files (``storage="memmap"``); a temporary
            directory when omitted.
        device: device of the stored tensors. Defaults to ``"cpu"``.
        traj_key: trajectory id key used to follow interleaved trajectories (written by TorchRL
            collectors with ``track_traj_ids=True``).
        num_envs: when the data has no trajectory ids, each written batch is read as ``num_envs``
            equal blocks of consecutive steps, one per env: a collector batch ``[num_envs, T]``
            flattened with ``data.reshape(-1)``. With several envs and
            ``MultiStepTransform``, keep the trajectory ids (the transform needs one env per row).
        steps_to_next_obs_key: the n-step horizon written by ``MultiStepTransform``.
        done_key: end-of-trajectory flag, read under ``"next"``.
        validate: rebuild every written transition and compare it with its input.

    Examples:
        >>> from torchrl.data import TensorDictReplayBuffer, PrioritizedSampler
        >>> from torchrl.envs import MultiStepTransform
        >>> rb = TensorDictReplayBuffer(
        ...     storage=FrameStackStorage(1_000_000, frame_stack=4),
        ...     sampler=PrioritizedSampler(1_000_000, alpha=0.5, beta=0.4),
        ...     transform=MultiStepTransform(n_steps=3, gamma=0.99),
        ...     batch_size=32,
        ...     collate_fn=lambda batch: batch,  # TorchRL has no default collate for a custom storage
        ... )
        >>> rb.extend(collector_batch)  # doctest: +SKIP
        >>> batch = rb.sample()  # stacks of s_t and s_{t+n} rebuilt  # doctest: +SKIP
    """

    def __init__(
        self,
        max_size: int,
        *,
        pixel_key: NestedKey = "observation",
        frame_stack: int = 4,
        padding: str = "same",
        frame_capacity: int | None = None,
        storage: str = "tensor",
        scratch_dir: str | os.PathLike | None = None,
        device: torch.device | str = "cpu",
        traj_key: NestedKey | None = ("collector", "traj_ids"),
        num_envs: int = 1,
        steps_to_next_obs_key: NestedKey = "steps_to_next_obs",
        done_key: NestedKey = "done",
        validate: bool = True,
    ) -> None:
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
            raise ValueError(f"max_size must be an integer >= 1, got max_size={max_size!r}")
        if isinstance(frame_stack, bool) or not isinstance(frame_stack, int) or frame_stack < 1:
            raise ValueError(f"frame_stack must be an integer >= 1, got frame_stack={frame_stack!r}")
        if padding not in _PADDINGS:
            raise ValueError(f"padding must be one of {_PADDINGS}, got padding={padding!r}")
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be an integer >= 1, got num_envs={num_envs!r}")
        if storage not in ("tensor", "memmap"):
            raise ValueError(f"storage must be 'tensor' or 'memmap', got storage={storage!r}")
        if frame_capacity is None:
            frame_capacity = max_size + max_size // 32 + 1024
        if isinstance(frame_capacity, bool) or not isinstance(frame_capacity, int) or frame_capacity < max_size + frame_stack:
            raise ValueError(
                f"frame_capacity must be an integer >= max_size + frame_stack = {max_size + frame_stack}, "
                f"got frame_capacity={frame_capacity!r}"
            )
        super().__init__(max_size)
        self.pixel_key = unravel_key(pixel_key)
        self.next_pixel_key = unravel_key(("next", pixel_key))
        self.frame_stack = frame_stack
        self.padding = padding
        self.frame_capacity = frame_capacity
        self.device = torch.device(device)
        self.traj_key = None if traj_key is None else unravel_key(traj_key)
        self.num_envs = num_envs
        self.steps_to_next_obs_key = unravel_key(steps_to_next_obs_key)
        self.done_key = unravel_key(("next", done_key))
        self.validate = validate
        self.storage_kind = storage
        if storage == "memmap":
            rows_dir = frames_dir = None
            if scratch_dir is not None:
                rows_dir, frames_dir = os.path.join(scratch_dir, "rows"), os.path.join(scratch_dir, "frames")
            self._rows = LazyMemmapStorage(max_size, scratch_dir=rows_dir, device=self.device)
            self._frames = LazyMemmapStorage(frame_capacity, scratch_dir=frames_dir, device=self.device)
        else:
            self._rows = LazyTensorStorage(max_size, device=self.device)
            self._frames = LazyTensorStorage(frame_capacity, device=self.device)
        self._frames_written = 0
        self._frame_shape: tuple[int, int] | None = None
        self._lanes: dict[int, _Lane] = {}

    # ------------------------------------------------------------------ Storage API

    def __len__(self) -> int:
        return len(self._rows)

    def set(self, cursor: int | Sequence[int] | torch.Tensor | slice, data: TensorDictBase, *, set_cursor: bool = True) -> None:
        if not isinstance(data, TensorDictBase):
            raise TypeError(f"FrameStackStorage stores TensorDicts, got {type(data).__name__}")
        if data.batch_dims == 0:
            data = data.unsqueeze(0)
            if isinstance(cursor, int):
                cursor = [cursor]
        if data.batch_dims != 1:
            raise ValueError(
                f"FrameStackStorage takes a flat batch of consecutive steps [T], got batch_size={tuple(data.batch_size)}; "
                "reshape collector data with data.reshape(-1) (trajectories are told apart by their traj ids)"
            )
        obs = data.get(self.pixel_key)
        next_obs = data.get(self.next_pixel_key)
        self._check_pixels(obs)
        self._check_pixels(next_obs)
        frame_ids = self._assign_frames(data, obs, next_obs)
        rows = data.exclude(self.pixel_key, self.next_pixel_key)
        rows.set(_FRAME_IDS, frame_ids)
        self._rows.set(cursor, rows, set_cursor=set_cursor)
        if self.validate:
            rebuilt_obs, rebuilt_next = self._stacks(frame_ids)
            for name, given, rebuilt in (("observation", obs, rebuilt_obs), ("next observation", next_obs, rebuilt_next)):
                bad = (given.to(self.device) != rebuilt).flatten(1).any(-1)
                if bad.any():
                    row = int(bad.nonzero()[0])
                    raise ValueError(
                        f"FrameStackStorage: the {name} of step {row} of this batch is not the stack of the "
                        f"previous frames of its trajectory with padding={self.padding!r}. It needs consecutive "
                        "steps of each trajectory in order (as collectors produce them; pass traj ids under "
                        f"{self.traj_key} when trajectories interleave), frame_stack={self.frame_stack} and the "
                        "padding the environment uses ('same' repeats the first frame, 'zeros' pads with zeros)."
                    )

    def get(self, index: int | Sequence[int] | torch.Tensor | slice) -> TensorDictBase:
        rows = self._rows.get(index)
        frame_ids = rows.get(_FRAME_IDS)
        # A fresh (unlocked) structure: memory-mapped storages hand out locked tensordicts.
        rows = rows.exclude(_FRAME_IDS).clone(recurse=False)
        obs, next_obs = self._stacks(frame_ids)
        rows.set(self.pixel_key, obs)
        rows.set(self.next_pixel_key, next_obs)
        return rows

    def state_dict(self) -> dict[str, Any]:
        return {
            "rows": self._rows.state_dict(),
            "frames": self._frames.state_dict(),
            "meta": self._meta(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._rows.load_state_dict(state_dict["rows"])
        self._frames.load_state_dict(state_dict["frames"])
        self._load_meta(state_dict["meta"])

    def dumps(self, path: str | os.PathLike) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self._rows.dumps(path / "rows")
        self._frames.dumps(path / "frames")
        (path / "frame_stack.json").write_text(json.dumps(self._meta()))

    def loads(self, path: str | os.PathLike) -> None:
        path = Path(path)
        self._rows.loads(path / "rows")
        self._frames.loads(path / "frames")
        self._load_meta(json.loads((path / "frame_stack.json").read_text()))
        self._bump_mutation_revision()

    def _empty(self) -> None:
        self._rows._empty()
        self._frames._empty()
        self._frames_written = 0
        self._frame_shape = None
        self._lanes = {}

    # ------------------------------------------------------------------ memory accounting

    def nbytes(self) -> int:
        """Bytes held by the transition rows and the frame ring (allocated capacity)."""
        total = 0
        for storage in (self._rows, self._frames):
            if storage.initialized:
                content = storage._storage
                if isinstance(content, torch.Tensor):
                    total += content.numel() * content.element_size()
                else:
                    total += sum(t.numel() * t.element_size() for t in content.values(True, True))
        return total

    # ------------------------------------------------------------------ internals

    def _check_pixels(self, pixels: torch.Tensor) -> None:
        if pixels.ndim != 4 or pixels.shape[1] != self.frame_stack:
            raise ValueError(
                f"FrameStackStorage(frame_stack={self.frame_stack}) expects {self.pixel_key} of shape "
                f"[T, {self.frame_stack}, height, width], got {tuple(pixels.shape)}"
            )
        frame_shape = tuple(pixels.shape[2:])
        if self._frame_shape is None:
            self._frame_shape = frame_shape
        elif frame_shape != self._frame_shape:
            raise ValueError(f"frame size changed from {self._frame_shape} to {frame_shape}")

    def _new_frame(self, frame: torch.Tensor, pending: list[torch.Tensor]) -> int:
        frame_id = self._frames_written + len(pending)
        pending.append(frame)
        return frame_id

    def _history_is_padding(self, stack: torch.Tensor) -> bool:
        history = stack[:-1]
        if self.padding == "zeros":
            return not history.any()
        return bool((history == stack[-1]).all())

    def _assign_frames(self, data: TensorDictBase, obs: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """Frame ids ``[T, 2S]`` of every step's two stacks; writes the frames not yet stored."""
        steps, stack = obs.shape[0], self.frame_stack
        traj = data.get(self.traj_key, None) if self.traj_key is not None else None
        if traj is None:
            if steps % self.num_envs:
                raise ValueError(
                    f"FrameStackStorage(num_envs={self.num_envs}) got a batch of {steps} steps without trajectory "
                    f"ids under {self.traj_key}; it must hold num_envs blocks of equal length (data.reshape(-1) "
                    "of a [num_envs, T] collector batch)"
                )
            block = steps // self.num_envs
            traj = [r // block for r in range(steps)]
            lanes_persist = True
        else:
            traj = traj.reshape(steps).tolist()
            lanes_persist = False
        horizon = data.get(self.steps_to_next_obs_key, None)
        horizon = [1] * steps if horizon is None else horizon.reshape(steps).tolist()
        done = data.get(self.done_key, None)
        done = [False] * steps if done is None else done.reshape(steps).tolist()
        pending: list[torch.Tensor] = []
        ids = torch.empty(steps, 2 * stack, dtype=torch.long)
        for r in range(steps):
            lane = self._lanes.get(traj[r])
            if lane is None:
                lane = self._lanes[traj[r]] = _Lane()
            if lane.t == 0 and 0 not in lane.ids:
                lane.first = lane.ids[0] = self._new_frame(obs[r, -1], pending)
                if not self._history_is_padding(obs[r]):
                    if lane.after_done:
                        raise ValueError(
                            f"FrameStackStorage: step {r} of this batch starts an episode but its stack is not "
                            f"padded with padding={self.padding!r}; pass the padding the environment uses "
                            "('same' repeats the first frame, 'zeros' pads with zeros)"
                        )
                    # A trajectory caught mid-episode has real frames where padding would be.
                    for j in range(stack - 1):
                        lane.ids[j - stack + 1] = self._new_frame(obs[r, j], pending)
            t, k = lane.t, int(horizon[r])
            if t not in lane.ids:
                lane.ids[t] = self._new_frame(obs[r, -1], pending)
            # Frames of s_{t+k} not seen yet (beyond t+k-S+1 they are not in this stack).
            for u in range(max(t + 1, t + k - stack + 1), t + k + 1):
                if u not in lane.ids:
                    lane.ids[u] = self._new_frame(next_obs[r, u - t - k + stack - 1], pending)
            first = lane.first if self.padding == "same" else _PAD
            ids[r, :stack] = torch.tensor([lane.ids.get(u, first) for u in range(t - stack + 1, t + 1)])
            ids[r, stack:] = torch.tensor([lane.ids.get(u, first) for u in range(t + k - stack + 1, t + k + 1)])
            if done[r] and lanes_persist:
                self._lanes[traj[r]] = _Lane(after_done=True)
            elif done[r]:
                del self._lanes[traj[r]]
            else:
                lane.t = t + 1
                lane.ids.pop(t - stack + 1, None)
        if pending:
            slots = torch.arange(self._frames_written, self._frames_written + len(pending)) % self.frame_capacity
            frames = torch.stack(pending).to(self.device)
            self._frames.set(slots, TensorDict({"frame": frames}, batch_size=[len(pending)]))
            self._frames_written += len(pending)
        return ids

    def _stacks(self, frame_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rebuild ``(obs, next_obs)`` stacks ``[..., S, H, W]`` from frame ids ``[..., 2S]``."""
        oldest_live = self._frames_written - self.frame_capacity
        real = frame_ids != _PAD
        if (frame_ids[real] < oldest_live).any():
            raise RuntimeError(
                "FrameStackStorage: some sampled transitions refer to frames that were overwritten; the frame "
                f"ring (frame_capacity={self.frame_capacity}) is too small for episodes this short. Build the "
                "storage with a larger frame_capacity (max_size * (1 + 1 / shortest mean episode length))."
            )
        slots = torch.where(real, frame_ids, 0).remainder(self.frame_capacity)
        frames = self._frames.get(slots.reshape(-1).to(self.device)).get("frame")
        frames = frames.reshape(*frame_ids.shape, *frames.shape[1:])
        if not real.all():
            frames = frames * real.to(self.device).reshape(*real.shape, 1, 1).to(frames.dtype)
        stack = self.frame_stack
        return frames[..., :stack, :, :], frames[..., stack:, :, :]

    def _meta(self) -> dict[str, Any]:
        return {
            "frames_written": self._frames_written,
            "frame_shape": None if self._frame_shape is None else list(self._frame_shape),
            "lanes": {
                str(k): [lane.t, lane.first, lane.after_done, sorted(lane.ids.items())] for k, lane in self._lanes.items()
            },
        }

    def _load_meta(self, meta: dict[str, Any]) -> None:
        self._frames_written = int(meta["frames_written"])
        self._frame_shape = None if meta["frame_shape"] is None else tuple(meta["frame_shape"])
        self._lanes = {}
        for key, (t, first, after_done, ids) in meta["lanes"].items():
            lane = _Lane(bool(after_done))
            lane.t, lane.first = int(t), int(first)
            lane.ids = {int(u): int(i) for u, i in ids}
            self._lanes[int(key)] = lane


def _identity(batch: TensorDictBase) -> TensorDictBase:
    return batch


def frame_stack_replay_buffer(
    max_size: int,
    *,
    batch_size: int | None = None,
    sampler: Sampler | None = None,
    transform: Transform | None = None,
    priority_key: NestedKey = "td_error",
    **storage_kwargs: Any,
) -> TensorDictReplayBuffer:
    """A :class:`~torchrl.data.TensorDictReplayBuffer` on a :class:`FrameStackStorage`.

    ``storage_kwargs`` go to :class:`FrameStackStorage`; ``sampler`` (uniform when omitted, or a
    :class:`~torchrl.data.PrioritizedSampler`) and ``transform`` (e.g.
    :class:`~torchrl.envs.transforms.MultiStepTransform`) to the buffer.
    """
    return TensorDictReplayBuffer(
        storage=FrameStackStorage(max_size, **storage_kwargs),
        sampler=sampler,
        transform=transform,
        batch_size=batch_size,
        priority_key=priority_key,
        collate_fn=_identity,
    )
