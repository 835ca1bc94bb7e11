"""``env.backend=vector`` (ale-py's C++ AtariVectorEnv set to Dopamine's protocol) against the per-env wrappers.

What should agree does (same seeds, same actions: rewards, terminations, truncations, every observation on Pong,
and a whole tiny M-DQN run on Pong, metric for metric); where ale-py cannot agree, the difference is bounded
and said (Breakout's resize rounding: 1 grey level; the observation that ends an episode). Bad input and
resuming a vector run are refused before any file is written.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from recipes import m_dqn
from tests.recipes.test_recorded_metrics import CASES
from torchrl_reg.configs import EnvConfig, compose_config
from torchrl_reg.envs import get_env_state, make_env, set_env_state
from torchrl_reg.envs.atari_vector import DopamineAtariVectorEnv
from torchrl_reg.run import EXIT_INTERRUPTED, EXIT_NOT_RESUMABLE, exit_if_interrupted, request_stop_at
from torchrl_reg.run.rundir import ResumeRefused, resume_changes

CONF = Path(__file__).resolve().parents[2] / "recipes" / "conf"
ATARI = EnvConfig(family="atari", name="Pong", sticky_action_prob=0.25, frame_skip=4, frame_stack=4, max_episode_steps=27000)


def _top_bit_clear(seed: int) -> bool:
    """Whether gymnasium's AtariEnv gives ALE a non-negative int32 seed for ``seed`` (the second word of
    numpy's SeedSequence): the seeds that AtariVectorEnv can take as they are."""
    return int(np.random.SeedSequence(seed).generate_state(2)[1]) < 2**31


# Seeds whose copies (seed + i) all have such emulator seeds: 15 for two copies, 203 for four.
assert all(map(_top_bit_clear, (15, 16))) and all(_top_bit_clear(203 + i) for i in range(4))


def _rollout(env_cfg: EnvConfig, steps: int, num_envs: int = 2, seed: int = 15):
    """``steps`` TorchRL steps of ``make_env`` with actions drawn from a fixed generator, finished envs reset."""
    env = make_env(env_cfg, num_envs=num_envs, seed=seed)
    actions = torch.Generator().manual_seed(0)
    n = env.action_spec_unbatched.n
    td, out = env.reset(), []
    for _ in range(steps):
        td["action"] = torch.randint(n, (num_envs,), generator=actions)
        td, td_next = env.step_and_maybe_reset(td)
        out.append(td.clone())
        td = td_next
    env.close()
    return torch.stack(out, 1)


def _both(steps: int, **env: object):
    wrappers = dataclasses.replace(ATARI, **env)
    return _rollout(wrappers, steps), _rollout(dataclasses.replace(wrappers, backend="vector"), steps)


def test_pong_agrees_exactly_until_an_episode_ends_at_the_time_limit():
    # 40-step episodes: each copy is truncated twice and reset by TorchRL (reset_mask) in 100 steps.
    a, b = _both(100, max_episode_steps=40)
    for key in ["observation", ("next", "reward"), ("next", "terminated"), ("next", "truncated")]:
        assert torch.equal(a[key], b[key]), key
    done = a["next", "done"].squeeze(-1)
    assert done.sum() == 4 and torch.equal(done.nonzero()[:, 1], torch.tensor([39, 79, 39, 79]))
    assert torch.equal(a["next", "observation"][~done], b["next", "observation"][~done])
    # The observation that ends an episode: ale-py stops the frame skip before pooling its last frame.
    assert not torch.equal(a["next", "observation"][done], b["next", "observation"][done])


def test_breakout_differs_by_the_resize_rounding_only():
    # Random play loses Breakout's 5 lives in ~130 steps: game overs and resets within 300 steps.
    a, b = _both(300, name="Breakout")
    for key in [("next", "reward"), ("next", "terminated"), ("next", "truncated")]:
        assert torch.equal(a[key], b[key]), key
    assert a["next", "terminated"].any() and a["next", "reward"].sum() > 0
    diff = (a["observation"].int() - b["observation"].int()).abs()
    assert diff.max() == 1 and (diff > 0).float().mean() < 1e-3  # OpenCV's INTER_AREA vs our area resize


def test_frame_stack_one_and_spec_match_the_wrappers():
    env_cfg = dataclasses.replace(ATARI, frame_stack=1)
    wrappers, vector = make_env(env_cfg, num_envs=2, seed=15), make_env(dataclasses.replace(env_cfg, backend="vector"), num_envs=2, seed=15)
    assert vector.observation_spec["observation"].shape == wrappers.observation_spec["observation"].shape == (2, 84, 84)
    assert vector.action_spec_unbatched == wrappers.action_spec_unbatched
    assert torch.equal(vector.reset()["observation"], wrappers.reset()["observation"])


