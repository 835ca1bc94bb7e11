"""One sweep task as it runs on a node: train, and on a stop signal checkpoint and (maybe) requeue.

Signals, chosen deliberately (submitit's defaults would interrupt training mid-step):

* SIGUSR2 is what submitit asks SLURM to send ``signal_delay_s`` before the time limit
  (``#SBATCH --signal=USR2@...``); some clusters also send it on preemption
  (``PreemptParameters=send_user_signal``). SIGUSR1 is the conventional user signal
  (``scancel --signal=USR1``). Both mean "you will be stopped, come back later": the training
  loop checkpoints at its next batch boundary, then the task requeues itself with
  ``scontrol requeue`` through submitit's own checkpoint-and-requeue logic (which also counts
  time-outs against ``max_num_timeout``).
* SIGTERM is what SLURM sends when it ends the job itself: ``scontrol requeue``, preemption, or
  ``scancel``. The loop checkpoints and the task exits without requeueing: SLURM already
  requeues the job when that is what was asked (requeue, ``PreemptMode=REQUEUE``), and a job
  that requeued itself after SIGTERM would survive the user's own ``scancel`` (a cancelled job
  can be requeued). ``python -m torchrl_reg.sweep --resume`` resubmits anything left unfinished.

submitit installs its handlers before calling the task (SIGUSR2: checkpoint and requeue inside
the handler; SIGTERM: ignored); :meth:`SweepTask.__call__` replaces them with handlers that
only set the recipe's stop flag, so the checkpoint is always written from the training loop.
"""
from __future__ import annotations

import copy
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from torchrl_reg.cli import printable
from torchrl_reg.run.files import FileRefused, SymlinkRefused, check_components, open_file, read_json, write_atomic
from torchrl_reg.sweep.spec import TASK_NAME_CHARS, SweepError, name_problem

__all__ = [
    "SweepTask",
    "REQUEUE_SIGNALS",
    "STOP_SIGNALS",
    "SWEEP_FILE",
    "PROJECT_RECIPES",
    "read_sweep_file",
    "write_sweep_file",
    "sweep_file_lock",
    "sweep_recipe",
    "check_sweep_links",
    "held_sweep_dir",
    "sweep_dir_replaced",
]

SWEEP_FILE = "sweep.json"
REQUEUE_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)
# SIGHUP: the terminal that started a local sweep closed; checkpoint like SIGTERM.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, *REQUEUE_SIGNALS)
#: The project's own recipes (``recipes/<name>.py`` beside this package): the only scripts that
#: ``--resume`` runs without the user naming one, whatever a ``sweep.json`` says.
PROJECT_RECIPES = Path(__file__).resolve().parents[2] / "recipes"


class _SignalLog:
    """Records which signals arrive while it is open, whichever Python handler runs for them.

    ``train`` installs its own handlers for SIGTERM and SIGUSR1 (they set the stop flag), so the
    task cannot learn from handlers of its own which signal stopped the loop; Python writes the
    number of every signal it handles to the wakeup file descriptor, read here.
    """

    def __enter__(self) -> "_SignalLog":
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._previous = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        self._seen: list[int] = []
        return self

    def received(self) -> list[int]:
        try:
            self._seen.extend(os.read(self._read, 65536))
        except BlockingIOError:
            pass
        return list(self._seen)

    def __exit__(self, *exc: object) -> None:
        self.received()
        signal.set_wakeup_fd(self._previous)
        os.close(self._read)
        os.close(self._write)


def _map_paths(sweep: dict[str, Any], convert: Callable[[str], str]) -> dict[str, Any]:
    """A copy of ``sweep`` with ``convert`` applied to every path it records: each task's run
    directory (also inside its config) and the log files of every submission."""
    sweep = copy.deepcopy(sweep)
    for task in sweep.get("tasks", []):
        task["run_dir"] = convert(task["run_dir"])
        if isinstance(task.get("config"), dict) and isinstance(task["config"].get("run_dir"), str):
            task["config"]["run_dir"] = convert(task["config"]["run_dir"])
    for submission in sweep.get("submissions", []):
        for info in submission.get("tasks", {}).values():
            for key in ("stdout", "stderr"):
                if isinstance(info.get(key), str):
                    info[key] = convert(info[key])
    return sweep


def _control_character(text: str) -> str | None:
    """The first character of ``text`` that would start a new line, drive a terminal or reorder what it shows
    (a control, format or bidi character, a line separator: what :func:`~torchrl_reg.cli.printable` escapes), if any."""
    return next((c for c in text if not c.isprintable() and c != " "), None)


