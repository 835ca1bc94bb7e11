"""Failure and success rates on the problems with exact answers: synthetic trees, the D-chain and FrozenLake, single-tree and batched."""
from __future__ import annotations

import json

import numpy as np
import torch

from benchmarks.planning.common import COMPARED, OUT, write_result
from benchmarks.planning.speed import knobs_of
from torchrl_reg.planning import (
    DChain,
    FrozenLakeSimulator,
    make_search,
    RandomRollout,
    synthetic_tree_q,
    SyntheticTree,
    TensorDChain,
    TensorFrozenLake,
)


# -- synthetic trees ------------------------------------------------------------------------------
PARAMS = dict(tau=0.05, alpha=0.05, beta_0=0.05, eps=0.1)


def synthetic(args) -> None:
    budgets = [int(b) for b in args.budgets.split(",")]
    failures = {a: np.zeros((args.trees, len(budgets))) for a in COMPARED}
    soft_failures = np.zeros((args.trees, len(budgets)))
    for t in range(args.trees):
        tree = SyntheticTree(args.branching, args.depth, seed=1000 + t, noise_std=args.noise, leaf_scale=args.leaf_scale)
        best = int(np.argmax(synthetic_tree_q(tree, None)))
        soft_best = int(np.argmax(synthetic_tree_q(tree, PARAMS["tau"])))
        for j, n in enumerate(budgets):
            for algorithm in COMPARED:
                tree.reseed_noise(t * 1000 + j)
                search = make_search(algorithm, tree, evaluator=RandomRollout(max_steps=args.depth, seed=t), seed=t, **knobs_of(algorithm, PARAMS))
                action = search.search(n)
                failures[algorithm][t, j] = action != best
                if algorithm == "ments":
                    soft_failures[t, j] = action != soft_best
        print(f"tree {t}: " + " ".join(f"{a}={failures[a][t].mean():.2f}" for a in COMPARED), flush=True)
    write_result(
        "synthetic",
        {
            "tree": {"branching": args.branching, "depth": args.depth, "noise_std": args.noise, "leaf_scale": args.leaf_scale, "trees": args.trees},
            "params": PARAMS | {"c": float(np.sqrt(2.0))},
            "budgets": budgets,
            "failure_rate": {a: failures[a].mean(0).tolist() for a in COMPARED},
            "ments_failure_rate_vs_soft_optimal_action": soft_failures.mean(0).tolist(),
            "definition": "fraction of random trees where the recommended root action is not the optimal "
            "(Bellman, expected return) action; MENTS also against the soft-optimal action at its tau",
        },
    )


# -- D-chain and FrozenLake ---------------------------------------------------------------------------
def dchain(args) -> None:
    budgets = [int(b) for b in args.budgets.split(",")]
    result = {"length": args.length, "params": {"tau": 1.0, "alpha": 1.0, "beta_0": 1.0, "eps": 0.1}, "budgets": budgets, "success_rate": {}}
    for final_reward in (0.5, 1.0):
        best = DChain.DOWN if final_reward < (args.length - 1) / args.length else DChain.RIGHT
        for algorithm in COMPARED:
            rate = []
            for n in budgets:
                wins = 0
                for seed in range(args.seeds):
                    search = make_search(
                        algorithm, DChain(args.length, final_reward), evaluator=RandomRollout(max_steps=args.length, seed=seed), seed=seed, **knobs_of(algorithm, result["params"])
                    )
                    wins += search.search(n) == best
                rate.append(wins / args.seeds)
            result["success_rate"][f"R_f={final_reward}/{algorithm}"] = rate
            print(final_reward, algorithm, rate, flush=True)
    result["seeds"] = args.seeds
    result["definition"] = "fraction of seeds whose recommended first action is the optimal one (down for R_f=0.5, right for R_f=1)"
    write_result("dchain", result)


def dchain_batched(args) -> None:
    """The D-chain rows on the batched search: the ``--seeds`` seeds are the B trees of one search per algorithm.

    Same knobs as :func:`dchain`; rows of the other final reward already in the result are kept.
    """
    path = OUT / "dchain_batched.json"
    result = json.loads(path.read_text()) if path.exists() else {"success_rate": {}, "commands": []}
    commands = result.pop("commands", [])
    params = {"tau": 1.0, "alpha": 1.0, "beta_0": 1.0, "eps": 0.1}
    sim = TensorDChain(args.length, args.final_reward)
    best = DChain.DOWN if args.final_reward < (args.length - 1) / args.length else DChain.RIGHT
    for algorithm in args.algorithms.split(","):
        evaluator = RandomRollout(max_steps=args.length, seed=args.seed)
        search = make_search(algorithm, sim, batched=True, evaluator=evaluator, seed=args.seed, **knobs_of(algorithm, params))
        actions = search.search(sim.root(args.seeds), args.simulations)
        rate = float((actions == best).double().mean())
        result["success_rate"][f"R_f={args.final_reward}/{algorithm}"] = rate
        print(args.final_reward, algorithm, rate, flush=True)
    result |= {"length": args.length, "params": params, "simulations": args.simulations, "seeds": args.seeds}
    result["definition"] = (
        "fraction of the B = seeds trees of one batched search whose recommended first action is the optimal one "
        "(down for R_f=0.5, right for R_f=1)"
    )
    write_result("dchain_batched", result)
    result["commands"] = commands + [result.pop("command")]
    path.write_text(json.dumps(result, indent=2))


