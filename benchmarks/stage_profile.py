"""Where a run's time goes: a stage profile of the recipes' own loops on one pinned core, one thread.

Each run is the recipe's ``train(cfg)`` with its preset (the settings that define the method and its protocol
unchanged: networks, batch, update-to-data ratio, envs, replay, exploration, evaluation, ``compile``), only the
frame budget shortened (``--frames``); with the budget below the preset's evaluation interval, its one evaluation is
the final one (``eval.episodes`` greedy episodes of the short-trained agent), and its one checkpoint the final one.
The loop is timed from outside through public names: the loop modules' builders (``make_env``,
``make_collector``, ``make_replay_buffer``, ``make_update``, the target updaters), the gymnasium vector env under
TorchRL's wrapper (``torchrl_reg.envs.make.make_vector_env``) and ``RecipeRun``'s methods are wrapped so that each
call's time, less the time of the wrapped calls inside it, goes to its stage:

* ``env: game step``: the gymnasium vector env's ``step``/``reset`` (the game and its gymnasium wrappers);
* ``env: TorchRL wrapper``: TorchRL's ``GymWrapper`` around it (numpy <-> TensorDict, ``step_and_maybe_reset``);
* ``acting: network`` (the Q-network or the policy's forward and sampling), ``acting: exploration`` (epsilon-greedy),
  ``acting: epsilon schedule``;
* ``collector``: TorchRL's ``Collector`` around them (carrier TensorDicts, stacking the batch);
* ``observe``: reward checks, episode tracking, clipping; ``input checks``: the loss's ``check_inputs``;
* ``replay: insert`` / ``replay: sample``; ``update`` (the recipe's update step, compiled when the preset
  compiles; its first call, which compiles, is ``update: first call``); ``target sync``; ``update bookkeeping``
  (``record``, ``updates_due``);
* ``config checks and imports``: the recipe's ``validate`` (with the imports it makes: MinAtar's package);
* ``evaluation: policy`` / ``evaluation: env and loop``; ``logging and progress`` (``end_batch`` less evaluation and
  checkpoint); ``checkpoint``; ``setup`` (building everything, ``run.start``); ``finish`` (metrics, plot);
* ``loop: other``: the rest of the loop body (``select``/``reshape`` of the transitions, the loop's own Python).

After each run, the anatomy of its update on a batch from its own replay buffer, eager: the loss's forward, the
backward, the optimizer step, the target sync, beside the run's own update step (compiled where the preset
compiles) and **the floor**: a plain eager PyTorch update of the same network (the same modules called on plain
tensors, the loss written in a few tensor ops, ``torch.optim.Adam``), the arithmetic no wrapper can remove. Each
is the fastest of 7 interleaved timings of ``--anatomy-updates`` calls: on a shared machine whose load changes the
speed of the pinned core (the record keeps the load average), the fastest is the least disturbed.

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 taskset -c 0 python -m benchmarks.stage_profile --out stage_profile

Results: ``benchmarks/results/<--out>/stage_profile.json`` (the command, the machine, per run each stage's seconds,
calls and microseconds per agent step, the anatomy) and ``stage_profile.png``.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import json
import os
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import finish_plot, measurement_info

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "recipes" / "conf"
RESULTS = Path(__file__).parent / "results"

#: name -> (recipe, overrides, default frame budget). The README's CartPole main job is ``python recipes/m_dqn.py``.
RUNS: dict[str, tuple[str, list[str], int]] = {
    "m_dqn_breakout": ("m_dqn", ["env=minatar", "env.name=Breakout"], 20_000),
    "m_iqn_breakout": ("m_iqn", ["env=minatar", "env.name=Breakout"], 12_000),
    "mdac_halfcheetah": ("mdac", ["env=halfcheetah"], 12_000),
    "m_dqn_cartpole": ("m_dqn", [], 60_160),
}

CLOCK = time.perf_counter


class Stages:
    """Exclusive time per stage: a wrapped call's time less that of the wrapped calls inside it."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.stack: list[float] = []
        self.started = CLOCK()
        self.before = 0.0  # the seconds of stages timed before ``started``

    def enter(self) -> float:
        self.stack.append(0.0)
        return CLOCK()

    def leave(self, stage: str, start: float) -> None:
        elapsed = CLOCK() - start
        inner = self.stack.pop()
        self.seconds[stage] += elapsed - inner
        self.calls[stage] += 1
        if self.stack:
            self.stack[-1] += elapsed

    def wrap(self, stage: str | Callable[[], str], fn: Callable) -> Callable:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = self.enter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.leave(stage() if callable(stage) else stage, start)

        return timed

    def wrap_iter(self, stage: str, iterator: Iterator) -> Iterator:
        while True:
            start = self.enter()
            try:
                item = next(iterator)
            except StopIteration:
                self.leave(stage, start)
                return
            self.leave(stage, start)
            yield item


