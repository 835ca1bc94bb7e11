"""The run directory: where it is, one writer at a time, and resumes that cannot change what is being trained.

:func:`resolve_run_dir` says where it is (``cfg.run_dir``, else Hydra's output directory, else the working directory).
:func:`open_run_dir` locks the run directory before anything in it is touched, then, if it holds a
checkpoint, compares the new config with the stored ``config.yaml`` and refuses every difference
that could change training (the config's schema declares the only keys that may differ: :func:`resume_rules`); without
a checkpoint, it refuses a directory holding an earlier run's logs or metrics, which a fresh start
would delete (:class:`EarlierRunRefused`).

``<run_dir>/run.lock`` is locked with ``flock`` for as long as a run uses the directory and holds
the pid and host of that run. The directory itself is locked too where the filesystem allows it
(local disks; NFS cannot lock a directory), so that deleting ``run.lock`` by hand does not let a
second writer in. A probe (:func:`run_dir_holder`, what ``sweep --status`` and ``--resume`` ask)
takes a shared lock for an instant; a run starting at that instant retries for a short while
instead of mistaking the probe for a writer. The kernel (or the NFS server) drops the lock when its process dies,
however it dies, so a lock file left by a SIGKILLed or crashed run is recognised as stale and
taken over (with a message naming the dead run); a second live writer is refused with a message
naming the one already running. On a filesystem without ``flock`` the pid and host decide: a
lock of a dead process on this host is stale, any other is refused.
"""
from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from torchrl_reg.cli import shown
from torchrl_reg.run.checkpoint import has_checkpoint
from torchrl_reg.run.files import (
    FileRefused,
    hold_folder,
    load_yaml_config,
    lstat_file,
    open_file,
    open_regular_fd,
    read_json,
    refuse_symlinks,
    release_folder,
    remove_file,
    write_atomic,
)

__all__ = [
    "LOCK_NAME",
    "AS_NEW",
    "RunDirLocked",
    "ResumeRefused",
    "EarlierRunRefused",
    "StorageRefused",
    "hold_run_subfolder",
    "RunDirLock",
    "held_run_dirs",
    "lock_run_dir",
    "release_run_dir",
    "released_on_error",
    "open_run_dir",
    "resolve_run_dir",
    "resume_changes",
    "resume_rules",
    "unread_in",
    "added_unread",
    "run_dir_holder",
    "config_digest",
    "keys_added_unread",
    "check_run_dir",
    "job_log",
    "RUN_ENTRIES",
    "write_config",
]

LOCK_NAME = "run.lock"

#: Stands, in a schema's ``added_keys``, for "the value the new config holds": the key's absence meant it.
AS_NEW = object()


def resume_rules(schema: Any) -> tuple[dict[str, str], dict[str, Any]]:
    """What a resume of a config of ``schema`` (its dataclass, or a typed config: ``OmegaConf.get_type``) may change:
    ``(resumable, added)``, merged along the schema's method resolution order from what each class declares.

    * ``resumable_keys`` (``ClassVar``, dotted key -> ``"any"`` or ``"larger"``): the only keys a resumed run may
      change, because none of them changes a trained number (where the run stops, later only; what is logged; how
      often it checkpoints; where the directory is). Every other difference is refused.
    * ``added_keys`` (``ClassVar``, dotted key -> value): keys added after run directories were written without
      them, with the value a config that lacks the key meant (:data:`AS_NEW`: the new config's; a callable: a
      function of the stored config, flat). A resume compares the stored config as if it held that value.

    A group's dataclass (the ``default_factory`` of one of the schema's fields) declares its own keys the same way,
    without the group's name (``added_keys = {"futures": 1}`` on the group ``search`` is ``search.futures``). A config
    without a schema (a plain mapping) may change nothing."""
    import dataclasses

    from omegaconf import DictConfig, OmegaConf

    if isinstance(schema, DictConfig):
        schema = OmegaConf.get_type(schema)
    resumable: dict[str, str] = {}
    added: dict[str, Any] = {}

    def declared(klass: Any, prefix: str) -> None:
        for base in reversed(getattr(klass, "__mro__", ())):
            resumable.update({prefix + k: v for k, v in vars(base).get("resumable_keys", {}).items()})
            added.update({prefix + k: v for k, v in vars(base).get("added_keys", {}).items()})

    declared(schema, "")
    for group in dataclasses.fields(schema) if dataclasses.is_dataclass(schema) else ():
        if isinstance(group.default_factory, type) and dataclasses.is_dataclass(group.default_factory):
            declared(group.default_factory, f"{group.name}.")
    return resumable, added


