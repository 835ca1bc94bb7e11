"""MIRL, soft Q-learning (SQL), SQL with MIRL's exploration (SQL_m) and DQN on classic control, MinAtar, Atari.

    python recipes/mirl.py                                   # MIRL on CartPole-v1
    python recipes/mirl.py loss=sql seed=3                   # SQL baseline (uniform prior, fixed beta)
    python recipes/mirl.py env=minatar env.name=Breakout loss=mirl collector.total_frames=1000000
    python recipes/mirl.py env=atari env.name=Seaquest loss=dqn

Losses (``loss=``): ``mirl``, ``sql``, ``sql_m`` (:class:`~torchrl_reg.objectives.mirl.MIRLLoss`
configured by :data:`~torchrl_reg.objectives.mirl.VARIANTS`) and ``dqn`` (TorchRL's ``DQNLoss``).
Paper: ``shared/papers/mirl-soft-q-mutual-information-slides.txt``, Algorithm 1 and the slide
"Behavior policy".

The loop below is Algorithm 1 with vectorized envs: collect a batch with the behaviour policy
(argmax of ``pi ∝ rho exp(beta q)``, with probability epsilon an action sampled from ``rho``),
update the prior with every collected state (line 5), store the batch, do one gradient step per
``frames_per_update`` frames (line 7) each followed by the beta update (line 8), and copy the
target network every ``target_update_interval`` frames. Env presets, the update schedule and the
run-directory contract (config.yaml, CSV logs, checkpoint.pt with the prior and beta, resume,
stop signals, metrics.json, learning_curve.png) come from :mod:`torchrl_reg.recipe_utils`.
"""
from __future__ import annotations

import os

# The Atari frame resize is a small numpy matmul: a multi-threaded BLAS makes it up to ~50x slower
# on a busy 2-core machine (see recipes/m_iqn.py). Must be set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from dataclasses import dataclass, field  # noqa: E402
from typing import Any, Optional  # noqa: E402

import hydra  # noqa: E402
import torch  # noqa: E402
from omegaconf import DictConfig  # noqa: E402
from tensordict.nn import TensorDictSequential  # noqa: E402
from torchrl.modules import QValueActor  # noqa: E402
from torchrl.objectives import DQNLoss, HardUpdate  # noqa: E402

from torchrl_reg.modules.exploration import AnnealedEpsilonGreedy  # noqa: E402
from torchrl_reg.modules.mirl import PriorEGreedyModule  # noqa: E402
from torchrl_reg.objectives.mirl import BETA_SCHEDULES, VARIANTS, MIRLLoss  # noqa: E402
from torchrl_reg.objectives.update import make_update  # noqa: E402
from torchrl_reg.recipe_utils.loggers import report_summary  # noqa: E402
from torchrl_reg.recipe_utils import (  # noqa: E402
    TRANSITION_KEYS,
    ValueBasedConfig,
    check_choice,
    check_discrete_action_spec,
    check_range,
    install_stop_signal_handlers,
    linear_schedule,
    make_collector,
    make_env,
    make_q_network,
    make_replay_buffer,
    num_actions,
    register_schema,
    resolve_run_dir,
    sample_minibatches,
    seed_everything,
    select_device,
    structured,
    validate_value_based_config,
)
from torchrl_reg.recipe_utils.run import RecipeRun  # noqa: E402

LOSSES = (*VARIANTS, "dqn")
LOSS_FUNCTIONS = ("l2", "smooth_l1", "l1")


@dataclass
class MIRLLossConfig:
    """``name`` picks the method; the rest are :class:`MIRLLoss` arguments (ignored by ``dqn``).

    ``beta_schedule`` ``None`` takes the method's own (MIRL adaptive, SQL and SQL_m fixed).
    """

    name: str = "mirl"
    beta: float = 33.3
    beta_schedule: Optional[str] = None
    beta_lr: float = 1e-3
    beta_slope: float = 0.0
    beta_min: float = 1e-2
    beta_max: float = 1e4
    prior_lr: float = 1e-4
    loss_function: str = "l2"
    gamma: float = 0.99


@dataclass
class MIRLRecipeConfig(ValueBasedConfig):
    loss: MIRLLossConfig = field(default_factory=MIRLLossConfig)


register_schema("mirl", MIRLRecipeConfig)


def validate(cfg: DictConfig | dict) -> DictConfig:
    """Schema (unknown keys, types) and range checks, all before anything is built."""
    cfg = structured(cfg, MIRLRecipeConfig)
    validate_value_based_config(cfg)
    loss = cfg.loss
    check_choice("loss.name", loss.name, LOSSES)
    check_choice("loss.loss_function", loss.loss_function, LOSS_FUNCTIONS)
    check_range("loss.gamma", loss.gamma, 0.0, 1.0)
    if loss.name != "dqn":
        if loss.beta_schedule is not None:
            check_choice("loss.beta_schedule", loss.beta_schedule, BETA_SCHEDULES)
        check_range("loss.beta_min", loss.beta_min, 0.0, low_inclusive=False)
        check_range("loss.beta_max", loss.beta_max, loss.beta_min)
        check_range("loss.beta", loss.beta, loss.beta_min, loss.beta_max)
        check_range("loss.beta_lr", loss.beta_lr, 0.0, 1.0, low_inclusive=False)
        check_range("loss.beta_slope", loss.beta_slope, 0.0)
        check_range("loss.prior_lr", loss.prior_lr, 0.0, 1.0, low_inclusive=False)
    return cfg


