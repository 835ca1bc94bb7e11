"""Save/restore adapters replay exactly; bad input is refused before any search runs."""
from __future__ import annotations

import math
import random

import gymnasium as gym
import numpy as np
import pytest
import torch

from torchrl_reg.planning import (
    ALESimulator,
    DChain,
    FrozenLakeSimulator,
    MinAtarSimulator,
    E2WScore,
    QNetworkEvaluator,
    RandomRollout,
    SoftmaxBackup,
    SyntheticTree,
    TreeSearch,
    as_simulator,
    make_search,
)


def _frozenlake():
    return FrozenLakeSimulator(gym.make("FrozenLake-v1", map_name="8x8", is_slippery=False))


def _minatar():
    import minatar

    env = minatar.Environment("breakout", sticky_action_prob=0.1)
    env.seed(3)
    env.reset()
    return MinAtarSimulator(env)


def _breakout(repeat_action_probability: float = 0.0):
    from ale_py import ALEInterface, roms

    ale = ALEInterface()
    ale.setInt("random_seed", 0)
    ale.setFloat("repeat_action_probability", repeat_action_probability)
    ale.loadROM(roms.get_rom_path("breakout"))
    return ale


def _ale(sticky_action_prob: float = 0.25, frameskip: int = 4, **kwargs):
    return ALESimulator(_breakout(), frameskip, sticky_action_prob=sticky_action_prob, **kwargs)


def _rollout(sim, actions):
    trace = []
    for a in actions:
        reward, done = sim.step(a)
        trace.append((reward, done, sim.observation().tobytes()))
        if done:
            break
    return trace


@pytest.mark.parametrize("make", [lambda: DChain(6, 1.0), _frozenlake, _minatar, _ale], ids=["dchain", "frozenlake", "minatar", "ale"])
def test_restore_replays_the_same_future(make):
    sim = make()
    rng = random.Random(0)
    start = sim.save()
    if _rollout(sim, [rng.randrange(sim.num_actions) for _ in range(3)])[-1][1]:
        sim.restore(start)  # the episode ended on the way: search from the start instead
    root = sim.save()
    actions = [rng.randrange(sim.num_actions) for _ in range(40)]
    first = _rollout(sim, actions)
    sim.restore(root)
    _rollout(sim, [rng.randrange(sim.num_actions) for _ in range(40)])  # wander elsewhere
    sim.restore(root)
    assert _rollout(sim, actions) == first


# Breakout's minimal action set
NOOP, FIRE, RIGHT, LEFT = range(4)


def _ram_rollout(sim, actions):
    trace = []
    for a in actions:
        reward, done = sim.step(a)
        trace.append((reward, done, sim.ale.getRAM().tobytes()))
    return trace


@pytest.mark.parametrize("frameskip", [1, 4])
@pytest.mark.parametrize("p", [0.25, 0.5])
def test_ale_replays_the_same_future_after_any_other_moves_with_sticky_actions(p, frameskip):
    """The replay experiment: from a root reached with RIGHT after LEFT, NOOPs then random moves give the same
    rewards and RAM in every replay (40: 4 from each of 10 roots), after moves elsewhere that end with LEFT.

    With ALE's own sticky actions a replay whose first frame is sticky repeats the LEFT of the moves played in
    between (cloneState does not carry the action applied last); here the action applied last is saved. The
    last check makes sure the replays would see such a leak: LEFT in place of the saved action changes a future."""
    sim = _ale(p, frameskip, seed=3)
    assert [a.name for a in sim.actions] == ["NOOP", "FIRE", "RIGHT", "LEFT"]
    _ram_rollout(sim, [FIRE] * 4)
    moves, leaks_seen = random.Random(1), 0
    for _ in range(10):
        _ram_rollout(sim, [LEFT] * 3 + [RIGHT] * 3)
        root = sim.save()
        actions = [NOOP] * 4 + [moves.randrange(4) for _ in range(8)]
        first = _ram_rollout(sim, actions)
        for _ in range(4):
            sim.restore(root)
            _ram_rollout(sim, [moves.randrange(4) for _ in range(moves.randrange(8))] + [LEFT] * 2)
            sim.restore(root)
            assert sim.last_action == root[2]
            assert _ram_rollout(sim, actions) == first
        sim.restore(root)
        sim.last_action = LEFT
        leaks_seen += _ram_rollout(sim, actions) != first
        sim.restore(root)  # the next root follows on from this one
    assert leaks_seen >= 1


