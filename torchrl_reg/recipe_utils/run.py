"""Bookkeeping of a replay-based recipe run, so that each loop shows only its algorithm.

:class:`RecipeRun` does what every loop does around its updates: counting frames and updates,
checking and clipping rewards, tracking episodes, periodic greedy evaluation, logging (training
return, the loss outputs averaged since the last log, any extra scalars), the progress bar,
checkpoints and resume (the run-directory contract of :mod:`torchrl_reg.recipe_utils`), stop
requests, and the final ``metrics.json`` and ``learning_curve.png``. A loop reads::

    run = RecipeRun(cfg, run_dir, collector=collector, replay_buffer=rb, greedy=greedy, device=device,
                    stateful={"loss_module": loss, "policy": policy, "optimizer": optim},
                    title="...", extra_metrics={...})
    run.start()                                   # resume from checkpoint.pt if there is one; config.yaml
    for data in collector:
        batch_frames = run.observe(data)          # frames, episodes, reward checks / clipping
        rb.extend(...)
        for batch in sample_minibatches(rb, run.updates_due()):
            out = update(batch)
            run.record(out)                       # one update done, its outputs logged later
        if run.end_batch(batch_frames, epsilon=...):   # eval, logs, progress, checkpoint, stop
            break
    return run.finish()
"""
from __future__ import annotations

import math
import time
import types
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torch.utils._pytree import tree_flatten, tree_unflatten
from omegaconf import OmegaConf
from torchrl.collectors import Collector
from torchrl.data import ReplayBuffer

