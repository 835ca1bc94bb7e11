"""Is a trained SQL sampler's saturation its own failure, or what its target asks for? Read from a finished run.

    python -m benchmarks.sql_saturation RUN_DIR [RUN_DIR ...] --out benchmarks/results/sql/saturation_hopper.json

For each ``recipes/sql.py`` run directory (its ``config.yaml`` and final ``checkpoint.pt``), the loss is rebuilt
from the config by the recipe's own builder and loaded from the checkpoint (checksum-verified, plain data). On
the last ``--states`` observations of its replay buffer, the sampler draws ``--particles`` actions per state, and
the critic's gradient ``g = (dQ/da) / tau`` is taken at each of them (autograd, float32, units of the scaled reward;
``a`` in the box's unit coordinates).

The SVGD target (Haarnoja et al., ICML 2017, arXiv:1702.08165, Eq. 13) is ``exp(Q(a)/tau)`` on the box; in
the variable of ``space="pre_tanh"`` it carries the squash's Jacobian, which makes it the same density of ``a``.
Holding the other coordinates fixed and ``Q`` linear in ``a_k`` with slope ``g_k`` (the issue's closed-form
target ``exp(G a)`` per dimension, here with the critic's own slopes), the target puts
``P(|a_k| > 0.99) = (1 - e^{-0.01 s})(1 + e^{-1.99 s}) / (1 - e^{-2 s})``, ``s = |g_k|``, on the saturated
region (0.01 for a flat critic, -> 1 as ``s`` grows). Reported per run: the sampler's saturated fraction
(coordinates with ``|a| > 0.99``, the training log's ``saturated_fraction``), the target's (that probability
averaged over the same coordinates), and the quantiles of ``|g|``: a sampler that saturates more than its target
has collapsed onto the box edge; one that saturates as much follows a cold target.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from omegaconf import OmegaConf
from tensordict import TensorDict

from torchrl_reg.envs import make_env
from torchrl_reg.run import read_checkpoint

SATURATION = 0.99


def target_saturated_probability(slope: torch.Tensor) -> torch.Tensor:
    """``P(|a| > SATURATION)`` under the density ``exp(g a)`` on ``[-1, 1]``, ``slope = g`` (elementwise, stable)."""
    s = slope.abs().clamp_min(1e-12)
    margin = 1 - SATURATION
    return torch.expm1(-margin * s) * (1 + torch.exp(-(2 - margin) * s)) / torch.expm1(-2 * s)


def analyse(run_dir: Path, states: int, particles: int, seed: int) -> dict:
    from recipes import sql  # the recipe's builder: the run's networks exactly as trained

    cfg = sql.validate(OmegaConf.load(run_dir / "config.yaml"))
    env = make_env(cfg.env, num_envs=1, seed=cfg.seed)
    low, high = env.action_spec_unbatched.space.low.float(), env.action_spec_unbatched.space.high.float()
    _, loss = sql.from_config(cfg, env, torch.device("cpu"))
    checkpoint = read_checkpoint(run_dir / "checkpoint.pt")
    loss.load_state_dict(checkpoint["loss_module"])
    storage = checkpoint["replay_buffer"]["_storage"]
    filled = int(storage["_len"])
    observation = storage["_storage"]["observation"][max(0, filled - states):filled].float()

    critic, policy = loss.critic, loss.actor
    sampler = policy.actor_network.module
    torch.manual_seed(seed)
    with torch.no_grad(), policy.actor_network_params.to_module(policy.actor_network):
        _, actions = sampler.sample_particles(observation, particles)  # [N, K, d]
    actions = actions.detach().requires_grad_(True)
    obs = observation.unsqueeze(-2).expand(*actions.shape[:-1], observation.shape[-1])
    with critic.qvalue_network_params.to_module(critic.qvalue_network):
        td = TensorDict({policy.actor_network.in_keys[0]: obs, critic.tensor_keys.action: actions}, batch_size=actions.shape[:-1])
        q = critic.qvalue_network(td).get(critic.tensor_keys.value)
    (grad,) = torch.autograd.grad(q.sum(), actions)
    tau = float(critic.tau)
    half_width = (high - low) / 2
    g = grad * half_width / tau  # the slope in the unit coordinates of the box, where the analysis holds
    a = (actions.detach() - low) / half_width - 1
    saturated = a.abs() > SATURATION
    quantiles = torch.tensor([0.1, 0.5, 0.9])
    return {
        "run_dir": str(run_dir),
        "env": cfg.env.name,
        "seed": cfg.seed,
        "frames": int(checkpoint["frames"]),
        "tau": tau,
        "reward_scale": float(cfg.loss.reward_scale),
        "states": int(observation.shape[0]),
        "particles": particles,
        "saturated_fraction": saturated.float().mean().item(),
        "target_saturated_fraction": target_saturated_probability(g).mean().item(),
        "abs_slope_quantiles_10_50_90": torch.quantile(g.abs().flatten(), quantiles).tolist(),
        "abs_slope_quantiles_saturated_10_50_90": (
            torch.quantile(g.abs()[saturated], quantiles).tolist() if saturated.any() else None
        ),
        "mean_q": q.mean().item(),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dirs", nargs="+", type=Path, help="recipes/sql.py run directories (config.yaml, checkpoint.pt)")
    p.add_argument("--states", type=int, default=1000, help="the last N observations of the replay buffer")
    p.add_argument("--particles", type=int, default=16, help="sampler draws per state")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = p.parse_args(argv)
    for run_dir in args.run_dirs:
        if not (run_dir / "config.yaml").is_file() or not (run_dir / "checkpoint.pt").is_file():
            raise SystemExit(f"{run_dir} holds no config.yaml and checkpoint.pt: pass a recipes/sql.py run directory")
    rows = [analyse(run_dir, args.states, args.particles, args.seed) for run_dir in args.run_dirs]
    for row in rows:
        print(json.dumps(row))
    result = {
        "command": "python -m benchmarks.sql_saturation " + " ".join(argv if argv is not None else __import__("sys").argv[1:]),
        "definition": __doc__,
        "saturation": SATURATION,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
