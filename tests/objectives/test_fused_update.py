"""The fused update (torch.func gradient + Adam in one compiled graph) against the eager one.

The reference is the plain PyTorch step: ``loss.backward()``, ``clip_grad_norm_``,
``torch.optim.Adam.step()``. In float64 both must agree to rounding after many steps, including
target-network copies, gradient clipping, a learning-rate change and an optimizer state round trip.
"""
from __future__ import annotations

import copy

import pytest
import torch
from tensordict import TensorDict
from torch import nn
from torchrl.data import Categorical
from torchrl.modules import QValueActor
from torchrl.objectives import DQNLoss, HardUpdate

from torchrl_reg.objectives import MIRLLoss, MunchausenDQNLoss, MunchausenIQNLoss
from torchrl_reg.objectives import FusedAdamUpdate, make_update


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _batch(n: int, generator: torch.Generator, device: str = "cpu") -> TensorDict:
    return TensorDict(
        {
            "observation": torch.randn(n, 4, generator=generator, dtype=torch.float64),
            "action": torch.randint(0, 3, (n,), generator=generator),
            "next": {
                "observation": torch.randn(n, 4, generator=generator, dtype=torch.float64),
                "reward": torch.randn(n, 1, generator=generator, dtype=torch.float64),
                "done": torch.zeros(n, 1, dtype=torch.bool),
                "terminated": torch.rand(n, 1, generator=generator) < 0.2,
                "truncated": torch.zeros(n, 1, dtype=torch.bool),
            },
        },
        [n],
    ).to(device)


def _build(kind: str = "m_dqn", lr: float = 1e-2, device: str = "cpu"):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3)).double()
    actor = QValueActor(net, in_keys=["observation"], spec=Categorical(3))
    if kind == "m_dqn":
        loss = MunchausenDQNLoss(actor, tau=0.5, loss_function="l2", action_space="categorical")
    else:
        loss = MIRLLoss.from_variant("mirl", actor, num_actions=3, action_space="categorical", beta_lr=0.1)
    loss.make_value_estimator(gamma=0.9)
    loss = loss.to(device)
    return loss, torch.optim.Adam(loss.parameters(), lr=lr), HardUpdate(loss, value_network_update_interval=0)


