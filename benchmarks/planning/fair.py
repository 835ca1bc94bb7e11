"""The fair MinAtar comparison (``minatar-fair``): knobs tuned on a held-out network, then the tuned searches on other networks with paired differences."""
from __future__ import annotations

import itertools
import json
import math
import os
from pathlib import Path

import numpy as np

from benchmarks.planning.common import FAIR_STATISTICS, OUT, knob_overrides, minatar_config, paired, provenance, to_dict, write_result
from benchmarks.planning.networks import find_networks
from benchmarks.planning.plots import plot_minatar_fair
from torchrl_reg.envs import MINATAR_GAMES
from torchrl_reg.loops.planning import DIAGNOSTICS
from torchrl_reg.planning import ALGORITHMS
from torchrl_reg.planning.algorithms import algorithm_knobs


# -- fair MinAtar comparison -------------------------------------------------------------------------
#: each search's tuning grid on the held-out network (the product of its knobs' values); a knob left out takes
#: KNOB_DEFAULTS. Backed-up values are discounted returns of about 5-30 (init: q), so the
#: temperatures span 0.01-1 (from a near-hard max to a soft one over action gaps of a few units) and UCT's c 0.5-64.
#: DENTS's eps is tuned as MENTS's and BTS's are: until SpaceInvaders it was left at 0.1 (Breakout's best eps for
#: the other two), and on SpaceInvaders BTS's best eps turned out 0.001 (80.1 against 56.6 at eps 0.1), so a DENTS
#: held at 0.1 would not have been at its best.
TUNE_GRID: dict[str, dict[str, list[float]]] = {
    "ments": {"tau": [0.01, 0.1, 1.0], "eps": [0.1, 1.0]},
    "bts": {"alpha": [0.01, 0.1, 1.0], "eps": [0.1, 1.0]},
    "dents": {"alpha": [0.01, 0.1, 1.0], "beta_0": [0.1, 1.0, 10.0], "eps": [0.1, 1.0]},
    "uct": {"c": [0.5, math.sqrt(2.0), 4.0, 16.0, 64.0]},
}


FAIR_DEFAULTS = {  # per stage: simulations per move, episodes per network (or grid point), their first env seed
    "tune": {"simulations": [50], "episodes": 16, "seed": 1000, "network_seeds": [3]},
    "eval": {"simulations": [50, 200], "episodes": 20, "seed": 100, "network_seeds": [0, 1, 2]},
}


def _grid_points(grid: dict[str, list[float]]) -> list[dict[str, float]]:
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def _edge_extensions(grid: dict[str, list[float]], tried: list[dict[str, float]], best: dict[str, float]) -> list[tuple[dict[str, float], str]]:
    """The points one step beyond the tried range of each knob on which ``best`` (a point of ``tried``) sits at an edge.

    A knob tuned over 2 or more values (``grid``) whose best value is the smallest (largest) value tried so far gets
    the next value of the geometric progression of the two smallest (largest) tried values, the other knobs kept at
    ``best``'s: 0.1 out of [0.1, 1] gives 0.01 (12 significant digits). A knob with a value <= 0 is not extended (no geometric step), nor one
    the grid fixes (a single value). Points already tried are left out. Each point comes with its reason."""
    out = []
    for knob, values in grid.items():
        seen = sorted({p[knob] for p in tried})
        if len(values) < 2 or len(seen) < 2 or seen[0] <= 0:
            continue
        value = best[knob]
        if value == seen[0]:
            step, side = seen[0] * seen[0] / seen[1], "smallest"
        elif value == seen[-1]:
            step, side = seen[-1] * seen[-1] / seen[-2], "largest"
        else:
            continue
        point = dict(best) | {knob: float(f"{step:.12g}")}  # 0.01, not 0.1 * 0.1 / 1 = 0.010000000000000002
        if point not in tried:
            out.append((point, f"{knob}={value:g}, the best point's, is the {side} value tried"))
    return out


def _edges(grid: dict[str, list[float]], tried: list[dict[str, float]], best: dict[str, float]) -> list[str]:
    """The knobs of ``grid`` tuned over 2 or more values at whose smallest or largest tried value ``best`` still sits."""
    edges = []
    for knob, values in grid.items():
        seen = sorted({p[knob] for p in tried})
        if len(values) >= 2 and best[knob] in (seen[0], seen[-1]):
            edges.append(knob)
    return edges


