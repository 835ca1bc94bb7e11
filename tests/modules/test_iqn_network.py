from __future__ import annotations

import math

import pytest
import torch
from torchrl.modules import QValueActor

from torchrl_reg.modules.iqn import (
    CosineQuantileEmbedding,
    ImplicitQuantileNetwork,
    MinAtarTorso,
    NatureCNNTorso,
    sample_fractions,
)


def test_cosine_embedding_matches_formula():
    emb = CosineQuantileEmbedding(out_features=2, embedding_dim=3)
    with torch.no_grad():
        emb.linear.weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [-1.0, 2.0, 0.5]]))
        emb.linear.bias.copy_(torch.tensor([0.1, -0.2]))
    tau = 0.25
    c = [math.cos(math.pi * i * tau) for i in (1, 2, 3)]  # 0.7071, 0.0, -0.7071
    expected = [max(0.0, c[0] + 0.1), max(0.0, -c[0] + 2 * c[1] + 0.5 * c[2] - 0.2)]
    out = emb(torch.tensor([tau]))
    torch.testing.assert_close(out, torch.tensor([expected]))


def test_quantile_values_shapes_and_shared_fractions():
    net = ImplicitQuantileNetwork.mlp(4, 3, num_cells=(16,))
    obs = torch.randn(5, 4)
    per = net.quantile_values(obs, torch.rand(5, 7))
    assert per.shape == (5, 7, 3)
    shared = torch.rand(7)
    torch.testing.assert_close(net.quantile_values(obs, shared), net.quantile_values(obs, shared.expand(5, 7)))
    assert net(obs[0]).shape == (3,)


def test_forward_is_mean_over_policy_quantiles():
    net = ImplicitQuantileNetwork.mlp(4, 3, num_cells=(16,), num_policy_quantiles=5)
    obs = torch.randn(6, 4)
    torch.manual_seed(3)
    q = net(obs)
    torch.manual_seed(3)
    fractions = torch.rand(6, 5)
    torch.testing.assert_close(q, net.quantile_values(obs, fractions).mean(-2))


def test_fraction_sampling():
    f = sample_fractions((4,), 8)
    assert f.shape == (4, 8) and (f >= 0).all() and (f < 1).all()
    assert sample_fractions((4,), 8, independent=False).shape == (8,)
    with pytest.raises(ValueError, match="num_fractions"):
        sample_fractions((4,), 0)


def test_nature_torso_sizes():
    torso = NatureCNNTorso(4, (84, 84))
    assert torso.out_features == 3136
    x = torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8)
    assert torso(x).shape == (2, 3136)
    # float input is taken as already scaled; uint8 is divided by 255
    torch.testing.assert_close(torso(x), torso(x.float() / 255))
    assert NatureCNNTorso(4, (36, 36)).out_features == 64
    with pytest.raises(ValueError, match="at least 36x36"):
        NatureCNNTorso(4, (35, 84))
    with pytest.raises(ValueError, match="frame_stack"):
        NatureCNNTorso(0)


def test_torsos_reject_wrong_observation_shapes():
    net = ImplicitQuantileNetwork.nature(6, frame_stack=4)
    with pytest.raises(ValueError, match=r"\(4, 84, 84\).*\(2, 3, 84, 84\)"):
        net(torch.zeros(2, 3, 84, 84, dtype=torch.uint8))
    minatar = MinAtarTorso(in_channels=4)
    with pytest.raises(ValueError, match=r"\(4, 10, 10\)"):
        minatar(torch.zeros(2, 10, 10, 4))


def test_minatar_network_is_revisiting_rainbow():
    net = ImplicitQuantileNetwork.minatar(in_channels=7, num_actions=6)
    assert net.feature_dim == 16 * 10 * 10
    # no hidden layer after the Hadamard product: one linear layer to the actions
    assert [type(m).__name__ for m in net.head] == ["Linear"]
    obs = torch.rand(3, 7, 10, 10) > 0.5
    assert net(obs).shape == (3, 6)


def test_bad_network_arguments():
    with pytest.raises(ValueError, match="num_policy_quantiles"):
        ImplicitQuantileNetwork.mlp(4, 2, num_policy_quantiles=0)
    with pytest.raises(ValueError, match="embedding_dim"):
        ImplicitQuantileNetwork.mlp(4, 2, embedding_dim=0)
    with pytest.raises(ValueError, match="feature_dim"):
        ImplicitQuantileNetwork(torch.nn.Sequential(torch.nn.Linear(4, 8)), 2)
    with pytest.raises(ValueError, match="num_actions"):
        ImplicitQuantileNetwork.mlp(4, 0)


def test_qvalue_actor_with_a_real_collector():
    from torchrl.collectors import Collector
    from torchrl.envs import GymEnv

    env = GymEnv("CartPole-v1")
    net = ImplicitQuantileNetwork.mlp(4, 2, num_cells=(16,))
    actor = QValueActor(net, in_keys=["observation"], spec=env.action_spec)
    collector = Collector(env, actor, frames_per_batch=20, total_frames=40)
    batches = list(collector)
    collector.shutdown()
    assert len(batches) == 2
    data = batches[0]
    assert data["action_value"].shape == (20, 2)
    # the greedy action is the argmax of the mean over K quantiles
    torch.testing.assert_close(data["action"].argmax(-1), data["action_value"].argmax(-1))


@pytest.mark.parametrize("hidden", [(), (8,)])
def test_action_values_are_the_mean_of_the_quantiles(hidden):
    # without a hidden layer the mean is taken inside the affine head: same numbers
    net = ImplicitQuantileNetwork.mlp(4, 3, num_cells=(16,), hidden_sizes=hidden)
    features = net.features(torch.randn(5, 4))
    for fractions in (torch.rand(5, 7), torch.rand(7)):
        expected = net.quantiles_from_features(features, fractions).mean(-2)
        torch.testing.assert_close(net.action_values_from_features(features, fractions), expected)


def test_affine_head_quantiles_equal_the_hadamard_product_formula():
    """Without a hidden layer the quantiles are computed as phi (diag(psi) W^T) + b; they must equal
    the paper's f(psi * phi) written out, for shared and per-transition fractions and extra batch dims."""
    torch.manual_seed(0)
    net = ImplicitQuantileNetwork.minatar(in_channels=4, num_actions=6).double()
    features = net.features(torch.rand(2, 3, 4, 10, 10, dtype=torch.float64))
    linear = net.head[-1]
    for fractions in (torch.rand(2, 3, 5, dtype=torch.float64), torch.rand(5, dtype=torch.float64)):
        phi = net.embedding(fractions)
        naive = (features.unsqueeze(-2) * phi) @ linear.weight.t() + linear.bias
        torch.testing.assert_close(net.quantiles_from_features(features, fractions), naive, rtol=1e-12, atol=1e-12)
