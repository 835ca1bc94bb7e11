"""The planning figures (``plot``) and the fair comparison's."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from benchmarks.planning.common import COLORS, COMPARED, OUT


def plot_minatar_fair(out: Path) -> None:
    """``minatar_fair.png``: per game (columns) and budget (rows), each search's paired difference to the greedy
    network with its 95% interval, and each network's mean difference (dots)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    games = [json.loads(p.read_text()) for p in sorted(out.glob("minatar_fair_*.json")) if "_tune_" not in p.name]
    if not games:
        return
    budgets = sorted({n for data in games for n in data["simulations"]})
    fig, axes = plt.subplots(len(budgets), len(games), figsize=(4.2 * len(games), 3.2 * len(budgets)), squeeze=False)
    for col, data in enumerate(games):
        for row, n in enumerate(budgets):
            ax = axes[row][col]
            names = [m.partition("@")[0] for m in data["methods"] if m.endswith(f"@{n}")]
            for i, name in enumerate(names):
                comparison = data["comparisons"][f"{name}@{n} - greedy"]
                low, high = comparison["ci95"]
                ax.errorbar([i], [comparison["mean"]], yerr=[[comparison["mean"] - low], [high - comparison["mean"]]],
                            fmt="o", color=COLORS.get(name, "black"), capsize=4)
                ax.plot([i + 0.15] * len(comparison["per_network"]), [p["mean"] for p in comparison["per_network"]], "k.", ms=4)
            ax.axhline(0.0, color="k", lw=0.8)
            ax.set_xticks(range(len(names)), names)
            ax.set_ylabel("return - greedy network's")
            ax.set_title(f"MinAtar {data['game']}, {n} simulations per move\n{len(data['networks'])} networks x "
                         f"{data['episodes']} paired episodes (95% bootstrap CI)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "minatar_fair.png", dpi=120)
    print(f"wrote {out / 'minatar_fair.png'}")


#: each planner model's marker, color and legend text in minatar_models.png, in the order of the markers in a group
MODEL_STYLE = {
    "determinized": ("o", "black", "determinized"), "ensemble5": ("s", "tab:blue", "ensemble, 5 futures"),
    "sampled": ("D", "tab:red", "sampled (chance nodes)"), "oracle": ("^", "tab:gray", "oracle (the real game's stream)"),
}


def plot_minatar_models(out: Path, result: dict) -> None:
    """``minatar_models.png``: per game (columns) and budget (rows: 50, and 200 where a model has it), each search's
    paired difference to the greedy network with its 95% interval, one marker per planner model (hollow: on a subset
    of the game's networks)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    games = result["games"]
    budgets = sorted({n for g in games.values() for m in g["models"].values() for n in m["simulations"]})
    present = {m for g in games.values() for m in g["models"]}
    models = [m for m in MODEL_STYLE if m in present] + sorted(present - set(MODEL_STYLE))  # one slot per model
    searches = COMPARED
    fig, axes = plt.subplots(len(budgets), len(games), figsize=(4.4 * len(games), 3.1 * len(budgets) + 0.5), squeeze=False)
    legend = {}
    for col, (game, data) in enumerate(games.items()):
        for row, n in enumerate(budgets):
            ax = axes[row][col]
            for j, model in enumerate(models):
                marker, color, name = MODEL_STYLE.get(model, ("v", f"C{j}", model))
                for i, search in enumerate(searches):
                    c = data["models"].get(model, {}).get("comparisons", {}).get(f"{search}@{n} - greedy")
                    if c is None:
                        continue
                    low, high = c["ci95"]
                    hollow = c["networks"] != data["networks"]
                    label = f"{name}, networks {', '.join(map(str, c['networks']))} only" if hollow else name
                    legend[label] = ax.errorbar([i + (j - (len(models) - 1) / 2) * 0.7 / len(models)], [c["mean"]],
                                                yerr=[[c["mean"] - low], [high - c["mean"]]], fmt=marker, color=color,
                                                mfc="white" if hollow else color, capsize=3, ms=5)
            ax.axhline(0.0, color="k", lw=0.8)
            ax.set_xticks(range(len(searches)), [s.upper() for s in searches])
            ax.set_xlim(-0.6, len(searches) - 0.4)
            ax.set_ylabel("return - greedy network's")
            ax.set_title(f"MinAtar {game}, {n} simulations per move\n{len(data['networks'])} networks x {data['episodes']} "
                         "paired episodes (95% bootstrap CI)", fontsize=9)
    fig.legend(legend.values(), legend.keys(), loc="lower center", ncol=min(len(legend), 5), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.5 / (3.1 * len(budgets) + 0.5), 1, 1))
    fig.savefig(out / "minatar_models.png", dpi=120)
    plt.close(fig)
    print(f"wrote {out / 'minatar_models.png'}")


# -- plots ------------------------------------------------------------------------------------------------
def plot(args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if (OUT / "speed.json").exists():
        data = json.loads((OUT / "speed.json").read_text())
        fig, ax = plt.subplots(figsize=(9, 4))
        labels, parts = [], {"tree": [], "simulator": [], "evaluator": []}
        for row in data["rows"]:
            labels.append(f"{row['algorithm']}\n{row['case'].split(',')[0][:9]}\n{'net' if 'network' in row['case'] else 'rollout'}")
            # CPU time per simulation (the machine is shared), split in the proportions of the timed run
            per_sim = 1e6 / row["sims_per_cpu_s"]
            timed = sum(row["split_s"][key] for key in parts)
            for key in parts:
                parts[key].append(row["split_s"][key] / timed * per_sim)
        bottom = np.zeros(len(labels))
        for key, color in zip(parts, ("tab:blue", "tab:orange", "tab:green")):
            ax.bar(labels, parts[key], bottom=bottom, label=key, color=color)
            bottom += np.array(parts[key])
        ax.set_ylabel("CPU microseconds per simulation")
        ax.set_yscale("log")
        ax.set_title("CPU time per simulation and its split; target 5,000 sims/s on one core = 200 us")
        ax.axhline(200, color="k", ls="--", lw=0.8)
        ax.legend()
        plt.xticks(fontsize=6)
        fig.tight_layout()
        fig.savefig(OUT / "speed.png", dpi=120)

    games = sorted(p for p in OUT.glob("minatar_*.json") if not p.name.startswith("minatar_fair"))  # the log-prior runs
    if games:
        fig, axes = plt.subplots(1, len(games), figsize=(4.2 * len(games), 3.4), squeeze=False)
        for ax, path in zip(axes[0], games):
            data = json.loads(path.read_text())
            names = list(data["returns"])
            means = [np.mean(data["returns"][n]) for n in names]
            sems = [np.std(data["returns"][n], ddof=1) / np.sqrt(len(data["returns"][n])) for n in names]
            ax.bar(names, means, yerr=sems, color=[COLORS.get(n, "black") for n in names], capsize=4)
            for i, name in enumerate(names):  # each network's mean return
                ax.plot([i] * len(data["returns"][name]), data["returns"][name], "k.", ms=4)
            nets = len(data.get("checkpoints", [data.get("checkpoint")]))
            ax.set_title(
                f"MinAtar {data['game']}: mean return of {nets} network(s) (+- s.e.),\n"
                f"{data['episodes']} episodes each, {data['simulations']} simulations per move", fontsize=9
            )
        fig.tight_layout()
        fig.savefig(OUT / "minatar.png", dpi=120)
    plot_minatar_fair(OUT)

    panels = [name for name in ("synthetic", "dchain", "frozenlake_4x4", "frozenlake_4x4_gamma1", "frozenlake") if (OUT / f"{name}.json").exists()]
    if not panels:
        return
    series = []
    for name in panels:
        data = json.loads((OUT / f"{name}.json").read_text())
        if name == "synthetic":
            series.append(("synthetic tree: failure rate", data["budgets"], data["failure_rate"]))
        elif name == "dchain":
            for rf in ("0.5", "1.0"):
                rates = {k.split("/")[1]: v for k, v in data["success_rate"].items() if k.startswith(f"R_f={rf}")}
                series.append((f"D-chain D={data['length']}, R_f={rf}: success rate", data["budgets"], rates))
        else:
            title = f"FrozenLake {data['map']}, gamma={data['params'].get('gamma', 1.0)}: success rate"
            series.append((title, data["budgets"], data["success_rate"]))
    fig, axes = plt.subplots(1, len(series), figsize=(4.2 * len(series), 3.6))
    for ax, (title, budgets, rates) in zip(np.atleast_1d(axes), series):
        for algorithm, values in rates.items():
            ax.plot(budgets, values, marker="o", label=algorithm, color=COLORS[algorithm])
        ax.set_xscale("log")
        ax.set_xlabel("simulations")
        ax.set_title(title, fontsize=9)
        ax.set_ylim(-0.03, 1.03)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(OUT / "rates.png", dpi=120)
    print(f"wrote {OUT}/speed.png, {OUT}/rates.png")
