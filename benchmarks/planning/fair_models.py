"""The fair MinAtar comparison under every planner model, side by side (``minatar-models``): the searches' returns
against the greedy network and against UCT per model, each model against the determinized one, the model each
search prefers, and the model study's targets."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from benchmarks.planning.common import COMPARED, FAIR_STATISTICS, OUT, paired, provenance, write_result
from benchmarks.planning.fair import model_tag
from benchmarks.planning.plots import plot_minatar_models
from torchrl_reg.loops.planning import DIAGNOSTICS

REPO = OUT.parents[2]
GAMES = ("Breakout", "SpaceInvaders", "Asterix")
#: the model study's planned runs: a planned (model, game, budget) without its file counts as "not run" in a target
PLAN = {
    "sampled": {"Breakout": (50,), "SpaceInvaders": (50, 200), "Asterix": (50,)},
    "ensemble5": {"Breakout": (50,), "SpaceInvaders": (50,), "Asterix": (50,)},
}
#: target (a): the games where every search with the sampled model must do at least as well as its determinized
#: version (the model error after 10 moves: 0.49 on SpaceInvaders, 0.99 on Asterix; minatar_model_error.json)
SAMPLED_GAMES = ("SpaceInvaders", "Asterix")

DEFINITION = (
    "Every MinAtar result of the fair protocol found under the results folder, per game and planner model: "
    "determinized (minatar_fair_<game>.json), the ensemble and sampled models (models/<folder>/minatar_fair_<game>.json, "
    "a model's budgets possibly in several folders) and oracle (minatar_oracle_<game>.json and oracle_*/: the real game's "
    "random stream, a diagnostic no agent can have; its networks, env seeds and greedy episodes are those of the "
    "evaluation it replayed). Files of one game are paired only where their networks (sha256), env seed, episodes per "
    "network, move cap and greedy episodes agree; otherwise the command refuses. models[m].comparisons: 'a@n - greedy', "
    "'a@n - uct@n' and 'a@n - determinized' (a@n in model m against a@n determinized), on the networks both sides have "
    "('networks'). models[m].diagnostics[a@n]: per network, the runs' means (root_visit_share, greedy_agreement, "
    "q_gap), 'capped' (the share of episodes that reach the move cap, max_steps: their returns stop there) and "
    "'return_per_move' (return over moves). prefers[a@n]: the model (oracle left out) of highest mean return among "
    "those with a@n on every network of the game, and 'lead', its paired difference to the next; resolved: the lead's "
    "interval is above 0. "
    "targets: 'met' where the mean difference is >= 0, 'missed' where it is < 0, 'not run' where a planned file is "
    "missing (never counted either way)."
)


def _load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise SystemExit(f"{path}: {err}") from None


def _name(path: Path) -> str:
    """``path`` as the results name it: from the repository's root where it lies inside (as the commands write it)."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def _sources(root: Path, game: str) -> list[tuple[str, str, dict]]:
    """``(file, model, result)`` of every evaluation of ``game`` under ``root``; an oracle result comes with the
    networks, env seed, episodes, move cap and greedy episodes of the evaluation it replayed (``minatar_oracle``)."""
    name, out = game.lower(), []
    for path in [root / f"minatar_fair_{name}.json", *sorted(root.glob(f"models/*/minatar_fair_{name}.json"))]:
        if path.is_file():
            data = _load(path)
            tag = model_tag(SimpleNamespace(model=data.get("model", "determinized"), futures=data.get("futures")))
            out.append((_name(path), tag, data))
    for path in [root / f"minatar_oracle_{name}.json", *sorted(root.glob(f"oracle_*/minatar_oracle_{name}.json"))]:
        if path.is_file():
            data = _load(path)
            evaluation = Path(data["evaluation"])
            evaluation = evaluation if evaluation.is_absolute() else REPO / evaluation
            if not evaluation.is_file():
                raise SystemExit(f"{path} replayed {data['evaluation']}, which is missing: its episodes cannot be paired")
            base = _load(evaluation)
            if data["network_seeds"] != [net["seed"] for net in base["networks"]]:
                raise SystemExit(f"{path}: networks {data['network_seeds']}, its evaluation {evaluation} has "
                                 f"{[net['seed'] for net in base['networks']]}")
            out.append((_name(path), "oracle", {k: base.get(k) for k in ("game", "seed", "episodes", "max_steps", "protocol", "networks")}
                        | {"episode_returns": {"greedy": base["episode_returns"]["greedy"]} | data["episode_returns"]}))
    return out


