r"""Exact (regularized) dynamic programming on a :class:`~torchrl_reg.tabular.mdp.FiniteMDP`, in float64.

Papers:

* [MRL] Vieillard, Pietquin, Geist, "Munchausen Reinforcement Learning", NeurIPS 2020, arXiv:2007.14430: M-VI ("Implicit KL regularization"),
  the advantage-learning limit and the action gap ("Increasing the action gap").
* [IQ] Vieillard et al., "Implicitly Regularized RL with Implicit Q-Values", AISTATS 2022, arXiv:2108.07041: IQ-DP (Eq. 3), its equivalence
  to MD-VI (Theorem 1) and error propagation (Theorem 2); notation of Section 3:
  :math:`\langle u, v\rangle(s) = \sum_a u(s,a) v(s,a)`, :math:`PV(s,a) = \sum_{s'} P(s'|s,a)V(s')`,
  :math:`\mathcal H(\pi) = -\langle\pi, \ln\pi\rangle`, :math:`KL(\pi\|\mu) = \langle\pi, \ln\pi - \ln\mu\rangle`.
* [MaxEnt] Haarnoja, Tang, Abbeel, Levine, "Reinforcement Learning with Deep Energy-Based Policies", ICML 2017, arXiv:1702.08165: soft Q-iteration.
* [AL] Bellemare et al. 2016, Increasing the Action Gap (advantage learning and its persistent
  variant), the tau -> 0 limit of M-VI ([MRL]).

Every algorithm runs ``num_iterations`` iterations ``k = 0 .. K-1`` of a greedy step followed by
an evaluation step and returns a :class:`DPResult` whose ``policies[k]`` is the greedy policy
:math:`\pi_{k+1}` computed from :math:`q_k` (and :math:`\pi_k` for MD-VI) and whose ``q[k]`` is
:math:`q_{k+1}`, the result of the evaluation step that uses :math:`\pi_{k+1}`; ``q0`` is the
initial :math:`q_0` (zeros by default). ``errors[k]`` (shape ``[K, S, A]``), when given, is added
to :math:`q_{k+1}`: the approximate scheme of the error-propagation results
(:math:`\epsilon_{k+1}` of [MRL] "Implicit KL regularization" and of [IQ] Theorem 2).

Consequently ``policies[k]`` is always a function of ``errors[:k]`` only, and the performance
bounds of :mod:`torchrl_reg.tabular.theory` are indexed the same way.

The equations reuse :mod:`torchrl_reg.functional` (one equation, one implementation): the
Boltzmann greedy step is :func:`~torchrl_reg.functional.scaled_log_policy`, the soft bootstrap
:func:`~torchrl_reg.functional.soft_value` (both in one pass by
:func:`~torchrl_reg.functional.soft_value_and_scaled_log_policy`), the Munchausen and
advantage-learning corrections :func:`~torchrl_reg.functional.clipped_munchausen_term`,
:func:`~torchrl_reg.functional.advantage_learning_bonus` and
:func:`~torchrl_reg.functional.persistent_advantage_learning_bonus`. MD-VI is written literally
(inner product, KL and entropy terms) so that it checks, rather than repeats, the Munchausen
reparametrization.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from torchrl_reg.functional import (
    advantage_learning_bonus,
    clipped_munchausen_term,
    persistent_advantage_learning_bonus,
    scaled_log_policy,
    soft_value,
    soft_value_and_scaled_log_policy,
)
from torchrl_reg.tabular.mdp import FiniteMDP
from torchrl_reg.validation import check_nonnegative, check_tau

__all__ = [
    "DPResult",
    "RegularizedOptimum",
    "greedy_policy",
    "bellman_optimality_operator",
    "soft_bellman_operator",
    "regularized_policy_evaluation",
    "regularized_optimum",
    "value_iteration",
    "soft_value_iteration",
    "mirror_descent_vi",
    "munchausen_vi",
    "implicit_q_dp",
    "advantage_learning",
]


@dataclass(frozen=True)
class DPResult:
    """Iterates of a dynamic-programming scheme, stacked over iterations.

    Attributes:
        policies: ``[K, S, A]``; ``policies[k]`` is the greedy policy of iteration ``k``
            (:math:`\\pi_{k+1}`, computed from ``q[k - 1]``, or from ``q0`` for ``k = 0``).
        q: ``[K, S, A]``; ``q[k]`` is :math:`q_{k+1}`, the q-values after iteration ``k``.
        values: ``[K, S]`` state values where the scheme has its own (IQ-DP's :math:`V_{k+1}`),
            else ``None``.
    """

    policies: torch.Tensor
    q: torch.Tensor
    values: torch.Tensor | None = None

    @property
    def num_iterations(self) -> int:
        return self.q.shape[0]


@dataclass(frozen=True)
class RegularizedOptimum:
    """Optimum of the entropy-regularized MDP: ``q`` (:math:`q_*^\\tau`), ``policy`` (:math:`\\pi_*^\\tau`)
    and ``values`` (:math:`V_*^\\tau`); ``tau = 0`` is the unregularized optimum."""

    q: torch.Tensor
    policy: torch.Tensor
    values: torch.Tensor


def _check_alpha(alpha: float, *, allow_one: bool) -> float:
    alpha = float(alpha)
    upper_ok = alpha <= 1 if allow_one else alpha < 1
    if not (alpha >= 0 and upper_ok):
        accepted = "[0, 1]" if allow_one else "[0, 1)"
        raise ValueError(f"alpha must be in {accepted}, got alpha={alpha}")
    return alpha


def _initial_q(mdp: FiniteMDP, q0: torch.Tensor | None) -> torch.Tensor:
    if q0 is None:
        return torch.zeros_like(mdp.rewards)
    q0 = torch.as_tensor(q0, dtype=torch.float64)
    if q0.shape != mdp.rewards.shape:
        raise ValueError(f"q0 must have shape [S, A] = {tuple(mdp.rewards.shape)}, got {tuple(q0.shape)}")
    return q0


def _check_errors(mdp: FiniteMDP, errors: torch.Tensor | None, num_iterations: int) -> torch.Tensor | None:
    if int(num_iterations) != num_iterations or num_iterations < 1:
        raise ValueError(f"num_iterations must be an integer >= 1, got num_iterations={num_iterations}")
    if errors is None:
        return None
    errors = torch.as_tensor(errors, dtype=torch.float64)
    expected = (int(num_iterations), *mdp.rewards.shape)
    if errors.shape != expected:
        raise ValueError(f"errors must have shape [K, S, A] = {expected}, got {tuple(errors.shape)}")
    return errors


def _add_error(q: torch.Tensor, errors: torch.Tensor | None, k: int) -> torch.Tensor:
    return q if errors is None else q + errors[k]


def _all_actions(q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(q_tm1, a_tm1)`` pairing every ``(s, a)`` with the action values of ``s``, so that the
    per-transition functions of :mod:`torchrl_reg.functional` evaluate all actions at once."""
    num_actions = q.shape[-1]
    q_tm1 = q.unsqueeze(-2).expand(*q.shape[:-1], num_actions, num_actions)
    a_tm1 = torch.arange(num_actions).expand(q.shape)
    return q_tm1, a_tm1


def greedy_policy(q: torch.Tensor) -> torch.Tensor:
    """Deterministic greedy policy (one-hot on the first maximizing action) of ``q [..., A]``."""
    return torch.nn.functional.one_hot(q.argmax(-1), q.shape[-1]).to(q.dtype)


def bellman_optimality_operator(mdp: FiniteMDP, q: torch.Tensor) -> torch.Tensor:
    """:math:`T q = r + \\gamma P \\max_{a'} q(\\cdot, a')` ([IQ] Section 3)."""
    return mdp.rewards + mdp.gamma * mdp.expected_next(q.max(-1).values)


def soft_bellman_operator(mdp: FiniteMDP, q: torch.Tensor, tau: float) -> torch.Tensor:
    """Soft Bellman optimality operator :math:`T^\\tau q = r + \\gamma P\\, \\tau \\ln\\sum_{a'} \\exp(q(\\cdot, a')/\\tau)`
    ([MaxEnt], "Algorithm: Soft Q-Iteration"); a gamma-contraction in sup-norm."""
    return mdp.rewards + mdp.gamma * mdp.expected_next(soft_value(q, tau))


def regularized_policy_evaluation(
    mdp: FiniteMDP,
    policy: torch.Tensor,
    *,
    entropy_coef: float = 0.0,
    kl_coef: float = 0.0,
    reference: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Exact regularized q-values of ``policy`` (batched over leading dimensions of ``[..., S, A]``).

    The unique fixed point of
    :math:`T_\pi q = r + \gamma P\langle\pi, q - t\ln\pi - \lambda(\ln\pi - \ln\mu)\rangle`
    with ``t = entropy_coef``, ``lambda = kl_coef`` and ``mu = reference``: for ``lambda = 0`` the
    regularized q-value :math:`Q_\pi^t` of [IQ] Section 3, for ``t = lambda = 0`` the usual
    :math:`q_\pi`. It is computed by one linear solve,
    :math:`v = (I - \gamma P_\pi)^{-1}(r_\pi - t\langle\pi, \ln\pi\rangle - \lambda KL(\pi\|\mu))` and
    :math:`q = r + \gamma P v`. ``reference`` broadcasts against ``policy`` (a state-independent
    prior ``[A]`` is allowed, as in MIRL).
    """
    entropy_coef = check_nonnegative("entropy_coef", entropy_coef)
    kl_coef = check_nonnegative("kl_coef", kl_coef)
    policy = torch.as_tensor(policy, dtype=torch.float64)
    if policy.shape[-2:] != mdp.rewards.shape:
        raise ValueError(f"policy must have shape [..., S, A] with [S, A] = {tuple(mdp.rewards.shape)}, got {tuple(policy.shape)}")
    if (policy < 0).any() or ((policy.sum(-1) - 1).abs() > 1e-9).any():
        raise ValueError("policy must be a distribution over actions in every state (entries >= 0, rows summing to 1)")
    if kl_coef > 0 and reference is None:
        raise ValueError(f"kl_coef={kl_coef} > 0 needs a reference policy")
    # 0 ln 0 = 0: actions the policy never takes contribute nothing.
    neg_reward = entropy_coef * torch.special.xlogy(policy, policy).sum(-1)
    if kl_coef > 0:
        reference = torch.as_tensor(reference, dtype=torch.float64)
        kl = (torch.special.xlogy(policy, policy) - torch.special.xlogy(policy, reference)).sum(-1)
        neg_reward = neg_reward + kl_coef * kl
    r_pi = (policy * mdp.rewards).sum(-1) - neg_reward
    p_pi = torch.einsum("...ij,ijk->...ik", policy, mdp.transitions)
    eye = torch.eye(mdp.num_states, dtype=torch.float64)
    v = torch.linalg.solve(eye - mdp.gamma * p_pi, r_pi.unsqueeze(-1)).squeeze(-1)
    return mdp.rewards + mdp.gamma * mdp.expected_next(v)


def regularized_optimum(
    mdp: FiniteMDP,
    *,
    entropy_coef: float = 0.0,
    tol: float = 1e-13,
    max_iterations: int = 1000,
) -> RegularizedOptimum:
    r"""Optimum of the MDP regularized with entropy ``t = entropy_coef`` (``t = 0``: the usual optimum).

    Computed by (soft) policy iteration with exact evaluation: :math:`\pi \leftarrow
    \mathrm{softmax}(Q_\pi^t / t)` ([MaxEnt], "policy improvement theorem"), or the greedy policy for
    ``t = 0``, until the q-values move by less than ``tol``. Policy iteration is Newton's method on
    the (soft) Bellman equation, so it reaches float64 precision in a handful of iterations, and it
    shares no code with the value-iteration schemes it is used to check.
    """
    entropy_coef = check_nonnegative("entropy_coef", entropy_coef)
    policy = torch.full_like(mdp.rewards, 1.0 / mdp.num_actions)
    q = regularized_policy_evaluation(mdp, policy, entropy_coef=entropy_coef)
    for _ in range(max_iterations):
        if entropy_coef > 0:
            policy = torch.exp(scaled_log_policy(q, entropy_coef) / entropy_coef)
        else:
            # Keep the current action unless another is better by more than round-off: with ties
            # a plain argmax could cycle between policies of equal value.
            current = (policy * q).sum(-1)
            improve = q.max(-1).values > current + 1e-12 * (1 + q.abs().max())
            policy = torch.where(improve.unsqueeze(-1), greedy_policy(q), policy)
        q_next = regularized_policy_evaluation(mdp, policy, entropy_coef=entropy_coef)
        converged = (q_next - q).abs().max().item() <= tol * (1 + q.abs().max().item())
        q = q_next
        if converged:
            break
    else:
        raise RuntimeError(f"policy iteration did not converge to tol={tol} in max_iterations={max_iterations}")
    if entropy_coef > 0:
        return RegularizedOptimum(q, torch.exp(scaled_log_policy(q, entropy_coef) / entropy_coef), soft_value(q, entropy_coef))
    return RegularizedOptimum(q, greedy_policy(q), q.max(-1).values)


def value_iteration(
    mdp: FiniteMDP,
    *,
    num_iterations: int,
    q0: torch.Tensor | None = None,
    errors: torch.Tensor | None = None,
) -> DPResult:
    r"""(Approximate) value iteration: :math:`\pi_{k+1} = \mathcal G(q_k)` (greedy),
    :math:`q_{k+1} = r + \gamma P\langle\pi_{k+1}, q_k\rangle + \epsilon_{k+1}`
    ([MRL], the DQN abstraction compared on "Implicit KL regularization")."""
    errors = _check_errors(mdp, errors, num_iterations)
    q = _initial_q(mdp, q0)
    policies, qs = [], []
    for k in range(num_iterations):
        policies.append(greedy_policy(q))
        q = _add_error(bellman_optimality_operator(mdp, q), errors, k)
        qs.append(q)
    return DPResult(torch.stack(policies), torch.stack(qs))


def soft_value_iteration(
    mdp: FiniteMDP,
    *,
    tau: float,
    num_iterations: int,
    q0: torch.Tensor | None = None,
    errors: torch.Tensor | None = None,
) -> DPResult:
    r"""(Approximate) soft Q-iteration ([MaxEnt], "Algorithm: Soft Q-Iteration"):
    :math:`\pi_{k+1} = \mathrm{softmax}(q_k/\tau)`,
    :math:`q_{k+1} = r + \gamma P\, \tau\ln\sum_a \exp(q_k(\cdot, a)/\tau) + \epsilon_{k+1}`.
    Converges to the optimum of the MDP regularized with entropy ``tau``."""
    tau = check_tau(tau)
    errors = _check_errors(mdp, errors, num_iterations)
    q = _initial_q(mdp, q0)
    policies, qs = [], []
    for k in range(num_iterations):
        policies.append(torch.exp(scaled_log_policy(q, tau) / tau))
        q = _add_error(soft_bellman_operator(mdp, q, tau), errors, k)
        qs.append(q)
    return DPResult(torch.stack(policies), torch.stack(qs))


def mirror_descent_vi(
    mdp: FiniteMDP,
    *,
    kl_coef: float,
    entropy_coef: float,
    num_iterations: int,
    q0: torch.Tensor | None = None,
    policy0: torch.Tensor | None = None,
    errors: torch.Tensor | None = None,
) -> DPResult:
    r"""(Approximate) Mirror Descent VI, MD-VI(lambda, t), with ``lambda = kl_coef`` and ``t = entropy_coef``
    ([MRL] "Implicit KL regularization", explicit scheme; [IQ] Theorem 1, value-based form):

    .. math::
        \pi_{k+1} &= \arg\max_\pi \langle\pi, q_k\rangle - \lambda KL(\pi\|\pi_k) + t\mathcal H(\pi)
                   \;\propto\; \pi_k^{\lambda/(\lambda+t)} \exp\big(q_k/(\lambda+t)\big) \\
        q_{k+1} &= r + \gamma P\big(\langle\pi_{k+1}, q_k\rangle - \lambda KL(\pi_{k+1}\|\pi_k)
                   + t\mathcal H(\pi_{k+1})\big) + \epsilon_{k+1}

    ``policy0`` is :math:`\pi_0` (uniform by default; must be > 0 where ``kl_coef > 0``). The
    policies are kept as log-probabilities so that KL-only runs (``t = 0``), whose policies become
    nearly deterministic, stay exact. It converges to the optimum regularized with entropy ``t``
    (``t = 0``: the unregularized optimum).
    """
    kl_coef = check_nonnegative("kl_coef", kl_coef)
    entropy_coef = check_nonnegative("entropy_coef", entropy_coef)
    if kl_coef + entropy_coef == 0:
        raise ValueError("MD-VI needs kl_coef + entropy_coef > 0 (with both 0 it is value_iteration), got 0 and 0")
    errors = _check_errors(mdp, errors, num_iterations)
    q = _initial_q(mdp, q0)
    if policy0 is None:
        policy0 = torch.full_like(mdp.rewards, 1.0 / mdp.num_actions)
    policy0 = torch.as_tensor(policy0, dtype=torch.float64)
    if policy0.shape != mdp.rewards.shape or (policy0 < 0).any() or ((policy0.sum(-1) - 1).abs() > 1e-9).any():
        raise ValueError(f"policy0 must be a [S, A] = {tuple(mdp.rewards.shape)} distribution over actions per state")
    if kl_coef > 0 and (policy0 <= 0).any():
        raise ValueError(f"policy0 must be > 0 everywhere when kl_coef={kl_coef} > 0 (KL to a zero probability)")
    log_pi = torch.log(policy0)
    eta = kl_coef + entropy_coef
    policies, qs = [], []
    for k in range(num_iterations):
        logits = q + kl_coef * log_pi if kl_coef > 0 else q
        log_pi_next = scaled_log_policy(logits, eta) / eta
        pi_next = log_pi_next.exp()
        kl = (pi_next * (log_pi_next - log_pi)).sum(-1) if kl_coef > 0 else 0.0
        entropy = -(pi_next * log_pi_next).sum(-1)
        v = (pi_next * q).sum(-1) - kl_coef * kl + entropy_coef * entropy
        q = _add_error(mdp.rewards + mdp.gamma * mdp.expected_next(v), errors, k)
        log_pi = log_pi_next
        policies.append(pi_next)
        qs.append(q)
    return DPResult(torch.stack(policies), torch.stack(qs))


def munchausen_vi(
    mdp: FiniteMDP,
    *,
    alpha: float,
    tau: float,
    num_iterations: int,
    q0: torch.Tensor | None = None,
    errors: torch.Tensor | None = None,
    clip_value_min: float | None = None,
    clip_value_max: float | None = None,
) -> DPResult:
    r"""(Approximate) Munchausen VI, M-VI(alpha, tau) ([MRL], "Implicit KL regularization"):

    .. math::
        \pi_{k+1} &= \mathrm{softmax}(q_k/\tau) \\
        q_{k+1} &= r + \alpha\tau\ln\pi_{k+1} + \gamma P\langle\pi_{k+1}, q_k - \tau\ln\pi_{k+1}\rangle
                   + \epsilon_{k+1}

    the exact abstraction of the M-DQN target ([MRL], "Case study: DQN"). It produces the policies
    of MD-VI(alpha*tau, (1-alpha)*tau) and converges to the optimum regularized with entropy
    ``(1-alpha)*tau``. The theory has no clipping (the default); ``clip_value_min`` /
    ``clip_value_max`` clip :math:`\tau\ln\pi` as M-DQN does, to compare with a deep loss that clips.
    ``alpha = 0`` is soft VI, ``alpha = 1`` KL regularization only.
    """
    alpha = _check_alpha(alpha, allow_one=True)
    tau = check_tau(tau)
    errors = _check_errors(mdp, errors, num_iterations)
    low = -math.inf if clip_value_min is None else float(clip_value_min)
    high = math.inf if clip_value_max is None else float(clip_value_max)
    q = _initial_q(mdp, q0)
    policies, qs = [], []
    for k in range(num_iterations):
        # <pi, q - tau ln pi> with pi = softmax(q / tau) is exactly the soft value.
        v, scaled_log_pi = soft_value_and_scaled_log_policy(q, tau)
        policies.append(torch.exp(scaled_log_pi / tau))
        bonus = clipped_munchausen_term(scaled_log_pi, alpha=alpha, clip_value_min=low, clip_value_max=high)
        q = _add_error(mdp.rewards + bonus + mdp.gamma * mdp.expected_next(v), errors, k)
        qs.append(q)
    return DPResult(torch.stack(policies), torch.stack(qs))


def implicit_q_dp(
    mdp: FiniteMDP,
    *,
    alpha: float,
    tau: float,
    num_iterations: int,
    q0: torch.Tensor | None = None,
    errors: torch.Tensor | None = None,
) -> DPResult:
    r"""(Approximate) IQ-DP(alpha, tau), [IQ] Eq. (3), on the pair (policy, value):

    .. math:: \tau\ln\pi_{k+2} + V_{k+1} = r + \alpha\tau\ln\pi_{k+1} + \gamma P V_k \;(+\,\epsilon_k)

    solved exactly under :math:`\sum_a \pi_{k+2}(a|s) = 1`: with :math:`Q_{k+1}` the right-hand side,
    :math:`V_{k+1} = \tau\ln\sum_a\exp(Q_{k+1}/\tau)` and :math:`\pi_{k+2} = \mathrm{softmax}(Q_{k+1}/\tau)`
    (the implicit parametrization of Eq. (1)). ``q0`` is an initial implicit q-value, giving
    :math:`\pi_1 = \mathrm{softmax}(q_0/\tau)` and :math:`V_0 = \tau\ln\sum_a \exp(q_0/\tau)`.

    Returns ``policies[k]`` = :math:`\pi_{k+1}` (the target policy of iteration ``k``), ``q[k]`` =
    the implicit :math:`Q_{k+1} = \tau\ln\pi_{k+2} + V_{k+1}` and ``values[k]`` = :math:`V_{k+1}`.
    ``errors[k]`` is :math:`\epsilon` of [IQ] Theorem 2, the gap between the actual and the ideal
    update. By Theorem 1 the policies are those of MD-VI(alpha*tau, (1-alpha)*tau).
    """
    alpha = _check_alpha(alpha, allow_one=True)
    tau = check_tau(tau)
    errors = _check_errors(mdp, errors, num_iterations)
    q = _initial_q(mdp, q0)
    v, scaled_log_pi = soft_value_and_scaled_log_policy(q, tau)
    policies, qs, values = [], [], []
    for k in range(num_iterations):
        policies.append(torch.exp(scaled_log_pi / tau))
        q = _add_error(mdp.rewards + alpha * scaled_log_pi + mdp.gamma * mdp.expected_next(v), errors, k)
        v, scaled_log_pi = soft_value_and_scaled_log_policy(q, tau)
        qs.append(q)
        values.append(v)
    return DPResult(torch.stack(policies), torch.stack(qs), torch.stack(values))


def advantage_learning(
    mdp: FiniteMDP,
    *,
    alpha: float,
    num_iterations: int,
    persistent: bool = False,
    q0: torch.Tensor | None = None,
    errors: torch.Tensor | None = None,
) -> DPResult:
    r"""(Approximate) advantage learning ([AL]; the tau -> 0 limit of M-VI, [MRL] "Increasing the action gap"):

    .. math:: q_{k+1}(s,a) = r(s,a) + \alpha\big(q_k(s,a) - \max_b q_k(s,b)\big) + \gamma P\max_{a'} q_k(\cdot, a')
              + \epsilon_{k+1}

    With ``persistent=True``, persistent advantage learning: the correction becomes
    :math:`\mathbb E_{s'}\max\{\alpha(q_k(s,a) - \max_b q_k(s,b)),\, -\alpha(\max_b q_k(s',b) - q_k(s',a))\}`,
    the expectation over :math:`s' \sim P(\cdot|s,a)` of the sampled PAL correction of
    :func:`~torchrl_reg.functional.persistent_advantage_learning_bonus` (the fixed point a full-batch
    PAL regression converges to; equal to Bellemare et al.'s operator when transitions are
    deterministic). ``policies[k]`` is the greedy policy of ``q_k``.
    """
    alpha = _check_alpha(alpha, allow_one=False)
    errors = _check_errors(mdp, errors, num_iterations)
    q = _initial_q(mdp, q0)
    num_states, num_actions = mdp.rewards.shape
    policies, qs = [], []
    for k in range(num_iterations):
        policies.append(greedy_policy(q))
        if persistent:
            # Every (s, a, s') triple, as a batch of sampled transitions.
            shape = (num_states, num_actions, num_states, num_actions)
            q_tm1 = q[:, None, None, :].expand(shape)
            a_tm1 = torch.arange(num_actions)[None, :, None].expand(shape[:-1])
            q_t = q[None, None, :, :].expand(shape)
            not_terminal = torch.ones(shape[:-1], dtype=torch.bool)
            bonus = persistent_advantage_learning_bonus(q_tm1, a_tm1, q_t, not_terminal, alpha=alpha)
            bonus = (mdp.transitions * bonus).sum(-1)
        else:
            bonus = advantage_learning_bonus(*_all_actions(q), alpha=alpha)
        q = _add_error(bellman_optimality_operator(mdp, q) + bonus, errors, k)
        qs.append(q)
    return DPResult(torch.stack(policies), torch.stack(qs))
