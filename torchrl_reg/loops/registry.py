"""The loss registry: a loss name in a recipe's config -> the loss class and how its family's loop builds it.

Each recipe registers the losses it offers (:func:`register_loss` at import) under a loop family; the
family's loop looks ``cfg.loss.name`` up (:func:`get_loss`) and calls the entry's builders, so no loop
or recipe has an ``if name == ...`` chain. What a builder receives and returns is fixed by the loop and
declared here as a ``typing.Protocol`` per family (:data:`BUILDERS`), checked when a loss is registered:

* ``value_based`` (:func:`torchrl_reg.loops.value_based.train`): :class:`ValueBasedBuilder`
  ``from_config(cfg, actor) -> loss`` with the whole validated config and the
  :class:`~torchrl.modules.QValueActor`, gamma set in the loss's value estimator; optionally
  :class:`NetworkBuilder` ``network(cfg, obs_shape, num_actions)``, the Q-network (default:
  :func:`~torchrl_reg.modules.q_networks.make_q_network` of ``network.kind``);
* ``actor_critic`` (:func:`torchrl_reg.loops.actor_critic.train`): :class:`ActorCriticBuilder`
  ``from_config(cfg, env, device) -> (policy, loss)``, the acting policy and the loss that owns
  every network, gamma set.

Every family: :class:`HooksBuilder` ``hooks(cfg, loss) -> LoopHooks`` (default: the family's own, which
add nothing); ``label(cfg)``, the method's name in ``metrics.json`` (``"loss"``) and the plots' title
(default ``cfg.loss.name``), and ``metrics(cfg)``, further entries naming the run (e.g. the policy kind).
A loss declares whether it satisfies :class:`~torchrl_reg.objectives.protocols.FusableLoss`
(``fused_update``); a wrong declaration is refused.

Names are unique within a family; one name may exist in two families (``sql``: MIRL's discrete soft
Q-learning baseline is ``value_based``, soft Q-learning with continuous actions ``actor_critic``), and
:func:`get_loss` refuses a name registered only in another family. The module that registers a loss (a
recipe file) offers it: :func:`offered_losses` lists a recipe's losses, the names its config accepts as
``loss.name``, and one entry may be offered by several recipes (TorchRL's DQN, ``dqn``, by ``recipes/m_dqn.py``
and ``recipes/mirl.py``). An entry also says how its loss's arguments are checked from the config
(:meth:`LossEntry.check_config`), which :func:`~torchrl_reg.loops.recipe_entry` runs for every recipe. A new family of losses adds its
builder's Protocol to :data:`BUILDERS`; the planning loop (:mod:`torchrl_reg.loops.planning`) builds no loss and
has none.
"""
from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from omegaconf import DictConfig
from tensordict.nn import TensorDictModule
from torchrl.envs import EnvBase
from torchrl.modules import QValueActor
from torchrl.objectives import LossModule

from torchrl_reg.configs import check_loss_config
from torchrl_reg.loops.hooks import LoopHooks
from torchrl_reg.objectives.protocols import FusableLoss, protocol_gaps

__all__ = [
    "ActorCriticBuilder",
    "BUILDERS",
    "HooksBuilder",
    "LossEntry",
    "NetworkBuilder",
    "ValueBasedBuilder",
    "check_update_mode",
    "get_loss",
    "offered_losses",
    "register_loss",
    "registered_losses",
]


class ValueBasedBuilder(Protocol):
    """``from_config`` of a value-based loss: the loss over the loop's Q-value actor, gamma set."""

    def __call__(self, cfg: DictConfig, actor: QValueActor) -> LossModule: ...


class ActorCriticBuilder(Protocol):
    """``from_config`` of an actor-critic loss: the acting policy and the loss that owns every network
    (policy, critics, targets), on ``device``, gamma set."""

    def __call__(self, cfg: DictConfig, env: EnvBase, device: torch.device) -> tuple[TensorDictModule, LossModule]: ...


class NetworkBuilder(Protocol):
    """``network`` of a value-based loss whose Q-network is not :func:`~torchrl_reg.modules.q_networks.make_q_network`'s
    (IQN's quantile network)."""

    def __call__(self, cfg: DictConfig, obs_shape: tuple[int, ...], num_actions: int) -> torch.nn.Module: ...


class HooksBuilder(Protocol):
    """``hooks`` of a loss: its :class:`~torchrl_reg.loops.hooks.LoopHooks` (on the value-based loop a
    :class:`~torchrl_reg.loops.hooks.ValueBasedHooks`), given the built loss."""

    def __call__(self, cfg: DictConfig, loss: LossModule) -> LoopHooks: ...


