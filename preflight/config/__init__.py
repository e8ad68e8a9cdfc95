"""Load the YAML config into frozen, typed objects, with file:line for every error."""

from __future__ import annotations

import datetime as dt
import difflib
import os
import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from preflight.engine.text import shorten
from preflight.errors import ConfigError

KINDS = ("completion", "chat", "embedding")
AUTH_MODES = ("raw", "bearer")
PROTOCOLS = ("https", "http")
REGION_PATTERN = r"[a-z]{2,}(-[a-z0-9]+)+"
MAX_CONFIG_BYTES = 1 << 20
MAX_NODES = 20_000
MAX_DEPTH = 64
TOO_DEEP = f"the document nests too deeply to be a config (more than {MAX_DEPTH} levels)"
_ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_ENV_ANYWHERE = re.compile(r"\$\{([^}]*)\}")
_ENV_UNBRACED = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")  # $NAME: a shell's spelling, taken literally here
TARGET_NAME_PATTERN = r"[A-Za-z0-9_.-]{1,64}"
RESOLVE_KEY_PATTERN = r"[A-Za-z0-9.-]+:\d{1,5}"
MAX_WAIVER_DAYS = 90


@dataclass(frozen=True)
class Expect:
    """What a healthy service answers: vector size, time to first token."""

    dimensions: int | None = None
    max_ttft_ms: int = 5000
    max_latency_ms: int | None = None


@dataclass(frozen=True)
class ServiceConfig:
    """One model service behind one endpoint."""

    name: str
    kind: str
    endpoint: str
    model: str | None = None
    api_key: str | None = field(default=None, repr=False)
    api_key_env: str | None = None
    api_key_literal: bool = False
    auth: str = "raw"
    allowed_vpcs: tuple[str, ...] = ()
    expect: Expect = field(default_factory=Expect)
    max_tokens: int = 8
    prompt: str = "Say OK."
    line: int | None = None

    @property
    def expected_dimensions(self) -> int | None:
        if self.expect.dimensions is not None:
            return self.expect.dimensions
        if self.model and self.model.lower().replace("_", "-").startswith("bge-m3"):
            return 1024
        return None


@dataclass(frozen=True)
class TargetConfig:
    """A workspace and resource group, and the services nodes there call."""

    name: str
    workspace: str | None = None
    resource_group: str | None = None
    region: str | None = None
    nodes: tuple[str, ...] = ()
    services: tuple[ServiceConfig, ...] = ()
    line: int | None = None


@dataclass(frozen=True)
class CloudConfig:
    """How to reach the Alibaba Cloud APIs."""

    endpoint: str | None = None
    protocol: str = "https"
    profile: str | None = None
    connect_timeout_ms: int = 5000
    read_timeout_ms: int = 10000
    network_endpoints: Mapping[str, str] = field(default_factory=dict)
    # Per region, each product's endpoint there (`cn-shanghai: HOST` names DataWorks'; a mapping names any of
    # dataworks, pvtz, privatelink, vpc), over `endpoint` and `network_endpoints` for targets in that region.
    endpoints: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # Client-side calls per second: "default" and "product:Action" keys (pacing's DEFAULT_RATE if unset).
    rate_limits: Mapping[str, float] = field(default_factory=dict)

    def endpoint_for(self, region: str, product: str = "dataworks") -> str | None:
        """A product's endpoint in a region: the region's entry, else `endpoint` (DataWorks) or `network_endpoints`,
        with `{region}` filled in; None lets the generated client pick from its own map."""
        general = self.endpoint if product == "dataworks" else self.network_endpoints.get(product)
        chosen = self.endpoints.get(region, {}).get(product, general)
        return chosen.replace("{region}", region) if chosen else None


@dataclass(frozen=True)
class DnsConfig:
    """Which resolvers to ask, and fixed answers like curl --resolve."""

    nameservers: tuple[str, ...] = ()
    resolve: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = 3.0


@dataclass(frozen=True)
class HttpConfig:
    """Data-plane client limits."""

    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    total_timeout_s: float = 60.0
    max_body_bytes: int = 1 << 20
    ca_bundle: str | None = None


