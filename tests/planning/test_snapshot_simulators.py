"""MinAtar and ALE handle stores: they step like the real envs, are pure functions of the handles, and never see the real envs' streams."""
from __future__ import annotations

import copy
import functools
import random

import numpy as np
import pytest
import torch

from torchrl_reg.planning import (
    ALESimulator,
    BatchedALE,
    BatchedMinAtar,
    MinAtarSimulator,
    QNetworkEvaluator,
    RandomRollout,
    make_search,
)
from torchrl_reg.planning.snapshot_simulators import SnapshotStore, planner_rng

minatar = pytest.importorskip("minatar", reason="MinAtar is not installed")


def _minatar_env(seed: int, moves: int, game: str = "breakout", sticky: float = 0.1):
    """A real MinAtar env ``moves`` random moves into an episode."""
    env = minatar.Environment(game, sticky_action_prob=sticky)
    env.seed(seed)
    env.reset()
    rng = random.Random(seed)
    for _ in range(moves):
        if env.act(rng.randrange(6))[1]:
            env.reset()
    return env


def _ale(sticky: float = 0.0, seed: int = 0):
    ale_py = pytest.importorskip("ale_py", reason="ale_py is not installed")
    ale = ale_py.ALEInterface()
    ale.setInt("random_seed", seed)
    ale.setFloat("repeat_action_probability", sticky)
    ale.loadROM(ale_py.roms.get_rom_path("breakout"))
    return ale


def _trace(sim, handle: torch.Tensor, actions: list[int]) -> list[tuple[float, bool, bytes]]:
    """(reward, done, observation) along ``actions`` from ``handle`` (a [1, 1] handle)."""
    trace = []
    for a in actions:
        handle, reward, done = sim.step(handle, torch.tensor([a]))
        trace.append((float(reward[0]), bool(done[0]), sim.observation(handle)[0].numpy().tobytes()))
    return trace


def _real_trace(sim, actions: list[int]) -> list[tuple[float, bool, bytes]]:
    trace, done = [], False
    for a in actions:
        if not done:  # a finished episode stays put, as a finished handle does
            reward, done = sim.step(a)
            trace.append((reward, done, sim.observation().tobytes()))
        else:
            trace.append((0.0, True, trace[-1][2]))
    return trace


@pytest.mark.parametrize("game", ["asterix", "breakout", "freeway", "seaquest", "space_invaders"])
def test_minatar_steps_exactly_like_the_real_env_given_the_same_stream(game):
    envs = [_minatar_env(seed, moves, game) for seed, moves in ((0, 5), (1, 12), (2, 0))]
    sim = BatchedMinAtar(game, sticky_action_prob=0.1, model="determinized")
    handles = sim.roots(envs, seed=7)
    actions = [random.Random(3).randrange(6) for _ in range(80)]
    seen = set()
    for row, env in enumerate(envs):
        # the real env continues on the stream the search was given (the root copied its game, not its stream)
        env.random = env.env.random = planner_rng(7, row)
        expected = _real_trace(MinAtarSimulator(env), actions)
        assert _trace(sim, handles[row : row + 1], actions) == expected
        seen |= {obs for _, _, obs in expected}
    assert len(seen) > 10  # the games move: the comparison is not trivial


def test_ale_steps_exactly_like_the_real_emulator_without_sticky_actions():
    real = _ale()
    for _ in range(50):
        real.act(real.getMinimalActionSet()[1])  # FIRE: the ball is in play
    sim = BatchedALE("breakout", frameskip=4)
    handle = sim.roots([real], seed=0)
    actions = [random.Random(1).randrange(sim.num_actions) for _ in range(40)]
    mine = _trace(sim, handle, actions)
    assert mine == _real_trace(ALESimulator(real, 4), actions)