logger = logging.getLogger(__name__)


class RunDirLocked(RuntimeError):
    """Another live process writes to this run directory."""


class ResumeRefused(ValueError):
    """A resume whose config differs from the stored one in a way that could change training."""


class StorageRefused(ValueError):
    """A run's storage in its directory that cannot be made: it would not fit on the disk, or a library would write
    it by path where no descriptor can name the checked folder."""


class EarlierRunRefused(ResumeRefused):
    """A run directory holding an earlier run's logs or metrics but no checkpoint to continue it from."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _describe(holder: dict[str, Any]) -> str:
    # read from run.lock, which anyone may have written: escaped and cut (cli.shown)
    return (f"pid {shown(holder.get('pid', '?'), 40)} on host {shown(holder.get('host', '?'), 100)} "
            f"(since {shown(holder.get('since', '?'), 40)})")


# How long a run that finds its directory locked keeps trying before it concludes that a writer,
# not a probe, holds it: a probe holds its shared lock for microseconds.
_PROBE_RETRIES, _PROBE_WAIT_S = 40, 0.05
_NO_FLOCK = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL, errno.EBADF)


def _flock_exclusive(fd: int) -> bool:
    """``flock(LOCK_EX)`` without blocking, retried past probes; ``False`` when another process keeps it."""
    for attempt in range(_PROBE_RETRIES):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if attempt + 1 < _PROBE_RETRIES:
                time.sleep(_PROBE_WAIT_S)
    return False


def _flock_shared_free(fd: int) -> bool:
    """Whether no writer holds ``fd``'s file (a shared lock taken and dropped at once); raises ``OSError`` without flock."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    fcntl.flock(fd, fcntl.LOCK_UN)
    return True


