"""benchmarks/virel_mujoco.py: the eps_w figure's inputs read from run records, old and new form."""
from __future__ import annotations

import json

import pytest

from benchmarks.virel_mujoco import main


def _write(folder, name, record):
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(json.dumps(record))


def test_records_give_last_evaluation_and_temperature_per_seed(tmp_path):
    virel = {"method": "virel", "env": "Hopper-v5", "seed": 1, "command": "c", "metrics": {"wall_time_s": 9.0},
             "curves": {"eval/return": {"frames": [50, 100], "values": [3.0, 7.5]},
                        "train/temperature": {"frames": [60, 80, 100], "values": [0.5, 0.25, 0.125]}}}
    sac = {"method": "sac", "env": "Hopper-v5", "seed": 0,  # an older record: evaluations in its metrics
           "metrics": {"eval_frames": [50, 100], "eval_returns": [1.0, 2.0]}}
    _write(tmp_path / "r", "virel_Hopper-v5_seed1.json", virel)
    _write(tmp_path / "s", "sac_Hopper-v5_seed0.json", sac)
    _write(tmp_path / "s", "iq_Hopper-v5_seed0.json", {**sac, "method": "iq"})  # not drawn
    out = tmp_path / "out"
    assert main([str(tmp_path / "r"), str(tmp_path / "s"), "--out", str(out)]) == 0
    summary = json.loads((out / "eps_w.json").read_text())["summary"]
    assert sorted(summary["Hopper-v5"]) == ["sac", "virel"]
    assert summary["Hopper-v5"]["virel"] == [{"seed": 1, "last_eval_frame": 100, "last_eval": 7.5, "eps_w_first": 0.5,
                                              "eps_w_last": 0.125, "wall_time_s": 9.0, "command": "c"}]
    assert summary["Hopper-v5"]["sac"][0]["last_eval"] == 2.0
    assert summary["Hopper-v5"]["sac"][0]["eps_w_last"] is None
    assert (out / "eps_w_Hopper-v5.png").stat().st_size > 0


def test_no_virel_record_is_refused(tmp_path, capsys):
    _write(tmp_path / "s", "sac.json", {"method": "sac", "env": "Hopper-v5", "seed": 0, "metrics": {}})
    with pytest.raises(SystemExit):
        main([str(tmp_path / "s"), "--out", str(tmp_path / "out")])
    assert "no VIREL record" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
