"""The value-based training loop, on discrete-action envs: the loop of every recipe whose schema's family is
``value_based`` (:class:`~torchrl_reg.configs.ValueBasedConfig`, :class:`~torchrl_reg.configs.BoltzmannValueBasedConfig`;
which methods: the README's method table).

Read :func:`train` top to bottom: it is the whole algorithm, DQN's (Mnih et al., "Human-level
control through deep reinforcement learning", Nature 518, 2015) with vectorized envs, as CleanRL
writes it. Collect ``frames_per_batch`` frames from ``num_envs`` envs with the exploration policy,
store them (Atari with ``buffer.dedup_frames``: each frame once), anneal epsilon linearly (a hook:
``ValueBasedHooks.anneal_exploration``), do one gradient step per ``optim.frames_per_update`` frames
collected after ``optim.learning_starts`` (the update-to-data ratio of the one-env original), and copy
the online network to the target network every ``optim.target_update_interval`` frames. Evaluation plays the greedy policy.

What a method adds: a loss registered in :mod:`torchrl_reg.loops.registry` with ``family="value_based"``
(``from_config(cfg, actor)``; its Q-network builder when it is not a plain Q-network, e.g. IQN's), and optionally
:class:`~torchrl_reg.loops.hooks.ValueBasedHooks` (MIRL: the prior's exploration and greedy
action, the prior update after each batch, the beta update after each step; discrete VIREL: the
Boltzmann policy at the loss's temperature, with no epsilon schedule). Its config is a
:class:`~torchrl_reg.configs.ValueBasedConfig` whose ``loss`` group has ``name``.
"""
from __future__ import annotations

import logging
from typing import Any

import torch
from omegaconf import DictConfig
from tensordict.nn import TensorDictSequential
from torchrl.modules import QValueActor
from torchrl.objectives import DQNLoss

from torchrl_reg.data import TRANSITION_KEYS, make_collector, make_replay_buffer, sample_minibatches
from torchrl_reg.envs import check_discrete_action_spec, make_env, num_actions
from torchrl_reg.loops.hooks import ValueBasedHooks
from torchrl_reg.loops.registry import get_loss
from torchrl_reg.loops.targets import PeriodicHardUpdate
from torchrl_reg.modules.q_networks import make_q_network
from torchrl_reg.objectives.protocols import InputChecks
from torchrl_reg.objectives.update import make_update
from torchrl_reg.run import RecipeRun, start_process
from torchrl_reg.run.process import scoped_loop
from torchrl_reg.run.recipe_run import replay_scratch_dir
from torchrl_reg.run.rundir import released_on_error

__all__ = ["FAMILY", "dqn_from_config", "train"]

#: The loop family of this loop's losses (:mod:`torchrl_reg.loops.registry`).
FAMILY = "value_based"


def q_network(cfg: DictConfig, obs_shape: tuple[int, ...], n_actions: int) -> torch.nn.Module:
    """The default Q-network: :func:`~torchrl_reg.modules.q_networks.make_q_network` of ``network.kind``."""
    return make_q_network(cfg.network.kind, obs_shape, n_actions, hidden=cfg.network.hidden)


def dqn_from_config(cfg: DictConfig, actor: QValueActor) -> DQNLoss:
    """TorchRL's :class:`~torchrl.objectives.DQNLoss`, the baseline a value-based recipe offers as ``loss=dqn``
    by registering it (``register_loss("dqn", DQNLoss, dqn_from_config, family="value_based",
    fused_update=False)``): target network, ``loss.loss_function``, gamma ``loss.gamma``."""
    loss = DQNLoss(actor, loss_function=cfg.loss.loss_function, delay_value=True, action_space=actor.spec)
    loss.make_value_estimator(gamma=cfg.loss.gamma)
    return loss


def compiles(cfg: DictConfig, fused: bool, device: torch.device) -> bool:
    """Whether the update is compiled: ``compile=true`` compiles a loss's fused step everywhere, and the generic step
    (a loss without one: TorchRL's ``DQNLoss``) on CUDA only (or with ``cuda_graph=true``, which records it). On a CPU
    core that step ran slower compiled than eager in the loop (DQN on MinAtar Breakout: 12.8 ms against 4.6 ms per
    update, and ~30 s of compilation: ``python -m benchmarks.stage_profile --runs dqn_breakout``), so it runs eagerly
    there, and the log says so."""
    if not cfg.compile or fused or cfg.cuda_graph or device.type != "cpu":
        return bool(cfg.compile)
    logging.getLogger("torchrl_reg.recipes").info(
        "loss.name=%s has no fused update: its update runs eagerly on the CPU (faster there than compiled); "
        "compile=true compiles the fused updates and, on CUDA, this one", cfg.loss.name)
    return False


