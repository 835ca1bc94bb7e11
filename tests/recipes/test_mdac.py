"""Tests of recipes/mdac.py: presets, early errors, smoke runs with the real envs, exact resume."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from recipes import mdac, sac
from tests.recipes.test_iq_recipe import _tiny
from torchrl_reg.configs import compose_config
from torchrl_reg.objectives import MDACLoss
from torchrl_reg.objectives.mdac import resolve_bounds
from torchrl_reg.run import load_checkpoint, request_stop_at

CONF = Path(__file__).resolve().parents[2] / "recipes" / "conf"


#: Each loss preset: (current term's bound, successor term's bound).
PRESETS = {
    "mdac": ("tanh", "tanh"),
    "mdac_unbounded": ("none", "none"),
    "mdac_bound_current_only": ("tanh", "none"),
    "mdac_bound_successor_only": ("none", "tanh"),
}


@pytest.mark.parametrize("env", ["halfcheetah", "hopper", "walker2d", "ant", "humanoid", "pendulum"])
@pytest.mark.parametrize("loss", list(PRESETS))
def test_presets_compose_and_share_sac_budget(env, loss):
    cfg = mdac.validate(compose_config(CONF, "mdac", [f"env={env}", f"loss={loss}"]))
    sac_cfg = sac.validate(compose_config(CONF, "sac", [f"env={env}"]))
    for key in ("collector", "buffer", "optim", "network", "eval"):
        assert cfg[key] == sac_cfg[key], key
    assert cfg.loss.gamma == sac_cfg.loss.gamma and cfg.loss.polyak == sac_cfg.loss.polyak
    assert cfg.loss.beta == 0.9 and cfg.loss.alpha_init == 1.0 and not cfg.loss.fixed_alpha
    assert cfg.loss.target_entropy is None  # -dim(A)
    assert cfg.loss.bound == ("none" if loss == "mdac_unbounded" else "tanh") and cfg.loss.bound_scale == 10.0
    assert mdac.method_name(cfg.loss) == loss
    assert cfg.policy.scale_lb == sac_cfg.policy.scale_lb == 0.1
    f_c, f_s = PRESETS[loss]
    assert resolve_bounds(cfg.loss) == {"current": (f_c, None if f_c == "none" else 10.0), "successor": (f_s, None if f_s == "none" else 10.0)}


def test_loss_config_defaults_are_the_loss_class_defaults():
    cfg = mdac.validate(compose_config(CONF, "mdac", []))
    for name in (
        "beta", "bound", "bound_scale", "bound_current", "bound_current_scale", "bound_successor", "bound_successor_scale",
        "alpha_init", "fixed_alpha", "num_qvalue_nets", "loss_function",
    ):
        assert cfg.loss[name] == MDACLoss.__init__.__kwdefaults__[name], name


@pytest.mark.parametrize(
    "override, match",
    [
        ("loss.beta=1.0", "loss.beta"),
        ("loss.beta=-0.1", "loss.beta"),
        ("loss.bound=sigmoid", "loss.bound"),
        ("loss.bound_scale=0", "loss.bound_scale"),
        ("loss.bound_current=sigmoid", "loss.bound_current must be one of"),
        ("loss.bound_successor_scale=-1", "loss.bound_successor_scale must be a finite number > 0"),
        ("policy.scale_lb=0", r"policy.scale_lb must lie in \(0, 1\)"),
        ("loss.alpha_init=0", "loss.alpha_init"),
        ("loss.num_qvalue_nets=3", "loss.num_qvalue_nets"),
        ("loss.loss_function=huber", "loss.loss_function"),
        ("loss.target_entropy=nan", "loss.target_entropy"),
        ("env.name=CartPole-v1", "Box"),
    ],
)
def test_bad_configs_fail_before_anything_is_written(tmp_path, override, match):
    key, value = override.split("=", 1)
    with pytest.raises(ValueError, match=match):
        mdac.train(compose_config(CONF, "mdac", _tiny(tmp_path, env="pendulum", **{key: value})))
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "overrides, match",
    [
        (["loss=mdac_unbounded", "loss.bound_scale=3"], "loss.bound_scale=3.0 is not used by loss.bound='none'"),
        (["loss=mdac_bound_successor_only", "loss.bound_current_scale=3"],
         "loss.bound_current_scale=3.0 is not used by loss.bound_current='none'"),
        (["loss.bound_current_scale=2", "loss.bound_successor_scale=3", "loss.bound_scale=5"],
         "loss.bound_scale=5.0 is not used by loss.bound_current_scale=2.0, loss.bound_successor_scale=3.0"),
        (["loss.fixed_alpha=true", "loss.target_entropy=-1"], "loss.target_entropy=-1.0 is not used by loss.fixed_alpha=True"),
    ],
)
def test_keys_the_setting_ignores_are_refused(tmp_path, overrides, match):
    with pytest.raises(ValueError, match=match):
        mdac.train(compose_config(CONF, "mdac", [*_tiny(tmp_path, env="pendulum"), *overrides]))
    assert not any(tmp_path.iterdir())


def test_another_recipes_loss_is_refused():
    with pytest.raises(Exception, match="m_iq"):
        compose_config(CONF, "mdac", ["loss=m_iq"])


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["mdac", "mdac_unbounded", "mdac_bound_current_only"])  # a choice, not the registry's list: the paper's method and two ablations
def test_smoke_on_pendulum(tmp_path, loss):
    extra = {"policy.scale_lb": "2.061153622438558e-09"} if loss == "mdac_bound_current_only" else {}  # ln sigma >= -20
    metrics = mdac.train(compose_config(CONF, "mdac", _tiny(tmp_path, env="pendulum", loss=loss, **extra)))
    for name in ("config.yaml", "metrics.json", "learning_curve.png", "checkpoint.pt"):
        assert (tmp_path / name).exists(), name
    assert json.loads((tmp_path / "metrics.json").read_text())["frames"] == 300
    assert metrics["status"] == "completed" and metrics["updates"] == 200 and metrics["loss"] == loss
    assert metrics["eval_frames"] == [150, 300] and all(math.isfinite(r) for r in metrics["eval_returns"])
    logged = {p.stem for p in (tmp_path / "csv" / "scalars" / "train").glob("*.csv")}
    assert {"loss_qvalue", "loss_actor", "loss_alpha", "alpha", "clip_fraction", "scaled_log_pi_min", "scaled_log_pi_max"} <= logged


@pytest.mark.slow
def test_smoke_on_hopper(tmp_path):
    metrics = mdac.train(compose_config(CONF, "mdac", _tiny(tmp_path, env="hopper")))
    assert metrics["status"] == "completed" and metrics["env"] == "Hopper-v5"


@pytest.mark.slow
def test_stopped_and_resumed_run_matches_the_uninterrupted_one(tmp_path):
    full = mdac.train(compose_config(CONF, "mdac", _tiny(tmp_path / "full", env="pendulum")))
    part = tmp_path / "part"
    request_stop_at(200)
    stopped = mdac.train(compose_config(CONF, "mdac", _tiny(part, env="pendulum")))
    assert stopped["status"] == "interrupted" and stopped["frames"] == 200
    resumed = mdac.train(compose_config(CONF, "mdac", _tiny(part, env="pendulum")))
    for key in ("frames", "updates", "episodes", "eval_frames", "eval_returns", "final_eval_return", "train_return_mean"):
        assert resumed[key] == full[key], key
    a = load_checkpoint(tmp_path / "full" / "checkpoint.pt")["loss_module"]
    b = load_checkpoint(part / "checkpoint.pt")["loss_module"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert "log_alpha" in a
