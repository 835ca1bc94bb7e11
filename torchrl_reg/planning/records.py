"""The records the tree searches' parts read: what a tree policy sees at a node, what a backup sees of an edge, and
what a backup returns. The parts are functions of these records that return values; the two engines
(:class:`~torchrl_reg.planning.search.TreeSearch`, :class:`~torchrl_reg.planning.batched.BatchedTreeSearch`) fill
them from their trees and do every write, as mctx's parts read its documented ``Tree`` and rlax's take named inputs.

Each record has a scalar form (one node or edge of a :class:`~torchrl_reg.planning.tree.SearchTree`: plain numbers,
a node's per-action statistics as a list or a numpy row ``[A]``) and a row form (``R`` nodes or edges at once, one per
tree of a :class:`~torchrl_reg.planning.batched.BatchedTree` at one depth level: tensors ``[R]`` and ``[R, A]``).
``A`` is the number of actions. A field a part does not declare in its ``reads`` may be ``None``: the engines fill
only what the part reads.

:class:`NodeStats` (a tree policy's ``select`` / ``probs`` / ``select_rows`` / ``probs_rows``):

============  ===========================  ====================================  =========================================
field         scalar                       rows                                  what it is
============  ===========================  ====================================  =========================================
``q``         list of float ``[A]``        float ``[R, A]``                      the values searched on (the backup's
                                                                                 ``values``: ``Q`` or ``Q_B``)
``total``     float                        int64 ``[R]``                         ``N(s) = sum_a N(s, a)``
``visits``    list of int ``[A]``          int64 ``[R, A]``                      ``N(s, a)`` (where ``reads`` has
                                                                                 ``"visits"``)
``entropy_q`` list of float ``[A]``        float ``[R, A]``                      DENTS's ``H_Q(s, a)`` (where ``reads`` has
                                                                                 ``"entropy_q"``)
``counts``    (unused)                     float ``[R, C]``                      rows ``total`` of the policy's
                                                                                 ``count_table`` (``None``: computed)
============  ===========================  ====================================  =========================================

:class:`EdgeStats` (a backup's ``update`` / ``update_rows``), edge ``(s, a)`` after its ``n``-th visit; the node's
visit counts, its Bellman row and value are already updated for this visit, its ``q`` and ``entropy_q`` rows not:

===============  ======================  ==================  ================================================================
field            scalar                  rows                what it is
===============  ======================  ==================  ================================================================
``action``       int                     int64 ``[R]``       ``a``
``n``            int                     int64 ``[R]``       ``N(s, a)``, this visit counted
``reward``       float                   float ``[R]``       this visit's reward
``mean_reward``  float                   float ``[R]``       the mean of the rewards observed on the edge
``gamma``        float                   float               the discount
``active``       (always ``True``)       bool ``[R]``        whether the path is still in its tree at this level (rows of
                                                             a path that ended above are the tree's scratch node and edge)
``v_next``       float                   float ``[R]``       the next state's value ``V(s')``, a chance edge's averaged over
                                                             its outcomes by arrivals (``"v_next"``)
``h_next``       float                   float ``[R]``       the next state's entropy ``H_V(s')``, alike (``"h_next"``)
``ret``          float                   float ``[R]``       the return below the edge (the evaluation of the node the path
                                                             ended in, discounted up to ``s'``) (``"ret"``)
``q_edge``       float                   float ``[R]``       the edge's ``Q(s, a)`` before this update (``"q_edge"``)
``q``            numpy float ``[A]``     float ``[R, A]``    the node's ``Q`` row before this update (``"q"``)
``visits``       numpy int64 ``[A]``     int64 ``[R, A]``    the node's ``N(s, .)`` (``"visits"``)
``total``        int                     int64 ``[R]``       ``N(s)`` (``"total"``)
``q_bellman``    list of float ``[A]``   float ``[R, A]``    the node's ``Q_B`` row after this update (filled wherever the
                                                             search keeps Bellman values: a Bellman backup, or a
                                                             ``bellman_value`` recommendation)
``bellman``      float                   float ``[R]``       ``V_B(s)`` after this update (``"bellman"``)
``entropy_q``    numpy float ``[A]``     float ``[R, A]``    the node's ``H_Q`` row before this update (``"entropy_q"``)
``counts``       (unused)                float ``[R, C]``    rows ``total`` of the tree policy's ``count_table``
                                                             (``"total"``)
===============  ======================  ==================  ================================================================

The scalar rows are the tree's own (read them, never write them). :class:`BackupResult` is what a backup returns, the
same shapes (a float, or ``[R]``); ``None`` leaves the statistic as it is. The engine writes ``q`` to the edge,
``value`` and ``entropy`` to the node, ``entropy_q`` to the edge, and passes ``ret`` up as the return below the
parent edge.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

__all__ = ["BackupResult", "EdgeStats", "NodeStats", "replaced"]

#: A record from all its fields in order, ``make_record(NodeStats, (q, total, visits, entropy_q, counts))``:
#: ``NamedTuple._make`` without its length check, for the single-tree search's hot path (the engines and the scalar
#: backups build every record with it).
make_record = tuple.__new__


class NodeStats(NamedTuple):
    """What a tree policy reads at one node (scalar) or ``R`` nodes (rows); the module docstring has the shapes."""

    #: the values searched on (``Q``, or ``Q_B`` for a Bellman backup): ``[A]`` / ``[R, A]``
    q: Any
    #: ``N(s)``: a float / int64 ``[R]``
    total: Any
    #: ``N(s, a)``: ``[A]`` / int64 ``[R, A]``, where the policy's ``reads`` has ``"visits"``
    visits: Any = None
    #: DENTS's ``H_Q(s, a)``: ``[A]`` / ``[R, A]``, where the policy's ``reads`` has ``"entropy_q"``
    entropy_q: Any = None
    #: rows ``total`` of the policy's ``count_table`` ``[R, C]`` (rows form; ``None``: computed from ``total``)
    counts: Any = None


class EdgeStats(NamedTuple):
    """What a backup reads of one edge (scalar) or ``R`` edges at one level (rows); the module docstring has the shapes.

    The first six are always filled; the others where the backup's ``reads`` (scalar) or ``reads_rows`` (rows) names
    them."""

    #: the action ``a``: an int / int64 ``[R]``
    action: Any
    #: ``N(s, a)`` after this visit: an int / int64 ``[R]``
    n: Any
    #: this visit's reward: a float / ``[R]``
    reward: Any
    #: the mean reward of the edge: a float / ``[R]``
    mean_reward: Any
    #: the discount (a float in both forms)
    gamma: float
    #: whether the path is in its tree at this level: ``True`` / bool ``[R]``
    active: Any = True
    #: ``V(s')``, chance-averaged: a float / ``[R]``
    v_next: Any = None
    #: ``H_V(s')``, chance-averaged: a float / ``[R]``
    h_next: Any = None
    #: the return below the edge: a float / ``[R]``
    ret: Any = None
    #: the edge's ``Q(s, a)`` before this update: a float / ``[R]``
    q_edge: Any = None
    #: the node's ``Q`` row before this update: ``[A]`` / ``[R, A]``
    q: Any = None
    #: the node's visit counts ``N(s, .)``: ``[A]`` / int64 ``[R, A]``
    visits: Any = None
    #: ``N(s)``: an int / int64 ``[R]``
    total: Any = None
    #: the node's ``Q_B`` row after this update: ``[A]`` / ``[R, A]`` (wherever the search keeps Bellman values)
    q_bellman: Any = None
    #: ``V_B(s)`` after this update: a float / ``[R]``
    bellman: Any = None
    #: the node's ``H_Q`` row before this update: ``[A]`` / ``[R, A]``
    entropy_q: Any = None
    #: rows ``total`` of the tree policy's ``count_table`` ``[R, C]`` (rows form, filled with ``total``)
    counts: Any = None


class BackupResult(NamedTuple):
    """What a backup returns for one edge (floats) or ``R`` edges (``[R]`` tensors); ``None``: unchanged."""

    #: the edge's new ``Q(s, a)``
    q: Any = None
    #: the node's new value ``V(s)``
    value: Any = None
    #: the return passed up (the return below the parent edge)
    ret: Any = None
    #: the edge's new ``H_Q(s, a)`` (DENTS)
    entropy_q: Any = None
    #: the node's new ``H_V(s)`` (DENTS)
    entropy: Any = None


def replaced(row: Any, action: Any, value: Any) -> Any:
    """A copy of a node's row with the entry of ``action`` set to ``value``: the row as it is after an edge's update.

    A numpy row or a list ``[A]`` (``action`` an int), or tensors: ``row`` ``[R, A]``, ``action`` and ``value`` ``[R]``."""
    if isinstance(row, (np.ndarray, list)):  # first: the single-tree search's hot path
        out = row.copy()
        out[action] = value
        return out
    return row.scatter(1, action.unsqueeze(-1), value.unsqueeze(-1))
