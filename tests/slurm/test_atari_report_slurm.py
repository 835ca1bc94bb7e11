"""The tiny Atari sweep of tests/report/test_report_atari_sweep.py (the Atari-100k spec cut to 2 games, dqn and m_dqn,
64 agent steps; here one seed, the local test runs two) submitted to the local SLURM cluster as a user submits it, then
reported in human-normalized scores: the same report, checked by the same function."""
from __future__ import annotations

import subprocess
import sys

import pytest
from tests.report.test_report_atari_sweep import SPEC, TINY_ATARI_SWEEP, check_atari_report
from tests.slurm.sweep_testlib import task_env

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
#: The local test's sweep on one seed: four array tasks.
ONE_SEED = ["seed=0" if arg == "seed=0,1" else arg for arg in TINY_ATARI_SWEEP]


def test_a_tiny_atari_sweep_on_the_local_slurm_cluster_reports_human_normalized_scores(slurm_cluster, tmp_path):
    """The spec's resources (mem_gb 16, time_min 120), less what the local one-node cluster cannot grant: a GPU (the
    node has none) and 4 cores (it has nproc)."""
    sweep_dir = tmp_path / "atari"
    done = subprocess.run(
        [sys.executable, "-m", "torchrl_reg.sweep", str(SPEC), *ONE_SEED, "--executor", "slurm",
         "--dir", str(sweep_dir), "--slurm.gpus_per_node=0", "--slurm.cpus_per_task=1", "--wait"],
        capture_output=True, text=True, env=task_env(), cwd=tmp_path, timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = subprocess.run(
        [sys.executable, "-m", "torchrl_reg.report", str(sweep_dir), "--metric", "final_eval_return", "--reps", "2000"],
        capture_output=True, text=True, env=task_env(), cwd=tmp_path, timeout=600,
    )
    assert report.returncode == 0, report.stdout + report.stderr
    check_atari_report(sweep_dir, report.stdout, seeds=1)