def _fair_grid(args) -> dict[str, dict[str, list[float]]]:
    """The tuning grid of ``args.algorithms``: TUNE_GRID with ``--grid``'s algorithms replaced, each point checked."""
    given = json.loads(args.grid) if args.grid else {}
    unknown = set(given) - set(ALGORITHMS)
    if unknown:
        raise SystemExit(f"--grid names {sorted(unknown)}: the algorithms are {list(ALGORITHMS)}")
    grid = {a: given.get(a, TUNE_GRID[a]) for a in args.algorithms}
    for algorithm, knobs in grid.items():
        if not isinstance(knobs, dict) or not knobs or not all(isinstance(v, list) and v for v in knobs.values()):
            raise SystemExit(f"--grid: {algorithm}'s grid must map each knob to a non-empty list of values, got {knobs!r}")
        try:
            for point in _grid_points(knobs):
                algorithm_knobs(algorithm, point)  # refuses a knob the algorithm does not read
        except ValueError as err:
            raise SystemExit(f"--grid: {err}") from None
    return grid


def model_tag(args) -> str:
    """The name of ``--model`` in directories and files: ``determinized``, ``sampled``, ``ensemble5`` (5 futures)."""
    return f"{args.model}{args.futures}" if args.model == "ensemble" else args.model


def _model_overrides(args, algorithm: str) -> tuple[str, ...]:
    """The planner's model: ``--model`` (and ``--futures``) for a search; the greedy network searches nothing, so its
    runs are the determinized study's whatever ``--model`` (the same run directories: a rerun resumes them)."""
    if algorithm == "greedy":
        return ("planner.model=determinized",)
    return (f"planner.model={args.model}",) + ((f"planner.futures={args.futures}",) if args.futures is not None else ())


def _play_all(args, stage: str, game: str, plan: list[tuple[str, dict, str, dict[str, float], int]]) -> tuple[list[dict], dict]:
    """Each ``(label, network, algorithm, knobs, simulations)`` of ``plan`` played for ``args.episodes`` episodes
    through ``recipes/tree_search.py`` (a search: ``args.batch_episodes`` at a time, one batched search per move, in
    ``--model``); the runs' metrics and the settings they share. Every config is validated before the first episode.
    The run directories are ``--run-dir/<game>/<stage>/<label>/seed<network>`` (a search in another model than the
    determinized one: ``<stage>-<model>``, e.g. ``eval-ensemble5``): a stopped benchmark run again resumes them.
    ``--dry-run`` prints the plan (and with ``--estimate-moves``, each run's estimated time) and exits."""
    from recipes import tree_search

    batch = args.batch_episodes or args.episodes
    configs = []
    for label, net, algorithm, knobs, simulations in plan:
        folder = stage if algorithm == "greedy" or args.model == "determinized" else f"{stage}-{model_tag(args)}"
        cfg = minatar_config(
            game, net["checkpoint"], algorithm, knob_overrides(algorithm, knobs) if algorithm != "greedy" else [],
            simulations=simulations, episodes=args.episodes, seed=args.seed, max_steps=args.max_steps,
            run_dir=f"{args.run_dir}/{game}/{folder}/{label}/seed{net['seed']}",
            extra=(f"planner.batch_episodes={batch if algorithm != 'greedy' else 1}", *_model_overrides(args, algorithm),
                   "logger.progress_bar=false"),
        )
        try:
            tree_search.validate(cfg)
        except (ValueError, FileNotFoundError) as err:
            raise SystemExit(f"{label} on the seed-{net['seed']} network: {err}") from None
        configs.append(cfg)
    if args.dry_run:
        _dry_run(args, stage, game, plan, configs)
        raise SystemExit(0)
    outs = []
    for (label, net, *_), cfg in zip(plan, configs):
        out = tree_search.train(cfg)
        if out["status"] != "completed":
            raise SystemExit(f"{out['run_dir']} stopped ({out['status']}): run the same command again to resume it")
        print(f"{game} {stage} {label} network seed {net['seed']}: mean return {out['mean_return']:.3g} over "
              f"{len(out['returns'])} episodes, {out['wall_time_s']:.0f} s", flush=True)
        outs.append(out)
    # what every run shares besides its network, search and budget (the preset's values at this commit, written out)
    planner = to_dict(configs[-1].planner)
    protocol = {
        "task": to_dict(configs[-1].task),
        "evaluator": {k: v for k, v in to_dict(configs[-1].evaluator).items() if k != "checkpoint"},
        "planner": {k: planner[k] for k in ("gamma", "recommend", "q_init")},
    }
    return outs, protocol


