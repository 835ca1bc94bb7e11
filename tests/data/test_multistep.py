"""n-step transforms: the done flags of a row are those of the state it bootstraps from.

The trajectory is built by hand (observation = step index) so that every expected value below is
read off the episode boundaries: env 0 terminates at step 4 and is truncated by a time limit at
step 9, env 1 runs on; n = 3.
"""
from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from torch import nn
from torchrl.data import Categorical, LazyTensorStorage, ReplayBuffer
from torchrl.data import MultiStep as TorchRLMultiStep
from torchrl.modules import QValueActor

from torchrl_reg.data import MultiStep, MultiStepTransform
from torchrl_reg.objectives import MunchausenDQNLoss

T, N, GAMMA = 12, 3, 0.9
# Env 0, by hand: windows stop after a done step (4: terminated, 9: truncated) and at the batch end.
STEPS_0 = [3, 3, 3, 2, 1, 3, 3, 3, 2, 1, 2, 1]
TERMINATED_0 = [False, False, True, True, True, False, False, False, False, False, False, False]
TRUNCATED_0 = [False, False, False, False, False, False, False, True, True, True, False, False]
STEPS_1 = [3] * 10 + [2, 1]


def trajectory() -> TensorDict:
    terminated = torch.zeros(2, T, 1, dtype=torch.bool)
    truncated = torch.zeros(2, T, 1, dtype=torch.bool)
    terminated[0, 4] = True
    truncated[0, 9] = True
    steps = torch.arange(T, dtype=torch.float32).expand(2, T)
    return TensorDict(
        {
            "observation": steps.unsqueeze(-1).clone(),
            "action": torch.zeros(2, T, dtype=torch.long),
            "next": {
                "observation": (steps + 1).unsqueeze(-1).clone(),
                "reward": torch.ones(2, T, 1),
                "terminated": terminated,
                "truncated": truncated,
                "done": terminated | truncated,
            },
        },
        [2, T],
    )


def check_rows(out: TensorDict, rows: int) -> None:
    for env, steps in ((0, STEPS_0), (1, STEPS_1)):
        for t in range(rows):
            k = steps[t]
            assert int(out["steps_to_next_obs"][env, t]) == k
            # the row bootstraps from the next observation of step t + k - 1 ...
            assert float(out["next", "observation"][env, t]) == t + k
            assert float(out["next", "reward"][env, t]) == pytest.approx(sum(GAMMA**i for i in range(k)))
            # ... and carries that step's flags
            terminated = TERMINATED_0[t] if env == 0 else False
            truncated = TRUNCATED_0[t] if env == 0 else False
            assert bool(out["next", "terminated"][env, t]) is terminated, (env, t)
            assert bool(out["next", "truncated"][env, t]) is truncated, (env, t)
            assert bool(out["next", "done"][env, t]) is (terminated or truncated), (env, t)


def test_torchrl_multistep_keeps_the_flags_of_step_t():
    """Why this module exists (torchrl 0.14.1): the window 2..4 ends on a termination, yet the row
    keeps step 2's terminated=False. If this starts failing, TorchRL fixed it upstream."""
    out = TorchRLMultiStep(gamma=GAMMA, n_steps=N)(trajectory())
    assert float(out["next", "observation"][0, 2]) == 5.0  # the terminal observation
    assert not bool(out["next", "terminated"][0, 2])


def test_multistep_flags_are_those_of_the_bootstrap_state():
    data = trajectory()
    out = MultiStep(gamma=GAMMA, n_steps=N)(data)
    check_rows(out, T)
    # the input batch is left as it was
    assert bool(data["next", "terminated"][0, 4]) and not bool(data["next", "terminated"][0, 2])


def test_replay_buffer_transform_across_extend_calls():
    """Extended in chunks of 4 steps: rows are emitted n steps late, with the flags of their window."""
    rb = ReplayBuffer(storage=LazyTensorStorage(100, ndim=2), transform=MultiStepTransform(n_steps=N, gamma=GAMMA))
    data = trajectory()
    for start in range(0, T, 4):
        rb.extend(data[:, start : start + 4])
    stored = rb.storage[:]
    if stored.shape[0] != 2:  # the 2-d storage lays rows out time-major
        stored = stored.transpose(0, 1)
    assert stored.shape == (2, T - N)
    check_rows(stored, T - N)


def test_loss_ignores_the_next_state_exactly_where_the_window_terminated():
    """With the fixed flags, M-DQN's target at a terminated window does not depend on the next state."""
    torch.manual_seed(0)
    actor = QValueActor(nn.Linear(1, 2), in_keys=["observation"], spec=Categorical(2))
    loss = MunchausenDQNLoss(actor, reduction="none", loss_function="l2")
    loss.make_value_estimator(gamma=GAMMA)
    out = MultiStep(gamma=GAMMA, n_steps=N)(trajectory())[0]
    perturbed = out.clone()
    perturbed["next", "observation"] = perturbed["next", "observation"] + 100.0
    changed = loss(out.clone())["loss"] != loss(perturbed)["loss"]
    assert changed.tolist() == [not t for t in TERMINATED_0]
