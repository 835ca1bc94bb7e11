"""One factory for both search loops: :func:`make_search` assembles an algorithm's parts
(:func:`~torchrl_reg.planning.algorithms.parts`) into :class:`~torchrl_reg.planning.search.TreeSearch` (one tree,
a :class:`~torchrl_reg.planning.simulators.Simulator`) or, with ``batched=True``,
:class:`~torchrl_reg.planning.batched.BatchedTreeSearch` (B trees, a
:class:`~torchrl_reg.planning.tensor_simulators.TensorSimulator`)."""
from __future__ import annotations

import inspect
from typing import Any

import torch

from torchrl_reg.planning.algorithms import parts
from torchrl_reg.planning.knobs import KNOB_TABLE
from torchrl_reg.planning.batched import BatchedTreeSearch
from torchrl_reg.planning.search import TreeSearch

__all__ = ["make_search"]


def make_search(
    algorithm: str,
    simulator: Any,
    *,
    evaluator: Any = None,
    recommend: str | None = None,
    gamma: float = 1.0,
    q_init: float = 0.0,
    seed: int = 0,
    batched: bool = False,
    device: str | torch.device | None = None,
    **knobs: float | None,
) -> TreeSearch | BatchedTreeSearch:
    """The search of ``algorithm`` (one of :data:`~torchrl_reg.planning.algorithms.ALGORITHMS`) from its parts.

    The knobs are the table's (:data:`~torchrl_reg.planning.knobs.KNOB_TABLE`: what each is, its default and range;
    :data:`~torchrl_reg.planning.algorithms.KNOBS`: the knobs each algorithm reads; a knob left out takes
    :data:`~torchrl_reg.planning.algorithms.KNOB_DEFAULTS`). A knob of another algorithm is refused, not
    ignored. ``recommend`` defaults to the algorithm's own. Every value is checked here, before any
    simulation runs.

    ``batched=False``: a :class:`~torchrl_reg.planning.search.TreeSearch` over ``simulator`` (a ``Simulator``:
    save, restore, step), whose ``evaluator`` is ``(simulator) -> (value, q_init or None)``.
    ``batched=True``: a :class:`~torchrl_reg.planning.batched.BatchedTreeSearch` over ``simulator`` (a
    ``TensorSimulator``: root, pure step) on ``device`` (default CPU), whose ``evaluator`` is
    ``(simulator, states, gamma) -> (values, q_init or None)``.

    The inputs are checked once, here, before anything runs: a simulator of the other loop is refused naming this
    loop's own (``DChain`` -> ``TensorDChain``, ...), an evaluator this loop cannot call naming the arguments it passes
    (one :class:`~torchrl_reg.planning.evaluators.RandomRollout` or
    :class:`~torchrl_reg.planning.evaluators.QNetworkEvaluator` serves both loops;
    :func:`~torchrl_reg.planning.evaluators.check_evaluator`,
    :func:`~torchrl_reg.planning.tensor_simulators.check_search_simulator`), and so is a ``device`` this machine does
    not have or the simulator's tensors are not on.
    """
    unknown = sorted(set(knobs) - set(KNOB_TABLE))
    if unknown:
        raise TypeError(f"make_search() got unexpected keyword arguments {unknown}; the knobs are {list(KNOB_TABLE)}")
    policy, backup, default = parts(algorithm, **knobs)
    common = dict(evaluator=evaluator, recommend=recommend or default, gamma=gamma, q_init=q_init, seed=seed)
    if batched:
        return BatchedTreeSearch(simulator, tree_policy=policy, backup=backup, device=device or "cpu", **common)
    if device is not None:
        raise ValueError(f"device={device!r} is the batched search's (its tensors'); TreeSearch runs on plain floats: pass batched=True")
    return TreeSearch(simulator, tree_policy=policy, backup=backup, **common)


def _with_knobs(function: Any) -> Any:
    """``function`` whose signature names each knob of :data:`~torchrl_reg.planning.algorithms.KNOB_TABLE` (keyword,
    default ``None``) in place of its ``**knobs``: the table's knobs are its arguments, for the docs and for the
    configs that read them (:func:`~torchrl_reg.configs.arguments_of`)."""
    signature = inspect.signature(function)
    rest = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    at = next(i for i, p in enumerate(rest) if p.name == "evaluator") + 1
    table = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation="float | None") for name in KNOB_TABLE]
    function.__signature__ = signature.replace(parameters=rest[:at] + table + rest[at:])
    return function


make_search = _with_knobs(make_search)
