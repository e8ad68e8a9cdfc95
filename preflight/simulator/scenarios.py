"""The simulated account (workspace, resource group, VPC bindings, model services) and the named fault scenarios."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

REGION = "cn-beijing"
ACCESS_KEY_ID = "LTAI5tSimulatorKeyId0001"
ACCESS_KEY_SECRET = "SimulatorSecret0123456789abcdef"
ACCOUNT_ID = "1234567890123456"
CALLER_USER_ID = "207000000000001"  # the RAM user the AccessKey belongs to, as STS GetCallerIdentity names it
WORKSPACE_ID = "123456"
RESOURCE_GROUP_ID = "Serverless_res_group_524257424564736_6831777003"


@dataclass(frozen=True)
class SimModel:
    """One deployed model service: its id (the first label of its domain), model name and key."""

    service_id: str
    model: str
    kind: str
    api_key: str
    dimensions: int = 1024
    allowed_vpcs: tuple[str, ...] = ()
    region: str = REGION

    @property
    def host(self) -> str:
        return f"{self.service_id}.{self.region}.dataworks-model.aliyuncs.com"


@dataclass(frozen=True)
class SimBinding:
    """A VPC binding of the resource group, as ListNetworks returns it."""

    network_id: int
    vpc_id: str
    vswitch_id: str
    security_group_id: str
    status: str
    create_time: str


@dataclass(frozen=True)
class SimNode:
    """A Data Studio node (the draft, which GetNode returns) and its deployed task (GetTask, production)."""

    node_id: str
    name: str
    resource_group_id: str  # what the draft says
    trigger_type: str = "Scheduler"
    cron: str = "00 00 02 * * ?"
    deployed: bool = True
    deployed_resource_group_id: str | None = None  # what the deployed task runs on; None: what the draft says

    @property
    def task_id(self) -> int:
        """The scheduling task's id, GetNode's TaskId once the node is deployed."""
        return int(self.node_id) + 1

    @property
    def runs_on(self) -> str:
        return self.deployed_resource_group_id or self.resource_group_id


FIRST_VPC = "vpc-2ze0first0000000001"
SECOND_VPC = "vpc-2ze0second000000002"
OLD_VPC = "vpc-2ze0old00000000000000"
OTHER_GROUP = "Serverless_res_group_other_0001"
# ListNetworks' Status values; only Running bindings carry traffic, Deleting and Deleted ones never will again.
LIVE_STATUSES = frozenset({"Pending", "Creating", "Running"})


@dataclass(frozen=True)
class World:
    """Everything the simulator knows about the account; scenarios change one thing each."""

    region: str = REGION
    access_key_id: str = ACCESS_KEY_ID
    access_key_secret: str = ACCESS_KEY_SECRET
    account_id: str = ACCOUNT_ID
    caller_user_id: str = CALLER_USER_ID
    workspace_id: str = WORKSPACE_ID
    workspace_name: str = "llm_demo"
    workspace_status: str = "Available"
    workspace_exists: bool = True
    resource_group_id: str = RESOURCE_GROUP_ID
    resource_group_type: str = "CommonV2"
    resource_group_status: str = "Normal"
    attached_workspaces: tuple[str, ...] = (WORKSPACE_ID,)
    bindings: tuple[SimBinding, ...] = (
        SimBinding(1001, FIRST_VPC, "vsw-2ze0first000000001", "sg-2ze0first00001", "Running", "2026-03-01T08:00:00Z"),
        SimBinding(1002, SECOND_VPC, "vsw-2ze0second00000002", "sg-2ze0second0002", "Running",
                   "2026-05-12T09:30:00Z"),
    )
    models: tuple[SimModel, ...] = (
        SimModel("ms-demoqwen01", "qwen3-1.7b", "completion", "DW-ms-demoqwen01-k3y5ecret0001", 0, (FIRST_VPC,)),
        SimModel("ms-demochat01", "qwen3-1.7b-chat", "chat", "DW-ms-demochat01-k3y5ecret0002", 0, (FIRST_VPC,)),
        SimModel("ms-demobge001", "bge-m3", "embedding", "DW-ms-demobge001-k3y5ecret0003", 1024, (FIRST_VPC,)),
    )
    nodes: tuple[SimNode, ...] = (
        SimNode("700001234567", "daily_summarise", RESOURCE_GROUP_ID),
        SimNode("700001234568", "daily_embed", RESOURCE_GROUP_ID),
    )
    ram_denied: frozenset[str] = frozenset()
    auth_mode: str = "raw"  # "raw" as DataWorks wants, or "bearer" like other OpenAI-compatible servers
    task_mode: str = "run"  # how ad hoc tasks behave: run, fail, hang or cut-lines (see simulator/workflow.py)
    served_models_override: tuple[str, ...] | None = None
    # Records in each model's private zone listed before the model's own (DescribeZoneRecords pages them).
    zone_extra_records: int = 0
    # More resource groups that look exactly like the first one (benchmarks spread targets over them).
    extra_resource_groups: tuple[str, ...] = ()
    targets: int = 1
    # A service just deployed: it answers 503 for its first `warm_up_s` seconds, and refuses its new key with 401
    # for the first `key_delay_s` seconds (DataWorks takes minutes to apply a new key).
    warm_up_s: float = 0.0
    key_delay_s: float = 0.0

    @property
    def resource_group_ids(self) -> tuple[str, ...]:
        return (self.resource_group_id, *self.extra_resource_groups)

    @property
    def regions(self) -> tuple[str, ...]:
        """The regions the world has model services in, its own region first: each has its own cloud API."""
        return (self.region, *sorted({m.region for m in self.models} - {self.region}))

    def in_region(self, region: str) -> World:
        """The world as one region's cloud API sees it: that region's model services only."""
        if region == self.region and all(m.region == region for m in self.models):
            return self
        return replace(self, region=region, models=tuple(m for m in self.models if m.region == region))

    @property
    def live_bindings(self) -> tuple[SimBinding, ...]:
        """The bindings that are not being deleted, earliest first: the first of them is the group's first VPC."""
        return tuple(sorted((b for b in self.bindings if b.status in LIVE_STATUSES), key=lambda b: b.create_time))