def _params(loss) -> list[torch.Tensor]:
    return [p.detach().clone() for p in loss.value_network_params.values(True, True)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    ("kind", "max_grad_norm"), [("m_dqn", None), ("m_dqn", 0.05), ("mirl", None)]
)
def test_fused_update_equals_eager_adam_in_float64(kind, max_grad_norm, device):
    """On CPU always; on CUDA too when a GPU is present (run on an H100, not in CI).

    MIRL's beta changes after every update (its adaptive rule): the fused graph must read it
    from the buffer at each call, not bake the first value in.
    """
    g = torch.Generator().manual_seed(1)
    batches = [_batch(32, g, device) for _ in range(8)]
    eager_loss, eager_opt, eager_target = _build(kind, device=device)
    fused_loss, fused_opt, fused_target = _build(kind, device=device)
    eager = make_update(eager_loss, eager_opt, max_grad_norm=max_grad_norm, compile=False)
    fused = make_update(fused_loss, fused_opt, max_grad_norm=max_grad_norm, compile=True)
    assert isinstance(fused, FusedAdamUpdate)
    for i in range(40):
        if i == 25:  # a learning-rate change (a schedule) must be honoured, not baked into the graph
            for opt in (eager_opt, fused_opt):
                opt.param_groups[0]["lr"] = 3e-3
        b_eager, b_fused = batches[i % 8].clone(), batches[i % 8].clone()
        out_eager = eager(b_eager)
        # One graph for the whole run: a recompile (a baked-in lr, a registry guard) costs seconds.
        with torch._dynamo.config.patch(error_on_recompile=i > 0):
            out_fused = fused(b_fused)
        if kind == "mirl":
            assert eager_loss.update_beta(out_eager) == fused_loss.update_beta(out_fused)
        if i % 10 == 9:
            eager_target.step()
            fused_target.step()
        torch.testing.assert_close(out_fused["loss"], out_eager["loss"], rtol=1e-10, atol=1e-12)
        assert set(out_fused.keys()) == set(out_eager.keys())
        # priorities written in place, as the loss's forward does
        torch.testing.assert_close(b_fused["td_error"], b_eager["td_error"], rtol=1e-10, atol=1e-12)
    for a, b in zip(_params(fused_loss), _params(eager_loss)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    eager_state, fused_state = eager_opt.state_dict(), fused_opt.state_dict()
    for k in eager_state["state"]:
        for name in ("step", "exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(fused_state["state"][k][name], eager_state["state"][k][name], rtol=1e-10, atol=1e-14)


def test_fused_update_resumes_from_an_eager_optimizer_state():
    """A checkpoint written by either path continues identically in the other (same state_dict)."""
    g = torch.Generator().manual_seed(2)
    batches = [_batch(16, g) for _ in range(6)]
    eager_loss, eager_opt, _ = _build("m_dqn", lr=5e-3)
    eager = make_update(eager_loss, eager_opt, max_grad_norm=None, compile=False)
    for b in batches[:3]:
        eager(b.clone())
    resumed_loss, resumed_opt, _ = _build("m_dqn", lr=5e-3)
    fused = make_update(resumed_loss, resumed_opt, max_grad_norm=None, compile=True, fused=True)
    # Deep copies, as a checkpoint round trip gives (a live state_dict shares the state tensors).
    resumed_loss.load_state_dict(copy.deepcopy(eager_loss.state_dict()))
    resumed_opt.load_state_dict(copy.deepcopy(eager_opt.state_dict()))  # new tensors for the fused step to read
    for b in batches[3:]:
        eager(b.clone())
        fused(b.clone())
    for a, b in zip(_params(resumed_loss), _params(eager_loss)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_cuda_graph_update_is_refused_off_cuda_or_without_compile():
    loss, opt, _ = _build()  # parameters on the CPU
    with pytest.raises(ValueError, match="must be on a CUDA device, they are on cpu"):
        make_update(loss, opt, max_grad_norm=None, compile=True, cuda_graph=True)
    with pytest.raises(ValueError, match="it needs compile=True, got compile=False"):
        make_update(loss, opt, max_grad_norm=None, compile=False, cuda_graph=True)
    dqn = DQNLoss(loss.value_network, action_space="categorical")  # not fusable: its generic step is recorded
    with pytest.raises(ValueError, match="cuda_graph=True, but the loss's parameters must be on a CUDA device"):
        make_update(dqn, torch.optim.Adam(dqn.parameters()), max_grad_norm=None, compile=True, cuda_graph=True)
    with pytest.raises(ValueError, match="fused=True, but the update cannot be fused: DQNLoss has no loss_and_outputs"):
        make_update(dqn, torch.optim.Adam(dqn.parameters()), max_grad_norm=None, compile=True, fused=True)
    assert "capturable" not in opt.param_groups[0] or not opt.param_groups[0]["capturable"]  # untouched when refused


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device (benchmarks/gpu_check.py runs this on a GPU)")
def test_cuda_graph_update_gives_the_compiled_update_and_resumes():
    g = torch.Generator().manual_seed(3)
    batches = [_batch(32, g, "cuda") for _ in range(6)]
    compiled_loss, compiled_opt, compiled_target = _build("mirl", device="cuda")
    graph_loss, graph_opt, graph_target = _build("mirl", device="cuda")
    compiled = make_update(compiled_loss, compiled_opt, max_grad_norm=0.05, compile=True)
    graph = make_update(graph_loss, graph_opt, max_grad_norm=0.05, compile=True, cuda_graph=True)
    for i in range(20):
        if i == 12:  # a resume: new optimizer-state tensors, the graph must read them
            graph_opt.load_state_dict(copy.deepcopy(graph_opt.state_dict()))
        out_compiled = compiled(batches[i % 6].clone())
        out_graph = graph(batches[i % 6].clone())
        assert compiled_loss.update_beta(out_compiled) == graph_loss.update_beta(out_graph)
        if i % 5 == 4:
            compiled_target.step()
            graph_target.step()
        torch.testing.assert_close(out_graph["loss"], out_compiled["loss"], rtol=1e-12, atol=1e-14)
    for a, b in zip(_params(graph_loss), _params(compiled_loss)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


class _UntraceableMDQNLoss(MunchausenDQNLoss):
    fusable_update = False


def test_make_update_falls_back_or_refuses_when_it_cannot_fuse():
    loss, _, _ = _build()
    dqn = DQNLoss(loss.value_network, action_space="categorical")  # TorchRL's: no loss_and_outputs
    dqn_opt = torch.optim.Adam(dqn.parameters())
    assert not isinstance(make_update(dqn, dqn_opt, max_grad_norm=None, compile=True), FusedAdamUpdate)
    with pytest.raises(ValueError, match="has no loss_and_outputs"):
        make_update(dqn, dqn_opt, max_grad_norm=None, compile=True, fused=True)
    untraceable = _UntraceableMDQNLoss(loss.value_network)
    with pytest.raises(ValueError, match="fusable_update=False"):
        make_update(untraceable, torch.optim.Adam(untraceable.parameters()), max_grad_norm=None, compile=True, fused=True)
    sgd = torch.optim.SGD(loss.parameters(), lr=0.1)
    assert not isinstance(make_update(loss, sgd, max_grad_norm=None, compile=True, fused="auto"), FusedAdamUpdate)
    with pytest.raises(ValueError, match="SGD"):
        make_update(loss, sgd, max_grad_norm=None, compile=True, fused=True)
    amsgrad = torch.optim.Adam(loss.parameters(), lr=0.1, amsgrad=True)
    with pytest.raises(ValueError, match="amsgrad"):
        FusedAdamUpdate(loss, amsgrad, max_grad_norm=None)
    with pytest.raises(ValueError, match="compile=True"):
        make_update(loss, torch.optim.Adam(loss.parameters()), max_grad_norm=None, compile=False, fused=True)
    with pytest.raises(ValueError, match="fused must be"):
        make_update(loss, sgd, max_grad_norm=None, compile=False, fused="yes")
    partial = torch.optim.Adam(list(loss.parameters())[:1], lr=0.1)
    with pytest.raises(ValueError, match="exactly the loss's online"):
        FusedAdamUpdate(loss, partial, max_grad_norm=None)


@pytest.mark.parametrize("compile", [False, True])
def test_make_update_refuses_an_optimizer_that_holds_none_of_the_loss_parameters(compile):
    loss, _, _ = _build()
    other = nn.Linear(4, 3)  # e.g. the optimizer of another network, or of a copy of the loss's
    with pytest.raises(ValueError, match=r"holds none of the 4 trainable parameters of MunchausenDQNLoss \(it holds 2 others\)"):
        make_update(loss, torch.optim.Adam(other.parameters()), max_grad_norm=None, compile=compile)
    for p in loss.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="MunchausenDQNLoss has no trainable parameter"):
        make_update(loss, torch.optim.Adam(other.parameters()), max_grad_norm=None, compile=compile)
    # One of the loss's parameters is enough (e.g. one optimizer per term, as TorchRL's SAC example).
    loss, _, _ = _build()
    make_update(loss, torch.optim.Adam(list(loss.parameters())[:1]), max_grad_norm=None, compile=False)


@pytest.mark.slow
def test_fused_iqn_update_equals_eager_adam_in_float64(kind="m_iqn"):
    """IQN draws its quantile fractions inside the loss: with the compiled graph drawing them as
    eager PyTorch does (``fallback_random``) and the same seed before each step, both paths agree.
    M-IQN only (its target pass covers IQN's and adds the bonus): each case compiles for ~30 s."""
    from torchrl_reg.modules.iqn import ImplicitQuantileNetwork
    from torchrl_reg.objectives import IQNLoss, MunchausenIQNLoss

    def build():
        torch.manual_seed(0)
        net = ImplicitQuantileNetwork.mlp(4, 3, num_cells=(16,), embedding_dim=8, num_policy_quantiles=4).double()
        actor = QValueActor(net, in_keys=["observation"], spec=Categorical(3))
        cls = MunchausenIQNLoss if kind == "m_iqn" else IQNLoss
        loss = cls(actor, num_quantiles=5, num_target_quantiles=6, num_policy_quantiles=4, action_space="categorical")
        loss.make_value_estimator(gamma=0.9)
        return loss, torch.optim.Adam(loss.parameters(), lr=1e-2)

    g = torch.Generator().manual_seed(3)
    batches = [_batch(16, g) for _ in range(4)]
    (eager_loss, eager_opt), (fused_loss, fused_opt) = build(), build()
    eager = make_update(eager_loss, eager_opt, max_grad_norm=None, compile=False)
    fused = make_update(fused_loss, fused_opt, max_grad_norm=None, compile=True)
    assert isinstance(fused, FusedAdamUpdate)
    with torch._inductor.config.patch(fallback_random=True):
        for i in range(12):
            b_eager, b_fused = batches[i % 4].clone(), batches[i % 4].clone()
            torch.manual_seed(100 + i)
            out_eager = eager(b_eager)
            torch.manual_seed(100 + i)
            out_fused = fused(b_fused)
            torch.testing.assert_close(out_fused["loss"], out_eager["loss"], rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(b_fused["td_error"], b_eager["td_error"], rtol=1e-10, atol=1e-12)
    for a, b in zip(_params(fused_loss), _params(eager_loss)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_each_fused_update_has_its_own_graph_and_batch_layout_is_checked():
    """The compiled step keeps tensor guards only, so two updates that differ in Python settings
    (here alpha and max_grad_norm) must not share a graph; a batch reused after its priorities were
    written is fine, a new batch size recompiles, and a batch with other keys is refused."""
    g = torch.Generator().manual_seed(4)
    batches = [_batch(16, g) for _ in range(3)]
    runs = []
    for alpha, max_grad_norm in ((0.9, None), (0.0, 0.01)):
        eager_loss, eager_opt, _ = _build("m_dqn")
        fused_loss, fused_opt, _ = _build("m_dqn")
        eager_loss.alpha = fused_loss.alpha = alpha
        eager = make_update(eager_loss, eager_opt, max_grad_norm=max_grad_norm, compile=False)
        fused = make_update(fused_loss, fused_opt, max_grad_norm=max_grad_norm, compile=True, fused=True)
        runs.append((eager, fused, eager_loss, fused_loss))
    for i in range(4):
        for eager, fused, _, _ in runs:
            batch = batches[i % 3]  # reused: carries "td_error" from the previous pass
            torch.testing.assert_close(fused(batch.clone())["loss"], eager(batch.clone())["loss"], rtol=1e-10, atol=1e-12)
    eager, fused, eager_loss, fused_loss = runs[0]
    bigger = _batch(24, g)
    torch.testing.assert_close(fused(bigger.clone())["loss"], eager(bigger.clone())["loss"], rtol=1e-10, atol=1e-12)
    for a, b in zip(_params(fused_loss), _params(eager_loss)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    reordered = TensorDict({"next": bigger["next"].clone(), "action": bigger["action"], "observation": bigger["observation"]}, [24])
    torch.testing.assert_close(fused(reordered)["loss"], eager(bigger.clone())["loss"], rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match=r"same keys.*priority_weight|priority_weight.*same keys"):
        fused(batches[0].clone().set("priority_weight", torch.ones(16, dtype=torch.float64)))


@pytest.mark.parametrize(("bootstrap", "max_grad_norm"), [("target", None), ("online", 0.5)])
def test_fused_implicit_q_update_equals_eager_adam_in_float64(bootstrap, max_grad_norm):
    """IQ / M-IQ: one loss of the policy and the value parameters (``fused_params``), one Adam over
    both, Polyak targets; the online bootstrap (PCL / Trust-PCL) differentiates through V(s') too."""
    from tensordict.nn import TensorDictModule
    from torchrl.modules import ProbabilisticActor, ValueOperator
    from torchrl.objectives import SoftUpdate

    from torchrl_reg.modules.policies import FactorizedCategorical
    from torchrl_reg.objectives import ImplicitQLoss

    low, high = torch.tensor([-1.0, 0.0], dtype=torch.float64), torch.tensor([1.0, 3.0], dtype=torch.float64)

    def build():
        torch.manual_seed(0)
        pnet = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 2 * 5), nn.Unflatten(-1, (2, 5))).double()
        vnet = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1)).double()
        actor = ProbabilisticActor(
            TensorDictModule(pnet, in_keys=["observation"], out_keys=["logits"]),
            in_keys=["logits"], distribution_class=FactorizedCategorical, distribution_kwargs={"low": low, "high": high},
        )
        loss = ImplicitQLoss(actor, ValueOperator(vnet, in_keys=["observation"]), tau=0.3, alpha=0.9, bootstrap=bootstrap)
        loss.make_value_estimator(gamma=0.9)
        return loss, torch.optim.Adam(loss.parameters(), lr=1e-2), SoftUpdate(loss, tau=0.05)

    g = torch.Generator().manual_seed(5)

    def batch(n):
        index = torch.randint(5, (n, 2), generator=g)
        terminated = torch.rand(n, 1, generator=g) < 0.2
        return TensorDict({
            "observation": torch.randn(n, 3, generator=g, dtype=torch.float64),
            "action": low + (high - low) * index / 4,
            "next": {"observation": torch.randn(n, 3, generator=g, dtype=torch.float64),
                     "reward": torch.randn(n, 1, generator=g, dtype=torch.float64),
                     "terminated": terminated, "done": terminated.clone()},
        }, [n])

    batches = [batch(32) for _ in range(5)]
    (eager_loss, eager_opt, eager_target), (fused_loss, fused_opt, fused_target) = build(), build()
    eager = make_update(eager_loss, eager_opt, max_grad_norm=max_grad_norm, compile=False)
    fused = make_update(fused_loss, fused_opt, max_grad_norm=max_grad_norm, compile=True)
    assert isinstance(fused, FusedAdamUpdate)
    for i in range(15):
        b_eager, b_fused = batches[i % 5].clone(), batches[i % 5].clone()
        out_eager = eager(b_eager)
        with torch._dynamo.config.patch(error_on_recompile=i > 0):
            out_fused = fused(b_fused)
        eager_target.step()
        fused_target.step()
        assert set(out_fused.keys()) == set(out_eager.keys())
        for key in out_eager.keys():
            torch.testing.assert_close(out_fused[key], out_eager[key], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(b_fused["td_error"], b_eager["td_error"], rtol=1e-10, atol=1e-12)
    state = (fused_loss.state_dict(), eager_loss.state_dict())
    assert len(state[0]) == len(state[1]) > 8  # online and target parameters of both networks
    for key, value in state[1].items():
        torch.testing.assert_close(state[0][key], value, rtol=1e-10, atol=1e-12)


def _flat_case(kind: str):
    """A fusable loss of each family with its batches."""
    if kind in ("m_dqn", "mirl"):
        loss, _, _ = _build(kind)
        g = torch.Generator().manual_seed(3)
        return loss, [_batch(16, g) for _ in range(3)]
    if kind == "m_iqn":
        from tests.objectives.test_iqn import _data, _fixed, _loss, _make_actor

        loss = _loss(MunchausenIQNLoss, _make_actor())
        _fixed(loss)  # fixed quantile fractions: both paths draw the same ones
        return loss, [_data(seed) for seed in (1, 2, 3)]
    from tests.objectives.test_implicit_q import _batch as _iq_batch, _setup

    loss = _setup(alpha=0.9, tau=0.03)[0]
    loss.make_value_estimator(gamma=0.9)
    return loss, [_iq_batch(seed)[0] for seed in (1, 2, 3)]


@pytest.mark.parametrize("kind", ["m_dqn", "mirl", "m_iqn", "implicit_q"])  # a choice, not the registry's list: one loss per fused-step shape
def test_flat_parameters_give_the_tensordict_path_bit_for_bit(kind):
    """The fused step binds its parameters with torch.func's re-parametrization over a flat tuple
    (``flat_fused_params``, every loss of the library) instead of ``TensorDictParams.to_module``:
    the same graph, so the same parameters, optimizer state and outputs, bit for bit."""
    runs = []
    for flat in (True, False):
        loss, batches = _flat_case(kind)
        loss.flat_fused_params = flat
        opt = torch.optim.Adam(loss.parameters(), lr=1e-2)
        update = make_update(loss, opt, max_grad_norm=1.0, compile=True, fused=True)
        assert (update._layouts is not None) is flat
        outs = [update(b.clone()) for b in batches * 2]
        runs.append((outs, [p.detach().clone() for p in update.leaves]))
    (flat_outs, flat_params), (td_outs, td_params) = runs
    for a, b in zip(flat_params, td_params):
        assert torch.equal(a, b)
    for a, b in zip(flat_outs, td_outs):
        assert set(a.keys(True, True)) == set(b.keys(True, True))
        for key in a.keys(True, True):
            assert torch.equal(a[key], b[key]), key


class _ExtraNetMDQNLoss(MunchausenDQNLoss):
    """Binds its parameters to a network that holds a parameter the fused update does not step."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.__dict__["_frozen"] = nn.Sequential(self._q_network, nn.Linear(3, 3))

    def loss_and_outputs(self, tensordict, params):
        with params.to_module(self._frozen):
            pass
        return super().loss_and_outputs(tensordict, params)


def test_flat_parameters_refuse_a_network_with_parameters_they_do_not_step():
    """Binding only some of a network's parameters would leave the others undifferentiated: a silently
    wrong gradient. The fused step refuses it, naming them."""
    loss, _, _ = _build()
    extra = _ExtraNetMDQNLoss(loss.value_network, tau=0.5, action_space="categorical")
    extra.make_value_estimator(gamma=0.9)
    opt = torch.optim.Adam(extra.parameters(), lr=1e-2)
    update = make_update(extra, opt, max_grad_norm=None, compile=True, fused=True)
    with pytest.raises(Exception, match=r"parameters \['1.weight', '1.bias'\] that the fused update does not differentiate"):
        update(_batch(8, torch.Generator().manual_seed(0)))
