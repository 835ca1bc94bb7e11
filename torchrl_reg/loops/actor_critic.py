"""The actor-critic training loop: IQ / M-IQ (``recipes/iq.py``), SAC (``recipes/sac.py``), MDAC
(``recipes/mdac.py``), soft Q-learning (``recipes/sql.py``) and VIREL (``recipes/virel.py``), on Box-action envs.

Read :func:`train` top to bottom: it is the whole algorithm. Collect ``frames_per_batch`` frames with
the stochastic policy (from the first frame, or uniformly random for ``collector.init_random_frames``),
store the transitions, and once ``optim.learning_starts`` frames are stored do one gradient step per
``optim.frames_per_update`` frames, each followed by a Polyak update of every target network at the
rate ``loss.polyak`` (``loss.target_update=polyak``, the default) or, with ``loss.target_update=hard``,
a copy of the online parameters every ``loss.hard_update_interval`` updates. One Adam optimizer steps all parameters of the loss: for a single objective
(IQ's Eq. (2)) that is the method itself; for a sum of losses on disjoint parameters (SAC's actor,
critics and temperature) it is the per-loss optimizers of the paper with one backward pass, since
Adam is per-parameter. Evaluation plays the policy's deterministic mode.

What a method adds: a loss registered in :mod:`torchrl_reg.loops.registry` with ``family="actor_critic"``
whose ``from_config(cfg, env, device)`` builds the policy and the loss (with its networks), and optionally
:class:`~torchrl_reg.loops.hooks.LoopHooks`. Its config is an
:class:`~torchrl_reg.configs.ActorCriticConfig` whose ``loss`` group has ``name`` (the registered loss),
``gamma``, ``target_update``, ``polyak`` and ``hard_update_interval``.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
from omegaconf import DictConfig
from tensordict.nn import TensorDictModule
from torchrl.envs import EnvBase

from torchrl_reg.data import TRANSITION_KEYS, make_collector, make_replay_buffer, sample_minibatches
from torchrl_reg.envs import check_box_action_spec, make_env
from torchrl_reg.loops.hooks import LoopHooks
from torchrl_reg.loops.registry import get_loss
from torchrl_reg.loops.targets import actor_critic_target_update
from torchrl_reg.modules.critics import state_action_value_network
from torchrl_reg.modules.policies import tanh_normal_policy
from torchrl_reg.objectives.protocols import InputChecks
from torchrl_reg.objectives.update import make_update
from torchrl_reg.run import RecipeRun, deterministic_actor, start_process
from torchrl_reg.run.process import scoped_loop
from torchrl_reg.run.recipe_run import replay_scratch_dir
from torchrl_reg.run.rundir import released_on_error

__all__ = ["FAMILY", "actor_and_qvalue", "train"]

#: The loop family of this loop's losses (:mod:`torchrl_reg.loops.registry`).
FAMILY = "actor_critic"


def actor_and_qvalue(
    cfg: DictConfig, env: EnvBase, device: torch.device, actor: Callable[..., TensorDictModule] = tanh_normal_policy,
    **actor_options: Any,
) -> tuple[TensorDictModule, TensorDictModule]:
    """The acting policy ``actor(obs_dim, action_spec, num_cells=network.hidden, **actor_options)`` (default: the
    tanh-Gaussian of SAC, VIREL, MDAC, whose recipes pass ``scale_lb=policy.scale_lb``) and a ``Q(s, a)`` critic of
    the same widths, on ``device``: the networks of a loss's ``from_config`` (SAC, soft Q-learning, VIREL, MDAC)."""
    obs_dim = env.observation_spec["observation"].shape[-1]
    action_spec = env.action_spec_unbatched
    hidden = list(cfg.network.hidden)
    policy = actor(obs_dim, action_spec, num_cells=hidden, **actor_options).to(device)
    qvalue = state_action_value_network(obs_dim, action_spec.shape[-1], num_cells=hidden).to(device)
    return policy, qvalue


