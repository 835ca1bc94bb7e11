"""GPU speed where users run long jobs, side by side on one machine: SAC and MDAC on HalfCheetah-v5 through our
recipes (``compile=true cuda_graph=true``) against LeanRL's compiled, CUDA-graphed SAC, and M-IQN / M-DQN on
Atari Breakout with the vector env, with the time of each stage.

Steps per second after warm-up: every program runs three times from the same seed, with ``W``, ``W`` and ``W + N``
environment steps, and ``N / (t3 - t2)`` is its rate: the first run fills the compilers' caches (Dynamo's in this
process, inductor's on disk), so start-up, compilation and graph recording cost the same in the two timed runs and
cancel, and both sides of a comparison are timed the same way. The return reported beside it is each program's
own mean return of its last training episodes of the longer run.

* ``halfcheetah``: ``recipes/sac.py`` and ``recipes/mdac.py`` on HalfCheetah-v5 (the MuJoCo preset: 2x256 MLPs,
  batch 256, one update per step after ``learning_starts``), no evaluation, no checkpoints. With ``--leanrl PATH``,
  LeanRL's ``sac_continuous_action_torchcompile.py`` (pytorch-labs/LeanRL, fetched beside the tree and never part
  of it) runs as an outside program with ``--env-id E --total-timesteps T --compile --cudagraphs``, changed in
  nothing else (so with its own settings: ``learning_starts`` 5000, actor updated twice every second step, critic
  lr 1e-3), its wandb calls disabled through ``WANDB_MODE=disabled``. That script needs the packages of its time,
  given as ``--leanrl-pythonpath`` (put before the others on its ``PYTHONPATH``): it reads
  ``infos["final_observation"]``, which gymnasium 1.x's vector envs no longer give (a ``KeyError`` at the first
  truncation, step 1,000), calls a ``TensorDictModule`` with one out-key on a function of three outputs (refused by
  tensordict >= 0.7) and takes ``float()`` of a one-element array (refused by numpy 2); gymnasium 0.29.1,
  numpy 1.26.4, tensordict 0.6.2, torchrl 0.6.0, tyro and wandb 0.16.6 run it unchanged. gymnasium 0.29 has
  HalfCheetah up to v4 (``--leanrl-env-id``, default ``HalfCheetah-v4``): the same model file, frame skip and
  reward as v5. The ``env_step`` item times one random step of each side's environment under its own packages, so
  the difference it makes to a rate is on record.
* ``atari``: ``recipes/m_iqn.py`` and ``recipes/m_dqn.py`` on Breakout with ``env.backend=vector`` (ale-py's C++
  vector env), ``compile=true cuda_graph=true``, the protocol's update ratio (one update per 4 agent steps, batch
  32) and ``--atari-envs`` environments; then each stage alone, per agent step: the emulator (random actions through
  the vector env), the policy's forward pass on a batch of observations, one replay sample (the recipe's buffer,
  each frame stored once, filled by its env and collector), one graph update (one per 4 agent steps).

The ``halfcheetah`` section ends with a stage profile of SAC: the recipe's env step (TorchRL's wrapper), the
host-device copies of one step, the policy's forward pass, one sample of the recipe's replay buffer and one update
(one per agent step), each timed alone: where the time of a step goes, and which stage bounds the rate.

Writes ``benchmarks/results/gpu/gpu_speed_<device>.json`` and ``.png``; every item records its error instead of
stopping the others. ``benchmarks/gpu_job.sh`` runs each section under its own time limit.

    python -m benchmarks.gpu_speed --leanrl LEANRL/sac_continuous_action_torchcompile.py \
        --leanrl-pythonpath SITE_LEANRL                                  # GPU machine (benchmarks/gpu_job.sh)
    python -m benchmarks.gpu_speed --device cpu --tiny                  # dry run (CI)

Each rate item also records the GPU memory its longer run reached: ``torch.cuda.max_memory_allocated`` for the
recipes (this process's tensors), and for the outside program the most memory in use on the device above what was in
use when it started (``torch.cuda.mem_get_info``, every process, read every 0.2 s: its tensors, CUDA context and
allocator cache, so larger than the recipes' figure by construction).
"""
from __future__ import annotations

import argparse
import importlib
import itertools
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDict

from benchmarks.common import finish_plot
from benchmarks.gpu_check import Check
from torchrl_reg.configs import compose_config

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "recipes" / "conf"
RESULTS = Path(__file__).parent / "results" / "gpu"
#: LeanRL's SAC default ``learning_starts``: its first updates come after this many steps.
LEANRL_LEARNING_STARTS = 5000


