"""Planning with MENTS, DENTS, BTS or UCT: search before every move, act, repeat (no training).

    python recipes/ments.py                                               # MENTS on the D-chain (R_f = 0.5)
    python recipes/ments.py planner.algorithm=dents task.final_reward=1.0
    python recipes/ments.py ments_preset=frozenlake planner.simulations=2000
    python recipes/ments.py ments_preset=minatar evaluator.checkpoint=runs/m_dqn/.../checkpoint.pt
    python recipes/ments.py ments_preset=atari task.game=pong

Searches: :func:`torchrl_reg.planning.make_search` (Xiao et al., Maximum Entropy Monte-Carlo
Planning, NeurIPS 2019; Painter et al., Monte Carlo Tree Search with Boltzmann Exploration,
NeurIPS 2023, arXiv:2404.07732). ``planner.algorithm=greedy`` acts by the Q network's argmax
without searching (the baseline the searches with that network are compared to).

Tasks (``ments_preset=``): ``dchain`` (default), ``frozenlake`` (8x8, deterministic), ``minatar``
(a Q network trained by ``recipes/m_dqn.py`` gives the leaf values and the log-prior initial
action values: ``evaluator.checkpoint`` is that run's ``checkpoint.pt``, its ``config.yaml``
beside it) and ``atari`` (random rollouts). Each episode searches in the env it acts in: the
root is the env's current state, restored after the search. Writes ``config.yaml``,
``metrics.json`` (per-episode returns, success) and ``returns.png`` (return per episode) to the run
directory; a bar counts the moves (``progress_bar=false`` hides it) and each episode's return is
logged (under Hydra also to the run's ``ments.log``).
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from torchrl_reg.configs import arguments_of, default_of, register_schema, structured
from torchrl_reg.envs import MINATAR_GAMES
from torchrl_reg.modules.q_networks import make_q_network
from torchrl_reg.planning import (
    ALGORITHMS,
    KNOB_DEFAULTS,
    RECOMMENDATIONS,
    ALESimulator,
    DChain,
    FrozenLakeSimulator,
    MinAtarSimulator,
    QNetworkEvaluator,
    RandomRollout,
    Simulator,
    algorithm_knobs,
    make_search,
)
from torchrl_reg.run import load_checkpoint
from torchrl_reg.run.plots import plot_learning_curve
from torchrl_reg.run.process import seed_everything
from torchrl_reg.run.progress import ProgressBar
from torchrl_reg.run.rundir import resolve_run_dir
from torchrl_reg.validation import check_choice, check_count, check_range

TASKS = ("dchain", "frozenlake", "minatar", "atari")
PLANNERS = ALGORITHMS + ("greedy",)
EVALUATORS = ("rollout", "q_network")


@dataclass
class TaskConfig:
    """The env: ``name`` one of :data:`TASKS`; ``length`` / ``final_reward`` for the D-chain, ``game`` for MinAtar / Atari."""

    name: str = "dchain"
    length: int = 10
    final_reward: float = 0.5
    map_name: str = "8x8"
    game: str = "breakout"
    sticky_action_prob: float = 0.0
    frame_skip: int = 4
    max_steps: int = 200


@dataclass
class PlannerConfig:
    """The search (:func:`torchrl_reg.planning.make_search`'s arguments) and its budget per move."""

    algorithm: str = "ments"
    simulations: int = 200
    # each algorithm reads its own knobs (torchrl_reg.planning.KNOBS); unset ones take KNOB_DEFAULTS and
    # a set knob the algorithm does not read is refused
    tau: Optional[float] = None
    eps: Optional[float] = None
    alpha: Optional[float] = None
    beta_0: Optional[float] = None
    c: Optional[float] = None
    recommend: Optional[str] = default_of(make_search, "recommend")
    gamma: float = default_of(make_search, "gamma")
    q_init: float = default_of(make_search, "q_init")


@dataclass
class EvaluatorConfig:
    """Leaf evaluation: ``rollout`` (random, ``rollout_steps``) or ``q_network`` (from an M-DQN ``checkpoint``)."""

    kind: str = "rollout"
    rollout_steps: int = default_of(RandomRollout, "max_steps")
    checkpoint: Optional[str] = None
    prior_tau: float = default_of(QNetworkEvaluator, "tau")
    value: str = default_of(QNetworkEvaluator, "value")
    init: str = default_of(QNetworkEvaluator, "init")


@dataclass
class MentsConfig:
    seed: int = 0
    episodes: int = 1
    run_dir: Optional[str] = None
    num_threads: int = 1
    # a tqdm bar over moves (the searches of a long MinAtar episode take minutes)
    progress_bar: bool = True
    task: TaskConfig = field(default_factory=TaskConfig)
    planner: PlannerConfig = field(default_factory=PlannerConfig)
    evaluator: EvaluatorConfig = field(default_factory=EvaluatorConfig)


register_schema("ments", MentsConfig)


def validate(cfg: DictConfig | dict) -> DictConfig:
    """Schema and range checks, all before anything is built."""
    cfg = structured(cfg, MentsConfig)
    check_count("episodes", cfg.episodes)
    check_count("num_threads", cfg.num_threads)
    task, planner, evaluator = cfg.task, cfg.planner, cfg.evaluator
    check_choice("task.name", task.name, TASKS)
    check_count("task.max_steps", task.max_steps)
    if task.name == "dchain":
        check_count("task.length", task.length, 2)
        check_range("task.final_reward", task.final_reward)
    if task.name == "minatar":
        check_choice("task.game", task.game.lower(), [g.lower() for g in MINATAR_GAMES])
    if task.name in ("minatar", "atari"):
        check_range("task.sticky_action_prob", task.sticky_action_prob, 0.0, 1.0)
    check_choice("planner.algorithm", planner.algorithm, PLANNERS)
    check_count("planner.simulations", planner.simulations)
    if planner.algorithm in ALGORITHMS:
        knobs = algorithm_knobs(planner.algorithm, {k: planner[k] for k in KNOB_DEFAULTS}, prefix="planner.")
        for name, value in knobs.items():
            check_range(f"planner.{name}", value, 0.0, low_inclusive=name not in ("tau", "alpha"))
    check_range("planner.gamma", planner.gamma, 0.0, 1.0)
    check_range("planner.q_init", planner.q_init)
    if planner.recommend is not None:
        check_choice("planner.recommend", planner.recommend, RECOMMENDATIONS)
    check_choice("evaluator.kind", evaluator.kind, EVALUATORS)
    if evaluator.kind == "q_network" or planner.algorithm == "greedy":
        if task.name != "minatar":
            raise ValueError(f"a Q network (evaluator.kind={evaluator.kind!r}, planner.algorithm={planner.algorithm!r}) needs task.name='minatar', got {task.name!r}")
        if not evaluator.checkpoint:
            raise ValueError("evaluator.checkpoint must name an M-DQN run's checkpoint.pt (recipes/m_dqn.py env=minatar)")
        if not Path(evaluator.checkpoint).is_file():
            raise FileNotFoundError(f"evaluator.checkpoint={evaluator.checkpoint!r} is not a file")
        check_range("evaluator.prior_tau", evaluator.prior_tau, 0.0, low_inclusive=False)
        check_choice("evaluator.value", evaluator.value, QNetworkEvaluator.VALUES)
        check_choice("evaluator.init", evaluator.init, QNetworkEvaluator.INITS)
    else:
        check_count("evaluator.rollout_steps", evaluator.rollout_steps, 0)
    return cfg


def make_task(cfg: DictConfig, seed: int) -> tuple[Simulator, float | None]:
    """The env to act in, as a simulator, and the return that counts as success (``None``: no such return)."""
    if cfg.name == "dchain":
        chain = DChain(cfg.length, cfg.final_reward)
        return chain, max((cfg.length - 1) / cfg.length, cfg.final_reward)
    if cfg.name == "frozenlake":
        import gymnasium as gym

        env = gym.make("FrozenLake-v1", map_name=cfg.map_name, is_slippery=False)
        env.reset(seed=seed)
        return FrozenLakeSimulator(env), 1.0
    if cfg.name == "minatar":
        import minatar

        game = {g.lower(): g for g in MINATAR_GAMES}[cfg.game.lower()]
        module = {"SpaceInvaders": "space_invaders"}.get(game, game.lower())
        env = minatar.Environment(module, sticky_action_prob=cfg.sticky_action_prob)
        env.seed(seed)
        env.reset()
        # the search must not foresee the real step's spawns and sticky actions
        return MinAtarSimulator(env, include_rng=False), None
    from ale_py import ALEInterface, roms

    ale = ALEInterface()
    ale.setInt("random_seed", seed)
    ale.setFloat("repeat_action_probability", cfg.sticky_action_prob)
    ale.loadROM(roms.get_rom_path(cfg.game.lower()))
    return ALESimulator(ale, cfg.frame_skip, include_rng=False), None


_PARAMS_PREFIX = "value_network_params.module.0.module."


def load_q_network(checkpoint: str | Path, sim: Simulator, game: str) -> torch.nn.Module:
    """The online Q network of a ``recipes/m_dqn.py`` run, checked against the simulator it will evaluate.

    Refuses a checkpoint trained on another game, with another action count or observation shape.
    """
    checkpoint = Path(checkpoint)
    config_path = checkpoint.parent / "config.yaml"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} is missing: the checkpoint must sit in its m_dqn run directory")
    run_cfg = OmegaConf.load(config_path)
    if run_cfg.env.family != "minatar" or run_cfg.env.name.lower().replace("_", "") != game.lower().replace("_", ""):
        raise ValueError(
            f"evaluator.checkpoint was trained on {run_cfg.env.family} {run_cfg.env.name!r}, the task is MinAtar {game!r}"
        )
    state = load_checkpoint(checkpoint)["loss_module"]  # checksum-verified, plain data only
    params = {k[len(_PARAMS_PREFIX) :]: v for k, v in state.items() if k.startswith(_PARAMS_PREFIX)}
    num_actions = int(params["head.bias"].shape[0]) if "head.bias" in params else -1
    if num_actions != sim.num_actions:
        raise ValueError(
            f"evaluator.checkpoint's Q network has {num_actions} actions, the MinAtar {game!r} simulator has "
            f"{sim.num_actions}: the action spaces do not match"
        )
    obs_shape = sim.observation().shape
    net = make_q_network(run_cfg.network.kind, obs_shape, num_actions, hidden=run_cfg.network.hidden)
    try:
        net.load_state_dict(params)
    except RuntimeError as err:
        raise ValueError(f"evaluator.checkpoint does not fit a {run_cfg.network.kind} network on observations {obs_shape}: {err}") from None
    return net.eval()


