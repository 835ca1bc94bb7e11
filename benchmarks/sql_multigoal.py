"""Soft Q-learning vs SAC on MultiGoal-v0: goals reached by the stochastic policy, paths, Q contours, speed.

    OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/sql_multigoal.py --method sql --seed 0   # one run
    OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/sql_multigoal.py --summarize             # table + figure
    OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/sql_multigoal.py --speed                 # updates/s ratio

Haarnoja et al., "Reinforcement Learning with Deep Energy-Based Policies", ICML 2017, arXiv:1702.08165,
Section 5.1: on the multi-goal point mass, soft Q-learning's sampler keeps every goal reachable while a
unimodal policy commits to one. Each method is trained with its recipe (``recipes/sql.py``,
``recipes/sac.py``, both at ``env=multigoal``: same budget and network sizes; SAC sees the same
0.1 reward scale), then its stochastic policy (torch seeded with the run's seed) plays ``--episodes``
episodes from the env's start distribution; an episode "reaches" goal g if it terminates within
distance 1 of g. One run writes ``benchmarks/results/sql/multigoal/<method>-<seed>.json`` (episodes per
goal, goals reached, mean return, the recipe's deterministic evaluations and updates/s) and keeps its
checkpoint under ``--scratch``; ``--summarize`` gathers the runs into ``multigoal/summary.json`` and
draws ``multigoal/multigoal.png`` (stochastic paths of seed 0 of both methods, SQL's ``Q(0, a)`` with its
sampler's actions at the origin); ``--speed`` times both losses' updates at HalfCheetah sizes on one core.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from tensordict import TensorDict
from torchrl.envs.utils import ExplorationType, set_exploration_type

from recipes import sac, sql
from torchrl_reg.configs import compose_config
from torchrl_reg.envs import make_env
from torchrl_reg.envs.multigoal import GOALS, goal_index
from torchrl_reg.run import read_checkpoint

OUT = Path(__file__).resolve().parent / "results" / "sql" / "multigoal"
CONF = Path(__file__).resolve().parents[1] / "recipes" / "conf"
RECIPES = {"sql": sql, "sac": sac}


def config(method: str, seed: int, run_dir: Path, frames: int):
    extra = ["loss.reward_scale=0.1"] if method == "sac" else []
    overrides = [f"run_dir={run_dir}", f"seed={seed}", "env=multigoal", "logger.progress_bar=false",
                 f"collector.total_frames={frames}", *extra]
    return RECIPES[method].validate(compose_config(CONF, method, overrides))


def load(method: str, seed: int, run_dir: Path, frames: int):
    """The run's policy and loss, rebuilt by the recipe and loaded from its final checkpoint."""
    cfg = config(method, seed, run_dir, frames)
    env = make_env(cfg.env, num_envs=1, seed=seed)
    policy, loss = RECIPES[method].from_config(cfg, env, torch.device("cpu"))
    env.close()
    loss.load_state_dict(read_checkpoint(run_dir / "checkpoint.pt")["loss_module"])
    return policy, loss


@torch.no_grad()
def play(policy, episodes: int, seed: int) -> tuple[list[np.ndarray], list[int], list[float]]:
    """Stochastic episodes: the positions visited, the goal reached (-1 for none) and the return."""
    torch.manual_seed(seed)
    env = gym.make("MultiGoal-v0")
    paths, goals, returns = [], [], []
    for episode in range(episodes):
        obs, _ = env.reset(seed=10_000 * seed + episode)
        path, total, done, truncated = [obs], 0.0, False, False
        while not (done or truncated):
            with set_exploration_type(ExplorationType.RANDOM):
                action = policy(TensorDict({"observation": torch.as_tensor(obs).unsqueeze(0)}, [1]))["action"][0]
            obs, reward, done, truncated, _ = env.step(action.numpy())
            path.append(obs)
            total += reward
        paths.append(np.stack(path))
        goals.append(int(goal_index(obs)) if done else -1)
        returns.append(total)
    return paths, goals, returns


def speed_probe(num_updates: int) -> dict[str, float]:
    """Updates per second of both losses at HalfCheetah sizes (obs 17, action 6, 2x128, batch 128), one core."""
    import time

    from torchrl.data import Bounded

    results = {}
    for method in ("sql", "sac"):
        cfg = RECIPES[method].validate(compose_config(CONF, method, ["env=halfcheetah", "buffer.batch_size=128",
                                                                     "network.hidden=[128,128]", "compile=false"]))
        env = make_env(cfg.env, num_envs=1, seed=0)
        _, loss = RECIPES[method].from_config(cfg, env, torch.device("cpu"))
        env.close()
        optim = torch.optim.Adam(loss.parameters(), lr=3e-4)
        batch = 128
        spec = Bounded(-1.0, 1.0, shape=(6,))
        td = TensorDict({"observation": torch.randn(batch, 17), "action": spec.rand((batch,)),
                         "next": {"observation": torch.randn(batch, 17), "reward": torch.randn(batch, 1),
                                  "done": torch.zeros(batch, 1, dtype=torch.bool),
                                  "terminated": torch.zeros(batch, 1, dtype=torch.bool)}}, [batch])

        def step():
            out = loss(td.clone())
            sum(v for k, v in out.items() if k.startswith("loss")).backward()
            optim.step()
            optim.zero_grad()

        for _ in range(10):
            step()
        start = time.perf_counter()
        for _ in range(num_updates):
            step()
        results[method] = num_updates / (time.perf_counter() - start)
    results["sql_over_sac"] = results["sql"] / results["sac"]
    return results