def _train_return(metrics: dict[str, Any]) -> float | None:
    """The run's mean return of its last training episodes, under its current name or the older one."""
    for key in ("train_return_mean", "final_return"):
        if metrics.get(key) is not None:
            return float(metrics[key])
    return None


_RUNS = itertools.count()


def _recipe(recipe: str, overrides: list[str], frames: int, device: str, run_dir: Path) -> tuple[float, dict]:
    """Wall seconds and metrics of one new run of ``recipes/<recipe>.py`` in this process (in a fresh folder under
    ``run_dir``'s name: a repeated run must start over, not resume the last one)."""
    run_dir = run_dir.with_name(f"{run_dir.name}_{next(_RUNS)}")
    module = importlib.import_module(f"recipes.{recipe}")
    cfg = compose_config(CONF, recipe, [
        *overrides, f"collector.total_frames={frames}", f"device={device}", "eval.episodes=0",
        "checkpoint.interval=0", "logger.progress_bar=false", f"run_dir={run_dir}",
    ])
    t0 = time.perf_counter()
    metrics = module.train(cfg)
    return time.perf_counter() - t0, metrics


def _rate(run, warmup: int, steps: int, in_process: bool = True) -> tuple[dict, str]:
    """``run(frames) -> (seconds, train_return)`` at ``warmup`` (twice: the first fills the compile caches) and
    ``warmup + steps`` frames: steps/s after warm-up."""
    t0, _ = run(warmup)
    t1, _ = run(warmup)
    cuda = in_process and torch.cuda.is_available()  # an outside program's memory is not this process's
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t2, ret = run(warmup + steps)
    rate = steps / (t2 - t1) if t2 > t1 else float("nan")
    values = {"warmup_steps": warmup, "steps": steps, "seconds_first": t0, "seconds_short": t1, "seconds_long": t2,
              "steps_per_s": rate, "train_return": ret,
              "cuda_max_memory_allocated_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None}
    return values, f"{rate:.1f} env steps/s after {warmup} warm-up steps, train return {ret}"


def halfcheetah(check: Check, args: argparse.Namespace, tmp: Path) -> None:
    env = ["env=pendulum"] if args.tiny else ["env=halfcheetah"]
    fast = [] if args.device == "cpu" else ["compile=true", "cuda_graph=true"]
    if args.leanrl:  # the anchor first: a run cut off at its limit still has it
        script = Path(args.leanrl).resolve()
        env_id = args.leanrl_env_id or ("Pendulum-v1" if args.tiny else "HalfCheetah-v4")
        outside = _outside_environment(args.leanrl_pythonpath)
        flags = ["--compile", "--cudagraphs"] if args.device != "cpu" else ["--no-cuda"]
        check.item("halfcheetah", "env_step", lambda: _env_step_cost("Pendulum-v1" if args.tiny else "HalfCheetah-v5",
                                                                     env_id, outside, args.timeout))

        peaks: list[float | None] = []

        def leanrl(frames: int) -> tuple[float, float | None]:
            command = [sys.executable, str(script), "--env-id", env_id, "--total-timesteps", str(frames), "--seed", "0",
                       *flags]
            t0 = time.perf_counter()
            with _DeviceMemory(args.device) as memory:
                done = subprocess.run(command, capture_output=True, text=True, cwd=tmp, env=outside, timeout=args.timeout)
            seconds = time.perf_counter() - t0
            peaks.append(memory.peak_mib)
            if done.returncode != 0:
                raise RuntimeError(f"LeanRL's script exited {done.returncode}: {done.stderr[-1500:]}")
            returns = re.findall(r"episodic_return=\s*(-?[0-9.]+)", done.stderr + done.stdout)
            return seconds, float(returns[-1]) if returns else None

        def leanrl_rate() -> tuple[dict, str]:
            values, summary = _rate(leanrl, args.warmup, args.steps, in_process=False)
            values["device_memory_used_peak_mib"] = peaks[-1]  # the longer run's
            return values, summary

        check.item("halfcheetah", f"leanrl sac ({' '.join(flags)})", leanrl_rate)
    learning_starts = args.warmup // 2
    for method in ("sac",) if args.tiny else ("sac", "mdac"):  # the dry run: each code path once
        overrides = [*env, *fast, "seed=0", f"optim.learning_starts={learning_starts}"]

        def run(frames: int, method: str = method, overrides: list[str] = overrides) -> tuple[float, float | None]:
            seconds, metrics = _recipe(method, overrides, frames, args.device, tmp / f"{method}_{frames}")
            return seconds, _train_return(metrics)

        check.item("halfcheetah", f"{method} ({' '.join(fast) or 'eager'})", lambda run=run: _rate(run, args.warmup, args.steps))

    def stages() -> tuple[dict, str]:
        from torchrl.data import Bounded

        from benchmarks.gpu_check import NETWORKS
        from benchmarks.iq_throughput import continuous_batch
        from torchrl_reg.data import make_replay_buffer
        from torchrl_reg.envs import make_env
        from torchrl_reg.objectives import make_update

        cfg = compose_config(CONF, "sac", [*env, "seed=0", f"device={args.device}"])
        # The recipe's env (TorchRL's GymWrapper over gymnasium's vector env, one copy), stepped with random actions.
        agent_env = make_env(cfg.env, num_envs=cfg.collector.num_envs, seed=0)
        td = agent_env.reset()
        env_ms = _stage_ms(lambda: agent_env.rand_step(td.clone(False)), 50 if args.tiny else 1000, "cpu")
        agent_env.close()
        loss, batch = NETWORKS["sac_halfcheetah_mlp"](args.device)  # the preset's 2x256 networks, batch 256, SACLoss
        loss = loss.to(args.device)
        host_obs = TensorDict({"observation": torch.randn(1, 17)}, [1])
        # The collector's copies: the observation to the device and the action back, one agent step's worth.
        copies_ms = _stage_ms(lambda: host_obs.to(args.device).get("observation").cpu(), 20 if args.tiny else 500, args.device)
        on_device = host_obs.to(args.device)
        with torch.no_grad():
            forward_ms = _stage_ms(lambda: loss.actor_network(on_device.clone(False)), 20 if args.tiny else 500, args.device)
        # The recipe's replay buffer on the run's device, holding 20k transitions; one minibatch per update.
        buffer = make_replay_buffer(cfg.buffer, device=args.device)
        buffer.extend(continuous_batch(17, Bounded(-1.0, 1.0, shape=(6,)), 20000).to(args.device))
        sample_ms = _stage_ms(buffer.sample, 20 if args.tiny else 500, args.device)
        update = make_update(loss, torch.optim.Adam(loss.parameters(), lr=3e-4), max_grad_norm=None,
                             compile=bool(fast), cuda_graph=bool(fast))
        update_ms = _stage_ms(lambda: update(batch.clone(False)), 1 if args.tiny else 200, args.device)
        per_step = {"env_step": env_ms, "host_device_copies": copies_ms, "policy_forward": forward_ms,
                    "replay_sample": sample_ms, "update": update_ms}  # one update per agent step (the preset)
        bound = max(per_step, key=per_step.get)
        values = {"ms_per_agent_step": per_step, "bound": bound, "sum_ms": sum(per_step.values()),
                  "steps_per_s_bound": 1e3 / sum(per_step.values())}
        return values, (f"ms per agent step: {', '.join(f'{k} {v:.3f}' for k, v in per_step.items())}; bound: {bound}; "
                        f"{values['steps_per_s_bound']:.0f} steps/s if run one after another")

    check.item("halfcheetah", f"sac stages ({' '.join(fast) or 'eager'})", stages)


class _DeviceMemory:
    """The most GPU memory in use on ``device`` by every process (``torch.cuda.mem_get_info``, read every 0.2 s from a
    thread) while the block runs, above what was in use when it began: an outside program's footprint. ``None`` off
    CUDA."""

    def __init__(self, device: str) -> None:
        self.device, self.peak_mib = device, None
        self._stop = threading.Event()

    def _used(self) -> int:
        free, total = torch.cuda.mem_get_info(self.device)
        return total - free

    def _poll(self, baseline: int) -> None:
        peak = baseline
        while not self._stop.wait(0.2):
            peak = max(peak, self._used())
        self.peak_mib = (max(peak, self._used()) - baseline) / 2**20

    def __enter__(self) -> _DeviceMemory:
        if self.device.startswith("cuda"):
            self._thread = threading.Thread(target=self._poll, args=(self._used(),), daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.startswith("cuda"):
            self._stop.set()
            self._thread.join()


def _outside_environment(pythonpath: str | None) -> dict[str, str]:
    """The outside program's environment: its own packages first on ``PYTHONPATH``, wandb disabled."""
    env = {**os.environ, "WANDB_MODE": "disabled"}
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pythonpath, env.get("PYTHONPATH")) if p)
    return env