def _dry_run(args, stage: str, game: str, plan: list, configs: list) -> None:
    """Print every run of ``plan`` (its config validated) and whether its directory holds a completed run; with
    ``--estimate-moves M``, estimate each run's time from a few moves of it.

    Where the determinized evaluation (``results/planning/minatar_fair_<game>.json``) has the same cell (method,
    network), the estimate is that cell's recorded time times the ratio of this run's cost per move to the
    determinized run's, both measured here, interleaved, so that the load of the machine cancels: each plays its first
    move and its first 1 + M moves (all its episodes at once, as the run plays them) in temporary directories, and its
    cost is the difference of the two times (a run's start, its network and envs, left out) per episode-move. Without
    the cell: the measured cost times ``--max-steps`` moves per episode (an upper bound on the moves; the cost
    measured on a loaded machine is too high). Rough either way: the first moves have every episode in play."""
    import shutil
    import tempfile

    from omegaconf import OmegaConf

    from recipes import tree_search

    lengths, seconds = {}, {}
    reference = OUT / f"minatar_fair_{game.lower()}.json"
    if reference.is_file():
        evaluation = json.loads(reference.read_text())
        seeds = [net["seed"] for net in evaluation["networks"]]
        for label, rows in evaluation["episode_lengths"].items():
            for i, seed in enumerate(seeds):
                lengths[label, seed], seconds[label, seed] = sum(rows[i]), evaluation["wall_time_s"][label][i]

    def cost(cfg) -> float:  # seconds per episode-move after the first move
        times = []
        for moves in (1, 1 + args.estimate_moves):
            tmp = tempfile.mkdtemp(prefix="minatar_fair_estimate_")
            try:
                out = tree_search.train(OmegaConf.merge(cfg, {"task": {"max_steps": moves}, "run_dir": tmp, "logger": {"backend": "none"}}))
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            if out["status"] != "completed":
                raise SystemExit(f"the estimate's run stopped ({out['status']})")
            times.append((out["wall_time_s"], out["moves"]))
        (start, first), (end, last) = times
        return max(end - start, 0.0) / max(last - first, 1)

    total = 0.0
    print(f"{game} {stage}, model {model_tag(args)}: {len(plan)} runs of {args.episodes} episodes")
    for (label, net, algorithm, _, simulations), cfg in zip(plan, configs):
        done = (Path(cfg.run_dir) / "metrics.json").is_file() and \
            json.loads((Path(cfg.run_dir) / "metrics.json").read_text()).get("status") == "completed"
        line = f"  {label:<16} seed {net['seed']}  {cfg.planner.model:<12} {simulations:>4} sims  {cfg.run_dir}" + ("  [completed]" if done else "")
        if args.estimate_moves and not done:
            key = (label, net["seed"])
            per_move = cost(cfg)
            if key in seconds and cfg.planner.model != "determinized":
                ratio = per_move / max(cost(OmegaConf.merge(cfg, {"planner": {"model": "determinized", "futures": 1}})), 1e-9)
                estimate = ratio * seconds[key]
                line += f"  {per_move * 1e3:.1f} ms per episode-move, {ratio:.2f}x the determinized run's {seconds[key] / 60:.1f} min"
            elif key in seconds:
                estimate = seconds[key]
                line += f"  the determinized run's {seconds[key] / 60:.1f} min ({per_move * 1e3:.1f} ms per episode-move here)"
            else:
                estimate = per_move * args.episodes * args.max_steps
                line += f"  {per_move * 1e3:.1f} ms per episode-move x {args.max_steps} moves x {args.episodes} episodes"
            total += estimate
            line += f": ~{estimate / 60:.1f} min"
        print(line, flush=True)
    if args.estimate_moves:
        print(f"estimated total: ~{total / 3600:.2f} core-hours (one thread; runs marked completed are resumed, not replayed)")
    if stage == "tune":
        print("(a tuning then plays up to --extend rounds of points beyond the grid's edges, unknown before the grid is played)")