class RunDirLock:
    """The exclusive lock of one run directory (see the module docstring); :meth:`release` frees it."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = None
        self._dir_fd: int | None = None
        self.held_as = str(self.run_dir)  # the name lock_run_dir holds the directory by

    @property
    def held(self) -> bool:
        return self._fd is not None

    def _read_holder(self, fd: int) -> dict[str, Any]:
        try:
            text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
            holder = json.loads(text) if text.strip() else {}
        except (OSError, ValueError):
            holder = {}
        return holder if isinstance(holder, dict) else {}

    def _refuse(self, holder: dict[str, Any]) -> RunDirLocked:
        who = _describe(holder) if holder else f"another process (its lock file {self.path} was deleted)"
        return RunDirLocked(
            f"run directory {self.run_dir} is in use by {who} (lock file {self.path}); two "
            "runs writing one directory would corrupt its checkpoint and logs. Wait for that run to "
            "end or stop it (it checkpoints on SIGTERM), then run again"
        )

    def _lock_directory(self) -> None:
        """Lock the directory itself (kept by a user who deletes ``run.lock``); skipped where it cannot be locked."""
        fd = os.open(self.run_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if not _flock_exclusive(fd):
                holder: dict[str, Any] = {}
                if self.path.exists():
                    lock_fd = open_regular_fd(self.path)
                    try:
                        holder = self._read_holder(lock_fd)
                    finally:
                        os.close(lock_fd)
                raise self._refuse(holder)
        except OSError as err:
            os.close(fd)
            if err.errno not in _NO_FLOCK:
                raise
            return
        except BaseException:
            os.close(fd)
            raise
        self._dir_fd = fd

    def acquire(self) -> None:
        """Take the lock, or raise :class:`RunDirLocked` naming the process that holds it."""
        self._lock_directory()
        try:
            self._acquire_file()
        except BaseException:
            self._release_directory()
            raise

    def _release_directory(self) -> None:
        if self._dir_fd is not None:
            os.close(self._dir_fd)
            self._dir_fd = None

    def _acquire_file(self) -> None:
        while True:
            # never through a link, a regular file of one link: the lock file is truncated and written below
            fd = open_regular_fd(self.path, os.O_RDWR | os.O_CREAT, in_place=True, mode=0o644)
            try:
                holder = self._read_holder(fd)
                try:
                    if not _flock_exclusive(fd):
                        raise self._refuse(holder or {"pid": "?"})
                except OSError as err:
                    if err.errno not in _NO_FLOCK:
                        raise
                    self._check_without_flock(holder)
                # A holder that unlinked the file between our open and flock: lock the new file instead.
                if os.path.exists(self.path) and os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                    break
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)
        if holder.get("pid") is not None and holder.get("pid") != os.getpid():
            logger.warning("run directory %s: taking over the stale lock of %s, which is no longer running",
                           self.run_dir, _describe(holder))
        record = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        os.fsync(fd)
        self._fd = fd

    def _check_without_flock(self, holder: dict[str, Any]) -> None:
        pid, host = holder.get("pid"), holder.get("host")
        if pid is None or pid == os.getpid():
            return
        if host == socket.gethostname() and not _pid_alive(int(pid)):
            return
        raise RunDirLocked(
            f"run directory {self.run_dir} is locked by {_describe(holder)} (lock file {self.path}) and this "
            "filesystem cannot tell whether that process still runs; if it does not, delete the lock file"
        )

    def release(self) -> None:
        """Remove the lock file and free the lock (unlinked while still held, so no other process
        can lock the old file after a newcomer created a new one)."""
        if self._fd is None:
            return
        try:  # from the run directory's held descriptor: the directory may have been moved (a link in its place)
            info = lstat_file(self.path)
            if info is not None and info.st_ino == os.fstat(self._fd).st_ino:
                remove_file(self.path)
        finally:
            os.close(self._fd)
            self._fd = None
            self._release_directory()


def run_dir_holder(run_dir: str | Path) -> dict[str, Any] | None:
    """The pid, host and start time of the live process that holds ``run_dir``'s lock, or ``None``.

    What a sweep's ``--resume`` asks before starting a task again: a task whose driver was killed
    may still be running.
    """
    path = Path(run_dir) / LOCK_NAME
    try:
        fd = open_regular_fd(path)  # a FIFO in its place is refused, never waited on
    except FileNotFoundError:
        fd = None
    try:
        holder = RunDirLock(run_dir)._read_holder(fd) if fd is not None else {}
        try:
            dir_fd = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            return None
        try:
            if not _flock_shared_free(dir_fd):
                return holder  # held; its run.lock may have been deleted
        except OSError:
            pass  # a directory that cannot be locked (NFS): the lock file decides
        finally:
            os.close(dir_fd)
        if fd is None:
            return None
        try:
            return None if _flock_shared_free(fd) else holder
        except OSError:  # no flock on this filesystem: a live pid on this host is the holder
            pid = holder.get("pid")
            alive = pid is not None and holder.get("host") == socket.gethostname() and _pid_alive(int(pid))
            return holder if alive else None
    finally:
        if fd is not None:
            os.close(fd)


# Locks held by this process, by resolved directory; a loop releases the ones it took when it returns or raises
# (torchrl_reg.run.process.process_scope), and a later run of a directory still held here takes it over.
_HELD: dict[Path, RunDirLock] = {}
# The folders resolve_run_dir created for a run directory (the directory first, then its missing parents), by the
# directory's absolute name: a run that fails before it writes a file takes them away again (release_run_dir).
_CREATED: dict[str, list[str]] = {}


def held_run_dirs() -> list[str]:
    """The run directories this process holds locked, by the names they were locked as."""
    return [lock.held_as for lock in _HELD.values()]


def lock_run_dir(run_dir: str | Path) -> RunDirLock:
    """Lock ``run_dir`` for this process (see :class:`RunDirLock`); released by :func:`release_run_dir`."""
    key = Path(run_dir).resolve()
    if key in _HELD:
        release_run_dir(key)
    # Held open from here to the release: every file of the run is opened from this descriptor, so a run directory
    # swapped (moved away, a link in its place) mid-run never receives the run's files.
    hold_folder(run_dir)
    lock = RunDirLock(key)
    try:
        lock.acquire()
    except BaseException:
        release_folder(run_dir)
        raise
    lock.held_as = os.path.abspath(run_dir)
    _HELD[key] = lock
    return lock


def release_run_dir(run_dir: str | Path) -> None:
    """Release this process's lock on ``run_dir``, if it holds one."""
    given = os.path.abspath(run_dir)
    # by the name it was locked as, too: a directory swapped for a link mid-run resolves elsewhere now
    key = next((k for k, lock in _HELD.items() if lock.held_as == given), Path(run_dir).resolve())
    lock = _HELD.pop(key, None)
    if lock is not None:
        try:
            for folder in _SUBFOLDERS.pop(lock.held_as, []):
                release_folder(folder)
            lock.release()
        finally:
            release_folder(lock.held_as)
            _remove_if_created_and_empty(lock.held_as)


