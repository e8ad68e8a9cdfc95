"""`preflight demo`: the whole catalogue against the built-in simulator, in one process; the simulator's scenario
names for the `demo` and `simulate` help."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from preflight.cli.run import execute
from preflight.errors import EXIT_OK
from preflight.simulator.scenarios import SCENARIOS, get_scenario


def scenario_help() -> str:
    """--scenario's help, naming every scenario: only `demo` and `simulate` build it, which import the simulator
    anyway (`preflight --help` shows no option of a subcommand, and other commands never load the simulator)."""
    return ("the named fault to inject (default: healthy); demo --list-scenarios says what each does: "
            + ", ".join(SCENARIOS))


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set variables for the duration of a demo (the credential chain reads the process environment)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def cmd_demo(args: argparse.Namespace) -> int:
    if args.list_scenarios:
        for scenario in SCENARIOS.values():
            cause = f"{scenario.root_cause} ({scenario.root_status})" if scenario.root_cause else "none: exit 0"
            print(f"{scenario.name:<20} {scenario.description}; root cause: {cause}")
        return EXIT_OK
    scenario = get_scenario(args.scenario)
    from preflight.config import parse_config
    from preflight.simulator.harness import Simulator

    with Simulator(scenario) as simulator:
        environ = simulator.environ()
        text = simulator.config_text()
        config = parse_config(text, f"<demo:{scenario.name}>", {**os.environ, **environ})
        note = f"demo scenario '{scenario.name}': {scenario.description}"
        with _environment(environ):
            return execute(config, args, notes=(note,))


__all__ = ["cmd_demo", "scenario_help"]