@scoped_loop  # the process as it was found, on success and on failure: locks, signal handlers, loop flag
def train(cfg: DictConfig, *, preset_id: str | None = None) -> dict[str, Any]:
    """Train one actor-critic agent with the loss named ``cfg.loss.name``; returns the final metrics (also
    written to ``<run_dir>/metrics.json``, with the entry's ``run_metrics``: the method's name as ``"loss"``,
    e.g. the policy kind). ``cfg`` is a validated :class:`~torchrl_reg.configs.ActorCriticConfig` (the
    recipe's ``validate``); ``preset_id``: the gymnasium id its env option was made for, named in the preset line
    (the recipe's command line reads it from Hydra)."""
    entry = get_loss(cfg.loss.name, FAMILY)
    run_dir, device = start_process(cfg)
    # A run refused while it is being set up leaves no lock file behind.
    with released_on_error(run_dir):
        env = make_env(cfg.env, num_envs=cfg.collector.num_envs, seed=cfg.seed)
        check_box_action_spec(env)
        policy, loss_module = entry.from_config(cfg, env, device)
        hooks = entry.hooks(cfg, loss_module) if entry.hooks is not None else LoopHooks()
        target_update = actor_critic_target_update(loss_module, cfg.loss)  # Polyak, or a copy every N updates
        optimizer = torch.optim.Adam(loss_module.parameters(), lr=cfg.optim.lr, eps=cfg.optim.eps)
        # Every collected transition is checked once, before the buffer (actions against the action
        # space, NaN/inf values with check_finite), so the update does not re-check each minibatch.
        checks_inputs = isinstance(loss_module, InputChecks)
        update = make_update(
            loss_module, optimizer, max_grad_norm=cfg.optim.max_grad_norm, compile=cfg.compile,
            fused="auto" if entry.fused_update else False, inputs_checked=checks_inputs, cuda_graph=cfg.cuda_graph,
        )
        replay_buffer = make_replay_buffer(cfg.buffer, device=device, scratch_dir=replay_scratch_dir(cfg, run_dir, env))
        hooks.attach(replay_buffer)
        collector = make_collector(env, policy, cfg.collector, device=device)

        run = RecipeRun(
            cfg, run_dir, collector=collector, replay_buffer=replay_buffer, greedy=deterministic_actor(policy),
            device=device, stateful={"loss_module": loss_module, "optimizer": optimizer},
            title=entry.title(cfg), extra_metrics=entry.run_metrics(cfg),
            curve_scalars=hooks.curve_scalars(), preset_id=preset_id,
        )
    run.start()  # resumes from <run_dir>/checkpoint.pt if there is one
    prioritized = cfg.buffer.prioritized
    update_time, session_updates = 0.0, 0
    for data in collector:
        batch_frames = run.observe(data)  # non-finite rewards refused, returns tracked
        hooks.after_collect(data)
        transitions = data.select(*TRANSITION_KEYS).reshape(-1)
        if checks_inputs:
            loss_module.check_inputs(transitions)
        replay_buffer.extend(transitions)
        t_update = time.perf_counter()
        # One update per optim.frames_per_update frames collected after optim.learning_starts.
        for batch in sample_minibatches(replay_buffer, run.updates_due()):
            hooks.before_update(batch)
            out = update(batch)  # every loss term, one backward, one Adam step
            hooks.after_update(out)
            if prioritized:
                replay_buffer.update_tensordict_priority(batch)
            run.record(out)
            target_update(run.updates)  # Polyak averaging, or a hard copy after updates N, 2N, ...
            session_updates += 1
        update_time += time.perf_counter() - t_update
        hooks.after_batch(run, batch_frames)
        if run.end_batch(batch_frames):  # evaluation, logs, progress, checkpoint, stop request
            break
    # Measured over this process's updates (a resumed run counts only its own).
    updates_per_s = session_updates / update_time if update_time > 0 else math.nan
    return run.finish(updates_per_s=updates_per_s, **hooks.final_metrics())