def _remove_if_created_and_empty(run_dir: str) -> None:
    """Take away the folders :func:`resolve_run_dir` created for ``run_dir`` when the run left them empty (it failed
    before writing a file: a refusal under the lock leaves no new directory behind). Only empty folders go
    (``os.rmdir``); a directory that holds anything, or existed before, stays."""
    for folder in _CREATED.pop(run_dir, []):
        try:
            os.rmdir(folder)
        except OSError:  # not empty (the run wrote something, or someone else did), or gone: it stays as it is
            return


@contextmanager
def released_on_error(run_dir: str | Path) -> Iterator[None]:
    """Release this process's lock on ``run_dir`` (removing ``run.lock``) if the block raises: a run
    refused while it is being set up (an env the method cannot use, say) leaves nothing behind."""
    try:
        yield
    except BaseException:
        release_run_dir(run_dir)
        raise


def resolve_run_dir(run_dir: str | None) -> Path:
    """The run directory: ``run_dir`` when given, else Hydra's output directory, else the working directory.

    Hydra's output directory is only known inside a ``@hydra.main`` call; a programmatic
    ``train(cfg)`` passes ``run_dir`` explicitly (or runs in the current directory).
    """
    if run_dir is not None:
        path = Path(run_dir)
    else:
        from hydra.core.hydra_config import HydraConfig

        path = Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else Path(os.getcwd())
    missing, folder = [], os.path.abspath(path)
    while not os.path.lexists(folder):
        missing.append(folder)
        folder = os.path.dirname(folder)
    path.mkdir(parents=True, exist_ok=True)
    if missing:
        _CREATED[missing[0]] = missing
    return path


def open_run_dir(cfg: Any) -> Path:
    """The run directory of a validated recipe config (created if needed), locked for this run.

    Nothing in the directory is touched before the lock is held: a second run of the same
    directory is refused (:class:`RunDirLocked`) before it writes anything. Then the same checks as
    :func:`check_run_dir`, under the lock; then, on the command line (:func:`job_log`), the job log is opened.
    ``config.yaml`` is written later, by :meth:`~torchrl_reg.run.recipe_run.RecipeRun.start`, once everything is built.
    """
    run_dir = resolve_run_dir(cfg.run_dir)
    # Before anything is written: a symlink below the directory would take a write of the run elsewhere
    # (wandb keeps links of its own, inside its folder).
    refuse_symlinks(run_dir, allow_under=("wandb",))
    lock_run_dir(run_dir)
    with released_on_error(run_dir):
        _check_contents(run_dir, cfg)
        _attach_job_log(run_dir)
    return run_dir


def check_run_dir(cfg: Any, run_dir: str | Path | None = None) -> None:
    """Every refusal :func:`open_run_dir` would raise for ``cfg`` (validated) in ``run_dir`` (default ``cfg.run_dir``),
    decided without writing anything, not even the lock: what a recipe's command line asks before Hydra starts, so
    that a refused command leaves every file of the directory as it was (and makes no directory). A symlink below
    it (:class:`~torchrl_reg.run.files.SymlinkRefused`), a live run in it (:class:`RunDirLocked`), a resume with
    another config (:class:`ResumeRefused`), an earlier run's results without a checkpoint or files no run wrote
    (:class:`EarlierRunRefused`), a job log of several links (:class:`~torchrl_reg.run.files.FileRefused`). A
    directory that does not exist yet passes. :func:`open_run_dir` checks again under the lock."""
    run_dir = cfg.run_dir if run_dir is None else run_dir
    if run_dir is None or not os.path.isdir(run_dir):
        if run_dir is not None and os.path.lexists(run_dir) and not os.path.isdir(run_dir):
            raise FileRefused(f"run_dir {run_dir} is not a directory: choose another run_dir")
        return
    run_dir = Path(run_dir)
    refuse_symlinks(run_dir, allow_under=("wandb",))
    holder = run_dir_holder(run_dir)
    if holder is not None:
        raise RunDirLock(run_dir)._refuse(holder)
    _check_contents(run_dir, cfg)
    if _JOB_LOG:
        log = run_dir / f"{_JOB_LOG[-1]}.log"
        info = lstat_file(log)
        if info is not None:
            fd = open_regular_fd(log, in_place=True)  # a FIFO, a device or a file of several links: refused
            os.close(fd)


