"""Update throughput: one ImplicitQLoss update vs one TorchRL SACLoss update (actor + critic + alpha).

Same batch (256 transitions of a MuJoCo-sized task), SAC's architecture (2x256 MLPs), Adam 3e-4,
Polyak targets (``SoftUpdate(eps=0.995)``) for both. IQ: a multicategorical policy
(``num_bins`` per dimension) and a state-value network trained by one loss, one optimizer
([IQ] Eq. 2). SAC: TorchRL's ``SACLoss`` with a tanh-Gaussian actor, two Q-networks and automatic
temperature, its three losses summed and stepped by three Adam optimizers (as TorchRL's SAC
example does). Each repeat times ``--steps`` updates of every method back to back, the order
rotating between repeats; the median over repeats of the per-repeat ratio is reported.
Target: ratio (IQ time / SAC time) <= 1.

    nice -n 10 python -m benchmarks.iq_throughput --repeats 9 --steps 100

``--compile`` times the updates the MuJoCo presets run instead (``compile: true``): IQ through
``make_update``'s fused graph (loss, ``torch.func`` gradient and Adam over policy and value), SAC's
loss + backward + Adam under ``torch.compile`` (as ``recipes/sac.py`` does), each next to its eager
version; results in ``throughput_compiled.json``.

``--sac-family`` times the SAC family's updates against the eager ``SACLoss`` update (the baseline every MuJoCo
row is compared to): SAC compiled, and MDAC eager and through ``make_update``'s fused graph (``recipes/mdac.py``'s
compiled update: loss, ``torch.func`` gradient and Adam over actor, critics and temperature in one graph); results
in ``throughput_sac_family.json``, ratios against eager SAC::

    OMP_NUM_THREADS=1 taskset -c 1 python -m benchmarks.iq_throughput --sac-family --tasks HalfCheetah-v5 --repeats 9 --steps 100
"""
from __future__ import annotations

import json
import statistics
import warnings
from pathlib import Path

import torch
from tensordict import TensorDict
from torchrl.data import Bounded
from torchrl.objectives import SACLoss, SoftUpdate

from benchmarks.common import interleaved_times, measurement_info, optimizer_step, parse_timing_args, timing_parser
from torchrl_reg.modules.critics import state_action_value_network, state_value_network
from torchrl_reg.modules.policies import multicategorical_policy, tanh_normal_policy
from torchrl_reg.objectives.implicit_q import ImplicitQLoss
from torchrl_reg.objectives.mdac import MDACLoss
from torchrl_reg.objectives import make_update

RESULTS = Path(__file__).parent / "results" / "iq"
# (observation dim, action dim) of the MuJoCo v5 tasks.
TASKS = {"HalfCheetah-v5": (17, 6), "Hopper-v5": (11, 3), "Humanoid-v5": (348, 17)}
METHODS = ("iq_multicategorical", "iq_gaussian", "sac")
COMPILED_METHODS = ("iq_multicategorical", "iq_multicategorical_compiled", "sac", "sac_compiled")
SAC_FAMILY_METHODS = ("sac", "sac_compiled", "mdac", "mdac_compiled")


def continuous_batch(obs_dim: int, spec: Bounded, batch: int) -> TensorDict:
    data = TensorDict(
        {
            "observation": torch.randn(batch, obs_dim),
            "action": spec.rand((batch,)),
            ("next", "observation"): torch.randn(batch, obs_dim),
            ("next", "reward"): torch.randn(batch, 1),
            ("next", "done"): torch.rand(batch, 1) < 0.01,
        },
        [batch],
    )
    data["next", "terminated"] = data["next", "done"].clone()
    return data


def make_step(method: str, obs_dim: int, act_dim: int, *, batch: int, num_bins: int, seed: int):
    compiled = method.endswith("_compiled")
    method = method.removesuffix("_compiled")
    torch.manual_seed(seed)
    spec = Bounded(low=-1.0, high=1.0, shape=(act_dim,))
    data = continuous_batch(obs_dim, spec, batch)
    if method == "sac":
        actor = tanh_normal_policy(obs_dim, spec)
        qvalue = state_action_value_network(obs_dim, act_dim)
        loss = SACLoss(actor, qvalue, num_qvalue_nets=2, loss_function="l2", action_spec=spec)
        optims = [
            torch.optim.Adam(loss.actor_network_params.values(True, True), lr=3e-4),
            torch.optim.Adam(loss.qvalue_network_params.values(True, True), lr=3e-4),
            torch.optim.Adam([loss.log_alpha], lr=3e-4),
        ]
        keys = ("loss_actor", "loss_qvalue", "loss_alpha")
    elif method == "mdac":  # recipes/mdac.py's update: one Adam over every parameter, the loss terms summed
        loss = MDACLoss(tanh_normal_policy(obs_dim, spec), state_action_value_network(obs_dim, act_dim))
        loss.make_value_estimator(gamma=0.99)
        update = make_update(loss, torch.optim.Adam(loss.parameters(), lr=3e-4), max_grad_norm=None, compile=compiled)
        updater = SoftUpdate(loss, eps=0.995)

        def mdac_step() -> None:
            update(data.clone(False))
            updater.step()

        return mdac_step
    else:
        if method == "iq_multicategorical":
            policy = multicategorical_policy(obs_dim, spec, num_bins=num_bins)
            data["action"] = policy(data.select("observation"))["action"].detach()
        else:
            policy = tanh_normal_policy(obs_dim, spec)
        value = state_value_network(obs_dim)
        loss = ImplicitQLoss(policy, value, tau=0.01, alpha=0.9)
        optims = [torch.optim.Adam(loss.parameters(), lr=3e-4)]
        keys = ("loss",)
    loss.make_value_estimator(gamma=0.99)
    updater = SoftUpdate(loss, eps=0.995)
    if compiled:
        if method == "sac":
            def update(batch):  # recipes/sac.py's update, one Adam per loss as above
                out = loss(batch)
                sum(out[k] for k in keys).backward()
                for optim in optims:
                    optim.step()
                for optim in optims:
                    optim.zero_grad(set_to_none=True)
                return out.detach()

            update = torch.compile(update)
        else:
            update = make_update(loss, optims[0], max_grad_norm=None, compile=True, fused=True)

        def compiled_step() -> None:
            update(data.clone(False))
            updater.step()

        return compiled_step

    return optimizer_step(loss, data, optims, updater, keys)


