"""Run the command line with `python -m preflight`."""

from preflight.entry import console

console()
