"""torchrl_reg.loops.planning: the run-directory contract of the planning loop (recipes/tree_search.py) on tiny D-chains.

With 3 simulations per move MENTS on the D-chain (D = 10) stops at different states in different episodes,
so per-episode returns tell the episodes apart: 'down' at state i pays (D - i - 1) / D, the chain's end R_f.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recipes import tree_search
from tests.slurm.sweep_testlib import wait_for
from torchrl_reg.configs import compose_config
from torchrl_reg.run import EXIT_INTERRUPTED, clear_stop, load_checkpoint, request_stop, request_stop_at
from torchrl_reg.run.rundir import LOCK_NAME, ResumeRefused, resume_changes

CONF = Path(tree_search.__file__).parent / "conf"
TINY = ("planner.simulations=3", "episodes=4", "logger.progress_bar=false")


def compose(*overrides: str):
    return compose_config(CONF, "tree_search", list(overrides))


def _logs(run_dir: Path) -> dict[str, str]:
    root = run_dir / "csv" / "scalars"
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*.csv"))}


@pytest.fixture(autouse=True)
def _no_pending_stop():
    clear_stop()
    yield
    clear_stop()


def test_a_tiny_dchain_run_writes_the_run_directory(tmp_path):
    metrics = tree_search.train(compose(*TINY, f"run_dir={tmp_path}"))
    D = 10
    possible = {round((D - i - 1) / D, 12) for i in range(D)} | {0.5}  # every 'down' payment and R_f
    assert metrics["status"] == "completed" and metrics["episodes"] == 4
    assert {round(r, 12) for r in metrics["returns"]} <= possible
    assert len(set(metrics["returns"])) > 1  # the episodes differ: the resume test below can tell them apart
    assert metrics["frames"] == sum(metrics["lengths"])
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk["returns"] == metrics["returns"] and on_disk["status"] == "completed"
    rows = (tmp_path / "csv" / "scalars" / "episode" / "return.csv").read_text().splitlines()
    assert [int(r.split(",")[0]) for r in rows] == [1, 2, 3, 4]
    assert [float(r.split(",")[1]) for r in rows] == pytest.approx(metrics["returns"])
    assert (tmp_path / "returns.png").stat().st_size > 0
    assert (tmp_path / "checkpoint.pt").is_file() and "simulations: 3" in (tmp_path / "config.yaml").read_text()
    assert not (tmp_path / "run.lock").exists()


def test_a_stopped_run_resumes_from_its_last_finished_episode(tmp_path):
    full = tree_search.train(compose(*TINY, f"run_dir={tmp_path / 'full'}"))

    request_stop_at(2)  # a number of finished episodes
    part = tree_search.train(compose(*TINY, f"run_dir={tmp_path / 'resumed'}"))
    assert part["status"] == "interrupted" and part["returns"] == full["returns"][:2]
    assert json.loads((tmp_path / "resumed" / "metrics.json").read_text())["status"] == "interrupted"
    resumed = tree_search.train(compose(*TINY, f"run_dir={tmp_path / 'resumed'}"))
    assert resumed["status"] == "completed"
    assert (resumed["returns"], resumed["lengths"]) == (full["returns"], full["lengths"])
    assert _logs(tmp_path / "resumed") == _logs(tmp_path / "full")  # nothing logged twice


def test_a_stop_before_the_first_move_saves_the_episode_unplayed_and_the_resume_plays_it(tmp_path):
    full = tree_search.train(compose(*TINY, f"run_dir={tmp_path / 'full'}"))
    request_stop()  # acted on before the first move: no episode finished
    part = tree_search.train(compose(*TINY, f"run_dir={tmp_path / 'resumed'}"))
    assert part["status"] == "interrupted" and part["returns"] == [] and part["frames"] == 0
    resumed = tree_search.train(compose(*TINY, f"run_dir={tmp_path / 'resumed'}"))
    assert resumed["returns"] == full["returns"]


def test_more_episodes_continue_a_finished_run(tmp_path):
    first = tree_search.train(compose(*TINY, f"run_dir={tmp_path / 'a'}"))
    longer = tree_search.train(compose(*TINY, "episodes=6", f"run_dir={tmp_path / 'a'}"))
    six = tree_search.train(compose(*TINY, "episodes=6", f"run_dir={tmp_path / 'b'}"))
    assert longer["returns"][:4] == first["returns"] and longer["returns"] == six["returns"]


@pytest.mark.parametrize("override, change", [
    ("planner.simulations=4", "planner.simulations: 3 -> 4"),
    ("episodes=3", "episodes: 4 -> 3 (may only grow)"),
    ("seed=1", "seed: 0 -> 1"),
])
def test_a_changed_config_is_refused_on_resume(tmp_path, override, change):
    request_stop_at(1)
    tree_search.train(compose(*TINY, f"run_dir={tmp_path}"))
    before = (tmp_path / "config.yaml").read_text()
    with pytest.raises(ResumeRefused, match=change.replace("(", r"\(").replace(")", r"\)")):
        tree_search.train(compose(*TINY, override, f"run_dir={tmp_path}"))
    assert (tmp_path / "config.yaml").read_text() == before and not (tmp_path / "run.lock").exists()


@pytest.mark.slow
def test_a_signalled_run_checkpoints_and_exits_with_the_interrupted_code(tmp_path):
    run_dir = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(CONF.parents[1]))
    proc = subprocess.Popen(
        [sys.executable, str(CONF.parent / "tree_search.py"), *TINY, "episodes=1000000", f"run_dir={run_dir}",
         f"hydra.run.dir={tmp_path / 'hydra'}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path,
    )
    try:
        wait_for((run_dir / "checkpoint.pt").exists, 600, "the first checkpoint")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=600)
    finally:
        proc.kill()
    assert proc.returncode == EXIT_INTERRUPTED, out
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "interrupted" and 1 <= metrics["episodes"] < 1000000
    assert load_checkpoint(run_dir / "checkpoint.pt")["returns"] == metrics["returns"]
    assert not (run_dir / LOCK_NAME).exists()


BATCHED = (*TINY, "planner.batch_episodes=2")


def test_batched_episodes_resume_from_the_last_finished_group(tmp_path):
    full = tree_search.train(compose(*BATCHED, f"run_dir={tmp_path / 'full'}"))
    D = 10
    possible = {round((D - i - 1) / D, 12) for i in range(D)} | {0.5}
    assert full["status"] == "completed" and len(full["returns"]) == 4
    assert {round(r, 12) for r in full["returns"]} <= possible and len(set(full["returns"])) > 1

    request_stop_at(1)  # acted on after the first group, which holds two episodes
    part = tree_search.train(compose(*BATCHED, f"run_dir={tmp_path / 'resumed'}"))
    assert part["status"] == "interrupted" and part["returns"] == full["returns"][:2]
    resumed = tree_search.train(compose(*BATCHED, f"run_dir={tmp_path / 'resumed'}"))
    assert (resumed["returns"], resumed["lengths"]) == (full["returns"], full["lengths"])
    assert _logs(tmp_path / "resumed") == _logs(tmp_path / "full")


def test_a_group_cut_short_by_fewer_episodes_is_played_again_in_full(tmp_path):
    # episodes=3 plays the groups {0, 1} and {2}; episodes=4 plays {0, 1} and {2, 3}: episode 2 is played again in
    # its full group, so the grown run's returns and logs are the four-episode run's
    tree_search.train(compose(*BATCHED, "episodes=3", f"run_dir={tmp_path / 'grown'}"))
    grown = tree_search.train(compose(*BATCHED, f"run_dir={tmp_path / 'grown'}"))
    four = tree_search.train(compose(*BATCHED, f"run_dir={tmp_path / 'four'}"))
    assert (grown["returns"], grown["lengths"]) == (four["returns"], four["lengths"])
    assert _logs(tmp_path / "grown") == _logs(tmp_path / "four")


def test_batch_episodes_may_not_change_on_resume(tmp_path):
    request_stop_at(2)
    tree_search.train(compose(*BATCHED, f"run_dir={tmp_path}"))
    with pytest.raises(ResumeRefused, match="planner.batch_episodes: 2 -> 3"):
        tree_search.train(compose(*TINY, "planner.batch_episodes=3", f"run_dir={tmp_path}"))


@pytest.mark.parametrize("overrides", [
    ("tree_search_preset=frozenlake", "task.map_name=4x4", "task.max_steps=6", "evaluator.rollout_steps=6"),
    ("task.name=minatar", "task.game=breakout", "task.sticky_action_prob=0.1", "planner.model=determinized", "task.max_steps=4",
     "evaluator.rollout_steps=3"),
], ids=["frozenlake", "minatar"])
def test_batched_episodes_run_on_frozenlake_and_minatar(tmp_path, overrides):
    metrics = tree_search.train(compose(*BATCHED, "episodes=3", *overrides, f"run_dir={tmp_path}"))
    assert metrics["status"] == "completed" and len(metrics["returns"]) == 3
    assert all(1 <= n <= int(overrides[-2].split("=")[1]) for n in metrics["lengths"])


@pytest.mark.parametrize("overrides, match", [
    (("planner.batch_episodes=0",), "planner.batch_episodes"),
    (("tree_search_preset=atari", "planner.model=determinized"),
     "planner.model='determinized' on task.name='atari': the determinized model of atari is not built"),
    (("planner.model=exact",), r"planner.model must be one of \['sampled', 'determinized', 'ensemble', 'oracle'\], got planner.model='exact'"),
])
def test_batched_episodes_refuse_what_they_cannot_play(tmp_path, overrides, match):
    with pytest.raises(ValueError, match=match):
        tree_search.train(compose(*BATCHED, *overrides, f"run_dir={tmp_path}"))
    assert not any(tmp_path.iterdir())


def test_a_run_directory_from_before_batch_episodes_resumes_as_one_at_a_time(tmp_path):
    full = tree_search.train(compose(*TINY, f"run_dir={tmp_path / 'full'}"))
    request_stop_at(2)
    tree_search.train(compose(*TINY, f"run_dir={tmp_path / 'old'}"))
    config = tmp_path / "old" / "config.yaml"
    config.write_text(config.read_text().replace("  batch_episodes: 1\n", ""))  # as written before the key existed
    assert "batch_episodes" not in config.read_text()
    resumed = tree_search.train(compose(*TINY, f"run_dir={tmp_path / 'old'}"))
    assert resumed["returns"] == full["returns"]


class _RecordingBar:
    """Stands for the tqdm bar: what a planning run counts, and in which unit."""

    made: list[_RecordingBar] = []

    def __init__(self, total, initial=0, enabled=True, desc="", unit=""):
        self.total, self.count, self.unit = total, initial, unit
        _RecordingBar.made.append(self)

    def update(self, n, **postfix):
        self.count += n

    def close(self):
        pass


@pytest.mark.parametrize("group", [1, 2])
def test_the_progress_bar_counts_episodes_and_the_plot_names_planner_episodes(tmp_path, monkeypatch, group):
    import matplotlib.axes

    from torchrl_reg.run import contract

    monkeypatch.setattr(contract, "ProgressBar", _RecordingBar)  # the bar of the run (Run.progress_bar)
    labels = []
    legend = matplotlib.axes.Axes.legend

    def recording_legend(ax, *args, **kwargs):
        labels.extend(ax.get_legend_handles_labels()[1])
        return legend(ax, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "legend", recording_legend)
    titles = []
    set_title = matplotlib.axes.Axes.set_title

    def recording_title(ax, label, *args, **kwargs):
        titles.append(label)
        return set_title(ax, label, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "set_title", recording_title)
    _RecordingBar.made.clear()
    metrics = tree_search.train(compose(*TINY, f"planner.batch_episodes={group}", f"run_dir={tmp_path}"))
    (bar,) = _RecordingBar.made
    assert (bar.total, bar.count, bar.unit) == (4, 4, "episodes") and metrics["episodes"] == 4
    assert "planner episode" in labels and not any("training" in label for label in labels)
    # 4 episodes, fewer than the moving mean's 10: the curve is their mean so far
    assert "mean of all episodes so far (4 in all, fewer than 10)" in labels
    # the figure and metrics.json name the model the searches planned in, and its futures
    assert titles == ["ments on dchain, sampled model"]
    assert (metrics["model"], metrics["futures"]) == ("sampled", 1)
    # A planner has no training episodes: its metrics hold the mean of its episodes, not a training return.
    assert metrics["mean_return"] == pytest.approx(sum(metrics["returns"]) / 4) and "final_return" not in metrics
    from tests.recipes.test_newcomer import documented_metrics_fields

    assert not set(metrics) - documented_metrics_fields(), sorted(set(metrics) - documented_metrics_fields())


def test_the_figure_names_the_model_and_its_futures():
    from omegaconf import OmegaConf

    from torchrl_reg.loops.planning import model_label

    def label(model, futures=1):
        return model_label(OmegaConf.create({"model": model, "futures": futures}))

    assert label("ensemble", 4) == "ensemble model, 4 futures"
    assert label("determinized") == "determinized model, 1 future"
    assert (label("sampled"), label("oracle")) == ("sampled model", "oracle model")


MINATAR = ("task.name=minatar", "task.game=breakout", "task.sticky_action_prob=0.1", "task.max_steps=12", "evaluator.rollout_steps=3",
           "planner.simulations=4", "logger.backend=none")


def test_batch_episodes_change_how_many_episodes_run_at_once_not_how_they_play(tmp_path):
    # MinAtar in the sampled model (fresh outcomes at every chance visit): K = 1 searches each episode with TreeSearch,
    # K = 4 the group with one BatchedTreeSearch with chance nodes; both record the diagnostics
    one = tree_search.train(compose(*TINY, *MINATAR, "episodes=4", f"run_dir={tmp_path / 'one'}"))
    four = tree_search.train(compose(*TINY, *MINATAR, "episodes=4", "planner.batch_episodes=4", f"run_dir={tmp_path / 'four'}"))
    assert one["model"] == four["model"] == "sampled"
    for run in (one, four):
        assert len(run["returns"]) == 4
        assert all(0.0 < share <= 1.0 for share in run["root_visit_share"])  # the diagnostics of every mode


@pytest.mark.slow
@pytest.mark.parametrize("model", ["sampled", "determinized"])
def test_one_model_gives_one_return_distribution_for_one_and_four_episodes_at_once(tmp_path, model):
    # K = 1 searches each episode with TreeSearch (sampled: in the env with its stream going on, chance nodes;
    # determinized: in a copy of its game with a fresh stream per move), K = 4 the group with one BatchedTreeSearch over
    # BatchedMinAtar roots (sampled: a working stream drawn anew at every step, chance nodes; determinized: fresh
    # streams per root): the same model, other draws. Statistical check (fixed seeds, so deterministic): the mean
    # returns of 24 episodes each, and their shares of episodes that score, differ by less than 3 standard errors of
    # their difference.
    runs = {}
    for k in (1, 4):
        runs[k] = tree_search.train(compose(
            *TINY, *MINATAR, "task.max_steps=40", f"planner.model={model}", "episodes=24", f"planner.batch_episodes={k}",
            f"run_dir={tmp_path / str(k)}"))
    a, b = (np.asarray(runs[k]["returns"]) for k in (1, 4))
    assert runs[1]["model"] == runs[4]["model"] == model
    for x, y in ((a, b), (a > 0, b > 0)):  # the mean return, and the share of episodes that score at all
        x, y = x.astype(float), y.astype(float)
        spread = math.sqrt(x.var(ddof=1) / x.size + y.var(ddof=1) / y.size)
        assert 0 < spread and abs(x.mean() - y.mean()) <= 3 * spread, (a, b)


@pytest.mark.parametrize("task, batch, model, meant", [
    ("minatar", 1, "sampled", None),
    ("minatar", 1, "determinized", "sampled"),
    ("minatar", 20, "determinized", None),
    ("minatar", 20, "sampled", "determinized"),
    ("dchain", 2, "oracle", None),  # a deterministic task: every model is the task itself
])
def test_a_run_directory_from_before_the_model_knob_resumes_in_the_model_it_played(task, batch, model, meant):
    # before planner.model a MinAtar episode alone searched the sampled model and a batch the determinized one
    stored = {"task": {"name": task}, "planner": {"batch_episodes": batch}}
    new = {"task": {"name": task}, "planner": {"batch_episodes": batch, "model": model}}
    assert resume_changes(stored, new, tree_search.TreeSearchConfig) == ([] if meant is None else [f"planner.model: {meant!r} -> {model!r}"])


def test_the_ensemble_plays_the_same_episodes_as_four_at_once_in_the_combined_roots_diagnostics(tmp_path):
    # K = 1 searches each future of an episode with its TreeSearch, K = 4 the group's futures as rows of one batched
    # search: both record every diagnostic of the combined root, whose visits are the move's total (planner.simulations)
    runs = {k: tree_search.train(compose(*TINY, *MINATAR, "planner.model=ensemble", "planner.futures=2", "planner.simulations=4",
                                         f"planner.batch_episodes={k}", f"run_dir={tmp_path / str(k)}")) for k in (1, 4)}
    for run in runs.values():
        assert run["model"] == "ensemble" and run["futures"] == 2 and run["episodes"] == 4
        # 4 simulations over at most 6 root actions: the action played holds at least one of the 4 combined visits
        assert all(0.25 <= share <= 1.0 for share in run["root_visit_share"])


@pytest.mark.slow
def test_the_ensemble_gives_one_return_distribution_for_one_and_four_episodes_at_once(tmp_path):
    # the determinized model's check below, for 2 futures of 2 simulations per move: K = 1 plays each future with the
    # episode's TreeSearch in a copy of its game with a fresh stream, K = 4 the group's 8 futures as rows of one
    # BatchedTreeSearch over BatchedMinAtar roots with fresh streams: the same model, other draws
    runs = {}
    for k in (1, 4):
        runs[k] = tree_search.train(compose(
            *TINY, *MINATAR, "task.max_steps=40", "planner.model=ensemble", "planner.futures=2", "episodes=24",
            f"planner.batch_episodes={k}", f"run_dir={tmp_path / str(k)}"))
    a, b = (np.asarray(runs[k]["returns"]) for k in (1, 4))
    assert runs[1]["model"] == runs[4]["model"] == "ensemble"
    for x, y in ((a, b), (a > 0, b > 0)):
        x, y = x.astype(float), y.astype(float)
        spread = math.sqrt(x.var(ddof=1) / x.size + y.var(ddof=1) / y.size)
        assert 0 < spread and abs(x.mean() - y.mean()) <= 3 * spread, (a, b)


def test_a_run_directory_from_before_the_futures_knob_resumes_with_one_future():
    stored = {"task": {"name": "minatar"}, "planner": {"batch_episodes": 4, "model": "determinized"}}
    new = {"task": {"name": "minatar"}, "planner": {"batch_episodes": 4, "model": "determinized", "futures": 1}}
    assert resume_changes(stored, new, tree_search.TreeSearchConfig) == []
    assert resume_changes(stored, new | {"planner": new["planner"] | {"model": "ensemble", "futures": 2}},
                          tree_search.TreeSearchConfig) == [
        "planner.futures: 1 -> 2", "planner.model: 'determinized' -> 'ensemble'"]


def test_a_run_directory_from_before_power_uct_resumes_with_its_power_unset():
    stored = {"task": {"name": "dchain"}, "planner": {"algorithm": "uct", "c": 1.0}}
    new = {"task": {"name": "dchain"}, "planner": {"algorithm": "uct", "c": 1.0, "p": None}}
    assert resume_changes(stored, new, tree_search.TreeSearchConfig) == []
    assert resume_changes(stored, new | {"planner": new["planner"] | {"algorithm": "power_uct", "p": 2.0}},
                          tree_search.TreeSearchConfig) == ["planner.algorithm: 'uct' -> 'power_uct'", "planner.p: None -> 2.0"]


def _stop_before_move(monkeypatch, move: int) -> None:
    """A stop requested between moves ``move - 1`` and ``move`` of the first group played (as a signal would be)."""
    from torchrl_reg.loops import planning

    asked = iter(range(10**6))
    monkeypatch.setattr(planning, "stop_requested", lambda frames=None: next(asked) == move)


@pytest.mark.parametrize("overrides", [
    ("planner.batch_episodes=2",),  # D-chain, one BatchedTreeSearch per group
    ("planner.batch_episodes=1",),  # D-chain, one TreeSearch per episode
    ("tree_search_preset=frozenlake", "task.map_name=4x4", "task.max_steps=8", "evaluator.rollout_steps=6", "planner.batch_episodes=2"),
    (*MINATAR[:-1], "planner.batch_episodes=2"),  # chance nodes: the search's and the envs' streams go on
    (*MINATAR[:-1], "planner.batch_episodes=1"),  # the sampled model in the env itself: its stream is the search's too
    (*MINATAR[:-1], "planner.model=determinized", "planner.batch_episodes=3"),
    (*MINATAR[:-1], "planner.model=ensemble", "planner.futures=2", "planner.batch_episodes=1"),
    ("tree_search_preset=atari", "task.max_steps=6", "evaluator.rollout_steps=3", "planner.batch_episodes=2"),  # TreeSearch each
], ids=["dchain-batched", "dchain-one", "frozenlake", "minatar-sampled-batched", "minatar-sampled-one", "minatar-determinized",
        "minatar-ensemble-one", "atari"])
def test_a_stop_between_two_moves_saves_the_group_and_the_resume_goes_on_exactly(tmp_path, monkeypatch, overrides):
    config = (*TINY, "episodes=3", *overrides)
    full = tree_search.train(compose(*config, f"run_dir={tmp_path / 'full'}"))
    batch = int(next(o for o in overrides if o.startswith("planner.batch_episodes=")).split("=")[1])
    assert max(full["lengths"][:batch]) >= 2  # the first group is still in play after its first move
    with monkeypatch.context() as patch:
        _stop_before_move(patch, 1)  # one move into the first group
        part = tree_search.train(compose(*config, f"run_dir={tmp_path / 'resumed'}"))
    assert part["status"] == "interrupted" and part["returns"] == []
    saved = load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")["in_progress"]
    assert saved["move"] == 1 and saved["steps"] == [1] * batch and saved["episodes"] == [0, batch]
    running = json.loads((tmp_path / "resumed" / "metrics.json").read_text())  # what a user watching the run reads
    assert running["group_in_progress"] == {"episodes": [0, batch], "move": 1}
    resumed = tree_search.train(compose(*config, f"run_dir={tmp_path / 'resumed'}"))
    assert resumed["status"] == "completed"
    assert (resumed["returns"], resumed["lengths"]) == (full["returns"], full["lengths"])
    for key in ("greedy_agreement", "q_gap", "root_visit_share"):
        assert resumed[key] == full[key]
    assert "in_progress" not in load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")


@pytest.mark.parametrize("overrides", [
    ("planner.batch_episodes=2",),
    (*MINATAR[:-1], "planner.batch_episodes=2"),
    (*MINATAR[:-1], "planner.batch_episodes=1"),
], ids=["dchain-batched", "minatar-sampled-batched", "minatar-sampled-one"])
def test_the_group_in_progress_is_checkpointed_every_interval_and_a_killed_run_goes_on_from_there(tmp_path, monkeypatch, overrides):
    from torchrl_reg.run import contract

    config = (*TINY, "episodes=3", *overrides)
    full = tree_search.train(compose(*config, "checkpoint.interval_s=0", f"run_dir={tmp_path / 'full'}"))
    killed = []  # (move, the run directory as a SIGKILL right after that checkpoint would leave it)
    write = contract.save_checkpoint

    def write_and_copy(path, state):
        write(path, state)
        if "in_progress" in state:
            killed.append((state["in_progress"], shutil.copytree(path.parent, tmp_path / f"killed{len(killed)}")))

    with monkeypatch.context() as patch:
        patch.setattr(contract, "save_checkpoint", write_and_copy)
        saving = tree_search.train(compose(*config, "checkpoint.interval_s=1e-9", f"run_dir={tmp_path / 'saving'}"))
    for key in ("returns", "lengths", "greedy_agreement", "q_gap", "root_visit_share"):
        assert saving[key] == full[key], key  # the checkpoints change nothing the run plays
    # a checkpoint between every two moves of a group, from its second move on (1e-9 s is always due)
    batch = int(overrides[-1].split("=")[1])
    first = [state["move"] for state, _ in killed if state["episodes"] == [0, batch]]
    assert first == list(range(1, max(full["lengths"][:batch]))) and first
    state, run_dir = killed[len(killed) // 2]
    assert load_checkpoint(run_dir / "checkpoint.pt")["in_progress"]["move"] == state["move"] > 0
    from torchrl_reg.loops import planning

    play, went_on_from = planning.play_episodes, []

    def playing(cfg, episodes, *args, resume=None, **kwargs):
        went_on_from.append(None if resume is None else (list(episodes), resume["move"]))
        return play(cfg, episodes, *args, resume=resume, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(planning, "play_episodes", playing)
        resumed = tree_search.train(compose(*config, "checkpoint.interval_s=0", f"run_dir={run_dir}"))  # interval_s may change
    assert resumed["status"] == "completed"
    assert went_on_from[0] == (list(range(*state["episodes"])), state["move"])  # from the move saved, not the group's start
    for key in ("returns", "lengths", "greedy_agreement", "q_gap", "root_visit_share"):
        assert resumed[key] == full[key], key


def test_checkpoint_interval_s_is_refused_below_0():
    with pytest.raises(ValueError, match=r"checkpoint.interval_s"):
        tree_search.validate(compose(*TINY, "checkpoint.interval_s=-1"))


def test_a_group_whose_env_has_no_plain_state_is_not_saved_and_says_so(caplog):
    from torchrl_reg.loops.planning import GroupProgress

    class Opaque:  # a simulator without plain_state(): its group is played again from its start after a stop
        num_actions = 2

    with caplog.at_level("WARNING", logger="torchrl_reg.recipes"):
        assert GroupProgress(2).plain_state(range(4, 6), [Opaque(), Opaque()], []) is None
    assert "the episodes 4-5 in progress cannot be saved" in caplog.text and "plain_state" in caplog.text
