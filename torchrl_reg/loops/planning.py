"""The planning loop: search before every move, act, repeat (no training), ``recipes/tree_search.py``.

Read :func:`plan` top to bottom: each episode builds its task (the task object of :func:`~torchrl_reg.planning.tasks.get_task`,
seeded ``seed + episode``), then at every move runs ``planner.simulations`` simulations of the search
(:func:`~torchrl_reg.planning.make_search`: MENTS, Xiao et al., "Maximum Entropy Monte-Carlo Planning",
NeurIPS 2019; BTS and DENTS, Painter et al., "Monte Carlo Tree Search with Boltzmann Exploration",
NeurIPS 2023, arXiv:2404.07732; UCT) from the env's current state, plays the recommended action in the
env and goes on until the episode ends or ``task.max_steps`` moves. ``planner.algorithm=greedy`` plays
the Q network's argmax without searching (the baseline of the searches that use that network).

Leaf values come from random rollouts or from a Q network trained by ``recipes/m_dqn.py``
(:func:`load_q_network`: rebuilt from its run's ``config.yaml`` by the value-based loop's network builder,
its weights loaded with ``load_state_dict``).

The run directory keeps the contract of :mod:`torchrl_reg.run` (:class:`~torchrl_reg.run.Run`, its state the
:class:`Episodes` played), with episodes where the training loops have collector batches: it is locked, a resume
with a config that differs from the stored one is refused (``episodes`` may only grow), and after every finished
episode ``checkpoint.pt`` is written atomically with what a resume needs (the finished episodes' returns,
lengths and diagnostics, the RNG states, the elapsed time; the next episode is the number finished). A resumed run goes
on from the last finished episode: each episode's env, rollouts and search draw from their own seed, so
its returns are those of the uninterrupted run. CSV rows ``episode/return`` and ``episode/length``
(step: the episode's number, from 1), ``metrics.json`` (``status: running`` while it runs) and
``returns.png`` (return per episode). A stop (a signal, :func:`~torchrl_reg.run.request_stop`, or
:func:`~torchrl_reg.run.request_stop_at` with a number of finished episodes) is acted on between two
moves: the checkpoint of the finished episodes is written with the episode (group) in progress
(:class:`GroupProgress`: each env's state as plain data, ``plain_state()`` of the simulators of every task, the
searches' random streams, the moves played and their sums), and ``metrics["status"]`` is ``"interrupted"`` (exit
status 75 from the command line); the resume goes on from the next move, and its returns are those of the
uninterrupted run. The group in progress is also saved so between two moves once ``checkpoint.interval_s`` seconds
have passed since the last checkpoint (0: never), and ``metrics.json`` names it (``group_in_progress``: its episodes
and move); a run stopped without a word (SIGKILL, a crash) goes on from its last checkpoint, that move included.

``planner.model`` is the model the searches plan in (:mod:`torchrl_reg.planning.models`: ``sampled``,
``determinized``, ``ensemble``, ``oracle``; it matters on MinAtar and Atari). Under ``ensemble`` a move searches
``planner.futures`` determinized futures of each episode with ``planner.simulations / planner.futures`` simulations
each (the same total as the other models) and plays the action of their combined roots
(:func:`~torchrl_reg.planning.ensemble.combine_futures`: root visits summed, root values averaged by visits), one
``TreeSearch`` run per future or, batched, ``planner.futures`` rows per episode in the batch; its diagnostics are the
combined root's. ``planner.batch_episodes = K > 1`` plays the
episodes in groups of K at once (:func:`play_episodes`, the one episode player): where the batched search plans in
the model (D-chain, FrozenLake and MinAtar, every model; chance nodes for the sampled one), one
:class:`~torchrl_reg.planning.BatchedTreeSearch` per group searches the trees of all its episodes still in
play at every move (B = those episodes; a finished episode leaves the batch), over the task's tensor model
(:meth:`~torchrl_reg.planning.tasks.Task.tensor_model`), its search, rollouts and MinAtar streams drawing from ``seed + ``
the group's first episode, so an episode's return depends on its group but not its distribution; elsewhere
(Atari) each episode is searched by its own ``TreeSearch`` exactly as with ``K = 1``. Groups start at
multiples of K; every episode's env draws from ``seed + i`` as above, and every mode records the same
:data:`DIAGNOSTICS`. The checkpoint is written after every finished group and at a stop, with the group in
progress, and a resume goes on from the move it stopped at; when ``episodes`` grew, a last group that was cut
short by the earlier count is played again in full, so a resumed run's returns are always those of the
uninterrupted run.
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from tensordict.nn import TensorDictSequential
from torchrl.data import Categorical
from torchrl.modules import QValueActor

from torchrl_reg.configs import arguments_of
from torchrl_reg.loops.hooks import ValueBasedHooks
from torchrl_reg.loops.value_based import q_network
from torchrl_reg.planning import QNetworkEvaluator, RandomRollout, Simulator, make_search
from torchrl_reg.planning.ensemble import combine_futures, split_simulations
from torchrl_reg.planning.models import get_model
from torchrl_reg.planning.tasks import get_task
from torchrl_reg.run import Run, read_checkpoint, stop_requested
from torchrl_reg.run.files import load_yaml_config
from torchrl_reg.run.process import scoped_loop
from torchrl_reg.run.progress import ProgressBar
from torchrl_reg.validation import check_finite_tensors, check_numbers

__all__ = ["DIAGNOSTICS", "Episodes", "GroupProgress", "Stopped", "load_q_network", "plan", "play_episodes"]

#: What a search records per episode, each the mean over the episode's moves (``metrics.json``, one value per
#: episode, whatever ``planner.batch_episodes``; None where not measured: no search (greedy), or no Q network for the
#: first two):
#: ``greedy_agreement``, the fraction of moves on which the search played the Q network's greedy action at the
#: root (1 - the fraction it overrode the network); ``q_gap``, the network's own price of the moves played,
#: ``max_a Q(s, a) - Q(s, a_played)`` (0 where it agreed; near 0 where it played an action the network values
#: alike, such as MinAtar's actions that do the same in a game); and ``root_visit_share``, the share of the root's
#: visits that went to the action played (near 1: the search settled on it; near 1 / A: it barely told them apart).
DIAGNOSTICS = ("greedy_agreement", "q_gap", "root_visit_share")

log = logging.getLogger("torchrl_reg.recipes")


def load_q_network(checkpoint: str | Path, sim: Simulator, game: str) -> torch.nn.Module:
    """The online Q network of a ``recipes/m_dqn.py`` MinAtar run, checked against the simulator it will evaluate.

    The network is rebuilt from the run's ``config.yaml`` (beside ``checkpoint``) by the value-based
    loop's builder (:func:`~torchrl_reg.loops.value_based.q_network`) inside the policy that loop
    checkpoints (greedy actor, then epsilon-greedy exploration), whose ``load_state_dict`` (strict) takes
    the checkpoint's ``policy`` entry. Refuses a run on another game, a network that does not fit
    the simulator's observations and action count, and weights that are not finite.
    """
    checkpoint = Path(checkpoint)
    config_path = checkpoint.parent / "config.yaml"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} is missing: the checkpoint must sit in its m_dqn run directory")
    run_cfg = load_yaml_config(config_path)  # a regular file, bounded, without YAML aliases
    env, network, exploration = (run_cfg.get(group) for group in ("env", "network", "exploration"))
    if env is None or network is None or exploration is None:
        raise ValueError(
            f"{config_path} has no env, network or exploration group: evaluator.checkpoint must be a recipes/m_dqn.py run's"
        )
    if env.family != "minatar" or env.name.lower().replace("_", "") != game.lower().replace("_", ""):
        raise ValueError(f"evaluator.checkpoint was trained on {env.family} {env.name!r}, the task is MinAtar {game!r}")
    obs_shape, num_actions = tuple(sim.observation().shape), sim.num_actions
    net = q_network(run_cfg, obs_shape, num_actions)
    spec = Categorical(num_actions)
    actor = QValueActor(net, in_keys=["observation"], spec=spec)
    policy = TensorDictSequential(actor, ValueBasedHooks().exploration(spec, exploration))
    state = read_checkpoint(checkpoint)["policy"]  # checksum-verified, plain data only; another run's: read only
    try:
        check_finite_tensors("policy", state, policy.state_dict())  # a NaN weight would plan with NaN leaf values
    except ValueError as err:
        raise ValueError(f"evaluator.checkpoint {checkpoint} is refused: its {err}") from None
    try:
        policy.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(
            f"evaluator.checkpoint's policy does not fit a {network.kind} Q network with {num_actions} actions on "
            f"observations {obs_shape} (the MinAtar {game!r} simulator's): {err}"
        ) from None
    return net.eval()


class Episodes:
    """The finished episodes of a planning run: their returns, lengths and :data:`DIAGNOSTICS` (``None`` where
    not measured), the state its checkpoints hold (:class:`~torchrl_reg.run.RunState`, its step the number
    finished). A resume with more ``episodes`` than its checkpoint's run drops a last group that the earlier count
    cut short, to play it again in full (module docstring)."""

    def __init__(self, episodes: int, group: int, max_steps: int | None = None) -> None:
        self.episodes, self.group, self.max_steps = episodes, group, max_steps
        self.returns: list[float] = []
        self.lengths: list[int] = []
        self.diagnostics: dict[str, list[float | None]] = {key: [] for key in DIAGNOSTICS}
        # the group a stop interrupted (GroupProgress.plain_state), None when none
        self.in_progress: dict[str, Any] | None = None

    def in_progress_of(self, episodes: range) -> dict[str, Any] | None:
        """The saved group in progress if it is ``episodes`` (the next group), else None: a group saved under a smaller
        ``episodes`` count that cut it short is played again in full."""
        state = self.in_progress
        if state is None or list(state["episodes"]) != [episodes.start, episodes.stop]:
            return None
        return state

    @property
    def step(self) -> int:
        return len(self.returns)

    def group_in_progress(self) -> dict[str, Any]:
        """``{"group_in_progress": {episodes, move}}`` of the saved group in progress, ``{}`` when none."""
        state = self.in_progress
        return {} if state is None else {"group_in_progress": {"episodes": list(state["episodes"]), "move": state["move"]}}

    def progress(self) -> dict[str, Any]:
        # the moves of the finished episodes as frames: 0 until the first episode ends; the group in progress's move
        return {"frames": sum(self.lengths), "episodes": len(self.returns), **self.group_in_progress()}

    def add(self, total: float, steps: int, measured: Mapping[str, float | None]) -> None:
        self.returns.append(total)
        self.lengths.append(steps)
        for key in DIAGNOSTICS:
            self.diagnostics[key].append(measured[key])

    def state_dict(self) -> dict[str, Any]:
        state = {"returns": self.returns, "lengths": self.lengths, "diagnostics": self.diagnostics}
        return state if self.in_progress is None else {**state, "in_progress": self.in_progress}

    def checkpoint_bytes(self) -> int:
        """The most bytes a checkpoint of these episodes can hold: 64 MiB, and 64 MiB more per episode of a group in
        progress (its env's state and its search's streams), and 1 KiB per episode finished."""
        return (64 << 20) * (1 + self.group) + 1024 * self.episodes

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s entries, each checked as the episodes played make it (``ValueError`` naming
        the entry): finite returns, no more than ``episodes``, lengths of 1 to ``task.max_steps`` moves, diagnostics
        in range (:data:`DIAGNOSTICS`), and the group in progress that of the next episodes
        (:meth:`GroupProgress.check_plain_state`)."""
        played = len(check_numbers("returns", state["returns"]))
        if played > self.episodes:
            raise ValueError(f"returns holds {played} episodes, more than episodes={self.episodes} (which may only grow)")
        check_numbers("lengths", state["lengths"], 1, self.max_steps or math.inf, integer=True, length=played)
        diagnostics = state.get("diagnostics", {})
        for key in DIAGNOSTICS:
            values = diagnostics.get(key, [None] * played)
            if not isinstance(values, (list, tuple)):
                raise ValueError(f"diagnostics.{key} must be a list, got a {type(values).__name__}")
            high = math.inf if key == "q_gap" else 1.0  # q_gap: a difference of Q values; the others: fractions
            check_numbers(f"diagnostics.{key}", [0.0 if v is None else v for v in values], 0.0, high, length=played)
        if state.get("in_progress") is not None:
            GroupProgress.check_plain_state(state["in_progress"], self.group, played, self.max_steps)
        self.returns, self.lengths = list(state["returns"]), list(state["lengths"])
        # a checkpoint from before the diagnostics were recorded: its episodes have none
        self.diagnostics = {key: list(state.get("diagnostics", {}).get(key, [None] * len(self.returns))) for key in DIAGNOSTICS}
        self.in_progress = state.get("in_progress")
        if len(self.returns) < self.episodes:
            keep = len(self.returns) - len(self.returns) % self.group
            del self.returns[keep:], self.lengths[keep:]
            for values in self.diagnostics.values():
                del values[keep:]