def test_ale_steps_exactly_like_the_real_simulator_given_the_same_stream():
    # the real env is an ALESimulator with sticky actions; the root takes its game and the action it applied last
    real = ALESimulator(_ale(), 4, sticky_action_prob=0.5, seed=5)
    moves = random.Random(2)
    for _ in range(30):
        real.step(moves.randrange(real.num_actions))
    sim = BatchedALE("breakout", frameskip=4, sticky_action_prob=0.5)
    handle = sim.roots([real], seed=7)
    assert sim._store[0].last_action == real.last_action
    actions = [moves.randrange(sim.num_actions) for _ in range(40)]
    real.rng = planner_rng(7, 0)  # the real env continues on the stream the search was given
    assert _trace(sim, handle, actions) == _real_trace(real, actions)
    with pytest.raises(ValueError, match="ales\\[0\\] has sticky action probability 0.5; this simulator searches sticky_action_prob=0.25"):
        BatchedALE("breakout", sticky_action_prob=0.25).roots([real], seed=0)


@pytest.mark.parametrize("make", ["minatar", "ale"])
def test_a_state_and_action_always_give_the_same_next_state_even_with_sticky_actions(make):
    if make == "minatar":
        sim = BatchedMinAtar("breakout", sticky_action_prob=0.5, model="determinized")
        root = sim.roots([_minatar_env(0, 5, sticky=0.5)], seed=1)
    else:
        sim = BatchedALE("breakout", sticky_action_prob=0.5)
        real = _ale(sticky=0.5)
        root = sim.roots([real], seed=1)
    actions = [random.Random(0).randrange(sim.num_actions) for _ in range(30)]
    first = _trace(sim, root, actions)
    _trace(sim, root, [random.Random(9).randrange(sim.num_actions) for _ in range(30)])  # the working emulator wanders off
    assert _trace(sim, root, actions) == first
    # a fresh stream (another seed) gives another future from the same game: the sticky draws do matter
    other = sim.roots([_minatar_env(0, 5, sticky=0.5)] if make == "minatar" else [real], seed=2)
    assert _trace(sim, other, actions) != first


def test_minatar_roots_never_see_the_real_stream():
    env = _minatar_env(4, 6, sticky=0.5)
    before = env.random.get_state()
    sim = BatchedMinAtar("breakout", sticky_action_prob=0.5, model="determinized")
    root = sim.roots([env], seed=11)
    game = sim._store[0].game
    assert game.random is not env.random and game is not env.env
    # the root's stream is the planner's, drawn from its seed, not a copy of the real one
    assert sim._store[0].rng == planner_rng(11, 0).get_state(legacy=False)
    actions = [random.Random(5).randrange(6) for _ in range(40)]
    first = _trace(sim, root, actions)
    # searching does not draw from the real stream, and the real env stepping on does not change the search's model
    np.testing.assert_array_equal(env.random.get_state()[1], before[1])
    for _ in range(20):
        env.act(1)
    assert _trace(sim, root, actions) == first


def test_a_finished_row_stays_put_and_the_store_grows_by_b_per_step_until_cleared():
    sim = BatchedMinAtar("breakout", sticky_action_prob=0.0, model="determinized")
    state = sim.root(3)
    assert len(sim) == 3
    done = torch.zeros(3, dtype=torch.bool)
    added = 0
    while not bool(done.all()):
        # NOOP, left, right until each loses its ball: every row still playing adds one snapshot
        added += int((~done).sum())
        before, (state, reward, done_now) = state, sim.step(state, torch.tensor([0, 1, 3]))
        assert torch.equal(state[done], before[done]) and bool((reward[done] == 0).all())  # finished rows stay put
        done = done_now
        assert len(sim) == 3 + added
    assert 3 < added < 3 * 100
    sim.roots([_minatar_env(0, 0, sticky=0.0)], seed=0)
    assert len(sim) == 1
    with pytest.raises(ValueError, match=r"BatchedMinAtar states are int64 tensors of shape \[B, 1\] \(handle in 0..0\); row 0 has handle=\d+ \(root\(\) and roots\(\) clear the store"):
        sim.step(state[1:2], torch.tensor([0]))


