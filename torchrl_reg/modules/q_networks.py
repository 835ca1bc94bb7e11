"""Q-networks of the published set-ups: an observation batch -> one value per action.

``network.kind`` in a recipe config names one network, the same in every value-based recipe
(:data:`NETWORK_KINDS`; the IQN heads on the same torsos are :func:`~torchrl_reg.modules.iqn.make_iqn_network`):

* ``mlp``: a ReLU MLP (``hidden=(120, 84)`` is CleanRL's classic-control DQN);
* ``minatar_conv``: Revisiting Rainbow's MinAtar network (ICML 2021, arXiv:2011.14826):
  :class:`~torchrl_reg.modules.torsos.MinAtarTorso` (``Conv(16, 3x3)``, ``SAME`` padding) -> linear;
* ``nature_cnn``: the Nature-DQN network (Mnih et al., Nature 518, 2015), used by Dopamine's
  M-DQN: :class:`~torchrl_reg.modules.torsos.NatureCNNTorso` -> 512 ReLU units -> linear.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from torchrl_reg.modules.torsos import MinAtarTorso, NatureCNNTorso

__all__ = ["MLPQNet", "NETWORK_KINDS", "QNetwork", "make_q_network"]

#: The network kinds a config may name (``network.kind``).
NETWORK_KINDS = ("mlp", "minatar_conv", "nature_cnn")


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


class QNetwork(nn.Module):
    """A torso (anything with ``out_features``), ReLU ``hidden`` layers, then ``head``, the linear layer to the actions."""

    def __init__(self, torso: nn.Module, num_actions: int, hidden: Sequence[int] = ()):
        super().__init__()
        self.torso = torso
        layers: list[nn.Module] = []
        width = torso.out_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.hidden = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_actions)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden(self.torso(obs)))


def _check_pixels(kind: str, obs_shape: tuple[int, ...]) -> None:
    if len(obs_shape) != 3:
        raise ValueError(f"network.kind={kind!r} needs a (C, H, W) observation, got observation shape {obs_shape}")


def _mlp(obs_shape: tuple[int, ...], num_actions: int, hidden: Sequence[int]) -> nn.Module:
    if len(obs_shape) != 1:
        raise ValueError(f"network.kind='mlp' needs a flat observation, got observation shape {obs_shape}")
    return MLPQNet(obs_shape[0], num_actions, tuple(hidden))


def _minatar(obs_shape: tuple[int, ...], num_actions: int, hidden: Sequence[int]) -> nn.Module:
    _check_pixels("minatar_conv", obs_shape)
    return QNetwork(MinAtarTorso(*obs_shape), num_actions)


def _nature(obs_shape: tuple[int, ...], num_actions: int, hidden: Sequence[int]) -> nn.Module:
    _check_pixels("nature_cnn", obs_shape)
    return QNetwork(NatureCNNTorso(obs_shape[0], obs_shape[1:]), num_actions, hidden=(512,))


_BUILDERS = {"mlp": _mlp, "minatar_conv": _minatar, "nature_cnn": _nature}


def make_q_network(kind: str, obs_shape: Sequence[int], num_actions: int, *, hidden: Sequence[int] = (120, 84)) -> nn.Module:
    """The Q-network named ``kind`` (:data:`NETWORK_KINDS`) for observations of ``obs_shape``
    (without batch dimensions); ``hidden`` sizes the ``mlp`` network only."""
    if kind not in _BUILDERS:
        raise ValueError(f"network.kind must be one of {list(NETWORK_KINDS)}, got network.kind={kind!r}")
    return _BUILDERS[kind](tuple(obs_shape), num_actions, hidden)