@scoped_loop  # the process as it was found, on success and on failure: locks, signal handlers, loop flag
def plan(cfg: DictConfig) -> dict[str, Any]:
    """Play ``cfg.episodes`` episodes, searching before every move; returns the metrics (also in
    ``<run_dir>/metrics.json``). ``cfg`` is a validated ``recipes/tree_search.py`` config."""
    task, planner = cfg.task, cfg.planner
    first_sim, success_return = get_task(task.name).env(task, cfg.seed)
    q_net = None
    if cfg.evaluator.kind == "q_network" or planner.algorithm == "greedy":
        # The network is checked before the run directory is made: a refused one leaves nothing behind.
        q_net = load_q_network(cfg.evaluator.checkpoint, first_sim, task.game)
    finished = Episodes(cfg.episodes, planner.batch_episodes, task.max_steps)
    run = Run.open(cfg, finished)  # locked; a resume with another config is refused here
    run.start()  # resumes from the last finished episode (group), or the move a stop saved
    bar = run.progress_bar(cfg.episodes, initial=finished.step, desc=planner.algorithm, unit="episodes")
    group = planner.batch_episodes
    last_save = time.monotonic()

    def save_in_progress(state: dict[str, Any]) -> None:  # the group in progress, every checkpoint.interval_s
        nonlocal last_save
        finished.in_progress = state
        run.checkpoint()
        last_save = time.monotonic()

    def save_due() -> bool:
        return 0 < cfg.checkpoint.interval_s <= time.monotonic() - last_save

    for first in range(finished.step, cfg.episodes, group):
        episodes = range(first, min(first + group, cfg.episodes))
        played = play_episodes(cfg, episodes, q_net, bar, resume=finished.in_progress_of(episodes),
                               save=(save_due, save_in_progress))
        if isinstance(played, Stopped):  # between two moves: the group in progress saved with the finished ones
            finished.in_progress = played.state
            run.interrupt()
            break
        finished.in_progress = None
        for episode, (total, steps, measured) in enumerate(played, first):
            finished.add(total, steps, measured)
            log.info(f"episode {episode}: return {total:.4g} in {steps} moves")
            bar.update(1, episode_return=total)
            run.log_scalar("episode/return", total, step=episode + 1)
            run.log_scalar("episode/length", steps, step=episode + 1)
        if run.stop_due():
            break
        run.checkpoint()
        last_save = time.monotonic()
    returns, lengths = finished.returns, finished.lengths
    metrics = {
        "task": task.name,
        "algorithm": planner.algorithm,
        "model": planner.model,
        "futures": planner.futures,
        "simulations": planner.simulations,
        "returns": returns,
        "lengths": lengths,
        "episodes": len(returns),
        "moves": sum(lengths),
        "frames": sum(lengths),  # the run directory's contract counts progress in frames (moves here)
        **finished.diagnostics,
        **finished.group_in_progress(),  # a stopped run: the group it goes on with, as the running metrics.json has it
        "mean_return": float(np.mean(returns)) if returns else float("nan"),
        # the optimal return (D-chain) or reaching the goal (FrozenLake); games have no such return
        "success_rate": (
            None if success_return is None or not returns
            else float(np.mean([r >= success_return - 1e-9 for r in returns]))
        ),
    }
    return run.finish(
        metrics, curve_file="returns.png" if returns else None, train_frames=list(range(len(returns))),
        train_returns=returns, title=f"{planner.algorithm} on {task.name}, {model_label(planner)}", window=10, xlabel="episode",
        train_label="planner episode",
    )


