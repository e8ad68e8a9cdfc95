"""Network checks: the resource group's first VPC, and whether the model service allows it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from checks.answers import (
    GONE,
    MAX_RECORD_PAGES,
    bindings,
    describe_endpoint,
    endpoints_in,
    live,
    region_endpoints,
    service_of,
    zone_for,
    zone_tree,
)
from checks.cloudfail import error_evidence, outcome_of
from preflight.cloud.session import extra_installed
from preflight.engine.model import Outcome
from preflight.engine.registry import check
from preflight.errors import CloudError

if TYPE_CHECKING:
    from preflight.config.context import CheckContext

DOCS = "https://www.alibabacloud.com/help/en/dataworks/user-guide/model-service"
ASSUMPTIONS = "docs/cloud-assumptions.md"
# Endpoints in the first VPC whose ENI addresses are read when none is named for the model, to find it by address.
MAX_UNNAMED_ENDPOINTS = 10
STARTING = ("Pending", "Creating")
FIRST_VPC_RULE = ("Model calls leave the resource group through the FIRST VPC binding (the earliest created, the top "
                  "of the group's network settings); a second or third binding does not count.")


@check("network.first_vpc", "The resource group's first VPC binding is Running", depends_on=("resource_group.ready",),
       plane="control", scope="target", tags=("control", "network"), timeout_s=30, docs=DOCS,
       proves="The group has a live VPC binding, and the first one (earliest created among those not Deleting or "
              "Deleted, as the console lists them) is Running.",
       how="ListNetworks (all pages), sorted by creation time; every binding is shown with time, VPC, vSwitch, "
           "status; Deleting and Deleted ones are shown apart and never chosen.",
       failure_means="Without a Running first binding, nodes cannot reach any VPC-only model service.",
       fix="DataWorks > Resource Groups > the group > Network Settings: bind the model's VPC first.")
async def first_vpc(context: CheckContext) -> Outcome:
    group = context.target.resource_group
    try:
        found = await bindings(context)
    except CloudError as error:
        return outcome_of(error, f"ListNetworks for {group}")
    def row(binding: dict[str, Any]) -> dict[str, Any]:
        return {"network_id": binding.get("Id"), "vpc": binding.get("VpcId"), "vswitch": binding.get("VswitchId"),
                "status": binding.get("Status"), "created": binding.get("CreateTime")}

    alive = live(found)
    gone = [row(b) for b in found if b.get("Status") in GONE]
    shown = [{"order": index + 1, **row(b)} for index, b in enumerate(alive)]
    evidence: dict[str, Any] = {"rule": FIRST_VPC_RULE, "bindings": shown}
    if gone:  # shown, so a user who sees an old VPC in the console knows why it is not the first
        evidence["deleted_bindings"] = gone
    listed_gone = ", ".join(f"{b['vpc']} {b['status']}" for b in gone)
    if not alive:
        also = f" ({len(gone)} binding(s) Deleting or Deleted: {listed_gone})" if gone else ""
        return Outcome.failed(f"{group} has no live VPC binding{also}", "Bind the VPC the model service allows: "
                              "DataWorks > Resource Groups > the group > Network Settings > Add Binding.", **evidence)
    first = alive[0]
    evidence.update({"first_vpc": first.get("VpcId"), "first_vswitch": first.get("VswitchId")})
    skipped = f" (not counting {listed_gone})" if gone else ""
    if first.get("Status") in STARTING:
        return Outcome.failed(f"the first binding ({first.get('VpcId')}) is still {first.get('Status')}, not "
                              f"Running yet{skipped}", "Wait until the binding is Running (a few minutes), then run "
                              "preflight again.", **evidence)
    if first.get("Status") != "Running":
        return Outcome.failed(f"the first binding ({first.get('VpcId')}) is {first.get('Status')}, not Running"
                              f"{skipped}", "Fix the binding in the group's Network Settings.", **evidence)
    more = f" (+{len(alive) - 1} more binding(s), which model calls do not use)" if len(alive) > 1 else ""
    more += skipped
    return Outcome.passed(f"first VPC {first.get('VpcId')} via {first.get('VswitchId')} is Running{more}",
                          **evidence)


async def record_targets(context: CheckContext, host: str) -> tuple[set[str], set[str]] | None:
    """The addresses (A) and names (CNAME) the model's PrivateZone record points to; None when it cannot be read."""
    if not extra_installed("pvtz"):
        return None
    try:
        zone = await zone_for(context, host)
    except CloudError:
        return None
    if zone is None or not zone["records"]:
        return None
    addresses = {str(r["value"]) for r in zone["records"] if r["type"] == "A"}
    names = {str(r["value"]).rstrip(".").lower() for r in zone["records"] if r["type"] == "CNAME"}
    return addresses, names


