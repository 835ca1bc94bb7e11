"""Every file of a run directory is a regular file we wrote: opened from its folder's descriptor without following a
link, checked by ``fstat`` before a byte is read or written, of one link where it is written in place, read within a
size bound and parsed within a depth bound; a folder swapped mid-run receives nothing."""
from __future__ import annotations

import errno
import os
import signal
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.run.test_contract import Draws, _config, draw
from torchrl_reg.run import Run, clear_stop, load_checkpoint, request_stop_at, truncate_csv_logs
from torchrl_reg.run import files
from torchrl_reg.run.files import (
    MAX_DEPTH,
    DiskFullError,
    FileRefused,
    SymlinkRefused,
    load_yaml_config,
    open_file,
    parse_json,
    parse_yaml,
    read_bytes,
    read_json,
    write_atomic,
)
from torchrl_reg.run.rundir import LOCK_NAME, lock_run_dir, open_run_dir, release_run_dir, run_dir_holder


@pytest.fixture(autouse=True)
def _no_pending_stop():
    clear_stop()
    yield
    clear_stop()


@contextmanager
def _never_blocks(seconds: int = 10):
    """Fail (instead of hanging the suite) when the block waits on a FIFO."""
    def blocked(*_):
        raise TimeoutError(f"blocked for {seconds} s")

    previous = signal.signal(signal.SIGALRM, blocked)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# -- hard links ---------------------------------------------------------------------------------------------------


def test_a_hard_linked_run_lock_is_refused_and_the_outside_file_is_untouched(tmp_path):
    """run.lock was opened O_RDWR and truncated: a hard link to a file outside had that file overwritten."""
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me\n")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    os.link(outside, run_dir / LOCK_NAME)
    with pytest.raises(FileRefused, match=f"{run_dir / LOCK_NAME} has 2 hard links.*cp -a"):
        lock_run_dir(run_dir)
    assert outside.read_text() == "keep me\n"
    assert files._HELD == {}  # the refused run holds no folder


def test_resuming_a_cp_al_copy_is_refused_before_the_originals_logs_change(tmp_path):
    """A copy made with ``cp -al`` shares the CSV logs with the original: resuming it appended rows to the original's
    CSVs. Now the resume is refused naming the file and how to make a real copy; the original is byte-identical."""
    original, copy = tmp_path / "original", tmp_path / "copy"
    request_stop_at(2)
    assert draw(original, 5)["status"] == "interrupted"
    before = _tree(original)
    subprocess.run(["cp", "-al", str(original), str(copy)], check=True)
    csv = copy / "csv" / "scalars" / "draw" / "value.csv"
    with pytest.raises(FileRefused, match=rf"{csv} has 2 hard links.*`cp -a`, or rsync without --link-dest"):
        draw(copy, 5)
    assert _tree(original) == before
    # A real copy resumes, and leaves the original alone.
    real = tmp_path / "real"
    subprocess.run(["cp", "-a", str(original), str(real)], check=True)
    assert draw(real, 5)["status"] == "completed"
    assert _tree(original) == before


def test_a_hard_linked_file_opened_for_appending_is_refused(tmp_path):
    outside = tmp_path / "outside.log"
    outside.write_text("line\n")
    (tmp_path / "local").mkdir()
    os.link(outside, tmp_path / "local" / "0_log.out")
    for mode in ("ab", "a", "w"):
        with pytest.raises(FileRefused, match="has 2 hard links"):
            open_file(tmp_path / "local" / "0_log.out", mode, root=tmp_path)
    assert outside.read_text() == "line\n"


# -- swaps mid-run ------------------------------------------------------------------------------------------------


def test_a_csv_folder_swapped_for_a_link_mid_run_receives_nothing(tmp_path):
    """csv/scalars replaced by a link to a folder outside between two log rows (the swap made at a chosen point,
    not raced): the next file opened there is refused and nothing lands outside."""
    outside = tmp_path / "outside"
    outside.mkdir()
    run_dir = tmp_path / "run"
    run = Run.open(_config(run_dir), Draws())
    try:
        run.start()
        run.log_scalar("train/return", 1.0, step=1)
        scalars = run_dir / "csv" / "scalars"
        scalars.rename(run_dir / "moved")
        scalars.symlink_to(outside, target_is_directory=True)
        run.log_scalar("train/return", 2.0, step=2)  # its file is held open: the row goes to the run's own file
        with pytest.raises(SymlinkRefused, match=f"{scalars} is a symlink"):
            run.log_scalar("eval/return", 3.0, step=2)
    finally:
        release_run_dir(run_dir)
    assert list(outside.iterdir()) == []
    assert (run_dir / "moved" / "train" / "return.csv").read_text() == "1,1.0\n2,2.0\n"


