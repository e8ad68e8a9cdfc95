"""Load a config file into a validated Config: read the file, compose it, and build each section from the table."""

from __future__ import annotations

import datetime as dt
import os
import re
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from preflight.actions import RATE_LIMIT_KEYS
from preflight.config.fields import (
    CLOUD_FIELDS,
    DNS_FIELDS,
    EXPECT_FIELDS,
    HTTP_FIELDS,
    IN_NETWORK_FIELDS,
    MAX_WAIVER_DAYS,
    REGION_PATTERN,
    RESOLVE_KEY_PATTERN,
    SERVICE_FIELDS,
    TARGET_FIELDS,
    TOP_FIELDS,
    WAIVER_FIELDS,
    Field,
    field_names,
    field_of,
)
from preflight.config.model import (
    CloudConfig,
    Config,
    DnsConfig,
    Expect,
    HttpConfig,
    InNetworkConfig,
    ServiceConfig,
    TargetConfig,
    Waiver,
)
from preflight.config.reader import ENV_REF, ENV_UNBRACED, Reader, compose, node_kind, node_line
from preflight.errors import ConfigError

MAX_CONFIG_BYTES = 1 << 20
T = TypeVar("T")


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
    reader = Reader(path, os.environ if environ is None else environ)
    root = compose(text, path)
    top = reader.mapping(root, "", field_names(TOP_FIELDS))
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
        return reader.section(top.get(name, (None, None))[1], name, field_names(spec.fields), build, default)

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


def _cloud(reader: Reader, m: dict[str, tuple[Any, Any]]) -> CloudConfig:
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


def _region_endpoints(reader: Reader, node: Any) -> dict[str, dict[str, str]]:
    import yaml

    if not isinstance(node, yaml.MappingNode):
        raise reader.error(node, "cloud.endpoints", f"expected a mapping of region to endpoint, got {node_kind(node)}")
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


def _rate_limits(reader: Reader, node: Any) -> dict[str, float]:
    """`default` and `product:Action` keys of actions the tool calls, each a positive number of calls a second."""
    import yaml

    if not isinstance(node, yaml.MappingNode):
        raise reader.error(node, "cloud.rate_limits", f"expected a mapping of action to calls per second, got "
                                                      f"{node_kind(node)}")
    limits: dict[str, float] = {}
    for key, (_, value_node) in reader.mapping(node, "cloud.rate_limits", RATE_LIMIT_KEYS).items():
        rate = reader.number(value_node, f"cloud.rate_limits.{key}")
        if rate <= 0:
            raise reader.error(value_node, f"cloud.rate_limits.{key}", "expected a positive number of calls a second")
        limits[key] = rate
    return limits


def _dns(reader: Reader, m: dict[str, tuple[Any, Any]]) -> DnsConfig:
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


def _http(reader: Reader, m: dict[str, tuple[Any, Any]]) -> HttpConfig:
    return HttpConfig(**{name: reader.value(m, HTTP_FIELDS, name, "http") for name in field_names(HTTP_FIELDS)})


def _in_network(reader: Reader, m: dict[str, tuple[Any, Any]]) -> InNetworkConfig:
    return InNetworkConfig(**{name: reader.value(m, IN_NETWORK_FIELDS, name, "in_network")
                              for name in field_names(IN_NETWORK_FIELDS)})


def _target(reader: Reader, node: Any, path: str) -> TargetConfig:
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
        nodes = tuple(reader.ident(item, f"{path}.nodes[{i}]") or ""
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


def _service(reader: Reader, node: Any, path: str) -> ServiceConfig:
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
            ref = ENV_REF.match(raw)
            if ref:
                api_key_env = ref.group(1)
            else:
                literal = "${" not in raw
                if literal and not ENV_UNBRACED.match(raw):  # else expand() warns, naming the variable
                    reader.warn(key_node, f"{path}.api_key", "the key is written in the file; keys belong in the "
                                "environment: api_key: ${DW_KEY}")
            api_key = reader.expand(key_node, f"{path}.api_key", raw)
    expect = Expect()
    e: dict[str, tuple[Any, Any]] = {}
    if "expect" in m:
        e = reader.fields(m["expect"][1], f"{path}.expect", EXPECT_FIELDS)
        expect = Expect(**{field_name: get(field_name, EXPECT_FIELDS, f"{path}.expect")
                           for field_name in field_names(EXPECT_FIELDS)})
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


def _waiver(reader: Reader, node: Any, path: str, today: dt.date) -> Waiver:
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
                  where=f"{reader.path}:{node_line(node)}")


__all__ = ["MAX_CONFIG_BYTES", "load_config", "parse_config", "read_config_text"]
