"""Atari games in the field's units: human-normalized scores, and the published curves and scores to compare with.

A run's score on an Atari game is reported as its **human-normalized score**, ``(score - random) / (human -
random)``: 0 is a uniformly random policy, 1 a professional human game tester. Every Atari paper aggregates games this
way (DQN, Nature 2015; Rainbow; Agent57; the Munchausen paper's median and mean; Atari-100k's IQM, Agarwal et al.
2021), so a sweep over Atari games is reported in it whenever its tasks are Atari games (``env.family`` atari, or an
``ALE/...`` id). MinAtar, MuJoCo and the classic-control tasks have no human reference and keep raw scores.

The table (:data:`ATARI_SCORES`) is the one of DeepMind's DQN Zoo, ``dqn_zoo/atari_data.py``
(github.com/google-deepmind/dqn_zoo, Apache-2.0), the random and human scores of the 57 games of Atari-57: returns
averaged over episodes that start after 1 to 30 no-op actions and are capped at 108,000 frames (30 minutes), the
**30-minute table** ("human_at30"). The Nature DQN paper's human column (Mnih et al. 2015, 49 games) is another, the
**5-minute table**: its professional tester played episodes of at most 5 minutes, and the papers of its time that
copied that column (e.g. Gorila, Nair et al. 2015) normalize with it. Scores normalized with one table are not
comparable with scores normalized with the other (docs/sweeps.rst). Our recipes' Atari protocol (sticky actions 0.25, Machado et al. 2018)
is not that evaluation protocol; the normalization is the field's all the same, and papers on sticky actions use it.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "ATARI_100K_GAMES",
    "ATARI_SCORES",
    "DOPAMINE_AGENTS",
    "MUNCHAUSEN_SCORES",
    "SCORES_SOURCE",
    "ScoreScale",
    "atari_game",
    "budget_text",
    "dopamine_agents",
    "dopamine_beside",
    "dopamine_curve",
    "env_family",
    "human_normalized",
    "protocol_title",
    "score_scale",
]

SCORES_SOURCE = (
    "DQN Zoo's dqn_zoo/atari_data.py (github.com/google-deepmind/dqn_zoo, Apache-2.0): the random and human "
    "scores of Atari-57 over episodes capped at 30 minutes (the 30-minute table, not the Nature DQN paper's "
    "5-minute human column)"
)

#: Game (its ALE id, ``ALE/<game>-v5``) -> (random score, human score), from :data:`SCORES_SOURCE`.
ATARI_SCORES: dict[str, tuple[float, float]] = {
    "Alien": (227.8, 7127.7),
    "Amidar": (5.8, 1719.5),
    "Assault": (222.4, 742.0),
    "Asterix": (210.0, 8503.3),
    "Asteroids": (719.1, 47388.7),
    "Atlantis": (12850.0, 29028.1),
    "BankHeist": (14.2, 753.1),
    "BattleZone": (2360.0, 37187.5),
    "BeamRider": (363.9, 16926.5),
    "Berzerk": (123.7, 2630.4),
    "Bowling": (23.1, 160.7),
    "Boxing": (0.1, 12.1),
    "Breakout": (1.7, 30.5),
    "Centipede": (2090.9, 12017.0),
    "ChopperCommand": (811.0, 7387.8),
    "CrazyClimber": (10780.5, 35829.4),
    "Defender": (2874.5, 18688.9),
    "DemonAttack": (152.1, 1971.0),
    "DoubleDunk": (-18.6, -16.4),
    "Enduro": (0.0, 860.5),
    "FishingDerby": (-91.7, -38.7),
    "Freeway": (0.0, 29.6),
    "Frostbite": (65.2, 4334.7),
    "Gopher": (257.6, 2412.5),
    "Gravitar": (173.0, 3351.4),
    "Hero": (1027.0, 30826.4),
    "IceHockey": (-11.2, 0.9),
    "Jamesbond": (29.0, 302.8),
    "Kangaroo": (52.0, 3035.0),
    "Krull": (1598.0, 2665.5),
    "KungFuMaster": (258.5, 22736.3),
    "MontezumaRevenge": (0.0, 4753.3),
    "MsPacman": (307.3, 6951.6),
    "NameThisGame": (2292.3, 8049.0),
    "Phoenix": (761.4, 7242.6),
    "Pitfall": (-229.4, 6463.7),
    "Pong": (-20.7, 14.6),
    "PrivateEye": (24.9, 69571.3),
    "Qbert": (163.9, 13455.0),
    "Riverraid": (1338.5, 17118.0),
    "RoadRunner": (11.5, 7845.0),
    "Robotank": (2.2, 11.9),
    "Seaquest": (68.4, 42054.7),
    "Skiing": (-17098.1, -4336.9),
    "Solaris": (1236.3, 12326.7),
    "SpaceInvaders": (148.0, 1668.7),
    "StarGunner": (664.0, 10250.0),
    "Surround": (-10.0, 6.5),
    "Tennis": (-23.8, -8.3),
    "TimePilot": (3568.0, 5229.2),
    "Tutankham": (11.4, 167.6),
    "UpNDown": (533.4, 11693.2),
    "Venture": (0.0, 1187.5),
    "VideoPinball": (16256.9, 17667.9),
    "WizardOfWor": (563.5, 4756.5),
    "YarsRevenge": (3092.9, 54576.9),
    "Zaxxon": (32.5, 9173.3),
}

#: The 26 games of Atari-100k (Kaiser et al., "Model-Based Reinforcement Learning for Atari", ICLR 2020).
ATARI_100K_GAMES = (
    "Alien", "Amidar", "Assault", "Asterix", "BankHeist", "BattleZone", "Boxing", "Breakout", "ChopperCommand",
    "CrazyClimber", "DemonAttack", "Freeway", "Frostbite", "Gopher", "Hero", "Jamesbond", "Kangaroo", "Krull",
    "KungFuMaster", "MsPacman", "Pong", "PrivateEye", "Qbert", "RoadRunner", "Seaquest", "UpNDown",
)

#: The Munchausen paper's final scores at 200M frames on the five games it quotes in its text (Vieillard, Pietquin &
#: Geist, NeurIPS 2020), as quoted in the "Reported score" column of sony/nnabla-rl's
#: reproductions/algorithms/atari/munchausen_dqn/README.md and .../munchausen_iqn/README.md; the paper's appendix
#: table of all games was not reachable.
MUNCHAUSEN_SCORES: dict[str, dict[str, float]] = {
    "m_dqn": {"Asterix": 17238.0, "Breakout": 331.0, "Pong": 19.0, "Qbert": 16415.0, "Seaquest": 2666.0},
    "m_iqn": {"Asterix": 49865.0, "Breakout": 320.0, "Pong": 19.0, "Qbert": 14739.0, "Seaquest": 23885.0},
}

#: Our loss name -> the Dopamine agent whose baseline curves (google/dopamine, baselines/atari/data) it is drawn beside.
DOPAMINE_AGENTS = {"dqn": "DQN", "iqn": "IQN"}
#: One Dopamine iteration: 250,000 agent steps (1M frames).
DOPAMINE_ITERATION_STEPS = 250_000


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


_BY_KEY = {_key(game): game for game in ATARI_SCORES}


def atari_game(name: Any) -> str:
    """The game an Atari env name names: ``ALE/Breakout-v5``, ``Breakout`` or ``breakout`` -> ``Breakout`` (the
    table's spelling when the table has it, else the name as written, less ``ALE/`` and the version)."""
    text = str(name)
    if text.startswith("ALE/"):
        text = text[4:]
    text = re.sub(r"-v\d+$", "", text)
    return _BY_KEY.get(_key(text), text)


def env_family(config_family: Any, env_name: Any) -> str | None:
    """A run's env family: its config's ``env.family``, else what its env id says (``ALE/...`` Atari,
    ``MinAtar/...`` MinAtar), else None (unknown: raw scores)."""
    if config_family:
        return str(config_family)
    name = str(env_name)
    if name.startswith("ALE/"):
        return "atari"
    if name.startswith("MinAtar/"):
        return "minatar"
    return None


@dataclass(frozen=True)
class ScoreScale:
    """How a report's scores are scaled: human-normalized (``reference``: env -> (random, human)) or raw."""

    human: bool
    note: str
    reference: dict[str, tuple[float, float]] = field(default_factory=dict)
    games: dict[str, str] = field(default_factory=dict)  # env -> game


def score_scale(families: dict[str, set[str | None]]) -> ScoreScale:
    """The scale of a report whose environments have these families (env -> the families of its runs).

    Every env an Atari game: human-normalized, each game's (random, human) from :data:`ATARI_SCORES`; a game the
    table lacks is refused by name (``ValueError``), as are Atari games mixed with other environments. No Atari game:
    raw scores, with a note saying why.
    """
    atari = sorted(e for e, f in families.items() if "atari" in f)
    if not atari:
        kinds = sorted({str(f) for fs in families.values() for f in fs if f is not None})
        named = f"{', '.join(kinds)} environments" if kinds else "these environments"
        return ScoreScale(False, f"raw scores: {named} have no human reference (human-normalized scores are for "
                                 "Atari games)")
    others = sorted(e for e, f in families.items() if f != {"atari"})
    if others:
        raise ValueError(
            f"the runs mix Atari games ({', '.join(atari)}) with other environments ({', '.join(others)}): report "
            "them separately, or give --reference-scores for every environment"
        )
    games = {e: atari_game(e) for e in atari}
    missing = sorted(e for e, g in games.items() if g not in ATARI_SCORES)
    if missing:
        raise ValueError(
            f"no random and human scores for the Atari game(s) {missing}: the table ({SCORES_SOURCE}) has the 57 "
            f"games of Atari-57: {sorted(ATARI_SCORES)}; report the others with --reference-scores"
        )
    return ScoreScale(
        True,
        f"human-normalized: (score - random) / (human - random), random and human scores from {SCORES_SOURCE}",
        {e: ATARI_SCORES[g] for e, g in games.items()},
        games,
    )


def human_normalized(game: str, score: Any) -> np.ndarray:
    """``(score - random) / (human - random)`` of ``game`` (any name :func:`atari_game` reads); ``ValueError`` naming a
    game the table lacks."""
    name = atari_game(game)
    if name not in ATARI_SCORES:
        raise ValueError(f"no random and human scores for the Atari game {game!r}; the table has {sorted(ATARI_SCORES)}")
    random, human = ATARI_SCORES[name]
    return (np.asarray(score, dtype=np.float64) - random) / (human - random)


def _short(n: float) -> str:
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.4g}{unit}"
    return f"{n:.0f}"