def test_bad_roots_are_refused():
    sim = BatchedMinAtar("breakout", sticky_action_prob=0.1, model="determinized")
    with pytest.raises(ValueError, match="'asterix' with sticky_action_prob=0.1; this simulator searches 'breakout'"):
        sim.roots([_minatar_env(0, 0, game="asterix")], seed=0)
    with pytest.raises(ValueError, match="sticky_action_prob=0.0; this simulator searches 'breakout' with sticky_action_prob=0.1"):
        sim.roots([_minatar_env(0, 0, sticky=0.0)], seed=0)
    with pytest.raises(TypeError, match="envs\\[0\\] must be a minatar.Environment"):
        sim.roots([object()], seed=0)
    with pytest.raises(ValueError, match=r"BatchedMinAtar's store is empty: take the roots from root\(\) or roots\(\)"):
        sim.step(torch.zeros(2, 1, dtype=torch.long), torch.zeros(2, dtype=torch.long))
    sim.root(2)
    with pytest.raises(ValueError, match=r"states are int64 tensors of shape \[B, 1\] \(handle in 0..1\); got shape \(2,\)"):
        sim.step(torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long))


@pytest.mark.parametrize("algorithm", ["ments", "uct"])
def test_batched_search_runs_on_three_minatar_roots(algorithm):
    sim = BatchedMinAtar("breakout", sticky_action_prob=0.1, model="determinized")
    root = sim.roots([_minatar_env(seed, 3 * seed) for seed in range(3)], seed=0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4 * 10 * 10, 6))
    evaluator = QNetworkEvaluator(lambda obs: net(obs.float()), num_actions=6, tau=0.5)
    search = make_search(algorithm, sim, batched=True, evaluator=evaluator, seed=0)
    action = search.search(root, 6)
    assert action.shape == (3,) and bool(((action >= 0) & (action < 6)).all())
    assert evaluator.calls == 7  # the roots, then one forward per simulation for all three trees
    assert (search.tree.size >= 2).all()
    rollout = make_search(algorithm, sim, batched=True, evaluator=RandomRollout(max_steps=5), seed=0)
    action = rollout.search(root, 4)
    assert bool(((action >= 0) & (action < 6)).all())


def test_tensor_roots_are_where_the_episodes_envs_are():
    from omegaconf import OmegaConf

    from torchrl_reg.planning import TensorDChain, TensorFrozenLake, make_task, make_tensor_task
    from torchrl_reg.planning.tasks import get_task

    chain = OmegaConf.create(dict(name="dchain", length=5, final_reward=1.0))
    sims = [make_task(chain, 0)[0] for _ in range(3)]
    for sim, steps in zip(sims, (0, 1, 3)):
        for _ in range(steps):
            sim.step(sim.RIGHT)
    model = make_tensor_task(chain, sims[0], 0)
    assert isinstance(model, TensorDChain) and get_task("dchain").roots(model, sims, (0, 0)).tolist() == [[0], [1], [3]]
    lake = OmegaConf.create(dict(name="frozenlake", map_name="4x4"))
    sims = [make_task(lake, seed)[0] for seed in range(2)]
    sims[1].step(2)  # right: cell 0 -> 1
    model = make_tensor_task(lake, sims[0], 0)
    assert isinstance(model, TensorFrozenLake) and get_task("frozenlake").roots(model, sims, (0, 0)).tolist() == [[0], [1]]
    with pytest.raises(ValueError, match="the batched search models the tasks \\['dchain', 'frozenlake', 'minatar'\\], got task name 'atari'"):
        make_tensor_task(OmegaConf.create(dict(name="atari")), sims[0], 0)


def _attributes(game) -> dict:
    """A game's attributes as comparable values (arrays as (dtype, shape, bytes)); its stream by identity."""
    return {k: (v.dtype.str, v.shape, v.tobytes()) if isinstance(v, np.ndarray) else (id(v) if k == "random" else v)
            for k, v in vars(game).items()}


