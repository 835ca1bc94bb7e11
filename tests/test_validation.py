"""The validators' one module: integer and range checks, and the refusal of values for keys a setting ignores."""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import numpy as np
import pytest
from omegaconf import OmegaConf

from torchrl_reg.configs import arguments_of
from torchrl_reg.validation import (
    ArgumentChecks,
    ReadOnlyIf,
    check_count,
    check_interval,
    check_positive,
    check_unread,
    closest,
    constructor_arguments,
    misspelling_of,
    unread_keys,
)


@pytest.mark.parametrize("value", [0, 1.0, 2.0, "3", True, None])
def test_check_count_refuses_non_integers_and_values_below_the_minimum(value):
    with pytest.raises(ValueError, match=rf"n must be an integer >= 1, got n={value!r}"):
        check_count("n", value)


def test_check_count_accepts_python_and_numpy_integers():
    assert check_count("n", 3) == 3 and check_count("n", np.int64(2), 2) == 2 and check_count("n", 0, 0) == 0
    assert type(check_count("n", np.int32(5))) is int


@pytest.mark.parametrize("low, high", [(-1.0, float("inf")), (float("nan"), 0.0), (1.0, 0.0)])
def test_check_interval_needs_finite_ordered_bounds(low, high):
    with pytest.raises(ValueError, match=r"(lo|hi) must be (a finite number|<= hi)"):
        check_interval("lo", low, "hi", high)


@dataclass
class _Base:
    mode: str = "a"
    shared: float = 1.0
    read_only_if: ClassVar[ReadOnlyIf] = {"shared": ("mode", ("a",))}


@dataclass
class _Loss(_Base):
    name: str = "x"
    only_x: float = 0.5
    only_positive: int = 3
    read_only_if: ClassVar[ReadOnlyIf] = {
        "only_x": ("name", ("x",)),
        "only_positive": ("shared", lambda shared: shared > 0),
    }


def _node(**values):
    return OmegaConf.merge(OmegaConf.structured(_Loss), values)


def test_unread_keys_merge_the_declarations_of_the_bases_and_name_the_deciding_setting():
    assert unread_keys(_Loss, _node()) == {}
    assert unread_keys(_Loss, _node(name="y", mode="b")) == {"shared": "mode='b'", "only_x": "name='y'"}
    assert unread_keys(_Loss, _node(shared=-1.0)) == {"only_positive": "shared=-1.0"}


def test_check_unread_refuses_a_value_only_where_the_setting_ignores_the_key():
    check_unread("loss", _node(name="y"), _Loss)  # an ignored key at its default: nothing to refuse
    check_unread("loss", _node(only_x=0.1), _Loss)  # read by name='x'
    with pytest.raises(ValueError, match=(
        r"loss.only_x=0.1 is not used by loss.name='y' \(it reads \['mode', 'only_positive', 'shared'\]\); "
        r"leave loss.only_x at its default 0.5"
    )):
        check_unread("loss", _node(name="y", only_x=0.1), _Loss)
    with pytest.raises(ValueError, match="loss.shared=2.0 is not used by loss.mode='b'"):
        check_unread("loss", _node(mode="b", shared=2.0), _Loss)


def test_arguments_of_passes_the_config_values_of_the_callables_arguments_but_gamma():
    def build(alpha: float = 0.9, tau: float = 0.03, gamma: float = 0.99) -> None: ...

    node = OmegaConf.create({"name": "m", "alpha": 0.5, "tau": 0.1, "gamma": 0.9, "other": 1})
    assert arguments_of(build, node) == {"alpha": 0.5, "tau": 0.1}


def test_closest_names_the_nearest_key_beside_a_misspelled_one():
    keys = ["planner.simulations", "planner.tau", "task.name", "seed"]
    assert closest("planner.simulation", keys) == "planner.simulations"
    assert closest("planer.simulations", keys) == "planner.simulations"  # the prefix misspelled: the whole key
    assert closest("sed", keys) == "seed"
    assert closest("planner.zzzzzz", keys) is None and closest("task.nam", []) is None


