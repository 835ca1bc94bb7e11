"""Soft Q-learning with continuous actions (an amortized SVGD sampler), on the actor-critic loop.

    python recipes/sql.py                                 # MultiGoal-v0, a few minutes on a CPU
    python recipes/sql.py env=pendulum
    python recipes/sql.py env=halfcheetah seed=3          # or env=hopper

Paper: Haarnoja, Tang, Abbeel, Levine, "Reinforcement Learning with Deep Energy-Based Policies",
ICML 2017, arXiv:1702.08165 (Algorithm 1). The critic regresses ``Q(s, a)`` on
``c r + gamma (1 - terminated) V(s')`` with the importance-sampled soft value of
:class:`~torchrl_reg.objectives.SoftQLoss`; the sampler ``a = tanh(f(s, xi))`` follows the Stein
variational gradient of :class:`~torchrl_reg.objectives.SVGDPolicyLoss`; both are summed in
:class:`~torchrl_reg.objectives.SoftQLearningLoss` and stepped by the loop's one Adam (disjoint
parameters). The loop (:func:`torchrl_reg.loops.actor_critic.train`) copies the online critic into
the target critic every ``loss.hard_update_interval`` updates with ``loss.target_update=hard`` (the
reference's 1000, set by the multigoal and MuJoCo presets) or Polyak-averages it at rate
``loss.polyak`` after every update (``loss.target_update=polyak``, the Pendulum preset).
Evaluation plays the sampler with ``xi = 0``. ``loss.tau_final`` anneals the temperature linearly
over ``loss.tau_annealing_updates`` updates (:class:`~torchrl_reg.objectives.TemperatureSchedule`).

Presets (``conf/sql/env/<env>.yaml``) follow the reference implementation: 2x128 ReLU MLPs, Adam 3e-4,
batch 128, 16 value particles, 16 kernel particles, ``tau = 1`` with reward scale 30 on HalfCheetah
and Hopper; on MultiGoal batch 64, 32 kernel particles, reward scale 0.1; a target copy every 1000
updates on MultiGoal, HalfCheetah and Hopper.
"""
from __future__ import annotations

import torchrl_reg  # noqa: F401  first: a recipe run imports nothing from the working directory

from dataclasses import dataclass
from typing import Any, ClassVar, Optional

import torch
from omegaconf import DictConfig
from tensordict import TensorDictBase
from torchrl.envs import EnvBase
from torchrl.modules import Actor

from torchrl_reg.configs import ActorCriticLossConfig, arguments_of, check_loss_config, default_of, recipe_schema
from torchrl_reg.loops import LoopHooks, actor_critic, recipe_entry, register_loss
from torchrl_reg.modules.soft_q import svgd_sampler_actor
from torchrl_reg.objectives.soft_q import SoftQLearningLoss, SoftQLoss, SVGDPolicyLoss, TemperatureSchedule
from torchrl_reg.run import crossed
from torchrl_reg.run.recipe_run import RecipeRun
from torchrl_reg.validation import ReadOnlyIf

PROPOSALS = ("uniform", "mixture")
SPACES = ("pre_tanh", "squashed", "barrier")


@dataclass
class SQLLossConfig(ActorCriticLossConfig):
    """SoftQLoss and SVGDPolicyLoss settings (their defaults). ``num_value_particles`` is ``M`` of the
    soft value, ``num_particles`` the sampler's ``K`` per state; ``tau_final`` (``None``: no annealing)
    is reached after ``tau_annealing_updates`` updates."""

    name: str = "sql"
    #: temperature of the energy-based policy exp(Q/tau)
    tau: float = default_of(SoftQLoss, "tau")
    #: multiplies the rewards (the reference's 1/tau knob)
    reward_scale: float = default_of(SoftQLoss, "reward_scale")
    #: actions M sampled for the importance-sampled soft value
    num_value_particles: int = default_of(SoftQLoss, "num_value_particles")
    #: proposal of those actions: mixture (uniform + the sampler's) or uniform (the reference)
    proposal: str = default_of(SoftQLoss, "proposal")
    #: the mixture proposal's uniform weight
    uniform_weight: float = default_of(SoftQLoss, "uniform_weight")
    #: regression loss of the critic: l2, l1 or smooth_l1 (Huber)
    loss_function: str = default_of(SoftQLoss, "loss_function")
    #: sampler particles K per state for SVGD
    num_particles: int = default_of(SVGDPolicyLoss, "num_particles")
    #: fraction of the K particles held fixed in the Stein direction
    fixed_ratio: float = default_of(SVGDPolicyLoss, "fixed_ratio")
    #: where SVGD moves the particles: pre_tanh (exact at the box's edge), squashed (actions) or barrier
    space: str = default_of(SVGDPolicyLoss, "space")
    #: tau reached by linear annealing (null: no annealing)
    tau_final: Optional[float] = None
    #: updates of the annealing to tau_final
    tau_annealing_updates: int = 1

    choices: ClassVar[dict[str, tuple[str, ...]]] = {"proposal": PROPOSALS, "space": SPACES}
    read_only_if: ClassVar[ReadOnlyIf] = {
        "uniform_weight": ("proposal", ("mixture",)),  # the uniform proposal has no mixture weight
        "tau_annealing_updates": ("tau_final", lambda tau_final: tau_final is not None),  # no annealing
    }


SQLConfig = recipe_schema("sql", loss=SQLLossConfig)