def model_label(planner: Any) -> str:
    """The model a planner planned in, for its figure: ``sampled model``, ``determinized model, 1 future``,
    ``ensemble model, 4 futures`` (the futures of the models that plan in sampled futures)."""
    return get_model(planner.model).label(planner.futures)


Played = list[tuple[float, int, dict[str, float | None]]]


class Stopped:
    """What :func:`play_episodes` returns when a stop was requested between two moves: ``state``, the group in
    progress as plain data (:meth:`GroupProgress.plain_state`: its envs, the planner's random streams and the moves
    played), or None where an env has no plain state (then the group is played again from its start)."""

    def __init__(self, state: dict[str, Any] | None) -> None:
        self.state = state


class GroupProgress:
    """The moves a group of episodes has played so far: per episode the return, the moves and the sums of the
    :data:`DIAGNOSTICS` over its moves, the episodes still in play, and the move's number."""

    def __init__(self, size: int) -> None:
        self.totals, self.steps = [0.0] * size, [0] * size
        self.agreed, self.gaps, self.shares = [0] * size, [0.0] * size, [0.0] * size
        self.live, self.move = list(range(size)), 0

    def plain_state(self, episodes: range, sims: list[Simulator], planner: list[Any]) -> dict[str, Any] | None:
        """The group in progress as plain data: its episodes, the sums above, each env's ``plain_state()`` and each
        search's ``rng_state()``; None where an env or a search has none."""
        try:
            envs = [sim.plain_state() for sim in sims]
            streams = [search.rng_state() for search in planner]
        except (AttributeError, TypeError) as err:
            log.warning(f"the episodes {episodes.start}-{episodes.stop - 1} in progress cannot be saved ({err}): the "
                        "resume plays them again from their start")
            return None
        sums = {key: list(getattr(self, key)) for key in ("totals", "steps", "agreed", "gaps", "shares", "live")}
        return {"episodes": [episodes.start, episodes.stop], "move": self.move, **sums, "envs": envs, "planner": streams}

    @staticmethod
    def check_plain_state(state: Mapping[str, Any], group: int, finished: int, max_steps: int | None = None) -> None:
        """Refuse a saved group in progress that no run plays (``ValueError`` naming the entry): its ``episodes``
        ``[start, stop]`` the next group after the ``finished`` episodes (``start == finished``, a multiple of
        ``group``, at most ``group`` episodes), ``move`` in ``[0, max_steps]``, per episode the moves played (at
        most ``move``; exactly ``move`` for those in play), finite returns, agreements at most the moves, non-negative
        finite gaps, visit shares in ``[0, moves]``, the episodes in play in increasing order, and one env each."""
        first_last = state["episodes"]
        if (not isinstance(first_last, (list, tuple)) or len(first_last) != 2
                or any(isinstance(e, bool) or not isinstance(e, int) for e in first_last)):
            raise ValueError(f"in_progress.episodes must be [start, stop], two integers, got {first_last!r}")
        start, stop = first_last
        if start != finished or start % group or not start < stop <= start + group:
            raise ValueError(
                f"in_progress.episodes must be the group after the {finished} finished episodes, [{finished}, at most "
                f"{finished + group}] (planner.batch_episodes={group}), got {list(first_last)}")
        size = stop - start
        move = state["move"]
        if isinstance(move, bool) or not isinstance(move, int) or not 0 <= move <= (max_steps or math.inf):
            raise ValueError(f"in_progress.move must be an integer in [0, {max_steps or 'inf'}] (the moves played), got {move!r}")
        steps = check_numbers("in_progress.steps", state["steps"], 0, move, integer=True, length=size)
        check_numbers("in_progress.totals", state["totals"], length=size)
        live = check_numbers("in_progress.live", state["live"], 0, size - 1, integer=True)
        if live != sorted(set(live)) or any(steps[i] != move for i in live):
            raise ValueError(f"in_progress.live must list the episodes in play in increasing order, each with "
                             f"steps == move == {move}, got live {live} and steps {steps}")
        check_numbers("in_progress.gaps", state["gaps"], 0.0, length=size)
        for key, integer in (("agreed", True), ("shares", False)):
            values = check_numbers(f"in_progress.{key}", state[key], 0, integer=integer, length=size)
            if any(value > n * (1 + 1e-9) for value, n in zip(values, steps)):  # a share is at most 1 a move
                raise ValueError(f"in_progress.{key} must be at most each episode's moves {steps}, got {values}")
        if not isinstance(state["envs"], (list, tuple)) or len(state["envs"]) != size:
            raise ValueError(f"in_progress.envs must hold one env state per episode of the group ({size})")

    def load_plain_state(self, state: dict[str, Any], sims: list[Simulator], planner: list[Any]) -> None:
        """Inverse of :meth:`plain_state` (into the envs and searches of the same group, built afresh)."""
        if len(state["envs"]) != len(sims) or len(state["planner"]) != len(planner):
            raise ValueError(
                f"the saved group has {len(state['envs'])} envs and {len(state['planner'])} searches, this one "
                f"{len(sims)} and {len(planner)}"
            )
        for sim, env in zip(sims, state["envs"]):
            sim.load_plain_state(env)
        for search, streams in zip(planner, state["planner"]):
            search.load_rng_state(streams)
        for key in ("totals", "steps", "agreed", "gaps", "shares", "live"):
            setattr(self, key, list(state[key]))
        self.move = int(state["move"])