#: Loop family -> the Protocol of its losses' ``from_config``.
BUILDERS: dict[str, type] = {"value_based": ValueBasedBuilder, "actor_critic": ActorCriticBuilder}


@dataclass(frozen=True)
class LossEntry:
    """One registered loss: its config ``name`` within its loop ``family``, its class, its builders
    (``None``: the loop's default), whether its update can be fused (:class:`FusableLoss`), and how the
    config's ``loss`` group is checked before anything is built (:meth:`check_config`): by ``checks``, the
    classes that own the ranges of the loss's arguments (:class:`~torchrl_reg.validation.ArgumentChecks`;
    empty: ``loss_class``), with ``values(cfg)``, the arguments the config spells differently from the
    constructor (e.g. ``{"target_entropy": "auto"}`` for a null ``loss.target_entropy``)."""

    name: str
    family: str
    loss_class: type
    from_config: ValueBasedBuilder | ActorCriticBuilder
    hooks: HooksBuilder | None = None
    network: NetworkBuilder | None = None
    label: Callable[[DictConfig], str] | None = None
    metrics: Callable[[DictConfig], Mapping[str, Any]] | None = None
    fused_update: bool = True
    checks: tuple[type, ...] = ()
    values: Callable[[DictConfig], Mapping[str, Any]] | None = None

    def check_config(self, cfg: DictConfig) -> None:
        """Check ``cfg.loss`` with the argument checks of :attr:`checks` (default: the loss class's), errors
        naming ``loss.<key>`` (:func:`~torchrl_reg.configs.check_loss_config`); a class without checks
        (TorchRL's ``DQNLoss``) checks nothing."""
        values = self.values(cfg) if self.values is not None else {}
        for owner in self.checks or (self.loss_class,):
            check_loss_config(owner, cfg.loss, **values)

    def run_metrics(self, cfg: DictConfig) -> dict[str, Any]:
        """The entries of ``metrics.json`` that name the run: ``"loss"`` (:attr:`label`, default
        ``cfg.loss.name``) first, then :attr:`metrics`."""
        label = self.label(cfg) if self.label is not None else cfg.loss.name
        return {"loss": label, **(self.metrics(cfg) if self.metrics is not None else {})}

    def title(self, cfg: DictConfig) -> str:
        """The run's title in its plots: ``"m_iq (gaussian) on HalfCheetah-v5 (seed 1)"``."""
        label, *others = self.run_metrics(cfg).values()
        return " ".join([label, *(f"({value})" for value in others)]) + f" on {cfg.env.name} (seed {cfg.seed})"


_LOSSES: dict[tuple[str, str], LossEntry] = {}
#: Module name (a recipe's) -> the (family, name) of the losses it registered, in registration order.
_OFFERED: dict[str, list[tuple[str, str]]] = {}


def register_loss(
    name: str,
    loss_class: type,
    from_config: ValueBasedBuilder | ActorCriticBuilder,
    *,
    family: str,
    hooks: HooksBuilder | None = None,
    network: NetworkBuilder | None = None,
    label: Callable[[DictConfig], str] | None = None,
    metrics: Callable[[DictConfig], Mapping[str, Any]] | None = None,
    fused_update: bool = True,
    checks: tuple[type, ...] = (),
    values: Callable[[DictConfig], Mapping[str, Any]] | None = None,
) -> LossEntry:
    """Register ``name`` in ``family`` (again: replaced, e.g. a recipe run as ``__main__`` and imported),
    offered by the calling module (a recipe file: :func:`offered_losses`). ``checks`` and ``values`` say
    how the config's ``loss`` group is checked (:class:`LossEntry`).

    Refused, naming what is wrong: an unknown family; one name naming two loss classes in a family;
    builders whose parameters do not take the family's arguments (:data:`BUILDERS`, :class:`HooksBuilder`,
    :class:`NetworkBuilder`, the latter value-based only); ``fused_update=True`` (the default) for a loss
    class that does not satisfy :class:`FusableLoss`, or ``False`` for one that does (register TorchRL's
    ``DQNLoss`` or a loss with ``fusable_update = False`` with ``fused_update=False``).
    """
    if family not in BUILDERS:
        raise ValueError(f"loss {name!r}: unknown loop family {family!r}; the families are {sorted(BUILDERS)}")
    _check_builder(name, "from_config", from_config, BUILDERS[family])
    if hooks is not None:
        _check_builder(name, "hooks", hooks, HooksBuilder)
    if network is not None:
        if family != "value_based":
            raise ValueError(
                f"loss {name!r}: network= builds the value-based loop's Q-network; the {family} loop would not "
                "read it (its from_config builds every network)"
            )
        _check_builder(name, "network", network, NetworkBuilder)
    gaps = protocol_gaps(loss_class, FusableLoss)
    if fused_update and gaps:
        raise ValueError(
            f"loss {name!r}: {loss_class.__name__} {' and '.join(gaps)}, so its update cannot be fused "
            "(FusableLoss); register it with fused_update=False (the generic update) or implement loss_and_outputs"
        )
    if not fused_update and not gaps:
        raise ValueError(
            f"loss {name!r}: fused_update=False, but {loss_class.__name__} is a FusableLoss; drop fused_update=False"
        )
    known = _LOSSES.get((family, name))
    if known is not None and known.loss_class is not loss_class:
        raise ValueError(
            f"{family} loss name {name!r} is already registered for {known.loss_class.__name__}, not {loss_class.__name__}"
        )
    entry = LossEntry(
        name, family, loss_class, from_config, hooks, network, label, metrics, fused_update, tuple(checks), values
    )
    _LOSSES[(family, name)] = entry
    offered = _OFFERED.setdefault(sys._getframe(1).f_globals.get("__name__", ""), [])
    if (family, name) not in offered:
        offered.append((family, name))
    return entry