def serves(endpoint: dict[str, Any], targets: tuple[set[str], set[str]]) -> bool:
    """Whether the model's record points at this endpoint: one of its ENI addresses, or its domain."""
    addresses, names = targets
    return bool(addresses & set(endpoint["eni_ips"])) or str(endpoint.get("domain") or "").lower() in names


async def model_endpoints(context: CheckContext, vpc: str, host: str, service_id: str) -> dict[str, Any]:
    """The endpoints in `vpc` that serve the model, identified by more than the service name.

    Candidates are the endpoints named for the model; with none, the VPC's endpoints whose domain the record names,
    and a few others, read for their addresses. Each is `confirmed` when the model's PrivateZone record points at
    it. Returns the candidates, the record's targets (None: not readable) and how many endpoints the VPC has.
    """
    index = await region_endpoints(context)
    in_vpc = [endpoint for (where, _), found in index.items() if where == vpc for endpoint in found]
    named = [dict(endpoint) for endpoint in await endpoints_in(context, vpc, service_id)]  # the memo's stay as read
    targets = await record_targets(context, host)
    candidates = named
    if not named and targets is not None:
        by_domain = [e for e in in_vpc if str(e.get("EndpointDomain") or "").lower() in targets[1]]
        others = [e for e in in_vpc if e not in by_domain][:MAX_UNNAMED_ENDPOINTS]
        candidates = [await describe_endpoint(context, e) for e in by_domain + others]
    for endpoint in candidates:
        endpoint["named_for_model"] = service_of({"ServiceName": endpoint.get("service")}) == service_id
        endpoint["record_points_here"] = serves(endpoint, targets) if targets is not None else None
    return {"candidates": candidates, "targets": targets, "in_vpc": len(in_vpc)}


def _model_host(context: CheckContext) -> tuple[str, str]:
    from checks.judges.url import DATAWORKS_DOMAIN
    from preflight.probe.local import Endpoint

    assert context.service is not None
    host = Endpoint.of(context.service.endpoint).host
    match = DATAWORKS_DOMAIN.match(host)
    return host, match.group("id") if match else ""


@check("network.model_allowlist", "The first VPC is in the model service's allowed VPCs",
       depends_on=("network.first_vpc",), plane="control", tags=("control", "network"), timeout_s=30, docs=DOCS,
       waitable=False,
       proves="The resource group's first VPC is among the VPCs the model service allows.",
       how="Compares with allowed_vpcs from the config when given, else with the VPCs the model's PrivateZone zone "
           "is bound to (PrivateLink endpoints as a fallback).",
       failure_means="The classic trap: the model allows the group's second VPC, not its first, so DNS fails from "
                     "the nodes.",
       fix="Add the first VPC to the model service's allowed VPCs, or reorder the group's bindings.")
async def model_allowlist(context: CheckContext) -> Outcome:
    first = context.evidence_of("network.first_vpc")
    first_vpc = str(first.get("first_vpc"))
    others = [b["vpc"] for b in first.get("bindings", [])[1:]]
    assert context.service is not None
    host, service_id = _model_host(context)
    evidence: dict[str, Any] = {"first_vpc": first_vpc, "other_bindings": others, "rule": FIRST_VPC_RULE}
    allowed = list(context.service.allowed_vpcs)
    source = "config allowed_vpcs"
    if not allowed:
        if not service_id:
            return Outcome.skipped("not a DataWorks model domain: there is no model allowlist to compare with")
        if not extra_installed("pvtz"):
            return Outcome.warned("cannot verify: no allowed_vpcs in the config and the network extra is not "
                                  "installed to discover them", "pip install 'dw-preflight[network]', or list the "
                                  "model's allowed VPCs in allowed_vpcs.", **evidence)
        try:
            zone = await zone_for(context, host)
            source = "PrivateZone"
            if zone is not None:
                allowed = list(zone["bound_vpcs"])
                evidence["zone"] = zone["zone"]
            else:
                source = "PrivateLink"
                allowed = [first_vpc] if [e for e in await endpoints_in(context, first_vpc, service_id)
                                          if e["status"] == "Active"] else []
        except CloudError as error:
            return Outcome.warned(f"cannot verify: discovering the allowlist failed ({error.code} on {error.action})",
                                  "Grant pvtz:DescribeZoneVpcTree and pvtz:DescribeZoneRecords "
                                  "(AliyunPvtzReadOnlyAccess), or list "
                                  "the model's allowed VPCs in allowed_vpcs.", **evidence, **error_evidence(error))
    evidence.update({"allowed_vpcs": allowed, "source": source})
    if source == "PrivateLink":  # an endpoint found by its service name, which is not documented
        evidence["assumption"] = ASSUMPTIONS
        if not allowed:
            return Outcome.warned(f"cannot verify: no PrivateZone zone covers {host}, and no Active endpoint in "
                                  f"{first_vpc} is named for {service_id}", "List the model's allowed VPCs in "
                                  f"allowed_vpcs (DataWorks > Model Service > the service > network settings); see "
                                  f"{ASSUMPTIONS}.", **evidence)
    if first_vpc in allowed:
        return Outcome.passed(f"first VPC {first_vpc} is allowed ({source})", **evidence)
    trapped = [vpc for vpc in others if vpc in allowed]
    if trapped:
        position = others.index(trapped[0]) + 2
        return Outcome.failed(
            f"the model allows {trapped[0]}, the group's binding #{position}, but not its first VPC {first_vpc}, "
            "which model calls use", f"Add {first_vpc} to the model service's allowed VPCs (DataWorks > Model "
            f"Service > the service > network settings), or make {trapped[0]} the group's first binding. "
            + FIRST_VPC_RULE, **evidence)
    listed = ", ".join(allowed) or f"none found via {source}"
    return Outcome.failed(f"first VPC {first_vpc} is not among the model's allowed VPCs ({listed})",
                          f"Add {first_vpc} to the model service's allowed VPCs "
                          "(DataWorks > Model Service > the service > network settings) and wait until it is "
                          "Available.", **evidence)


