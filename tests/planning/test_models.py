"""The planner's models (torchrl_reg.planning.models): one object per model, read by the searches' simulators, the
loop and the checks; no other module interprets a model by its name."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from torchrl_reg.planning.ensemble import check_futures
from torchrl_reg.planning.models import MODELS, OWN, PLANNER, WORKING, Model, get_model

ROOT = Path(__file__).resolve().parents[2] / "torchrl_reg"


def test_each_model_says_its_stream_and_its_futures():
    assert list(MODELS) == ["sampled", "determinized", "ensemble", "oracle"]
    assert [m.stream for m in MODELS.values()] == [WORKING, PLANNER, PLANNER, OWN]
    assert [m.futures(4) for m in MODELS.values()] == [1, 1, 4, 1]
    assert [m.chance for m in MODELS.values()] == [True, False, False, False]
    assert [m.diagnostic for m in MODELS.values()] == [False, False, False, True]
    assert get_model("ensemble") is MODELS["ensemble"] and get_model(MODELS["oracle"]) is MODELS["oracle"]
    with pytest.raises(ValueError, match=r"the model must be one of \['sampled', 'determinized', 'ensemble', 'oracle'\], got 'exact'"):
        get_model("exact")


def test_a_new_model_is_read_from_its_attributes_not_its_name():
    # a second model of many futures is refused one future and planned in as K rows, by its attributes alone
    many = Model("bag", PLANNER, many_futures=True)
    assert check_futures(many, 2, 10) == 5 and many.label(2) == "bag model, 2 futures"
    with pytest.raises(ValueError, match="planner.futures=1 with planner.model='bag'"):
        check_futures(many, 1, 10)


def test_no_module_but_models_compares_a_model_name():
    names = "|".join(MODELS)
    literal = rf"""["'](?:{names})["']"""
    comparison = re.compile(rf"""(?:[=!]=\s*{literal}|{literal}\s*[=!]=|\bin\s*[(\[{{][^)\]}}]*{literal})""")
    found = [f"{path.relative_to(ROOT.parent)}:{i}: {line.strip()}"
             for path in sorted(ROOT.rglob("*.py")) if path.name != "models.py"
             for i, line in enumerate(path.read_text().splitlines(), 1) if comparison.search(line)]
    assert not found, found
