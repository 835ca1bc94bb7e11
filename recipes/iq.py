"""IQ / M-IQ (implicit Q-values) on MuJoCo and Pendulum, and the (Trust-)PCL ablation.

    python recipes/iq.py                                  # M-IQ on HalfCheetah-v5 (tau 0.01, alpha 0.9, 11 bins)
    python recipes/iq.py env=hopper loss=iq seed=3        # IQ (alpha = 0) on Hopper-v5
    python recipes/iq.py policy=gaussian                  # Gaussian-policy ablation
    python recipes/iq.py loss=trust_pcl                   # residual ablation (online value bootstrap)
    python recipes/iq.py env=pendulum                     # Pendulum-v1, learns in minutes on a CPU
    python recipes/iq.py policy.scaled=true               # the scaled softmax softmax(F / tau) of Section 3.3
    python recipes/iq.py loss.clip_value_min=-1 loss.clip_value_max=0   # M-DQN's clip of the Munchausen term

Paper: ``shared/papers/implicit-q-values-paper.txt``. One policy network (multicategorical,
``policy.num_bins`` values per action dimension, bounds included; or a tanh-Gaussian) and one
state-value network, trained jointly by the single loss of Eq. (2),
:class:`~torchrl_reg.objectives.implicit_q.ImplicitQLoss`, with one Adam optimizer and Polyak
target networks (rate ``loss.polyak``, SAC's 0.005) updated after every gradient step. ``loss=``
picks M-IQ (``m_iq``: alpha 0.9), IQ (``iq``: alpha 0) or the residual ablations of Section 6,
Trust-PCL (``trust_pcl``) and PCL (``pcl``), which bootstrap on the online value with tau 1e-4.

The loop: collect with the stochastic policy (from the first frame: a fresh multicategorical
policy is close to uniform over the grid), store, and after ``optim.learning_starts`` frames do one
update per ``optim.frames_per_update`` frames; evaluate the deterministic policy (per-dimension
argmax). At every log line the recipe also logs, under ``diag/``, the replayed actions' ``ln pi``
(online policy, last minibatch: minimum and quantiles; the Munchausen term is ``alpha tau ln pi``)
and the policy's entropy per action dimension (multicategorical); the loss logs the fraction of
clipped Munchausen terms (``train/clip_fraction``). The last values go to the metrics as
``diagnostics``. Counters, logs, evaluation, checkpoints and resume are
:class:`~torchrl_reg.recipe_utils.run.RecipeRun`'s; ``updates_per_s`` in the metrics is measured
over this process's updates.
``recipes/sac.py`` runs TorchRL's SAC with the same presets for side-by-side comparisons.
"""
from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from tensordict import TensorDictBase
from torchrl.modules import ProbabilisticActor
from torchrl.objectives import SoftUpdate

from torchrl_reg.modules.critics import state_value_network
from torchrl_reg.modules.policies import FactorizedCategorical, multicategorical_policy, tanh_normal_policy
from torchrl_reg.objectives.implicit_q import ImplicitQLoss
from torchrl_reg.recipe_utils import (
    TRANSITION_KEYS,
    RecipeConfig,
    check_choice,
    check_positive_int,
    check_range,
    crossed,
    install_stop_signal_handlers,
    make_collector,
    make_env,
    make_replay_buffer,
    register_schema,
    resolve_run_dir,
    sample_minibatches,
    seed_everything,
    select_device,
    structured,
)
from torchrl_reg.recipe_utils.control import check_control_config, deterministic_actor
from torchrl_reg.recipe_utils.run import RecipeRun, make_update

POLICIES = ("multicategorical", "gaussian")
BOOTSTRAPS = ("target", "online")
LOSS_FUNCTIONS = ("l2", "smooth_l1", "l1")


@dataclass
class IQLossConfig:
    """The paper's symbols: ``tau`` (entropy), ``alpha`` (Munchausen / KL), Eq. (2).

    ``clip_value_min`` / ``clip_value_max``: both or neither; clip ``tau ln pi`` in the Munchausen
    term to these bounds as M-DQN does (``-1``, ``0``). Neither (default): Eq. (2), unclipped.
    """

    alpha: float = 0.9
    tau: float = 0.01
    clip_value_min: Optional[float] = None
    clip_value_max: Optional[float] = None
    bootstrap: str = "target"
    gamma: float = 0.99
    loss_function: str = "l2"
    polyak: float = 0.005