def main() -> None:
    parser = timing_parser(__doc__.splitlines()[0], repeats=9, steps=100, steps_help="updates per timing", device=False)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--num-bins", type=int, default=11)
    parser.add_argument("--tasks", nargs="+", default=["HalfCheetah-v5", "Humanoid-v5"], choices=list(TASKS))
    parser.add_argument("--compile", action="store_true", help="eager vs compiled updates (throughput_compiled.json)")
    parser.add_argument("--sac-family", action="store_true",
                        help="SAC compiled and MDAC eager / fused against eager SAC (throughput_sac_family.json)")
    args = parse_timing_args(parser)
    methods = SAC_FAMILY_METHODS if args.sac_family else COMPILED_METHODS if args.compile else METHODS
    warnings.filterwarnings("ignore", category=UserWarning)
    results = {}
    for task in args.tasks:
        obs_dim, act_dim = TASKS[task]
        steps = {m: make_step(m, obs_dim, act_dim, batch=args.batch, num_bins=args.num_bins, seed=0) for m in methods}
        times = interleaved_times(steps, args.repeats, args.steps, warmup=max(args.steps // 5, 2))
        if args.sac_family:  # everything against the eager SACLoss update
            baseline = {m: "sac" for m in methods if m != "sac"}
        else:
            baseline = {m: "sac_compiled" if m.endswith("_compiled") else "sac" for m in methods if not m.startswith("sac")}
        ratios = {m: [t / s for t, s in zip(times[m], times[baseline[m]])] for m in baseline}
        results[task] = {
            "obs_dim": obs_dim,
            "action_dim": act_dim,
            "updates_per_s_median": {m: 1.0 / statistics.median(times[m]) for m in methods},
            "ms_per_update_median": {m: 1e3 * statistics.median(times[m]) for m in methods},
            "time_ratio_vs_sac_median": {m: statistics.median(r) for m, r in ratios.items()},
            "time_ratio_vs_sac_min": {m: min(r) for m, r in ratios.items()},
            "time_ratio_vs_sac_max": {m: max(r) for m, r in ratios.items()},
        }
        if args.compile or args.sac_family:  # eager time / compiled time, per repeat
            results[task]["compile_speedup_median"] = {
                m: statistics.median(e / c for e, c in zip(times[m], times[f"{m}_compiled"]))
                for m in methods if f"{m}_compiled" in methods
            }
        print(task, json.dumps(results[task]), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        **measurement_info(args),
        "updates_per_timing": args.steps,
        "batch": args.batch,
        "num_bins": args.num_bins,
        "target": ("SAC-family update time / eager SACLoss update time, tracked (no target)" if args.sac_family else
                   "IQ time / SAC time <= 1 (IQ, a single loss, not slower than SAC's actor + critic + alpha update)"),
        "results": results,
    }
    name = "throughput_sac_family" if args.sac_family else "throughput_compiled" if args.compile else "throughput"
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2))
    plot(results, RESULTS / f"{name}.png", methods)


def plot(results: dict, path: Path, methods: tuple[str, ...] = METHODS) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(results)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    width = 0.25
    width = 0.8 / len(methods)
    colors = {"iq_multicategorical": "tab:blue", "iq_gaussian": "tab:cyan", "sac": "tab:orange",
              "iq_multicategorical_compiled": "navy", "sac_compiled": "tab:red", "mdac": "tab:green",
              "mdac_compiled": "darkgreen"}
    for i, method in enumerate(methods):
        xs = [t + (i - (len(methods) - 1) / 2) * width for t in range(len(tasks))]
        axes[0].bar(xs, [results[t]["updates_per_s_median"][method] for t in tasks], width, label=method,
                    color=colors[method])
    axes[0].set_xticks(range(len(tasks)), tasks)
    axes[0].set_ylabel("updates / s (median)")
    axes[0].set_title("Update throughput, batch 256, 2x256 MLPs")
    axes[0].legend(fontsize=8)
    compared = [m for m in methods if m in next(iter(results.values()))["time_ratio_vs_sac_median"]]
    for i, method in enumerate(compared):
        xs = [t + (i - (len(compared) - 1) / 2) * width for t in range(len(tasks))]
        med = [results[t]["time_ratio_vs_sac_median"][method] for t in tasks]
        lo = [m - results[t]["time_ratio_vs_sac_min"][method] for m, t in zip(med, tasks)]
        hi = [results[t]["time_ratio_vs_sac_max"][method] - m for m, t in zip(med, tasks)]
        axes[1].bar(xs, med, width, yerr=[lo, hi], capsize=4, label=method, color=colors[method])
    axes[1].axhline(1.0, color="tab:red", ls="--", label="SAC" + ("" if "mdac" in methods else " (target <= 1)"))
    axes[1].set_xticks(range(len(tasks)), tasks)
    axes[1].set_ylabel("time per update / SAC's (median)")
    axes[1].set_title(("SAC-family" if "mdac" in methods else "IQ") + " update cost relative to SACLoss")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