@pytest.mark.parametrize("p, frameskip", [(0.25, 4), (0.5, 1)])
def test_ale_sticky_frames_have_the_geometric_delay_of_ales_rule(p, frameskip):
    """Eight frames of RIGHT after NOOP: with ALE's rule (one uniform per frame, RIGHT applied once it is >= p, then
    kept) RIGHT starts after K NOOP frames with P(K = k) = p^k (1 - p) for k < 8, P(K = 8) = p^8.

    K is read off the RAM (each k gives its own RAM: played frame by frame on the emulator, whose own sticky actions
    are off). Runs restore the root without the stream (include_rng=False, the real env's setting), so each draws
    anew. Tolerance: each of the bins k = 0, 1, 2, 3, >= 4 within 4 binomial standard deviations of its probability
    over 1000 runs; one draw per move instead of per frame (K in {0, 4, 8} at frame skip 4) fails it."""
    sim = _ale(p, frameskip, include_rng=False, seed=0)
    ale, root = sim.ale, sim.save()
    assert sim.last_action == NOOP  # a freshly loaded ROM, as after ALE's reset
    delay_of = {}
    for k in range(9):
        sim.restore(root)
        for frame in range(8):
            ale.act(sim.actions[NOOP if frame < k else RIGHT])
        delay_of[ale.getRAM().tobytes()] = k
    assert len(delay_of) == 9
    runs = 1000
    counts = np.zeros(5)
    for _ in range(runs):
        sim.restore(root)
        for _ in range(8 // frameskip):
            sim.step(RIGHT)
        counts[min(delay_of[ale.getRAM().tobytes()], 4)] += 1
    expected = np.array([p**k * (1 - p) for k in range(4)] + [p**4])
    tolerance = 4 * np.sqrt(expected * (1 - expected) / runs)
    assert np.all(np.abs(counts / runs - expected) <= tolerance), (counts / runs, expected)


def test_ale_with_its_own_sticky_actions_is_refused():
    with pytest.raises(ValueError, match=r"repeat_action_probability=0.25; ALESimulator applies sticky actions itself.*sticky_action_prob=0.25\)"):
        ALESimulator(_breakout(0.25))
    ale = _breakout()
    with pytest.raises(ValueError, match=r"sticky_action_prob must be in \[0, 1\], got sticky_action_prob=1.5"):
        ALESimulator(ale, sticky_action_prob=1.5)
    with pytest.raises(ValueError, match="action 4 is not one of the 4 actions"):
        ALESimulator(ale).step(4)


def test_frozenlake_search_keeps_the_env_at_the_root():
    sim = _frozenlake()
    sim.step(2)
    before = sim.save()
    make_search("ments", sim, tau=0.1, seed=0).search(50)
    assert sim.save() == before


@pytest.mark.slow
def test_minatar_search_with_a_q_network_prior_runs():
    sim = _minatar()
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4 * 10 * 10, 6))
    evaluator = QNetworkEvaluator(lambda obs: net(obs.float()), num_actions=6, tau=0.5, init="log_prior")
    search = make_search("ments", sim, evaluator=evaluator, tau=0.5, seed=0)
    action = search.search(30)
    assert 0 <= action < 6
    assert evaluator.calls == search.tree.size  # the root plus one evaluation per non-terminal new node
    # untried actions start at the log prior, which is normalized
    assert np.exp(search.tree.q[search.tree.size - 1]).sum() == pytest.approx(1.0) or search.tree.terminal[search.tree.size - 1]


def test_env_without_save_restore_is_refused():
    env = gym.make("CartPole-v1")
    with pytest.raises(TypeError, match="CartPole-v1 cannot be searched: it has no save, restore, observation, state_key"):
        as_simulator(env)
    with pytest.raises(TypeError, match="cannot be searched"):
        make_search("ments", env)


def test_as_simulator_picks_the_adapter():
    assert isinstance(as_simulator(gym.make("FrozenLake-v1", map_name="8x8", is_slippery=False)), FrozenLakeSimulator)
    chain = DChain(3)
    assert as_simulator(chain) is chain


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(algorithm="ments", tau=0.0), r"tau must be a finite number in \(0.0, inf\], got tau=0.0"),
        (dict(algorithm="ments", tau=-0.5), r"tau must be a finite number in \(0.0, inf\], got tau=-0.5"),
        (dict(algorithm="bts", eps=-0.1), r"eps must be a finite number in \[0.0, inf\], got eps=-0.1"),
        (dict(algorithm="dents", alpha=0.0), "alpha must be"),
        (dict(algorithm="mcts"), "algorithm must be one of"),
        (dict(algorithm="uct", recommend="best"), "recommend must be one of"),
    ],
)
def test_bad_search_parameters_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_search(simulator=DChain(3), **kwargs)


