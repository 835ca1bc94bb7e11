"""Tests of torchrl_reg.modules.critics: SAC's critic and IQ's value network are ReLU MLPs."""
from __future__ import annotations

import torch
from tensordict import TensorDict

from torchrl_reg.modules import ImplicitQuantileNetwork
from torchrl_reg.modules.critics import state_action_value_network, state_value_network


def _relu_mlp(linears: list[torch.nn.Linear], x: torch.Tensor) -> torch.Tensor:
    """max(0, W x + b) through every hidden layer, then the affine output layer (SAC's critic)."""
    for layer in linears[:-1]:
        x = torch.clamp(x @ layer.weight.T + layer.bias, min=0.0)
    return x @ linears[-1].weight.T + linears[-1].bias


def _linears(module: torch.nn.Module) -> list[torch.nn.Linear]:
    return [m for m in module.modules() if isinstance(m, torch.nn.Linear)]


def test_state_value_network_is_a_relu_mlp():
    torch.manual_seed(0)
    value = state_value_network(5, num_cells=[7, 6])
    obs = 3.0 * torch.randn(64, 5)  # large inputs: a Tanh torso would saturate and differ
    out = value(TensorDict({"observation": obs}, batch_size=[64]))["state_value"]
    linears = _linears(value)
    assert [(m.in_features, m.out_features) for m in linears] == [(5, 7), (7, 6), (6, 1)]
    torch.testing.assert_close(out, _relu_mlp(linears, obs))
    assert not any(isinstance(m, torch.nn.Tanh) for m in value.modules())


def test_state_action_value_network_is_a_relu_mlp_of_observation_and_action():
    torch.manual_seed(1)
    qvalue = state_action_value_network(4, 3)
    obs, action = 3.0 * torch.randn(32, 4), torch.rand(32, 3) * 2 - 1
    out = qvalue(TensorDict({"observation": obs, "action": action}, batch_size=[32]))["state_action_value"]
    linears = _linears(qvalue)
    assert [(m.in_features, m.out_features) for m in linears] == [(7, 256), (256, 256), (256, 1)]
    torch.testing.assert_close(out, _relu_mlp(linears, torch.cat([obs, action], -1)))


def test_iqn_mlp_torso_is_relu():
    torch.manual_seed(2)
    net = ImplicitQuantileNetwork.mlp(4, 2, num_cells=(16, 8))
    obs = 3.0 * torch.randn(10, 4)
    linears = _linears(net.torso)
    expected = obs
    for layer in linears:  # the torso's last layer is activated too (its output feeds the embedding product)
        expected = torch.clamp(expected @ layer.weight.T + layer.bias, min=0.0)
    torch.testing.assert_close(net.features(obs), expected)
