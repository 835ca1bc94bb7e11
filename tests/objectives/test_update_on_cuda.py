"""Every registered loss's fastest update on a GPU gives its eager update's numbers on the same device.

On a GPU machine: ``python -m pytest tests/objectives/test_update_on_cuda.py -q -n 0``.

For each registry entry (tests/objectives/registry_losses.py: one case per entry, with no list to extend), two copies
of the loss are built from one seed by the entry's own recipe, moved to the device in float64, and trained side by
side on the same fixed batches with the recipe's Adam settings and the loop's target update: one by the eager update
(``make_update(compile=False)``), the other by the fastest update the loss allows, as the loops build it
(``fused="auto"`` where the entry allows fusion): ``compile=True, cuda_graph=True``, or ``compile=True`` alone for a
loss whose class says why its update cannot be recorded as a CUDA graph (``cuda_graph_unsupported``); the mode is the
test id's suffix. The fast side's optimizer state is reloaded halfway (a resume: new state tensors, which a recorded
graph must read). Every step's loss terms and the final ``state_dict`` of the two losses must agree to float64
rounding (rtol 1e-9), except after the resume where the fast side is torch's Adam recorded whole in a CUDA graph
(``CudaGraphUpdate``, for a loss without a fused step, as TorchRL's SACLoss): the resume makes its step counters
float32 (``_resumed_tolerance``).

Without CUDA every case is skipped. ``TORCHRL_REG_UPDATE_TEST_DEVICE=cpu`` runs the same comparisons on the CPU with
``cuda_graph`` off (the compiled update against the eager one), to check the test's logic on a machine without a GPU;
it is not part of the default run (compiling every loss on a CPU takes minutes).
"""
from __future__ import annotations

import copy
import os

import pytest
import torch

from tests.objectives import registry_losses
from torchrl_reg.loops.targets import PeriodicHardUpdate, actor_critic_target_update
from torchrl_reg.objectives import CudaGraphUpdate, make_update

DEVICE = os.environ.get("TORCHRL_REG_UPDATE_TEST_DEVICE", "cuda")
STEPS, RESUME_AT, BATCH = 10, 5, 32

pytestmark = [
    pytest.mark.skipif(
        torch.device(DEVICE).type == "cuda" and not torch.cuda.is_available(),
        reason="each registered loss's fastest update (compiled, as a CUDA graph where the loss allows) against its "
        "eager update on the same GPU: runs on a GPU (TORCHRL_REG_UPDATE_TEST_DEVICE=cpu checks it on the CPU)",
    ),
    # MIRL's prior and beta, VIREL's temperature: driven by the loops' hooks, not by the update compared here.
    pytest.mark.filterwarnings("ignore:MIRLLoss"),
    pytest.mark.filterwarnings("ignore:.*VIRELLoss"),
]


def _graphed(case: registry_losses.Case) -> bool:
    """Whether the fast side records a CUDA graph: on CUDA, unless the loss class declares why it cannot."""
    return torch.device(DEVICE).type == "cuda" and not getattr(case.entry.loss_class, "cuda_graph_unsupported", None)


CASES = [pytest.param(c, id=f"{c.id}-{'graph' if _graphed(c) else 'compiled'}") for c in registry_losses.cases()]


@pytest.fixture(autouse=True)
def _float64_default():
    # Adam's step counters take the default dtype, and torch.compile's Adam computes its bias corrections from them
    # (eager Adam from step.item(), in double precision): float64 counters keep the compiled Adam float64-accurate.
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(default)


