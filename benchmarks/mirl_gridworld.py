"""Sample-based QL vs SQL vs SQL_m vs MIRL on MIRL's tabular grid world.

Paper: Grau-Moya, Leibfried, Vrancx, "Soft Q-Learning with Mutual-Information Regularization", ICLR 2019:
Algorithm 1 (updates) and its tabular grid world (QL, SQL, SQL_m, MIRL; reaching the goal gives 9, every
other step -1, restart at a random location). The grid world is
:func:`torchrl_reg.tabular.mdp.mirl_grid_world` (8x8, actions up/right/down/left/stay, goal in
a corner); the agent only sees sampled transitions.

Every method is the same tabular learner, one configuration each (as the deep losses are):

    Q(s, a) <- (1 - alpha_Q) Q(s, a) + alpha_Q (r + gamma * V(s'))
    V(s')   =  max_a' Q(s', a')                                   QL
            =  (1/beta) ln sum_a' rho(a') exp(beta Q(s', a'))      SQL, SQL_m (rho uniform), MIRL (rho learned)
    rho     <- (1 - alpha_rho) rho + alpha_rho pi(.|s)  at every visited s   SQL_m, MIRL
    beta_i  =  c * i                                                          SQL, SQL_m, MIRL (a linear schedule)
    behaviour: argmax_a pi(a|s) (QL: argmax Q), with probability eps a sample of rho
               (uniform for QL and SQL, the learned rho for SQL_m and MIRL)

with ``pi ∝ rho_backup exp(beta Q)``. The equations are those of :mod:`torchrl_reg.functional`
(``prior_soft_value``, ``prior_boltzmann_policy``, ``prior_update``) that ``MIRLLoss`` uses;
all methods and seeds run as one batch. A terminal never happens (the goal restarts the
agent), so there is no bootstrap cut.

Two learning curves: the reward per step collected while learning (the behaviour policy,
exploration included), and the exact normalized discounted return of the greedy policy
(``argmax pi``) from the restart distribution, computed by policy evaluation on the known
MDP: ``(J(pi) - J(uniform)) / (J(pi*) - J(uniform))``, 1 is optimal. The JSON also records
the seed-mean of both curves ("area under the curve") and the learned priors.

    python benchmarks/mirl_gridworld.py --seeds 20 --steps 20000 --q-lr 0.1 --beta-slope 1e-3 --tag slow_beta
    python benchmarks/mirl_gridworld.py --seeds 20 --steps 20000 --q-lr 0.3 --beta-slope 1e-2 --tag fast_beta
"""
from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

from torchrl_reg import functional as F
from torchrl_reg.tabular.mdp import FiniteMDP, mirl_grid_world

RESULTS = Path(__file__).parent / "results" / "mirl"
METHODS = ("QL", "SQL", "SQL_m", "MIRL")
# (soft backup, learned prior in the backup, learned prior for exploration)
CONFIGS = {"QL": (False, False, False), "SQL": (True, False, False), "SQL_m": (True, False, True), "MIRL": (True, True, True)}


def greedy_values(mdp: FiniteMDP, policy: torch.Tensor) -> torch.Tensor:
    """Discounted return from the initial distribution of deterministic policies ``[B, S]``."""
    num_states = mdp.num_states
    one_hot = torch.nn.functional.one_hot(policy, mdp.num_actions).double()
    p_pi = torch.einsum("bsa,sat->bst", one_hot, mdp.transitions)
    r_pi = (one_hot * mdp.rewards).sum(-1)
    eye = torch.eye(num_states, dtype=torch.float64)
    v = torch.linalg.solve(eye - mdp.gamma * p_pi, r_pi.unsqueeze(-1)).squeeze(-1)
    return v @ mdp.initial_distribution


def reference_returns(mdp: FiniteMDP) -> tuple[float, float]:
    """Discounted returns of the optimal policy (value iteration) and of the uniform policy."""
    q = torch.zeros(mdp.num_states, mdp.num_actions, dtype=torch.float64)
    for _ in range(5000):
        q_new = mdp.rewards + mdp.gamma * mdp.expected_next(q.max(-1).values)
        if (q_new - q).abs().max() < 1e-10:
            break
        q = q_new
    optimal = greedy_values(mdp, q.argmax(-1).unsqueeze(0)).item()
    uniform = torch.full((mdp.num_states, mdp.num_actions), 1.0 / mdp.num_actions, dtype=torch.float64)
    p_u = torch.einsum("sa,sat->st", uniform, mdp.transitions)
    v_u = torch.linalg.solve(
        torch.eye(mdp.num_states, dtype=torch.float64) - mdp.gamma * p_u, (uniform * mdp.rewards).sum(-1)
    )
    return optimal, (v_u @ mdp.initial_distribution).item()


