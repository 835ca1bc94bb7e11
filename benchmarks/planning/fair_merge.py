"""A ``minatar-fair`` stage played in parts, merged into the stage's JSON (``minatar-fair-merge``)."""
from __future__ import annotations

import json
from pathlib import Path

from benchmarks.planning.common import COMPARED, provenance, write_result
from benchmarks.planning.plots import plot_minatar_fair
from benchmarks.planning.fair import EVAL_CELL_KEYS, eval_result
from torchrl_reg.loops.planning import DIAGNOSTICS


FAIR_SHARED = ("stage", "game", "episodes", "batch_episodes", "seed", "max_steps", "protocol", "model", "futures")
#: what the parts of an evaluation may differ in: the episodes searched at once (a setting of speed and of the
#: order of the planner's draws, not of what an episode is: its env seed, network, knobs and model are the same)
EVAL_PART_SETTINGS = ("batch_episodes",)
#: an evaluation part's range of episodes (env seeds ``seed .. seed + episodes - 1``): checked per cell, not shared
EVAL_PART_RANGE = ("seed", "episodes")


def minatar_fair_merge(args) -> None:
    """Results of one ``minatar-fair`` stage played in parts (disjoint algorithms of a tuning; disjoint (method,
    network) cells of an evaluation: ``--network-seeds`` and ``--algorithms`` subsets) merged into the JSON the
    whole stage writes, as if one command had played it: the shared settings, network files and tuned knobs must
    agree (but an evaluation's EVAL_PART_SETTINGS), a cell in two parts must hold the same episodes (the greedy
    network, in every part of its network), and an evaluation must cover every method on every network. The paired
    comparisons are computed afresh from the episodes. Parts let a stage of many core-hours be played, and its
    pieces committed, across machines whose run directories do not survive (``merged_from``: each part's
    file, command, code commit and machine).

    An evaluation's cell may also be played in ranges of episodes (``--seed S --episodes E``: the episodes of env
    seeds ``S .. S + E - 1``): the cell's ranges are put together in the order of their seeds, must not overlap
    (but the greedy network's, which must agree where they do) and must leave no gap, and every cell must come to
    the same episodes, which are the stage's (its ``seed`` the first, its ``episodes`` their number). A range played
    with ``--batch-episodes E`` is the group of ``E`` episodes from ``S`` of the whole cell played with that batch
    (the planning loop seeds a group's search by its first episode), so ranges of one size ``E`` that start at
    multiples of ``E`` from the stage's seed are exactly that cell with ``batch_episodes = E``. The cell's
    diagnostics are its ranges' means weighted by their episodes (the mean over all the episodes, as one run
    gives it), its wall time their sum."""
    parts = []
    for path in args.parts:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as err:
            raise SystemExit(f"{path}: {err}") from None
        if not isinstance(data, dict) or data.get("stage") not in ("tune", "eval"):
            raise SystemExit(f"{path} is not a minatar-fair tune or eval result")
        parts.append((str(path), data))
    if len(parts) < 2:
        raise SystemExit(f"give two or more parts to merge, got {len(parts)}")
    (first_path, first), stage = parts[0], parts[0][1]["stage"]
    shared = FAIR_SHARED + (("simulations", "extend", "greedy") if stage == "tune" else ())
    free = EVAL_PART_SETTINGS + EVAL_PART_RANGE if stage == "eval" else ()
    for path, data in parts[1:]:
        for key in (k for k in shared if k not in free):
            if data.get(key) != first.get(key):
                raise SystemExit(f"{path} and {first_path} differ in {key!r}: {data.get(key)!r} against {first.get(key)!r}")
    merged_from = [{"file": path, **{k: data.get(k) for k in ("command", "code_commit", "code_changed_files", "machine", *free)}}
                   for path, data in parts]
    result = {key: first[key] for key in FAIR_SHARED if key in first}  # model, futures: absent when determinized
    for key in (k for k in free if k not in EVAL_PART_RANGE):  # one value where the parts agree, else their values
        # in order (each part's in merged_from); the range of episodes is the cells' (below)
        values = sorted({data.get(key) for _, data in parts})
        result[key] = values[0] if len(values) == 1 else values
    if stage == "tune":
        for path, data in parts[1:]:
            if data["network"]["sha256"] != first["network"]["sha256"]:
                raise SystemExit(f"{path} and {first_path} tuned on different networks")
        owner: dict[str, str] = {}
        for path, data in parts:
            for algorithm in data["scores"]:
                if algorithm in owner:
                    raise SystemExit(f"{algorithm} is tuned in both {owner[algorithm]} and {path}: merge disjoint algorithms")
                owner[algorithm] = path
        order = [a for a in COMPARED if a in owner]
        by = {path: data for path, data in parts}
        result |= {k: first[k] for k in ("simulations", "network", "grid", "extend", "greedy", "scores", "chosen", "at_edge", "rule")}
        for key in ("grid", "scores", "chosen", "at_edge"):
            result[key] = {a: by[owner[a]][key][a] for a in order}
        name = f"minatar_fair_tune_{first['game'].lower()}"
    else:
        tuning_keys = ("simulations", "episodes", "seed", "grid", "chosen", "at_edge", "network_seed")
        pieces: dict[tuple[str, int], list[dict]] = {}  # per (method, network seed): its ranges of episodes
        nets: dict[int, dict] = {}
        knobs: dict[str, dict] = {}
        for path, data in parts:
            if {k: data["tuning"].get(k) for k in tuning_keys} != {k: first["tuning"].get(k) for k in tuning_keys}:
                raise SystemExit(f"{path} and {first_path} were evaluated with different tunings")
            for i, net in enumerate(data["networks"]):
                if nets.setdefault(net["seed"], net)["sha256"] != net["sha256"]:
                    raise SystemExit(f"{path}: network seed {net['seed']} is another file than in the other parts")
                for label in data["methods"]:
                    if knobs.setdefault(label, data["knobs"][label]) != data["knobs"][label]:
                        raise SystemExit(f"{path}: {label} with knobs {data['knobs'][label]}, another part has {knobs[label]}")
                    if len(data["episode_returns"][label][i]) != data["episodes"]:
                        raise SystemExit(f"{path}: {label} on the seed-{net['seed']} network has "
                                         f"{len(data['episode_returns'][label][i])} episodes, the part's 'episodes' is {data['episodes']}")
                    diagnostics = data.get("diagnostics", {}).get(label, {})
                    pieces.setdefault((label, net["seed"]), []).append({
                        **{field: data[key][label][i] for field, key in EVAL_CELL_KEYS.items()},
                        "diagnostics": {k: (diagnostics.get(k) or [None] * len(data["networks"]))[i] for k in DIAGNOSTICS},
                        "part": path, "seed": data["seed"],
                    })
        simulations = sorted({int(label.partition("@")[2]) for label in knobs if "@" in label})
        algorithms = [a for a in COMPARED if any(label.partition("@")[0] == a for label in knobs)]
        labels = ["greedy"] + [f"{a}@{n}" for n in simulations for a in algorithms]
        seeds = sorted(nets)
        cells = {key: _joined_cell(key, ranges) for key, ranges in pieces.items()}
        missing = [f"{label} on seed {seed}" for label in labels for seed in seeds if (label, seed) not in cells]
        if missing:
            raise SystemExit(f"the parts do not cover every method on every network: missing {', '.join(missing)}")
        def episodes(key):  # a cell's env seeds: (first, count)
            return cells[key]["seed"], len(cells[key]["returns"])

        reference = ("greedy", seeds[0])  # every cell must hold its episodes, the stage's
        for key in ((label, seed) for label in labels for seed in seeds):
            if episodes(key) != episodes(reference):
                (start, count), (first_seed, total) = episodes(key), episodes(reference)
                raise SystemExit(f"{key[0]} on the seed-{key[1]} network has the episodes of seeds {start}..{start + count - 1}, "
                                 f"greedy on the seed-{seeds[0]} network those of seeds {first_seed}..{first_seed + total - 1}: "
                                 "every cell must hold the same episodes")
        result["seed"], result["episodes"] = episodes(reference)
        grid = {label: [cells[label, seed] for seed in seeds] for label in labels}
        result |= eval_result(grid, [nets[seed] for seed in seeds], simulations, algorithms, first["tuning"],
                               {label: knobs[label] for label in labels}, args.reps)
        name = f"minatar_fair_{first['game'].lower()}"
    result |= {"merged_from": merged_from} | provenance()
    out = Path(args.out)
    write_result(name, result, out=out, argv=args.argv)
    if stage == "eval":
        plot_minatar_fair(out)


