"""``python -m benchmarks.planning <subcommand>``: the planning studies (the package's docstring lists them)."""
from benchmarks.planning import main

main()
