"""ALE v5 games with the Machado et al. (2018) / Dopamine preprocessing: sticky actions, frame skip with a
max-pool over the last two frames, grayscale, area resize (Revisiting the Arcade Learning Environment, JAIR 2018,
arXiv:1709.06009)."""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from torchrl_reg.envs.state import layer_states, load_layer_states

__all__ = ["AtariPreprocessing"]


def _area_resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Row-stochastic ``(n_out, n_in)`` matrix averaging input pixels by overlap (OpenCV's INTER_AREA)."""
    scale = n_in / n_out
    w = np.zeros((n_out, n_in), dtype=np.float32)
    for i in range(n_out):
        lo, hi = i * scale, (i + 1) * scale
        for j in range(int(np.floor(lo)), min(int(np.ceil(hi)), n_in)):
            w[i, j] = min(hi, j + 1) - max(lo, j)
    return w / scale


def _area_resize_taps(n_in: int, n_out: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`_area_resize_matrix` as a few taps per output pixel: tap ``k`` of every output pixel is one
    pair (input indices ``(n_out,)``, weights ``(n_out, 1)``); a pixel with fewer taps has weight 0 on
    index 0. 210 -> 84 and 160 -> 84 need 3 taps each."""
    matrix = _area_resize_matrix(n_in, n_out)
    taps = int((matrix > 0).sum(1).max())
    index = np.zeros((taps, n_out), dtype=np.intp)
    weight = np.zeros((taps, n_out, 1), dtype=np.float32)
    for i, row in enumerate(matrix):
        nonzero = np.flatnonzero(row)
        index[: len(nonzero), i] = nonzero
        weight[: len(nonzero), i, 0] = row[nonzero]
    return list(zip(index, weight))


def _weighted_rows(x: np.ndarray, taps: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """``sum_k weight_k * x[index_k]``: each output row a weighted sum of a few rows of ``x``."""
    (index, weight), *rest = taps
    out = x[index] * weight
    for index, weight in rest:
        out += x[index] * weight
    return out


def _area_resize(frame: np.ndarray, rows: list[tuple[np.ndarray, np.ndarray]], cols: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Area resize of a ``(H, W)`` float32 frame with the taps of :func:`_area_resize_taps`, rounded to uint8.

    Weighted sums of gathered rows, then of gathered columns: elementwise numpy, no BLAS. As a
    matmul (``rows @ frame @ cols``) the resize ran on numpy's BLAS thread pool, whose threads
    (one per core unless ``OPENBLAS_NUM_THREADS`` is set before numpy loads, which a recipe cannot
    ensure) made a frame up to ~200x slower on a busy machine (measured: 63 ms with two BLAS threads
    sharing one core, against 0.27 ms with one thread).
    """
    resized_rows = np.ascontiguousarray(_weighted_rows(frame, rows).T)  # columns as rows: contiguous gathers
    return np.rint(_weighted_rows(resized_rows, cols).T).astype(np.uint8)


class AtariPreprocessing(gym.Wrapper):
    """ALE v5 env with Dopamine's preprocessing (Machado et al. 2018 protocol).

    Frame skip ``frame_skip`` with the max of the last two raw frames (removes flicker), rewards
    summed over the skipped frames, grayscale, area resize to ``screen_size`` x ``screen_size``.
    Sticky actions are ALE's own (``repeat_action_probability``), applied at every raw frame.

    :meth:`plain_state` saves the emulator with its RNG (``cloneState(include_rng=True)``, serialized
    by ALE itself into a uint8 tensor), because the ALE object has no state of its own that
    Python can copy; this is what lets a checkpoint resume an Atari run exactly.
    """

    def __init__(self, env_id: str, *, sticky_action_prob: float = 0.25, frame_skip: int = 4, screen_size: int = 84):
        import ale_py

        gym.register_envs(ale_py)
        self._kwargs = dict(
            env_id=env_id, sticky_action_prob=sticky_action_prob, frame_skip=frame_skip, screen_size=screen_size
        )
        env = gym.make(
            env_id,
            frameskip=1,
            repeat_action_probability=sticky_action_prob,
            full_action_space=False,
            obs_type="grayscale",
            max_num_frames_per_episode=None,
            disable_env_checker=True,
        )
        super().__init__(env)
        self.frame_skip = frame_skip
        self.screen_size = screen_size
        h, w = env.observation_space.shape
        self._rows = _area_resize_taps(h, screen_size)
        self._cols = _area_resize_taps(w, screen_size)
        self._buffer = np.zeros((2, h, w), dtype=np.uint8)
        self.observation_space = gym.spaces.Box(0, 255, (screen_size, screen_size), dtype=np.uint8)

    def resize(self, frame: np.ndarray) -> np.ndarray:
        """The observation of a max-pooled ``(H, W)`` float32 frame: its area resize (OpenCV's INTER_AREA, as
        Dopamine's ``cv2.resize``) to ``(screen_size, screen_size)``, rounded to uint8. Elementwise numpy (a few
        weighted rows per output pixel), no BLAS. A subclass may override it for another resize."""
        return _area_resize(frame, self._rows, self._cols)

    def _observation(self) -> np.ndarray:
        return self.resize(np.maximum(self._buffer[0], self._buffer[1]).astype(np.float32))

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict]:
        obs, info = self.env.reset(**kwargs)
        self._buffer[0] = obs
        self._buffer[1] = obs
        return self._observation(), info

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        total = 0.0
        terminated = truncated = False
        info: dict = {}
        for i in range(self.frame_skip):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if i >= self.frame_skip - 2:
                self._buffer[i - (self.frame_skip - 2)] = obs
            if terminated or truncated:
                # The pool then holds the last frame twice (Dopamine does the same).
                self._buffer[0] = self._buffer[1] = obs
                break
        return self._observation(), total, terminated, truncated, info

    def plain_state(self) -> dict[str, Any]:
        """The emulator (ALE's own serialization, its RNG included) as a uint8 tensor and the pooling buffer."""
        serialized = self.env.unwrapped.ale.cloneState(include_rng=True).serialize()
        return {
            "ale": torch.frombuffer(bytearray(serialized), dtype=torch.uint8),
            "buffer": torch.from_numpy(self._buffer.copy()),
        }

    def load_plain_state(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`plain_state`, through ALE's ``restoreState`` (no unpickling)."""
        import ale_py

        self.env.unwrapped.ale.restoreState(ale_py.ALEState(state["ale"].numpy().tobytes()))
        self._buffer[:] = state["buffer"].numpy()

    def __getstate__(self) -> dict:
        return {"kwargs": self._kwargs, "layers": layer_states(self)}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state["kwargs"])
        self.env.reset()
        load_layer_states(self, state["layers"], "env")