def test_a_run_directory_swapped_for_a_link_mid_run_keeps_every_file_in_the_run(tmp_path):
    """The run directory moved away and a link to a folder outside put in its place while the run goes on: its
    checkpoints, metrics.json and a CSV opened after the swap all go to the run's own (moved) directory."""
    outside = tmp_path / "outside"
    outside.mkdir()
    run_dir, moved = tmp_path / "run", tmp_path / "moved"
    state = Draws()
    run = Run.open(_config(run_dir), state)
    run.start()
    state.values.append(0.5)
    run.checkpoint()
    run_dir.rename(moved)
    run_dir.symlink_to(outside, target_is_directory=True)
    state.values.append(0.25)
    run.log_scalar("eval/return", 1.0, step=2)
    run.checkpoint()
    run.finish({"frames": 2})
    assert list(outside.iterdir()) == []
    assert {"checkpoint.pt", "checkpoint.prev.pt", "metrics.json", "config.yaml"} <= {p.name for p in moved.iterdir()}
    assert (moved / "csv" / "scalars" / "eval" / "return.csv").read_text() == "2,1.0\n"
    assert load_checkpoint(moved / "checkpoint.pt")["values"] == [0.5, 0.25]
    assert files._HELD == {}


# -- special files and bombs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["metrics.json", "checkpoint.pt", "csv", LOCK_NAME])
def test_a_fifo_in_a_run_directory_is_refused_without_blocking(tmp_path, name):
    run_dir = tmp_path / "run"
    if name == "csv":
        fifo = run_dir / "csv" / "scalars" / "draw" / "value.csv"
        fifo.parent.mkdir(parents=True)
        (run_dir / "metrics.json").write_text('{"status": "running", "frames": 0}')
    else:
        run_dir.mkdir()
        fifo = run_dir / name
    if name == "checkpoint.pt":
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(_config(run_dir)))
    os.mkfifo(fifo)
    with _never_blocks(), pytest.raises(FileRefused, match=f"{fifo} is a FIFO, not a regular file"):
        draw(run_dir, 2)
    if name == LOCK_NAME:  # what sweep --status asks of every task
        with _never_blocks(), pytest.raises(FileRefused, match=f"{fifo} is a FIFO"):
            run_dir_holder(run_dir)
    if name == "checkpoint.pt":
        with _never_blocks(), pytest.raises(FileRefused, match=f"{fifo} is a FIFO"):
            load_checkpoint(fifo)
    assert files._HELD == {}


def test_a_link_to_a_device_and_a_device_itself_are_refused(tmp_path):
    """metrics.json linked to /dev/zero was read without bound; a character device in its place too."""
    (tmp_path / "metrics.json").symlink_to("/dev/zero")
    with pytest.raises(SymlinkRefused):
        read_json(tmp_path / "metrics.json", "metrics")
    with pytest.raises(FileRefused, match="/dev/zero is a character device, not a regular file"):
        read_bytes("/dev/zero", "metrics")
    try:
        os.mknod(tmp_path / "device", 0o600 | 0o020000, os.makedev(1, 5))  # /dev/zero's numbers
    except OSError as err:
        pytest.skip(f"no character device can be made here ({err}); /dev/zero itself was refused above")
    with pytest.raises(FileRefused, match=f"{tmp_path / 'device'} is a character device"):
        read_json(tmp_path / "device", "metrics")


def test_a_file_above_its_kinds_size_limit_is_refused_naming_the_limit(tmp_path, monkeypatch):
    monkeypatch.setitem(files.READ_LIMITS, "metrics", 1000)
    path = tmp_path / "metrics.json"
    path.write_text('{"a": "' + "x" * 2000 + '"}')
    with pytest.raises(FileRefused, match=f"{path} is larger than .* MiB, the limit for a metrics file"):
        read_json(path, "metrics")
    path.write_text('{"a": 1}')
    assert read_json(path, "metrics") == {"a": 1}


