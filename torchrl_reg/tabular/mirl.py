r"""Tabular MIRL: soft Q-learning with a learned marginal action prior, as exact dynamic programming.

Reference: Grau-Moya, Leibfried and Vrancx, "Soft Q-Learning with Mutual-Information
Regularization", ICLR 2019 (OpenReview HyEtjoCqFX). Notation of the paper: inverse temperature :math:`\beta`, prior :math:`\rho(a)` over actions (state-independent).

The building blocks, usable one by one (the MIRL loss and its bridge test use them):

* :func:`prior_soft_value` -- :math:`\frac1\beta\log\sum_{a'}\rho(a')\exp(\beta Q(s', a'))`;
* :func:`mirl_soft_backup` -- the soft backup with prior ([MIRL] Sec. 3):
  :math:`(T^\rho_{soft}Q)(s,a) = r(s,a) + \gamma\,\mathbb E_{s'}\frac1\beta\log\sum_{a'}\rho(a')\exp(\beta Q(s',a'))`;
* :func:`mirl_policy` -- :math:`\pi(a|s)\propto\rho(a)\exp(\beta Q(s,a))` (the optimal
  policy for a fixed action prior, [MIRL] Sec. 3);
* :func:`optimal_prior` -- for a fixed policy, :math:`\rho^*(a)\propto\sum_s\sum_t\gamma^t\nu_t(s)\pi(a|s)`, the
  action marginal under the discounted state visitation (the optimal action prior
  for a fixed policy, [MIRL] Sec. 3); :func:`stationary_state_distribution` gives the gamma -> 1 weighting;
* :func:`mirl_prior_update` -- :math:`\rho_{i+1} = (1-\alpha_\rho)\rho_i + \alpha_\rho\sum_s\nu(s)\pi_i(\cdot|s)`, the
  expectation over :math:`s_i\sim\nu` of the sampled update of [MIRL] Algorithm 1, :math:`(1-\alpha_\rho)\rho_i + \alpha_\rho\pi_i(\cdot|s_i)`;
* :func:`linear_beta_schedule` -- :math:`\beta_i = c\cdot i` (the tabular schedule used here);
* :func:`mirl_value_iteration` -- the alternating scheme (policy, prior update, soft backup) run to
  convergence with exact expectations.

As :math:`\beta\to\infty` with :math:`\rho > 0`, :math:`\frac1\beta\log\sum\rho\exp(\beta Q)\to\max Q` and the backup
becomes the Bellman optimality operator (value iteration); with :math:`\rho` uniform it is soft
Q-iteration with temperature :math:`1/\beta` up to the constant :math:`\gamma\ln|\mathcal A|/(\beta(1-\gamma))`.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from torchrl_reg.functional import boltzmann_policy, soft_value
from torchrl_reg.validation import check_beta, check_rate
from torchrl_reg.tabular.algorithms import _initial_q
from torchrl_reg.tabular.mdp import FiniteMDP

__all__ = [
    "MIRLResult",
    "prior_soft_value",
    "mirl_policy",
    "mirl_soft_backup",
    "action_marginal",
    "discounted_state_visitation",
    "stationary_state_distribution",
    "optimal_prior",
    "mirl_prior_update",
    "linear_beta_schedule",
    "mirl_value_iteration",
]


@dataclass(frozen=True)
class MIRLResult:
    """Iterates of :func:`mirl_value_iteration`, stacked over iterations ``i = 1 .. K``.

    Attributes:
        policies: ``[K, S, A]``; ``policies[i-1]`` is :math:`\\pi_i \\propto \\rho_i\\exp(\\beta_i Q_i)`.
        q: ``[K, S, A]``; ``q[i-1]`` is :math:`Q_{i+1}`, the q-values after the backup of iteration ``i``.
        priors: ``[K, A]``; ``priors[i-1]`` is :math:`\\rho_{i+1}`, the prior used by that backup.
        betas: ``[K]``; ``betas[i-1]`` is :math:`\\beta_i`.
    """

    policies: torch.Tensor
    q: torch.Tensor
    priors: torch.Tensor
    betas: torch.Tensor


def _check_prior(prior: torch.Tensor, num_actions: int) -> torch.Tensor:
    prior = torch.as_tensor(prior, dtype=torch.float64)
    if prior.shape != (num_actions,):
        raise ValueError(f"prior must have shape [A] = [{num_actions}], got {tuple(prior.shape)}")
    if (prior < 0).any() or abs(prior.sum().item() - 1) > 1e-9:
        raise ValueError(
            f"prior must be a distribution over actions (entries >= 0 summing to 1), "
            f"got min {prior.min().item()} and sum {prior.sum().item()}"
        )
    return prior


def prior_soft_value(q: torch.Tensor, prior: torch.Tensor, beta: float) -> torch.Tensor:
    r""":math:`\frac1\beta\log\sum_a\rho(a)\exp(\beta q(\cdot,a))`, the soft value with prior (log-sum-exp
    of :math:`q + \ln\rho/\beta` at temperature :math:`1/\beta`, :func:`~torchrl_reg.functional.soft_value`)."""
    tau = 1.0 / check_beta(beta)
    return soft_value(q + tau * torch.log(prior), tau)


def mirl_policy(q: torch.Tensor, prior: torch.Tensor, beta: float) -> torch.Tensor:
    r""":math:`\pi(a|s) = \rho(a)\exp(\beta q(s,a)) / \sum_b\rho(b)\exp(\beta q(s,b))` ([MIRL], the optimal
    policy for a fixed prior)."""
    tau = 1.0 / check_beta(beta)
    return boltzmann_policy(q + tau * torch.log(prior), tau)


def mirl_soft_backup(mdp: FiniteMDP, q: torch.Tensor, prior: torch.Tensor, beta: float) -> torch.Tensor:
    r"""Soft backup with prior ([MIRL] Sec. 3), with the expectation over
    :math:`s'` taken exactly:
    :math:`(T^\rho_{soft}Q)(s,a) = r(s,a) + \gamma\sum_{s'}P(s'|s,a)\frac1\beta\log\sum_{a'}\rho(a')\exp(\beta Q(s',a'))`."""
    prior = _check_prior(prior, mdp.num_actions)
    return mdp.rewards + mdp.gamma * mdp.expected_next(prior_soft_value(q, prior, beta))


def action_marginal(policy: torch.Tensor, state_weights: torch.Tensor) -> torch.Tensor:
    """:math:`\\sum_s w(s)\\pi(\\cdot|s)` for a state distribution ``w [S]`` and a policy ``[S, A]``."""
    return torch.einsum("s,sa->a", state_weights.to(torch.float64), policy.to(torch.float64))


def discounted_state_visitation(
    mdp: FiniteMDP, policy: torch.Tensor, initial_distribution: torch.Tensor | None = None
) -> torch.Tensor:
    r"""Normalized discounted state visitation :math:`d(s) = (1-\gamma)\sum_t\gamma^t\nu_t(s)` of ``policy``
    from ``initial_distribution`` (default: the MDP's), by one linear solve
    :math:`d^\top = (1-\gamma)\nu_0^\top(I - \gamma P_\pi)^{-1}`."""
    nu0 = mdp.initial_distribution if initial_distribution is None else torch.as_tensor(initial_distribution, dtype=torch.float64)
    eye = torch.eye(mdp.num_states, dtype=torch.float64)
    system = (eye - mdp.gamma * mdp.policy_transitions(policy)).T
    return (1 - mdp.gamma) * torch.linalg.solve(system, nu0)


def stationary_state_distribution(mdp: FiniteMDP, policy: torch.Tensor) -> torch.Tensor:
    r"""Stationary distribution :math:`\mu_\pi^\top = \mu_\pi^\top P_\pi` (a standard definition),
    the gamma -> 1 limit of the visitation weighting. Raises if it is not unique."""
    p_pi = mdp.policy_transitions(policy)
    system = (torch.eye(mdp.num_states, dtype=torch.float64) - p_pi).T.clone()
    # One balance equation is redundant; replace it by the normalization sum(mu) = 1.
    system[-1] = 1.0
    rhs = torch.zeros(mdp.num_states, dtype=torch.float64)
    rhs[-1] = 1.0
    if torch.linalg.matrix_rank(system).item() < mdp.num_states:
        raise ValueError("the policy's state chain has no unique stationary distribution (several closed classes)")
    return torch.linalg.solve(system, rhs)


def optimal_prior(
    mdp: FiniteMDP, policy: torch.Tensor, initial_distribution: torch.Tensor | None = None
) -> torch.Tensor:
    r"""Optimal prior for a fixed policy ([MIRL], the action marginal of the
    policy): :math:`\rho^*(a)\propto\sum_s\sum_t\gamma^t\nu_t(s)\pi(a|s)`, which maximizes
    :math:`\mathbb E\sum_t\gamma^t(r - \frac1\beta\log\frac{\pi(a_t|s_t)}{\rho(a_t)})` over priors, whatever beta."""
    return action_marginal(policy, discounted_state_visitation(mdp, policy, initial_distribution))


def mirl_prior_update(
    prior: torch.Tensor, policy: torch.Tensor, state_weights: torch.Tensor, prior_lr: float
) -> torch.Tensor:
    r""":math:`\rho_{i+1} = (1-\alpha_\rho)\rho_i + \alpha_\rho\sum_s w(s)\pi_i(\cdot|s)` over all actions at once
    ([MIRL] Algorithm 1's prior update, in expectation over :math:`s_i \sim w`); stays normalized."""
    prior_lr = check_rate("prior_lr", prior_lr)
    return (1 - prior_lr) * prior + prior_lr * action_marginal(policy, state_weights)


def linear_beta_schedule(c: float) -> Callable[[int], float]:
    """A linear tabular beta schedule, :math:`\\beta_i = c\\cdot i` for iterations ``i >= 1``."""
    c = check_beta(c)
    return lambda i: c * i


def _state_weights(
    mdp: FiniteMDP, policy: torch.Tensor, state_weighting: str | torch.Tensor
) -> torch.Tensor:
    if isinstance(state_weighting, torch.Tensor):
        return state_weighting.to(torch.float64)
    if state_weighting == "visitation":
        return discounted_state_visitation(mdp, policy)
    if state_weighting == "stationary":
        return stationary_state_distribution(mdp, policy)
    if state_weighting == "uniform":
        return torch.full((mdp.num_states,), 1.0 / mdp.num_states, dtype=torch.float64)
    raise ValueError(
        f"state_weighting must be 'visitation', 'stationary', 'uniform' or a [S] tensor, got {state_weighting!r}"
    )


def mirl_value_iteration(
    mdp: FiniteMDP,
    *,
    beta: float | Callable[[int], float],
    num_iterations: int,
    prior_lr: float = 1.0,
    q_lr: float = 1.0,
    prior0: torch.Tensor | None = None,
    q0: torch.Tensor | None = None,
    state_weighting: str | torch.Tensor = "visitation",
) -> MIRLResult:
    r"""The alternating MIRL scheme ([MIRL] Algorithm 1 in the tabular case) with exact expectations.

    For ``i = 1 .. num_iterations``:

    .. math::
        \pi_i &\propto \rho_i\exp(\beta_i Q_i) \\
        \rho_{i+1} &= (1-\alpha_\rho)\rho_i + \alpha_\rho\textstyle\sum_s\nu_i(s)\pi_i(\cdot|s) \\
        Q_{i+1} &= (1-\alpha_Q)Q_i + \alpha_Q T^{\rho_{i+1}}_{soft,\beta_i}Q_i

    Args:
        beta: a constant inverse temperature or a schedule ``i -> beta_i`` (e.g.
            :func:`linear_beta_schedule`, :math:`\beta_i = c\cdot i`).
        prior_lr: :math:`\alpha_\rho \in (0, 1]`.
        q_lr: :math:`\alpha_Q \in (0, 1]`; 1 is a full backup (soft value iteration with prior).
        prior0: :math:`\rho_1` (uniform by default).
        q0: :math:`Q_1` (zeros by default).
        state_weighting: the state distribution :math:`\nu_i` of the prior update: ``"visitation"``
            (discounted visitation of :math:`\pi_i` from ``mdp.initial_distribution``, which makes the
            fixed point :func:`optimal_prior`), ``"stationary"`` (the gamma -> 1 weighting),
            ``"uniform"`` or a fixed ``[S]`` tensor (e.g. a replay buffer's state frequencies).
    """
    if int(num_iterations) != num_iterations or num_iterations < 1:
        raise ValueError(f"num_iterations must be an integer >= 1, got num_iterations={num_iterations}")
    schedule = beta if callable(beta) else (lambda i, b=check_beta(beta): b)
    prior_lr = check_rate("prior_lr", prior_lr)
    q_lr = check_rate("q_lr", q_lr)
    prior = (
        torch.full((mdp.num_actions,), 1.0 / mdp.num_actions, dtype=torch.float64)
        if prior0 is None
        else _check_prior(prior0, mdp.num_actions)
    )
    if isinstance(state_weighting, torch.Tensor) and state_weighting.shape != (mdp.num_states,):
        raise ValueError(f"state_weighting must have shape [S] = [{mdp.num_states}], got {tuple(state_weighting.shape)}")
    q = _initial_q(mdp, q0)
    policies, qs, priors, betas = [], [], [], []
    for i in range(1, int(num_iterations) + 1):
        beta_i = check_beta(schedule(i))
        policy = mirl_policy(q, prior, beta_i)
        prior = mirl_prior_update(prior, policy, _state_weights(mdp, policy, state_weighting), prior_lr)
        q = (1 - q_lr) * q + q_lr * mirl_soft_backup(mdp, q, prior, beta_i)
        policies.append(policy)
        qs.append(q)
        priors.append(prior)
        betas.append(beta_i)
    return MIRLResult(torch.stack(policies), torch.stack(qs), torch.stack(priors), torch.tensor(betas, dtype=torch.float64))
