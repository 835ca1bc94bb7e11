"""MinAtar studies of the model and the cost: the earlier comparison (``minatar``), the model error (``minatar-model-error``), the oracle model (``minatar-oracle``) and replayed edges (``minatar-replay-speed``)."""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.planning.common import FAIR_STATISTICS, OUT, knob_overrides, minatar_config, paired, provenance, to_dict, write_result
from benchmarks.planning.networks import NETWORKS_OUT
from torchrl_reg.loops.planning import DIAGNOSTICS


def minatar_replay_speed(args) -> None:
    """The cost of a MinAtar search before and after the search replayed tried edges (a node's state and an
    edge's reward kept in the tree, the emulator stepped once per simulation) and BatchedMinAtar copied its game
    by attribute kind instead of ``copy.deepcopy``: ``before`` runs the same code with both turned off
    (``deterministic_rewards = False``, a deep-copying ``copy_minatar_game``), ``after`` as shipped. Per game and
    search (the knobs of the Breakout tuning), ``--episodes`` episodes of ``--moves`` moves at 50 simulations as one
    batched search per move on the committed seed-0 network, the two interleaved ``--repeats`` times; the
    episodes, returns and diagnostics of the two must be the same (checked). Ratio: median before / median after."""
    import copy
    import shutil
    import tempfile

    import torchrl_reg.planning.snapshot_simulators as snapshots
    from recipes import tree_search

    fast = snapshots.copy_minatar_game
    modes = {"before": (False, lambda game, rng: copy.deepcopy(game, {id(game.random): rng})), "after": (True, fast)}
    knobs = json.loads((OUT / "minatar_fair_tune_breakout.json").read_text())["chosen"]
    rows = []
    try:
        for game in args.games.split(","):
            checkpoint = OUT / "networks" / f"{game}_seed0" / "checkpoint.pt"
            for algorithm in args.algorithms.split(","):
                times, seen = {mode: [] for mode in modes}, {}
                for repeat in range(args.repeats):
                    for mode, (replay, copier) in modes.items():
                        snapshots.SnapshotStore.deterministic_rewards, snapshots.copy_minatar_game = replay, copier
                        run_dir = tempfile.mkdtemp(prefix="replay_speed_")
                        cfg = minatar_config(game, str(checkpoint), algorithm, knob_overrides(algorithm, knobs[algorithm]),
                                              simulations=50, episodes=args.episodes, seed=100, max_steps=args.moves, run_dir=run_dir,
                                              extra=(f"planner.batch_episodes={args.episodes}", "planner.model=determinized", "logger.progress_bar=false"))
                        start = time.perf_counter()
                        out = tree_search.train(cfg)
                        times[mode].append(time.perf_counter() - start)
                        shutil.rmtree(run_dir, ignore_errors=True)
                        played = {k: out[k] for k in ("returns", "lengths", *DIAGNOSTICS)}
                        if seen.setdefault(mode, played) != played or seen.get("before", played) != played:
                            raise SystemExit(f"{game} {algorithm}: the {mode} run played other episodes than the first run")
                ratio = float(np.median(times["before"]) / np.median(times["after"]))
                rows.append({"game": game, "algorithm": algorithm, "knobs": knobs[algorithm], "before_s": times["before"],
                             "after_s": times["after"], "ratio": ratio, "moves": int(sum(seen["after"]["lengths"])),
                             "returns": seen["after"]["returns"]})
                print(f"{game} {algorithm}: {np.median(times['before']):.1f} s -> {np.median(times['after']):.1f} s, {ratio:.2f}x", flush=True)
    finally:
        snapshots.SnapshotStore.deterministic_rewards, snapshots.copy_minatar_game = True, fast
    write_result("minatar_replay_speed", {"rows": rows, "episodes": args.episodes, "moves": args.moves, "simulations": 50,
                                    "repeats": args.repeats, "definition": minatar_replay_speed.__doc__, **provenance()},
           out=Path(args.out))


def _batch(evaluation: dict) -> int:
    """The episodes an evaluation searched at once (a merged one's parts may differ: their largest; a speed setting)."""
    batch = evaluation.get("batch_episodes")
    return max(batch) if isinstance(batch, list) else batch or evaluation["episodes"]


