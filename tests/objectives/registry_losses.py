"""Every registered loss, built small by its own recipe's builder: the tests that run over every loss read them here,
so a loss registered by a recipe is covered the day it lands, with no list to extend.

:func:`cases` lists one ``(recipe, family, name)`` per registry entry (:func:`~tests.recipes.recipe_cases.loss_cases`,
which fails for a registered loss that no config option reaches); :func:`build` composes that recipe's config for the
loss, narrows the networks to 8 units, and calls the entry's own ``from_config`` on a stand-in environment of the
family (3-dim observations; a one-dimensional Box action, as Pendulum's, or a Box of ``Case.action_dim`` dimensions,
or 2 discrete actions), so the loss is the one the recipe trains, with the recipe's settings. :func:`batch` draws a
valid batch for it.
"""
from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import torch
from tensordict import TensorDict
from torchrl.data import Bounded, Categorical, Composite, Unbounded
from torchrl.modules import QValueActor
from torchrl.objectives import LossModule

from tests.recipes.recipe_cases import CONF, TRAINING_RECIPES, loss_cases, recipe

OBS, NUM_ACTIONS, B = 3, 2, 4
#: A one-dimensional Box (Pendulum's shape): an ``[N]`` action is the misuse, ``[N, 1]`` the accepted form.
BOX = Bounded(-1.0, 1.0, shape=(1,))
#: Networks narrowed for speed (the losses' arithmetic does not depend on the widths).
SMALL = ("network.hidden=[8]",)


@dataclass(frozen=True)
class Case:
    """One registry entry, by the recipe that offers it."""

    recipe: str
    family: str
    name: str
    #: The overrides that select this loss instead of :func:`~tests.recipes.recipe_cases.loss_cases`' (a variant of
    #: the entry: another option of the recipe's ``loss`` group, e.g. ``("loss=virel_em",)``).
    options: tuple[str, ...] = ()
    #: The dimensions of the Box action of an actor-critic case (1: :data:`BOX`, Pendulum's shape).
    action_dim: int = 1

    @property
    def id(self) -> str:
        tags = [*self.options, *([f"box={self.action_dim}d"] if self.action_dim != 1 else [])]
        return f"{self.family}:{self.name}" + (f"[{','.join(tags)}]" if tags else "")

    @property
    def box(self) -> Bounded:
        """The case's Box action spec: :data:`BOX`, or ``[-1, 1]^action_dim``."""
        return BOX if self.action_dim == 1 else Bounded(-1.0, 1.0, shape=(self.action_dim,))

    @property
    def entry(self):
        from torchrl_reg.loops import get_loss

        recipe(self.recipe)
        return get_loss(self.name, self.family)


def cases() -> list[Case]:
    """One case per ``(family, name)`` registered by the training recipes (the first recipe offering it)."""
    found: dict[tuple[str, str], Case] = {}
    for name in TRAINING_RECIPES:
        for family, loss in loss_cases(name):
            found.setdefault((family, loss), Case(name, family, loss))
    return list(found.values())


def registered() -> set[tuple[str, str]]:
    """Every ``(family, name)`` in the registry once the training recipes are imported."""
    from torchrl_reg.loops import BUILDERS, registered_losses

    for name in TRAINING_RECIPES:
        recipe(name)
    return {(family, name) for family in BUILDERS for name in registered_losses(family)}


@cache
def config(case: Case):
    from torchrl_reg.configs import compose_config

    overrides = [*(case.options or loss_cases(case.recipe)[(case.family, case.name)]), *SMALL]
    if case.family == "value_based":
        overrides.append("network.kind=mlp")
    return compose_config(CONF, case.recipe, overrides)


def build(case: Case, seed: int = 0) -> tuple[LossModule, Callable[[TensorDict], TensorDict]]:
    """``(loss, act)``: the entry's loss, built by its ``from_config`` on the stand-in environment (its networks
    drawn after ``torch.manual_seed(seed)``), and the function that writes an action into a batch of observations
    (the acting policy's, or a uniform discrete draw)."""
    entry, cfg = case.entry, config(case)
    torch.manual_seed(seed)
    if case.family == "actor_critic":
        env = SimpleNamespace(observation_spec=Composite(observation=Unbounded(shape=(OBS,))), action_spec_unbatched=case.box)
        policy, loss = entry.from_config(cfg, env, torch.device("cpu"))

        def act(td: TensorDict) -> TensorDict:
            with torch.no_grad():
                return policy(td)

        return loss, act
    from torchrl_reg.loops.value_based import q_network

    network = (entry.network or q_network)(cfg, (OBS,), NUM_ACTIONS)
    actor = QValueActor(network, in_keys=["observation"], spec=Categorical(NUM_ACTIONS))
    loss = entry.from_config(cfg, actor)

    def act(td: TensorDict) -> TensorDict:
        return td.set("action", torch.randint(0, NUM_ACTIONS, td.batch_size))

    return loss, act


def batch(act: Callable[[TensorDict], TensorDict], size: int = B, seed: int = 1) -> TensorDict:
    """A valid batch of ``size`` transitions (the first terminal), its actions from ``act``."""
    g = torch.Generator().manual_seed(seed)
    done = torch.zeros(size, 1, dtype=torch.bool)
    done[0] = True
    td = TensorDict({"observation": torch.randn(size, OBS, generator=g)}, [size])
    td = act(td).select("observation", "action")
    td["next"] = TensorDict(
        {
            "observation": torch.randn(size, OBS, generator=g),
            "reward": torch.randn(size, 1, generator=g),
            "done": done,
            "terminated": done.clone(),
        },
        [size],
    )
    return td


@contextmanager
def arguments_replaced(cls: type, replace: Callable[[dict[str, Any]], None]) -> Iterator[None]:
    """Within the block, ``cls(...)`` hands its bound arguments to ``replace`` (which edits them in place) before its
    constructor runs: e.g. a recipe's ``from_config`` builds the loss with another actor."""
    original = cls.__dict__["__init__"]
    signature = inspect.signature(original)

    @functools.wraps(original)  # its signature stays the constructor's (constructor_arguments reads it)
    def init(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        replace(bound.arguments)
        original(*bound.args, **bound.kwargs)

    cls.__init__ = init
    try:
        yield
    finally:
        cls.__init__ = original


def loss_names(loss: LossModule) -> set[str]:
    """The class names a refusal by ``loss`` may name: its own and those of the losses it holds (soft Q-learning's
    critic and sampler losses)."""
    return {type(module).__name__ for module in loss.modules() if isinstance(module, LossModule)}