def _diagnostics(out: dict) -> dict[str, float | None]:
    """A planning run's search diagnostics (torchrl_reg.loops.planning.DIAGNOSTICS) averaged over its episodes; None
    where none was recorded (greedy, or a run played before the diagnostics existed)."""
    means = {}
    for key in DIAGNOSTICS:
        values = [v for v in out.get(key) or [] if v is not None]
        means[key] = float(np.mean(values)) if values else None
    return means


EVAL_CELL_KEYS = {  # one (method, network) cell of an eval result: the result's key of each of its fields
    "returns": "episode_returns", "lengths": "episode_lengths", "mean_return": "returns", "wall_time_s": "wall_time_s",
    "run_dir": "run_dirs",
}


def _cell(out: dict) -> dict:
    """One planning run's share of an eval result (EVAL_CELL_KEYS, and its diagnostics' means)."""
    return {k: out[k] for k in EVAL_CELL_KEYS} | {"diagnostics": _diagnostics(out)}


def eval_result(cells: dict[str, list[dict]], nets: list[dict], simulations: list[int], algorithms: list[str],
                 tuning: dict, knobs: dict[str, dict], reps: int) -> dict:
    """The eval stage's result from its cells (``cells[label][i]``: the method ``label`` on ``nets[i]``): every
    episode, the per-network means and diagnostics, and the paired comparisons (FAIR_STATISTICS)."""
    episodes = {label: [c["returns"] for c in row] for label, row in cells.items()}
    comparisons = {}
    for n in simulations:
        for i, a in enumerate(algorithms):
            comparisons[f"{a}@{n} - greedy"] = paired(episodes[f"{a}@{n}"], episodes["greedy"], reps)
            for b in algorithms[i + 1:]:
                comparisons[f"{a}@{n} - {b}@{n}"] = paired(episodes[f"{a}@{n}"], episodes[f"{b}@{n}"], reps)
    result = {
        "simulations": simulations, "networks": nets, "tuning": tuning, "methods": list(cells), "knobs": knobs,
        **{key: {label: [c[field] for c in row] for label, row in cells.items()} for field, key in EVAL_CELL_KEYS.items()},
        # per network, the mean over its episodes' moves: how often the search kept the network's greedy action,
        # the network's Q gap of the actions played, and their root visit share (torchrl_reg.loops.planning.DIAGNOSTICS)
        "diagnostics": {label: {key: [c["diagnostics"][key] for c in row] for key in DIAGNOSTICS} for label, row in cells.items()},
        "comparisons": comparisons,
        "statistics": FAIR_STATISTICS,
        "bootstrap_reps": reps,
    }
    if {"ments", "uct"} <= set(algorithms):
        # the MENTS paper's Atari table (Xiao et al., NeurIPS 2019, Table 1) has MENTS above UCT on 4 of 5 games
        result["ments_vs_uct"] = {str(n): comparisons[f"ments@{n} - uct@{n}"]["verdict"] for n in simulations}
    return result


