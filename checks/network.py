"""Network checks: the resource group's first VPC, and whether the model service allows it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from checks.cloudfail import error_evidence, outcome_of
from preflight.cloud import call, extra_installed
from preflight.errors import CloudError
from preflight.model import Outcome
from preflight.registry import check

if TYPE_CHECKING:
    from preflight.context import Context

DOCS = "https://www.alibabacloud.com/help/en/dataworks/user-guide/model-service"
ENDPOINT_PAGE_SIZE = 1000  # PrivateLink's largest page
MAX_ENDPOINT_PAGES = 20
FIRST_VPC_RULE = ("Model calls leave the resource group through the FIRST VPC binding (the earliest created, the top "
                  "of the group's network settings); a second or third binding does not count.")


async def bindings(context: Context) -> list[dict[str, Any]]:
    """Every VPC binding of the target's group, earliest created first (the console's order)."""
    found: list[dict[str, Any]] = []
    page = 1
    while True:
        answer = await call(context, "dataworks", "ListNetworks", resource_group_id=context.target.resource_group,
                            page_number=page, page_size=100)
        info = answer.get("PagingInfo") or {}
        batch = info.get("NetworkList") or []
        found.extend(batch)
        if not batch or len(found) >= int(info.get("TotalCount") or 0):
            break
        page += 1
    return sorted(found, key=lambda b: (b.get("CreateTime") or 0, b.get("Id") or 0))


@check("network.first_vpc", "The resource group's first VPC binding is Running", depends_on=("resource_group.ready",),
       plane="control", scope="target", tags=("control", "network"), timeout_s=30, docs=DOCS,
       proves="The group has a VPC binding, and the first one (earliest created, as the console lists them) is "
              "Running.",
       how="ListNetworks (all pages), sorted by creation time; every binding is shown with time, VPC, vSwitch, status.",
       failure_means="Without a Running first binding, nodes cannot reach any VPC-only model service.",
       fix="DataWorks > Resource Groups > the group > Network Settings: bind the model's VPC first.")
async def first_vpc(context: Context) -> Outcome:
    group = context.target.resource_group
    try:
        found = await bindings(context)
    except CloudError as error:
        return outcome_of(error, f"ListNetworks for {group}")
    shown: list[dict[str, Any]] = [
        {"order": index + 1, "network_id": b.get("Id"), "vpc": b.get("VpcId"), "vswitch": b.get("VswitchId"),
         "status": b.get("Status"), "created": b.get("CreateTime")} for index, b in enumerate(found)]
    evidence: dict[str, Any] = {"rule": FIRST_VPC_RULE, "bindings": shown}
    if not found:
        return Outcome.failed(f"{group} has no VPC binding", "Bind the VPC the model service allows: DataWorks > "
                              "Resource Groups > the group > Network Settings > Add Binding.", **evidence)
    first = found[0]
    evidence.update({"first_vpc": first.get("VpcId"), "first_vswitch": first.get("VswitchId")})
    if first.get("Status") != "Running":
        return Outcome.failed(f"the first binding ({first.get('VpcId')}) is {first.get('Status')}, not Running",
                              "Wait until the binding is Running, or fix it in the group's Network Settings.",
                              **evidence)
    more = f" (+{len(found) - 1} more binding(s), which model calls do not use)" if len(found) > 1 else ""
    return Outcome.passed(f"first VPC {first.get('VpcId')} via {first.get('VswitchId')} is Running{more}",
                          **evidence)


async def zone_tree(context: Context) -> dict[str, list[dict[str, Any]]]:
    """Every PrivateZone zone of the account with the VPCs it is bound to, by zone name: one DescribeZoneVpcTree
    per run.

    It answers, for every service at once, what DescribeZones and then a DescribeZoneInfo per zone would: a
    100-service run asks it once instead of about 100 times, which is also 100 fewer requests against the account's
    PrivateZone rate limit. Zones are indexed by name once, so each service looks its domain up instead of
    scanning every zone.
    """

    async def index() -> dict[str, list[dict[str, Any]]]:
        answer = await call(context, "pvtz", "DescribeZoneVpcTree")
        by_name: dict[str, list[dict[str, Any]]] = {}
        for zone in (answer.get("Zones") or {}).get("Zone") or []:
            by_name.setdefault(str(zone.get("ZoneName")), []).append(zone)
        return by_name

    return await context.resources.shared(("zone-tree", context.region), index)


def covering_zone(by_name: dict[str, list[dict[str, Any]]], host: str) -> dict[str, Any] | None:
    """The most specific zone whose name is `host` or a parent domain of it (the first listed, if names repeat)."""
    labels = host.split(".")
    for name in (".".join(labels[i:]) for i in range(len(labels))):  # the host, then each parent, longest first
        if by_name.get(name):
            return by_name[name][0]
    return None


async def zone_for(context: Context, host: str) -> dict[str, Any] | None:
    """The PrivateZone zone covering the model domain (the most specific one), with its bound VPCs and records."""

    async def discover() -> dict[str, Any] | None:
        zone = covering_zone(await zone_tree(context), host)
        if zone is None:
            return None
        records = await call(context, "pvtz", "DescribeZoneRecords", zone_id=zone.get("ZoneId"))
        bound = [v.get("VpcId") for v in (zone.get("Vpcs") or {}).get("Vpc") or []]
        rows = [{"rr": r.get("Rr"), "type": r.get("Type"), "value": r.get("Value"), "status": r.get("Status")}
                for r in (records.get("Records") or {}).get("Record") or []]
        return {"zone_id": zone.get("ZoneId"), "zone": zone.get("ZoneName"), "bound_vpcs": bound, "records": rows}

    return await context.resources.shared(("zone", host), discover)


async def region_endpoints(context: Context) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The region's PrivateLink endpoints by VPC and model service, every page: one listing per run, shared by all
    services.

    Not narrowed to a VPC, so it waits for no other answer: it is asked while ListNetworks finds the first VPC,
    and an endpoint's addresses are two round trips away instead of three (ListNetworks, ListVpcEndpoints in that
    VPC, ListVpcEndpointZones). A page holds up to 1000 endpoints; an account has at most 50 model services per
    region, with up to three VPCs each. Indexed once, so a service looks its endpoints up instead of every service
    reading every endpoint of the VPC.
    """

    async def listing() -> dict[tuple[str, str], list[dict[str, Any]]]:
        index: dict[tuple[str, str], list[dict[str, Any]]] = {}
        token = ""
        for _ in range(MAX_ENDPOINT_PAGES):
            answer = await call(context, "privatelink", "ListVpcEndpoints", region_id=context.region,
                                max_results=ENDPOINT_PAGE_SIZE, **({"next_token": token} if token else {}))
            for endpoint in answer.get("Endpoints") or []:
                index.setdefault((str(endpoint.get("VpcId")), service_of(endpoint)), []).append(endpoint)
            token = str(answer.get("NextToken") or "")
            if not token:
                break
        return index

    return await context.resources.shared(("privatelink-endpoints", context.region), listing)


