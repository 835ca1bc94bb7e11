"""The progress bar of a run (tqdm)."""
from __future__ import annotations

import logging
import time

__all__ = ["ProgressBar"]


class ProgressBar:
    """tqdm bar over frames (or another ``unit``: a planning run counts episodes) showing the recent return and the
    steps (units) per second."""

    def __init__(self, total: int, initial: int = 0, enabled: bool = True, desc: str = "train", unit: str = "frames"):
        from tqdm.auto import tqdm

        self._bar = tqdm(total=total, initial=initial, disable=not enabled, unit=unit, desc=desc, dynamic_ncols=True)
        self._t0 = time.perf_counter()
        self._f0 = initial
        self._rate = f"{'steps' if unit == 'frames' else unit}/s"

    def update(self, frames: int, **postfix: float) -> None:
        self._bar.update(frames)
        elapsed = time.perf_counter() - self._t0
        sps = (self._bar.n - self._f0) / elapsed if elapsed > 0 else 0.0
        shown = {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in postfix.items() if v == v}
        self._bar.set_postfix(shown | {self._rate: f"{sps:.0f}"}, refresh=False)

    def log(self, logger: logging.Logger, message: str) -> None:
        """``logger.info(message)`` with its console line written above the bar, not into it (tqdm's
        ``logging_redirect_tqdm``); a log file gets it as any line."""
        from tqdm.contrib.logging import logging_redirect_tqdm

        with logging_redirect_tqdm():
            logger.info(message)

    def close(self) -> None:
        self._bar.close()