_STEP_COST = """
import sys, time, warnings
warnings.simplefilter("ignore")
import gymnasium as gym, numpy as np
env = gym.make(sys.argv[1])
env.reset(seed=0)
env.action_space.seed(0)
actions = [env.action_space.sample() for _ in range(2000)]
t0 = time.perf_counter()
for a in actions:
    _, _, terminated, truncated, _ = env.step(a)
    if terminated or truncated:
        env.reset()
print((time.perf_counter() - t0) / len(actions) * 1e6, gym.__version__, np.__version__)
"""


def _env_step_cost(ours: str, theirs: str, outside: dict[str, str], timeout: int) -> tuple[dict, str]:
    """Microseconds per random step of our environment (this process's packages) and of the outside program's (its
    own packages), each in a fresh interpreter."""
    values: dict[str, Any] = {}
    for side, env_id, env in (("ours", ours, dict(os.environ)), ("leanrl", theirs, outside)):
        done = subprocess.run([sys.executable, "-c", _STEP_COST, env_id], capture_output=True, text=True, env=env,
                              timeout=timeout, check=True)
        micros, gym_version, np_version = done.stdout.split()[-3:]
        values[side] = {"env_id": env_id, "us_per_step": float(micros), "gymnasium": gym_version, "numpy": np_version}
    summary = ", ".join(f"{v['env_id']} {v['us_per_step']:.1f} us/step (gymnasium {v['gymnasium']})" for v in values.values())
    return values, summary


