"""The GPU check's CPU dry run (``--device cpu --tiny``) runs every section, so the script
that is run first on a GPU never rots: one recipe's smoke run, the CUDA-graph option refused off CUDA (in a
recipe and in ``make_update``), an eager update timing, CartPole end to end, Atari collection and updates."""
from __future__ import annotations

import json

import pytest

from benchmarks import gpu_check


@pytest.mark.slow
def test_gpu_check_dry_run_on_cpu_writes_every_section(tmp_path):
    assert gpu_check.main(["--device", "cpu", "--tiny", "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "gpu_check_cpu_tiny.json").read_text())
    assert (tmp_path / "gpu_check_cpu_tiny.png").stat().st_size > 0
    assert record["device"].startswith("cpu") and record["tiny"] and record["failed"] == []
    by_name = {r["name"]: r for r in record["results"]}
    assert {r["section"] for r in record["results"]} == {"smoke", "update_cost", "e2e_cartpole", "atari_throughput"}
    assert by_name["m_dqn-cartpole-m_dqn"]["frames"] == 240  # the behaviour lock's budget
    assert "needs a CUDA device" in by_name["m_dqn-cartpole-cuda_graph"]["refused"]
    assert "must be on a CUDA device" in by_name["dqn_cartpole_mlp/graph"]["refused"]
    assert by_name["dqn_cartpole_mlp/eager"]["ms_per_update"] > 0
    assert by_name["m_iqn_breakout_with_updates"]["updates"] == 8  # 32 frames after learning starts, one per 4
    assert {by_name[n]["env_backend"] for n in ("m_iqn_breakout_collection", "m_iqn_breakout_with_updates")} == {"vector"}
    assert record["summary"] == [r["summary"] for r in record["results"]]
    assert all(line.startswith(f"[{r['section']}] {r['name']}: ") for line, r in zip(record["summary"], record["results"]))
