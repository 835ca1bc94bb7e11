"""The planning loop: search before every move, act, repeat (no training), ``recipes/tree_search.py``.

Read :func:`plan` top to bottom: each episode builds its task (:func:`~torchrl_reg.planning.make_task`,
seeded ``seed + episode``), then at every move runs ``planner.simulations`` simulations of the search
(:func:`~torchrl_reg.planning.make_search`: MENTS, Xiao et al., "Maximum Entropy Monte-Carlo Planning",
NeurIPS 2019; BTS and DENTS, Painter et al., "Monte Carlo Tree Search with Boltzmann Exploration",
NeurIPS 2023, arXiv:2404.07732; UCT) from the env's current state, plays the recommended action in the
env and goes on until the episode ends or ``task.max_steps`` moves. ``planner.algorithm=greedy`` plays
the Q network's argmax without searching (the baseline of the searches that use that network).

Leaf values come from random rollouts or from a Q network trained by ``recipes/m_dqn.py``
(:func:`load_q_network`: rebuilt from its run's ``config.yaml`` by the value-based loop's network builder,
its weights loaded with ``load_state_dict``).

The run directory keeps the contract of :mod:`torchrl_reg.run`, with episodes where the training loops
have collector batches: it is locked (:func:`~torchrl_reg.run.open_run_dir`), a resume with a config that
differs from the stored one is refused (``episodes`` may only grow), and after every finished episode
``checkpoint.pt`` is written atomically with what a resume needs (the finished episodes' returns and
lengths, the RNG states, the elapsed time; the next episode is the number finished). A resumed run goes
on from the last finished episode: each episode's env, rollouts and search draw from their own seed, so
its returns are those of the uninterrupted run. CSV rows ``episode/return`` and ``episode/length``
(step: the episode's number, from 1), ``metrics.json`` (``status: running`` while it runs) and
``returns.png`` (return per episode). A stop (a signal, :func:`~torchrl_reg.run.request_stop`, or
:func:`~torchrl_reg.run.request_stop_at` with a number of finished episodes) is acted on between two
moves: the episode in progress is dropped, the checkpoint of the finished ones written, and
``metrics["status"]`` is ``"interrupted"`` (exit status 75 from the command line).

``planner.batch_episodes = K > 1`` plays the episodes in groups of K at once (:func:`play_batch`): one
:class:`~torchrl_reg.planning.BatchedTreeSearch` per group searches the trees of all its episodes still in
play at every move (B = those episodes; a finished episode leaves the batch), over the task's tensor model
(:func:`~torchrl_reg.planning.make_tensor_task`: D-chain, deterministic FrozenLake, MinAtar by emulator
snapshots with fresh random streams). Groups start at multiples of K; a group's search, rollouts and MinAtar
streams draw from ``seed + `` its first episode, its envs from ``seed + i`` as above. The trees of a group
share the search's random streams, so an episode's return depends on its group, and the returns differ from
those of ``K = 1`` (the single-tree search). The checkpoint is written after every finished group, a stop
drops the group in progress, and a resume goes on from the last finished group; when ``episodes`` grew, a
last group that was cut short by the earlier count is played again in full, so a resumed run's returns are
always those of the uninterrupted run.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tensordict.nn import TensorDictSequential
from torchrl.data import Categorical
from torchrl.modules import QValueActor

from torchrl_reg.configs import arguments_of
from torchrl_reg.loops.hooks import ValueBasedHooks
from torchrl_reg.loops.value_based import q_network
from torchrl_reg.planning import (
    QNetworkEvaluator,
    RandomRollout,
    Simulator,
    TensorQNetworkEvaluator,
    TensorRandomRollout,
    make_batched_search,
    make_search,
    make_task,
    make_tensor_task,
    tensor_roots,
)
from torchrl_reg.run import (
    CHECKPOINT_NAME,
    CONFIG_DIGEST_KEY,
    clear_stop,
    has_checkpoint,
    install_stop_signal_handlers,
    load_checkpoint,
    make_logger,
    open_run_dir,
    plot_learning_curve,
    read_checkpoint,
    rng_state,
    save_checkpoint,
    seed_everything,
    set_rng_state,
    stop_requested,
    truncate_csv_logs,
    write_json,
)
from torchrl_reg.run.logs import sync_csv_logs
from torchrl_reg.run.progress import ProgressBar
from torchrl_reg.run.rundir import config_digest, release_run_dir, released_on_error, write_config
from torchrl_reg.run.stop import set_loop_active

__all__ = ["DIAGNOSTICS", "load_q_network", "plan", "play_batch", "play_episode"]

#: What a batched search records per episode, each the mean over the episode's moves (``metrics.json``, one value
#: per episode; None for episodes played without it: one tree at a time, or no Q network for the agreement):
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
    the checkpoint's ``policy`` entry. Refuses a run on another game, and a network that does not fit
    the simulator's observations and action count.
    """
    checkpoint = Path(checkpoint)
    config_path = checkpoint.parent / "config.yaml"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} is missing: the checkpoint must sit in its m_dqn run directory")
    run_cfg = OmegaConf.load(config_path)
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
        policy.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(
            f"evaluator.checkpoint's policy does not fit a {network.kind} Q network with {num_actions} actions on "
            f"observations {obs_shape} (the MinAtar {game!r} simulator's): {err}"
        ) from None
    return net.eval()


