"""`preflight schema`: print the JSON Schema of preflight.yaml, or say whether a file is that schema."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from preflight.config.schema import schema_text
from preflight.errors import EXIT_FAILED, EXIT_OK, UsageError


def cmd_schema(args: argparse.Namespace) -> int:
    text = schema_text()
    if not args.check:
        sys.stdout.write(text)
        return EXIT_OK
    try:
        shipped = Path(args.check).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{args.check}: cannot be read: {exc.strerror or exc}") from None
    if shipped != text:
        print(f"{args.check} differs from the schema the config loader defines; regenerate it with "
              f"`preflight schema > {args.check}`", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


__all__ = ["cmd_schema"]
