"""The batched search against the single-tree search (same uniforms) and against exact values, per tree."""
from __future__ import annotations

import math
import re
from dataclasses import fields
import random

import gymnasium as gym
import numpy as np
import pytest
import torch

from torchrl_reg.planning.batched import BatchedTree
from torchrl_reg.planning import (
    ALGORITHMS,
    KNOBS,
    BatchedTreeSearch,
    BellmanBackup,
    BoltzmannScore,
    DChain,
    DENTSScore,
    E2WScore,
    FrozenLakeSimulator,
    MeanBackup,
    QNetworkEvaluator,
    RandomRollout,
    SoftmaxBackup,
    SyntheticTree,
    TensorDChain,
    TensorFrozenLake,
    TensorSyntheticTree,
    UCB1Score,
    parts,
    dchain_flip_temperature,
    dchain_soft_q,
    make_search,
    synthetic_tree_q,
)

TAU, ALPHA, BETA_0, C = 0.3, 0.3, 1.0, math.sqrt(2.0)


def _parts(algorithm: str, eps: float):
    return {
        "ments": (E2WScore(tau=TAU, eps=eps), SoftmaxBackup(tau=TAU)),
        "bts": (BoltzmannScore(alpha=ALPHA, eps=eps), BellmanBackup()),
        "dents": (DENTSScore(alpha=ALPHA, beta_0=BETA_0, eps=eps), BellmanBackup(entropy=True)),
        "uct": (UCB1Score(c=C), MeanBackup()),
    }[algorithm]


def _uniforms(seed: int):
    """The draws of ``random.Random(seed)``, the stream the single-tree search and its rollouts read."""
    rng = random.Random(seed)
    return lambda n: torch.tensor([rng.random() for _ in range(n)], dtype=torch.float64)


def make_batched_search(algorithm, simulator, **kwargs):
    return make_search(algorithm, simulator, batched=True, **kwargs)


