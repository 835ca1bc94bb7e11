"""Smoke runs of recipes/m_iqn.py on every preset (tiny budgets), resume, and bad input."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from recipes.m_iqn import train
from tests.recipes.recipe_cases import loss_cases
from torchrl_reg.configs import compose_config, config_sources

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "recipes" / "conf"

TINY = {
    "cartpole": ["collector.total_frames=256", "collector.num_envs=2", "collector.frames_per_batch=64",
                 "optim.learning_starts=64", "buffer.batch_size=16", "eval.episodes=1", "eval.max_steps=50"],
    "minatar": ["compile=false", "collector.total_frames=128", "collector.frames_per_batch=32", "optim.learning_starts=32",
                "buffer.size=500", "eval.episodes=1", "eval.max_steps=30"],
    "atari": ["collector.total_frames=48", "collector.num_envs=2", "collector.frames_per_batch=16",
              "optim.learning_starts=16", "buffer.size=200", "buffer.storage=tensor", "loss.num_quantiles=8",
              "loss.num_target_quantiles=8", "loss.num_policy_quantiles=4", "optim.target_update_interval=16",
              "eval.episodes=1", "eval.max_steps=20", "env.max_episode_steps=30"],
}


def _cfg(env: str, tmp_path: Path, *extra: str):
    overrides = [f"env={env}", f"run_dir={tmp_path / 'run'}", "logger.progress_bar=false", *TINY[env], *extra]
    return compose_config(CONF, "m_iqn", overrides)


@pytest.mark.slow
@pytest.mark.parametrize("env", config_sources(CONF, "m_iqn").groups["env"][1])
@pytest.mark.parametrize("loss", [overrides[0].removeprefix("loss=") for overrides in loss_cases("m_iqn").values()])
def test_smoke_every_preset(env, loss, tmp_path):
    metrics = train(_cfg(env, tmp_path, f"loss={loss}"))
    assert metrics["status"] == "completed"
    assert metrics["updates"] > 0
    run = tmp_path / "run"
    for name in ("config.yaml", "checkpoint.pt", "metrics.json", "learning_curve.png"):
        assert (run / name).exists(), name
    assert json.loads((run / "metrics.json").read_text())["frames"] == metrics["frames"]


def test_presets_carry_the_published_settings():
    atari = compose_config(CONF, "m_iqn", ["env=atari"])
    assert (atari.loss.num_quantiles, atari.loss.num_target_quantiles, atari.loss.num_policy_quantiles) == (64, 64, 32)
    assert (atari.optim.lr, atari.optim.eps, atari.buffer.batch_size, atari.buffer.size) == (5e-5, 3.125e-4, 32, 1_000_000)
    assert (atari.optim.learning_starts, atari.optim.frames_per_update, atari.optim.target_update_interval) == (20_000, 4, 8_000)
    assert atari.buffer.dedup_frames and atari.network.kind == "nature_cnn" and atari.eval.epsilon == 0.001
    minatar = compose_config(CONF, "m_iqn", ["env=minatar"])
    assert (minatar.loss.num_quantiles, minatar.loss.num_target_quantiles, minatar.loss.num_policy_quantiles) == (32, 32, 32)
    assert minatar.optim.lr == 1e-4 and minatar.env.sticky_action_prob == 0.1
    default = compose_config(CONF, "m_iqn")
    assert default.env.name == "CartPole-v1" and default.loss.name == "m_iqn"


def test_resume_continues_from_the_checkpoint(tmp_path):
    first = train(_cfg("cartpole", tmp_path, "collector.total_frames=256"))
    assert first["status"] == "completed" and first["frames"] == 256
    # same run directory, longer budget: the run picks up its checkpoint and goes on
    resumed = train(_cfg("cartpole", tmp_path, "collector.total_frames=512"))
    assert resumed["status"] == "completed" and resumed["frames"] == 512
    assert resumed["updates"] == (512 - 64) // 4


@pytest.mark.parametrize(
    "override, match",
    [
        ("loss.num_quantiles=0", "loss.num_quantiles"),
        ("loss.num_target_quantiles=0", "loss.num_target_quantiles"),
        ("loss.num_policy_quantiles=0", "loss.num_policy_quantiles"),
        ("loss.kappa=0", "loss.kappa"),
        ("loss.alpha=2", "loss.alpha"),
        ("loss.name=qr_dqn", "loss.name"),
        ("env.name=Pacman", "MinAtar game"),
    ],
)
def test_bad_input_fails_before_training(override, match, tmp_path):
    env = "minatar" if override.startswith("env.") else "cartpole"
    with pytest.raises(ValueError, match=match):
        train(_cfg(env, tmp_path, override))


def test_unknown_atari_game_lists_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match=r"valid games: \[.*'Breakout'.*'Pong'"):
        train(_cfg("atari", tmp_path, "env.name=Pongg"))


def test_bad_frame_size_for_the_nature_cnn(tmp_path):
    with pytest.raises(ValueError, match="36x36"):
        train(_cfg("atari", tmp_path, "env.screen_size=32"))
