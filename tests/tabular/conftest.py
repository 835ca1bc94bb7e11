from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    # The tabular tensors are tiny ([S, A] with S <= 50): intra-op threading only adds overhead,
    # up to 100x on a loaded 2-core machine.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
