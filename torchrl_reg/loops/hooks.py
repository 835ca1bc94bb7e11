"""Method-specific steps of a training loop, as a small callback object instead of branches in the loop.

A loop calls each hook at one fixed place (see :mod:`torchrl_reg.loops.value_based` and
:mod:`torchrl_reg.loops.actor_critic`); every hook of :class:`LoopHooks` does nothing, so a method
overrides only the steps it adds. Examples: MIRL's prior update after each collected batch and its
beta update after each gradient step (``recipes/mirl.py``), SAC's reward scale on each sampled
minibatch (``recipes/sac.py``), IQ's policy diagnostics at each log line (``recipes/iq.py``).
"""
from __future__ import annotations

from typing import Any

import torch
from omegaconf import DictConfig
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torchrl.data import ReplayBuffer, TensorSpec

from torchrl_reg.modules.exploration import AnnealedEpsilonGreedy, linear_schedule
from torchrl_reg.run.recipe_run import RecipeRun

__all__ = ["LoopHooks", "RewardScale", "ValueBasedHooks"]


class LoopHooks:
    """The steps a method may add to its family's loop; the defaults add nothing."""

    def attach(self, replay_buffer: ReplayBuffer) -> None:
        """The run's replay buffer, once, before anything is collected: for a method that samples more
        than the minibatch (VIREL's temperature batch, ``recipes/virel.py``)."""

    def after_collect(self, data: TensorDictBase) -> None:
        """A collected batch (``[num_envs, T]``, rewards checked and clipped), before it is stored."""

    def before_update(self, batch: TensorDictBase) -> None:
        """A sampled minibatch, before the gradient step reads it (in place: the buffer keeps its own copy)."""

    def after_update(self, out: TensorDictBase) -> None:
        """The detached outputs of one gradient step, before the target update and the priority write."""

    def after_batch(self, run: RecipeRun, batch_frames: int) -> None:
        """A batch's updates are done, before its evaluation / log / checkpoint step (``run.end_batch``):
        e.g. extra scalars logged with ``run.logger`` when ``crossed(run.cfg.logger.interval, run.frames, batch_frames)``."""

    def final_metrics(self) -> dict[str, Any]:
        """Entries added to ``metrics.json`` at the end of the run."""
        return {}

    def curve_scalars(self) -> dict[str, str]:
        """Logged training scalars drawn beside the return in ``learning_curve.png``: key -> axis label
        (e.g. VIREL's temperature and the policy entropy)."""
        return {}


class RewardScale(LoopHooks):
    """The loss sees ``scale * r`` (Dopamine's ``reward_scale_factor``; the reward scale of the SAC-v1 /
    rlkit code that VIREL's official code builds on): each sampled minibatch is scaled before the update,
    in place (the minibatch is a copy, so the buffer and the logged returns keep the raw rewards).
    A subclass that samples more from the buffer scales that with :meth:`scale` too."""

    def __init__(self, scale: float = 1.0):
        self.reward_scale = float(scale)

    def scale(self, batch: TensorDictBase) -> TensorDictBase:
        """``batch`` with its ``("next", "reward")`` multiplied by the scale, in place (untouched at 1)."""
        if self.reward_scale != 1.0:
            batch.set(("next", "reward"), batch.get(("next", "reward")) * self.reward_scale)
        return batch

    def before_update(self, batch: TensorDictBase) -> None:
        self.scale(batch)


class ValueBasedHooks(LoopHooks):
    """:class:`LoopHooks` plus the choices of the value-based loop (the behaviour policy and its schedule,
    the evaluation policy); the defaults are DQN's."""

    def exploration(self, action_spec: TensorSpec, cfg: DictConfig | None) -> TensorDictModuleBase:
        """The exploration module after the greedy actor (``cfg``: the ``exploration`` group, ``None`` in a
        recipe whose schema has none): epsilon-greedy over uniform actions, annealed by :meth:`anneal_exploration`."""
        return AnnealedEpsilonGreedy(
            action_spec, eps_init=cfg.eps_init, eps_end=cfg.eps_end, annealing_num_steps=max(cfg.annealing_frames, 1)
        )

    def anneal_exploration(self, exploration: TensorDictModuleBase, cfg: DictConfig | None, frames: int) -> dict[str, float]:
        """After each collected batch is stored, before its updates: move ``exploration`` along its schedule
        to ``frames`` collected frames (``cfg`` as in :meth:`exploration`); returns the scalars logged with
        the batch. The default: ``eps`` linear from ``cfg.eps_init`` to ``cfg.eps_end`` over
        ``cfg.annealing_frames`` frames, in closed form (CleanRL's schedule; ``EGreedyModule.step`` loops
        in Python once per frame). A method whose policy needs no schedule returns ``{}``."""
        exploration.eps.fill_(linear_schedule(cfg.eps_init, cfg.eps_end, cfg.annealing_frames, frames))
        return {"epsilon": float(exploration.eps)}

    def greedy_action(self, q: torch.Tensor) -> torch.Tensor:
        """The evaluation policy's action from action values ``[*batch, num_actions]``: the argmax."""
        return q.argmax(-1)