def frozenlake(args) -> None:
    import gymnasium as gym

    budgets = [int(b) for b in args.budgets.split(",")]
    # gamma < 1 breaks the ties of undiscounted Bellman values: with gamma = 1 every action from which the
    # goal stays reachable is worth 1, and argmax can pick a move into a wall for ever
    params = {"tau": 0.1, "alpha": 0.1, "beta_0": 0.1, "eps": 0.1, "gamma": args.gamma}
    result = {"map": args.map, "is_slippery": False, "max_steps": args.max_steps, "params": params, "budgets": budgets, "success_rate": {}}
    for algorithm in COMPARED:
        rate = []
        for n in budgets:
            wins = 0
            for seed in range(args.seeds):
                env = gym.make("FrozenLake-v1", map_name=args.map, is_slippery=False)
                env.reset(seed=seed)
                sim = FrozenLakeSimulator(env)
                rollout = RandomRollout(max_steps=args.rollout, gamma=args.gamma, seed=seed)
                search = make_search(algorithm, sim, evaluator=rollout, seed=seed, **knobs_of(algorithm, params))
                for _ in range(args.max_steps):
                    reward, done = sim.step(search.search(n))
                    if done:
                        break
                wins += reward > 0
            rate.append(wins / args.seeds)
            print(algorithm, n, rate[-1], flush=True)
        result["success_rate"][algorithm] = rate
    result["seeds"] = args.seeds
    result["definition"] = "fraction of episodes (one search per move) that reach the goal within max_steps"
    write_result("frozenlake" if args.map == "8x8" else f"frozenlake_{args.map}", result)


def frozenlake_batched(args) -> None:
    """The FrozenLake rows on the batched search: the ``--seeds`` episodes are the B trees of one search per move.

    Same map, knobs, discount, rollout length and move limit as :func:`frozenlake`; at every move one
    search runs from the current cells of the episodes still running (a finished episode is not
    searched from) and each of them takes its recommended action. Success: the episode reaches the
    goal within ``--max-steps`` moves. Rows of other algorithms and budgets already in the result
    are kept; a result of another protocol (map, gamma, rollout, move limit, seeds) is refused.
    """
    import gymnasium as gym

    params = {"tau": 0.1, "alpha": 0.1, "beta_0": 0.1, "eps": 0.1, "gamma": args.gamma}
    protocol = {"map": args.map, "is_slippery": False, "max_steps": args.max_steps, "rollout": args.rollout, "params": params, "seeds": args.seeds}
    name = f"frozenlake_batched_{args.map}" + ("" if args.gamma == 0.95 else f"_gamma{args.gamma:g}")
    path = OUT / f"{name}.json"
    result = json.loads(path.read_text()) if path.exists() else protocol | {"success_rate": {}, "commands": []}
    changed = {k: (result.get(k), v) for k, v in protocol.items() if result.get(k) != v}
    if changed:
        raise SystemExit(f"{path} holds another protocol (stored, asked): {changed}; move it away first")
    commands = result.pop("commands", [])
    sim = TensorFrozenLake(gym.make("FrozenLake-v1", map_name=args.map, is_slippery=False))
    for algorithm in args.algorithms.split(","):
        for n in (int(b) for b in args.budgets.split(",")):
            evaluator = RandomRollout(max_steps=args.rollout, gamma=args.gamma, seed=args.seed)
            search = make_search(algorithm, sim, batched=True, evaluator=evaluator, seed=args.seed, **knobs_of(algorithm, params))
            state, running = sim.root(args.seeds), torch.ones(args.seeds, dtype=torch.bool)
            goal = torch.zeros(args.seeds, dtype=torch.bool)
            for _ in range(args.max_steps):
                rows = running.nonzero().squeeze(-1)
                state[rows], reward, done = sim.step(state[rows], search.search(state[rows], n))
                goal[rows] = reward > 0  # FrozenLake pays only on the step into the goal
                running[rows] = ~done
                if not bool(running.any()):
                    break
            rates = result["success_rate"].setdefault(algorithm, {})
            rates[str(n)] = float(goal.double().mean())
            result["success_rate"][algorithm] = dict(sorted(rates.items(), key=lambda item: int(item[0])))
            print(algorithm, n, rates[str(n)], flush=True)
    result["definition"] = (
        "fraction of the --seeds episodes, played together as the B trees of one batched search per move, that reach "
        "the goal within max_steps moves"
    )
    write_result(name, result)
    result["commands"] = commands + [result.pop("command")]
    path.write_text(json.dumps(result, indent=2))
