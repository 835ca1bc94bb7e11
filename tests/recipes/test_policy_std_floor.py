"""``policy.scale_lb``, the tanh-Gaussian's std floor, in the SAC, MDAC, VIREL and IQ recipes: composed, checked, and
reaching the policy each recipe builds (the floor read off the built policy at a very negative network output)."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from recipes import iq, mdac, sac, virel
from torchrl_reg.configs import compose_config
from torchrl_reg.envs import make_env

CONF = Path(__file__).resolve().parents[2] / "recipes" / "conf"
#: recipe -> (module, overrides that pick its tanh-Gaussian policy)
RECIPES = {"sac": (sac, []), "mdac": (mdac, []), "virel": (virel, []), "iq": (iq, ["policy=gaussian"])}


def _floor(policy) -> tuple[float, float]:
    """The std the policy's last layer gives for a pre-activation of -1000 (the floor) and of 0 (1 by design)."""
    extractor = policy.module[0].module[-1]
    _, low = extractor(torch.tensor([[0.0, -1000.0]], dtype=torch.float64))
    _, zero = extractor(torch.tensor([[0.0, 0.0]], dtype=torch.float64))
    return low.item(), zero.item()


@pytest.mark.parametrize(
    "recipe,scale_lb", [("sac", 0.1), ("mdac", math.exp(-20)), ("virel", math.exp(-5)), ("iq", math.exp(-20))]
)
def test_the_std_floor_reaches_the_recipes_policy(recipe, scale_lb):
    module, overrides = RECIPES[recipe]
    cfg = module.validate(compose_config(CONF, recipe, [*overrides, "env=pendulum", f"policy.scale_lb={scale_lb!r}"]))
    assert cfg.policy.scale_lb == scale_lb
    env = make_env(cfg.env, num_envs=1, seed=0)
    try:
        policy, _ = module.from_config(cfg, env, torch.device("cpu"))
    finally:
        env.close()
    floor, at_zero = _floor(policy)
    # The floor is scale_lb itself, also below TorchRL's biased-softplus minimum of 0.01 (which once made any floor
    # under 0.01 a floor of 0.01), and a zero output keeps its std of 1.
    assert floor == pytest.approx(scale_lb, rel=1e-12) and at_zero == pytest.approx(1.0, rel=1e-6)  # a float32 bias


@pytest.mark.parametrize(
    "recipe,value", [*[(name, "0") for name in RECIPES], ("mdac", "1"), ("mdac", "-0.1"), ("mdac", "nan")]
)
def test_a_floor_outside_zero_one_is_refused(recipe, value):
    module, overrides = RECIPES[recipe]
    with pytest.raises(ValueError, match=r"policy.scale_lb must lie in \(0, 1\)"):
        module.validate(compose_config(CONF, recipe, [*overrides, f"policy.scale_lb={value}"]))


def test_iq_refuses_a_floor_for_its_multicategorical_policy():
    with pytest.raises(ValueError, match="policy.scale_lb=0.01 is not used by policy.kind='multicategorical'"):
        iq.validate(compose_config(CONF, "iq", ["policy.scale_lb=0.01"]))
