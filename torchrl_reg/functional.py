"""Pure tensor functions of regularized RL, one equation each.

Naming follows rlax: ``q_tm1`` are action values at the state where the action
``a_tm1`` was taken, ``r_t`` the reward that followed, ``discount_t`` the
bootstrap factor (``gamma ** n`` times ``1 - terminated``) and ``q_t`` the action
values at the next state. The action dimension is always the last one.

References:

* [MRL] Vieillard, Pietquin, Geist. "Munchausen Reinforcement Learning", NeurIPS 2020,
  arXiv:2007.14430. Sec. 2: the Soft-DQN and M-DQN regression targets (log-policy clipped to
  ``[l0, 0]``); Sec. 4: the action gap and advantage learning as the ``tau -> 0`` limit.
* [MaxEnt] Haarnoja, Tang, Abbeel, Levine. "Reinforcement Learning with Deep Energy-Based
  Policies", ICML 2017, arXiv:1702.08165, Sec. 2: the soft value
  ``V(s) = tau * log sum_a exp(Q(s, a) / tau)`` of soft Q-iteration.
* [AL] Bellemare, Ostrovski, Guez, Thomas, Munos. "Increasing the Action Gap: New Operators for
  Reinforcement Learning", AAAI 2016, arXiv:1512.04860: advantage learning and persistent
  advantage learning.
* [MIRL] Grau-Moya, Leibfried, Vrancx. "Soft Q-Learning with Mutual-Information
  Regularization", ICLR 2019 (OpenReview HyEtjoCqFX): the soft backup with a learned action
  prior ``rho`` (Eq. (13)), the prior and ``beta`` updates (Algorithm 1).
* [VIREL] Fellows, Mahajan, Rudner, Whiteson. VIREL: A Variational Inference Framework
  for Reinforcement Learning, NeurIPS 2019, arXiv 1811.01132: the Boltzmann policy
  ``pi_w ∝ exp(Q_w / eps_w)`` whose temperature is the Bellman error
  ``eps_w = c/p ||T_w Q_w - Q_w||_p^p`` (Section 3).
* [SQL] Haarnoja, Tang, Abbeel, Levine. Reinforcement Learning with Deep Energy-Based
  Policies. ICML 2017, arXiv:1702.08165: the importance-sampled soft value of a
  continuous action space (Eq. 10) and the amortized Stein variational gradient (Eq. 13),
  after Liu & Wang, Stein Variational Gradient Descent, NeurIPS 2016, arXiv:1608.04471
  (Eq. 8, the RBF kernel with the median bandwidth of its Section 5).
* [TKL] Zhu, Chen, Schlegel, White. "General Munchausen Reinforcement Learning with Tsallis Kullback-Leibler
  Divergence", NeurIPS 2023, arXiv:2301.11476: the q-logarithm and q-exponential (Sec. 3.1), the Tsallis entropy
  ``S_q(pi) = -<pi^q, ln_q pi>`` and the Tsallis policy ``pi = exp_q(Q / tau - psi_q(Q / tau))`` (Theorem 1), its
  threshold ``psi_q`` in closed form at ``q = 2``, sparsemax (Theorem 2), and MVI(q), Munchausen VI with the
  Tsallis KL (Sec. 4).
* [IQN], [QR-DQN]: see the quantile section at the end.

Every function is written in the numerically stable form (max subtracted before
``exp``) so that it stays finite in float32 for ``tau`` from 1e-4 to 10 and
q-values of magnitude 1e4.

As in rlax, the functions trust their callers for values (temperatures, rates, scales: ``tau > 0``,
``beta > 0``, rates in ``(0, 1]``): each is checked once, by the loss, estimator, policy or oracle that takes it
from a user (:class:`~torchrl_reg.validation.ArgumentChecks`, :mod:`torchrl_reg.validation`); a check here would
run at every call and read a tensor temperature back from the device. They refuse shapes that would broadcast
into a silently wrong result.
"""
from __future__ import annotations

import math

import torch

__all__ = [
    "boltzmann_policy",
    "soft_value_and_scaled_log_policy",
    "scaled_log_policy",
    "soft_value",
    "clipped_munchausen_term",
    "munchausen_bonus",
    "soft_q_target",
    "munchausen_target",
    "TSALLIS_INDICES",
    "q_logarithm",
    "q_exponential",
    "tsallis_entropy",
    "tsallis_value_and_policy",
    "tsallis_munchausen_target",
    "advantage_learning_bonus",
    "persistent_advantage_learning_bonus",
    "advantage_learning_target",
    "persistent_advantage_learning_target",
    "action_gap",
    "policy_entropy",
    "prior_soft_value",
    "prior_log_policy",
    "prior_boltzmann_policy",
    "prior_soft_q_target",
    "kl_to_prior",
    "prior_update",
    "adaptive_beta_update",
    "bellman_error_temperature",
    "boltzmann_policy_at_temperature",
    "boltzmann_expected_value",
    "boltzmann_evaluation_target",
    "importance_sampled_soft_value",
    "median_bandwidth",
    "rbf_kernel",
    "svgd_direction",
    "quantile_huber_loss",
    "gather_quantiles",
    "iqn_next_quantiles",
    "munchausen_iqn_next_quantiles",
    "LOG_DENSITY_BOUNDS",
    "bound_log_density",
    "bounded_munchausen_term",
    "bounded_soft_next_value",
]


