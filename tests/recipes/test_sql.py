"""Tests of recipes/sql.py: presets, early errors, smoke runs with the real env, exact resume."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from recipes import sql
from torchrl_reg.configs import compose_config
from torchrl_reg.loops import actor_critic
from torchrl_reg.run import load_checkpoint, request_stop_at

CONF = Path(__file__).resolve().parents[2] / "recipes" / "conf"


def _tiny(run_dir: Path, **extra: str) -> list[str]:
    """Overrides for a run of 240 frames (8 MultiGoal episodes) with small networks and few particles."""
    overrides = {
        "run_dir": str(run_dir),
        "collector.total_frames": "240",
        "collector.frames_per_batch": "30",
        "buffer.size": "1000",
        "buffer.batch_size": "16",
        "optim.learning_starts": "60",
        "network.hidden": "[16,16]",
        "loss.num_value_particles": "4",
        "loss.num_particles": "6",
        "eval.interval": "120",
        "eval.episodes": "2",
        "eval.max_steps": "30",
        "checkpoint.interval": "120",
        "logger.interval": "60",
        "logger.progress_bar": "false",
    }
    overrides.update(extra)
    return [f"{k}={v}" for k, v in overrides.items()]


@pytest.mark.parametrize(
    "env, expected",
    [
        ("multigoal", ("MultiGoal-v0", 0.1, 64, 32, [128, 128])),
        ("pendulum", ("Pendulum-v1", 1.0, 128, 16, [128, 128])),
        ("halfcheetah", ("HalfCheetah-v5", 30.0, 128, 16, [128, 128])),
        ("hopper", ("Hopper-v5", 30.0, 128, 16, [128, 128])),
    ],
)
def test_presets_compose_and_hold_the_reference_settings(env, expected):
    cfg = sql.validate(compose_config(CONF, "sql", [f"env={env}"]))
    name, reward_scale, batch, kernel_particles, hidden = expected
    assert cfg.env.name == name and cfg.loss.reward_scale == reward_scale
    assert cfg.buffer.batch_size == batch and cfg.loss.num_particles == kernel_particles
    assert cfg.network.hidden == hidden and cfg.optim.lr == 3e-4
    assert cfg.loss.num_value_particles == 16 and cfg.loss.tau == 1.0 and cfg.loss.fixed_ratio == 0.5
    # Two deliberate departures from the reference (recipes/conf/sql/loss/sql.yaml gives the evidence).
    assert cfg.loss.proposal == "mixture" and cfg.loss.space == "pre_tanh"
    # The reference copies the target critic every 1000 updates; it has no Pendulum run (Polyak there).
    hard = env != "pendulum"
    assert cfg.loss.target_update == ("hard" if hard else "polyak")
    assert cfg.loss.hard_update_interval == (1000 if hard else None)


def test_default_env_is_multigoal():
    assert sql.validate(compose_config(CONF, "sql", [])).env.name == "MultiGoal-v0"


@pytest.mark.parametrize(
    "override, match",
    [
        ("loss.tau=0", "loss.tau"),
        ("loss.tau=-1", "loss.tau"),
        ("loss.reward_scale=0", "loss.reward_scale"),
        ("loss.num_value_particles=1", "loss.num_value_particles must be an integer >= 2"),
        ("loss.num_particles=1", "loss.num_particles must be an integer >= 2"),
        ("loss.num_particles=2", r"loss.num_particles=2 with loss.fixed_ratio=0.5 gives 1 fixed and 1 updated particles: at least 2 fixed"),
        ("loss.fixed_ratio=1.0", "loss.fixed_ratio"),
        ("loss.fixed_ratio=0", "loss.fixed_ratio"),
        ("loss.uniform_weight=1.0", "loss.uniform_weight"),
        ("loss.proposal=gaussian", "loss.proposal"),
        ("loss.space=logit", "loss.space"),
        ("loss.tau_final=0", "loss.tau_final"),
        ("env.name=CartPole-v1", "Box"),
    ],
)
def test_bad_configs_fail_before_anything_is_written(tmp_path, override, match):
    key, value = override.split("=", 1)
    with pytest.raises(ValueError, match=match):
        sql.train(compose_config(CONF, "sql", _tiny(tmp_path, **{key: value})))
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"loss.target_update": "copy"}, r"loss.target_update must be one of \['polyak', 'hard'\], got loss.target_update='copy'"),
        ({"loss.target_update": "hard", "loss.hard_update_interval": "0"}, "loss.hard_update_interval must be an integer >= 1"),
        ({"loss.target_update": "hard", "loss.hard_update_interval": "null"}, "loss.target_update=hard needs loss.hard_update_interval"),
        ({"loss.target_update": "polyak", "loss.hard_update_interval": "100"}, "read only with loss.target_update=hard"),
        ({"loss.target_update": "polyak", "loss.polyak": "0"}, "loss.polyak"),
        # TemperatureSchedule's own check of its annealing_num_steps, named by the config's key
        ({"loss.tau_final": "0.5", "loss.tau_annealing_updates": "0"}, "loss.tau_annealing_updates must be an integer >= 1"),
    ],
)
def test_bad_target_updates_and_annealing_fail_before_anything_is_written(tmp_path, overrides, match):
    with pytest.raises(ValueError, match=match):
        sql.train(compose_config(CONF, "sql", _tiny(tmp_path, **overrides)))
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_hard_target_copy_after_updates_n_2n_only(tmp_path, monkeypatch):
    """With a copy every N = 40 updates, the target critic equals the online one right after updates
    40, 80, 120, 160 of the loop and differs after every other update (Adam moved the online one);
    no target tensor is ever an online tensor."""
    real = actor_critic.actor_critic_target_update
    seen = []

    def spy(loss_module, loss_cfg):
        target_update = real(loss_module, loss_cfg)
        online, target = loss_module.qvalue_network_params, loss_module.target_qvalue_network_params
        keys = list(online.keys(True, True))
        assert keys and sorted(keys, key=str) == sorted(target.keys(True, True), key=str)

        def step(updates):
            target_update(updates)
            pairs = [(online.get(k), target.get(k)) for k in keys]
            equal = all(torch.equal(o, t) for o, t in pairs)
            aliased = any(o.data_ptr() == t.data_ptr() for o, t in pairs)
            seen.append((updates, equal, aliased))

        return step

    monkeypatch.setattr(actor_critic, "actor_critic_target_update", spy)
    overrides = {"loss.target_update": "hard", "loss.hard_update_interval": "40"}
    metrics = sql.train(compose_config(CONF, "sql", _tiny(tmp_path, **overrides)))
    assert metrics["updates"] == 180 and [u for u, _, _ in seen] == list(range(1, 181))
    assert [u for u, equal, _ in seen if equal] == [40, 80, 120, 160]
    assert not any(aliased for _, _, aliased in seen)


@pytest.mark.slow
@pytest.mark.parametrize("extra", [{}, {"loss.proposal": "uniform", "loss.space": "squashed"}], ids=["default", "before"])
def test_smoke_on_multigoal(tmp_path, extra):
    metrics = sql.train(compose_config(CONF, "sql", _tiny(tmp_path, **extra)))
    for name in ("config.yaml", "metrics.json", "learning_curve.png", "checkpoint.pt"):
        assert (tmp_path / name).exists(), name
    assert json.loads((tmp_path / "metrics.json").read_text())["frames"] == 240
    assert metrics["status"] == "completed" and metrics["updates"] == 180 and metrics["policy"] == "svgd"
    assert metrics["eval_frames"] == [120, 240] and all(math.isfinite(r) for r in metrics["eval_returns"])
    logged = {p.stem for p in (tmp_path / "csv" / "scalars" / "train").glob("*.csv")}
    assert {"loss_qvalue", "loss_actor", "effective_sample_size", "bandwidth", "saturated_fraction"} <= logged
    diag = {p.stem for p in (tmp_path / "csv" / "scalars" / "diag").glob("*.csv")}
    expected = {f"{name}_{proposal}" for proposal in ("uniform", "mixture") for name in ("ess", "soft_value_bias")}
    assert expected <= diag and set(metrics["diagnostics"]) >= expected


@pytest.mark.slow
def test_temperature_annealing_reaches_both_losses(tmp_path):
    overrides = _tiny(tmp_path, **{"loss.tau_final": "0.25", "loss.tau_annealing_updates": "90"})
    metrics = sql.train(compose_config(CONF, "sql", overrides))
    assert metrics["final_tau"] == pytest.approx(0.25)  # 180 updates >= 90
    state = load_checkpoint(tmp_path / "checkpoint.pt")["loss_module"]
    assert state["critic._tau"].item() == pytest.approx(0.25) and state["actor._tau"].item() == pytest.approx(0.25)


@pytest.mark.slow
def test_smoke_on_pendulum(tmp_path):
    overrides = _tiny(tmp_path, env="pendulum", **{"eval.max_steps": "50"})
    metrics = sql.train(compose_config(CONF, "sql", overrides))
    assert metrics["status"] == "completed" and metrics["frames"] == 240


@pytest.mark.slow
def test_stopped_and_resumed_run_matches_the_uninterrupted_one(tmp_path):
    # Target copies after updates 50 (before the stop at update 90), 100 and 150 (after the resume).
    overrides = {"loss.tau_final": "0.5", "loss.tau_annealing_updates": "150", "loss.hard_update_interval": "50"}
    full = sql.train(compose_config(CONF, "sql", _tiny(tmp_path / "full", **overrides)))
    part = tmp_path / "part"
    request_stop_at(150)
    stopped = sql.train(compose_config(CONF, "sql", _tiny(part, **overrides)))
    assert stopped["status"] == "interrupted" and stopped["frames"] == 150
    resumed = sql.train(compose_config(CONF, "sql", _tiny(part, **overrides)))
    for key in ("frames", "updates", "episodes", "eval_frames", "eval_returns", "final_eval_return", "train_return_mean", "final_tau"):
        assert resumed[key] == full[key], key
    a = load_checkpoint(tmp_path / "full" / "checkpoint.pt")["loss_module"]
    b = load_checkpoint(part / "checkpoint.pt")["loss_module"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
