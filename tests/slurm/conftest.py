"""The local one-node SLURM cluster, started once per session by ``slurm/local_cluster.sh``."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from tests.slurm.sweep_testlib import CLUSTER_SCRIPT


@pytest.fixture(scope="session")
def slurm_cluster():
    """The local SLURM cluster, started for the session (skips only if it cannot start, saying why)."""
    if shutil.which("bash") is None:
        pytest.skip("local SLURM cluster: bash is not available")
    if os.geteuid() != 0:
        pytest.skip("local SLURM cluster: slurm/local_cluster.sh must run as root (it starts munged, slurmctld, slurmd)")
    was_up = subprocess.run([str(CLUSTER_SCRIPT), "status"], capture_output=True, text=True).returncode == 0
    if not was_up:
        start = subprocess.run([str(CLUSTER_SCRIPT), "start"], capture_output=True, text=True, timeout=900)
        if start.returncode != 0:
            pytest.skip(f"local SLURM cluster could not start: {(start.stderr or start.stdout).strip()[-2000:]}")
    yield
    if not was_up:
        subprocess.run([str(CLUSTER_SCRIPT), "stop"], capture_output=True, text=True, timeout=120)