def _interpolations(node: Any, prefix: str = "") -> list[str]:
    """The keys of ``node`` whose string value holds an OmegaConf interpolation (``${...}``)."""
    if isinstance(node, dict):
        return [k for key, value in node.items() for k in _interpolations(value, f"{prefix}{key}.")]
    if isinstance(node, list):
        return [k for i, value in enumerate(node) for k in _interpolations(value, f"{prefix}{i}.")]
    return [prefix[:-1]] if isinstance(node, str) and "${" in node else []


def _text_problems(position: int, task: dict[str, Any]) -> list[str]:
    """What a task's printed fields and its config may not hold: control characters in its name, run
    directory and overrides (a newline would put a line of the file's choosing into the task's log), an
    override that is not one ``key=value`` (Hydra's grammar), and ``${...}`` in its config (the config
    is stored resolved: an interpolation would be resolved again when the task runs, after the checks
    of the run directory, e.g. ``run_dir: ${logger.project}``)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    problems = []
    texts = [(key, task.get(key)) for key in ("name", "run_dir")]
    if isinstance(task.get("config"), dict):  # a NUL would end the path early in every system call
        texts.append(("config.run_dir", task["config"].get("run_dir")))
    overrides = task.get("overrides") if isinstance(task.get("overrides"), list) else []
    texts += [(f"override {i}", o) for i, o in enumerate(overrides)]
    for what, text in texts:
        if isinstance(text, str) and (c := _control_character(text)) is not None:
            problems.append(f"task {position}: {what} {text!r:.80} holds the control character {c!r}")
    parser = OverridesParser.create()
    for i, override in enumerate(overrides):
        if not isinstance(override, str):
            problems.append(f"task {position}: override {i} must be a key=value string, got {override!r:.60}")
            continue
        try:
            parsed = parser.parse_override(override)
        except HydraException:
            parsed = None
        if parsed is None or parsed.is_sweep_override() or ("=" not in override and not override.startswith("~")):
            problems.append(f"task {position}: override {override!r:.80} is not one key=value override")
    if isinstance(task.get("config"), dict):
        for key in _interpolations(task["config"]):
            problems.append(f"task {position}: config.{printable(key)} holds an interpolation ('${{...}}'); a task's config is "
                            "stored resolved")
    return problems


def _structure_problems(sweep: Any) -> list[str]:
    """What makes ``sweep`` something other than a sweep file's structure, one line each (empty: none)."""
    if not isinstance(sweep, dict):
        return [f"it holds a {type(sweep).__name__}, not a mapping"]
    missing = [k for k in ("recipe", "tasks", "submissions") if k not in sweep]
    if missing:
        return [f"it lacks {missing}: not a sweep file written by torchrl_reg.sweep"]
    problems = []
    if not isinstance(sweep["recipe"], str):
        problems.append(f"'recipe' must be a path string, got {sweep['recipe']!r}")
    if not isinstance(sweep["tasks"], list):
        problems.append(f"'tasks' must be a list, got {type(sweep['tasks']).__name__}")
    elif not sweep["tasks"]:
        problems.append("'tasks' is empty: a sweep has at least one task")
    else:
        kinds = {"index": int, "name": str, "overrides": list, "run_dir": str, "config": dict}
        for position, task in enumerate(sweep["tasks"]):
            if not isinstance(task, dict):
                problems.append(f"task {position} must be a mapping, got {task!r:.60}")
                continue
            for key, kind in kinds.items():
                if not isinstance(task.get(key), kind) or isinstance(task.get(key), bool):
                    problems.append(f"task {position}: {key!r} must be a {kind.__name__}, got {task.get(key, '<absent>')!r:.60}")
            if isinstance(task.get("name"), str) and (reason := name_problem(task["name"], TASK_NAME_CHARS)):
                problems.append(f"task {position}: its name {printable(repr(task['name'])[:80])} {reason}")
            if isinstance(task.get("index"), int) and task["index"] != position:
                problems.append(f"task {position} has index {task['index']}: tasks are stored in index order")
            problems += _text_problems(position, task)
    if not isinstance(sweep["submissions"], list) or not all(
        isinstance(s, dict) and isinstance(s.get("executor"), str) and isinstance(s.get("tasks"), dict)
        and all(isinstance(info, dict) for info in s["tasks"].values())
        for s in sweep["submissions"]
    ):
        problems.append("'submissions' must be a list of mappings, each with an 'executor' and a 'tasks' mapping")
    return problems