def play_episodes(
    cfg: DictConfig, episodes: range, q_net: torch.nn.Module | None, bar: ProgressBar, resume: dict[str, Any] | None = None,
    save: tuple[Callable[[], bool], Callable[[dict[str, Any]], None]] | None = None,
) -> Played | Stopped:
    """``episodes`` played at once, each in its own env (the task's ``env``, seeded ``seed + episode``): at every move the
    planner chooses an action for each episode still in play, then each plays it; ``[(return, moves, diagnostics)]``
    in episode order (:data:`DIAGNOSTICS`, each the mean over the episode's moves), or :class:`Stopped` when a stop
    was requested before all ended (with the group's state, which ``resume`` takes to go on from that move exactly
    as if uninterrupted). ``save = (due, write)``: between two moves where ``due()``, ``write`` is given the group's
    state as a stop would save it (not again once it could not be taken: an env without plain state). Several
    episodes are searched by one ``BatchedTreeSearch`` over their trees where it plans in ``planner.model`` on the task (:meth:`~torchrl_reg.planning.tasks.Task.refusal`), else each by its own
    ``TreeSearch``, as one episode is: the model is ``planner.model`` either way."""
    task = cfg.task
    sims = [get_task(task.name).env(task, cfg.seed + episode)[0] for episode in episodes]
    choose, planner = _planner(cfg, episodes, sims, q_net)
    group = GroupProgress(len(sims))
    if resume is not None:
        group.load_plain_state(resume, sims, planner)
    totals, steps, agreed, gaps, shares, live = group.totals, group.steps, group.agreed, group.gaps, group.shares, group.live
    while live:
        if stop_requested():
            return Stopped(group.plain_state(episodes, sims, planner))
        if save is not None and group.move > 0 and save[0]():
            state = group.plain_state(episodes, sims, planner)
            if state is None:
                save = None
            else:
                save[1](state)
        actions, share, q = choose(live, group.move)
        for k, (i, action) in enumerate(zip(list(live), actions)):
            if share is not None:
                shares[i] += share[k]
            if q is not None:  # the network's own choice at the root: the move the search overrode or kept
                agreed[i] += int(int(q[k].argmax()) == action)
                gaps[i] += float(q[k].max() - q[k, action])
            reward, done = sims[i].step(action)
            totals[i], steps[i] = totals[i] + reward, steps[i] + 1
            if done or steps[i] >= task.max_steps:
                live.remove(i)
        group.move += 1
        bar.update(0, move=group.move, in_play=len(live))  # the bar counts episodes: plan() adds each finished one
    searched = cfg.planner.algorithm != "greedy"
    measured = q_net is not None and searched
    return [
        (total, n, {"greedy_agreement": agreed[i] / n if measured else None,
                    "q_gap": gaps[i] / n if measured else None, "root_visit_share": shares[i] / n if searched else None})
        for i, (total, n) in enumerate(zip(totals, steps))
    ]


