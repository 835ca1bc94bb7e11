"""Sweep specs (benchmarks/learning_*.yaml): parsing, validation of every committed spec, and a
smoke run of one spec through the sweep and the report, as a benchmark is run."""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from tests.slurm.sweep_testlib import REPO, TINY

from torchrl_reg.report.summary import main as report_main
from torchrl_reg.sweep.__main__ import main
from torchrl_reg.sweep.launch import SlurmResources
from torchrl_reg.sweep.spec import SweepError, expand_overrides, load_sweep_spec, plan_tasks

SPECS = {  # tasks per committed spec: methods x envs x seeds
    "learning_classic.yaml": 3 * 2 * 10,
    "learning_minatar.yaml": 4 * 3 * 3,
    "learning_minatar_mirl.yaml": 3 * 3 * 3,
    "learning_minatar_mviq.yaml": 2 * 3 * 5,
    "learning_mujoco.yaml": (2 * 2 + 3 + 2 + 1 + 1) * 3,
    "learning_virel.yaml": 2 * 2 * 3,
    "learning_minatar_virel.yaml": 1 * 3 * 3,
    "learning_mdac.yaml": 2 * 2 * 3,
    "learning_mdac_300k.yaml": 1 * 1 * 3,
    "learning_mdac_ablation.yaml": 2 * 1 * 3,
}
#: Specs of other sweeps (not learning_*): tasks per spec, methods x grid.
OTHER_SPECS = {
    "mdac_std_floor.yaml": 2 * 3,  # MDAC and its unbounded variant x three std floors
}


def test_every_benchmark_script_is_a_spec():
    assert sorted(p.name for p in (REPO / "benchmarks").glob("learning_*")) == sorted(SPECS)


@pytest.mark.parametrize("name", sorted(SPECS | OTHER_SPECS))
def test_committed_specs_validate_against_the_recipes(tmp_path, name):
    """Every task of the spec is counted; the tasks of its first seed are composed and validated as the sweep does
    (the seeds of one setting differ in ``seed`` alone: composing each of them would only repeat the same check)."""
    count = 0
    for m in load_sweep_spec(REPO / "benchmarks" / name):
        tasks, _ = expand_overrides(list(m.overrides))
        count += len(tasks)
        seed = next((o for o in tasks[0] if o.startswith("seed=")), None)
        one_seed = [o for o in m.overrides if not o.startswith("seed=")] + ([seed] if seed else [])
        planned, _ = plan_tasks(m.recipe, one_seed, tmp_path / m.name)
        assert len(planned) == (sum(1 for t in tasks if seed in t) if seed else len(tasks))
    assert count == (SPECS | OTHER_SPECS)[name]


def test_command_line_overrides_replace_the_spec_ones(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "overrides: ['seed=0,1', 'env=cartpole,acrobot']\n"
        "methods:\n"
        "  a: {recipe: %s, overrides: [loss=dqn, seed=5]}\n"
        "  b: {recipe: %s, label: shared, overrides: ['+x=1']}\n" % (REPO / "recipes/m_dqn.py", REPO / "recipes/m_dqn.py")
    )
    a, b = load_sweep_spec(spec, ["env=cartpole", "x=2"])
    assert (a.name, a.label, a.overrides) == ("a", "a", ("loss=dqn", "seed=5", "env=cartpole", "x=2"))
    assert (b.name, b.label, b.overrides) == ("b", "shared", ("seed=0,1", "env=cartpole", "x=2"))


