"""The check to run first whenever a GPU is available: does everything run on CUDA, and how fast.

Four sections, each result with a one-line summary (printed, and kept in the JSON):

* ``smoke``: a tiny run of every recipe (the behaviour lock's budgets, ``tests/recipes/test_recorded_metrics.py``)
  with ``device=<device>``; on CUDA with ``compile=true``, and M-DQN on CartPole once more with ``cuda_graph=true``.
* ``update_cost``: ms per update of the DQN (CartPole MLP, M-DQN loss, batch 128), IQN (Nature CNN, M-IQN, N = N' = 64,
  K = 32, batch 32), SAC (HalfCheetah-sized 2x256 MLPs, TorchRL's SACLoss, batch 256) and IQ (same sizes,
  ImplicitQLoss) networks through :func:`~torchrl_reg.objectives.make_update`, eager / compiled / CUDA graph (the
  graph mode only where it exists: a fused loss on CUDA; elsewhere the refusal is recorded), and whether the
  graph update's loss equals the compiled one's.
* ``e2e_cartpole``: ``recipes/m_dqn.py`` on CartPole, compiled (its default preset, shorter), steps/s.
* ``atari_throughput``: M-IQN on Atari with the vector env (``env.backend=vector``, ale-py's C++ AtariVectorEnv;
  ``benchmarks/iqn_atari_throughput.py``'s runs): collection steps/s and steps/s with updates.

Writes ``benchmarks/results/gpu/gpu_check_<device>.json`` and ``.png`` (device name, command, every result).
A failing item is recorded with its error and the others still run; the exit status is 1 if any failed.
Budget: under 8 minutes on one H100.

    python -m benchmarks.gpu_check                       # on the GPU machine
    python -m benchmarks.gpu_check --device cpu --tiny   # dry run (the CI test): every section, tiny sizes
"""
from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torchrl.data import Bounded, Categorical
from torchrl.modules import QValueActor
from torchrl.objectives import SACLoss

from benchmarks.common import finish_plot, random_transitions, time_steps
from benchmarks.iq_throughput import continuous_batch
from benchmarks.iqn_update_cost import SETUPS as IQN_SETUPS
from benchmarks.update_cost import cartpole_net
from tests.recipes.test_recorded_metrics import CASES
from torchrl_reg.configs import compose_config
from torchrl_reg.modules.critics import state_action_value_network, state_value_network
from torchrl_reg.modules.policies import tanh_normal_policy
from torchrl_reg.objectives import ImplicitQLoss, MunchausenDQNLoss, MunchausenIQNLoss, make_update

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "recipes" / "conf"
RESULTS = Path(__file__).parent / "results" / "gpu"

# One tiny run per recipe: the behaviour lock's cases (sql and virel on SAC's Pendulum budget).
_PENDULUM = [o for o in CASES["sac-pendulum"][1] if o != "env=pendulum"]
SMOKE: dict[str, tuple[str, list[str]]] = {
    name: CASES[name]
    for name in ("m_dqn-cartpole-m_dqn", "m_dqn-atari-m_dqn", "m_iqn-atari-m_iqn", "mirl-minatar-sql_m",
                 "iq-halfcheetah-m_iq", "sac-hopper-dopamine", "mdac-pendulum")
} | {"sql-pendulum": ("sql", ["env=pendulum", *_PENDULUM]), "virel-pendulum": ("virel", ["env=pendulum", *_PENDULUM, "loss.temperature_batch_size=256"])}
MODES = ("eager", "compiled", "graph")


def _dqn(device: str) -> tuple[torch.nn.Module, Any]:
    net, obs_shape, num_actions, batch = cartpole_net()
    spec = Categorical(num_actions)
    loss = MunchausenDQNLoss(QValueActor(net, in_keys=["observation"], spec=spec), loss_function="l2")
    loss.make_value_estimator(gamma=0.99)
    return loss, random_transitions(lambda: torch.rand(batch, *obs_shape), spec, batch, device)


def iqn_setup(device: str) -> tuple[torch.nn.Module, Any]:
    factory, obs_shape, _, num_actions, n, n_prime, k = IQN_SETUPS["atari_nature_iqn"]
    spec = Categorical(num_actions)
    loss = MunchausenIQNLoss(QValueActor(factory(), in_keys=["observation"], spec=spec), num_quantiles=n,
                             num_target_quantiles=n_prime, num_policy_quantiles=k)
    loss.make_value_estimator(gamma=0.99)
    obs = lambda: torch.randint(0, 256, (32, *obs_shape), dtype=torch.uint8)  # noqa: E731
    return loss, random_transitions(obs, spec, 32, device)