def make_loss(cfg: DictConfig, actor: QValueActor):
    """The loss named by ``cfg.name``, with gamma in its value estimator (TorchRL convention)."""
    if cfg.name == "dqn":
        loss = DQNLoss(actor, loss_function=cfg.loss_function, delay_value=True, action_space=actor.spec)
    else:
        overrides = {} if cfg.beta_schedule is None else {"beta_schedule": cfg.beta_schedule}
        loss = MIRLLoss.from_variant(
            cfg.name,
            actor,
            beta=cfg.beta,
            beta_lr=cfg.beta_lr,
            beta_slope=cfg.beta_slope,
            beta_min=cfg.beta_min,
            beta_max=cfg.beta_max,
            prior_lr=cfg.prior_lr,
            loss_function=cfg.loss_function,
            action_space=actor.spec,
            **overrides,
        )
    loss.make_value_estimator(gamma=cfg.gamma)
    return loss


def train(cfg: DictConfig | dict) -> dict[str, Any]:
    """Train one agent; returns the final metrics (also written to ``<run_dir>/metrics.json``)."""
    cfg = validate(cfg)
    run_dir = resolve_run_dir(cfg.run_dir)
    install_stop_signal_handlers()
    torch.set_num_threads(cfg.num_threads)
    device = select_device(cfg.device)
    seed_everything(cfg.seed)

    env = make_env(cfg.env, num_envs=cfg.collector.num_envs, seed=cfg.seed)
    check_discrete_action_spec(env)
    spec = env.action_spec_unbatched.to(device)
    q_net = make_q_network(cfg.network, env.observation_spec["observation"].shape[1:], num_actions(env)).to(device)
    actor = QValueActor(q_net, in_keys=["observation"], spec=spec)
    loss_module = make_loss(cfg.loss, actor).to(device)
    mirl = isinstance(loss_module, MIRLLoss)
    eps = cfg.exploration
    if mirl:
        # Behaviour policy of the slides: argmax pi, or with probability epsilon a sample of rho.
        exploration = PriorEGreedyModule(spec, eps.eps_init, eps.eps_end, max(eps.annealing_frames, 1), prior=loss_module.prior)
    else:
        exploration = AnnealedEpsilonGreedy(spec, eps_init=eps.eps_init, eps_end=eps.eps_end, annealing_num_steps=max(eps.annealing_frames, 1))
    policy = TensorDictSequential(actor, exploration.to(device))

    # Copied by hand every `target_every` updates (interval 0: each step() call copies).
    target_updater = HardUpdate(loss_module, value_network_update_interval=0)
    target_every = cfg.optim.target_update_interval // cfg.optim.frames_per_update
    optimizer = torch.optim.Adam(loss_module.parameters(), lr=cfg.optim.lr, eps=cfg.optim.eps)
    update = make_update(loss_module, optimizer, max_grad_norm=cfg.optim.max_grad_norm, compile=cfg.compile)
    replay_buffer = make_replay_buffer(cfg.buffer, device=device, scratch_dir=run_dir / "replay")
    collector = make_collector(env, policy, cfg.collector, device=device)

    @torch.no_grad()
    def greedy(obs: torch.Tensor) -> torch.Tensor:
        q = q_net(obs)
        return loss_module.prior.greedy_action(q) if mirl else q.argmax(-1)

    run = RecipeRun(
        cfg, run_dir, collector=collector, replay_buffer=replay_buffer, greedy=greedy, device=device,
        stateful={"loss_module": loss_module, "policy": policy, "optimizer": optimizer},
        title=f"{cfg.loss.name} on {cfg.env.name} (seed {cfg.seed})", extra_metrics={"loss": cfg.loss.name},
    )
    run.start()  # resumes from <run_dir>/checkpoint.pt if there is one
    for data in collector:
        batch_frames = run.observe(data)
        if mirl:
            loss_module.update_prior(data)  # Algorithm 1, line 5: every collected state, all actions
        replay_buffer.extend(data.select(*TRANSITION_KEYS).reshape(-1))
        exploration.eps.fill_(linear_schedule(eps.eps_init, eps.eps_end, eps.annealing_frames, run.frames))

        for batch in sample_minibatches(replay_buffer, run.updates_due()):
            out = update(batch)  # line 7
            if mirl:
                loss_module.update_beta(out)  # line 8: beta <- (1 - a_beta) beta + a_beta / L
            if cfg.buffer.prioritized:
                replay_buffer.update_tensordict_priority(batch)
            run.record(out)
            if run.updates % target_every == 0:
                target_updater.step()

        # beta, the prior's entropy and KL(pi || rho) are logged from the loss outputs.
        if run.end_batch(batch_frames, epsilon=float(exploration.eps)):
            break
    final = {"prior": loss_module.prior.rho.tolist(), "beta": float(loss_module.prior.beta)} if mirl else {}
    return run.finish(**final)


@hydra.main(config_path="conf", config_name="mirl", version_base=None)
def main(cfg: DictConfig) -> None:
    report_summary(train(cfg))


if __name__ == "__main__":
    main()
