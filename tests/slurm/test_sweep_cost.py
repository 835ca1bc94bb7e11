"""The dry run's cost estimate (torchrl_reg/sweep/cost.py): hours = agent steps / measured steps per second,
times the GPUs or cores measured on; each number names its JSON, and a recipe and env family without a
measurement get none."""
from __future__ import annotations

import json

import pytest
from tests.slurm.sweep_testlib import REPO

from torchrl_reg.sweep.__main__ import main
from torchrl_reg.sweep.cost import cost_summary, estimate_cost, load_throughput
from torchrl_reg.sweep.spec import SweepError, Task


def _task(index: int, family: str, steps: int, frame_skip: int | None = None) -> Task:
    env = {"family": family, **({"frame_skip": frame_skip} if frame_skip else {})}
    return Task(index, f"{index:03d}", (), "/runs/x", {"env": env, "collector": {"total_frames": steps}})


@pytest.fixture
def table(tmp_path):
    # A run of 1,400 steps at 400 steps/s overall whose first 1,000 ran at 500 steps/s without updates:
    # 3.5 s - 2 s = 1.5 s for the 400 steps with updates, 266.67 steps/s.
    (tmp_path / "m.json").write_text(json.dumps({
        "results": [{"name": "learn", "steps_per_s": 400.0, "frames": 1400}, {"name": "collect", "env_steps_per_s": 500.0}],
        "cpu": {"steps_per_s": 2.0},
    }))
    path = tmp_path / "throughput.yaml"
    path.write_text(
        "- {recipe: m_iqn, env: atari, device: GPU, units: 1, json: m.json, steps_per_s: results.learn.steps_per_s,\n"
        "   frames: results.learn.frames, without_updates: {steps: 1000, steps_per_s: results.collect.env_steps_per_s},\n"
        "   measured: a GPU run}\n"
        "- {recipe: m_iqn, env: atari, device: CPU, units: 2, json: m.json, steps_per_s: cpu.steps_per_s, measured: two cores}\n"
    )
    return path


def test_hours_are_agent_steps_over_the_measured_rate(table):
    gpu, cpu = load_throughput(table)
    assert gpu.steps_per_s == pytest.approx(800 / 3) and cpu.steps_per_s == 2.0
    # 960,000 agent steps (3,840,000 frames at skip 4): 3,600 s on one GPU; 480,000 s on two cores = 266.7 core-hours.
    estimate = estimate_cost("m_iqn", [_task(0, "atari", 960_000, 4), _task(1, "atari", 480_000, 4)], table)
    (first, hours_gpu), (_, hours_cpu) = estimate.tasks[0].hours
    assert (first.device, hours_gpu, hours_cpu) == ("GPU", pytest.approx(1.0), pytest.approx(800 / 3))
    assert str(estimate.tasks[0]) == "960,000 agent steps = 3,840,000 frames at frame skip 4: GPU 1 GPU-hours; CPU 267 core-hours"
    assert estimate.total("GPU") == pytest.approx(1.5) and estimate.total("CPU") == pytest.approx(400)


def test_a_recipe_or_env_without_a_measurement_gets_no_number(table):
    unmeasured = estimate_cost("m_dqn", [_task(0, "atari", 1000, 4)], table)
    assert str(unmeasured.tasks[0]) == ("1,000 agent steps = 4,000 frames at frame skip 4: no estimate: throughput.yaml "
                                        "has no measured throughput of m_dqn on atari")
    assert str(estimate_cost("m_iqn", [_task(0, "minatar", 1000)], table).tasks[0]).endswith("of m_iqn on minatar")
    assert str(estimate_cost("m_iqn", [_task(0, "atari", 1000, 4)], None).tasks[0]).endswith(
        "no estimate: the spec names no throughput table")
    summary = cost_summary([("m_iqn", estimate_cost("m_iqn", [_task(0, "atari", 960_000, 4)], table)), ("m_dqn", unmeasured)])
    assert "  total GPU: 1 GPU-hours (without m_dqn: not measured)" in summary.splitlines()
    assert f"m_iqn: 1 tasks, 1 GPU-hours at GPU 267 steps/s on 1 GPU (a GPU run; {table.parent / 'm.json'})" in summary


