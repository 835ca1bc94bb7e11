"""``python -m benchmarks.planning <subcommand>``: the planning studies (the package's docstring lists them).

One thread: the BLAS and OpenMP thread counts are read when their libraries load, so they are set here, before
the studies (and torch) are imported; importing :mod:`benchmarks.planning` itself sets no environment variable."""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from benchmarks.planning import main  # noqa: E402

main()