@dataclass
class PolicyConfig:
    """``multicategorical`` (``num_bins`` per dimension) or ``gaussian`` (tanh-squashed).

    ``scaled``: the multicategorical policy is ``softmax(F / loss.tau)`` (Section 3.3's scaled
    softmax, ``F`` on the Q scale) instead of ``softmax(F)`` (Section 4's formula); ``loss.tau``
    is the one temperature of both.
    """

    kind: str = "multicategorical"
    num_bins: int = 11
    scaled: bool = False


@dataclass
class IQConfig(RecipeConfig):
    loss: IQLossConfig = field(default_factory=IQLossConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)


register_schema("iq", IQConfig)


def method_name(loss: DictConfig) -> str:
    """M-IQ / IQ with the target value, Trust-PCL / PCL with the online one ([IQ] Section 6)."""
    if loss.bootstrap == "target":
        return "m_iq" if loss.alpha > 0 else "iq"
    return "trust_pcl" if loss.alpha > 0 else "pcl"


def validate(cfg: DictConfig | dict) -> DictConfig:
    """Schema (unknown keys, types) and range checks, all before anything is built."""
    cfg = structured(cfg, IQConfig)
    check_control_config(cfg)
    check_range("loss.gamma", cfg.loss.gamma, 0.0, 1.0, high_inclusive=False)
    check_range("loss.polyak", cfg.loss.polyak, 0.0, 1.0, low_inclusive=False)
    check_choice("loss.loss_function", cfg.loss.loss_function, LOSS_FUNCTIONS)
    check_range("loss.alpha", cfg.loss.alpha, 0.0, 1.0, high_inclusive=False)
    check_range("loss.tau", cfg.loss.tau, 0.0, low_inclusive=False)
    check_choice("loss.bootstrap", cfg.loss.bootstrap, BOOTSTRAPS)
    check_choice("policy.kind", cfg.policy.kind, POLICIES)
    check_positive_int("policy.num_bins", cfg.policy.num_bins)
    if cfg.policy.num_bins < 2:
        raise ValueError(f"policy.num_bins must be an integer >= 2 (both bounds), got policy.num_bins={cfg.policy.num_bins}")
    if cfg.policy.scaled and cfg.policy.kind != "multicategorical":
        raise ValueError(
            f"policy.scaled=true divides the multicategorical logits by tau; policy.kind={cfg.policy.kind!r} has no logits"
        )
    low, high = cfg.loss.clip_value_min, cfg.loss.clip_value_max
    if (low is None) != (high is None):
        raise ValueError(
            "set both loss.clip_value_min and loss.clip_value_max (clip of tau ln pi in the Munchausen term) or "
            f"neither (Eq. 2, no clip), got loss.clip_value_min={low}, loss.clip_value_max={high}"
        )
    if low is not None and not low <= high:
        raise ValueError(f"loss.clip_value_min must be <= loss.clip_value_max, got {low} > {high}")
    return cfg


def make_policy(cfg: DictConfig, obs_dim: int, action_spec) -> ProbabilisticActor:
    """The policy network; raises for a non-Box or unbounded action space, before training."""
    hidden = list(cfg.network.hidden)
    if cfg.policy.kind == "multicategorical":
        tau = cfg.loss.tau if cfg.policy.scaled else None
        return multicategorical_policy(obs_dim, action_spec, num_bins=cfg.policy.num_bins, num_cells=hidden, tau=tau)
    return tanh_normal_policy(obs_dim, action_spec, num_cells=hidden)


LOG_PI_QUANTILES = (0.01, 0.1, 0.5, 0.9)


@torch.no_grad()
def policy_diagnostics(policy: ProbabilisticActor, batch: TensorDictBase) -> dict[str, float]:
    """``ln pi(a|s)`` of the replayed actions of ``batch`` (minimum and :data:`LOG_PI_QUANTILES`) and,
    for the multicategorical policy, the entropy of each action dimension (batch mean; at most ``ln n``).

    Deterministic (no sampling, no random numbers drawn): logging it leaves the run's numbers unchanged.
    """
    dist = policy.get_dist(batch.select(*policy.in_keys))
    log_pi = dist.log_prob(batch.get("action")).reshape(-1).float()
    out = {"log_pi_min": log_pi.min().item()}
    quantiles = torch.quantile(log_pi, torch.tensor(LOG_PI_QUANTILES, dtype=log_pi.dtype, device=log_pi.device))
    out.update({f"log_pi_q{round(100 * q):02d}": v.item() for q, v in zip(LOG_PI_QUANTILES, quantiles)})
    if isinstance(dist, FactorizedCategorical):
        entropy = dist.entropy_per_dimension().reshape(-1, dist.logits.shape[-2]).mean(0)
        out.update({f"entropy_dim{j}": v.item() for j, v in enumerate(entropy)})
    return out