# -- bounded parsing --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 20_000, 100_000])
def test_json_and_yaml_nested_too_deep_give_one_line(depth):
    for refused in (lambda: parse_json("[" * depth + "]" * depth, "x.json"),
                    lambda: parse_yaml("a: " + "[" * depth + "]" * depth, "x.yaml")):
        with pytest.raises(FileRefused) as info:
            refused()
        assert f"nest more than {MAX_DEPTH} deep" in str(info.value) and "\n" not in str(info.value)
    assert parse_json("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None


def test_yaml_aliases_are_refused_before_they_expand():
    laughs = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(8)
    )
    with pytest.raises(FileRefused, match=r"x.yaml is refused: it uses a YAML alias \(\*a\)"):
        parse_yaml(laughs, "x.yaml")
    assert parse_yaml("a: [1, 2]\nb: {c: d}") == {"a": [1, 2], "b": {"c": "d"}}


def test_a_resume_with_a_billion_laughs_config_or_a_deep_metrics_json_is_refused_in_one_line(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "checkpoint.pt").write_bytes(b"")
    (run_dir / "config.yaml").write_text("a: &a [1, 1]\nb: [*a, *a]\n")
    cfg = _config(run_dir)
    with pytest.raises(FileRefused, match="config.yaml is refused: it uses a YAML alias"):
        open_run_dir(cfg)
    (run_dir / "config.yaml").write_text("a: " + "[" * 50_000 + "]" * 50_000 + "\n")
    with pytest.raises(FileRefused, match="config.yaml is refused: its lists and mappings nest more than"):
        load_yaml_config(run_dir / "config.yaml")
    (run_dir / "checkpoint.pt").unlink()
    (run_dir / "config.yaml").unlink()
    (run_dir / "metrics.json").write_text("[" * 50_000 + "]" * 50_000)
    with pytest.raises(FileRefused, match="metrics.json is refused: its lists and objects nest more than"):
        open_run_dir(cfg)  # a fresh run reads an earlier metrics.json
    assert files._HELD == {}


# -- writes: whole or not at all, errors naming the full path ------------------------------------------------------


def test_a_full_disk_keeps_the_earlier_file_whole_and_names_the_bytes_and_free_space(tmp_path, monkeypatch):
    path = tmp_path / "summary.md"
    path.write_text("earlier\n")
    real_write = os.write

    def full(fd, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(DiskFullError) as info:
        write_atomic(path, "x" * 5000)
    monkeypatch.setattr(os, "write", real_write)
    message = str(info.value)
    assert f"No space left on device: writing {path} stopped after 0 bytes, about 5000 bytes in all" in message
    assert "free on that filesystem" in message and f"{path} is unchanged" in message
    assert path.read_text() == "earlier\n" and sorted(p.name for p in tmp_path.iterdir()) == ["summary.md"]


def test_a_write_error_names_the_full_path(tmp_path):
    """The descriptor-based writers named only the name (``Permission denied: 'checkpoint.pt.tmp'``)."""
    (tmp_path / "checkpoint.pt.tmp").mkdir()
    (tmp_path / "checkpoint.pt.tmp" / "x").write_text("")
    with pytest.raises(OSError) as info:
        write_atomic(tmp_path / "checkpoint.pt", b"data")
    assert str(tmp_path / "checkpoint.pt.tmp") in str(info.value)
    with pytest.raises(OSError) as info:
        write_atomic(tmp_path / "no" / "such" / "metrics.json", b"{}", root=tmp_path)
    assert str(tmp_path / "no") in str(info.value) and info.value.errno == errno.ENOENT


def test_truncating_csv_logs_reads_only_regular_files(tmp_path):
    folder = tmp_path / "csv" / "scalars"
    folder.mkdir(parents=True)
    (folder / "ok.csv").write_text("1,1.0\n2,2.0\n")
    truncate_csv_logs(tmp_path, 1)
    assert (folder / "ok.csv").read_text() == "1,1.0\n"
    os.mkfifo(folder / "fifo.csv")
    with _never_blocks(), pytest.raises(FileRefused, match="fifo.csv is a FIFO"):
        truncate_csv_logs(tmp_path, 1)


def test_a_fifo_opened_for_writing_is_refused_without_blocking(tmp_path):
    """A FIFO without a reader (the open fails: ENXIO) and one with a reader (fstat says FIFO) are both refused."""
    fifo = tmp_path / "0_log.out"
    os.mkfifo(fifo)
    with _never_blocks(), pytest.raises(FileRefused, match=f"{fifo} is a FIFO or a socket, not a regular file"):
        open_file(fifo, "ab")
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        with _never_blocks(), pytest.raises(FileRefused, match=f"{fifo} is a FIFO, not a regular file"):
            open_file(fifo, "ab")
    finally:
        os.close(reader)
