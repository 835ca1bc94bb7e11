"""Cost per update of VIREL's temperature estimators ([VIREL] arXiv 1811.01132): accurately
estimating eps can be costly, and this measures by how much.

One update = (for ``replay``: the temperature on a separate replay batch of ``--temperature-batch``
transitions, the official code's 4096) + VIRELLoss forward + backward + Adam step + Polyak update,
on random transitions of the given sizes; ``batch`` and ``ema`` estimate on the training batch
inside the forward. SAC (TorchRL's SACLoss, same networks and batch) is timed beside them. Sizes:
Pendulum (3-d observation, 1-d action, 64x64, batch 128, the recipe's preset) and the official
MuJoCo setting (HalfCheetah's 17/6 dimensions, 300x300, batch 128). Each repeat times ``--steps``
updates of every method back to back (order rotating between repeats); medians are reported.

    taskset -c 0 python benchmarks/virel_estimator_cost.py
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("RL_WARNINGS", "False")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from tensordict import TensorDict  # noqa: E402
from torchrl.data import Bounded  # noqa: E402
from torchrl.objectives import SACLoss, SoftUpdate  # noqa: E402

from torchrl_reg.modules.critics import state_action_value_network  # noqa: E402
from torchrl_reg.modules.policies import tanh_normal_policy  # noqa: E402
from torchrl_reg.objectives import VIRELLoss  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "virel"
SIZES = {"pendulum": (3, 1, [64, 64], 128), "halfcheetah_official": (17, 6, [300, 300], 128)}


def transitions(n: int, obs: int, act: int) -> TensorDict:
    done = torch.rand(n, 1) < 0.01
    return TensorDict(
        {
            "observation": torch.randn(n, obs),
            "action": torch.rand(n, act) * 2 - 1,
            ("next", "observation"): torch.randn(n, obs),
            ("next", "reward"): torch.randn(n, 1),
            ("next", "done"): done,
            ("next", "terminated"): done.clone(),
        },
        [n],
    )


def make_method(name: str, obs: int, act: int, hidden: list[int], temperature_batch: int):
    torch.manual_seed(0)
    spec = Bounded(-1.0, 1.0, shape=(act,))
    actor = tanh_normal_policy(obs, spec, num_cells=hidden)
    critic = state_action_value_network(obs, act, num_cells=hidden)
    if name == "sac":
        loss = SACLoss(actor, critic, num_qvalue_nets=2, loss_function="l2", action_spec=spec)
        keys = ("loss_actor", "loss_qvalue", "loss_alpha")
    else:
        estimator = name.split("/")[1]
        loss = VIRELLoss(actor, critic, variant="practical", temperature_estimator=estimator, c=0.008)
        keys = ("loss_actor", "loss_qvalue")
    loss.make_value_estimator(gamma=0.99)
    optimizer = torch.optim.Adam(loss.parameters(), lr=3e-4)
    updater = SoftUpdate(loss, tau=1e-3)
    temperature_data = transitions(temperature_batch, obs, act)

    def step(batch: TensorDict) -> None:
        if name == "virel/replay":
            loss.update_temperature(temperature_data)
        out = loss(batch)
        sum(out[k] for k in keys).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        updater.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--temperature-batch", type=int, default=4096)
    args = parser.parse_args()
    torch.set_num_threads(1)
    methods = ["sac", "virel/batch", "virel/ema", "virel/replay"]
    results = {}
    for size, (obs, act, hidden, batch_size) in SIZES.items():
        steps = {m: make_method(m, obs, act, hidden, args.temperature_batch) for m in methods}
        batch = transitions(batch_size, obs, act)
        for m in methods:  # warm-up
            for _ in range(3):
                steps[m](batch.clone())
        times = {m: [] for m in methods}
        for r in range(args.repeats):
            order = methods[r % len(methods):] + methods[: r % len(methods)]
            for m in order:
                start = time.perf_counter()
                for _ in range(args.steps):
                    steps[m](batch.clone())
                times[m].append((time.perf_counter() - start) / args.steps * 1e3)
        results[size] = {m: {"ms_per_update": statistics.median(t), "all": t} for m, t in times.items()}
        base = results[size]["virel/batch"]["ms_per_update"]
        for m in methods:
            results[size][m]["ratio_to_batch"] = results[size][m]["ms_per_update"] / base
        print(size, {m: round(v["ms_per_update"], 2) for m, v in results[size].items()}, flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "command": "taskset -c 0 python benchmarks/virel_estimator_cost.py " + " ".join(sys.argv[1:]),
        "args": vars(args),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "threads": 1,
        "results": results,
    }
    (RESULTS / "estimator_cost.json").write_text(json.dumps(payload, indent=2))
    fig, axes = plt.subplots(1, len(SIZES), figsize=(5 * len(SIZES), 3.8))
    for ax, (size, rows) in zip(axes, results.items()):
        ax.bar(list(rows), [rows[m]["ms_per_update"] for m in rows], color=["gray", "tab:blue", "tab:cyan", "tab:purple"])
        ax.set_title(size)
        ax.set_ylabel("ms per update (1 thread)")
        ax.tick_params(axis="x", rotation=20)
    fig.suptitle(f"VIREL temperature estimators: cost per update (replay batch {args.temperature_batch})")
    fig.tight_layout()
    fig.savefig(RESULTS / "estimator_cost.png", dpi=110)


if __name__ == "__main__":
    main()
