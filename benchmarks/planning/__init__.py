"""Tree-search benchmarks: speed, synthetic-tree failure rates, D-chain and FrozenLake success rates.

    taskset -c 0 python -m benchmarks.planning speed
    taskset -c 1 python -m benchmarks.planning batched-speed --leaf rollout --algorithms ments --repeats 3
    taskset -c 1 python -m benchmarks.planning batched-profile --algorithms ments,uct --batches 1,64
    taskset -c 1 python -m benchmarks.planning chance-speed --batches 1,64   # chance nodes against a determinized model
    taskset -c 0 python -m benchmarks.planning synthetic --trees 25
    taskset -c 0 python -m benchmarks.planning dchain --seeds 25
    taskset -c 1 python -m benchmarks.planning dchain-batched --seeds 25 --final-reward 0.5 --algorithms ments,bts
    taskset -c 0 python -m benchmarks.planning frozenlake --seeds 20
    taskset -c 1 python -m benchmarks.planning frozenlake-batched --seeds 20 --map 4x4 --budgets 50,1000
    taskset -c 1 python -m benchmarks.planning minatar-fair --stage tune --game Breakout --networks runs/minatar_networks
    taskset -c 1 python -m benchmarks.planning minatar-fair --stage eval --game Breakout --networks runs/minatar_networks
    taskset -c 1 python -m benchmarks.planning minatar-fair --stage eval --game Breakout --networks benchmarks/results/planning/networks --model ensemble --futures 5 --simulations 50
    python -m benchmarks.planning export-networks --networks runs/minatar_networks   # policies only, to commit
    python -m benchmarks.planning minatar-fair-merge PART.json PART.json ...          # a stage played in parts
    python -m benchmarks.planning minatar-model-error                                 # the search's model against the real game
    python -m benchmarks.planning minatar-oracle --eval results/planning/minatar_fair_asterix.json  # the searches with an oracle model
    python -m benchmarks.planning minatar-models                                      # the fair comparison's models side by side
    python -m benchmarks.planning plot

``minatar-fair`` is the fair MinAtar comparison; its plan (networks, tuning, evaluation, with their costs) is
:func:`~benchmarks.planning.fair.minatar_fair`'s docstring. ``minatar`` is the earlier comparison (log-prior init,
untuned knobs).

One module per study, each a user of the library's public API: ``speed`` (speed, batched-speed, batched-profile,
chance-speed),
``exact_tasks`` (synthetic, dchain, dchain-batched, frozenlake, frozenlake-batched), ``minatar_runs`` (minatar,
minatar-model-error, minatar-oracle, minatar-replay-speed), ``networks`` (export-networks), ``fair`` (minatar-fair),
``fair_merge`` (minatar-fair-merge), ``fair_models`` (minatar-models), ``plots`` (plot); ``common`` holds what they share.

Results go to ``benchmarks/results/planning/<name>.json`` (with the command) and ``.png``. One
thread (``OMP_NUM_THREADS=1``, set by ``python -m benchmarks.planning`` before anything is imported;
``torch.set_num_threads(1)``); pin to core 0 with ``taskset``.
"""
from __future__ import annotations

import argparse
import sys

import torch

