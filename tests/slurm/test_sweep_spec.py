"""Sweep expansion, validation before submission, and the sbatch options a sweep asks for."""
from __future__ import annotations

import pytest

from torchrl_reg.sweep.__main__ import main
from torchrl_reg.sweep.launch import SlurmResources
from torchrl_reg.sweep.spec import Recipe, SweepError, expand_overrides, plan_tasks

from tests.slurm.sweep_testlib import RECIPE, TINY


def test_cartesian_product_in_hydra_order():
    tasks, swept = expand_overrides(["loss=m_dqn,dqn", "env=cartpole", "seed=range(0,3)", "x='a,b'"])
    assert swept == ["loss", "seed"]
    assert tasks == [
        ["loss=m_dqn", "env=cartpole", "seed=0", "x='a,b'"],
        ["loss=m_dqn", "env=cartpole", "seed=1", "x='a,b'"],
        ["loss=m_dqn", "env=cartpole", "seed=2", "x='a,b'"],
        ["loss=dqn", "env=cartpole", "seed=0", "x='a,b'"],
        ["loss=dqn", "env=cartpole", "seed=1", "x='a,b'"],
        ["loss=dqn", "env=cartpole", "seed=2", "x='a,b'"],
    ]
    assert expand_overrides(["+a=choice(1,2)", "~b"]) == ([["+a=1", "~b"], ["+a=2", "~b"]], ["a"])
    assert expand_overrides([]) == ([[]], [])


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["seed=range(0,0)"], "gives seed no value at all: the sweep would be empty"),
        (["seed=0,1", "seed=2"], "'seed' is given twice"),
        (["hydra.run.dir=x"], "hydra.\\* overrides are not used by sweeps"),
        (["run_dir=/tmp/x"], "run_dir is set by the sweep"),
        (["lr=interval(0,1)"], "only list sweeps"),
        (["env=glob(*)"], "only list sweeps"),
        (["a=="], "cannot parse override 'a=='"),
    ],
)
def test_bad_overrides_are_refused(overrides, message):
    with pytest.raises(SweepError, match=message):
        expand_overrides(overrides)


def test_every_task_is_composed_and_validated(tmp_path):
    recipe = Recipe.from_path(RECIPE)
    tasks, swept = plan_tasks(recipe, ["loss=m_dqn,dqn", "seed=0,1", *TINY], tmp_path / "sweep")
    assert [t.name for t in tasks] == ["000_loss=m_dqn,seed=0", "001_loss=m_dqn,seed=1", "002_loss=dqn,seed=0", "003_loss=dqn,seed=1"]
    assert [(t.config["loss"]["name"], t.config["seed"]) for t in tasks] == [("m_dqn", 0), ("m_dqn", 1), ("dqn", 0), ("dqn", 1)]
    assert all(t.config["run_dir"] == str(tmp_path / "sweep" / t.name) for t in tasks)
    # the env group's preset applied, as `python recipes/m_dqn.py` would compose it
    assert tasks[0].config["env"]["name"] == "CartPole-v1" and tasks[0].config["optim"]["learning_starts"] == 640


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["nope=3"], "Could not override 'nope'"),
        (["loss=m_dqn,foo"], "Could not find 'loss/foo'"),
        (["optim.lr=-1,0.1"], "1 of 2 tasks are invalid:\n  - task 0 \\(optim.lr=-1 .*\\): optim.lr must be a finite number in \\(0.0, inf\\], got optim.lr=-1.0"),
        (["env.name=[1]"], "Cannot convert 'list' to string"),
        (["seed=1,1"], "task 1 .* gives the same config as task 0"),
    ],
)
def test_invalid_tasks_name_the_task_and_the_problem(tmp_path, overrides, message):
    with pytest.raises(SweepError, match=message):
        plan_tasks(Recipe.from_path(RECIPE), [*overrides, *TINY], tmp_path / "sweep")


@pytest.mark.parametrize(
    "args, message",
    [
        (["optim.lr=0,0.1"], "optim.lr must be a finite number"),
        (["seed=range(3,3)"], "the sweep would be empty"),
        (["--slurm.partiton=gpu"], "--slurm.partiton: unknown resource"),
        (["--slurm.cpus_per_task=two"], "--slurm.cpus_per_task=two: expected int"),
        (["--slurm.time_min=0"], "--slurm.time_min=0: must be an integer >= 1"),
        (["--slurm.gpus_per_node=1", "--slurm.gres=gpu:1"], "either as --slurm.gpus_per_node or as --slurm.gres"),
    ],
)
def test_command_refuses_before_creating_anything(tmp_path, capsys, args, message):
    sweep_dir = tmp_path / "sweep"
    assert main([str(RECIPE), *args, "--executor", "slurm" if any(a.startswith("--slurm") for a in args) else "local",
                 "--dir", str(sweep_dir)]) == 2
    assert message in capsys.readouterr().err
    assert not sweep_dir.exists()


def test_dry_run_lists_tasks_and_writes_nothing(tmp_path, capsys):
    assert main([str(RECIPE), "seed=0,1", *TINY, "--executor", "local", "--dir", str(tmp_path / "s"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "000_seed=0: seed=0" in out and "2 valid tasks (swept: seed)" in out
    assert not (tmp_path / "s").exists()


def test_resources_become_sbatch_options(tmp_path):
    from submitit.slurm.slurm import _make_sbatch_string

    resources = SlurmResources.from_items(
        [
            ("partition", "gpu"),
            ("account", "rl"),
            ("qos", "high"),
            ("constraint", "a100"),
            ("gres", "gpu:a100:1"),
            ("cpus_per_task", "8"),
            ("mem_gb", "32"),
            ("time_min", "240"),
            ("signal_delay_s", "300"),
            ("setup", "module load cuda"),
            ("additional.mail-type", "END"),
        ]
    )
    params = resources.executor_parameters("m_dqn", parallel=4)
    script = _make_sbatch_string(command="python -m x", folder=tmp_path, map_count=12, **params)
    for line in [
        "#SBATCH --partition=gpu",
        "#SBATCH --account=rl",
        "#SBATCH --qos=high",
        "#SBATCH --constraint=a100",
        "#SBATCH --gres=gpu:a100:1",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=32768MB",
        "#SBATCH --time=240",
        "#SBATCH --signal=USR2@300",
        "#SBATCH --array=0-11%4",
        "#SBATCH --requeue",
        "#SBATCH --mail-type=END",
        "#SBATCH --job-name=m_dqn",
        "module load cuda",
    ]:
        assert line in script.splitlines(), line
    gpus = SlurmResources.from_items([("gpus_per_node", "2")]).executor_parameters("m_dqn", parallel=1)
    assert "#SBATCH --gpus-per-node=2" in _make_sbatch_string(command="x", folder=tmp_path, **gpus).splitlines()


def test_signal_delay_must_fit_in_the_time_limit():
    with pytest.raises(SweepError, match="signal_delay_s=120 must be shorter than the time limit --slurm.time_min=1"):
        SlurmResources.from_items([("time_min", "1")])
