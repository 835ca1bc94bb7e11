r"""MDAC's tabular scheme: advantage learning with a bounded (soft) advantage, exact in float64.

Paper: [MDAC] Iwaki, "Mirror Descent Actor Critic via Bounded Advantage Learning", arXiv:2502.03854, 2025.
In the tabular case the actor's scaled log-policy is the soft advantage, :math:`\alpha\ln\pi_{k+1} = q_k - V_k`
with :math:`\pi_{k+1} = \mathrm{softmax}(q_k/\alpha)` and :math:`V_k = \alpha\ln\sum_a\exp(q_k/\alpha)`, so bounding the
log-density terms of MDAC's target bounds the advantage terms of Munchausen VI:

.. math::
    q_{k+1} = r + \beta f_c(A_k) + \gamma P\langle\pi_{k+1}, q_k - f_s(A_k)\rangle + \epsilon_{k+1},
    \qquad A_k = \alpha\ln\pi_{k+1} = q_k - V_k

(:func:`bounded_advantage_learning`), with :math:`f_c` the bound of the current (Munchausen) term and :math:`f_s`
that of the successor (entropy) term; MDAC takes :math:`f_c = f_s = f`, its ablations bound one of them. ``bound="none"`` (:math:`f(x) = x`) is M-VI(beta, alpha) of [MRL]; ``alpha = 0``
is the hard limit, :math:`A_k = q_k - \max_b q_k`, :math:`\pi_{k+1}` greedy and the bootstrap
:math:`\max_{a'} q_k` (:math:`f(0) = 0`), which with :math:`f(x) = x` is advantage learning (Bellemare et al.,
"Increasing the Action Gap: New Operators for Reinforcement Learning", AAAI 2016, arXiv:1512.04860).

What is checked in ``tests/tabular/test_mdac.py`` (derivations below, not taken from [MDAC]'s text):

* **Optimality and gap, hard limit.** If :math:`x \le f(x) \le 0` for :math:`x \le 0` (``"tanh"`` / ``"clip"`` with
  ``bound_scale >= 1``) and :math:`\beta\in[0,1)`, the operator :math:`\mathcal T_f q = \mathcal T q + \beta f(q - \max q)`
  satisfies :math:`\mathcal T q - \beta(\max q - q) \le \mathcal T_f q \le \mathcal T q`, the two conditions of
  Bellemare et al. 2016, Theorem 1: it is optimality-preserving (:math:`\max_a q_k \to V^*`) and
  gap-increasing.
* **The limit, hard case** (:func:`bounded_advantage_learning_limit`). Once :math:`\max q_k = V^*`, the
  advantage :math:`g_k = q_k - V^*` of a non-greedy action follows :math:`g_{k+1} = d + \beta f(g_k)`,
  :math:`d = Q^* - V^*`, a contraction when :math:`\beta\,\mathrm{Lip}(f) < 1`; its fixed point solves
  :math:`g - \beta f(g) = d`, and :math:`\beta f(g) \in [\beta g, 0]` gives :math:`d/(1-\beta) \le g \le d`: the limit's
  action gap lies between the optimal gap (VI) and the advantage-learning gap :math:`\mathrm{gap}^*/(1-\beta)`, and
  a bounded :math:`f` adds at most :math:`\beta\sup|f|` to it (``"clip"`` adds exactly :math:`\beta` where
  :math:`\mathrm{gap}^* + \beta \ge c`).
* **Per-term bounds, hard case.** At ``alpha = 0`` the successor term is :math:`f_s(A_k)` at the greedy action,
  where :math:`A_k = 0` and :math:`f_s(0) = 0`: the iterates do not depend on :math:`f_s`, and the limit above holds
  with :math:`f = f_c`. Bounding only the successor term is advantage learning there (action gap
  :math:`\mathrm{gap}^*/(1-\beta)`); bounding only the current term is MDAC's limit.
* **Reduction.** ``bound="none"`` gives M-VI's iterates (and AL's at ``alpha = 0``) to float64 precision.
"""
from __future__ import annotations

import torch

from torchrl_reg.functional import LOG_DENSITY_BOUNDS, bound_log_density, soft_value_and_scaled_log_policy
from torchrl_reg.tabular.algorithms import (
    DPResult,
    _add_error,
    _check_errors,
    _initial_q,
    greedy_policy,
    regularized_optimum,
)
from torchrl_reg.tabular.mdp import FiniteMDP
from torchrl_reg.validation import check_choice, check_nonnegative, check_positive, check_unit_interval

__all__ = ["bounded_advantage_learning", "bounded_advantage_learning_limit"]


