"""recipes/tree_search.py: presets compose, smoke runs of every task, a MinAtar run on a tiny M-DQN run's network, bad input."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from recipes import m_dqn, tree_search
from tests.recipes.mdqn_testlib import TINY_MINATAR_MDQN
from torchrl_reg.configs import compose_config
from torchrl_reg.loops.planning import load_q_network
from torchrl_reg.planning import make_task
from torchrl_reg.run import load_checkpoint, save_checkpoint

CONF = Path(tree_search.__file__).parent / "conf"
PRESETS = ("dchain", "frozenlake", "minatar", "atari")


def compose(*overrides: str):
    return compose_config(CONF, "tree_search", overrides)


@pytest.fixture(scope="module")
def mdqn_checkpoint(tmp_path_factory) -> Path:
    """A few hundred frames of recipes/m_dqn.py on MinAtar Breakout: a real checkpoint.pt + config.yaml."""
    run_dir = tmp_path_factory.mktemp("mdqn")
    cfg = compose_config(CONF, "m_dqn", [*TINY_MINATAR_MDQN, f"run_dir={run_dir}"])
    m_dqn.train(cfg)
    return run_dir / "checkpoint.pt"


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_composes(preset):
    # a checkpoint only where the preset's evaluator reads one: the rollouts' presets refuse it
    cfg = compose(f"tree_search_preset={preset}", *(["evaluator.checkpoint=/nonexistent/checkpoint.pt"] if preset == "minatar" else []))
    assert cfg.task.name == preset
    if preset != "minatar":
        tree_search.validate(cfg)


@pytest.mark.parametrize("preset", PRESETS)
def test_the_recipe_and_the_python_api_plan_in_one_default_model(preset):
    # make_tensor_task(cfg, sim, seed), BatchedMinAtar and the recipe's planner.model: the sampled model, on every preset
    import inspect

    from torchrl_reg.planning import BatchedMinAtar, make_tensor_task
    from torchrl_reg.planning.models import DEFAULT_MODEL

    assert DEFAULT_MODEL == "sampled"
    for owner in (make_tensor_task, BatchedMinAtar):  # one default: the snapshot store's too
        assert inspect.signature(owner).parameters["model"].default == DEFAULT_MODEL
    assert compose(f"tree_search_preset={preset}").planner.model == "sampled"


def test_dchain_default_reproduces_the_ments_failure(tmp_path, caplog):
    # the preset is D = 10, R_f = 0.5 at tau = 1: MENTS walks the chain (0.5), DENTS goes down (0.9, optimal)
    with caplog.at_level("INFO", logger="torchrl_reg.recipes"):
        out = tree_search.train(compose(f"run_dir={tmp_path / 'ments'}", "logger.progress_bar=false"))
    assert out["returns"] == [0.5] and out["success_rate"] == 0.0
    # the episode is logged (Hydra copies the log to tree_search.log) and drawn
    assert "episode 0: return 0.5 in 10 moves" in caplog.text
    assert (tmp_path / "ments" / "returns.png").stat().st_size > 0
    out = tree_search.train(compose(f"run_dir={tmp_path / 'dents'}", "planner.algorithm=dents"))
    assert out["returns"] == [0.9] and out["success_rate"] == 1.0
    assert json.loads((tmp_path / "dents" / "metrics.json").read_text())["returns"] == [0.9]


@pytest.mark.parametrize("batch", [1, 2])
def test_power_uct_plans_the_dchain_in_both_engines(batch, tmp_path, monkeypatch):
    # planner.algorithm=power_uct: UCB1 and the power-mean backup, one TreeSearch per episode (batch 1) or one
    # BatchedTreeSearch over both episodes (batch 2); down at the root (0.9) is the chain's optimum
    from torchrl_reg.planning import BatchedTreeSearch, TreeSearch

    engine = BatchedTreeSearch if batch > 1 else TreeSearch
    backups = []
    search = engine.search
    monkeypatch.setattr(engine, "search", lambda self, *a, **k: backups.append(repr(self.backup)) or search(self, *a, **k))
    overrides = ("planner.algorithm=power_uct", "planner.p=3.0", "planner.simulations=50", "episodes=2", f"planner.batch_episodes={batch}")
    out = tree_search.train(compose(*overrides, f"run_dir={tmp_path}", "logger.progress_bar=false"))
    assert out["returns"] == [0.9, 0.9]
    assert backups and set(backups) == {"PowerMeanBackup(p=3.0)"}


@pytest.mark.parametrize("preset", ["frozenlake", "atari"])
def test_smoke(preset, tmp_path):
    out = tree_search.train(compose(f"tree_search_preset={preset}", f"run_dir={tmp_path}", "task.max_steps=3", "planner.simulations=5", "evaluator.rollout_steps=5"))
    assert out["lengths"][0] <= 3
    assert (tmp_path / "config.yaml").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["ments", "dents", "greedy"])
def test_minatar_with_an_mdqn_network(mdqn_checkpoint, algorithm, tmp_path):
    out = tree_search.train(
        compose(
            "tree_search_preset=minatar",
            f"evaluator.checkpoint={mdqn_checkpoint}",
            f"planner.algorithm={algorithm}",
            *(["planner.tau=null", "planner.alpha=0.1"] if algorithm == "dents" else []),
            "planner.simulations=5",
            "task.max_steps=4",
            "episodes=2",
            f"run_dir={tmp_path}",
        )
    )
    assert len(out["returns"]) == 2 and out["success_rate"] is None


@pytest.mark.slow
def test_minatar_episodes_batched_with_an_mdqn_network(mdqn_checkpoint, tmp_path):
    # the network evaluates the leaves of both trees of a group in one forward (QNetworkEvaluator)
    out = tree_search.train(
        compose(
            "tree_search_preset=minatar", f"evaluator.checkpoint={mdqn_checkpoint}", "planner.batch_episodes=2",
            "planner.simulations=5", "task.max_steps=4", "episodes=3", f"run_dir={tmp_path}",
        )
    )
    assert out["status"] == "completed" and len(out["returns"]) == 3 and all(1 <= n <= 4 for n in out["lengths"])
    # the search's diagnostics, one per episode, each a mean over the episode's moves
    for agreement, share, moves in zip(out["greedy_agreement"], out["root_visit_share"], out["lengths"]):
        assert 0 <= agreement <= 1 and agreement * moves == pytest.approx(round(agreement * moves), abs=1e-9)
        # each move's share is (visits of the played action) / 5 with at least 1 visit: over an episode of n moves,
        # share * 5 * n is a whole number of visits (float32 shares), at least n
        visits = share * 5 * moves
        assert visits == pytest.approx(round(visits), abs=1e-4) and moves <= round(visits) <= 5 * moves
    for agreement, gap in zip(out["greedy_agreement"], out["q_gap"]):
        assert gap >= 0 and (gap == 0 if agreement == 1 else True)  # the greedy action costs nothing by the network's Q
    assert json.loads((tmp_path / "metrics.json").read_text())["greedy_agreement"] == out["greedy_agreement"]


@pytest.mark.slow
def test_one_simulation_puts_all_root_visits_on_the_played_action(mdqn_checkpoint, tmp_path):
    # one simulation visits one root action, the only one a recommendation can pick: a share of exactly 1
    out = tree_search.train(compose(
        "tree_search_preset=minatar", f"evaluator.checkpoint={mdqn_checkpoint}", "planner.batch_episodes=2",
        "planner.simulations=1", "task.max_steps=3", "episodes=2", f"run_dir={tmp_path / 'search'}",
    ))
    assert out["root_visit_share"] == [1.0, 1.0]
    # a run checkpointed before the diagnostics existed resumes with None for its episodes
    state = load_checkpoint(tmp_path / "search" / "checkpoint.pt")
    del state["diagnostics"]
    save_checkpoint(tmp_path / "search" / "checkpoint.pt", state)
    more = tree_search.train(compose(
        "tree_search_preset=minatar", f"evaluator.checkpoint={mdqn_checkpoint}", "planner.batch_episodes=2",
        "planner.simulations=1", "task.max_steps=3", "episodes=4", f"run_dir={tmp_path / 'search'}",
    ))
    assert more["returns"][:2] == out["returns"] and more["root_visit_share"] == [None, None, 1.0, 1.0]
    # the greedy network and single-tree episodes record none
    greedy = tree_search.train(compose(
        "tree_search_preset=minatar", f"evaluator.checkpoint={mdqn_checkpoint}", "planner.algorithm=greedy",
        "task.max_steps=3", "episodes=2", f"run_dir={tmp_path / 'greedy'}",
    ))
    assert all(greedy[key] == [None, None] for key in ("greedy_agreement", "q_gap", "root_visit_share"))


def _checkpoint_with(tmp_path: Path, source: Path, *, actions: int | None = None, game: str | None = None) -> Path:
    run_dir = tmp_path / "edited"
    run_dir.mkdir()
    state = load_checkpoint(source)
    if actions is not None:
        for part in ("loss_module", "policy"):
            for key in list(state[part]):
                if key.endswith("head.weight") or key.endswith("head.bias"):
                    state[part][key] = state[part][key][:actions]
    save_checkpoint(run_dir / "checkpoint.pt", state)
    text = (source.parent / "config.yaml").read_text()
    if game is not None:
        text = text.replace("name: Breakout", f"name: {game}")
    (run_dir / "config.yaml").write_text(text)
    return run_dir / "checkpoint.pt"


@pytest.mark.slow
def test_the_loaded_network_is_the_runs_online_network(mdqn_checkpoint):
    task = compose("tree_search_preset=minatar").task
    net = load_q_network(mdqn_checkpoint, make_task(task, 0)[0], "Breakout")
    # the oracle: the online network's parameters as the loss module holds them (TorchRL's functional
    # parameters), which the target network's differ from (no copy within the run)
    losses = load_checkpoint(mdqn_checkpoint)["loss_module"]
    for key, value in net.state_dict().items():
        assert torch.equal(value, losses[f"value_network_params.module.0.module.{key}"]), key
    assert not torch.equal(net.state_dict()["head.weight"], losses["target_value_network_params.module.0.module.head.weight"])


@pytest.mark.slow
def test_checkpoint_with_another_action_space_is_refused(mdqn_checkpoint, tmp_path):
    bad = _checkpoint_with(tmp_path, mdqn_checkpoint, actions=5)
    run_dir = tmp_path / "run"
    cfg = compose("tree_search_preset=minatar", f"evaluator.checkpoint={bad}", f"run_dir={run_dir}")
    with pytest.raises(ValueError, match=r"(?s)does not fit a minatar_conv Q network with 6 actions on observations \(4, 10, 10\) \(the MinAtar 'breakout' simulator's\).*head.bias: copying a param with shape torch.Size\(\[5\]\)"):
        tree_search.train(cfg)
    assert not run_dir.exists()


@pytest.mark.slow
def test_checkpoint_of_another_game_is_refused(mdqn_checkpoint, tmp_path):
    bad = _checkpoint_with(tmp_path, mdqn_checkpoint, game="Asterix")
    with pytest.raises(ValueError, match="trained on minatar 'Asterix', the task is MinAtar 'breakout'"):
        tree_search.train(compose("tree_search_preset=minatar", f"evaluator.checkpoint={bad}", f"run_dir={tmp_path / 'run'}"))


@pytest.mark.parametrize(
    "override, match",
    [
        ("planner.tau=0", "planner.tau must be a finite number in"),
        ("planner.tau=-1", "planner.tau must be a finite number in"),
        ("planner.eps=-0.1", "planner.eps must be a finite number in"),
        ("planner.c=2.0", r"planner.c=2.0: not read by ments \(it reads planner.tau, planner.eps\)"),
        ("planner.q_init=nan", "planner.q_init must be a finite number"),
        ("planner.simulations=0", "planner.simulations must be an integer >= 1"),
        ("planner.algorithm=alphazero", "planner.algorithm"),
        ("planner.algorithm=greedy", "needs task.name='minatar'"),
        ("task.name=cartpole", "task.name"),
        ("seed=-1", "seed must be an integer >= 0, got seed=-1"),
        # keys the task or the evaluator does not read are refused, as the algorithm's unread knobs are
        ("task.game=foo", r"task.game='foo' is not used by task.name='dchain' \(it reads \['final_reward', 'length', 'max_steps'\]\)"),
        ("task.map_name=4x4", "task.map_name='4x4' is not used by task.name='dchain'"),
        ("evaluator.prior_tau=nan", "evaluator.prior_tau=nan is not used by evaluator.kind='rollout'"),
        ("evaluator.checkpoint=/some/checkpoint.pt", "evaluator.checkpoint='/some/checkpoint.pt' is not used by evaluator.kind='rollout'"),
    ],
)
def test_bad_input_is_refused_before_anything_is_written(override, match, tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(ValueError, match=match):
        tree_search.train(compose(override, f"run_dir={run_dir}"))
    assert not run_dir.exists()


def test_the_greedy_planner_needs_the_q_network_evaluator():
    cfg = compose("tree_search_preset=minatar", "planner.algorithm=greedy", "evaluator.kind=rollout")
    with pytest.raises(ValueError, match="planner.algorithm='greedy' plays the Q network's argmax: it needs evaluator.kind='q_network', got 'rollout'"):
        tree_search.validate(cfg)


def test_minatar_without_a_checkpoint_is_refused(tmp_path):
    with pytest.raises(ValueError, match="evaluator.checkpoint must name"):
        tree_search.validate(compose("tree_search_preset=minatar"))
    with pytest.raises(FileNotFoundError, match="is not a file"):
        tree_search.validate(compose("tree_search_preset=minatar", f"evaluator.checkpoint={tmp_path / 'missing.pt'}"))


def test_help_lists_every_preset_and_algorithm():
    from torchrl_reg.loops.entry import recipe_help

    text = recipe_help(CONF, "tree_search", [])
    presets = sorted(path.stem for path in (CONF / "tree_search_preset").glob("*.yaml"))
    groups = next(line for line in text.splitlines() if line.startswith("tree_search_preset:"))
    assert sorted(option.strip(" *") for option in groups.split(":", 1)[1].split(",")) == presets == sorted(PRESETS)
    from torchrl_reg.planning import ALGORITHMS

    line = next(line for line in text.splitlines() if line.startswith("planner.algorithm=ments "))
    assert [name.strip(" ,") for name in line.split("  ")[1].split(" (the algorithm table")[0].split(",")] == list(ALGORITHMS)


@pytest.mark.slow
def test_a_run_without_a_q_network_is_refused(mdqn_checkpoint, tmp_path):
    run_dir = tmp_path / "edited"
    run_dir.mkdir()
    save_checkpoint(run_dir / "checkpoint.pt", load_checkpoint(mdqn_checkpoint))
    # an actor-critic run's config (recipes/sac.py ...) has no network or exploration group
    (run_dir / "config.yaml").write_text("env:\n  family: minatar\n  name: Breakout\n")
    with pytest.raises(ValueError, match="has no env, network or exploration group: evaluator.checkpoint must be a recipes/m_dqn.py run's"):
        tree_search.train(compose("tree_search_preset=minatar", f"evaluator.checkpoint={run_dir / 'checkpoint.pt'}", f"run_dir={tmp_path / 'run'}"))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "overrides, match",
    [
        (("planner.model=ensemble", "planner.futures=0"), "planner.futures must be an integer >= 1, got planner.futures=0"),
        (("planner.model=ensemble", "planner.futures=-2"), "planner.futures must be an integer >= 1, got planner.futures=-2"),
        (("planner.model=ensemble", "planner.futures=1"),
         r"planner.futures=1 with planner.model='ensemble': an ensemble searches 2 or more futures per move"),
        (("planner.model=ensemble", "planner.futures=3", "planner.simulations=50"),
         r"planner.simulations=50 is the total per move over planner.futures=3 futures.*a multiple of 3 \(e.g. 48 or 51\)"),
        (("planner.model=determinized", "planner.futures=4"),
         r"planner.futures=4 is read by planner.model='ensemble' only .*planner.model='determinized' plans in one"),
        (("planner.futures=2",), r"planner.futures=2 is read by planner.model='ensemble' only .*planner.model='sampled'"),
        (("planner.model=bagging",), r"planner.model"),
        (("tree_search_preset=atari", "planner.model=ensemble", "planner.futures=2"), "the ensemble model of atari is not built"),
    ],
)
def test_bad_futures_are_refused_before_anything_is_written(overrides, match, tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(ValueError, match=match):
        tree_search.train(compose(*overrides, f"run_dir={run_dir}"))
    assert not run_dir.exists()


@pytest.mark.parametrize("batch", [1, 4])
def test_the_ensemble_plans_minatar_episodes_with_an_mdqn_network(mdqn_checkpoint, batch, tmp_path):
    # 2 futures of 3 simulations per move: one TreeSearch per future (batch 1) or 2 rows per episode of one batched search
    cfg = compose("tree_search_preset=minatar", f"evaluator.checkpoint={mdqn_checkpoint}", "task.max_steps=6", "episodes=4",
                  "planner.model=ensemble", "planner.futures=2", "planner.simulations=6", f"planner.batch_episodes={batch}",
                  "logger.backend=none", "logger.progress_bar=false", f"run_dir={tmp_path}")
    metrics = tree_search.train(cfg)
    assert metrics["status"] == "completed" and metrics["model"] == "ensemble" and metrics["episodes"] == 4
    for key in ("greedy_agreement", "q_gap", "root_visit_share"):  # the same diagnostics in every mode
        assert len(metrics[key]) == 4 and all(v is not None for v in metrics[key]), key
    assert all(0.0 < share <= 1.0 for share in metrics["root_visit_share"])
    assert "futures: 2" in (tmp_path / "config.yaml").read_text()
