"""What the speed benchmarks share: a random batch, one optimizer step, interleaved timings, FLOP
counts, the command line and the record of where a measurement was taken, and the ratio plots."""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "CLOCKS",
    "count_flops",
    "cost_ratio",
    "cost_ratios",
    "finish_plot",
    "interleaved_times",
    "measurement_info",
    "optimizer_step",
    "parse_timing_args",
    "plot_cost_ratios",
    "random_transitions",
    "time_steps",
    "timing_parser",
    "write_cost_ratios",
]

Step = Callable[[], None]


def timing_parser(description: str, *, repeats: int, steps: int, steps_help: str, device: bool = True,
                  subsets: tuple[str, Sequence[str]] | None = None) -> argparse.ArgumentParser:
    """The options every timing benchmark takes: ``--repeats``, ``--steps``, ``--threads`` (and
    ``--device``); ``subsets=("--networks", names)`` adds an option choosing among ``names`` (all by default)."""
    parser = argparse.ArgumentParser(description=description)
    if subsets is not None:
        flag, names = subsets
        parser.add_argument(flag, nargs="+", default=list(names), choices=list(names))
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--steps", type=int, default=steps, help=steps_help)
    parser.add_argument("--threads", type=int, default=1)
    if device:
        parser.add_argument("--device", default="cpu", help="cpu or cuda (results then go to a *_cuda.json file)")
    return parser


def parse_timing_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Parse the command line and pin torch to ``--threads`` threads for the timings. TorchRL's warning
    that a loss has no target updater is silenced: the benchmarks step their updaters by hand."""
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message="No target network updater")
    return args


def measurement_info(args: argparse.Namespace) -> dict[str, Any]:
    """Where and how a timing was taken: the exact command, repeats, threads, torch, device, machine."""
    device = getattr(args, "device", "cpu")
    return {
        "command": "python -m benchmarks." + Path(sys.argv[0]).stem + "".join(f" {a}" for a in sys.argv[1:]),
        "repeats": args.repeats,
        "threads": args.threads,
        "torch": torch.__version__,
        "device": device if device == "cpu" else torch.cuda.get_device_name(),
        "machine": f"{platform.machine()} {platform.processor()} ({torch.get_num_threads()} torch threads)",
    }


def write_cost_ratios(results_dir: Path, args: argparse.Namespace, results: dict[str, Any], *, target_ratio: float,
                      **extra: Any) -> tuple[dict[str, Any], Path]:
    """Write ``update_cost.json`` (``update_cost_cuda.json`` off the CPU) to ``results_dir``: where the
    timings were taken (:func:`measurement_info`), ``extra`` entries, the target ratio and ``results``.
    Returns the record and the path its plot goes to (the same name, ``.png``)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    payload = {**measurement_info(args), **extra, "target_ratio": target_ratio, "results": results}
    stem = "update_cost" if args.device == "cpu" else "update_cost_cuda"
    (results_dir / f"{stem}.json").write_text(json.dumps(payload, indent=2))
    return payload, results_dir / f"{stem}.png"


def random_transitions(observation: Callable[[], torch.Tensor], spec: Any, batch: int, device: str = "cpu") -> Any:
    """A batch of ``batch`` random transitions in the recipes' keys (5% of them terminal), on ``device``."""
    from tensordict import TensorDict

    data = TensorDict(
        {
            "observation": observation(),
            "action": spec.rand((batch,)),
            ("next", "observation"): observation(),
            ("next", "reward"): torch.randn(batch, 1),
            ("next", "done"): torch.rand(batch, 1) < 0.05,
        },
        [batch],
    )
    data["next", "terminated"] = data["next", "done"].clone()
    return data.to(device)


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


#: ``--clock``: wall time, or the CPU time of the calling thread (torch's ops run in it with one thread), which
#: a shared machine's load inflates far less than wall time (it waits for the core without counting).
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.thread_time}