@pytest.mark.parametrize("game", ["asterix", "breakout", "freeway", "seaquest", "space_invaders"])
def test_the_game_copy_of_a_step_is_the_deep_copy_and_shares_nothing_the_game_writes(game):
    from torchrl_reg.planning.snapshot_simulators import copy_minatar_game

    env, moves, checked = minatar.Environment(game, sticky_action_prob=0.1), random.Random(4), 0
    env.seed(3)
    env.reset()
    for step in range(400):
        rng = planner_rng(5, step)
        mine = copy_minatar_game(env.env, rng)
        assert type(mine) is type(env.env) and mine.random is rng
        assert _attributes(mine) == _attributes(copy.deepcopy(env.env, {id(env.env.random): rng}))
        for key, value in vars(mine).items():  # arrays and entity lists are the copy's own, one level down too
            if key not in ("channels", "action_map", "random") and isinstance(value, (np.ndarray, list)):
                original = getattr(env.env, key)
                assert value is not original and not any(a is b for a, b in zip(value, original) if isinstance(a, list))
                checked += 1
        if env.act(moves.randrange(6))[1]:
            env.reset()
    assert checked >= 400  # every game has an array or an entity list to copy


def test_a_game_the_copy_does_not_know_is_deep_copied_whole():
    from torchrl_reg.planning.snapshot_simulators import copy_minatar_game

    env = minatar.Environment("asterix")
    env.reset()
    for _ in range(40):
        env.act(3)
    game, rng = env.env, planner_rng(0, 0)
    game.extra = {"unknown": [1, 2]}  # a kind of attribute MinAtar's games do not have
    mine = copy_minatar_game(game, rng)
    assert mine.extra == game.extra and mine.extra is not game.extra and mine.extra["unknown"] is not game.extra["unknown"]
    del game.extra
    live = next(i for i, e in enumerate(game.entities) if e is not None)
    game.entities.append(game.entities[live])  # one entity in two slots: the copy keeps them one object
    mine = copy_minatar_game(game, rng)
    assert mine.entities[-1] is mine.entities[live] and mine.entities[live] is not game.entities[live]
    assert mine.channels == game.channels and mine.random is rng


def _futures_of_both_loops(real, model: str, seed, actions: list[int]):
    """The observations and rewards along ``actions`` in the model of ``real`` at one move: TreeSearch's simulator
    (the task's ``simulator``) and BatchedTreeSearch's root (the task's ``tensor_model`` and ``roots``): one task object
    gives both."""
    from torchrl_reg.planning.models import get_model
    from torchrl_reg.planning.tasks import get_task

    from omegaconf import OmegaConf

    task, model = get_task("minatar"), get_model(model)
    sim = MinAtarSimulator(real, include_rng=False)
    one = task.simulator(sim, model, seed)
    many = task.tensor_model(OmegaConf.create(dict(game="asterix", sticky_action_prob=0.1)), sim, 0, model)
    state = task.roots(many, [sim], seed)
    scalar, batched = [], []
    for action in actions:
        reward, done = one.step(action)
        scalar.append((one.observation().tolist(), reward, done))
        state, rewards, dones = many.step(state, torch.tensor([action]))
        batched.append((many.observation(state)[0].tolist(), float(rewards[0]), bool(dones[0])))
    return scalar, batched


@pytest.mark.parametrize("model", ["determinized", "oracle"])
def test_both_loops_plan_in_one_model_of_a_move(model):
    # Asterix draws its spawns and sticky actions from the stream: the two loops' models of one move are one future
    # (determinized: the stream planner_rng((episode seed, move), 0) in both; oracle: a copy of the env's own), and
    # the oracle's is the real env's own future for the same actions
    real = _minatar_env(3, 7, game="asterix")
    before = (real.env.state().tobytes(), real.random.get_state(legacy=False)["state"]["key"].tobytes())
    actions = [random.Random(1).randrange(6) for _ in range(30)]
    scalar, batched = _futures_of_both_loops(real, model, (3, 7), actions)
    assert scalar == batched
    assert (real.env.state().tobytes(), real.random.get_state(legacy=False)["state"]["key"].tobytes()) == before  # untouched
    truth = []
    for action in actions:
        reward, done = real.act(action)
        truth.append((np.ascontiguousarray(real.state().transpose(2, 0, 1), dtype=np.uint8).tolist(), reward, done))
    assert (scalar == truth) == (model == "oracle")