def _escaping_run_dirs(sweep: dict[str, Any], root: Path) -> list[str]:
    """Tasks of the stored ``sweep`` whose run directory (or their config's ``run_dir``, where the
    recipe writes) does not resolve inside the sweep directory ``root``, symlinks followed."""
    problems = []
    for task in sweep["tasks"]:
        resolved = {}
        for what, path in (("run_dir", task["run_dir"]), ("config.run_dir", task["config"].get("run_dir"))):
            resolved[what] = (root / path).resolve() if isinstance(path, str) else None
            if resolved[what] is None or not resolved[what].is_relative_to(root):
                problems.append(f"task {task['index']}: {what} {path!r} is not inside the sweep directory")
            elif resolved[what] == root or resolved[what].relative_to(root).parts[0] in SWEEP_ENTRIES:
                problems.append(f"task {task['index']}: {what} {path!r} is the sweep directory itself or one of its "
                                f"own entries ({', '.join(SWEEP_ENTRIES)}), not a run directory of its own")
            elif any(part.startswith(".") for part in resolved[what].relative_to(root).parts):
                problems.append(f"task {task['index']}: {what} {path!r} is a hidden folder (a name starting with "
                                "'.'), which reports skip")
        if resolved["run_dir"] != resolved["config.run_dir"]:
            problems.append(f"task {task['index']}: config.run_dir {task['config'].get('run_dir')!r} is not its "
                            f"run_dir {task['run_dir']!r}")
    return problems


def read_sweep_file(sweep_dir: str | Path) -> dict[str, Any]:
    """The contents of ``<sweep_dir>/sweep.json`` with every path absolute.

    Paths inside the sweep directory are stored relative to it (:func:`write_sweep_file`), so a
    sweep directory that was moved or copied elsewhere still finds its runs. A file that is not
    a sweep file's structure, or a task whose run directory does not resolve inside the sweep
    directory (``../elsewhere``, an absolute path elsewhere, a symlink out), raises
    :class:`SweepError` listing every problem: a sweep directory is data, and no task may train
    or write outside it.
    """
    root = Path(sweep_dir).resolve()
    path = root / SWEEP_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: not a sweep directory made by torchrl_reg.sweep")
    try:
        sweep = read_json(path, "sweep")  # a regular file, bounded in size and depth
    except FileRefused as err:
        raise SweepError(str(err)) from None
    except ValueError as err:
        raise SweepError(f"{err}: the sweep file is damaged; restore it from a copy") from None
    problems = _structure_problems(sweep)
    if problems:
        raise SweepError(f"{path} is damaged: " + "; ".join(problems))
    problems = _escaping_run_dirs(sweep, root)
    if problems:
        raise SweepError(f"{path} is refused: every task's run directory must be inside {root}:\n  - " + "\n  - ".join(problems))
    sweep = _map_paths(sweep, lambda p: str(root / p) if not Path(p).is_absolute() else p)
    try:
        check_sweep_links(root, sweep)
    except SymlinkRefused as err:
        raise SweepError(f"{path} is refused: {err}") from None
    return sweep


#: What a sweep directory holds besides its tasks' run directories (docs/sweeps.rst).
SWEEP_ENTRIES = (SWEEP_FILE, SWEEP_FILE + ".tmp", "sweep.lock", "local", "slurm", "report")


def check_sweep_links(root: Path, sweep: dict[str, Any]) -> None:
    """Refuse a symlink at any place of the sweep directory the sweep writes to (its files and folders,
    each task's run directory and the folders above it), naming it (:class:`~torchrl_reg.run.files.SymlinkRefused`).
    The inside of each run directory is checked by the run itself when it starts
    (:func:`~torchrl_reg.run.rundir.open_run_dir`)."""
    for name in SWEEP_ENTRIES:
        check_components(root, root / name)
    for task in sweep["tasks"]:
        run_dir = Path(task["run_dir"])
        # stored as an absolute path spelled through another folder: it resolves inside (_escaping_run_dirs)
        check_components(root, run_dir if run_dir.is_relative_to(root) else run_dir.resolve())


def sweep_recipe(sweep: dict[str, Any], named: str | Path | None = None) -> Any:
    """The recipe to run the tasks of ``sweep`` with (a :class:`~torchrl_reg.sweep.spec.Recipe`).

    A ``sweep.json`` is data: the script it records is imported only when it is one of the
    project's recipes (:data:`PROJECT_RECIPES`). Any other recipe (the user's own script, or one a
    crafted file points at, inside the sweep directory or anywhere) runs only when the user names
    it (``named``, e.g. ``--resume SWEEP_DIR my_recipes/x.py``), and it must carry the recorded
    recipe's name. Anything else raises :class:`SweepError` with the reason.
    """
    from torchrl_reg.sweep.spec import Recipe

    recorded = Path(sweep["recipe"])
    if named is not None:
        recipe = Recipe.from_path(named)
        if recipe.name != recorded.stem:
            raise SweepError(f"the sweep was made with the recipe {recorded.name}, not {Path(named).name}: name that recipe")
        return recipe
    project = (PROJECT_RECIPES / f"{recorded.stem}.py").resolve()
    if recorded.suffix != ".py" or recorded.resolve() != project or not project.is_file():
        raise SweepError(
            f"the sweep file names the recipe {str(recorded)!r}, which is not one of the project's recipes "
            f"({PROJECT_RECIPES}/<name>.py); a sweep directory is data and --resume does not import a script it "
            f"names. If you trust that script, name it yourself: --resume SWEEP_DIR {recorded}"
        )
    return Recipe.from_path(project)