class Patches:
    """Attributes replaced for one run and put back after it."""

    def __init__(self) -> None:
        self.saved: list[tuple[Any, str, Any, bool]] = []

    def set(self, obj: Any, name: str, value: Any) -> None:
        self.saved.append((obj, name, getattr(obj, name), name in vars(obj)))
        setattr(obj, name, value)

    def undo(self) -> None:
        for obj, name, old, own in reversed(self.saved):
            if own:
                setattr(obj, name, old)
            else:
                delattr(obj, name)
        self.saved.clear()


@contextlib.contextmanager
def instrumented(stages: Stages, captured: dict[str, Any]) -> Iterator[None]:
    """Wrap the loops' builders and ``RecipeRun``'s methods for one run; ``captured`` receives what they built."""
    from torchrl_reg.envs import make as env_make
    from torchrl_reg.loops import actor_critic, hooks, value_based
    from torchrl_reg.run import RecipeRun

    patches = Patches()

    def vector_env(*args: Any, **kwargs: Any) -> Any:
        env = original_vector_env(*args, **kwargs)
        patches.set(env, "step", stages.wrap("env: game step", env.step))
        patches.set(env, "reset", stages.wrap("env: game step", env.reset))
        return env

    original_vector_env = env_make.make_vector_env
    patches.set(env_make, "make_vector_env", vector_env)

    for loop in (value_based, actor_critic):
        def collector(env: Any, policy: Any, cfg: Any, *args: Any, _make: Callable = loop.make_collector, **kwargs: Any) -> Any:
            for name in ("step_and_maybe_reset", "reset", "step"):
                patches.set(env, name, stages.wrap("env: TorchRL wrapper", getattr(env, name)))
            # The policy's first module (the Q-network and its argmax, or the policy network) and the rest (epsilon-greedy
            # exploration, or the policy's distribution and sampling).
            modules = list(policy.module) if isinstance(getattr(policy, "module", None), torch.nn.ModuleList) else [policy]
            for k, module in enumerate(modules):
                stage = "acting: network" if k == 0 else "acting: exploration / sampling"
                patches.set(module, "forward", stages.wrap(stage, module.forward))
            made = _make(env, policy, cfg, *args, **kwargs)
            base = type(made)
            iterate = base.__iter__

            class TimedCollector(base):  # type: ignore[misc, valid-type]
                def __iter__(self) -> Iterator:
                    return stages.wrap_iter("collector", iterate(self))

            made.__class__ = TimedCollector
            captured["collector"] = made
            return made

        def replay(*args: Any, _make: Callable = loop.make_replay_buffer, **kwargs: Any) -> Any:
            buffer = _make(*args, **kwargs)
            patches.set(buffer, "extend", stages.wrap("replay: insert", buffer.extend))
            patches.set(buffer, "sample", stages.wrap("replay: sample", buffer.sample))
            captured["replay_buffer"] = buffer
            return buffer

        def update(loss_module: Any, optimizer: Any, *args: Any, _make: Callable = loop.make_update, **kwargs: Any) -> Any:
            step = _make(loss_module, optimizer, *args, **kwargs)
            captured.update(loss_module=loss_module, optimizer=optimizer, update=step, update_kwargs=kwargs)
            if hasattr(loss_module, "check_inputs"):
                patches.set(loss_module, "check_inputs", stages.wrap("input checks", loss_module.check_inputs))
            first = [True]

            def stage() -> str:
                name = "update: first call" if first[0] else "update"
                first[0] = False
                return name

            return stages.wrap(stage, step)

        patches.set(loop, "make_collector", collector)
        patches.set(loop, "make_replay_buffer", replay)
        patches.set(loop, "make_update", update)

    def hard_update(*args: Any, _make: Callable = value_based.PeriodicHardUpdate, **kwargs: Any) -> Any:
        target = _make(*args, **kwargs)
        captured["target_update"] = target
        return stages.wrap("target sync", target)

    def ac_target(*args: Any, _make: Callable = actor_critic.actor_critic_target_update, **kwargs: Any) -> Any:
        target = _make(*args, **kwargs)
        captured["target_update"] = target
        return stages.wrap("target sync", target)

    patches.set(value_based, "PeriodicHardUpdate", hard_update)
    patches.set(actor_critic, "actor_critic_target_update", ac_target)
    patches.set(hooks.ValueBasedHooks, "anneal_exploration",
                stages.wrap("acting: epsilon schedule", hooks.ValueBasedHooks.anneal_exploration))

    start = RecipeRun.start

    def run_start(self: RecipeRun, *args: Any, **kwargs: Any) -> Any:
        # Everything since train() began that no wrapped call took: building the env, networks, loss, buffer, collector.
        stages.seconds["setup"] += CLOCK() - stages.started - (sum(stages.seconds.values()) - stages.before)
        self.greedy = stages.wrap("evaluation: policy", self.greedy)
        captured["run"] = self
        return start(self, *args, **kwargs)

    patches.set(RecipeRun, "start", stages.wrap("setup", run_start))
    for name, stage in (("observe", "observe"), ("record", "update bookkeeping"), ("updates_due", "update bookkeeping"),
                        ("end_batch", "logging and progress"), ("evaluate", "evaluation: env and loop"),
                        ("checkpoint", "checkpoint"), ("finish", "finish")):
        patches.set(RecipeRun, name, stages.wrap(stage, getattr(RecipeRun, name)))
    try:
        yield
    finally:
        patches.undo()


