"""The loss registry: a loss name in a recipe's config -> the loss class and how to build it from the config.

Each recipe registers the losses it offers (``register_loss`` at import); its family's loop looks
the name up (:func:`get_loss`) and calls the entry's ``from_config``, so no loop or recipe has an
``if name == ...`` chain. What ``from_config`` receives and returns is fixed by the loop:

* value-based (:func:`torchrl_reg.loops.value_based.train`): ``from_config(cfg, actor)`` with the
  whole validated config and the :class:`~torchrl.modules.QValueActor` -> the loss module, gamma set
  in its value estimator; ``network(cfg, obs_shape, num_actions)`` builds the Q-network (default:
  :func:`~torchrl_reg.modules.q_networks.make_q_network` of ``network.kind``);
* actor-critic (:func:`torchrl_reg.loops.actor_critic.train`): ``from_config(cfg, env, device)`` ->
  ``(policy, loss_module)``, the acting policy and the loss that owns every network, gamma set.

``hooks(cfg, loss_module)`` gives the method's :class:`~torchrl_reg.loops.hooks.LoopHooks` (default:
the family's own, which add nothing).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torchrl_reg.loops.hooks import LoopHooks

__all__ = ["LossEntry", "get_loss", "register_loss", "registered_losses"]


@dataclass(frozen=True)
class LossEntry:
    """One registered loss: its config ``name``, its class, its builder, its loop hooks and (value-based
    losses) its Q-network builder; ``None`` takes the loop's default."""

    name: str
    loss_class: type
    from_config: Callable[..., Any]
    hooks: Callable[[Any, Any], LoopHooks] | None = None
    network: Callable[..., Any] | None = None


_LOSSES: dict[str, LossEntry] = {}


def register_loss(
    name: str,
    loss_class: type,
    from_config: Callable[..., Any],
    hooks: Callable[[Any, Any], LoopHooks] | None = None,
    *,
    network: Callable[..., Any] | None = None,
) -> LossEntry:
    """Register ``name`` (again: replaced, e.g. a recipe run as ``__main__`` and imported). Names are
    shared by every recipe and loop: one name naming two loss classes is refused, so a recipe whose
    loss is not chosen by ``loss.name`` registers it under a name no config uses (e.g. ``soft_q_learning``)."""
    known = _LOSSES.get(name)
    if known is not None and known.loss_class is not loss_class:
        raise ValueError(
            f"loss name {name!r} is already registered for {known.loss_class.__name__}, not {loss_class.__name__}"
        )
    _LOSSES[name] = entry = LossEntry(name, loss_class, from_config, hooks, network)
    return entry


def get_loss(name: str) -> LossEntry:
    """The entry registered under ``name``; ``ValueError`` listing the registered names otherwise."""
    entry = _LOSSES.get(name)
    if entry is None:
        raise ValueError(f"unknown loss {name!r}; registered losses: {sorted(_LOSSES)}")
    return entry


def registered_losses() -> list[str]:
    """The registered loss names, sorted."""
    return sorted(_LOSSES)