def bounded_advantage_learning(
    mdp: FiniteMDP,
    *,
    beta: float,
    alpha: float,
    num_iterations: int,
    bound: str = "tanh",
    bound_scale: float = 10.0,
    bound_current: str | None = None,
    bound_current_scale: float | None = None,
    bound_successor: str | None = None,
    bound_successor_scale: float | None = None,
    q0: torch.Tensor | None = None,
    errors: torch.Tensor | None = None,
) -> DPResult:
    r"""(Approximate) MDAC's tabular scheme (module docstring): ``beta`` the Munchausen coefficient in ``[0, 1)``,
    ``alpha >= 0`` the temperature (0: the hard limit), ``bound`` / ``bound_scale`` the bounding function
    :func:`~torchrl_reg.functional.bound_log_density` of both terms, ``bound_current`` / ``bound_successor``
    (and their ``_scale``) that of one term (``None``: the shared one), as :class:`~torchrl_reg.objectives.MDACLoss`
    takes them. ``policies[k]`` is :math:`\pi_{k+1}` (softmax, or greedy at ``alpha = 0``), ``q[k]`` is
    :math:`q_{k+1}`; ``errors[k]`` is added to :math:`q_{k+1}`."""
    beta = check_unit_interval("beta", beta, closed_right=False)
    alpha = check_nonnegative("alpha", alpha)
    (f_c, c_c), (f_s, c_s) = _term_bounds(bound, bound_scale, bound_current, bound_current_scale, bound_successor, bound_successor_scale)
    errors = _check_errors(mdp, errors, num_iterations)
    q = _initial_q(mdp, q0)
    policies, qs = [], []
    for k in range(num_iterations):
        if alpha == 0:
            policy = greedy_policy(q)
            advantage = q - q.max(-1, keepdim=True).values
        else:
            _, advantage = soft_value_and_scaled_log_policy(q, alpha)
            policy = torch.exp(advantage / alpha)
        current = bound_log_density(advantage, bound=f_c, scale=c_c)
        next_value = (policy * (q - bound_log_density(advantage, bound=f_s, scale=c_s))).sum(-1)
        q = _add_error(mdp.rewards + beta * current + mdp.gamma * mdp.expected_next(next_value), errors, k)
        policies.append(policy)
        qs.append(q)
    return DPResult(torch.stack(policies), torch.stack(qs))


def _term_bounds(
    bound: str, scale: float, current: str | None, current_scale: float | None, successor: str | None,
    successor_scale: float | None,
) -> tuple[tuple[str, float], tuple[str, float]]:
    """``((f_c, c_c), (f_s, c_s))``, each term's bound and scale (``None``: the shared ones), checked."""
    check_choice("bound", bound, LOG_DENSITY_BOUNDS)
    scale = check_positive("bound_scale", scale)
    terms = []
    for name, term, term_scale in (("current", current, current_scale), ("successor", successor, successor_scale)):
        term = bound if term is None else check_choice(f"bound_{name}", term, LOG_DENSITY_BOUNDS)
        term_scale = scale if term_scale is None else check_positive(f"bound_{name}_scale", term_scale)
        terms.append((term, term_scale))
    return terms[0], terms[1]


def bounded_advantage_learning_limit(
    mdp: FiniteMDP, *, beta: float, bound: str = "tanh", bound_scale: float = 10.0, tol: float = 1e-13
) -> torch.Tensor:
    r"""The limit of the hard (``alpha = 0``) scheme, :math:`q_\infty = V^* + g` with :math:`g` the solution of
    :math:`g - \beta f(g) = Q^* - V^*` (module docstring; ``bound`` / ``bound_scale`` are :math:`f = f_c`, the
    current term's: the successor term's bound does not move the hard scheme), computed from the exact optimum by bisection on
    :math:`[d/(1-\beta), d]`, which holds it when :math:`x \le f(x) \le 0` for :math:`x \le 0` and where
    :math:`g \mapsto g - \beta f(g)` is increasing (:math:`\mathrm{Lip}(f) \le 1`): ``bound="none"`` or
    ``bound_scale >= 1`` (refused otherwise)."""
    beta = check_unit_interval("beta", beta, closed_right=False)
    check_choice("bound", bound, LOG_DENSITY_BOUNDS)
    bound_scale = check_positive("bound_scale", bound_scale)
    if bound != "none" and bound_scale < 1:
        raise ValueError(
            f"the limit is characterized for x <= f(x) <= 0 on x <= 0, i.e. bound_scale >= 1 (or bound='none'), "
            f"got bound={bound!r}, bound_scale={bound_scale}"
        )
    optimum = regularized_optimum(mdp, entropy_coef=0.0)
    v = optimum.values.unsqueeze(-1)
    d = optimum.q - v
    low, high = d / (1.0 - beta), d.clone()
    while (high - low).max() > tol:
        mid = (low + high) / 2
        above = mid - beta * bound_log_density(mid, bound=bound, scale=bound_scale) > d
        high = torch.where(above, mid, high)
        low = torch.where(above, low, mid)
    return v + (low + high) / 2