# The regions a scaled world spreads its targets over, in turn.
SCALED_REGIONS = (REGION, "cn-hangzhou", "cn-shanghai", "cn-shenzhen", "cn-zhangjiakou", "cn-wulanchabu",
                  "cn-chengdu", "cn-hongkong")


def scaled_world(services: int, *, targets: int = 1, resource_groups: int = 1, regions: int = 1) -> World:
    """A world with `services` model services (completion, chat and embedding in turn) for benchmarks; with several
    regions, target t and its services are in the (t mod regions)th of SCALED_REGIONS."""
    kinds = ("completion", "chat", "embedding")
    names = {"completion": "qwen3-1.7b", "chat": "qwen3-1.7b-chat", "embedding": "bge-m3"}
    targets = max(1, min(targets, services))
    spread = SCALED_REGIONS[:max(1, min(regions, len(SCALED_REGIONS)))]
    models = tuple(
        SimModel(f"ms-bench{index:05d}", names[kinds[index % 3]], kinds[index % 3],
                 f"DW-ms-bench{index:05d}-k3y5ecret", 1024 if kinds[index % 3] == "embedding" else 0, (FIRST_VPC,),
                 region=spread[(index % targets) % len(spread)])
        for index in range(services))
    extra = tuple(f"Serverless_res_group_bench_{index:04d}" for index in range(1, resource_groups))
    return replace(World(), models=models, extra_resource_groups=extra, targets=targets)


@dataclass(frozen=True)
class Scenario:
    """One fault, where it is injected, and which check must be its single root cause."""

    name: str
    description: str
    root_cause: str | None = None
    root_status: str = "fail"
    world: World = field(default_factory=World)
    model_faults: frozenset[str] = frozenset()
    cloud_faults: frozenset[str] = frozenset()
    dns_missing: bool = False
    service_down: bool = False
    key_override: str | None = None
    plane: str = "data"
    rate_limit: float = 0.0  # calls per action per second the cloud API allows (0: no flow control)


_W = World()


