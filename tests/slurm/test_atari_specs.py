"""Sweep specs of the papers' Atari protocols (benchmarks/atari_*.yaml). Each names its
papers' games (all ALE v5 ids of the installed ale-py), and every method's tasks validate against its recipe
(planned on one game and seed: planning composes each task's config, ~700 of them for the 57-game list); a tiny
version of one runs on the local SLURM cluster with the spec's resources."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest
from tests.slurm.sweep_testlib import task_env

from torchrl_reg.sweep.spec import load_sweep_spec, plan_tasks
from torchrl_reg.sweep.task import read_sweep_file

REPO = Path(__file__).resolve().parents[2]
# spec -> (games, seeds, methods): the papers' game sets (Munchausen's quoted five, Atari-57, MIRL's Table 1,
# Atari-100k's 26) and the seeds and methods each spec declares.
SPECS = {
    "atari_munchausen.yaml": (5, 3, ["dqn", "m_dqn", "iqn", "m_iqn"]),  # a choice, not the registry's list: the spec's methods
    "atari_munchausen_57.yaml": (57, 3, ["dqn", "m_dqn", "iqn", "m_iqn"]),  # a choice, not the registry's list: the spec's methods
    "atari_mirl.yaml": (19, 3, ["dqn", "sql", "sql_m", "mirl"]),  # a choice, not the registry's list: the spec's methods
    "atari_100k.yaml": (26, 5, ["dqn", "m_dqn", "iqn", "m_iqn"]),  # a choice, not the registry's list: the spec's methods
}


def _games(methods) -> list[str]:
    names = {o.split("=", 1)[1] for m in methods for o in m.overrides if o.startswith("env.name=")}
    assert len(names) == 1, names  # the same games for every method
    return names.pop().split(",")


@pytest.mark.parametrize("name", sorted(SPECS))
def test_atari_specs_name_their_papers_games_and_validate(tmp_path, name):
    import ale_py

    gym.register_envs(ale_py)
    n_games, n_seeds, method_names = SPECS[name]
    methods = load_sweep_spec(REPO / "benchmarks" / name)
    assert [m.name for m in methods] == method_names
    games = _games(methods)
    assert len(games) == len(set(games)) == n_games
    for game in games:
        gym.spec(f"ALE/{game}-v5")  # raises for a name ALE does not know
    for method in load_sweep_spec(REPO / "benchmarks" / name, ["env.name=Pong"]):
        tasks, swept = plan_tasks(method.recipe, method.overrides, tmp_path / method.name)
        assert len(tasks) == n_seeds and swept == ["seed"]
        assert "env=atari" in tasks[0].overrides


def test_the_57_game_list_contains_the_five_quoted_games_and_mirls_19():
    five = _games(load_sweep_spec(REPO / "benchmarks" / "atari_munchausen.yaml"))
    all57 = set(_games(load_sweep_spec(REPO / "benchmarks" / "atari_munchausen_57.yaml")))
    assert set(five) <= all57
    assert set(_games(load_sweep_spec(REPO / "benchmarks" / "atari_mirl.yaml"))) <= all57
    assert set(_games(load_sweep_spec(REPO / "benchmarks" / "atari_100k.yaml"))) <= all57


# The Atari-100k spec cut to one game, one seed, 64 agent steps and small M-IQN quantile counts: seconds of training.
TINY_ATARI = ["--methods", "m_iqn", "env.name=Pong", "seed=0", "collector.total_frames=64", "optim.learning_starts=32",
              "buffer.size=1000", "eval.episodes=1", "eval.max_steps=100", "loss.num_quantiles=8",
              "loss.num_target_quantiles=8", "loss.num_policy_quantiles=4"]


@pytest.mark.slurm
@pytest.mark.slow
def test_a_tiny_atari_spec_runs_on_the_local_slurm_cluster_with_the_specs_resources(slurm_cluster, tmp_path):
    """benchmarks/atari_100k.yaml as a user submits it, its resources from the spec (mem_gb 16, time_min 120), less
    the two the local one-node cluster cannot grant: its GPU (the node has none) and 4 cores (it has nproc)."""
    sweep_dir = tmp_path / "atari_100k"
    done = subprocess.run(
        [sys.executable, "-m", "torchrl_reg.sweep", str(REPO / "benchmarks" / "atari_100k.yaml"), *TINY_ATARI,
         "--executor", "slurm", "--dir", str(sweep_dir), "--slurm.gpus_per_node=0", "--slurm.cpus_per_task=1", "--wait"],
        capture_output=True, text=True, env=task_env(), cwd=tmp_path, timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    sweep = read_sweep_file(sweep_dir / "m_iqn")
    (submission,) = sweep["submissions"]
    assert submission["resources"]["mem_gb"] == 16 and submission["resources"]["gpus_per_node"] == 0
    (script,) = (sweep_dir / "m_iqn" / "slurm").glob("*/*_submission.sh")
    lines = script.read_text().splitlines()
    for line in ["#SBATCH --mem=16384MB", "#SBATCH --time=120", "#SBATCH --cpus-per-task=1", "#SBATCH --requeue"]:
        assert line in lines, line
    assert not any("gpu" in line for line in lines if line.startswith("#SBATCH"))
    metrics = json.loads((Path(sweep["tasks"][0]["run_dir"]) / "metrics.json").read_text())
    assert (metrics["status"], metrics["env"], metrics["loss"], metrics["frames"]) == ("completed", "Pong", "m_iqn", 64)
    assert metrics["updates"] == (64 - 32) // 4  # one every 4 agent steps after learning_starts
