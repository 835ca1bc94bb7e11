"""recipes/m_dqn.py: every config loads, smoke runs of every env preset and loss, resume, bad input."""
from __future__ import annotations

import json
import re
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException

from recipes import m_dqn
from tests.recipes.recipe_cases import loss_cases
from torchrl_reg.configs import compose_config, config_sources
from torchrl_reg.loops import offered_losses
from torchrl_reg.run import clear_stop, request_stop_at

CONF = Path(m_dqn.__file__).parent / "conf"
#: The recipe's env options (its env set's files) and the losses it registers, each with the option that selects it.
ENVS = config_sources(CONF, "m_dqn").groups["env"][1]
LOSSES = [overrides[0].removeprefix("loss=") for overrides in loss_cases("m_dqn").values()]

# A few hundred frames: 4 envs, 40 frames per batch, updates from frame 80 on.
SMALL = [
    "compile=false",
    "collector.total_frames=240",
    "collector.num_envs=4",
    "collector.frames_per_batch=40",
    "optim.learning_starts=80",
    "optim.frames_per_update=4",
    "optim.target_update_interval=40",
    "buffer.size=500",
    "buffer.batch_size=16",
    "buffer.storage=tensor",
    "exploration.annealing_frames=200",
    "eval.interval=120",
    "eval.episodes=2",
    "eval.max_steps=50",
    "checkpoint.interval=120",
    "logger.interval=80",
    "logger.progress_bar=false",
]


def compose(*overrides: str):
    return compose_config(CONF, "m_dqn", overrides)


@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize("loss", LOSSES)
def test_every_config_composes_and_validates(env, loss):
    cfg = m_dqn.validate(compose(f"env={env}", f"loss={loss}"))
    assert cfg.loss.name == loss
    if loss == "soft_dqn":
        assert cfg.loss.alpha == 0.0


@pytest.mark.parametrize("group, choices", [("buffer", ["uniform", "prioritized"]), ("logger", ["csv", "none"])])
def test_other_groups_compose(group, choices):
    for choice in choices:
        m_dqn.validate(compose(f"{group}={choice}"))


def test_the_loggers_that_write_by_path_or_are_absent_are_refused_with_the_config():
    """wandb writes from its own process by path (refused, naming what works instead); tensorboard validates where
    its package is installed, else is refused naming its extra."""
    import importlib.util

    with pytest.raises(ValueError, match=r"logger.backend='wandb' is refused: .*logger.backend=tensorboard"):
        m_dqn.validate(compose("logger=wandb"))
    if importlib.util.find_spec("tensorboard") is None:
        with pytest.raises(ValueError, match=r'install the tensorboard extra: pip install -e "\.\[tensorboard\]"'):
            m_dqn.validate(compose("logger=tensorboard"))
    else:
        m_dqn.validate(compose("logger=tensorboard"))


def test_presets_carry_their_published_hyperparameters():
    cartpole = compose()  # the default: M-DQN on CartPole-v1 with CleanRL's DQN schedule
    assert (cartpole.env.name, cartpole.loss.name) == ("CartPole-v1", "m_dqn")
    assert (cartpole.loss.alpha, cartpole.loss.tau, cartpole.loss.clip_value_min) == (0.9, 0.03, -1.0)
    assert (cartpole.collector.total_frames, cartpole.optim.lr, cartpole.buffer.size, cartpole.buffer.batch_size) == (
        500_480, 2.5e-4, 10_000, 128)  # CleanRL's 500k in whole batches of 1280
    assert (cartpole.optim.learning_starts, cartpole.optim.frames_per_update, cartpole.optim.target_update_interval) == (
        10_000, 10, 500)
    assert (cartpole.exploration.eps_end, cartpole.exploration.annealing_frames, cartpole.loss.loss_function) == (
        0.05, 250_000, "l2")
    assert list(cartpole.network.hidden) == [120, 84]
    assert compose("env=acrobot").env.name == "Acrobot-v1"
    minatar = compose("env=minatar")
    assert (minatar.env.sticky_action_prob, minatar.buffer.size, minatar.buffer.batch_size) == (0.1, 100_000, 32)
    assert (minatar.optim.frames_per_update, minatar.optim.target_update_interval, minatar.optim.learning_starts) == (4, 1000, 1000)
    assert (minatar.network.kind, minatar.loss.loss_function) == ("minatar_conv", "l2")
    atari = compose("env=atari")
    assert (atari.env.sticky_action_prob, atari.env.frame_skip, atari.env.frame_stack, atari.env.max_episode_steps) == (
        0.25, 4, 4, 27_000)
    assert (atari.optim.lr, atari.optim.eps, atari.buffer.size, atari.optim.learning_starts) == (5e-5, 3.125e-4, 1_000_000, 20_000)
    assert (atari.optim.target_update_interval, atari.exploration.eps_end, atari.eval.epsilon) == (8000, 0.01, 0.001)
    assert (atari.network.kind, atari.loss.loss_function, atari.env.reward_clip) == ("nature_cnn", "smooth_l1", 1.0)
    # A command-line override still wins over the preset.
    assert compose("optim.lr=1e-3").optim.lr == 1e-3


