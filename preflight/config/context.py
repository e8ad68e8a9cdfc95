"""The engine's context over this config: what a built-in check sees, and the DataWorks words the engine leaves out."""

from __future__ import annotations

from collections.abc import Callable

from preflight.config.model import Config, ServiceConfig, TargetConfig
from preflight.engine.context import Context

CheckContext = Context[Config, TargetConfig, ServiceConfig]


def target_header(config: Config) -> Callable[[TargetConfig], dict[str, str | None]]:
    """What a report's header says of each target of `config`: its region, workspace and resource group."""

    def describe(target: TargetConfig) -> dict[str, str | None]:
        return {"name": target.name, "region": config.region_of(target), "workspace": target.workspace,
                "resource_group": target.resource_group}

    return describe


__all__ = ["CheckContext", "target_header"]
