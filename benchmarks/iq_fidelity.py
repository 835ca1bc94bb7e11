"""IQ / M-IQ fidelity on HalfCheetah-v5 at 100k steps: bookkeeping around the product's sweep and report.

The runs themselves go through the sweep CLI, one single-task sweep per (configuration, seed), e.g.

    taskset -c 1 python -m torchrl_reg.sweep recipes/iq.py env=halfcheetah env.name=HalfCheetah-v5 \\
        collector.total_frames=100000 logger.progress_bar=false loss=iq policy.scaled=true seed=0 \\
        --executor local --dir SWEEPS/iq_scaled_seed0

(run from a ``git archive`` of the commit under test, with ``OMP_NUM_THREADS=1`` and ``PYTHONPATH`` at it),
and the comparison through ``python -m torchrl_reg.report``. This script does what neither does:

    python -m benchmarks.iq_fidelity baseline OUT     # run directories rebuilt from benchmarks/results/iq/learning/*.json
    python -m benchmarks.iq_fidelity collect SWEEPS   # finished sweep runs -> benchmarks/results/iq/fidelity/*.json
    python -m benchmarks.iq_fidelity compare REPORT   # IQ / SAC ratios and the "M-IQ >= IQ - pooled std" check
    python -m benchmarks.iq_fidelity horizon          # the same at 100k / 200k / 300k from the collected 300k runs
    python -m benchmarks.iq_fidelity initial          # the freshly initialized policy, softmax(F) vs softmax(F / tau)
    python -m benchmarks.iq_fidelity vs-sac RECORDS   # report records (e.g. MDAC's) against these SAC runs: ratios
                                                      # and "method >= SAC - pooled std" at 100k / 200k / 300k

``baseline``: the committed unscaled IQ / M-IQ and SAC runs (``learning_mujoco.yaml``) were
kept as one JSON per run, not as run directories, so the report cannot read them; this writes, per
run, the ``config.yaml`` composed from the run's recorded overrides (today's schema: the keys added
since take their defaults, i.e. what those runs ran) and its ``metrics.json``.
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
from pathlib import Path

from torchrl_reg.report.stats import pooled_std

REPO = Path(__file__).resolve().parents[1]
LEARNING = REPO / "benchmarks" / "results" / "iq" / "learning"
FIDELITY = REPO / "benchmarks" / "results" / "iq" / "fidelity"
ENV = "HalfCheetah-v5"
BASELINE_METHODS = ("iq", "m_iq", "sac")


def baseline(out: Path) -> None:
    """Rebuild the run directories of the committed HalfCheetah IQ, M-IQ and SAC runs under ``out``."""
    from omegaconf import OmegaConf

    from recipes import iq, sac  # noqa: F401  (registers the recipes' schemas)
    from torchrl_reg.configs import compose_config

    for method in BASELINE_METHODS:
        for path in sorted(LEARNING.glob(f"{method}_{ENV}_seed*.json")):
            result = json.loads(path.read_text())
            run_dir = out / path.stem
            run_dir.mkdir(parents=True, exist_ok=True)
            overrides = [o for o in result["overrides"] if not o.startswith("run_dir=")] + [f"run_dir={run_dir}"]
            recipe = Path(result["recipe"]).stem
            cfg = compose_config(REPO / "recipes" / "conf", recipe, overrides)
            OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
            metrics = {**result["metrics"], "run_dir": str(run_dir), "source": str(path.relative_to(REPO))}
            (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float) + "\n")
            print(f"{path.name} -> {run_dir}")


LOGGED = ("train/log_pi", "train/entropy", "train/munchausen_bonus", "train/clip_fraction")


def _logged_curves(run_dir: Path) -> dict[str, list[list[float]]]:
    """The ``diag/*`` scalars and :data:`LOGGED` as ``[step, value]`` rows, from the run's CSV logs."""
    scalars = run_dir / "csv" / "scalars"
    paths = sorted((scalars / "diag").glob("*.csv")) + [scalars / f"{name}.csv" for name in LOGGED]
    curves = {}
    for path in paths:
        if path.is_file():
            rows = [line.split(",") for line in path.read_text().splitlines() if line.strip()]
            curves[str(path.relative_to(scalars).with_suffix(""))] = [[int(step), float(value)] for step, value in rows]
    return curves


def collect(sweeps: Path, out: Path = FIDELITY) -> None:
    """Copy each completed single-task sweep under ``sweeps`` into ``out/<sweep name>.json``."""
    from torchrl_reg.sweep.task import read_sweep_file

    out.mkdir(parents=True, exist_ok=True)
    for sweep_file in sorted(sweeps.glob("*/sweep.json")):
        sweep = read_sweep_file(sweep_file.parent)  # run_dir resolved (stored relative to the sweep)
        (task,) = sweep["tasks"]
        metrics_path = Path(task["run_dir"]) / "metrics.json"
        if not metrics_path.is_file():
            continue
        metrics = json.loads(metrics_path.read_text())
        if metrics.get("status") != "completed":
            continue
        name = sweep_file.parent.name
        queued = sweep_file.parent / "command.txt"  # the queue's exact invocation (taskset prefix included)
        code = sweeps.parent / "code" / "COMMIT"  # the runs import a `git archive` of this commit of main
        result = {
            "command": queued.read_text().strip() if queued.is_file() else sweep["command"],
            "sweep_command": sweep["command"],
            "code_commit": code.read_text().strip() if code.is_file() else None,
            "sweep_dir": str(sweep_file.parent),
            "overrides": task["overrides"],
            "metrics": metrics,
            "logged": _logged_curves(Path(task["run_dir"])),
        }
        (out / f"{name}.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
        shutil.copyfile(Path(task["run_dir"]) / "learning_curve.png", out / f"{name}_training_returns.png")
        print(f"{name}: eval {metrics['eval_returns'][-1]:.0f} at {metrics['eval_frames'][-1]} -> {out / name}.json")


def _at_least_minus_pooled_std(a: list[float], b: list[float]) -> dict:
    """The target "mean(a) >= mean(b) - pooled std" over seeds: the pooled std, the threshold, the margin of
    ``a``'s mean over it, whether it is met, and the seed counts."""
    pooled = pooled_std(a, b)
    threshold = statistics.fmean(b) - pooled
    return {"pooled_std": pooled, "threshold": threshold, "margin": statistics.fmean(a) - threshold,
            "met": statistics.fmean(a) >= threshold, "seeds": [len(a), len(b)]}


def _never_detrimental(a: list[float], b: list[float]) -> dict:
    """The target "M-IQ >= IQ - pooled std" over seeds, from M-IQ's returns ``a`` and IQ's ``b``."""
    check = _at_least_minus_pooled_std(a, b)
    return {"m_iq_mean": statistics.fmean(a), "iq_mean": statistics.fmean(b), "pooled_std": check["pooled_std"],
            "iq_minus_pooled_std": check["threshold"]} | {k: check[k] for k in ("margin", "met", "seeds")}


def method_of(config: dict) -> str:
    """``sac``, or ``iq`` / ``m_iq`` with ``_scaled`` (softmax(F / tau)) and ``_clip`` (Munchausen clip) suffixes."""
    loss, policy = config["loss"], config.get("policy", {})
    if "alpha_init" in loss:
        return "sac"
    name = "m_iq" if loss["alpha"] > 0 else "iq"
    name += "_scaled" if policy.get("scaled") else ""
    return name + ("_clip" if loss.get("clip_value_min") is not None else "")


def compare(report: Path) -> None:
    """The IQ / SAC ratios at 100k and the target M-IQ >= IQ - pooled seed std, per parametrization, from the
    runs the report read (its ``results.json`` inputs); written to ``FIDELITY/comparison.json``."""
    from torchrl_reg.report.runs import collect_runs

    inputs = json.loads((report / "results.json").read_text())["inputs"]
    finals: dict[str, dict[int, float]] = {}
    last3: dict[str, dict[int, float]] = {}
    for run in collect_runs(inputs):
        if run.status != "completed" or run.metrics.get("frames") != 100_000:
            continue
        name, seed = method_of(run.config), int(run.config["seed"])
        finals.setdefault(name, {})[seed] = run.metrics["eval_returns"][-1]
        last3.setdefault(name, {})[seed] = statistics.fmean(run.metrics["eval_returns"][-3:])
    sac = statistics.fmean(finals["sac"].values())
    rows = {}
    for name in sorted(finals):
        values = list(finals[name].values())
        rows[name] = {
            "seeds": sorted(finals[name]),
            "eval_at_100k_per_seed": {str(k): v for k, v in sorted(finals[name].items())},
            "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else None,
            "mean_of_last_3_evals": statistics.fmean(last3[name].values()),
            "ratio_to_sac": statistics.fmean(values) / sac,
        }
    checks = []
    for m_iq, iq in (("m_iq", "iq"), ("m_iq_scaled", "iq_scaled"), ("m_iq_clip", "iq")):
        if m_iq in finals and iq in finals and len(finals[m_iq]) > 1 and len(finals[iq]) > 1:
            checks.append({"m_iq": m_iq, "iq": iq, **_never_detrimental(list(finals[m_iq].values()), list(finals[iq].values()))})
    out = {"command": "python " + " ".join(sys.argv), "report": str(report), "score": "evaluation return at 100k "
           "(10 deterministic episodes)", "methods": rows, "m_iq_never_detrimental": checks}
    FIDELITY.mkdir(parents=True, exist_ok=True)
    (FIDELITY / "comparison.json").write_text(json.dumps(out, indent=2) + "\n")
    for name, row in rows.items():
        std = f"{row['std']:.0f}" if row["std"] is not None else "-"
        print(f"{name:>16}: n={len(row['seeds'])} {row['mean']:.0f} +- {std} (x{row['ratio_to_sac']:.2f} SAC); per seed "
              + ", ".join(f"{k}: {v:.0f}" for k, v in row["eval_at_100k_per_seed"].items()))
    for c in checks:
        print(f"{c['m_iq']} {c['m_iq_mean']:.0f} >= {c['iq']} - pooled std {c['iq_minus_pooled_std']:.0f}: {c['met']} (n={c['seeds']})")


HORIZON_STEPS = (100_000, 200_000, 300_000)


def _at_steps(path: Path, metrics: dict) -> dict[int, float]:
    """A run's evaluation returns at ``HORIZON_STEPS``; refused, naming the run, if one of the steps is missing."""
    at = dict(zip(metrics["eval_frames"], metrics["eval_returns"]))
    missing = [step for step in HORIZON_STEPS if step not in at]
    if missing:
        raise ValueError(f"{path}: no evaluation at steps {missing}; its eval_frames are {metrics['eval_frames']}")
    return {step: at[step] for step in HORIZON_STEPS}


def _step_against_sac(by_seed: dict[int, dict[int, float]], sac: dict[int, dict[int, float]], step: int) -> dict:
    """One method's returns at ``step`` (per seed, mean, sample std) and their ratios to SAC's (of means; per seed,
    same seed)."""
    values = [by_seed[k][step] for k in sorted(by_seed)]
    return {
        "per_seed": {str(k): by_seed[k][step] for k in sorted(by_seed)},
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else None,
        "ratio_of_means_to_sac": statistics.fmean(values) / statistics.fmean([sac[k][step] for k in sorted(sac)]),
        "per_seed_ratio_to_sac": {str(k): by_seed[k][step] / sac[k][step] for k in sorted(by_seed) if k in sac},
    }


def horizon(runs: Path = FIDELITY / "300k") -> None:
    """Does the IQ / SAC ratio grow with steps? From the collected 300k runs (``<method>_seed<k>.json``, methods
    ``iq``, ``m_iq``, ``sac``): per method and step, the evaluation return per seed, mean and sample std, the
    ratio of means to SAC's and the per-seed ratios (same seed), and "M-IQ >= IQ - pooled std" at each step;
    written to ``runs/comparison.json`` with a figure ``runs/horizon.png``."""
    returns: dict[str, dict[int, dict[int, float]]] = {}  # method -> seed -> step -> return
    curves: dict[str, dict[int, tuple[list[int], list[float]]]] = {}
    for path in sorted(runs.glob("*_seed*.json")):
        name, seed = path.stem.rsplit("_seed", 1)
        metrics = json.loads(path.read_text())["metrics"]
        if metrics.get("status") != "completed":
            continue
        returns.setdefault(name, {})[int(seed)] = _at_steps(path, metrics)
        curves.setdefault(name, {})[int(seed)] = (metrics["eval_frames"], metrics["eval_returns"])
    if "sac" not in returns:
        raise ValueError(f"{runs}: no completed SAC run (sac_seed<k>.json) to take ratios against")
    rows: dict[str, dict] = {}
    for name, by_seed in sorted(returns.items()):
        rows[name] = {"seeds": sorted(by_seed)}
        for step in HORIZON_STEPS:
            rows[name][str(step)] = _step_against_sac(by_seed, returns["sac"], step)
    checks = []
    if len(returns.get("m_iq", {})) > 1 and len(returns.get("iq", {})) > 1:
        for step in HORIZON_STEPS:
            a = [v[step] for v in returns["m_iq"].values()]
            b = [v[step] for v in returns["iq"].values()]
            checks.append({"step": step, **_never_detrimental(a, b)})
    out = {"command": "python -m benchmarks.iq_fidelity " + " ".join(sys.argv[1:]), "runs": str(runs.relative_to(REPO))
           if runs.is_relative_to(REPO) else str(runs), "score": "deterministic evaluation return (10 episodes) at "
           "each step", "methods": rows, "m_iq_never_detrimental": checks}
    (runs / "comparison.json").write_text(json.dumps(out, indent=2) + "\n")
    for name, row in rows.items():
        print(f"{name:>5} (seeds {row['seeds']}): " + "; ".join(
            f"{step // 1000}k {row[str(step)]['mean']:.0f} (x{row[str(step)]['ratio_of_means_to_sac']:.2f} SAC)"
            for step in HORIZON_STEPS))
    for c in checks:
        print(f"{c['step'] // 1000}k: M-IQ {c['m_iq_mean']:.0f} >= IQ - pooled std {c['iq_minus_pooled_std']:.0f}: {c['met']}")
    _plot_horizon(curves, rows, runs / "horizon.png")


def vs_sac(records: Path, runs: Path = FIDELITY / "300k") -> dict:
    """Report records (``torchrl_reg.report --records``: ``<method>_HalfCheetah-v5_seed<k>.json``) against the
    collected 300k SAC runs (``runs/sac_seed<k>.json``): per method and step of ``HORIZON_STEPS``, the return per
    seed, mean and sample std, the ratio of means to SAC's, the per-seed ratios (same seed), and the target
    "method >= SAC - pooled std" (the MDAC target). Written to ``records/comparison.json``, with the figure
    ``records/vs_sac.png`` (evaluation returns per seed and their mean against steps, SAC's beside them; the ratio of
    means at each step)."""
    sac: dict[int, dict[int, float]] = {}
    curves: dict[str, dict[int, tuple[list[int], list[float]]]] = {}
    for path in sorted(runs.glob("sac_seed*.json")):
        metrics = json.loads(path.read_text())["metrics"]
        if metrics.get("status") == "completed":
            seed = int(path.stem.rsplit("_seed", 1)[1])
            sac[seed] = _at_steps(path, metrics)
            curves.setdefault("sac", {})[seed] = (metrics["eval_frames"], metrics["eval_returns"])
    if len(sac) < 2:
        raise ValueError(f"{runs}: {len(sac)} completed SAC run(s) (sac_seed<k>.json); a pooled std needs 2 or more")
    methods: dict[str, dict[int, dict[int, float]]] = {}
    for path in sorted(records.glob(f"*_{ENV}_seed*.json")):
        record = json.loads(path.read_text())
        metrics = record["metrics"]
        if metrics.get("status") == "completed":
            methods.setdefault(record["method"], {})[int(record["seed"])] = _at_steps(path, metrics)
            curves.setdefault(record["method"], {})[int(record["seed"])] = (metrics["eval_frames"], metrics["eval_returns"])
    if not methods:
        raise ValueError(f"{records}: no completed record of {ENV} (<method>_{ENV}_seed<k>.json)")
    rows: dict[str, dict] = {}
    for name, by_seed in sorted(methods.items()):
        rows[name] = {"seeds": sorted(by_seed)}
        for step in HORIZON_STEPS:
            a = [by_seed[k][step] for k in sorted(by_seed)]
            b = [sac[k][step] for k in sorted(sac)]
            rows[name][str(step)] = {**_step_against_sac(by_seed, sac, step),
                                     "sac_per_seed": {str(k): sac[k][step] for k in sorted(sac)},
                                     "sac_mean": statistics.fmean(b)}
            if len(a) > 1:
                check = _at_least_minus_pooled_std(a, b)
                rows[name][str(step)]["at_least_sac_minus_pooled_std"] = {
                    "pooled_std": check["pooled_std"], "sac_minus_pooled_std": check["threshold"]
                } | {k: check[k] for k in ("margin", "met", "seeds")}
    out = {"command": "python -m benchmarks.iq_fidelity " + " ".join(sys.argv[1:]),
           "sac_runs": str(runs.relative_to(REPO)) if runs.is_relative_to(REPO) else str(runs),
           "score": "deterministic evaluation return (10 episodes) at each step", "methods": rows}
    (records / "comparison.json").write_text(json.dumps(out, indent=2) + "\n")
    for name, row in rows.items():
        for step in HORIZON_STEPS:
            r = row[str(step)]
            check = r.get("at_least_sac_minus_pooled_std")
            verdict = (f"; >= SAC - pooled std {check['sac_minus_pooled_std']:.0f}: {check['met']}" if check else "")
            print(f"{name} (seeds {row['seeds']}) {step // 1000}k: {r['mean']:.0f} against SAC {r['sac_mean']:.0f} "
                  f"(x{r['ratio_of_means_to_sac']:.2f}){verdict}")
    _plot_horizon(curves, rows, records / "vs_sac.png")
    return out


def _plot_horizon(curves: dict, rows: dict, path: Path) -> None:
    """Left: evaluation return against steps, one thin line per seed and the mean; right: ratio of means to SAC."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for color, name in zip(("C0", "C1", "C2", "C3"), sorted(curves)):
        for frames, values in curves[name].values():
            left.plot(frames, values, color=color, alpha=0.25, linewidth=0.8)
        frames = curves[name][min(curves[name])][0]
        mean = np.mean([values for _, values in curves[name].values()], axis=0)
        left.plot(frames, mean, color=color, label=f"{name} (mean of {len(curves[name])} seeds)")
        if name != "sac":
            right.plot([s / 1000 for s in HORIZON_STEPS], [rows[name][str(s)]["ratio_of_means_to_sac"]
                                                            for s in HORIZON_STEPS], "o-", color=color, label=name)
    left.set(xlabel="environment steps", ylabel="evaluation return", title=f"{ENV}")
    left.legend()
    right.axhline(1.0, color="gray", linestyle="--", linewidth=0.8)  # SAC's level
    right.set(xlabel="steps (thousands)", ylabel="mean return / SAC mean return", title="ratio to SAC",
              ylim=(0, max(1.1, right.get_ylim()[1])))
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def initial(seeds: int = 3, tau: float = 0.01) -> None:
    """Entropy per dimension and ``ln pi`` of uniformly random grid actions under the freshly initialized preset
    policy (2x256 ReLU, 11 bins), on 1000 HalfCheetah-v5 states visited by uniformly random actions."""
    import gymnasium as gym
    import numpy as np
    import torch
    from tensordict import TensorDict
    from torchrl.data import Bounded

    from torchrl_reg.modules.policies import multicategorical_policy

    env = gym.make(ENV)
    env.reset(seed=0)
    env.action_space.seed(0)
    states = np.stack([env.step(env.action_space.sample())[0] for _ in range(1000)])
    obs = torch.as_tensor(states, dtype=torch.float32)
    low, high = (torch.as_tensor(b, dtype=torch.float32) for b in (env.action_space.low, env.action_space.high))
    spec = Bounded(low, high, shape=low.shape)
    generator = torch.Generator().manual_seed(0)
    out = {}
    for name, policy_tau in (("softmax(F)", None), (f"softmax(F / {tau})", tau)):
        entropy, log_pi = [], []
        for seed in range(seeds):
            torch.manual_seed(seed)
            policy = multicategorical_policy(obs.shape[-1], spec, num_bins=11, tau=policy_tau)
            with torch.no_grad():
                dist = policy.get_dist(policy(TensorDict({"observation": obs}, [len(obs)])))
                entropy.append(dist.entropy_per_dimension().mean().item())
                index = torch.randint(11, (len(obs), low.shape[0]), generator=generator)
                log_pi.append(dist.log_prob_index(index).median().item())
        out[name] = {"entropy_per_dimension": statistics.fmean(entropy), "median_log_pi_of_random_actions": statistics.fmean(log_pi)}
        print(f"{name}: entropy per dimension {out[name]['entropy_per_dimension']:.3f} (uniform: ln 11 = {math.log(11):.3f}), "
              f"median ln pi of uniformly random grid actions {out[name]['median_log_pi_of_random_actions']:.1f} (mean of {seeds} inits)")
    FIDELITY.mkdir(parents=True, exist_ok=True)
    (FIDELITY / "initial_policy.json").write_text(json.dumps({"command": "python " + " ".join(sys.argv), **out}, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("baseline").add_argument("out", type=Path)
    collect_parser = sub.add_parser("collect")
    collect_parser.add_argument("sweeps", type=Path)
    collect_parser.add_argument("--out", type=Path, default=FIDELITY)
    sub.add_parser("compare").add_argument("report", type=Path)
    sub.add_parser("horizon").add_argument("--runs", type=Path, default=FIDELITY / "300k")
    sub.add_parser("initial")
    vs_sac_parser = sub.add_parser("vs-sac")
    vs_sac_parser.add_argument("records", type=Path)
    vs_sac_parser.add_argument("--runs", type=Path, default=FIDELITY / "300k")
    args = parser.parse_args()
    actions = {
        "baseline": lambda: baseline(args.out),
        "collect": lambda: collect(args.sweeps, args.out),
        "compare": lambda: compare(args.report),
        "horizon": lambda: horizon(args.runs),
        "initial": initial,
        "vs-sac": lambda: vs_sac(args.records, args.runs),
    }
    actions[args.command]()


if __name__ == "__main__":
    main()