def run_one(method: str, seed: int, args: argparse.Namespace) -> None:
    run_dir = args.scratch / f"{method}-{seed}"
    if not (run_dir / "metrics.json").exists():  # a finished run is evaluated again, not retrained
        RECIPES[method].train(config(method, seed, run_dir, args.frames))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    policy, _ = load(method, seed, run_dir, args.frames)
    _, goals, returns = play(policy, args.episodes, seed)
    counts = [goals.count(g) for g in range(len(GOALS))]
    result = {
        "command": f"OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/sql_multigoal.py --method {method} --seed {seed} "
        f"--frames {args.frames} --episodes {args.episodes}",
        "method": method, "seed": seed, "frames": args.frames, "episodes": args.episodes,
        "episodes_per_goal": counts, "no_goal": goals.count(-1), "goals_reached": sum(c > 0 for c in counts),
        "mean_return_stochastic": float(np.mean(returns)), "eval_frames": metrics["eval_frames"],
        "eval_returns_deterministic": metrics["eval_returns"], "updates_per_s": metrics["updates_per_s"],
        "wall_time_s": metrics["wall_time_s"],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{method}-{seed}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(result, flush=True)


def summarize(args: argparse.Namespace) -> None:
    runs = {m: [json.loads(p.read_text()) for p in sorted(args.out.glob(f"{m}-*.json"))] for m in RECIPES}
    summary = {"command": "OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/sql_multigoal.py --summarize"}
    for method, rows in runs.items():
        if rows:
            summary[method] = {
                "seeds": [r["seed"] for r in rows],
                "goals_reached": [r["goals_reached"] for r in rows],
                "episodes_per_goal": [r["episodes_per_goal"] for r in rows],
                "episodes_without_goal": [r["no_goal"] for r in rows],
                "final_eval_return_deterministic": [r["eval_returns_deterministic"][-1] for r in rows],
                "updates_per_s": [r["updates_per_s"] for r in rows],
            }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    figures = {}
    for method in RECIPES:
        run_dir = args.scratch / f"{method}-0"
        if (run_dir / "checkpoint.pt").exists():
            policy, loss = load(method, 0, run_dir, args.frames)
            figures[method] = (play(policy, args.episodes, 0)[0], policy, loss)
    plot(figures, args.out / "multigoal.png")
    print(json.dumps(summary, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", choices=sorted(RECIPES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--summarize", action="store_true")
    parser.add_argument("--speed", action="store_true")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--frames", type=int, default=6000)
    parser.add_argument("--speed-updates", type=int, default=100)
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/sql_multigoal"))
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.method is not None:
        run_one(args.method, args.seed, args)
    if args.speed:
        speed = speed_probe(args.speed_updates)
        speed["command"] = f"OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/sql_multigoal.py --speed --speed-updates {args.speed_updates}"
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "speed.json").write_text(json.dumps(speed, indent=2) + "\n")
        print(speed)
    if args.summarize:
        summarize(args)


@torch.no_grad()
def plot(figures: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 5))
    for ax, method in zip(axes[:2], ("sql", "sac")):
        if method not in figures:
            ax.set_title(f"{method.upper()}: not run")
            continue
        for p in figures[method][0]:
            ax.plot(p[:, 0], p[:, 1], alpha=0.7)
        ax.scatter(GOALS[:, 0], GOALS[:, 1], c="red", s=80, marker="*", zorder=3)
        for g in GOALS:
            ax.add_patch(plt.Circle(g, 1.0, fill=False, color="red", ls="--"))
        ax.set(xlim=(-7, 7), ylim=(-7, 7), aspect="equal", title=f"{method.upper()}: stochastic paths (seed 0)")
    _, policy, loss = figures["sql"]
    grid = torch.linspace(-1, 1, 101)
    a0, a1 = torch.meshgrid(grid, grid, indexing="xy")
    actions = torch.stack([a0, a1], -1).reshape(-1, 2)
    td = TensorDict({"observation": torch.zeros(actions.shape[0], 2), "action": actions}, [actions.shape[0]])
    q = loss.critic.qvalue_network(td)["state_action_value"].reshape(101, 101)
    contour = axes[2].contourf(a0, a1, q, levels=30, cmap="viridis")
    fig.colorbar(contour, ax=axes[2])
    samples = policy(TensorDict({"observation": torch.zeros(200, 2)}, [200]))["action"]
    axes[2].scatter(samples[:, 0], samples[:, 1], s=6, c="white", alpha=0.8)
    axes[2].set(xlabel="a_x", ylabel="a_y", aspect="equal", title="SQL: Q(s=0, a) and sampler actions at s=0")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