def _gather(sources: list[tuple[str, str, dict]]) -> tuple[dict[str, dict], dict]:
    """Per model, its files and ``returns[label][network seed]`` (``greedy`` shared by all), ``diagnostics[label][key]
    [network seed]``; and the settings the files share. Refuses files that are not paired (FAIR_STATISTICS) or that
    hold a cell twice."""
    shared: dict = {}  # what every file must agree on, with the first file that set it
    sha: dict[int, tuple[str, str]] = {}
    greedy: dict[int, tuple[list, str]] = {}
    models: dict[str, dict] = {}
    for path, model, data in sources:
        for key in ("game", "seed", "episodes", "max_steps", "protocol"):
            value, first = shared.setdefault(key, (data.get(key), path))
            if data.get(key) != value:
                raise SystemExit(f"{path} and {first} are not paired: {key} {data.get(key)!r} against {value!r}")
        entry = models.setdefault(model, {"files": [], "returns": {}, "diagnostics": {}})
        entry["files"].append(path)
        for i, net in enumerate(data["networks"]):
            seed = net["seed"]
            digest, first = sha.setdefault(seed, (net["sha256"], path))
            if net["sha256"] != digest:
                raise SystemExit(f"{path} and {first} are not paired: the seed-{seed} network is {net['sha256']} in the "
                                 f"first, {digest} in the second")
            returns, first = greedy.setdefault(seed, (data["episode_returns"]["greedy"][i], path))
            if data["episode_returns"]["greedy"][i] != returns:
                raise SystemExit(f"{path} and {first} are not paired: the greedy network's episodes on the seed-{seed} "
                                 "network differ")
            for label, rows in data["episode_returns"].items():
                cells = entry["returns"].setdefault(label, {})
                if label != "greedy" and seed in cells:
                    raise SystemExit(f"{model} {label} on the seed-{seed} network is in two files: {entry['files']}")
                cells[seed] = rows[i]
                for key, values in data.get("diagnostics", {}).get(label, {}).items():
                    entry["diagnostics"].setdefault(label, {}).setdefault(key, {})[seed] = values[i]
                lengths = data.get("episode_lengths", {}).get(label)
                for key, value in _episode_diagnostics(rows[i], lengths, i, data.get("max_steps"), f"{path} {label}").items():
                    entry["diagnostics"].setdefault(label, {}).setdefault(key, {})[seed] = value
    return models, {key: value for key, (value, _) in shared.items()}


def _episode_diagnostics(returns: list[float], lengths: list[list[int]] | None, i: int, cap: int | None, where: str) -> dict[str, float]:
    """One network's ``capped`` (the share of its episodes that reach the move cap, whose returns stop there) and
    ``return_per_move`` (its return over its moves), from a file's episode lengths; none where the file has none (an
    oracle result)."""
    if lengths is None or not cap:
        return {}
    moves = lengths[i]
    if len(moves) != len(returns):
        raise SystemExit(f"{where}: {len(returns)} returns and {len(moves)} episode lengths on network {i}")
    return {"capped": float(np.mean([m >= cap for m in moves])), "return_per_move": float(sum(returns) / max(sum(moves), 1))}


def _diff(x: dict[int, list], y: dict[int, list], reps: int) -> dict:
    """``paired`` on the networks both sides have (``networks``: their seeds)."""
    seeds = sorted(set(x) & set(y))
    return paired([x[s] for s in seeds], [y[s] for s in seeds], reps) | {"networks": seeds}