def _fair_check(args, game: str) -> dict | None:
    """Every input of a minatar-fair stage checked before any episode is played; the tuning result for --stage eval."""
    bad = [a for a in args.algorithms if a not in ALGORITHMS]
    if bad:
        raise SystemExit(f"--algorithms {','.join(args.algorithms)}: {bad} unknown, the searches are {list(ALGORITHMS)}")
    if any(n < 1 for n in args.simulations) or args.max_steps < 1 or args.reps < 1:
        raise SystemExit(f"--simulations {args.simulations}, --max-steps {args.max_steps}, --reps {args.reps}: must be >= 1")
    if args.extend < 0:
        raise SystemExit(f"--extend {args.extend}: rounds beyond the grid's edges, 0 (the grid only) or more")
    if args.episodes < 2:
        raise SystemExit(f"--episodes {args.episodes}: the paired statistics need at least 2 episodes per network")
    if (args.model == "ensemble") != (args.futures is not None):
        raise SystemExit(f"--model {args.model} --futures {args.futures}: --futures K (2 or more, dividing every --simulations) "
                         "goes with --model ensemble, and only with it")
    if args.estimate_moves < 0 or (args.estimate_moves and not args.dry_run):
        raise SystemExit(f"--estimate-moves {args.estimate_moves}: a number of moves >= 1, with --dry-run")
    if args.stage == "tune":
        if len(args.simulations) != 1 or len(args.network_seeds) != 1:
            raise SystemExit(f"--stage tune takes one budget and one held-out network, got --simulations {args.simulations} "
                             f"--network-seeds {args.network_seeds}")
        return None
    # another model is evaluated with the knobs tuned in the determinized one (the held-out tuning) unless --tuned says
    path = Path(args.tuned) if args.tuned else (args.out if args.model == "determinized" else OUT) / f"minatar_fair_tune_{game.lower()}.json"
    if not path.is_file():
        raise SystemExit(f"{path} is missing: run --stage tune for {game} first (or give --tuned)")
    tuned = json.loads(path.read_text())
    missing = [a for a in args.algorithms if a not in tuned.get("chosen", {})]
    if tuned.get("game") != game or missing:
        raise SystemExit(f"{path} tuned {tuned.get('game')} {sorted(tuned.get('chosen', {}))}; this run needs {game} {args.algorithms}")
    held_out = tuned["network"]["seed"]
    if held_out in args.network_seeds:
        raise SystemExit(f"--network-seeds {args.network_seeds} holds the network the knobs were tuned on (seed {held_out})")
    return tuned | {"file": str(path)}