def run(args: argparse.Namespace) -> dict:
    mdp = mirl_grid_world(args.size, gamma=args.gamma)
    num_states, num_actions = mdp.num_states, mdp.num_actions
    methods = list(args.methods)
    rows = len(methods) * args.seeds
    soft = torch.tensor([CONFIGS[m][0] for m in methods for _ in range(args.seeds)])
    prior_in_backup = torch.tensor([CONFIGS[m][1] for m in methods for _ in range(args.seeds)]).unsqueeze(-1)
    prior_learned = torch.tensor([CONFIGS[m][2] for m in methods for _ in range(args.seeds)])
    generator = torch.Generator().manual_seed(args.seed)

    q = torch.zeros(rows, num_states, num_actions, dtype=torch.float64)
    rho = torch.full((rows, num_actions), 1.0 / num_actions, dtype=torch.float64)
    uniform = rho.clone()
    state = torch.multinomial(mdp.initial_distribution.expand(rows, -1), 1, generator=generator).squeeze(-1)
    index = torch.arange(rows)
    optimal, uniform_return = reference_returns(mdp)
    eval_steps, curves, reward_sums = [], [], torch.zeros(rows, dtype=torch.float64)
    window_rewards = []

    def evaluate(step: int, beta: float) -> None:
        backup_prior = torch.where(prior_in_backup, rho, uniform)
        logits = torch.log(backup_prior).unsqueeze(1) + beta * q
        greedy = torch.where(soft.view(-1, 1), logits.argmax(-1), q.argmax(-1))
        returns = greedy_values(mdp, greedy)
        eval_steps.append(step)
        curves.append(((returns - uniform_return) / (optimal - uniform_return)).tolist())

    start = time.perf_counter()
    for i in range(1, args.steps + 1):
        beta = args.beta_slope * i
        q_s = q[index, state]
        backup_prior = torch.where(prior_in_backup, rho, uniform)
        # One batched row per (method, seed): its own rho; the equations broadcast over rows.
        pi = F.prior_boltzmann_policy(q_s, backup_prior, beta)
        exploit = torch.where(soft, (torch.log(backup_prior) + beta * q_s).argmax(-1), q_s.argmax(-1))
        explore_dist = torch.where(prior_learned.unsqueeze(-1), rho, uniform)
        explore = torch.multinomial(explore_dist, 1, generator=generator).squeeze(-1)
        action = torch.where(torch.rand(rows, generator=generator, dtype=torch.float64) < args.eps, explore, exploit)
        reward = mdp.rewards[state, action]
        next_state = torch.multinomial(mdp.transitions[state, action], 1, generator=generator).squeeze(-1)
        # Prior update with pi_i(.|s_i) of the visited state, before the Q update (Algorithm 1).
        rho = torch.where(prior_learned.unsqueeze(-1), F.prior_update(rho, pi, args.prior_lr), rho)
        q_next = q[index, next_state]
        backup_prior = torch.where(prior_in_backup, rho, uniform)
        v_next = torch.where(soft, F.prior_soft_value(q_next, backup_prior, beta), q_next.max(-1).values)
        target = reward + mdp.gamma * v_next
        q[index, state, action] += args.q_lr * (target - q[index, state, action])
        reward_sums += reward
        state = next_state
        if i % args.eval_every == 0:
            evaluate(i, beta)
            window_rewards.append((reward_sums / args.eval_every).tolist())
            reward_sums.zero_()
    elapsed = time.perf_counter() - start

    curves_t = torch.tensor(curves).view(len(eval_steps), len(methods), args.seeds)
    rewards_t = torch.tensor(window_rewards).view(len(eval_steps), len(methods), args.seeds)
    rho_t = rho.view(len(methods), args.seeds, num_actions)
    results = {}
    for k, method in enumerate(methods):
        curve = curves_t[:, k]
        # Area under the normalized-return curve: how fast a method gets close to optimal.
        results[method] = {
            "normalized_return_mean": curve.mean(-1).tolist(),
            "normalized_return_std": curve.std(-1).tolist(),
            "reward_per_step_mean": rewards_t[:, k].mean(-1).tolist(),
            "reward_per_step_std": rewards_t[:, k].std(-1).tolist(),
            "mean_reward_per_step_mean": rewards_t[:, k].mean(0).mean().item(),
            "mean_reward_per_step_std": rewards_t[:, k].mean(0).std().item(),
            "area_under_curve_mean": curve.mean(0).mean().item(),
            "area_under_curve_std": curve.mean(0).std().item(),
            "final_normalized_return_mean": curve[-1].mean().item(),
            "final_normalized_return_std": curve[-1].std().item(),
            "final_prior_mean": rho_t[k].mean(0).tolist(),
        }
    return {
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "config": {**vars(args), "out": str(args.out)},
        "grid_world": {
            "size": args.size,
            "num_states": num_states,
            "actions": ["up", "right", "down", "left", "stay"][:num_actions],
            "gamma": args.gamma,
            "optimal_return": optimal,
            "uniform_return": uniform_return,
        },
        "eval_steps": eval_steps,
        "results": results,
        "wall_clock_s": elapsed,
        "machine": platform.platform(),
        "torch": torch.__version__,
    }


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = summary["eval_steps"]
    seeds = summary["config"]["seeds"]
    cfg = summary["config"]
    fig, (ax_reward, ax_greedy, ax_prior) = plt.subplots(
        1, 3, figsize=(15, 4), gridspec_kw={"width_ratios": [2, 2, 1]}
    )
    for method, res in summary["results"].items():
        for ax, key in ((ax_reward, "reward_per_step"), (ax_greedy, "normalized_return")):
            mean = torch.tensor(res[f"{key}_mean"])
            sem = torch.tensor(res[f"{key}_std"]) / seeds**0.5
            ax.plot(steps, mean, label=method)
            ax.fill_between(steps, mean - sem, mean + sem, alpha=0.2)
    ax_reward.set_ylabel(f"reward per step while learning (windows of {cfg['eval_every']})")
    ax_greedy.set_ylabel("normalized return of the greedy policy")
    ax_greedy.axhline(1.0, color="grey", lw=0.5)
    for ax in (ax_reward, ax_greedy):
        ax.set_xlabel("environment steps")
        ax.legend()
    size = summary["grid_world"]["size"]
    fig.suptitle(
        f"MIRL grid world {size}x{size}, {seeds} seeds (mean ± s.e.m.); "
        f"alpha_Q={cfg['q_lr']}, beta_i={cfg['beta_slope']}*i, alpha_rho={cfg['prior_lr']}, eps={cfg['eps']}"
    )
    actions = summary["grid_world"]["actions"]
    width = 0.35
    for k, method in enumerate(m for m in ("SQL_m", "MIRL") if m in summary["results"]):
        prior = summary["results"][method]["final_prior_mean"]
        ax_prior.bar([a + k * width for a in range(len(actions))], prior, width, label=method)
    ax_prior.set_xticks([a + width / 2 for a in range(len(actions))], actions)
    ax_prior.set_title("learned prior rho at the end")
    ax_prior.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=8)
    parser.add_argument("--gamma", type=float, default=0.99)
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--q-lr", type=float, default=0.5, help="alpha_Q")
    parser.add_argument("--prior-lr", type=float, default=1e-3, help="alpha_rho")
    parser.add_argument("--beta-slope", type=float, default=2e-3, help="c of beta_i = c * i")
    parser.add_argument("--eps", type=float, default=0.1, help="exploration probability")
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--tag", default="", help="suffix of the result files")
    args = parser.parse_args(argv)
    # Tensors of a few hundred entries: extra intra-op threads only contend for the cores.
    torch.set_num_threads(1)
    summary = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "mirl_gridworld" + (f"_{args.tag}" if args.tag else "")
    (args.out / f"{stem}.json").write_text(json.dumps(summary, indent=1))
    plot(summary, args.out / f"{stem}.png")
    for method, res in summary["results"].items():
        print(
            f"{method:6s} reward/step {res['mean_reward_per_step_mean']:.3f} ± {res['mean_reward_per_step_std']:.3f}  "
            f"greedy area {res['area_under_curve_mean']:.3f} ± {res['area_under_curve_std']:.3f}  "
            f"greedy final {res['final_normalized_return_mean']:.3f} ± {res['final_normalized_return_std']:.3f}  "
            f"rho {[round(p, 3) for p in res['final_prior_mean']]}"
        )
    print(f"wall clock {summary['wall_clock_s']:.1f} s")


if __name__ == "__main__":
    main()