def _scenario(name: str, description: str, root_cause: str | None, *, root_status: str = "fail",
              plane: str = "data", **changes: object) -> Scenario:
    return Scenario(name=name, description=description, root_cause=root_cause, root_status=root_status,
                    plane=plane, **changes)  # type: ignore[arg-type]


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    _scenario("healthy", "everything works", None, plane="-"),
    # Data plane.
    _scenario("wrong-key", "the API key in the config is not one the service accepts", "auth.key_valid",
              key_override="DW-ms-wrong-0000000000000"),
    _scenario("bearer-prefix", "the key is sent as 'Bearer DW-...' but DataWorks wants the raw key",
              "auth.key_format", key_override="Bearer {key}"),
    _scenario("dns-missing", "the model domain does not resolve (no private DNS record)", "endpoint.dns",
              dns_missing=True),
    _scenario("service-down", "the name resolves but nothing listens on the endpoint", "endpoint.tcp",
              service_down=True),
    _scenario("server-error", "completions answer 500 Internal Server Error", "inference.completion",
              model_faults=frozenset({"completion-500"})),
    _scenario("model-missing", "the configured model is not among the served models", "model.listed",
              world=replace(_W, served_models_override=("qwen2.5-7b-instruct", "bge-large-zh"))),
    _scenario("stream-no-done", "the stream ends without 'data: [DONE]'", "inference.stream",
              model_faults=frozenset({"stream-no-done"})),
    _scenario("stream-buffered", "a proxy buffers the stream and sends every chunk at the end", "inference.stream",
              root_status="warn", model_faults=frozenset({"stream-buffered"})),
    _scenario("embedding-dimension", "the embedding model returns 768-dimensional vectors, 1024 expected",
              "inference.embedding",
              world=replace(_W, models=tuple(replace(m, dimensions=768) if m.kind == "embedding" else m
                                             for m in _W.models))),
    _scenario("warming-up", "the service was just deployed: 503 for its first 10 s, its new key refused for 20 s",
              "auth.key_valid", world=replace(_W, warm_up_s=10.0, key_delay_s=20.0)),
    _scenario("slow", "the first token takes longer than expect.max_ttft_ms", "inference.stream",
              root_status="warn", model_faults=frozenset({"slow"})),
    # Hostile model service (issue 7): each must be a fail with evidence within the check's timeout, never a hang.
    _scenario("reset-mid-body", "completions send half the body, then reset the connection", "inference.completion",
              model_faults=frozenset({"completion-reset"})),
    _scenario("trickle-headers", "completion headers trickle in one byte a second", "inference.completion",
              model_faults=frozenset({"completion-trickle"})),
    _scenario("huge-body", "a completion answers a 10 MB JSON body", "inference.completion",
              model_faults=frozenset({"completion-huge"})),
    _scenario("not-utf8", "a completion body is not UTF-8", "inference.completion",
              model_faults=frozenset({"completion-not-utf8"})),
    _scenario("not-json", "a completion answers 200 with a text/plain body", "inference.completion",
              model_faults=frozenset({"completion-not-json"})),
    _scenario("proxy-502", "a proxy answers every request with an HTML 502 page", "endpoint.http",
              model_faults=frozenset({"proxy-502"})),
    _scenario("redirect-other-host", "every request is redirected to another host", "endpoint.http",
              model_faults=frozenset({"redirect"})),
    _scenario("stream-endless", "the stream never ends, at full speed", "inference.stream",
              model_faults=frozenset({"stream-endless"})),
    _scenario("stream-malformed", "the stream's data: lines are broken JSON", "inference.stream",
              model_faults=frozenset({"stream-malformed"})),
    _scenario("stream-stall", "the stream stalls after its first chunk", "inference.stream",
              model_faults=frozenset({"stream-stall"})),
    _scenario("embedding-nan", "embeddings contain NaN and Infinity", "inference.embedding",
              model_faults=frozenset({"embedding-nan"})),
    # Control plane.
    _scenario("bad-credentials", "the AccessKey secret is wrong (SignatureDoesNotMatch)", "cloud.credentials",
              plane="control", world=replace(_W, access_key_secret="TheServerExpectsAnotherSecret00")),
    _scenario("workspace-missing", "the workspace id does not exist", "workspace.exists", plane="control",
              world=replace(_W, workspace_exists=False)),
    _scenario("rg-not-serverless", "the resource group is an exclusive (old-style) group, not Serverless",
              "resource_group.ready", plane="control",
              world=replace(_W, resource_group_type="ExclusiveDataIntegration")),
    _scenario("rg-stopped", "the Serverless resource group is stopped", "resource_group.ready", plane="control",
              world=replace(_W, resource_group_status="Stop")),
    _scenario("rg-not-attached", "the resource group is not associated with the workspace",
              "resource_group.attached", plane="control", world=replace(_W, attached_workspaces=("999999",))),
    _scenario("vpc-not-first", "the model allows the group's second VPC, not its first", "network.model_allowlist",
              plane="control",
              world=replace(_W, models=tuple(replace(m, allowed_vpcs=(SECOND_VPC,)) for m in _W.models))),
    _scenario("ram-denied", "the RAM user may not call dataworks:ListNetworks", "network.first_vpc",
              plane="control", world=replace(_W, ram_denied=frozenset({"dataworks:ListNetworks"}))),
    _scenario("cloud-5xx", "GetResourceGroup answers 503 ServiceUnavailable", "resource_group.ready",
              plane="control", cloud_faults=frozenset({"get-resource-group-503"})),
    _scenario("cloud-throttled", "ListNetworks is always throttled (Throttling.User, x-acs-retry-after)",
              "network.first_vpc", plane="control", cloud_faults=frozenset({"list-networks-throttled"})),
    _scenario("cloud-not-json", "ListResourceGroupAssociateProjects answers an HTML page", "resource_group.attached",
              plane="control", cloud_faults=frozenset({"associate-not-json"})),
    _scenario("cloud-timeout", "GetProject does not answer within the read timeout", "workspace.exists",
              plane="control", cloud_faults=frozenset({"get-project-timeout"})),
    _scenario("cloud-success-false", "GetProject answers HTTP 200 with Success: false", "workspace.exists",
              plane="control", cloud_faults=frozenset({"get-project-success-false"})),
    _scenario("node-wrong-group", "a scheduled node runs on another resource group", "schedule.node_resource_group",
              plane="control",
              world=replace(_W, nodes=(SimNode("700001234567", "daily_summarise", OTHER_GROUP), _W.nodes[1]))),
    # Issue 19: what a real account answers that the first client read wrongly.
    _scenario("node-not-deployed", "a listed node was never deployed, so no scheduled run will happen",
              "schedule.node_resource_group", plane="control",
              world=replace(_W, nodes=(replace(_W.nodes[0], deployed=False), _W.nodes[1]))),
    _scenario("node-deployed-elsewhere", "the draft says this resource group, the deployed task runs on another",
              "schedule.node_resource_group", plane="control",
              world=replace(_W, nodes=(replace(_W.nodes[0], deployed_resource_group_id=OTHER_GROUP), _W.nodes[1]))),
    _scenario("binding-deleted-first", "the group's earliest VPC binding is Deleted; the first live one is allowed",
              None, plane="control",
              world=replace(_W, bindings=(SimBinding(1000, OLD_VPC, "vsw-2ze0old000000000000", "sg-2ze0old0000000",
                                                     "Deleted", "2025-12-01T08:00:00Z"), *_W.bindings))),
    _scenario("zone-records-paged", "the model's private DNS record is past the first page of 20 zone records",
              None, plane="control", world=replace(_W, zone_extra_records=24)),
    # Issue 21: a run that paces itself under the account's flow control ends green.
    _scenario("cloud-flow-control", "the cloud API allows 2 calls per action per second, as an account's flow "
              "control does", None, plane="control", rate_limit=2.0),
    _scenario("cloud-error-code", "GetResourceGroup answers HTTP 200, Success: false, with the older ErrorCode and "
              "ErrorMessage fields", "resource_group.ready", plane="control",
              cloud_faults=frozenset({"get-resource-group-error-code"})),
)}


def get_scenario(name: str) -> Scenario:
    from preflight.errors import SimulatorError

    try:
        return SCENARIOS[name]
    except KeyError:
        import difflib

        hint = difflib.get_close_matches(name, list(SCENARIOS), n=1)
        tip = f"; did you mean '{hint[0]}'?" if hint else ""
        raise SimulatorError(f"unknown scenario '{name}'{tip} (preflight demo --list-scenarios)") from None


__all__ = [
    "ACCESS_KEY_ID",
    "ACCESS_KEY_SECRET",
    "ACCOUNT_ID",
    "CALLER_USER_ID",
    "FIRST_VPC",
    "LIVE_STATUSES",
    "OLD_VPC",
    "OTHER_GROUP",
    "REGION",
    "RESOURCE_GROUP_ID",
    "SCALED_REGIONS",
    "SCENARIOS",
    "SECOND_VPC",
    "WORKSPACE_ID",
    "Scenario",
    "SimBinding",
    "SimModel",
    "SimNode",
    "World",
    "get_scenario",
    "scaled_world",
]
