"""Tests of recipes/virel.py: presets, early errors, smoke runs, the replay temperature, NaN stops."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from recipes import virel
from tests.recipes.test_iq_recipe import _tiny as _iq_tiny
from torchrl_reg.objectives import VIRELLoss
from torchrl_reg.recipe_utils import compose_config

CONF = Path(__file__).resolve().parents[2] / "recipes" / "conf"


def _tiny(run_dir: Path, **extra: str) -> list[str]:
    """The IQ/SAC tests' tiny run (300 frames, small networks) with a 200-transition temperature batch."""
    return _iq_tiny(run_dir, **{"loss.temperature_batch_size": "200", **extra})


def test_default_is_pendulum_practical_with_the_shared_pendulum_budget():
    cfg = virel.validate(compose_config(CONF, "virel"))
    assert cfg.env.name == "Pendulum-v1" and cfg.collector.total_frames == 20_000
    assert (cfg.loss.variant, cfg.loss.temperature_estimator, cfg.loss.temperature_batch_size) == ("practical", "replay", 4096)
    assert (cfg.loss.c, cfg.loss.p, cfg.loss.num_qvalue_nets) == (0.008, 2, 2)
    assert cfg.network.hidden == [64, 64] and cfg.buffer.batch_size == 128


@pytest.mark.parametrize("env, name", [("halfcheetah", "HalfCheetah-v5"), ("hopper", "Hopper-v5")])
def test_mujoco_presets_hold_the_official_settings(env, name):
    cfg = virel.validate(compose_config(CONF, "virel", [f"env={env}"]))
    assert cfg.env.name == name and cfg.network.hidden == [300, 300] and cfg.buffer.batch_size == 128
    assert cfg.optim.lr == 3e-4 and cfg.loss.polyak == 1e-3 and cfg.loss.gamma == 0.99
    assert cfg.loss.c == 0.008 and cfg.loss.p == 2  # beta_scale 4e-3 times MSE = (c / p) mean delta^2


def test_em_loss_preset():
    assert virel.validate(compose_config(CONF, "virel", ["loss=virel_em"])).loss.variant == "em"


@pytest.mark.parametrize(
    "override, match",
    [
        ("loss.c=0", "loss.c must be a finite number > 0"),
        ("loss.c=-1", "loss.c must be a finite number > 0"),
        ("loss.p=3", "loss.p must be 1 or 2"),
        ("loss.variant=sac", "loss.variant"),
        ("loss.temperature_estimator=exact", "loss.temperature_estimator must be one of"),
        ("loss.temperature_batch_size=2000", "temperature_batch_size=2000 is larger than the replay buffer"),
        ("loss.temperature_batch_size=0", "loss.temperature_batch_size"),
        ("loss.num_qvalue_nets=3", "loss.num_qvalue_nets"),
        ("env.name=CartPole-v1", "Box"),
    ],
)
def test_bad_configs_fail_before_anything_is_written(tmp_path, override, match):
    key, value = override.split("=", 1)
    run_dir = tmp_path / "run"
    with pytest.raises(ValueError, match=match):
        virel.train(compose_config(CONF, "virel", _tiny(run_dir, **{key: value})))
    assert not run_dir.exists() or not any(run_dir.iterdir())


@pytest.mark.parametrize(
    "loss, estimator", [("virel", "replay"), ("virel_em", "replay"), ("virel", "ema"), ("virel_em", "batch")]
)
def test_smoke_on_pendulum(tmp_path, loss, estimator):
    metrics = virel.train(
        compose_config(CONF, "virel", _tiny(tmp_path, loss=loss, **{"loss.temperature_estimator": estimator}))
    )
    assert metrics["status"] == "completed" and metrics["frames"] == 300 and metrics["updates"] == 200
    assert metrics["loss"] == f"virel_{'em' if loss == 'virel_em' else 'practical'}"
    assert all(map(torch.isfinite, torch.tensor(metrics["eval_returns"])))
    for name in ("config.yaml", "metrics.json", "checkpoint.pt"):
        assert (tmp_path / name).exists()
    train_csv = tmp_path / "csv" / "scalars" / "train"
    assert {"loss_actor", "loss_qvalue", "temperature", "entropy", "td_error"} <= {p.stem for p in train_csv.glob("*.csv")}
    if estimator == "replay":
        # The buffer held 200 transitions from frame 200 on: the temperature left its initial 1.
        assert metrics["final_temperature"] != 1.0 and metrics["final_temperature"] > 0
        assert json.loads((tmp_path / "metrics.json").read_text())["final_temperature"] == metrics["final_temperature"]


@pytest.mark.slow
def test_smoke_on_hopper_official_preset(tmp_path):
    metrics = virel.train(compose_config(CONF, "virel", _tiny(tmp_path, env="hopper")))
    assert metrics["status"] == "completed" and metrics["frames"] == 300


def test_nan_bellman_errors_stop_the_run_before_a_checkpoint(tmp_path, monkeypatch):
    """Critics turned NaN after the first temperature estimates: the next estimate raises, before the
    update that would use it and before the first checkpoint (frame 150... here set past the end)."""
    calls = {"n": 0}
    original = VIRELLoss.update_temperature

    def poisoned(self, tensordict):
        calls["n"] += 1
        if calls["n"] == 3:
            with torch.no_grad():
                for value in self.qvalue_network_params.values(True, True):
                    value.fill_(float("nan"))
        return original(self, tensordict)

    monkeypatch.setattr(VIRELLoss, "update_temperature", poisoned)
    cfg = compose_config(CONF, "virel", _tiny(tmp_path, **{"checkpoint.interval": "250"}))
    with pytest.raises(ValueError, match="NaN or infinite Bellman errors"):
        virel.train(cfg)
    assert calls["n"] == 3
    assert not (tmp_path / "checkpoint.pt").exists() and not (tmp_path / "metrics.json").exists()