def minatar_model_error(args) -> None:
    """How far the search's model of a MinAtar game strays from the real game. ``BatchedMinAtar.roots`` copies the
    real game at every move with a fresh random stream (the planner's), so whatever the game draws after the root
    (sticky actions; Asterix's spawns of enemies and gold, each lane, side and kind drawn; Breakout's ball start;
    SpaceInvaders draws nothing) the model draws anew. From every move of ``--episodes`` real episodes played with
    uniformly random actions (``minatar.Environment`` seeded 100, 101, ...), the model replays the real actions of the
    next h moves: ``obs_differs[h]`` is the share of those starts whose model observation after h moves is not the
    real one, ``return_error[h]`` the mean |model return - real return| over the h moves (undiscounted), counted
    where the real episode lasts h more moves. Per sticky-action probability: the preset's 0.1, and 0 (the game's own
    draws alone)."""
    from torchrl_reg.planning import BatchedMinAtar

    horizons = [int(h) for h in args.horizons.split(",")]
    rows = []
    for game in args.games.split(","):
        for sticky in (0.1, 0.0):
            row = _model_error(BatchedMinAtar(game, sticky_action_prob=sticky, seed=0, model="determinized"), args.episodes, args.max_steps, horizons)
            rows.append({"game": game, "sticky_action_prob": sticky, **row})
            print(f"{game} sticky {sticky}: " + ", ".join(f"h={h}: {row['obs_differs'][str(h)]} differ, |dR| {row['return_error'][str(h)]}" for h in horizons), flush=True)
    result = {"rows": rows, "episodes": args.episodes, "max_steps": args.max_steps, "horizons": horizons,
              "definition": minatar_model_error.__doc__, **provenance()}
    out = Path(args.out)
    write_result("minatar_model_error", result, out=out)
    _plot_model_error(out, result)


def _model_error(sim, episodes: int, max_steps: int, horizons: list[int]) -> dict:
    """:func:`minatar_model_error`'s measurement for one model ``sim`` (a ``BatchedMinAtar``): its row's numbers."""
    import minatar

    sticky = sim.env.sticky_action_prob
    differs = {h: [] for h in horizons}
    errors = {h: [] for h in horizons}
    moves = 0
    for episode in range(episodes):
        env = minatar.Environment(sim.game, sticky_action_prob=sticky)
        env.seed(100 + episode)
        env.reset()
        actions = np.random.default_rng(100 + episode).integers(sim.num_actions, size=max_steps)
        # the real episode first: its observation and reward after every move
        starts, real_obs, real_rew = [], [], []
        for t in range(max_steps):
            state = sim.roots([env], seed=t)
            if not np.array_equal(sim.observation(state)[0].numpy(), np.moveaxis(env.state(), -1, 0).astype(np.uint8)):
                raise SystemExit(f"{sim.game}: the model's root is not the real game at move {t} of episode {episode}")
            model = []  # the model's observation and return after each of the next max(horizons) moves
            ret = 0.0
            for k in range(max(horizons)):
                if t + k >= max_steps:
                    break
                state, reward, done = sim.step(state, torch.tensor([int(actions[t + k])]))
                ret += float(reward[0])
                model.append((sim.observation(state)[0].numpy(), ret, bool(done[0])))
                if bool(done[0]):
                    break
            starts.append(model)
            real_obs.append(np.moveaxis(env.state(), -1, 0).astype(np.uint8))
            reward, terminal = env.act(int(actions[t]))
            real_rew.append(float(reward))
            moves += 1
            if terminal:
                break
        real_obs.append(np.moveaxis(env.state(), -1, 0).astype(np.uint8))
        n = len(real_rew)  # moves played; real_obs[i] is the observation before move i (and after the last)
        for t, model in enumerate(starts):
            for h in horizons:
                if t + h > n:
                    continue
                real_return = sum(real_rew[t:t + h])
                if len(model) < h:  # the model's episode ended sooner than the real one
                    differs[h].append(1.0)
                    errors[h].append(abs(model[-1][1] - real_return))
                    continue
                obs, ret, _ = model[h - 1]
                # the real game's last observation is its terminal screen: compared like any other
                differs[h].append(float(not np.array_equal(obs, real_obs[t + h])))
                errors[h].append(abs(ret - real_return))
    return {
        "moves": moves,
        # None where no real episode lasted h more moves
        "obs_differs": {str(h): float(np.mean(differs[h])) if differs[h] else None for h in horizons},
        "return_error": {str(h): float(np.mean(errors[h])) if errors[h] else None for h in horizons},
        "starts": {str(h): len(differs[h]) for h in horizons},
    }


