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
    assert set(by_name) == {"sac (eager)", "m_dqn (2 envs, eager)", "m_iqn stages"}  # each code path once
    for name in ("sac (eager)", "m_dqn (2 envs, eager)"):
        r = by_name[name]
        assert r["status"] == "ok" and r["steps"] == 100 and r["warmup_steps"] == 200
        assert r["seconds_long"] > 0 and r["steps_per_s"] == pytest.approx(100 / (r["seconds_long"] - r["seconds_short"]))
    stages = by_name["m_iqn stages"]
    assert set(stages["ms_per_agent_step"]) == {"emulator", "policy_forward", "update"}
    assert stages["bound"] in stages["ms_per_agent_step"]
