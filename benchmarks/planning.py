"""Tree-search benchmarks: speed, synthetic-tree failure rates, D-chain and FrozenLake success rates.

    taskset -c 0 python -m benchmarks.planning speed
    taskset -c 1 python -m benchmarks.planning batched-speed --leaf rollout --algorithms ments --repeats 3
    taskset -c 1 python -m benchmarks.planning batched-profile --algorithms ments,uct --batches 1,64
    taskset -c 0 python -m benchmarks.planning synthetic --trees 25
    taskset -c 0 python -m benchmarks.planning dchain --seeds 25
    taskset -c 1 python -m benchmarks.planning dchain-batched --seeds 25 --final-reward 0.5 --algorithms ments,bts
    taskset -c 0 python -m benchmarks.planning frozenlake --seeds 20
    taskset -c 1 python -m benchmarks.planning frozenlake-batched --seeds 20 --map 4x4 --budgets 50,1000
    python -m benchmarks.planning plot

Results go to ``benchmarks/results/planning/<name>.json`` (with the command) and ``.png``. One
thread (``OMP_NUM_THREADS=1``, ``torch.set_num_threads(1)``); pin to core 0 with ``taskset``.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

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
    synthetic_tree_q,
)
from torchrl_reg.modules.q_networks import make_q_network  # noqa: E402

OUT = Path(__file__).parent / "results" / "planning"
COLORS = {"ments": "tab:red", "dents": "tab:green", "bts": "tab:blue", "uct": "tab:gray"}


def _write(name: str, data: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    cores = sorted(os.sched_getaffinity(0))  # the cores this process may run on, as taskset set them
    pin = f"taskset -c {','.join(map(str, cores))} " if len(cores) < os.cpu_count() else ""
    data["command"] = f"OMP_NUM_THREADS=1 {pin}python " + " ".join(["-m", "benchmarks.planning", *sys.argv[1:]])
    (OUT / f"{name}.json").write_text(json.dumps(data, indent=2))
    print(f"wrote {OUT / name}.json")


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


def minatar(args) -> None:
    """Greedy M-DQN network vs searches that use it as prior and leaf value (``recipes/tree_search.py``), for
    each network (one per training seed): ``returns[algorithm]`` holds the mean return of each network
    (the unit of the statistics), ``episode_returns[algorithm]`` every episode, network by network."""
    from recipes import tree_search
    from torchrl_reg.configs import compose_config

    conf = Path(tree_search.__file__).parent / "conf"
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
            cfg = compose_config(
                conf,
                "tree_search",
                [
                    "tree_search_preset=minatar",
                    f"task.game={args.game}",
                    f"task.max_steps={args.max_steps}",
                    f"evaluator.checkpoint='{checkpoint}'",  # quoted: a sweep's task directory names hold '='
                    f"planner.algorithm={algorithm}",
                    # the preset sets MENTS's knobs; the other searches read their own at the same scale
                    *{"bts": ["planner.tau=null", "planner.alpha=0.1"], "dents": ["planner.tau=null", "planner.alpha=0.1"],
                      "uct": ["planner.tau=null", "planner.eps=null"]}.get(algorithm, []),
                    f"planner.simulations={args.simulations}",
                    f"episodes={args.episodes}",
                    f"seed={args.seed}",  # the same episodes (env seeds) for every algorithm and network
                    f"run_dir={args.run_dir}/{algorithm}_{index}",
                ],
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

    games = sorted(OUT.glob("minatar_*.json"))
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


def main() -> None:
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
    sub.add_parser("plot")
    args = parser.parse_args()
    torch.set_num_threads(1)
    {"speed": speed, "batched-speed": batched_speed, "batched-profile": batched_profile, "synthetic": synthetic, "dchain": dchain, "dchain-batched": dchain_batched, "frozenlake": frozenlake, "frozenlake-batched": frozenlake_batched, "minatar": minatar, "plot": plot}[args.which](args)


if __name__ == "__main__":
    main()
