"""A ``minatar-fair`` stage played in parts, merged into the stage's JSON (``minatar-fair-merge``)."""
from __future__ import annotations

import json
from pathlib import Path

from benchmarks.planning.common import _provenance, _write
from benchmarks.planning.plots import _plot_minatar_fair
from benchmarks.planning.fair import EVAL_CELL_KEYS, _eval_result
from torchrl_reg.loops.planning import DIAGNOSTICS
from torchrl_reg.planning import ALGORITHMS


FAIR_SHARED = ("stage", "game", "episodes", "batch_episodes", "seed", "max_steps", "protocol", "model", "futures")
#: what the parts of an evaluation may differ in: the episodes searched at once (a setting of speed and of the
#: order of the planner's draws, not of what an episode is: its env seed, network, knobs and model are the same)
EVAL_PART_SETTINGS = ("batch_episodes",)


def minatar_fair_merge(args) -> None:
    """Results of one ``minatar-fair`` stage played in parts (disjoint algorithms of a tuning; disjoint (method,
    network) cells of an evaluation: ``--network-seeds`` and ``--algorithms`` subsets) merged into the JSON the
    whole stage writes, as if one command had played it: the shared settings, network files and tuned knobs must
    agree (but an evaluation's EVAL_PART_SETTINGS), a cell in two parts must hold the same episodes (the greedy
    network, in every part of its network), and an evaluation must cover every method on every network. The paired
    comparisons are computed afresh from the episodes. Parts let a stage of many core-hours be played, and its
    pieces committed, across machines whose run directories do not survive (``merged_from``: each part's
    file, command, code commit and machine)."""
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
    free = EVAL_PART_SETTINGS if stage == "eval" else ()
    for path, data in parts[1:]:
        for key in (k for k in shared if k not in free):
            if data.get(key) != first.get(key):
                raise SystemExit(f"{path} and {first_path} differ in {key!r}: {data.get(key)!r} against {first.get(key)!r}")
    merged_from = [{"file": path, **{k: data.get(k) for k in ("command", "code_commit", "code_changed_files", "machine", *free)}}
                   for path, data in parts]
    result = {key: first[key] for key in FAIR_SHARED if key in first}  # model, futures: absent when determinized
    for key in free:  # one value where the parts agree, else their values in order (each part's in merged_from)
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
        order = [a for a in ALGORITHMS if a in owner]
        by = {path: data for path, data in parts}
        result |= {k: first[k] for k in ("simulations", "network", "grid", "extend", "greedy", "scores", "chosen", "at_edge", "rule")}
        for key in ("grid", "scores", "chosen", "at_edge"):
            result[key] = {a: by[owner[a]][key][a] for a in order}
        name = f"minatar_fair_tune_{first['game'].lower()}"
    else:
        tuning_keys = ("simulations", "episodes", "seed", "grid", "chosen", "at_edge", "network_seed")
        cells: dict[tuple[str, int], dict] = {}
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
                    seen = cells.get((label, net["seed"]))
                    if seen is not None:
                        # the greedy network is in every part of a network: the same episodes (deterministic), kept once
                        if [seen["returns"], seen["lengths"]] != [data["episode_returns"][label][i], data["episode_lengths"][label][i]]:
                            raise SystemExit(f"{label} on the seed-{net['seed']} network is in {seen['part']} and {path} "
                                             "with other episodes: merge disjoint cells")
                        continue
                    diagnostics = data.get("diagnostics", {}).get(label, {})
                    cells[label, net["seed"]] = {
                        **{field: data[key][label][i] for field, key in EVAL_CELL_KEYS.items()},
                        "diagnostics": {k: (diagnostics.get(k) or [None] * len(data["networks"]))[i] for k in DIAGNOSTICS},
                        "part": path,
                    }
        simulations = sorted({int(label.partition("@")[2]) for label in knobs if "@" in label})
        algorithms = [a for a in ALGORITHMS if any(label.partition("@")[0] == a for label in knobs)]
        labels = ["greedy"] + [f"{a}@{n}" for n in simulations for a in algorithms]
        seeds = sorted(nets)
        missing = [f"{label} on seed {seed}" for label in labels for seed in seeds if (label, seed) not in cells]
        if missing:
            raise SystemExit(f"the parts do not cover every method on every network: missing {', '.join(missing)}")
        grid = {label: [cells[label, seed] for seed in seeds] for label in labels}
        result |= _eval_result(grid, [nets[seed] for seed in seeds], simulations, algorithms, first["tuning"],
                               {label: knobs[label] for label in labels}, args.reps)
        name = f"minatar_fair_{first['game'].lower()}"
    result |= {"merged_from": merged_from} | _provenance()
    out = Path(args.out)
    _write(name, result, out=out, argv=args.argv)
    if stage == "eval":
        _plot_minatar_fair(out)