def budget_text(steps: Iterable[Any], frame_skip: Iterable[Any] = ()) -> str:
    """``"100k agent steps (400k frames)"``: the runs' ``collector.total_frames`` (agent steps) and, with the
    emulator's frame skip, the ALE frames they are; a range when the runs differ."""
    values = sorted({int(s) for s in steps if isinstance(s, (int, float)) and not isinstance(s, bool)})
    if not values:
        return "budget unknown"
    skips = {int(k) for k in frame_skip if isinstance(k, (int, float)) and not isinstance(k, bool)}
    text = _short(values[0]) if len(values) == 1 else f"{_short(values[0])}-{_short(values[-1])}"
    if len(skips) == 1 and (skip := skips.pop()) > 1:
        frames = [v * skip for v in values]
        return f"{text} agent steps ({_short(frames[0]) if len(frames) == 1 else f'{_short(frames[0])}-{_short(frames[-1])}'} frames)"
    return f"{text} steps"


def runs_each_text(counts: Sequence[int]) -> str:
    """``"5 runs each"``, ``"1 run each"``, ``"3-5 runs each"`` for the sorted run counts per setting; ``"no runs"``."""
    if not counts:
        return "no runs"
    if len(counts) == 1:
        return f"{counts[0]} run{'s' if counts[0] != 1 else ''} each"
    return f"{counts[0]}-{counts[-1]} runs each"


