"""python -m benchmarks.planning minatar-models on tiny hand-made results (2 networks x 3 episodes): the paired
differences across planner models, the model each search prefers, the targets' met / missed / not run, the refusal of
results that are not paired, and a model without a file left out."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmarks import planning
from benchmarks.planning import fair_models

GREEDY = np.array([[10.0, 20.0, 30.0], [40.0, 50.0, 60.0]])  # 2 networks x 3 episodes
SEARCHES = ("ments", "bts", "dents", "uct")
# a paired difference whose mean is +1 on each network, of both signs
MIXED = [[3.0, -1.0, 3.0], [-1.0, 3.0, -1.0]]


def _eval(path: Path, game: str, offsets: dict[str, object], *, model: str | None = None, futures: int | None = None,
          sha=("sha0", "sha1"), seed: int = 100) -> str:
    """A minatar-fair evaluation: each label's returns are the greedy network's plus its offset (a number or 2 x 3)."""
    labels = ["greedy", *offsets]
    data = {
        "stage": "eval", "game": game, "episodes": 3, "seed": seed, "max_steps": 1000,
        "protocol": {"task": {"game": game, "sticky_action_prob": 0.1}},
        "networks": [{"seed": i, "sha256": s} for i, s in enumerate(sha)],
        "episode_returns": {"greedy": GREEDY.tolist()} | {k: (GREEDY + np.asarray(v)).tolist() for k, v in offsets.items()},
        "diagnostics": {k: {"root_visit_share": [0.5, 0.25], "greedy_agreement": [0.75, 0.5]} for k in labels},
    } | ({"model": model, "futures": futures} if model else {})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return str(path)


def _all(offset, budgets=(50,), **override) -> dict:
    """Every search's offset at each budget: ``offset``, or ``override``'s for the search (``ments``) or label (``ments@50``)."""
    return {f"{a}@{n}": override.get(f"{a}@{n}", override.get(a, offset)) for n in budgets for a in SEARCHES}


def _study(root: Path) -> None:
    """Every planned file: each sampled search 1 above its determinized version; MENTS - UCT with the sampled model or
    the ensemble: Breakout -1 sampled and +1 ensemble (met with the ensemble), SpaceInvaders 0 (met), Asterix -1 with
    both (missed)."""
    for game in fair_models.GAMES:
        _eval(root / f"minatar_fair_{game.lower()}.json", game, _all(0.0, (50, 200)))
    _eval(root / "models/ensemble5/minatar_fair_breakout.json", "Breakout", _all(0.0, uct=-1.0), model="ensemble", futures=5)
    _eval(root / "models/ensemble5/minatar_fair_spaceinvaders.json", "SpaceInvaders", _all(0.0), model="ensemble", futures=5)
    _eval(root / "models/ensemble5/minatar_fair_asterix.json", "Asterix", _all(0.0, ments=-1.0), model="ensemble", futures=5)
    _eval(root / "models/sampled/minatar_fair_breakout.json", "Breakout", _all(1.0, **{"uct@50": 2.0}), model="sampled")
    _eval(root / "models/sampled/minatar_fair_spaceinvaders.json", "SpaceInvaders", _all(1.0), model="sampled")
    _eval(root / "models/sampled/minatar_fair_asterix.json", "Asterix", _all(1.0, **{"uct@50": 2.0}), model="sampled")
    _eval(root / "models/sampled200/minatar_fair_spaceinvaders.json", "SpaceInvaders", _all(1.0, (200,)), model="sampled")
    error = {"rows": [{"game": "Asterix", "sticky_action_prob": p, "obs_differs": {"10": 0.9 + p}} for p in (0.0, 0.1)]}
    (root / "minatar_model_error.json").write_text(json.dumps(error))


def _run(root: Path, reps: int = 100) -> dict:
    planning.main(["minatar-models", "--results", str(root), "--out", str(root / "out"), "--reps", str(reps)])
    return json.loads((root / "out" / "minatar_models.json").read_text())


@pytest.fixture(autouse=True)
def _no_figure(monkeypatch, request):
    """The figure is drawn by its own test only (matplotlib costs a second per figure)."""
    if "figure" not in request.node.name:
        monkeypatch.setattr(fair_models, "plot_minatar_models", lambda out, result: None)


def test_models_are_paired_episode_by_episode_and_each_search_prefers_the_best_mean(tmp_path):
    det = _eval(tmp_path / "minatar_fair_spaceinvaders.json", "SpaceInvaders", _all(0.0))
    # ensemble: MENTS 3 above the determinized MENTS on every episode, UCT 5 below
    _eval(tmp_path / "models/ensemble5/minatar_fair_spaceinvaders.json", "SpaceInvaders", _all(0.0, ments=3.0, uct=-5.0),
          model="ensemble", futures=5)
    # sampled: MENTS 1 above; BTS by [2, -1, 2] and [-1, 5, -1] (+1 per network); UCT by -MIXED (mean -1)
    bts = [[2.0, -1.0, 2.0], [-1.0, 5.0, -1.0]]
    _eval(tmp_path / "models/sampled/minatar_fair_spaceinvaders.json", "SpaceInvaders",
          _all(0.0, ments=1.0, bts=bts, uct=-np.asarray(MIXED)), model="sampled")
    # the oracle replays the determinized evaluation: MENTS 50 above it, left out of what a search prefers
    (tmp_path / "minatar_oracle_spaceinvaders.json").write_text(json.dumps({
        "evaluation": det, "network_seeds": [0, 1], "episode_returns": {"ments@50": (GREEDY + 50.0).tolist()}}))
    game = _run(tmp_path, reps=1000)["games"]["SpaceInvaders"]
    sampled = game["models"]["sampled"]["comparisons"]
    assert sampled["bts@50 - determinized"]["mean"] == pytest.approx(1.0)  # (2 - 1 + 2 - 1 + 5 - 1) / 6
    assert sampled["bts@50 - determinized"]["networks"] == [0, 1]
    assert sampled["ments@50 - determinized"]["ci95"] == pytest.approx([1.0, 1.0])
    assert sampled["uct@50 - greedy"]["mean"] == pytest.approx(-1.0)
    assert game["models"]["ensemble5"]["comparisons"]["ments@50 - uct@50"]["mean"] == pytest.approx(8.0)  # 3 - (-5)
    assert game["models"]["oracle"]["comparisons"]["ments@50 - determinized"]["mean"] == pytest.approx(50.0)
    # MENTS: ensemble (+3) over sampled (+1) over determinized; the lead is 2 on every episode: resolved
    ments = game["prefers"]["ments@50"]
    assert (ments["model"], ments["next"], ments["resolved"]) == ("ensemble5", "sampled", True)
    assert ments["lead"]["mean"] == pytest.approx(2.0) and ments["lead"]["ci95"] == pytest.approx([2.0, 2.0])
    assert ments["mean_return"]["ensemble5"] == pytest.approx(GREEDY.mean() + 3.0)
    assert "oracle" in ments["left_out"] and "oracle" not in ments["mean_return"]
    # UCT: determinized (0) over sampled (-1, MIXED's signs) over the ensemble (-5); the lead of +1 is within the
    # interval: its resamples hold 0 or 1 draws of +3 among 6 with probability 68/729 > 2.5% (a mean <= -1/3)
    uct = game["prefers"]["uct@50"]
    assert (uct["model"], uct["next"], uct["resolved"]) == ("determinized", "sampled", False)
    assert uct["lead"]["mean"] == pytest.approx(1.0) and uct["lead"]["ci95"][0] < 0


def test_the_move_cap_and_the_return_per_move_are_diagnosed_per_network(tmp_path):
    # MENTS's episodes last 1000 (the cap), 400, 1000 moves on network 0 and 200 each on network 1
    lengths = {"greedy": [[100] * 3] * 2, "ments@50": [[1000, 400, 1000], [200, 200, 200]]}
    path = _eval(tmp_path / "minatar_fair_breakout.json", "Breakout", {"ments@50": 0.0})
    data = json.loads(Path(path).read_text()) | {"episode_lengths": lengths}
    Path(path).write_text(json.dumps(data))
    _eval(tmp_path / "models/sampled/minatar_fair_breakout.json", "Breakout", {"ments@50": 1.0}, model="sampled")
    models = _run(tmp_path)["games"]["Breakout"]["models"]
    ments = models["determinized"]["diagnostics"]["ments@50"]
    assert ments["capped"] == pytest.approx([2 / 3, 0.0])
    # network 0: returns 10 + 20 + 30 over 2400 moves; network 1: 40 + 50 + 60 over 600
    assert ments["return_per_move"] == pytest.approx([60 / 2400, 150 / 600])
    assert ments["root_visit_share"] == [0.5, 0.25]
    assert "capped" not in models["sampled"]["diagnostics"]["ments@50"]  # a file without episode lengths
    data["episode_lengths"]["ments@50"][1] = [200, 200]
    Path(path).write_text(json.dumps(data))
    with pytest.raises(SystemExit, match=r"minatar_fair_breakout.json ments@50: 3 returns and 2 episode lengths on network 1"):
        _run(tmp_path)


def test_targets_met_missed_and_not_run(tmp_path):
    _study(tmp_path)
    targets = _run(tmp_path)["targets"]
    a, b = targets["sampled_at_least_determinized"], targets["ments_at_least_uct"]
    assert a["status"] == "met" and len(a["cells"]) == 12  # 4 searches x (SpaceInvaders 50, 200; Asterix 50)
    assert a["cells"]["SpaceInvaders uct@200"] == {"status": "met", "mean": 1.0, "ci95": [1.0, 1.0], "verdict": "above"}
    assert (b["status"], b["games_met"]) == ("met", 2)
    breakout, space, asterix = (b["games"][g] for g in ("Breakout", "SpaceInvaders", "Asterix"))
    assert (breakout["status"], breakout["holds_with"]) == ("met", ["ensemble5, 50 simulations"])
    assert breakout["cells"]["sampled, 50 simulations"]["status"] == "missed"  # 1 - 2
    assert space["status"] == "met" and len(space["holds_with"]) == 3  # MENTS - UCT = 0 with every model and budget
    # Asterix: -1 with both models; its diagnostics and the model error at the evaluations' sticky actions (0.1)
    assert asterix["status"] == "missed" and asterix["holds_with"] == []
    assert asterix["explain"]["sampled"]["ments@50"]["root_visit_share"] == [0.5, 0.25]
    assert asterix["model_error"] == [{"game": "Asterix", "sticky_action_prob": 0.1, "obs_differs": {"10": 1.0}}]

    # a sampled search below its determinized version: missed, whatever else is missing, with its diagnostics
    _eval(tmp_path / "models/sampled200/minatar_fair_spaceinvaders.json", "SpaceInvaders", _all(-1.0, (200,)), model="sampled")
    (tmp_path / "models/sampled/minatar_fair_asterix.json").unlink()
    a = _run(tmp_path)["targets"]["sampled_at_least_determinized"]
    assert a["status"] == "missed" and a["cells"]["Asterix ments@50"] == {"status": "not run"}
    assert sorted(a["explain"]) == [f"SpaceInvaders {s}@200" for s in sorted(SEARCHES)]
    assert a["explain"]["SpaceInvaders bts@200"]["determinized"]["bts@200"]["greedy_agreement"] == [0.75, 0.5]
    assert a["model_error"] == {"SpaceInvaders": []}  # the model error file has no SpaceInvaders row

    # missing files are not run, never met or missed: Asterix's sampled and SpaceInvaders' 200 gone, no search below
    shutil.rmtree(tmp_path / "models/sampled200")
    targets = _run(tmp_path)["targets"]
    assert targets["sampled_at_least_determinized"]["status"] == "not run"
    # MENTS - UCT: Asterix missed with the ensemble, not run with the sampled model; with SpaceInvaders' other
    # models gone too, 1 game met and 1 unknown: the target may still be met
    asterix = targets["ments_at_least_uct"]["games"]["Asterix"]
    assert asterix["status"] == "not run" and asterix["cells"]["ensemble5, 50 simulations"]["status"] == "missed"
    for folder in ("ensemble5", "sampled"):
        (tmp_path / f"models/{folder}/minatar_fair_spaceinvaders.json").unlink()
    b = _run(tmp_path)["targets"]["ments_at_least_uct"]
    assert (b["status"], b["games_met"]) == ("not run", 1)
    # once Asterix's sampled row and Breakout's ensemble miss too, 2 of 3 games can no longer be met
    _eval(tmp_path / "models/sampled/minatar_fair_asterix.json", "Asterix", _all(1.0, uct=2.0), model="sampled")
    _eval(tmp_path / "models/ensemble5/minatar_fair_breakout.json", "Breakout", _all(0.0, uct=1.0), model="ensemble", futures=5)
    assert _run(tmp_path)["targets"]["ments_at_least_uct"]["status"] == "missed"


@pytest.mark.parametrize("kwargs, message", [
    ({"sha": ("sha0", "other")}, r"the seed-1 network is other in the first, sha1 in the second"),
    ({"seed": 101}, r"seed 101 against 100"),
])
def test_results_that_are_not_paired_are_refused_before_anything_is_written(tmp_path, kwargs, message):
    first = _eval(tmp_path / "minatar_fair_asterix.json", "Asterix", _all(0.0))
    second = _eval(tmp_path / "models/sampled/minatar_fair_asterix.json", "Asterix", _all(1.0), model="sampled", **kwargs)
    with pytest.raises(SystemExit, match=rf"{re.escape(second)} and {re.escape(first)} are not paired: {message}"):
        _run(tmp_path)
    assert not (tmp_path / "out").exists()


def test_greedy_episodes_that_differ_and_a_cell_in_two_files_are_refused(tmp_path):
    _eval(tmp_path / "minatar_fair_asterix.json", "Asterix", _all(0.0))
    path = tmp_path / "models/sampled/minatar_fair_asterix.json"
    _eval(path, "Asterix", _all(1.0), model="sampled")
    data = json.loads(path.read_text())
    data["episode_returns"]["greedy"][0][2] += 1.0
    path.write_text(json.dumps(data))
    with pytest.raises(SystemExit, match=r"greedy network's episodes on the seed-0 network differ"):
        _run(tmp_path)
    _eval(path, "Asterix", _all(1.0), model="sampled")
    _eval(tmp_path / "models/sampled_again/minatar_fair_asterix.json", "Asterix", _all(1.0), model="sampled")
    with pytest.raises(SystemExit, match=r"sampled ments@50 on the seed-0 network is in two files"):
        _run(tmp_path)


def test_a_model_or_game_without_a_file_is_absent_and_the_figure_is_drawn(tmp_path):
    _eval(tmp_path / "minatar_fair_breakout.json", "Breakout", _all(0.0, (50, 200)))
    _eval(tmp_path / "models/ensemble5/minatar_fair_asterix.json", "Asterix", _all(0.0), model="ensemble", futures=5)
    result = _run(tmp_path, reps=7)
    assert list(result["games"]) == ["Breakout", "Asterix"]
    assert list(result["games"]["Breakout"]["models"]) == ["determinized"]
    assert list(result["games"]["Asterix"]["models"]) == ["ensemble5"]
    assert result["games"]["Breakout"]["prefers"] == {}  # one model: nothing to prefer
    assert "ments@50 - determinized" not in result["games"]["Asterix"]["models"]["ensemble5"]["comparisons"]
    assert (tmp_path / "out" / "minatar_models.png").stat().st_size > 0
    assert result["command"].endswith(f"minatar-models --results {tmp_path} --out {tmp_path / 'out'} --reps 7")


def test_no_result_at_all_is_refused(tmp_path):
    with pytest.raises(SystemExit, match=r"holds no minatar_fair_<game>.json"):
        _run(tmp_path)


def test_an_evaluation_merged_from_parts_keeps_its_model(tmp_path, monkeypatch):
    from benchmarks.planning import fair_merge

    monkeypatch.setattr(fair_merge, "plot_minatar_fair", lambda out: None)
    labels = ["greedy", "ments@50", "uct@50"]

    def part(name: str, network: int, **model) -> str:  # one network's cells of an evaluation
        data = {"stage": "eval", "game": "Asterix", "episodes": 3, "batch_episodes": 3, "seed": 100, "max_steps": 1000,
                "protocol": {"task": {"sticky_action_prob": 0.1}}, "tuning": {}, "methods": labels,
                "networks": [{"seed": network, "sha256": f"sha{network}"}], "knobs": {k: {} for k in labels},
                "episode_returns": {k: [GREEDY[network].tolist()] for k in labels},
                "episode_lengths": {k: [[5, 5, 5]] for k in labels}, "returns": {k: [GREEDY[network].mean()] for k in labels},
                "wall_time_s": {k: [1.0] for k in labels}, "run_dirs": {k: [name] for k in labels}} | model
        (tmp_path / name).write_text(json.dumps(data))
        return str(tmp_path / name)

    ensemble = {"model": "ensemble", "futures": 5}
    out = tmp_path / "models" / "ensemble5"
    planning.main(["minatar-fair-merge", part("a.json", 0, **ensemble), part("b.json", 1, **ensemble), "--reps", "10", "--out", str(out)])
    merged = json.loads((out / "minatar_fair_asterix.json").read_text())
    assert (merged["model"], merged["futures"]) == ("ensemble", 5)
    assert list(_run(tmp_path)["games"]["Asterix"]["models"]) == ["ensemble5"]
    with pytest.raises(SystemExit, match=r"differ in 'model': 'ensemble' against None"):
        planning.main(["minatar-fair-merge", part("c.json", 0), part("d.json", 1, **ensemble), "--out", str(tmp_path / "x")])
    # the episodes searched at once may differ between parts (a speed setting): each part's is kept, the merge has both
    planning.main(["minatar-fair-merge", part("e.json", 0, **ensemble), part("f.json", 1, **ensemble, batch_episodes=1),
                   "--reps", "10", "--out", str(out)])
    merged = json.loads((out / "minatar_fair_asterix.json").read_text())
    assert merged["batch_episodes"] == [1, 3] and [p["batch_episodes"] for p in merged["merged_from"]] == [3, 1]
    assert merged["episode_returns"]["ments@50"] == GREEDY.tolist()
