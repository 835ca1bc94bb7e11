"""Q-networks and torsos: one name, one network, in every value-based recipe."""
from __future__ import annotations

import pytest
import torch

from torchrl_reg.modules import MinAtarTorso, NatureCNNTorso, QNetwork, make_iqn_network, make_q_network


def _num_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_networks_shapes():
    mlp = make_q_network("mlp", (4,), 2, hidden=[120, 84])
    assert [m.out_features for m in mlp if isinstance(m, torch.nn.Linear)] == [120, 84, 2]
    assert mlp(torch.zeros(5, 4)).shape == (5, 2)
    nature = make_q_network("nature_cnn", (4, 84, 84), 18)
    assert nature(torch.zeros(2, 4, 84, 84, dtype=torch.uint8)).shape == (2, 18)
    with pytest.raises(ValueError, match="flat observation"):
        make_q_network("mlp", (4, 10, 10), 2)
    with pytest.raises(ValueError, match="network.kind"):
        make_q_network("resnet", (4,), 2)


def test_minatar_conv_is_revisiting_rainbows_same_padding_network():
    """Revisiting Rainbow's MinAtar DQN (networks_new.py, net_conf='minatar', hidden_layer=0): one
    Conv(16, 3x3, stride 1) with Flax's default SAME padding, ReLU, then a linear layer. On a 10x10
    grid with 4 channels and 6 actions, by hand: conv 16*4*9 + 16 = 592 weights, 16*10*10 = 1,600
    features, head 1600*6 + 6 = 9,606; the valid-padding variant (8x8 maps) would have 1,024 features."""
    q = make_q_network("minatar_conv", (4, 10, 10), 6)
    assert isinstance(q, QNetwork) and isinstance(q.torso, MinAtarTorso)
    assert q.torso.out_features == 1600 and q.head.in_features == 1600
    assert _num_params(q) == 592 + 9606
    assert q(torch.zeros(2, 3, 4, 10, 10, dtype=torch.uint8)).shape == (2, 3, 6)
    # A one-hot cell in the grid's corner still reaches 4 outputs of the feature map's corner
    # (SAME padding keeps the border cells; VALID would drop them).
    with torch.no_grad():
        q.torso.conv.weight.fill_(1.0)
        q.torso.conv.bias.zero_()
        grid = torch.zeros(1, 4, 10, 10)
        grid[0, 0, 0, 0] = 1.0
        features = q.torso(grid).reshape(16, 10, 10)
    assert features[0, :2, :2].sum() == 4 and features[0].sum() == 4


def test_one_torso_per_name_across_q_and_iqn_networks():
    """``network.kind`` names the same torso for the Q-networks (m_dqn, mirl) and the IQN (m_iqn)."""
    for kind, obs_shape, torso_type, features in (
        ("minatar_conv", (4, 10, 10), MinAtarTorso, 1600),
        ("nature_cnn", (4, 84, 84), NatureCNNTorso, 3136),
    ):
        q = make_q_network(kind, obs_shape, 6)
        iqn = make_iqn_network(kind, obs_shape, 6, embedding_dim=8, num_policy_quantiles=4)
        assert type(q.torso) is type(iqn.torso) is torso_type
        assert q.torso.out_features == iqn.torso.out_features == features
        assert _num_params(q.torso) == _num_params(iqn.torso)


def test_nature_q_network_is_the_torso_plus_dopamines_head():
    """Nature DQN: 3 convs (8x8/4, 4x4/2, 3x3/1 -> 64x7x7 = 3136 features on 84x84), 512 ReLU units,
    linear to the actions: 4*32*64+32 + 32*64*16+64 + 64*64*9+64 + 3136*512+512 + 512*18+18 weights."""
    q = make_q_network("nature_cnn", (4, 84, 84), 18)
    expected = (4 * 32 * 64 + 32) + (32 * 64 * 16 + 64) + (64 * 64 * 9 + 64) + (3136 * 512 + 512) + (512 * 18 + 18)
    assert isinstance(q.torso, NatureCNNTorso) and _num_params(q) == expected
