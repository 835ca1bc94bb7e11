"""What the speed benchmarks share: one optimizer step, interleaved timings, FLOP counts, plot finish."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = ["count_flops", "cost_ratio", "finish_plot", "interleaved_times", "optimizer_step", "time_steps"]

Step = Callable[[], None]


def optimizer_step(loss: Any, data: Any, optimizers: Sequence[torch.optim.Optimizer], updater: Any,
                   keys: Sequence[str] = ("loss",)) -> Step:
    """One eager training step on a fixed batch: the sum of the loss terms ``keys``, backward, every
    optimizer, then the target-network updater."""

    def step() -> None:
        out = loss(data)
        total = sum(out[k] for k in keys)
        for optim in optimizers:
            optim.zero_grad(set_to_none=True)
        total.backward()
        for optim in optimizers:
            optim.step()
        updater.step()

    return step


def time_steps(step: Step, n: int) -> float:
    """Seconds per call of ``step``, averaged over ``n`` calls back to back (CUDA work waited for)."""
    start = time.perf_counter()
    for _ in range(n):
        step()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / n


def interleaved_times(steps: dict[str, Step], repeats: int, n: int, warmup: int) -> dict[str, list[float]]:
    """Seconds per step of each of ``steps``, ``repeats`` times: each repeat times ``n`` calls of every
    step, in an order rotated between repeats, so that load changes on a shared machine hit all alike."""
    names = list(steps)
    for step in steps.values():
        time_steps(step, warmup)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            times[name].append(time_steps(steps[name], n))
    return times


def count_flops(step: Step) -> int:
    """FLOPs of one update (matmuls and convolutions, forward and backward), by torch's FLOP formulas.

    (``FlopCounterMode`` itself cannot be used: its module tracker tests TensorDictParams for truth.)
    """
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import flop_registry

    class Counter(TorchDispatchMode):
        total = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            formula = flop_registry.get(func._overloadpacket)
            if formula is not None:
                self.total += formula(*args, **kwargs, out_val=out)
            return out

    with Counter() as counter:
        step()
    return counter.total


def cost_ratio(base: str, candidate: str, steps: dict[str, Step], repeats: int, n: int, warmup: int) -> dict[str, Any]:
    """Time per update of ``candidate`` over ``base`` in interleaved repeats (median, quartiles, range
    of the per-repeat ratios), with both FLOP counts: the FLOP ratio is the time ratio's compute floor."""
    times = interleaved_times({k: steps[k] for k in (base, candidate)}, repeats, n, warmup)
    ratios = [c / b for c, b in zip(times[candidate], times[base])]
    flops = {k: count_flops(steps[k]) for k in (base, candidate)}
    quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
    return {
        f"flops_{base}": flops[base],
        f"flops_{candidate}": flops[candidate],
        "flop_ratio": flops[candidate] / flops[base],
        f"ms_per_update_{base}_median": 1e3 * statistics.median(times[base]),
        f"ms_per_update_{candidate}_median": 1e3 * statistics.median(times[candidate]),
        "ratio_median": statistics.median(ratios),
        "ratio_q25": quartiles[0],
        "ratio_q75": quartiles[2],
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "updates_per_timing": n,
    }


def finish_plot(fig: Any, ax: Any, path: Path, *, ylabel: str, title: str, target: float | None = None,
                target_label: str | None = None) -> None:
    """Target line, labels and legend, then save ``fig`` to ``path`` (120 dpi) and close it."""
    import matplotlib.pyplot as plt

    if target is not None:
        ax.axhline(target, color="tab:red", ls="--", label=target_label or f"target {target}")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
