"""Unit tests of the exact DP schemes: one step by hand, naive re-implementations, convergence."""
from __future__ import annotations

import math

import pytest
import torch

from torchrl_reg.tabular.algorithms import (
    advantage_learning,
    bellman_optimality_operator,
    greedy_policy,
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

F64 = torch.float64


def _hand_mdp() -> FiniteMDP:
    transitions = torch.tensor([[[0.5, 0.5], [1.0, 0.0]], [[0.0, 1.0], [0.25, 0.75]]])
    return FiniteMDP(transitions, torch.tensor([[1.0, 0.0], [0.0, 2.0]]), gamma=0.5)


Q_HAND = torch.tensor([[1.0, 2.0], [3.0, 0.0]], dtype=F64)
# tau * log sum exp(q / tau) with tau = 1, by hand.
V_SOFT_HAND = [math.log(math.e + math.e**2), math.log(math.e**3 + 1.0)]


def _tensor(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=F64)


class TestOperatorsByHand:
    def test_bellman_optimality(self):
        # max q = [2, 3]; P max q = [[2.5, 2], [3, 2.75]]; r + 0.5 * P max q.
        expected = _tensor([[2.25, 1.0], [1.5, 3.375]])
        assert torch.allclose(bellman_optimality_operator(_hand_mdp(), Q_HAND), expected, atol=1e-15, rtol=0)

    def test_soft_bellman(self):
        v0, v1 = V_SOFT_HAND
        expected = _tensor([[1 + 0.5 * (0.5 * v0 + 0.5 * v1), 0.5 * v0], [0.5 * v1, 2 + 0.5 * (0.25 * v0 + 0.75 * v1)]])
        assert torch.allclose(soft_bellman_operator(_hand_mdp(), Q_HAND, 1.0), expected, atol=1e-14, rtol=0)

    def test_munchausen_vi_first_step(self):
        v0, v1 = V_SOFT_HAND
        alpha = 0.5
        log_pi = _tensor([[1 - v0, 2 - v0], [3 - v1, 0 - v1]])  # tau ln softmax(q / tau), tau = 1
        soft_next = _tensor([[0.5 * v0 + 0.5 * v1, v0], [v1, 0.25 * v0 + 0.75 * v1]])
        expected = _hand_mdp().rewards + alpha * log_pi + 0.5 * soft_next
        result = munchausen_vi(_hand_mdp(), alpha=alpha, tau=1.0, num_iterations=1, q0=Q_HAND)
        assert torch.allclose(result.q[0], expected, atol=1e-14, rtol=0)
        assert torch.allclose(result.policies[0], log_pi.exp(), atol=1e-15, rtol=0)
        clipped = munchausen_vi(_hand_mdp(), alpha=alpha, tau=1.0, num_iterations=1, q0=Q_HAND, clip_value_min=-1.0)
        expected_clipped = _hand_mdp().rewards + alpha * log_pi.clamp(min=-1.0) + 0.5 * soft_next
        assert torch.allclose(clipped.q[0], expected_clipped, atol=1e-14, rtol=0)

    def test_advantage_learning_first_step(self):
        # T q + 0.5 * (q - max q) = [[2.25, 1], [1.5, 3.375]] + [[-0.5, 0], [0, -1.5]].
        result = advantage_learning(_hand_mdp(), alpha=0.5, num_iterations=1, q0=Q_HAND)
        assert torch.allclose(result.q[0], _tensor([[1.75, 1.0], [1.5, 1.875]]), atol=1e-15, rtol=0)
        assert torch.equal(result.policies[0], _tensor([[0.0, 1.0], [1.0, 0.0]]))

    def test_persistent_advantage_learning_is_bellemare_operator_on_deterministic_mdp(self):
        # Deterministic transitions: T_PAL q(s, a) = max(T_AL q(s, a), T q(s, a) - alpha (V(s') - q(s', a))).
        mdp = garnet(6, 3, 1, seed=4)
        q = torch.randn(6, 3, dtype=F64, generator=torch.Generator().manual_seed(0))
        alpha = 0.7
        v = q.max(-1).values
        t_q = bellman_optimality_operator(mdp, q)
        expected = torch.empty_like(q)
        for s in range(6):
            for a in range(3):
                s_next = int(mdp.transitions[s, a].argmax())
                al = t_q[s, a] + alpha * (q[s, a] - v[s])
                expected[s, a] = max(al, t_q[s, a] - alpha * (v[s_next] - q[s_next, a]))
        result = advantage_learning(mdp, alpha=alpha, num_iterations=1, q0=q, persistent=True)
        assert torch.allclose(result.q[0], expected, atol=1e-14, rtol=0)

    def test_persistent_advantage_learning_averages_sampled_targets(self):
        mdp = garnet(5, 2, 3, seed=5)
        q = torch.randn(5, 2, dtype=F64, generator=torch.Generator().manual_seed(1))
        alpha = 0.9
        v = q.max(-1).values
        expected = torch.zeros_like(q)
        for s in range(5):
            for a in range(2):
                for s_next in range(5):
                    sample = mdp.rewards[s, a] + mdp.gamma * v[s_next]
                    target = sample + max(alpha * (q[s, a] - v[s]), -alpha * (v[s_next] - q[s_next, a]))
                    expected[s, a] += mdp.transitions[s, a, s_next] * target
        result = advantage_learning(mdp, alpha=alpha, num_iterations=1, q0=q, persistent=True)
        assert torch.allclose(result.q[0], expected, atol=1e-14, rtol=0)

    def test_iq_dp_solves_eq3(self):
        # tau ln pi_{k+2} + V_{k+1} = r + alpha tau ln pi_{k+1} + gamma P V_k, read off the outputs.
        mdp, alpha, tau = garnet(7, 3, 2, seed=2), 0.8, 0.3
        result = implicit_q_dp(mdp, alpha=alpha, tau=tau, num_iterations=6)
        assert torch.allclose(result.policies.sum(-1), torch.ones(6, 7, dtype=F64), atol=1e-14, rtol=0)
        for k in range(1, 5):
            lhs = tau * result.policies[k + 1].log() + result.values[k].unsqueeze(-1)
            rhs = mdp.rewards + alpha * tau * result.policies[k].log() + mdp.gamma * mdp.expected_next(result.values[k - 1])
            assert torch.allclose(lhs, rhs, atol=1e-12, rtol=0)


class TestPolicyEvaluation:
    @pytest.mark.parametrize("entropy_coef, kl_coef", [(0.0, 0.0), (0.3, 0.0), (0.0, 0.5), (0.2, 0.7)])
    def test_matches_iterated_operator(self, entropy_coef, kl_coef):
        mdp = garnet(9, 3, 3, gamma=0.9, seed=3)
        generator = torch.Generator().manual_seed(0)
        policy = torch.softmax(torch.randn(9, 3, generator=generator, dtype=F64), -1)
        reference = torch.softmax(torch.randn(9, 3, generator=generator, dtype=F64), -1)
        # Naive: iterate T_pi q = r + gamma P <pi, q - t ln pi - lambda ln(pi / mu)> to convergence.
        q = torch.zeros(9, 3, dtype=F64)
        for _ in range(2000):
            v = (policy * (q - entropy_coef * policy.log() - kl_coef * (policy.log() - reference.log()))).sum(-1)
            q = mdp.rewards + mdp.gamma * torch.einsum("ijk,k->ij", mdp.transitions, v)
        exact = regularized_policy_evaluation(
            mdp, policy, entropy_coef=entropy_coef, kl_coef=kl_coef, reference=reference
        )
        assert torch.allclose(exact, q, atol=1e-12, rtol=0)

    def test_kl_to_uniform_is_entropy_minus_constant(self):
        # KL(pi || uniform) = -H(pi) + ln |A|: the q-values differ by gamma * lambda ln|A| / (1 - gamma).
        mdp = garnet(6, 4, 2, gamma=0.8, seed=0)
        policy = torch.softmax(torch.randn(6, 4, dtype=F64, generator=torch.Generator().manual_seed(2)), -1)
        lam = 0.4
        q_kl = regularized_policy_evaluation(mdp, policy, kl_coef=lam, reference=torch.full((4,), 0.25, dtype=F64))
        q_h = regularized_policy_evaluation(mdp, policy, entropy_coef=lam)
        assert torch.allclose(q_kl, q_h - 0.8 * lam * math.log(4) / 0.2, atol=1e-12, rtol=0)

    def test_deterministic_policy_and_batch(self):
        mdp = deceptive_chain(5, gamma=0.9)
        always_quit = torch.tensor([[1.0, 0.0]] * 5, dtype=F64)
        q = regularized_policy_evaluation(mdp, always_quit, entropy_coef=0.5)
        # Deterministic policy: no entropy; quitting forever is worth 0.1 / (1 - 0.9) from every state.
        assert torch.allclose(q[:, 0], torch.full((5,), 1.0, dtype=F64), atol=1e-12, rtol=0)
        batch = torch.stack([always_quit, torch.full((5, 2), 0.5, dtype=F64)])
        batched = regularized_policy_evaluation(mdp, batch)
        assert torch.allclose(batched[0], regularized_policy_evaluation(mdp, always_quit), atol=1e-14, rtol=0)

    def test_rejects_bad_policy(self):
        mdp = deceptive_chain(3)
        with pytest.raises(ValueError, match="policy must be a distribution"):
            regularized_policy_evaluation(mdp, torch.ones(3, 2, dtype=F64))
        with pytest.raises(ValueError, match=r"kl_coef=0.5 > 0 needs a reference policy"):
            regularized_policy_evaluation(mdp, torch.full((3, 2), 0.5), kl_coef=0.5)
        with pytest.raises(ValueError, match=r"entropy_coef must be a finite number >= 0, got entropy_coef=-1.0"):
            regularized_policy_evaluation(mdp, torch.full((3, 2), 0.5), entropy_coef=-1.0)


MDPS = {
    "garnet": lambda: garnet(15, 4, 3, gamma=0.9, seed=11),
    "grid": lambda: mirl_grid_world(4, gamma=0.9),
    "chain": lambda: deceptive_chain(6, gamma=0.9, slip=0.1),
}


@pytest.mark.parametrize("name", MDPS)
class TestOptimumAndConvergence:
    @pytest.mark.parametrize("tau", [0.05, 1.0])
    def test_regularized_optimum_solves_soft_bellman_equation(self, name, tau):
        mdp = MDPS[name]()
        optimum = regularized_optimum(mdp, entropy_coef=tau)
        assert torch.allclose(soft_bellman_operator(mdp, optimum.q, tau), optimum.q, atol=1e-11, rtol=0)
        generator = torch.Generator().manual_seed(0)
        for _ in range(5):
            policy = torch.softmax(3 * torch.randn(mdp.num_states, mdp.num_actions, generator=generator, dtype=F64), -1)
            assert (regularized_policy_evaluation(mdp, policy, entropy_coef=tau) <= optimum.q + 1e-11).all()

    def test_optimum_solves_bellman_equation(self, name):
        mdp = MDPS[name]()
        optimum = regularized_optimum(mdp)
        assert torch.allclose(bellman_optimality_operator(mdp, optimum.q), optimum.q, atol=1e-11, rtol=0)
        assert torch.equal(optimum.policy, greedy_policy(optimum.q))

    def test_value_iterations_converge(self, name):
        mdp = MDPS[name]()
        vi = value_iteration(mdp, num_iterations=400)
        assert torch.allclose(vi.q[-1], regularized_optimum(mdp).q, atol=1e-10, rtol=0)
        soft = soft_value_iteration(mdp, tau=0.2, num_iterations=400)
        assert torch.allclose(soft.q[-1], regularized_optimum(mdp, entropy_coef=0.2).q, atol=1e-10, rtol=0)

    def test_advantage_learning_is_optimality_preserving(self, name):
        # AL and PAL change the q-values but not the greedy policy (Bellemare et al. 2016);
        # the AL fixed point is V* + (q* - V*) / (1 - alpha).
        mdp = MDPS[name]()
        optimum = regularized_optimum(mdp)
        for persistent in (False, True):
            result = advantage_learning(mdp, alpha=0.8, num_iterations=500, persistent=persistent)
            assert torch.equal(result.policies[-1], optimum.policy)
        al = advantage_learning(mdp, alpha=0.8, num_iterations=500)
        v_star = optimum.values.unsqueeze(-1)
        assert torch.allclose(al.q[-1], v_star + (optimum.q - v_star) / 0.2, atol=1e-9, rtol=0)


class TestErrorsAndSpecialCases:
    def test_zero_errors_change_nothing(self):
        mdp = garnet(5, 2, 2, seed=0)
        zeros = torch.zeros(4, 5, 2, dtype=F64)
        for run in (
            lambda **kw: value_iteration(mdp, num_iterations=4, **kw),
            lambda **kw: munchausen_vi(mdp, alpha=0.9, tau=0.1, num_iterations=4, **kw),
            lambda **kw: mirror_descent_vi(mdp, kl_coef=0.1, entropy_coef=0.01, num_iterations=4, **kw),
            lambda **kw: implicit_q_dp(mdp, alpha=0.9, tau=0.1, num_iterations=4, **kw),
            lambda **kw: advantage_learning(mdp, alpha=0.9, num_iterations=4, **kw),
            lambda **kw: soft_value_iteration(mdp, tau=0.1, num_iterations=4, **kw),
        ):
            assert torch.equal(run().q, run(errors=zeros).q)

    def test_constant_error_shifts_vi_limit(self):
        # T(q + c) = T q + gamma c, so a constant error c per step shifts the limit by c / (1 - gamma).
        mdp = garnet(5, 2, 2, gamma=0.8, seed=0)
        errors = torch.full((300, 5, 2), 0.3, dtype=F64)
        result = value_iteration(mdp, num_iterations=300, errors=errors)
        assert torch.allclose(result.q[-1], regularized_optimum(mdp).q + 0.3 / 0.2, atol=1e-11, rtol=0)

    def test_md_vi_without_kl_is_soft_vi(self):
        mdp = garnet(8, 3, 2, seed=6)
        md = mirror_descent_vi(mdp, kl_coef=0.0, entropy_coef=0.3, num_iterations=30)
        soft = soft_value_iteration(mdp, tau=0.3, num_iterations=30)
        assert torch.allclose(md.q, soft.q, atol=1e-12, rtol=0)
        assert torch.allclose(md.policies, soft.policies, atol=1e-14, rtol=0)

    @pytest.mark.parametrize(
        "call, match",
        [
            (lambda m: munchausen_vi(m, alpha=1.5, tau=0.1, num_iterations=1), r"alpha must be in \[0, 1\], got alpha=1.5"),
            (lambda m: munchausen_vi(m, alpha=0.9, tau=0.0, num_iterations=1), r"tau must be a finite number > 0, got tau=0.0"),
            (lambda m: advantage_learning(m, alpha=1.0, num_iterations=1), r"alpha must be in \[0, 1\), got alpha=1.0"),
            (lambda m: value_iteration(m, num_iterations=0), r"num_iterations must be an integer >= 1, got num_iterations=0"),
            (
                lambda m: value_iteration(m, num_iterations=2, errors=torch.zeros(3, 3, 2)),
                r"errors must have shape \[K, S, A\] = \(2, 3, 2\), got \(3, 3, 2\)",
            ),
            (lambda m: value_iteration(m, num_iterations=2, q0=torch.zeros(2, 2)), r"q0 must have shape \[S, A\] = \(3, 2\)"),
            (
                lambda m: mirror_descent_vi(m, kl_coef=0.0, entropy_coef=0.0, num_iterations=1),
                "kl_coef \\+ entropy_coef > 0",
            ),
            (
                lambda m: mirror_descent_vi(
                    m, kl_coef=0.1, entropy_coef=0.0, num_iterations=1, policy0=torch.tensor([[1.0, 0.0]] * 3)
                ),
                "policy0 must be > 0 everywhere when kl_coef=0.1",
            ),
            (
                lambda m: implicit_q_dp(m, alpha=-0.1, tau=0.1, num_iterations=1),
                r"alpha must be in \[0, 1\], got alpha=-0.1",
            ),
        ],
    )
    def test_rejects_bad_arguments(self, call, match):
        with pytest.raises(ValueError, match=match):
            call(deceptive_chain(3))
