"""``python -m benchmarks.iq_fidelity horizon``: ratios to SAC and the "M-IQ >= IQ - pooled std" check at
100k / 200k / 300k, against numbers worked out by hand from small synthetic runs."""
import json
import math

import pytest

from benchmarks import iq_fidelity

FRAMES = [100_000, 150_000, 200_000, 300_000]


def _write(runs, name, seed, returns, status="completed"):
    metrics = {"status": status, "eval_frames": FRAMES, "eval_returns": returns}
    (runs / f"{name}_seed{seed}.json").write_text(json.dumps({"metrics": metrics}))


def test_horizon_ratios_and_pooled_std_check(tmp_path):
    # SAC: 1000 / 2000 / 4000 at 100k / 200k / 300k (mean of seeds 0 and 1: 900 & 1100, 2000 & 2000, 3000 & 5000)
    _write(tmp_path, "sac", 0, [900, 0, 2000, 3000])
    _write(tmp_path, "sac", 1, [1100, 0, 2000, 5000])
    # IQ: means 200 / 1000 / 3000
    _write(tmp_path, "iq", 0, [100, 0, 900, 2000])
    _write(tmp_path, "iq", 1, [300, 0, 1100, 4000])
    # M-IQ: means 100 / 1000 / 1000
    _write(tmp_path, "m_iq", 0, [100, 0, 1000, 1000])
    _write(tmp_path, "m_iq", 1, [100, 0, 1000, 1000])
    _write(tmp_path, "m_iq", 2, [0, 0, 0, 0], status="failed")  # not counted

    iq_fidelity.horizon(tmp_path)
    out = json.loads((tmp_path / "comparison.json").read_text())
    iq = out["methods"]["iq"]
    assert iq["seeds"] == [0, 1]
    assert [iq[s]["ratio_of_means_to_sac"] for s in ("100000", "200000", "300000")] == pytest.approx([0.2, 0.5, 0.75])
    assert iq["300000"]["per_seed_ratio_to_sac"] == pytest.approx({"0": 2000 / 3000, "1": 4000 / 5000})
    assert iq["300000"]["std"] == pytest.approx(math.sqrt(2) * 1000)  # sample std of 2000, 4000
    assert out["methods"]["m_iq"]["seeds"] == [0, 1]
    # pooled std of M-IQ {1000, 1000} (variance 0) and IQ {2000, 4000} (variance 2e6), 2 dof: sqrt(2e6 / 2) = 1000
    (c100, c200, c300) = out["m_iq_never_detrimental"]
    assert c300["pooled_std"] == pytest.approx(1000.0)
    assert c300["iq_minus_pooled_std"] == pytest.approx(2000.0) and c300["met"] is False  # 1000 < 2000
    assert c300["margin"] == pytest.approx(-1000.0)
    # 200k: IQ {900, 1100} var 2e4, M-IQ var 0: pooled sqrt(1e4) = 100; threshold 900 <= 1000
    assert c200["iq_minus_pooled_std"] == pytest.approx(900.0) and c200["met"] is True
    assert c100["met"] is True  # threshold 200 - sqrt(2e4 / 2) = 100 <= 100
    assert (tmp_path / "horizon.png").stat().st_size > 0


def test_horizon_refuses_runs_without_sac_or_without_the_steps(tmp_path):
    _write(tmp_path, "iq", 0, [1, 2, 3, 4])
    with pytest.raises(ValueError, match="no completed SAC run"):
        iq_fidelity.horizon(tmp_path)
    (tmp_path / "sac_seed0.json").write_text(json.dumps({"metrics": {
        "status": "completed", "eval_frames": [100_000, 300_000], "eval_returns": [1.0, 2.0]}}))
    with pytest.raises(ValueError, match=r"no evaluation at steps \[200000\]"):
        iq_fidelity.horizon(tmp_path)


def _record(records, method, seed, returns, status="completed"):
    metrics = {"status": status, "eval_frames": FRAMES, "eval_returns": returns}
    record = {"method": method, "env": "HalfCheetah-v5", "seed": seed, "metrics": metrics}
    (records / f"{method}_HalfCheetah-v5_seed{seed}.json").write_text(json.dumps(record))


def test_vs_sac_ratios_and_the_sac_minus_pooled_std_target(tmp_path):
    runs, records = tmp_path / "runs", tmp_path / "records"
    runs.mkdir(), records.mkdir()
    # SAC at 300k: 3000 and 5000 (mean 4000, variance 2e6)
    _write(runs, "sac", 0, [900, 0, 2000, 3000])
    _write(runs, "sac", 1, [1100, 0, 2000, 5000])
    # MDAC at 300k: 3500, 3500 (mean 3500, variance 0); at 200k 1000, 1000 against SAC's 2000, 2000
    _record(records, "mdac", 0, [1000, 0, 1000, 3500])
    _record(records, "mdac", 1, [1000, 0, 1000, 3500])
    _record(records, "mdac", 2, [0, 0, 0, 0], status="interrupted")  # not counted

    out = iq_fidelity.vs_sac(records, runs)
    row = out["methods"]["mdac"]
    assert row["seeds"] == [0, 1]
    r300 = row["300000"]
    assert r300["ratio_of_means_to_sac"] == pytest.approx(3500 / 4000)
    assert r300["per_seed_ratio_to_sac"] == pytest.approx({"0": 3500 / 3000, "1": 3500 / 5000})
    # pooled std: sqrt((1 * 0 + 1 * 2e6) / 2) = 1000; threshold 4000 - 1000 = 3000 <= 3500
    check = r300["at_least_sac_minus_pooled_std"]
    assert check["pooled_std"] == pytest.approx(1000.0) and check["sac_minus_pooled_std"] == pytest.approx(3000.0)
    assert check["met"] is True and check["margin"] == pytest.approx(500.0)
    # 200k: both groups have variance 0, threshold 2000 > 1000
    assert row["200000"]["at_least_sac_minus_pooled_std"]["met"] is False
    assert json.loads((records / "comparison.json").read_text())["methods"]["mdac"]["seeds"] == [0, 1]
    assert (records / "vs_sac.png").stat().st_size > 0


def test_vs_sac_refuses_fewer_than_two_sac_runs_and_empty_records(tmp_path):
    runs, records = tmp_path / "runs", tmp_path / "records"
    runs.mkdir(), records.mkdir()
    _write(runs, "sac", 0, [1, 2, 3, 4])
    with pytest.raises(ValueError, match=r"1 completed SAC run\(s\)"):
        iq_fidelity.vs_sac(records, runs)
    _write(runs, "sac", 1, [1, 2, 3, 4])
    with pytest.raises(ValueError, match="no completed record of HalfCheetah-v5"):
        iq_fidelity.vs_sac(records, runs)