def protocol_title(envs: Sequence[str], scale: ScoreScale, runs_per_env: Iterable[int], budget: str) -> str:
    """The figures' title: the protocol (Atari-57, Atari-100k, or how many games or environments), the runs per
    game and the budget, e.g. ``"Atari-100k (26 games, 5 runs each), 100k agent steps (400k frames)"``."""
    counts = sorted(set(runs_per_env))
    runs = runs_each_text(counts)
    if scale.human:
        games = set(scale.games.values())
        if games == set(ATARI_SCORES):
            name = "Atari-57"
        elif games == set(ATARI_100K_GAMES) and budget.startswith("100k agent steps"):
            name = "Atari-100k"
        else:
            name = "Atari"
        what = f"{len(envs)} game" + ("s" if len(envs) != 1 else "")
    else:
        name, what = "Raw scores", f"{len(envs)} environment" + ("s" if len(envs) != 1 else "")
    return f"{name} ({what}, {runs}), {budget}"


def dopamine_curve(directory: str | Path, game: str, agent: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, int] | None:
    """Dopamine's published training curve of ``agent`` (``"DQN"``, ``"IQN"``) on ``game``:
    ``(agent steps, mean return, [min, max] over its runs, runs)`` from ``<directory>/<game>.json`` (Dopamine's
    ``baselines/atari/data/<game, lower case>.json``: rows ``{"Iteration", "Value", "Agent"}``, its runs one after
    another), or None when the file or the agent is not there.

    Each iteration is 250,000 agent steps (1M frames), and its value the mean return of the training episodes in it,
    drawn at the iteration's middle, ``(i + 0.5) * 250,000`` agent steps.
    """
    path = Path(directory) / f"{_key(atari_game(game))}.json"
    if not path.is_file():
        return None
    try:
        rows = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not a Dopamine baseline file (JSON rows of Iteration, Value, Agent): {err}") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and {"Iteration", "Value", "Agent"} <= set(r) for r in rows):
        raise ValueError(f"{path} is not a Dopamine baseline file: expected a list of {{Iteration, Value, Agent}} rows")
    runs: list[dict[int, float]] = []
    last = None
    for row in rows:
        if row["Agent"] != agent:
            last = None
            continue
        it = int(row["Iteration"])
        if last is None or it <= last:
            runs.append({})
        runs[-1][it] = float(row["Value"])
        last = it
    if not runs:
        return None
    iterations = sorted(set().union(*runs))
    table = np.array([[r.get(i, math.nan) for r in runs] for i in iterations])  # (iterations, runs)
    steps = (np.asarray(iterations, dtype=np.float64) + 0.5) * DOPAMINE_ITERATION_STEPS
    band = np.stack([np.nanmin(table, axis=1), np.nanmax(table, axis=1)])
    return steps, np.nanmean(table, axis=1), band, len(runs)


