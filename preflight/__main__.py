"""Run the command line with `python -m preflight`."""

from preflight.cli import console

console()
