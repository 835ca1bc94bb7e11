from __future__ import annotations

import os

# Target networks updated by hand in the tests would otherwise warn on every call.
os.environ.setdefault("RL_WARNINGS", "False")
