"""Value backups of the tree searches, one node at a time (plain floats: the search's hot path).

References:

* [MENTS] Xiao, Huang, Mei, Schuurmans, Muller. Maximum Entropy Monte-Carlo Planning. NeurIPS 2019,
  Section 4: softmax backup ``V_sft(s) = F_tau(Q_sft(s, .)) = tau log sum_a exp(Q_sft(s, a) / tau)``
  and ``Q_sft(s, a) = r(s, a) + V_sft(s')``.
* [DENTS] Painter, Baioumy, Hawes, Lacerda. Monte Carlo Tree Search with Boltzmann Exploration.
  NeurIPS 2023, arXiv:2404.07732, Section 4: Bellman (max) backups for BTS and DENTS, and DENTS's
  entropy backup ``H_V(s) = H(pi(.|s)) + sum_a pi(a|s) H_Q(s, a)``.

With stochastic transitions both ``Q`` backups average the children by their visit counts:
``Q(s, a) = mean reward + sum_s' N(s') / N(s, a) V(s')`` (done by the search loop, which owns the
child lists).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["BACKUPS", "softmax_value", "bellman_value", "policy_entropy"]

BACKUPS = ("softmax", "bellman", "mean")


def softmax_value(q: Sequence[float], tau: float) -> float:
    """``tau log sum_a exp(q_a / tau)``, max-shifted so it stays finite for any ``q / tau`` ([MENTS] Sec. 4)."""
    top = max(q)
    return top + tau * math.log(sum(math.exp((qa - top) / tau) for qa in q))


def bellman_value(q: Sequence[float], n: Sequence[float]) -> float | None:
    """``max_a Q(s, a)`` over the actions tried at least once, ``None`` if none was ([DENTS] Sec. 4).

    Untried actions are left out: their initial value is a guess, not an estimate, and letting it
    win the max would make the Bellman value depend on an arbitrary constant.
    """
    best = None
    for qa, na in zip(q, n):
        if na > 0 and (best is None or qa > best):
            best = qa
    return best


def policy_entropy(probs: Sequence[float]) -> float:
    """Shannon entropy ``-sum_a pi(a) log pi(a)`` (nats) of a distribution over actions."""
    return -sum(p * math.log(p) for p in probs if p > 0.0)
