"""A run's records are kept (a damaged checkpoint's ``.corrupt`` never over an earlier one), read without waiting on a
FIFO, bounded by what validation accepts, and printed escaped: each case asserts the refusal and byte-identical files."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.run.test_run_files import _never_blocks
from torchrl_reg.cli import printable, pythonpath_warning, shown
from torchrl_reg.run.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from torchrl_reg.run.files import FileRefused, move_aside
from torchrl_reg.run.rundir import LOCK_NAME, lock_run_dir, release_run_dir, resume_changes

REPO = Path(__file__).resolve().parents[2]
HOSTILE = "h\x1b[2J\nfake: line\u202e"


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(Path(root).rglob("*")) if p.is_file()}


def test_a_damaged_checkpoint_never_replaces_an_earlier_corrupt_one(tmp_path):
    """A damaged checkpoint.pt beside an earlier checkpoint.pt.corrupt replaced it: the earlier evidence was lost."""
    path = tmp_path / "checkpoint.pt"
    for round_ in range(3):
        save_checkpoint(path, {"frames": 1, "w": torch.ones(3)})
        save_checkpoint(path, {"frames": 2, "w": torch.zeros(3)})  # frames 1 becomes checkpoint.prev.pt
        data = bytearray(path.read_bytes())
        data[-5] ^= 0xFF
        path.write_bytes(bytes(data) + bytes([round_]))
        earlier = {name: data for name, data in _tree(tmp_path).items() if ".corrupt" in name}
        assert load_checkpoint(path)["frames"] == 1  # fell back to the previous one
        assert {name: (tmp_path / name).read_bytes() for name in earlier} == earlier  # every earlier one as it was
        names = sorted(p.name for p in tmp_path.glob("checkpoint.pt.corrupt*"))
        assert names == ["checkpoint.pt.corrupt", *[f"checkpoint.pt.corrupt.{k}" for k in range(1, round_ + 1)]]


def test_move_aside_keeps_every_earlier_file(tmp_path):
    for k in range(3):
        (tmp_path / "f").write_text(str(k))
        moved = move_aside(tmp_path / "f", ".corrupt")
        assert moved.name == "f.corrupt" + (f".{k}" if k else "")
    assert [(tmp_path / n).read_text() for n in ("f.corrupt", "f.corrupt.1", "f.corrupt.2")] == ["0", "1", "2"]
    assert not (tmp_path / "f").exists()


@pytest.mark.parametrize("fifo", ["checkpoint.prev.pt", "checkpoint.pt"])
def test_a_fifo_beside_a_checkpoint_written_before_checksums_is_refused_not_waited_on(tmp_path, fifo):
    """The pre-checksum path opened the sibling with plain open(): a FIFO there hung the resume and read_checkpoint."""
    bare = "checkpoint.pt" if fifo == "checkpoint.prev.pt" else "checkpoint.prev.pt"
    torch.save({"frames": 1, "w": torch.ones(2)}, tmp_path / bare)  # a bare torch.save zip: no checksum
    os.mkfifo(tmp_path / fifo)
    before = _tree(tmp_path)
    with _never_blocks(20):
        with pytest.raises(FileRefused, match=f"{fifo} is a FIFO, not a regular file"):
            read_checkpoint(tmp_path / bare)
        if bare == "checkpoint.pt":
            with pytest.raises(FileRefused, match="is a FIFO"):
                load_checkpoint(tmp_path / bare)
    assert _tree(tmp_path) == before and (tmp_path / fifo).is_fifo()


def test_a_config_larger_than_a_run_reads_back_is_refused_by_the_config_check(tmp_path):
    """A 5 MB logger.project was written into config.yaml, which the next train(cfg) refused as not one of ours."""
    from tests.recipes.recipe_cases import CONF, recipe
    from torchrl_reg.configs import compose_config

    module = recipe("m_dqn")
    cfg = compose_config(CONF, "m_dqn", ["env=cartpole"])
    cfg.run_dir = str(tmp_path / "run")
    cfg.logger.project = "p" * 5_000_000
    with pytest.raises(ValueError, match=r"more than the 4194304 bytes a run reads back: logger.project alone holds "
                                         r"5000000 characters \(pppp"):
        module.validate(cfg)
    with pytest.raises(ValueError, match="logger.project alone holds"):
        module.train(cfg)
    assert not (tmp_path / "run").exists()


def test_a_stale_lock_host_is_logged_escaped_and_cut(tmp_path, caplog):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / LOCK_NAME).write_text(json.dumps({"pid": 2 ** 30, "host": HOSTILE + "x" * 3_000, "since": "t\x1b"}))
    with caplog.at_level(logging.WARNING):
        lock_run_dir(run_dir)
    release_run_dir(run_dir)
    message = next(r.getMessage() for r in caplog.records if "stale lock" in r.getMessage())
    assert message.isprintable() and "h\\x1b[2J\\nfake: line\\u202e" in message and f"...({len(HOSTILE) + 3_000} characters)" in message
    assert len(message) < 1_000


def test_a_refused_resume_lists_its_keys_and_values_escaped_and_cut():
    stored = {"a\x1b[2J": "x" * 100_000, "b": 1, **{f"k{i}": i for i in range(40)}}
    new = {"a\x1b[2J": HOSTILE, "b": 2, **{f"k{i}": -i for i in range(40)}}
    lines = resume_changes(stored, new, None)
    assert all(line.isprintable() and len(line) < 600 for line in lines)
    assert lines[0].startswith("a\\x1b[2J: 'xxx") and "100002 characters)" in lines[0]


def test_shown_escapes_and_cuts_with_the_length():
    assert shown("ok") == "ok" and shown("a\x1bb") == "a\\x1bb"
    assert shown("\u202e" * 300, 10) == "\\u202e" * 10 + "...(300 characters)"
    assert printable("line\nnext", keep_newlines=True) == "line\nnext"


def test_a_hydra_parse_error_echoing_the_command_line_is_printed_escaped_and_cut(tmp_path):
    """Hydra's lexer message quotes the override as typed: ESC and U+202E reached the terminal raw."""
    value = "\x1b[2J\u202e" + "y" * 100_000
    proc = subprocess.run([sys.executable, str(REPO / "recipes" / "m_dqn.py"), f"seed=[{value}", "run_dir=" + str(tmp_path / "r")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 2 and "config refused" in proc.stderr
    assert all(c.isprintable() or c == "\n" for c in proc.stderr) and len(proc.stderr) < 5_000
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("value, warned", [
    (":/opt/lib", ["''"]), ("lib:/opt/lib", ["'lib'"]), ("./x", ["'./x'"]), ("/opt/lib", None), ("/a:/b", None),
])
def test_an_empty_or_relative_pythonpath_entry_is_warned_of(monkeypatch, value, warned):
    monkeypatch.setenv("PYTHONPATH", value)
    warning = pythonpath_warning()
    if warned is None:
        assert warning is None
    else:
        assert warning is not None and all(w in warning for w in warned) and "python -I" in warning


def test_the_report_command_warns_of_an_empty_pythonpath_entry_once(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "torchrl_reg.report", str(tmp_path / "nothing")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          env={**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}"})
    assert proc.returncode == 2
    assert proc.stderr.count("warning: PYTHONPATH holds an empty or relative entry ('')") == 1
