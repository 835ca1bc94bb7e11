"""Sweeps of a recipe over Hydra overrides: one SLURM array through submitit, or local processes.

``python -m torchrl_reg.sweep recipes/m_dqn.py loss=m_dqn,dqn env=cartpole,acrobot seed=0,1,2``
validates every task's config before anything is submitted, gives each task its own run
directory, and makes a stopped task (time limit, preemption, ``scontrol requeue``) checkpoint and
continue where it stopped. See :mod:`torchrl_reg.sweep.task` for the signal handling.
"""
from __future__ import annotations

from torchrl_reg.sweep.launch import SlurmResources, create_sweep, run_local, submit_slurm, sweep_status
from torchrl_reg.sweep.spec import Recipe, SweepError, Task, expand_overrides, plan_tasks
from torchrl_reg.sweep.task import SweepTask

__all__ = [
    "Recipe",
    "SlurmResources",
    "SweepError",
    "SweepTask",
    "Task",
    "create_sweep",
    "expand_overrides",
    "plan_tasks",
    "run_local",
    "submit_slurm",
    "sweep_status",
]
