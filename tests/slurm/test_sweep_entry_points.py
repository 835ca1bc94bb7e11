"""The sweep and report entry points import nothing from the working directory, whatever ``sys.path`` Python
gives them (``python -m`` puts the working directory first; an empty ``PYTHONPATH`` entry does too)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.slurm.sweep_testlib import REPO

from torchrl_reg import cli
from torchrl_reg.cli import clean_pythonpath, printable


def _crafted_dir(tmp_path: Path) -> tuple[Path, Path]:
    """A folder holding ``omegaconf/__init__.py`` that writes a marker file when imported."""
    folder = tmp_path / "sweep"
    marker = tmp_path / "imported"
    (folder / "omegaconf").mkdir(parents=True)
    (folder / "omegaconf" / "__init__.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    return folder, marker


def _run(args: list[str], cwd: Path, pythonpath: str, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": pythonpath} | (extra_env or {})
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize(
    "flags, pythonpath, command",
    [
        ([], "{repo}", ["-m", "torchrl_reg.sweep", "--resume", "."]),
        ([], "{repo}", ["-m", "torchrl_reg.sweep", "--status", "."]),
        (["-P"], ":{repo}", ["-m", "torchrl_reg.sweep", "--resume", "."]),
        (["-P"], "{repo}::.", ["-m", "torchrl_reg.report", "."]),
    ],
)
def test_python_m_never_imports_the_working_directory(tmp_path, flags, pythonpath, command):
    folder, marker = _crafted_dir(tmp_path)
    done = _run([sys.executable, *flags, *command], folder, pythonpath.format(repo=REPO))
    assert not marker.exists(), done.stderr
    # our own code ran to its end: the folder is no sweep (and holds no run)
    assert done.returncode == 2 and "error:" in done.stderr and "Traceback" not in done.stderr, done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("script, module", [("torchrl-reg-sweep", "torchrl_reg.sweep.__main__"),
                                             ("torchrl-reg-report", "torchrl_reg.report.summary")])
def test_console_scripts_drop_empty_pythonpath_entries(tmp_path, script, module):
    """The installed script when there is one (``pip install -e .`` makes it), else the same call of ``main``
    under the script's name."""
    folder, marker = _crafted_dir(tmp_path)
    installed = shutil.which(script, path=str(Path(sys.executable).parent))
    if installed is not None:
        args = [installed, "."]
    else:
        code = f"import sys; sys.argv[0] = {script!r}; from {module} import main; sys.exit(main())"
        args = [sys.executable, "-P", "-c", code, "."]
    done = _run(args, folder, f":{REPO}")
    assert not marker.exists(), done.stderr
    assert done.returncode == 2 and "error:" in done.stderr, done.stderr


@pytest.mark.slow
def test_a_recipe_run_drops_empty_pythonpath_entries(tmp_path):
    folder, marker = _crafted_dir(tmp_path)
    done = _run([sys.executable, str(REPO / "recipes" / "m_dqn.py"), "--help"], folder, f":{REPO}")
    assert not marker.exists(), done.stderr
    assert done.returncode == 0 and "m_dqn" in done.stdout, done.stderr


def test_a_second_start_that_is_still_unsafe_is_refused(tmp_path):
    """The restarted process refuses (one line, exit 2) instead of starting again, were the path still unsafe."""
    folder, marker = _crafted_dir(tmp_path)
    done = _run([sys.executable, "-m", "torchrl_reg.sweep", "--status", "."], folder, str(REPO),
                {"TORCHRL_REG_ISOLATED": "1"})
    assert not marker.exists()
    assert done.returncode == 2 and "refusing to run" in done.stderr and "omegaconf" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_the_working_directory_counts_only_when_it_holds_importable_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", f"{os.pathsep}/opt/lib")
    assert cli.unsafe_path_reason(implicit_cwd=True) is None  # empty folder
    (tmp_path / "000_seed=0").mkdir()  # a run directory: no module name
    (tmp_path / "notes.txt").write_text("")
    assert cli.unsafe_path_reason(implicit_cwd=True) is None
    (tmp_path / "local").mkdir()  # a namespace package `local`
    reason = cli.unsafe_path_reason(implicit_cwd=False)
    assert reason is not None and "local" in reason and "PYTHONPATH has an empty or '.' entry" in reason
    monkeypatch.setenv("PYTHONPATH", "/opt/lib")
    assert cli.unsafe_path_reason(implicit_cwd=False) is None
    (tmp_path / "local").rmdir()
    (tmp_path / "yaml.cpython-311-x86_64-linux-gnu.so").write_text("")
    assert "yaml.cpython-311" in cli.unsafe_path_reason(implicit_cwd=True)


def test_clean_pythonpath_drops_only_the_entries_that_mean_the_working_directory():
    sep = os.pathsep
    assert clean_pythonpath(f"{sep}/a{sep}{sep}.{sep}./{sep}rel{sep}/b") == f"/a{sep}rel{sep}/b"
    assert clean_pythonpath(sep) is None and clean_pythonpath("") is None and clean_pythonpath(None) is None


def test_printable_escapes_control_and_bidi_characters():
    assert printable("seed=0") == "seed=0"
    assert printable("evil\u202etxt.exe") == "evil\\u202etxt.exe"
    assert printable("a\x1b[2Jb\nc\rd\x00") == "a\\x1b[2Jb\\nc\\rd\\x00"
    assert printable("line 1\nline\x1b 2", keep_newlines=True) == "line 1\nline\\x1b 2"
    assert printable("\u2028") == "\\u2028"  # a line separator


def test_every_recipe_imports_the_package_first():
    """The package's ``__init__`` isolates a recipe run; an import before it (stdlib, omegaconf) could come from
    the working directory."""
    import ast

    for path in sorted((REPO / "recipes").glob("*.py")):
        if path.name == "__init__.py":
            continue
        imports = [n for n in ast.parse(path.read_text()).body if isinstance(n, (ast.Import, ast.ImportFrom))]
        first = next(n for n in imports if not (isinstance(n, ast.ImportFrom) and n.module == "__future__"))
        assert isinstance(first, ast.Import) and first.names[0].name == "torchrl_reg", f"{path.name}: import torchrl_reg first"
