"""State torsos shared by the value networks: observations -> features ``[*batch, out_features]``.

* :class:`NatureCNNTorso`: the Nature-DQN convolutions (Mnih et al., "Human-level control through deep
  reinforcement learning", Nature 518, 2015), the Atari torso of DQN, M-DQN, IQN and M-IQN.
* :class:`MinAtarTorso`: the MinAtar torso of Revisiting Rainbow (Obando-Ceron & Castro, "Revisiting
  Rainbow: Promoting more Insightful and Inclusive Deep Reinforcement Learning Research", ICML 2021,
  arXiv:2011.14826; MinAtar: Young & Tian 2019, arXiv:1903.03176), one ``Conv(16, 3x3, stride 1)``
  with Flax's default ``SAME`` padding (its ``networks_new.py``, ``net_conf='minatar'``), so a 10x10
  grid gives 1,600 features.

Each torso has ``out_features``, so a head (:class:`~torchrl_reg.modules.q_networks.QNetwork`,
:class:`~torchrl_reg.modules.iqn.ImplicitQuantileNetwork`) is sized without a dummy forward pass.
"""
from __future__ import annotations

import torch
from torch import nn

from torchrl_reg.validation import check_count

__all__ = ["MinAtarTorso", "NatureCNNTorso"]


class MinAtarTorso(nn.Module):
    """Revisiting Rainbow's MinAtar torso: ``Conv(16, 3x3, stride 1, same padding) -> ReLU -> flatten``.

    Takes channels-first MinAtar grids ``[..., channels, height, width]`` (what the recipes' MinAtar
    envs emit; any dtype) and returns ``[..., 16 * height * width]``. Flax's default "SAME"
    padding keeps the 10x10 grid (1600 features).
    """

    def __init__(self, in_channels: int, height: int = 10, width: int = 10) -> None:
        super().__init__()
        self.obs_shape = (
            check_count("in_channels", in_channels),
            check_count("height", height),
            check_count("width", width),
        )
        self.conv = nn.Conv2d(in_channels, 16, kernel_size=3, stride=1, padding=1)
        self.out_features = 16 * height * width

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        batch_shape = _check_obs_shape(obs, self.obs_shape, "MinAtarTorso", "[..., channels, height, width]")
        x = obs.reshape(-1, *self.obs_shape).to(self.conv.weight.dtype)
        return torch.relu(self.conv(x)).reshape(*batch_shape, self.out_features)


def _conv_out(size: int, kernel: int, stride: int) -> int:
    return (size - kernel) // stride + 1


class NatureCNNTorso(nn.Module):
    """Nature-DQN convolutional torso (Mnih et al. 2015), as used by IQN and M-IQN on Atari.

    ``Conv(32, 8x8, /4) -> ReLU -> Conv(64, 4x4, /2) -> ReLU -> Conv(64, 3x3, /1) -> ReLU -> flatten``
    on stacked frames ``[..., frame_stack, height, width]`` (uint8 pixels are scaled by 1/255).
    Frames must be at least 36x36 (84x84 gives 3136 features).
    """

    MIN_FRAME_SIZE = 36

    def __init__(self, frame_stack: int = 4, frame_size: tuple[int, int] = (84, 84)) -> None:
        super().__init__()
        check_count("frame_stack", frame_stack)
        height, width = (int(s) for s in frame_size)
        if min(height, width) < self.MIN_FRAME_SIZE:
            raise ValueError(
                f"NatureCNNTorso needs frames of at least {self.MIN_FRAME_SIZE}x{self.MIN_FRAME_SIZE} "
                f"(its three convolutions leave no feature map otherwise), got frame_size={tuple(frame_size)}"
            )
        self.obs_shape = (frame_stack, height, width)
        self.convs = nn.Sequential(
            nn.Conv2d(frame_stack, 32, kernel_size=8, stride=4),
            nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=4, stride=2),
            nn.ReLU(),
            nn.Conv2d(64, 64, kernel_size=3, stride=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        h = _conv_out(_conv_out(_conv_out(height, 8, 4), 4, 2), 3, 1)
        w = _conv_out(_conv_out(_conv_out(width, 8, 4), 4, 2), 3, 1)
        self.out_features = 64 * h * w

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        batch_shape = _check_obs_shape(obs, self.obs_shape, "NatureCNNTorso", "[..., frame_stack, height, width]")
        x = obs.reshape(-1, *self.obs_shape)
        x = x.to(torch.float32) / 255.0 if x.dtype == torch.uint8 else x.to(torch.float32)
        return self.convs(x).reshape(*batch_shape, self.out_features)


def _check_obs_shape(obs: torch.Tensor, obs_shape: tuple[int, ...], who: str, layout: str) -> torch.Size:
    n = len(obs_shape)
    if obs.ndim < n or tuple(obs.shape[obs.ndim - n :]) != obs_shape:
        raise ValueError(
            f"{who} was built for observations {layout} = {obs_shape}, got a tensor of shape "
            f"{tuple(obs.shape)}; rebuild the torso with the environment's frame size and stack size"
        )
    return obs.shape[: obs.ndim - n]