@scoped_loop  # the process as it was found, on success and on failure: locks, signal handlers, loop flag
def train(cfg: DictConfig, *, preset_id: str | None = None) -> dict[str, Any]:
    """Train one value-based agent with the loss named ``cfg.loss.name``; returns the final metrics
    (also written to ``<run_dir>/metrics.json``). ``cfg`` is a validated
    :class:`~torchrl_reg.configs.ValueBasedConfig` (the recipe's ``validate``); ``preset_id``: the gymnasium id its env
    option was made for, named in the preset line (the recipe's command line reads it from Hydra)."""
    entry = get_loss(cfg.loss.name, FAMILY)
    run_dir, device = start_process(cfg)
    # A run refused while it is being set up leaves no lock file behind.
    with released_on_error(run_dir):
        env = make_env(cfg.env, num_envs=cfg.collector.num_envs, seed=cfg.seed)
        check_discrete_action_spec(env)
        action_spec = env.action_spec_unbatched.to(device)
        obs_shape = tuple(env.observation_spec["observation"].shape[1:])
        q_net = (entry.network or q_network)(cfg, obs_shape, num_actions(env)).to(device)
        actor = QValueActor(q_net, in_keys=["observation"], spec=action_spec)
        loss_module = entry.from_config(cfg, actor).to(device)
        hooks = entry.hooks(cfg, loss_module) if entry.hooks is not None else ValueBasedHooks()
        # The exploration group, None for a recipe without one (its hooks explore without an epsilon schedule).
        schedule = cfg.get("exploration")
        exploration = hooks.exploration(action_spec, schedule).to(device)
        policy = TensorDictSequential(actor, exploration)

        # A copy every optim.target_update_interval frames: every `target_update_interval // frames_per_update` updates.
        target_update = PeriodicHardUpdate(loss_module, cfg.optim.target_update_interval // cfg.optim.frames_per_update)
        optimizer = torch.optim.Adam(loss_module.parameters(), lr=cfg.optim.lr, eps=cfg.optim.eps)
        # Every collected transition is checked once, before the buffer (actions against the action
        # space, NaN/inf values with check_finite), so the update does not re-check each minibatch.
        checks_inputs = isinstance(loss_module, InputChecks)
        compiled = compiles(cfg, entry.fused_update, device)
        update = make_update(
            loss_module, optimizer, max_grad_norm=cfg.optim.max_grad_norm, compile=compiled,
            fused="auto" if entry.fused_update else False, inputs_checked=checks_inputs, cuda_graph=cfg.cuda_graph,
        )
        replay_buffer = make_replay_buffer(
            cfg.buffer,
            device=device,
            scratch_dir=replay_scratch_dir(cfg, run_dir, env),  # <run_dir>/replay, by its held descriptor
            frame_stack=cfg.env.frame_stack,  # with buffer.dedup_frames, stacked frames are stored once
            num_envs=cfg.collector.num_envs,
        )
        hooks.attach(replay_buffer)
        collector = make_collector(env, policy, cfg.collector, device=device)

        @torch.no_grad()
        def greedy(obs: torch.Tensor) -> torch.Tensor:
            return hooks.greedy_action(q_net(obs))

        run = RecipeRun(
            cfg, run_dir, collector=collector, replay_buffer=replay_buffer, greedy=greedy, device=device,
            stateful={"loss_module": loss_module, "policy": policy, "optimizer": optimizer},
            title=entry.title(cfg), extra_metrics=entry.run_metrics(cfg),
            curve_scalars=hooks.curve_scalars(), preset_id=preset_id, compiled=compiled,
        )
    run.start()  # resumes from <run_dir>/checkpoint.pt if there is one
    # Read once: an OmegaConf attribute lookup costs more than a small tensor op.
    prioritized = cfg.buffer.prioritized
    for data in collector:
        batch_frames = run.observe(data)  # non-finite rewards refused, raw returns tracked, then clipped
        hooks.after_collect(data)
        transitions = data.select(*TRANSITION_KEYS).reshape(-1)
        if checks_inputs:
            loss_module.check_inputs(transitions)
        replay_buffer.extend(transitions)
        scalars = hooks.anneal_exploration(exploration, schedule, run.frames)  # default: epsilon, annealed
        # One update per optim.frames_per_update frames collected after optim.learning_starts.
        for batch in sample_minibatches(replay_buffer, run.updates_due()):
            hooks.before_update(batch)
            out = update(batch)
            hooks.after_update(out)
            if prioritized:
                replay_buffer.update_tensordict_priority(batch)
            run.record(out)
            target_update(run.updates)
        hooks.after_batch(run, batch_frames)
        if run.end_batch(batch_frames, **scalars):  # evaluation, logs, checkpoint, stop
            break
    return run.finish(**hooks.final_metrics())