def test_stepping_an_env_that_was_not_reset_is_refused():
    env = DopamineAtariVectorEnv("pong", 2, max_episode_steps=1, num_threads=1)
    env.reset(seed=15)
    _, _, terminated, truncated, _ = env.step(np.zeros(2, dtype=np.int64))
    assert truncated.all() and not terminated.any()
    with pytest.raises(RuntimeError, match=r"envs \[0, 1\] ended an episode and were not reset"):
        env.step(np.zeros(2, dtype=np.int64))  # ale-py would reset them instead of stepping
    env.reset(options={"reset_mask": np.array([True, False])})
    with pytest.raises(RuntimeError, match=r"envs \[1\] ended an episode"):
        env.step(np.zeros(2, dtype=np.int64))


def test_env_state_of_a_vector_env_is_refused_on_restore():
    vector = make_env(dataclasses.replace(ATARI, backend="vector"), num_envs=2, seed=15)
    state = get_env_state(vector)
    assert state == {"kind": "DopamineAtariVectorEnv"}  # no emulator state: ale-py cannot save one
    with pytest.raises(ValueError, match="cannot save or restore its emulators"):
        set_env_state(vector, state)
    with pytest.raises(ValueError, match="cannot save or restore its emulators"):
        set_env_state(make_env(ATARI, num_envs=2, seed=15), state)  # a wrappers run cannot take it either


_TINY = [o for o in CASES["m_dqn-atari-m_dqn"][1] if not o.startswith(("env.name", "env.max_episode_steps"))]


def _tiny(*overrides: str):
    # Pong never ends in 30 steps per copy; seed 203's four copies have emulator seeds both backends take.
    return compose_config(CONF, "m_dqn", [*_TINY, "env.name=Pong", "env.max_episode_steps=1000", "seed=203", *overrides])


@pytest.mark.slow
def test_a_tiny_m_dqn_run_on_the_vector_backend_trains_the_wrappers_numbers(tmp_path):
    # Collection, the frame-deduplicated replay (it rebuilds and compares every stored stack), updates,
    # evaluation (always on the wrappers) and checkpoints, on 4 envs: the same metrics as the wrappers.
    vector = m_dqn.train(_tiny("env.backend=vector", f"run_dir={tmp_path / 'vector'}"))
    wrappers = m_dqn.train(_tiny(f"run_dir={tmp_path / 'wrappers'}"))
    assert vector["status"] == "completed" and vector["frames"] == 120 and vector["updates"] > 0
    same = ("frames", "updates", "final_eval_return", "train_return_mean", "eval_returns", "loss")
    assert {k: vector[k] for k in same} == {k: wrappers[k] for k in same}
    assert (tmp_path / "vector" / "checkpoint.pt").is_file()


@pytest.mark.slow
def test_resuming_a_vector_run_is_refused_before_the_directory_is_touched(tmp_path):
    run_dir = tmp_path / "run"
    request_stop_at(80)
    stopped = m_dqn.train(_tiny("env.backend=vector", f"run_dir={run_dir}"))
    assert stopped["status"] == "interrupted" and stopped["resumable"] is False
    # Not 75 ("try again later"): a scheduler would rerun it, and the rerun is refused below.
    with pytest.raises(SystemExit) as exit_status:
        exit_if_interrupted(stopped)
    assert exit_status.value.code == EXIT_NOT_RESUMABLE != EXIT_INTERRUPTED
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    with pytest.raises(ResumeRefused, match="env.backend='vector' cannot resume it exactly"):
        m_dqn.train(_tiny("env.backend=vector", f"run_dir={run_dir}"))
    # Nor may a wrappers run take it over: the backend is part of what was trained.
    with pytest.raises(ResumeRefused, match=r"env.backend: 'vector' -> 'wrappers'"):
        m_dqn.train(_tiny(f"run_dir={run_dir}"))
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before


def test_a_run_directory_from_before_the_backend_key_resumes_as_wrappers():
    # A stored config without env.backend meant the wrappers (the only backend then).
    assert resume_changes({"env": {"name": "Pong"}}, {"env": {"name": "Pong", "backend": "wrappers"}}, m_dqn.MDQNConfig) == []
    assert resume_changes({"env": {}}, {"env": {"backend": "vector"}}, m_dqn.MDQNConfig) == ["env.backend: 'wrappers' -> 'vector'"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["env.backend=envpool"], r"env.backend must be one of \['wrappers', 'vector'\], got env.backend='envpool'"),
        (["env.family=minatar", "env.backend=vector"], "env.backend='vector' is ale-py's Atari vector env: it needs env.family='atari'"),
        (["env.backend=vector", "env.max_episode_steps=300000000"], r"env.max_episode_steps \* env.frame_skip must be <= 1073741824"),
    ],
)
def test_bad_backend_settings_are_refused_before_anything_is_written(overrides, message, tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(ValueError, match=message):
        m_dqn.train(_tiny(*overrides, f"run_dir={run_dir}"))
    assert not run_dir.exists()