@pytest.mark.parametrize(
    "text, message",
    [
        ("methods: {}", "non-empty 'methods' mapping"),
        ("methods: {a: {recipe: ../nope.py}}", "method 'a': recipe must be an existing recipes/<name>.py script"),
        ("methods: {a: {recipe: RECIPE, overides: []}}", "method 'a': unknown key 'overides'"),
        ("overrides: seed=1\nmethods: {a: {recipe: RECIPE}}", "'overrides' must be a list of strings, got 'seed=1'"),
        ("methods: {'a/b': {recipe: RECIPE}}", "method name 'a/b' must be letters"),
        ("sweeps: {}\nmethods: {a: {recipe: RECIPE}}", "unknown key 'sweeps'"),
        ("slurm: [1]\nmethods: {a: {recipe: RECIPE}}", "'slurm' must be a mapping of SLURM resources per task"),
        ("slurm: {cpu: 2}\nmethods: {a: {recipe: RECIPE}}", "slurm.cpu: unknown resource; accepted: account,"),
        ("slurm: {gpus_per_node: two}\nmethods: {a: {recipe: RECIPE}}", "slurm.gpus_per_node=two: expected int"),
        ("slurm: {gpus_per_node: true}\nmethods: {a: {recipe: RECIPE}}", "slurm.gpus_per_node=True: expected a number or a string"),
        ("slurm: {cpus_per_task: 0}\nmethods: {a: {recipe: RECIPE}}", "slurm.cpus_per_task=0: must be an integer >= 1"),
        ("slurm: {mem_gb: .inf}\nmethods: {a: {recipe: RECIPE}}", "slurm.mem_gb=inf: must be a finite number > 0"),
        ("slurm: {gpus_per_node: 1, gres: 'gpu:1'}\nmethods: {a: {recipe: RECIPE}}",
         "either as slurm.gpus_per_node or as slurm.gres"),
        ("slurm: {setup: [[x]]}\nmethods: {a: {recipe: RECIPE}}", r"slurm.setup=\['x'\]: expected a number or a string"),
        ("throughput: nope.yaml\nmethods: {a: {recipe: RECIPE}}", "'throughput' must name an existing table"),
    ],
)
def test_bad_specs_are_refused_with_the_reason(tmp_path, text, message):
    spec = tmp_path / "spec.yaml"
    spec.write_text(text.replace("RECIPE", str(REPO / "recipes" / "m_dqn.py")))
    with pytest.raises(SweepError, match=message):
        load_sweep_spec(spec)


def test_bad_spec_resources_are_refused_before_any_file_is_written(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"slurm: {{time_min: 1, signal_delay_s: 120}}\nmethods: {{a: {{recipe: {REPO / 'recipes' / 'm_dqn.py'}}}}}\n")
    assert main([str(spec), "--executor", "local", "--dir", str(tmp_path / "s")]) == 2
    assert "slurm.signal_delay_s=120 must be shorter than the time limit slurm.time_min=1 (60 s)" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_spec_resources_reach_sbatch_and_the_command_line_replaces_them(tmp_path):
    from submitit.slurm.slurm import _make_sbatch_string

    (method, *_) = load_sweep_spec(REPO / "benchmarks" / "atari_munchausen.yaml")
    assert method.slurm == (("gpus_per_node", "1"), ("cpus_per_task", "8"), ("mem_gb", "32"), ("time_min", "1440"))
    params = SlurmResources.layered(method.slurm, []).executor_parameters("m_dqn", parallel=2)
    script = _make_sbatch_string(command="x", folder=tmp_path, **params).splitlines()
    for line in ["#SBATCH --gpus-per-node=1", "#SBATCH --cpus-per-task=8", "#SBATCH --mem=32768MB", "#SBATCH --time=1440"]:
        assert line in script, line
    # A typed GPU on the command line replaces the spec's whole GPU request; other keys one by one.
    layered = SlurmResources.layered(method.slurm, [("gres", "gpu:a100:1"), ("time_min", "600")])
    assert (layered.gres, layered.gpus_per_node, layered.time_min, layered.cpus_per_task) == ("gpu:a100:1", 0, 600, 8)


@pytest.mark.slow
def test_a_benchmark_spec_runs_through_the_sweep_and_the_report(tmp_path, capsys):
    """benchmarks/learning_classic.yaml cut to one env, one seed and 640 frames: one sweep per method,
    one report over all of them, run records written and read back."""
    sweep_dir = tmp_path / "classic"
    spec = REPO / "benchmarks" / "learning_classic.yaml"
    assert main([str(spec), "env=cartpole", "seed=0", "collector.total_frames=640", *TINY,
                 "--executor", "local", "--dir", str(sweep_dir)]) == 0
    assert sorted(p.parent.name for p in sweep_dir.glob("*/sweep.json")) == ["dqn", "m_dqn", "soft_dqn"]
    capsys.readouterr()
    assert main(["--status", str(sweep_dir)]) == 0
    assert capsys.readouterr().out.count("\n1 completed\n") == 3  # one summary line per method's sweep
    records = tmp_path / "records"
    assert report_main([str(sweep_dir), "--reps", "50", "--records", str(records)]) == 0
    results = json.loads((sweep_dir / "report" / "results.json").read_text())
    finals = {r["method"]: r["mean"] for r in results["per_env"]}
    assert sorted(finals) == ["dqn", "m_dqn", "soft_dqn"]
    written = {p.name: json.loads(p.read_text()) for p in records.glob("*.json")}
    assert sorted(written) == ["dqn_CartPole-v1_seed0.json", "m_dqn_CartPole-v1_seed0.json", "soft_dqn_CartPole-v1_seed0.json"]
    for record in written.values():
        assert record["metrics"]["train_return_mean"] == finals[record["method"]]
        assert f"loss={record['method']}" in record["overrides"]
        assert record["curves"]["train/episode_return"]["frames"]
        assert Path(record["recipe"]) == REPO / "recipes" / "m_dqn.py"
    # The records alone give the same report as the sweep.
    assert report_main([str(records), "--reps", "50", "--out", str(tmp_path / "again")]) == 0
    again = json.loads((tmp_path / "again" / "results.json").read_text())
    assert {r["method"]: r["mean"] for r in again["per_env"]} == finals
    assert (tmp_path / "again" / "curves_CartPole-v1.png").is_file()


