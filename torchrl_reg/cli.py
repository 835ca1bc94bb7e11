"""What the library's command lines share; the standard library only, imported first by ``torchrl_reg/__init__.py``.

* :func:`isolate_entry_point`: ``python -m torchrl_reg.sweep`` (``.report``, ``.sweep.task``), the console
  scripts ``torchrl-reg-sweep`` / ``torchrl-reg-report`` and the project's recipes (``python recipes/m_dqn.py``,
  whose first import is this package) never import a module from the working directory.
  ``python -m`` puts the working directory first on ``sys.path``, before the standard library and the
  installed packages, and an empty ``PYTHONPATH`` entry (``PYTHONPATH=:/opt/lib``, a common slip) does the
  same for any script: standing in a downloaded sweep directory that holds ``omegaconf/__init__.py`` would run
  that file. When the working directory is on ``sys.path`` that way and holds importable files, the entry
  point starts itself again with ``-P`` and without the empty entries, before any third-party import.
* :func:`printable`: text read from a file or a directory (a task's name, a config key) with every character
  that would drive a terminal or reorder what it shows escaped, as ``repr`` writes it; :func:`shown` also cuts
  a long value, saying its length.
* :func:`pythonpath_warning`: the console scripts say when ``PYTHONPATH`` holds an empty or relative entry.
"""
from __future__ import annotations

import os
import sys

__all__ = [
    "CONSOLE_SCRIPTS",
    "ENTRY_MODULES",
    "SHOWN_CHARS",
    "clean_pythonpath",
    "isolate_entry_point",
    "printable",
    "pythonpath_warning",
    "shown",
    "unsafe_path_reason",
]

#: The modules run as ``python -m MODULE`` that get an isolated ``sys.path``.
ENTRY_MODULES = ("torchrl_reg.sweep", "torchrl_reg.sweep.task", "torchrl_reg.report")
#: The console scripts of ``pyproject.toml`` (``[project.scripts]``).
CONSOLE_SCRIPTS = ("torchrl-reg-sweep", "torchrl-reg-report")
#: Set in the environment of the process started again, so that it refuses instead of starting a third time.
_RESTARTED = "TORCHRL_REG_ISOLATED"
#: What ``import`` finds in a folder: sources, bytecode and extension modules (``.cpython-311-x86_64-linux-gnu.so``).
_MODULE_SUFFIXES = (".py", ".pyc", ".pyw", ".so", ".pyd")
#: The folder holding this very ``torchrl_reg`` package (a checkout's root, or site-packages).
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: The project's recipes (``recipes/<name>.py`` beside the package in a checkout); each imports the package first.
_RECIPES = os.path.join(os.path.realpath(_PACKAGE_ROOT), "recipes")


#: How many characters of a value read from a file or typed on a command line a message shows (:func:`shown`).
SHOWN_CHARS = 200


def shown(text: object, limit: int = SHOWN_CHARS) -> str:
    """:func:`printable` of ``text``, cut after ``limit`` characters with its length said (``...(102400
    characters)``): a value from a file or a command line is never echoed whole into a message."""
    text = str(text)
    if len(text) <= limit:
        return printable(text)
    return f"{printable(text[:limit])}...({len(text)} characters)"


def printable(text: object, keep_newlines: bool = False) -> str:
    """``str(text)`` with every character that is not printable escaped (``\\n``, ``\\x1b``, ``\\u202e``).

    Control characters (ESC starts the terminal's escape sequences: ``ESC[2J`` clears the screen), bidi
    controls (U+202E right-to-left override shows a name reversed) and line or paragraph separators are
    written the way ``repr`` writes them, so a name or key read from a file or a directory is shown as
    it is and cannot add a line or restyle the terminal. ``keep_newlines``: keep ``\\n`` itself (a
    message of several lines of our own, whose untrusted parts were escaped where they were put in).
    """
    text = str(text)
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() or (keep_newlines and c == "\n") else c.encode("unicode_escape").decode("ascii")
        for c in text
    )


def _cwd_entries(entries: list[str]) -> list[str]:
    """The ``PYTHONPATH`` entries that stand for the working directory: empty ones and ``.`` (``./``)."""
    return [e for e in entries if e == "" or os.path.normpath(e) == "."]


def clean_pythonpath(value: str | None) -> str | None:
    """``PYTHONPATH`` without its empty and ``.`` entries (each puts the working directory on ``sys.path``);
    None when nothing is left. Explicit folders, relative ones too, are kept."""
    if value is None:
        return None
    entries = value.split(os.pathsep)
    kept = [e for e in entries if e not in _cwd_entries(entries)]
    return os.pathsep.join(kept) or None


