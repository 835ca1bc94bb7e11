"""The planner's inputs are checked once, when :func:`~torchrl_reg.planning.make_search` builds the search, before any
simulation runs: a leaf evaluation that the loop cannot call or a model of the other search loop, a device this machine does not have or the
model's tensors are not on, and a FrozenLake model built on another env are refused with a one-line error that names
the class, the value and the fix."""
from __future__ import annotations

import re

import pytest
import torch

from torchrl_reg.planning import (
    BatchedTreeSearch,
    DChain,
    QNetworkEvaluator,
    RandomRollout,
    TensorDChain,
    TreeSearch,
    make_search,
)


def _refused(error: type[Exception], pattern: str, build) -> str:
    with pytest.raises(error) as info:
        build()
    message = str(info.value)
    assert "\n" not in message, message  # one line
    assert re.search(pattern, message), message
    return message


class _Counting:
    """An evaluator of either loop that counts its calls (none may happen before the search is refused)."""

    def __init__(self):
        self.calls = 0

    def single(self, sim):
        self.calls += 1
        return 0.0, None

    def rows(self, sim, states, gamma):
        self.calls += 1
        return torch.zeros(states.shape[0], dtype=torch.float64), None


def _net() -> torch.nn.Module:
    return torch.nn.Linear(1, 2)


EVALUATORS = {
    "RandomRollout": lambda: RandomRollout(max_steps=7, seed=3),
    "QNetworkEvaluator": lambda: QNetworkEvaluator(_net(), num_actions=2, tau=0.5),
}


@pytest.mark.parametrize("kind", list(EVALUATORS))
def test_one_evaluator_object_serves_both_loops(kind):
    # one class per kind: each loop calls it in its own form, and at B = 1 the rows' values are the single tree's
    single = EVALUATORS[kind]()
    rows = single if kind == "QNetworkEvaluator" else EVALUATORS[kind]()  # one network; two rollouts of one seed
    chain, model = DChain(4), TensorDChain(4)
    for position in range(3):
        chain.restore((position, False))
        value, q_init = single(chain)
        values, q_rows = rows(model, torch.tensor([[position]]), 1.0)
        if kind == "QNetworkEvaluator":  # a network: the same forward, one row or many
            assert values.tolist() == pytest.approx([value], abs=1e-12) and q_rows[0].tolist() == pytest.approx(q_init, abs=1e-12)
        else:  # random actions: each form its own stream, both from the seed
            assert q_init is None and q_rows is None and values.shape == (1,)
    make_search("ments", DChain(4), evaluator=EVALUATORS[kind]()).search(5)
    make_search("ments", TensorDChain(4), batched=True, evaluator=EVALUATORS[kind]()).search(TensorDChain(4).root(2), 5)


def test_an_evaluator_with_another_discount_is_refused_by_both_loops():
    for batched, model in ((False, DChain(4)), (True, TensorDChain(4))):
        _refused(ValueError, r"^RandomRollout\(gamma=1.0\) and the search's gamma=0.9 disagree",
                 lambda: make_search("ments", model, batched=batched, gamma=0.9, evaluator=RandomRollout()))


def test_a_function_of_the_wrong_arity_is_refused_before_it_is_called_and_one_of_the_right_arity_runs():
    counting = _Counting()
    _refused(TypeError, r"^BatchedTreeSearch calls its evaluator as evaluator\(simulator, states, gamma\).*; single\(sim\) "
             r"cannot be called so: give it the arguments \(simulator, states, gamma\), or search with TreeSearch",
             lambda: make_search("uct", TensorDChain(4), batched=True, evaluator=counting.single))
    _refused(TypeError, r"^TreeSearch calls its evaluator as evaluator\(simulator\).*; rows\(sim, states, gamma\) cannot be "
             r"called so: give it the arguments \(simulator\), or search with BatchedTreeSearch",
             lambda: make_search("uct", DChain(4), evaluator=counting.rows))
    _refused(TypeError, r"^TreeSearch calls its evaluator as .*; got a int, which is not callable",
             lambda: make_search("uct", DChain(4), evaluator=3))
    assert counting.calls == 0
    # the right arity: each loop calls it, once for the root and once per new non-terminal leaf at most
    make_search("uct", DChain(4), evaluator=counting.single).search(5)
    make_search("uct", TensorDChain(4), batched=True, evaluator=counting.rows).search(TensorDChain(4).root(2), 5)
    assert 2 <= counting.calls <= 12


def test_a_model_of_the_other_loop_is_refused_naming_its_twin():
    _refused(TypeError, r"^BatchedTreeSearch needs a TensorSimulator .*; DChain is a single-tree Simulator .*: pass its "
             r"tensor model \(TensorDChain\), or search it with TreeSearch", lambda: make_search("ments", DChain(4), batched=True))
    _refused(TypeError, r"^TreeSearch steps one Simulator .*; TensorDChain is a TensorSimulator.*: search it with "
             r"BatchedTreeSearch \(make_search\(\.\.\., batched=True\)\), or pass its single-tree simulator \(DChain\)",
             lambda: make_search("ments", TensorDChain(4)))
    _refused(TypeError, r"^BatchedTreeSearch needs a TensorSimulator .*; str is not one: pass a TensorSimulator$",
             lambda: make_search("ments", "FrozenLake-v1", batched=True))