def service_of(endpoint: dict[str, Any]) -> str:
    """The model service an endpoint leads to: the last label of its PrivateLink service name
    (com.aliyuncs.privatelink.<region>.dataworks-model.<model-service-id>; an id holds no dot)."""
    return str(endpoint.get("ServiceName", "")).rsplit(".", 1)[-1]


async def endpoints_in(context: Context, vpc: str, service_id: str) -> list[dict[str, Any]]:
    """PrivateLink endpoints in `vpc` that lead to the model service, with their ENI addresses (once per run)."""

    async def find() -> list[dict[str, Any]]:
        found = []
        for endpoint in (await region_endpoints(context)).get((vpc, service_id), []):
            zones = await call(context, "privatelink", "ListVpcEndpointZones", region_id=context.region,
                               endpoint_id=endpoint.get("EndpointId"))
            found.append({"endpoint_id": endpoint.get("EndpointId"), "status": endpoint.get("EndpointStatus"),
                          "connection": endpoint.get("ConnectionStatus"), "service": endpoint.get("ServiceName"),
                          "eni_ips": [z.get("EniIp") for z in zones.get("Zones") or []]})
        return found

    return await context.resources.shared(("privatelink-endpoints-in", context.region, vpc, service_id), find)


def _model_host(context: Context) -> tuple[str, str]:
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
async def model_allowlist(context: Context) -> Outcome:
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
       proves="A PrivateZone zone covers the model domain, has an enabled A record, and is bound to the first VPC.",
       how="pvtz DescribeZoneVpcTree (every zone and its VPCs, once per run), then DescribeZoneRecords for the "
           "zone, shared with network.model_allowlist.",
       failure_means="Without the record in the first VPC the domain does not resolve from the nodes.",
       fix="Re-save the model service's network settings so DataWorks recreates the zone binding.")
