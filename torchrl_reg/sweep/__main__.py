"""Command line of :mod:`torchrl_reg.sweep`; ``python -m torchrl_reg.sweep --help``."""
from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from torchrl_reg.cli import printable
from torchrl_reg.run.files import FileRefused
from torchrl_reg.run.stop import EXIT_INTERRUPTED
from torchrl_reg.sweep.cost import cost_summary, estimate_cost
from torchrl_reg.sweep.launch import (
    SlurmResources,
    create_sweep,
    recorded_resources,
    run_local,
    submit_slurm,
    sweep_status,
    unfinished_tasks,
)
from torchrl_reg.sweep.spec import (
    Recipe,
    SpecMethod,
    SweepError,
    check_recorded_configs,
    load_sweep_spec,
    plan_tasks,
    select_methods,
)
from torchrl_reg.sweep.task import SWEEP_FILE, read_sweep_file, sweep_recipe

USAGE = """\
python -m torchrl_reg.sweep RECIPE [OVERRIDE ...] [options] [--slurm.KEY=VALUE ...]
       python -m torchrl_reg.sweep SPEC.yaml [OVERRIDE ...] [options] [--slurm.KEY=VALUE ...]
       python -m torchrl_reg.sweep --resume SWEEP_DIR [RECIPE] [options] [--slurm.KEY=VALUE ...]
       python -m torchrl_reg.sweep --status SWEEP_DIR"""

EPILOG = """\
Overrides use Hydra's syntax; comma lists, range() and choice() sweep and the sweep is their
cartesian product, e.g.  recipes/m_dqn.py loss=m_dqn,dqn env=cartpole,acrobot seed=range(0,3)
Every task's config is composed and validated before anything is submitted.

A sweep spec (SPEC.yaml, e.g. benchmarks/learning_classic.yaml) names several methods, each a
recipe with overrides; each method becomes one sweep in <dir>/<method>, and overrides given on
the command line replace the spec's for the same key (e.g. seed=0 collector.total_frames=2048
for a smoke run), and --methods a,b runs only those methods (e.g. to put two methods of one
spec on two machines). --resume and --status accept the directory of a spec's sweeps.

A sweep directory is data: --resume runs the project's own recipe that sweep.json records, and
any other recipe only when named on the command line (--resume SWEEP_DIR path/to/recipe.py).

SLURM resources per task (--slurm.KEY=VALUE): partition, account, qos, constraint, exclude,
nodelist, cpus_per_task (2), gpus_per_node (0), gres (e.g. gpu:a100:1), mem_gb, time_min (60),
signal_delay_s (120: SIGUSR2 this long before the limit -> checkpoint + requeue), max_timeouts
(10), job_name, setup (shell line run before the task; repeatable), additional.OPTION (any sbatch
option, e.g. --slurm.additional.mail-type=END). A sweep spec may declare them (its slurm: mapping,
same keys); --slurm.* replaces the spec's value of a key (GPUs given here replace its GPU request),
and --resume asks for the resources of the sweep's last SLURM submission, with --slurm.* over them.

--dry-run also estimates each task's cost (GPU-hours or core-hours) from the measured steps/s in the
table the spec names (throughput:, e.g. benchmarks/throughput.yaml), saying which JSON each rate
comes from; a recipe and env family without a measurement get no number.
"""


