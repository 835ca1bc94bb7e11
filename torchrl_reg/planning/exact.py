"""Exact values of the test problems, the oracle the searches are checked against.

* :func:`synthetic_tree_q` - the root's optimal soft or Bellman action values of a
  :class:`~torchrl_reg.planning.simulators.SyntheticTree`, by backward recursion over its levels.
* :func:`dchain_soft_q` / :func:`dchain_flip_temperature` - the D-chain of Painter et al.
  (Monte Carlo Tree Search with Boltzmann Exploration, NeurIPS 2023, arXiv:2404.07732, Sec. 5).
* :func:`chance_tree_values` - every node's soft, Bellman or mean values of a
  :class:`~torchrl_reg.planning.simulators.ChanceTree`, by backward recursion with chance nodes.
* :func:`finite_horizon_q` - the action values of a finite MDP given as gymnasium's transition table ``P``
  (FrozenLake's) with ``h`` steps left, by dynamic programming.

With chance, the backups of the searches differ only at decision nodes, where each gives its own rule
(:meth:`~torchrl_reg.planning.backups.Backup.exact_values`, read here, never named); a chance edge's value is the
expectation over its outcomes (the probability-weighted mean; the searches use the arrival-count-weighted mean,
its sample estimate). For the backups of MENTS ([MENTS] Xiao et al., NeurIPS 2019, Sec. 4), BTS and DENTS ([DENTS]
Painter et al., Sec. 4) and UCT ([UCT] Kocsis and Szepesvari, ECML 2006)::

    Q(s, a) = sum_s' P(s' | s, a) (r(s, a, s') + gamma V(s'))     V(terminal) = 0
    V(s)    = max_a Q(s, a)                      (Bellman: BTS, DENTS)
            = tau log sum_a exp(Q(s, a) / tau)   (soft: MENTS)
            = sum_a pi(a | s) Q(s, a)            (mean under a policy pi: UCT's mean backup under its visit shares)

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

from collections.abc import Mapping, Sequence

from torchrl_reg.planning.backups import Backup, BellmanBackup, SoftmaxBackup
from torchrl_reg.planning.simulators import ChanceTree, DChain, SyntheticTree

__all__ = ["synthetic_tree_q", "dchain_soft_q", "dchain_flip_temperature", "chance_tree_values", "finite_horizon_q"]


def _decision_values(q: np.ndarray, backup: Backup, policy: np.ndarray | None) -> np.ndarray:
    """``V`` of decision nodes from their action values ``q`` ``[..., A]``: the backup's own rule,
    :meth:`~torchrl_reg.planning.backups.Backup.exact_values` (under ``policy``, where it reads one)."""
    if not isinstance(backup, Backup):
        raise TypeError(f"backup must be a Backup of torchrl_reg.planning.backups (its exact_values is read), got {backup!r}")
    if not backup.exact_reads_policy:
        return backup.exact_values(q)
    if policy is None:
        raise ValueError(f"{backup!r} takes a mean under a policy: pass the policy (e.g. the search's visit shares)")
    if policy.shape != q.shape or not np.allclose(policy.sum(-1), 1.0) or (policy < 0).any():
        raise ValueError(f"policy must be a distribution over actions of shape {q.shape}, got shape {policy.shape}")
    return backup.exact_values(q, policy)


def chance_tree_values(
    tree: ChanceTree, backup: Backup | None = None, *, policy: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(Q [internal nodes, A], V [all nodes])`` of a :class:`~torchrl_reg.planning.simulators.ChanceTree` (undiscounted).

    ``backup``: a backup of :mod:`~torchrl_reg.planning.backups` whose ``exact_values`` gives a decision node's value
    (default :class:`~torchrl_reg.planning.backups.BellmanBackup`, the max; a mean is taken under ``policy``
    ``[internal nodes, A]``, a distribution over actions per decision node); leaves are terminal (``V = 0``: the
    leaf value is paid on the step into it). Node ids are the tree's (breadth first).
    """
    backup = BellmanBackup() if backup is None else backup
    fan, k, m = tree.fan, tree.num_actions, tree.outcomes
    value = np.zeros(tree.internal + fan**tree.depth)
    q = np.zeros((tree.internal, k))
    for level in range(tree.depth - 1, -1, -1):
        start = (fan**level - 1) // (fan - 1) if fan > 1 else level
        stop = start + fan**level
        children = (np.arange(start, stop)[:, None] * fan + 1 + np.arange(fan)).reshape(-1, k, m)
        q[start:stop] = (tree.probs[start:stop] * (tree.step_reward[children] + value[children])).sum(-1)
        value[start:stop] = _decision_values(q[start:stop], backup, None if policy is None else policy[start:stop])
    return q, value


Transitions = Mapping[int, Mapping[int, Sequence[tuple[float, int, float, bool]]]]


def finite_horizon_q(
    transitions: Transitions, horizon: int, *, gamma: float = 1.0, backup: Backup | None = None,
) -> np.ndarray:
    """``Q[h - 1, s, a]``, the action values with ``h = 1 .. horizon`` steps left, of the MDP ``transitions``.

    ``transitions[s][a]`` lists ``(probability, next state, reward, done)`` (gymnasium's ``P``, as FrozenLake's
    ``env.unwrapped.P``); an episode ends at ``done`` or when no step is left: ``Q_h(s, a) = sum p (r + gamma
    (1 - done) V_{h-1}(s'))`` with ``V_0 = 0`` and ``V_h`` the ``backup``'s ``exact_values`` of ``Q_h`` (default
    :class:`~torchrl_reg.planning.backups.BellmanBackup`, the max; a backup that takes a mean under a policy is refused:
    it needs a policy per tree node).
    """
    if not isinstance(horizon, int) or horizon < 1:
        raise ValueError(f"horizon must be an int >= 1, got horizon={horizon!r}")
    backup = BellmanBackup() if backup is None else backup
    if isinstance(backup, Backup) and backup.exact_reads_policy:
        raise ValueError(f"finite_horizon_q computes values a state's alone decides; {backup!r} takes a mean under a policy per tree node")
    states = len(transitions)
    actions = len(transitions[0])
    q = np.zeros((horizon, states, actions))
    value = np.zeros(states)
    for h in range(horizon):
        for s in range(states):
            for a in range(actions):
                q[h, s, a] = sum(p * (r + (0.0 if done else gamma * value[nxt])) for p, nxt, r, done in transitions[s][a])
        value = _decision_values(q[h], backup, None)
    return q


def synthetic_tree_q(tree: SyntheticTree, tau: float | None = None, *, backup: Backup | None = None) -> np.ndarray:
    """Root action values ``r(root, a) + V*(child)``, ``V*`` a node's ``backup.exact_values`` of its action values:
    ``backup`` where given, else the soft values if ``tau`` is given (:class:`~torchrl_reg.planning.backups.SoftmaxBackup`),
    Bellman (max) if ``None``. Leaves are worth their mean value (the evaluation noise has mean 0).
    """
    if backup is None:
        backup = BellmanBackup() if tau is None else SoftmaxBackup(tau=tau)
    elif tau is not None:
        raise ValueError(f"tau={tau} is the soft backup's temperature; {backup!r} is given: pass one of them")
    k = tree.num_actions
    first = tree.first_leaf
    values = tree.leaf_value.copy()
    for level in range(tree.depth, 0, -1):
        start = (k**level - 1) // (k - 1)
        q = (tree.edge_reward[start : start + k**level] + values).reshape(-1, k)
        if level == 1:
            return q
        values = _decision_values(q, backup, None)
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
