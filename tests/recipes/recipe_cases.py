"""The recipes and their losses, found from ``recipes/*.py`` and the loss registry: the tests that cover every
recipe or every loss read them here, so a new recipe is covered the day it lands, with no list to extend."""
from __future__ import annotations

import importlib
from functools import cache
from pathlib import Path
from types import ModuleType

from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "recipes" / "conf"
#: Every recipe file, by name (``recipes/<name>.py``).
RECIPES = tuple(sorted(path.stem for path in (ROOT / "recipes").glob("*.py") if not path.stem.startswith("_")))


def recipe(name: str) -> ModuleType:
    """``recipes.<name>``, imported (its schema and losses registered)."""
    return importlib.import_module(f"recipes.{name}")


def offered(name: str) -> list[tuple[str, str]]:
    """The ``(family, loss name)`` of every loss recipe ``name`` registers (:func:`~torchrl_reg.loops.offered_losses`)."""
    from torchrl_reg.loops import BUILDERS, offered_losses

    module = recipe(name).__name__
    return [(family, loss) for family in BUILDERS for loss in offered_losses(module, family)]


#: The recipes that train (register at least one loss); the others (the planning recipe) train nothing.
TRAINING_RECIPES = tuple(name for name in RECIPES if offered(name))


@cache
def loss_cases(name: str) -> dict[tuple[str, str], tuple[str, ...]]:
    """``(family, loss name) -> overrides`` that compose recipe ``name``'s config with that loss, for every loss the
    recipe registers: each option of its ``loss`` group with the default env, then each ``env`` option with the
    default loss for a loss no option reaches (VIREL's discrete loss, picked by its env). A registered loss that no
    option reaches fails here, saying what to add."""
    from torchrl_reg.configs import compose_config, config_sources

    module = recipe(name)
    groups = config_sources(CONF, name).groups
    wanted = set(offered(name))
    cases: dict[tuple[str, str], tuple[str, ...]] = {}
    candidates = [(f"loss={option}",) for option in groups["loss"][1]]
    candidates += [(f"env={option}",) for option in groups["env"][1]]
    for overrides in candidates:
        if wanted <= set(cases):
            break
        cfg = module.validate(compose_config(CONF, name, list(overrides)))
        key = (OmegaConf.get_type(cfg).family, cfg.loss.name)
        cases.setdefault(key, overrides)
    missing = sorted(wanted - set(cases))
    assert not missing, (
        f"recipes/{name}.py registers {missing}, which no option of recipes/conf/{name}/loss/ (or env/) selects: "
        f"add recipes/conf/{name}/loss/<option>.yaml setting its name"
    )
    return {key: cases[key] for key in offered(name)}


def family_cases(name: str) -> dict[str, tuple[str, ...]]:
    """``family -> overrides`` of one config per loop family recipe ``name`` runs on (VIREL: Box and discrete);
    ``{None: ()}`` for a recipe that trains nothing (its one schema)."""
    if name not in TRAINING_RECIPES:
        return {None: ()}
    cases: dict[str, tuple[str, ...]] = {}
    for (family, _), overrides in loss_cases(name).items():
        cases.setdefault(family, overrides)
    return cases
