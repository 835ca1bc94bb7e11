"""python -m benchmarks.planning minatar-fair and benchmarks/minatar_networks.yaml: the networks' sweep spec, and the tune and
eval stages end to end on tiny M-DQN networks trained through that spec, their JSONs checked against the runs'
own records and against paired differences recomputed from the stored episode returns."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from tests.recipes.mdqn_testlib import TINY_MINATAR_MDQN
from tests.slurm.sweep_testlib import REPO

from benchmarks import planning
from benchmarks.planning import fair, minatar_runs
from benchmarks.planning import networks as network_study
from torchrl_reg.sweep import SweepTask, create_sweep, plan_tasks
from torchrl_reg.sweep.spec import load_sweep_spec

SPEC = REPO / "benchmarks" / "minatar_networks.yaml"
# a tiny grid: two points for MENTS and UCT, one for BTS and DENTS
GRID = {"ments": {"tau": [0.1, 1.0]}, "bts": {"alpha": [0.1]}, "dents": {"beta_0": [1.0]}, "uct": {"c": [1.0, 4.0]}}
# SpaceInvaders pays within 15 moves (a shot alien), so the returns and their differences are not all 0
CHEAP = ["--max-steps", "15", "--reps", "200"]


def _config_without_run_dir(task) -> dict:
    return {k: v for k, v in task.config.items() if k != "run_dir"}


def test_the_spec_trains_learning_minatars_m_dqn_on_seeds_0_to_3(tmp_path):
    (method,) = load_sweep_spec(SPEC)
    tasks, swept = plan_tasks(method.recipe, method.overrides, tmp_path / "n")
    assert sorted(swept) == ["env.name", "seed"]
    assert sorted((t.config["env"]["name"], t.config["seed"]) for t in tasks) == sorted(
        (g, s) for g in ("Breakout", "SpaceInvaders", "Asterix") for s in range(4)
    )
    # the protocol: every task's config is the learning_minatar.yaml M-DQN task of the same game and seed (seeds 0-2)
    learning = next(m for m in load_sweep_spec(REPO / "benchmarks" / "learning_minatar.yaml") if m.name == "m_dqn")
    reference = {(t.config["env"]["name"], t.config["seed"]): t for t in plan_tasks(learning.recipe, learning.overrides, tmp_path / "l")[0]}
    for task in tasks:
        if task.config["seed"] < 3:
            assert _config_without_run_dir(task) == _config_without_run_dir(reference[task.config["env"]["name"], task.config["seed"]])
    assert tasks[0].config["loss"]["name"] == "m_dqn" and tasks[0].config["collector"]["total_frames"] == 1_000_000


@pytest.fixture(scope="module")
def networks(tmp_path_factory) -> Path:
    """The spec cut to SpaceInvaders, seeds 0, 1 (evaluation) and 3 (held out), a few hundred frames each, run in this process."""
    top = tmp_path_factory.mktemp("networks")
    (method,) = load_sweep_spec(SPEC, ["env.name=SpaceInvaders", "seed=0,1,3", *TINY_MINATAR_MDQN])
    sweep = create_sweep(method.recipe.path, method.overrides, top / method.name, "test", method=method.label)
    for task in sweep["tasks"]:
        assert SweepTask(str(top / method.name), task["index"])()["status"] == "completed"
    return top


def _run(tmp_path: Path, networks: Path, *args: str) -> dict:
    stage = args[args.index("--stage") + 1]
    planning.main(["minatar-fair", "--game", "SpaceInvaders", "--networks", str(networks), "--out", str(tmp_path / "out"),
                   "--run-dir", str(tmp_path / "runs"), *CHEAP, *args])
    name = "minatar_fair_tune_spaceinvaders.json" if stage == "tune" else "minatar_fair_spaceinvaders.json"
    return json.loads((tmp_path / "out" / name).read_text())


def _metrics(run_dir: str) -> dict:
    return json.loads((Path(run_dir) / "metrics.json").read_text())


@pytest.mark.slow
def test_tune_then_eval_end_to_end(tmp_path, networks):
    # a grid value the recipe refuses: refused before the first episode (the greedy run comes first)
    with pytest.raises(SystemExit, match=r"ments@4/tau=0 on the seed-3 network: .*planner.tau"):
        _run(tmp_path, networks, "--stage", "tune", "--simulations", "4", "--algorithms", "ments", "--grid", '{"ments": {"tau": [1, 0]}}')
    assert not (tmp_path / "runs").exists()
    tune = _run(tmp_path, networks, "--stage", "tune", "--simulations", "4", "--episodes", "2", "--grid", json.dumps(GRID))
    # the held-out network, identified by its file
    net = tune["network"]
    assert net["seed"] == 3 and "seed=3" in net["checkpoint"]
    assert net["sha256"] == hashlib.sha256(Path(net["checkpoint"]).read_bytes()).hexdigest()
    assert net["training"]["frames"] == 160 and "seed=3" in " ".join(net["overrides"])
    assert tune["simulations"] == 4 and tune["episodes"] == 2 and tune["seed"] == 1000
    # the shared settings, as the minatar preset sets them
    assert tune["protocol"]["task"]["sticky_action_prob"] == 0.1 and tune["protocol"]["task"]["max_steps"] == 15
    assert tune["protocol"]["evaluator"] == {"kind": "q_network", "rollout_steps": 100, "prior_tau": 0.1, "value": "soft", "init": "q"}
    assert tune["protocol"]["planner"]["gamma"] == 0.99
    assert "minatar-fair --game SpaceInvaders" in tune["command"] and tune["code_commit"]
    assert tune["extend"] == 2
    for algorithm, knobs in GRID.items():
        rows = tune["scores"][algorithm]
        (key,) = knobs
        grid_rows = [row for row in rows if "extension" not in row]
        assert rows[:len(grid_rows)] == grid_rows and [row["knobs"][key] for row in grid_rows] == knobs[key]
        for row in rows:
            assert len(row["episode_returns"]) == 2
            assert row["mean_return"] == pytest.approx(np.mean(np.asarray(row["episode_returns"], dtype=np.float64)), abs=1e-12)
        # chosen: the highest mean over the grid and the extensions, the first of equal ones
        best = max(row["mean_return"] for row in rows)
        assert tune["chosen"][algorithm] == next(row["knobs"] for row in rows if row["mean_return"] == best)
        # extensions: a knob the grid fixes has none; one tuned over two values gets, per round while the best point
        # is at the smallest (largest) value tried, the next value of the geometric progression of the two outermost
        extra, tried = rows[len(grid_rows):], list(knobs[key])
        assert [row["extension"]["round"] for row in extra] == list(range(1, len(extra) + 1))
        if len(knobs[key]) < 2:
            assert not extra and tune["at_edge"][algorithm] == []
            continue
        for row in extra:
            lead = max(rows[:rows.index(row)], key=lambda r: r["mean_return"])["knobs"][key]  # first of equal means
            seen = sorted(set(tried))
            assert lead in (seen[0], seen[-1])
            expected = seen[0] * seen[0] / seen[1] if lead == seen[0] else seen[-1] * seen[-1] / seen[-2]
            assert row["knobs"][key] == pytest.approx(expected, rel=1e-11)
            tried.append(row["knobs"][key])
        chosen = tune["chosen"][algorithm][key]
        at_edge = chosen in (min(tried), max(tried))
        assert tune["at_edge"][algorithm] == ([key] if at_edge else [])
        assert len(extra) == 2 or not at_edge  # the rounds stop early only once the best point is inside
    # two values are both edges: MENTS's tau and UCT's c were extended at least once
    assert all(any("extension" in row for row in tune["scores"][a]) for a in ("ments", "uct"))
    # the knobs an algorithm does not tune keep their defaults (KNOB_DEFAULTS)
    assert tune["scores"]["dents"][0]["knobs"] == {"alpha": 1.0, "beta_0": 1.0, "eps": 0.1}

    # the tuned network is refused for the evaluation
    with pytest.raises(SystemExit, match=r"holds the network the knobs were tuned on \(seed 3\)"):
        _run(tmp_path, networks, "--stage", "eval", "--network-seeds", "0,3")

    args = ("--stage", "eval", "--network-seeds", "0,1", "--simulations", "3,5", "--episodes", "3")
    result = _run(tmp_path, networks, *args)
    labels = ["greedy"] + [f"{a}@{n}" for n in (3, 5) for a in ("ments", "bts", "dents", "uct")]
    assert result["methods"] == labels and [n["seed"] for n in result["networks"]] == [0, 1]
    assert result["tuning"]["chosen"] == tune["chosen"] and result["tuning"]["network_seed"] == 3
    assert result["protocol"] == tune["protocol"]
    for label in labels:
        algorithm, _, budget = label.partition("@")
        assert result["knobs"][label] == ({} if algorithm == "greedy" else tune["chosen"][algorithm])
        for index, run_dir in enumerate(result["run_dirs"][label]):
            # the JSON holds what the planning loop recorded, run through the recipe with the protocol's config
            metrics = _metrics(run_dir)
            assert result["episode_returns"][label][index] == metrics["returns"]
            assert result["episode_lengths"][label][index] == metrics["lengths"] and max(metrics["lengths"]) <= 15
            config = (Path(run_dir) / "config.yaml").read_text()
            assert "seed: 100\n" in config and "episodes: 3\n" in config
            assert f"batch_episodes: {1 if algorithm == 'greedy' else 3}\n" in config
            if budget:
                assert f"simulations: {budget}\n" in config
            assert result["networks"][index]["checkpoint"] in config
            # the search diagnostics: the mean of the run's per-episode values (none for the greedy network)
            for key in ("greedy_agreement", "q_gap", "root_visit_share"):
                expected = None if algorithm == "greedy" else pytest.approx(float(np.mean(metrics[key])), abs=1e-12)
                assert result["diagnostics"][label][key][index] == expected
    # every paired difference and its per-network parts, recomputed from the stored episode returns in float64
    episodes = {k: np.asarray(v, dtype=np.float64) for k, v in result["episode_returns"].items()}
    expected = [f"{a}@{n} - greedy" for n in (3, 5) for a in ("ments", "bts", "dents", "uct")]
    expected += [f"{a}@{n} - {b}@{n}" for n in (3, 5) for a, b in
                 [("ments", "bts"), ("ments", "dents"), ("ments", "uct"), ("bts", "dents"), ("bts", "uct"), ("dents", "uct")]]
    assert sorted(result["comparisons"]) == sorted(expected)
    assert any(c["mean"] != 0 for c in result["comparisons"].values())  # the check below is not about zeros only
    for name, comparison in result["comparisons"].items():
        a, b = name.split(" - ")
        diff = episodes[a] - episodes[b]  # [network, episode]
        assert comparison["mean"] == pytest.approx(diff.mean(), abs=1e-12)
        assert comparison["pairs"] == 6
        low, high = comparison["ci95"]
        assert low <= comparison["mean"] + 1e-12 and comparison["mean"] <= high + 1e-12
        assert comparison["verdict"] == ("above" if low > 0 else "below" if high < 0 else "not resolved")
        for part, row in zip(comparison["per_network"], diff):
            assert part["mean"] == pytest.approx(row.mean(), abs=1e-12)
            assert part["ci95"][0] <= part["mean"] + 1e-12 and part["mean"] <= part["ci95"][1] + 1e-12
    assert result["returns"]["greedy"] == pytest.approx(episodes["greedy"].mean(axis=1).tolist(), abs=1e-12)
    assert result["ments_vs_uct"] == {n: result["comparisons"][f"ments@{n} - uct@{n}"]["verdict"] for n in ("3", "5")}
    assert (tmp_path / "out" / "minatar_fair.png").stat().st_size > 0

    # both stages played again in parts (the same runs, resumed) and merged: the whole stage's JSON
    parts = tmp_path / "parts"
    tune_args = ("--stage", "tune", "--simulations", "4", "--episodes", "2", "--grid", json.dumps(GRID))
    tuned = str(tmp_path / "out" / "minatar_fair_tune_spaceinvaders.json")
    pieces = {"tune_a": (*tune_args, "--algorithms", "uct,ments"), "tune_b": (*tune_args, "--algorithms", "bts,dents"),
              "eval_0": (*args, "--network-seeds", "0", "--tuned", tuned),
              "eval_1a": (*args, "--network-seeds", "1", "--algorithms", "ments,uct", "--tuned", tuned),
              "eval_1b": (*args, "--network-seeds", "1", "--algorithms", "bts,dents", "--tuned", tuned),
              # network 1 again in two ranges of episodes: env seeds 100 and 101, then 102 to 104
              "eval_1_lo": (*args[:-2], "--episodes", "2", "--network-seeds", "1", "--tuned", tuned),
              "eval_1_hi": (*args[:-2], "--episodes", "3", "--seed", "102", "--network-seeds", "1", "--tuned", tuned)}
    files = {}
    for name, extra in pieces.items():
        # a range of episodes is other runs than the whole stage's: run directories of its own
        runs = tmp_path / ("runs" if "_lo" not in name and "_hi" not in name else f"runs{name[-3:]}")
        planning.main(["minatar-fair", "--game", "SpaceInvaders", "--networks", str(networks), "--out", str(parts / name),
                       "--run-dir", str(runs), *CHEAP, *extra])
        (files[name],) = (parts / name).glob("minatar_fair_*.json")
    planning.main(["minatar-fair-merge", str(files["tune_a"]), str(files["tune_b"]), "--out", str(parts / "merged")])
    merged = json.loads((parts / "merged" / "minatar_fair_tune_spaceinvaders.json").read_text())
    for key in ("grid", "chosen", "at_edge", "greedy", "network", "protocol", "episodes", "seed", "simulations"):
        assert merged[key] == tune[key], key

    def untimed(scores):  # a resumed run's wall time adds its moments of resuming
        return {a: [{k: v for k, v in row.items() if k != "wall_time_s"} for row in rows] for a, rows in scores.items()}

    assert untimed(merged["scores"]) == untimed(tune["scores"])
    assert list(merged["scores"]) == ["ments", "bts", "dents", "uct"]  # the algorithms' order, whatever the parts'
    assert [p["file"] for p in merged["merged_from"]] == [str(files["tune_a"]), str(files["tune_b"])]
    planning.main(["minatar-fair-merge", str(files["eval_1b"]), str(files["eval_0"]), str(files["eval_1a"]), "--reps", "200",
                   "--out", str(parts / "merged")])
    merged = json.loads((parts / "merged" / "minatar_fair_spaceinvaders.json").read_text())
    for key in ("methods", "knobs", "networks", "episode_returns", "episode_lengths", "returns", "run_dirs", "diagnostics",
                "comparisons", "ments_vs_uct", "tuning", "protocol", "simulations"):
        assert merged[key] == result[key], key
    # network 1 from its two ranges of episodes: each cell the ranges' episodes in the order of their seeds, its
    # diagnostics their means weighted by episodes, the greedy network's episodes those of the whole stage and one more
    planning.main(["minatar-fair-merge", str(files["eval_1_hi"]), str(files["eval_1_lo"]), "--reps", "200",
                   "--out", str(parts / "ranges")])
    ranged = json.loads((parts / "ranges" / "minatar_fair_spaceinvaders.json").read_text())
    lo, hi = (json.loads(files[name].read_text()) for name in ("eval_1_lo", "eval_1_hi"))
    assert (ranged["seed"], ranged["episodes"], ranged["methods"]) == (100, 5, result["methods"])
    assert [n["seed"] for n in ranged["networks"]] == [1]
    assert [(p["seed"], p["episodes"]) for p in ranged["merged_from"]] == [(102, 3), (100, 2)]
    for label in labels:
        returns = lo["episode_returns"][label][0] + hi["episode_returns"][label][0]
        assert ranged["episode_returns"][label] == [returns]
        assert ranged["episode_lengths"][label] == [lo["episode_lengths"][label][0] + hi["episode_lengths"][label][0]]
        assert ranged["returns"][label] == [pytest.approx(np.mean(returns), abs=1e-12)]
        assert ranged["run_dirs"][label] == [[hi["run_dirs"][label][0], lo["run_dirs"][label][0]]]  # the parts' order
        for key in ("greedy_agreement", "q_gap", "root_visit_share"):
            if label == "greedy":  # deterministic: the whole stage's episodes; no diagnostics
                assert returns[:3] == result["episode_returns"][label][1]
                assert ranged["diagnostics"][label][key] == [None]
                continue
            expected = (2 * lo["diagnostics"][label][key][0] + 3 * hi["diagnostics"][label][key][0]) / 5
            assert ranged["diagnostics"][label][key] == [pytest.approx(expected, abs=1e-12)]
    diff = np.asarray(ranged["episode_returns"]["ments@3"]) - np.asarray(ranged["episode_returns"]["uct@3"])
    assert ranged["comparisons"]["ments@3 - uct@3"]["mean"] == pytest.approx(diff.mean(), abs=1e-12)
    # refused: an episode of a search in two ranges, a gap between ranges, cells of other episodes
    with pytest.raises(SystemExit, match=r"ments@3 on the seed-1 network is in .* with other episodes \(env seed 100\)"):
        planning.main(["minatar-fair-merge", str(files["eval_1a"]), str(files["eval_1b"]), str(files["eval_1_lo"]), "--out", str(parts / "x")])
    (parts / "gap.json").write_text(json.dumps(hi | {"seed": 103}))
    with pytest.raises(SystemExit, match=r"greedy on the seed-1 network has no episode of env seed 102 between its ranges"):
        planning.main(["minatar-fair-merge", str(files["eval_1_lo"]), str(parts / "gap.json"), "--out", str(parts / "x")])
    with pytest.raises(SystemExit, match=r"greedy on the seed-1 network has the episodes of seeds 100..104, greedy on the "
                                         r"seed-0 network those of seeds 100..102: every cell must hold the same episodes"):
        planning.main(["minatar-fair-merge", str(files["eval_0"]), str(files["eval_1_lo"]), str(files["eval_1_hi"]), "--out", str(parts / "x")])
    # refused: a cell twice with other episodes, a missing cell, another protocol
    changed = json.loads(files["eval_1a"].read_text())
    changed["episode_returns"]["ments@3"][0][0] += 1
    (parts / "changed.json").write_text(json.dumps(changed))
    with pytest.raises(SystemExit, match=r"ments@3 on the seed-1 network is in .* with other episodes"):
        planning.main(["minatar-fair-merge", str(files["eval_0"]), str(files["eval_1a"]), str(parts / "changed.json"), "--out", str(parts / "x")])
    with pytest.raises(SystemExit, match=r"missing bts@3 on seed 1, dents@3 on seed 1"):
        planning.main(["minatar-fair-merge", str(files["eval_0"]), str(files["eval_1a"]), "--out", str(parts / "x")])
    other = json.loads(files["eval_1b"].read_text()) | {"max_steps": 16}
    (parts / "other.json").write_text(json.dumps(other))
    with pytest.raises(SystemExit, match=r"differ in 'max_steps': 16 against 15"):
        planning.main(["minatar-fair-merge", str(files["eval_0"]), str(parts / "other.json"), "--out", str(parts / "x")])
    (parts / "other.json").write_text(json.dumps(other | {"max_steps": 15, "episodes": 4}))
    with pytest.raises(SystemExit, match=r"other.json: greedy on the seed-1 network has 3 episodes, the part's 'episodes' is 4"):
        planning.main(["minatar-fair-merge", str(files["eval_0"]), str(parts / "other.json"), "--out", str(parts / "x")])
    with pytest.raises(SystemExit, match=r"uct is tuned in both"):
        planning.main(["minatar-fair-merge", str(files["tune_a"]), str(files["tune_a"]), "--out", str(parts / "x")])
    assert not (parts / "x").exists()

    # the same searches with the oracle model, paired against the evaluation's episodes
    from torchrl_reg.planning import BatchedMinAtar

    roots = BatchedMinAtar.roots
    evaluation = str(tmp_path / "out" / "minatar_fair_spaceinvaders.json")
    with pytest.raises(SystemExit, match=r"has no ments@4, bts@4, dents@4, uct@4 \(it has greedy, ments@3"):
        planning.main(["minatar-oracle", "--eval", evaluation, "--simulations", "4", "--out", str(tmp_path / "oracle")])
    planning.main(["minatar-oracle", "--eval", evaluation, "--simulations", "3", "--algorithms", "ments,uct", "--reps", "200",
                   "--out", str(tmp_path / "oracle"), "--run-dir", str(tmp_path / "runs")])
    assert BatchedMinAtar.roots is roots  # the oracle does not outlive the command
    oracle = json.loads((tmp_path / "oracle" / "minatar_oracle_spaceinvaders.json").read_text())
    assert oracle["oracle_check"]["obs_differs"] == {"10": 0.0}
    assert oracle["knobs"] == {"ments@3": tune["chosen"]["ments"], "uct@3": tune["chosen"]["uct"]}
    mine = {label: np.asarray(oracle["episode_returns"][label], dtype=np.float64) for label in ("ments@3", "uct@3")}
    assert mine["uct@3"].shape == (2, 3)  # the evaluation's networks and episodes
    expected = {f"oracle {label} - {other}": mine[label] - episodes[other] for label in mine for other in (label, "greedy")}
    expected["oracle ments@3 - oracle uct@3"] = mine["ments@3"] - mine["uct@3"]
    assert set(oracle["comparisons"]) == set(expected)
    for name, differences in expected.items():
        comparison = oracle["comparisons"][name]
        assert comparison["mean"] == pytest.approx(differences.mean(), abs=1e-12) and comparison["pairs"] == 6, name


@pytest.mark.slow
def test_exported_networks_are_the_runs_networks(tmp_path, networks):
    import shutil

    import torch

    from recipes import tree_search
    from torchrl_reg.configs import compose_config
    from torchrl_reg.loops.planning import load_q_network
    from torchrl_reg.planning import make_task
    from torchrl_reg.run import load_checkpoint

    out = tmp_path / "export"
    planning.main(["export-networks", "--networks", str(networks), "--out", str(out)])
    assert sorted(p.name for p in out.iterdir()) == ["SpaceInvaders_seed0", "SpaceInvaders_seed1", "SpaceInvaders_seed3"]
    runs = {n["seed"]: n for n in network_study.find_networks([str(networks)], "SpaceInvaders", [0, 1, 3])}
    exported = {n["seed"]: n for n in network_study.find_networks([str(out)], "SpaceInvaders", [0, 1, 3])}
    task = compose_config(Path(tree_search.__file__).parent / "conf", "tree_search",
                          ["tree_search_preset=minatar", "task.game=SpaceInvaders"]).task
    sim = make_task(task, 0)[0]
    obs = torch.as_tensor(sim.observation()).unsqueeze(0)
    for seed, run in runs.items():
        export = exported[seed]
        # the commit-sized file holds the policy alone, as the run's checkpoint has it
        state = load_checkpoint(export["checkpoint"])
        assert list(state) == ["policy"]
        original = load_checkpoint(run["checkpoint"])["policy"]
        assert state["policy"].keys() == original.keys() and all(torch.equal(state["policy"][k], original[k]) for k in original)
        assert Path(export["checkpoint"]).stat().st_size < Path(run["checkpoint"]).stat().st_size
        # the searches' leaf network: the same Q-values from either directory
        q_run = load_q_network(run["checkpoint"], sim, "SpaceInvaders")(obs.float())
        q_export = load_q_network(export["checkpoint"], sim, "SpaceInvaders")(obs.float())
        assert torch.equal(q_run, q_export)
        # what minatar-fair records of the network: the training run's command, overrides and metrics, and the source file
        assert export["overrides"] == run["overrides"] and f"seed={seed}" in " ".join(export["overrides"])
        assert export["command"] == run["command"] and export["training"] == run["training"]
        assert export["exported_from"] == {"run_dir": str(Path(run["checkpoint"]).parent), "checkpoint_sha256": run["sha256"]}
    # again: the exports are kept as they are
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    planning.main(["export-networks", "--networks", str(networks), "--out", str(out)])
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    # an export of another checkpoint in the way: refused, and nothing written (not even the other seeds')
    other = tmp_path / "other"
    shutil.copytree(out / "SpaceInvaders_seed1", other / "SpaceInvaders_seed1")
    source = json.loads((other / "SpaceInvaders_seed1" / "source.json").read_text()) | {"checkpoint_sha256": "0" * 64}
    (other / "SpaceInvaders_seed1" / "source.json").write_text(json.dumps(source))
    with pytest.raises(SystemExit, match=r"SpaceInvaders_seed1 holds the network of another checkpoint"):
        planning.main(["export-networks", "--networks", str(networks), "--out", str(other)])
    assert sorted(p.name for p in other.iterdir()) == ["SpaceInvaders_seed1"]
    # a run that did not complete: refused by name before anything is written
    stopped = tmp_path / "stopped"
    shutil.copytree(Path(runs[0]["checkpoint"]).parent, stopped)
    metrics = json.loads((stopped / "metrics.json").read_text()) | {"status": "stopped"}
    (stopped / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(SystemExit, match=rf"{stopped} is 'stopped', not a completed run"):
        planning.main(["export-networks", "--networks", str(stopped), "--out", str(tmp_path / "none")])
    assert not (tmp_path / "none").exists()


def test_edge_extensions_step_one_geometric_step_past_the_best_points_edges():
    grid = {"tau": [0.01, 0.1, 1.0], "eps": [0.1, 1.0]}
    tried = [{"tau": t, "eps": e} for t in grid["tau"] for e in grid["eps"]]
    # inside on tau, at eps's smallest value: eps 0.1 * 0.1 / 1 = 0.01, tau kept
    ((point, why),) = fair._edge_extensions(grid, tried, {"tau": 0.1, "eps": 0.1})
    assert point == {"tau": 0.1, "eps": 0.01} and "eps=0.1" in why and "smallest" in why  # rounded: not 0.010000000000000002
    assert fair._edges(grid, tried, {"tau": 0.1, "eps": 0.1}) == ["eps"]
    # at both knobs' largest values: one point per knob, 1 * 1 / 0.1 = 10
    points = [p for p, _ in fair._edge_extensions(grid, tried, {"tau": 1.0, "eps": 1.0})]
    assert points == [{"tau": pytest.approx(10.0), "eps": 1.0}, {"tau": 1.0, "eps": pytest.approx(10.0)}]
    # UCT's c: 0.5 * 0.5 / sqrt(2) = sqrt(2) / 8
    uct = {"c": [0.5, 2 ** 0.5, 4.0, 16.0, 64.0]}
    ((point, _),) = fair._edge_extensions(uct, [{"c": c} for c in uct["c"]], {"c": 0.5})
    assert point["c"] == pytest.approx(2 ** 0.5 / 8, rel=1e-11)
    # the next round steps from the values tried, not the grid's: 0.01 then 0.001
    tried_more = tried + [{"tau": 0.1, "eps": 0.01}]
    ((point, _),) = fair._edge_extensions(grid, tried_more, {"tau": 0.1, "eps": 0.01})
    assert point["eps"] == 0.001
    # nothing to extend: a point inside, a knob the grid fixes, a value <= 0, a point already played
    assert fair._edge_extensions({"tau": grid["tau"]}, [{"tau": t} for t in grid["tau"]], {"tau": 0.1}) == []
    assert fair._edge_extensions({"alpha": [0.1]}, [{"alpha": 0.1}], {"alpha": 0.1}) == []
    assert fair._edges({"alpha": [0.1]}, [{"alpha": 0.1}], {"alpha": 0.1}) == []
    assert fair._edge_extensions({"q": [0.0, 1.0]}, [{"q": 0.0}, {"q": 1.0}], {"q": 0.0}) == []
    assert fair._edge_extensions({"c": [1.0, 4.0]}, [{"c": 1.0}, {"c": 4.0}, {"c": 16.0}], {"c": 4.0}) == []
    assert fair._edge_extensions({"c": [1.0, 4.0]}, [{"c": 0.25}, {"c": 1.0}, {"c": 4.0}], {"c": 4.0})[0][0] == {"c": 16.0}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--stage", "eval"], "minatar_fair_tune_breakout.json is missing: run --stage tune for Breakout first"),
        (["--stage", "tune", "--grid", '{"ments": {"c": [1.0]}}'], r"--grid: planner.c=1.0|c=1.0: not read by ments"),
        (["--stage", "tune", "--grid", '{"ments": {"tau": []}}'], "must map each knob to a non-empty list"),
        (["--stage", "tune", "--simulations", "50,200"], "--stage tune takes one budget and one held-out network"),
        (["--stage", "tune", "--episodes", "1"], "the paired statistics need at least 2 episodes"),
        (["--stage", "tune", "--extend", "-1"], r"--extend -1: rounds beyond the grid's edges"),
        (["--stage", "tune", "--algorithms", "ments,mcts"], r"\['mcts'\] unknown"),
        (["--stage", "eval", "--model", "ensemble"], r"--model ensemble --futures None: --futures K .* goes with --model ensemble"),
        (["--stage", "eval", "--futures", "5"], r"--model determinized --futures 5: --futures K .* goes with --model ensemble"),
        (["--stage", "eval", "--estimate-moves", "3"], r"--estimate-moves 3: a number of moves >= 1, with --dry-run"),
    ],
)
def test_bad_input_is_refused_before_any_run(tmp_path, args, message):
    with pytest.raises(SystemExit, match=message):
        planning.main(["minatar-fair", "--game", "Breakout", "--networks", str(tmp_path / "none"), "--out", str(tmp_path / "out"),
                       "--run-dir", str(tmp_path / "runs"), *args])
    assert not (tmp_path / "runs").exists() and not (tmp_path / "out").exists()


def test_networks_without_runs_are_refused(tmp_path):
    with pytest.raises(SystemExit, match=r"--networks: .* holds no sweep.json, no run directory"):
        planning.main(["minatar-fair", "--stage", "tune", "--game", "breakout", "--networks", str(tmp_path),
                       "--out", str(tmp_path / "out"), "--run-dir", str(tmp_path / "runs")])


def test_replay_speed_plays_the_same_episodes_before_and_after_and_restores_the_search(tmp_path):
    from torchrl_reg.planning import snapshot_simulators

    fast = snapshot_simulators.copy_minatar_game
    planning.main(["minatar-replay-speed", "--games", "SpaceInvaders", "--algorithms", "uct", "--episodes", "2",
                   "--moves", "4", "--repeats", "1", "--out", str(tmp_path)])
    result = json.loads((tmp_path / "minatar_replay_speed.json").read_text())
    (row,) = result["rows"]
    assert (row["game"], row["algorithm"], row["moves"]) == ("SpaceInvaders", "uct", 8)  # 2 episodes x 4 moves
    assert len(row["before_s"]) == len(row["after_s"]) == 1 and row["ratio"] > 0
    assert row["knobs"] == {"c": 0.5}  # the Breakout tuning's choice
    # the benchmark's "before" settings do not outlive it
    assert snapshot_simulators.SnapshotStore.deterministic_rewards is True and snapshot_simulators.copy_minatar_game is fast


def test_model_error_is_zero_where_the_game_draws_nothing_after_the_root(tmp_path):
    # minatar/environments: SpaceInvaders draws no random number; Asterix draws every spawn (lane, side, gold or
    # enemy), so its model, copied with a fresh stream, foresees other spawns; sticky actions (0.1) make any game stray
    planning.main(["minatar-model-error", "--games", "SpaceInvaders,Asterix", "--episodes", "1", "--max-steps", "40",
                   "--horizons", "1,10", "--out", str(tmp_path)])
    result = json.loads((tmp_path / "minatar_model_error.json").read_text())
    rows = {(r["game"], r["sticky_action_prob"]): r for r in result["rows"]}
    assert rows["SpaceInvaders", 0.0]["obs_differs"] == {"1": 0.0, "10": 0.0}
    assert rows["SpaceInvaders", 0.0]["return_error"] == {"1": 0.0, "10": 0.0}
    assert rows["Asterix", 0.0]["obs_differs"]["10"] > 0.5
    assert rows["SpaceInvaders", 0.1]["obs_differs"]["10"] > 0
    # every start whose real episode lasts 10 more moves is counted: 40 moves, 31 starts (SpaceInvaders lasts 40)
    assert rows["SpaceInvaders", 0.0]["moves"] == 40 and rows["SpaceInvaders", 0.0]["starts"] == {"1": 40, "10": 31}
    assert (tmp_path / "minatar_model_error.png").exists()


def test_the_oracle_model_is_the_real_game_where_the_determinized_one_strays():
    from torchrl_reg.planning import BatchedMinAtar

    # Asterix draws every spawn and, here, sticky actions: the determinized model strays, the oracle (the real
    # game's stream copied) never does
    determinized = minatar_runs._model_error(BatchedMinAtar("Asterix", sticky_action_prob=0.1, seed=0, model="determinized"), 1, 40, [1, 10])
    assert determinized["obs_differs"]["10"] > 0.5
    oracle = minatar_runs._model_error(BatchedMinAtar("Asterix", sticky_action_prob=0.1, seed=0, model="oracle"), 1, 40, [1, 10])
    assert oracle["obs_differs"] == {"1": 0.0, "10": 0.0} and oracle["return_error"] == {"1": 0.0, "10": 0.0}
    assert oracle["starts"] == determinized["starts"]  # the same real episode


COMMITTED = REPO / "benchmarks" / "results" / "planning" / "networks"


def _dry_run(tmp_path: Path, *args: str) -> None:
    planning.main(["minatar-fair", "--stage", "eval", "--game", "Breakout", "--networks",
                   *(str(COMMITTED / f"Breakout_seed{seed}") for seed in range(3)), "--run-dir", str(tmp_path / "runs"), *args])


def test_a_dry_run_of_the_ensemble_checks_every_run_and_writes_nothing(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        _dry_run(tmp_path, "--model", "ensemble", "--futures", "5", "--simulations", "50", "--dry-run")
    assert stop.value.code == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")]
    # the greedy network (its determinized runs, no search) and the four tuned searches, on 3 networks each
    assert len(lines) == 15 and sum("/eval/greedy/" in line for line in lines) == 3
    assert sum("/eval-ensemble5/" in line and " ensemble " in line and " 50 sims " in line for line in lines) == 12
    assert not (tmp_path / "runs").exists() and not list(tmp_path.iterdir())
    # a number of futures that does not divide the budget is refused by the recipe's checks before any run
    with pytest.raises(SystemExit, match=r"ments@50 on the seed-0 network: planner.simulations=50 is the total per move over "
                                         r"planner.futures=3 futures"):
        _dry_run(tmp_path, "--model", "ensemble", "--futures", "3", "--simulations", "50", "--dry-run")


def test_an_evaluation_in_the_ensemble_model_reads_the_held_out_tuning_and_writes_its_own_json(tmp_path):
    out = tmp_path / "out"
    planning.main(["minatar-fair", "--stage", "eval", "--game", "Breakout", "--networks", str(COMMITTED / "Breakout_seed0"),
                   "--network-seeds", "0", "--algorithms", "ments,uct", "--model", "ensemble", "--futures", "2",
                   "--simulations", "4", "--episodes", "2", "--max-steps", "5", "--reps", "50", "--run-dir", str(tmp_path / "runs"),
                   "--out", str(out)])
    result = json.loads((out / "minatar_fair_breakout.json").read_text())
    tuned = json.loads((REPO / "benchmarks" / "results" / "planning" / "minatar_fair_tune_breakout.json").read_text())
    assert result["model"] == "ensemble" and result["futures"] == 2
    assert result["tuning"]["chosen"] == tuned["chosen"] and result["knobs"]["ments@4"] == tuned["chosen"]["ments"]
    assert set(result["comparisons"]) == {"ments@4 - greedy", "ments@4 - uct@4", "uct@4 - greedy"}
    greedy, ments = result["run_dirs"]["greedy"][0], result["run_dirs"]["ments@4"][0]
    assert "/Breakout/eval/greedy/" in greedy and "/Breakout/eval-ensemble2/ments@4/" in ments
    assert _metrics(ments)["model"] == "ensemble" and _metrics(greedy)["model"] == "determinized"
    assert "futures: 2" in (Path(ments) / "config.yaml").read_text()