def _importable(folder: str) -> list[str]:
    """The names in ``folder`` that ``import`` could load from it: modules and folders (packages, also
    namespace packages) named by an identifier."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    found = []
    for name in sorted(names):
        stem = name.split(".", 1)[0]
        if not stem.isidentifier():
            continue
        if "." in name:
            if name.endswith(_MODULE_SUFFIXES):
                found.append(name)
        elif os.path.isdir(os.path.join(folder, name)):
            found.append(name)
    return found


def _running_module() -> str | None:
    """The module ``python -m`` is importing, while runpy still imports its packages (``sys.argv[0]`` is
    ``-m`` only then), else None."""
    if not sys.argv or sys.argv[0] != "-m":
        return None
    frame = sys._getframe()
    while frame is not None:
        if frame.f_code.co_name == "_run_module_as_main" and isinstance(frame.f_locals.get("mod_name"), str):
            return frame.f_locals["mod_name"]
        frame = frame.f_back
    return None


def _entry_point() -> str | None:
    """The entry point this interpreter was started as (``-m MODULE``, a console script, or one of the project's
    recipes run as a script: ``python recipes/m_dqn.py``), if one of ours."""
    module = _running_module()
    if module is not None:
        return f"-m {module}" if module in ENTRY_MODULES else None
    name = os.path.basename(sys.argv[0]) if sys.argv else ""
    if name in CONSOLE_SCRIPTS:
        return name
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if isinstance(main_file, str) and os.path.dirname(os.path.realpath(main_file)) == _RECIPES:
        return os.path.basename(main_file)
    return None


def unsafe_path_reason(implicit_cwd: bool) -> str | None:
    """Why ``sys.path`` holds the working directory where its files could be imported, or None.

    ``implicit_cwd``: ``python -m`` put it first (unless ``-P``). An empty or ``.`` entry of ``PYTHONPATH``
    also puts it there. Neither counts when the working directory holds nothing importable, or when it is
    the folder this package was imported from (the project's own checkout)."""
    cwd = os.getcwd()
    reasons = []
    if implicit_cwd and not getattr(sys.flags, "safe_path", False):
        reasons.append("python -m puts it first on sys.path")
    if not sys.flags.ignore_environment:
        entries = os.environ.get("PYTHONPATH", "").split(os.pathsep) if "PYTHONPATH" in os.environ else []
        if _cwd_entries(entries):
            reasons.append("PYTHONPATH has an empty or '.' entry")
    if not reasons or os.path.realpath(cwd) == os.path.realpath(_PACKAGE_ROOT):
        return None
    found = _importable(cwd)
    if not found:
        return None
    shown = ", ".join(found[:3]) + (", ..." if len(found) > 3 else "")
    return f"the working directory {printable(cwd)} holds importable files ({printable(shown)}) and " + " and ".join(reasons)


def pythonpath_warning() -> str | None:
    """One line when ``PYTHONPATH`` holds an empty or relative entry (``PYTHONPATH=:/opt/lib``, ``lib``), else None.

    Such an entry names a folder relative to the working directory, and Python reads it at interpreter start
    (``sitecustomize.py``, ``.pth`` files of its own) before any code of ours runs: standing in a downloaded sweep
    directory, that is code of the directory's choosing. :func:`isolate_entry_point` keeps our imports off it,
    but cannot undo the start-up; the warning says so, and how to run without it."""
    if sys.flags.ignore_environment or "PYTHONPATH" not in os.environ:
        return None
    entries = os.environ["PYTHONPATH"].split(os.pathsep)
    relative = [e for e in entries if not os.path.isabs(e)]
    if not relative:
        return None
    listed = ", ".join(repr(e) for e in dict.fromkeys(relative))
    return (f"warning: PYTHONPATH holds an empty or relative entry ({printable(listed)[:200]}): Python reads it from the "
            "working directory at start-up (a sitecustomize.py there runs before any check of ours). Run commands "
            "on downloaded sweeps with `python -I -m ...` or with PYTHONPATH unset, or use absolute folders")


def isolate_entry_point() -> None:
    """Start this entry point again with the working directory off ``sys.path``, when it is on it and holds
    importable files (see the module's docstring); a no-op for any other program that imports the package.

    The new process is the same command line with ``-P`` for ``python -m`` (the working directory is not put on
    ``sys.path``) and ``PYTHONPATH`` without its empty and ``.`` entries; anything else (interpreter options, arguments,
    environment) is kept. Where that cannot be done, the entry point exits with status 2 and one line.
    """
    entry = _entry_point()
    restarted = os.environ.pop(_RESTARTED, None) is not None
    if entry is None:
        return
    commands = (*CONSOLE_SCRIPTS, "-m torchrl_reg.sweep", "-m torchrl_reg.report")
    if not restarted and entry in commands and (warning := pythonpath_warning()) is not None:
        print(warning, file=sys.stderr)  # the sweep and report commands: once, before a restart
    module = entry.startswith("-m ")
    reason = unsafe_path_reason(implicit_cwd=module)
    if reason is None:
        return
    if restarted or sys.version_info < (3, 11):  # -P came with Python 3.11
        _refuse(entry, reason)
    # orig_argv: [python, *options, -m, MODULE | SCRIPT, *arguments]; sys.argv: [-m | SCRIPT, *arguments]
    head = sys.orig_argv[: len(sys.orig_argv) - (len(sys.argv) - 1)]
    # -P for python -m; a script's own folder (the recipes', the scripts') stays first on its path.
    argv = [sys.executable, *(["-P"] if module else []), *head[1:], *sys.argv[1:]]
    env = dict(os.environ)
    env[_RESTARTED] = "1"
    cleaned = clean_pythonpath(env.get("PYTHONPATH"))
    if cleaned is None:
        env.pop("PYTHONPATH", None)
    else:
        env["PYTHONPATH"] = cleaned
    try:
        os.execve(sys.executable, argv, env)
    except OSError as err:
        _refuse(entry, f"{reason}; starting it again isolated failed: {err}")


def _refuse(entry: str, reason: str) -> None:
    print(
        f"error: {entry}: {reason}; refusing to run (run it from another folder, or as `python -P -m ...` "
        "with no empty entry in PYTHONPATH)",
        file=sys.stderr,
    )
    raise SystemExit(2)