def _check_contents(run_dir: Path, cfg: Any) -> None:
    if has_checkpoint(run_dir):
        _check_resume(run_dir, cfg)
    else:
        _check_fresh(run_dir)


#: What a run writes in its directory, by name (and ``<name>.tmp`` of each file while it is written): a directory
#: without a checkpoint that holds anything else is not a run's, and a run is not started in it
#: (:class:`EarlierRunRefused`). ``.hydra`` is what Hydra wrote into run directories before runs wrote none.
RUN_ENTRIES = frozenset({
    LOCK_NAME, "config.yaml", "metrics.json", "checkpoint.pt", "checkpoint.prev.pt", "checkpoint.pt.corrupt",
    "checkpoint.prev.pt.corrupt", "learning_curve.png", "returns.png", "csv", "replay", "tensorboard", "wandb",
    ".hydra",
})


def _foreign_entries(run_dir: Path) -> list[str]:
    """The names in ``run_dir`` that no run writes (:data:`RUN_ENTRIES`, a ``.tmp`` of one, a ``<recipe>.log``)."""
    try:
        names = sorted(os.listdir(run_dir))
    except FileNotFoundError:
        return []
    ours = lambda name: (name in RUN_ENTRIES or (name.endswith(".tmp") and name[:-4] in RUN_ENTRIES)  # noqa: E731
                         or (name.endswith(".log") and name[:-4].isidentifier()))
    return [name for name in names if not ours(name)]


def _shown(text: Any, limit: int = 60, *, quoted: bool = False) -> str:
    """``text`` as ``repr`` writes it (every control or bidi character escaped; ``quoted``: a value, with its
    quotes if a string), cut to ``limit`` characters with its length said."""
    shown = repr(text) if quoted else repr(str(text))[1:-1]
    return shown if len(shown) <= limit else f"{shown[:limit]}... ({len(shown)} characters)"


# The job log the command line asked for (:func:`job_log`), and the handlers writing it, by run directory.
_JOB_LOG: list[str] = []
_JOB_HANDLERS: dict[str, logging.Handler] = {}
# Folders below a run directory held open for it (:func:`hold_run_subfolder`), released with the run directory.
_SUBFOLDERS: dict[str, list[str]] = {}

#: The format of the job log's lines: Hydra's console format.
JOB_LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"


@contextmanager
def job_log(name: str) -> Iterator[None]:
    """While the block runs, a run directory opened by :func:`open_run_dir` gets the job log ``<run_dir>/<name>.log``
    (the root logger's records, as the console shows them, appended), opened once the directory has passed its
    checks and is locked, as every file of a run is (:func:`~torchrl_reg.run.files.open_file`: no link followed, a
    regular file of one link), and closed when the block ends (the run's summary line, logged after the run, goes
    to the same open file). The recipes' command line uses it; ``train(cfg)`` writes no job log."""
    _JOB_LOG.append(name)
    attached = set(_JOB_HANDLERS)
    try:
        yield
    finally:
        _JOB_LOG.pop()
        for run_dir in set(_JOB_HANDLERS) - attached:
            _detach_job_log(run_dir)


def _attach_job_log(run_dir: Path) -> None:
    if not _JOB_LOG:
        return
    stream = open_file(Path(run_dir) / f"{_JOB_LOG[-1]}.log", "a")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(JOB_LOG_FORMAT))
    logging.getLogger().addHandler(handler)
    _JOB_HANDLERS[os.path.abspath(run_dir)] = handler


def _detach_job_log(run_dir: str) -> None:
    handler = _JOB_HANDLERS.pop(os.path.abspath(run_dir), None)
    if handler is not None:
        logging.getLogger().removeHandler(handler)
        handler.close()
        handler.stream.close()


def hold_run_subfolder(run_dir: str | Path, name: str) -> Path:
    """The folder ``<run_dir>/<name>`` of a locked run directory, made (if needed) and opened from the directory's
    held descriptor through no symlink, and held open until the run releases the directory: files a library writes
    there by path go to :func:`~torchrl_reg.run.files.descriptor_path` of it, the very folder that was checked."""
    run_dir = Path(os.path.abspath(run_dir))
    folder = run_dir / name
    hold_folder(folder, root=run_dir, create=True)
    _SUBFOLDERS.setdefault(str(run_dir), []).append(str(folder))
    return folder


