"""benchmarks/sql_saturation.py: the target's mass beyond |a| = 0.99 for a critic slope, and a run analysed."""
from __future__ import annotations

import json

import torch
from tests.recipes.test_sql import CONF, _tiny

from benchmarks import sql_saturation
from recipes import sql
from torchrl_reg.configs import compose_config


def test_the_target_saturated_probability_against_a_quadrature():
    # exp(g a) on [-1, 1], integrated piecewise in float64 (trapezoid rule, the bounds on grid points): the mass
    # beyond |a| = 0.99 over the whole.
    def mass(low: float, high: float, g: float) -> float:
        a = torch.linspace(low, high, 400_001, dtype=torch.float64)
        return torch.trapezoid(torch.exp(g * a - abs(g)), a).item()

    for g in (0.0, 0.5, -3.0, 30.0, 100.0, -250.0):
        expected = (mass(-1.0, -0.99, g) + mass(0.99, 1.0, g)) / mass(-1.0, 1.0, g)
        got = sql_saturation.target_saturated_probability(torch.tensor(g, dtype=torch.float64)).item()
        assert abs(got - expected) < 1e-6, (g, got, expected)  # the rule's error at g = 250: ~1e-7


def test_a_finished_run_is_analysed(tmp_path):
    run_dir = tmp_path / "run"
    sql.train(compose_config(CONF, "sql", _tiny(run_dir)))
    out = tmp_path / "saturation.json"
    sql_saturation.main([str(run_dir), "--states", "50", "--particles", "4", "--out", str(out)])
    (row,) = json.loads(out.read_text())["rows"]
    assert row["frames"] == 240 and row["states"] == 50 and row["particles"] == 4 and row["env"] == "MultiGoal-v0"
    for key in ("saturated_fraction", "target_saturated_fraction"):
        assert 0.0 <= row[key] <= 1.0
    assert len(row["abs_slope_quantiles_10_50_90"]) == 3