from benchmarks.planning.common import COMPARED, OUT
from benchmarks.planning.speed import batched_profile, batched_speed, chance_speed, speed
from benchmarks.planning.exact_tasks import dchain, dchain_batched, frozenlake, frozenlake_batched, synthetic
from benchmarks.planning.minatar_runs import minatar, minatar_model_error, minatar_oracle, minatar_replay_speed
from benchmarks.planning.networks import NETWORKS_OUT, export_networks
from benchmarks.planning.plots import plot
from benchmarks.planning.fair import minatar_fair
from benchmarks.planning.fair_merge import minatar_fair_merge
from benchmarks.planning.fair_models import minatar_models
from torchrl_reg.planning.tasks import MODELS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.planning", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="which", required=True)
    p = sub.add_parser("speed")
    p.add_argument("--simulations", type=int, default=20000)
    p.add_argument("--repeats", type=int, default=3)
    p = sub.add_parser("batched-speed")
    p.add_argument("--leaf", choices=("rollout", "minatar_conv"), default="rollout")
    p.add_argument("--algorithms", default="ments,bts,dents,uct")
    p.add_argument("--batches", default="1,16,64,256")
    p.add_argument("--simulations", type=int, default=100, help="simulations per tree")
    p.add_argument("--repeats", type=int, default=3, help="runs per search; the rates are their medians")
    p.add_argument("--device", default="cpu", help="the batched search's device (cuda: rows go to batched_speed_cuda.json)")
    p = sub.add_parser("batched-profile")
    p.add_argument("--algorithms", default="ments,uct")
    p.add_argument("--batches", default="1,64")
    p.add_argument("--simulations", type=int, default=100, help="simulations per tree")
    p.add_argument("--noise", type=float, default=0.1, help="leaf noise of the tree (batched-speed's: 0.1)")
    p.add_argument("--compile", action="store_true", help="also time one descent level under torch.compile")
    p = sub.add_parser("chance-speed")
    p.add_argument("--game", default="space_invaders")
    p.add_argument("--algorithms", default="ments,uct")
    p.add_argument("--batches", default="1,64")
    p.add_argument("--simulations", type=int, default=50, help="simulations per tree")
    p.add_argument("--rollout-steps", type=int, default=5)
    p.add_argument("--moves", type=int, default=20, help="random moves into each root's episode")
    p = sub.add_parser("synthetic")
    p.add_argument("--trees", type=int, default=25)
    p.add_argument("--branching", type=int, default=4)
    p.add_argument("--depth", type=int, default=5)
    p.add_argument("--noise", type=float, default=0.1)
    # 0: a path's return is the mean of its edge values (the paper's tree); with uniform leaf values on top,
    # the best leaf under every root action is close to 1 and the root actions are nearly tied
    p.add_argument("--leaf-scale", type=float, default=0.0)
    p.add_argument("--budgets", default="20,50,100,200,500,1000,2000,5000")
    p = sub.add_parser("dchain")
    p.add_argument("--seeds", type=int, default=25)
    p.add_argument("--length", type=int, default=10)
    p.add_argument("--budgets", default="10,20,50,100,200,500,1000,2000,5000")
    p = sub.add_parser("dchain-batched")
    p.add_argument("--seeds", type=int, default=25, help="the number of trees of the batch")
    p.add_argument("--length", type=int, default=10)
    p.add_argument("--final-reward", type=float, default=0.5)
    p.add_argument("--simulations", type=int, default=5000)
    p.add_argument("--algorithms", default="ments,bts,dents,uct")
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("frozenlake")
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--max-steps", type=int, default=50)
    p.add_argument("--rollout", type=int, default=50)
    p.add_argument("--budgets", default="50,200,1000")
    p.add_argument("--map", default="8x8", choices=["4x4", "8x8"])
    p.add_argument("--gamma", type=float, default=0.95)
    p = sub.add_parser("frozenlake-batched")
    p.add_argument("--seeds", type=int, default=20, help="the number of episodes, the trees of the batch")
    p.add_argument("--max-steps", type=int, default=30)
    p.add_argument("--rollout", type=int, default=30)
    p.add_argument("--budgets", default="50,1000")
    p.add_argument("--map", default="4x4", choices=["4x4", "8x8"])
    p.add_argument("--gamma", type=float, default=0.95)
    p.add_argument("--algorithms", default="ments,bts,dents,uct")
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("minatar")
    p.add_argument("--checkpoint", required=True, nargs="+", help="M-DQN checkpoint(s): one per training seed")
    p.add_argument("--networks", default=None, help="JSON file describing how the networks were trained (copied into the result)")
    p.add_argument("--append", action="store_true", help="add these networks to an existing result of the same protocol")
    p.add_argument("--game", default="breakout")
    p.add_argument("--algorithms", default="greedy,ments,dents,uct")
    p.add_argument("--simulations", type=int, default=50)
    p.add_argument("--episodes", type=int, default=3)
    p.add_argument("--max-steps", type=int, default=1000)
    p.add_argument("--seed", type=int, default=100)
    p.add_argument(
        "--run-dir", default="/tmp/tree_search_minatar",
        help="one run directory per algorithm and network under it: a stopped benchmark resumes its runs, "
        "and a directory holding a run of another protocol is refused (use a new --run-dir)",
    )
    p = sub.add_parser("minatar-fair", help="the fair MinAtar comparison: see minatar_fair's docstring for the plan")
    p.add_argument("--stage", choices=("tune", "eval"), required=True)
    p.add_argument("--game", required=True, help="a MinAtar game: Breakout, SpaceInvaders, Asterix")
    p.add_argument("--networks", nargs="+", required=True,
                   help="sweep directories of benchmarks/minatar_networks.yaml (or M-DQN run directories)")
    p.add_argument("--network-seeds", type=lambda s: [int(x) for x in s.split(",")], default=None,
                   help="training seeds of the networks used (tune: the held-out one, 3; eval: 0,1,2)")
    p.add_argument("--algorithms", type=lambda s: s.split(","), default=list(COMPARED))
    p.add_argument("--simulations", type=lambda s: [int(x) for x in s.split(",")], default=None,
                   help="simulations per move (tune: one budget, 50; eval: 50,200)")
    p.add_argument("--episodes", type=int, default=None, help="episodes per network or grid point (tune: 16; eval: 20)")
    p.add_argument("--batch-episodes", type=int, default=None, help="episodes searched at once (default: all of them)")
    p.add_argument("--seed", type=int, default=None, help="env seed of the first episode (tune: 1000; eval: 100)")
    p.add_argument("--max-steps", type=int, default=1000, help="moves per episode at most (a cap for cheap runs)")
    p.add_argument("--grid", default=None, help='tune: JSON replacing algorithms\' grids, e.g. \'{"uct": {"c": [1, 4]}}\'')
    p.add_argument("--extend", type=int, default=2,
                   help="tune: rounds of points played beyond a grid edge on which an algorithm's best point sits (0: the grid only)")
    p.add_argument("--tuned", default=None, help="eval: the tuning JSON (default: <out>/minatar_fair_tune_<game>.json)")
    p.add_argument("--reps", type=int, default=10_000, help="bootstrap resamples")
    p.add_argument("--out", default=None,
                   help="where the JSONs and minatar_fair.png go (default: results/planning, or results/planning/models/<model> "
                   "for a model other than determinized)")
    p.add_argument("--run-dir", default="runs/minatar_fair", help="the planning runs' directories (a rerun resumes them)")
    p.add_argument("--model", default="determinized", choices=[m for m in MODELS if m != "oracle"],
                   help="the model the searches plan in (planner.model; oracle: the minatar-oracle study)")
    p.add_argument("--futures", type=int, default=None, help="--model ensemble: futures per move (planner.futures; divides each budget)")
    p.add_argument("--dry-run", action="store_true", help="check every run's config and print the plan; play nothing, write nothing")
    p.add_argument("--estimate-moves", type=int, default=0,
                   help="with --dry-run: time each run's first N moves (all its episodes at once, in a temporary directory) and "
                   "estimate the whole run's time from the determinized evaluation's episode lengths")
    p = sub.add_parser("minatar-replay-speed", help="a MinAtar search's cost before and after replaying tried edges")
    p.add_argument("--games", default="Breakout,SpaceInvaders")
    p.add_argument("--algorithms", default="ments,bts,dents,uct")
    p.add_argument("--episodes", type=int, default=8, help="episodes per run, one batched search per move")
    p.add_argument("--moves", type=int, default=60, help="moves per episode at most (max_steps)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=str(OUT), help="where minatar_replay_speed.json goes")
    p = sub.add_parser("minatar-model-error", help="how far the search's MinAtar model strays from the real game")
    p.add_argument("--games", default="Breakout,SpaceInvaders,Asterix")
    p.add_argument("--episodes", type=int, default=5, help="real episodes of random play per game and sticky-action probability")
    p.add_argument("--max-steps", type=int, default=200, help="moves per episode at most")
    p.add_argument("--horizons", default="1,5,10", help="moves replayed in the model from each real move")
    p.add_argument("--out", default=str(OUT), help="where minatar_model_error.json/.png go")
    p = sub.add_parser("minatar-oracle", help="the fair evaluation's searches with an oracle model (the real game's stream)")
    p.add_argument("--eval", required=True, help="the game's evaluation JSON (minatar_fair_<game>.json or a part of it)")
    p.add_argument("--algorithms", default="ments,bts,dents,uct")
    p.add_argument("--simulations", type=int, default=50)
    p.add_argument("--reps", type=int, default=10_000, help="bootstrap resamples")
    p.add_argument("--out", default=str(OUT), help="where minatar_oracle_<game>.json goes")
    p.add_argument("--run-dir", default="runs/minatar_fair", help="the planning runs' directories (a rerun resumes them)")
    p = sub.add_parser("minatar-fair-merge", help="minatar-fair results played in parts, merged into the stage's JSON")
    p.add_argument("parts", nargs="+", help="the parts' JSONs (one stage and game; disjoint algorithms, cells or ranges of episodes)")
    p.add_argument("--reps", type=int, default=10_000, help="bootstrap resamples of the recomputed comparisons")
    p.add_argument("--out", default=str(OUT), help="where the merged JSON (and, for an evaluation, minatar_fair.png) goes")
    p = sub.add_parser("minatar-models", help="the fair comparison under every planner model, side by side, from the results that exist")
    p.add_argument("--results", default=str(OUT), help="the folder of the models' results (minatar_fair_<game>.json, models/, oracle)")
    p.add_argument("--reps", type=int, default=10_000, help="bootstrap resamples")
    p.add_argument("--out", default=str(OUT), help="where minatar_models.json and .png go")
    p = sub.add_parser("export-networks", help="completed M-DQN MinAtar runs as small run directories to commit (policy only)")
    p.add_argument("--networks", nargs="+", required=True, help="sweep or run directories of benchmarks/minatar_networks.yaml")
    p.add_argument("--out", default=str(NETWORKS_OUT), help="one <Game>_seed<n> directory per run under it")
    sub.add_parser("plot")
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    torch.set_num_threads(1)
    {"minatar-fair": minatar_fair, "speed": speed, "batched-speed": batched_speed, "batched-profile": batched_profile, "chance-speed": chance_speed, "synthetic": synthetic, "dchain": dchain, "dchain-batched": dchain_batched, "frozenlake": frozenlake, "frozenlake-batched": frozenlake_batched, "minatar": minatar, "minatar-replay-speed": minatar_replay_speed, "minatar-model-error": minatar_model_error, "minatar-oracle": minatar_oracle, "export-networks": export_networks, "minatar-fair-merge": minatar_fair_merge, "minatar-models": minatar_models, "plot": plot}[args.which](args)


if __name__ == "__main__":
    main()