Choose = Callable[[list[int], int], "tuple[list[int], list[float] | None, torch.Tensor | None]"]


def _planner(cfg: DictConfig, episodes: range, sims: list[Simulator], q_net: torch.nn.Module | None) -> tuple[Choose, list[Any]]:
    """``choose(live, move) -> (actions, root visit shares, the network's Q at the roots)`` for the episodes ``live``
    (indices into ``sims``) at ``move``: the network's argmax (``greedy``: no shares, no Q), one ``TreeSearch`` per
    episode (seeded ``seed + episode``; its model the task's :meth:`~torchrl_reg.planning.tasks.Task.simulator` of
    ``(seed + episode, move)``, future ``k`` of an ensemble with row ``k``: an episode plays as it would alone), or
    one ``BatchedTreeSearch`` over the group (seeded ``seed + `` its first episode; the task's tensor model and its
    :meth:`~torchrl_reg.planning.tasks.Task.roots` of ``(that seed, move)``, an ensemble's futures as consecutive rows:
    row ``b K + k`` is future ``k`` of the ``b``-th episode in play); and the searches whose random streams a stopped
    group saves (``rng_state``). The task and the model are resolved once, here; one evaluator type serves both
    searches."""
    planner, evaluator_cfg = cfg.planner, cfg.evaluator
    task, model = get_task(cfg.task.name), get_model(planner.model)
    futures = model.futures(planner.futures)
    each = split_simulations(planner.simulations, futures)  # the simulations of one future
    # algorithm, its knobs, recommend, q_init: the planner config's; gamma passed on its own (arguments_of leaves it
    # out), so the tree and the rollouts discount alike (make_search refuses a disagreement)
    knobs = arguments_of(make_search, planner)

    def evaluator(seed: int) -> QNetworkEvaluator | RandomRollout:
        if q_net is not None:
            return QNetworkEvaluator(q_net, num_actions=sims[0].num_actions, tau=evaluator_cfg.prior_tau,
                                     value=evaluator_cfg.value, init=evaluator_cfg.init)
        return RandomRollout(max_steps=evaluator_cfg.rollout_steps, gamma=planner.gamma, seed=seed)

    if len(sims) == 1 or planner.algorithm == "greedy" or task.refusal(model, batched=True) is not None:
        leaves = [evaluator(cfg.seed + e) for e in episodes]

        def q_at(live: list[int]) -> torch.Tensor | None:
            return None if q_net is None else torch.stack([
                torch.as_tensor(leaves[i].q_values(sims[i].observation())) for i in live])

        if planner.algorithm == "greedy":
            return (lambda live, move: ([int(row.argmax()) for row in q_at(live)], None, None)), []
        searches = [
            make_search(simulator=sim, evaluator=leaf, seed=cfg.seed + e, gamma=planner.gamma, **knobs)
            for sim, leaf, e in zip(sims, leaves, episodes)
        ]

        def choose_one(live: list[int], move: int) -> tuple[list[int], list[float], torch.Tensor | None]:
            actions, share = [], []
            for i in live:
                roots = []
                for k in range(futures):
                    simulator = task.simulator(sims[i], model, (cfg.seed + episodes[i], move), future=k)
                    action = searches[i].search(each, simulator=simulator)
                    roots.append((torch.as_tensor(searches[i].tree.visits[0]), torch.as_tensor(searches[i].root_values())))
                if futures > 1:
                    played, total, _ = combine_futures(*(torch.stack(x)[None] for x in zip(*roots)), searches[i].recommend)
                    action, visits = int(played[0]), total[0]
                else:
                    visits = roots[0][0]
                actions.append(action)
                share.append(float(visits[action]) / max(int(visits.sum()), 1))
            return actions, share, q_at(live)

        return choose_one, searches
    seed = cfg.seed + episodes.start  # the group's: its search, rollouts and MinAtar streams
    tensor_model = task.tensor_model(cfg.task, sims[0], seed, model)
    leaf = evaluator(seed)
    search = make_search(simulator=tensor_model, evaluator=leaf, seed=seed, gamma=planner.gamma, batched=True, **knobs)

    def choose_batch(live: list[int], move: int) -> tuple[list[int], list[float], torch.Tensor | None]:
        root = task.roots(tensor_model, [sims[i] for i in live for _ in range(futures)], (seed, move))
        played = search.search(root, each)
        visits = search.tree.visits[:, 0]  # [B, A] root visit counts
        if futures > 1:  # [B K, A] -> per episode
            rows = (len(live), futures, visits.shape[-1])
            played, visits, _ = combine_futures(visits.view(rows), search.root_values().view(rows), search.recommend)
        share = (visits.gather(1, played[:, None])[:, 0] / visits.sum(-1).clamp(min=1)).tolist()
        q = None
        if q_net is not None:
            with torch.no_grad():
                q = leaf.forward(tensor_model.observation(root[::futures])).cpu()
        return played.tolist(), share, q

    return choose_batch, [search]
