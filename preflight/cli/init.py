"""`preflight init`: a starting config from what the account says, every guess marked with a comment.

The file is written as text, not dumped from data: YAML libraries drop comments, and the comments that say what
was guessed are the point of the file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from preflight.cloud.session import call, close_sessions
from preflight.config import REGION_PATTERN, CloudConfig, Config, TargetConfig, parse_config
from preflight.config.context import CheckContext
from preflight.engine.context import Resources
from preflight.errors import EXIT_OK, CloudError, PreflightError, UsageError

MODEL_DOMAIN = ".dataworks-model.aliyuncs.com"
PAGE_SIZE = 100
MAX_PAGES = 50


class InitError(PreflightError):
    """The account does not give enough to write a config (no attached Serverless group, a refused call)."""


@dataclass(frozen=True)
class FoundGroup:
    """A Serverless resource group attached to the workspace, its first VPC, and the model domains bound there."""

    id: str
    status: str
    first_vpc: str | None
    other_vpcs: tuple[str, ...] = ()
    services: tuple[str, ...] = ()  # model domains (zone names) bound to the first VPC


@dataclass(frozen=True)
class Discovery:
    workspace: str
    region: str
    groups: tuple[FoundGroup, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)


def _context(workspace: str, region: str, cloud: CloudConfig) -> CheckContext:
    """A context for the cloud layer's one call function, as a run's control checks get it."""
    target = TargetConfig(name="init", workspace=workspace)
    config = Config(region=region, targets=(target,), cloud=cloud)
    return CheckContext(config=config, target=target, service=None, resources=Resources())


async def _pages(context: CheckContext, action: str, listing: str, **fields: Any) -> list[dict[str, Any]]:
    """Every item of a DataWorks paged answer (PagingInfo.<listing>)."""
    found: list[dict[str, Any]] = []
    for page in range(1, MAX_PAGES + 1):
        answer = await call(context, "dataworks", action, page_number=page, page_size=PAGE_SIZE, **fields)
        info = answer.get("PagingInfo") or {}
        batch = info.get(listing) or []
        found.extend(batch)
        if not batch or len(found) >= int(info.get("TotalCount") or 0):
            break
    return found


async def _attached(context: CheckContext, group: str, workspace: str) -> bool:
    answer = await call(context, "dataworks", "ListResourceGroupAssociateProjects", resource_group_id=group)
    return workspace in {str(project) for project in answer.get("ProjectIdList") or []}


async def _zones_by_vpc(context: CheckContext, region: str) -> tuple[dict[str, list[str]], str | None]:
    """Model domains of this region by the VPCs their PrivateZone zones are bound to; a note when unreadable."""
    try:
        answer = await call(context, "pvtz", "DescribeZoneVpcTree")
    except CloudError as error:
        return {}, (f"PrivateZone could not be read ({error.code}: {error}); add the services by hand "
                    "(pvtz:DescribeZoneVpcTree lists them)")
    by_vpc: dict[str, list[str]] = {}
    suffix = f".{region}{MODEL_DOMAIN}"
    for zone in (answer.get("Zones") or {}).get("Zone") or []:
        name = str(zone.get("ZoneName") or "")
        if not name.endswith(suffix):
            continue
        for vpc in (zone.get("Vpcs") or {}).get("Vpc") or []:
            by_vpc.setdefault(str(vpc.get("VpcId")), []).append(name)
    return by_vpc, None


async def discover(workspace: str, region: str, cloud: CloudConfig, resource_group: str | None = None) -> Discovery:
    """Ask the account: the Serverless groups attached to the workspace, each one's first VPC, and the model
    services whose private zone is bound to that VPC."""
    context = _context(workspace, region, cloud)
    try:
        return await _discover(context, workspace, region, resource_group)
    except CloudError as error:
        action = f" ({error.action})" if error.action else ""
        raise InitError(f"the account could not be read{action}: {error.code}: {error}") from None
    finally:
        await context.resources.aclose()


async def _discover(context: CheckContext, workspace: str, region: str, resource_group: str | None) -> Discovery:
    if resource_group is not None:
        answer = await call(context, "dataworks", "GetResourceGroup", id=resource_group)
        listed = [answer.get("ResourceGroup") or {"Id": resource_group}]
    else:
        listed = await _pages(context, "ListResourceGroups", "ResourceGroupList", resource_group_types=["CommonV2"])
    attached = [group for group in listed if await _attached(context, str(group.get("Id")), workspace)]
    if not attached:
        which = f"resource group {resource_group} is not" if resource_group else "no Serverless resource group is"
        raise InitError(f"{which} attached to workspace {workspace} in {region}; attach one (DataWorks > "
                        "Resource Groups > Associate Workspace), or check --workspace and --region")
    zones, note = await _zones_by_vpc(context, region)
    groups = []
    for group in attached:
        group_id = str(group.get("Id"))
        networks = await _pages(context, "ListNetworks", "NetworkList", resource_group_id=group_id)
        ordered = sorted(networks, key=lambda b: (b.get("CreateTime") or 0, b.get("Id") or 0))
        vpcs = [str(binding.get("VpcId")) for binding in ordered]
        first = vpcs[0] if vpcs else None
        groups.append(FoundGroup(group_id, str(group.get("Status") or "?"), first, tuple(vpcs[1:]),
                                 tuple(sorted(zones.get(first, []))) if first else ()))
    return Discovery(workspace, region, tuple(groups), (note,) if note else ())


def _env_name(service_id: str) -> str:
    return "DW_" + re.sub(r"[^A-Z0-9]+", "_", service_id.upper()).strip("_") + "_KEY"


def _kind(service_id: str) -> str:
    """What a service's id suggests it serves; only a guess, and the file says so."""
    lowered = service_id.lower()
    if any(word in lowered for word in ("bge", "embed", "m3e", "gte")):
        return "embedding"
    return "chat" if "chat" in lowered else "completion"