def test_a_device_this_machine_lacks_is_refused_before_any_tensor_is_made(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _refused(ValueError, r"^BatchedTreeSearch\(device='cuda'\): .*CUDA is not available; use device=cpu",
             lambda: make_search("ments", TensorDChain(4), batched=True, device="cuda"))
    _refused(ValueError, r"^BatchedTreeSearch\(device='gpu'\): device must be 'auto', 'cpu', 'cuda' or 'cuda:<index>'",
             lambda: make_search("ments", TensorDChain(4), batched=True, device="gpu"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    _refused(ValueError, r"^BatchedTreeSearch\(device='cuda:3'\): this machine has 1 CUDA device\(s\)",
             lambda: make_search("ments", TensorDChain(4), batched=True, device="cuda:3"))


def test_a_model_whose_tensors_are_on_another_device_is_refused():
    # "meta" stands for a GPU here: a device this search is not on
    _refused(ValueError, r"^BatchedTreeSearch\(device='cpu'\) cannot search TensorDChain, whose tensors are on meta: "
             r"build both on one device \(TensorDChain\(\.\.\., device='cpu'\)",
             lambda: BatchedTreeSearch(TensorDChain(4, device="meta"), **_parts()))
    search = make_search("ments", TensorDChain(4), batched=True, device=torch.device("cpu"))
    assert search.device == torch.device("cpu") and search.search(TensorDChain(4).root(1), 3).tolist() in ([0], [1])


def _parts() -> dict:
    from torchrl_reg.planning import parts

    policy, backup, recommend = parts("ments")
    return dict(tree_policy=policy, backup=backup, recommend=recommend)


@pytest.mark.parametrize("name", ["FrozenLakeSimulator", "TensorFrozenLake"])
def test_a_frozenlake_model_built_on_another_env_is_refused(name):
    gym = pytest.importorskip("gymnasium", reason="the FrozenLake models read gymnasium's env")
    import torchrl_reg.planning as planning

    _refused(TypeError, rf"^{name} needs gymnasium's FrozenLake-v1 .*; got CartPole-v1 \(CartPoleEnv\), which has none: build it "
             r"on gymnasium.make\('FrozenLake-v1'", lambda: getattr(planning, name)(gym.make("CartPole-v1")))
    lake = getattr(planning, name)(gym.make("FrozenLake-v1", map_name="4x4", is_slippery=True))
    assert lake.num_actions == 4 and not lake.deterministic


def test_the_single_tree_search_rejects_the_batched_device_keyword_and_builds_otherwise():
    _refused(ValueError, r"device='cpu' is the batched search's", lambda: make_search("ments", DChain(4), device="cpu"))
    assert isinstance(make_search("ments", DChain(4)), TreeSearch)


@pytest.mark.parametrize("batched", [False, True])
def test_an_evaluator_that_returns_no_pair_is_refused_at_its_first_leaf(batched):
    # "cannot unpack non-iterable float object"
    if batched:
        search = make_search("ments", TensorDChain(10), evaluator=lambda sim, states, gamma: 0.0, batched=True)
        run = lambda: search.search(search.simulator.root(1), 5)  # noqa: E731
        expected = ("BatchedTreeSearch calls its evaluator as evaluator(simulator, states, gamma) -> (values, q_init or "
                    "None), all new leaves at once: it must return a pair, a [B] tensor of leaf values and the initial "
                    "action values or None; it returned 0.0 (a float). Return the pair, e.g. lambda simulator, states, "
                    "gamma: (values, None)")
    else:
        search = make_search("ments", DChain(10), evaluator=lambda sim: 0.0)
        run = lambda: search.search(5)  # noqa: E731
        expected = ("TreeSearch calls its evaluator as evaluator(simulator) -> (value, q_init or None), one leaf at a "
                    "time: it must return a pair, a number (the leaf's value) and the initial action values or None; it "
                    "returned 0.0 (a float). Return the pair, e.g. lambda simulator: (0.0, None)")
    with pytest.raises(TypeError) as info:
        run()
    assert str(info.value) == expected


def test_a_tensor_model_of_another_tree_is_refused_naming_the_attributes_and_its_model():
    # TensorChanceTree(SyntheticTree(3, 3)): AttributeError: 'SyntheticTree' object has no attribute 'outcomes'
    from torchrl_reg.planning.simulators import SyntheticTree
    from torchrl_reg.planning.tensor_simulators import TensorChanceTree, TensorSyntheticTree

    message = _refused(TypeError, r"^TensorChanceTree takes a ChanceTree", lambda: TensorChanceTree(SyntheticTree(3, 3)))
    assert message.endswith(
        "got a SyntheticTree, which has no ['outcomes', 'fan', 'internal', 'cumulative', 'step_reward']: its tensor model "
        "is TensorSyntheticTree: TensorSyntheticTree([SyntheticTree(...)])"
    ), message
    _refused(TypeError, r"^TensorSyntheticTree takes a sequence of SyntheticTree .* pass the instances as a list, "
             r"TensorSyntheticTree\(\[tree\]\)$", lambda: TensorSyntheticTree(SyntheticTree(3, 3)))