def write_sweep_file(sweep_dir: str | Path, sweep: dict[str, Any]) -> None:
    """Write ``<sweep_dir>/sweep.json`` atomically, paths under the sweep directory made relative to it."""
    root = Path(sweep_dir).resolve()

    def relative(p: str) -> str:
        path = Path(p)
        return path.relative_to(root).as_posix() if path.is_absolute() and path.is_relative_to(root) else p

    write_atomic(root / SWEEP_FILE, json.dumps(_map_paths(sweep, relative), indent=1) + "\n")


@contextmanager
def sweep_file_lock(sweep_dir: str | Path) -> Iterator[None]:
    """Hold ``<sweep_dir>/sweep.lock`` (``flock``, waiting for it) around a read-modify-write of ``sweep.json``:
    two ``--resume`` at once each append their submission, neither losing the other's."""
    path = Path(sweep_dir).resolve() / "sweep.lock"
    with open_file(path, "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


#: The environment variable by which the local driver tells each task which directory it holds (``dev:inode``).
SWEEP_DIR_ID = "TORCHRL_REG_SWEEP_DIR_ID"


def folder_id(fd: int) -> str:
    """``dev:inode`` of an open folder: what names one directory whatever becomes of its path."""
    info = os.fstat(fd)
    return f"{info.st_dev}:{info.st_ino}"


@contextmanager
def held_sweep_dir(sweep_dir: str | Path, expected: str | None = None) -> Iterator[int]:
    """Hold ``sweep_dir`` by descriptor for a block (:func:`~torchrl_reg.run.files.hold_folder`): sweep.json, the logs
    and every task's run directory are opened from it, so a sweep directory moved away or replaced by a symlink
    meanwhile never receives a byte, nor has another sweep's task trained in its name. ``expected``: the folder the
    caller holds (:func:`folder_id`), which this one must be (a task started by the local driver): else
    :class:`SweepError`. Yields the descriptor."""
    from torchrl_reg.run.files import hold_folder, release_folder

    path = os.path.abspath(sweep_dir)
    fd = hold_folder(path)
    try:
        if expected is not None and folder_id(fd) != expected:
            raise SweepError(f"the sweep directory {printable(path)} is no longer the one its driver started the task "
                             "in (moved away, or replaced by a link or another folder): nothing of it is run")
        yield fd
    finally:
        release_folder(path)


def sweep_dir_replaced(sweep_dir: str | Path, fd: int) -> bool:
    """Whether the path ``sweep_dir`` no longer names the folder held as ``fd`` (a link in its place counts)."""
    try:
        return folder_id(fd) != "{0.st_dev}:{0.st_ino}".format(os.lstat(sweep_dir))
    except OSError:
        return True


def _log(message: str) -> None:
    now = time.time()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"
    print(f"[torchrl_reg.sweep {stamp}] {message}", flush=True)


class SweepTask:
    """Callable that runs task ``index`` of the sweep stored in ``sweep_dir`` (pickled by submitit).

    It holds only small values; the task's config is read from ``sweep.json`` when it runs, so a
    requeued task runs the very config that was validated at submission. ``recipe`` is the script
    the user named when creating or resuming the sweep; without it, only a project recipe recorded
    in ``sweep.json`` runs (:func:`sweep_recipe`).
    """

    def __init__(self, sweep_dir: str, index: int, recipe: str | None = None):
        self.sweep_dir = str(sweep_dir)
        self.index = int(index)
        self.recipe = None if recipe is None else str(recipe)

    def __repr__(self) -> str:
        return f"SweepTask({self.sweep_dir!r}, {self.index}, {self.recipe!r})"

    def __call__(self) -> dict[str, Any]:
        from omegaconf import OmegaConf

        from torchrl_reg.run.checkpoint import has_checkpoint
        from torchrl_reg.run.stop import install_stop_signal_handlers
        from torchrl_reg.sweep.spec import Task, check_recorded_configs

        started = time.time()
        # Replaces submitit's handlers (SIGUSR2: requeue from inside the handler, SIGTERM: ignored).
        install_stop_signal_handlers(STOP_SIGNALS)
        _start_resource_tracker_deaf_to_user_signals()
        with _SignalLog() as signals, held_sweep_dir(self.sweep_dir, os.environ.get(SWEEP_DIR_ID)):
            sweep = read_sweep_file(self.sweep_dir)
            task = Task.from_json(sweep["tasks"][self.index])
            run_dir = Path(task.run_dir)
            _log(
                f"task {task.index} ({' '.join(task.overrides) or 'no overrides'}) in {run_dir}: "
                + ("resuming from its checkpoint" if has_checkpoint(run_dir) else "starting")
            )
            # A task pickled before tasks carried their recipe has no such attribute.
            recipe = sweep_recipe(sweep, getattr(self, "recipe", None))
            check_recorded_configs(recipe, [sweep["tasks"][self.index]])
            metrics = recipe.module().train(OmegaConf.create(task.config))
            received = signals.received()
        status = metrics.get("status")
        _log(f"task {task.index} returned status={status!r} after {time.time() - started:.0f} s")
        if status == "interrupted":
            if metrics.get("resumable", True) is False:
                # env.backend='vector': a requeued task would be refused (open_run_dir); the stop is a failure.
                _log(f"stopped by {_signal_names(received)}; env.backend='vector' cannot resume, not requeueing")
                sys.exit(-1)
            self._after_interrupt(started, received)
        return metrics

    def checkpoint(self) -> Any:
        """For submitit's requeue: the training state is in the run directory, so resubmit as is."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self)

    def _after_interrupt(self, started: float, received: list[int]) -> None:
        if os.environ.get("SUBMITIT_EXECUTOR") != "slurm":
            # Run by the local executor (or by hand): nothing requeues it; --resume continues it.
            return
        requeue_signals = [s for s in received if s in REQUEUE_SIGNALS]
        if not requeue_signals:
            _log(f"stopped by {_signal_names(received)}: checkpoint written, exiting without requeueing")
            sys.exit(-1)
        from submitit import JobEnvironment
        from submitit.core.job_environment import SignalHandler
        from submitit.core.utils import DelayedSubmission

        env = JobEnvironment()
        handler = SignalHandler(env, env.paths, DelayedSubmission.load(env.paths.submitted_pickle))
        # Time-out accounting measures the run time from the task's start, as submitit's handler does.
        handler._start_time = started
        _log(f"stopped by {_signal_names(received)}: checkpoint written, requeueing")
        # submitit's own logic, from the main loop instead of a signal handler: count a time-out
        # against max_num_timeout, dump self.checkpoint(), scontrol requeue, exit.
        try:
            handler.checkpoint_and_try_requeue(requeue_signals[-1])
        except subprocess.CalledProcessError as err:
            # e.g. a preemption that sent SIGUSR2 and already requeued the job (PreemptMode=REQUEUE)
            _log(f"scontrol requeue failed ({err}); the checkpoint is written, --resume continues the task")
            sys.exit(-1)


def _signal_names(signums: list[int]) -> str:
    names = [signal.Signals(s).name for s in dict.fromkeys(signums) if s in STOP_SIGNALS]
    return ", ".join(names) or "a stop request"


def _start_resource_tracker_deaf_to_user_signals() -> None:
    """Start multiprocessing's resource tracker now, with SIGUSR1/SIGUSR2 blocked in it.

    SLURM delivers a job's signals to every process of the step. The tracker (a helper process
    that shared-memory users such as torch start on demand) ignores SIGINT and SIGTERM but dies
    on SIGUSR1/SIGUSR2, leaking its shared memory segments; a blocked signal mask is inherited
    by the child, so the one started here survives them.
    """
    from multiprocessing import resource_tracker

    previous = signal.pthread_sigmask(signal.SIG_BLOCK, REQUEUE_SIGNALS)
    try:
        resource_tracker.ensure_running()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def main(argv: list[str] | None = None) -> int:
    """``python -m torchrl_reg.sweep.task SWEEP_DIR INDEX [RECIPE]``: what the local executor runs per task."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (2, 3):
        print("usage: python -m torchrl_reg.sweep.task SWEEP_DIR INDEX [RECIPE]", file=sys.stderr)
        return 2
    from torchrl_reg.run.stop import EXIT_INTERRUPTED

    metrics = SweepTask(args[0], int(args[1]), args[2] if len(args) == 3 else None)()
    return 0 if metrics.get("status") == "completed" else EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