def _check_fresh(run_dir: Path) -> None:
    """Refuse a run directory without a checkpoint that holds what an earlier run would lose.

    A run starting without a checkpoint drops every CSV row (rows of an attempt killed before its
    first checkpoint are logged again). That is only right when the directory's ``metrics.json``
    says so: ``status: running`` at 0 frames, which :class:`~torchrl_reg.run.recipe_run.RecipeRun`
    writes at a fresh start and replaces at every checkpoint. Anything else (a finished run whose
    checkpoints were deleted to free disk, logs without metrics) is refused, naming what is there.
    """
    foreign = _foreign_entries(run_dir)
    if foreign:
        listed = ", ".join(_shown(name) for name in foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise EarlierRunRefused(
            f"run directory {_shown(run_dir, 200)} holds files no run wrote ({listed}) and no checkpoint: it is not a run "
            "directory, and a run started there would mix its files with them. Choose a new or empty run_dir (or move "
            "those files away)"
        )
    metrics_path = run_dir / "metrics.json"
    csv_files = sorted(p for p in (run_dir / "csv").rglob("*.csv") if p.stat().st_size) if (run_dir / "csv").is_dir() else []
    if not metrics_path.exists() and not csv_files:
        return
    if metrics_path.exists():
        try:
            metrics = read_json(metrics_path, "metrics")
        except FileRefused:
            raise  # a FIFO, a device, a file past its size or depth bound: named as it is
        except (OSError, ValueError):
            metrics = None
        if isinstance(metrics, dict) and metrics.get("status") == "running" and metrics.get("frames") == 0:
            return  # killed before its first checkpoint: nothing of it can be continued
        found = (f"metrics.json (status {metrics.get('status')!r}, {metrics.get('frames')} frames)"
                 if isinstance(metrics, dict) else "an unreadable metrics.json")
    else:
        found = "no metrics.json"
    raise EarlierRunRefused(
        f"run directory {run_dir} holds an earlier run's results but no checkpoint to continue it from: {found}, "
        f"{len(csv_files)} CSV log files under {run_dir / 'csv'}. Starting here would delete those logs and retrain "
        "from frame 0. To start over on purpose, delete the directory (or its csv/ and metrics.json) first; "
        "otherwise choose another run_dir"
    )


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}


def unread_in(new: Mapping[str, Any], schema: Any) -> set[str]:
    """The dotted keys of the resolved config ``new`` that its own settings leave unread (each group's
    ``read_only_if`` in ``schema``: ``loss.q`` under ``loss.name='m_dqn'``)."""
    import dataclasses

    from omegaconf import DictConfig, OmegaConf

    from torchrl_reg.validation import unread_keys

    if isinstance(schema, DictConfig):
        schema = OmegaConf.get_type(schema)
    found: set[str] = set()
    for group in dataclasses.fields(schema) if dataclasses.is_dataclass(schema) else ():
        node = new.get(group.name)
        if isinstance(group.default_factory, type) and dataclasses.is_dataclass(group.default_factory) and isinstance(node, Mapping):
            try:
                found |= {f"{group.name}.{key}" for key in unread_keys(group.default_factory, node)}
            except (KeyError, TypeError):  # a group without the key that decides: nothing is known to be unread
                continue
    return found


def added_unread(stored: Mapping[str, Any], new: Mapping[str, Any], schema: Any) -> set[str]:
    """The dotted keys of the resolved config ``new`` that the stored config ``stored`` lacks and ``new``'s own
    settings leave unread (:func:`unread_in`): a key added to a group since ``stored`` was written, for another option
    of it. The one rule by which a resume (:func:`resume_changes`), a checkpoint's digest (:func:`keys_added_unread`)
    and a sweep's recorded tasks take such a key as no change."""
    return (set(_flat(dict(new))) - set(_flat(dict(stored)))) & unread_in(new, schema)


