"""Benchmarks: learning sweeps (``learning_*.yaml``, run by ``python -m torchrl_reg.sweep``), speed and
memory scripts run from the repository root as modules (``python -m benchmarks.update_cost``), and
their committed results under ``benchmarks/results/``."""