def test_the_models_each_loop_refuses_name_the_reason():
    from torchrl_reg.planning.models import MODELS
    from torchrl_reg.planning.tasks import check_model, get_task

    with pytest.raises(ValueError, match=r"the model must be one of \['sampled', 'determinized', 'ensemble', 'oracle'\], got 'exact'"):
        BatchedMinAtar("breakout", model="exact")
    check_model("minatar", "sampled", batched=True)  # chance nodes in the batched search
    with pytest.raises(ValueError, match="the oracle model copies the streams of real envs: take its roots from roots"):
        BatchedMinAtar("breakout", model="oracle").root(2)
    sim = MinAtarSimulator(_minatar_env(0, 0), include_rng=False)
    assert get_task("minatar").simulator(sim, MODELS["sampled"], 0) is sim  # the env itself: its stream goes on across simulations
    for task in ("dchain", "frozenlake"):  # deterministic: every model is the task itself, in both loops
        for model in ("sampled", "determinized", "oracle"):
            check_model(task, model, batched=True)


def _pickled(snapshot) -> bytes:
    """The reference the state keys must agree with: the game's attributes (but its stream and read-only tables), the
    last action and the end, pickled (equal bytes: one state)."""
    import pickle

    game = {k: v for k, v in vars(snapshot.game).items() if k not in ("random", "channels", "action_map")}
    return pickle.dumps((type(snapshot.game).__qualname__, game, snapshot.last_action, snapshot.done))


def _first_seen(values: list) -> list[int]:
    """Each value's rank among the distinct values, in order of appearance (two lists of ranks are equal exactly
    when their values split the positions alike)."""
    ranks = {v: i for i, v in enumerate(dict.fromkeys(values))}
    return [ranks[v] for v in values]


@pytest.mark.parametrize("game", ["breakout", "space_invaders", "asterix", "seaquest", "freeway"])
def test_the_sampled_models_state_keys_tell_states_apart_exactly_as_their_pickles_do(game):
    # random play from 3 roots, 6 visits of each (state, action) per level: many repeated and many distinct outcomes
    sim, moves = BatchedMinAtar(game, sticky_action_prob=0.3, model="sampled"), np.random.default_rng(0)
    rows = sim.roots([_minatar_env(seed, 5, sticky=0.3, game=game) for seed in range(3)], seed=4).repeat_interleave(6, 0)
    handles = []
    for _ in range(12):
        rows, _, _ = sim.step(rows, torch.as_tensor(moves.integers(0, 6, size=3).repeat(6)))
        handles += rows[:, 0].tolist()
    keys = sim.state_key(torch.tensor(handles)[:, None])[:, 0].tolist()
    pickles = [_pickled(sim._store[h]) for h in handles]

    assert _first_seen(keys) == _first_seen(pickles)  # one partition of the states
    assert 3 < len(set(pickles)) < len(handles)  # outcomes both repeated and distinct


