"""Target-network updates of both loops: a hard copy every ``N`` updates (DQN; soft Q-learning's
reference) or Polyak averaging after every update (SAC), both with TorchRL's updaters."""
from __future__ import annotations

from collections.abc import Callable

from omegaconf import DictConfig
from torchrl.objectives import HardUpdate, LossModule, SoftUpdate

__all__ = ["PeriodicHardUpdate", "actor_critic_target_update"]


class PeriodicHardUpdate:
    """Copies every online parameter into its target (``copy_``: the target stays its own tensor)
    when the loop's update count is a multiple of ``every``, i.e. right after updates ``N, 2N, ...``.

    The count is the loop's (``RecipeRun.updates``, restored on resume), not a counter of its own:
    TorchRL's ``HardUpdate(interval=N)`` copies on every ``(N + 1)``-th ``step()`` and restarts its
    count on resume, so it is stepped here with interval 0, which copies on each call."""

    def __init__(self, loss_module: LossModule, every: int):
        self.every = every
        self._copy = HardUpdate(loss_module, value_network_update_interval=0)

    def __call__(self, updates: int) -> None:
        if updates % self.every == 0:
            self._copy.step()


def actor_critic_target_update(loss_module: LossModule, loss_cfg: DictConfig) -> Callable[[int], None]:
    """The actor-critic loop's target update, called with the update count after every update:
    ``loss.target_update=polyak`` averages at rate ``loss.polyak`` each time, ``hard`` copies every
    ``loss.hard_update_interval`` updates (:class:`PeriodicHardUpdate`)."""
    if loss_cfg.target_update == "hard":
        return PeriodicHardUpdate(loss_module, loss_cfg.hard_update_interval)
    soft = SoftUpdate(loss_module, tau=loss_cfg.polyak)
    return lambda updates: soft.step()