def time_steps(step: Step, n: int, clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds per call of ``step`` on ``clock``, averaged over ``n`` calls back to back (CUDA work waited for)."""
    start = clock()
    for _ in range(n):
        step()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (clock() - start) / n


def interleaved_times(steps: dict[str, Step], repeats: int, n: int, warmup: int,
                      clock: Callable[[], float] = time.perf_counter) -> dict[str, list[float]]:
    """Seconds per step of each of ``steps``, ``repeats`` times: each repeat times ``n`` calls of every
    step, in an order rotated between repeats, so that load changes on a shared machine hit all alike."""
    names = list(steps)
    for step in steps.values():
        time_steps(step, warmup)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            times[name].append(time_steps(steps[name], n, clock))
    return times


def count_flops(step: Step) -> tuple[int, int]:
    """FLOPs of one update (matmuls and convolutions, forward and backward), by torch's FLOP formulas, and the
    number of ATen ops it dispatches (below autograd, backward and optimizer included): on a small network
    each op's fixed cost, not its FLOPs, sets the time, and the count does not depend on the machine's load.

    (``FlopCounterMode`` itself cannot be used: its module tracker tests TensorDictParams for truth.)
    """
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import flop_registry

    class Counter(TorchDispatchMode):
        total = 0
        ops = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            self.ops += 1
            formula = flop_registry.get(func._overloadpacket)
            if formula is not None:
                self.total += formula(*args, **kwargs, out_val=out)
            return out

    with Counter() as counter:
        step()
    return counter.total, counter.ops


def cost_ratio(base: str, candidate: str, steps: dict[str, Step], repeats: int, n: int, warmup: int,
               others: Sequence[str] = (), clock: Callable[[], float] = time.perf_counter) -> dict[str, Any]:
    """Time per update of ``candidate`` over ``base`` in interleaved repeats (median, quartiles, range
    of the per-repeat ratios), with both FLOP counts: the FLOP ratio is the time ratio's compute floor.
    ``others``: more candidates timed in the same repeats, their statistics under ``<name>_`` keys."""
    kinds = (base, candidate, *others)
    times = interleaved_times({k: steps[k] for k in kinds}, repeats, n, warmup, clock)
    flops, ops = {}, {}
    for k in kinds:
        flops[k], ops[k] = count_flops(steps[k])
    result = {f"flops_{base}": flops[base], f"ops_{base}": ops[base],
              f"ms_per_update_{base}_median": 1e3 * statistics.median(times[base])}
    for kind in (candidate, *others):
        ratios = [c / b for c, b in zip(times[kind], times[base])]
        quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
        prefix = "" if kind == candidate else f"{kind}_"
        result.update({
            f"flops_{kind}": flops[kind],
            f"{prefix}flop_ratio": flops[kind] / flops[base],
            f"ops_{kind}": ops[kind],
            f"ms_per_update_{kind}_median": 1e3 * statistics.median(times[kind]),
            f"{prefix}ratio_median": statistics.median(ratios),
            f"{prefix}ratio_q25": quartiles[0],
            f"{prefix}ratio_q75": quartiles[2],
            f"{prefix}ratio_min": min(ratios),
            f"{prefix}ratio_max": max(ratios),
        })
    result["updates_per_timing"] = n
    return result


def cost_ratios(base: str, candidate: str, setups: dict[str, tuple[Callable[[str], Step], int]], repeats: int,
                warmup: Callable[[int], int], others: Sequence[str] = (),
                clock: Callable[[], float] = time.perf_counter) -> dict[str, dict[str, Any]]:
    """:func:`cost_ratio` of every setup, printed as it is measured. ``setups``: name -> (``make(kind)``,
    the step of ``kind`` in that setup, built just before its timings; updates per timing ``n``);
    ``warmup(n)``: the untimed calls before them."""
    results = {}
    for name, (make, n) in setups.items():
        kinds = (base, candidate, *others)
        results[name] = cost_ratio(base, candidate, {kind: make(kind) for kind in kinds}, repeats, n, warmup(n), others,
                                   clock)
        print(name, json.dumps(results[name]), flush=True)
    return results


def plot_cost_ratios(results: dict[str, dict[str, Any]], path: Path, *, bars: tuple[str, str], ylabel: str, title: str,
                     figsize: tuple[float, float] = (6, 3.5)) -> None:
    """One bar per setup: the median time ratio with error bars from the ``bars`` keys (e.g. min and
    max), the FLOP ratio as a diamond, the 1.10 target as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    labels = [n.replace("/", "\n") for n in names]
    fig, ax = plt.subplots(figsize=figsize)
    ratios = [results[n]["ratio_median"] for n in names]
    lows = [results[n]["ratio_median"] - results[n][bars[0]] for n in names]
    highs = [results[n][bars[1]] - results[n]["ratio_median"] for n in names]
    ax.bar(labels, ratios, yerr=[lows, highs], color="tab:blue", capsize=4)
    ax.scatter(labels, [results[n]["flop_ratio"] for n in names], marker="D", color="black", zorder=3,
               label="FLOP ratio (compute floor)")
    ax.axhline(1.0, color="gray", lw=0.8)
    ax.tick_params(axis="x", labelsize=7)
    finish_plot(fig, ax, path, ylabel=ylabel, title=title, target=1.10, target_label="target 1.10")


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
