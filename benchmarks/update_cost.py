"""Update cost: one optimizer step of MunchausenDQNLoss vs TorchRL's DQNLoss.

Same network, same batch, same loss function (Huber), same optimizer; each repeat times
``--steps`` updates of each loss back to back (order alternating between repeats) and the
median of the per-repeat ratios is reported. Target: ratio <= 1.10.
Each network's FLOP count per update (torch's FlopCounterMode) gives the ratio's compute floor:
M-DQN needs the target network's action values at s_t too, one more forward pass per update.

Two M-DQN updates, interleaved in the same repeats: ``m_dqn`` calls the loss as a user does,
``loss(batch)``, which checks every batch (layout, actions; as the eager loop did before it checked transitions once, on entry to the buffer),
and ``m_dqn_loop`` is the value-based loop's eager update, ``make_update(..., inputs_checked=True)``,
whose transitions were checked once before the replay buffer (its ratio is under ``m_dqn_loop_*``).

    taskset -c 1 python -m benchmarks.update_cost --repeats 15 --steps 200
    taskset -c 1 python -m benchmarks.update_cost --networks cartpole_mlp --before --clock cpu   # a loaded machine

``--before`` adds, in the same repeats, both M-DQN updates as they were before the loss's cheaper network calls
(``m_dqn_before``, ``m_dqn_loop_before``): every parameter swap through ``TensorDict.to_module`` and the
Q-network called through its ``TensorDictModule`` (:class:`NetworkCallsBefore`, a subclass of the loss that overrides
its public ``action_values``).
"""
from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import torch
from tensordict import TensorDictBase
from torch import nn
from torchrl.data import Categorical
from torchrl.modules import QValueActor
from torchrl.objectives import DQNLoss, SoftUpdate

from benchmarks.common import CLOCKS, cost_ratios, optimizer_step, parse_timing_args, plot_cost_ratios, random_transitions, timing_parser, write_cost_ratios
from torchrl_reg.objectives import MunchausenDQNLoss, make_update

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


class NetworkCallsBefore(MunchausenDQNLoss):
    """M-DQN with its network calls as they were before they were made cheaper: every parameter swap through
    ``TensorDict.to_module`` and the Q-network called through its ``TensorDictModule`` (the first module of the
    ``QValueActor``), the library's public hook :meth:`~torchrl_reg.objectives.RegularizedDQNLossBase.action_values`
    overridden. Its numbers are the library's, bit for bit; only the cost differs."""

    def action_values(self, inputs: TensorDictBase, params: TensorDictBase) -> torch.Tensor:
        with params.to_module(self.value_network, preserve_module_state=False):
            return self.value_network[0](inputs).get(self.tensor_keys.action_value)


def make_step(kind: str, net_fn, seed: int, device: str = "cpu"):
    torch.manual_seed(seed)
    net, obs_shape, num_actions, batch = net_fn()
    net = net.to(device)
    spec = Categorical(num_actions)
    actor = QValueActor(net, in_keys=["observation"], spec=spec)
    before, kind = kind.endswith("_before"), kind.removesuffix("_before")
    if kind == "dqn":
        loss = DQNLoss(actor, action_space=spec, loss_function="smooth_l1", delay_value=True)
    else:
        loss = (NetworkCallsBefore if before else MunchausenDQNLoss)(actor, loss_function="smooth_l1")
    loss.make_value_estimator(gamma=0.99)
    updater = SoftUpdate(loss, eps=0.995)
    optim = torch.optim.Adam(loss.parameters(), lr=1e-4)
    data = random_transitions(lambda: torch.rand(batch, *obs_shape), spec, batch, device)

    loss = loss.to(device)
    if kind == "m_dqn_loop":
        update = make_update(loss, optim, max_grad_norm=None, compile=False, inputs_checked=True)

        def step() -> None:
            update(data)
            updater.step()
    else:
        step = optimizer_step(loss, data, [optim], updater)
    return step


def main() -> None:
    parser = timing_parser(__doc__.splitlines()[0], repeats=15, steps=200, subsets=("--networks", NETWORKS),
                           steps_help="updates per timing (scaled down for big nets)")
    parser.add_argument("--before", action="store_true", help="also time the M-DQN updates with the network calls of before they were made cheaper")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall time (default) or this thread's CPU time (a loaded shared machine; CPU only)")
    args = parse_timing_args(parser)
    setups = {
        name: (
            partial(make_step, net_fn=NETWORKS[name], seed=0, device=args.device),
            args.steps if name != "atari_nature_cnn" or args.device != "cpu" else max(args.steps // 10, 5),
        )
        for name in args.networks
    }
    # The compute floor of the ratio: M-DQN adds a target-network forward at s_t.
    others = ("m_dqn_loop", "m_dqn_before", "m_dqn_loop_before") if args.before else ("m_dqn_loop",)
    if args.clock == "cpu" and args.device != "cpu":
        raise SystemExit(f"--clock cpu times the CPU thread only, not the work queued on {args.device}: use --clock wall")
    results = cost_ratios("dqn", "m_dqn", setups, args.repeats, warmup=lambda n: max(n // 5, 2), others=others,
                          clock=CLOCKS[args.clock])
    payload, png = write_cost_ratios(RESULTS, args, results, target_ratio=1.10, clock=args.clock,
                                     load_average_at_end=os.getloadavg())
    plot(results, png, payload["device"])


def plot(results: dict, path: Path, device: str = "cpu") -> None:
    plot_cost_ratios(results, path, bars=("ratio_min", "ratio_max"), ylabel="M-DQN step / DQN step (median)",
                     title=f"Update cost, MunchausenDQNLoss vs torchrl DQNLoss ({device})")

if __name__ == "__main__":
    main()