@pytest.mark.parametrize("n", [0, -3, 2.5, True])
def test_simulations_below_one_are_refused(n):
    search = make_search("ments", DChain(3))
    with pytest.raises(ValueError, match="num_simulations must be an integer >= 1"):
        search.search(n)
    assert search.tree is None


def test_q_network_with_the_wrong_action_count_is_refused():
    net = torch.nn.Linear(1, 3)
    evaluator = QNetworkEvaluator(lambda obs: net(obs.float()), num_actions=2)
    with pytest.raises(ValueError, match=r"outputs action values of shape \(1, 3\) for 1 observations, expected \(1, 2\)"):
        evaluator(DChain(3))


def test_synthetic_tree_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="branching must be an int >= 2"):
        SyntheticTree(1, 3)
    with pytest.raises(ValueError, match="nodes, more than"):
        SyntheticTree(10, 10)


@pytest.mark.parametrize("slippery", [False, True])
def test_frozenlake_moves_match_the_env_step(slippery):
    """The transition-table moves are the env's own: same cells, rewards and ends as gymnasium's step."""
    env = gym.make("FrozenLake-v1", map_name="8x8", is_slippery=slippery).unwrapped
    sim = FrozenLakeSimulator(gym.make("FrozenLake-v1", map_name="8x8", is_slippery=slippery))
    assert sim.deterministic is not slippery
    rng = random.Random(1)
    for cell in range(64):
        for action in range(4):
            if env.desc.ravel()[cell] in b"HG":
                continue
            outcomes = {(next_cell, reward, done) for _, next_cell, reward, done in env.P[cell][action]}
            env.reset(seed=rng.randrange(1000))
            env.s = cell
            _, reward, done, _, _ = env.step(action)
            assert (int(env.s), reward, done) in outcomes
            sim.restore((cell, False))
            reward, done = sim.step(action)
            assert (int(sim.save()[0]), reward, done) in outcomes
            if not slippery:
                assert sim.save() == (int(env.s), done)


class _NoRewind(DChain):
    """A D-chain whose restore() does nothing."""

    def restore(self, state):
        pass


class _NanReward(DChain):
    def step(self, action):
        reward, done = super().step(action)
        return (math.nan if action == self.RIGHT else reward), done


def test_parts_that_disagree_are_refused():
    with pytest.raises(ValueError, match=r"E2WScore with SoftmaxBackup\(tau=1.0\) is no row of the algorithm table"):
        TreeSearch(DChain(3), tree_policy=E2WScore(tau=0.1, eps=0.1), backup=SoftmaxBackup(tau=1.0))
    with pytest.raises(TypeError, match=r"backup must be a Backup of torchrl_reg.planning.backups, got 'softmax'"):
        TreeSearch(DChain(3), tree_policy=E2WScore(tau=0.1, eps=0.1), backup="softmax")
    with pytest.raises(ValueError, match=r"RandomRollout\(gamma=0.5\) and the search's gamma=1.0 disagree"):
        make_search("ments", DChain(3), evaluator=RandomRollout(gamma=0.5))
    with pytest.raises(ValueError, match=r"c=2.0: not read by ments \(it reads tau, eps\)"):
        make_search("ments", DChain(3), c=2.0)
    with pytest.raises(ValueError, match=r"tau=0.1: not read by uct \(it reads c\)"):
        make_search("uct", DChain(3), tau=0.1)
    with pytest.raises(TypeError, match="_NoRewind.restore does not rewind"):
        make_search("ments", _NoRewind(3))


def test_non_finite_values_are_refused_at_the_boundary():
    with pytest.raises(ValueError, match="q_init must be finite, got q_init=nan"):
        make_search("ments", DChain(3), q_init=math.nan)
    with pytest.raises(ValueError, match="the simulator returned reward=nan"):
        make_search("uct", _NanReward(3), evaluator=lambda sim: (0.0, None)).search(4)
    with pytest.raises(ValueError, match="the leaf evaluation is inf"):
        make_search("uct", DChain(3), evaluator=lambda sim: (math.inf, None)).search(4)
    with pytest.raises(ValueError, match=r"initial action values \[0.0, nan\] are not all finite"):
        make_search("uct", DChain(3), evaluator=lambda sim: (0.0, [0.0, math.nan])).search(4)


