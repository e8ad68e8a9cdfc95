"""The built-in check pack, registered through the `preflight.checks` entry point like any other pack."""

from __future__ import annotations

import importlib

from preflight.engine.registry import Check

# The order of the chain a model call depends on; the registry keeps it where dependencies allow.
_MODULES = ("checks.config", "checks.cloud", "checks.workspace", "checks.resource_group", "checks.network",
            "checks.schedule", "checks.endpoint", "checks.auth", "checks.model", "checks.inference")


def all_checks() -> list[Check]:
    """Every built-in check; each module keeps its checks in a `CHECKS` tuple."""
    found: list[Check] = []
    for name in _MODULES:
        found.extend(importlib.import_module(name).CHECKS)
    return found


__all__ = ["all_checks"]