@check("network.private_dns", "PrivateZone record for the model domain is bound to the first VPC",
       depends_on=("network.model_allowlist",), plane="control", tags=("control", "network", "optional"),
       timeout_s=30, docs=DOCS,
       proves="A PrivateZone zone covers the model domain, holds an enabled record for the model's own name, and "
              "is bound to the first VPC.",
       how="pvtz DescribeZoneVpcTree (every zone and its VPCs, once per run), then DescribeZoneRecords for the "
           "zone, every page, shared with network.model_allowlist. Where DataWorks keeps the zone is not "
           f"documented: a zone not found is a warning ({ASSUMPTIONS}).",
       failure_means="Without the record in the first VPC the domain does not resolve from the nodes.",
       fix="Re-save the model service's network settings so DataWorks recreates the zone binding.")
async def private_dns(context: CheckContext) -> Outcome:
    host, service_id = _model_host(context)
    if not service_id:
        return Outcome.skipped("not a DataWorks model domain: no private zone to look for")
    if not extra_installed("pvtz"):
        return Outcome.skipped("the network extra is not installed (pip install 'dw-preflight[network]')")
    first_vpc = str(context.evidence_of("network.model_allowlist").get("first_vpc"))
    try:
        zone = await zone_for(context, host)
    except CloudError as error:
        if error.code.startswith("Forbidden"):
            return Outcome.skipped(f"no permission to read PrivateZone ({error.auth_action or error.action}); grant "
                                   "AliyunPvtzReadOnlyAccess to see this evidence")
        return outcome_of(error, f"PrivateZone lookup for {host}")
    if zone is None:
        zones = len(await zone_tree(context))
        return Outcome.warned(f"cannot tell which zone serves {host}: none of the account's {zones} PrivateZone "
                              "zone(s) covers it (DataWorks may keep the model's zone where this account does not "
                              "see it)", f"If the domain does not resolve from the nodes (endpoint.dns), re-save the "
                              f"model service's network settings; see {ASSUMPTIONS} to confirm the zone layout.",
                              host=host, zones_seen=zones, assumption=ASSUMPTIONS)
    enabled = [r for r in zone["records"] if str(r["status"]).upper() in ("ENABLE", "ENABLED")
               and r["type"] in ("A", "CNAME")]
    evidence = {**zone, "first_vpc": first_vpc, "host": host}
    if first_vpc not in zone["bound_vpcs"]:
        return Outcome.failed(f"zone {zone['zone']} is not bound to the first VPC {first_vpc}",
                              "Add the first VPC to the model's allowlist.", **evidence)
    if not enabled:
        kinds = ", ".join(f"{r['type']} {r['status']}" for r in zone["records"])
        seen = (f"{zone['record_count']} record(s), none for it" if not zone["records"]
                else f"its record(s) for it are disabled or not A/CNAME: {kinds}")
        partial = "" if zone["records_complete"] else f" (read the first {MAX_RECORD_PAGES} pages only)"
        return Outcome.failed(f"zone {zone['zone']} has no enabled record for {host}: {seen}{partial}",
                              "Re-save the model service's network settings.", **evidence)
    return Outcome.passed(f"zone {zone['zone']}: {host} -> {', '.join(str(r['value']) for r in enabled)}, bound to "
                          f"{first_vpc}", **evidence)