def fastest(parts: dict[str, Callable[[], Any]], n: int, rounds: int = 7) -> dict[str, float]:
    """Seconds per call of each of ``parts``: the fastest of ``rounds`` timings of ``n`` calls back to back, the parts
    interleaved in each round (after 3 warm-up calls each), so that a load spike on a shared machine hits one timing of
    each, which the minimum drops."""
    for fn in parts.values():
        for _ in range(3):
            fn()
    best = dict.fromkeys(parts, float("inf"))
    for _ in range(rounds):
        for name, fn in parts.items():
            t0 = CLOCK()
            for _ in range(n):
                fn()
            best[name] = min(best[name], (CLOCK() - t0) / n)
    return best


def floor_step(recipe: str, loss_module: Any, batch: Any, cfg: Any) -> Callable[[], None] | None:
    """A plain eager PyTorch update of the run's own networks (deep copies, called on plain tensors), the loss in a few
    tensor ops and ``torch.optim.Adam``: the arithmetic of the update with nothing around it."""
    obs, next_obs = batch["observation"].float(), batch["next", "observation"].float()
    reward = batch["next", "reward"].reshape(-1).float()
    done = batch["next", "terminated"].reshape(-1).float()
    gamma = float(cfg.loss.gamma)
    if recipe == "m_dqn":
        action = batch["action"].reshape(-1, 1).long()
        net = copy.deepcopy(loss_module.value_network[0].module)
        target = copy.deepcopy(net).requires_grad_(False)
        optim = torch.optim.Adam(net.parameters(), lr=cfg.optim.lr, eps=cfg.optim.eps)
        alpha, tau = float(cfg.loss.alpha), float(cfg.loss.tau)

        def step() -> None:  # M-DQN (Vieillard et al. 2020, Eq. 2): two target forwards, one forward and backward
            with torch.no_grad():
                q_next, q_now = target(next_obs), target(obs)
                log_pi_next = torch.log_softmax(q_next / tau, -1)
                v_next = (log_pi_next.exp() * (q_next - tau * log_pi_next)).sum(-1)
                bonus = (tau * torch.log_softmax(q_now / tau, -1).gather(-1, action).squeeze(-1)).clamp(-1, 0)
                y = reward + alpha * bonus + gamma * (1 - done) * v_next
            q = net(obs).gather(-1, action).squeeze(-1)
            loss = torch.nn.functional.mse_loss(q, y)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()

        return step
    if recipe == "m_iqn":
        return iqn_floor(loss_module, obs, next_obs, reward, done, batch["action"].reshape(-1).long(), gamma, cfg)
    if recipe == "mdac":
        actor = copy.deepcopy(loss_module.actor_network)
        critic = copy.deepcopy(loss_module.qvalue_network)
        return sac_floor(actor, critic, obs, next_obs, reward, done, batch["action"], gamma, cfg)
    return None


