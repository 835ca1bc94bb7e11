"""The parts table as data (torchrl_reg.planning.algorithms): each algorithm's parts and knobs declared once, read by
make_search, the planning recipe's config and its checks; the engines ask the parts what they read."""
from __future__ import annotations

import inspect
import re
import warnings
from dataclasses import fields
from pathlib import Path

import pytest

from torchrl_reg.planning import BatchedTreeSearch, RandomRollout, SyntheticTree, TensorDChain, make_search, parts
from torchrl_reg.planning.algorithms import ALGORITHMS, KNOB_DEFAULTS, KNOB_TABLE, KNOBS, TABLE, check_knob
from torchrl_reg.planning.records import BackupResult, EdgeStats, NodeStats

PLANNING = Path(__file__).resolve().parents[2] / "torchrl_reg" / "planning"


def test_the_knobs_of_make_search_and_the_recipe_are_the_tables():
    from recipes.tree_search import PlannerConfig

    table = list(KNOB_TABLE)
    assert [p for p in inspect.signature(make_search).parameters if p in KNOB_TABLE] == table
    assert [f.name for f in fields(PlannerConfig) if f.name in KNOB_TABLE] == table
    assert all(f.default is None for f in fields(PlannerConfig) if f.name in KNOB_TABLE)
    assert KNOB_DEFAULTS == {"tau": 1.0, "eps": 0.1, "alpha": 1.0, "beta_0": 1.0, "c": 2.0 ** 0.5, "p": 2.0}
    assert list(ALGORITHMS) == list(TABLE) and KNOBS == {name: row.knobs for name, row in TABLE.items()}
    with pytest.raises(TypeError, match=r"unexpected keyword arguments \['temperature'\]"):
        make_search("ments", TensorDChain(3), batched=True, temperature=1.0)


def test_a_knob_is_checked_against_its_declared_range():
    assert check_knob("eps", 0.0) == 0.0 and check_knob("c", 0.0) == 0.0  # >= 0
    for name in ("tau", "alpha"):  # > 0
        with pytest.raises(ValueError, match=f"planner.{name}"):
            check_knob(name, 0.0, prefix="planner.")


def test_each_row_builds_its_parts_and_the_parts_say_what_they_read():
    for name, row in TABLE.items():
        policy, backup, recommend = parts(name)
        assert type(policy) is row.tree_policy and recommend == row.recommend
        assert set(policy.reads) <= {"visits", "entropy_q"}
    assert parts("uct")[0].reads == ("visits",) and parts("dents")[0].reads == ("entropy_q",) and parts("ments")[0].reads == ()
    assert parts("uct")[1].reads_return and not parts("ments")[1].reads_return
    policy, backup, recommend = parts("power_uct", p=3.0)  # UCB1 reads c; the power mean p
    assert (type(policy).__name__, policy.c, repr(backup), recommend) == ("UCB1Score", 2.0 ** 0.5, "PowerMeanBackup(p=3.0)", "most_visited")
    assert check_knob("p", 1.0) == 1.0
    with pytest.raises(ValueError, match=r"planner.p must be a finite number in \[1.0, inf\]"):
        check_knob("p", 0.5, prefix="planner.")


def test_the_engines_ask_the_parts_never_their_types():
    names = "|".join(["Score", "Backup"])
    for engine in ("batched.py", "search.py"):
        found = re.findall(rf"isinstance\([^)]*(?:{names})", (PLANNING / engine).read_text())
        assert not found, (engine, found)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_the_single_tree_search_fills_the_fields_a_part_reads_and_leaves_the_others_none(algorithm):
    search = make_search(algorithm, SyntheticTree(3, 4, seed=0), evaluator=RandomRollout(max_steps=4, seed=0), seed=0)
    policy, backup = search.tree_policy, search.backup
    nodes, edges, results = [], [], []
    select, update = policy.select, backup.update
    policy.select = lambda node, u: nodes.append(node) or select(node, u)
    backup.update = lambda edge, tree_policy=None: edges.append(edge) or results.append(update(edge, tree_policy)) or results[-1]
    search.search(40)
    assert len(nodes) >= 40 and len(edges) >= 40
    # the records are built as tuples on the hot path: every field there, in its order
    assert all(type(r) is BackupResult and len(r) == len(BackupResult._fields) for r in results)
    assert all(len(node) == len(NodeStats._fields) for node in nodes) and all(len(edge) == len(EdgeStats._fields) for edge in edges)
    for node in nodes:
        assert type(node) is NodeStats and isinstance(node.q, list) and isinstance(node.total, float)
        assert {f for f in ("visits", "entropy_q", "counts") if getattr(node, f) is not None} == set(policy.reads)
    optional = ("v_next", "h_next", "q_edge", "q", "visits", "total", "bellman", "entropy_q", "counts")
    for edge in edges:
        # the return below the edge is the search's running local, passed whether read or not
        assert type(edge) is EdgeStats and edge.ret is not None
        assert {f for f in optional if getattr(edge, f) is not None} == set(backup.reads) - {"ret", "q_bellman"}


def test_both_engines_take_the_tree_policy_by_one_name_and_the_old_one_warns():
    policy, backup, _ = parts("ments")
    sim = TensorDChain(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new = BatchedTreeSearch(sim, tree_policy=policy, backup=backup, seed=0)
    with pytest.warns(DeprecationWarning, match=r"BatchedTreeSearch\(policy=\) is deprecated: pass tree_policy="):
        old = BatchedTreeSearch(sim, policy=policy, backup=backup, seed=0)
    assert old.tree_policy is new.tree_policy is policy
    assert new.search(sim.root(2), 10).tolist() == old.search(sim.root(2), 10).tolist()
    with pytest.raises(TypeError, match="pass tree_policy= only"):
        BatchedTreeSearch(sim, tree_policy=policy, policy=policy, backup=backup)


def test_every_row_of_the_table_is_in_the_readme_method_table():
    # the README's method table is the one list of algorithms the prose points to: each row's parts are named there
    readme = (PLANNING.parents[1] / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| ") and "recipes/tree_search.py" in line]
    for name, row in TABLE.items():
        parts_named = [f"`planning.{row.tree_policy.__name__}`", f"`planning.{row.backup.__name__}`"]
        assert any(all(p in line for p in parts_named) for line in rows), (
            f"the README's method table has no row with {name}'s parts {parts_named}: add its row")
