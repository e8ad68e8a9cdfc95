"""`preflight probe-script` and `preflight ingest`: the collector to paste into a DataWorks node, and the
judgement of what a node's log recorded."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from preflight.cli.run import execute
from preflight.config import load_config
from preflight.errors import EXIT_OK, UsageError


def cmd_probe_script(args: argparse.Namespace) -> int:
    from preflight.probe.script import build_collector_source, build_plan, build_shell_script

    config = load_config(args.config, os.environ)
    target = next((t for t in config.targets if t.name == args.target), None)
    if target is None:
        names = ", ".join(t.name for t in config.targets)
        raise UsageError(f"--target: no target named {args.target} in {args.config} (targets: {names})")
    plan = build_plan(config, target, send_key=args.send_key)
    text = build_collector_source(plan) if args.form == "python" else build_shell_script(plan, config.in_network.python)
    sys.stdout.write(text)
    if not args.send_key:
        print("# no API key inside: the key and model checks will run from where you run `preflight ingest`",
              file=sys.stderr)
    return EXIT_OK


def cmd_ingest(args: argparse.Namespace) -> int:
    from preflight.probe.submit import ingest

    config = load_config(args.config, os.environ)
    path = Path(args.logfile)
    try:
        log = path.read_bytes().decode("utf-8", "replace")
    except OSError as exc:
        raise UsageError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    collected = ingest(log, config, str(path))
    if not args.only:
        args.only = ["network", "data", "config.valid"]
    note = f"observations ingested from {path}"
    return execute(config, args, notes=(note,), collected=collected)


__all__ = ["cmd_ingest", "cmd_probe_script"]