def plan(cfg: DictConfig | dict) -> dict[str, Any]:
    """Play ``cfg.episodes`` episodes, searching before every move; returns (and writes) the metrics."""
    cfg = validate(cfg)
    torch.set_num_threads(cfg.num_threads)
    seed_everything(cfg.seed)
    task, planner = cfg.task, cfg.planner
    # Everything that can refuse the input (the checkpoint above all) is built before the run dir is written.
    sim, success_return = make_task(task, cfg.seed)
    q_net = None
    if cfg.evaluator.kind == "q_network" or planner.algorithm == "greedy":
        q_net = load_q_network(cfg.evaluator.checkpoint, sim, task.game)
    run_dir = resolve_run_dir(cfg.run_dir)
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)

    returns, lengths, t0 = [], [], time.perf_counter()
    log = logging.getLogger("torchrl_reg.recipes")
    bar = ProgressBar(cfg.episodes * task.max_steps, enabled=cfg.progress_bar, desc=planner.algorithm, unit="moves")
    for episode in range(cfg.episodes):
        seed = cfg.seed + episode
        if episode:
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
            search = make_search(
                simulator=sim, evaluator=evaluator, seed=seed, gamma=planner.gamma, **arguments_of(make_search, planner)
            )
        total, steps = 0.0, 0
        while steps < task.max_steps:
            if search is None:
                action = int(np.argmax(evaluator.q_values(sim.observation())))
            else:
                action = search.search(planner.simulations)
            reward, done = sim.step(action)
            total, steps = total + reward, steps + 1
            bar.update(1, episode=episode, episode_return=total)
            if done:
                break
        bar.update(task.max_steps - steps)  # an episode that ended early: the bar counts its moves up to the cap
        returns.append(total)
        lengths.append(steps)
        log.info(f"episode {episode}: return {total:.4g} in {steps} moves")
    bar.close()
    metrics = {
        "task": task.name,
        "algorithm": planner.algorithm,
        "simulations": planner.simulations,
        "returns": returns,
        "lengths": lengths,
        "mean_return": float(np.mean(returns)),
        # the optimal return (D-chain) or reaching the goal (FrozenLake); games have no such return
        "success_rate": None if success_return is None else float(np.mean([r >= success_return - 1e-9 for r in returns])),
        "wall_time_s": time.perf_counter() - t0,
        "run_dir": str(run_dir),
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    plot_learning_curve(
        run_dir / "returns.png", list(range(len(returns))), returns, title=f"{planner.algorithm} on {task.name}",
        window=min(10, len(returns)), xlabel="episode",
    )
    return metrics


@hydra.main(config_path="conf", config_name="ments", version_base=None)
def main(cfg: DictConfig) -> None:
    metrics = plan(cfg)
    success = "" if metrics["success_rate"] is None else f", success rate {metrics['success_rate']:.2f}"
    # logged, not printed: Hydra writes the log to the run's ments.log as well as the console
    logging.getLogger("torchrl_reg.recipes").info(
        f"{metrics['algorithm']} on {metrics['task']}: mean return {metrics['mean_return']:.3f} over "
        f"{len(metrics['returns'])} episodes{success} -> {metrics['run_dir']}"
    )


if __name__ == "__main__":
    main()