@pytest.mark.parametrize("q_init", [[1.0], 1.0, [0.0, 1.0, 2.0]])
def test_initial_action_values_of_another_shape_are_refused_not_broadcast(q_init):
    # a D-chain has two actions: one value (or three) would be spread over them (or fail deep in numpy)
    with pytest.raises(ValueError, match=r"initial action values have shape .*2 actions needs one per action, shape \[2\]"):
        make_search("uct", DChain(3), evaluator=lambda sim: (0.0, q_init)).search(4)
    make_search("uct", DChain(3), evaluator=lambda sim: (0.0, [0.0, 1.0])).search(4)  # one per action


@pytest.mark.parametrize("final_reward", [math.nan, math.inf, -math.inf, "one"])
def test_a_dchain_without_a_finite_final_reward_is_refused(final_reward):
    with pytest.raises(ValueError, match="final_reward must be a (finite )?number"):
        DChain(10, final_reward)


def test_q_network_initial_values_are_the_networks_q_values():
    # init="q" (the default): a new node's untried actions start at the network's Q, in the units of returns
    q = torch.tensor([[0.5, 2.0]])
    evaluator = QNetworkEvaluator(lambda obs: q, num_actions=2, tau=0.1)
    search = make_search("ments", DChain(3), evaluator=evaluator, tau=0.1, seed=0)
    search.search(1)
    tree = search.tree
    untried = int(np.argmin(tree.visits[0]))
    assert tree.q[0, untried] == [0.5, 2.0][untried]
    for node in range(1, tree.size):
        if not tree.terminal[node]:
            np.testing.assert_array_equal(tree.q[node], [0.5, 2.0])


def _task(name: str, **keys):
    from types import SimpleNamespace

    from torchrl_reg.planning.tasks import make_task

    return lambda seed: make_task(SimpleNamespace(name=name, **keys), seed)[0]


@pytest.mark.parametrize("make", [
    _task("dchain", length=8, final_reward=0.5),
    _task("frozenlake", map_name="4x4"),
    *(_task("minatar", game=game, sticky_action_prob=0.1) for game in ("breakout", "space_invaders", "asterix", "seaquest", "freeway")),
    _task("atari", game="Breakout", frame_skip=4, sticky_action_prob=0.25),
], ids=["dchain", "frozenlake", "breakout", "space_invaders", "asterix", "seaquest", "freeway", "atari"])
def test_a_plain_state_through_a_checkpoint_file_gives_a_fresh_env_the_same_future(tmp_path, make):
    # the state a stopped planning run saves of its real envs (never pickled): loaded into an env built afresh with
    # another seed, the same actions give the same rewards, ends and observations, the envs' own streams included
    from torchrl_reg.run import read_checkpoint, save_checkpoint

    sim, rng = make(0), random.Random(0)
    for _ in range(25):
        if sim.step(rng.randrange(sim.num_actions))[1]:
            sim = make(0)  # ended on the way: save a fresh one instead
            break
    save_checkpoint(tmp_path / "checkpoint.pt", {"env": sim.plain_state()})
    fresh = make(1)
    fresh.load_plain_state(read_checkpoint(tmp_path / "checkpoint.pt")["env"])
    actions = [rng.randrange(sim.num_actions) for _ in range(60)]
    assert _rollout(fresh, actions) == _rollout(sim, actions)
    other = make(1)
    assert _rollout(other, actions) != _rollout(make(0), actions) or isinstance(other, (DChain, FrozenLakeSimulator))


def test_a_plain_state_of_another_game_is_refused():
    state = _task("minatar", game="breakout", sticky_action_prob=0.1)(0).plain_state()
    with pytest.raises(ValueError, match="the state is of MinAtar 'breakout', this simulator plays 'asterix'"):
        _task("minatar", game="asterix", sticky_action_prob=0.1)(0).load_plain_state(state)
    with pytest.raises(ValueError, match="a D-chain of length 4 has no state 6"):
        DChain(4).load_plain_state({"state": 6, "done": False})
