"""The SLURM resources of a sweep's array tasks (``--slurm.*`` on the command line, ``slurm:`` in a spec).

Its own module so that both the spec reader (:mod:`torchrl_reg.sweep.spec`) and the launcher
(:mod:`torchrl_reg.sweep.launch`) use it, the launcher importing the spec and not the other way.
"""
from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torchrl_reg
from torchrl_reg.sweep.errors import SweepError

__all__ = ["PACKAGE_ROOT", "SlurmResources"]

# Where the torchrl_reg package lives, so that tasks import this very copy (it need not be installed).
PACKAGE_ROOT = str(Path(torchrl_reg.__file__).resolve().parent.parent)


@dataclass
class SlurmResources:
    """Resources of each array task, as ``--slurm.<field>=<value>`` on the command line.

    ``gpus_per_node`` asks for generic GPUs (``--gpus-per-node``); ``gres`` gives the gres string
    itself (e.g. ``gpu:a100:1``) where a cluster wants typed GPUs. ``signal_delay_s``: SLURM sends
    SIGUSR2 that long before ``time_min`` runs out, so the task checkpoints and requeues itself;
    ``max_timeouts`` bounds how often it may do so. ``setup``: shell lines run before the task
    (``module load ...``; repeat the flag for several). ``additional``: any other sbatch option,
    ``--slurm.additional.<option>=<value>``.
    """

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    exclude: str | None = None
    nodelist: str | None = None
    cpus_per_task: int = 2
    gpus_per_node: int = 0
    gres: str | None = None
    mem_gb: float | None = None
    time_min: int = 60
    signal_delay_s: int = 120
    max_timeouts: int = 10
    job_name: str | None = None
    setup: list[str] = field(default_factory=list)
    additional: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_items(cls, items: Sequence[tuple[str, str]], prefix: str = "--slurm.") -> "SlurmResources":
        """Build from ``(key, value)`` string pairs, a later pair replacing an earlier one of the same key
        (``setup`` lines accumulate); unknown keys and bad values raise :class:`SweepError`, each named
        ``<prefix><key>`` (the command line's ``--slurm.``, a spec's ``slurm.``)."""
        kinds = {f.name: f.type for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {"setup": [], "additional": {}}
        problems = []
        for key, raw in items:
            if key.startswith("additional."):
                values["additional"][key.split(".", 1)[1]] = raw
                continue
            if key not in kinds:
                problems.append(f"{prefix}{key}: unknown resource; accepted: {', '.join(sorted(kinds))}")
                continue
            kind = kinds[key]
            try:
                if key == "setup":
                    values["setup"].append(raw)
                elif kind.startswith("int"):
                    values[key] = int(raw)
                elif kind.startswith("float"):
                    values[key] = float(raw)
                else:
                    values[key] = raw
            except ValueError:
                problems.append(f"{prefix}{key}={raw}: expected {kind.split(' ')[0]}")
        if problems:
            raise SweepError("invalid SLURM resources:\n  - " + "\n  - ".join(problems))
        resources = cls(**values)
        resources.check(prefix)
        return resources

    def check(self, prefix: str = "--slurm.") -> None:
        problems = []
        for name, low in (("cpus_per_task", 1), ("gpus_per_node", 0), ("time_min", 1), ("signal_delay_s", 0), ("max_timeouts", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                problems.append(f"{prefix}{name}={value!r}: must be an integer >= {low}")
        if self.mem_gb is not None and not 0 < self.mem_gb < float("inf"):
            problems.append(f"{prefix}mem_gb={self.mem_gb!r}: must be a finite number > 0")
        if self.signal_delay_s >= 60 * self.time_min:
            problems.append(
                f"{prefix}signal_delay_s={self.signal_delay_s} must be shorter than the time limit "
                f"{prefix}time_min={self.time_min} ({60 * self.time_min} s)"
            )
        if self.gpus_per_node and self.gres:
            problems.append(f"give GPUs either as {prefix}gpus_per_node or as {prefix}gres, not both")
        if problems:
            raise SweepError("invalid SLURM resources:\n  - " + "\n  - ".join(problems))

    @classmethod
    def layered(cls, spec_items: Sequence[tuple[str, str]], items: Sequence[tuple[str, str]]) -> "SlurmResources":
        """A sweep spec's resources (its ``slurm:`` mapping) with the command line's ``--slurm.*`` over them.

        A key given on the command line replaces the spec's; GPUs given there (``gpus_per_node`` or
        ``gres``) replace the spec's GPU request as a whole, since the two forms exclude each other.
        """
        gpu_keys = {"gpus_per_node", "gres"}
        if any(key in gpu_keys for key, _ in items):
            spec_items = [(key, value) for key, value in spec_items if key not in gpu_keys]
        return cls.from_items([*spec_items, *items])

    def describe(self) -> str:
        """Every resource that is set, defaults included, e.g. ``cpus_per_task=8 gpus_per_node=1 mem_gb=32.0 ...``."""
        parts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None and value != [] and value != {}:
                parts.append(f"{f.name}={value}")
        return " ".join(parts)

    def executor_parameters(self, job_name: str, parallel: int) -> dict[str, Any]:
        """Keyword arguments of ``submitit.SlurmExecutor.update_parameters``."""
        params: dict[str, Any] = {
            "job_name": self.job_name or job_name,
            "time": self.time_min,
            "cpus_per_task": self.cpus_per_task,
            "signal_delay_s": self.signal_delay_s,
            "array_parallelism": parallel,
            # SLURM's own requeues (scontrol requeue, PreemptMode=REQUEUE) need a requeueable job,
            # which clusters with JobRequeue=0 only grant on request.
            "additional_parameters": {"requeue": True, **self.additional},
            "setup": [f"export PYTHONPATH={shlex.quote(PACKAGE_ROOT)}${{PYTHONPATH:+:$PYTHONPATH}}", *self.setup],
        }
        for name in ("partition", "account", "qos", "constraint", "exclude", "nodelist", "gres"):
            if getattr(self, name) is not None:
                params[name] = getattr(self, name)
        if self.gpus_per_node:
            params["gpus_per_node"] = self.gpus_per_node
        if self.mem_gb is not None:
            params["mem"] = f"{int(self.mem_gb * 1024)}MB"
        return params