async def private_dns(context: Context) -> Outcome:
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
        return Outcome.failed(f"no PrivateZone zone covers {host}", "DataWorks creates it when a VPC is added to "
                              "the model's allowlist; re-save the model service's network settings.", host=host)
    enabled = [r for r in zone["records"] if r["status"] in ("ENABLE", "ENABLED") and r["type"] == "A"]
    evidence = {**zone, "first_vpc": first_vpc}
    if first_vpc not in zone["bound_vpcs"]:
        return Outcome.failed(f"zone {zone['zone']} is not bound to the first VPC {first_vpc}",
                              "Add the first VPC to the model's allowlist.", **evidence)
    if not enabled:
        return Outcome.failed(f"zone {zone['zone']} has no enabled A record", "Re-save the model service's network "
                              "settings.", **evidence)
    return Outcome.passed(f"zone {zone['zone']} -> {', '.join(r['value'] for r in enabled)}, bound to {first_vpc}",
                          **evidence)


@check("network.privatelink", "PrivateLink endpoint to the model is Active in the first VPC",
       depends_on=("network.model_allowlist",), plane="control", tags=("control", "network", "optional"),
       timeout_s=30, docs=DOCS,
       proves="An Active, Connected PrivateLink interface endpoint to the model service exists in the first VPC.",
       how="privatelink ListVpcEndpoints (the region's, all pages, once per run), the first VPC's endpoints to the "
           "model among them, then ListVpcEndpointZones for their ENI addresses.",
       failure_means="Without the endpoint, the private address the domain resolves to leads nowhere.",
       fix="Re-save the model service's network settings; check the endpoint in the PrivateLink console.")
async def privatelink(context: Context) -> Outcome:
    _, service_id = _model_host(context)
    if not service_id:
        return Outcome.skipped("not a DataWorks model domain: no PrivateLink endpoint to look for")
    if not extra_installed("privatelink"):
        return Outcome.skipped("the network extra is not installed (pip install 'dw-preflight[network]')")
    first_vpc = str(context.evidence_of("network.model_allowlist").get("first_vpc"))
    try:
        found = await endpoints_in(context, first_vpc, service_id)
    except CloudError as error:
        if error.code.startswith("Forbidden"):
            return Outcome.skipped(f"no permission to read PrivateLink ({error.auth_action or error.action}); grant "
                                   "AliyunPrivateLinkReadOnlyAccess to see this evidence")
        return outcome_of(error, f"ListVpcEndpoints in {context.region} (for the endpoint in {first_vpc})")
    healthy = [e for e in found if e["status"] == "Active" and e["connection"] == "Connected"]
    evidence = {"first_vpc": first_vpc, "endpoints": found}
    if not healthy:
        return Outcome.failed(f"no Active, Connected PrivateLink endpoint to {service_id} in {first_vpc}",
                              "Re-save the model service's network settings, and check the endpoint's state in the "
                              "PrivateLink console.", **evidence)
    endpoint = healthy[0]
    return Outcome.passed(f"{endpoint['endpoint_id']} is Active and Connected, ENI {', '.join(endpoint['eni_ips'])}",
                          **evidence)


CHECKS = (first_vpc, model_allowlist, private_dns, privatelink)
