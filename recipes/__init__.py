"""Runnable recipes (one script per method); ``recipes.<name>.train(cfg)`` runs one programmatically."""