def _continuous(kind: str, device: str) -> tuple[torch.nn.Module, Any]:
    obs_dim, act_dim = 17, 6  # HalfCheetah-v5
    spec = Bounded(low=-1.0, high=1.0, shape=(act_dim,))
    if kind == "sac":
        loss = SACLoss(tanh_normal_policy(obs_dim, spec), state_action_value_network(obs_dim, act_dim),
                       num_qvalue_nets=2, loss_function="l2", action_spec=spec)
    else:
        loss = ImplicitQLoss(tanh_normal_policy(obs_dim, spec), state_value_network(obs_dim), tau=0.01, alpha=0.9)
    loss.make_value_estimator(gamma=0.99)
    return loss, continuous_batch(obs_dim, spec, 256).to(device)


NETWORKS: dict[str, Callable[[str], tuple[torch.nn.Module, Any]]] = {
    "dqn_cartpole_mlp": _dqn, "iqn_atari_nature_cnn": iqn_setup,
    "sac_halfcheetah_mlp": lambda device: _continuous("sac", device),
    "iq_halfcheetah_mlp": lambda device: _continuous("iq", device),
}


def _update(network: str, mode: str, device: str) -> Callable[[], torch.Tensor]:
    """One update of ``network`` in ``mode`` on a fixed batch, as a call returning its loss."""
    torch.manual_seed(0)
    loss, batch = NETWORKS[network](device)
    loss = loss.to(device)
    optimizer = torch.optim.Adam(loss.parameters(), lr=1e-4)
    update = make_update(loss, optimizer, max_grad_norm=10.0, compile=mode != "eager", cuda_graph=mode == "graph")

    def step() -> torch.Tensor:
        out = update(batch.clone(False))
        return sum(out[key] for key in out.keys() if isinstance(key, str) and key.startswith("loss"))

    return step


class Check:
    """Runs the items of one check, records each result or error, and prints its summary line."""

    def __init__(self, on_record: Callable[[], None] = lambda: None) -> None:
        self.results: list[dict[str, Any]] = []
        self.on_record = on_record  # called after each item: the JSON so far survives a run cut off at its limit

    def item(self, section: str, name: str, fn: Callable[[], tuple[dict[str, Any], str]]) -> dict[str, Any] | None:
        t0 = time.perf_counter()
        try:
            values, summary = fn()
            record = {"section": section, "name": name, "status": "ok", **values}
        except Exception as err:  # noqa: BLE001 -- recorded, so that one failure does not cost the others' GPU time
            record = {"section": section, "name": name, "status": "failed", "error": f"{type(err).__name__}: {err}",
                      "traceback": traceback.format_exc()[-3000:]}
            summary = f"FAILED {type(err).__name__}: {err}"
        record["seconds"] = time.perf_counter() - t0
        record["summary"] = f"[{section}] {name}: {summary}"
        print(record["summary"], flush=True)
        self.results.append(record)
        self.on_record()
        return record if record["status"] == "ok" else None


def smoke(check: Check, args: argparse.Namespace, out: Path) -> None:
    cases = dict(list(SMOKE.items())[:1]) if args.tiny else dict(SMOKE)
    if args.cases:
        cases = {name: case for name, case in cases.items() if name in args.cases}
    extra = [] if args.device == "cpu" or args.eager else ["compile=true"]
    runs = [(name, recipe, [*overrides, *extra], False) for name, (recipe, overrides) in cases.items()]
    # The CUDA-graph update in a recipe; off CUDA, its refusal is the expected result.
    runs.append(("m_dqn-cartpole-cuda_graph", "m_dqn", [*CASES["m_dqn-cartpole-m_dqn"][1], "compile=true", "cuda_graph=true"],
                 not args.device.startswith("cuda")))
    if args.cases and "m_dqn-cartpole-cuda_graph" not in args.cases:
        runs = runs[:-1]
    for name, recipe, overrides, refusal in runs:
        def run(recipe: str = recipe, overrides: list[str] = overrides, name: str = name, refusal: bool = refusal) -> tuple[dict, str]:
            module = importlib.import_module(f"recipes.{recipe}")
            cfg = compose_config(CONF, recipe, [*overrides, f"device={args.device}", f"run_dir={out / 'runs' / name}"])
            try:
                metrics = module.train(cfg)
            except ValueError as err:
                if refusal:
                    return {"refused": str(err)}, f"refused off CUDA as it must be: {err}"
                raise
            return ({k: metrics[k] for k in ("status", "frames", "wall_time_s", "steps_per_s")},
                    f"{metrics['status']}, {metrics['frames']} frames in {metrics['wall_time_s']:.1f} s")
        check.item("smoke", name, run)