def minatar_oracle(args) -> None:
    """Whether the model error explains a game's results (:func:`minatar_model_error`): the fair evaluation's
    searches (its knobs, 50 simulations, its episodes, env seeds and move cap, one batched search per move)
    replayed with the **oracle model** (``planner.model=oracle``: ``BatchedMinAtar(model="oracle").roots`` copies the
    real game's own random stream instead of a fresh one), so the model's future is the real one for the same actions (sticky actions and spawns included;
    checked first: the oracle's screens equal the real ones 10 moves ahead, random play). A diagnostic, not a
    planner: no agent can read the env's stream. Paired against the same episodes of the determinized searches and
    of the greedy network, read from the evaluation JSON (``--eval``), and the oracle searches against each other."""

    from recipes import tree_search
    from torchrl_reg.planning import BatchedMinAtar

    evaluation = json.loads(Path(args.eval).read_text())
    game, seeds = evaluation["game"], [net["seed"] for net in evaluation["networks"]]
    labels = [f"{a}@{args.simulations}" for a in args.algorithms.split(",")]
    missing = [label for label in labels if label not in evaluation["knobs"]]
    if missing:
        raise SystemExit(f"{args.eval} has no {', '.join(missing)} (it has {', '.join(evaluation['knobs'])})")
    check = _model_error(BatchedMinAtar(game, sticky_action_prob=0.1, seed=0, model="oracle"), 1, 60, [10])
    if check["obs_differs"]["10"] != 0.0:
        raise SystemExit(f"{game}: the oracle model strays from the real game ({check})")
    episodes = {label: [] for label in labels}
    for label in labels:
        algorithm = label.partition("@")[0]
        for net in evaluation["networks"]:
            run_dir = f"{args.run_dir}/{game}/oracle/{label}/seed{net['seed']}"
            # the committed network where the evaluation's path is another machine's; the same file either way
            checkpoint = Path(net["checkpoint"])
            if not checkpoint.exists():
                checkpoint = NETWORKS_OUT / f"{game}_seed{net['seed']}" / "checkpoint.pt"
            if not checkpoint.exists() or hashlib.sha256(checkpoint.read_bytes()).hexdigest() != net["sha256"]:
                raise SystemExit(f"the seed-{net['seed']} network of {args.eval} (sha256 {net['sha256']}) is not at {checkpoint}")
            cfg = minatar_config(game, str(checkpoint), algorithm, knob_overrides(algorithm, evaluation["knobs"][label]),
                                  simulations=args.simulations, episodes=evaluation["episodes"], seed=evaluation["seed"],
                                  max_steps=evaluation["max_steps"], run_dir=run_dir,
                                  extra=(f"planner.batch_episodes={_batch(evaluation)}", "planner.model=oracle",
                                         "logger.progress_bar=false"))
            out = tree_search.train(cfg)
            if out["status"] != "completed":
                raise SystemExit(f"{run_dir} stopped ({out['status']}): run the same command again to resume it")
            episodes[label].append(out["returns"])
            print(f"{game} oracle {label} network seed {net['seed']}: mean return {out['mean_return']:.3g}", flush=True)
    played = evaluation["episode_returns"]
    comparisons = {}
    for label in labels:
        comparisons[f"oracle {label} - {label}"] = paired(episodes[label], played[label], args.reps)
        comparisons[f"oracle {label} - greedy"] = paired(episodes[label], played["greedy"], args.reps)
    for i, a in enumerate(labels):  # the algorithms against each other, both with the oracle model
        for b in labels[i + 1:]:
            comparisons[f"oracle {a} - oracle {b}"] = paired(episodes[a], episodes[b], args.reps)
    result = {"game": game, "network_seeds": seeds, "evaluation": args.eval, "simulations": args.simulations,
              "knobs": {label: evaluation["knobs"][label] for label in labels}, "oracle_check": check,
              "episode_returns": episodes, "comparisons": comparisons, "statistics": FAIR_STATISTICS,
              "bootstrap_reps": args.reps, "definition": minatar_oracle.__doc__, **provenance()}
    write_result(f"minatar_oracle_{game.lower()}", result, out=Path(args.out))


