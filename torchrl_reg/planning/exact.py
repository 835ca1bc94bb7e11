"""Exact values of the test problems, the oracle the searches are checked against.

* :func:`synthetic_tree_q` - the root's optimal soft or Bellman action values of a
  :class:`~torchrl_reg.planning.simulators.SyntheticTree`, by backward recursion over its levels.
* :func:`dchain_soft_q` / :func:`dchain_flip_temperature` - the D-chain of Painter et al.
  (Monte Carlo Tree Search with Boltzmann Exploration, NeurIPS 2023, arXiv:2404.07732, Sec. 5).

D-chain in closed form. A deterministic tree's optimal soft value is
``V_sft(s) = tau log sum_paths exp(G(path) / tau)`` over the episodes that start in ``s`` (the
softmax of softmaxes is the softmax of all leaves). From state 1 the episodes are ``down`` at
``j = 1 .. D-1`` (return ``(D - j - 1) / D``) and ``right`` to the end (return ``R_f``), so with
``x = exp(1 / (D tau))``::

    Q_sft(0, right) = tau log( sum_{m=0}^{D-2} x^m + x^(D R_f) ) = tau log( (x^(D-1) - 1) / (x - 1) + x^(D R_f) )
    Q_sft(0, down)  = (D - 1) / D = tau log x^(D-1)

MENTS recommends ``right`` iff ``(x^(D-1) - 1) / (x - 1) + x^(D R_f) > x^(D-1)``. When
``R_f < (D - 1) / D`` (``down`` is optimal) the two sides cross exactly once: at ``tau -> 0`` the
left side tends to ``x^(max(D-2, D R_f))``, below ``x^(D-1)``, and for large ``tau`` it tends to
``D > 1``; :func:`dchain_flip_temperature` finds that crossing, the temperature above which MENTS
recommends the wrong action. When ``R_f >= (D - 1) / D`` MENTS is right at every temperature.
"""
from __future__ import annotations

import math

import numpy as np

from torchrl_reg.planning.simulators import DChain, SyntheticTree

__all__ = ["synthetic_tree_q", "dchain_soft_q", "dchain_flip_temperature"]


def _logsumexp(x: np.ndarray, tau: float) -> np.ndarray:
    top = x.max(axis=-1)
    return top + tau * np.log(np.exp((x - top[..., None]) / tau).sum(axis=-1))


def synthetic_tree_q(tree: SyntheticTree, tau: float | None) -> np.ndarray:
    """Root action values ``r(root, a) + V*(child)``: soft values if ``tau`` is given, Bellman (max) if ``None``.

    Leaves are worth their mean value (the evaluation noise has mean 0).
    """
    k = tree.num_actions
    first = tree.first_leaf
    values = tree.leaf_value.copy()
    for level in range(tree.depth, 0, -1):
        start = (k**level - 1) // (k - 1)
        q = (tree.edge_reward[start : start + k**level] + values).reshape(-1, k)
        if level == 1:
            return q
        values = q.max(axis=-1) if tau is None else _logsumexp(q, tau)
    raise AssertionError(f"unreachable: depth {tree.depth}, first leaf {first}")


def dchain_soft_q(chain: DChain, tau: float) -> tuple[float, float]:
    """Exact ``(Q_sft(0, down), Q_sft(0, right))`` of a D-chain at temperature ``tau``, from the closed form."""
    d, r_f = chain.length, chain.final_reward
    down = (d - 1) / d
    # tau log sum_m exp(g_m / tau), max-shifted, over the D returns reachable after the first 'right'
    returns = np.array([m / d for m in range(d - 1)] + [r_f])
    top = returns.max()
    right = top + tau * math.log(float(np.exp((returns - top) / tau).sum()))
    return down, right


def dchain_flip_temperature(chain: DChain, *, tol: float = 1e-12) -> float:
    """The temperature above which MENTS prefers ``right`` at the root although ``down`` is optimal.

    Raises ``ValueError`` if ``right`` is optimal (``R_f >= (D - 1) / D``): there is no flip then.
    """
    d, r_f = chain.length, chain.final_reward
    if r_f >= (d - 1) / d:
        raise ValueError(f"final_reward={r_f} >= (D-1)/D={(d - 1) / d}: 'right' is optimal, MENTS never flips")

    def gap(tau: float) -> float:
        down, right = dchain_soft_q(chain, tau)
        return right - down

    lo, hi = 1e-6, 1.0
    while gap(hi) <= 0:
        hi *= 2.0
    while hi - lo > tol * hi:
        mid = 0.5 * (lo + hi)
        if gap(mid) > 0:
            hi = mid
        else:
            lo = mid
    return 0.5 * (lo + hi)
