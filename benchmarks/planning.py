"""Tree-search benchmarks: speed, synthetic-tree failure rates, D-chain and FrozenLake success rates.

    taskset -c 0 python -m benchmarks.planning speed
    taskset -c 1 python -m benchmarks.planning batched-speed --leaf rollout --algorithms ments --repeats 3
    taskset -c 1 python -m benchmarks.planning batched-profile --algorithms ments,uct --batches 1,64
    taskset -c 0 python -m benchmarks.planning synthetic --trees 25
    taskset -c 0 python -m benchmarks.planning dchain --seeds 25
    taskset -c 1 python -m benchmarks.planning dchain-batched --seeds 25 --final-reward 0.5 --algorithms ments,bts
    taskset -c 0 python -m benchmarks.planning frozenlake --seeds 20
    taskset -c 1 python -m benchmarks.planning frozenlake-batched --seeds 20 --map 4x4 --budgets 50,1000
    taskset -c 1 python -m benchmarks.planning minatar-fair --stage tune --game Breakout --networks runs/minatar_networks
    taskset -c 1 python -m benchmarks.planning minatar-fair --stage eval --game Breakout --networks runs/minatar_networks
    python -m benchmarks.planning export-networks --networks runs/minatar_networks   # policies only, to commit
    python -m benchmarks.planning minatar-fair-merge PART.json PART.json ...          # a stage played in parts
    python -m benchmarks.planning minatar-model-error                                 # the search's model against the real game
    python -m benchmarks.planning minatar-oracle --eval results/planning/minatar_fair_asterix.json  # the searches with an oracle model
    python -m benchmarks.planning plot

``minatar-fair`` is the fair MinAtar comparison; its plan (networks, tuning, evaluation, with their
costs) is :func:`minatar_fair`'s docstring. ``minatar`` is the earlier comparison (log-prior init, untuned knobs).

Results go to ``benchmarks/results/planning/<name>.json`` (with the command) and ``.png``. One
thread (``OMP_NUM_THREADS=1``, ``torch.set_num_threads(1)``); pin to core 0 with ``taskset``.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import hashlib  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from torchrl_reg.envs import MINATAR_GAMES  # noqa: E402
from torchrl_reg.loops.planning import DIAGNOSTICS  # noqa: E402
from torchrl_reg.modules.q_networks import make_q_network  # noqa: E402
from torchrl_reg.planning import (  # noqa: E402
    ALGORITHMS,
    KNOB_DEFAULTS,
    KNOBS,
    DChain,
    TensorDChain,
    TensorFrozenLake,
    TensorQNetworkEvaluator,
    TensorRandomRollout,
    TensorSyntheticTree,
    FrozenLakeSimulator,
    MinAtarSimulator,
    QNetworkEvaluator,
    RandomRollout,
    SyntheticTree,
    make_batched_search,
    make_search,
    algorithm_knobs,
    synthetic_tree_q,
)
from torchrl_reg.report.stats import aggregate_mean, stratified_bootstrap_ci  # noqa: E402
from torchrl_reg.run.metrics import read_metric  # noqa: E402

OUT = Path(__file__).parent / "results" / "planning"
COLORS = {"ments": "tab:red", "dents": "tab:green", "bts": "tab:blue", "uct": "tab:gray"}


def _write(name: str, data: dict, out: Path = OUT, argv: list[str] | None = None) -> None:
    """``data`` with the command that made it (``argv``: the arguments, default the command line's) to ``out/name.json``."""
    out.mkdir(parents=True, exist_ok=True)
    cores = sorted(os.sched_getaffinity(0))  # the cores this process may run on, as taskset set them
    pin = f"taskset -c {','.join(map(str, cores))} " if len(cores) < os.cpu_count() else ""
    args = sys.argv[1:] if argv is None else argv
    data["command"] = f"OMP_NUM_THREADS=1 {pin}python " + " ".join(["-m", "benchmarks.planning", *map(shlex.quote, args)])
    (out / f"{name}.json").write_text(json.dumps(data, indent=2))
    print(f"wrote {out / name}.json")


# -- speed -------------------------------------------------------------------------------------------
class TimedSimulator:
    """Forwards to a simulator and adds up the time spent in it (step, save, restore, observation)."""

    def __init__(self, sim):
        self.sim = sim
        self.num_actions = sim.num_actions
        self.deterministic = sim.deterministic
        self.seconds = 0.0

    def _timed(self, name, *args):
        t = time.perf_counter()
        out = getattr(self.sim, name)(*args)
        self.seconds += time.perf_counter() - t
        return out

    def save(self):
        return self._timed("save")

    def restore(self, state):
        return self._timed("restore", state)

    def step(self, action):
        return self._timed("step", action)

    def observation(self):
        return self._timed("observation")

    def state_key(self):
        return self._timed("state_key")


class TimedEvaluator:
    """Time in the evaluator that is not simulator time (network forward, rollout bookkeeping)."""

    def __init__(self, evaluator, sim: TimedSimulator):
        self.evaluator = evaluator
        self.sim = sim
        self.seconds = 0.0

    def __call__(self, sim):
        t, s = time.perf_counter(), self.sim.seconds
        out = self.evaluator(sim)
        self.seconds += time.perf_counter() - t - (self.sim.seconds - s)
        return out


SPEED_PARAMS = dict(tau=0.1, alpha=0.1, beta_0=0.1, eps=0.1)


def _knobs(algorithm: str, params: dict) -> dict:
    """``params`` without the knobs ``algorithm`` does not read (make_search refuses them)."""
    return {k: v for k, v in params.items() if k in KNOBS[algorithm] or k not in KNOB_DEFAULTS}


def _speed_case(algorithm: str, make_sim, make_evaluator, simulations: int, repeats: int) -> dict:
    rates, cpu_rates = [], []
    for r in range(repeats):
        sim = make_sim()
        search = make_search(algorithm, sim, evaluator=make_evaluator(sim, r), seed=r, **_knobs(algorithm, SPEED_PARAMS))
        t, c = time.perf_counter(), time.process_time()
        search.search(simulations)
        rates.append(simulations / (time.perf_counter() - t))
        cpu_rates.append(simulations / (time.process_time() - c))
    sim = TimedSimulator(make_sim())
    evaluator = TimedEvaluator(make_evaluator(sim, 0), sim)
    search = make_search(algorithm, sim, evaluator=evaluator, seed=0, **_knobs(algorithm, SPEED_PARAMS))
    t = time.perf_counter()
    search.search(simulations)
    total = time.perf_counter() - t
    return {
        "algorithm": algorithm,
        "simulations": simulations,
        "sims_per_s": float(np.median(rates)),
        "sims_per_s_runs": rates,
        # the machine is shared: CPU time of this process is the cost on one core without contention
        "sims_per_cpu_s": float(np.median(cpu_rates)),
        "split_s": {
            "tree": total - sim.seconds - evaluator.seconds,
            "simulator": sim.seconds,
            "evaluator": evaluator.seconds,
            "total_timed_run": total,
        },
        "tree_nodes": search.tree.size,
        "max_depth_reached": _max_depth(search.tree),
    }


def _max_depth(tree) -> int:
    depth = np.zeros(tree.size, dtype=np.int64)
    for node in range(tree.size):
        children = tree.child[node][tree.child[node] >= 0]
        depth[children] = depth[node] + 1
        for outcomes in (v for (n, _), v in tree.outcomes.items() if n == node):
            depth[list(outcomes.values())] = depth[node] + 1
    return int(depth.max())


def _network_batch_cost(net, obs: torch.Tensor, batch: int, calls: int = 200) -> float:
    """CPU seconds per observation of ``net`` on batches of ``batch`` copies of ``obs``."""
    x = obs.unsqueeze(0).expand(batch, *obs.shape).contiguous()
    with torch.no_grad():
        net(x)
        t = time.process_time()
        for _ in range(calls):
            net(x)
    return (time.process_time() - t) / (calls * batch)


def speed(args) -> None:
    torch.set_num_threads(1)
    tree = SyntheticTree(4, 10, seed=0)
    rows = []
    for algorithm in ALGORITHMS:
        row = _speed_case(algorithm, lambda: tree, lambda sim, r: RandomRollout(max_steps=10, seed=r), args.simulations, args.repeats)
        row["case"] = "synthetic depth-10 4-action tree, random rollout leaf"
        rows.append(row)
        print(row["case"], algorithm, f"{row['sims_per_s']:.0f} sims/s wall, {row['sims_per_cpu_s']:.0f} per CPU s", row["split_s"])

    mlp = torch.nn.Sequential(torch.nn.Linear(1, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4))

    def mlp_q(obs: torch.Tensor) -> torch.Tensor:
        return mlp(obs.float() / 1e6)

    for algorithm in ALGORITHMS:
        row = _speed_case(algorithm, lambda: tree, lambda sim, r: QNetworkEvaluator(mlp_q, num_actions=4, tau=0.1), args.simulations, args.repeats)
        row["case"] = "synthetic depth-10 4-action tree, MLP(64, 64) Q-network leaf (batch 1)"
        rows.append(row)
        print(row["case"], algorithm, f"{row['sims_per_s']:.0f} sims/s wall, {row['sims_per_cpu_s']:.0f} per CPU s", row["split_s"])

    import minatar

    conv = make_q_network("minatar_conv", (4, 10, 10), 6).eval()  # the recipes' MinAtar network

    def make_minatar():
        env = minatar.Environment("breakout", sticky_action_prob=0.1)
        env.seed(0)
        env.reset()
        return MinAtarSimulator(env, include_rng=False)

    for algorithm in ("ments", "uct"):
        row = _speed_case(
            algorithm,
            make_minatar,
            lambda sim, r: QNetworkEvaluator(lambda o: conv(o.float()), num_actions=6, tau=0.1),
            args.simulations // 10,
            1,
        )
        row["case"] = "MinAtar Breakout (deep-copy save/restore), M-DQN conv Q-network leaf (batch 1)"
        rows.append(row)
        print(row["case"], algorithm, f"{row['sims_per_s']:.0f} sims/s wall, {row['sims_per_cpu_s']:.0f} per CPU s", row["split_s"])

    obs = torch.as_tensor(make_minatar().observation()).float()
    batching = {
        f"batch_{b}": {
            "mlp_s_per_obs": _network_batch_cost(mlp, torch.zeros(1), b),
            "minatar_conv_s_per_obs": _network_batch_cost(conv, obs, b),
        }
        for b in (1, 8, 32)
    }
    print(batching)
    _write("speed", {"rows": rows, "network_cost_by_batch": batching, "target_sims_per_s": 5000, "load_average": os.getloadavg()})


# -- batched search speed ----------------------------------------------------------------------------
def _node_grid(node: torch.Tensor) -> torch.Tensor:
    """A MinAtar-shaped input ``[n, 4, 10, 10]`` from node ids ``[n, 1]`` (their 40 low bits, then zeros)."""
    bits = (node.reshape(-1, 1) >> torch.arange(40, device=node.device)) & 1
    return torch.nn.functional.pad(bits.float(), (0, 360)).view(-1, 4, 10, 10)


def batched_speed(args) -> None:
    """Total simulations per second of BatchedTreeSearch at several B against TreeSearch, one thread, same tree and leaf.

    Every search runs ``--simulations`` simulations per tree on the synthetic depth-10 4-action tree;
    the leaf is a random rollout (10 steps) or the recipes' MinAtar conv network (4 outputs) on a
    MinAtar-shaped encoding of the node id (one forward per simulation: batch 1 for TreeSearch,
    batch B for the batched search). Rows of other leaves and algorithms already in the result are kept.
    """
    torch.set_num_threads(1)
    device = torch.device(args.device)
    tree = SyntheticTree(4, 10, seed=0)
    sim = TensorSyntheticTree([tree], device=device)
    conv = make_q_network("minatar_conv", (4, 10, 10), 4).eval()
    conv_batched = make_q_network("minatar_conv", (4, 10, 10), 4).eval().to(device)
    conv_batched.load_state_dict(conv.state_dict())

    def conv_q(obs: torch.Tensor) -> torch.Tensor:
        return conv(_node_grid(obs))

    def conv_q_batched(obs: torch.Tensor) -> torch.Tensor:
        return conv_batched(_node_grid(obs))

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    leaves = {
        "rollout": (lambda: RandomRollout(max_steps=10, seed=0), lambda: TensorRandomRollout(max_steps=10, seed=0)),
        "minatar_conv": (
            lambda: QNetworkEvaluator(conv_q, num_actions=4, tau=0.1),
            lambda: TensorQNetworkEvaluator(conv_q_batched, num_actions=4, tau=0.1, device=device),
        ),
    }
    # a GPU's rows go to a file of their own (TreeSearch, the baseline, always runs on the CPU)
    name = "batched_speed" if device.type == "cpu" else f"batched_speed_{device.type}"
    path = OUT / f"{name}.json"
    result = json.loads(path.read_text()) if path.exists() else {"rows": [], "commands": []}
    commands = result.get("commands", [])
    batches = [int(b) for b in args.batches.split(",")]
    load_at_start = os.getloadavg()

    def timed(run) -> dict:
        """The median wall and CPU rate over --repeats runs of ``run`` (which returns its simulation count)."""
        walls, cpus = [], []
        for _ in range(args.repeats):
            sync()
            t, c = time.perf_counter(), time.process_time()
            total = run()
            sync()
            walls.append(total / (time.perf_counter() - t))
            cpus.append(total / (time.process_time() - c))
        return {"sims_per_s": float(np.median(walls)), "sims_per_cpu_s": float(np.median(cpus)), "sims_per_cpu_s_repeats": cpus}

    for algorithm in args.algorithms.split(","):
        old_evaluator, new_evaluator = leaves[args.leaf]
        knobs = _knobs(algorithm, SPEED_PARAMS)

        def tree_search() -> int:
            make_search(algorithm, tree, evaluator=old_evaluator(), seed=0, **knobs).search(args.simulations)
            return args.simulations

        def batched(b: int) -> int:
            make_batched_search(algorithm, sim, evaluator=new_evaluator(), seed=0, device=device, **knobs).search(sim.root(b), args.simulations)
            return b * args.simulations

        rows = [{"search": "TreeSearch", "batch": 1, **timed(tree_search)}]
        rows += [{"search": "BatchedTreeSearch", "batch": b, **timed(lambda: batched(b))} for b in batches]
        for row in rows:
            row |= {"algorithm": algorithm, "leaf": args.leaf, "simulations_per_tree": args.simulations, "load_average": os.getloadavg()}
            row["speedup_vs_tree_search_cpu"] = row["sims_per_cpu_s"] / rows[0]["sims_per_cpu_s"]
            # on a GPU the batched search's CPU time is not its cost: compare wall-clock rates there
            row["speedup_vs_tree_search_wall"] = row["sims_per_s"] / rows[0]["sims_per_s"]
            print(row, flush=True)
        keep = [r for r in result["rows"] if (r["algorithm"], r["leaf"]) != (algorithm, args.leaf)]
        # a fixed order whatever the order of the runs (benchmarks/results.yaml reads rows by index)
        order = {"leaf": ("rollout", "minatar_conv"), "algorithm": ALGORITHMS}
        result["rows"] = sorted(
            keep + rows,
            key=lambda r: (order["leaf"].index(r["leaf"]), order["algorithm"].index(r["algorithm"]), r["search"] != "TreeSearch", r["batch"]),
        )
    result["load_average_at_start"] = load_at_start
    result["load_average_at_end"] = os.getloadavg()
    result["machine"] = (
        "2-core shared CPU box, one thread (torch.set_num_threads(1)), no GPU" if device.type == "cpu"
        else f"{torch.cuda.get_device_name(device)} (BatchedTreeSearch); TreeSearch on the same machine's CPU, one thread"
    )
    result["device"] = str(device)
    # which library the run timed (a checkout of an earlier commit for a before/after comparison)
    result["torchrl_reg"] = str(Path(sys.modules["torchrl_reg"].__file__).parent)
    result["definition"] = (
        "total simulations per second (all B trees) at --simulations simulations per tree, the median of --repeats "
        "runs (a fresh search each); sims_per_cpu_s divides by this process's CPU time, the cost on one core without "
        "the contention of the shared machine"
    )
    result.pop("command", None)
    _write(name, result)
    result["commands"] = commands + [result.pop("command")]
    path.write_text(json.dumps(result, indent=2))


def batched_profile(args) -> None:
    """Where a simulation step of BatchedTreeSearch goes: eager tensor operations per step by phase, and CPU time per operation.

    Same tree and rollout leaf as batched-speed. Operations are counted at the dispatcher (a
    ``TorchDispatchMode``; views count, allocations by the allocator do not) over ``--simulations``
    simulations; the CPU time per step is timed separately, without the counting mode. With
    ``--compile`` the descent's per-level step (tree-policy draw, model step, child look-up) is
    also timed eager and under ``torch.compile`` on a grown tree of the noiseless instance (the
    noisy tree's ``torch.Generator`` draw breaks the compiled graph in two).
    """
    from torch.utils._python_dispatch import TorchDispatchMode

    from torchrl_reg.planning.batched import _Work

    class Count(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.phase, self.ops, self.calls = "search", {}, {}

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops[self.phase] = self.ops.get(self.phase, 0) + 1
            return func(*args, **(kwargs or {}))

    def in_phase(counter: Count, name: str, fn):
        """``fn`` counted as phase ``name`` when called from the search itself (the rollout's model steps stay the rollout's)."""
        def wrapped(*a):
            if counter.phase != "search":
                return fn(*a)
            counter.calls[name] = counter.calls.get(name, 0) + 1
            before, counter.phase = counter.phase, name
            try:
                return fn(*a)
            finally:
                counter.phase = before
        return wrapped

    torch.set_num_threads(1)
    tree = SyntheticTree(4, 10, seed=0, noise_std=args.noise)
    result = {"rows": [], "load_average_at_start": os.getloadavg()}
    for algorithm in args.algorithms.split(","):
        knobs = _knobs(algorithm, SPEED_PARAMS)
        old = make_search(algorithm, tree, evaluator=RandomRollout(max_steps=10, seed=0), seed=0, **knobs)
        c = time.process_time()
        old.search(args.simulations)
        tree_search_us = (time.process_time() - c) / args.simulations * 1e6
        for b in [int(b) for b in args.batches.split(",")]:
            sim = TensorSyntheticTree([tree])
            counter = Count()
            rollout = TensorRandomRollout(max_steps=10, seed=0)
            sim.step = in_phase(counter, "model steps in the descent", sim.step)
            search = make_batched_search(algorithm, sim, evaluator=in_phase(counter, "rollout (model steps included)", rollout), seed=0, **knobs)
            with counter:
                search.search(sim.root(b), args.simulations)
            plain = make_batched_search(algorithm, TensorSyntheticTree([tree]), evaluator=TensorRandomRollout(max_steps=10, seed=0), seed=0, **knobs)
            c = time.process_time()
            plain.search(sim.root(b), args.simulations)
            step_us = (time.process_time() - c) / args.simulations * 1e6
            ops = {k: v / args.simulations for k, v in counter.ops.items()}
            total = sum(ops.values())
            row = {
                "algorithm": algorithm, "batch": b, "ops_per_step": total, "ops_per_step_by_phase": ops,
                "cpu_us_per_step": step_us, "cpu_us_per_op": step_us / total, "tree_search_cpu_us_per_simulation": tree_search_us,
                "speedup_vs_tree_search_cpu": b * tree_search_us / step_us,
                # the B trees descend in lockstep: a step runs as many levels as its deepest path
                "descent_levels_per_step": counter.calls["model steps in the descent"] / args.simulations,
            }
            print(row, flush=True)
            result["rows"].append(row)
    if args.compile:
        noiseless = SyntheticTree(4, 10, seed=0, noise_std=0.0)
        result["compile"] = _compile_level(noiseless, int(args.batches.split(",")[-1]), args.simulations, _Work)
    result["load_average_at_end"] = os.getloadavg()
    result["definition"] = (
        "ops: aten operations reaching the dispatcher per simulation step (all B trees); cpu_us_per_step: this "
        "process's CPU time per step without the counting; the synthetic depth-10 4-action tree, random-rollout leaf"
    )
    _write("batched_profile", result)


def _compile_level(tree, batch: int, simulations: int, work) -> dict:
    """CPU time of one descent level (draw, model step, child look-up, stop test) eager and under torch.compile."""
    sim = TensorSyntheticTree([tree])
    search = make_batched_search("ments", sim, evaluator=TensorRandomRollout(max_steps=10, seed=0), seed=0, **_knobs("ments", SPEED_PARAMS))
    search.search(sim.root(batch), simulations)
    k = sim.num_actions
    w = work(search.tree, search.policy.count_table(k, simulations + 1, dtype=torch.float64, device=torch.device("cpu")), search.tree.q)

    def level(node, state, active, u):
        total = w.node["total"].take(node)
        action = search.policy.select_rows(w.search_values.index_select(0, node), None, None, total, u, w.counts.index_select(0, total))
        state, reward, done = sim.step(state, action)
        edge = torch.add(action, node, alpha=k)
        child = w.next.take(edge)
        return state, reward, done, edge, child, active & ~w.node["terminal"].take(child)

    inputs = (w.offsets, sim.root(batch), w.everyone, torch.rand(batch, dtype=torch.float64))
    t = time.perf_counter()
    compiled = torch.compile(level, dynamic=False)
    compiled(*inputs)
    out = {"batch": batch, "noise_std": tree.noise_std, "compile_s_wall": time.perf_counter() - t}
    for name, fn in (("eager", level), ("compiled", compiled)):
        for _ in range(20):
            fn(*inputs)
        c = time.process_time()
        for _ in range(500):
            fn(*inputs)
        out[f"{name}_cpu_us_per_level"] = (time.process_time() - c) / 500 * 1e6
    print(out, flush=True)
    return out


# -- synthetic trees ------------------------------------------------------------------------------
PARAMS = dict(tau=0.05, alpha=0.05, beta_0=0.05, eps=0.1)


def synthetic(args) -> None:
    budgets = [int(b) for b in args.budgets.split(",")]
    failures = {a: np.zeros((args.trees, len(budgets))) for a in ALGORITHMS}
    soft_failures = np.zeros((args.trees, len(budgets)))
    for t in range(args.trees):
        tree = SyntheticTree(args.branching, args.depth, seed=1000 + t, noise_std=args.noise, leaf_scale=args.leaf_scale)
        best = int(np.argmax(synthetic_tree_q(tree, None)))
        soft_best = int(np.argmax(synthetic_tree_q(tree, PARAMS["tau"])))
        for j, n in enumerate(budgets):
            for algorithm in ALGORITHMS:
                tree.reseed_noise(t * 1000 + j)
                search = make_search(algorithm, tree, evaluator=RandomRollout(max_steps=args.depth, seed=t), seed=t, **_knobs(algorithm, PARAMS))
                action = search.search(n)
                failures[algorithm][t, j] = action != best
                if algorithm == "ments":
                    soft_failures[t, j] = action != soft_best
        print(f"tree {t}: " + " ".join(f"{a}={failures[a][t].mean():.2f}" for a in ALGORITHMS), flush=True)
    _write(
        "synthetic",
        {
            "tree": {"branching": args.branching, "depth": args.depth, "noise_std": args.noise, "leaf_scale": args.leaf_scale, "trees": args.trees},
            "params": PARAMS | {"c": float(np.sqrt(2.0))},
            "budgets": budgets,
            "failure_rate": {a: failures[a].mean(0).tolist() for a in ALGORITHMS},
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
        for algorithm in ALGORITHMS:
            rate = []
            for n in budgets:
                wins = 0
                for seed in range(args.seeds):
                    search = make_search(
                        algorithm, DChain(args.length, final_reward), evaluator=RandomRollout(max_steps=args.length, seed=seed), seed=seed, **_knobs(algorithm, result["params"])
                    )
                    wins += search.search(n) == best
                rate.append(wins / args.seeds)
            result["success_rate"][f"R_f={final_reward}/{algorithm}"] = rate
            print(final_reward, algorithm, rate, flush=True)
    result["seeds"] = args.seeds
    result["definition"] = "fraction of seeds whose recommended first action is the optimal one (down for R_f=0.5, right for R_f=1)"
    _write("dchain", result)


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
        evaluator = TensorRandomRollout(max_steps=args.length, seed=args.seed)
        search = make_batched_search(algorithm, sim, evaluator=evaluator, seed=args.seed, **_knobs(algorithm, params))
        actions = search.search(sim.root(args.seeds), args.simulations)
        rate = float((actions == best).double().mean())
        result["success_rate"][f"R_f={args.final_reward}/{algorithm}"] = rate
        print(args.final_reward, algorithm, rate, flush=True)
    result |= {"length": args.length, "params": params, "simulations": args.simulations, "seeds": args.seeds}
    result["definition"] = (
        "fraction of the B = seeds trees of one batched search whose recommended first action is the optimal one "
        "(down for R_f=0.5, right for R_f=1)"
    )
    _write("dchain_batched", result)
    result["commands"] = commands + [result.pop("command")]
    path.write_text(json.dumps(result, indent=2))


def frozenlake(args) -> None:
    import gymnasium as gym

    budgets = [int(b) for b in args.budgets.split(",")]
    # gamma < 1 breaks the ties of undiscounted Bellman values: with gamma = 1 every action from which the
    # goal stays reachable is worth 1, and argmax can pick a move into a wall for ever
    params = {"tau": 0.1, "alpha": 0.1, "beta_0": 0.1, "eps": 0.1, "gamma": args.gamma}
    result = {"map": args.map, "is_slippery": False, "max_steps": args.max_steps, "params": params, "budgets": budgets, "success_rate": {}}
    for algorithm in ALGORITHMS:
        rate = []
        for n in budgets:
            wins = 0
            for seed in range(args.seeds):
                env = gym.make("FrozenLake-v1", map_name=args.map, is_slippery=False)
                env.reset(seed=seed)
                sim = FrozenLakeSimulator(env)
                rollout = RandomRollout(max_steps=args.rollout, gamma=args.gamma, seed=seed)
                search = make_search(algorithm, sim, evaluator=rollout, seed=seed, **_knobs(algorithm, params))
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
    _write("frozenlake" if args.map == "8x8" else f"frozenlake_{args.map}", result)


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
            evaluator = TensorRandomRollout(max_steps=args.rollout, seed=args.seed)
            search = make_batched_search(algorithm, sim, evaluator=evaluator, seed=args.seed, **_knobs(algorithm, params))
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
    _write(name, result)
    result["commands"] = commands + [result.pop("command")]
    path.write_text(json.dumps(result, indent=2))


def _minatar_config(game: str, checkpoint: str, algorithm: str, knobs: list[str], *, simulations: int, episodes: int,
                    seed: int, max_steps: int, run_dir: str, extra: tuple[str, ...] = ()):
    """The config of ``recipes/tree_search.py``'s minatar preset for one network and one search, as a user composes it."""
    from recipes import tree_search
    from torchrl_reg.configs import compose_config

    return compose_config(
        Path(tree_search.__file__).parent / "conf",
        "tree_search",
        [
            "tree_search_preset=minatar",
            f"task.game={game}",
            f"task.max_steps={max_steps}",
            f"evaluator.checkpoint='{checkpoint}'",  # quoted: a sweep's task directory names hold '='
            f"planner.algorithm={algorithm}",
            *knobs,
            f"planner.simulations={simulations}",
            f"episodes={episodes}",
            f"seed={seed}",  # the same episodes (env seeds) for every algorithm and network
            f"run_dir='{run_dir}'",
            *extra,
        ],
    )


def minatar_replay_speed(args) -> None:
    """The cost of a MinAtar search before and after the search replayed tried edges (a node's state and an
    edge's reward kept in the tree, the emulator stepped once per simulation) and BatchedMinAtar copied its game
    by attribute kind instead of ``copy.deepcopy``: ``before`` runs the same code with both turned off
    (``deterministic_rewards = False``, a deep-copying ``_copy_minatar_game``), ``after`` as shipped. Per game and
    search (the knobs of the Breakout tuning), ``--episodes`` episodes of ``--moves`` moves at 50 simulations as one
    batched search per move on the committed seed-0 network, the two interleaved ``--repeats`` times; the
    episodes, returns and diagnostics of the two must be the same (checked). Ratio: median before / median after."""
    import copy
    import shutil
    import tempfile

    import torchrl_reg.planning.snapshot_simulators as snapshots
    from recipes import tree_search

    fast = snapshots._copy_minatar_game
    modes = {"before": (False, lambda game, rng: copy.deepcopy(game, {id(game.random): rng})), "after": (True, fast)}
    knobs = json.loads((OUT / "minatar_fair_tune_breakout.json").read_text())["chosen"]
    rows = []
    try:
        for game in args.games.split(","):
            checkpoint = OUT / "networks" / f"{game}_seed0" / "checkpoint.pt"
            for algorithm in args.algorithms.split(","):
                times, seen = {mode: [] for mode in modes}, {}
                for repeat in range(args.repeats):
                    for mode, (replay, copier) in modes.items():
                        snapshots.SnapshotStore.deterministic_rewards, snapshots._copy_minatar_game = replay, copier
                        run_dir = tempfile.mkdtemp(prefix="replay_speed_")
                        cfg = _minatar_config(game, str(checkpoint), algorithm, _knob_overrides(algorithm, knobs[algorithm]),
                                              simulations=50, episodes=args.episodes, seed=100, max_steps=args.moves, run_dir=run_dir,
                                              extra=(f"planner.batch_episodes={args.episodes}", "logger.progress_bar=false"))
                        start = time.perf_counter()
                        out = tree_search.train(cfg)
                        times[mode].append(time.perf_counter() - start)
                        shutil.rmtree(run_dir, ignore_errors=True)
                        played = {k: out[k] for k in ("returns", "lengths", *DIAGNOSTICS)}
                        if seen.setdefault(mode, played) != played or seen.get("before", played) != played:
                            raise SystemExit(f"{game} {algorithm}: the {mode} run played other episodes than the first run")
                ratio = float(np.median(times["before"]) / np.median(times["after"]))
                rows.append({"game": game, "algorithm": algorithm, "knobs": knobs[algorithm], "before_s": times["before"],
                             "after_s": times["after"], "ratio": ratio, "moves": int(sum(seen["after"]["lengths"])),
                             "returns": seen["after"]["returns"]})
                print(f"{game} {algorithm}: {np.median(times['before']):.1f} s -> {np.median(times['after']):.1f} s, {ratio:.2f}x", flush=True)
    finally:
        snapshots.SnapshotStore.deterministic_rewards, snapshots._copy_minatar_game = True, fast
    _write("minatar_replay_speed", {"rows": rows, "episodes": args.episodes, "moves": args.moves, "simulations": 50,
                                    "repeats": args.repeats, "definition": minatar_replay_speed.__doc__, **_provenance()},
           out=Path(args.out))


def minatar_model_error(args) -> None:
    """How far the search's model of a MinAtar game strays from the real game. ``BatchedMinAtar.roots`` copies the
    real game at every move with a fresh random stream (the planner's), so whatever the game draws after the root
    (sticky actions; Asterix's spawns of enemies and gold, each lane, side and kind drawn; Breakout's ball start;
    SpaceInvaders draws nothing) the model draws anew. From every move of ``--episodes`` real episodes played with
    uniformly random actions (``minatar.Environment`` seeded 100, 101, ...), the model replays the real actions of the
    next h moves: ``obs_differs[h]`` is the share of those starts whose model observation after h moves is not the
    real one, ``return_error[h]`` the mean |model return - real return| over the h moves (undiscounted), counted
    where the real episode lasts h more moves. Per sticky-action probability: the preset's 0.1, and 0 (the game's own
    draws alone)."""
    from torchrl_reg.planning import BatchedMinAtar

    horizons = [int(h) for h in args.horizons.split(",")]
    rows = []
    for game in args.games.split(","):
        for sticky in (0.1, 0.0):
            row = _model_error(BatchedMinAtar(game, sticky_action_prob=sticky, seed=0), args.episodes, args.max_steps, horizons)
            rows.append({"game": game, "sticky_action_prob": sticky, **row})
            print(f"{game} sticky {sticky}: " + ", ".join(f"h={h}: {row['obs_differs'][str(h)]} differ, |dR| {row['return_error'][str(h)]}" for h in horizons), flush=True)
    result = {"rows": rows, "episodes": args.episodes, "max_steps": args.max_steps, "horizons": horizons,
              "definition": minatar_model_error.__doc__, **_provenance()}
    out = Path(args.out)
    _write("minatar_model_error", result, out=out)
    _plot_model_error(out, result)


def _model_error(sim, episodes: int, max_steps: int, horizons: list[int]) -> dict:
    """:func:`minatar_model_error`'s measurement for one model ``sim`` (a ``BatchedMinAtar``): its row's numbers."""
    import minatar

    sticky = sim.env.sticky_action_prob
    differs = {h: [] for h in horizons}
    errors = {h: [] for h in horizons}
    moves = 0
    for episode in range(episodes):
        env = minatar.Environment(sim.game, sticky_action_prob=sticky)
        env.seed(100 + episode)
        env.reset()
        actions = np.random.default_rng(100 + episode).integers(sim.num_actions, size=max_steps)
        # the real episode first: its observation and reward after every move
        starts, real_obs, real_rew = [], [], []
        for t in range(max_steps):
            state = sim.roots([env], seed=t)
            if not np.array_equal(sim.observation(state)[0].numpy(), np.moveaxis(env.state(), -1, 0).astype(np.uint8)):
                raise SystemExit(f"{sim.game}: the model's root is not the real game at move {t} of episode {episode}")
            model = []  # the model's observation and return after each of the next max(horizons) moves
            ret = 0.0
            for k in range(max(horizons)):
                if t + k >= max_steps:
                    break
                state, reward, done = sim.step(state, torch.tensor([int(actions[t + k])]))
                ret += float(reward[0])
                model.append((sim.observation(state)[0].numpy(), ret, bool(done[0])))
                if bool(done[0]):
                    break
            starts.append(model)
            real_obs.append(np.moveaxis(env.state(), -1, 0).astype(np.uint8))
            reward, terminal = env.act(int(actions[t]))
            real_rew.append(float(reward))
            moves += 1
            if terminal:
                break
        real_obs.append(np.moveaxis(env.state(), -1, 0).astype(np.uint8))
        n = len(real_rew)  # moves played; real_obs[i] is the observation before move i (and after the last)
        for t, model in enumerate(starts):
            for h in horizons:
                if t + h > n:
                    continue
                real_return = sum(real_rew[t:t + h])
                if len(model) < h:  # the model's episode ended sooner than the real one
                    differs[h].append(1.0)
                    errors[h].append(abs(model[-1][1] - real_return))
                    continue
                obs, ret, _ = model[h - 1]
                # the real game's last observation is its terminal screen: compared like any other
                differs[h].append(float(not np.array_equal(obs, real_obs[t + h])))
                errors[h].append(abs(ret - real_return))
    return {
        "moves": moves,
        # None where no real episode lasted h more moves
        "obs_differs": {str(h): float(np.mean(differs[h])) if differs[h] else None for h in horizons},
        "return_error": {str(h): float(np.mean(errors[h])) if errors[h] else None for h in horizons},
        "starts": {str(h): len(differs[h]) for h in horizons},
    }


def _oracle_roots(self, envs, seed):
    """``BatchedMinAtar.roots`` with the real games' own streams copied (``seed`` unused): an oracle model."""
    import copy

    self.clear()
    # the working stream takes the snapshots' states: MT19937 ones (minatar.Environment's), not the planner's PCG64
    self._rng = np.random.RandomState()
    handles = []
    for row, env in enumerate(envs):
        real = self._environment(env, row)
        rng = copy.deepcopy(real.random)  # a seeded minatar.Environment's game draws from the same RandomState
        if real.env.random is not real.random:
            raise SystemExit("the oracle model needs the real game and its sticky actions on one stream (minatar.Environment.seed)")
        game = copy.deepcopy(real.env, {id(real.random): rng})
        handles.append(self._add(self._snapshot(game, rng, real.last_action)))
    return self._handles(handles)


@contextlib.contextmanager
def _oracle_model():
    """``BatchedMinAtar.roots`` is :func:`_oracle_roots` inside the block, the library's own again after it."""
    from torchrl_reg.planning import BatchedMinAtar

    original = BatchedMinAtar.roots
    BatchedMinAtar.roots = _oracle_roots
    try:
        yield
    finally:
        BatchedMinAtar.roots = original


def minatar_oracle(args) -> None:
    """Whether the model error explains a game's results (:func:`minatar_model_error`): the fair evaluation's
    searches (its knobs, 50 simulations, its episodes, env seeds and move cap, one batched search per move)
    replayed with an **oracle model**: ``BatchedMinAtar.roots`` copies the real game's own random stream instead of a
    fresh one, so the model's future is the real one for the same actions (sticky actions and spawns included;
    checked first: the oracle's screens equal the real ones 10 moves ahead, random play). A diagnostic, not a
    planner: no agent can read the env's stream. Paired against the same episodes of the determinized searches and
    of the greedy network, read from the evaluation JSON (``--eval``), and the oracle searches against each other."""

    from recipes import tree_search
    from torchrl_reg.planning import BatchedMinAtar

    evaluation = json.loads(Path(args.eval).read_text())
    game, seeds = evaluation["game"], [net["seed"] for net in evaluation["networks"]]
    labels = [f"{a}@{args.simulations}" for a in args.algorithms.split(",")]
    missing = [label for label in labels if label not in evaluation["knobs"]]
    if missing:
        raise SystemExit(f"{args.eval} has no {', '.join(missing)} (it has {', '.join(evaluation['knobs'])})")
    with _oracle_model():
        check = _model_error(BatchedMinAtar(game, sticky_action_prob=0.1, seed=0), 1, 60, [10])
        if check["obs_differs"]["10"] != 0.0:
            raise SystemExit(f"{game}: the oracle model strays from the real game ({check})")
        episodes = {label: [] for label in labels}
        for label in labels:
            algorithm = label.partition("@")[0]
            for net in evaluation["networks"]:
                run_dir = f"{args.run_dir}/{game}/oracle/{label}/seed{net['seed']}"
                # the committed network where the evaluation's path is another machine's; the same file either way
                checkpoint = Path(net["checkpoint"])
                if not checkpoint.exists():
                    checkpoint = NETWORKS_OUT / f"{game}_seed{net['seed']}" / "checkpoint.pt"
                if not checkpoint.exists() or hashlib.sha256(checkpoint.read_bytes()).hexdigest() != net["sha256"]:
                    raise SystemExit(f"the seed-{net['seed']} network of {args.eval} (sha256 {net['sha256']}) is not at {checkpoint}")
                cfg = _minatar_config(game, str(checkpoint), algorithm, _knob_overrides(algorithm, evaluation["knobs"][label]),
                                      simulations=args.simulations, episodes=evaluation["episodes"], seed=evaluation["seed"],
                                      max_steps=evaluation["max_steps"], run_dir=run_dir,
                                      extra=(f"planner.batch_episodes={evaluation['batch_episodes'] or evaluation['episodes']}", "logger.progress_bar=false"))
                out = tree_search.train(cfg)
                if out["status"] != "completed":
                    raise SystemExit(f"{run_dir} stopped ({out['status']}): run the same command again to resume it")
                episodes[label].append(out["returns"])
                print(f"{game} oracle {label} network seed {net['seed']}: mean return {out['mean_return']:.3g}", flush=True)
    played = evaluation["episode_returns"]
    comparisons = {}
    for label in labels:
        comparisons[f"oracle {label} - {label}"] = _paired(episodes[label], played[label], args.reps)
        comparisons[f"oracle {label} - greedy"] = _paired(episodes[label], played["greedy"], args.reps)
    for i, a in enumerate(labels):  # the algorithms against each other, both with the oracle model
        for b in labels[i + 1:]:
            comparisons[f"oracle {a} - oracle {b}"] = _paired(episodes[a], episodes[b], args.reps)
    result = {"game": game, "network_seeds": seeds, "evaluation": args.eval, "simulations": args.simulations,
              "knobs": {label: evaluation["knobs"][label] for label in labels}, "oracle_check": check,
              "episode_returns": episodes, "comparisons": comparisons, "statistics": FAIR_STATISTICS,
              "bootstrap_reps": args.reps, "definition": minatar_oracle.__doc__, **_provenance()}
    _write(f"minatar_oracle_{game.lower()}", result, out=Path(args.out))


def _plot_model_error(out: Path, result: dict) -> None:
    """``minatar_model_error.png``: per game, the share of model observations that differ from the real ones, by horizon."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for row in result["rows"]:
        hs = result["horizons"]
        hs = [h for h in hs if row["obs_differs"][str(h)] is not None]
        ax.plot(hs, [row["obs_differs"][str(h)] for h in hs], marker="o", linestyle="-" if row["sticky_action_prob"] else "--",
                label=f"{row['game']}, sticky {row['sticky_action_prob']}")
    ax.set_xlabel("moves replayed in the model (h)")
    ax.set_ylabel("share of model observations != real")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7)
    ax.set_title("The search's MinAtar model against the real game (random play)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "minatar_model_error.png", dpi=100)
    plt.close(fig)


def minatar(args) -> None:
    """Greedy M-DQN network vs searches that use it as prior and leaf value (``recipes/tree_search.py``), for
    each network (one per training seed): ``returns[algorithm]`` holds the mean return of each network
    (the unit of the statistics), ``episode_returns[algorithm]`` every episode, network by network."""
    from recipes import tree_search

    checkpoints = args.checkpoint  # paths may hold ',' and '=' (a sweep's task directories)
    result = {
        "game": args.game, "checkpoints": [], "simulations": args.simulations, "episodes": args.episodes,
        "returns": {}, "episode_returns": {}, "wall_time_s": {},
    }
    path = OUT / f"minatar_{args.game}.json"
    if args.append and path.exists():  # more networks for the same protocol, e.g. as their training ends
        result = json.loads(path.read_text())
        for key in ("simulations", "episodes"):
            if result[key] != getattr(args, key):
                raise SystemExit(f"--append: {path} has {key}={result[key]}, this run {key}={getattr(args, key)}")
        if set(result["returns"]) != set(args.algorithms.split(",")):
            raise SystemExit(f"--append: {path} has the algorithms {sorted(result['returns'])}, this run {args.algorithms}")
        if set(checkpoints) & set(result["checkpoints"]):
            raise SystemExit(f"--append: {path} already holds {sorted(set(checkpoints) & set(result['checkpoints']))}")
        result["commands"] = result.get("commands", [result.pop("command")])
    result["checkpoints"] += checkpoints
    for algorithm in args.algorithms.split(","):
        for index, checkpoint in enumerate(checkpoints, start=len(result["checkpoints"]) - len(checkpoints)):
            cfg = _minatar_config(
                args.game, checkpoint, algorithm,
                # the preset sets MENTS's knobs; the other searches read their own at the same scale
                {"bts": ["planner.tau=null", "planner.alpha=0.1"], "dents": ["planner.tau=null", "planner.alpha=0.1"],
                 "uct": ["planner.tau=null", "planner.eps=null"]}.get(algorithm, []),
                simulations=args.simulations, episodes=args.episodes, seed=args.seed, max_steps=args.max_steps,
                run_dir=f"{args.run_dir}/{algorithm}_{index}",
            )
            out = tree_search.train(cfg)
            result["episode_returns"].setdefault(algorithm, []).append(out["returns"])
            result["returns"].setdefault(algorithm, []).append(sum(out["returns"]) / len(out["returns"]))
            result["wall_time_s"].setdefault(algorithm, []).append(out["wall_time_s"])
            print(algorithm, checkpoint, out["returns"], flush=True)
    result["params"] = {k: v for k, v in _to_dict(cfg.planner).items() if k != "algorithm"} | {"evaluator": _to_dict(cfg.evaluator)}
    if args.networks:
        result["networks"] = json.loads(Path(args.networks).read_text())
    _write(f"minatar_{args.game}", result)
    if "commands" in result:  # appended: keep every command that produced a part of it
        result["commands"].append(result.pop("command"))
        path.write_text(json.dumps(result, indent=2))


# -- fair MinAtar comparison -------------------------------------------------------------------------
#: each search's tuning grid on the held-out network (the product of its knobs' values); a knob left out takes
#: KNOB_DEFAULTS. Backed-up values are discounted returns of about 5-30 (init: q), so the
#: temperatures span 0.01-1 (from a near-hard max to a soft one over action gaps of a few units) and UCT's c 0.5-64.
#: DENTS's eps is tuned as MENTS's and BTS's are: until SpaceInvaders it was left at 0.1 (Breakout's best eps for
#: the other two), and on SpaceInvaders BTS's best eps turned out 0.001 (80.1 against 56.6 at eps 0.1), so a DENTS
#: held at 0.1 would not have been at its best.
TUNE_GRID: dict[str, dict[str, list[float]]] = {
    "ments": {"tau": [0.01, 0.1, 1.0], "eps": [0.1, 1.0]},
    "bts": {"alpha": [0.01, 0.1, 1.0], "eps": [0.1, 1.0]},
    "dents": {"alpha": [0.01, 0.1, 1.0], "beta_0": [0.1, 1.0, 10.0], "eps": [0.1, 1.0]},
    "uct": {"c": [0.5, math.sqrt(2.0), 4.0, 16.0, 64.0]},
}
FAIR_DEFAULTS = {  # per stage: simulations per move, episodes per network (or grid point), their first env seed
    "tune": {"simulations": [50], "episodes": 16, "seed": 1000, "network_seeds": [3]},
    "eval": {"simulations": [50, 200], "episodes": 20, "seed": 100, "network_seeds": [0, 1, 2]},
}
FAIR_STATISTICS = (
    "Paired differences: episode i of every method on a network starts from the same env seed (seed + i), so each "
    "comparison A - B takes return_A - return_B episode by episode. 'mean' is the mean of the paired differences "
    "(every network has the same number of episodes: the mean of the per-network means); 'ci95' its 95% percentile "
    "interval under a stratified bootstrap (torchrl_reg.report.stats.stratified_bootstrap_ci, statistic "
    "aggregate_mean) that resamples the pairs within each network: the interval is conditional on these networks "
    "(the episodes' noise, not the spread between training seeds, which 3 networks cannot measure). per_network: the "
    "same for each network alone. verdict: 'above' when the interval is above 0, 'below' when under 0, else "
    "'not resolved'."
)


def _grid_points(grid: dict[str, list[float]]) -> list[dict[str, float]]:
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def _edge_extensions(grid: dict[str, list[float]], tried: list[dict[str, float]], best: dict[str, float]) -> list[tuple[dict[str, float], str]]:
    """The points one step beyond the tried range of each knob on which ``best`` (a point of ``tried``) sits at an edge.

    A knob tuned over 2 or more values (``grid``) whose best value is the smallest (largest) value tried so far gets
    the next value of the geometric progression of the two smallest (largest) tried values, the other knobs kept at
    ``best``'s: 0.1 out of [0.1, 1] gives 0.01 (12 significant digits). A knob with a value <= 0 is not extended (no geometric step), nor one
    the grid fixes (a single value). Points already tried are left out. Each point comes with its reason."""
    out = []
    for knob, values in grid.items():
        seen = sorted({p[knob] for p in tried})
        if len(values) < 2 or len(seen) < 2 or seen[0] <= 0:
            continue
        value = best[knob]
        if value == seen[0]:
            step, side = seen[0] * seen[0] / seen[1], "smallest"
        elif value == seen[-1]:
            step, side = seen[-1] * seen[-1] / seen[-2], "largest"
        else:
            continue
        point = dict(best) | {knob: float(f"{step:.12g}")}  # 0.01, not 0.1 * 0.1 / 1 = 0.010000000000000002
        if point not in tried:
            out.append((point, f"{knob}={value:g}, the best point's, is the {side} value tried"))
    return out


def _edges(grid: dict[str, list[float]], tried: list[dict[str, float]], best: dict[str, float]) -> list[str]:
    """The knobs of ``grid`` tuned over 2 or more values at whose smallest or largest tried value ``best`` still sits."""
    edges = []
    for knob, values in grid.items():
        seen = sorted({p[knob] for p in tried})
        if len(values) >= 2 and best[knob] in (seen[0], seen[-1]):
            edges.append(knob)
    return edges


def _knob_overrides(algorithm: str, knobs: dict[str, float]) -> list[str]:
    """Every planner knob of the config: the algorithm's from ``knobs`` (the rest of its own at their defaults), the
    others' unset (null; the preset sets MENTS's)."""
    return [f"planner.{k}={knobs[k] if k in knobs else 'null'}" for k in KNOB_DEFAULTS]


def _fair_grid(args) -> dict[str, dict[str, list[float]]]:
    """The tuning grid of ``args.algorithms``: TUNE_GRID with ``--grid``'s algorithms replaced, each point checked."""
    given = json.loads(args.grid) if args.grid else {}
    unknown = set(given) - set(ALGORITHMS)
    if unknown:
        raise SystemExit(f"--grid names {sorted(unknown)}: the algorithms are {list(ALGORITHMS)}")
    grid = {a: given.get(a, TUNE_GRID[a]) for a in args.algorithms}
    for algorithm, knobs in grid.items():
        if not isinstance(knobs, dict) or not knobs or not all(isinstance(v, list) and v for v in knobs.values()):
            raise SystemExit(f"--grid: {algorithm}'s grid must map each knob to a non-empty list of values, got {knobs!r}")
        try:
            for point in _grid_points(knobs):
                algorithm_knobs(algorithm, point)  # refuses a knob the algorithm does not read
        except ValueError as err:
            raise SystemExit(f"--grid: {err}") from None
    return grid


def _networks(paths: list[str], game: str, seeds: list[int]) -> list[dict]:
    """The completed ``recipes/m_dqn.py loss=m_dqn`` MinAtar runs of ``game`` under ``paths`` (the sweep directories of
    benchmarks/minatar_networks.yaml, or run directories), one per seed of ``seeds``, with what they trained."""
    from torchrl_reg.planning.tasks import minatar_module
    from torchrl_reg.report.runs import collect_runs

    try:
        runs = collect_runs(paths)
    except FileNotFoundError as err:
        raise SystemExit(f"--networks: {err}") from None
    found: dict[int, list] = {}
    for run in runs:
        name = run.value("env.name")
        if run.value("env.family") == "minatar" and run.value("loss.name") == "m_dqn" and name is not None \
                and minatar_module(str(name)) == minatar_module(game):
            found.setdefault(int(run.value("seed")), []).append(run)
    problems = []
    for seed in seeds:
        of_seed = found.get(seed, [])
        if len(of_seed) != 1:
            problems.append(f"seed {seed}: {len(of_seed)} M-DQN runs of {game} ({', '.join(str(r.run_dir) for r in of_seed) or 'none'})")
        elif of_seed[0].status != "completed" or not (of_seed[0].run_dir / "checkpoint.pt").is_file():
            problems.append(f"seed {seed}: {of_seed[0].run_dir} is {of_seed[0].status!r}, not a completed run with its checkpoint.pt")
    if problems:
        raise SystemExit(f"--networks {' '.join(paths)}: need one completed run per seed {seeds} of {game}; "
                         f"found seeds {sorted(found)}: " + "; ".join(problems))
    nets = []
    for seed in seeds:
        run = found[seed][0]
        checkpoint = run.run_dir / "checkpoint.pt"
        source = run.run_dir / "source.json"  # an export_networks directory: the training run's command and file
        exported = json.loads(source.read_text()) if source.is_file() else None
        nets.append({
            "seed": seed, "checkpoint": str(checkpoint), "sha256": hashlib.sha256(checkpoint.read_bytes()).hexdigest(),
            "overrides": exported["overrides"] if exported else list(run.overrides),
            "command": exported["command"] if exported else run.command,
            **({"exported_from": {k: exported[k] for k in ("run_dir", "checkpoint_sha256")}} if exported else {}),
            "training": {k: read_metric(run.metrics, k) for k in (
                "frames", "final_return", "eval_frames", "eval_returns", "wall_time_s", "steps_per_s")},
        })
    return nets


NETWORKS_OUT = OUT / "networks"


def export_networks(args) -> None:
    """The completed M-DQN MinAtar runs under ``--networks`` as run directories small enough to commit.

    Each run becomes ``<out>/<Game>_seed<n>/``: its ``config.yaml`` and ``metrics.json`` as they are, a
    ``checkpoint.pt`` holding only the trained ``policy`` (written by :func:`~torchrl_reg.run.save_checkpoint`:
    plain tensors, checksummed; the run's own checkpoint also holds the target network, optimizer, RNG and env
    states), and ``source.json`` (the training command and overrides, the source run directory and the SHA-256 of
    the checkpoint the policy came from). ``minatar-fair --networks <out>`` takes these directories as it takes
    the runs: :func:`~torchrl_reg.loops.planning.load_q_network` reads the same config and policy, so the
    searches play the same network. Every run is checked before anything is written; an export already in
    ``<out>`` is kept when it came from the same checkpoint and refused when it came from another.
    """
    import shutil
    import tempfile

    from torchrl_reg.planning.tasks import minatar_module
    from torchrl_reg.report.runs import collect_runs
    from torchrl_reg.run import read_checkpoint, save_checkpoint

    out = Path(args.out)
    try:
        runs = collect_runs(args.networks)
    except FileNotFoundError as err:
        raise SystemExit(f"--networks: {err}") from None
    plan, skipped, kept = [], [], 0
    for run in runs:
        if run.value("env.family") != "minatar" or run.value("loss.name") != "m_dqn" or run.value("env.name") is None:
            skipped.append(f"{run.run_dir} (not an M-DQN MinAtar run)")
            continue
        checkpoint = run.run_dir / "checkpoint.pt"
        if run.status != "completed" or not checkpoint.is_file():
            raise SystemExit(f"--networks: {run.run_dir} is {run.status!r}, not a completed run with its checkpoint.pt")
        game = next(g for g in MINATAR_GAMES if minatar_module(g) == minatar_module(str(run.value("env.name"))))
        target = out / f"{game}_seed{int(run.value('seed'))}"
        sha256 = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
        if any(t == target for t, *_ in plan):
            raise SystemExit(f"--networks: two runs of {game} seed {run.value('seed')} ({run.run_dir} and another): export one")
        if (target / "source.json").is_file():
            done = json.loads((target / "source.json").read_text())
            if done.get("checkpoint_sha256") != sha256:
                raise SystemExit(f"{target} holds the network of another checkpoint ({done.get('run_dir')}, sha256 "
                                 f"{done.get('checkpoint_sha256')}); {checkpoint} has {sha256}: remove it first or use another --out")
            print(f"{target}: already exported from this checkpoint")
            kept += 1
            continue
        if target.exists():
            raise SystemExit(f"{target} exists and is not an export (no source.json): remove it or use another --out")
        plan.append((target, run, checkpoint, sha256))
    if not plan and not kept:
        raise SystemExit(f"--networks {' '.join(args.networks)}: no M-DQN MinAtar run ({len(skipped)} other runs)")
    out.mkdir(parents=True, exist_ok=True)
    for target, run, checkpoint, sha256 in plan:
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=out))  # a stopped export leaves no half directory
        try:
            for name in ("config.yaml", "metrics.json"):
                shutil.copyfile(run.run_dir / name, staging / name)
            save_checkpoint(staging / "checkpoint.pt", {"policy": read_checkpoint(checkpoint)["policy"]})
            (staging / "source.json").write_text(json.dumps({
                "run_dir": str(run.run_dir), "checkpoint_sha256": sha256, "overrides": list(run.overrides),
                "command": run.command,
                "exported_by": "python -m benchmarks.planning export-networks (only the policy of the run's checkpoint)",
            }, indent=2) + "\n")
            staging.chmod(0o755)  # mkdtemp's 0700 would hide the export from the other users of a shared folder
            os.replace(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        print(f"{run.run_dir} -> {target} ({(target / 'checkpoint.pt').stat().st_size / 1e6:.2f} MB)")
    for line in skipped:
        print(f"skipped {line}")


def _provenance() -> dict:
    """The code, library and machine a result came from."""
    root = Path(__file__).resolve().parent.parent

    def git(*cmd: str) -> str:
        done = subprocess.run(["git", *cmd], cwd=root, capture_output=True, text=True)
        return done.stdout.rstrip("\n") if done.returncode == 0 else ""

    return {
        "code_commit": git("rev-parse", "HEAD") or None,
        # tracked files that differ from the commit (a result of uncommitted code says so)
        "code_changed_files": git("status", "--porcelain", "--untracked-files=no").splitlines(),
        "torch": torch.__version__,
        "machine": f"{platform.platform()}, {os.cpu_count()} cores, pinned to "
                   f"{sorted(os.sched_getaffinity(0))}, {torch.get_num_threads()} torch thread(s)",
    }


def _play_all(args, stage: str, game: str, plan: list[tuple[str, dict, str, dict[str, float], int]]) -> tuple[list[dict], dict]:
    """Each ``(label, network, algorithm, knobs, simulations)`` of ``plan`` played for ``args.episodes`` episodes
    through ``recipes/tree_search.py`` (a search: ``args.batch_episodes`` at a time, one batched search per move); the
    runs' metrics and the settings they share. Every config is validated before the first episode. The run directories are
    ``--run-dir/<game>/<stage>/<label>/seed<network>``: a stopped benchmark run again resumes them."""
    from recipes import tree_search

    batch = args.batch_episodes or args.episodes
    configs = []
    for label, net, algorithm, knobs, simulations in plan:
        cfg = _minatar_config(
            game, net["checkpoint"], algorithm, _knob_overrides(algorithm, knobs) if algorithm != "greedy" else [],
            simulations=simulations, episodes=args.episodes, seed=args.seed, max_steps=args.max_steps,
            run_dir=f"{args.run_dir}/{game}/{stage}/{label}/seed{net['seed']}",
            extra=(f"planner.batch_episodes={batch if algorithm != 'greedy' else 1}", "logger.progress_bar=false"),
        )
        try:
            tree_search.validate(cfg)
        except (ValueError, FileNotFoundError) as err:
            raise SystemExit(f"{label} on the seed-{net['seed']} network: {err}") from None
        configs.append(cfg)
    outs = []
    for (label, net, *_), cfg in zip(plan, configs):
        out = tree_search.train(cfg)
        if out["status"] != "completed":
            raise SystemExit(f"{out['run_dir']} stopped ({out['status']}): run the same command again to resume it")
        print(f"{game} {stage} {label} network seed {net['seed']}: mean return {out['mean_return']:.3g} over "
              f"{len(out['returns'])} episodes, {out['wall_time_s']:.0f} s", flush=True)
        outs.append(out)
    # what every run shares besides its network, search and budget (the preset's values at this commit, written out)
    planner = _to_dict(configs[-1].planner)
    protocol = {
        "task": _to_dict(configs[-1].task),
        "evaluator": {k: v for k, v in _to_dict(configs[-1].evaluator).items() if k != "checkpoint"},
        "planner": {k: planner[k] for k in ("gamma", "recommend", "q_init")},
    }
    return outs, protocol


def _diagnostics(out: dict) -> dict[str, float | None]:
    """A planning run's search diagnostics (torchrl_reg.loops.planning.DIAGNOSTICS) averaged over its episodes; None
    where none was recorded (greedy, or a run played before the diagnostics existed)."""
    means = {}
    for key in DIAGNOSTICS:
        values = [v for v in out.get(key) or [] if v is not None]
        means[key] = float(np.mean(values)) if values else None
    return means


EVAL_CELL_KEYS = {  # one (method, network) cell of an eval result: the result's key of each of its fields
    "returns": "episode_returns", "lengths": "episode_lengths", "mean_return": "returns", "wall_time_s": "wall_time_s",
    "run_dir": "run_dirs",
}


def _cell(out: dict) -> dict:
    """One planning run's share of an eval result (EVAL_CELL_KEYS, and its diagnostics' means)."""
    return {k: out[k] for k in EVAL_CELL_KEYS} | {"diagnostics": _diagnostics(out)}


def _eval_result(cells: dict[str, list[dict]], nets: list[dict], simulations: list[int], algorithms: list[str],
                 tuning: dict, knobs: dict[str, dict], reps: int) -> dict:
    """The eval stage's result from its cells (``cells[label][i]``: the method ``label`` on ``nets[i]``): every
    episode, the per-network means and diagnostics, and the paired comparisons (FAIR_STATISTICS)."""
    episodes = {label: [c["returns"] for c in row] for label, row in cells.items()}
    comparisons = {}
    for n in simulations:
        for i, a in enumerate(algorithms):
            comparisons[f"{a}@{n} - greedy"] = _paired(episodes[f"{a}@{n}"], episodes["greedy"], reps)
            for b in algorithms[i + 1:]:
                comparisons[f"{a}@{n} - {b}@{n}"] = _paired(episodes[f"{a}@{n}"], episodes[f"{b}@{n}"], reps)
    result = {
        "simulations": simulations, "networks": nets, "tuning": tuning, "methods": list(cells), "knobs": knobs,
        **{key: {label: [c[field] for c in row] for label, row in cells.items()} for field, key in EVAL_CELL_KEYS.items()},
        # per network, the mean over its episodes' moves: how often the search kept the network's greedy action,
        # the network's Q gap of the actions played, and their root visit share (torchrl_reg.loops.planning.DIAGNOSTICS)
        "diagnostics": {label: {key: [c["diagnostics"][key] for c in row] for key in DIAGNOSTICS} for label, row in cells.items()},
        "comparisons": comparisons,
        "statistics": FAIR_STATISTICS,
        "bootstrap_reps": reps,
    }
    if {"ments", "uct"} <= set(algorithms):
        # the MENTS paper's Atari table (Xiao et al., NeurIPS 2019, Table 1) has MENTS above UCT on 4 of 5 games
        result["ments_vs_uct"] = {str(n): comparisons[f"ments@{n} - uct@{n}"]["verdict"] for n in simulations}
    return result


def _paired(a: list[list[float]], b: list[list[float]], reps: int) -> dict:
    """Paired differences ``a - b`` per network (lists of episode returns, episode i against episode i): FAIR_STATISTICS."""
    diffs = [np.asarray(x, dtype=np.float64) - np.asarray(y, dtype=np.float64) for x, y in zip(a, b, strict=True)]
    mean, low, high = stratified_bootstrap_ci(diffs, aggregate_mean, reps=reps, seed=0)
    per_network = [stratified_bootstrap_ci([d], aggregate_mean, reps=reps, seed=0) for d in diffs]
    return {
        "mean": mean, "ci95": [low, high], "pairs": int(sum(d.size for d in diffs)),
        "verdict": "above" if low > 0 else "below" if high < 0 else "not resolved",
        "per_network": [{"mean": m, "ci95": [lo, hi]} for m, lo, hi in per_network],
    }


def _fair_check(args, game: str) -> dict | None:
    """Every input of a minatar-fair stage checked before any episode is played; the tuning result for --stage eval."""
    bad = [a for a in args.algorithms if a not in ALGORITHMS]
    if bad:
        raise SystemExit(f"--algorithms {','.join(args.algorithms)}: {bad} unknown, the searches are {list(ALGORITHMS)}")
    if any(n < 1 for n in args.simulations) or args.max_steps < 1 or args.reps < 1:
        raise SystemExit(f"--simulations {args.simulations}, --max-steps {args.max_steps}, --reps {args.reps}: must be >= 1")
    if args.extend < 0:
        raise SystemExit(f"--extend {args.extend}: rounds beyond the grid's edges, 0 (the grid only) or more")
    if args.episodes < 2:
        raise SystemExit(f"--episodes {args.episodes}: the paired statistics need at least 2 episodes per network")
    if args.stage == "tune":
        if len(args.simulations) != 1 or len(args.network_seeds) != 1:
            raise SystemExit(f"--stage tune takes one budget and one held-out network, got --simulations {args.simulations} "
                             f"--network-seeds {args.network_seeds}")
        return None
    path = Path(args.tuned) if args.tuned else args.out / f"minatar_fair_tune_{game.lower()}.json"
    if not path.is_file():
        raise SystemExit(f"{path} is missing: run --stage tune for {game} first (or give --tuned)")
    tuned = json.loads(path.read_text())
    missing = [a for a in args.algorithms if a not in tuned.get("chosen", {})]
    if tuned.get("game") != game or missing:
        raise SystemExit(f"{path} tuned {tuned.get('game')} {sorted(tuned.get('chosen', {}))}; this run needs {game} {args.algorithms}")
    held_out = tuned["network"]["seed"]
    if held_out in args.network_seeds:
        raise SystemExit(f"--network-seeds {args.network_seeds} holds the network the knobs were tuned on (seed {held_out})")
    return tuned | {"file": str(path)}


def minatar_fair(args) -> None:
    """A fair MinAtar comparison of MENTS, BTS, DENTS and UCT with M-DQN networks as prior and leaf value.

    The plan, in order (each command on one core, one thread; the three games' commands can run side by side):

    1. Networks, ~4-5 core-hours: ``OMP_NUM_THREADS=1 taskset -c 0 python -m torchrl_reg.sweep
       benchmarks/minatar_networks.yaml --executor local --dir runs/minatar_networks`` (M-DQN, learning_minatar's
       protocol, 3 games x seeds 0-3; seed 3 held out for tuning; ~20-25 min each with a core to itself: the
       measurement is in that file's comment).
    2. Tuning, one game per command, ~0.5-2 core-hours per game (Breakout: 26 grid points in 27 min beside a CI
       run, its 6 extensions in 9 min): ``OMP_NUM_THREADS=1 taskset -c 1 python -m benchmarks.planning
       minatar-fair --stage tune --game Breakout --networks runs/minatar_networks``, then
       SpaceInvaders and Asterix. Grid: TUNE_GRID (35 points; Breakout's first 26 without DENTS's eps), 16 episodes per point, played as one batch, at 50
       simulations per move, on the seed-3 network; the greedy network's return on the same episodes for reference.
       Where an algorithm's best point sits at the smallest or largest value of a knob, the optimum may lie beyond
       the grid: up to ``--extend`` (2) rounds play the point one geometric step further (eps 0.1 of [0.1, 1] ->
       0.01), the other knobs at the best point's. On Breakout's first tuning every algorithm's best point was at
       the grid's least exploratory edge (eps 0.1, alpha 0.01, beta_0 0.1, c 0.5), which is why.
       Writes ``results/planning/minatar_fair_tune_<game>.json``: every point's episode returns and mean (an
       extension's with its round and reason), ``chosen``: the point of highest mean return per algorithm (ties:
       the first played), and ``at_edge``: the knobs still at an edge of the values tried.
    3. Evaluation, one game per command, ~2.5-6 core-hours per game: ``... minatar-fair --stage eval --game
       Breakout --networks runs/minatar_networks``: on the seed-0, 1 and 2 networks, the greedy network and the four
       searches with their tuned knobs at 50 and 200 simulations per move, 20 episodes per network (env seeds
       100-119 for every method: paired), the searches' 20 episodes played as one batch (``planner.batch_episodes``).
       Writes ``results/planning/minatar_fair_<game>.json`` (every episode's return and length, per-network means,
       paired differences with bootstrap intervals: FAIR_STATISTICS; ``ments_vs_uct``: the verdict per budget) and
       ``minatar_fair.png``.
    4. ``python -m benchmarks.planning plot`` redraws the figures; the RESULTS.md rows come from the JSONs.

    A stage too long for one sitting (SpaceInvaders' greedy episodes average ~560 moves against Breakout's ~64) is
    played in parts, e.g. ``--algorithms ments,bts`` and ``--algorithms dents,uct`` for a tuning, one
    ``--network-seeds`` (and ``--algorithms`` subset) per part for an evaluation, each part's JSON committed under
    ``results/planning/parts/`` as it ends; ``minatar-fair-merge`` then writes the stage's JSON from them.

    Cost of 2-3: simulations = episodes x networks x moves per episode x simulations per move; the batched search
    ran 1,100-1,200 simulations per CPU second (MENTS) and ~2,000 (UCT) on MinAtar Breakout with the M-DQN conv
    network (a briefly trained one: the cost does not depend on the weights), B = 20, 50 and 200 simulations, one
    thread on a shared 2-core VM (load ~4). At L moves per episode a game's tuning is ~16 L CPU seconds and its
    evaluation ~45 L; L (the trained networks' episodes, longer when the search plays well, at most
    ``--max-steps`` = 1000) is unknown before step 1: the training returns suggest ~200 (Breakout) to ~500
    (SpaceInvaders), so steps 2-3 come to ~10-20 core-hours for the three games, ~13-23 with step 1.
    Measured (2026-11-27, one thread per core, 2-core VM): the committed networks' greedy episodes average 64 moves
    on Breakout, 562 on SpaceInvaders and 582 on Asterix (16 episodes, env seeds 1000-1015); Breakout's evaluation
    took ~10 min per network (all 8 searches); SpaceInvaders' tuning points took 54-274 s (UCT) and 145-213 s
    (MENTS) against Breakout's 34-103 s, ~3.5x.

    Every episode runs through ``recipes/tree_search.py`` (its minatar preset: init q, soft leaf values at
    prior_tau 0.1, gamma 0.99, sticky actions 0.1, at most ``--max-steps`` moves), each in its own run directory
    under ``--run-dir``: a stopped stage run again resumes where it stopped. The JSONs hold the commands, the
    networks (checkpoint, sha256, training command and metrics), the knobs, the code commit and the machine.
    """
    game = next((g for g in MINATAR_GAMES if g.lower() == args.game.lower().replace("_", "")), None)
    if game is None:
        raise SystemExit(f"--game {args.game}: one of {list(MINATAR_GAMES)}")
    args.out = Path(args.out)
    for key, value in FAIR_DEFAULTS[args.stage].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    tuned = _fair_check(args, game)
    grid = _fair_grid(args) if args.stage == "tune" else None
    nets = _networks(args.networks, game, args.network_seeds)
    load_at_start = os.getloadavg()
    result = {
        "stage": args.stage, "game": game, "episodes": args.episodes, "batch_episodes": args.batch_episodes or args.episodes,
        "seed": args.seed, "max_steps": args.max_steps,
    }
    if args.stage == "tune":
        (net,) = nets
        (simulations,) = args.simulations
        def label(a: str, p: dict[str, float]) -> str:
            return f"{a}@{simulations}/" + ",".join(f"{k}={v:g}" for k, v in p.items())

        points = [(algorithm, point) for algorithm in args.algorithms for point in _grid_points(grid[algorithm])]
        plan = [("greedy", net, "greedy", {}, 1)]  # greedy: no search, its simulations unused
        plan += [(label(a, p), net, a, p, simulations) for a, p in points]
        (greedy, *outs), protocol = _play_all(args, "tune", game, plan)
        scores: dict[str, list[dict]] = {}
        tried: dict[str, list[dict[str, float]]] = {}

        def record(algorithm: str, point: dict[str, float], out: dict, **extra) -> None:
            tried.setdefault(algorithm, []).append(point)
            scores.setdefault(algorithm, []).append({
                "knobs": algorithm_knobs(algorithm, point), "mean_return": out["mean_return"],
                "episode_returns": out["returns"], "wall_time_s": out["wall_time_s"], **_diagnostics(out), **extra,
            })

        for (algorithm, point), out in zip(points, outs):
            record(algorithm, point, out)

        def best(algorithm: str) -> int:  # max keeps the first of equal means: ties go to the first point played
            rows = scores[algorithm]
            return max(range(len(rows)), key=lambda i: rows[i]["mean_return"])

        # a best point at the edge of the values tried says the optimum may lie beyond: step past it (--extend rounds)
        for round_ in range(1, args.extend + 1):
            more = [(a, p, why) for a in args.algorithms for p, why in _edge_extensions(grid[a], tried[a], tried[a][best(a)])]
            if not more:
                break
            outs, _ = _play_all(args, "tune", game, [(label(a, p), net, a, p, simulations) for a, p, _ in more])
            for (algorithm, point, why), out in zip(more, outs):
                record(algorithm, point, out, extension={"round": round_, "reason": why})
        result |= {
            "simulations": simulations, "network": net, "grid": grid, "extend": args.extend,
            "greedy": {"mean_return": greedy["mean_return"], "episode_returns": greedy["returns"]},
            "scores": scores,
            "chosen": {a: scores[a][best(a)]["knobs"] for a in args.algorithms},
            # knobs whose chosen value is still the smallest or largest tried: the tuning did not bracket them
            "at_edge": {a: _edges(grid[a], tried[a], tried[a][best(a)]) for a in args.algorithms},
            "rule": (
                "chosen: the point of highest mean return over the episodes, among the grid's and the extensions' "
                "(ties: the first played). Extensions: after the grid, while an algorithm's best point has a knob at "
                "the smallest or largest value tried (--extend rounds at most), the point one geometric step beyond "
                "it (the ratio of the two outermost values tried), the other knobs at the best point's, is played too"
            ),
        }
    else:
        labels = ["greedy"] + [f"{a}@{n}" for n in args.simulations for a in args.algorithms]
        knobs = {"greedy": {}} | {f"{a}@{n}": tuned["chosen"][a] for n in args.simulations for a in args.algorithms}
        # greedy: no search, its simulations unused
        plan = [(label, net, label.partition("@")[0], knobs[label], int(label.partition("@")[2] or 1)) for label in labels for net in nets]
        outs, protocol = _play_all(args, "eval", game, plan)
        played = iter(outs)
        cells = {label: [_cell(next(played)) for _ in nets] for label in labels}
        tuning = {k: tuned.get(k) for k in ("file", "command", "simulations", "episodes", "seed", "grid", "chosen", "at_edge")}
        result |= _eval_result(cells, nets, args.simulations, args.algorithms, tuning | {"network_seed": tuned["network"]["seed"]},
                               knobs, args.reps)
    result |= {"protocol": protocol} | _provenance() | {"load_average_at_start": load_at_start, "load_average_at_end": os.getloadavg()}
    suffix = "tune_" if args.stage == "tune" else ""
    _write(f"minatar_fair_{suffix}{game.lower()}", result, out=args.out, argv=args.argv)
    if args.stage == "eval":
        _plot_minatar_fair(args.out)


FAIR_SHARED = ("stage", "game", "episodes", "batch_episodes", "seed", "max_steps", "protocol")


def minatar_fair_merge(args) -> None:
    """Results of one ``minatar-fair`` stage played in parts (disjoint algorithms of a tuning; disjoint (method,
    network) cells of an evaluation: ``--network-seeds`` and ``--algorithms`` subsets) merged into the JSON the
    whole stage writes, as if one command had played it: the shared settings, network files and tuned knobs must
    agree, a cell in two parts must hold the same episodes (the greedy network, in every part of its network), and
    an evaluation must cover every method on every network. The paired
    comparisons are computed afresh from the episodes. Parts let a stage of many core-hours be played, and its
    pieces committed, across machines whose run directories do not survive (``merged_from``: each part's
    file, command, code commit and machine)."""
    parts = []
    for path in args.parts:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as err:
            raise SystemExit(f"{path}: {err}") from None
        if not isinstance(data, dict) or data.get("stage") not in ("tune", "eval"):
            raise SystemExit(f"{path} is not a minatar-fair tune or eval result")
        parts.append((str(path), data))
    if len(parts) < 2:
        raise SystemExit(f"give two or more parts to merge, got {len(parts)}")
    (first_path, first), stage = parts[0], parts[0][1]["stage"]
    shared = FAIR_SHARED + (("simulations", "extend", "greedy") if stage == "tune" else ())
    for path, data in parts[1:]:
        for key in shared:
            if data.get(key) != first.get(key):
                raise SystemExit(f"{path} and {first_path} differ in {key!r}: {data.get(key)!r} against {first.get(key)!r}")
    merged_from = [{"file": path, **{k: data.get(k) for k in ("command", "code_commit", "code_changed_files", "machine")}}
                   for path, data in parts]
    result = {key: first[key] for key in FAIR_SHARED}
    if stage == "tune":
        for path, data in parts[1:]:
            if data["network"]["sha256"] != first["network"]["sha256"]:
                raise SystemExit(f"{path} and {first_path} tuned on different networks")
        owner: dict[str, str] = {}
        for path, data in parts:
            for algorithm in data["scores"]:
                if algorithm in owner:
                    raise SystemExit(f"{algorithm} is tuned in both {owner[algorithm]} and {path}: merge disjoint algorithms")
                owner[algorithm] = path
        order = [a for a in ALGORITHMS if a in owner]
        by = {path: data for path, data in parts}
        result |= {k: first[k] for k in ("simulations", "network", "grid", "extend", "greedy", "scores", "chosen", "at_edge", "rule")}
        for key in ("grid", "scores", "chosen", "at_edge"):
            result[key] = {a: by[owner[a]][key][a] for a in order}
        name = f"minatar_fair_tune_{first['game'].lower()}"
    else:
        tuning_keys = ("simulations", "episodes", "seed", "grid", "chosen", "at_edge", "network_seed")
        cells: dict[tuple[str, int], dict] = {}
        nets: dict[int, dict] = {}
        knobs: dict[str, dict] = {}
        for path, data in parts:
            if {k: data["tuning"].get(k) for k in tuning_keys} != {k: first["tuning"].get(k) for k in tuning_keys}:
                raise SystemExit(f"{path} and {first_path} were evaluated with different tunings")
            for i, net in enumerate(data["networks"]):
                if nets.setdefault(net["seed"], net)["sha256"] != net["sha256"]:
                    raise SystemExit(f"{path}: network seed {net['seed']} is another file than in the other parts")
                for label in data["methods"]:
                    if knobs.setdefault(label, data["knobs"][label]) != data["knobs"][label]:
                        raise SystemExit(f"{path}: {label} with knobs {data['knobs'][label]}, another part has {knobs[label]}")
                    seen = cells.get((label, net["seed"]))
                    if seen is not None:
                        # the greedy network is in every part of a network: the same episodes (deterministic), kept once
                        if [seen["returns"], seen["lengths"]] != [data["episode_returns"][label][i], data["episode_lengths"][label][i]]:
                            raise SystemExit(f"{label} on the seed-{net['seed']} network is in {seen['part']} and {path} "
                                             "with other episodes: merge disjoint cells")
                        continue
                    diagnostics = data.get("diagnostics", {}).get(label, {})
                    cells[label, net["seed"]] = {
                        **{field: data[key][label][i] for field, key in EVAL_CELL_KEYS.items()},
                        "diagnostics": {k: (diagnostics.get(k) or [None] * len(data["networks"]))[i] for k in DIAGNOSTICS},
                        "part": path,
                    }
        simulations = sorted({int(label.partition("@")[2]) for label in knobs if "@" in label})
        algorithms = [a for a in ALGORITHMS if any(label.partition("@")[0] == a for label in knobs)]
        labels = ["greedy"] + [f"{a}@{n}" for n in simulations for a in algorithms]
        seeds = sorted(nets)
        missing = [f"{label} on seed {seed}" for label in labels for seed in seeds if (label, seed) not in cells]
        if missing:
            raise SystemExit(f"the parts do not cover every method on every network: missing {', '.join(missing)}")
        grid = {label: [cells[label, seed] for seed in seeds] for label in labels}
        result |= _eval_result(grid, [nets[seed] for seed in seeds], simulations, algorithms, first["tuning"],
                               {label: knobs[label] for label in labels}, args.reps)
        name = f"minatar_fair_{first['game'].lower()}"
    result |= {"merged_from": merged_from} | _provenance()
    out = Path(args.out)
    _write(name, result, out=out, argv=args.argv)
    if stage == "eval":
        _plot_minatar_fair(out)


def _plot_minatar_fair(out: Path) -> None:
    """``minatar_fair.png``: per game (columns) and budget (rows), each search's paired difference to the greedy
    network with its 95% interval, and each network's mean difference (dots)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    games = [json.loads(p.read_text()) for p in sorted(out.glob("minatar_fair_*.json")) if "_tune_" not in p.name]
    if not games:
        return
    budgets = sorted({n for data in games for n in data["simulations"]})
    fig, axes = plt.subplots(len(budgets), len(games), figsize=(4.2 * len(games), 3.2 * len(budgets)), squeeze=False)
    for col, data in enumerate(games):
        for row, n in enumerate(budgets):
            ax = axes[row][col]
            names = [m.partition("@")[0] for m in data["methods"] if m.endswith(f"@{n}")]
            for i, name in enumerate(names):
                comparison = data["comparisons"][f"{name}@{n} - greedy"]
                low, high = comparison["ci95"]
                ax.errorbar([i], [comparison["mean"]], yerr=[[comparison["mean"] - low], [high - comparison["mean"]]],
                            fmt="o", color=COLORS.get(name, "black"), capsize=4)
                ax.plot([i + 0.15] * len(comparison["per_network"]), [p["mean"] for p in comparison["per_network"]], "k.", ms=4)
            ax.axhline(0.0, color="k", lw=0.8)
            ax.set_xticks(range(len(names)), names)
            ax.set_ylabel("return - greedy network's")
            ax.set_title(f"MinAtar {data['game']}, {n} simulations per move\n{len(data['networks'])} networks x "
                         f"{data['episodes']} paired episodes (95% bootstrap CI)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "minatar_fair.png", dpi=120)
    print(f"wrote {out / 'minatar_fair.png'}")


def _to_dict(node) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(node, resolve=True)


# -- plots ------------------------------------------------------------------------------------------------
def plot(args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if (OUT / "speed.json").exists():
        data = json.loads((OUT / "speed.json").read_text())
        fig, ax = plt.subplots(figsize=(9, 4))
        labels, parts = [], {"tree": [], "simulator": [], "evaluator": []}
        for row in data["rows"]:
            labels.append(f"{row['algorithm']}\n{row['case'].split(',')[0][:9]}\n{'net' if 'network' in row['case'] else 'rollout'}")
            # CPU time per simulation (the machine is shared), split in the proportions of the timed run
            per_sim = 1e6 / row["sims_per_cpu_s"]
            timed = sum(row["split_s"][key] for key in parts)
            for key in parts:
                parts[key].append(row["split_s"][key] / timed * per_sim)
        bottom = np.zeros(len(labels))
        for key, color in zip(parts, ("tab:blue", "tab:orange", "tab:green")):
            ax.bar(labels, parts[key], bottom=bottom, label=key, color=color)
            bottom += np.array(parts[key])
        ax.set_ylabel("CPU microseconds per simulation")
        ax.set_yscale("log")
        ax.set_title("CPU time per simulation and its split; target 5,000 sims/s on one core = 200 us")
        ax.axhline(200, color="k", ls="--", lw=0.8)
        ax.legend()
        plt.xticks(fontsize=6)
        fig.tight_layout()
        fig.savefig(OUT / "speed.png", dpi=120)

    games = sorted(p for p in OUT.glob("minatar_*.json") if not p.name.startswith("minatar_fair"))  # the log-prior runs
    if games:
        fig, axes = plt.subplots(1, len(games), figsize=(4.2 * len(games), 3.4), squeeze=False)
        for ax, path in zip(axes[0], games):
            data = json.loads(path.read_text())
            names = list(data["returns"])
            means = [np.mean(data["returns"][n]) for n in names]
            sems = [np.std(data["returns"][n], ddof=1) / np.sqrt(len(data["returns"][n])) for n in names]
            ax.bar(names, means, yerr=sems, color=[COLORS.get(n, "black") for n in names], capsize=4)
            for i, name in enumerate(names):  # each network's mean return
                ax.plot([i] * len(data["returns"][name]), data["returns"][name], "k.", ms=4)
            nets = len(data.get("checkpoints", [data.get("checkpoint")]))
            ax.set_title(
                f"MinAtar {data['game']}: mean return of {nets} network(s) (+- s.e.),\n"
                f"{data['episodes']} episodes each, {data['simulations']} simulations per move", fontsize=9
            )
        fig.tight_layout()
        fig.savefig(OUT / "minatar.png", dpi=120)
    _plot_minatar_fair(OUT)

    panels = [name for name in ("synthetic", "dchain", "frozenlake_4x4", "frozenlake_4x4_gamma1", "frozenlake") if (OUT / f"{name}.json").exists()]
    if not panels:
        return
    series = []
    for name in panels:
        data = json.loads((OUT / f"{name}.json").read_text())
        if name == "synthetic":
            series.append(("synthetic tree: failure rate", data["budgets"], data["failure_rate"]))
        elif name == "dchain":
            for rf in ("0.5", "1.0"):
                rates = {k.split("/")[1]: v for k, v in data["success_rate"].items() if k.startswith(f"R_f={rf}")}
                series.append((f"D-chain D={data['length']}, R_f={rf}: success rate", data["budgets"], rates))
        else:
            title = f"FrozenLake {data['map']}, gamma={data['params'].get('gamma', 1.0)}: success rate"
            series.append((title, data["budgets"], data["success_rate"]))
    fig, axes = plt.subplots(1, len(series), figsize=(4.2 * len(series), 3.6))
    for ax, (title, budgets, rates) in zip(np.atleast_1d(axes), series):
        for algorithm, values in rates.items():
            ax.plot(budgets, values, marker="o", label=algorithm, color=COLORS[algorithm])
        ax.set_xscale("log")
        ax.set_xlabel("simulations")
        ax.set_title(title, fontsize=9)
        ax.set_ylim(-0.03, 1.03)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(OUT / "rates.png", dpi=120)
    print(f"wrote {OUT}/speed.png, {OUT}/rates.png")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="which", required=True)
    p = sub.add_parser("speed")
    p.add_argument("--simulations", type=int, default=20000)
    p.add_argument("--repeats", type=int, default=3)
    p = sub.add_parser("batched-speed")
    p.add_argument("--leaf", choices=("rollout", "minatar_conv"), default="rollout")
    p.add_argument("--algorithms", default="ments,bts,dents,uct")
    p.add_argument("--batches", default="1,16,64,256")
    p.add_argument("--simulations", type=int, default=100, help="simulations per tree")
    p.add_argument("--repeats", type=int, default=3, help="runs per search; the rates are their medians")
    p.add_argument("--device", default="cpu", help="the batched search's device (cuda: rows go to batched_speed_cuda.json)")
    p = sub.add_parser("batched-profile")
    p.add_argument("--algorithms", default="ments,uct")
    p.add_argument("--batches", default="1,64")
    p.add_argument("--simulations", type=int, default=100, help="simulations per tree")
    p.add_argument("--noise", type=float, default=0.1, help="leaf noise of the tree (batched-speed's: 0.1)")
    p.add_argument("--compile", action="store_true", help="also time one descent level under torch.compile")
    p = sub.add_parser("synthetic")
    p.add_argument("--trees", type=int, default=25)
    p.add_argument("--branching", type=int, default=4)
    p.add_argument("--depth", type=int, default=5)
    p.add_argument("--noise", type=float, default=0.1)
    # 0: a path's return is the mean of its edge values (the paper's tree); with uniform leaf values on top,
    # the best leaf under every root action is close to 1 and the root actions are nearly tied
    p.add_argument("--leaf-scale", type=float, default=0.0)
    p.add_argument("--budgets", default="20,50,100,200,500,1000,2000,5000")
    p = sub.add_parser("dchain")
    p.add_argument("--seeds", type=int, default=25)
    p.add_argument("--length", type=int, default=10)
    p.add_argument("--budgets", default="10,20,50,100,200,500,1000,2000,5000")
    p = sub.add_parser("dchain-batched")
    p.add_argument("--seeds", type=int, default=25, help="the number of trees of the batch")
    p.add_argument("--length", type=int, default=10)
    p.add_argument("--final-reward", type=float, default=0.5)
    p.add_argument("--simulations", type=int, default=5000)
    p.add_argument("--algorithms", default="ments,bts,dents,uct")
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("frozenlake")
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--max-steps", type=int, default=50)
    p.add_argument("--rollout", type=int, default=50)
    p.add_argument("--budgets", default="50,200,1000")
    p.add_argument("--map", default="8x8", choices=["4x4", "8x8"])
    p.add_argument("--gamma", type=float, default=0.95)
    p = sub.add_parser("frozenlake-batched")
    p.add_argument("--seeds", type=int, default=20, help="the number of episodes, the trees of the batch")
    p.add_argument("--max-steps", type=int, default=30)
    p.add_argument("--rollout", type=int, default=30)
    p.add_argument("--budgets", default="50,1000")
    p.add_argument("--map", default="4x4", choices=["4x4", "8x8"])
    p.add_argument("--gamma", type=float, default=0.95)
    p.add_argument("--algorithms", default="ments,bts,dents,uct")
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("minatar")
    p.add_argument("--checkpoint", required=True, nargs="+", help="M-DQN checkpoint(s): one per training seed")
    p.add_argument("--networks", default=None, help="JSON file describing how the networks were trained (copied into the result)")
    p.add_argument("--append", action="store_true", help="add these networks to an existing result of the same protocol")
    p.add_argument("--game", default="breakout")
    p.add_argument("--algorithms", default="greedy,ments,dents,uct")
    p.add_argument("--simulations", type=int, default=50)
    p.add_argument("--episodes", type=int, default=3)
    p.add_argument("--max-steps", type=int, default=1000)
    p.add_argument("--seed", type=int, default=100)
    p.add_argument(
        "--run-dir", default="/tmp/tree_search_minatar",
        help="one run directory per algorithm and network under it: a stopped benchmark resumes its runs, "
        "and a directory holding a run of another protocol is refused (use a new --run-dir)",
    )
    p = sub.add_parser("minatar-fair", help="the fair MinAtar comparison: see minatar_fair's docstring for the plan")
    p.add_argument("--stage", choices=("tune", "eval"), required=True)
    p.add_argument("--game", required=True, help="a MinAtar game: Breakout, SpaceInvaders, Asterix")
    p.add_argument("--networks", nargs="+", required=True,
                   help="sweep directories of benchmarks/minatar_networks.yaml (or M-DQN run directories)")
    p.add_argument("--network-seeds", type=lambda s: [int(x) for x in s.split(",")], default=None,
                   help="training seeds of the networks used (tune: the held-out one, 3; eval: 0,1,2)")
    p.add_argument("--algorithms", type=lambda s: s.split(","), default=list(ALGORITHMS))
    p.add_argument("--simulations", type=lambda s: [int(x) for x in s.split(",")], default=None,
                   help="simulations per move (tune: one budget, 50; eval: 50,200)")
    p.add_argument("--episodes", type=int, default=None, help="episodes per network or grid point (tune: 16; eval: 20)")
    p.add_argument("--batch-episodes", type=int, default=None, help="episodes searched at once (default: all of them)")
    p.add_argument("--seed", type=int, default=None, help="env seed of the first episode (tune: 1000; eval: 100)")
    p.add_argument("--max-steps", type=int, default=1000, help="moves per episode at most (a cap for cheap runs)")
    p.add_argument("--grid", default=None, help='tune: JSON replacing algorithms\' grids, e.g. \'{"uct": {"c": [1, 4]}}\'')
    p.add_argument("--extend", type=int, default=2,
                   help="tune: rounds of points played beyond a grid edge on which an algorithm's best point sits (0: the grid only)")
    p.add_argument("--tuned", default=None, help="eval: the tuning JSON (default: <out>/minatar_fair_tune_<game>.json)")
    p.add_argument("--reps", type=int, default=10_000, help="bootstrap resamples")
    p.add_argument("--out", default=str(OUT), help="where the JSONs and minatar_fair.png go")
    p.add_argument("--run-dir", default="runs/minatar_fair", help="the planning runs' directories (a rerun resumes them)")
    p = sub.add_parser("minatar-replay-speed", help="a MinAtar search's cost before and after replaying tried edges")
    p.add_argument("--games", default="Breakout,SpaceInvaders")
    p.add_argument("--algorithms", default="ments,bts,dents,uct")
    p.add_argument("--episodes", type=int, default=8, help="episodes per run, one batched search per move")
    p.add_argument("--moves", type=int, default=60, help="moves per episode at most (max_steps)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=str(OUT), help="where minatar_replay_speed.json goes")
    p = sub.add_parser("minatar-model-error", help="how far the search's MinAtar model strays from the real game")
    p.add_argument("--games", default="Breakout,SpaceInvaders,Asterix")
    p.add_argument("--episodes", type=int, default=5, help="real episodes of random play per game and sticky-action probability")
    p.add_argument("--max-steps", type=int, default=200, help="moves per episode at most")
    p.add_argument("--horizons", default="1,5,10", help="moves replayed in the model from each real move")
    p.add_argument("--out", default=str(OUT), help="where minatar_model_error.json/.png go")
    p = sub.add_parser("minatar-oracle", help="the fair evaluation's searches with an oracle model (the real game's stream)")
    p.add_argument("--eval", required=True, help="the game's evaluation JSON (minatar_fair_<game>.json or a part of it)")
    p.add_argument("--algorithms", default="ments,bts,dents,uct")
    p.add_argument("--simulations", type=int, default=50)
    p.add_argument("--reps", type=int, default=10_000, help="bootstrap resamples")
    p.add_argument("--out", default=str(OUT), help="where minatar_oracle_<game>.json goes")
    p.add_argument("--run-dir", default="runs/minatar_fair", help="the planning runs' directories (a rerun resumes them)")
    p = sub.add_parser("minatar-fair-merge", help="minatar-fair results played in parts, merged into the stage's JSON")
    p.add_argument("parts", nargs="+", help="the parts' JSONs (one stage and game; disjoint algorithms or cells)")
    p.add_argument("--reps", type=int, default=10_000, help="bootstrap resamples of the recomputed comparisons")
    p.add_argument("--out", default=str(OUT), help="where the merged JSON (and, for an evaluation, minatar_fair.png) goes")
    p = sub.add_parser("export-networks", help="completed M-DQN MinAtar runs as small run directories to commit (policy only)")
    p.add_argument("--networks", nargs="+", required=True, help="sweep or run directories of benchmarks/minatar_networks.yaml")
    p.add_argument("--out", default=str(NETWORKS_OUT), help="one <Game>_seed<n> directory per run under it")
    sub.add_parser("plot")
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    torch.set_num_threads(1)
    {"minatar-fair": minatar_fair, "speed": speed, "batched-speed": batched_speed, "batched-profile": batched_profile, "synthetic": synthetic, "dchain": dchain, "dchain-batched": dchain_batched, "frozenlake": frozenlake, "frozenlake-batched": frozenlake_batched, "minatar": minatar, "minatar-replay-speed": minatar_replay_speed, "minatar-model-error": minatar_model_error, "minatar-oracle": minatar_oracle, "export-networks": export_networks, "minatar-fair-merge": minatar_fair_merge, "plot": plot}[args.which](args)


if __name__ == "__main__":
    main()
