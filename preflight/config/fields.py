"""The config's fields in one table, which the loader reads with and the JSON Schema (preflight.config.schema) is
generated from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from preflight.config.model import AUTH_MODES, KINDS, PROTOCOLS

REGION_PATTERN = r"[a-z]{2,}(-[a-z0-9]+)+"
TARGET_NAME_PATTERN = r"[A-Za-z0-9_.-]{1,64}"
RESOLVE_KEY_PATTERN = r"[A-Za-z0-9.-]+:\d{1,5}"
MAX_WAIVER_DAYS = 90


@dataclass(frozen=True)
class Field:
    """One config field: its name, type, whether it is required, its default, allowed values and what it means.

    Types: `string`, `integer`, `number`, `id` (text or a whole number, kept as text), `date`, `strings` (a list
    of text), `map` (text keys to text values), `section` (a mapping of `fields`) and `list` (of mappings of
    `fields`). `env` fields expand ${NAME} references.
    """

    name: str
    type: str
    description: str
    required: bool = False
    default: Any = None
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: int | None = None
    env: bool = False
    pattern: str | None = None
    fields: tuple[Field, ...] = ()
    keys: tuple[str, ...] = ()  # a `section` whose keys are fixed but whose values are all `string`s
    const: Any = None  # the one value allowed (version: 1)
    nullable: bool = True  # an optional field written `null` (or left empty) keeps its default
    value_type: str = "string"  # a `map`'s values: `string` or `number` (positive)
    value_keys: tuple[str, ...] = ()  # a `map` whose values may also be a mapping of these keys to text

    @property
    def accepts_null(self) -> bool:
        """Whether `null` is this field's default: optional text, ids, lists and sections, and optional numbers
        without a default (`max_tokens_budget: null` is no budget); a number with a default wants a number."""
        if self.required or not self.nullable:
            return False
        return self.type not in ("integer", "number", "date") or self.default is None


def field_names(fields: tuple[Field, ...]) -> tuple[str, ...]:
    return tuple(spec.name for spec in fields)


def field_of(fields: tuple[Field, ...], name: str) -> Field:
    return next(spec for spec in fields if spec.name == name)


CLOUD_FIELDS = (
    Field("endpoint", "string", "override the DataWorks API endpoint, e.g. dataworks-vpc.{region}.aliyuncs.com",
          env=True),
    Field("protocol", "string", "how to reach the APIs", default="https", choices=PROTOCOLS),
    Field("profile", "string", "a named profile of ~/.aliyun/config.json (else the default credential chain)",
          env=True),
    Field("connect_timeout_ms", "integer", "connect timeout of every API call", default=5000, minimum=1),
    Field("read_timeout_ms", "integer", "read timeout of every API call", default=10000, minimum=1),
    Field("network_endpoints", "section", "endpoint overrides of the PrivateZone, PrivateLink, VPC and STS APIs",
          keys=("pvtz", "privatelink", "vpc", "sts"), env=True, nullable=False),
    Field("endpoints", "map", "per-region API endpoints: {cn-beijing: HOST} for DataWorks, or {cn-beijing: "
          "{dataworks: HOST, pvtz: HOST, privatelink: HOST, vpc: HOST}}", pattern=REGION_PATTERN, env=True,
          value_keys=("dataworks", "pvtz", "privatelink", "vpc")),
    Field("rate_limits", "map", "calls per second the client allows itself: `default` and `product:Action` keys, "
          "e.g. dataworks:ListNetworks", value_type="number"),
)
DNS_FIELDS = (
    Field("nameservers", "strings", "ask these resolvers (IP or IP:PORT); in a VPC: 100.100.2.136, 100.100.2.138",
          default=()),
    Field("resolve", "map", "fixed answers {\"host:port\": \"ip\"}, like curl --resolve", pattern=RESOLVE_KEY_PATTERN),
    Field("timeout_s", "number", "timeout of one DNS question", default=3.0, minimum=0.01),
)
HTTP_FIELDS = (
    Field("connect_timeout_s", "number", "connect timeout of the data-plane client", default=5.0, minimum=0.01),
    Field("read_timeout_s", "number", "read timeout of the data-plane client", default=30.0, minimum=0.01),
    Field("total_timeout_s", "number", "total deadline of one exchange", default=60.0, minimum=0.01),
    Field("max_body_bytes", "integer", "every body and stream is read up to this cap", default=1 << 20,
          minimum=1024),
    Field("ca_bundle", "string", "trust a private CA for https endpoints (verification stays on)", env=True),
)
IN_NETWORK_FIELDS = (
    Field("task_type", "string", "the ad hoc task type the collector is submitted as", default="DIDE_SHELL"),
    Field("owner", "string", "the owner of the submitted ad hoc task", env=True),
    Field("timeout_s", "integer", "how long to follow the submitted task", default=600, minimum=10),
    Field("python", "string", "the interpreter the Shell task runs the collector with", default="python3"),
)
EXPECT_FIELDS = (
    Field("dimensions", "integer", "the embedding vector's size (1024 for bge-m3 when not given)", minimum=1),
    Field("max_ttft_ms", "integer", "a slower first streamed token is a warning", default=5000, minimum=1),
    Field("max_latency_ms", "integer", "a slower completion is a warning", minimum=1),
)
SERVICE_FIELDS = (
    Field("name", "string", "the service's name in reports", required=True),
    Field("kind", "string", "which inference checks apply", required=True, choices=KINDS),
    Field("endpoint", "string", "http://<model-service-id>.<region>.dataworks-model.aliyuncs.com", required=True,
          env=True),
    Field("api_key", "string", "an environment reference such as ${DW_QWEN_KEY}; a literal key is a warning",
          env=True),
    Field("model", "string", "the served model name model.listed looks for", env=True),
    Field("auth", "string", "raw (DataWorks) or bearer (other OpenAI-compatible servers)", default="raw",
          choices=AUTH_MODES),
    Field("allowed_vpcs", "strings", "the model's allowed VPCs; else discovered through PrivateZone/PrivateLink",
          default=()),
    Field("expect", "section", "what a healthy service answers", fields=EXPECT_FIELDS, nullable=False),
    Field("max_tokens", "integer", "completion size used by the inference checks", default=8, minimum=1,
          maximum=4096),
    Field("prompt", "string", "the prompt of the inference checks", default="Say OK."),
)
TARGET_FIELDS = (
    Field("name", "string", "the target's name in reports and --target", required=True,
          pattern=TARGET_NAME_PATTERN),
    Field("workspace", "id", "the DataWorks workspace id; without it, control checks skip"),
    Field("resource_group", "id", "the Serverless resource group id; without it, control checks skip"),
    Field("region", "string", "override of the top-level region"),
    Field("nodes", "list", "node ids whose scheduling resource group is checked", default=()),
    Field("services", "list", "the model services nodes on this resource group call", default=(),
          fields=SERVICE_FIELDS),
)
WAIVER_FIELDS = (
    Field("check", "string", "a check id or glob (network.privatelink, inference.*); '*' alone is refused",
          required=True),
    Field("target", "string", "only this target (a glob)"),
    Field("service", "string", "only this service (a glob)"),
    Field("reason", "string", "why the fail or warn is accepted", required=True),
    Field("until", "date", f"the last day it waives (YYYY-MM-DD); more than {MAX_WAIVER_DAYS} days ahead warns",
          required=True),
    Field("ticket", "string", "where the fix is tracked"),
)
TOP_FIELDS = (
    Field("version", "integer", "the config version; 1 is the only one", default=1, const=1),
    Field("region", "string", "the default region of every target", required=True, env=True,
          pattern=REGION_PATTERN),
    Field("cloud", "section", "how to reach the Alibaba Cloud APIs", fields=CLOUD_FIELDS),
    Field("dns", "section", "which resolvers to ask, and fixed answers", fields=DNS_FIELDS),
    Field("http", "section", "data-plane client limits", fields=HTTP_FIELDS),
    Field("in_network", "section", "how --from resource-group submits the collector", fields=IN_NETWORK_FIELDS),
    Field("max_tokens_budget", "integer", "stop inference checks once this many tokens are spent", minimum=1),
    Field("targets", "list", "workspaces and resource groups, each with the services its nodes call",
          required=True, fields=TARGET_FIELDS),
    Field("waivers", "list", "accepted, expiring exceptions: a waived fail or warn does not fail the run",
          default=(), fields=WAIVER_FIELDS),
)


__all__ = [
    "CLOUD_FIELDS", "DNS_FIELDS", "EXPECT_FIELDS", "HTTP_FIELDS", "IN_NETWORK_FIELDS", "MAX_WAIVER_DAYS",
    "REGION_PATTERN", "RESOLVE_KEY_PATTERN", "SERVICE_FIELDS", "TARGET_FIELDS", "TARGET_NAME_PATTERN", "TOP_FIELDS",
    "WAIVER_FIELDS", "Field", "field_names", "field_of",
]
