"""The GPU speed script's CPU dry run (``--device cpu --tiny``): both sections run and record a rate, so the
script prepared for a GPU machine never rots. Its side-by-side with LeanRL needs LeanRL's script, which is not
part of this repository (``--leanrl PATH`` on the GPU machine)."""
from __future__ import annotations

import json

import pytest

from benchmarks import gpu_speed


@pytest.mark.slow
def test_gpu_speed_dry_run_on_cpu_times_every_section(tmp_path):
    assert gpu_speed.main(["--device", "cpu", "--tiny", "--atari-envs", "2", "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "gpu_speed_cpu_tiny.json").read_text())
    assert (tmp_path / "gpu_speed_cpu_tiny.png").stat().st_size > 0
    by_name = {r["name"]: r for r in record["results"]}
    assert set(by_name) == {"sac (eager)", "sac stages (eager)", "m_dqn (2 envs, eager)", "m_iqn stages"}  # each path once
    for name in ("sac (eager)", "m_dqn (2 envs, eager)"):
        r = by_name[name]
        assert r["status"] == "ok" and r["steps"] == 100 and r["warmup_steps"] == 200
        assert r["seconds_long"] > 0 and r["steps_per_s"] == pytest.approx(100 / (r["seconds_long"] - r["seconds_short"]))
    stages = by_name["m_iqn stages"]
    assert set(stages["ms_per_agent_step"]) == {"emulator", "policy_forward", "replay_sample", "update"}
    assert stages["bound"] in stages["ms_per_agent_step"]
    stages = by_name["sac stages (eager)"]
    assert set(stages["ms_per_agent_step"]) == {"env_step", "host_device_copies", "policy_forward", "replay_sample", "update"}
    assert stages["bound"] == max(stages["ms_per_agent_step"], key=stages["ms_per_agent_step"].get)
    assert stages["steps_per_s_bound"] == pytest.approx(1e3 / sum(stages["ms_per_agent_step"].values()))


def test_the_side_by_side_refuses_a_warmup_that_would_time_leanrls_random_steps(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        gpu_speed.main(["--leanrl", str(tmp_path / "sac.py"), "--warmup", "5000", "--out", str(tmp_path)])
    assert info.value.code == 2
    assert "--warmup 5000" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # refused before anything is written


def test_the_outside_program_finds_its_own_packages_first(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/ours")
    env = gpu_speed._outside_environment("/theirs:/more")
    assert env["PYTHONPATH"].split(":") == ["/theirs", "/more", "/ours"] and env["WANDB_MODE"] == "disabled"
    monkeypatch.delenv("PYTHONPATH")
    assert gpu_speed._outside_environment("/theirs")["PYTHONPATH"] == "/theirs"
    assert "PYTHONPATH" not in gpu_speed._outside_environment(None)


def test_the_gpu_job_carries_the_versions_this_project_pins():
    """benchmarks/gpu_job.sh carries torchrl and tensordict to the GPU machine: the versions pyproject pins."""
    import re
    import tomllib
    from pathlib import Path

    from packaging.requirements import Requirement

    root = Path(gpu_speed.__file__).resolve().parents[1]
    ours = re.search(r"^OURS=\((.*?)\)", (root / "benchmarks" / "gpu_job.sh").read_text(), re.S | re.M).group(1).split()
    carried = dict(pin.split("==") for pin in ours)
    for dependency in tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]:
        requirement = Requirement(dependency)
        if requirement.name in ("torchrl", "tensordict"):
            assert requirement.specifier.contains(carried[requirement.name]), (requirement, carried[requirement.name])


def test_the_gpu_job_script_parses_and_refuses_a_missing_argument(tmp_path):
    import subprocess
    from pathlib import Path

    script = Path(gpu_speed.__file__).resolve().parent / "gpu_job.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    done = subprocess.run(["bash", str(script), "prepare", str(tmp_path / "missing.py")], cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 2 and "no file at" in done.stderr and not list(tmp_path.iterdir())
    assert subprocess.run(["bash", str(script)], capture_output=True).returncode == 2
    done = subprocess.run(["bash", str(script), "run", str(tmp_path / "out"), "60", "atari", "halfcheeta"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 2 and "unknown part halfcheeta" in done.stderr and not list(tmp_path.iterdir())


def test_the_outside_programs_memory_is_the_peak_in_use_above_the_start(monkeypatch):
    """The reading is the driver's (every process); here a program that takes 300 MiB, then 500, then gives it back."""
    import time

    import torch

    mib, used = 2**20, [100, 100, 400, 600, 600, 200]  # MiB in use, one per read; then 100 for every later read
    reads = []

    def mem_get_info(device):
        reads.append(used[len(reads)] if len(reads) < len(used) else 100)
        return 10_000 * mib - reads[-1] * mib, 10_000 * mib

    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)
    with gpu_speed._DeviceMemory("cuda:0") as memory:
        deadline = time.monotonic() + 120
        while len(reads) <= len(used) and time.monotonic() < deadline:  # however slowly the thread is scheduled
            time.sleep(0.05)
    assert memory.peak_mib == 500
    with gpu_speed._DeviceMemory("cpu") as memory:
        pass
    assert memory.peak_mib is None