from torchrl_reg.recipe_utils.checkpoint import (
    CHECKPOINT_NAME,
    collector_state,
    load_checkpoint,
    load_collector_state,
    load_replay_buffer_state,
    replay_buffer_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from torchrl_reg.recipe_utils.evaluation import evaluate
from torchrl_reg.recipe_utils.loggers import (
    EpisodeTracker,
    ProgressBar,
    make_logger,
    mean_last,
    plot_learning_curve,
    truncate_csv_logs,
    write_json,
)
from torchrl_reg.recipe_utils.runtime import crossed
from torchrl_reg.recipe_utils.stop import clear_stop, stop_requested

__all__ = ["FusedAdamUpdate", "RecipeRun", "check_finite_rewards", "make_update", "total_loss"]


def check_finite_rewards(data: TensorDictBase, env_name: str, frames: int) -> None:
    """Raise ``ValueError`` naming the env and the frames if a collected reward is NaN or inf."""
    reward = data.get(("next", "reward"))
    if not bool(torch.isfinite(reward).all()):
        bad = reward[~torch.isfinite(reward)][0].item()
        raise ValueError(
            f"env {env_name!r} returned a non-finite reward ({bad}) within frames "
            f"{frames}-{frames + data.numel()}; rewards must be finite numbers"
        )


def total_loss(out: TensorDictBase) -> torch.Tensor:
    """What a gradient step minimizes: the sum of a loss module's ``"loss"`` and ``"loss_*"`` entries
    (TorchRL's convention: e.g. ``SACLoss`` returns ``loss_actor``, ``loss_qvalue`` and ``loss_alpha``)."""
    terms = [out.get(key) for key in out.keys() if key == "loss" or key.startswith("loss_")]
    if not terms:
        raise ValueError(f"the loss module returned no 'loss' or 'loss_*' entry, got keys {sorted(out.keys())}")
    return sum(terms[1:], terms[0])


def make_update(
    loss_module: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    max_grad_norm: float | None,
    compile: bool,
    fused: bool | str = "auto",
) -> Callable[[TensorDictBase], TensorDictBase]:
    """One gradient step on a minibatch (loss terms summed by :func:`total_loss`, backward, optional
    norm clipping, optimizer step), returning the detached loss outputs; compiled with ``torch.compile`` when ``compile``.

    With ``compile`` and a loss that exposes ``loss_and_outputs(tensordict, params)`` (the
    regularized DQN family with ``fusable_update = True``: :class:`~torchrl_reg.objectives.MunchausenDQNLoss`,
    :class:`~torchrl_reg.objectives.AdvantageLearningLoss`, :class:`~torchrl_reg.objectives.MIRLLoss`,
    :class:`~torchrl_reg.objectives.IQNLoss`, :class:`~torchrl_reg.objectives.MunchausenIQNLoss`, and
    :class:`~torchrl_reg.objectives.ImplicitQLoss` over policy and value together) and a plain
    :class:`torch.optim.Adam` over exactly those parameters, the whole step is fused into one compiled graph
    (:class:`FusedAdamUpdate`: gradients by ``torch.func.grad``, Adam on the optimizer's own state);
    ``fused=False`` keeps the generic path, ``fused=True`` raises if fusion is not possible.
    The generic path compiles the loss and the optimizer step around an eager backward.
    With a tiny network most of an eager update is Python overhead, hence both.
    """
    if fused not in (True, False, "auto"):
        raise ValueError(f"fused must be True, False or 'auto', got fused={fused!r}")
    if fused is not False and compile:
        reason = FusedAdamUpdate.unsupported_reason(loss_module, optimizer)
        if reason is None:
            return FusedAdamUpdate(loss_module, optimizer, max_grad_norm=max_grad_norm)
        if fused is True:
            raise ValueError(f"fused=True, but the update cannot be fused: {reason}")
    elif fused is True:
        raise ValueError("fused=True needs compile=True (the fused update is a compiled graph)")

    def update(batch: TensorDictBase) -> TensorDictBase:
        out = loss_module(batch)
        total_loss(out).backward()
        if max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(loss_module.parameters(), max_grad_norm)
        optimizer.step()
        out = out.detach()
        # Last, so that torch.compile traces everything above before this graph break; zeroed
        # in place, so the compiled step sees the same gradient tensors at every call.
        optimizer.zero_grad(set_to_none=False)
        return out

    return torch.compile(update) if compile else update


def _fused_params(loss_module: torch.nn.Module) -> TensorDictBase:
    """What the fused update differentiates: ``loss_module.fused_params`` if the loss defines it
    (e.g. policy and value of :class:`~torchrl_reg.objectives.ImplicitQLoss`), else its online
    value-network parameters."""
    params = getattr(loss_module, "fused_params", None)
    return loss_module.value_network_params if params is None else params


def _tensor_leaves(
    td: TensorDictBase, keys: list[tuple[str, ...]], leaves: list[torch.Tensor], prefix: tuple[str, ...] = ()
) -> tuple[list[tuple[str, ...]], list[torch.Tensor]]:
    """Nested keys and tensors of ``td`` in its iteration order (~2 us; ``values(True, True)`` ~15 us)."""
    for key, value in td.items():
        if isinstance(value, torch.Tensor):
            keys.append((*prefix, key))
            leaves.append(value)
        elif isinstance(value, TensorDictBase):
            _tensor_leaves(value, keys, leaves, (*prefix, key))
    return keys, leaves


class FusedAdamUpdate:
    """Loss, gradient, norm clipping and Adam step of a regularized DQN loss in one compiled graph.

    The loss is differentiated with ``torch.func.grad`` with respect to its online parameters
    (``loss_module.loss_and_outputs(batch, params)``), so no autograd graph is recorded at run time
    and ``torch.compile`` fuses forward, backward and the optimizer into a single graph. The Adam
    step (Kingma & Ba 2015, as :class:`torch.optim.Adam` with ``amsgrad=False, weight_decay=0``)
    reads and writes ``optimizer.state``, so ``optimizer.state_dict()`` checkpoints and resumes
    exactly as with ``optimizer.step()``, and learning-rate changes of ``optimizer.param_groups``
    are honoured. Priorities are written in place into the batch, as the loss's ``forward`` does.
    Parameter ``.grad`` fields are not used.

    The step is traced once, at the first call, and then guarded on its tensors only (shapes,
    dtypes, devices: a new batch size recompiles): the loss module's Python configuration (alpha,
    tau, keys, ...) is read at that first call, and later batches must carry the same keys (a
    ``ValueError`` says which differ). Tensors, parameters and buffers (MIRL's beta and prior,
    target parameters, the optimizer state) are read at every call. Dynamo's default guards on
    the TensorDict and module internals cost about as much as the tiny CartPole network's
    forward and backward pass (~0.15 ms of ~0.9 ms per update on these CPUs).
    """

    def __init__(self, loss_module: torch.nn.Module, optimizer: torch.optim.Optimizer, *, max_grad_norm: float | None):
        reason = self.unsupported_reason(loss_module, optimizer)
        if reason is not None:
            raise ValueError(f"cannot fuse this update: {reason}")
        self.loss_module = loss_module
        self.optimizer = optimizer
        self.max_grad_norm = None if max_grad_norm is None else float(max_grad_norm)
        self.params = _fused_params(loss_module)
        self.keys = list(self.params.keys(True, True))
        self.leaves = [self.params.get(key) for key in self.keys]
        self.priority_key = loss_module.tensor_keys.priority
        self._priority_path = self.priority_key if isinstance(self.priority_key, tuple) else (self.priority_key,)
        # lr, beta1, beta2, eps as a float64 tensor input of the graph: a Python float would be
        # baked into the compiled graph and a learning-rate schedule would recompile every step.
        self._hyper_values: tuple | None = None
        self._hyper = torch.zeros(4, dtype=torch.float64, device=self.leaves[0].device)
        # tensordict registers TensorDict's pytree constructor lazily, at its first unflatten; the
        # compiled graph guards on that registry's size, so a first unflatten during the first
        # call would force a recompile (~3 s) at the second. One round trip here registers it.
        tree_unflatten(*tree_flatten(TensorDict()))
        self._batch_keys: list[tuple[str, ...]] | None = None
        self._batch_dims = 1
        # Dynamo caches compiled graphs on the code object, and with tensor-only guards a second
        # FusedAdamUpdate (another loss, max_grad_norm, ...) would run the first one's graph: each
        # instance compiles its own copy of the code.
        fn = FusedAdamUpdate._fused_step
        own_code = types.FunctionType(fn.__code__.replace(), fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
        self._step = torch.compile(
            types.MethodType(own_code, self),
            options={"guard_filter_fn": partial(torch.compiler.keep_tensor_guards_unsafe, keep_parameters=True)},
        )

    @staticmethod
    def unsupported_reason(loss_module: torch.nn.Module, optimizer: torch.optim.Optimizer) -> str | None:
        """Why ``(loss_module, optimizer)`` cannot be fused, or ``None`` if it can."""
        if not hasattr(loss_module, "loss_and_outputs"):
            return f"{type(loss_module).__name__} has no loss_and_outputs(tensordict, params)"
        if not getattr(loss_module, "fusable_update", False):
            return f"{type(loss_module).__name__} does not trace into one graph (fusable_update=False)"
        if type(optimizer) is not torch.optim.Adam:
            return f"the optimizer is {type(optimizer).__name__}, the fused step implements torch.optim.Adam"
        if len(optimizer.param_groups) != 1:
            return f"the optimizer has {len(optimizer.param_groups)} parameter groups, the fused step handles one"
        group = optimizer.param_groups[0]
        for option in ("amsgrad", "maximize", "capturable", "differentiable"):
            if group.get(option, False):
                return f"Adam option {option}=True is not implemented by the fused step"
        if group.get("weight_decay", 0) != 0 or group.get("decoupled_weight_decay", False):
            return "Adam weight decay is not implemented by the fused step"
        if isinstance(group["lr"], torch.Tensor):
            return "a tensor learning rate is not supported by the fused step"
        trainable = {id(p) for p in loss_module.parameters() if p.requires_grad}
        online = {id(p) for p in _fused_params(loss_module).values(True, True)}
        in_group = {id(p) for p in group["params"]}
        if in_group != trainable or trainable != online:
            return "the optimizer's parameters must be exactly the loss's online parameters (fused_params)"
        return None

    def _state(self) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        # Looked up at every call: optimizer.load_state_dict (resume) replaces these tensors.
        steps, exp_avgs, exp_avg_sqs = [], [], []
        for p in self.leaves:
            state = self.optimizer.state[p]
            if len(state) == 0:  # as torch.optim.Adam initializes it (non-capturable, non-fused)
                scalar_dtype = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
                state["step"] = torch.tensor(0.0, dtype=scalar_dtype)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            steps.append(state["step"])
            exp_avgs.append(state["exp_avg"])
            exp_avg_sqs.append(state["exp_avg_sq"])
        return steps, exp_avgs, exp_avg_sqs

    def _fused_step(self, leaves, steps, exp_avgs, exp_avg_sqs, hyper):
        loss_module = self.loss_module
        lr, beta1, beta2, eps = hyper.unbind(0)
        batch = TensorDict(dict(zip(self._batch_keys, leaves)), batch_size=leaves[0].shape[: self._batch_dims])

        def loss_fn(params):
            loss, priority, diagnostics = loss_module.loss_and_outputs(batch, params)
            return loss, (loss.detach(), priority, diagnostics)

        grads, (loss, priority, diagnostics) = torch.func.grad(loss_fn, has_aux=True)(self.params.detach())
        grads = [grads.get(key) for key in self.keys]
        with torch.no_grad():
            if self.max_grad_norm is not None:  # as torch.nn.utils.clip_grad_norm_
                total_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
                coef = torch.clamp(self.max_grad_norm / (total_norm + 1e-6), max=1.0)
                grads = [g * coef for g in grads]
            # Adam (torch.optim.Adam's update, bias corrections from the per-parameter step).
            for param, grad, exp_avg, exp_avg_sq, step in zip(self.leaves, grads, exp_avgs, exp_avg_sqs, steps):
                step.add_(1)
                exp_avg.lerp_(grad, (1 - beta1).to(param.dtype))
                exp_avg_sq.mul_(beta2.to(param.dtype)).addcmul_(grad, grad * (1 - beta2).to(param.dtype))
                # Bias corrections in float64, as torch.optim.Adam computes them from step.item()
                # (1 - 0.999 in float32 is off by 1e-5 relative).
                # (step stays on the CPU, as torch.optim.Adam keeps it; the arithmetic runs on the
                # parameter's device.)
                step64 = step.to(device=param.device, dtype=torch.float64)
                step_size = (lr / (1 - beta1**step64)).to(param.dtype)
                bias_correction2_sqrt = (1 - beta2**step64).sqrt().to(param.dtype)
                denom = exp_avg_sq.sqrt() / bias_correction2_sqrt + eps.to(param.dtype)
                param.sub_(exp_avg / denom * step_size)
        return loss, priority, diagnostics

    def __call__(self, batch: TensorDictBase) -> TensorDictBase:
        group = self.optimizer.param_groups[0]
        values = (group["lr"], *group["betas"], group["eps"])
        if values != self._hyper_values:
            self._hyper.copy_(torch.tensor([float(v) for v in values], dtype=torch.float64), non_blocking=False)
            self._hyper_values = values
        keys, leaves = _tensor_leaves(batch, [], [])
        if self._priority_path in keys:  # written by the previous update of a reused batch, never read
            index = keys.index(self._priority_path)
            del keys[index], leaves[index]
        if self._batch_keys is None:
            self._batch_keys, self._batch_dims = keys, batch.batch_dims
        elif keys != self._batch_keys:
            by_key = dict(zip(keys, leaves))
            if len(by_key) != len(self._batch_keys) or any(key not in by_key for key in self._batch_keys):
                raise ValueError(
                    "the fused update was traced for batches with keys "
                    f"{sorted(self._batch_keys)}, got a batch with keys {sorted(keys)}; every batch must "
                    "carry the same keys (build a new update with make_update for another layout)"
                )
            leaves = [by_key[key] for key in self._batch_keys]  # same keys, another insertion order
        loss, priority, diagnostics = self._step(leaves, *self._state(), self._hyper)
        batch.set(self.priority_key, priority, inplace=True)
        return TensorDict({"loss": loss, **diagnostics})


class RecipeRun:
    """Counters, logs, evaluation, checkpoints and final metrics of one recipe run.

    Args:
        cfg: the validated recipe config (a :class:`~torchrl_reg.recipe_utils.config.RecipeConfig`).
        run_dir: the run directory.

    Keyword Args:
        collector: the TorchRL collector (its carrier and env state go in the checkpoint).
        replay_buffer: the replay buffer (its contents and sampler state go in the checkpoint).
        greedy: ``observation batch -> action batch`` used by the evaluation episodes.
        device: where evaluation observations go.
        stateful: objects with ``state_dict``/``load_state_dict`` saved in the checkpoint under
            their names (loss module with its buffers, policy, optimizer, ...).
        title: title of ``learning_curve.png``.
        extra_metrics: added to ``metrics.json`` (e.g. the loss name).

    Construction builds nothing and reads no file; :meth:`start` (called once, before the loop)
    resumes from ``<run_dir>/checkpoint.pt`` when it exists (:meth:`resume`) and writes ``config.yaml``.
    """

    def __init__(
        self,
        cfg: Any,
        run_dir: Path,
        *,
        collector: Collector,
        replay_buffer: ReplayBuffer,
        greedy: Callable[[torch.Tensor], torch.Tensor],
        device: torch.device,
        stateful: Mapping[str, Any],
        title: str,
        extra_metrics: Mapping[str, Any] | None = None,
    ) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.collector = collector
        self.replay_buffer = replay_buffer
        self.greedy = greedy
        self.device = device
        self.stateful = dict(stateful)
        self.title = title
        self.extra_metrics = dict(extra_metrics or {})
        self.logger = make_logger(cfg.logger, self.run_dir, exp_name=self.run_dir.name)
        self.tracker = EpisodeTracker(cfg.collector.num_envs)
        self.frames = self.updates = 0
        self.eval_frames: list[int] = []
        self.eval_returns: list[float] = []
        self.logged_episodes = 0
        # Loss outputs since the last log line, kept as a list and summed only when logged or
        # checkpointed (adding every entry at every update costs more than the update's
        # bookkeeping); a resumed run carries the interrupted one's values, stacked per key, so
        # that its logged means are bit-identical to an uninterrupted run's.
        self.pending_outputs: list[TensorDictBase] = []
        self.carried_outputs: dict[str, torch.Tensor] = {}
        self.elapsed_before = 0.0
        self.checkpoint_path = self.run_dir / CHECKPOINT_NAME
        self.status = "completed"
        self.pbar: ProgressBar | None = None
        self.t_start = time.perf_counter()

    # -- start and resume ---------------------------------------------------------------------------
    def start(self) -> bool:
        """Start the run: resume it if ``<run_dir>/checkpoint.pt`` exists (:meth:`resume`), then write
        the resolved ``config.yaml`` and start the clock and the progress bar. Returns whether it resumed."""
        resumed = self.checkpoint_path.exists()
        if resumed:
            self.resume()
        OmegaConf.save(self.cfg, self.run_dir / "config.yaml", resolve=True)
        self.pbar = ProgressBar(self.cfg.collector.total_frames, initial=self.frames, enabled=self.cfg.logger.progress_bar)
        self.t_start = time.perf_counter()
        return resumed

    # -- checkpoints ------------------------------------------------------------------------------
    def checkpoint(self) -> None:
        """Write ``checkpoint.pt`` atomically with everything needed to continue exactly."""
        save_checkpoint(
            self.checkpoint_path,
            {
                "frames": self.frames,
                "updates": self.updates,
                **{name: obj.state_dict() for name, obj in self.stateful.items()},
                "replay_buffer": replay_buffer_state(self.replay_buffer),
                "collector": collector_state(self.collector),
                "tracker": self.tracker.state_dict(),
                "rng": rng_state(),
                "eval_frames": self.eval_frames,
                "eval_returns": self.eval_returns,
                "logged_episodes": self.logged_episodes,
                "outputs_since_log": self.outputs_since_log(),
                "elapsed": self.elapsed_before + time.perf_counter() - self.t_start,
            },
        )

    def resume(self) -> None:
        """Restore everything a checkpoint holds (counters, ``stateful`` objects, replay buffer, collector
        and env state, RNGs, episode and evaluation history) from ``<run_dir>/checkpoint.pt``, and drop
        the CSV rows logged after it."""
        state = load_checkpoint(self.checkpoint_path, map_location=self.device)
        self.frames, self.updates = state["frames"], state["updates"]
        for name, obj in self.stateful.items():
            obj.load_state_dict(state[name])
        load_replay_buffer_state(self.replay_buffer, state["replay_buffer"])
        load_collector_state(self.collector, state["collector"])
        self.tracker.load_state_dict(state["tracker"])
        set_rng_state(state["rng"])
        self.eval_frames, self.eval_returns = list(state["eval_frames"]), list(state["eval_returns"])
        self.logged_episodes, self.carried_outputs = state["logged_episodes"], state["outputs_since_log"]
        self.elapsed_before = state["elapsed"]
        truncate_csv_logs(self.run_dir, self.frames)

    # -- the loop ---------------------------------------------------------------------------------
    def observe(self, data: TensorDictBase) -> int:
        """Account for a collected batch: checks rewards, tracks episodes (raw reward), clips the
        reward in place if ``env.reward_clip`` is set, advances the frame count; returns its frames."""
        batch_frames = data.numel()
        check_finite_rewards(data, self.cfg.env.name, self.frames)
        self.tracker.update(data, self.frames)
        if self.cfg.env.reward_clip is not None:
            data.get(("next", "reward")).clamp_(-self.cfg.env.reward_clip, self.cfg.env.reward_clip)
        self.frames += batch_frames
        return batch_frames

    def updates_due(self) -> int:
        """Updates owed after this batch: one per ``optim.frames_per_update`` frames after ``learning_starts``."""
        optim = self.cfg.optim
        return max(max(self.frames - optim.learning_starts, 0) // optim.frames_per_update - self.updates, 0)

    def record(self, out: TensorDictBase) -> None:
        """Count one update and keep its outputs (detached, as :func:`make_update` returns them) for the next log."""
        self.updates += 1
        self.pending_outputs.append(out)

    def outputs_since_log(self) -> dict[str, torch.Tensor]:
        """Every loss output since the last log line, stacked per key."""
        values = {key: [value] for key, value in self.carried_outputs.items()}
        if self.pending_outputs:
            for key in self.pending_outputs[0].keys():
                values.setdefault(key, []).append(torch.stack([out.get(key) for out in self.pending_outputs]))
        return {key: torch.cat(parts) for key, parts in values.items()}

    def evaluate(self) -> None:
        """Greedy evaluation episodes (``cfg.eval``), logged under ``eval/return``."""
        cfg = self.cfg
        returns = evaluate(
            cfg.env, self.greedy, episodes=cfg.eval.episodes, seed=cfg.seed + 1_000_000,
            epsilon=cfg.eval.epsilon, max_steps=cfg.eval.max_steps, device=self.device,
        )
        self.eval_frames.append(self.frames)
        self.eval_returns.append(sum(returns) / len(returns))
        if self.logger is not None:
            self.logger.log_scalar("eval/return", self.eval_returns[-1], step=self.frames)

    def end_batch(self, batch_frames: int, **scalars: float) -> bool:
        """Evaluate, log (with ``scalars`` under ``train/``), advance the progress bar, checkpoint on
        schedule; on a stop request write a checkpoint and return ``True`` (the loop breaks)."""
        cfg, frames = self.cfg, self.frames
        if crossed(cfg.eval.interval, frames, batch_frames):
            self.evaluate()
        if crossed(cfg.logger.interval, frames, batch_frames) and self.logger is not None:
            new_returns = self.tracker.returns[self.logged_episodes:]
            if new_returns:
                self.logger.log_scalar("train/episode_return", sum(new_returns) / len(new_returns), step=frames)
            self.logged_episodes = len(self.tracker.returns)
            for key, values in self.outputs_since_log().items():
                self.logger.log_scalar(f"train/{key}", float(values.mean()), step=frames)
            self.pending_outputs, self.carried_outputs = [], {}
            for key, value in scalars.items():
                self.logger.log_scalar(f"train/{key}", float(value), step=frames)
        self.pbar.update(batch_frames, ret=mean_last(self.tracker.returns), **scalars)
        if stop_requested(frames):
            self.status = "interrupted"
            self.checkpoint()
            clear_stop()
            return True
        if crossed(cfg.checkpoint.interval, frames, batch_frames):
            self.checkpoint()
        return False

    def finish(self, **extra_metrics: Any) -> dict[str, Any]:
        """Final evaluation and checkpoint (completed runs), ``metrics.json`` (with ``extra_metrics``)
        and ``learning_curve.png``; returns the metrics."""
        self.pbar.close()
        cfg = self.cfg
        completed = self.status == "completed"
        if completed and cfg.eval.episodes > 0 and (not self.eval_frames or self.eval_frames[-1] != self.frames):
            self.evaluate()
        if completed:
            self.checkpoint()
        self.collector.shutdown()
        wall_time = self.elapsed_before + time.perf_counter() - self.t_start
        metrics = {
            "status": self.status,
            "frames": self.frames,
            "updates": self.updates,
            "wall_time_s": wall_time,
            "steps_per_s": self.frames / wall_time if wall_time > 0 else math.nan,
            "final_return": mean_last(self.tracker.returns, 100),
            "episodes": len(self.tracker.returns),
            "eval_frames": self.eval_frames,
            "eval_returns": self.eval_returns,
            "env": cfg.env.name,
            "seed": cfg.seed,
            "run_dir": str(self.run_dir),
            **self.extra_metrics,
            **extra_metrics,
        }
        write_json(self.run_dir / "metrics.json", metrics)
        plot_learning_curve(
            self.run_dir / "learning_curve.png", self.tracker.end_frames, self.tracker.returns,
            self.eval_frames, self.eval_returns, title=self.title,
        )
        return metrics
