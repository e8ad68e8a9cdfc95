"""Built-in checks: cloud (filled in by its issue)."""

from __future__ import annotations

from preflight.registry import Check

CHECKS: tuple[Check, ...] = ()
