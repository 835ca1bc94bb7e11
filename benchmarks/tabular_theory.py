"""Pictures of the theory on a Garnet MDP, computed exactly with ``torchrl_reg.tabular`` (float64).

1. ``error_propagation.png``: ``||q* - q_{pi_k}||_inf`` along iterations for VI, soft VI, MD-VI
   (KL only), M-VI and IQ-DP, without errors (left) and with i.i.d. Gaussian errors added to every
   evaluation step (right, mean and range over seeds). q* and q_pi are the unregularized values:
   the entropy-regularized schemes converge to the optimum of the regularized MDP, a small bias;
   KL-only MD-VI averages the errors out while VI plateaus ([IQ] Theorem 2, [MRL] bounds).
2. ``action_gap.png``: the action gap of M-VI along iterations for several alpha, divided by the
   gap of the (1-alpha)*tau-regularized optimum; it tends to 1/(1-alpha) (dashed), not to the
   quoted (1+alpha)/(1-alpha) (dotted); see ``torchrl_reg.tabular.theory``.

    python benchmarks/tabular_theory.py
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
    implicit_q_dp,
    mirror_descent_vi,
    munchausen_vi,
    regularized_optimum,
    regularized_policy_evaluation,
    soft_value_iteration,
    value_iteration,
)
from torchrl_reg.tabular.mdp import garnet  # noqa: E402
from torchrl_reg.tabular.theory import (  # noqa: E402
    approximate_vi_bound,
    kl_only_mdvi_bound,
    munchausen_action_gap_ratio,
)

RESULTS = Path(__file__).parent / "results" / "tabular_theory"


def methods(args: argparse.Namespace) -> dict:
    """Name -> (run(mdp, errors) -> DPResult, plot style)."""
    k, alpha, tau, kl = args.iterations, args.alpha, args.tau, args.kl_coef
    entropy = (1 - alpha) * tau
    return {
        "VI": (lambda m, e: value_iteration(m, num_iterations=k, errors=e), dict(color="k")),
        f"soft VI (tau={entropy:g})": (
            lambda m, e: soft_value_iteration(m, tau=entropy, num_iterations=k, errors=e), dict(color="tab:orange")
        ),
        f"MD-VI (KL only, lambda={kl:g})": (
            lambda m, e: mirror_descent_vi(m, kl_coef=kl, entropy_coef=0.0, num_iterations=k, errors=e),
            dict(color="tab:green"),
        ),
        f"M-VI (alpha={alpha:g}, tau={tau:g})": (
            lambda m, e: munchausen_vi(m, alpha=alpha, tau=tau, num_iterations=k, errors=e), dict(color="tab:blue")
        ),
        f"IQ-DP (alpha={alpha:g}, tau={tau:g})": (
            lambda m, e: implicit_q_dp(m, alpha=alpha, tau=tau, num_iterations=k, errors=e),
            dict(color="tab:red", linestyle="--"),
        ),
    }


def suboptimality(mdp, q_star: torch.Tensor, policies: torch.Tensor) -> torch.Tensor:
    return (q_star - regularized_policy_evaluation(mdp, policies)).abs().flatten(1).max(-1).values


def error_propagation(args: argparse.Namespace, mdp, q_star: torch.Tensor) -> dict:
    shape = (args.iterations, mdp.num_states, mdp.num_actions)
    error_sets = [
        args.sigma * torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        for seed in range(args.error_seeds)
    ]
    fig, (ax_exact, ax_noisy) = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    summary = {}
    for name, (run, style) in methods(args).items():
        exact = suboptimality(mdp, q_star, run(mdp, None).policies)
        noisy = torch.stack([suboptimality(mdp, q_star, run(mdp, errors).policies) for errors in error_sets])
        iterations = torch.arange(1, args.iterations + 1)
        ax_exact.plot(iterations, exact.clamp(min=1e-16), label=name, **style)
        ax_noisy.plot(iterations, noisy.mean(0), label=name, **style)
        ax_noisy.fill_between(iterations, noisy.min(0).values, noisy.max(0).values, alpha=0.15, color=style["color"])
        summary[name] = {
            "exact_final": exact[-1].item(),
            "noisy_mean_last_100": noisy[:, -100:].mean().item(),
            "noisy_mean_iterations_50_150": noisy[:, 50:150].mean().item(),
        }
    # The explicit error-propagation bounds (torchrl_reg.tabular.theory), on the first error seed.
    errors = error_sets[0]
    vi_gap = suboptimality(mdp, q_star, value_iteration(mdp, num_iterations=args.iterations, errors=errors).policies)
    vi_bound = approximate_vi_bound(errors, gamma=mdp.gamma, v_max=mdp.r_max / (1 - mdp.gamma))
    md_gap = suboptimality(
        mdp, q_star,
        mirror_descent_vi(mdp, kl_coef=args.kl_coef, entropy_coef=0.0, num_iterations=args.iterations, errors=errors).policies,
    )
    md_bound = kl_only_mdvi_bound(
        errors, gamma=mdp.gamma, r_max=mdp.r_max, kl_coef=args.kl_coef, num_actions=mdp.num_actions
    )
    summary["bounds_seed0"] = {
        "vi_max_gap_over_bound": (vi_gap / vi_bound).max().item(),
        "kl_only_md_vi_max_gap_over_bound": (md_gap[1:] / md_bound[1:]).max().item(),
    }
    ax_exact.set_title("exact (no error)")
    ax_noisy.set_title(f"errors ~ N(0, {args.sigma:g}^2) i.i.d.: mean and range over {args.error_seeds} seeds")
    # log-x on the noisy runs: an error averaged over k iterations decays like a line there.
    ax_noisy.set_xscale("log")
    for ax in (ax_exact, ax_noisy):
        ax.set_yscale("log")
        ax.set_xlabel("iteration k")
        ax.grid(alpha=0.3)
    ax_exact.set_ylabel("||q* - q_pi_k||_inf")
    ax_exact.legend(fontsize=8)
    fig.suptitle(
        f"Garnet(S={args.states}, A={args.actions}, branching={args.branching}, gamma={args.gamma:g}, seed={args.seed})"
    )
    fig.tight_layout()
    fig.savefig(RESULTS / "error_propagation.png", dpi=120)
    plt.close(fig)
    return summary


def action_gap(args: argparse.Namespace, mdp) -> dict:
    fig, (ax_gap, ax_ratio) = plt.subplots(1, 2, figsize=(12, 4.5))
    summary = {}
    for alpha, color in zip(args.gap_alphas, ("k", "tab:orange", "tab:green", "tab:blue", "tab:red")):
        result = munchausen_vi(mdp, alpha=alpha, tau=args.tau, num_iterations=args.gap_iterations)
        optimum = regularized_optimum(mdp, entropy_coef=(1 - alpha) * args.tau)
        gap_k = result.q.max(-1, keepdim=True).values - result.q
        gap_star = optimum.q.max(-1, keepdim=True).values - optimum.q
        mask = gap_star > 1e-6
        # Mean over (s, a) of the gap, and of its ratio to the regularized optimum's gap.
        ratio = (gap_k[:, mask] / gap_star[mask]).mean(-1)
        iterations = torch.arange(1, args.gap_iterations + 1)
        ax_gap.plot(iterations, gap_k.mean((-1, -2)), color=color, label=f"alpha={alpha:g}")
        ax_ratio.plot(iterations, ratio, color=color, label=f"alpha={alpha:g}")
        exact_limit = munchausen_action_gap_ratio(alpha)
        ax_ratio.axhline(exact_limit, color=color, linestyle="--", linewidth=0.8)
        ax_ratio.axhline((1 + alpha) / (1 - alpha), color=color, linestyle=":", linewidth=0.8)
        summary[f"alpha={alpha:g}"] = {
            "final_ratio_mean": ratio[-1].item(),
            "final_ratio_min": (gap_k[-1][mask] / gap_star[mask]).min().item(),
            "final_ratio_max": (gap_k[-1][mask] / gap_star[mask]).max().item(),
            "derived_limit_1_over_1_minus_alpha": exact_limit,
            "slide_claim_1_plus_alpha_over_1_minus_alpha": (1 + alpha) / (1 - alpha),
        }
    ax_gap.set_title("mean over (s, a) of max_b q_k(s, b) - q_k(s, a)")
    ax_gap.set_yscale("log")
    ax_ratio.set_title("mean of gap_k / gap of the (1-alpha)*tau-regularized optimum")
    ax_ratio.set_yscale("log")
    for ax in (ax_gap, ax_ratio):
        ax.set_xlabel("iteration k")
        ax.grid(alpha=0.3)
    ax_gap.legend(fontsize=8)
    handles, labels = ax_ratio.get_legend_handles_labels()
    handles += [
        plt.Line2D([], [], color="gray", linestyle="--", linewidth=0.8),
        plt.Line2D([], [], color="gray", linestyle=":", linewidth=0.8),
    ]
    labels += ["1/(1-alpha) (derived limit)", "(1+alpha)/(1-alpha) (quoted claim)"]
    ax_ratio.legend(handles, labels, fontsize=8, loc="center right")
    fig.suptitle(f"Munchausen VI action gap, tau={args.tau:g}, Garnet(S={args.states}, A={args.actions}, seed={args.seed})")
    fig.tight_layout()
    fig.savefig(RESULTS / "action_gap.png", dpi=120)
    plt.close(fig)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--states", type=int, default=50)
    parser.add_argument("--actions", type=int, default=4)
    parser.add_argument("--branching", type=int, default=3)
    parser.add_argument("--gamma", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--iterations", type=int, default=1500)
    parser.add_argument("--gap-iterations", type=int, default=300)
    parser.add_argument("--alpha", type=float, default=0.9)
    parser.add_argument("--tau", type=float, default=0.1)
    parser.add_argument("--kl-coef", type=float, default=0.1)
    parser.add_argument("--sigma", type=float, default=0.5)
    parser.add_argument("--error-seeds", type=int, default=5)
    parser.add_argument("--gap-alphas", type=float, nargs="+", default=[0.0, 0.5, 0.75, 0.9])
    args = parser.parse_args()
    # Tiny tensors: threads only add overhead.
    torch.set_num_threads(1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    mdp = garnet(args.states, args.actions, args.branching, gamma=args.gamma, seed=args.seed)
    q_star = regularized_optimum(mdp).q
    record = {
        "command": "python " + " ".join(["benchmarks/tabular_theory.py", *sys.argv[1:]]),
        "arguments": vars(args),
        "torch": torch.__version__,
        "machine": f"{platform.machine()} {platform.processor()} (1 torch thread)",
        "error_propagation": error_propagation(args, mdp, q_star),
        "action_gap": action_gap(args, mdp),
    }
    record["seconds"] = time.perf_counter() - start
    (RESULTS / "tabular_theory.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