def plan(cfg: DictConfig) -> dict[str, Any]:
    """Play ``cfg.episodes`` episodes, searching before every move; returns the metrics (also in
    ``<run_dir>/metrics.json``). ``cfg`` is a validated ``recipes/tree_search.py`` config."""
    task, planner = cfg.task, cfg.planner
    first_sim, success_return = make_task(task, cfg.seed)
    q_net = None
    if cfg.evaluator.kind == "q_network" or planner.algorithm == "greedy":
        # The network is checked before the run directory is made: a refused one leaves nothing behind.
        q_net = load_q_network(cfg.evaluator.checkpoint, first_sim, task.game)
    run_dir = open_run_dir(cfg)  # locked; a resume with another config is refused here
    install_stop_signal_handlers()
    torch.set_num_threads(cfg.num_threads)
    seed_everything(cfg.seed)
    with released_on_error(run_dir):
        logger = make_logger(cfg.logger, run_dir, exp_name=run_dir.name)
        returns: list[float] = []
        lengths: list[int] = []
        # per episode (None where not measured): DIAGNOSTICS
        diagnostics: dict[str, list[float | None]] = {key: [] for key in DIAGNOSTICS}
        elapsed_before = 0.0
        group = planner.batch_episodes
        if has_checkpoint(run_dir):
            state = load_checkpoint(run_dir / CHECKPOINT_NAME, config_digest=config_digest(cfg))
            returns, lengths, elapsed_before = list(state["returns"]), list(state["lengths"]), state["elapsed"]
            # a checkpoint from before the diagnostics were recorded: its episodes have none
            diagnostics = {key: list(state.get("diagnostics", {}).get(key, [None] * len(returns))) for key in DIAGNOSTICS}
            set_rng_state(state["rng"])
            if len(returns) < cfg.episodes:
                # a last group cut short by a smaller earlier `episodes` is played again in full (module docstring)
                keep = len(returns) - len(returns) % group
                del returns[keep:], lengths[keep:]
                for values in diagnostics.values():
                    del values[keep:]
        truncate_csv_logs(run_dir, len(returns) if has_checkpoint(run_dir) else None)
    t0 = time.perf_counter()

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - t0

    def running_metrics() -> None:
        # status running, with the moves of the finished episodes as frames: a directory whose checkpoints
        # were deleted is then refused on restart, one killed before its first episode starts over
        write_json(run_dir / "metrics.json", {
            "status": "running", "frames": sum(lengths), "episodes": len(returns), "seed": cfg.seed, "run_dir": str(run_dir),
        })

    def checkpoint() -> None:
        if logger is not None:
            sync_csv_logs(logger)  # the rows of the finished episodes are on disk before the checkpoint is
        save_checkpoint(run_dir / CHECKPOINT_NAME, {
            "returns": returns, "lengths": lengths, "rng": rng_state(), "elapsed": elapsed(), "diagnostics": diagnostics,
            CONFIG_DIGEST_KEY: config_digest(cfg),
        })
        running_metrics()

    running_metrics()
    write_config(run_dir, cfg)
    set_loop_active(True)  # from here on, Ctrl-C checkpoints and stops
    bar = ProgressBar(cfg.episodes, initial=len(returns), enabled=cfg.logger.progress_bar, desc=planner.algorithm, unit="episodes")
    status = "completed"
    for first in range(len(returns), cfg.episodes, group):
        if group == 1:
            one = play_episode(cfg, cfg.seed + first, q_net, bar)
            played = None if one is None else [(*one, dict.fromkeys(DIAGNOSTICS))]
        else:
            played = play_batch(cfg, range(first, min(first + group, cfg.episodes)), q_net, bar)
        if played is None:  # stopped between two moves: the episode (group) in progress is dropped
            status = "interrupted"
            break
        for episode, (total, steps, measured) in enumerate(played, first):
            returns.append(total)
            lengths.append(steps)
            for key in DIAGNOSTICS:
                diagnostics[key].append(measured[key])
            log.info(f"episode {episode}: return {total:.4g} in {steps} moves")
            bar.update(1, episode_return=total)
            if logger is not None:
                logger.log_scalar("episode/return", total, step=episode + 1)
                logger.log_scalar("episode/length", steps, step=episode + 1)
        checkpoint()
        if stop_requested(len(returns)):
            status = "interrupted"
            break
    if status == "interrupted":
        checkpoint()
        clear_stop()
    bar.close()
    set_loop_active(False)
    wall_time = elapsed()
    metrics = {
        "status": status,
        "task": task.name,
        "algorithm": planner.algorithm,
        "simulations": planner.simulations,
        "returns": returns,
        "lengths": lengths,
        "episodes": len(returns),
        "moves": sum(lengths),
        "frames": sum(lengths),  # the run directory's contract counts progress in frames (moves here)
        **diagnostics,
        "mean_return": float(np.mean(returns)) if returns else float("nan"),
        # the optimal return (D-chain) or reaching the goal (FrozenLake); games have no such return
        "success_rate": (
            None if success_return is None or not returns
            else float(np.mean([r >= success_return - 1e-9 for r in returns]))
        ),
        "wall_time_s": wall_time,
        "steps_per_s": sum(lengths) / wall_time if wall_time > 0 else float("nan"),
        "seed": cfg.seed,
        "run_dir": str(run_dir),
    }
    write_json(run_dir / "metrics.json", metrics)
    if returns:
        plot_learning_curve(
            run_dir / "returns.png", list(range(len(returns))), returns, title=f"{planner.algorithm} on {task.name}",
            window=min(10, len(returns)), xlabel="episode", train_label="planner episode",
        )
    release_run_dir(run_dir)
    return metrics


