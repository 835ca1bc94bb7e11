"""torchrl_reg.run.Run: the run-directory contract around a loop of any unit, here a counter that draws one number per
step from the seeded global RNG (no env, no collector), so that a resume that lost a state or an RNG shows."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from torchrl_reg.configs import RunConfig, structured
from torchrl_reg.run import Run, clear_stop, load_checkpoint, request_stop_at
from torchrl_reg.run.rundir import LOCK_NAME, ResumeRefused


class Draws:
    """A RunState: the numbers drawn so far, one per step."""

    def __init__(self) -> None:
        self.values: list[float] = []

    @property
    def step(self) -> int:
        return len(self.values)

    def progress(self) -> dict[str, Any]:
        return {"frames": len(self.values)}

    def state_dict(self) -> dict[str, Any]:
        return {"values": self.values}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.values = list(state["values"])


def _config(run_dir: Path, **values: Any):
    return structured({"run_dir": str(run_dir), "logger": {"progress_bar": False}, **values}, RunConfig)


def draw(run_dir: Path, steps: int, **values: Any) -> dict[str, Any]:
    state = Draws()
    run = Run.open(_config(run_dir, **values), state, extra_metrics={"unit": "draws"})
    run.start()
    while state.step < steps:
        state.values.append(torch.rand(()).item())
        run.log_scalar("draw/value", state.values[-1], step=state.step)
        if run.stop_due():
            break
        run.checkpoint()
    return run.finish({"frames": state.step, "values": state.values})  # no curve: matplotlib costs seconds


@pytest.fixture(autouse=True)
def _no_pending_stop():
    clear_stop()
    yield
    clear_stop()


def test_a_stopped_run_resumes_to_the_uninterrupted_runs_numbers_and_logs(tmp_path):
    full = draw(tmp_path / "full", 5)
    assert full["status"] == "completed" and len(set(full["values"])) == 5 and full["unit"] == "draws"
    request_stop_at(2)
    part = draw(tmp_path / "resumed", 5)
    assert part["status"] == "interrupted" and part["values"] == full["values"][:2]
    assert load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")["values"] == full["values"][:2]
    resumed = draw(tmp_path / "resumed", 5)
    assert resumed["status"] == "completed" and resumed["values"] == full["values"]
    logs = [(d / "csv" / "scalars" / "draw" / "value.csv").read_text() for d in (tmp_path / "full", tmp_path / "resumed")]
    assert logs[0] == logs[1] and len(logs[0].splitlines()) == 5  # nothing logged twice
    on_disk = json.loads((tmp_path / "resumed" / "metrics.json").read_text())
    assert on_disk["values"] == full["values"] and on_disk["frames"] == 5 and on_disk["seed"] == 0
    assert (tmp_path / "resumed" / "config.yaml").is_file() and not (tmp_path / "resumed" / LOCK_NAME).exists()


def test_a_resume_with_another_config_is_refused_and_leaves_the_directory_as_it_was(tmp_path):
    request_stop_at(1)
    draw(tmp_path, 3)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    with pytest.raises(ResumeRefused, match="seed: 0 -> 1"):
        draw(tmp_path, 3, seed=1)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before
