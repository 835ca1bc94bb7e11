r"""Closed-form claims of the papers, stated as functions so that tests and benchmarks check them.

Action gap of Munchausen VI
===========================

[MRL] (Vieillard, Pietquin, Geist, "Munchausen Reinforcement Learning", NeurIPS 2020, arXiv:2007.14430,
Sec. 4) studies the action gap. Define
:math:`\mathrm{gap}_*^\tau(s) = \max_a q_*^\tau(s,a) - q_*^\tau(s,\cdot)` for the optimal q-values of
the MDP regularized with entropy :math:`\tau`, :math:`\mathrm{gap}_k^{\alpha,\tau}(s) = \max_a q_k(s,a) - q_k(s,\cdot)`
for the k-th iterate of M-VI(alpha, tau) without error; the ratio sometimes quoted for its limit is

.. math:: \lim_k \mathrm{gap}_k^{\alpha,\tau} = \frac{1+\alpha}{1-\alpha}\,\mathrm{gap}_*^{(1-\alpha)\tau}.

**Under these definitions the constant is** :math:`1/(1-\alpha)`, **not** :math:`(1+\alpha)/(1-\alpha)`
(the two agree only at :math:`\alpha = 0`). Derivation, with :math:`t = (1-\alpha)\tau`:

1. M-VI(alpha, tau) produces the policies of MD-VI(alpha*tau, t) ([MRL] "Implicit KL
   regularization"; [IQ] Theorem 1), which converge to :math:`\pi_*^t = \mathrm{softmax}(q_*^t/t)`
   ([IQ] Section 3.1, citing Vieillard et al. 2020a, Thm. 2).
2. The M-VI policy is :math:`\pi_{k+1} = \mathrm{softmax}(q_k/\tau)`, i.e.
   :math:`\tau\ln\pi_{k+1} = q_k - V_k` with :math:`V_k = \tau\ln\sum_a\exp(q_k/\tau)` constant over actions.
3. Hence in the limit :math:`q_\infty - V_\infty = \tau\ln\pi_*^t = \frac{\tau}{t}(q_*^t - V_*^t)
   = \frac{1}{1-\alpha}(q_*^t - V_*^t)`, and since a gap is a difference of q-values within one state,
   :math:`\lim_k \mathrm{gap}_k^{\alpha,\tau} = \frac{1}{1-\alpha}\mathrm{gap}_*^{(1-\alpha)\tau}`.
4. Substituting :math:`q_\infty = V_\infty + \tau\ln\pi_*^t` in the M-VI update shows
   :math:`V_\infty = r + \gamma P V_\infty - t\ln\pi_*^t`, whose solution is :math:`V_*^t`: the
   limit is :math:`q_\infty = V_*^t + \tau\ln\pi_*^t` (:func:`munchausen_vi_limit`).

The same constant is the classical one of advantage learning, the tau -> 0 limit: the AL fixed point
is :math:`V_* + (q_* - V_*)/(1-\alpha)`. The factor :math:`(1+\alpha)/(1-\alpha)` is the gap of
:math:`q_\infty + \alpha\tau\ln\pi_\infty = V_*^t + (1+\alpha)\tau\ln\pi_*^t`, i.e. of the q-values with
one more Munchausen bonus added, not of the M-VI iterates. Both statements are checked numerically on
several MDPs in ``tests/tabular/test_theorems.py``.

Error propagation
=================

Bounds on :math:`\|q_* - q_{\pi}\|_\infty` for the approximate schemes of
:mod:`torchrl_reg.tabular.algorithms`. Each function returns a tensor ``bound`` of length ``K``
aligned with ``DPResult.policies``: ``bound[k]`` bounds the policy ``policies[k]``, the greedy policy
of :math:`q_k`, which has seen the errors ``errors[:k]`` (:math:`\epsilon_1 .. \epsilon_k`).
"""
from __future__ import annotations

import math

import torch

from torchrl_reg.tabular.algorithms import regularized_optimum
from torchrl_reg.tabular.mdp import FiniteMDP

__all__ = [
    "munchausen_action_gap_ratio",
    "munchausen_vi_limit",
    "approximate_vi_bound",
    "kl_only_mdvi_bound",
    "entropy_kl_mdvi_bound",
]


def munchausen_action_gap_ratio(alpha: float) -> float:
    r"""Exact limit of :math:`\mathrm{gap}_k^{\alpha,\tau} / \mathrm{gap}_*^{(1-\alpha)\tau}` for M-VI:
    :math:`1/(1-\alpha)` (see the module docstring for the derivation and for why the quoted
    :math:`(1+\alpha)/(1-\alpha)` does not hold under its definitions)."""
    alpha = float(alpha)
    if not 0 <= alpha < 1:
        raise ValueError(f"alpha must be in [0, 1) for a finite action-gap limit, got alpha={alpha}")
    return 1.0 / (1.0 - alpha)


