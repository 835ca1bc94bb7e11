"""SAC (TorchRL's SACLoss, automatic temperature), the baseline of the IQ recipe, same presets.

    python recipes/sac.py                                 # SAC on HalfCheetah-v5
    python recipes/sac.py env=hopper seed=3
    python recipes/sac.py env=pendulum                    # Pendulum-v1, minutes on a CPU

Haarnoja et al. 2018b (``Soft actor-critic algorithms and applications``) with TorchRL's
:class:`~torchrl.objectives.SACLoss`: a tanh-Gaussian actor, two Q-networks with Polyak targets
(rate ``loss.polyak``, 0.005) and a temperature tuned towards the entropy ``-dim(A)``. The presets
(``control_preset/<env>.yaml``: 2x256 MLPs, Adam 3e-4, batch 256, replay 1M, one update per step
after 10k steps) are those of ``recipes/iq.py``, so the two recipes compare on the same budget,
with the same logs, evaluation (deterministic policy: the tanh of the Gaussian mean) and
checkpoints. Actor, critic and temperature losses are summed and stepped by one Adam over all
parameters: the three losses touch disjoint parameters (TorchRL detaches the critic in the actor
loss and the log-probabilities in the temperature loss) and Adam is per-parameter, so this is
the three-optimizer update of the paper with one backward pass.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from torchrl.objectives import SACLoss, SoftUpdate

from torchrl_reg.modules.critics import state_action_value_network
from torchrl_reg.modules.policies import tanh_normal_policy
from torchrl_reg.recipe_utils import (
    TRANSITION_KEYS,
    RecipeConfig,
    check_choice,
    check_positive_int,
    check_range,
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
from torchrl_reg.recipe_utils.run import RecipeRun

LOSS_FUNCTIONS = ("l2", "smooth_l1", "l1")
SAC_LOSS_KEYS = ("loss_actor", "loss_qvalue", "loss_alpha")


@dataclass
class SACLossConfig:
    """SACLoss settings; ``target_entropy`` ``None`` is TorchRL's ``"auto"`` (``-dim(A)``).

    ``reward_scale`` multiplies the rewards the loss sees (the logged returns stay unscaled);
    ``delay_actor`` samples the bootstrap action ``a' ~ pi(.|s')`` from a Polyak-averaged copy of
    the actor. Haarnoja et al. 2018b: 1, -dim(A), False (the defaults). Dopamine's MuJoCo SAC
    (``sac.gin``, the source of the published baselines) uses ``reward_scale=0.1``,
    ``target_entropy=-dim(A)/2`` and one target copy of actor and critics (``delay_actor=true``).
    """

    gamma: float = 0.99
    polyak: float = 0.005
    alpha_init: float = 1.0
    target_entropy: Optional[float] = None
    num_qvalue_nets: int = 2
    loss_function: str = "l2"
    reward_scale: float = 1.0
    delay_actor: bool = False


@dataclass
class SACConfig(RecipeConfig):
    loss: SACLossConfig = field(default_factory=SACLossConfig)


register_schema("sac", SACConfig)


def validate(cfg: DictConfig | dict) -> DictConfig:
    """Schema (unknown keys, types) and range checks, all before anything is built."""
    cfg = structured(cfg, SACConfig)
    check_control_config(cfg)
    check_range("loss.gamma", cfg.loss.gamma, 0.0, 1.0, high_inclusive=False)
    check_range("loss.polyak", cfg.loss.polyak, 0.0, 1.0, low_inclusive=False)
    check_choice("loss.loss_function", cfg.loss.loss_function, LOSS_FUNCTIONS)
    check_range("loss.alpha_init", cfg.loss.alpha_init, 0.0, low_inclusive=False)
    check_positive_int("loss.num_qvalue_nets", cfg.loss.num_qvalue_nets)
    check_range("loss.reward_scale", cfg.loss.reward_scale, 0.0, low_inclusive=False)
    if cfg.loss.target_entropy is not None:
        check_range("loss.target_entropy", cfg.loss.target_entropy)
    return cfg


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
    action_spec = env.action_spec_unbatched
    hidden = list(cfg.network.hidden)
    actor = tanh_normal_policy(obs_dim, action_spec, num_cells=hidden).to(device)
    qvalue = state_action_value_network(obs_dim, action_spec.shape[-1], num_cells=hidden).to(device)
    loss_module = SACLoss(
        actor,
        qvalue,
        num_qvalue_nets=cfg.loss.num_qvalue_nets,
        loss_function=cfg.loss.loss_function,
        alpha_init=cfg.loss.alpha_init,
        action_spec=action_spec,
        target_entropy="auto" if cfg.loss.target_entropy is None else cfg.loss.target_entropy,
        delay_actor=cfg.loss.delay_actor,
    )
    loss_module.make_value_estimator(gamma=cfg.loss.gamma)
    target_updater = SoftUpdate(loss_module, tau=cfg.loss.polyak)
    optimizer = torch.optim.Adam(loss_module.parameters(), lr=cfg.optim.lr, eps=cfg.optim.eps)

    def update(batch):
        out = loss_module(batch)
        sum(out[key] for key in SAC_LOSS_KEYS).backward()
        if cfg.optim.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(loss_module.parameters(), cfg.optim.max_grad_norm)
        optimizer.step()
        # Last, so that torch.compile traces loss, backward and step before this graph break.
        optimizer.zero_grad(set_to_none=True)
        return out.detach()

    if cfg.compile:
        update = torch.compile(update)
    replay_buffer = make_replay_buffer(cfg.buffer, device=device, scratch_dir=run_dir / "replay")
    collector = make_collector(env, actor, cfg.collector, device=device)

    run = RecipeRun(
        cfg, run_dir, collector=collector, replay_buffer=replay_buffer, greedy=deterministic_actor(actor),
        device=device, stateful={"loss_module": loss_module, "optimizer": optimizer},
        title=f"SAC on {cfg.env.name} (seed {cfg.seed})", extra_metrics={"loss": "sac", "policy": "gaussian"},
    )
    update_time, session_updates = 0.0, 0
    for data in collector:
        batch_frames = run.observe(data)
        replay_buffer.extend(data.select(*TRANSITION_KEYS).reshape(-1))
        t_update = time.perf_counter()
        for batch in sample_minibatches(replay_buffer, run.updates_due()):
            if cfg.loss.reward_scale != 1.0:  # the sampled batch is a copy: the buffer keeps raw rewards
                batch.set(("next", "reward"), batch.get(("next", "reward")) * cfg.loss.reward_scale)
            out = update(batch)  # actor, twin critics and temperature
            target_updater.step()  # Polyak averaging of the target critics
            if cfg.buffer.prioritized:
                replay_buffer.update_tensordict_priority(batch)
            run.record(out)
            session_updates += 1
        update_time += time.perf_counter() - t_update
        if run.end_batch(batch_frames):
            break
    return run.finish(updates_per_s=session_updates / update_time if update_time > 0 else math.nan)


@hydra.main(config_path="conf", config_name="sac", version_base=None)
def main(cfg: DictConfig) -> None:
    metrics = train(cfg)
    print(
        f"{metrics['status']}: {metrics['frames']} frames in {metrics['wall_time_s']:.0f}s "
        f"({metrics['steps_per_s']:.0f} steps/s, {metrics['updates_per_s']:.0f} updates/s), "
        f"final return {metrics['final_return']:.1f} -> {metrics['run_dir']}"
    )


if __name__ == "__main__":
    main()