@dataclass(frozen=True)
class InNetworkConfig:
    """How the collector is submitted to a resource group."""

    task_type: str = "DIDE_SHELL"
    owner: str | None = None
    timeout_s: int = 600
    python: str = "python3"


@dataclass(frozen=True)
class Waiver:
    """An accepted, expiring exception: a fail or warn of `check` (an id or glob) on a target or service."""

    check: str
    reason: str
    until: dt.date
    target: str | None = None
    service: str | None = None
    ticket: str | None = None
    where: str = ""  # file:line, for notes that name the waiver


@dataclass(frozen=True)
class Config:
    """A whole config file."""

    region: str
    targets: tuple[TargetConfig, ...]
    version: int = 1
    cloud: CloudConfig = field(default_factory=CloudConfig)
    dns: DnsConfig = field(default_factory=DnsConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    in_network: InNetworkConfig = field(default_factory=InNetworkConfig)
    max_tokens_budget: int | None = None
    waivers: tuple[Waiver, ...] = ()
    path: str | None = None
    warnings: tuple[str, ...] = ()

    def region_of(self, target: TargetConfig) -> str:
        return target.region or self.region

    def secrets(self) -> list[tuple[str | None, str]]:
        return [(service.api_key, f"api_key:{target.name}/{service.name}")
                for target in self.targets for service in target.services]


# --- The fields: one table that the reader below and the JSON Schema (preflight.config.schema) both use -------


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


def _names(fields: tuple[Field, ...]) -> tuple[str, ...]:
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


# --- Loading -----------------------------------------------------------------------------------------

T = TypeVar("T")


class _Reader:
    """Walks composed YAML nodes, so that every value keeps its line number."""

    def __init__(self, path: str, environ: Mapping[str, str]) -> None:
        self.path = path
        self.environ = environ
        self.warnings: list[str] = []

    def error(self, node: Any, field_path: str, message: str) -> ConfigError:
        line = node.start_mark.line + 1 if node is not None and getattr(node, "start_mark", None) else None
        return ConfigError(_one_line(message), path=self.path, line=line, field=_one_line(field_path) or None)

    def mapping(self, node: Any, field_path: str, allowed: tuple[str, ...]) -> dict[str, tuple[Any, Any]]:
        import yaml

        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, field_path, f"expected a mapping, got {_kind(node)}")
        entries: dict[str, tuple[Any, Any]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.error(key_node, field_path, "keys must be plain names")
            key = str(key_node.value)
            sub = f"{field_path}.{key}" if field_path else key
            if key not in allowed:
                hint = difflib.get_close_matches(key, allowed, n=1)
                tip = f"; did you mean '{hint[0]}'?" if hint else f"; expected one of {', '.join(allowed)}"
                raise self.error(key_node, sub, f"unknown field{tip}")
            if key in entries:
                raise self.error(key_node, sub, "appears twice")
            entries[key] = (key_node, value_node)
        return entries

    def scalar(self, node: Any, field_path: str) -> Any:
        import yaml

        if not isinstance(node, yaml.ScalarNode):
            raise self.error(node, field_path, f"expected a single value, got {_kind(node)}")
        if node.tag == "tag:yaml.org,2002:null" or (not node.style and node.value in ("", "~", "null")):
            return None
        if not node.style and node.tag == "tag:yaml.org,2002:int":
            return _yaml_int(node.value)
        if not node.style and node.tag == "tag:yaml.org,2002:bool":
            return node.value.lower() in ("true", "yes", "on")
        if not node.style and node.tag == "tag:yaml.org,2002:float":
            return _yaml_float(node.value)
        return str(node.value)

    def string(self, node: Any, field_path: str, *, required: bool = False,
               choices: tuple[str, ...] | None = None, env: bool = False) -> str | None:
        value = self.scalar(node, field_path)
        if value is None:
            if required:
                raise self.error(node, field_path, "is required")
            return None
        if isinstance(value, bool):
            raise self.error(node, field_path, "expected text, got a boolean")
        text = str(value)
        if env:
            text = self.expand(node, field_path, text)
        if choices is not None and text not in choices:
            raise self.error(node, field_path, f"expected one of {', '.join(choices)}")
        return text

    def warn(self, node: Any, field_path: str, message: str) -> None:
        """A config warning, named like an error (file:line: field: message), shown with the run's notes."""
        line = _line(node)
        where = f"{self.path}:{line}" if line is not None else self.path
        self.warnings.append(f"{where}: {_one_line(field_path)}: {_one_line(message)}")

    def expand(self, node: Any, field_path: str, text: str) -> str:
        unbraced = _ENV_UNBRACED.match(text)
        if unbraced:
            name = unbraced.group(1)
            # Not quoting the value: it becomes the key, a secret, and would be masked in the message.
            self.warn(node, field_path, "an environment reference without braces is taken literally (only the "
                                        f"${{NAME}} spelling is expanded); to read the variable, write ${{{name}}}")

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise self.error(node, field_path, f"'${{{name}}}' is not a valid environment variable name")
            if name not in self.environ:
                raise self.error(node, field_path, f"environment variable {name} is not set")
            return self.environ[name]

        return _ENV_ANYWHERE.sub(substitute, text)

    def integer(self, node: Any, field_path: str, *, minimum: int = 0, maximum: int | None = None) -> int:
        """A whole number written as one, or a whole ${NAME} reference to one; any other text is refused alike,
        quoted digits ("1024") included."""
        value = self._numeric(node, field_path, "a whole number", int)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(node, field_path, "expected a whole number")
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"from {minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
            raise self.error(node, field_path, f"expected a whole number {bound}")
        return value

    def number(self, node: Any, field_path: str, *, minimum: float = 0.0) -> float:
        """A number written as one, or a whole ${NAME} reference to one, as integer() takes them."""
        value = self._numeric(node, field_path, "a number", float)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(node, field_path, "expected a number")
        if value < minimum or value != value or value in (float("inf"), float("-inf")):
            raise self.error(node, field_path, f"expected a finite number of at least {minimum}")
        return float(value)

    def _numeric(self, node: Any, field_path: str, what: str, parse: Callable[[str], Any]) -> Any:
        """The scalar of a numeric field; text only as a whole ${NAME} reference, whose value is parsed."""
        value = self.scalar(node, field_path)
        if not isinstance(value, str):
            return value
        reference = _ENV_REF.match(value)
        if reference is None:
            raise self.error(node, field_path, f"expected {what}, got the text '{shorten(value, 40)}'"
                                               f"{_numeric_hint(value, parse)}")
        text = self.expand(node, field_path, value)
        try:
            return parse(text.strip())
        except ValueError:
            raise self.error(node, field_path, f"expected {what} in ${{{reference.group(1)}}}") from None

    def sequence(self, node: Any, field_path: str) -> list[Any]:
        import yaml

        if self.scalar_is_null(node):
            return []
        if not isinstance(node, yaml.SequenceNode):
            raise self.error(node, field_path, f"expected a list, got {_kind(node)}")
        return list(node.value)

    def scalar_is_null(self, node: Any) -> bool:
        import yaml

        return isinstance(node, yaml.ScalarNode) and self.scalar(node, "") is None

    def strings(self, node: Any, field_path: str) -> tuple[str, ...]:
        items = []
        for index, item in enumerate(self.sequence(node, field_path)):
            value = self.string(item, f"{field_path}[{index}]", required=True, env=True)
            assert value is not None
            items.append(value)
        return tuple(items)

    def section(self, node: Any, field_path: str, allowed: tuple[str, ...],
                build: Callable[[dict[str, tuple[Any, Any]]], T], default: T) -> T:
        if node is None or self.scalar_is_null(node):
            return default
        return build(self.mapping(node, field_path, allowed))

    def fields(self, node: Any, field_path: str, fields: tuple[Field, ...]) -> dict[str, tuple[Any, Any]]:
        """A mapping of the table's `fields`, its required ones present."""
        entries = self.mapping(node, field_path, _names(fields))
        for spec in fields:
            if spec.required and spec.name not in entries:
                raise self.error(node, f"{field_path}.{spec.name}" if field_path else spec.name, "is required")
        return entries

    def value(self, m: dict[str, tuple[Any, Any]], fields: tuple[Field, ...], name: str, field_path: str) -> Any:
        """The value of a scalar field as the table defines it, or its default when the mapping lacks it."""
        spec = field_of(fields, name)
        if name not in m:
            return spec.default
        node = m[name][1]
        sub = f"{field_path}.{name}" if field_path else name
        if spec.type in ("integer", "number") and spec.accepts_null and self.scalar_is_null(node):
            return None
        if spec.type == "integer":
            number = self.integer(node, sub, minimum=int(spec.minimum or 0), maximum=spec.maximum)
            if spec.const is not None and number != spec.const:
                raise self.error(node, sub, f"expected {spec.const} (the only config {name} so far)")
            return number
        if spec.type == "number":
            return self.number(node, sub, minimum=spec.minimum or 0.0)
        if spec.type == "strings":
            return self.strings(node, sub)
        if spec.type == "id":
            return _id(self, node, sub)
        if spec.type == "date":
            return self.date(node, sub)
        text = self.string(node, sub, required=spec.required, choices=spec.choices, env=spec.env)
        if spec.pattern is not None and text is not None and not re.fullmatch(spec.pattern, text):
            raise self.error(node, sub, _PATTERN_MESSAGES.get(spec.pattern, f"expected text like {spec.pattern}"))
        return text if text or spec.default is None else spec.default

    def date(self, node: Any, field_path: str) -> dt.date:
        """A day written YYYY-MM-DD (YAML's own date, or text)."""
        value = self.scalar(node, field_path)
        if value is None:
            raise self.error(node, field_path, "is required (a date like 2027-01-31)")
        try:
            return dt.date.fromisoformat(str(value).strip())
        except ValueError:
            raise self.error(node, field_path, f"expected a date like 2027-01-31, got '{shorten(str(value), 40)}'"
                             ) from None


_PATTERN_MESSAGES = {
    REGION_PATTERN: "expected a region id like cn-beijing",
    TARGET_NAME_PATTERN: "use letters, digits, '.', '_' or '-' (at most 64)",
}


def _numeric_hint(text: str, parse: Callable[[str], Any]) -> str:
    """What to write instead of text in a numeric field, when it is plain what was meant."""
    unbraced = _ENV_UNBRACED.match(text)
    if unbraced:
        return f"; to read the environment variable, write ${{{unbraced.group(1)}}}"
    try:
        parse(text)
    except ValueError:
        return ""
    return f"; write {text.strip()} without quotes"


def _yaml_int(text: str) -> int | str:
    """An int the way YAML 1.1 writes it; ids with leading zeros and sexagesimal stay text."""
    digits = text.replace("_", "")
    unsigned = digits.lstrip("+-")
    if unsigned[:1] == "0" and unsigned[1:2].isdigit():
        return text  # 0123 is octal to YAML 1.1, and almost surely an id to a person
    try:
        return int(digits, 0)
    except ValueError:
        return text


def _yaml_float(text: str) -> float | str:
    """A float the way YAML writes it (.inf, .nan, 1_000.5); anything else stays text for the field to judge."""
    special = {".inf": "inf", "+.inf": "inf", "-.inf": "-inf", ".nan": "nan"}
    try:
        return float(special.get(text.lower(), text.replace("_", "")))
    except ValueError:
        return text


def _one_line(text: str) -> str:
    """Messages quote keys and values from the file; control characters must not break the one line."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def _kind(node: Any) -> str:
    import yaml

    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node is None:
        return "nothing"
    return f"'{node.value}'" if len(str(node.value)) < 40 else "text"


def _line(node: Any) -> int | None:
    mark = getattr(node, "start_mark", None)
    return mark.line + 1 if mark is not None else None


def _count_nodes(root: Any, limit: int) -> None:
    """Refuse alias bombs and very deep or very large documents before anything walks them."""
    import yaml

    seen = 0
    stack: list[tuple[Any, int]] = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        seen += 1
        if seen > limit:
            raise ConfigError(f"the document has more than {limit} values (an alias bomb?)", line=_line(node))
        if depth > MAX_DEPTH:
            raise ConfigError(TOO_DEEP, line=_line(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.append((key, depth + 1))
                stack.append((value, depth + 1))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, depth + 1) for item in node.value)


def _compose(text: str, path: str) -> Any:
    import yaml

    loader_class = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        loader = loader_class(text)
        try:
            root = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "not valid YAML"
        if "nesting depth" in problem:  # the YAML library's own limit, which answers before ours for flow style
            raise ConfigError(TOO_DEEP, path=path, line=line) from None
        raise ConfigError(f"not valid YAML: {_one_line(problem)}", path=path, line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {_one_line((str(exc).splitlines() or ['?'])[0])}", path=path) from None
    except RecursionError:
        raise ConfigError(TOO_DEEP, path=path) from None
    if root is None:
        raise ConfigError("the file is empty; see the README for a minimal config", path=path)
    try:
        _count_nodes(root, MAX_NODES)
    except ConfigError as exc:
        raise ConfigError(exc.detail, path=path, line=exc.line) from None
    return root


def read_config_text(path: Path) -> str:
    """Read a config file, turning every way it can be unreadable into a ConfigError."""
    name = str(path)
    try:
        is_dir = stat.S_ISDIR(path.stat().st_mode)
    except FileNotFoundError:  # also a dangling link
        raise ConfigError("no such file; pass -c FILE or create preflight.yaml", path=name) from None
    except OSError as exc:  # a link loop, a path through a file, no permission on a directory
        raise ConfigError(f"cannot be read: {exc.strerror or exc}", path=name) from None
    if is_dir:
        raise ConfigError("is a directory, not a config file", path=name)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot be read: {exc.strerror or exc}", path=name) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"is larger than {MAX_CONFIG_BYTES // 1024} KiB; is this the right file?", path=name)
    if b"\x00" in data:
        raise ConfigError("is a binary file, not YAML", path=name)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"is not UTF-8 text (byte {exc.start})", path=name,
                          line=data.count(b"\n", 0, exc.start) + 1) from None


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    """Load and validate a config file."""
    path = Path(path)
    text = read_config_text(path)
    return parse_config(text, str(path), os.environ if environ is None else environ)


def parse_config(text: str, path: str = "<config>", environ: Mapping[str, str] | None = None,
                 today: dt.date | None = None) -> Config:
    """Parse config text; `path` only names the source in messages, `today` dates the waivers' checks."""
    reader = _Reader(path, os.environ if environ is None else environ)
    root = _compose(text, path)
    top = reader.mapping(root, "", _names(TOP_FIELDS))
    reader.value(top, TOP_FIELDS, "version", "")
    if "region" not in top:
        raise reader.error(root, "region", "is required (for example cn-beijing)")
    region = reader.value(top, TOP_FIELDS, "region", "")
    if "targets" not in top:
        raise reader.error(root, "targets", "is required: list at least one target")
    target_nodes = reader.sequence(top["targets"][1], "targets")
    if not target_nodes:
        raise reader.error(top["targets"][1], "targets", "is empty: list at least one target")
    targets = tuple(_target(reader, node, f"targets[{index}]") for index, node in enumerate(target_nodes))
    names = [target.name for target in targets]
    for index, name in enumerate(names):
        if names.index(name) != index:
            raise reader.error(target_nodes[index], f"targets[{index}].name", f"'{name}' is used twice")
    budget = reader.value(top, TOP_FIELDS, "max_tokens_budget", "")
    waiver_nodes = reader.sequence(top["waivers"][1], "waivers") if "waivers" in top else []
    waivers = tuple(_waiver(reader, node, f"waivers[{index}]", today or dt.date.today())
                    for index, node in enumerate(waiver_nodes))

    def section(name: str, build: Callable[[dict[str, tuple[Any, Any]]], T], default: T) -> T:
        spec = field_of(TOP_FIELDS, name)
        return reader.section(top.get(name, (None, None))[1], name, _names(spec.fields), build, default)

    return Config(
        region=region,
        targets=targets,
        cloud=section("cloud", lambda m: _cloud(reader, m), CloudConfig()),
        dns=section("dns", lambda m: _dns(reader, m), DnsConfig()),
        http=section("http", lambda m: _http(reader, m), HttpConfig()),
        in_network=section("in_network", lambda m: _in_network(reader, m), InNetworkConfig()),
        max_tokens_budget=budget,
        waivers=waivers,
        path=path,
        warnings=tuple(reader.warnings),
    )


def _cloud(reader: _Reader, m: dict[str, tuple[Any, Any]]) -> CloudConfig:
    endpoints: dict[str, str] = {}
    if "network_endpoints" in m:
        spec = field_of(CLOUD_FIELDS, "network_endpoints")
        inner = reader.mapping(m["network_endpoints"][1], "cloud.network_endpoints", spec.keys)
        for key, (_, node) in inner.items():
            value = reader.string(node, f"cloud.network_endpoints.{key}", required=True, env=spec.env)
            assert value is not None
            endpoints[key] = value

    def get(name: str) -> Any:
        return reader.value(m, CLOUD_FIELDS, name, "cloud")

    return CloudConfig(endpoint=get("endpoint"), protocol=get("protocol"), profile=get("profile"),
                       connect_timeout_ms=get("connect_timeout_ms"), read_timeout_ms=get("read_timeout_ms"),
                       network_endpoints=endpoints,
                       endpoints=_region_endpoints(reader, m["endpoints"][1]) if "endpoints" in m else {},
                       rate_limits=_rate_limits(reader, m["rate_limits"][1]) if "rate_limits" in m else {})


def _region_endpoints(reader: _Reader, node: Any) -> dict[str, dict[str, str]]:
    import yaml

    if not isinstance(node, yaml.MappingNode):
        raise reader.error(node, "cloud.endpoints", f"expected a mapping of region to endpoint, got {_kind(node)}")
    regions = tuple(str(key.value) for key, _ in node.value if isinstance(key, yaml.ScalarNode))
    found: dict[str, dict[str, str]] = {}
    for region, (key_node, value_node) in reader.mapping(node, "cloud.endpoints", regions).items():
        where = f"cloud.endpoints.{region}"
        if not re.fullmatch(REGION_PATTERN, region):
            raise reader.error(key_node, where, "expected a region id like cn-beijing")
        if isinstance(value_node, yaml.MappingNode):
            inner = reader.mapping(value_node, where, ("dataworks", "pvtz", "privatelink", "vpc"))
            products = {product: reader.string(node, f"{where}.{product}", required=True, env=True)
                        for product, (_, node) in inner.items()}
        else:
            products = {"dataworks": reader.string(value_node, where, required=True, env=True)}
        found[region] = {product: value for product, value in products.items() if value is not None}
    return found


def _rate_limits(reader: _Reader, node: Any) -> dict[str, float]:
    """`default` and `product:Action` keys of actions the tool calls, each a positive number of calls a second."""
    import yaml

    from preflight.cloud.session import ACTIONS

    if not isinstance(node, yaml.MappingNode):
        raise reader.error(node, "cloud.rate_limits", f"expected a mapping of action to calls per second, got "
                                                      f"{_kind(node)}")
    known = ("default", *sorted(f"{product}:{action}" for product, action in ACTIONS))
    limits: dict[str, float] = {}
    for key, (_, value_node) in reader.mapping(node, "cloud.rate_limits", known).items():
        rate = reader.number(value_node, f"cloud.rate_limits.{key}")
        if rate <= 0:
            raise reader.error(value_node, f"cloud.rate_limits.{key}", "expected a positive number of calls a second")
        limits[key] = rate
    return limits


def _dns(reader: _Reader, m: dict[str, tuple[Any, Any]]) -> DnsConfig:
    nameservers = reader.value(m, DNS_FIELDS, "nameservers", "dns")
    for index, server in enumerate(nameservers):
        host, _, port = server.rpartition(":") if server.count(":") == 1 else (server, "", "")
        if port and not port.isdigit():
            raise reader.error(m["nameservers"][1], f"dns.nameservers[{index}]", "expected IP or IP:PORT")
        _ = host
    resolve: dict[str, str] = {}
    if "resolve" in m and not reader.scalar_is_null(m["resolve"][1]):
        import yaml

        node = m["resolve"][1]
        if not isinstance(node, yaml.MappingNode):
            raise reader.error(node, "dns.resolve", "expected a mapping of \"host:port\": ip")
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if not re.fullmatch(RESOLVE_KEY_PATTERN, key):
                raise reader.error(key_node, f"dns.resolve.{key}", "expected \"host:port\", like curl --resolve")
            value = reader.string(value_node, f"dns.resolve.{key}", required=True)
            assert value is not None
            resolve[key] = value
    timeout_s = reader.value(m, DNS_FIELDS, "timeout_s", "dns")
    return DnsConfig(nameservers=nameservers, resolve=resolve, timeout_s=timeout_s)


def _http(reader: _Reader, m: dict[str, tuple[Any, Any]]) -> HttpConfig:
    return HttpConfig(**{name: reader.value(m, HTTP_FIELDS, name, "http") for name in _names(HTTP_FIELDS)})


def _in_network(reader: _Reader, m: dict[str, tuple[Any, Any]]) -> InNetworkConfig:
    return InNetworkConfig(**{name: reader.value(m, IN_NETWORK_FIELDS, name, "in_network")
                              for name in _names(IN_NETWORK_FIELDS)})


def _id(reader: _Reader, node: Any, field_path: str) -> str | None:
    value = reader.scalar(node, field_path)
    if value is None:
        return None
    if isinstance(value, bool | float):
        raise reader.error(node, field_path, "expected an id")
    return reader.expand(node, field_path, str(value))


def _target(reader: _Reader, node: Any, path: str) -> TargetConfig:
    m = reader.fields(node, path, TARGET_FIELDS)
    name = reader.value(m, TARGET_FIELDS, "name", path)
    region = reader.value(m, TARGET_FIELDS, "region", path)
    services_nodes = reader.sequence(m["services"][1], f"{path}.services") if "services" in m else []
    services = tuple(_service(reader, item, f"{path}.services[{index}]")
                     for index, item in enumerate(services_nodes))
    names = [service.name for service in services]
    for index, service_name in enumerate(names):
        if names.index(service_name) != index:
            raise reader.error(services_nodes[index], f"{path}.services[{index}].name",
                               f"'{service_name}' is used twice in this target")
    nodes: tuple[str, ...] = ()
    if "nodes" in m:
        nodes = tuple(_id(reader, item, f"{path}.nodes[{i}]") or ""
                      for i, item in enumerate(reader.sequence(m["nodes"][1], f"{path}.nodes")))
    return TargetConfig(
        name=name,
        workspace=reader.value(m, TARGET_FIELDS, "workspace", path),
        resource_group=reader.value(m, TARGET_FIELDS, "resource_group", path),
        region=region,
        nodes=nodes,
        services=services,
        line=node.start_mark.line + 1,
    )


def _service(reader: _Reader, node: Any, path: str) -> ServiceConfig:
    m = reader.fields(node, path, SERVICE_FIELDS)

    def get(name: str, fields: tuple[Field, ...] = SERVICE_FIELDS, within: str = path) -> Any:
        return reader.value(m if fields is SERVICE_FIELDS else e, fields, name, within)

    name, kind, endpoint = get("name"), get("kind"), get("endpoint")
    api_key = None
    api_key_env = None
    literal = False
    if "api_key" in m:
        key_node = m["api_key"][1]
        raw = reader.scalar(key_node, f"{path}.api_key")
        if raw is not None:
            raw = str(raw)
            ref = _ENV_REF.match(raw)
            if ref:
                api_key_env = ref.group(1)
            else:
                literal = "${" not in raw
                if literal and not _ENV_UNBRACED.match(raw):  # else expand() warns, naming the variable
                    reader.warn(key_node, f"{path}.api_key", "the key is written in the file; keys belong in the "
                                "environment: api_key: ${DW_KEY}")
            api_key = reader.expand(key_node, f"{path}.api_key", raw)
    expect = Expect()
    e: dict[str, tuple[Any, Any]] = {}
    if "expect" in m:
        e = reader.fields(m["expect"][1], f"{path}.expect", EXPECT_FIELDS)
        expect = Expect(**{field_name: get(field_name, EXPECT_FIELDS, f"{path}.expect")
                           for field_name in _names(EXPECT_FIELDS)})
    return ServiceConfig(
        name=name,
        kind=kind,
        endpoint=endpoint,
        model=get("model"),
        api_key=api_key,
        api_key_env=api_key_env,
        api_key_literal=literal,
        auth=get("auth"),
        allowed_vpcs=get("allowed_vpcs"),
        expect=expect,
        max_tokens=get("max_tokens"),
        prompt=get("prompt"),
        line=node.start_mark.line + 1,
    )


def _waiver(reader: _Reader, node: Any, path: str, today: dt.date) -> Waiver:
    m = reader.fields(node, path, WAIVER_FIELDS)
    check = reader.value(m, WAIVER_FIELDS, "check", path)
    if not re.search(r"[A-Za-z0-9_]", check):
        raise reader.error(m["check"][1], f"{path}.check", f"'{check}' would waive every check; name a check id "
                           "or a narrower pattern such as network.privatelink or inference.*")
    reason = reader.value(m, WAIVER_FIELDS, "reason", path)
    if not reason.strip():
        raise reader.error(m["reason"][1], f"{path}.reason", "is required: say why the problem is accepted")
    until = reader.value(m, WAIVER_FIELDS, "until", path)
    if (until - today).days > MAX_WAIVER_DAYS:
        reader.warn(m["until"][1], f"{path}.until", f"{until.isoformat()} is more than {MAX_WAIVER_DAYS} days "
                    "ahead; a waiver is a dated exception, not a permanent one: choose an earlier date")
    return Waiver(check=check, reason=reason, until=until, target=reader.value(m, WAIVER_FIELDS, "target", path),
                  service=reader.value(m, WAIVER_FIELDS, "service", path),
                  ticket=reader.value(m, WAIVER_FIELDS, "ticket", path),
                  where=f"{reader.path}:{_line(node)}")


def single_service_config(*, endpoint: str, kind: str, api_key_env: str | None, region: str | None,
                          workspace: str | None, resource_group: str | None, model: str | None,
                          auth: str, environ: Mapping[str, str] | None = None) -> Config:
    """Build the config for `preflight run --endpoint URL ...` without a file."""
    env = os.environ if environ is None else environ
    api_key = None
    if api_key_env:
        if api_key_env not in env:
            raise ConfigError(f"--api-key-env: environment variable {api_key_env} is not set")
        api_key = env[api_key_env]
    if kind not in KINDS:
        raise ConfigError(f"--kind: expected one of {', '.join(KINDS)}")
    if region is None:
        match = re.match(r"^[a-z]+://[^./]+\.([a-z]{2,}(?:-[a-z0-9]+)+)\.dataworks-model\.aliyuncs\.com", endpoint)
        region = match.group(1) if match else "cn-hangzhou"
    service = ServiceConfig(name="service", kind=kind, endpoint=endpoint, model=model, api_key=api_key,
                            api_key_env=api_key_env, auth=auth)
    target = TargetConfig(name="cli", workspace=workspace, resource_group=resource_group, services=(service,))
    return Config(region=region, targets=(target,), path=None)


__all__ = [
    "AUTH_MODES", "KINDS", "TOP_FIELDS", "CloudConfig", "Config", "DnsConfig", "Expect", "Field", "HttpConfig",
    "InNetworkConfig", "ServiceConfig", "TargetConfig", "Waiver", "field_of", "load_config", "parse_config",
    "read_config_text", "single_service_config",
]
