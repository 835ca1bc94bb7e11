"""The generic update recorded as a CUDA graph (CudaGraphUpdate) for losses without a fused step.

On a CPU: which losses' steps read a value on the host (``host_syncs``: what a CUDA graph cannot record), and
the refusals, made before the optimizer is touched. On a GPU: the graph update gives the compiled generic
update's numbers for TorchRL's SACLoss, batch after batch, across a resume.
"""
from __future__ import annotations

import copy

import pytest
import torch
from tensordict import TensorDict
from torchrl.data import Bounded
from torchrl.objectives import SACLoss, SoftUpdate

import torchrl.modules.distributions.continuous as torchrl_continuous
from torchrl_reg.modules.critics import state_action_value_network
from torchrl_reg.modules.policies import tanh_normal_policy
from torchrl_reg.objectives import CudaGraphUpdate, SoftQLearningLoss, VIRELLoss, host_syncs, make_update, total_loss

OBS, ACT = 5, 2


def _sac(device: str = "cpu", seed: int = 0) -> SACLoss:
    torch.manual_seed(seed)
    spec = Bounded(-1.0, 1.0, shape=(ACT,), device=device)
    actor = tanh_normal_policy(OBS, spec, num_cells=[16])
    qvalue = state_action_value_network(OBS, ACT, num_cells=[16])
    return SACLoss(actor, qvalue, num_qvalue_nets=2, loss_function="l2", action_spec=spec).to(device)


def _batch(n: int, generator: torch.Generator, device: str = "cpu") -> TensorDict:
    terminated = torch.rand(n, 1, generator=generator) < 0.1
    return TensorDict(
        {
            "observation": torch.randn(n, OBS, generator=generator),
            "action": torch.rand(n, ACT, generator=generator) * 2 - 1,
            ("next", "observation"): torch.randn(n, OBS, generator=generator),
            ("next", "reward"): torch.randn(n, 1, generator=generator),
            ("next", "done"): terminated.clone(),
            ("next", "terminated"): terminated,
        },
        [n],
    ).to(device)


def test_host_syncs_names_a_scalar_read_and_nothing_else():
    x = torch.ones(3)
    assert host_syncs(lambda: x.sum().item()) == ["aten::_local_scalar_dense"]
    assert host_syncs(lambda: x[x > 0]) != []  # a data-dependent shape
    assert host_syncs(lambda: (x * 2).exp().sum()) == []


def test_sac_step_reads_no_host_value_while_a_stream_captures(monkeypatch):
    # TorchRL's TanhNormal reads whether its box is [-1, 1] on the host, except while a CUDA stream is
    # capturing (torchrl.modules.distributions.continuous.safe_is_current_stream_capturing): as in a capture.
    monkeypatch.setattr(torchrl_continuous, "safe_is_current_stream_capturing", lambda: True)
    loss = _sac()
    batch = _batch(8, torch.Generator().manual_seed(0))

    def step(batch):
        total_loss(loss(batch)).backward()

    step(batch.clone())  # the target entropy is registered at the first call (a warm-up call of the graph)
    assert host_syncs(step, batch.clone()) == []


def test_losses_that_read_host_values_are_refused_before_the_optimizer_is_touched():
    for cls in (SoftQLearningLoss, VIRELLoss):
        assert "host" in cls.cuda_graph_unsupported
    loss = _sac()
    optimizer = torch.optim.Adam(loss.parameters())
    with pytest.raises(ValueError, match="must be on a CUDA device, they are on cpu"):
        make_update(loss, optimizer, max_grad_norm=None, compile=True, cuda_graph=True)
    with pytest.raises(ValueError, match="it needs compile=True, got compile=False"):
        make_update(loss, optimizer, max_grad_norm=None, compile=False, cuda_graph=True)
    with pytest.raises(ValueError, match="SGD has no capturable mode"):
        CudaGraphUpdate(lambda b: b, loss, torch.optim.SGD(loss.parameters(), lr=0.1))
    assert not optimizer.param_groups[0].get("capturable", False)

    class _HostReading(SACLoss):
        cuda_graph_unsupported = "it reads a value on the host"

    assert CudaGraphUpdate.unsupported_reason(_HostReading.__new__(_HostReading), optimizer) == (
        "_HostReading: it reads a value on the host"
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device (the GPU check runs this on a GPU)")
def test_cuda_graph_sac_update_gives_the_compiled_update_and_resumes():
    g = torch.Generator().manual_seed(3)
    batches = [_batch(64, g, "cuda") for _ in range(6)]
    results = []
    for cuda_graph in (False, True):
        loss = _sac("cuda")
        optimizer = torch.optim.Adam(loss.parameters(), lr=3e-4, capturable=True)
        target = SoftUpdate(loss, eps=0.99)
        update = make_update(loss, optimizer, max_grad_norm=10.0, compile=True, cuda_graph=cuda_graph)
        assert isinstance(update, CudaGraphUpdate) == cuda_graph
        torch.manual_seed(7)
        losses = []
        for i in range(20):
            if i == 12:  # a resume: new optimizer-state tensors, which a recorded graph must read
                optimizer.load_state_dict(copy.deepcopy(optimizer.state_dict()))
            out = update(batches[i % 6].clone())
            target.step()
            losses.append(torch.stack([out["loss_actor"], out["loss_qvalue"], out["loss_alpha"]]))
        results.append((torch.stack(losses), [p.detach().clone() for p in loss.parameters()]))
    (compiled_losses, compiled_params), (graph_losses, graph_params) = results
    torch.testing.assert_close(graph_losses, compiled_losses, rtol=1e-5, atol=1e-6)
    for a, b in zip(graph_params, compiled_params):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