def play_episode(cfg: DictConfig, seed: int, q_net: torch.nn.Module | None, bar: ProgressBar) -> tuple[float, int] | None:
    """One episode of at most ``task.max_steps`` moves, each chosen by a search from the env's current state;
    ``(return, moves)``, or ``None`` when a stop was requested before it ended."""
    task, planner = cfg.task, cfg.planner
    sim, _ = make_task(task, seed)
    if q_net is not None:
        evaluator = QNetworkEvaluator(
            q_net, num_actions=sim.num_actions, tau=cfg.evaluator.prior_tau, value=cfg.evaluator.value, init=cfg.evaluator.init
        )
    else:
        evaluator = RandomRollout(max_steps=cfg.evaluator.rollout_steps, gamma=planner.gamma, seed=seed)
    search = None
    if planner.algorithm != "greedy":
        # algorithm, its knobs, recommend, q_init: the planner config's; gamma passed on its own (arguments_of
        # leaves it out), so the tree and the rollouts discount alike (make_search refuses a disagreement)
        search = make_search(simulator=sim, evaluator=evaluator, seed=seed, gamma=planner.gamma, **arguments_of(make_search, planner))
    total, steps = 0.0, 0
    while steps < task.max_steps:
        if stop_requested():
            return None
        if search is None:
            action = int(np.argmax(evaluator.q_values(sim.observation())))
        else:
            action = search.search(planner.simulations)
        reward, done = sim.step(action)
        total, steps = total + reward, steps + 1
        bar.update(0, move=steps, return_so_far=total)  # the bar counts episodes: plan() adds each finished one
        if done:
            break
    return total, steps