def _log_diagnostics(run: RecipeRun, values: Mapping[str, float]) -> None:
    if run.logger is not None:
        for key, value in values.items():
            run.logger.log_scalar(f"diag/{key}", value, step=run.frames)


def train(cfg: DictConfig | dict) -> dict[str, Any]:
    """Train one agent; returns the final metrics (also written to ``<run_dir>/metrics.json``)."""
    cfg = validate(cfg)
    run_dir = resolve_run_dir(cfg.run_dir)
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    install_stop_signal_handlers()
    torch.set_num_threads(cfg.num_threads)
    device = select_device(cfg.device)
    seed_everything(cfg.seed)

    env = make_env(cfg.env, num_envs=cfg.collector.num_envs, seed=cfg.seed)
    obs_dim = env.observation_spec["observation"].shape[-1]
    policy = make_policy(cfg, obs_dim, env.action_spec_unbatched).to(device)
    value = state_value_network(obs_dim, num_cells=list(cfg.network.hidden)).to(device)
    loss_module = ImplicitQLoss(
        policy,
        value,
        tau=cfg.loss.tau,
        alpha=cfg.loss.alpha,
        clip_value_min=cfg.loss.clip_value_min,
        clip_value_max=cfg.loss.clip_value_max,
        bootstrap=cfg.loss.bootstrap,
        loss_function=cfg.loss.loss_function,
    )
    loss_module.make_value_estimator(gamma=cfg.loss.gamma)
    target_updater = SoftUpdate(loss_module, tau=cfg.loss.polyak)
    # One optimizer over both networks: Eq. (2) is a single loss of (theta, phi).
    optimizer = torch.optim.Adam(loss_module.parameters(), lr=cfg.optim.lr, eps=cfg.optim.eps)
    update = make_update(loss_module, optimizer, max_grad_norm=cfg.optim.max_grad_norm, compile=cfg.compile)
    replay_buffer = make_replay_buffer(cfg.buffer, device=device, scratch_dir=run_dir / "replay")
    collector = make_collector(env, policy, cfg.collector, device=device)

    name = method_name(cfg.loss)
    run = RecipeRun(
        cfg, run_dir, collector=collector, replay_buffer=replay_buffer, greedy=deterministic_actor(policy),
        device=device, stateful={"loss_module": loss_module, "optimizer": optimizer},
        title=f"{name} ({cfg.policy.kind}) on {cfg.env.name} (seed {cfg.seed})",
        extra_metrics={"loss": name, "policy": cfg.policy.kind},
    )
    update_time, session_updates = 0.0, 0
    batch, diagnostics = None, {}
    for data in collector:
        batch_frames = run.observe(data)
        replay_buffer.extend(data.select(*TRANSITION_KEYS).reshape(-1))
        t_update = time.perf_counter()
        for batch in sample_minibatches(replay_buffer, run.updates_due()):
            out = update(batch)  # Eq. (2): one step on both networks
            target_updater.step()  # Polyak averaging of both target networks
            if cfg.buffer.prioritized:
                replay_buffer.update_tensordict_priority(batch)
            run.record(out)
            session_updates += 1
        update_time += time.perf_counter() - t_update
        if batch is not None and crossed(cfg.logger.interval, run.frames, batch_frames):
            diagnostics = policy_diagnostics(policy, batch)
            _log_diagnostics(run, diagnostics)
        if run.end_batch(batch_frames):
            break
    return run.finish(
        updates_per_s=session_updates / update_time if update_time > 0 else math.nan, diagnostics=diagnostics
    )


@hydra.main(config_path="conf", config_name="iq", version_base=None)
def main(cfg: DictConfig) -> None:
    metrics = train(cfg)
    print(
        f"{metrics['status']}: {metrics['frames']} frames in {metrics['wall_time_s']:.0f}s "
        f"({metrics['steps_per_s']:.0f} steps/s, {metrics['updates_per_s']:.0f} updates/s), "
        f"final return {metrics['final_return']:.1f} -> {metrics['run_dir']}"
    )


if __name__ == "__main__":
    main()
