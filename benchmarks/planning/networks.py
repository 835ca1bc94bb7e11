"""The M-DQN networks of the MinAtar comparison: found in sweep directories, exported as small policy-only run directories (``export-networks``)."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from benchmarks.planning.common import OUT
from torchrl_reg.envs import MINATAR_GAMES
from torchrl_reg.run.metrics import read_metric


def find_networks(paths: list[str], game: str, seeds: list[int]) -> list[dict]:
    """The completed ``recipes/m_dqn.py loss=m_dqn`` MinAtar runs of ``game`` under ``paths`` (the sweep directories of
    benchmarks/minatar_networks.yaml, or run directories), one per seed of ``seeds``, with what they trained."""
    from torchrl_reg.planning.tasks import minatar_module
    from torchrl_reg.report.runs import collect_runs

    try:
        runs = collect_runs(paths)
    except FileNotFoundError as err:
        raise SystemExit(f"--networks: {err}") from None
    found: dict[int, list] = {}
    for run in runs:
        name = run.value("env.name")
        if run.value("env.family") == "minatar" and run.value("loss.name") == "m_dqn" and name is not None \
                and minatar_module(str(name)) == minatar_module(game):
            found.setdefault(int(run.value("seed")), []).append(run)
    problems = []
    for seed in seeds:
        of_seed = found.get(seed, [])
        if len(of_seed) != 1:
            problems.append(f"seed {seed}: {len(of_seed)} M-DQN runs of {game} ({', '.join(str(r.run_dir) for r in of_seed) or 'none'})")
        elif of_seed[0].status != "completed" or not (of_seed[0].run_dir / "checkpoint.pt").is_file():
            problems.append(f"seed {seed}: {of_seed[0].run_dir} is {of_seed[0].status!r}, not a completed run with its checkpoint.pt")
    if problems:
        raise SystemExit(f"--networks {' '.join(paths)}: need one completed run per seed {seeds} of {game}; "
                         f"found seeds {sorted(found)}: " + "; ".join(problems))
    nets = []
    for seed in seeds:
        run = found[seed][0]
        checkpoint = run.run_dir / "checkpoint.pt"
        source = run.run_dir / "source.json"  # an export_networks directory: the training run's command and file
        exported = json.loads(source.read_text()) if source.is_file() else None
        nets.append({
            "seed": seed, "checkpoint": str(checkpoint), "sha256": hashlib.sha256(checkpoint.read_bytes()).hexdigest(),
            "overrides": exported["overrides"] if exported else list(run.overrides),
            "command": exported["command"] if exported else run.command,
            **({"exported_from": {k: exported[k] for k in ("run_dir", "checkpoint_sha256")}} if exported else {}),
            "training": {k: read_metric(run.metrics, k) for k in (
                "frames", "final_return", "eval_frames", "eval_returns", "wall_time_s", "steps_per_s")},
        })
    return nets


NETWORKS_OUT = OUT / "networks"


def export_networks(args) -> None:
    """The completed M-DQN MinAtar runs under ``--networks`` as run directories small enough to commit.

    Each run becomes ``<out>/<Game>_seed<n>/``: its ``config.yaml`` and ``metrics.json`` as they are, a
    ``checkpoint.pt`` holding only the trained ``policy`` (written by :func:`~torchrl_reg.run.save_checkpoint`:
    plain tensors, checksummed; the run's own checkpoint also holds the target network, optimizer, RNG and env
    states), and ``source.json`` (the training command and overrides, the source run directory and the SHA-256 of
    the checkpoint the policy came from). ``minatar-fair --networks <out>`` takes these directories as it takes
    the runs: :func:`~torchrl_reg.loops.planning.load_q_network` reads the same config and policy, so the
    searches play the same network. Every run is checked before anything is written; an export already in
    ``<out>`` is kept when it came from the same checkpoint and refused when it came from another.
    """
    import shutil
    import tempfile

    from torchrl_reg.planning.tasks import minatar_module
    from torchrl_reg.report.runs import collect_runs
    from torchrl_reg.run import read_checkpoint, save_checkpoint

    out = Path(args.out)
    try:
        runs = collect_runs(args.networks)
    except FileNotFoundError as err:
        raise SystemExit(f"--networks: {err}") from None
    plan, skipped, kept = [], [], 0
    for run in runs:
        if run.value("env.family") != "minatar" or run.value("loss.name") != "m_dqn" or run.value("env.name") is None:
            skipped.append(f"{run.run_dir} (not an M-DQN MinAtar run)")
            continue
        checkpoint = run.run_dir / "checkpoint.pt"
        if run.status != "completed" or not checkpoint.is_file():
            raise SystemExit(f"--networks: {run.run_dir} is {run.status!r}, not a completed run with its checkpoint.pt")
        game = next(g for g in MINATAR_GAMES if minatar_module(g) == minatar_module(str(run.value("env.name"))))
        target = out / f"{game}_seed{int(run.value('seed'))}"
        sha256 = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
        if any(t == target for t, *_ in plan):
            raise SystemExit(f"--networks: two runs of {game} seed {run.value('seed')} ({run.run_dir} and another): export one")
        if (target / "source.json").is_file():
            done = json.loads((target / "source.json").read_text())
            if done.get("checkpoint_sha256") != sha256:
                raise SystemExit(f"{target} holds the network of another checkpoint ({done.get('run_dir')}, sha256 "
                                 f"{done.get('checkpoint_sha256')}); {checkpoint} has {sha256}: remove it first or use another --out")
            print(f"{target}: already exported from this checkpoint")
            kept += 1
            continue
        if target.exists():
            raise SystemExit(f"{target} exists and is not an export (no source.json): remove it or use another --out")
        plan.append((target, run, checkpoint, sha256))
    if not plan and not kept:
        raise SystemExit(f"--networks {' '.join(args.networks)}: no M-DQN MinAtar run ({len(skipped)} other runs)")
    out.mkdir(parents=True, exist_ok=True)
    for target, run, checkpoint, sha256 in plan:
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=out))  # a stopped export leaves no half directory
        try:
            for name in ("config.yaml", "metrics.json"):
                shutil.copyfile(run.run_dir / name, staging / name)
            save_checkpoint(staging / "checkpoint.pt", {"policy": read_checkpoint(checkpoint)["policy"]})
            (staging / "source.json").write_text(json.dumps({
                "run_dir": str(run.run_dir), "checkpoint_sha256": sha256, "overrides": list(run.overrides),
                "command": run.command,
                "exported_by": "python -m benchmarks.planning export-networks (only the policy of the run's checkpoint)",
            }, indent=2) + "\n")
            staging.chmod(0o755)  # mkdtemp's 0700 would hide the export from the other users of a shared folder
            os.replace(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        print(f"{run.run_dir} -> {target} ({(target / 'checkpoint.pt').stat().st_size / 1e6:.2f} MB)")
    for line in skipped:
        print(f"skipped {line}")