def _text(value: str) -> str:
    """A YAML scalar: plain when it is a plain id, else JSON-quoted (which YAML reads)."""
    return value if re.fullmatch(r"[A-Za-z][A-Za-z0-9_.:/-]*", value) else json.dumps(value)


def render(discovery: Discovery, cloud: CloudConfig | None = None) -> str:
    """The config text: a target per group, a service per model domain, `# guessed:` on every guess."""
    lines = [
        "# yaml-language-server: $schema=./config.schema.json",
        "# (editors complete and check this file with the schema: preflight schema > config.schema.json)",
        f"# Written by `preflight init --workspace {discovery.workspace} --region {discovery.region}` from what the "
        "account says.",
        "# Lines marked `guessed:` are guesses: check them before you rely on the gate.",
        "version: 1",
        f"region: {_text(discovery.region)}",
    ]
    if cloud is not None and cloud.endpoint:
        lines += ["cloud:", f"  endpoint: {_text(cloud.endpoint)}", f"  protocol: {cloud.protocol}"]
        if cloud.network_endpoints:
            lines.append("  network_endpoints: {" + ", ".join(
                f"{key}: {_text(value)}" for key, value in cloud.network_endpoints.items()) + "}")
    lines.append("targets:")
    for index, group in enumerate(discovery.groups):
        name = "prod" if len(discovery.groups) == 1 else f"group-{index + 1}"
        lines += [f"  - name: {name}   # guessed: name it as your team calls this environment",
                  f"    workspace: {json.dumps(discovery.workspace)}",
                  f"    resource_group: {_text(group.id)}   # status {group.status}",
                  f"    # first VPC (model calls leave through it): {group.first_vpc or 'none bound yet'}"]
        if group.other_vpcs:
            lines.append(f"    # other bindings, which model calls do not use: {', '.join(group.other_vpcs)}")
        lines.append("    nodes: []   # add the ids of scheduled nodes that call these models")
        if not group.services:
            lines += ["    # no model service's private zone is bound to the first VPC; add services by hand",
                      "    services: []"]
            continue
        lines.append("    services:")
        for host in group.services:
            service_id = host.split(".")[0]
            lines += [f"      - name: {_text(service_id)}",
                      f"        kind: {_kind(service_id)}   # guessed from its id: completion, chat or embedding",
                      f"        endpoint: http://{host}",
                      f"        api_key: ${{{_env_name(service_id)}}}   # export {_env_name(service_id)}=DW-...",
                      "        # model: qwen3-1.7b   # guessed: uncomment with the served model's name"]
    for note in discovery.notes:
        lines.append(f"# note: {note}")
    return "\n".join(lines) + "\n"


def environment_for(text: str) -> Mapping[str, str]:
    """A value for every ${NAME} the text names, to check that the file loads before the user sets them."""
    return {name: "DW-placeholder" for name in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text)}


def cmd_init(args: argparse.Namespace) -> int:
    if not re.fullmatch(REGION_PATTERN, args.region):
        raise UsageError(f"--region: expected a region id like cn-beijing, got '{args.region}'")
    output = None if args.output == "-" else Path(args.output)
    if output is not None and output.exists() and not args.force:
        raise UsageError(f"{output} exists; pass --force to replace it, or -o another file")
    cloud = CloudConfig()
    if args.cloud_endpoint:
        cloud = CloudConfig(endpoint=args.cloud_endpoint, protocol=args.cloud_protocol,
                            network_endpoints={product: args.cloud_endpoint for product in ("pvtz", "privatelink",
                                                                                            "vpc")})
    try:
        discovery = asyncio.run(discover(args.workspace, args.region, cloud, args.resource_group))
    finally:
        close_sessions()
    text = render(discovery, cloud if args.cloud_endpoint else None)
    parse_config(text, str(output or "<init>"), environment_for(text))  # what it writes must load
    if output is None:
        sys.stdout.write(text)
        return EXIT_OK
    output.write_text(text, encoding="utf-8")
    services = sum(len(group.services) for group in discovery.groups)
    print(f"wrote {output}: {len(discovery.groups)} target(s), {services} service(s); check the lines marked "
          "'guessed:', export the keys it names, then run: preflight run -c " + str(output), file=sys.stderr)
    return EXIT_OK


__all__ = ["Discovery", "FoundGroup", "InitError", "cmd_init", "discover", "environment_for", "render"]