def _game(models: dict[str, dict], reps: int) -> dict:
    """One game's side by side: per model its comparisons, and the model each search prefers (DEFINITION)."""
    seeds = sorted({s for entry in models.values() for s in entry["returns"]["greedy"]})
    det = models.get("determinized", {"returns": {}})["returns"]
    out: dict = {"networks": seeds, "models": {}, "prefers": {}}
    for model, entry in models.items():
        returns = entry["returns"]
        labels = [f"{a}@{n}" for n in sorted({int(k.partition("@")[2]) for k in returns if "@" in k}) for a in COMPARED
                  if f"{a}@{n}" in returns]
        comparisons = {}
        for label in labels:
            comparisons[f"{label} - greedy"] = _diff(returns[label], returns["greedy"], reps)
            uct = "uct@" + label.partition("@")[2]
            if label != uct and uct in returns:
                comparisons[f"{label} - {uct}"] = _diff(returns[label], returns[uct], reps)
            if model != "determinized" and label in det:
                comparisons[f"{label} - determinized"] = _diff(returns[label], det[label], reps)
        out["models"][model] = {
            "files": entry["files"], "networks": sorted(returns["greedy"]),
            "simulations": sorted({int(k.partition("@")[2]) for k in labels}),
            "mean_return": {label: float(np.mean(list(returns[label].values()))) for label in ["greedy", *labels]},
            "comparisons": comparisons,
            "diagnostics": {label: {key: [by_seed.get(s) for s in sorted(returns[label])] for key, by_seed in keys.items()}
                            for label, keys in entry["diagnostics"].items() if label in labels},
        }
    for label in sorted({k for m in out["models"].values() for k in m["mean_return"] if k != "greedy"},
                        key=lambda k: (int(k.partition("@")[2]), COMPARED.index(k.partition("@")[0]))):
        left_out = {m: "a diagnostic: no agent can read its env's random stream" if m == "oracle" else
                    f"on networks {sorted(e['returns'][label])} of {seeds}"
                    for m, e in models.items() if label in e["returns"] and (m == "oracle" or sorted(e["returns"][label]) != seeds)}
        ranked = sorted((m for m, e in models.items() if label in e["returns"] and m not in left_out),
                        key=lambda m: -out["models"][m]["mean_return"][label])
        if len(ranked) < 2:
            continue
        lead = _diff(models[ranked[0]]["returns"][label], models[ranked[1]]["returns"][label], reps)
        out["prefers"][label] = {
            "model": ranked[0], "next": ranked[1], "lead": lead, "resolved": lead["ci95"][0] > 0,
            "mean_return": {m: out["models"][m]["mean_return"][label] for m in ranked}, "left_out": left_out,
        }
    return out


def _status(cells: dict[str, dict]) -> str:
    """A target over ``cells``: missed if one is missed, met if every one is met, else not run."""
    states = [c["status"] for c in cells.values()]
    return "missed" if "missed" in states else "met" if states and all(s == "met" for s in states) else "not run"


def _cell(games: dict, game: str, model: str, key: str) -> dict:
    """A target's cell: the comparison ``key`` of ``model`` on ``game``, met if its mean is >= 0; not run without it."""
    comparison = games.get(game, {}).get("models", {}).get(model, {}).get("comparisons", {}).get(key)
    if comparison is None:
        return {"status": "not run"}
    return {"status": "met" if comparison["mean"] >= 0 else "missed", "mean": comparison["mean"], "ci95": comparison["ci95"],
            "verdict": comparison["verdict"]}


def _explain(games: dict, game: str, labels: list[str], models: list[str]) -> dict:
    """A missed target's diagnostics: per model and search, the diagnostics' per-network means."""
    entries = games[game]["models"]
    return {m: {label: entries[m]["diagnostics"].get(label) for label in labels} for m in models if m in entries}


