"""Start the simulator's servers on loopback for one scenario and write the config that points at them."""

from __future__ import annotations

import socket
from types import TracebackType
from typing import TYPE_CHECKING, Any

from preflight.simulator.scenarios import Scenario, SimModel

CLOUD_PRODUCTS = ("dataworks", "pvtz", "privatelink", "vpc")  # each region's cloud API serves them all

if TYPE_CHECKING:
    from preflight.simulator.openapi import CloudApi

KEY_ENV = {"completion": "DW_DEMO_QWEN_KEY", "chat": "DW_DEMO_CHAT_KEY", "embedding": "DW_DEMO_BGE_KEY"}
SERVICE_NAMES = {"completion": "qwen", "chat": "qwen-chat", "embedding": "bge-m3"}


def _closed_port(port: int = 0) -> int:
    """A loopback port that nothing listens on (bound, then released): `port`, or any when it is 0."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", port))
        bound: int = probe.getsockname()[1]
    return bound


class Simulator:
    """The model service, its DNS server and the cloud API for one scenario, on 127.0.0.1."""

    def __init__(self, scenario: Scenario, *, latency_ms: float = 0.0, dns_latency_ms: float = 0.0,
                 run_scripts: bool = True, openapi_port: int = 0, model_port: int = 0, dns_port: int = 0,
                 rate_limit: float | None = None, rate_burst: float | None = None) -> None:
        """The ports are where the servers listen on 127.0.0.1; 0 is any free port, read back after start().
        `openapi_port` is the world's own region's cloud API; other regions' always get free ports."""
        self.scenario = scenario
        # Calls per action per second the cloud API allows; None: what the scenario says.
        self.rate_limit = scenario.rate_limit if rate_limit is None else rate_limit
        self.rate_burst = rate_burst
        self.world = scenario.world
        self.latency_s = latency_ms / 1000.0
        self.dns_latency_s = dns_latency_ms / 1000.0
        self.run_scripts = run_scripts
        self.model_port = model_port
        self.dns_port = dns_port
        self.cloud_port = openapi_port  # the world's own region's
        self.cloud_ports: dict[str, int] = {}  # every region's cloud API, each on its own port
        self._servers: list[object] = []

    def start(self) -> Simulator:
        from preflight.simulator.dns_server import DnsServer
        from preflight.simulator.model_service import ModelService
        from preflight.simulator.openapi import CloudApi

        try:
            if self.scenario.service_down:
                self.model_port = _closed_port(self.model_port)
            else:
                model = ModelService(self.world, faults=self.scenario.model_faults, latency_s=self.latency_s)
                self.model_port = model.start(self.model_port)
                self._servers.append(model)
            records = {} if self.scenario.dns_missing else {m.host: "127.0.0.1" for m in self.world.models}
            dns = DnsServer(records, latency_s=self.dns_latency_s)
            self.dns_port = dns.start(self.dns_port)
            self._servers.append(dns)
            for region in self.world.regions:
                cloud = CloudApi(self.world.in_region(region), faults=self.scenario.cloud_faults,
                                 latency_s=self.latency_s, dns_port=self.dns_port, rate_limit=self.rate_limit,
                                 rate_burst=self.rate_burst)
                own = region == self.world.region
                self.cloud_ports[region] = cloud.start(self.cloud_port if own else 0)
                self._servers.append(cloud)
            self.cloud_port = self.cloud_ports[self.world.region]
        except BaseException:
            self.stop()
            raise
        return self

    def stats(self) -> dict[str, Any]:
        """What the servers received: model requests per path, cloud calls per action (and those throttled; over
        all regions, and per region), DNS queries, and the cloud requests that departed from the SDKs' contract
        (deviations answered anyway, refusals answered 400), and each ad hoc task's seconds from submission to end."""
        found: dict[str, Any] = {"model": {}, "cloud": {}, "dns": {}, "throttled": {}, "cloud_by_region": {},
                                 "task_seconds": [], "deviations": self.deviations(), "refusals": self.refusals()}
        for server in self._servers:
            name = type(server).__name__
            if name == "ModelService":
                found["model"] = dict(server.requests)  # type: ignore[attr-defined]
            elif name == "CloudApi":
                calls, throttled = dict(server.calls), dict(server.throttled)  # type: ignore[attr-defined]
                found["cloud_by_region"][server.world.region] = calls  # type: ignore[attr-defined]
                for action, count in calls.items():
                    found["cloud"][action] = found["cloud"].get(action, 0) + count
                for action, count in throttled.items():
                    found["throttled"][action] = found["throttled"].get(action, 0) + count
                # How long each ad hoc task took from submission to its end: what following it cannot beat.
                found.setdefault("task_seconds", []).extend(
                    round(run.finished - run.created, 3) for run in server.workflows.tasks.values()  # type: ignore[attr-defined]
                    if run.finished is not None)
            elif name == "DnsServer":
                found["dns"] = {"queries": server.queries}  # type: ignore[attr-defined]
        return found

    @property
    def clouds(self) -> list[CloudApi]:
        """The running cloud API servers, the world's own region's first."""
        from preflight.simulator.openapi import CloudApi

        return [server for server in self._servers if isinstance(server, CloudApi)]

    @property
    def cloud(self) -> CloudApi | None:
        """The world's own region's cloud API server, if started."""
        return next(iter(self.clouds), None)

    def deviations(self) -> list[dict[str, Any]]:
        """Cloud requests answered although they departed from the SDKs' contract (action, kind, parameter,
        detail, count), over all regions."""
        return [found for cloud in self.clouds for found in cloud.deviations()]

    def refusals(self) -> list[dict[str, Any]]:
        """Cloud requests refused for their contract, as the gateway refuses them, over all regions."""
        return [found for cloud in self.clouds for found in cloud.refusals()]

    def stop(self) -> None:
        for server in reversed(self._servers):
            server.stop()  # type: ignore[attr-defined]
        self._servers.clear()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def endpoint_of(self, service_id: str) -> str:
        region = next((m.region for m in self.world.models if m.service_id == service_id), self.world.region)
        return f"http://{service_id}.{region}.dataworks-model.aliyuncs.com:{self.model_port}"

    def api_key_for(self, model: SimModel) -> str:
        override = self.scenario.key_override
        return model.api_key if override is None else override.replace("{key}", model.api_key)

    def key_env(self, index: int, model: SimModel) -> str:
        return KEY_ENV[model.kind] if len(self.world.models) <= 3 else f"DW_BENCH_KEY_{index:05d}"

    def environ(self) -> dict[str, str]:
        """Environment a run against this simulator needs: the keys and the AccessKey pair."""
        from preflight.simulator.scenarios import ACCESS_KEY_ID, ACCESS_KEY_SECRET

        env = {self.key_env(index, model): self.api_key_for(model) for index, model in enumerate(self.world.models)}
        env.update({
            "ALIBABA_CLOUD_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": ACCESS_KEY_SECRET,
            "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
        })
        return env

    def config_text(self) -> str:
        """A config file for this simulator, keys referenced from the environment."""
        world = self.world
        lines = [
            "# Generated by dw-preflight's simulator: every address below is on loopback.",
            "version: 1",
            f"region: {world.region}",
            f"cloud: {{endpoint: '127.0.0.1:{self.cloud_port}', protocol: http, connect_timeout_ms: 2000,"
            f" read_timeout_ms: 5000, network_endpoints: {{pvtz: '127.0.0.1:{self.cloud_port}',"
            f" privatelink: '127.0.0.1:{self.cloud_port}', vpc: '127.0.0.1:{self.cloud_port}',"
            f" sts: '127.0.0.1:{self.cloud_port}'}}{self._region_endpoints()}}}",
            f"dns: {{nameservers: ['127.0.0.1:{self.dns_port}'], timeout_s: 2}}",
            "http: {connect_timeout_s: 2, read_timeout_s: 5, total_timeout_s: 10}",
            "targets:",
        ]
        groups = world.resource_group_ids
        for number in range(world.targets):
            group = groups[number % len(groups)]
            # The simulated nodes run on the first group; other groups' targets list none.
            nodes = [node.node_id for node in world.nodes] if group == world.resource_group_id else []
            lines += [
                f"  - name: {'demo' if world.targets == 1 else f'bench-{number:03d}'}",
                f"    workspace: {world.workspace_id}",
                f"    resource_group: {group}",
                f"    nodes: [{', '.join(nodes)}]",
            ]
            models = [(index, m) for index, m in enumerate(world.models) if index % world.targets == number]
            if len(world.regions) > 1 and models:
                lines.append(f"    region: {models[0][1].region}")
            lines.append("    services:")
            for index, model in models:
                lines += self._service_lines(index, model)
        return "\n".join(lines) + "\n"

    def _region_endpoints(self) -> str:
        """`, endpoints: {...}` naming every other region's cloud APIs, or nothing with one region."""
        others = []
        for region, port in self.cloud_ports.items():
            if region != self.world.region:
                products = ", ".join(f"{product}: '127.0.0.1:{port}'" for product in CLOUD_PRODUCTS)
                others.append(f"{region}: {{{products}}}")
        return f", endpoints: {{{', '.join(others)}}}" if others else ""

    def _service_lines(self, index: int, model: SimModel) -> list[str]:
        name = SERVICE_NAMES[model.kind] if len(self.world.models) <= 3 else model.service_id
        expect = "{dimensions: 1024}" if model.kind == "embedding" else "{max_ttft_ms: 1000}"
        return [
            f"      - name: {name}",
            f"        kind: {model.kind}",
            f"        endpoint: {self.endpoint_of(model.service_id)}",
            f"        api_key: ${{{self.key_env(index, model)}}}",
            f"        model: {model.model}",
            f"        expect: {expect}",
        ]


__all__ = ["CLOUD_PRODUCTS", "KEY_ENV", "SERVICE_NAMES", "Simulator"]
