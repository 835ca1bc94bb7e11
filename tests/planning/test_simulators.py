"""Save/restore adapters replay exactly; bad input is refused before any search runs."""
from __future__ import annotations

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
    QNetworkEvaluator,
    SyntheticTree,
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


def _ale():
    from ale_py import ALEInterface, roms

    ale = ALEInterface()
    ale.setInt("random_seed", 0)
    ale.setFloat("repeat_action_probability", 0.25)
    ale.loadROM(roms.get_rom_path("breakout"))
    return ALESimulator(ale)


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
    evaluator = QNetworkEvaluator(lambda obs: net(obs.float()), num_actions=6, tau=0.5)
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
        (dict(algorithm="ments", tau=0.0), "tau must be a finite number > 0, got tau=0.0"),
        (dict(algorithm="ments", tau=-0.5), "tau must be a finite number > 0, got tau=-0.5"),
        (dict(algorithm="bts", eps=-0.1), "eps must be a finite number >= 0, got eps=-0.1"),
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
    with pytest.raises(ValueError, match="outputs 3 action values, the simulator has 2 actions"):
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