def _two_method_spec(tmp_path):
    spec = tmp_path / "spec.yaml"
    recipe = REPO / "recipes" / "m_dqn.py"
    spec.write_text(f"overrides: ['seed=0,1', env=cartpole]\nmethods:\n"
                    f"  dqn: {{recipe: {recipe}, overrides: [loss=dqn]}}\n"
                    f"  m_dqn: {{recipe: {recipe}, overrides: [loss=m_dqn]}}\n")
    return spec


def test_methods_option_runs_only_the_named_methods_of_a_spec(tmp_path, capsys):
    spec = _two_method_spec(tmp_path)
    assert main([str(spec), "--methods", "m_dqn", "--dry-run", "--dir", str(tmp_path / "s")]) == 0
    lines = capsys.readouterr().out.splitlines()
    tasks = lines[:lines.index(next(line for line in lines if line.startswith("estimated cost")))]
    assert [line.split(":")[0] for line in tasks] == ["m_dqn/000_seed=0", "m_dqn/001_seed=1"]
    assert lines[-1].startswith("2 valid tasks")
    assert main([str(spec), "--methods", "m_dqn,dqn", "--dry-run"]) == 0
    assert capsys.readouterr().out.count("dqn/") == 4  # both, in the spec's order


@pytest.mark.parametrize(
    "args, message",
    [
        (["SPEC", "--methods", "sql"], "--methods 'sql': .* has the methods dqn, m_dqn; .*unknown: 'sql'"),
        (["SPEC", "--methods", "dqn,dqn"], "--methods 'dqn,dqn': .*each once"),
        (["SPEC", "--methods", "dqn,"], "--methods 'dqn,': .*each once"),
        ([str(REPO / "recipes" / "m_dqn.py"), "--methods", "dqn"], "only a sweep spec .* has methods"),
        (["--resume", "DIR", "--methods", "dqn"], "--resume takes the sweep directory \\(and a recipe to run it with\\) only"),
    ],
)
def test_methods_option_refuses_what_it_cannot_select(tmp_path, capsys, args, message):
    spec = _two_method_spec(tmp_path)
    args = [str(spec) if a == "SPEC" else str(tmp_path) if a == "DIR" else a for a in args]
    assert main([*args, "--dry-run", "--dir", str(tmp_path / "s")]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "s").exists()


def test_resume_asks_for_the_resources_of_the_last_slurm_submission(tmp_path):
    from torchrl_reg.sweep.launch import _record_submission, create_sweep, recorded_resources

    sweep_dir = tmp_path / "s"
    create_sweep(REPO / "recipes" / "m_dqn.py", ["seed=0", *TINY], sweep_dir, "test")
    assert recorded_resources(sweep_dir) == []  # never submitted to SLURM: the defaults, with --slurm.* over them
    asked = SlurmResources.from_items([("gpus_per_node", "1"), ("mem_gb", "32"), ("setup", "module load cuda"),
                                       ("additional.mail-type", "END")])
    _record_submission(sweep_dir, {"executor": "slurm", "resources": dataclasses.asdict(asked), "tasks": {}})
    _record_submission(sweep_dir, {"executor": "local", "tasks": {}})
    assert SlurmResources.from_items(recorded_resources(sweep_dir)) == asked
    again = SlurmResources.layered(recorded_resources(sweep_dir), [("gres", "gpu:a100:2")])
    assert (again.gpus_per_node, again.gres, again.mem_gb, again.setup) == (0, "gpu:a100:2", 32.0, ["module load cuda"])
