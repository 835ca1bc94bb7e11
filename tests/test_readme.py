"""The README's promises: its test command is what CI runs, its algorithm table names real classes and
recipes, and it links the results and its figure."""
from __future__ import annotations

import importlib
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def test_the_readme_test_command_is_what_ci_runs():
    first_block = README.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line for line in first_block.splitlines() if line and not line.startswith("#")]
    assert len(commands) == 2 and commands[0].endswith('pip install -e ".[recipes]" && python recipes/m_dqn.py')
    test_step = commands[1].split(" && ", 2)[2]  # after creating and activating the venv
    assert test_step == 'pip install -e ".[all,test]" && python -m pytest'
    assert test_step in (REPO / ".ci" / "run").read_text()


def _algorithm_rows() -> list[list[str]]:
    table = README.split("## Algorithms", 1)[1].split("\n## ", 1)[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines() if line.startswith("|")]
    assert rows[0] == ["method", "class", "recipe", "paper"]
    return [r for r in rows[1:] if set(r[0]) - {"-"}]  # the header rule is not a row


def test_the_algorithm_table_names_real_classes_and_recipes():
    rows = _algorithm_rows()
    assert len(rows) >= 10
    for method, classes, recipe, paper in rows:
        for dotted in re.findall(r"`((?:objectives|planning)\.\w+)`", classes):
            module, name = dotted.split(".")
            assert hasattr(importlib.import_module(f"torchrl_reg.{module}"), name), f"{method}: {dotted}"
        for script in re.findall(r"python (recipes/\w+\.py)", recipe):
            assert (REPO / script).is_file(), f"{method}: {script}"
        assert re.search(r"(NeurIPS|ICML|ICLR|AAAI|AISTATS|IJCAI|ECML|Nature) \d{4}|arXiv:\d{4}\.\d{4,5}", paper), f"{method}: {paper}"


def test_the_readme_links_the_results_and_one_figure():
    assert "[RESULTS.md](RESULTS.md)" in README
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README)
    assert len(figures) == 1 and (REPO / figures[0]).is_file()
