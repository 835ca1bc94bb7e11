"""Exact VIREL iteration vs soft VI at a fixed temperature and VI on Garnet MDPs (float64, exact).

For every scheme and seed: ``||q_k - q*||_inf`` and the suboptimality of its policy
``||q* - q^{pi_k}||_inf`` along iterations, VIREL's temperature ``eps_k``, the observed linear rate
(median of ``e_{k+1} / e_k`` once ``e_k < 1e-3``) and the iterations needed to reach ``1e-8``.
VIREL ([VIREL] Fellows et al., NeurIPS 2019, arXiv 1811.01132) is run with exact evaluation (policy
iteration on the Boltzmann policy) and one-step evaluation (the target-network form), for p = 2 and
p = 1; ``p = 1, c = 10`` is included because it stalls away from q* (``reaches_q_star`` false in the
JSON; soft VI is false too, by design: it converges to the regularized optimum).

    taskset -c 0 python benchmarks/virel_tabular.py
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from torchrl_reg.tabular.algorithms import (  # noqa: E402
    regularized_optimum,
    regularized_policy_evaluation,
    soft_value_iteration,
    value_iteration,
)
from torchrl_reg.tabular.mdp import garnet  # noqa: E402
from torchrl_reg.tabular.virel import virel_iteration  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "virel"


def schemes(k: int) -> dict:
    """Name -> (run(mdp) -> result with .q, .policies and maybe .temperatures, plot style)."""
    return {
        "VI": (lambda m: value_iteration(m, num_iterations=k), dict(color="k")),
        "soft VI (tau=0.01)": (lambda m: soft_value_iteration(m, tau=0.01, num_iterations=k), dict(color="tab:orange")),
        "soft VI (tau=0.1)": (
            lambda m: soft_value_iteration(m, tau=0.1, num_iterations=k), dict(color="tab:orange", ls="--")
        ),
        "VIREL one-step (p=2, c=1)": (
            lambda m: virel_iteration(m, c=1.0, p=2, num_iterations=k, evaluation="one_step"), dict(color="tab:blue")
        ),
        "VIREL one-step (p=1, c=1)": (
            lambda m: virel_iteration(m, c=1.0, p=1, num_iterations=k, evaluation="one_step"),
            dict(color="tab:blue", ls="--"),
        ),
        "VIREL one-step (p=1, c=10)": (
            lambda m: virel_iteration(m, c=10.0, p=1, num_iterations=k, evaluation="one_step"),
            dict(color="tab:purple", ls=":"),
        ),
        "VIREL exact (p=2, c=1)": (
            lambda m: virel_iteration(m, c=1.0, p=2, num_iterations=k, evaluation="exact"), dict(color="tab:green")
        ),
    }


def observed_rate(errors: torch.Tensor) -> float | None:
    tail = errors[(errors < 1e-3) & (errors > 1e-10)]
    if len(tail) < 3:
        return None
    return float((tail[1:] / tail[:-1]).median())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--states", type=int, default=50)
    parser.add_argument("--actions", type=int, default=5)
    parser.add_argument("--branching", type=int, default=3)
    parser.add_argument("--gamma", type=float, default=0.9)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.time()
    table = schemes(args.iterations)
    curves = {name: {"error": [], "suboptimality": [], "temperature": []} for name in table}
    summary = {name: {"final_error": [], "final_suboptimality": [], "rate": [], "iterations_to_1e-8": []} for name in table}
    for seed in range(args.seeds):
        mdp = garnet(args.states, args.actions, args.branching, gamma=args.gamma, seed=seed)
        q_star = regularized_optimum(mdp).q
        for name, (run, _) in table.items():
            result = run(mdp)
            error = (result.q - q_star).abs().amax((-1, -2))
            suboptimality = (q_star - regularized_policy_evaluation(mdp, result.policies)).abs().amax((-1, -2))
            curves[name]["error"].append(error)
            curves[name]["suboptimality"].append(suboptimality)
            if hasattr(result, "temperatures"):
                curves[name]["temperature"].append(result.temperatures)
            reached = (error < 1e-8).nonzero()
            summary[name]["final_error"].append(error[-1].item())
            summary[name]["final_suboptimality"].append(suboptimality[-1].item())
            summary[name]["rate"].append(observed_rate(error))
            summary[name]["iterations_to_1e-8"].append(int(reached[0]) + 1 if len(reached) else None)
        print(f"seed {seed} done ({time.time() - start:.1f}s)", flush=True)
    for name in table:
        if curves[name]["temperature"]:
            temps = torch.stack(curves[name]["temperature"])
            summary[name]["final_temperature"] = temps[:, -1].tolist()
        summary[name]["reaches_q_star"] = all(e < 1e-8 for e in summary[name]["final_error"])

    RESULTS.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8))
    iterations = torch.arange(1, args.iterations + 1)
    for name, (_, style) in table.items():
        for ax, key in ((axes[0], "error"), (axes[1], "suboptimality")):
            stacked = torch.stack(curves[name][key]).clamp_min(1e-16)
            ax.plot(iterations, stacked.median(0).values, label=name, **style)
            ax.fill_between(iterations, stacked.min(0).values, stacked.max(0).values, alpha=0.15, color=style["color"])
        if curves[name]["temperature"]:
            temps = torch.stack(curves[name]["temperature"]).clamp_min(1e-40)
            axes[2].plot(iterations, temps.median(0).values, label=name, **style)
    axes[0].set_title(r"$\|q_k - q^*\|_\infty$")
    axes[1].set_title(r"policy suboptimality $\|q^* - q^{\pi_k}\|_\infty$")
    axes[2].set_title(r"VIREL temperature $\epsilon_k$")
    for ax in axes:
        ax.set_yscale("log")
        ax.set_xlabel("iteration k")
    axes[0].legend(fontsize=7)
    fig.suptitle(
        f"Garnet({args.states}, {args.actions}, {args.branching}), gamma={args.gamma}, "
        f"{args.seeds} seeds (median, min-max band)"
    )
    fig.tight_layout()
    fig.savefig(RESULTS / "tabular.png", dpi=110)
    payload = {
        "command": "taskset -c 0 python benchmarks/virel_tabular.py " + " ".join(sys.argv[1:]),
        "args": vars(args),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "wall_time_s": round(time.time() - start, 2),
        "summary": summary,
    }
    (RESULTS / "tabular.json").write_text(json.dumps(payload, indent=2))
    for name, row in summary.items():
        print(name, {k: v for k, v in row.items() if k in ("rate", "iterations_to_1e-8", "reaches_q_star")})


if __name__ == "__main__":
    main()