def iqn_floor(loss_module: Any, obs: torch.Tensor, next_obs: torch.Tensor, reward: torch.Tensor, done: torch.Tensor,
              action: torch.Tensor, gamma: float, cfg: Any) -> Callable[[], None]:
    """M-IQN's update (Vieillard et al. 2020, Munchausen IQN) on plain tensors with copies of the run's quantile network:
    N online fractions with backward, the target's N' next-state quantiles, its K-sample policy at both states, the
    quantile Huber loss, one Adam step."""
    net = copy.deepcopy(loss_module.quantile_network)
    target = copy.deepcopy(net).requires_grad_(False)
    optim = torch.optim.Adam(net.parameters(), lr=cfg.optim.lr, eps=cfg.optim.eps)
    loss_cfg = cfg.loss
    n, n_next, k, b = loss_cfg.num_quantiles, loss_cfg.num_target_quantiles, loss_cfg.num_policy_quantiles, obs.shape[0]
    tau, alpha, kappa = float(loss_cfg.tau), float(loss_cfg.alpha), float(loss_cfg.kappa)

    def step() -> None:
        with torch.no_grad():
            feat_next, feat_now = target.features(next_obs), target.features(obs)
            q_next = target.action_values_from_features(feat_next, torch.rand(b, k))
            q_now = target.action_values_from_features(feat_now, torch.rand(b, k))
            z_next = target.quantiles_from_features(feat_next, torch.rand(b, n_next))  # [B, N', A]
            log_pi_next = torch.log_softmax(q_next / tau, -1)
            v_next = (log_pi_next.exp().unsqueeze(1) * (z_next - tau * log_pi_next.unsqueeze(1))).sum(-1)
            bonus = (tau * torch.log_softmax(q_now / tau, -1).gather(-1, action[:, None]).squeeze(-1)).clamp(-1, 0)
            y = (reward + alpha * bonus)[:, None] + gamma * (1 - done)[:, None] * v_next  # [B, N']
        fractions = torch.rand(b, n)
        z = net.quantile_values(obs, fractions).gather(-1, action[:, None, None].expand(b, n, 1)).squeeze(-1)  # [B, N]
        u = y[:, None, :] - z[:, :, None]
        huber = torch.where(u.abs() <= kappa, 0.5 * u ** 2, kappa * (u.abs() - 0.5 * kappa))
        loss = ((fractions[:, :, None] - (u.detach() < 0).float()).abs() * huber / kappa).sum(1).mean()
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()

    return step