@pytest.mark.parametrize("word, candidates, meant", [
    ("betta", ["beta", "tau"], "beta"),  # a letter doubled
    ("tua", ["tau", "eta"], "tau"),  # two letters swapped
    ("alpha_int", ["alpha_init", "alpha"], "alpha_init"),  # a letter dropped
    ("num_qvalue_net", ["num_qvalue_nets", "delay_qvalue"], "num_qvalue_nets"),
    ("delay_actor", ["delay_qvalue", "delay_value"], None),  # another knob, not a misspelling
    ("tau", ["eta"], None),  # two edits in a short word
    ("planner.tua", ["planner.tau"], "planner.tau"),
])
def test_a_did_you_mean_proposes_only_the_knob_that_was_meant(word, candidates, meant):
    assert misspelling_of(word, candidates) == meant


def test_closest_proposes_no_other_key_beside_the_one_misspelled():
    assert closest("delay.actor", ["delay.qvalue", "delay.value"]) is None
    assert closest("optim.lrr", ["optim.lr", "optim.eps"]) == "optim.lr"


class _Base(ArgumentChecks):
    argument_checks = {"n": check_count}

    def __init__(self, *, n: int = 1, name: str = "base") -> None:
        self.n, self.name = n, name


class _Scaled(_Base):
    argument_checks = {"scale": check_positive, "n": check_count}

    def __init__(self, *, scale: float = 1, **kwargs) -> None:
        self.scale = scale
        super().__init__(**kwargs)


def test_a_constructor_receives_its_arguments_checked_defaults_included():
    made = _Scaled(scale=2, n=3)
    assert (made.scale, made.n, made.name) == (2.0, 3, "base") and type(made.scale) is float  # check_positive's float
    assert type(_Scaled().scale) is float  # the default passes the check too
    with pytest.raises(ValueError, match=r"scale must be a finite number > 0, got scale=0.0"):
        _Scaled(scale=0)
    with pytest.raises(ValueError, match=r"n must be an integer >= 1, got n=0"):  # checked by _Base, reached by **kwargs
        _Scaled(n=0)
    assert list(constructor_arguments(_Scaled)) == ["scale", "n", "name"]


def test_a_subclass_that_only_narrows_the_checks_has_them_run_on_its_bases_constructor():
    class _Narrow(_Base):
        argument_checks = {"n": partial(check_count, minimum=5)}

    with pytest.raises(ValueError, match=r"n must be an integer >= 5, got n=3"):
        _Narrow(n=3)
    assert _Narrow(n=5).n == 5 and _Base(n=3).n == 3  # the base keeps its own


def test_a_check_that_names_no_constructor_argument_is_refused_when_the_class_is_defined():
    """A renamed argument whose check kept the old name would skip its check silently: the class is refused."""
    with pytest.raises(TypeError, match=r"_Renamed.argument_checks names \['tau'\], not arguments of its constructor"):
        class _Renamed(ArgumentChecks):  # noqa: F841 -- defining it is the test
            argument_checks = {"tau": check_positive}

            def __init__(self, *, temperature: float = 1.0) -> None:
                self.temperature = temperature


def test_a_constructors_refusal_names_the_class_being_built():
    """The shared validators name the argument; the constructor that runs them names the class, once, even through a
    base's checked constructor (``_Scaled: n must be ...``, not ``_Base``)."""
    with pytest.raises(ValueError) as info:
        _Scaled(scale=1.0, n=0)
    assert str(info.value) == "_Scaled: n must be an integer >= 1, got n=0"
    with pytest.raises(ValueError) as info:
        _Scaled(scale=-1.0)
    assert str(info.value) == "_Scaled: scale must be a finite number > 0, got scale=-1.0"
    with pytest.raises(ValueError) as info:
        _Base.check_arguments({"n": 0}, prefix="loss.")  # a config check names the key, not a class
    assert str(info.value) == "loss.n must be an integer >= 1, got loss.n=0"
