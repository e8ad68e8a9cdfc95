"""The frozen, typed objects a config file becomes: the run's targets, their services and the client settings."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

KINDS = ("completion", "chat", "embedding")
AUTH_MODES = ("raw", "bearer")
PROTOCOLS = ("https", "http")


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


__all__ = [
    "AUTH_MODES", "KINDS", "PROTOCOLS", "CloudConfig", "Config", "DnsConfig", "Expect", "HttpConfig",
    "InNetworkConfig", "ServiceConfig", "TargetConfig", "Waiver",
]
