"""The `config.valid` check: the config parsed, and secrets come from the environment."""

from __future__ import annotations

from typing import TYPE_CHECKING

from preflight.engine.model import Outcome
from preflight.engine.registry import check

if TYPE_CHECKING:
    from preflight.config.context import CheckContext


def unbraced_reference(value: str | None) -> str | None:
    """NAME, when a key is written $NAME: a shell's spelling of an environment reference, taken literally here."""
    name = (value or "")[1:]
    return name if (value or "").startswith("$") and name.isidentifier() and name.isascii() else None


@check("config.valid", "Config is valid and keys come from the environment", scope="target",
       tags=("config", "offline"), timeout_s=5, waitable=False,
       proves="The config file parsed into a complete target, and every API key is read from an environment "
              "variable rather than written in the file.",
       how="Parsing happens before any check runs (a broken file exits 2 with file:line:field); this check then "
           "looks at where each service's key came from.",
       failure_means="A warn means a key is written literally in the file, where it ends up in version control "
                     "and in support tickets.",
       fix="Move the key to an environment variable and reference it: api_key: ${DW_QWEN_KEY}.")
async def config_valid(context: CheckContext) -> Outcome:
    target = context.target
    literal = [service.name for service in target.services if service.api_key_literal]
    missing = [service.name for service in target.services if not service.api_key]
    evidence = {
        "config": context.config.path or "(command line)",
        "services": [service.name for service in target.services],
        "workspace": target.workspace, "resource_group": target.resource_group,
        "keys_from_environment": sorted(s.api_key_env for s in target.services if s.api_key_env),
    }
    unbraced = {service.name: name for service in target.services if service.api_key_literal
                and (name := unbraced_reference(service.api_key))}
    if unbraced:
        spelling = ", ".join(f"{service}: api_key: ${{{name}}}" for service, name in unbraced.items())
        return Outcome.warned(
            f"API key of {', '.join(unbraced)} is an environment reference without braces, taken literally",
            f"Write the reference with braces so the variable is read ({spelling}).",
            **evidence, literal_keys=literal, unbraced_references=sorted(unbraced.values()))
    if literal:
        return Outcome.warned(
            f"API key written literally in the config for {', '.join(literal)}",
            "Keys belong in the environment: export DW_KEY=... and write api_key: ${DW_KEY} in the config.",
            **evidence, literal_keys=literal)
    if missing:
        evidence["services_without_key"] = missing
    parts = [f"{len(target.services)} service(s)"]
    if target.workspace is None or target.resource_group is None:
        parts.append("no workspace/resource group: control-plane checks will skip")
    return Outcome.passed("config parsed: " + "; ".join(parts), **evidence)


CHECKS = (config_valid,)
