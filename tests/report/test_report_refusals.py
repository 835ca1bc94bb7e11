"""A report refuses what it cannot use before it writes a byte, writes its files as one set, and says what its
figures show: each refusal leaves the earlier report (and every input) byte-identical."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.report.test_report_summary import _write_run, runs  # noqa: F401 - runs: the fixture

from torchrl_reg.report.summary import CURVE_AXES, main, make_report
from torchrl_reg.run import files


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(Path(root).rglob("*")) if p.is_file()}


@pytest.fixture
def reported(runs, tmp_path):
    """Completed runs and a good report of them (``--out``), as a user has them before a command that is refused."""
    root, _, _ = runs
    out = tmp_path / "report"
    assert main([str(root), "--out", str(out), "--reps", "100"]) == 0
    return root, out


@pytest.mark.parametrize("option, value, message", [
    ("--metric", "nosuch", "--metric nosuch: no completed run's metrics.json has a number of that name (they have: "
                           "final_return"),
    ("--curve", "train/nosuch", "--curve train/nosuch: no completed run logged that curve (they have: eval, "
                                "train/episode_return)"),
    ("--curve", "../../../etc/passwd", "a curve is a CSV scalar's name (train/episode_return) or eval, not a path"),
    ("--env-key", "nosuch", "--env-key nosuch: no completed run's config has that key"),
    ("--method-keys", "loss.name,nosuch", "--method-keys nosuch: no completed run's config has that key"),
])
def test_a_name_no_run_has_is_refused_in_one_line_before_anything_is_written(reported, tmp_path, capsys, option, value, message):
    root, out = reported
    before = _tree(tmp_path)
    capsys.readouterr()
    assert main([str(root), "--out", str(out), "--reps", "100", option, value]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.rstrip().endswith("nothing was written")
    assert _tree(tmp_path) == before


def test_records_into_the_sweep_file_is_refused_before_the_report_is_written(reported, tmp_path, capsys):
    """``report S --records S/sweep.json`` wrote the report, then failed with a FileExistsError traceback."""
    root, out = reported
    target = tmp_path / "sweep.json"  # a file, as S/sweep.json is (tests/slurm/test_sweep_records.py: the sweep itself)
    target.write_text("{}")
    before = _tree(tmp_path)
    capsys.readouterr()
    assert main([str(root), "--out", str(out), "--reps", "100", "--records", str(target)]) == 2
    err = capsys.readouterr().err
    assert "is a file, not a folder" in err and err.count("\n") == 1
    assert _tree(tmp_path) == before


def test_records_are_written_in_the_reports_set(reported, tmp_path, capsys):
    root, out = reported
    records = tmp_path / "records"
    assert main([str(root), "--out", str(out), "--reps", "100", "--records", str(records)]) == 0
    assert len(list(records.glob("*.json"))) == 12 and "12 run records in" in capsys.readouterr().out


def test_a_failure_while_writing_leaves_the_earlier_report_whole(reported, tmp_path, monkeypatch):
    """A full disk at the last file: every .tmp removed, every earlier file as it was (the summary never links
    figures of another generation)."""
    root, out = reported
    before = _tree(out)
    real = files.atomic_writer
    opened = []

    def full_at_the_summary(path, **kwargs):
        opened.append(Path(path).name)
        if Path(path).name == "summary.md":
            raise files.DiskFullError(28, f"No space left on device: writing {path}")
        return real(path, **kwargs)

    monkeypatch.setattr(files, "atomic_writer", full_at_the_summary)
    assert main([str(root), "--out", str(out), "--reps", "100", "--metric", "last_eval"]) == 1
    assert "summary.md" in opened and len(opened) > 2
    assert _tree(out) == before and not list(out.glob("*.tmp"))


def test_results_md_and_its_notebook_are_written_together(tmp_path, monkeypatch, capsys):
    """``--results`` replaced RESULTS.md, then failed on the notebook: the page linked a notebook of another
    generation. Both are written whole first; a failure leaves the earlier pair."""
    from torchrl_reg.report import results_md

    page, notebook = tmp_path / "RESULTS.md", tmp_path / "RESULTS_NOTEBOOK.md"
    page.write_text("old page\n")
    notebook.write_text("old notebook\n")
    monkeypatch.setattr(results_md, "results_files", lambda spec: {"RESULTS.md": "new page\n",
                                                                   "RESULTS_NOTEBOOK.md": "new notebook\n"})
    real = files.atomic_writer

    def full_at_the_notebook(path, **kwargs):
        if Path(path).name == "RESULTS_NOTEBOOK.md":
            raise files.DiskFullError(28, f"No space left on device: writing {path}")
        return real(path, **kwargs)

    monkeypatch.setattr(files, "atomic_writer", full_at_the_notebook)
    assert main(["--results", "spec.yaml", "--out", str(page)]) == 1
    assert (page.read_text(), notebook.read_text()) == ("old page\n", "old notebook\n")
    monkeypatch.setattr(files, "atomic_writer", real)
    assert main(["--results", "spec.yaml", "--out", str(page)]) == 0
    assert (page.read_text(), notebook.read_text()) == ("new page\n", "new notebook\n")


def test_statuses_and_directory_names_of_runs_are_printed_escaped(tmp_path, capsys):
    root = tmp_path / "runs"
    for seed in range(2):
        _write_run(root, "CartPole-v1", "dqn", seed, "completed", 10.0 * (seed + 1))
    status = "done\x1b[2J\nfake: line\u202e" + "x" * 100_000
    odd = _write_run(root, "CartPole-v1", "dqn", 5, status)
    odd.rename(root / "run\x1b[31m\u202eevil")
    assert main([str(root), "--out", str(tmp_path / "out"), "--reps", "50"]) == 0
    printed = capsys.readouterr().out
    assert all(c.isprintable() or c == "\n" for c in printed)
    assert "\\x1b[2J\\nfake: line\\u202e" in printed and "run\\x1b[31m\\u202eevil" in printed
    assert f"...({len(status)} characters)" in printed and len(printed) < 5_000


def test_the_aggregate_figure_and_the_curves_say_what_they_show(reported, tmp_path, monkeypatch):
    """aggregate.png was titled "normalized scores" whatever the scale; the curves' y axis was the CSV key."""
    from torchrl_reg.report import summary

    root, _ = reported
    seen = {}
    monkeypatch.setattr(summary, "_png", lambda fig: seen.setdefault(len(seen), fig) and b"png")
    make_report([root], tmp_path / "out", reps=50, curve_reps=20)
    texts = [fig._suptitle.get_text() if fig._suptitle else fig.axes[0].get_title() for fig in seen.values()]
    aggregate = next(fig for fig in seen.values() if fig._suptitle is not None)
    assert aggregate._suptitle.get_text().startswith(
        "Raw scores, min-max normalized per environment: 2 environments (3 runs each), 200-300 steps")
    assert aggregate._supxlabel.get_text() == "Min-max normalized score (0: worst run, 1: best)"
    curves = [fig for fig in seen.values() if fig._suptitle is None]
    assert curves and all(fig.axes[0].get_ylabel() == "training episode return" for fig in curves), texts
    assert CURVE_AXES["train/episode_return"] == "training episode return"