def offered_losses(module: str, family: str) -> list[str]:
    """The names of the ``family`` losses that module ``module`` (a recipe's ``__name__``) registered, in the
    order it registered them: the ``loss.name`` values its config accepts."""
    return [name for known, name in _OFFERED.get(module, []) if known == family]


def get_loss(name: str, family: str) -> LossEntry:
    """The entry registered under ``name`` in ``family``; a ``ValueError`` otherwise, naming the family
    the name is registered in (a config of one family naming another family's loss) or the names
    registered in ``family``."""
    if family not in BUILDERS:
        raise ValueError(f"unknown loop family {family!r}; the families are {sorted(BUILDERS)}")
    entry = _LOSSES.get((family, name))
    if entry is not None:
        return entry
    others = sorted(other for other, known in _LOSSES if known == name)
    if others:
        raise ValueError(
            f"loss {name!r} is registered for the {' and '.join(others)} loop, not the {family} loop: a {family} "
            f"config cannot run it; {family} losses: {registered_losses(family)}"
        )
    raise ValueError(f"unknown {family} loss {name!r}; registered {family} losses: {registered_losses(family)}")


def check_update_mode(cfg: DictConfig, family: str) -> None:
    """Refuse ``cuda_graph=true`` for a loss whose update cannot be recorded as a CUDA graph (its class says
    why in ``cuda_graph_unsupported``), naming the loss, the reason and the family's losses that can; every
    recipe's ``validate`` runs it (:func:`~torchrl_reg.loops.recipe_entry`), so a sweep refuses the config
    before anything is submitted (the update itself would refuse it only once the run has started).

    ``cuda_graph=true`` replays :class:`~torchrl_reg.objectives.FusedAdamUpdate`'s compiled step for a loss
    with ``loss_and_outputs``, and records the compiled generic step whole
    (:class:`~torchrl_reg.objectives.CudaGraphUpdate`) for the others (TorchRL's ``DQNLoss`` and ``SACLoss``);
    soft Q-learning's and VIREL's steps read values on the host, which a graph cannot record.
    """
    if not cfg.cuda_graph:
        return
    entry = get_loss(cfg.loss.name, family)
    reason = getattr(entry.loss_class, "cuda_graph_unsupported", None)
    if reason:
        able = sorted(
            name for (known, name), e in _LOSSES.items()
            if known == family and not getattr(e.loss_class, "cuda_graph_unsupported", None)
        )
        raise ValueError(
            f"cuda_graph=true replays the update as a CUDA graph, and loss.name={entry.name!r} "
            f"({entry.loss_class.__name__}) cannot be recorded: {reason}; use compile=true without cuda_graph; "
            f"the {family} losses with a CUDA-graph update: {able}"
        )


def registered_losses(family: str | None = None) -> list[str]:
    """The names registered in ``family`` (every family: ``None``), sorted."""
    return sorted({name for known, name in _LOSSES if family is None or known == family})


def _check_builder(name: str, role: str, builder: Callable[..., Any], protocol: type) -> None:
    """Refuse a builder that cannot be called with the protocol's positional arguments."""
    expected = [p for p in inspect.signature(protocol.__call__).parameters if p != "self"]
    try:
        inspect.signature(builder).bind(*expected)
    except TypeError as err:
        raise ValueError(
            f"loss {name!r}: {role} must be called as {role}({', '.join(expected)}) ({protocol.__name__}); "
            f"{getattr(builder, '__name__', builder)!r} takes {inspect.signature(builder)} ({err})"
        ) from None