def _split_slurm_args(argv: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    rest, items = [], []
    for arg in argv:
        if arg.startswith("--slurm."):
            key, sep, value = arg[len("--slurm."):].partition("=")
            if not sep or not key:
                raise SweepError(f"{arg}: write SLURM resources as --slurm.KEY=VALUE")
            items.append((key, value))
        else:
            rest.append(arg)
    return rest, items


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m torchrl_reg.sweep",
        usage=USAGE,
        description="Run a recipe over the cartesian product of Hydra overrides, as one SLURM array or locally.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("recipe", nargs="?", help="recipes/<name>.py")
    p.add_argument("overrides", nargs="*", help="Hydra overrides; comma lists, range() and choice() sweep")
    p.add_argument("--executor", choices=("auto", "slurm", "local"), default="auto",
                   help="slurm: one sbatch array through submitit; local: processes on this machine; "
                        "auto (default): slurm when sbatch is on PATH")
    p.add_argument("--dir", help="sweep directory (default: sweeps/<recipe>/<date>_<time>); on SLURM it must "
                                 "be on a filesystem the compute nodes share")
    p.add_argument("--parallel", type=int, help="tasks running at once (default: 256 on SLURM, 1 locally)")
    p.add_argument("--methods", metavar="NAME[,NAME...]",
                   help="with a sweep spec: run only these of its methods (default: all), e.g. --methods virel_em")
    p.add_argument("--dry-run", action="store_true", help="validate and list the tasks; submit nothing")
    p.add_argument("--wait", action="store_true", help="SLURM: wait until no task is queued or running")
    p.add_argument("--resume", metavar="SWEEP_DIR", help="resubmit the unfinished tasks of a sweep")
    p.add_argument("--status", metavar="SWEEP_DIR", help="print the state of every task of a sweep")
    return p


def _sweep_dirs(path: str) -> list[str]:
    """``path`` itself when it holds a sweep.json, else the sweeps of a spec run directly inside it."""
    root = Path(path).resolve()
    if (root / SWEEP_FILE).is_file():
        return [str(root)]
    found = sorted(str(d.parent) for d in root.glob(f"*/{SWEEP_FILE}"))
    if not found:
        raise FileNotFoundError(f"{root / SWEEP_FILE} does not exist: not a sweep directory made by torchrl_reg.sweep")
    return found


def _print_status(sweep_dir: str) -> int:
    worst = 0
    for one in _sweep_dirs(sweep_dir):
        worst = max(worst, _print_one_status(one))
    return worst


def _print_one_status(sweep_dir: str) -> int:
    # Names, job ids and log paths come from sweep.json: printed with their control and bidi characters escaped.
    rows = [{**r, "name": printable(r["name"]), "job_id": r["job_id"] and printable(r["job_id"])}
            for r in sweep_status(sweep_dir)]
    width = max(len(r["name"]) for r in rows)
    counts: dict[str, int] = {}
    for r in rows:
        state = r["status"] + (f" ({r['queue'].lower()})" if r["queue"] else "")
        counts[r["status"]] = counts.get(r["status"], 0) + 1
        print(f"{r['name']:<{width}}  {state:<24} job {r['job_id'] or '-'}")
    print(", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    for r in rows:
        if r["mismatch"] is not None:  # escaped where it was made (launch.config_mismatch)
            print(f"  {r['name']}: {r['mismatch']}")
        elif r["status"] != "completed" and r["queue"] is None and r["stderr"]:
            print(f"  {r['name']}: logs {printable(r['stdout'])} {printable(r['stderr'])}")
    return 0 if counts.get("completed", 0) == len(rows) else 1


def _wait_for_queue(sweep_dir: str) -> None:
    while any(r["queue"] is not None for r in sweep_status(sweep_dir)):
        time.sleep(5)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = shlex.join([sys.executable, "-m", "torchrl_reg.sweep", *argv])
    try:
        rest, slurm_items = _split_slurm_args(argv)
        args = _parser().parse_intermixed_args(rest)
        if args.status:
            return _print_status(args.status)
        if args.parallel is not None and args.parallel < 1:
            raise SweepError(f"--parallel={args.parallel}: must be an integer >= 1")
        # Typos in --slurm.* first: they are wrong on any machine, with or without SLURM.
        SlurmResources.from_items(slurm_items)
        executor = args.executor
        if executor == "auto":
            executor = "slurm" if shutil.which("sbatch") else "local"
        if executor == "slurm" and not shutil.which("sbatch"):
            raise SweepError("--executor slurm: sbatch is not on PATH (no SLURM here); use --executor local")
        if executor == "local" and slurm_items:
            raise SweepError("--slurm.* resources given with the local executor: drop them or use --executor slurm")
        parallel = args.parallel or (256 if executor == "slurm" else 1)

        if args.resume:
            if args.overrides or args.methods is not None:
                raise SweepError("--resume takes the sweep directory (and a recipe to run it with) only: its "
                                 "overrides and methods are in the sweep directories")
            todo = []
            for sweep_dir in _sweep_dirs(args.resume):
                sweep = read_sweep_file(sweep_dir)
                recipe = sweep_recipe(sweep, args.recipe)
                indices, queued = unfinished_tasks(sweep_dir)
                mismatched = [r["name"] for r in sweep_status(sweep_dir) if r["mismatch"] is not None]
                if mismatched:
                    print(f"{len(mismatched)} tasks of {sweep_dir} hold the run of another config (--status names the "
                          f"keys); not run again over it: {', '.join(printable(n) for n in mismatched)}")
                check_recorded_configs(recipe, [sweep["tasks"][i] for i in indices])  # before anything is submitted
                recipe = recipe.path
                if queued:
                    print(
                        f"{len(queued)} unfinished tasks of {sweep_dir} are still queued or running (in SLURM, or a live "
                        f"process holds their run directory); leaving them: {queued}"
                    )
                if indices:
                    todo.append((sweep_dir, indices, recipe, SlurmResources.layered(recorded_resources(sweep_dir), slurm_items)))
            if not todo:
                print("nothing to resume: every task is completed or still queued")
                return 0
            top = str(Path(args.resume).resolve())
        else:
            if not args.recipe:
                raise SweepError("give a recipe (recipes/<name>.py), a sweep spec (.yaml), --resume SWEEP_DIR or --status SWEEP_DIR")
            if Path(args.recipe).suffix in (".yaml", ".yml"):
                methods = select_methods(load_sweep_spec(args.recipe, args.overrides), args.methods, args.recipe)
            else:
                if args.methods is not None:
                    raise SweepError(f"--methods {args.methods}: only a sweep spec (.yaml) has methods to choose from, "
                                     f"not the recipe {args.recipe}")
                methods = [SpecMethod(None, Recipe.from_path(args.recipe), tuple(args.overrides))]
            top = args.dir or str(Path("sweeps") / Path(args.recipe).stem / time.strftime("%Y-%m-%d_%H-%M-%S"))
            dirs = [str(Path(top) / m.name) if m.name else top for m in methods]
            # A spec's resources with the command line's over them, checked before anything is written.
            method_resources = [SlurmResources.layered(m.slurm, slurm_items) for m in methods]
            # Every method's tasks are validated before any sweep directory is made.
            plans = [plan_tasks(m.recipe, m.overrides, d) for m, d in zip(methods, dirs)]
            if args.dry_run:
                estimates = []
                for m, (tasks, swept) in zip(methods, plans):
                    prefix = f"{m.name}/" if m.name else ""
                    estimate = estimate_cost(m.recipe.name, tasks, m.throughput)
                    estimates.append((m.name or m.recipe.name, estimate))
                    for t, cost in zip(tasks, estimate.tasks):
                        print(f"{prefix}{t.name}: {' '.join(t.overrides) or '(defaults)'}  [{cost}]")
                print(cost_summary(estimates))
                if executor == "slurm" or any(m.slurm for m in methods):
                    print(f"SLURM resources per task: {method_resources[0].describe()}")
                total = sum(len(tasks) for tasks, _ in plans)
                swept = sorted({k for _, keys in plans for k in keys})
                print(f"{total} valid tasks (swept: {', '.join(swept) or 'nothing'}); dry run, nothing submitted")
                return 0
            existing = [d for d in dirs if (Path(d) / SWEEP_FILE).exists()]
            if existing:
                raise SweepError(f"{existing[0]} already holds a sweep: continue it with --resume {top}, or choose another --dir")
            todo = []
            for m, d, res in zip(methods, dirs, method_resources):
                create_sweep(m.recipe.path, m.overrides, d, command, method=m.label)
                todo.append((str(Path(d).resolve()), [t["index"] for t in read_sweep_file(d)["tasks"]], m.recipe.path, res))
            top = str(Path(top).resolve())

        if executor == "slurm":
            for k, (sweep_dir, indices, recipe, resources) in enumerate(todo):
                try:
                    submission = submit_slurm(sweep_dir, indices, resources, parallel, recipe)
                except SweepError as err:
                    if args.resume:
                        raise
                    if k > 0:
                        raise SweepError(f"{err}\nthe sweeps submitted before keep running; "
                                         f"--resume {top} submits the rest") from None
                    # A fresh sweep whose first array sbatch refused: leave nothing behind.
                    for d, *_ in todo:
                        shutil.rmtree(d, ignore_errors=True)
                    if Path(top).is_dir() and not any(Path(top).iterdir()):
                        Path(top).rmdir()
                    raise
                what = f"{len(indices)} tasks as SLURM array" if len(indices) > 1 else "1 task as SLURM job"
                print(f"submitted {what} {submission['array_job_id']}; sweep dir {sweep_dir}")
            print(f"  status: python -m torchrl_reg.sweep --status {top}")
            print(f"  report: python -m torchrl_reg.report {top}")
            if args.wait:
                for sweep_dir, *_ in todo:
                    _wait_for_queue(sweep_dir)
                return _print_status(top)
            return 0
        if any(res.gpus_per_node or res.gres for *_, res in todo):
            print("note: the local executor runs each task on this machine; the SLURM resources asked for "
                  f"({todo[0][3].describe()}) apply to --executor slurm only")
        incomplete = stopped = False
        for sweep_dir, indices, recipe, _ in todo:
            print(f"running {len(indices)} tasks locally, {parallel} at a time; sweep dir {sweep_dir}")
            codes = run_local(sweep_dir, indices, parallel, recipe=recipe)
            if codes.refused is not None:
                raise SweepError(codes.refused)
            stopped = codes.stopped_by is not None
            if stopped or len(codes) < len(indices) or any(c != 0 for c in codes.values()):
                incomplete = True
                break  # interrupted or failed: stop here, --resume continues every sweep of the spec
        status = _print_status(top)
        if incomplete:
            print(f"continue with: python -m torchrl_reg.sweep --resume {top} --executor local")
        # Stopped by SIGINT, SIGTERM or SIGHUP: the tasks checkpointed; 75 (EX_TEMPFAIL), as a stopped task exits.
        return EXIT_INTERRUPTED if stopped else status
    # A name read from a sweep directory may hold ESC or bidi characters: escaped, the message's own lines kept.
    except (SweepError, FileRefused) as err:
        print(f"error: {printable(err, keep_newlines=True)}", file=sys.stderr)
        return 2
    except FileNotFoundError as err:
        print(f"error: {printable(err, keep_newlines=True)}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as err:
        print(f"error: {printable(err, keep_newlines=True)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