def _plot_model_error(out: Path, result: dict) -> None:
    """``minatar_model_error.png``: per game, the share of model observations that differ from the real ones, by horizon."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for row in result["rows"]:
        hs = result["horizons"]
        hs = [h for h in hs if row["obs_differs"][str(h)] is not None]
        ax.plot(hs, [row["obs_differs"][str(h)] for h in hs], marker="o", linestyle="-" if row["sticky_action_prob"] else "--",
                label=f"{row['game']}, sticky {row['sticky_action_prob']}")
    ax.set_xlabel("moves replayed in the model (h)")
    ax.set_ylabel("share of model observations != real")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7)
    ax.set_title("The search's MinAtar model against the real game (random play)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "minatar_model_error.png", dpi=100)
    plt.close(fig)


def minatar(args) -> None:
    """Greedy M-DQN network vs searches that use it as prior and leaf value (``recipes/tree_search.py``), for
    each network (one per training seed): ``returns[algorithm]`` holds the mean return of each network
    (the unit of the statistics), ``episode_returns[algorithm]`` every episode, network by network."""
    from recipes import tree_search

    checkpoints = args.checkpoint  # paths may hold ',' and '=' (a sweep's task directories)
    result = {
        "game": args.game, "checkpoints": [], "simulations": args.simulations, "episodes": args.episodes,
        "returns": {}, "episode_returns": {}, "wall_time_s": {},
    }
    path = OUT / f"minatar_{args.game}.json"
    if args.append and path.exists():  # more networks for the same protocol, e.g. as their training ends
        result = json.loads(path.read_text())
        for key in ("simulations", "episodes"):
            if result[key] != getattr(args, key):
                raise SystemExit(f"--append: {path} has {key}={result[key]}, this run {key}={getattr(args, key)}")
        if set(result["returns"]) != set(args.algorithms.split(",")):
            raise SystemExit(f"--append: {path} has the algorithms {sorted(result['returns'])}, this run {args.algorithms}")
        if set(checkpoints) & set(result["checkpoints"]):
            raise SystemExit(f"--append: {path} already holds {sorted(set(checkpoints) & set(result['checkpoints']))}")
        result["commands"] = result.get("commands", [result.pop("command")])
    result["checkpoints"] += checkpoints
    for algorithm in args.algorithms.split(","):
        for index, checkpoint in enumerate(checkpoints, start=len(result["checkpoints"]) - len(checkpoints)):
            cfg = minatar_config(
                args.game, checkpoint, algorithm,
                # the preset sets MENTS's knobs; the other searches read their own at the same scale
                {"bts": ["planner.tau=null", "planner.alpha=0.1"], "dents": ["planner.tau=null", "planner.alpha=0.1"],
                 "uct": ["planner.tau=null", "planner.eps=null"]}.get(algorithm, []),
                simulations=args.simulations, episodes=args.episodes, seed=args.seed, max_steps=args.max_steps,
                run_dir=f"{args.run_dir}/{algorithm}_{index}",
            )
            out = tree_search.train(cfg)
            result["episode_returns"].setdefault(algorithm, []).append(out["returns"])
            result["returns"].setdefault(algorithm, []).append(sum(out["returns"]) / len(out["returns"]))
            result["wall_time_s"].setdefault(algorithm, []).append(out["wall_time_s"])
            print(algorithm, checkpoint, out["returns"], flush=True)
    result["params"] = {k: v for k, v in to_dict(cfg.planner).items() if k != "algorithm"} | {"evaluator": to_dict(cfg.evaluator)}
    if args.networks:
        result["networks"] = json.loads(Path(args.networks).read_text())
    write_result(f"minatar_{args.game}", result)
    if "commands" in result:  # appended: keep every command that produced a part of it
        result["commands"].append(result.pop("command"))
        path.write_text(json.dumps(result, indent=2))
