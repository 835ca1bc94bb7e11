"""The loops, one per family, each readable top to bottom (see ARCHITECTURE.md).

* :func:`torchrl_reg.loops.value_based.train`: discrete actions, epsilon-greedy or the method's own behaviour
  policy, periodic target copy;
* :func:`torchrl_reg.loops.actor_critic.train`: Box actions, Polyak targets or a periodic copy
  (:mod:`torchrl_reg.loops.targets`);
* :func:`torchrl_reg.loops.planning.plan`: a tree search before every move (no training).

Which method runs on which loop: the README's method table (the one list of methods), and a recipe's schema
(its ``family``).

A recipe (``recipes/<method>.py``) declares its config schema, registers its losses in
:mod:`torchrl_reg.loops.registry` under their loop family (builders typed by the family's Protocol:
:class:`~torchrl_reg.loops.registry.ValueBasedBuilder`, :class:`~torchrl_reg.loops.registry.ActorCriticBuilder`)
and gets ``validate``, ``train`` and its command line from :func:`~torchrl_reg.loops.entry.recipe_entry` (the
generic checks from its schema and the registry, its own rules, then the loop of the schema's family, which builds
the loss named ``cfg.loss.name``); method-specific steps are :class:`~torchrl_reg.loops.hooks.LoopHooks`.
"""
from __future__ import annotations

from torchrl_reg.loops.entry import LOOPS, recipe_entry, train_loop
from torchrl_reg.loops.hooks import LoopHooks, RewardScale, ValueBasedHooks
from torchrl_reg.loops.registry import (
    BUILDERS,
    ActorCriticBuilder,
    HooksBuilder,
    LossEntry,
    NetworkBuilder,
    ValueBasedBuilder,
    check_update_mode,
    get_loss,
    offered_losses,
    register_loss,
    registered_losses,
)

__all__ = [
    "ActorCriticBuilder",
    "BUILDERS",
    "HooksBuilder",
    "LOOPS",
    "LoopHooks",
    "LossEntry",
    "NetworkBuilder",
    "RewardScale",
    "ValueBasedBuilder",
    "ValueBasedHooks",
    "check_update_mode",
    "get_loss",
    "offered_losses",
    "recipe_entry",
    "register_loss",
    "registered_losses",
    "train_loop",
]