def _check_run_dir(run_dir: Path, metrics: dict) -> None:
    for name in ("config.yaml", "checkpoint.pt", "metrics.json", "learning_curve.png"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "csv" / "scalars" / "train" / "loss.csv").is_file()
    assert json.loads((run_dir / "metrics.json").read_text())["frames"] == metrics["frames"]
    assert metrics["status"] == "completed" and metrics["frames"] == 240
    assert metrics["updates"] == (240 - 80) // 4
    assert metrics["eval_frames"] == [120, 240]
    assert all(np.isfinite(metrics["eval_returns"]))


@pytest.mark.slow
@pytest.mark.parametrize("env", ENVS)
def test_smoke_every_env_preset(env, tmp_path):
    overrides = [f"env={env}", *SMALL, f"run_dir={tmp_path}"]
    if env == "minatar":
        overrides.append("env.name=Asterix")
    if env == "atari":
        overrides += ["collector.num_envs=2", "eval.episodes=1", "eval.max_steps=20"]
    metrics = m_dqn.train(compose(*overrides))
    _check_run_dir(tmp_path, metrics)


@pytest.mark.slow
@pytest.mark.parametrize("loss", LOSSES)
def test_smoke_every_loss(loss, tmp_path):
    metrics = m_dqn.train(compose(f"loss={loss}", *SMALL, f"run_dir={tmp_path}"))
    _check_run_dir(tmp_path, metrics)


@pytest.mark.slow
def test_smoke_prioritized_replay_and_compile(tmp_path):
    metrics = m_dqn.train(compose("buffer=prioritized", *SMALL, "compile=true", f"run_dir={tmp_path}"))
    _check_run_dir(tmp_path, metrics)


def _logs(run_dir: Path) -> dict[str, str]:
    root = run_dir / "csv" / "scalars"
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*.csv"))}


@pytest.mark.slow
def test_interrupted_and_resumed_run_reproduces_the_uninterrupted_run(tmp_path):
    overrides = [*SMALL, "collector.total_frames=400", "buffer=prioritized"]
    full = m_dqn.train(compose(*overrides, f"run_dir={tmp_path / 'full'}"))

    request_stop_at(150)
    part = m_dqn.train(compose(*overrides, f"run_dir={tmp_path / 'resumed'}"))
    assert part["status"] == "interrupted" and part["frames"] == 160
    resumed = m_dqn.train(compose(*overrides, f"run_dir={tmp_path / 'resumed'}"))
    assert resumed["status"] == "completed"
    for key in ("frames", "updates", "final_eval_return", "train_return_mean", "episodes", "eval_frames", "eval_returns"):
        assert resumed[key] == full[key], key
    assert _logs(tmp_path / "resumed") == _logs(tmp_path / "full")  # nothing logged twice


def test_stop_before_start_interrupts_at_first_batch(tmp_path):
    clear_stop()
    request_stop_at(0)
    metrics = m_dqn.train(compose(*SMALL, f"run_dir={tmp_path}"))
    assert metrics["status"] == "interrupted" and metrics["frames"] == 40
    assert (tmp_path / "checkpoint.pt").is_file()


