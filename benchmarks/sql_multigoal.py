"""Soft Q-learning vs SAC on MultiGoal-v0: goals reached by the stochastic policy, paths, Q contours, speed.

    OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/sql_multigoal.py --seeds 0 1 2

Haarnoja et al., "Reinforcement Learning with Deep Energy-Based Policies", ICML 2017, arXiv:1702.08165,
Section 5.1: on the multi-goal point mass, soft Q-learning's sampler keeps every goal reachable while a
unimodal policy commits to one. Each method is trained with its recipe (``recipes/sql.py``,
``recipes/sac.py``, both at ``env=multigoal``: same budget and network sizes; SAC sees the same
0.1 reward scale), then its stochastic policy plays ``--episodes`` episodes from the env's start
distribution; an episode "reaches" goal g if it terminates within distance 1 of g. Written to
``benchmarks/results/sql/``: ``multigoal.json`` (per seed: episodes per goal, goals reached, mean
return, updates/s of the run) and ``multigoal.png`` (paths of seed 0 of both methods, SQL's Q(0, a)
contours with its sampler's actions at the origin). Updates per second come from the recipes' own
measurement, both pinned to the same core, so their ratio is the SQL/SAC speed ratio at these sizes.
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
from torchrl_reg.envs.multigoal import GOALS, goal_index
from torchrl_reg.recipe_utils import compose_config, load_checkpoint, make_env

OUT = Path(__file__).resolve().parent / "results" / "sql"
CONF = Path(__file__).resolve().parents[1] / "recipes" / "conf"
RECIPES = {"sql": sql, "sac": sac}


def train_and_load(method: str, seed: int, run_dir: Path, overrides: list[str]):
    """Train with the recipe, then rebuild its policy and loss from the final checkpoint."""
    recipe = RECIPES[method]
    extra = ["loss.reward_scale=0.1"] if method == "sac" else []
    cfg = recipe.validate(compose_config(CONF, method, [f"run_dir={run_dir}", f"seed={seed}", "env=multigoal",
                                                      "logger.progress_bar=false", *extra, *overrides]))
    metrics = recipe.train(cfg)
    env = make_env(cfg.env, num_envs=1, seed=seed)
    policy, loss = recipe.from_config(cfg, env, torch.device("cpu"))
    loss.load_state_dict(load_checkpoint(run_dir / "checkpoint.pt")["loss_module"])
    return metrics, policy, loss


@torch.no_grad()
def play(policy, episodes: int, seed: int) -> tuple[list[np.ndarray], list[int], list[float]]:
    """Stochastic episodes: the positions visited, the goal reached (-1 for none) and the return."""
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--frames", type=int, default=6000)
    parser.add_argument("--speed-updates", type=int, default=200)
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/sql_multigoal"))
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(1)
    overrides = [f"collector.total_frames={args.frames}"]
    results: dict = {"command": "OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/sql_multigoal.py --seeds "
                     f"{' '.join(map(str, args.seeds))} --episodes {args.episodes} --frames {args.frames} "
                     f"--speed-updates {args.speed_updates}", "frames": args.frames, "episodes": args.episodes}
    figures = {}
    for method in ("sql", "sac"):
        runs = []
        for seed in args.seeds:
            metrics, policy, loss = train_and_load(method, seed, args.scratch / f"{method}-{seed}", overrides)
            paths, goals, returns = play(policy, args.episodes, seed)
            counts = [goals.count(g) for g in range(len(GOALS))]
            runs.append({"seed": seed, "episodes_per_goal": counts, "no_goal": goals.count(-1),
                         "goals_reached": sum(c > 0 for c in counts), "mean_return": float(np.mean(returns)),
                         "eval_returns_deterministic": metrics["eval_returns"], "updates_per_s": metrics["updates_per_s"]})
            print(method, runs[-1], flush=True)
            if seed == args.seeds[0]:
                figures[method] = (paths, policy, loss)
            results[method] = runs
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "multigoal.json").write_text(json.dumps(results, indent=2) + "\n")  # partial, per run
    results["updates_per_s_ratio_sql_over_sac"] = float(
        np.mean([r["updates_per_s"] for r in results["sql"]]) / np.mean([r["updates_per_s"] for r in results["sac"]])
    )
    results["speed_halfcheetah_sizes"] = speed_probe(args.speed_updates)
    (args.out / "multigoal.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(figures, args.out / "multigoal.png")


@torch.no_grad()
def plot(figures: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 5))
    for ax, method in zip(axes[:2], ("sql", "sac")):
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
