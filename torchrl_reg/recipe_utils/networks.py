"""Q-network bodies of the published set-ups, mapping an observation batch to one value per action."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from torchrl_reg.recipe_utils.config import NETWORKS, check_choice

__all__ = ["MLPQNet", "MinAtarQNet", "NatureQNet", "make_q_network"]


class MLPQNet(nn.Sequential):
    """Fully connected ReLU network; ``hidden=(120, 84)`` is CleanRL's classic-control DQN."""

    def __init__(self, obs_dim: int, num_actions: int, hidden: Sequence[int] = (120, 84)):
        layers: list[nn.Module] = []
        width = obs_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, num_actions))
        super().__init__(*layers)


class MinAtarQNet(nn.Module):
    """MinAtar network (Young & Tian 2019; Revisiting Rainbow): Conv(16, 3x3, stride 1) -> ReLU -> linear.

    Input: ``(..., C, 10, 10)`` 0/1 grid (any dtype).
    """

    def __init__(self, in_channels: int, num_actions: int, grid: int = 10):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 16, kernel_size=3, stride=1)
        self.head = nn.Linear(16 * (grid - 2) ** 2, num_actions)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        batch = obs.shape[:-3]
        x = torch.relu(self.conv(obs.reshape(-1, *obs.shape[-3:]).float()))
        return self.head(x.flatten(1)).reshape(*batch, -1)


class NatureQNet(nn.Module):
    """Nature DQN network (Mnih et al. 2015), used by Dopamine's M-DQN: 3 convs, 512 hidden units.

    Input: ``(..., frames, 84, 84)`` ``uint8`` pixels, scaled to [0, 1] here so that the replay
    buffer can keep bytes.
    """

    def __init__(self, in_channels: int, num_actions: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, 32, 8, stride=4),
            nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, 512),
            nn.ReLU(),
            nn.Linear(512, num_actions),
        )

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        batch = obs.shape[:-3]
        x = obs.reshape(-1, *obs.shape[-3:]).float() / 255.0
        return self.body(x).reshape(*batch, -1)


def make_q_network(cfg: Any, obs_shape: Sequence[int], num_actions: int) -> nn.Module:
    """The network named by ``cfg.kind`` (:class:`~torchrl_reg.recipe_utils.config.NetworkConfig`)."""
    check_choice("network.kind", cfg.kind, NETWORKS)
    obs_shape = tuple(obs_shape)
    if cfg.kind == "mlp":
        if len(obs_shape) != 1:
            raise ValueError(f"network.kind='mlp' needs a flat observation, got observation shape {obs_shape}")
        return MLPQNet(obs_shape[0], num_actions, tuple(cfg.hidden))
    if len(obs_shape) != 3:
        raise ValueError(f"network.kind={cfg.kind!r} needs a (C, H, W) observation, got observation shape {obs_shape}")
    if cfg.kind == "minatar_conv":
        return MinAtarQNet(obs_shape[0], num_actions, grid=obs_shape[-1])
    if obs_shape[-2:] != (84, 84):
        raise ValueError(f"network.kind='nature_cnn' needs 84x84 frames, got observation shape {obs_shape}")
    return NatureQNet(obs_shape[0], num_actions)
