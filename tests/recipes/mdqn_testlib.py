"""A tiny recipes/m_dqn.py MinAtar run, shared by the tests that need a real trained network (checkpoint.pt +
config.yaml): the planning recipe's and the MinAtar tree-search benchmark's."""
from __future__ import annotations

# A few hundred frames on MinAtar (Breakout unless env.name says otherwise): seconds of training, a
# checkpoint every other batch, no torch.compile. No copy to the target network within the run, so a
# loaded network can be told apart from the target one.
TINY_MINATAR_MDQN = [
    "env=minatar",
    "compile=false",
    "collector.total_frames=160",
    "collector.num_envs=4",
    "collector.frames_per_batch=40",
    "optim.learning_starts=80",
    "optim.target_update_interval=1000",
    "buffer.size=200",
    "buffer.batch_size=8",
    "buffer.storage=tensor",
    "eval.interval=160",
    "eval.episodes=1",
    "eval.max_steps=10",
    "checkpoint.interval=80",
    "logger.progress_bar=false",
]