#: the knobs of the draw-for-draw test, one value per knob of the table (an algorithm reads its own)
DRAW_KNOBS = dict(tau=TAU, alpha=ALPHA, beta_0=BETA_0, c=C, eps=0.5, p=2.0)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_one_tree_reproduces_the_single_tree_search_draw_for_draw(algorithm):
    tree = SyntheticTree(3, 3, seed=1, noise_std=0.0)
    knobs = {k: v for k, v in DRAW_KNOBS.items() if k in KNOBS[algorithm]}
    assert set(KNOBS[algorithm]) <= set(DRAW_KNOBS), f"give the draw-for-draw test a value of {algorithm}'s knobs"
    old = make_search(algorithm, tree, **knobs, seed=5, evaluator=RandomRollout(max_steps=5, seed=7))
    old_action = old.search(60)
    policy, backup, _ = parts(algorithm, **knobs)
    sim = TensorSyntheticTree([tree])
    new = BatchedTreeSearch(
        sim, tree_policy=policy, backup=backup, recommend=old.recommend, uniform=_uniforms(5),
        evaluator=RandomRollout(max_steps=5, uniform=_uniforms(7)),
    )
    assert int(new.search(sim.root(1), 60)[0]) == old_action
    mine, theirs = new.tree.tree(0), old.tree
    n = theirs.size
    assert mine["visits"].shape[0] == n
    np.testing.assert_array_equal(mine["visits"].numpy(), theirs.visits[:n])
    np.testing.assert_array_equal(mine["child"].numpy(), theirs.child[:n])
    np.testing.assert_array_equal(mine["total"].numpy(), theirs.total[:n])
    # the statistics the backup keeps: its search values, the node values, the Bellman ones it backs up, DENTS's entropy
    checked = (backup.values, "value") + (("bellman",) if backup.on_bellman else ()) + (("entropy", "entropy_q") if backup.entropy else ())
    for name in checked:
        np.testing.assert_allclose(mine[name].numpy(), getattr(theirs, name)[:n], rtol=0, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("algorithm", ["ments", "bts", "dents"])
def test_noiseless_backups_are_exact_in_every_tree(algorithm):
    # four different binary trees of depth 3 (15 nodes each), searched at once with uniform exploration
    trees = [SyntheticTree(2, 3, seed=s, noise_std=0.0) for s in range(4)]
    policy, backup = _parts(algorithm, 1.0)
    sim = TensorSyntheticTree(trees)
    search = BatchedTreeSearch(sim, tree_policy=policy, backup=backup, evaluator=RandomRollout(max_steps=5), seed=3)
    search.search(sim.root(4), 200)
    tau = TAU if algorithm == "ments" else None
    values = search.tree.q[:, 0] if algorithm == "ments" else search.tree.q_bellman[:, 0]
    for b, tree in enumerate(trees):
        one = search.tree.tree(b)
        assert (one["visits"][~one["terminal"]] > 0).all(), f"tree {b} has an untried edge"
        exact = synthetic_tree_q(tree, tau).ravel()
        np.testing.assert_allclose(values[b].numpy(), exact, rtol=0, atol=1e-12)
        if algorithm == "ments":
            assert float(search.root_value()[b]) == pytest.approx(TAU * math.log(np.exp(exact / TAU).sum()), abs=1e-12)
        else:
            assert float(search.root_value()[b]) == pytest.approx(exact.max(), abs=1e-12)
        assert int(search.recommended_action()[b]) == int(np.argmax(exact))


@pytest.mark.parametrize("scale, expected", [(0.9, DChain.DOWN), (1.1, DChain.RIGHT)])
def test_ments_flips_at_the_exact_temperature_in_every_tree(scale, expected):
    # a 5-chain (R_f = 0.5 < 4/5: 'down' is optimal) is covered by a few hundred simulations
    chain = DChain(5, 0.5)
    tau = scale * dchain_flip_temperature(chain)
    sim = TensorDChain(5, 0.5)
    search = BatchedTreeSearch(sim, tree_policy=E2WScore(tau=tau, eps=1.0), backup=SoftmaxBackup(tau=tau), evaluator=RandomRollout(max_steps=10))
    actions = search.search(sim.root(4), 150)
    assert (search.tree.size == 11).all()  # root, 5 'down' leaves, 4 chain states, the final leaf
    assert actions.tolist() == [expected] * 4
    exact = torch.tensor(dchain_soft_q(chain, tau), dtype=torch.float64)
    torch.testing.assert_close(search.tree.q[:, 0], exact.expand(4, 2), rtol=0, atol=1e-12)


def test_dents_entropy_backup_by_hand():
    # a 2-chain with eps = 1 tried fully: H_V at a node is H(pi) + sum_a pi(a) H_Q(a), pi from the DENTS policy
    sim = TensorDChain(2, 0.25)
    policy = DENTSScore(alpha=1.0, beta_0=1.0, eps=1.0)
    search = BatchedTreeSearch(sim, tree_policy=policy, backup=BellmanBackup(entropy=True), evaluator=RandomRollout(max_steps=3))
    search.search(sim.root(1), 40)
    t = search.tree.tree(0)
    state1 = int(t["child"][0, DChain.RIGHT])
    n1, n0 = float(t["total"][state1]), float(t["total"][0])
    # state 1 has two terminal children (entropy 0): H_V = H(pi(.|1)) of the mixture over q = (0, 0.25)
    lam1 = min(1.0, 2.0 / math.log(n1 + 1.0))
    soft1 = np.exp(np.array([0.0, 0.25])) / np.exp(np.array([0.0, 0.25])).sum()
    pi1 = (1 - lam1) * soft1 + lam1 / 2
    h1 = float(-(pi1 * np.log(pi1)).sum())
    assert float(t["entropy"][state1]) == pytest.approx(h1, abs=1e-12)
    # the root: q = (0.5, 0.25) (down pays 1/2, right leads to max(0, 0.25)), H_Q = (0, h1), beta = 1 / sqrt(1 + N)
    lam0 = min(1.0, 2.0 / math.log(n0 + 1.0))
    values = np.array([0.5, 0.25 + h1 / math.sqrt(1.0 + n0)])
    soft0 = np.exp(values) / np.exp(values).sum()
    pi0 = (1 - lam0) * soft0 + lam0 / 2
    assert float(t["entropy"][0]) == pytest.approx(float(-(pi0 * np.log(pi0)).sum() + pi0[1] * h1), abs=1e-12)


def test_tensor_simulators_step_like_the_single_state_ones():
    tree = SyntheticTree(3, 3, seed=4, noise_std=0.0)
    sim = TensorSyntheticTree([tree])
    rng = np.random.default_rng(0)
    paths = rng.integers(0, 3, size=(5, 3))
    state = sim.root(5)
    for level in range(3):
        state, reward, done = sim.step(state, torch.as_tensor(paths[:, level]))
        for b in range(5):
            tree.restore((0, 0))
            for a in paths[b, :level]:
                tree.step(int(a))
            expected = tree.step(int(paths[b, level]))
            assert (float(reward[b]), bool(done[b])) == expected
    chain, tchain = DChain(4, 0.7), TensorDChain(4, 0.7)
    for actions in ([1, 1, 1, 1], [1, 0], [0]):
        chain.reset()
        state = tchain.root(1)
        for a in actions:
            state, reward, done = tchain.step(state, torch.tensor([a]))
            assert (float(reward[0]), bool(done[0])) == chain.step(a)


@pytest.mark.parametrize("slippery", [False, True])
def test_tensor_frozenlake_moves_are_the_simulators_on_every_cell_and_action(slippery):
    # every cell (holes and goal included) and action, three times each: row i's uniform gives FrozenLakeSimulator's
    # outcome for the same uniform (it draws only where a move has several outcomes), and outcomes are the env's table P
    env = gym.make("FrozenLake-v1", map_name="8x8", is_slippery=slippery)
    one = FrozenLakeSimulator(env)
    cells, actions = torch.arange(64).repeat_interleave(4).repeat(3), torch.arange(4).repeat(64 * 3)
    u = torch.rand(cells.shape[0], generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    tensor = TensorFrozenLake(env, uniform=lambda n: u[:n])
    assert tensor.deterministic is not slippery and tensor.num_actions == 4
    state, reward, done = tensor.step(cells.unsqueeze(-1), actions)
    for i, (cell, action) in enumerate(zip(cells.tolist(), actions.tolist())):
        one.restore((cell, False))
        one.rng = random.Random()
        one.rng.random = lambda: float(u[i])
        expected_reward, expected_done = one.step(action)
        assert (int(state[i, 0]), float(reward[i]), bool(done[i])) == (one.save()[0], expected_reward, expected_done)
        assert (int(state[i, 0]), float(reward[i]), bool(done[i])) in {(c, float(r), d) for _, c, r, d in env.unwrapped.P[cell][action]}
    assert tensor.root(2).tolist() == [[0], [0]]


@pytest.mark.parametrize("slippery", [False, True])
def test_batched_search_on_frozenlake_reproduces_the_single_tree_search(slippery):
    # a slippery lake is searched with chance nodes by both loops, the model's outcomes drawn from one stream
    env = gym.make("FrozenLake-v1", map_name="4x4", is_slippery=slippery)
    lake = FrozenLakeSimulator(env)
    old = make_search("ments", lake, tau=0.1, eps=0.5, gamma=0.95, seed=5, evaluator=RandomRollout(max_steps=20, gamma=0.95, seed=7))
    lake.rng.seed(11)  # after the simulator check's test steps
    old.search(80)
    sim = TensorFrozenLake(env, uniform=_uniforms(11))
    assert sim.deterministic is not slippery
    new = BatchedTreeSearch(sim, tree_policy=E2WScore(tau=0.1, eps=0.5), backup=SoftmaxBackup(tau=0.1), gamma=0.95, uniform=_uniforms(5),
                            evaluator=RandomRollout(max_steps=20, gamma=0.95, uniform=_uniforms(7)))
    new.search(sim.root(1), 80)
    mine, theirs = new.tree.tree(0), old.tree
    np.testing.assert_array_equal(mine["visits"].numpy(), theirs.visits[: theirs.size])
    np.testing.assert_array_equal(mine["arrivals"].numpy(), theirs.arrivals[: theirs.size])
    np.testing.assert_allclose(mine["q"].numpy(), theirs.q[: theirs.size], rtol=0, atol=1e-12)
    if slippery:  # the outcome slots hold the children in the order the single-tree search's dicts met them
        assert max(len(children) for children in theirs.outcomes.values()) > 1
        for (node, action), children in theirs.outcomes.items():
            slots = mine["outcomes"][node, action].tolist()
            assert slots == list(children.values()) + [-1] * (sim.max_outcomes - len(children))
            assert [int(mine["key"][c, 0]) for c in children.values()] == list(children)


def test_parts_that_disagree_are_refused():
    # which parts go together is the algorithm table's: a policy and a backup of no row, or of one row with two values
    # of a knob both hold, are refused naming the rows
    sim = TensorDChain(3, 0.5)
    for policy, backup in ((E2WScore(tau=0.1, eps=0.1), SoftmaxBackup(tau=1.0)),
                           (DENTSScore(alpha=1.0, beta_0=1.0, eps=0.1), BellmanBackup()),
                           (UCB1Score(c=1.0), BellmanBackup()),
                           (BoltzmannScore(alpha=1.0, eps=0.1), SoftmaxBackup(tau=1.0))):
        with pytest.raises(ValueError, match=rf"^{type(policy).__name__} with {re.escape(repr(backup))} is no row of the "
                                             r"algorithm table .*ments: E2WScore with SoftmaxBackup\(\); .*dents: DENTSScore "
                                             r"with BellmanBackup\(entropy=True\)"):
            BatchedTreeSearch(sim, tree_policy=policy, backup=backup)
    with pytest.raises(ValueError, match="q_init must be finite, got q_init=nan"):
        BatchedTreeSearch(sim, tree_policy=UCB1Score(c=1.0), backup=MeanBackup(), q_init=float("nan"))
    with pytest.raises(TypeError, match="BatchedTreeSearch needs a TensorSimulator"):
        BatchedTreeSearch(DChain(3, 0.5), tree_policy=UCB1Score(c=1.0), backup=MeanBackup())


class _InfiniteReward(TensorDChain):
    def step(self, state, action):
        state, reward, done = super().step(state, action)
        return state, torch.where(action == self.RIGHT, math.inf, reward), done


def test_non_finite_rewards_and_evaluations_are_refused():
    parts = dict(tree_policy=UCB1Score(c=1.0), backup=MeanBackup())

    def zero_leaf(sim, state, gamma):
        return torch.zeros(state.shape[0], dtype=torch.float64), None

    def nan_leaf(sim, state, gamma):
        return torch.full((state.shape[0],), math.nan, dtype=torch.float64), None

    with pytest.raises(ValueError, match="the simulator returned a non-finite reward in tree"):
        # UCB1 tries both root actions first: 'right' pays inf in the second simulation
        BatchedTreeSearch(_InfiniteReward(3, 0.5), evaluator=zero_leaf, **parts).search(torch.zeros(2, 1, dtype=torch.long), 4)
    with pytest.raises(ValueError, match=r"the leaf evaluation is not finite at \[0\]: inf"):
        # a rollout through the infinite reward
        BatchedTreeSearch(_InfiniteReward(3, 0.5), **parts).search(torch.zeros(2, 1, dtype=torch.long), 4)

    with pytest.raises(ValueError, match=r"the leaf evaluation is not finite at \[0\]: nan"):
        BatchedTreeSearch(TensorDChain(3, 0.5), evaluator=nan_leaf, **parts).search(torch.zeros(2, 1, dtype=torch.long), 4)


def test_initial_action_values_of_another_shape_are_refused_not_broadcast():
    # one value per tree for two actions: torch.where would spread it over both without a word
    parts = dict(policy=UCB1Score(c=1.0), backup=MeanBackup())

    def one_value_leaf(sim, state, gamma):
        return torch.zeros(state.shape[0], dtype=torch.float64), torch.ones(state.shape[0], 1, dtype=torch.float64)

    with pytest.raises(ValueError, match=r"initial action values have shape \[2, 1\]; .*2 actions.*shape \[2, 2\]"):
        BatchedTreeSearch(TensorDChain(3, 0.5), evaluator=one_value_leaf, **parts).search(torch.zeros(2, 1, dtype=torch.long), 4)


@pytest.mark.parametrize("final_reward", [math.nan, math.inf, -math.inf])
def test_a_tensor_dchain_without_a_finite_final_reward_is_refused(final_reward):
    with pytest.raises(ValueError, match=f"final_reward must be a finite number.*final_reward={final_reward}"):
        TensorDChain(10, final_reward)


@pytest.mark.parametrize("init", ["q", "log_prior", "none"])
def test_network_leaves_reproduce_the_single_tree_search(init):
    # one forward for all B leaves gives what the single-tree evaluator gives leaf by leaf
    weights = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)

    def q_network(obs):
        return torch.sin(obs.double() * weights)

    tree = SyntheticTree(3, 3, seed=2, noise_std=0.0)
    old = make_search("ments", tree, tau=TAU, eps=0.5, seed=5, evaluator=QNetworkEvaluator(q_network, num_actions=3, tau=0.5, init=init))
    old.search(40)
    sim = TensorSyntheticTree([tree])
    evaluator = QNetworkEvaluator(q_network, num_actions=3, tau=0.5, init=init)
    new = BatchedTreeSearch(sim, tree_policy=E2WScore(tau=TAU, eps=0.5), backup=SoftmaxBackup(tau=TAU), evaluator=evaluator, uniform=_uniforms(5))
    new.search(sim.root(1), 40)
    mine, theirs = new.tree.tree(0), old.tree
    np.testing.assert_array_equal(mine["visits"].numpy(), theirs.visits[: theirs.size])
    for name in ("q", "value", "leaf_value"):
        np.testing.assert_allclose(mine[name].numpy(), getattr(theirs, name)[: theirs.size], rtol=0, atol=1e-12, err_msg=name)


def test_bellman_values_are_refused_when_not_kept():
    # MENTS and UCT keep Bellman values only when asked to recommend from them (the single-tree search's rule)
    sim = TensorDChain(3, 0.5)
    search = make_batched_search("ments", sim, tau=1.0)
    search.search(sim.root(2), 10)
    with pytest.raises(ValueError, match=r"this SoftmaxBackup\(tau=1.0\) search kept no Bellman values; build it with recommend='bellman_value'"):
        search.recommended_action("bellman_value")
    # a 2-chain tried fully: Q_B(root) = (down pays 1/2, right pays 0 then max(0, 1/4))
    chain = TensorDChain(2, 0.25)
    kept = make_batched_search("ments", chain, tau=1.0, eps=1.0, recommend="bellman_value")
    assert kept.search(chain.root(3), 40).tolist() == [DChain.DOWN] * 3
    torch.testing.assert_close(kept.root_values(), torch.tensor([[0.5, 0.25]] * 3, dtype=torch.float64), rtol=0, atol=1e-15)


def test_make_batched_search_assembles_each_algorithm_and_refuses_foreign_knobs():
    sim = TensorDChain(3, 0.5)
    expected = {"ments": (E2WScore, SoftmaxBackup, "search_value"), "bts": (BoltzmannScore, BellmanBackup, "search_value"),
                "dents": (DENTSScore, BellmanBackup, "search_value"), "uct": (UCB1Score, MeanBackup, "most_visited")}
    for algorithm, (policy, backup, recommend) in expected.items():
        search = make_batched_search(algorithm, sim)
        assert (type(search.policy), type(search.backup), search.recommend) == (policy, backup, recommend)
    assert make_batched_search("dents", sim).backup.entropy and not make_batched_search("bts", sim).backup.entropy
    assert make_batched_search("ments", sim, tau=0.2).backup.tau == 0.2
    with pytest.raises(ValueError, match=r"c=2.0: not read by ments \(it reads tau, eps\)"):
        make_batched_search("ments", sim, c=2.0)


class _Counting:
    """``sim`` with its stepped rows counted and ``deterministic_rewards`` set to ``replay``."""

    def __init__(self, sim, replay: bool):
        self.sim, self.num_actions, self.deterministic_rewards, self.rows = sim, sim.num_actions, replay, 0

    def root(self, batch_size):
        return self.sim.root(batch_size)

    def step(self, state, action):
        self.rows += state.shape[0]
        return self.sim.step(state, action)


def _simulator(kind: str):
    if kind == "synthetic":
        return TensorSyntheticTree([SyntheticTree(3, 4, seed=s, noise_std=0.0) for s in range(3)])
    if kind == "dchain":
        return TensorDChain(6, 0.5)
    pytest.importorskip("minatar", reason="MinAtar is not installed")
    from torchrl_reg.planning import BatchedMinAtar

    return BatchedMinAtar("breakout", sticky_action_prob=0.1, seed=2, model="determinized")


@pytest.mark.parametrize("kind", ["synthetic", "dchain", "minatar"])
@pytest.mark.parametrize("algorithm", ["ments", "bts", "dents", "uct"])
def test_replayed_edges_give_the_stepped_search_and_step_each_edge_once(algorithm, kind):
    sim = _simulator(kind)
    assert sim.deterministic_rewards
    runs = {}
    for replay in (False, True):
        counting = _Counting(sim, replay)
        rollout = RandomRollout(max_steps=5, seed=1)
        policy, backup = _parts(algorithm, 0.5)
        search = BatchedTreeSearch(counting, tree_policy=policy, backup=backup, evaluator=lambda _, s, g: rollout(sim, s, g), seed=3)
        actions = search.search(sim.root(3), 25)
        # the scratch slot (the last) holds what finished paths wrote: garbage by design, left out
        runs[replay] = actions, {f.name: getattr(search.tree, f.name)[:, :-1] for f in fields(BatchedTree) if f.name != "size"}, search.tree.size, counting.rows
    (a0, t0, size, stepped), (a1, t1, size1, replayed) = runs[False], runs[True]
    assert torch.equal(a0, a1) and torch.equal(size, size1)
    for name in t0:
        torch.testing.assert_close(t1[name], t0[name], rtol=0, atol=0, equal_nan=True, msg=name)
    # replaying, a row is stepped only on its path's untried edge, which becomes a node; stepping, at every level
    assert replayed == int((size - 1).sum())
    assert stepped > 1.5 * replayed


def test_noisy_leaves_are_stepped_at_every_visit():
    assert not TensorSyntheticTree([SyntheticTree(2, 3, seed=0, noise_std=0.1)]).deterministic_rewards
    assert TensorSyntheticTree([SyntheticTree(2, 3, seed=0, noise_std=0.0)]).deterministic_rewards
    counting = _Counting(TensorSyntheticTree([SyntheticTree(2, 3, seed=0, noise_std=0.1)]), replay=False)
    search = BatchedTreeSearch(counting, tree_policy=UCB1Score(c=1.0), backup=MeanBackup(), evaluator=lambda *_: (torch.zeros(2, dtype=torch.float64), None))
    search.search(counting.root(2), 30)
    # each simulation descends to a leaf of the depth-3 tree (or its untried edge above it): 2 rows per level
    assert counting.rows > 2 * 30


def _search_on(device: str, replay: bool, kind: str, algorithm: str):
    """The replay test's search on ``device``, its draws the CPU's Python streams (so every device draws alike)."""
    if kind == "synthetic":
        sim = TensorSyntheticTree([SyntheticTree(3, 4, seed=s, noise_std=0.0) for s in range(3)], device=device)
    else:
        sim = TensorDChain(6, 0.5, device=device)
    counting = _Counting(sim, replay)
    draws, rollout = _uniforms(3), RandomRollout(max_steps=5, uniform=_uniforms(1))
    policy, backup = _parts(algorithm, 0.5)
    search = BatchedTreeSearch(
        counting, tree_policy=policy, backup=backup, evaluator=lambda _, s, g: rollout(sim, s, g),
        uniform=lambda n: draws(n).to(device), device=device,
    )
    actions = search.search(sim.root(3), 25)
    tree = {f.name: getattr(search.tree, f.name)[:, :-1].cpu() for f in fields(BatchedTree) if f.name != "size"}
    return actions.cpu(), tree, search.tree.size.cpu()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: the batched search on a GPU against the same search on the CPU")
def test_the_search_on_cuda_is_the_search_on_the_cpu_replayed_or_stepped():
    for kind in ("synthetic", "dchain"):
        for algorithm in ("ments", "bts", "dents", "uct"):
            a0, t0, size0 = _search_on("cpu", True, kind, algorithm)
            for replay in (True, False):
                a1, t1, size1 = _search_on("cuda", replay, kind, algorithm)
                assert torch.equal(a0, a1) and torch.equal(size0, size1), (kind, algorithm, replay)
                for name in t0:
                    # float64 on both; a GPU reduction may round in another order than the CPU's
                    torch.testing.assert_close(t1[name], t0[name], rtol=0, atol=1e-12, equal_nan=True, msg=f"{kind} {algorithm} {replay} {name}")


def _float_network(num_inputs: int, num_actions: int) -> torch.nn.Module:
    """A user's float32 network: a linear layer whose outputs are worked out below by hand."""
    net = torch.nn.Linear(num_inputs, num_actions)
    with torch.no_grad():
        net.weight.copy_(torch.arange(1.0, num_actions + 1).unsqueeze(-1) / 10)
        net.bias.zero_()
    return net


@pytest.mark.parametrize("task", ["dchain", "frozenlake"])
def test_a_float_network_evaluates_integer_observations_in_both_loops(task):
    # the observations are int64 indices (a chain position, a cell): both evaluators cast them to the network's float32
    net = _float_network(1, 2 if task == "dchain" else 4)
    if task == "dchain":
        one, many = DChain(5, 0.5), TensorDChain(5, 0.5)
    else:
        env = gym.make("FrozenLake-v1", map_name="4x4", is_slippery=False)
        one, many = FrozenLakeSimulator(env), TensorFrozenLake(env)
    k = one.num_actions
    search = make_search("bts", one, evaluator=QNetworkEvaluator(net, num_actions=k, value="max"), seed=0)
    search.search(5)
    # the root (position 0 / cell 0) is worth max_a (a + 1) 0 / 10 = 0; a node at index i is worth max_a (a + 1) i / 10 = k i / 10
    tree = search.tree
    assert tree.leaf_value[0] == 0.0
    possible = {round(k * i / 10, 6) for i in range(16)}
    values = [round(float(tree.leaf_value[n]), 6) for n in range(1, tree.size) if not tree.terminal[n]]
    assert set(values) <= possible and max(values) > 0.0
    root = many.root(2) if task == "dchain" else torch.tensor([[0], [5]])
    evaluator = QNetworkEvaluator(net, num_actions=k, value="max")
    values, q = evaluator(many, root, 1.0)
    index = root[:, 0].double()
    expected_q = index.unsqueeze(-1) * torch.arange(1.0, k + 1, dtype=torch.float64) / 10
    torch.testing.assert_close(q, expected_q, rtol=0, atol=1e-6)
    torch.testing.assert_close(values, expected_q.amax(-1), rtol=0, atol=1e-6)
    make_search("bts", many, batched=True, evaluator=evaluator).search(root, 5)


def test_a_network_with_another_action_count_is_refused_by_both_loops():
    net = _float_network(1, 3)  # three action values; the D-chain has two actions
    three = QNetworkEvaluator(net, num_actions=3)
    with pytest.raises(ValueError, match=r"QNetworkEvaluator\(num_actions=3\) cannot evaluate a simulator with 2 actions"):
        make_search("ments", DChain(5), evaluator=three)
    with pytest.raises(ValueError, match=r"QNetworkEvaluator\(num_actions=3\) cannot evaluate a simulator with 2 actions"):
        make_search("ments", TensorDChain(5), batched=True, evaluator=QNetworkEvaluator(net, num_actions=3))
    # an evaluator that says 2 actions over a network that outputs 3: refused at the first evaluation, shape named
    two = QNetworkEvaluator(net, num_actions=2)
    with pytest.raises(ValueError, match=r"the Q network outputs action values of shape \(2, 3\) for 2 observations, expected \(2, 2\)"):
        make_search("ments", TensorDChain(5), batched=True, evaluator=two).search(TensorDChain(5).root(2), 3)
    with pytest.raises(ValueError, match=r"the Q network outputs action values of shape \(1, 3\) for 1 observations, expected \(1, 2\)"):
        make_search("ments", DChain(5), evaluator=QNetworkEvaluator(net, num_actions=2)).search(3)


@pytest.mark.parametrize("root, match", [
    (torch.tensor([[99]]), r"TensorDChain states are int64 tensors of shape \[B, 1\] \(position in 0..9\); row 0 has position=99"),
    (torch.tensor([[3], [-5]]), r"\(position in 0..9\); row 1 has position=-5"),
    (torch.tensor([[1.0]]), r"\(position in 0..9\); got dtype torch.float32"),
    (torch.tensor([[0, 0]]), r"\(position in 0..9\); got shape \(1, 2\)"),
    (torch.tensor([0, 1]), r"root must be a batch of states \[B, \*state_shape\] with B >= 1 \(e.g. simulator.root\(B\)\), got \(2,\)"),
    (torch.zeros(0, 1, dtype=torch.long), r"root must be a batch of states .* got \(0, 1\)"),
])
def test_roots_outside_the_model_are_refused(root, match):
    search = make_search("uct", TensorDChain(10, 0.5), batched=True)
    with pytest.raises(ValueError, match=match):
        search.search(root, 4)
    assert search.tree is None  # nothing was searched


def test_roots_of_the_other_tensor_models_are_checked():
    trees = TensorSyntheticTree([SyntheticTree(2, 2, seed=0, noise_std=0.0)])
    search = make_search("uct", trees, batched=True)
    with pytest.raises(ValueError, match=r"row 0 has node 5, which is not on level 1"):
        search.search(torch.tensor([[0, 5, 1]]), 4)  # level 1 holds nodes 1 and 2
    with pytest.raises(ValueError, match=r"\(instance in 0..0, node in 0..6, level in 0..2\); row 0 has instance=1"):
        search.search(torch.tensor([[1, 0, 0]]), 4)
    search.search(torch.tensor([[0, 2, 1]]), 4)
    lake = TensorFrozenLake(gym.make("FrozenLake-v1", map_name="4x4", is_slippery=False))
    with pytest.raises(ValueError, match=r"TensorFrozenLake states are int64 tensors of shape \[B, 1\] \(cell in 0..15\); row 0 has cell=16"):
        make_search("uct", lake, batched=True).search(torch.tensor([[16]]), 4)