def _gather(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``x[..., a]`` for integer action indices ``a`` with the shape of ``x[..., 0]``."""
    if a.shape != x.shape[:-1]:
        raise ValueError(f"action indices of shape {list(a.shape)} for values of shape {list(x.shape)}: "
                         f"expected {list(x.shape[:-1])}")
    return x.gather(-1, a.long().unsqueeze(-1)).squeeze(-1)


def soft_value_and_scaled_log_policy(q: torch.Tensor, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Soft value and scaled log-policy of the Boltzmann policy, in one stable pass.

    .. math:: V(s) = \max_b q(s,b) + \tau \ln \sum_b \exp\frac{q(s,b) - \max_c q(s,c)}{\tau}
    .. math:: \tau \ln \pi(a|s) = q(s,a) - \max_b q(s,b)
              - \tau \ln \sum_b \exp\frac{q(s,b) - \max_c q(s,c)}{\tau}

    so that :math:`\tau \ln \pi = q - V` ([MRL], Sec. 4;
    [MaxEnt], soft Q-iteration). Subtracting the max first keeps both finite; the
    log-policy is formed from ``q - max q`` (exact) rather than ``q - V`` (which would
    lose the small differences of large q-values in float32).
    """
    q_max = q.max(dim=-1, keepdim=True).values
    advantage = q - q_max
    soft_part = tau * torch.logsumexp(advantage / tau, dim=-1, keepdim=True)
    return (q_max + soft_part).squeeze(-1), advantage - soft_part


def scaled_log_policy(q: torch.Tensor, tau: float) -> torch.Tensor:
    r"""Scaled log-policy ``tau * ln softmax(q / tau)`` in the stable form of
    :func:`soft_value_and_scaled_log_policy` ([MRL], "Increasing the action gap")."""
    return soft_value_and_scaled_log_policy(q, tau)[1]


def boltzmann_policy(q: torch.Tensor, tau: float) -> torch.Tensor:
    r"""Boltzmann (softmax) policy ``pi = softmax(q / tau)``, the greedy step of
    entropy-regularized policy iteration ([MRL], Sec. 2)."""
    return torch.softmax((q - q.max(dim=-1, keepdim=True).values) / tau, dim=-1)


def soft_value(q: torch.Tensor, tau: float) -> torch.Tensor:
    r"""Soft value ``V(s) = tau * ln sum_a exp(q(s, a) / tau)`` ([MaxEnt], soft Q-iteration).

    Equals ``sum_a pi(a|s) (q(s, a) - tau ln pi(a|s))`` with ``pi = softmax(q / tau)``,
    the bootstrap of the Soft-DQN and M-DQN targets ([MRL], Sec. 2),
    at the cost of one logsumexp.
    """
    return soft_value_and_scaled_log_policy(q, tau)[0]


def clipped_munchausen_term(
    scaled_log_pi_a: torch.Tensor, *, alpha: float, clip_value_min: float = -1.0, clip_value_max: float = 0.0
) -> torch.Tensor:
    """``alpha * clip(tau ln pi(a|s), l0, u)`` from the scaled log-policy of the taken action ([MRL])."""
    return alpha * scaled_log_pi_a.clamp(clip_value_min, clip_value_max)


def munchausen_bonus(
    q_tm1: torch.Tensor,
    a_tm1: torch.Tensor,
    *,
    alpha: float,
    tau: float,
    clip_value_min: float = -1.0,
    clip_value_max: float = 0.0,
) -> torch.Tensor:
    r"""Munchausen reward bonus ``alpha * clip(tau ln pi(a_tm1|s_tm1), l0, u)``.

    ``q_tm1`` must come from the **target** network ([MRL], Sec. 2:
    both log-policies use :math:`\bar\theta`). The paper clips to ``[l0, 0]`` with
    ``l0 = -1``; the official M-DQN code clips to ``[l0, 1]`` (the upper bound is
    inactive since ``tau ln pi <= 0``).
    """
    log_pi_a = _gather(scaled_log_policy(q_tm1, tau), a_tm1)
    return clipped_munchausen_term(log_pi_a, alpha=alpha, clip_value_min=clip_value_min, clip_value_max=clip_value_max)


def soft_q_target(
    r_t: torch.Tensor,
    discount_t: torch.Tensor,
    q_t: torch.Tensor,
    *,
    tau: float,
) -> torch.Tensor:
    r"""Soft-DQN target ``r_t + discount_t * tau * logsumexp(q_t / tau)`` ([MRL], Sec. 2, Soft-DQN)."""
    return r_t + discount_t * soft_value(q_t, tau)


def munchausen_target(
    r_t: torch.Tensor,
    discount_t: torch.Tensor,
    q_tm1: torch.Tensor,
    a_tm1: torch.Tensor,
    q_t: torch.Tensor,
    *,
    alpha: float,
    tau: float,
    clip_value_min: float = -1.0,
    clip_value_max: float = 0.0,
) -> torch.Tensor:
    r"""M-DQN regression target ([MRL], Sec. 2):

    .. math:: r_t + \alpha\,\mathrm{clip}(\tau \ln\pi_{\bar\theta}(a_t|s_t), l_0, u)
              + \gamma \sum_{a'} \pi_{\bar\theta}(a'|s_{t+1})
                (q_{\bar\theta}(s_{t+1}, a') - \tau \ln \pi_{\bar\theta}(a'|s_{t+1}))

    with ``pi = softmax(q / tau)``. ``q_tm1`` and ``q_t`` are both target-network
    values. ``alpha = 0`` gives the Soft-DQN target.
    """
    bonus = munchausen_bonus(
        q_tm1, a_tm1, alpha=alpha, tau=tau, clip_value_min=clip_value_min, clip_value_max=clip_value_max
    )
    return r_t + bonus + discount_t * soft_value(q_t, tau)


#: The entropic indices ``q`` whose Tsallis policy has a closed form ([TKL] Theorem 2): the Boltzmann policy (1) and
#: sparsemax (2), the paper's Atari setting; its other indices need an approximate threshold.
TSALLIS_INDICES = (1.0, 2.0)


def q_logarithm(x: torch.Tensor, entropic_index: float) -> torch.Tensor:
    r"""The q-logarithm ([TKL] Sec. 3.1), ``ln`` at ``q = 1``:

    .. math:: \ln_q x = \frac{x^{1-q} - 1}{1 - q}

    ``entropic_index`` is the paper's ``q`` (``q`` names action values here). It satisfies
    ``ln_q(xy) = ln_q x + ln_q y + (1 - q) ln_q x ln_q y`` ([TKL] Eq. (5)), the pseudo-additivity that keeps MVI(q)
    from being Tsallis-KL-regularized VI exactly for ``q != 1``."""
    if entropic_index == 1.0:
        return torch.log(x)
    return (x.pow(1.0 - entropic_index) - 1.0) / (1.0 - entropic_index)


def q_exponential(x: torch.Tensor, entropic_index: float) -> torch.Tensor:
    r"""The q-exponential ([TKL] Sec. 3.1), the inverse of :func:`q_logarithm` on its range, ``exp`` at ``q = 1``:

    .. math:: \exp_q x = [1 + (1 - q) x]_+^{1/(1-q)}"""
    if entropic_index == 1.0:
        return torch.exp(x)
    return (1.0 + (1.0 - entropic_index) * x).clamp_min(0.0).pow(1.0 / (1.0 - entropic_index))


def tsallis_entropy(pi: torch.Tensor, entropic_index: float) -> torch.Tensor:
    r"""Tsallis entropy ([TKL] Sec. 3.1), Shannon's at ``q = 1``:

    .. math:: S_q(\pi) = -\langle \pi^q, \ln_q \pi\rangle = \frac{1 - \sum_a \pi(a)^q}{q - 1}

    written in the second form, which holds at ``pi(a) = 0`` too (``0 ln 0 = 0`` at ``q = 1``)."""
    if entropic_index == 1.0:
        return -torch.special.xlogy(pi, pi).sum(-1)
    return (1.0 - pi.pow(entropic_index).sum(-1)) / (entropic_index - 1.0)


def tsallis_value_and_policy(q: torch.Tensor, tau: float, entropic_index: float) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The Tsallis policy ``pi = exp_q(q / tau - psi_q(q / tau))`` and the value ``M_{q,tau} q = tau psi_q(q / tau)``
    ([TKL] Theorem 1, Theorem 2, Sec. 4), for ``entropic_index`` 1 or 2 (:data:`TSALLIS_INDICES`).

    ``q = 1``: ``pi = softmax(q / tau)`` and ``tau psi = tau ln sum_a exp(q / tau)``, the soft value
    (:func:`soft_value_and_scaled_log_policy`, the same pass). ``q = 2``: ``pi = sparsemax(q / tau)``, zero on the
    actions below the threshold; with ``z = q / tau`` sorted decreasing, the support ``K`` holds the ``k`` with
    ``1 + k z_(k) > sum_{j <= k} z_(j)`` and ``psi_2(z) = (sum_{a in K} z_a - 1) / |K| + 1`` ([TKL] Theorem 2, exact
    at ``q = 2``; Martins and Astudillo, ICML 2016, arXiv:1602.02068, Proposition 1). In both,
    ``tau psi = <pi, q> + tau S_q(pi)``: the bootstrap of MVI(q) ([TKL] Sec. 4). The max is subtracted first, as in
    every function here. Returns ``(value [...], pi [..., A])``."""
    if entropic_index == 1.0:
        value, scaled_log_pi = soft_value_and_scaled_log_policy(q, tau)
        return value, (scaled_log_pi / tau).exp()
    if entropic_index != 2.0:
        raise ValueError(f"entropic_index must be one of {TSALLIS_INDICES} (a closed-form Tsallis policy), got {entropic_index}")
    q_max = q.max(dim=-1, keepdim=True).values
    z = (q - q_max) / tau
    z_sorted = z.sort(dim=-1, descending=True).values
    cumulative = z_sorted.cumsum(dim=-1)
    k = torch.arange(1, q.shape[-1] + 1, device=q.device, dtype=q.dtype)
    support = (1.0 + k * z_sorted > cumulative).sum(dim=-1, keepdim=True)  # a prefix of the sorted actions
    threshold = (cumulative.gather(-1, support - 1) - 1.0) / support.to(q.dtype)
    pi = (z - threshold).clamp_min(0.0)
    return (q_max + tau * (threshold + 1.0)).squeeze(-1), pi


def tsallis_munchausen_target(
    r_t: torch.Tensor,
    discount_t: torch.Tensor,
    q_tm1: torch.Tensor,
    a_tm1: torch.Tensor,
    q_t: torch.Tensor,
    *,
    alpha: float,
    tau: float,
    entropic_index: float,
    clip_value_min: float = -1.0,
    clip_value_max: float = 0.0,
) -> torch.Tensor:
    r"""MVI(q) regression target, Munchausen VI with the Tsallis KL ([TKL] Sec. 4, MVI(q)):

    .. math:: r_t + \alpha\,\mathrm{clip}\bigl(\tau \ln_q \pi_{\bar\theta}(a_t|s_t), l_0, u\bigr)
              + \gamma \bigl(\langle \pi_{\bar\theta}, q_{\bar\theta}\rangle + \tau S_q(\pi_{\bar\theta})\bigr)(s_{t+1})

    with the Tsallis policy :math:`\pi = \exp_q(q/\tau - \psi_q(q/\tau))` of the target network's values
    (:func:`tsallis_value_and_policy`) and the Munchausen term in the paper's action-gap form,
    :math:`\tau \ln_q \pi(a|s) = q(s, a) - \tau\psi_q(q(s)/\tau)` (finite on the actions a sparse policy leaves
    out), clipped as M-DQN clips it. The bootstrap is :math:`\tau\psi_q(q(s_{t+1})/\tau)`. At ``q = 1`` it is
    M-DQN's target (:func:`munchausen_target`) term for term; for ``q != 1`` it approximates Tsallis-KL-regularized
    VI up to the residual of the q-logarithm's pseudo-additivity ([TKL] Sec. 4)."""
    value_tm1, _ = tsallis_value_and_policy(q_tm1, tau, entropic_index)
    if entropic_index == 1.0:  # the same stable pass as M-DQN's: tau ln pi from q - max q
        scaled_log_pi_a = _gather(scaled_log_policy(q_tm1, tau), a_tm1)
    else:
        scaled_log_pi_a = _gather(q_tm1, a_tm1) - value_tm1
    bonus = clipped_munchausen_term(scaled_log_pi_a, alpha=alpha, clip_value_min=clip_value_min, clip_value_max=clip_value_max)
    return r_t + bonus + discount_t * tsallis_value_and_policy(q_t, tau, entropic_index)[0]


def advantage_learning_bonus(q_tm1: torch.Tensor, a_tm1: torch.Tensor, *, alpha: float) -> torch.Tensor:
    r"""Advantage-learning correction ``alpha * (q(s_t, a_t) - max_a q(s_t, a))`` ([AL]; always <= 0).

    It is the tau -> 0 limit of the Munchausen bonus ``alpha * tau ln pi(a_t|s_t)``
    ([MRL], Sec. 4).
    """
    return alpha * (_gather(q_tm1, a_tm1) - q_tm1.max(dim=-1).values)


def persistent_advantage_learning_bonus(
    q_tm1: torch.Tensor,
    a_tm1: torch.Tensor,
    q_t: torch.Tensor,
    not_terminal_t: torch.Tensor,
    *,
    alpha: float,
) -> torch.Tensor:
    r"""Persistent advantage-learning correction ([AL], :math:`\mathcal{T}_{PAL}`):

    .. math:: \max\{\alpha (q(s_t, a_t) - \max_a q(s_t, a)),\;
              -\alpha (\max_a q(s_{t+1}, a) - q(s_{t+1}, a_t))\}

    added to the Bellman target :math:`r_t + \gamma \max_{a'} q(s_{t+1}, a')`, so that
    the target is :math:`\max(\mathcal{T}_{AL} q, \mathcal{T} q - \alpha(V(s_{t+1}) - q(s_{t+1}, a_t)))`.
    After a terminal step the next state is absorbing (all its values equal), so the
    persistent term is 0 there: ``not_terminal_t`` masks it.
    """
    al = advantage_learning_bonus(q_tm1, a_tm1, alpha=alpha)
    persistent = -alpha * (q_t.max(dim=-1).values - _gather(q_t, a_tm1))
    return torch.maximum(al, persistent * not_terminal_t.to(q_t.dtype))


def advantage_learning_target(
    r_t: torch.Tensor,
    discount_t: torch.Tensor,
    q_tm1: torch.Tensor,
    a_tm1: torch.Tensor,
    q_t: torch.Tensor,
    *,
    alpha: float,
) -> torch.Tensor:
    r"""Advantage-learning target ([AL]; the tau -> 0 limit of M-DQN, [MRL]):

    .. math:: r_t + \alpha (q(s_t, a_t) - \max_a q(s_t, a)) + \gamma \max_{a'} q(s_{t+1}, a')
    """
    return r_t + advantage_learning_bonus(q_tm1, a_tm1, alpha=alpha) + discount_t * q_t.max(dim=-1).values


def persistent_advantage_learning_target(
    r_t: torch.Tensor,
    discount_t: torch.Tensor,
    q_tm1: torch.Tensor,
    a_tm1: torch.Tensor,
    q_t: torch.Tensor,
    *,
    alpha: float,
) -> torch.Tensor:
    r"""Persistent advantage-learning target ([AL]): the Bellman target
    :math:`r_t + \gamma \max_{a'} q(s_{t+1}, a')` plus
    :func:`persistent_advantage_learning_bonus`; a zero ``discount_t`` marks a terminal step."""
    bonus = persistent_advantage_learning_bonus(q_tm1, a_tm1, q_t, discount_t != 0, alpha=alpha)
    return r_t + bonus + discount_t * q_t.max(dim=-1).values


def action_gap(q: torch.Tensor) -> torch.Tensor:
    """Gap between the best and the second-best action value ([AL], [MRL] "Increasing the action gap")."""
    if q.shape[-1] < 2:
        return torch.zeros_like(q[..., 0])
    top2 = q.topk(2, dim=-1).values
    return top2[..., 0] - top2[..., 1]


def policy_entropy(q: torch.Tensor, tau: float) -> torch.Tensor:
    """Entropy of ``softmax(q / tau)`` in nats, from the stable log-policy."""
    log_pi = scaled_log_policy(q, tau) / tau
    return -(log_pi.exp() * log_pi).sum(-1)


# --- MIRL: soft Q-learning with a learned action prior rho and inverse temperature beta ----------
#
# [MIRL] writes the temperature as an inverse ``beta = 1 / tau``. The prior-weighted soft
# quantities are the uniform-prior ones of q shifted by ``tau * ln rho``:
#     (1/beta) ln sum_a rho(a) exp(beta q(a)) = soft_value(q + ln(rho) / beta, tau=1/beta),
# so they reuse the stable implementations above (one equation, one implementation).


def _tau_and_shifted_q(
    q: torch.Tensor, rho: torch.Tensor, beta: float | torch.Tensor
) -> tuple[float | torch.Tensor, torch.Tensor]:
    """``tau = 1 / beta`` and ``q + tau * ln rho``: the prior-weighted problem as a uniform-prior one.

    A tensor ``beta`` is cast to ``q``'s dtype first, so that ``1 / beta`` is as exact as with a
    Python float."""
    tau = 1.0 / (beta.to(q.dtype) if isinstance(beta, torch.Tensor) else beta)
    return tau, q + tau * torch.log(rho.to(q.dtype))


def prior_soft_value(q: torch.Tensor, rho: torch.Tensor, beta: float | torch.Tensor) -> torch.Tensor:
    r"""Prior-weighted soft value ([MIRL], the tabular backup
    :math:`T^\rho_{soft}` and Eq. (13)):

    .. math:: V(s) = \frac{1}{\beta} \ln \sum_a \rho(a) \exp(\beta\, q(s, a))
                   = \max_a q(s, a) + \frac{1}{\beta} \ln \sum_a \rho(a) \exp(\beta (q(s,a) - \max_b q(s,b)))

    Computed as ``soft_value(q + ln(rho) / beta, tau=1/beta)``. With a uniform prior
    ``rho = 1/|A|`` it equals ``soft_value(q, tau=1/beta) - ln|A| / beta``: MIRL's
    KL-to-prior regularizer is the entropy regularizer of Soft-DQN minus the constant
    ``ln|A| / beta`` per step (``KL(pi || uniform) = ln|A| - H(pi)``). Actions with
    ``rho(a) = 0`` are excluded.
    """
    tau, shifted = _tau_and_shifted_q(q, rho, beta)
    return soft_value(shifted, tau)


def prior_log_policy(q: torch.Tensor, rho: torch.Tensor, beta: float | torch.Tensor) -> torch.Tensor:
    r"""``ln pi(a|s)`` of the prior-weighted Boltzmann policy ``pi(a|s) ∝ rho(a) exp(beta q(s, a))``
    ([MIRL], the optimal policy for a fixed prior), in the stable form
    ``beta * scaled_log_policy(q + ln(rho) / beta, tau=1/beta)``."""
    tau, shifted = _tau_and_shifted_q(q, rho, beta)
    return scaled_log_policy(shifted, tau) / tau


def prior_boltzmann_policy(q: torch.Tensor, rho: torch.Tensor, beta: float | torch.Tensor) -> torch.Tensor:
    r"""Prior-weighted Boltzmann policy ``pi(a|s) = rho(a) exp(beta q(s,a)) / sum_b rho(b) exp(beta q(s,b))``
    ([MIRL], the optimal policy for a fixed prior); uniform ``rho`` gives ``boltzmann_policy(q, 1/beta)``."""
    tau, shifted = _tau_and_shifted_q(q, rho, beta)
    return boltzmann_policy(shifted, tau)


def prior_soft_q_target(
    r_t: torch.Tensor,
    discount_t: torch.Tensor,
    q_t: torch.Tensor,
    rho: torch.Tensor,
    *,
    beta: float | torch.Tensor,
) -> torch.Tensor:
    r"""MIRL regression target ([MIRL], Eq. (13) and the backup :math:`T^\rho_{soft}`):

    .. math:: r_t + \gamma \frac{1}{\beta} \ln \sum_{a'} \rho(a') \exp(\beta\, q_{\bar\theta}(s_{t+1}, a'))

    ``discount_t`` is ``gamma ** n * (1 - terminated)``. With a uniform prior this is
    ``soft_q_target(r_t, discount_t, q_t, tau=1/beta) - discount_t * ln|A| / beta``.
    """
    return r_t + discount_t * prior_soft_value(q_t, rho, beta)


def kl_to_prior(q: torch.Tensor, rho: torch.Tensor, beta: float | torch.Tensor) -> torch.Tensor:
    r"""``KL(pi(.|s) || rho)`` for ``pi ∝ rho exp(beta q)``. Averaged over states visited by ``pi``
    while ``rho`` is their action marginal, it is the mutual information ``I(S; A)`` that MIRL
    penalizes ([MIRL], the one-step decision-making case)."""
    log_pi = prior_log_policy(q, rho, beta)
    pi = log_pi.exp()
    # Actions outside the prior's support have pi = 0 and contribute 0 (not 0 * (-inf + inf)).
    terms = torch.where(pi > 0, pi * (log_pi - torch.log(rho.to(q.dtype))), torch.zeros_like(pi))
    return terms.sum(-1)


def prior_update(rho: torch.Tensor, pi: torch.Tensor, prior_lr: float) -> torch.Tensor:
    r"""Prior update of [MIRL] (tabular setting and Algorithm 1, line 5),
    applied for the states ``s_1 .. s_N`` in order:

    .. math:: \rho_{i+1}(a) = (1 - \alpha_\rho)\, \rho_i(a) + \alpha_\rho\, \pi_i(a|s_i)
              \quad \text{for every action } a

    ``rho`` has shape ``[..., A]``; ``pi`` is ``[..., A]`` (one state per prior) or
    ``[..., N, A]`` (N states in order). In closed form over the N states:
    ``(1-a)^N rho + a * sum_i (1-a)^(N-1-i) pi_i`` (weights in float64). Every action is
    updated, so ``rho`` stays a distribution (a convex combination of distributions); the result
    is renormalized only to absorb float rounding over long runs, and positive entries are kept
    at or above the smallest normal float of ``rho``'s dtype. On a stream of states it converges
    to the action marginal ``sum_s nu(s) pi(a|s)``.
    """
    if pi.ndim == rho.ndim:
        pi = pi.unsqueeze(-2)
    if pi.ndim != rho.ndim + 1 or pi.shape[-1] != rho.shape[-1]:
        raise ValueError(
            f"pi must have shape [..., A] or [..., N, A] matching rho of shape {list(rho.shape)}, "
            f"got {list(pi.shape)}"
        )
    n = pi.shape[-2]
    decay = 1.0 - prior_lr
    weights = prior_lr * decay ** torch.arange(n - 1, -1, -1, dtype=torch.float64, device=pi.device)
    new = decay**n * rho.double() + (weights.unsqueeze(-1) * pi.double()).sum(-2)
    new = new / new.sum(-1, keepdim=True)
    # Mass that decays geometrically would become subnormal (slow arithmetic) then exactly 0
    # (the action could never come back); keep it at the smallest normal number instead. Exact
    # zeros of the prior (actions excluded on purpose) stay 0.
    tiny = torch.finfo(rho.dtype).tiny
    return torch.where(new > 0, new.to(rho.dtype).clamp_min(tiny), torch.zeros((), dtype=rho.dtype, device=rho.device))


def adaptive_beta_update(beta: float, loss: float, beta_lr: float) -> float:
    r"""Adaptive inverse temperature of [MIRL] (high-dimensional setting,
    Algorithm 1, line 8):

    .. math:: \beta_{i+1} = (1 - \alpha_\beta)\, \beta_i + \alpha_\beta \frac{1}{L(\theta_i, \rho_{i+1})}

    ``L`` is the current (positive) value of the Eq. (13) loss; beta grows as the fit
    improves. A zero loss gives ``inf``: callers bound beta (see ``MIRLLoss``).
    """
    loss = float(loss)
    if not loss >= 0 or loss == float("inf"):
        raise ValueError(f"the loss driving the beta update must be finite and >= 0, got loss={loss}")
    inverse = float("inf") if loss == 0 else 1.0 / loss
    return (1.0 - beta_lr) * float(beta) + beta_lr * inverse


# --- VIREL: a Boltzmann policy whose temperature is the Bellman error -----------------------------
#
# [VIREL] lets the temperature go to 0 as the critic becomes optimal, so every function below
# accepts ``temperature = 0`` (the greedy limit) and a 0-dim tensor temperature (a loss buffer).


def bellman_error_temperature(
    td_error: torch.Tensor, *, c: float, p: int, weights: torch.Tensor | None = None
) -> torch.Tensor:
    r"""VIREL's temperature, the scaled Bellman error ([VIREL] Section 3, definition of :math:`\epsilon_\omega`):

    .. math:: \epsilon_\omega = \frac{c}{p}\, \|\mathcal T_\omega \hat Q_\omega - \hat Q_\omega\|_p^p
              = \frac{c}{p}\, \mathbb E_{(s,a)\sim d}\, |\mathcal T_\omega \hat Q_\omega(s,a) - \hat Q_\omega(s,a)|^p

    ``td_error`` holds :math:`\mathcal T_\omega \hat Q_\omega - \hat Q_\omega` at samples of ``d``; the norm is
    their mean (weighted by ``weights``, normalized, when given). A NaN or infinite error gives a
    NaN/inf temperature: callers check it (a silent NaN would make the policy NaN everywhere).
    On sampled transitions this is :math:`\mathbb E|y - Q|^p`, which exceeds :math:`|\mathbb E y - Q|^p`
    when the next state is random (for ``p = 2`` by the variance of the target).
    """
    magnitude = td_error.abs() if p == 1 else td_error.pow(2)
    if weights is None:
        return (c / p) * magnitude.mean()
    weights = weights.to(magnitude.dtype).expand_as(magnitude)
    return (c / p) * (weights * magnitude).sum() / weights.sum()


def _greedy_safe_temperature(temperature: float | torch.Tensor, q: torch.Tensor) -> float | torch.Tensor:
    """The temperature, with 0 replaced by the smallest normal float: ``(q - max q) / tiny`` is 0 at the
    maximizers and -inf (or below -1e300) elsewhere, so ``softmax`` becomes the greedy policy (ties share).

    A tensor temperature (a loss buffer) is not read here (that would synchronize with the device);
    it is checked where it is set (``VIRELLoss.update_temperature``)."""
    tiny = torch.finfo(q.dtype).tiny
    if isinstance(temperature, torch.Tensor):
        return temperature.to(q.dtype).clamp_min(tiny)
    return max(float(temperature), tiny)


def boltzmann_policy_at_temperature(q: torch.Tensor, temperature: float | torch.Tensor) -> torch.Tensor:
    r"""VIREL's Boltzmann policy :math:`\pi_\omega(a|s) \propto \exp(\hat Q_\omega(s,a)/\epsilon_\omega)`
    ([VIREL] Section 3) over a discrete action set; ``temperature = 0`` is the greedy policy
    (uniform over tied maximizers), the limit the paper's desideratum 1 asks for."""
    temperature = _greedy_safe_temperature(temperature, q)
    return torch.softmax((q - q.max(dim=-1, keepdim=True).values) / temperature, dim=-1)


def boltzmann_expected_value(q: torch.Tensor, temperature: float | torch.Tensor) -> torch.Tensor:
    r""":math:`\sum_a \pi(a|s)\, q(s,a)` with :math:`\pi = \mathrm{softmax}(q/\epsilon)`: the value of the
    Boltzmann policy under ``q``, without entropy term (``max q`` at ``temperature = 0``)."""
    return (boltzmann_policy_at_temperature(q, temperature) * q).sum(-1)


def boltzmann_evaluation_target(
    r_t: torch.Tensor,
    discount_t: torch.Tensor,
    q_t: torch.Tensor,
    *,
    temperature: float | torch.Tensor,
) -> torch.Tensor:
    r"""Policy-evaluation target of VIREL's Boltzmann policy ([VIREL] Section 3, the operator
    :math:`\mathcal T_\omega \cdot = r + \gamma\, \mathbb E_{s'\sim p,\, a'\sim\pi_\omega}[\cdot]`):

    .. math:: y_t = r_t + \gamma_t \sum_{a'} \pi_\omega(a'|s_{t+1})\, q_t(a'),
              \qquad \pi_\omega = \mathrm{softmax}(q_t / \epsilon_\omega)

    ``discount_t`` is ``gamma ** n * (1 - terminated)``. Unlike the soft target there is no entropy
    bonus: the critic evaluates the policy, the temperature only shapes it.
    """
    return r_t + discount_t * boltzmann_expected_value(q_t, temperature)


# --- Soft Q-learning with continuous actions [SQL] -----------------------------------------------


def importance_sampled_soft_value(
    q_t: torch.Tensor, log_proposal_t: torch.Tensor, tau: float | torch.Tensor
) -> torch.Tensor:
    r"""Soft value of a continuous action space from ``M`` importance-sampled actions ([SQL] Eq. 10):

    .. math:: \hat V(s) = \tau \ln \frac{1}{M} \sum_{j=1}^M \frac{\exp(Q(s, a_j)/\tau)}{q(a_j)},
              \qquad a_j \sim q

    an estimate of :math:`V(s) = \tau \ln \int_{\mathcal A} \exp(Q(s, a)/\tau)\,da`. ``q_t`` holds
    :math:`Q(s, a_j)` and ``log_proposal_t`` :math:`\ln q(a_j)`, particles along the last dimension
    (``[..., M]``, broadcastable). Computed as ``tau * (logsumexp(q/tau - ln q) - ln M)``, finite for
    any magnitudes. The mean inside the log is unbiased for :math:`\exp(V/\tau)`, so
    :math:`\hat V` itself is biased low by Jensen's inequality (by about ``tau * var / (2 mean^2)``
    of the weights). The uniform proposal on :math:`[-1, 1]^d` has :math:`\ln q = -d \ln 2`,
    the ``d log 2`` term of the reference implementation.
    """
    num_particles = q_t.shape[-1]
    log_weights = q_t / tau - log_proposal_t
    return tau * (torch.logsumexp(log_weights, dim=-1) - math.log(num_particles))


def _squared_distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``||x_i - y_j||^2`` for particles ``x [..., Kx, d]`` and ``y [..., Ky, d]`` -> ``[..., Kx, Ky]``."""
    return (x.unsqueeze(-2) - y.unsqueeze(-3)).pow(2).sum(-1)


def median_bandwidth(x: torch.Tensor, y: torch.Tensor, *, min_bandwidth: float = 1e-3) -> torch.Tensor:
    r"""RBF bandwidth of the median heuristic ([SQL] Appendix D; Liu & Wang 2016, Section 5):

    .. math:: h = \max\Big(\frac{\mathrm{median}_{i,j} \|x_i - y_j\|^2}{\ln K_x},\; h_{\min}\Big)

    over all ``Kx * Ky`` pairs of ``x [..., Kx, d]`` (the fixed particles) and ``y [..., Ky, d]``,
    one bandwidth per leading index (shape ``[...]``). For an even number of pairs the lower median
    (``torch.median``) is taken. ``h_min`` (the reference implementation's 1e-3) keeps the kernel
    finite when the particles coincide. No gradient flows through ``h``: it is a setting of the
    kernel, not a function to differentiate.

    Raises:
        ValueError: if ``Kx < 2`` (``ln Kx`` would be 0) or ``min_bandwidth <= 0``.
    """
    num_x = x.shape[-2]
    if num_x < 2:
        raise ValueError(f"the median heuristic divides by ln(Kx): it needs Kx >= 2 particles, got Kx={num_x}")
    if not min_bandwidth > 0:
        raise ValueError(f"min_bandwidth must be > 0, got min_bandwidth={min_bandwidth}")
    with torch.no_grad():
        squared = _squared_distances(x.detach(), y.detach()).flatten(-2)
        return (squared.median(dim=-1).values / math.log(num_x)).clamp_min(min_bandwidth)


def rbf_kernel(x: torch.Tensor, y: torch.Tensor, h: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
    r"""RBF kernel :math:`k(x_i, y_j) = \exp(-\|x_i - y_j\|^2 / h)` and its gradient in ``x_i``:

    .. math:: \nabla_{x_i} k(x_i, y_j) = -\frac{2}{h} (x_i - y_j)\, k(x_i, y_j)

    for ``x [..., Kx, d]``, ``y [..., Ky, d]`` and a bandwidth ``h`` of shape ``[...]`` (or a
    number). Returns ``k [..., Kx, Ky]`` and ``grad [..., Kx, Ky, d]`` ([SQL] Appendix D).
    """
    h = torch.as_tensor(h, dtype=x.dtype, device=x.device)
    diff = x.unsqueeze(-2) - y.unsqueeze(-3)
    h = h.reshape(*h.shape, 1, 1)
    k = torch.exp(-diff.pow(2).sum(-1) / h)
    return k, -2.0 / h.unsqueeze(-1) * diff * k.unsqueeze(-1)


def svgd_direction(
    x_fixed: torch.Tensor, grad_log_p_fixed: torch.Tensor, x_updated: torch.Tensor, h: torch.Tensor | float
) -> torch.Tensor:
    r"""Stein variational gradient at the updated particles ([SQL] Eq. 13; Liu & Wang 2016, Eq. 8):

    .. math:: \Delta(x_i) = \frac{1}{K_f} \sum_{j=1}^{K_f}
              \big[k(x_j, x_i)\, \nabla_{x_j} \ln p(x_j) + \nabla_{x_j} k(x_j, x_i)\big]

    with :math:`x_j` the fixed particles ``x_fixed [..., Kf, d]``, their scores
    ``grad_log_p_fixed [..., Kf, d]``, :math:`x_i` the updated particles ``x_updated [..., Ku, d]``
    and the RBF kernel of :func:`rbf_kernel` with bandwidth ``h``. The first term pulls the particles
    towards high density, the second pushes them apart. [SQL] Eq. 13 writes the score of
    :math:`p \propto \exp(Q/\tau)` as :math:`\nabla Q` and multiplies the repulsion by
    :math:`\tau`: the same direction times :math:`\tau`. Returns ``[..., Ku, d]``.
    """
    k, grad_k = rbf_kernel(x_fixed, x_updated, h)
    attraction = (k.unsqueeze(-1) * grad_log_p_fixed.unsqueeze(-2)).mean(-3)
    return attraction + grad_k.mean(-3)


# --- IQN and M-IQN: quantile regression on sampled fractions ------------------------------------
#
# [IQN] Dabney, Ostrovski, Silver, Munos. "Implicit Quantile Networks for Distributional
# Reinforcement Learning", ICML 2018, arXiv:1806.06923, Sec. 3. [QR-DQN] Dabney, Rowland,
# Bellemare, Munos. "Distributional Reinforcement Learning with Quantile Regression", AAAI 2018,
# arXiv:1710.10044 (the quantile Huber loss). M-IQN: [MRL] Vieillard, Pietquin, Geist, NeurIPS
# 2020, arXiv:2007.14430, Sec. 2 (Munchausen term added to IQN's target).


def quantile_huber_loss(
    quantiles_tm1: torch.Tensor,
    target_quantiles: torch.Tensor,
    fractions: torch.Tensor,
    kappa: float = 1.0,
) -> torch.Tensor:
    r"""Quantile-Huber loss of one transition, summed over online and averaged over target quantiles.

    .. math:: \frac{1}{N'} \sum_{i=1}^{N} \sum_{j=1}^{N'} \rho^\kappa_{\tau_i}(\delta_{ij}),\quad
              \delta_{ij} = T\theta_j - \theta_i,\quad
              \rho^\kappa_\tau(\delta) = |\tau - \mathbb{1}\{\delta < 0\}|\, \frac{L_\kappa(\delta)}{\kappa}

    with the Huber loss :math:`L_\kappa(\delta) = \delta^2/2` if :math:`|\delta| \le \kappa`, else
    :math:`\kappa(|\delta| - \kappa/2)` ([QR-DQN] quantile Huber loss; [IQN] Sec. 3 sums it over the
    ``N`` online and averages it over the ``N'`` target fractions; [MRL] uses it unchanged for M-IQN).

    Args:
        quantiles_tm1: online quantiles of the taken action ``theta_i``, ``[..., N]``.
        target_quantiles: target samples ``T theta_j`` (no gradient flows into them), ``[..., N']``.
        fractions: the fractions ``tau_i`` of ``quantiles_tm1``, ``[..., N]`` or ``[N]``.
        kappa: Huber threshold, > 0.

    Returns:
        the loss per transition, ``[...]``.
    """
    delta = target_quantiles.detach().unsqueeze(-1) - quantiles_tm1.unsqueeze(-2)  # [..., N', N]
    abs_delta = delta.abs()
    huber = torch.where(abs_delta <= kappa, 0.5 * delta.pow(2), kappa * (abs_delta - 0.5 * kappa))
    weight = (fractions.unsqueeze(-2) - (delta.detach() < 0).to(delta.dtype)).abs()
    return (weight * huber).sum(-1).mean(-1) / kappa


def gather_quantiles(theta: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``theta[..., n, a]`` for integer actions ``a`` of shape ``theta.shape[:-2]``: ``[..., n]``."""
    index = a.long().reshape(*a.shape, 1, 1).expand(*theta.shape[:-1], 1)
    return theta.gather(-1, index).squeeze(-1)


def iqn_next_quantiles(q_t: torch.Tensor, theta_t: torch.Tensor) -> torch.Tensor:
    r"""IQN bootstrap samples :math:`\theta_j(s', a^*)`, :math:`a^* = \arg\max_a q_t(a)` ([IQN], Sec. 3):

    .. math:: a^* = \arg\max_a \frac{1}{K} \sum_{k=1}^{K} Z_{\tilde\tau_k}(s', a), \qquad
              T\theta_j = r + \gamma\, Z_{\tau'_j}(s', a^*)

    ``q_t`` ``[..., A]`` is the mean over ``K`` target quantiles at ``s'``, ``theta_t``
    ``[..., N', A]`` the target quantiles at the ``N'`` target fractions. Returns ``[..., N']``
    (the discount and reward are the value estimator's).
    """
    return gather_quantiles(theta_t, q_t.argmax(-1))


def munchausen_iqn_next_quantiles(q_t: torch.Tensor, theta_t: torch.Tensor, *, tau: float) -> torch.Tensor:
    r"""M-IQN soft bootstrap samples ([MRL], Sec. 2, M-IQN):

    .. math:: \sum_{a'} \pi(a'|s') \big(\theta_j(s', a') - \tau \ln \pi(a'|s')\big),
              \quad \pi = \mathrm{softmax}(q_t / \tau)

    ``q_t`` ``[..., A]`` is the mean over ``K`` target quantiles at ``s'`` (it defines the
    policy, as in the official M-IQN code), ``theta_t`` ``[..., N', A]`` the target quantiles.
    Returns ``[..., N']``. This is not ``tau * logsumexp(theta_j / tau)``: the policy comes from
    the mean, not from ``theta_j``.
    """
    log_pi = scaled_log_policy(q_t, tau)
    pi = (log_pi / tau).exp()
    return (pi.unsqueeze(-2) * (theta_t - log_pi.unsqueeze(-2))).sum(-1)


#: The bounding functions of MDAC ([MDAC] Iwaki, "Mirror Descent Actor Critic via Bounded Advantage
#: Learning", arXiv:2502.03854, 2025): ``"tanh"`` and ``"clip"`` (saturating at +-1 past ``|x| = scale``)
#: and ``"none"`` (the identity: the naive, unbounded instantiation of MDVI, an M-SAC).
LOG_DENSITY_BOUNDS = ("tanh", "clip", "none")


def bound_log_density(x: torch.Tensor, *, bound: str, scale: float) -> torch.Tensor:
    r"""The bounding function :math:`f` that MDAC applies to a scaled log-density :math:`x = \alpha\ln\pi(a|s)` ([MDAC] Sec. 3):

    .. math:: f_{\tanh}(x) = \tanh(x / c), \qquad f_{\mathrm{clip}}(x) = \mathrm{clip}(x / c, -1, 1), \qquad f_{\mathrm{none}}(x) = x

    with :math:`c` = ``scale`` (``tanh(x/10)`` and ``clip(x/10, -1, 1)`` are the choices [MDAC] compares
    with the identity). For :math:`x \le 0` both bounded choices satisfy :math:`x \le f(x) \le 0` when
    :math:`c \ge 1`: the condition under which the tabular operator keeps the optimal policy and
    increases the action gap (:mod:`torchrl_reg.tabular.mdac`).
    """
    if bound == "tanh":
        return torch.tanh(x / scale)
    if bound == "clip":
        return (x / scale).clamp(-1.0, 1.0)
    if bound == "none":
        return x
    raise ValueError(f"bound must be one of {LOG_DENSITY_BOUNDS}, got bound={bound!r}")


def bounded_munchausen_term(scaled_log_pi_a: torch.Tensor, *, beta: float, bound: str, scale: float) -> torch.Tensor:
    r"""MDAC's Munchausen term :math:`\beta f(\alpha\ln\pi(a_t|s_t))` on the replayed action ([MDAC] Sec. 3,
    the critic loss): the KL part of MDVI's regularization, bounded. ``bound="none"`` is the
    Munchausen term of [MRL] Eq. (2) without its clip."""
    return beta * bound_log_density(scaled_log_pi_a, bound=bound, scale=scale)


def bounded_soft_next_value(next_q: torch.Tensor, next_scaled_log_pi: torch.Tensor, *, bound: str, scale: float) -> torch.Tensor:
    r"""MDAC's bootstrap :math:`\bar Q(s', a') - f(\alpha\ln\pi(a'|s'))`, :math:`a' \sim \pi(\cdot|s')`
    ([MDAC] Sec. 3): the one-sample estimate of the next state's soft value with the entropy term
    bounded; ``bound="none"`` is SAC's :math:`\bar Q(s',a') - \alpha\ln\pi(a'|s')`."""
    return next_q - bound_log_density(next_scaled_log_pi, bound=bound, scale=scale)