def check_annealing(cfg: DictConfig) -> None:
    """The temperature schedule's settings (:class:`TemperatureSchedule`'s checks), read only with ``loss.tau_final``."""
    if cfg.loss.tau_final is not None:  # without it tau_annealing_updates is unread (refused unless default)
        check_loss_config(TemperatureSchedule, cfg.loss, names={"annealing_num_steps": "tau_annealing_updates"})


def from_config(cfg: DictConfig, env: EnvBase, device: torch.device) -> tuple[Actor, SoftQLearningLoss]:
    """The SVGD sampler and :class:`SoftQLearningLoss` over it and a ``Q(s, a)`` critic, gamma set."""
    actor, qvalue = actor_critic.actor_and_qvalue(cfg, env, device, actor=svgd_sampler_actor)
    # Each loss takes the config's values of its own arguments (tau, particles, proposal, ...).
    critic = SoftQLoss(qvalue, action_spec=env.action_spec_unbatched, actor=actor, **arguments_of(SoftQLoss, cfg.loss))
    policy_loss = SVGDPolicyLoss(actor, qvalue, **arguments_of(SVGDPolicyLoss, cfg.loss))
    loss = SoftQLearningLoss(critic, policy_loss).to(device)
    loss.make_value_estimator(gamma=cfg.loss.gamma)
    return actor, loss


#: Particles of the reference soft value the logged estimators are compared with (defensive mixture).
REFERENCE_PARTICLES = 4096


def soft_value_diagnostics(critic: SoftQLoss, next_observations: TensorDictBase) -> dict[str, float]:
    """Bias and effective sample size of the soft value ``V_hat(s')`` from ``M = num_value_particles``
    particles with each proposal, against a :data:`REFERENCE_PARTICLES`-particle defensive-mixture estimate
    at the same target parameters and states (consistent as the particles grow; the mixture's weights are
    at most ``1 / uniform_weight`` times the uniform's). ``soft_value_bias_<proposal>`` is the mean of
    ``V_hat - V_ref`` over the states, ``soft_value_error_std_<proposal>`` its spread over the states (a
    state-dependent bias shapes the policy, a constant one does not), ``ess_<proposal>`` the mean ESS
    of ``M``. Drawn under a forked RNG, so that logging leaves the run's random stream untouched."""
    devices = [next_observations.device] if next_observations.device is not None and next_observations.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        reference = critic.soft_value(next_observations, proposal="mixture", num_particles=REFERENCE_PARTICLES)
        values = {"ess_reference": reference["effective_sample_size"].mean().item()}
        for proposal in PROPOSALS:
            estimate = critic.soft_value(next_observations, proposal=proposal)
            error = estimate["value"] - reference["value"]
            values[f"soft_value_bias_{proposal}"] = error.mean().item()
            values[f"soft_value_error_std_{proposal}"] = error.std().item()
            values[f"ess_{proposal}"] = estimate["effective_sample_size"].mean().item()
    return values


class SQLHooks(LoopHooks):
    """Steps the temperature schedule after every update (when ``loss.tau_final`` is set); at every log
    line, :func:`soft_value_diagnostics` at the next states of the last minibatch, logged under ``diag/``
    (the sampler's saturated fraction and bandwidth are loss outputs, logged with the others)."""

    def __init__(self, loss: SoftQLearningLoss, schedule: TemperatureSchedule | None):
        self.loss, self.schedule = loss, schedule
        self.last_batch: TensorDictBase | None = None
        self.values: dict[str, float] = {}

    def before_update(self, batch: TensorDictBase) -> None:
        self.last_batch = batch

    def after_update(self, out: TensorDictBase) -> None:
        if self.schedule is not None:
            self.schedule.step()

    def after_batch(self, run: RecipeRun, batch_frames: int) -> None:
        if self.last_batch is None or not crossed(run.cfg.logger.interval, run.frames, batch_frames):
            return
        self.values = soft_value_diagnostics(self.loss.critic, self.last_batch.get("next"))
        if run.logger is not None:
            for key, value in self.values.items():
                run.logger.log_scalar(f"diag/{key}", value, step=run.frames)

    def final_metrics(self) -> dict[str, Any]:
        metrics: dict[str, Any] = {"diagnostics": self.values}
        if self.schedule is not None:
            metrics["final_tau"] = self.schedule.tau
        return metrics


def hooks(cfg: DictConfig, loss: SoftQLearningLoss) -> LoopHooks:
    """:class:`SQLHooks`, with a :class:`TemperatureSchedule` of both losses when ``loss.tau_final`` is set."""
    schedule = None
    if cfg.loss.tau_final is not None:
        schedule = TemperatureSchedule(
            loss.critic, loss.actor, tau_final=cfg.loss.tau_final, annealing_num_steps=cfg.loss.tau_annealing_updates
        )
    return SQLHooks(loss, schedule)


# "sql" is also MIRL's discrete soft Q-learning baseline, a value-based loss (recipes/mirl.py): one name
# per family. SoftQLearningLoss has no loss_and_outputs (the critic draws the proposal's particles inside
# the loss): the generic update.
register_loss(
    "sql", SoftQLearningLoss, from_config, family="actor_critic", hooks=hooks, metrics=lambda cfg: {"policy": "svgd"},
    fused_update=False, checks=(SoftQLoss, SVGDPolicyLoss),
)


validate, train, main = recipe_entry("sql", SQLConfig, check_annealing)

if __name__ == "__main__":
    main()
