"""The ensemble model's root rule: K determinized futures searched apart, their root statistics combined per episode.

Under ``planner.model=ensemble`` (:data:`~torchrl_reg.planning.models.MODELS`) a move searches K fresh futures
of the episode's state (K = ``planner.futures``), each a determinized model with its own stream
(:func:`~torchrl_reg.planning.snapshot_simulators.planner_rng` of the planner's seed and the future's row), each
with ``N / K`` of the move's ``N`` simulations, and plays the action of the combined root
(:func:`combine_futures`): per root action ``a``

* visits ``N(a) = sum_k n_k(a)``, the sum of the futures' root visit counts;
* value ``Q(a) = sum_k n_k(a) q_k(a) / N(a)``, the visit-weighted mean of the futures' root action values (the
  search's recommendation values: soft for MENTS, Bellman for BTS and DENTS); an action no future tried has
  ``Q(a) = -inf``. These are the weights with which a chance node averages its outcomes (the backups of
  :mod:`~torchrl_reg.planning.backups`), the futures being the root's outcomes;
* the action: the argmax of ``N`` for ``most_visited`` (UCT), of ``Q`` for ``search_value`` and
  ``bellman_value``, the lowest index on ties (as one tree's recommendation).

With ``K = 1`` it is the single tree's recommendation. Determinized UCT searches K determinizations of a hidden
or random state and sums the trees' root visit counts, at a fixed total budget split between the number of
futures and the simulations per future (Cowling, Powley and Whitehouse, "Information Set Monte Carlo Tree
Search", IEEE Transactions on Computational Intelligence and AI in Games 4(2), 2012;
after the perfect-information Monte Carlo sampling analysed by Long, Sturtevant, Buro and Furtak,
"Understanding the Success of Perfect Information Monte Carlo Sampling in Game Tree Search", AAAI 2010). One
future per move bets the whole search on one draw of the randomness; K futures average over K draws at the root,
but each tree still plans as if its own future were known below it (strategy fusion, Cowling et al.), which only
chance nodes remove. On a deterministic task the K futures are the task itself and the rule is root
parallelization (independent trees, root statistics summed).
"""
from __future__ import annotations

import math

import torch

from torchrl_reg.planning.algorithms import RECOMMENDATIONS
from torchrl_reg.planning.models import MODELS, Model, get_model
from torchrl_reg.validation import check_count

__all__ = ["check_futures", "combine_futures", "split_simulations"]


def split_simulations(simulations: int, futures: int, *, prefix: str = "") -> int:
    """The simulations of each of ``futures`` futures when a move searches ``simulations`` in all (``simulations /
    futures``); refused unless ``futures`` divides ``simulations``, so that every model searches the same total per
    move. ``prefix`` names the values in the error (``"planner."`` for a recipe's config)."""
    futures = check_count(f"{prefix}futures", futures)
    simulations = check_count(f"{prefix}simulations", simulations)
    if simulations % futures:
        low = simulations - simulations % futures
        nearest = " or ".join(str(n) for n in (low, low + futures) if n >= futures)
        raise ValueError(
            f"{prefix}simulations={simulations} is the total per move over {prefix}futures={futures} futures, each searching "
            f"{prefix}simulations / {prefix}futures: it must be a multiple of {futures} (e.g. {nearest}), or "
            f"{prefix}futures a divisor of {simulations}"
        )
    return simulations // futures


def check_futures(model: str | Model, futures: int, simulations: int, *, prefix: str = "planner.") -> int:
    """Refuse a number of ``futures`` that ``model`` does not plan in: a model of many futures
    (:attr:`~torchrl_reg.planning.models.Model.many_futures`, the ensemble) takes 2 or more dividing ``simulations``
    (:func:`split_simulations`), every other model one. The simulations of one future."""
    model = get_model(model)
    futures = check_count(f"{prefix}futures", futures)
    many = [m.name for m in MODELS.values() if m.many_futures]
    if not model.many_futures:
        if futures != 1:
            shown = " or ".join(f"{prefix}model={m!r}" for m in many)
            raise ValueError(
                f"{prefix}futures={futures} is read by {shown} only (K futures per move, their roots "
                f"combined); {prefix}model={model.name!r} plans in one: set {prefix}model={many[0]} or leave {prefix}futures=1"
            )
    elif futures < 2:
        one = [m.name for m in MODELS.values() if m.stream == model.stream and not m.many_futures]
        raise ValueError(
            f"{prefix}futures={futures} with {prefix}model={model.name!r}: an ensemble searches 2 or more futures per move "
            f"(one future is {prefix}model={one[0]})"
        )
    return split_simulations(simulations, futures, prefix=prefix)


def combine_futures(visits: torch.Tensor, values: torch.Tensor, recommend: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The combined roots of ``B`` episodes searched in ``K`` futures each (module docstring).

    Args:
        visits: the futures' root visit counts ``[B, K, A]`` (integers >= 0).
        values: their root action values ``[B, K, A]`` (any value where the future did not try the action: untried
            entries, ``-inf`` included, are never read).
        recommend: one of :data:`~torchrl_reg.planning.algorithms.RECOMMENDATIONS`.

    Returns:
        ``(actions [B], visits [B, A], values [B, A])``: the action played per episode, ``N(a)`` and ``Q(a)``
        (float64; ``-inf`` where no future tried ``a``).
    """
    if recommend not in RECOMMENDATIONS:
        raise ValueError(f"recommend must be one of {RECOMMENDATIONS}, got recommend={recommend!r}")
    visits, values = torch.as_tensor(visits), torch.as_tensor(values)
    if visits.dim() != 3 or visits.shape != values.shape:
        raise ValueError(f"visits and values must both be [B, K, A], got {list(visits.shape)} and {list(values.shape)}")
    if visits.is_floating_point() or bool((visits < 0).any()):
        raise ValueError("visits must be counts: integers >= 0")
    tried = visits > 0
    values = values.to(torch.float64)
    if not bool(torch.isfinite(values[tried]).all()):
        raise ValueError("a future's value of an action it tried is not finite")
    total = visits.sum(1)  # [B, A]
    weighted = (visits.to(torch.float64) * torch.where(tried, values, 0.0)).sum(1)
    combined = torch.where(total > 0, weighted / total.clamp(min=1).to(torch.float64), -math.inf)
    score = total.to(torch.float64) if recommend == "most_visited" else combined
    return score.argmax(-1), total, combined
