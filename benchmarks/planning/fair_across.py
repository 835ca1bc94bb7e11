"""Paired comparisons between two minatar-fair eval results of one game: A's searches against B's (e.g. the soft
searches of the ensemble model's eval against UCT re-tuned for that model and evaluated on its own).

Episode i of every method on a network starts from the same env seed, so two eval JSONs of the same game, networks,
episodes and seed pair episode by episode; the greedy network's cells, played deterministically from those seeds,
must then be equal in both, which is checked before anything is compared (a mismatch is refused, naming the cell).
The statistics are the eval stage's own (benchmarks.planning.common.FAIR_STATISTICS).

    python -m benchmarks.planning.fair_across --a benchmarks/results/planning/models/ensemble5/minatar_fair_asterix.json \\
        --a-methods ments@50 bts@50 dents@50 --b benchmarks/results/planning/models/ensemble5_uct_retuned/minatar_fair_asterix.json \\
        --b-method uct@50 --b-label "uct@50 (c re-tuned)" --out benchmarks/results/planning/models/ensemble5_uct_retuned/asterix_vs_soft.json
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from benchmarks.planning.common import FAIR_STATISTICS, paired

PAIRING_KEYS = ("game", "seed", "episodes", "max_steps")


def _networks(result: dict) -> list[tuple]:
    """The networks by training seed and checkpoint digest (their paths differ between checkouts)."""
    return [(n["seed"], n["sha256"]) for n in result["networks"]]


def compare(a: dict, a_methods: list[str], b: dict, b_method: str, b_label: str, reps: int) -> dict:
    """``{"<a method> - <b_label>": paired comparison}`` for each of ``a_methods``, after checking the pairing."""
    for key in PAIRING_KEYS:
        if a.get(key) != b.get(key):
            raise SystemExit(f"the two results differ in {key!r} ({a.get(key)!r} vs {b.get(key)!r}): their episodes "
                             "do not pair")
    if _networks(a) != _networks(b):
        raise SystemExit(f"the two results use other networks ({_networks(a)} vs {_networks(b)}): their episodes do not pair")
    greedy_a, greedy_b = a["episode_returns"].get("greedy"), b["episode_returns"].get("greedy")
    if greedy_a is None or greedy_a != greedy_b:
        raise SystemExit("the greedy network's episode returns differ between the two results (or one has none): "
                         "their episodes do not start from the same states")
    missing = [m for m in [*a_methods] if m not in a["episode_returns"]] + \
              ([b_method] if b_method not in b["episode_returns"] else [])
    if missing:
        raise SystemExit(f"methods {missing} not in the results (A has {list(a['episode_returns'])}, "
                         f"B has {list(b['episode_returns'])})")
    return {f"{m} - {b_label}": paired(a["episode_returns"][m], b["episode_returns"][b_method], reps)
            for m in a_methods}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--a", required=True, help="eval JSON whose methods are compared (minus B's)")
    p.add_argument("--a-methods", nargs="+", required=True, help="labels in A, e.g. ments@50 bts@50")
    p.add_argument("--b", required=True, help="eval JSON holding the baseline")
    p.add_argument("--b-method", required=True, help="the baseline's label in B, e.g. uct@50")
    p.add_argument("--b-label", help="the baseline's name in the output (default: --b-method)")
    p.add_argument("--reps", type=int, default=20_000, help="bootstrap resamples (default 20000)")
    p.add_argument("--out", required=True, help="output JSON")
    argv = sys.argv[1:] if argv is None else argv
    args = p.parse_args(argv)
    if args.reps < 1:
        raise SystemExit(f"--reps {args.reps}: the number of bootstrap resamples, 1 or more")
    a, b = json.loads(Path(args.a).read_text()), json.loads(Path(args.b).read_text())
    label = args.b_label or args.b_method
    result = {
        "game": a["game"], "a": args.a, "b": args.b, "b_method": args.b_method, "b_knobs": b["knobs"].get(args.b_method),
        "b_tuning": b.get("tuning"), "a_knobs": {m: a["knobs"].get(m) for m in args.a_methods},
        "comparisons": compare(a, args.a_methods, b, args.b_method, label, args.reps),
        "statistics": FAIR_STATISTICS, "bootstrap_reps": args.reps,
        "command": " ".join(shlex.quote(x) for x in ["python", "-m", "benchmarks.planning.fair_across", *argv]),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    for name, c in result["comparisons"].items():
        print(f"{a['game']} {name}: {c['mean']:+.2f} [{c['ci95'][0]:+.2f}, {c['ci95'][1]:+.2f}] ({c['verdict']}, {c['pairs']} pairs)")


if __name__ == "__main__":
    main()