def play_batch(
    cfg: DictConfig, episodes: range, q_net: torch.nn.Module | None, bar: ProgressBar
) -> list[tuple[float, int, dict[str, float | None]]] | None:
    """``episodes`` played at once: at every move one batched search over the episodes still in play, then each
    plays its tree's recommended action in its own env; ``[(return, moves, diagnostics)]`` in episode order
    (:data:`DIAGNOSTICS`, each the mean over the episode's moves), or ``None`` when a stop was requested
    before all ended."""
    task, planner = cfg.task, cfg.planner
    sims = [make_task(task, cfg.seed + episode)[0] for episode in episodes]
    seed = cfg.seed + episodes.start  # the group's: its search, rollouts and MinAtar streams
    model = make_tensor_task(task, sims[0], seed)
    if q_net is not None:
        evaluator = TensorQNetworkEvaluator(
            q_net, num_actions=model.num_actions, tau=cfg.evaluator.prior_tau, value=cfg.evaluator.value, init=cfg.evaluator.init
        )
    else:
        evaluator = TensorRandomRollout(max_steps=cfg.evaluator.rollout_steps, seed=seed)
    # the arguments of play_episode's search; the batched search takes the rollouts' discount from its own gamma
    search = make_batched_search(
        simulator=model, evaluator=evaluator, seed=seed, gamma=planner.gamma, **arguments_of(make_batched_search, planner)
    )
    totals, steps = [0.0] * len(sims), [0] * len(sims)
    agreed, gaps, shares = [0] * len(sims), [0.0] * len(sims), [0.0] * len(sims)  # sums over each episode's moves
    live, move = list(range(len(sims))), 0
    while live:
        if stop_requested():
            return None
        root = tensor_roots(model, [sims[i] for i in live], (seed, move))
        played = search.search(root, planner.simulations)
        visits = search.tree.visits[:, 0]  # [B, A] root visit counts
        share = (visits.gather(1, played[:, None])[:, 0] / visits.sum(-1).clamp(min=1)).tolist()
        greedy = gap = None
        if q_net is not None:  # the leaf network's own choice at the root: the move the search overrode or kept
            with torch.no_grad():
                q = evaluator.q_network(model.observation(root).to(evaluator.device)).double()
            chosen = played.to(q.device)
            greedy = (q.argmax(-1) == chosen).tolist()
            gap = (q.amax(-1) - q.gather(1, chosen[:, None])[:, 0]).tolist()
        actions = played.tolist()
        for k, (i, action) in enumerate(zip(list(live), actions)):
            shares[i] += share[k]
            if greedy is not None:
                agreed[i] += int(greedy[k])
                gaps[i] += gap[k]
            reward, done = sims[i].step(action)
            totals[i], steps[i] = totals[i] + reward, steps[i] + 1
            if done or steps[i] >= task.max_steps:
                live.remove(i)
        move += 1
        bar.update(0, move=move, in_play=len(live))  # the bar counts episodes: plan() adds each finished one
    return [
        (total, n, {"greedy_agreement": agreed[i] / n if q_net is not None else None,
                    "q_gap": gaps[i] / n if q_net is not None else None, "root_visit_share": shares[i] / n})
        for i, (total, n) in enumerate(zip(totals, steps))
    ]
