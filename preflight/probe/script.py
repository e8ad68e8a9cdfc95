"""Build the in-network collector: a plan from the config, and a stdlib-only script that carries it."""

from __future__ import annotations

import json
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from preflight.config import Config, TargetConfig

KEY_OBSERVATIONS = ("models", "completion", "stream", "chat", "embedding")
KIND_OBSERVATIONS = {"completion": ("completion", "stream"), "chat": ("chat",), "embedding": ("embedding",)}
HEREDOC = "PREFLIGHT_COLLECTOR_EOF"
# The stdlib-only modules both collectors share, pasted before the collector in this order.
HELPERS = ("dnswire.py", "observations.py")


def build_plan(config: Config, target: TargetConfig, *, send_key: bool, budget_s: float = 240.0) -> dict[str, Any]:
    """What the collector observes for one target; keys only with send_key."""
    services = []
    for service in target.services:
        observe = ["dns", "tcp", "http"]
        if send_key and service.api_key:
            observe += ["models", *KIND_OBSERVATIONS[service.kind]]
        services.append({"name": service.name, "endpoint": service.endpoint, "kind": service.kind,
                         "model": service.model, "auth": service.auth, "prompt": service.prompt,
                         "max_tokens": service.max_tokens, "observe": observe,
                         "api_key": service.api_key if send_key else None})
    http = config.http
    return {"origin": f"resource-group:{target.resource_group}", "budget_s": budget_s,
            "dns": {"nameservers": list(config.dns.nameservers), "resolve": dict(config.dns.resolve),
                    "timeout_s": config.dns.timeout_s},
            "http": {"connect_timeout_s": http.connect_timeout_s, "read_timeout_s": http.read_timeout_s,
                     "total_timeout_s": http.total_timeout_s, "max_body_bytes": http.max_body_bytes,
                     "ca_bundle": None},
            "targets": [{"name": target.name, "services": services}]}


def group_plan(config: Config, members: tuple[TargetConfig, ...], *, send_key: bool, budget_s: float
               ) -> dict[str, Any]:
    """One collector's plan for every target on a resource group: the first's plan, observing them all."""
    plans = [build_plan(config, member, send_key=send_key, budget_s=budget_s) for member in members]
    return {**plans[0], "targets": [observed for plan in plans for observed in plan["targets"]]}


def _source(name: str) -> str:
    return resources.files("preflight.probe").joinpath(name).read_text(encoding="utf-8")


def build_collector_source(plan: dict[str, Any]) -> str:
    """Python source (3.6+, stdlib only): the helpers both collectors share, the collector, and the plan."""
    helpers = "\n\n".join(_source(name) for name in HELPERS)
    collector = _source("innetwork_script.py")
    plan_text = json.dumps(plan, separators=(",", ":"))
    return (f"# dw-preflight in-network collector: observes model services from this resource group.\n"
            f"{helpers}\n\n{collector}\n\nPLAN = json.loads({plan_text!r})\n\nif __name__ == '__main__':\n"
            f"    main(PLAN)\n")


def build_shell_script(plan: dict[str, Any], python: str = "python3") -> str:
    """A Shell node's script: the collector fed to the resource group's Python through a quoted heredoc."""
    source = build_collector_source(plan)
    if HEREDOC in source:  # cannot happen with our own source; a guard against a plan that carries it
        raise ValueError("the plan contains the heredoc terminator")
    return (f"#!/bin/sh\n# dw-preflight in-network collector (generated; safe to run again)\n"
            f"PY={python}\ncommand -v \"$PY\" >/dev/null 2>&1 || PY=python\n"
            f"\"$PY\" - <<'{HEREDOC}'\n{source}{HEREDOC}\n")


__all__ = ["KEY_OBSERVATIONS", "build_collector_source", "build_plan", "build_shell_script", "group_plan"]