def _joined_cell(key: tuple[str, int], ranges: list[dict]) -> dict:
    """One (method, network) cell of an evaluation from its ranges of episodes (each a part's cell and its first env
    seed): joined in the order of their seeds, with no gap and no episode twice (the greedy network is in every part
    of its network: its episodes are the same where ranges overlap, deterministic, and kept once)."""
    label, network = key
    by_seed: dict[int, tuple[float, int, dict]] = {}
    for piece in sorted(ranges, key=lambda piece: piece["seed"]):
        for offset, (ret, length) in enumerate(zip(piece["returns"], piece["lengths"])):
            seen = by_seed.get(piece["seed"] + offset)
            if seen is None:
                by_seed[piece["seed"] + offset] = (ret, length, piece)
            elif label != "greedy" or (seen[0], seen[1]) != (ret, length):
                raise SystemExit(f"{label} on the seed-{network} network is in {seen[2]['part']} and {piece['part']} "
                                 f"with other episodes (env seed {piece['seed'] + offset}): merge disjoint cells")
    order = sorted(by_seed)
    gaps = sorted(set(range(order[0], order[-1] + 1)) - set(order))
    if gaps:
        raise SystemExit(f"{label} on the seed-{network} network has no episode of env seed {', '.join(map(str, gaps))} "
                         f"between its ranges: the parts must leave no gap")
    used = [piece for piece in ranges if any(by_seed[s][2] is piece for s in order)]  # in the parts' order
    if len(used) == 1:
        return used[0]
    counts = [sum(by_seed[s][2] is piece for s in order) for piece in used]
    returns = [by_seed[s][0] for s in order]
    diagnostics = {}
    for name in DIAGNOSTICS:
        values = [(piece["diagnostics"][name], n) for piece, n in zip(used, counts) if piece["diagnostics"][name] is not None]
        diagnostics[name] = sum(v * n for v, n in values) / sum(n for _, n in values) if values else None
    return {"returns": returns, "lengths": [by_seed[s][1] for s in order], "mean_return": sum(returns) / len(returns),
            "wall_time_s": sum(piece["wall_time_s"] for piece in used), "run_dir": [piece["run_dir"] for piece in used],
            "diagnostics": diagnostics, "seed": order[0], "part": [piece["part"] for piece in used]}