def _stage_ms(fn, repeats: int, device: str) -> float:
    for _ in range(min(repeats, 3)):
        fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / repeats * 1e3


def atari(check: Check, args: argparse.Namespace, tmp: Path) -> None:
    fast = [] if args.device == "cpu" else ["compile=true", "cuda_graph=true"]
    # The protocol's 16 agent steps per collected batch (one update per 4), or one step per environment if more.
    base = ["env=atari", "env.name=ALE/Breakout-v5", "env.backend=vector", f"collector.num_envs={args.atari_envs}",
            f"collector.frames_per_batch={max(16, args.atari_envs)}", "buffer.size=100000", "seed=0",
            f"optim.learning_starts={args.warmup // 2}"]
    for recipe in ("m_dqn",) if args.tiny else ("m_iqn", "m_dqn"):  # the dry run: each code path once, cheaply
        def run(frames: int, recipe: str = recipe) -> tuple[float, float | None]:
            seconds, metrics = _recipe(recipe, [*base, *fast], frames, args.device, tmp / f"{recipe}_{frames}")
            return seconds, _train_return(metrics)

        check.item("atari", f"{recipe} ({args.atari_envs} envs, {' '.join(fast) or 'eager'})",
                   lambda run=run: _rate(run, args.warmup, args.steps))

    def stages() -> tuple[dict, str]:
        from ale_py.vector_env import AtariVectorEnv

        from benchmarks.gpu_check import iqn_setup
        from torchrl_reg.objectives import make_update

        envs = AtariVectorEnv(game="breakout", num_envs=args.atari_envs)
        envs.reset(seed=0)
        actions = torch.zeros(args.atari_envs, dtype=torch.int64).numpy()
        emulator_ms = _stage_ms(lambda: envs.step(actions), 50 if args.tiny else 500, "cpu")
        envs.close()
        loss, batch = iqn_setup(args.device)
        loss = loss.to(args.device)
        obs = torch.randint(0, 256, (args.atari_envs, 4, 84, 84), dtype=torch.uint8, device=args.device)
        observations = TensorDict({"observation": obs}, [args.atari_envs])
        with torch.no_grad():  # the acting network's forward pass on one observation per environment
            forward_ms = _stage_ms(lambda: loss.value_network(observations.clone(False)), 20, args.device)
        update = make_update(loss, torch.optim.Adam(loss.parameters(), lr=5e-5), max_grad_norm=10.0,
                             compile=bool(fast), cuda_graph=bool(fast))
        update_ms = _stage_ms(lambda: update(batch.clone(False)), 1 if args.tiny else 100, args.device)
        sample_ms = _atari_sample_ms(base, args)
        per_step = {"emulator": emulator_ms / args.atari_envs, "policy_forward": forward_ms / args.atari_envs,
                    "replay_sample": sample_ms / 4, "update": update_ms / 4}
        bound = max(per_step, key=per_step.get)
        values = {"ms_per_vector_step_emulator": emulator_ms, "ms_policy_forward": forward_ms, "ms_per_update": update_ms,
                  "ms_per_replay_sample": sample_ms, "ms_per_agent_step": per_step, "bound": bound}
        return values, f"ms per agent step: {', '.join(f'{k} {v:.3f}' for k, v in per_step.items())}; bound: {bound}"

    check.item("atari", "m_iqn stages", stages)