def update_cost(check: Check, args: argparse.Namespace) -> None:
    steps = 3 if args.tiny else 200
    networks = ["dqn_cartpole_mlp"] if args.tiny else list(NETWORKS)
    # A compile takes a minute on a busy CPU: the tiny dry run times eager and checks the graph mode's refusal.
    modes = ("eager", "graph") if args.tiny else MODES
    if args.cases:
        networks = [n for n in networks if n in args.cases]
    for network in networks:
        losses: dict[str, torch.Tensor] = {}
        for mode in modes:
            def run(network: str = network, mode: str = mode) -> tuple[dict, str]:
                try:
                    step = _update(network, mode, args.device)
                except ValueError as err:
                    if mode == "graph":  # off CUDA, or a loss without the fused step (SAC): the refusal is the result
                        return {"refused": str(err)}, f"no graph mode here: {err}"
                    raise
                # Fresh updaters in each mode from the same seed: the first losses are comparable.
                losses[mode] = step().detach().clone()
                for _ in range(max(steps // 10, 2)):  # warm-up: compilation, graph recording
                    step()
                ms = time_steps(step, steps) * 1e3
                values = {"ms_per_update": ms, "steps": steps}
                if mode == "graph" and "compiled" in losses:
                    values["first_loss_equals_compiled"] = bool(torch.equal(losses["graph"], losses["compiled"]))
                    # Two separately compiled graphs may pick different reduction orders: the size of a difference
                    # tells a rounding difference (~1e-7 relative) from a wrong update.
                    values["first_loss_graph"] = float(losses["graph"])
                    values["first_loss_compiled"] = float(losses["compiled"])
                    values["first_loss_rel_diff"] = float((losses["graph"] - losses["compiled"]).abs()
                                                          / losses["compiled"].abs().clamp_min(1e-12))
                return values, f"{ms:.3f} ms/update" + (
                    f", first loss equal to compiled: {values['first_loss_equals_compiled']}"
                    f" (relative difference {values['first_loss_rel_diff']:.1e})" if mode == "graph" and "compiled" in losses else "")
            check.item("update_cost", f"{network}/{mode}", run)


def e2e_cartpole(check: Check, args: argparse.Namespace, out: Path) -> None:
    frames = 2560 if args.tiny else 25600
    overrides = [f"collector.total_frames={frames}", "eval.interval=0", "eval.episodes=0", "logger.progress_bar=false",
                 f"device={args.device}", f"run_dir={out / 'runs' / 'e2e_cartpole'}"]
    # The tiny dry run checks the wiring only: eager and learning from frame 1280 (a compile takes a minute on a CPU).
    overrides += ["compile=false", "optim.learning_starts=1280"] if args.tiny else ["compile=true"]

    def run() -> tuple[dict, str]:
        from recipes.m_dqn import train

        metrics = train(compose_config(CONF, "m_dqn", overrides))
        return ({k: metrics[k] for k in ("frames", "wall_time_s", "steps_per_s", "updates")},
                f"{metrics['frames']} frames, {metrics['updates']} updates, {metrics['steps_per_s']:.0f} steps/s")
    check.item("e2e_cartpole", "m_dqn_cartpole_compiled" if not args.tiny else "m_dqn_cartpole_eager", run)


def atari_throughput(check: Check, args: argparse.Namespace) -> None:
    from benchmarks.iqn_atari_throughput import run as run_atari

    frames, update_frames = (32, 32) if args.tiny else (2000, 400)
    starts = 32 if args.tiny else 1000
    # The tiny dry run: eager, and a small replay (a 100k-frame memmap takes seconds to lay out).
    atari = argparse.Namespace(game="Breakout", device=args.device,
                               overrides=["env.backend=vector", *(["compile=false", "buffer.size=1000"] if args.tiny else [])])
    small = ["loss.num_quantiles=8", "loss.num_target_quantiles=8", "loss.num_policy_quantiles=4"] if args.tiny else []

    def collect() -> tuple[dict, str]:
        m = run_atari(atari, [f"collector.total_frames={frames}", f"optim.learning_starts={frames}"])
        return ({"env_steps_per_s": m["steps_per_s"], "frames": m["frames"], "env_backend": "vector"},
                f"{m['steps_per_s']:.0f} env steps/s (collection only, vector env)")

    def learn() -> tuple[dict, str]:
        m = run_atari(atari, [f"collector.total_frames={starts + update_frames}", f"optim.learning_starts={starts}", *small])
        return ({"steps_per_s": m["steps_per_s"], "updates": m["updates"], "frames": m["frames"], "env_backend": "vector"},
                f"{m['steps_per_s']:.0f} steps/s with {m['updates']} updates (vector env)")
    check.item("atari_throughput", "m_iqn_breakout_collection", collect)
    check.item("atari_throughput", "m_iqn_breakout_with_updates", learn)


def plot(results: list[dict[str, Any]], device_name: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.5), dpi=100)
    costs = [r for r in results if r["section"] == "update_cost" and "ms_per_update" in r]
    networks = list(dict.fromkeys(r["name"].split("/")[0] for r in costs))
    for i, mode in enumerate(MODES):
        ms = {r["name"].split("/")[0]: r["ms_per_update"] for r in costs if r["name"].endswith("/" + mode)}
        if ms:
            ax1.bar([j + (i - 1) * 0.27 for j, n in enumerate(networks) if n in ms], [ms[n] for n in networks if n in ms],
                    0.27, label=mode)
    ax1.set_xticks(range(len(networks)), [n.replace("_", "\n", 1) for n in networks], fontsize=8)
    ax1.set_xlim(-0.6, len(networks) - 0.4)
    ax1.set_yscale("log")
    ax1.set_ylabel("ms per update")
    ax1.set_title(f"Update cost ({device_name})")
    ax1.legend(fontsize=8)
    rates = [r for r in results if r["section"] in ("e2e_cartpole", "atari_throughput") and r["status"] == "ok"]
    ax2.bar(range(len(rates)), [r.get("steps_per_s", r.get("env_steps_per_s", 0.0)) for r in rates], label="steps/s")
    ax2.set_xticks(range(len(rates)), [r["name"].replace("_", " ") for r in rates], fontsize=7, rotation=10)
    ax2.set_yscale("log")
    finish_plot(fig, ax2, path, ylabel="environment steps per second", title="End to end")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (the check) or cpu (with --tiny: the dry run)")
    parser.add_argument("--tiny", action="store_true", help="every section at tiny sizes (seconds): the CI dry run")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument("--sections", nargs="+", default=["smoke", "update_cost", "e2e_cartpole", "atari_throughput"],
                        choices=["smoke", "update_cost", "e2e_cartpole", "atari_throughput"])
    parser.add_argument("--cases", nargs="+", default=None,
                        help="only these smoke cases and update_cost networks (names as in the JSON)")
    parser.add_argument("--eager", action="store_true", help="smoke runs without compile=true (to tell compile from CUDA)")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available here (use --device cpu --tiny for the dry run)")
    device_name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else f"cpu ({platform.processor() or platform.machine()})"
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"gpu_check_{args.device.split(':')[0]}" + ("_tiny" if args.tiny else "")
    t0 = time.perf_counter()

    def write() -> dict[str, Any]:
        failed = [r["name"] for r in check.results if r["status"] == "failed"]
        payload = {
            "command": "python -m benchmarks.gpu_check " + " ".join(sys.argv[1:] if argv is None else argv),
            "device": device_name, "torch": torch.__version__, "tiny": args.tiny,
            "wall_time_s": time.perf_counter() - t0, "failed": failed,
            "summary": [r["summary"] for r in check.results], "results": check.results,
        }
        (args.out / f"{stem}.json").write_text(json.dumps(payload, indent=2) + "\n")
        return payload

    check = Check(on_record=write)
    sections = {"smoke": lambda tmp: smoke(check, args, tmp), "update_cost": lambda tmp: update_cost(check, args),
                "e2e_cartpole": lambda tmp: e2e_cartpole(check, args, tmp),
                "atari_throughput": lambda tmp: atari_throughput(check, args)}
    with tempfile.TemporaryDirectory() as tmp:
        for section in dict.fromkeys(args.sections):  # in the order given
            sections[section](Path(tmp))
    payload = write()
    failed = payload["failed"]
    plot(check.results, device_name, args.out / f"{stem}.png")
    print(f"{len(check.results) - len(failed)} of {len(check.results)} items ok in {payload['wall_time_s']:.0f} s; "
          f"results in {args.out / stem}.json/.png")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
