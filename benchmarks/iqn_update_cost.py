"""Update cost: one optimizer step of MunchausenIQNLoss vs IQNLoss on the same network and batch.

Networks: Revisiting Rainbow's MinAtar IQN (N = N' = K = 32, 4 channels, 6 actions) and the
Atari IQN (Nature CNN, N = N' = 64, K = 32, 18 actions), batch 32, Adam, HardUpdate. Each repeat
times ``--steps`` updates of each loss back to back (order alternating between repeats); the
median (and quartiles) of the per-repeat ratios is reported, for fractions drawn per transition (IQN paper,
Dopamine TF) and shared by the batch (Dopamine JAX / Revisiting Rainbow). Issue 4, section 7:
target ratio <= 1.10. The FLOP count per update gives the ratio's compute floor.

    python -m benchmarks.iqn_update_cost --repeats 11 --steps 20
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
from torchrl.data import Categorical
from torchrl.modules import QValueActor
from torchrl.objectives import HardUpdate

from benchmarks.common import cost_ratio, optimizer_step
from torchrl_reg.modules.iqn import ImplicitQuantileNetwork
from torchrl_reg.objectives.iqn import IQNLoss, MunchausenIQNLoss

RESULTS = Path(__file__).parent / "results" / "iqn"

SETUPS = {
    # name: (network factory, observation shape, obs dtype, actions, N, N', K)
    "minatar_iqn": (lambda: ImplicitQuantileNetwork.minatar(4, 6), (4, 10, 10), torch.float32, 6, 32, 32, 32),
    "atari_nature_iqn": (lambda: ImplicitQuantileNetwork.nature(18), (4, 84, 84), torch.uint8, 18, 64, 64, 32),
}


def make_step(kind: str, setup: str, independent: bool, batch: int = 32, device: str = "cpu"):
    factory, obs_shape, dtype, num_actions, n, n_prime, k = SETUPS[setup]
    torch.manual_seed(0)
    spec = Categorical(num_actions)
    actor = QValueActor(factory().to(device), in_keys=["observation"], spec=spec)
    cls = MunchausenIQNLoss if kind == "m_iqn" else IQNLoss
    loss = cls(actor, num_quantiles=n, num_target_quantiles=n_prime, num_policy_quantiles=k,
               independent_fractions=independent)
    loss.make_value_estimator(gamma=0.99)
    loss = loss.to(device)
    updater = HardUpdate(loss, value_network_update_interval=1000)
    optim = torch.optim.Adam(loss.parameters(), lr=5e-5, eps=3.125e-4)

    def obs() -> torch.Tensor:
        if dtype == torch.uint8:
            return torch.randint(0, 256, (batch, *obs_shape), dtype=torch.uint8)
        return (torch.rand(batch, *obs_shape) < 0.1).float()

    data = TensorDict(
        {
            "observation": obs(),
            "action": spec.rand((batch,)),
            ("next", "observation"): obs(),
            ("next", "reward"): torch.randn(batch, 1),
            ("next", "done"): torch.rand(batch, 1) < 0.05,
        },
        [batch],
    )
    data["next", "terminated"] = data["next", "done"].clone()
    data = data.to(device)

    return optimizer_step(loss, data, [optim], updater)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--steps", type=int, default=20, help="updates per timing (a quarter for the Nature CNN)")
    parser.add_argument("--setups", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (results then go to update_cost_cuda.json)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message="No target network updater")
    results = {}
    for setup in args.setups:
        for independent in (True, False):
            name = f"{setup}/{'per_transition' if independent else 'shared'}_fractions"
            steps = {kind: make_step(kind, setup, independent, device=args.device) for kind in ("iqn", "m_iqn")}
            n = args.steps if setup == "minatar_iqn" or args.device != "cpu" else max(args.steps // 4, 3)
            # The compute floor of the ratio: M-IQN adds a target-network pass at s_t (K quantiles).
            results[name] = cost_ratio("iqn", "m_iqn", steps, args.repeats, n, warmup=2)
            print(name, json.dumps(results[name]), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "command": "python " + " ".join(sys.argv),
        "repeats": args.repeats,
        "threads": args.threads,
        "batch": 32,
        "torch": torch.__version__,
        "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(),
        "machine": f"{platform.machine()} {platform.processor()} ({torch.get_num_threads()} torch threads)",
        "target_ratio": 1.10,
        "results": results,
    }
    suffix = "" if args.device == "cpu" else "_cuda"
    (RESULTS / f"update_cost{suffix}.json").write_text(json.dumps(payload, indent=2))
    plot(results, RESULTS / f"update_cost{suffix}.png")


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, ax = plt.subplots(figsize=(7, 3.8))
    ratios = [results[n]["ratio_median"] for n in names]
    lows = [results[n]["ratio_median"] - results[n]["ratio_q25"] for n in names]
    highs = [results[n]["ratio_q75"] - results[n]["ratio_median"] for n in names]
    labels = [n.replace("/", "\n") for n in names]
    ax.bar(labels, ratios, yerr=[lows, highs], color="tab:blue", capsize=4)
    ax.scatter(labels, [results[n]["flop_ratio"] for n in names], marker="D", color="black", zorder=3,
               label="FLOP ratio (compute floor)")
    ax.axhline(1.10, color="tab:red", ls="--", label="target 1.10")
    ax.axhline(1.0, color="gray", lw=0.8)
    ax.set_ylabel("M-IQN step / IQN step\n(median, bars: quartiles)")
    ax.set_title("Update cost, MunchausenIQNLoss vs IQNLoss (batch 32)")
    ax.tick_params(axis="x", labelsize=7)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