def _atari_sample_ms(base: list[str], args: argparse.Namespace) -> float:
    """ms per minibatch drawn from M-IQN's Atari replay buffer as the recipe builds it (each frame stored once,
    stacks rebuilt at sampling, on the run's device), filled by the recipe's env and collector acting at random."""
    from torchrl_reg.data import TRANSITION_KEYS, make_collector, make_replay_buffer
    from torchrl_reg.envs import make_env

    frames = 256 if args.tiny else 4096
    cfg = compose_config(CONF, "m_iqn", [*base, f"device={args.device}", f"collector.init_random_frames={frames}"])
    agent_env = make_env(cfg.env, num_envs=cfg.collector.num_envs, seed=0)
    buffer = make_replay_buffer(cfg.buffer, device=args.device, frame_stack=cfg.env.frame_stack,
                                num_envs=cfg.collector.num_envs)
    collector = make_collector(agent_env, None, cfg.collector, device=args.device, total_frames=frames)
    for data in collector:
        buffer.extend(data.select(*TRANSITION_KEYS).reshape(-1))
    collector.shutdown()
    return _stage_ms(buffer.sample, 20 if args.tiny else 200, args.device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="dry run: Pendulum and tiny budgets (the CI test)")
    parser.add_argument("--leanrl", default=None, help="path to LeanRL's sac_continuous_action_torchcompile.py")
    parser.add_argument("--leanrl-pythonpath", default=None,
                        help="folders put first on the outside program's PYTHONPATH: the packages it runs with")
    parser.add_argument("--leanrl-env-id", default=None,
                        help="the outside program's environment (default HalfCheetah-v4; tiny: Pendulum-v1)")
    parser.add_argument("--sections", nargs="+", default=["halfcheetah", "atari"], choices=["halfcheetah", "atari"])
    parser.add_argument("--warmup", type=int, default=None, help="warm-up steps (default 6000; tiny 200)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps after warm-up (default 10000; tiny 100)")
    parser.add_argument("--atari-envs", type=int, default=16)
    parser.add_argument("--timeout", type=int, default=240, help="seconds for one outside program's run")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    args.warmup = args.warmup or (200 if args.tiny else 6000)
    args.steps = args.steps or (100 if args.tiny else 10000)
    if args.leanrl and not args.tiny and args.warmup <= LEANRL_LEARNING_STARTS:
        parser.error(f"--warmup {args.warmup}: LeanRL's SAC acts at random for its first {LEANRL_LEARNING_STARTS} "
                     f"steps, so its timed steps would not all update; use --warmup > {LEANRL_LEARNING_STARTS}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"gpu_speed_{args.device.replace(':', '')}{'_tiny' if args.tiny else ''}"
    device_name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else platform.processor() or "cpu"
    record: dict[str, Any] = {
        "command": "python -m benchmarks.gpu_speed " + " ".join(argv if argv is not None else sys.argv[1:]),
        "device": args.device, "device_name": device_name, "torch": torch.__version__, "results": [],
    }

    def save() -> None:
        record["results"] = check.results
        (out / f"{name}.json").write_text(json.dumps(record, indent=2, default=str) + "\n")

    check = Check(on_record=save)
    with tempfile.TemporaryDirectory() as tmp:
        for section in args.sections:
            globals()[section](check, args, Path(tmp))
    save()
    rates = [(r["name"], r["steps_per_s"]) for r in check.results if r.get("steps_per_s") is not None]
    if rates:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(1.5 + 1.2 * len(rates), 4))
        ax.bar(range(len(rates)), [v for _, v in rates], label="steps/s after warm-up")
        ax.set_xticks(range(len(rates)), [n for n, _ in rates], rotation=20, ha="right", fontsize=7)
        finish_plot(fig, ax, out / f"{name}.png", ylabel="environment steps/s",
                    title=f"{device_name}: {args.steps} steps after {args.warmup}")
    return 0 if all(r["status"] == "ok" for r in check.results) else 1


if __name__ == "__main__":
    sys.exit(main())