def _side(case: registry_losses.Case, fast: bool):
    """``(loss, optimizer, update, target_update, batches)`` of one side, built as the training loops build them."""
    entry, cfg = case.entry, registry_losses.config(case)
    loss, act = registry_losses.build(case, seed=0)
    with torch.random.fork_rng(devices=[]):  # the acting policy draws actions: the same batches for both sides
        batches = [registry_losses.batch(act, size=BATCH, seed=s).to(DEVICE) for s in range(1, 4)]
    loss = loss.to(device=DEVICE, dtype=torch.float64)  # a few buffers are float32 (MIRL's prior, SQL's bounds)
    optimizer = torch.optim.Adam(loss.parameters(), lr=cfg.optim.lr, eps=cfg.optim.eps)
    update = make_update(
        loss, optimizer, max_grad_norm=cfg.optim.max_grad_norm, compile=fast,
        fused="auto" if entry.fused_update else False, cuda_graph=fast and _graphed(case),
    )
    if case.family == "actor_critic":
        target_update = actor_critic_target_update(loss, cfg.loss)
    else:  # the recipe's interval is thousands of updates: a copy every 3 updates puts copies inside the run
        target_update = PeriodicHardUpdate(loss, 3)
    return loss, optimizer, update, target_update, batches


def _resumed_tolerance(optimizer: torch.optim.Optimizer) -> tuple[float, float]:
    """``(rtol, atol)`` of torch's capturable Adam after ``load_state_dict``, which keeps its step counters in float32
    (torch.optim.Optimizer._process_value_according_to_param_policy) and computes its bias corrections ``1 - beta**t``
    from them. ``beta**t`` rounded to float32 (2**-24 relative) puts ``2**-24 * beta**t / (1 - beta**t)`` into each
    correction, largest at the first step after the resume: each later Adam step moves the parameters by up to that
    fraction (rtol) more or less than the eager step, and a step moves a parameter by at most
    ``lr * max(1, (1 - beta1) / sqrt(1 - beta2))`` (Kingma & Ba, Adam, ICLR 2015, arXiv:1412.6980, section 2.1),
    which bounds the parameters' difference (atol)."""
    group = optimizer.param_groups[0]
    (beta1, beta2), t = group["betas"], RESUME_AT
    rtol = sum(2**-24 * beta**t / (1 - beta**t) for beta in (beta1, beta2))
    largest_step = group["lr"] * max(1.0, (1 - beta1) / (1 - beta2) ** 0.5)
    return rtol, rtol * largest_step * (STEPS - RESUME_AT + 1)


@pytest.mark.parametrize("case", CASES)
def test_fastest_update_gives_the_eager_update(case):
    torch._dynamo.reset()  # each case compiles its own graphs: no recompile limit shared with the previous cases
    sides = [_side(case, fast) for fast in (False, True)]
    batches = sides[0][4]
    terms: list[list[dict[str, torch.Tensor]]] = [[], []]
    # Losses that draw random numbers in their forward (sampled actions, IQN fractions, SQL particles): the compiled
    # step draws them as eager PyTorch does, and both sides are seeded alike before each step.
    with torch._inductor.config.patch(fallback_random=True):
        for step in range(1, STEPS + 1):
            for side, (loss, optimizer, update, target_update, _) in enumerate(sides):
                if side == 1 and step == RESUME_AT:  # a resume: new optimizer-state tensors, which a graph must read
                    optimizer.load_state_dict(copy.deepcopy(optimizer.state_dict()))
                torch.manual_seed(100 + step)
                out = update(batches[step % len(batches)].clone())
                target_update(step)
                terms[side].append({k: v for k, v in out.items() if k.startswith("loss")})
    # Float64 rounding, but after the resume of torch's Adam recorded whole (the fused graph reads the float32 step
    # counters as float64: FusedAdamUpdate).
    rtol, atol = _resumed_tolerance(sides[1][1]) if isinstance(sides[1][2], CudaGraphUpdate) else (1e-9, 1e-12)
    for step, (eager, fast) in enumerate(zip(*terms), start=1):
        assert fast.keys() == eager.keys(), (step, sorted(eager), sorted(fast))
        for key in eager:
            torch.testing.assert_close(
                fast[key], eager[key], rtol=rtol if step >= RESUME_AT else 1e-9, atol=1e-12,
                msg=lambda m: f"step {step} {key}: {m}",
            )
    eager_state, fast_state = (side[0].state_dict() for side in sides)
    for key, value in eager_state.items():
        if value.is_floating_point():
            torch.testing.assert_close(fast_state[key], value, rtol=rtol, atol=atol, msg=lambda m: f"{key}: {m}")