@pytest.mark.parametrize(
    "entry, message",
    [
        ("device: TPU", "device='TPU', accepted: GPU, CPU"),
        ("units: 0", "units=0 must be an integer >= 1"),
        ("json: nope.json", "json='nope.json': .*does not exist"),
        ("steps_per_s: results.fast.steps_per_s", "'results.fast.steps_per_s' names nothing in the JSON \\(no 'fast'\\)"),
        ("steps_per_s: results", "'results' is \\[.*\\], not a positive number"),
        ("speed: 3", "unknown keys \\['speed'\\]"),
        ("frames: 900, without_updates: {steps: 1000, steps_per_s: cpu.steps_per_s}",
         "without_updates.steps=1000 must be an integer in \\[0, frames=900\\)"),
    ],
)
def test_bad_tables_are_refused_naming_the_entry(tmp_path, table, entry, message):
    key = entry.split(":")[0]
    base = {"recipe": "m_iqn", "env": "atari", "device": "CPU", "units": 1, "json": "m.json",
            "steps_per_s": "cpu.steps_per_s", "measured": "x"}
    fields = ", ".join(f"{k}: {v}" for k, v in base.items() if k != key)
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"- {{{fields}, {entry}}}\n")
    with pytest.raises(SweepError, match=f"bad.yaml entry 0: {message}"):
        load_throughput(bad)


def test_dry_run_of_the_munchausen_spec_estimates_from_the_committed_gpu_and_cpu_numbers(tmp_path, capsys):
    """benchmarks/throughput.yaml on the committed JSONs, by hand: GPU (H200) 1,408 steps at 402.84 steps/s of which
    the first 1,000 without updates at 588.20 steps/s -> 408 / (3.4952 s - 1.7001 s) = 227.29 steps/s with updates,
    so 50M agent steps (200M frames) = 61.1 GPU-hours; CPU 100 / (1,100 / 2.9103 - 1,000 / 9.0853) = 0.3733 steps/s."""
    spec = REPO / "benchmarks" / "atari_munchausen.yaml"
    assert main([str(spec), "env.name=Pong", "seed=0", "--dry-run", "--dir", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    m_iqn = next(line for line in lines if line.startswith("m_iqn/"))
    assert m_iqn.endswith("[50,000,000 agent steps = 200,000,000 frames at frame skip 4: GPU 61.1 GPU-hours; "
                          "CPU 37,209 core-hours]")
    assert lines[0].endswith("no estimate: throughput.yaml has no measured throughput of m_dqn on atari]")
    assert ("  iqn: 1 tasks, 61.1 GPU-hours at GPU 227 steps/s on 1 GPU (M-IQN Breakout, 4 envs, eager, NVIDIA H200, "
            f"torch 2.11; {REPO / 'benchmarks' / 'results' / 'gpu' / 'gpu_check_cuda.json'})") in lines
    assert "  total GPU: 122 GPU-hours (without dqn, m_dqn: not measured)" in lines
    assert "  total CPU: 74,418 core-hours (without dqn, m_dqn: not measured)" in lines
    assert "SLURM resources per task: cpus_per_task=8 gpus_per_node=1 mem_gb=32.0 time_min=1440" in out
    assert lines[-1] == "4 valid tasks (swept: nothing); dry run, nothing submitted"
    assert not (tmp_path / "s").exists()


def test_dry_run_of_the_planning_recipe_lists_its_tasks_without_an_estimate(tmp_path, capsys):
    """recipes/tree_search.py has no collector: its tasks play episodes, and the dry run says it has no number for them."""
    assert main([str(REPO / "recipes" / "tree_search.py"), "seed=0,1", "--dry-run", "--dir", str(tmp_path / "s")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("000_seed=0: seed=0  [no estimate: tree_search collects no frames (a planning run plays episodes); "
                        "the throughput tables measure collector frames]")
    assert lines[-1] == "2 valid tasks (swept: seed); dry run, nothing submitted"
    assert not (tmp_path / "s").exists()
