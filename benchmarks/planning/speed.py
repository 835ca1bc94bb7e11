"""Speed of the searches: TreeSearch and BatchedTreeSearch simulations per second (``speed``, ``batched-speed``), where a batched step goes (``batched-profile``)."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.planning.common import COMPARED, OUT, write_result
from torchrl_reg.modules.q_networks import make_q_network
from torchrl_reg.planning import (
    KNOB_DEFAULTS,
    KNOBS,
    make_search,
    MinAtarSimulator,
    QNetworkEvaluator,
    RandomRollout,
    SyntheticTree,
    TensorSyntheticTree,
)
from torchrl_reg.planning.records import NodeStats


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


def knobs_of(algorithm: str, params: dict) -> dict:
    """``params`` without the knobs ``algorithm`` does not read (make_search refuses them)."""
    return {k: v for k, v in params.items() if k in KNOBS[algorithm] or k not in KNOB_DEFAULTS}


def _speed_case(algorithm: str, make_sim, make_evaluator, simulations: int, repeats: int) -> dict:
    rates, cpu_rates = [], []
    for r in range(repeats):
        sim = make_sim()
        search = make_search(algorithm, sim, evaluator=make_evaluator(sim, r), seed=r, **knobs_of(algorithm, SPEED_PARAMS))
        t, c = time.perf_counter(), time.process_time()
        search.search(simulations)
        rates.append(simulations / (time.perf_counter() - t))
        cpu_rates.append(simulations / (time.process_time() - c))
    sim = TimedSimulator(make_sim())
    evaluator = TimedEvaluator(make_evaluator(sim, 0), sim)
    search = make_search(algorithm, sim, evaluator=evaluator, seed=0, **knobs_of(algorithm, SPEED_PARAMS))
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
    for algorithm in COMPARED:
        row = _speed_case(algorithm, lambda: tree, lambda sim, r: RandomRollout(max_steps=10, seed=r), args.simulations, args.repeats)
        row["case"] = "synthetic depth-10 4-action tree, random rollout leaf"
        rows.append(row)
        print(row["case"], algorithm, f"{row['sims_per_s']:.0f} sims/s wall, {row['sims_per_cpu_s']:.0f} per CPU s", row["split_s"])

    mlp = torch.nn.Sequential(torch.nn.Linear(1, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4))

    def mlp_q(obs: torch.Tensor) -> torch.Tensor:
        return mlp(obs.float() / 1e6)

    for algorithm in COMPARED:
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
    write_result("speed", {"rows": rows, "network_cost_by_batch": batching, "target_sims_per_s": 5000, "load_average": os.getloadavg()})


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
        "rollout": (lambda: RandomRollout(max_steps=10, seed=0), lambda: RandomRollout(max_steps=10, seed=0)),
        "minatar_conv": (
            lambda: QNetworkEvaluator(conv_q, num_actions=4, tau=0.1),
            lambda: QNetworkEvaluator(conv_q_batched, num_actions=4, tau=0.1, device=device),
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
        knobs = knobs_of(algorithm, SPEED_PARAMS)

        def tree_search() -> int:
            make_search(algorithm, tree, evaluator=old_evaluator(), seed=0, **knobs).search(args.simulations)
            return args.simulations

        def batched(b: int) -> int:
            make_search(algorithm, sim, batched=True, evaluator=new_evaluator(), seed=0, device=device, **knobs).search(sim.root(b), args.simulations)
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
        order = {"leaf": ("rollout", "minatar_conv"), "algorithm": COMPARED}
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
    write_result(name, result)
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

    from torchrl_reg.planning.batched import TreeViews

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
        knobs = knobs_of(algorithm, SPEED_PARAMS)
        old = make_search(algorithm, tree, evaluator=RandomRollout(max_steps=10, seed=0), seed=0, **knobs)
        c = time.process_time()
        old.search(args.simulations)
        tree_search_us = (time.process_time() - c) / args.simulations * 1e6
        for b in [int(b) for b in args.batches.split(",")]:
            sim = TensorSyntheticTree([tree])
            counter = Count()
            rollout = RandomRollout(max_steps=10, seed=0)
            sim.step = in_phase(counter, "model steps in the descent", sim.step)
            search = make_search(algorithm, sim, batched=True, evaluator=in_phase(counter, "rollout (model steps included)", rollout), seed=0, **knobs)
            with counter:
                search.search(sim.root(b), args.simulations)
            plain = make_search(algorithm, TensorSyntheticTree([tree]), batched=True, evaluator=RandomRollout(max_steps=10, seed=0), seed=0, **knobs)
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
        result["compile"] = _compile_level(noiseless, int(args.batches.split(",")[-1]), args.simulations, TreeViews)
    result["load_average_at_end"] = os.getloadavg()
    result["definition"] = (
        "ops: aten operations reaching the dispatcher per simulation step (all B trees); cpu_us_per_step: this "
        "process's CPU time per step without the counting; the synthetic depth-10 4-action tree, random-rollout leaf"
    )
    write_result("batched_profile", result)


def _compile_level(tree, batch: int, simulations: int, work) -> dict:
    """CPU time of one descent level (draw, model step, child look-up, stop test) eager and under torch.compile."""
    sim = TensorSyntheticTree([tree])
    search = make_search("ments", sim, batched=True, evaluator=RandomRollout(max_steps=10, seed=0), seed=0, **knobs_of("ments", SPEED_PARAMS))
    search.search(sim.root(batch), simulations)
    k = sim.num_actions
    w = work(search.tree, search.policy.count_table(k, simulations + 1, dtype=torch.float64, device=torch.device("cpu")), search.tree.q)

    def level(node, state, active, u):
        total = w.node["total"].take(node)
        action = search.policy.select_rows(NodeStats(w.search_values.index_select(0, node), total, counts=w.counts.index_select(0, total)), u)
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


# -- chance-speed --------------------------------------------------------------------------------------
def chance_speed(args) -> None:
    """Simulations per CPU-second of BatchedTreeSearch on MinAtar with chance nodes (the sampled model) against one
    sampled future per move (the determinized model), at each B of ``--batches``, one thread, one run each.

    Both models search the same B roots (real envs ``--moves`` random moves into their episodes, sticky actions 0.1)
    with the same algorithm, leaf (a ``--rollout-steps`` random rollout) and ``--simulations`` per tree. The
    determinized model steps each edge once and replays it; the sampled one steps the emulator at every level of every
    descent (a fresh outcome per visit) and looks the drawn state up among the edge's outcomes. ``ratio`` is the
    sampled model's rate over the determinized one's at the same B and algorithm.
    """
    import minatar

    from torchrl_reg.planning import BatchedMinAtar

    torch.set_num_threads(1)
    batches = [int(b) for b in args.batches.split(",")]
    envs = []
    for seed in range(max(batches)):
        env = minatar.Environment(args.game, sticky_action_prob=0.1)
        env.seed(seed)
        env.reset()
        rng = np.random.default_rng(seed)
        for _ in range(args.moves):
            if env.act(int(rng.integers(6)))[1]:
                env.reset()
        envs.append(env)
    rows = []
    for algorithm in args.algorithms.split(","):
        for b in batches:
            rates = {}
            for model in ("determinized", "sampled"):
                sim = BatchedMinAtar(args.game, sticky_action_prob=0.1, seed=0, model=model)
                search = make_search(algorithm, sim, batched=True, evaluator=RandomRollout(max_steps=args.rollout_steps, seed=0), seed=0,
                                     **knobs_of(algorithm, SPEED_PARAMS))
                roots = sim.roots(envs[:b], (0, 0))
                c, t = time.process_time(), time.perf_counter()
                search.search(roots, args.simulations)
                cpu, wall = time.process_time() - c, time.perf_counter() - t
                outcomes = search.tree.outcomes[:, :-1]
                rates[model] = {
                    "sims_per_cpu_s": b * args.simulations / cpu, "sims_per_s": b * args.simulations / wall, "snapshots": len(sim),
                    "most_outcomes_per_edge": int((outcomes >= 0).sum(-1).max()) if outcomes.numel() else 1,
                }
            row = {"algorithm": algorithm, "batch": b, **{f"{m}_{k}": v for m, r in rates.items() for k, v in r.items()}}
            row["ratio_sampled_to_determinized"] = rates["sampled"]["sims_per_cpu_s"] / rates["determinized"]["sims_per_cpu_s"]
            row["load_average"] = os.getloadavg()
            print(row, flush=True)
            rows.append(row)
    write_result("chance_speed", {
        "rows": rows, "game": args.game, "simulations_per_tree": args.simulations, "rollout_steps": args.rollout_steps,
        "moves_into_episode": args.moves, "machine": "2-core shared CPU box, one thread (torch.set_num_threads(1)), no GPU",
        "definition": "total simulations (all B trees) per second of this process's CPU time, one run of one search per "
                      "(algorithm, B, model) on the same roots; ratio_sampled_to_determinized: the sampled model's rate over "
                      "the determinized one's",
    })