def _errors(rows: list[dict], games: dict, game: str) -> list[dict]:
    """minatar_model_error.json's rows of ``game`` at the sticky-action probability its evaluations were played with."""
    sticky = ((games[game].get("protocol") or {}).get("task") or {}).get("sticky_action_prob")
    return [r for r in rows if r["game"] == game and r["sticky_action_prob"] == sticky]


def _targets(games: dict, model_error: list[dict]) -> dict:
    """The model study's targets (DEFINITION: met / missed / not run); a missed cell or game comes with its
    diagnostics (``explain``) and the game's model error (``model_error``, where minatar_model_error.json has it)."""
    a_cells = {f"{g} {a}@{n}": _cell(games, g, "sampled", f"{a}@{n} - determinized")
               for g in SAMPLED_GAMES for n in PLAN["sampled"][g] for a in COMPARED}
    missed = {k: k.split(" ") for k, c in a_cells.items() if c["status"] == "missed"}
    a = {"target": "every search with the sampled model >= its determinized version (mean paired difference) on "
                   + " and ".join(SAMPLED_GAMES), "status": _status(a_cells), "cells": a_cells,
         "explain": {k: _explain(games, g, [label], ["sampled", "determinized"]) for k, (g, label) in missed.items()},
         "model_error": {g: _errors(model_error, games, g) for g, _ in missed.values()}}
    b_games = {}
    for g in GAMES:
        # the planned cells and any other budget the ensemble or sampled files hold
        runs = {(m, n) for m in PLAN for n in PLAN[m][g]}
        runs |= {(m, n) for m in PLAN for n in games.get(g, {}).get("models", {}).get(m, {}).get("simulations", [])}
        cells = {f"{m}, {n} simulations": _cell(games, g, m, f"ments@{n} - uct@{n}") for m, n in sorted(runs)}
        holds = [k for k, c in cells.items() if c["status"] == "met"]
        b_games[g] = {"status": "met" if holds else "missed" if all(c["status"] == "missed" for c in cells.values()) else "not run",
                      "holds_with": holds, "cells": cells}
        if b_games[g]["status"] == "missed":
            labels = [f"{s}@{n}" for n in sorted({n for _, n in runs}) for s in ("ments", "uct")]
            b_games[g] |= {"explain": _explain(games, g, labels, ["determinized", *PLAN]),
                           "model_error": _errors(model_error, games, g)}
    met = sum(c["status"] == "met" for c in b_games.values())
    unknown = sum(c["status"] == "not run" for c in b_games.values())
    b = {"target": "MENTS - UCT >= 0 (mean paired difference) with the sampled model or the ensemble on at least 2 of "
                   f"{len(GAMES)} games", "games_met": met,
         "status": "met" if met >= 2 else "missed" if met + unknown < 2 else "not run", "games": b_games}
    return {"sampled_at_least_determinized": a, "ments_at_least_uct": b}


def minatar_models(args) -> None:
    """The fair MinAtar comparison's planner models side by side, from whatever of their results exist under
    ``--results`` (DEFINITION): writes ``minatar_models.json`` and ``minatar_models.png`` to ``--out``. Run it again
    as the model study's files land; a game or model without a file is left out."""
    root, out = Path(args.results), Path(args.out)
    games = {}
    for game in GAMES:
        sources = _sources(root, game)
        if sources:
            models, shared = _gather(sources)
            games[game] = shared | _game(models, args.reps)
    if not games:
        raise SystemExit(f"{root} holds no minatar_fair_<game>.json of {', '.join(GAMES)}")
    error_file = root / "minatar_model_error.json"
    model_error = _load(error_file)["rows"] if error_file.is_file() else []
    result = {"games": games, "targets": _targets(games, model_error), "plan": PLAN, "definition": DEFINITION,
              "statistics": FAIR_STATISTICS, "bootstrap_reps": args.reps} | provenance()
    write_result("minatar_models", result, out=out, argv=args.argv)
    plot_minatar_models(out, result)
