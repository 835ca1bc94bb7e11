"""The papers' theorems, checked to float64 precision on several MDPs.

* M-VI(alpha, tau) == MD-VI(alpha*tau, (1-alpha)*tau) ([MRL] "Implicit KL regularization");
* IQ-DP(alpha, tau) == MD-VI(alpha*tau, (1-alpha)*tau) ([IQ] Theorem 1), convergence to the
  (1-alpha)*tau entropy-regularized optimum;
* special cases: alpha = 0 is soft VI, alpha = 0 and tau -> 0 is VI, tau -> 0 with alpha > 0 is
  advantage learning; the soft Bellman operator is a gamma-contraction;
* the action gap of M-VI tends to gap_*^{(1-alpha)tau} / (1 - alpha) (not (1+alpha)/(1-alpha));
* error propagation ([IQ] Theorem 2, [MRL] bounds): the bounds hold on the runs, KL-only MD-VI
  keeps converging under i.i.d. errors while VI plateaus.
"""
from __future__ import annotations

import math

import pytest
import torch

from torchrl_reg.tabular.algorithms import (
    advantage_learning,
    implicit_q_dp,
    mirror_descent_vi,
    munchausen_vi,
    regularized_optimum,
    regularized_policy_evaluation,
    soft_bellman_operator,
    soft_value_iteration,
    value_iteration,
)
from torchrl_reg.tabular.mdp import FiniteMDP, deceptive_chain, garnet, mirl_grid_world
from torchrl_reg.tabular.theory import (
    approximate_vi_bound,
    entropy_kl_mdvi_bound,
    kl_only_mdvi_bound,
    munchausen_action_gap_ratio,
    munchausen_vi_limit,
)

F64 = torch.float64

MDPS = {
    "garnet-a": lambda: garnet(20, 4, 3, gamma=0.9, seed=1),
    "garnet-b": lambda: garnet(10, 3, 5, gamma=0.8, seed=2, reward_range=(0.0, 1.0)),
    "grid": lambda: mirl_grid_world(4, gamma=0.9),
    "chain": lambda: deceptive_chain(6, gamma=0.9, slip=0.1),
}


def _md_vi_start(mdp: FiniteMDP, q0: torch.Tensor, alpha: float, tau: float) -> dict:
    """MD-VI initial point matching M-VI's q0: q'_0 = q_0 - alpha tau ln pi_0 with pi_0 uniform."""
    policy0 = torch.full_like(mdp.rewards, 1.0 / mdp.num_actions)
    return dict(q0=q0 - alpha * tau * policy0.log(), policy0=policy0)