def test_the_sampled_model_draws_anew_at_every_visit_and_keys_outcomes_by_the_game_state():
    sim = BatchedMinAtar("breakout", sticky_action_prob=0.5, model="sampled")
    assert not sim.deterministic and not sim.deterministic_rewards
    assert BatchedMinAtar("breakout", sticky_action_prob=0.5, model="determinized").deterministic  # the determinized model: one future
    real = _minatar_env(0, 5, sticky=0.5)
    root = sim.roots([real], seed=1)
    # 24 visits of one (state, action): 'right' (3) after the real env's last action, sticky half of the time
    rows = root.expand(24, 1)
    nxt, _, _ = sim.step(rows, torch.full((24,), 3))
    keys = sim.state_key(nxt)[:, 0].tolist()
    # two game states (P = 1 - 2^-23); Breakout's step draws nothing here, so each is stepped once and its handle kept
    assert len(set(keys)) == 2 and len(set(nxt[:, 0].tolist())) == 2
    for i in range(24):
        for j in range(24):
            same = _pickled(sim._store[int(nxt[i, 0])]) == _pickled(sim._store[int(nxt[j, 0])])
            assert (keys[i] == keys[j]) == same
    again, _, _ = sim.step(root.expand(24, 1), torch.full((24,), 3))
    assert set(sim.state_key(again)[:, 0].tolist()) == set(keys)  # the ids are the game states', not the handles'
    # the batched search keeps both outcomes under one edge, each with its own key
    search = make_search("uct", sim, batched=True, evaluator=RandomRollout(max_steps=3), seed=0)
    search.search(sim.roots([real, _minatar_env(1, 5, sticky=0.5)], seed=2), 40)
    slots = search.tree.outcomes[:, :-1]  # the last node slot is the scratch node (garbage by design)
    assert int((slots >= 0).sum(-1).max()) == 2
    for b, node, action in ((slots >= 0).sum(-1) == 2).nonzero().tolist():
        first, second = slots[b, node, action, :2].tolist()
        assert not torch.equal(search.tree.key[b, first], search.tree.key[b, second])


@pytest.mark.parametrize("game", ["breakout", "space_invaders", "asterix", "seaquest", "freeway"])
def test_the_sampled_models_kept_transitions_step_and_draw_exactly_as_stepping_the_game_every_time(game):
    # the reference steps the game at every visit (SnapshotStore._step_row: _advance, as minatar.Environment.act
    # draws); random play from 3 roots, 6 visits of each (state, action) per level, sticky actions 0.3
    sims = [BatchedMinAtar(game, sticky_action_prob=0.3, model="sampled") for _ in range(2)]
    sims[1]._step_row = functools.partial(SnapshotStore._step_row, sims[1])
    envs = [_minatar_env(seed, 5, sticky=0.3, game=game) for seed in range(3)]
    rows = [sim.roots(envs, seed=4).repeat_interleave(6, 0) for sim in sims]
    moves, traces = np.random.default_rng(0), [[], []]
    for _ in range(12):
        action = torch.as_tensor(moves.integers(0, 6, size=3).repeat(6))
        for i, sim in enumerate(sims):
            rows[i], reward, done = sim.step(rows[i], action)
            traces[i].append((sim.state_key(rows[i])[:, 0].tolist(), reward.tolist(), done.tolist(), sim.observation(rows[i]).numpy().tobytes()))
    # the same outcomes (the ids are labels: equal where the states are, numbered in another order), rewards, ends and
    # observations, level by level
    keys = [_first_seen([k for level in trace for k in level[0]]) for trace in traces]
    assert keys[0] == keys[1] and [t[1:] for t in traces[0]] == [t[1:] for t in traces[1]]
    assert sims[0]._rng.get_state(legacy=False) == sims[1]._rng.get_state(legacy=False)  # the stream drawn as far
    assert len(sims[0]) < len(sims[1])  # transitions kept, not stepped again


def test_a_step_that_draws_from_the_stream_is_never_kept():
    # Asterix spawns at random: its transitions that drew must be stepped anew at every visit
    sim = BatchedMinAtar("asterix", sticky_action_prob=0.0, model="sampled")
    root = sim.roots([_minatar_env(0, 5, game="asterix", sticky=0.0)], seed=0)
    state = root
    for _ in range(30):  # to a state whose step spawns (Asterix spawns every few moves)
        nxt, _, _ = sim.step(state.expand(8, 1), torch.zeros(8, dtype=torch.long))
        if len(set(sim.state_key(nxt)[:, 0].tolist())) > 1:
            break
        state = nxt[:1]
    else:
        pytest.fail("no step of 30 from the root drew a spawn")
    assert len(set(nxt[:, 0].tolist())) == 8  # each visit stepped the game (and drew) anew
