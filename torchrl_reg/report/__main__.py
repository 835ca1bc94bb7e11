"""``python -m torchrl_reg.report RUN_DIR ...``: see :func:`torchrl_reg.report.summary.main`."""
from __future__ import annotations

import sys

from torchrl_reg.report.summary import main

if __name__ == "__main__":
    sys.exit(main())