def minatar_fair(args) -> None:
    """A fair MinAtar comparison of MENTS, BTS, DENTS and UCT with M-DQN networks as prior and leaf value.

    The plan, in order (each command on one core, one thread; the three games' commands can run side by side):

    1. Networks, ~4-5 core-hours: ``OMP_NUM_THREADS=1 taskset -c 0 python -m torchrl_reg.sweep
       benchmarks/minatar_networks.yaml --executor local --dir runs/minatar_networks`` (M-DQN, learning_minatar's
       protocol, 3 games x seeds 0-3; seed 3 held out for tuning; ~20-25 min each with a core to itself: the
       measurement is in that file's comment).
    2. Tuning, one game per command, ~0.5-2 core-hours per game (Breakout: 26 grid points in 27 min beside a CI
       run, its 6 extensions in 9 min): ``OMP_NUM_THREADS=1 taskset -c 1 python -m benchmarks.planning
       minatar-fair --stage tune --game Breakout --networks runs/minatar_networks``, then
       SpaceInvaders and Asterix. Grid: TUNE_GRID (35 points; Breakout's first 26 without DENTS's eps), 16 episodes per point, played as one batch, at 50
       simulations per move, on the seed-3 network; the greedy network's return on the same episodes for reference.
       Where an algorithm's best point sits at the smallest or largest value of a knob, the optimum may lie beyond
       the grid: up to ``--extend`` (2) rounds play the point one geometric step further (eps 0.1 of [0.1, 1] ->
       0.01), the other knobs at the best point's. On Breakout's first tuning every algorithm's best point was at
       the grid's least exploratory edge (eps 0.1, alpha 0.01, beta_0 0.1, c 0.5), which is why.
       Writes ``results/planning/minatar_fair_tune_<game>.json``: every point's episode returns and mean (an
       extension's with its round and reason), ``chosen``: the point of highest mean return per algorithm (ties:
       the first played), and ``at_edge``: the knobs still at an edge of the values tried.
    3. Evaluation, one game per command, ~2.5-6 core-hours per game: ``... minatar-fair --stage eval --game
       Breakout --networks runs/minatar_networks``: on the seed-0, 1 and 2 networks, the greedy network and the four
       searches with their tuned knobs at 50 and 200 simulations per move, 20 episodes per network (env seeds
       100-119 for every method: paired), the searches' 20 episodes played as one batch (``planner.batch_episodes``).
       Writes ``results/planning/minatar_fair_<game>.json`` (every episode's return and length, per-network means,
       paired differences with bootstrap intervals: FAIR_STATISTICS; ``ments_vs_uct``: the verdict per budget) and
       ``minatar_fair.png``.
    4. ``python -m benchmarks.planning plot`` redraws the figures; the RESULTS.md rows come from the JSONs.

    A stage too long for one sitting (SpaceInvaders' greedy episodes average ~560 moves against Breakout's ~64) is
    played in parts, e.g. ``--algorithms ments,bts`` and ``--algorithms dents,uct`` for a tuning, one
    ``--network-seeds`` (and ``--algorithms`` subset) per part for an evaluation, each part's JSON committed under
    ``results/planning/parts/`` as it ends; ``minatar-fair-merge`` then writes the stage's JSON from them. A cell
    too long for one sitting may be played in ranges of episodes, ``--seed S --episodes E`` with a ``--run-dir`` of
    its own: ranges of one size ``E`` from the stage's seed are that cell played with ``--batch-episodes E``
    (``minatar-fair-merge`` joins them in the order of their seeds).

    Cost of 2-3: simulations = episodes x networks x moves per episode x simulations per move; the batched search
    ran 1,100-1,200 simulations per CPU second (MENTS) and ~2,000 (UCT) on MinAtar Breakout with the M-DQN conv
    network (a briefly trained one: the cost does not depend on the weights), B = 20, 50 and 200 simulations, one
    thread on a shared 2-core VM (load ~4). At L moves per episode a game's tuning is ~16 L CPU seconds and its
    evaluation ~45 L; L (the trained networks' episodes, longer when the search plays well, at most
    ``--max-steps`` = 1000) is unknown before step 1: the training returns suggest ~200 (Breakout) to ~500
    (SpaceInvaders), so steps 2-3 come to ~10-20 core-hours for the three games, ~13-23 with step 1.
    Measured (2026-11-27, one thread per core, 2-core VM): the committed networks' greedy episodes average 64 moves
    on Breakout, 562 on SpaceInvaders and 582 on Asterix (16 episodes, env seeds 1000-1015); Breakout's evaluation
    took ~10 min per network (all 8 searches); SpaceInvaders' tuning points took 54-274 s (UCT) and 145-213 s
    (MENTS) against Breakout's 34-103 s, ~3.5x.

    **Other models** (``--model``; default ``determinized``, the model of the steps above): ``ensemble`` with
    ``--futures K`` (K determinized futures per move, each ``simulations / K`` simulations, roots combined:
    ``torchrl_reg.planning.ensemble``) and ``sampled`` (fresh outcomes at every chance visit: chance nodes). An evaluation in another model reads the determinized
    tuning (``results/planning/minatar_fair_tune_<game>.json``: knobs tuned on the held-out network; ``--tuned`` for
    another), replays the greedy network's runs of the determinized study (the same run directories: resumed, not
    replayed, where they are complete), puts its searches' runs under ``<run-dir>/<game>/eval-<model>`` (``ensemble5``
    for 5 futures) and writes ``results/planning/models/<model>/minatar_fair_<game>.json`` (its ``model`` and
    ``futures`` keys; ``--out`` for elsewhere; merged parts need ``minatar-fair-merge ... --out`` the same folder).
    The rows of the model study, one thread per command (each command may go to a core of its own, ``taskset -c``,
    to run side by side; ``--dry-run`` first checks every config and lists the runs, ``--dry-run --estimate-moves 5``
    also times a few moves of each run and estimates it)::

        N=benchmarks/results/planning/networks
        for G in Breakout SpaceInvaders Asterix; do
          OMP_NUM_THREADS=1 taskset -c 1 python -m benchmarks.planning minatar-fair --stage eval --game $G \
            --networks $N/${G}_seed0 $N/${G}_seed1 $N/${G}_seed2 --model ensemble --futures 5 --simulations 50
          OMP_NUM_THREADS=1 taskset -c 1 python -m benchmarks.planning minatar-fair --stage eval --game $G \
            --networks $N/${G}_seed0 $N/${G}_seed1 $N/${G}_seed2 --model sampled --simulations 50
        done
        OMP_NUM_THREADS=1 taskset -c 1 python -m benchmarks.planning minatar-fair --stage eval --game SpaceInvaders \
          --networks $N/SpaceInvaders_seed0 $N/SpaceInvaders_seed1 $N/SpaceInvaders_seed2 --model sampled \
          --simulations 200 --out benchmarks/results/planning/models/sampled200

    (the sampled rows: the batched search with chance nodes; SpaceInvaders at 200 writes its own folder, so that its
    JSON does not replace the one at 50). Each
    command writes one JSON; a game's ensemble and sampled rows go
    beside its determinized and oracle rows in RESULTS.md, and ``python -m benchmarks.planning minatar-models`` sets
    every model's JSON that exists side by side (``minatar_models.json`` and ``.png``). Estimated cost (``--dry-run --estimate-moves 5``, network
    seed 0, 2026-11-27, one thread on the shared 2-core VM at load ~6, so the ratios are rough): the ensemble of 5
    futures costs 0.22-0.47x the determinized search per move (10 batched simulation steps of 100 rows per move
    instead of 50 of 20), so the four searches at 50 simulations on 3 networks take ~2 min (Breakout), ~10-20 min
    (SpaceInvaders) and ~8-12 min (Asterix) against the determinized evaluation's recorded 4.9, 41.9 and 25.2 min.
    The sampled model (the batched search with chance nodes, measured the same way on SpaceInvaders and Asterix) costs
    1.4-2.0x the determinized search per move (UCT on Asterix 1.0x): ~10 min (Breakout), ~1.2 core-hours
    (SpaceInvaders) and ~0.7 (Asterix) at 50 simulations, and ~7 core-hours for SpaceInvaders at 200 (the
    determinized evaluation's 230 min, ~1.8x). One ``TreeSearch`` per episode (the single-tree search's chance nodes)
    measured 1.6-19x, median ~4.7x: 3.6 core-hours for SpaceInvaders at 200 on the seed-0 network alone. Measured
    (2026-11-27 and 28, one thread per core beside another benchmark), the sampled evaluations cost more than estimated:
    0.3 core-hours on Breakout, 2.2 on Asterix and 5.2 on SpaceInvaders at 50 simulations, 1.9-7.6x the determinized
    search's wall time per move played, and on SpaceInvaders the episodes last longer (62-88% reach the 1000-move cap,
    13-57% determinized). SpaceInvaders at 200 costs 7-9x the time at 50 per run (UCT: 65 and 78 min on networks 0
    and 1), ~30-40 core-hours in all: play it in parts of one network and one method each, ``--network-seeds S
    --algorithms A``, merged by ``minatar-fair-merge``. A stop signal (SIGTERM) saves the episodes in progress and the
    same command resumes them from that move, so the 20 episodes of a part (3-6 hours for a soft search) are played
    at once and span as many sittings as they need; searching 20 at once costs ~0.6x per episode-move what 5 at once
    do (MENTS at 200 simulations, first 10 moves: 0.37 s against 0.58 s). Since a914ac0 the sampled model keeps the
    transitions that drew nothing from the stream (on SpaceInvaders, all of them) instead of stepping the game again:
    the first 4 moves of the 20 episodes of MENTS at 200 simulations on network 0 took 37 and 47 s against 99 and 89 s
    before (runs alternated on one core beside another benchmark; returns, lengths and diagnostics identical). With
    them (commit 8b4483d, one thread on one core of a 2-core AMD EPYC VM with AVX-512, beside another part), a part of
    20 episodes at 200 simulations took 17-25 min for BTS and 29-36 min for DENTS, and a range of 10 episodes
    12-22 min: the whole SpaceInvaders stage at 200 is a few core-hours, not tens.

    Every episode runs through ``recipes/tree_search.py`` (its minatar preset: init q, soft leaf values at
    prior_tau 0.1, gamma 0.99, sticky actions 0.1, at most ``--max-steps`` moves), each in its own run directory
    under ``--run-dir``: a stopped stage run again resumes where it stopped. The JSONs hold the commands, the
    networks (checkpoint, sha256, training command and metrics), the knobs, the code commit and the machine.
    """
    game = next((g for g in MINATAR_GAMES if g.lower() == args.game.lower().replace("_", "")), None)
    if game is None:
        raise SystemExit(f"--game {args.game}: one of {list(MINATAR_GAMES)}")
    args.out = Path(args.out) if args.out else OUT if args.model == "determinized" else OUT / "models" / model_tag(args)
    for key, value in FAIR_DEFAULTS[args.stage].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    tuned = _fair_check(args, game)
    grid = _fair_grid(args) if args.stage == "tune" else None
    nets = find_networks(args.networks, game, args.network_seeds)
    load_at_start = os.getloadavg()
    result = {
        "stage": args.stage, "game": game, "episodes": args.episodes, "batch_episodes": args.batch_episodes or args.episodes,
        "seed": args.seed, "max_steps": args.max_steps,
    }
    if args.model != "determinized":  # absent: the determinized model, the study's first
        result |= {"model": args.model, "futures": args.futures}
    if args.stage == "tune":
        (net,) = nets
        (simulations,) = args.simulations
        def label(a: str, p: dict[str, float]) -> str:
            return f"{a}@{simulations}/" + ",".join(f"{k}={v:g}" for k, v in p.items())

        points = [(algorithm, point) for algorithm in args.algorithms for point in _grid_points(grid[algorithm])]
        plan = [("greedy", net, "greedy", {}, 1)]  # greedy: no search, its simulations unused
        plan += [(label(a, p), net, a, p, simulations) for a, p in points]
        (greedy, *outs), protocol = _play_all(args, "tune", game, plan)
        scores: dict[str, list[dict]] = {}
        tried: dict[str, list[dict[str, float]]] = {}

        def record(algorithm: str, point: dict[str, float], out: dict, **extra) -> None:
            tried.setdefault(algorithm, []).append(point)
            scores.setdefault(algorithm, []).append({
                "knobs": algorithm_knobs(algorithm, point), "mean_return": out["mean_return"],
                "episode_returns": out["returns"], "wall_time_s": out["wall_time_s"], **_diagnostics(out), **extra,
            })

        for (algorithm, point), out in zip(points, outs):
            record(algorithm, point, out)

        def best(algorithm: str) -> int:  # max keeps the first of equal means: ties go to the first point played
            rows = scores[algorithm]
            return max(range(len(rows)), key=lambda i: rows[i]["mean_return"])

        # a best point at the edge of the values tried says the optimum may lie beyond: step past it (--extend rounds)
        for round_ in range(1, args.extend + 1):
            more = [(a, p, why) for a in args.algorithms for p, why in _edge_extensions(grid[a], tried[a], tried[a][best(a)])]
            if not more:
                break
            outs, _ = _play_all(args, "tune", game, [(label(a, p), net, a, p, simulations) for a, p, _ in more])
            for (algorithm, point, why), out in zip(more, outs):
                record(algorithm, point, out, extension={"round": round_, "reason": why})
        result |= {
            "simulations": simulations, "network": net, "grid": grid, "extend": args.extend,
            "greedy": {"mean_return": greedy["mean_return"], "episode_returns": greedy["returns"]},
            "scores": scores,
            "chosen": {a: scores[a][best(a)]["knobs"] for a in args.algorithms},
            # knobs whose chosen value is still the smallest or largest tried: the tuning did not bracket them
            "at_edge": {a: _edges(grid[a], tried[a], tried[a][best(a)]) for a in args.algorithms},
            "rule": (
                "chosen: the point of highest mean return over the episodes, among the grid's and the extensions' "
                "(ties: the first played). Extensions: after the grid, while an algorithm's best point has a knob at "
                "the smallest or largest value tried (--extend rounds at most), the point one geometric step beyond "
                "it (the ratio of the two outermost values tried), the other knobs at the best point's, is played too"
            ),
        }
    else:
        labels = ["greedy"] + [f"{a}@{n}" for n in args.simulations for a in args.algorithms]
        knobs = {"greedy": {}} | {f"{a}@{n}": tuned["chosen"][a] for n in args.simulations for a in args.algorithms}
        # greedy: no search, its simulations unused
        plan = [(label, net, label.partition("@")[0], knobs[label], int(label.partition("@")[2] or 1)) for label in labels for net in nets]
        outs, protocol = _play_all(args, "eval", game, plan)
        played = iter(outs)
        cells = {label: [_cell(next(played)) for _ in nets] for label in labels}
        tuning = {k: tuned.get(k) for k in ("file", "command", "simulations", "episodes", "seed", "grid", "chosen", "at_edge")}
        result |= eval_result(cells, nets, args.simulations, args.algorithms, tuning | {"network_seed": tuned["network"]["seed"]},
                               knobs, args.reps)
    result |= {"protocol": protocol} | provenance() | {"load_average_at_start": load_at_start, "load_average_at_end": os.getloadavg()}
    suffix = "tune_" if args.stage == "tune" else ""
    write_result(f"minatar_fair_{suffix}{game.lower()}", result, out=args.out, argv=args.argv)
    if args.stage == "eval":
        plot_minatar_fair(args.out)
