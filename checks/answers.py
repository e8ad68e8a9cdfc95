"""The cloud questions several checks and `warm` ask: each is asked once per run and its answer shared."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from preflight.cloud.session import call, project_id

if TYPE_CHECKING:
    from preflight.config.context import CheckContext

ENDPOINT_PAGE_SIZE = 1000  # PrivateLink's largest page
MAX_ENDPOINT_PAGES = 20
RECORD_PAGE_SIZE = 100  # PrivateZone's largest page
MAX_RECORD_PAGES = 50  # a zone of model domains holds a handful of records; past this, a zone of something else
# ListNetworks' Status values of a binding that is going away or gone: shown, never the first VPC.
GONE = ("Deleting", "Deleted")


async def get_project(context: CheckContext) -> dict[str, Any]:
    assert context.target.workspace is not None
    return await call(context, "dataworks", "GetProject",
                      id=project_id(context.target.workspace, "dataworks:GetProject"))


async def get_resource_group(context: CheckContext) -> dict[str, Any]:
    return await call(context, "dataworks", "GetResourceGroup", id=context.target.resource_group)


async def associated_projects(context: CheckContext) -> dict[str, Any]:
    return await call(context, "dataworks", "ListResourceGroupAssociateProjects",
                      resource_group_id=context.target.resource_group)


async def get_node(context: CheckContext, node: str) -> dict[str, Any]:
    assert context.target.workspace is not None
    return await call(context, "dataworks", "GetNode", id=node,
                      project_id=project_id(context.target.workspace, "dataworks:GetNode"))


async def get_task(context: CheckContext, task_id: int) -> dict[str, Any]:
    """The deployed task in the production environment: what scheduled runs use."""
    return await call(context, "dataworks", "GetTask", id=task_id, project_env="Prod")


async def deployed(context: CheckContext, node: str) -> dict[str, Any]:
    """A node's draft (GetNode) and, once it is deployed, its scheduling task (GetTask): the facts to judge."""
    facts = node_facts(await get_node(context, node))
    if facts["task_id"] is not None:
        facts.update(task_facts(await get_task(context, facts["task_id"])))
    return facts


def node_facts(answer: dict[str, Any]) -> dict[str, Any]:
    """Resource group and trigger of a node's draft, read from its FlowSpec, and its task id once deployed."""
    import json  # here: `preflight list` imports this module and needs no json

    node = answer.get("Node") or {}
    try:
        spec = json.loads(node.get("Spec") or "{}")
    except ValueError:
        spec = {}
    nodes = (spec.get("spec") or {}).get("nodes") or [{}] if isinstance(spec, dict) else [{}]
    first = nodes[0] if isinstance(nodes, list) and nodes and isinstance(nodes[0], dict) else {}
    trigger = first.get("trigger") or {}
    task_id = node.get("TaskId")
    return {"id": str(node.get("Id")), "name": node.get("Name"),
            "draft_resource_group": (first.get("runtimeResource") or {}).get("resourceGroup"),
            "draft_trigger": trigger.get("type"), "task_id": task_id if isinstance(task_id, int) and task_id else None,
            "deployed": False}


def task_facts(answer: dict[str, Any]) -> dict[str, Any]:
    """Resource group and trigger of the deployed task."""
    task = answer.get("Task") or {}
    trigger = task.get("Trigger") or {}
    return {"deployed": True, "resource_group": (task.get("RuntimeResource") or {}).get("ResourceGroupId"),
            "trigger": trigger.get("Type"), "cron": trigger.get("Cron")}


async def bindings(context: CheckContext) -> list[dict[str, Any]]:
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