def dopamine_agents(losses: dict[str, set[Any]]) -> dict[str, str]:
    """Method -> the Dopamine agent of its loss (:data:`DOPAMINE_AGENTS`), for the methods whose runs all use one
    loss that Dopamine publishes (``dqn``, ``iqn``); ``losses`` maps each method to its runs' loss names."""
    return {m: DOPAMINE_AGENTS[next(iter(names))] for m, names in losses.items()
            if len(names) == 1 and next(iter(names)) in DOPAMINE_AGENTS}


def dopamine_beside(
    directory: str | Path, game: str, agents: Sequence[str], end: float
) -> tuple[list[tuple[str, np.ndarray, np.ndarray, np.ndarray]], list[str]]:
    """``(curves, notes)``: each agent's Dopamine curve on ``game`` up to ``end`` agent steps (our runs' last),
    ``(label, steps, mean, [min, max])``, and a note for each agent whose curve is missing or starts after ``end``."""
    curves, notes = [], []
    for agent in agents:
        found = dopamine_curve(directory, game, agent)
        if found is None:
            notes.append(f"{game}: no Dopamine {agent} curve in {directory}")
            continue
        x, y, band, n = found
        keep = x <= end
        if not keep.any():
            notes.append(f"{game}: Dopamine {agent}'s first point is at {x[0]:.0f} agent steps, after our runs' last ({end:.0f})")
            continue
        curves.append((f"Dopamine {agent} ({n} runs, mean and range)", x[keep], y[keep], band[:, keep]))
    return curves, notes
