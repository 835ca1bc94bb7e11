"""Single-file plain-PyTorch DQN / M-DQN in the CleanRL style: the speed and return baseline of
``benchmarks/e2e_cartpole.py``.

It follows ``cleanrl/dqn.py`` (one env, one action per step, epsilon-greedy, one gradient step
every ``--train-frequency`` steps after ``--learning-starts``, target copy every
``--target-network-frequency`` steps, MSE loss, Adam) with a numpy replay buffer, and adds the
Munchausen target (``--target m_dqn``, Munchausen Reinforcement Learning, NeurIPS 2020,
arXiv:2007.14430, Sec. 2). It imports nothing from torchrl or torchrl_reg.

    python benchmarks/baseline_dqn.py --target m_dqn --seed 1 --json out.json
"""
from __future__ import annotations

import argparse
import json
import random
import time

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env-id", default="CartPole-v1")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--total-timesteps", type=int, default=500_000)
    p.add_argument("--learning-rate", type=float, default=2.5e-4)
    p.add_argument("--buffer-size", type=int, default=10_000)
    p.add_argument("--gamma", type=float, default=0.99)
    p.add_argument("--target-network-frequency", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--start-e", type=float, default=1.0)
    p.add_argument("--end-e", type=float, default=0.05)
    p.add_argument("--exploration-fraction", type=float, default=0.5)
    p.add_argument("--learning-starts", type=int, default=10_000)
    p.add_argument("--train-frequency", type=int, default=10)
    p.add_argument("--target", choices=("dqn", "m_dqn"), default="dqn")
    p.add_argument("--alpha", type=float, default=0.9)
    p.add_argument("--tau", type=float, default=0.03)
    p.add_argument("--clip-min", type=float, default=-1.0)
    p.add_argument("--clip-max", type=float, default=0.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None, help="write the result here")
    return p.parse_args()


class QNetwork(nn.Module):
    def __init__(self, obs_dim: int, n_actions: int):
        super().__init__()
        self.network = nn.Sequential(
            nn.Linear(obs_dim, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, n_actions)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)


def linear_schedule(start_e: float, end_e: float, duration: int, t: int) -> float:
    slope = (end_e - start_e) / duration
    return max(slope * t + start_e, end_e)


def main() -> None:
    args = parse_args()
    t_wall, t_cpu = time.perf_counter(), time.process_time()
    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    env = gym.make(args.env_id)
    env.action_space.seed(args.seed)
    obs_dim, n_actions = env.observation_space.shape[0], int(env.action_space.n)
    q_network = QNetwork(obs_dim, n_actions)
    optimizer = torch.optim.Adam(q_network.parameters(), lr=args.learning_rate)
    target_network = QNetwork(obs_dim, n_actions)
    target_network.load_state_dict(q_network.state_dict())

    size = args.buffer_size
    rb_obs = np.zeros((size, obs_dim), dtype=np.float32)
    rb_next_obs = np.zeros((size, obs_dim), dtype=np.float32)
    rb_actions = np.zeros(size, dtype=np.int64)
    rb_rewards = np.zeros(size, dtype=np.float32)
    rb_terminated = np.zeros(size, dtype=np.float32)
    rb_pos, rb_full = 0, False

    returns, return_steps = [], []
    episode_return = 0.0
    obs, _ = env.reset(seed=args.seed)
    for global_step in range(args.total_timesteps):
        epsilon = linear_schedule(
            args.start_e, args.end_e, int(args.exploration_fraction * args.total_timesteps), global_step
        )
        if random.random() < epsilon:
            action = env.action_space.sample()
        else:
            with torch.no_grad():
                action = int(q_network(torch.as_tensor(obs, dtype=torch.float32)).argmax().item())
        next_obs, reward, terminated, truncated, _ = env.step(action)
        episode_return += float(reward)

        # The true next observation is stored even when the episode was truncated (bootstrap kept).
        rb_obs[rb_pos], rb_next_obs[rb_pos] = obs, next_obs
        rb_actions[rb_pos], rb_rewards[rb_pos], rb_terminated[rb_pos] = action, reward, terminated
        rb_pos = (rb_pos + 1) % size
        rb_full = rb_full or rb_pos == 0
        if terminated or truncated:
            returns.append(episode_return)
            return_steps.append(global_step + 1)
            episode_return = 0.0
            next_obs, _ = env.reset()
        obs = next_obs

        if global_step > args.learning_starts:
            if global_step % args.train_frequency == 0:
                idx = np.random.randint(0, size if rb_full else rb_pos, size=args.batch_size)
                b_obs, b_next_obs = torch.from_numpy(rb_obs[idx]), torch.from_numpy(rb_next_obs[idx])
                b_actions = torch.from_numpy(rb_actions[idx])
                b_rewards, b_terminated = torch.from_numpy(rb_rewards[idx]), torch.from_numpy(rb_terminated[idx])
                with torch.no_grad():
                    q_next = target_network(b_next_obs)
                    if args.target == "dqn":
                        next_value = q_next.max(dim=1).values
                        bonus = 0.0
                    else:
                        # M-DQN: both log-policies from the target network, pi = softmax(q / tau), in the
                        # stable form tau*ln pi = q - max q - tau*logsumexp((q - max q)/tau).
                        q_now = target_network(b_obs)
                        adv = q_now - q_now.max(dim=1, keepdim=True).values
                        log_pi = adv - args.tau * torch.logsumexp(adv / args.tau, dim=1, keepdim=True)
                        log_pi_a = log_pi.gather(1, b_actions[:, None]).squeeze(1)
                        bonus = args.alpha * log_pi_a.clamp(args.clip_min, args.clip_max)
                        # sum_a' pi(a'|s')(q(s', a') - tau ln pi(a'|s')) = tau * logsumexp(q(s')/tau)
                        q_next_max = q_next.max(dim=1).values
                        next_value = q_next_max + args.tau * torch.logsumexp(
                            (q_next - q_next_max[:, None]) / args.tau, dim=1
                        )
                    td_target = b_rewards + bonus + args.gamma * next_value * (1.0 - b_terminated)
                old_val = q_network(b_obs).gather(1, b_actions[:, None]).squeeze(1)
                loss = F.mse_loss(td_target, old_val)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            if global_step % args.target_network_frequency == 0:
                target_network.load_state_dict(q_network.state_dict())
    env.close()

    wall, cpu = time.perf_counter() - t_wall, time.process_time() - t_cpu
    tail = returns[-100:]
    result = {
        "impl": "baseline",
        "target": args.target,
        "env": args.env_id,
        "seed": args.seed,
        "frames": args.total_timesteps,
        "wall_time_s": wall,
        "cpu_time_s": cpu,
        "steps_per_s": args.total_timesteps / wall,
        "final_return": float(np.mean(tail)) if tail else float("nan"),
        "episodes": len(returns),
        "return_steps": return_steps,
        "returns": returns,
    }
    print(
        f"baseline {args.target} {args.env_id} seed {args.seed}: {wall:.1f}s wall, {cpu:.1f}s cpu, "
        f"{result['steps_per_s']:.0f} steps/s, final return {result['final_return']:.1f}"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f)


if __name__ == "__main__":
    main()
