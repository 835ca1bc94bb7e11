"""Update cost: one optimizer step of MunchausenDQNLoss vs TorchRL's DQNLoss.

Same network, same batch, same loss function (Huber), same optimizer; each repeat times
``--steps`` updates of each loss back to back (order alternating between repeats) and the
median of the per-repeat ratios is reported. Issue 2, section 7: target ratio <= 1.10.
Each network's FLOP count per update (torch's FlopCounterMode) gives the ratio's compute floor:
M-DQN needs the target network's action values at s_t too, one more forward pass per update.

    python -m benchmarks.update_cost --repeats 15 --steps 200
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import warnings
from pathlib import Path

import torch
from tensordict import TensorDict
from torch import nn
from torchrl.data import Categorical
from torchrl.modules import QValueActor
from torchrl.objectives import DQNLoss, SoftUpdate

from benchmarks.common import cost_ratio, finish_plot, optimizer_step
from torchrl_reg.objectives import MunchausenDQNLoss

RESULTS = Path(__file__).parent / "results" / "update_cost"


def cartpole_net() -> tuple[nn.Module, tuple[int, ...], int, int]:
    return nn.Sequential(nn.Linear(4, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 2)), (4,), 2, 128


def minatar_net() -> tuple[nn.Module, tuple[int, ...], int, int]:
    net = nn.Sequential(
        nn.Conv2d(4, 16, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 8 * 8, 128), nn.ReLU(), nn.Linear(128, 6)
    )
    return net, (4, 10, 10), 6, 32


def nature_net() -> tuple[nn.Module, tuple[int, ...], int, int]:
    net = nn.Sequential(
        nn.Conv2d(4, 32, 8, stride=4), nn.ReLU(),
        nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
        nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(3136, 512), nn.ReLU(), nn.Linear(512, 18),
    )
    return net, (4, 84, 84), 18, 32


NETWORKS = {"cartpole_mlp": cartpole_net, "minatar_conv": minatar_net, "atari_nature_cnn": nature_net}


def make_step(kind: str, net_fn, seed: int, device: str = "cpu"):
    torch.manual_seed(seed)
    net, obs_shape, num_actions, batch = net_fn()
    net = net.to(device)
    spec = Categorical(num_actions)
    actor = QValueActor(net, in_keys=["observation"], spec=spec)
    if kind == "dqn":
        loss = DQNLoss(actor, action_space=spec, loss_function="smooth_l1", delay_value=True)
    else:
        loss = MunchausenDQNLoss(actor, loss_function="smooth_l1")
    loss.make_value_estimator(gamma=0.99)
    updater = SoftUpdate(loss, eps=0.995)
    optim = torch.optim.Adam(loss.parameters(), lr=1e-4)
    data = TensorDict(
        {
            "observation": torch.rand(batch, *obs_shape),
            "action": spec.rand((batch,)),
            ("next", "observation"): torch.rand(batch, *obs_shape),
            ("next", "reward"): torch.randn(batch, 1),
            ("next", "done"): torch.rand(batch, 1) < 0.05,
        },
        [batch],
    )
    data["next", "terminated"] = data["next", "done"].clone()
    data = data.to(device)

    loss = loss.to(device)

    return optimizer_step(loss, data, [optim], updater)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--steps", type=int, default=200, help="updates per timing (scaled down for big nets)")
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (results then go to update_cost_cuda.json)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message="No target network updater")
    results = {}
    for name in args.networks:
        steps = {kind: make_step(kind, NETWORKS[name], 0, args.device) for kind in ("dqn", "m_dqn")}
        n = args.steps if name != "atari_nature_cnn" or args.device != "cpu" else max(args.steps // 10, 5)
        # The compute floor of the ratio: M-DQN adds a target-network forward at s_t.
        results[name] = cost_ratio("dqn", "m_dqn", steps, args.repeats, n, warmup=max(n // 5, 2))
        print(name, json.dumps(results[name]))
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "command": "python " + " ".join(sys.argv),
        "repeats": args.repeats,
        "threads": args.threads,
        "torch": torch.__version__,
        "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(),
        "machine": f"{platform.machine()} {platform.processor()} ({torch.get_num_threads()} torch threads)",
        "target_ratio": 1.10,
        "results": results,
    }
    suffix = "" if args.device == "cpu" else "_cuda"
    (RESULTS / f"update_cost{suffix}.json").write_text(json.dumps(payload, indent=2))
    plot(results, RESULTS / f"update_cost{suffix}.png", payload["device"])


def plot(results: dict, path: Path, device: str = "cpu") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ratios = [results[n]["ratio_median"] for n in names]
    lows = [results[n]["ratio_median"] - results[n]["ratio_min"] for n in names]
    highs = [results[n]["ratio_max"] - results[n]["ratio_median"] for n in names]
    ax.bar(names, ratios, yerr=[lows, highs], color="tab:blue", capsize=4)
    ax.scatter(names, [results[n]["flop_ratio"] for n in names], marker="D", color="black", zorder=3,
               label="FLOP ratio (compute floor)")
    ax.axhline(1.0, color="gray", lw=0.8)
    finish_plot(fig, ax, path, ylabel="M-DQN step / DQN step (median)",
                title=f"Update cost, MunchausenDQNLoss vs torchrl DQNLoss ({device})", target=1.10, target_label="target 1.10")


if __name__ == "__main__":
    main()
