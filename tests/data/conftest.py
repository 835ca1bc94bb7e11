from __future__ import annotations

import os

# The Atari preprocessing resizes frames with small numpy matmuls; a multi-threaded BLAS on a
# loaded 2-core machine makes each of them ~50x slower. Effective only if numpy is not loaded yet.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