@check("network.privatelink", "PrivateLink endpoint to the model is Active in the first VPC",
       depends_on=("network.model_allowlist",), plane="control", tags=("control", "network", "optional"),
       timeout_s=30, docs=DOCS,
       proves="An Active, Connected PrivateLink interface endpoint in the first VPC serves the model: the model's "
              "PrivateZone record points to its ENI address or its domain.",
       how="privatelink ListVpcEndpoints (the region's, all pages, once per run), the first VPC's endpoints named for "
           "the model (or, with none, others there), ListVpcEndpointZones for their ENI addresses, compared with the "
           "model's PrivateZone record. An endpoint the tool cannot tie to the model is a warning, not a failure "
           f"({ASSUMPTIONS}).",
       failure_means="Without the endpoint, the private address the domain resolves to leads nowhere.",
       fix="Re-save the model service's network settings; check the endpoint in the PrivateLink console.")
async def privatelink(context: CheckContext) -> Outcome:
    host, service_id = _model_host(context)
    if not service_id:
        return Outcome.skipped("not a DataWorks model domain: no PrivateLink endpoint to look for")
    if not extra_installed("privatelink"):
        return Outcome.skipped("the network extra is not installed (pip install 'dw-preflight[network]')")
    first_vpc = str(context.evidence_of("network.model_allowlist").get("first_vpc"))
    try:
        found = await model_endpoints(context, first_vpc, host, service_id)
    except CloudError as error:
        if error.code.startswith("Forbidden"):
            return Outcome.skipped(f"no permission to read PrivateLink ({error.auth_action or error.action}); grant "
                                   "AliyunPrivateLinkReadOnlyAccess to see this evidence")
        region = context.config.region_of(context.target)
        return outcome_of(error, f"ListVpcEndpoints in {region} (for the endpoint in {first_vpc})")
    candidates, targets = found["candidates"], found["targets"]
    evidence: dict[str, Any] = {"first_vpc": first_vpc, "endpoints": candidates, "endpoints_in_vpc": found["in_vpc"],
                                "assumption": ASSUMPTIONS}
    if targets is not None:
        evidence["record_points_to"] = sorted(targets[0] | targets[1])
    healthy = [e for e in candidates if e["status"] == "Active" and e["connection"] == "Connected"]
    confirmed = [e for e in candidates if e["record_points_here"]]
    fix = f"Check the endpoint in the PrivateLink console; see {ASSUMPTIONS} to confirm which endpoint serves it."
    if confirmed:
        good = [e for e in confirmed if e in healthy]
        if not good:
            shown = ", ".join(f"{e['endpoint_id']} ({e['status']}, {e['connection']})" for e in confirmed)
            return Outcome.failed(f"the endpoint {host}'s record points to is not Active and Connected: {shown}",
                                  "Re-save the model service's network settings, and check the endpoint's state in the "
                                  "PrivateLink console.", **evidence)
        endpoint = good[0]
        return Outcome.passed(f"{endpoint['endpoint_id']} is Active and Connected, ENI {', '.join(endpoint['eni_ips'])}"
                              f", where {host}'s PrivateZone record points", **evidence)
    if targets is not None:
        what = (f"endpoint(s) named for {service_id} ({', '.join(e['endpoint_id'] for e in candidates)}) have "
                f"addresses {', '.join(ip for e in candidates for ip in e['eni_ips']) or 'none'}"
                if any(e["named_for_model"] for e in candidates) else
                f"none of the {found['in_vpc']} endpoint(s) in {first_vpc} has them")
        return Outcome.warned(f"cannot tell which endpoint serves {service_id}: its record points to "
                              f"{', '.join(evidence['record_points_to'])}, and {what}", fix, **evidence)
    if healthy:
        endpoint = healthy[0]
        return Outcome.passed(f"{endpoint['endpoint_id']} is Active and Connected, ENI {', '.join(endpoint['eni_ips'])}"
                              " (identified by its service name only: no PrivateZone record to confirm it)",
                              **evidence)
    if candidates:
        shown = ", ".join(f"{e['endpoint_id']} ({e['status']}, {e['connection']})" for e in candidates)
        return Outcome.warned(f"the endpoint(s) named for {service_id} in {first_vpc} are not Active and Connected "
                              f"({shown}), and no PrivateZone record confirms they serve it", fix, **evidence)
    return Outcome.warned(f"cannot tell which endpoint serves {service_id}: none of the {found['in_vpc']} endpoint(s) "
                          f"in {first_vpc} is named for it, and no PrivateZone record gives its address", fix,
                          **evidence)


CHECKS = (first_vpc, model_allowlist, private_dns, privatelink)