def live(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The bindings that are not being deleted, in order: the first of them is the group's first VPC."""
    return [b for b in found if b.get("Status") not in GONE]


async def zone_tree(context: CheckContext) -> dict[str, list[dict[str, Any]]]:
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

    return await context.resources.shared(("zone-tree", context.config.region_of(context.target)), index)


def covering_zone(by_name: dict[str, list[dict[str, Any]]], host: str) -> dict[str, Any] | None:
    """The most specific zone whose name is `host` or a parent domain of it (the first listed, if names repeat)."""
    labels = host.split(".")
    for name in (".".join(labels[i:]) for i in range(len(labels))):  # the host, then each parent, longest first
        if by_name.get(name):
            return by_name[name][0]
    return None


async def zone_for(context: CheckContext, host: str) -> dict[str, Any] | None:
    """The PrivateZone zone covering the model domain (the most specific one), with its bound VPCs and records."""

    async def discover() -> dict[str, Any] | None:
        zone = covering_zone(await zone_tree(context), host)
        if zone is None:
            return None
        records, complete = await zone_records(context, str(zone.get("ZoneId")))
        bound = [v.get("VpcId") for v in (zone.get("Vpcs") or {}).get("Vpc") or []]
        rows = [{"rr": r.get("Rr"), "type": r.get("Type"), "value": r.get("Value"), "status": r.get("Status")}
                for r in records]
        name = str(zone.get("ZoneName"))
        own = [r for r in rows if record_name(r["rr"], name) == host.lower()]
        # A wildcard answers for every name below it that has no record of its own.
        own = own or [r for r in rows if record_name(r["rr"], name).startswith("*.")
                      and host.lower().endswith(record_name(r["rr"], name)[1:])]
        return {"zone_id": zone.get("ZoneId"), "zone": name, "bound_vpcs": bound, "record_count": len(rows),
                "records_complete": complete, "records": own}

    return await context.resources.shared(("zone", host), discover)


async def zone_records(context: CheckContext, zone_id: str) -> tuple[list[dict[str, Any]], bool]:
    """Every record of a zone, page by page (PageSize 100) up to MAX_RECORD_PAGES; and whether that was all."""
    found: list[dict[str, Any]] = []
    for page in range(1, MAX_RECORD_PAGES + 1):
        answer = await call(context, "pvtz", "DescribeZoneRecords", zone_id=zone_id, page_number=page,
                            page_size=RECORD_PAGE_SIZE)
        batch = (answer.get("Records") or {}).get("Record") or []
        found.extend(batch)
        total = int(answer.get("TotalItems") or 0)
        if not batch or len(found) >= total or page >= int(answer.get("TotalPages") or page):
            return found, True
    return found, False


def record_name(rr: Any, zone: str) -> str:
    """The full name a record of the zone answers for (`@` is the zone's own name)."""
    label = str(rr or "@").strip(".").lower()
    return zone.lower() if label == "@" else f"{label}.{zone.lower()}"


async def region_endpoints(context: CheckContext) -> dict[tuple[str, str], list[dict[str, Any]]]:
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
            answer = await call(context, "privatelink", "ListVpcEndpoints",
                                region_id=context.config.region_of(context.target), max_results=ENDPOINT_PAGE_SIZE,
                                **({"next_token": token} if token else {}))
            for endpoint in answer.get("Endpoints") or []:
                index.setdefault((str(endpoint.get("VpcId")), service_of(endpoint)), []).append(endpoint)
            token = str(answer.get("NextToken") or "")
            if not token:
                break
        return index

    return await context.resources.shared(("privatelink-endpoints", context.config.region_of(context.target)), listing)


def service_of(endpoint: dict[str, Any]) -> str:
    """The model service an endpoint leads to: the last label of its PrivateLink service name
    (com.aliyuncs.privatelink.<region>.dataworks-model.<model-service-id>; an id holds no dot)."""
    return str(endpoint.get("ServiceName", "")).rsplit(".", 1)[-1]


async def describe_endpoint(context: CheckContext, endpoint: dict[str, Any]) -> dict[str, Any]:
    """An endpoint as the evidence shows it, with its ENI addresses (ListVpcEndpointZones, asked once per run)."""
    zones = await call(context, "privatelink", "ListVpcEndpointZones",
                       region_id=context.config.region_of(context.target), endpoint_id=endpoint.get("EndpointId"))
    return {"endpoint_id": endpoint.get("EndpointId"), "status": endpoint.get("EndpointStatus"),
            "connection": endpoint.get("ConnectionStatus"), "service": endpoint.get("ServiceName"),
            "domain": endpoint.get("EndpointDomain"), "eni_ips": [z.get("EniIp") for z in zones.get("Zones") or []]}


async def endpoints_in(context: CheckContext, vpc: str, service_id: str) -> list[dict[str, Any]]:
    """PrivateLink endpoints in `vpc` whose service name names the model service (an assumption), with their ENI
    addresses (once per run)."""

    async def find() -> list[dict[str, Any]]:
        return [await describe_endpoint(context, endpoint)
                for endpoint in (await region_endpoints(context)).get((vpc, service_id), [])]

    key = ("privatelink-endpoints-in", context.config.region_of(context.target), vpc, service_id)
    return await context.resources.shared(key, find)


__all__ = ["ENDPOINT_PAGE_SIZE", "GONE", "MAX_RECORD_PAGES", "RECORD_PAGE_SIZE", "associated_projects", "bindings",
           "covering_zone", "deployed", "describe_endpoint", "endpoints_in", "get_project", "get_resource_group",
           "live", "region_endpoints", "service_of", "zone_for", "zone_tree"]