def munchausen_vi_limit(mdp: FiniteMDP, *, alpha: float, tau: float) -> torch.Tensor:
    r"""Limit of the M-VI(alpha, tau) iterates, :math:`q_\infty = V_*^t + \tau\ln\pi_*^t` with
    :math:`t = (1-\alpha)\tau` (step 4 of the module docstring), from the regularized optimum."""
    gap_ratio = munchausen_action_gap_ratio(alpha)
    optimum = regularized_optimum(mdp, entropy_coef=(1.0 - alpha) * tau)
    return optimum.values.unsqueeze(-1) + gap_ratio * (optimum.q - optimum.values.unsqueeze(-1))


def _norms(errors: torch.Tensor) -> torch.Tensor:
    return errors.abs().flatten(1).max(-1).values


def _discounted_sums_before(norms: torch.Tensor, gamma: float) -> torch.Tensor:
    """``out[k] = sum_{j=1}^{k} gamma^(k-j) norms[j-1]`` (errors ``[:k]``), ``out[0] = 0``."""
    out = torch.zeros_like(norms)
    for k in range(1, norms.shape[0]):
        out[k] = gamma * out[k - 1] + norms[k - 1]
    return out


def approximate_vi_bound(errors: torch.Tensor, *, gamma: float, v_max: float) -> torch.Tensor:
    r"""Approximate VI ([MRL]'s implicit KL regularization analysis, the DQN case):

    .. math:: \|q_* - q_{\pi_{k+1}}\|_\infty \le \frac{2\gamma}{(1-\gamma)^2}\Big((1-\gamma)\sum_{j=1}^k
              \gamma^{k-j}\|\epsilon_j\|_\infty\Big) + \frac{2}{1-\gamma}\gamma^k v_{\max}

    for :math:`\pi_{k+1}` greedy w.r.t. :math:`q_k` (``policies[k]``), :math:`q_0 = 0` and
    :math:`v_{\max} \ge \|q_*\|_\infty` (``r_max / (1 - gamma)``). The error term is a discounted sum
    of error *norms*: i.i.d. errors leave an error floor.
    """
    norms = _norms(errors)
    k = torch.arange(norms.shape[0], dtype=torch.float64)
    return 2 * gamma / (1 - gamma) * _discounted_sums_before(norms, gamma) + 2 / (1 - gamma) * gamma**k * v_max


def kl_only_mdvi_bound(
    errors: torch.Tensor, *, gamma: float, r_max: float, kl_coef: float, num_actions: int
) -> torch.Tensor:
    r"""Approximate MD-VI with KL only (M-VI with alpha = 1, IQ-DP with alpha = 1), [IQ] Theorem 2
    case 2 with the explicit constant of [MRL]'s implicit KL regularization analysis:

    .. math:: \|q_* - q_{\pi_{k+1}}\|_\infty \le \frac{2}{1-\gamma}\Big\|\frac1k\sum_{j=1}^k\epsilon_j\Big\|_\infty
              + \frac{4}{(1-\gamma)^2}\frac{r_{\max} + \lambda\ln|\mathcal A|}{k}

    with :math:`\lambda` = ``kl_coef`` (tau for M-VI(1, tau)). The error term is the norm of the
    *average* error: i.i.d. zero-mean errors are averaged out. ``bound[0]`` is ``inf``.
    """
    num_iterations = errors.shape[0]
    k = torch.arange(num_iterations, dtype=torch.float64)
    sums = torch.cat([torch.zeros_like(errors[:1]), errors.cumsum(0)[:-1]])
    average_norm = _norms(sums) / k.clamp(min=1)
    bias = 4 / (1 - gamma) ** 2 * (r_max + kl_coef * math.log(num_actions)) / k
    return 2 / (1 - gamma) * average_norm + bias


def entropy_kl_mdvi_bound(errors: torch.Tensor, *, alpha: float, gamma: float) -> torch.Tensor:
    r"""Leading term of [IQ] Theorem 2 case 1 (``0 < alpha < 1``, entropy and KL):

    .. math:: \|Q_*^{(1-\alpha)\tau} - Q_{\pi_{k+1}}^{(1-\alpha)\tau}\|_\infty \le \frac{2}{(1-\gamma)^2}\Big((1-\gamma)
              \sum_{j=1}^k\gamma^{k-j}\|E_j\|_\infty\Big) + o(1/k), \quad
              E_j = (1-\alpha)\sum_{i=1}^j \alpha^{j-i}\epsilon_i

    The :math:`o(1/k)` term is not explicit in the paper, so only the leading term is returned; it
    bounds the runs once the error-free scheme has converged. The errors enter through a moving
    average :math:`E_j`, which reduces their variance by a factor :math:`(1-\alpha)/(1+\alpha)`.
    """
    averaged = torch.zeros_like(errors)
    running = torch.zeros_like(errors[0])
    for j in range(errors.shape[0]):
        running = alpha * running + (1 - alpha) * errors[j]
        averaged[j] = running
    return 2 / (1 - gamma) * _discounted_sums_before(_norms(averaged), gamma)