@pytest.mark.parametrize(
    "override, message",
    [
        ("loss.alpha=1.5", r"loss.alpha must lie in \[0, 1\], got loss.alpha=1.5"),  # MunchausenDQNLoss's check
        ("loss.alpha=-0.1", r"loss.alpha must lie in \[0, 1\]"),
        ("loss.tau=0", r"loss.tau must be a finite number in \[0.0001, 10.0\], got loss.tau=0.0"),
        ("loss.tau=-1", r"loss.tau must be a finite number in \[0.0001, 10.0\]"),
        ("loss.clip_value_min=0.5", "loss.clip_value_min must be <= loss.clip_value_max, got loss.clip_value_min=0.5"),
        ("loss.gamma=1.2", r"loss.gamma must be a finite number in \[0.0, 1.0\]"),
        ("loss.name=c51", re.escape(f"loss.name must be one of {offered_losses('recipes.m_dqn', 'value_based')}, got loss.name='c51'")),
        ("loss.loss_function=huber", "loss.loss_function must be one of"),
        ("env.family=robotics", "env.family must be one of"),
        ("collector.num_envs=0", "collector.num_envs must be an integer >= 1, got collector.num_envs=0"),
    ],
)
def test_bad_values_are_refused_before_anything_is_built(override, message, tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(ValueError, match=message):
        m_dqn.train(compose(override, f"run_dir={run_dir}"))
    assert not run_dir.exists()


def test_unknown_keys_and_presets_are_refused(tmp_path):
    with pytest.raises(ConfigCompositionException, match="loss.temperature"):
        compose("loss.temperature=1")
    with pytest.raises(MissingConfigException, match="env/mountaincar"):
        compose("env=mountaincar")
    # the recipe's own loss group: an option it does not have is not found, and Hydra lists the ones it has
    with pytest.raises(MissingConfigException, match=r"(?s)loss/c51.*Available options in 'loss'.*m_dqn.*soft_dqn"):
        compose("loss=c51")
    with pytest.raises(ValueError, match=r"invalid config entry 'loss.temperature'.*Accepted keys.*'tau'"):
        m_dqn.train({"loss": {"temperature": 1.0}, "run_dir": str(tmp_path)})


def test_non_discrete_action_space_is_refused(tmp_path):
    with pytest.raises(ValueError, match="discrete action space"):
        m_dqn.train(compose("env.name=Pendulum-v1", *SMALL, f"run_dir={tmp_path}"))
    assert not (tmp_path / "checkpoint.pt").exists()


class NaNCartPole(gym.Wrapper):
    """CartPole with a NaN reward at step ``reward_at`` or a NaN in observation ``obs_at``: a broken
    env as a user may write one."""

    def __init__(self, reward_at=None, obs_at=None):
        super().__init__(gym.make("CartPole-v1"))
        self.t, self.reward_at, self.obs_at = 0, reward_at, obs_at

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.t += 1
        if self.t == self.obs_at:
            obs = obs.copy()
            obs[2] = float("nan")
        return obs, float("nan") if self.t == self.reward_at else reward, terminated, truncated, info


def test_non_finite_rewards_are_refused_before_any_update(tmp_path):
    if "NaNRewardCartPole-v0" not in gym.registry:
        gym.register("NaNRewardCartPole-v0", entry_point=NaNCartPole, kwargs={"reward_at": 5})
    with pytest.raises(ValueError, match=r"non-finite reward \(nan\) within frames 0-40; rewards must be finite"):
        m_dqn.train(compose("env.name=NaNRewardCartPole-v0", *SMALL, f"run_dir={tmp_path}"))
    assert not (tmp_path / "checkpoint.pt").exists()


@pytest.mark.parametrize("compile", ["false", "true"])
def test_a_non_finite_observation_is_refused_before_it_enters_the_buffer(tmp_path, compile):
    # The loop checks each collected batch once (loss.check_inputs); the fused compiled update,
    # told so, does not re-check every minibatch: the NaN must still stop the run, naming the key.
    if "NaNObservationCartPole-v0" not in gym.registry:
        gym.register("NaNObservationCartPole-v0", entry_point=NaNCartPole, kwargs={"obs_at": 150})  # after updates start
    overrides = [*SMALL, "collector.num_envs=1", "collector.total_frames=400", f"compile={compile}"]
    with pytest.raises(ValueError, match=r"'observation'\)? must be finite \(check_finite=True\); first bad entry"):
        m_dqn.train(compose("env.name=NaNObservationCartPole-v0", *overrides, f"run_dir={tmp_path}"))
