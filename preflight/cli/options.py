"""The parser's building blocks: argparse with main() owning every exit, help wrapped to the terminal, and the
option groups several commands share."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def terminal_columns() -> int:
    """shutil.get_terminal_size().columns: COLUMNS when it is a positive number, else the terminal's, else 80."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns > 0:
        return columns
    stdout = sys.__stdout__
    try:
        return os.get_terminal_size(stdout.fileno()).columns or 80 if stdout is not None else 80
    except (AttributeError, ValueError, OSError):
        return 80


class Formatter(argparse.HelpFormatter):
    """argparse's help layout, without importing shutil (and with it bz2 and lzma) to learn the terminal's width:
    argparse makes a formatter for every argument it adds, at every command's start."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position, terminal_columns() - 2 if width is None else width)

    def _split_lines(self, text: str, width: int) -> list[str]:
        import textwrap

        # As argparse wraps help, but never inside a hyphenated name (a scenario, an option).
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


class Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so main() owns every exit code."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> Any:
        from preflight.errors import UsageError

        command = self.prog.partition(" ")[2]  # main() prints "preflight: " before it already
        raise UsageError(f"{command}: {message}" if command else message)


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """What a run prints and writes, and how far it goes: `run`, `demo` and `ingest`."""
    parser.add_argument("--format", choices=("console", "json"), default="console",
                        help="what to print on stdout (reports are written either way)")
    parser.add_argument("--report-dir", default="reports", metavar="DIR",
                        help="where report.json, junit.xml, report.md and report.html go (default: reports/)")
    parser.add_argument("--no-reports", action="store_true", help="write no report files")
    parser.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    parser.add_argument("--timeout", type=float, default=300.0, metavar="S",
                        help="deadline for the whole run in seconds (default 300)")
    parser.add_argument("--only", action="append", default=[], metavar="ID|TAG",
                        help="run only these checks (and what they depend on); ids, tags, planes or globs")
    parser.add_argument("--skip", action="append", default=[], metavar="ID|TAG",
                        help="skip these checks; checks depending on them skip with a reason")
    parser.add_argument("--target", action="append", default=[], metavar="NAME", help="only these targets")
    parser.add_argument("--max-tokens-budget", type=int, default=None, metavar="N",
                        help="stop inference checks once N tokens are spent")
    parser.add_argument("--concurrency", type=int, default=256, metavar="N", help="checks running at once")
    parser.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                        help="colour the console output (default auto: on a terminal, unless NO_COLOR is set)")
    parser.add_argument("--ca-bundle", metavar="FILE", help="trust this private CA for https endpoints (verification "
                        "stays on)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="print each cloud call's action, request fields and raw answer (redacted) to stderr")


def add_wait_options(parser: argparse.ArgumentParser) -> None:
    """`--wait` and its `--interval`: `run` and `demo`."""
    parser.add_argument("--wait", metavar="DURATION", default=None,
                        help="re-run what did not pass (and what it blocked) until everything passes or DURATION "
                             "(90s, 10m, 1h) is spent; a failure waiting cannot change stops the wait at once")
    parser.add_argument("--interval", type=float, default=10.0, metavar="S",
                        help="with --wait: seconds between rounds (default 10)")


def add_from_options(parser: argparse.ArgumentParser) -> None:
    """Where the network and data checks observe from: `run` and `demo`."""
    parser.add_argument("--from", dest="origin", choices=("local", "resource-group"), default="local",
                        help="where the network and data checks observe from (default: here)")
    parser.add_argument("--send-key", action="store_true",
                        help="with --from resource-group: send the API keys inside the submitted script so the "
                             "key and model checks also run there (the script is stored with the instance)")


__all__ = ["Formatter", "Parser", "add_from_options", "add_output_options", "add_wait_options", "terminal_columns"]