def resume_changes(stored: Mapping[str, Any], new: Mapping[str, Any], schema: Any) -> list[str]:
    """The differences between a stored and a new resolved config that a resume refuses, one line each
    (``key: stored -> new``); differences that ``schema`` allows (:func:`resume_rules`) are left out, and so is a key
    the stored config lacks that the new one leaves unread (a key added to a group since, for another option of it:
    ``loss.q`` of MVI(q) beside a stored ``loss.name=m_dqn`` run) -- it cannot change a trained number."""
    resumable, added = resume_rules(schema)
    old, cur = _flat(dict(stored)), _flat(dict(new))
    unchanged = added_unread(stored, new, schema) - set(added)
    refused = []
    for key in sorted(set(old) | set(cur)):
        if key in unchanged:
            continue
        b = cur.get(key, "<absent>")
        a = old.get(key, added.get(key, "<absent>"))
        if callable(a):
            a = a(old)
        if a is AS_NEW:
            a = b
        if a == b or (isinstance(a, float) and isinstance(b, float) and a != a and b != b):  # NaN == NaN here
            continue
        rule = resumable.get(key)
        if rule == "any" or (rule == "larger" and isinstance(a, int) and isinstance(b, int) and b > a):
            continue
        refused.append(f"{_shown(key)}: {_shown(a, quoted=True)} -> {_shown(b, quoted=True)}" + (" (may only grow)" if rule == "larger" else ""))
    return refused


def _check_resume(run_dir: Path, cfg: Any) -> None:
    from omegaconf import OmegaConf

    stored_path = run_dir / "config.yaml"
    if not stored_path.exists():
        raise ResumeRefused(
            f"run directory {run_dir} holds a checkpoint but no config.yaml to check this run's config against; "
            "restore config.yaml or start in a new directory"
        )
    stored = OmegaConf.to_container(load_yaml_config(stored_path), resolve=True)
    new = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else dict(cfg)
    if new.get("env", {}).get("backend") == "vector":
        raise ResumeRefused(
            f"run directory {run_dir} holds a checkpoint, and env.backend='vector' cannot resume it exactly: ale-py's "
            "AtariVectorEnv has no way to save or restore its emulators, so the run would go on from freshly reset "
            "games (torchrl_reg.envs.atari_vector). Use a new run_dir, or train with env.backend=wrappers (its "
            "checkpoints hold every emulator's state) where a run must survive a stop"
        )
    refused = resume_changes(stored, new, cfg)
    if refused:
        resumable, _ = resume_rules(cfg)
        larger = sorted(key for key, rule in resumable.items() if rule == "larger")
        listed = "; ".join(refused[:10]) + (f"; and {len(refused) - 10} more" if len(refused) > 10 else "")
        raise ResumeRefused(
            f"run directory {_shown(run_dir, 200)} holds a checkpoint of another config; resuming it with this one would "
            f"train something else under this config's name. Differences: {listed}. Only {sorted(resumable)} may "
            f"change on resume ({' and '.join(larger) or 'none'} only upwards); use a new run directory for another config"
        )


def config_digest(cfg: Any, leave_out: Iterable[str] = ()) -> str:
    """The SHA-256 of a run's resolved config, less the keys its schema lets a resume change and those added after
    run directories were written without them (:func:`resume_rules`), and the dotted keys ``leave_out``
    (:func:`keys_added_unread`: what the run's checkpoint was written without): what a
    checkpoint stores to name its run, so that a checkpoint copied from another run (another seed, another
    method) is refused (:func:`~torchrl_reg.run.checkpoint.load_checkpoint`)."""
    import hashlib

    from omegaconf import OmegaConf

    config = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else dict(cfg)
    resumable, added = resume_rules(cfg)
    skipped = set(leave_out)
    kept = {k: v for k, v in _flat(config).items() if k not in resumable and k not in added and k not in skipped}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()


def keys_added_unread(run_dir: str | Path, cfg: Any) -> set[str]:
    """The keys of ``cfg`` that the run directory's ``config.yaml`` lacks and ``cfg``'s settings leave unread (a key
    added to a group since the run was written, for another option of it: :func:`added_unread`): what its checkpoint's
    digest was computed without. Empty without a readable config.yaml."""
    from omegaconf import OmegaConf

    try:
        stored = OmegaConf.to_container(load_yaml_config(Path(run_dir) / "config.yaml"), resolve=True)
    except (OSError, ValueError):
        return set()
    new = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else dict(cfg)
    return added_unread(stored, new, cfg)


def write_config(run_dir: str | Path, cfg: Any) -> None:
    """Write the resolved ``config.yaml`` of a run atomically, following no symlink."""
    from omegaconf import OmegaConf

    write_atomic(Path(run_dir) / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