def sac_floor(actor: Any, critic: Any, obs: torch.Tensor, next_obs: torch.Tensor, reward: torch.Tensor,
              done: torch.Tensor, action: torch.Tensor, gamma: float, cfg: Any) -> Callable[[], None]:
    """SAC's update on plain tensors with the run's actor and critic modules (two critics, their targets, the actor's
    reparameterized sample, one Adam step over everything): the floor of an SAC-family update."""
    from tensordict import TensorDict

    critics = [copy.deepcopy(critic) for _ in range(2)]
    targets = [copy.deepcopy(c).requires_grad_(False) for c in critics]
    params = [p for m in (actor, *critics) for p in m.parameters()]
    optim = torch.optim.Adam(params, lr=cfg.optim.lr, eps=cfg.optim.eps)
    n = obs.shape[0]

    def q(net: Any, o: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return net(TensorDict({"observation": o, "action": a}, [n]))["state_action_value"].reshape(-1)

    def sample(o: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dist = actor.get_dist(TensorDict({"observation": o}, [n]))
        a = dist.rsample()
        return a, dist.log_prob(a).reshape(-1)

    def step() -> None:
        with torch.no_grad():
            a_next, logp_next = sample(next_obs)
            q_next = torch.minimum(q(targets[0], next_obs, a_next), q(targets[1], next_obs, a_next))
            y = reward + gamma * (1 - done) * (q_next - 0.2 * logp_next)
        critic_loss = sum(torch.nn.functional.mse_loss(q(c, obs, action), y) for c in critics)
        a_new, logp = sample(obs)
        q_new = torch.minimum(q(critics[0], obs, a_new), q(critics[1], obs, a_new))
        actor_loss = (0.2 * logp - q_new).mean()
        optim.zero_grad(set_to_none=True)
        (critic_loss + actor_loss).backward()
        optim.step()
        with torch.no_grad():
            for t, c in zip(targets, critics):
                torch._foreach_lerp_(list(t.parameters()), list(c.parameters()), 0.005)

    return step


def anatomy(recipe: str, captured: dict[str, Any], cfg: Any, n: int) -> dict[str, float]:
    """Milliseconds per update on one batch of the run's replay buffer (:func:`fastest`): the run's own update step,
    then eager: forward, backward (forward and backward less forward), optimizer, target sync, and the plain PyTorch
    floor."""
    from torchrl.envs.utils import ExplorationType, set_exploration_type

    loss_module, optimizer = captured["loss_module"], captured["optimizer"]
    batch = captured["replay_buffer"].sample()
    update, target = captured["update"], captured["target_update"]
    keys = [k for k in loss_module(batch).keys() if str(k).startswith("loss")]
    every = getattr(target, "every", 1)

    def forward() -> torch.Tensor:
        with set_exploration_type(ExplorationType.RANDOM):
            out = loss_module(batch)
        return sum(out[k] for k in keys)

    def forward_backward() -> None:
        optimizer.zero_grad(set_to_none=True)
        forward().backward()

    forward_backward()  # gradients for the optimizer's timing
    parts = {"run_update": lambda: update(batch), "eager_forward": forward, "eager_forward_backward": forward_backward,
             "eager_optimizer": optimizer.step, "target_sync": lambda: target(every)}
    floor = floor_step(recipe, loss_module, batch, cfg)
    if floor is not None:
        parts["floor_plain_pytorch"] = floor
    ms = {f"{name}_ms": 1e3 * seconds for name, seconds in fastest(parts, n).items()}
    ms["eager_backward_ms"] = ms.pop("eager_forward_backward_ms") - ms["eager_forward_ms"]
    return ms


def profile(name: str, frames: int, anatomy_updates: int, extra: list[str]) -> dict[str, Any]:
    from torchrl_reg.configs import compose_config

    recipe, overrides, _ = RUNS[name]
    module = importlib.import_module(f"recipes.{recipe}")
    stages, captured = Stages(), {}
    with tempfile.TemporaryDirectory() as tmp:
        over = [*overrides, *extra, f"collector.total_frames={frames}", "logger.progress_bar=false", f"run_dir={tmp}/run"]
        cfg = compose_config(CONF, recipe, over)
        with instrumented(stages, captured):
            t0, c0 = CLOCK(), time.process_time()
            # The recipe's checks, with the imports they make (MinAtar's package imports seaborn), timed apart; train()
            # checks the config again, at no cost.
            stages.wrap("config checks and imports", module.validate)(cfg)
            stages.started, stages.before = CLOCK(), sum(stages.seconds.values())
            metrics = module.train(cfg)
            wall, cpu = CLOCK() - t0, time.process_time() - c0
        stages.seconds["loop: other"] = wall - sum(stages.seconds.values())
        parts = anatomy(recipe, captured, cfg, anatomy_updates)
    per_step = {k: 1e6 * v / metrics["frames"] for k, v in stages.seconds.items()}
    result = {
        "recipe": recipe, "overrides": over[:-1], "frames": metrics["frames"], "updates": metrics["updates"],
        "compile": bool(cfg.compile), "num_envs": cfg.collector.num_envs, "batch_size": cfg.buffer.batch_size,
        "frames_per_update": cfg.optim.frames_per_update, "eval_episodes": cfg.eval.episodes,
        "wall_s": wall, "cpu_s": cpu, "load_average_after": os.getloadavg(),
        "stages_s": dict(sorted(stages.seconds.items(), key=lambda kv: -kv[1])),
        "calls": dict(stages.calls), "us_per_frame": per_step, "update_anatomy_ms": parts,
    }
    print(name, json.dumps({k: result[k] for k in ("frames", "updates", "wall_s")}), flush=True)
    for stage, seconds in result["stages_s"].items():
        print(f"  {stage:28s} {seconds:8.2f} s  {100 * seconds / wall:5.1f}%  {per_step[stage]:9.1f} us/frame", flush=True)
    print("  update anatomy (ms):", json.dumps({k: round(v, 3) for k, v in parts.items()}), flush=True)
    return result


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = sorted({s for r in results.values() for s in r["stages_s"]},
                    key=lambda s: -sum(r["stages_s"].get(s, 0) / r["wall_s"] for r in results.values()))
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(14, 0.9 * len(results) + 3.5), gridspec_kw={"width_ratios": [3, 2]})
    colors = [*plt.get_cmap("tab20").colors, *plt.get_cmap("tab20b").colors]
    names = list(results)
    for i, name in enumerate(names):
        r, left = results[name], 0.0
        for j, stage in enumerate(stages):
            share = 100 * r["stages_s"].get(stage, 0.0) / r["wall_s"]
            ax.barh(i, share, left=left, color=colors[j % len(colors)], label=stage if i == 0 else None)
            left += share
    ax.set_yticks(range(len(names)), [f"{n}\n{results[n]['frames']} frames, {results[n]['wall_s']:.0f} s" for n in names],
                  fontsize=8)
    ax.set_xlabel("share of the run's wall time (%), one core, one thread")
    ax.set_title("where a short run's time goes")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=4)
    keys = ["run_update_ms", "eager_forward_ms", "eager_backward_ms", "eager_optimizer_ms", "target_sync_ms",
            "floor_plain_pytorch_ms"]
    width = 0.8 / len(keys)
    for k, key in enumerate(keys):
        ax2.barh([i + (k - len(keys) / 2) * width for i in range(len(names))],
                 [results[n]["update_anatomy_ms"].get(key, 0.0) for n in names], width, label=key)
    ax2.set_yticks(range(len(names)), names, fontsize=8)
    ax2.set_xlabel("ms per update")
    finish_plot(fig, ax2, path, ylabel="", title="the update: run's step, eager parts, plain PyTorch floor")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--frames", type=int, default=None, help="frame budget of every run (default: each run's own)")
    parser.add_argument("--anatomy-updates", type=int, default=50, help="updates per timing of the update's anatomy")
    parser.add_argument("--out", default="stage_profile", help="folder under benchmarks/results")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="more config overrides for every run (a check of this script, e.g. compile=false)")
    args = parser.parse_args()
    args.repeats = 1
    torch.set_num_threads(args.threads)
    out = RESULTS / args.out
    out.mkdir(parents=True, exist_ok=True)
    path = out / "stage_profile.json"
    # Each run is added to the record as soon as it is measured (a later --runs adds to or replaces its own entries).
    results = json.loads(path.read_text())["results"] if path.exists() else {}
    for name in args.runs:
        results[name] = profile(name, args.frames or RUNS[name][2], args.anatomy_updates, args.set)
        results[name]["command"] = measurement_info(args)["command"]
        payload = {**measurement_info(args), "git_commit": git_commit(), "results": results}
        path.write_text(json.dumps(payload, indent=2) + "\n")
        plot(results, out / "stage_profile.png")


def git_commit() -> str:
    import subprocess

    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()


if __name__ == "__main__":
    main()
