"""Update cost: one optimizer step of MunchausenIQNLoss vs IQNLoss on the same network and batch.

Networks: Revisiting Rainbow's MinAtar IQN (N = N' = K = 32, 4 channels, 6 actions) and the
Atari IQN (Nature CNN, N = N' = 64, K = 32, 18 actions), batch 32, Adam, HardUpdate. Each repeat
times ``--steps`` updates of each loss back to back (order alternating between repeats); the
median (and quartiles) of the per-repeat ratios is reported, for fractions drawn per transition (IQN paper,
Dopamine TF) and shared by the batch (Dopamine JAX / Revisiting Rainbow). Target:
ratio <= 1.10. The FLOP count per update gives the ratio's compute floor.

    python -m benchmarks.iqn_update_cost --repeats 11 --steps 20
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

import torch
from torchrl.data import Categorical
from torchrl.modules import QValueActor
from torchrl.objectives import HardUpdate

from benchmarks.common import cost_ratios, optimizer_step, parse_timing_args, plot_cost_ratios, random_transitions, timing_parser, write_cost_ratios
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

    data = random_transitions(obs, spec, batch, device)

    return optimizer_step(loss, data, [optim], updater)


def main() -> None:
    args = parse_timing_args(timing_parser(__doc__.splitlines()[0], repeats=11, steps=20, subsets=("--setups", SETUPS),
                                           steps_help="updates per timing (a quarter for the Nature CNN)"))
    setups = {
        f"{setup}/{'per_transition' if independent else 'shared'}_fractions": (
            partial(make_step, setup=setup, independent=independent, device=args.device),
            args.steps if setup == "minatar_iqn" or args.device != "cpu" else max(args.steps // 4, 3),
        )
        for setup in args.setups
        for independent in (True, False)
    }
    # The compute floor of the ratio: M-IQN adds a target-network pass at s_t (K quantiles).
    results = cost_ratios("iqn", "m_iqn", setups, args.repeats, warmup=lambda n: 2)
    _, png = write_cost_ratios(RESULTS, args, results, target_ratio=1.10, batch=32)
    plot(results, png)


def plot(results: dict, path: Path) -> None:
    plot_cost_ratios(results, path, bars=("ratio_q25", "ratio_q75"), ylabel="M-IQN step / IQN step\n(median, bars: quartiles)",
                     title="Update cost, MunchausenIQNLoss vs IQNLoss (batch 32)", figsize=(7, 3.8))

if __name__ == "__main__":
    main()