def _errors(mdp: FiniteMDP, num_iterations: int, sigma: float, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return sigma * torch.randn(num_iterations, mdp.num_states, mdp.num_actions, generator=generator, dtype=F64)


@pytest.mark.parametrize("name", MDPS)
@pytest.mark.parametrize("alpha, tau", [(0.9, 0.03), (0.5, 0.5), (1.0, 0.1), (0.0, 0.2)])
@pytest.mark.parametrize("sigma", [0.0, 0.3])
class TestImplicitKLRegularization:
    def test_munchausen_vi_is_md_vi(self, name, alpha, tau, sigma):
        mdp = MDPS[name]()
        q0 = torch.randn(mdp.num_states, mdp.num_actions, generator=torch.Generator().manual_seed(3), dtype=F64)
        errors = _errors(mdp, 60, sigma, seed=4)
        m = munchausen_vi(mdp, alpha=alpha, tau=tau, num_iterations=60, q0=q0, errors=errors)
        md = mirror_descent_vi(
            mdp, kl_coef=alpha * tau, entropy_coef=(1 - alpha) * tau, num_iterations=60,
            errors=errors, **_md_vi_start(mdp, q0, alpha, tau),
        )
        assert torch.allclose(m.policies, md.policies, atol=1e-12, rtol=0)
        # The change of variables behind it: q'_{k+1} = q_{k+1} - alpha tau ln pi_{k+1}, with
        # ln pi_{k+1} = log_softmax(q_k / tau) (the policies themselves underflow to 0).
        log_pi = torch.log_softmax(torch.cat([q0.unsqueeze(0), m.q[:-1]]) / tau, -1)
        assert torch.allclose(md.q, m.q - alpha * tau * log_pi, atol=1e-9, rtol=1e-12)

    def test_iq_dp_is_md_vi(self, name, alpha, tau, sigma):
        # [IQ] Theorem 1; the IQ implicit q-values are the M-VI iterates.
        mdp = MDPS[name]()
        q0 = torch.zeros(mdp.num_states, mdp.num_actions, dtype=F64)
        errors = _errors(mdp, 60, sigma, seed=5)
        iq = implicit_q_dp(mdp, alpha=alpha, tau=tau, num_iterations=60, errors=errors)
        md = mirror_descent_vi(
            mdp, kl_coef=alpha * tau, entropy_coef=(1 - alpha) * tau, num_iterations=60,
            errors=errors, **_md_vi_start(mdp, q0, alpha, tau),
        )
        assert torch.allclose(iq.policies, md.policies, atol=1e-12, rtol=0)
        m = munchausen_vi(mdp, alpha=alpha, tau=tau, num_iterations=60, errors=errors)
        assert torch.allclose(iq.q, m.q, atol=1e-10, rtol=1e-12)


@pytest.mark.parametrize("name", MDPS)
@pytest.mark.parametrize("alpha, tau", [(0.9, 0.1), (0.5, 0.03), (0.3, 1.0)])
def test_converge_to_regularized_optimum(name, alpha, tau):
    mdp = MDPS[name]()
    optimum = regularized_optimum(mdp, entropy_coef=(1 - alpha) * tau)
    iq = implicit_q_dp(mdp, alpha=alpha, tau=tau, num_iterations=400)
    md = mirror_descent_vi(mdp, kl_coef=alpha * tau, entropy_coef=(1 - alpha) * tau, num_iterations=400)
    for result in (iq, md):
        assert torch.allclose(result.policies[-1], optimum.policy, atol=1e-10, rtol=0)
    # The M-VI q-values themselves converge to V_*^t + tau ln pi_*^t (theory.munchausen_vi_limit).
    v_star = optimum.values.unsqueeze(-1)
    assert torch.allclose(iq.q[-1], v_star + tau * optimum.policy.log(), atol=1e-9, rtol=0)
    assert torch.allclose(munchausen_vi_limit(mdp, alpha=alpha, tau=tau), iq.q[-1], atol=1e-9, rtol=0)


@pytest.mark.parametrize("name", MDPS)
class TestSpecialCases:
    def test_alpha_zero_is_soft_vi(self, name):
        mdp = MDPS[name]()
        m = munchausen_vi(mdp, alpha=0.0, tau=0.3, num_iterations=50)
        soft = soft_value_iteration(mdp, tau=0.3, num_iterations=50)
        assert torch.allclose(m.q, soft.q, atol=1e-13, rtol=0)
        assert torch.allclose(m.policies, soft.policies, atol=1e-15, rtol=0)

    @pytest.mark.parametrize("tau", [1e-2, 1e-4, 1e-7])
    def test_alpha_zero_tau_to_zero_is_vi(self, name, tau):
        # 0 <= soft max - max <= tau ln|A| and both operators are gamma-contractions, so
        # ||q_k^soft - q_k^VI|| <= gamma tau ln|A| (1 - gamma^k) / (1 - gamma).
        mdp = MDPS[name]()
        num_iterations = 60
        m = munchausen_vi(mdp, alpha=0.0, tau=tau, num_iterations=num_iterations)
        vi = value_iteration(mdp, num_iterations=num_iterations)
        k = torch.arange(1, num_iterations + 1, dtype=F64)
        bound = mdp.gamma * tau * math.log(mdp.num_actions) * (1 - mdp.gamma**k) / (1 - mdp.gamma)
        assert ((m.q - vi.q).abs().flatten(1).max(-1).values <= bound + 1e-12).all()

    def test_tau_to_zero_is_advantage_learning(self, name):
        mdp = MDPS[name]()
        alpha, num_iterations = 0.9, 30
        al = advantage_learning(mdp, alpha=alpha, num_iterations=num_iterations)
        # Operator level: |tau ln softmax(q/tau) - (q - max q)| and |soft max - max| are <= tau ln|A|,
        # so one M-VI step from any AL iterate is within (alpha + gamma) tau ln|A| of the AL step.
        tau = 1e-3
        bound = (alpha + mdp.gamma) * tau * math.log(mdp.num_actions)
        for k in range(num_iterations - 1):
            step = munchausen_vi(mdp, alpha=alpha, tau=tau, num_iterations=1, q0=al.q[k])
            assert (step.q[0] - al.q[k + 1]).abs().max() <= bound + 1e-12
        # Trajectory level: the M-VI iterates approach the AL iterates linearly in tau.
        gaps = []
        for tau in (1e-4, 1e-6, 1e-8):
            m = munchausen_vi(mdp, alpha=alpha, tau=tau, num_iterations=num_iterations)
            gaps.append((m.q - al.q).abs().max().item())
        assert gaps[2] < 1e-5
        assert gaps[1] <= 2e-2 * gaps[0] + 1e-12 and gaps[2] <= 2e-2 * gaps[1] + 1e-12

    @pytest.mark.parametrize("tau", [0.01, 0.3, 5.0])
    def test_soft_bellman_operator_is_gamma_contraction(self, name, tau):
        mdp = MDPS[name]()
        generator = torch.Generator().manual_seed(0)
        shape = (mdp.num_states, mdp.num_actions)
        for _ in range(20):
            q1 = 5 * torch.randn(shape, generator=generator, dtype=F64)
            q2 = q1 + torch.randn(shape, generator=generator, dtype=F64) * torch.rand(shape, generator=generator, dtype=F64)
            lhs = (soft_bellman_operator(mdp, q1, tau) - soft_bellman_operator(mdp, q2, tau)).abs().max()
            assert lhs <= mdp.gamma * (q1 - q2).abs().max() * (1 + 1e-12)
        # The modulus is exactly gamma: a constant shift c moves the image by gamma * c.
        q1 = torch.randn(shape, generator=generator, dtype=F64)
        shifted = soft_bellman_operator(mdp, q1 + 2.0, tau) - soft_bellman_operator(mdp, q1, tau)
        assert torch.allclose(shifted, torch.full(shape, 2.0 * mdp.gamma, dtype=F64), atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", MDPS)
@pytest.mark.parametrize("alpha", [0.3, 0.6, 0.9])
@pytest.mark.parametrize("tau", [0.1, 1.0])
def test_action_gap_limit(name, alpha, tau):
    mdp = MDPS[name]()
    m = munchausen_vi(mdp, alpha=alpha, tau=tau, num_iterations=350)
    optimum = regularized_optimum(mdp, entropy_coef=(1 - alpha) * tau)
    gap_k = m.q[-1].max(-1, keepdim=True).values - m.q[-1]
    gap_star = optimum.q.max(-1, keepdim=True).values - optimum.q
    mask = gap_star > 1e-3
    assert mask.any()
    ratio = gap_k[mask] / gap_star[mask]
    assert torch.allclose(ratio, torch.full_like(ratio, 1 / (1 - alpha)), rtol=1e-8, atol=0)
    assert munchausen_action_gap_ratio(alpha) == pytest.approx(1 / (1 - alpha))
    # The quoted (1 + alpha) / (1 - alpha) is off by (1 + alpha) under its definitions ...
    assert (ratio - (1 + alpha) / (1 - alpha)).abs().min() > 0.2
    # ... and is the gap of the q-values with one more Munchausen bonus added.
    bonus_q = m.q[-1] + alpha * tau * torch.softmax(m.q[-1] / tau, -1).log()
    gap_bonus = bonus_q.max(-1, keepdim=True).values - bonus_q
    assert torch.allclose(gap_bonus[mask] / gap_star[mask], torch.full_like(ratio, (1 + alpha) / (1 - alpha)), rtol=1e-8)


def _q_star_errors(mdp: FiniteMDP, optimum_q: torch.Tensor, policies: torch.Tensor, entropy_coef: float = 0.0):
    q_pi = regularized_policy_evaluation(mdp, policies, entropy_coef=entropy_coef)
    return (optimum_q - q_pi).abs().flatten(1).max(-1).values


class TestErrorPropagation:
    @pytest.mark.parametrize("sigma", [0.0, 0.5, 2.0])
    @pytest.mark.parametrize("name", ["garnet-a", "grid"])
    def test_approximate_vi_bound_holds(self, name, sigma):
        mdp = MDPS[name]()
        errors = _errors(mdp, 300, sigma, seed=0)
        result = value_iteration(mdp, num_iterations=300, errors=errors)
        gap = _q_star_errors(mdp, regularized_optimum(mdp).q, result.policies)
        bound = approximate_vi_bound(errors, gamma=mdp.gamma, v_max=mdp.r_max / (1 - mdp.gamma))
        assert (gap <= bound + 1e-10).all()

    @pytest.mark.parametrize("sigma", [0.0, 0.5, 2.0])
    @pytest.mark.parametrize("kl_coef", [0.1, 1.0])
    @pytest.mark.parametrize("name", ["garnet-a", "grid"])
    @pytest.mark.parametrize("scheme", ["iq_dp", "munchausen_vi", "md_vi"])
    def test_kl_only_bound_holds(self, scheme, name, kl_coef, sigma):
        # [IQ] Theorem 2 case 2 / [MRL]'s implicit-KL bound, for IQ-DP(1, lambda) = M-VI(1, lambda) = MD-VI(lambda, 0).
        mdp = MDPS[name]()
        errors = _errors(mdp, 300, sigma, seed=1)
        if scheme == "iq_dp":
            result = implicit_q_dp(mdp, alpha=1.0, tau=kl_coef, num_iterations=300, errors=errors)
        elif scheme == "munchausen_vi":
            result = munchausen_vi(mdp, alpha=1.0, tau=kl_coef, num_iterations=300, errors=errors)
        else:
            result = mirror_descent_vi(mdp, kl_coef=kl_coef, entropy_coef=0.0, num_iterations=300, errors=errors)
        gap = _q_star_errors(mdp, regularized_optimum(mdp).q, result.policies)
        bound = kl_only_mdvi_bound(
            errors, gamma=mdp.gamma, r_max=mdp.r_max, kl_coef=kl_coef, num_actions=mdp.num_actions
        )
        assert (gap[1:] <= bound[1:]).all()

    @pytest.mark.parametrize("alpha, tau", [(0.9, 0.1), (0.5, 1.0)])
    @pytest.mark.parametrize("name", ["garnet-a", "chain"])
    def test_entropy_kl_bound_leading_term_holds_after_convergence(self, name, alpha, tau):
        # [IQ] Theorem 2 case 1; its o(1/k) remainder is not explicit, so the leading term is checked
        # from the iteration where the error-free scheme is within 1e-10 of the optimum.
        mdp = MDPS[name]()
        t = (1 - alpha) * tau
        optimum_q = regularized_optimum(mdp, entropy_coef=t).q
        exact = implicit_q_dp(mdp, alpha=alpha, tau=tau, num_iterations=400)
        converged = int((_q_star_errors(mdp, optimum_q, exact.policies, t) > 1e-10).nonzero().max()) + 1
        assert converged < 300
        for sigma, seed in ((0.3, 0), (1.0, 1)):
            errors = _errors(mdp, 400, sigma, seed=seed)
            result = implicit_q_dp(mdp, alpha=alpha, tau=tau, num_iterations=400, errors=errors)
            gap = _q_star_errors(mdp, optimum_q, result.policies, t)
            bound = entropy_kl_mdvi_bound(errors, alpha=alpha, gamma=mdp.gamma)
            assert (gap[converged:] <= bound[converged:]).all()

    @pytest.mark.slow
    def test_kl_only_keeps_converging_while_vi_plateaus(self):
        # i.i.d. zero-mean errors: the KL-only bound depends on the norm of the average error
        # (-> 0 like 1/sqrt(k)), the VI bound on an average of error norms (a floor).
        mdp = MDPS["garnet-a"]()
        q_star = regularized_optimum(mdp).q
        errors = _errors(mdp, 1000, 0.5, seed=7)
        vi = _q_star_errors(mdp, q_star, value_iteration(mdp, num_iterations=1000, errors=errors).policies)
        md = _q_star_errors(
            mdp, q_star, mirror_descent_vi(mdp, kl_coef=0.5, entropy_coef=0.0, num_iterations=1000, errors=errors).policies
        )
        vi_early, vi_late = vi[50:150].mean(), vi[800:].mean()
        md_early, md_late = md[50:150].mean(), md[800:].mean()
        assert vi_late > 0.5 * vi_early and vi_late > 1.0  # plateau, far from q*
        assert md_early > 0.05 and md_late < 0.2 * md_early  # still converging ...
        assert md_late < 0.02 * vi_late  # ... to far below the VI floor
        # The same holds for the M-VI and IQ-DP parametrizations of MD-VI(lambda, 0).
        m = munchausen_vi(mdp, alpha=1.0, tau=0.5, num_iterations=1000, errors=errors)
        iq = implicit_q_dp(mdp, alpha=1.0, tau=0.5, num_iterations=1000, errors=errors)
        assert torch.allclose(_q_star_errors(mdp, q_star, m.policies), md, atol=1e-8, rtol=0)
        assert torch.allclose(_q_star_errors(mdp, q_star, iq.policies), md, atol=1e-8, rtol=0)
