"""Both collectors against the simulator over real loopback sockets: equal observations, hostile servers bounded."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from preflight.config import Config, ServiceConfig, parse_config
from preflight.probe.local import LocalCollector, build_client
from preflight.probe.script import build_collector_source, build_plan
from preflight.simulator.dns_server import DnsServer
from preflight.simulator.harness import KEY_ENV, Simulator
from preflight.simulator.model_service import ModelService
from preflight.simulator.scenarios import World, get_scenario

# Timings, and headers that only say when or how the connection was served, differ between any two runs.
TIMINGS = {"elapsed_ms", "handshake_ms", "ttft_ms", "first_byte_ms", "event_times_ms", "total_ms"}
VOLATILE_HEADERS = {"date", "connection", "keep-alive"}
FAST_HTTP = "http: {connect_timeout_s: 1, read_timeout_s: 1, total_timeout_s: 3, max_body_bytes: 65536}"
Observations = dict[str, dict[str, Any]]


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ({h: v for h, v in value[k].items() if h not in VOLATILE_HEADERS} if k == "headers"
                    else stable(value[k])) for k in value if k not in TIMINGS}
    if isinstance(value, list):
        return [stable(item) for item in value]
    return value


def names_for(service: ServiceConfig) -> list[str]:
    kinds = {"completion": ["completion", "stream"], "chat": ["chat"], "embedding": ["embedding"]}
    return ["dns", "tcp", "http", "models", *kinds[service.kind]]


def observe_locally(config: Config, service: ServiceConfig, names: list[str]) -> Observations:
    async def go() -> Observations:
        async with build_client(config) as client:
            collector = LocalCollector(config, client)
            dns = await collector.dns(service)
            found: Observations = {"dns": dns}
            for name in names[1:]:
                found[name] = await getattr(collector, name)(service, dns)
            return found

    return asyncio.run(go())


def observe_in_network(config: Config, service: ServiceConfig, names: list[str]) -> Observations:
    """The in-network collector's own source, run in this interpreter (its subprocess runs are in tests/innetwork)."""
    plan = build_plan(config, config.targets[0], send_key=True)
    namespace: dict[str, Any] = {"__name__": "collector"}  # not __main__: define, do not run
    exec(compile(build_collector_source(plan), "collector.py", "exec"), namespace)
    planned = next(s for s in plan["targets"][0]["services"] if s["name"] == service.name)
    found: Observations = namespace["observe_service"](namespace["Collector"](plan), planned, names)
    return found


def config_for(simulator: Simulator, http: str | None = None) -> Config:
    text = simulator.config_text()
    if http is not None:
        text = text.replace("http: {connect_timeout_s: 2, read_timeout_s: 5, total_timeout_s: 10}", http)
    return parse_config(text, "sim.yaml", simulator.environ())


@pytest.fixture(scope="module")
def healthy() -> Iterator[Simulator]:
    with Simulator(get_scenario("healthy"), run_scripts=False) as simulator:
        yield simulator


@pytest.mark.parametrize("service_name", ["qwen", "qwen-chat", "bge-m3"])
def test_both_collectors_observe_the_same_thing(healthy: Simulator, service_name: str) -> None:
    config = config_for(healthy)
    service = next(s for s in config.targets[0].services if s.name == service_name)
    names = names_for(service)
    local = observe_locally(config, service, names)
    remote = observe_in_network(config, service, names)
    assert set(local) == set(remote) == set(names)
    for name in names:
        assert stable(local[name]) == stable(remote[name]), name
    assert local["dns"]["resolver"] == f"127.0.0.1:{healthy.dns_port}" and local["dns"]["answers"] == ["127.0.0.1"]
    # Both read the kernel's handshake round trip (Linux): well under a millisecond on loopback.
    for found in (local, remote):
        assert 0 < found["tcp"]["handshake_ms"] < 1
    exchange = local[names[-1]]
    assert exchange["status"] == 200 and exchange["error"] is None and exchange["sent_key"] is True
    if service.kind == "completion":
        assert local["stream"]["done"] is True and local["stream"]["events"] >= 2 and local["stream"]["text"]
    if service.kind == "embedding":
        summary = local["embedding"]["json"]["data"][0]["embedding"]
        assert summary == {"type": "list", "length": 1024, "non_numeric": 0, "non_finite": 0}
        assert local["embedding"]["single"]["request_body"]["input"] == "dw-preflight embedding probe"


def expect_reset(obs: dict[str, Any]) -> None:
    assert obs["error"] in ("reset", "protocol") and obs["json"] is None


def expect_timeout(obs: dict[str, Any]) -> None:
    assert obs["error"] == "timeout" and obs["status"] is None


def expect_capped(obs: dict[str, Any]) -> None:
    assert obs["body_capped"] is True and obs["body_bytes"] == 65536 and obs["json"] is None


def expect_not_utf8(obs: dict[str, Any]) -> None:
    assert obs["status"] == 200 and obs["body_utf8"] is False and obs["json"] is None


def expect_not_json(obs: dict[str, Any]) -> None:
    assert obs["status"] == 200 and obs["json"] is None and obs["json_error"] and obs["body_excerpt"] == "OK"


def expect_proxy(obs: dict[str, Any]) -> None:
    assert obs["status"] == 502 and obs["headers"]["server"] == "nginx" and "text/html" in obs["content_type"]


def expect_redirect(obs: dict[str, Any]) -> None:
    assert obs["status"] == 302 and obs["redirect"].startswith("http://127.0.0.2:")


def expect_endless(obs: dict[str, Any]) -> None:
    assert obs["capped"] is True and obs["done"] is False and obs["events"] > 100 and obs["error"] is None


def expect_malformed(obs: dict[str, Any]) -> None:
    assert obs["json_errors"] == 2 and obs["first_json_error"] and obs["text"] == ""


def expect_stall(obs: dict[str, Any]) -> None:
    assert obs["stalled"] is True and obs["events"] == 1 and obs["error"] == "timeout"


def expect_nan(obs: dict[str, Any]) -> None:
    vectors = [item["embedding"] for item in obs["json"]["data"]]
    assert vectors and all(v["type"] == "list" and v["non_finite"] > 0 for v in vectors)


HOSTILE = [
    ("completion-reset", "qwen", "completion", expect_reset),
    ("completion-trickle", "qwen", "completion", expect_timeout),
    ("completion-huge", "qwen", "completion", expect_capped),
    ("completion-not-utf8", "qwen", "completion", expect_not_utf8),
    ("completion-not-json", "qwen", "completion", expect_not_json),
    ("proxy-502", "qwen", "http", expect_proxy),
    ("redirect", "qwen", "models", expect_redirect),
    ("stream-endless", "qwen", "stream", expect_endless),
    ("stream-malformed", "qwen", "stream", expect_malformed),
    ("stream-stall", "qwen", "stream", expect_stall),
    ("embedding-nan", "bge-m3", "embedding", expect_nan),
]


@pytest.mark.parametrize(("fault", "service_name", "name", "expect"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_a_hostile_server_is_an_observation_within_the_deadline(fault: str, service_name: str, name: str,
                                                                expect: Any) -> None:
    scenario = next((s for s in (get_scenario(n) for n in _scenario_names()) if fault in s.model_faults), None)
    assert scenario is not None, f"no scenario injects {fault}"
    with Simulator(scenario, run_scripts=False) as simulator:
        config = config_for(simulator, FAST_HTTP)
        service = next(s for s in config.targets[0].services if s.name == service_name)
        results = []
        for observe in (observe_locally, observe_in_network):
            start = time.monotonic()
            found = observe(config, service, ["dns", "tcp", name])
            took = time.monotonic() - start
            assert took < 3 + 2, f"{observe.__name__} took {took:.1f} s"  # total deadline, plus DNS and TCP
            expect(found[name])
            results.append(found[name])
    local, remote = results
    for field in ("status", "error", "redirect", "body_utf8", "body_capped", "json"):
        assert local[field] == remote[field], field
    if name == "stream":
        for field in ("done", "capped", "stalled", "json_errors"):
            assert local[field] == remote[field], field
    for observation in results:
        for key in (m.api_key for m in scenario.world.models):
            assert key not in repr(observation)


def _scenario_names() -> list[str]:
    from preflight.simulator.scenarios import SCENARIOS

    return sorted(SCENARIOS)


def small_config(endpoint: str, dns: str) -> Config:
    return parse_config(f"""\
region: cn-beijing
dns: {dns}
http: {{connect_timeout_s: 1, read_timeout_s: 1, total_timeout_s: 2}}
targets:
  - name: t
    resource_group: Serverless_res_group_1
    services:
      - {{name: s, kind: completion, endpoint: "{endpoint}", api_key: "DW-ms-x-secret-000000", model: m}}
""", "t.yaml", {})


HOST = "ms-x.cn-beijing.dataworks-model.aliyuncs.com"


def test_dns_failures_and_a_refused_port_are_classified_alike() -> None:
    empty = DnsServer({})
    dns_port = empty.start()
    answering = DnsServer({HOST: "127.0.0.1"})
    answering_port = answering.start()
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # bound, never answers
    silent.bind(("127.0.0.1", 0))
    try:
        port = closed_port()
        cases = [
            (f"{{nameservers: ['127.0.0.1:{dns_port}'], timeout_s: 1}}", "nxdomain"),
            (f"{{nameservers: ['127.0.0.1:{silent.getsockname()[1]}'], timeout_s: 0.5}}", "timeout"),
        ]
        for dns, error in cases:
            config = small_config(f"http://{HOST}:{port}", dns)
            service = config.targets[0].services[0]
            local = observe_locally(config, service, ["dns", "tcp"])
            remote = observe_in_network(config, service, ["dns", "tcp"])
            assert stable(local) == stable(remote)
            assert local["dns"]["error"] == error and local["tcp"]["error"] == "no-address", local
        # A dead first resolver is not the answer: the second one is asked, as resolv.conf would.
        both = f"['127.0.0.1:{silent.getsockname()[1]}', '127.0.0.1:{answering_port}']"
        config = small_config(f"http://{HOST}:{port}", f"{{nameservers: {both}, timeout_s: 0.5}}")
        service = config.targets[0].services[0]
        local = observe_locally(config, service, ["dns"])
        remote = observe_in_network(config, service, ["dns"])
        assert stable(local) == stable(remote) and local["dns"]["answers"] == ["127.0.0.1"], local
        config = small_config(f"http://{HOST}:{port}", f"{{resolve: {{'{HOST}:{port}': 127.0.0.1}}}}")
        service = config.targets[0].services[0]
        local = observe_locally(config, service, ["dns", "tcp"])
        remote = observe_in_network(config, service, ["dns", "tcp"])
        assert stable(local) == stable(remote)
        assert local["dns"]["resolver"] == "override" and local["tcp"]["error"] == "refused"
        assert local["tcp"]["address"] == "127.0.0.1" and local["tcp"]["connected"] is False
    finally:
        silent.close()
        empty.stop()
        answering.stop()


def test_a_refusing_resolver_is_passed_over_alike_and_named_when_it_is_the_only_one() -> None:
    """Both collectors ask the next resolver after a REFUSED, and say which resolver refused when none answered."""
    outside = "svc.example.org"
    refusing = DnsServer({HOST: "127.0.0.1"})  # refuses names outside the model domain
    refusing_port = refusing.start()
    answering = DnsServer({outside: "127.0.0.1"})
    answering_port = answering.start()
    try:
        endpoint = f"http://{outside}:{closed_port()}"
        both = f"{{nameservers: ['127.0.0.1:{refusing_port}', '127.0.0.1:{answering_port}'], timeout_s: 1}}"
        only = f"{{nameservers: ['127.0.0.1:{refusing_port}'], timeout_s: 1}}"
        for dns, check in ((both, lambda found: found["answers"] == ["127.0.0.1"] and found["error"] is None),
                           (only, lambda found: found["error"] == "refused"
                            and f"127.0.0.1:{refusing_port} answered REFUSED" in found["detail"])):
            config = small_config(endpoint, dns)
            service = config.targets[0].services[0]
            local = observe_locally(config, service, ["dns"])
            remote = observe_in_network(config, service, ["dns"])
            assert stable(local) == stable(remote) and check(local["dns"]), local
    finally:
        refusing.stop()
        answering.stop()


def test_requests_carry_the_hostname_while_connecting_to_the_resolved_address() -> None:
    world = World()
    service_model = world.models[0]
    model = ModelService(world)
    port = model.start()
    try:
        endpoint = f"http://{service_model.host}:{port}"
        config = parse_config(f"""\
region: cn-beijing
dns: {{resolve: {{'{service_model.host}:{port}': 127.0.0.1}}}}
targets:
  - name: t
    resource_group: Serverless_res_group_1
    services:
      - {{name: s, kind: completion, endpoint: "{endpoint}", api_key: "{service_model.api_key}",
         model: {service_model.model}}}
""", "t.yaml", {})
        service = config.targets[0].services[0]
        for observe in (observe_locally, observe_in_network):
            found = observe(config, service, ["dns", "tcp", "models"])
            # The simulator picks the model service by the Host header, as the real gateway does.
            assert found["models"]["status"] == 200, found["models"]
            assert found["models"]["url"] == f"{endpoint}/v1/models"
    finally:
        model.stop()


def test_the_handshake_time_is_the_kernels_and_absent_where_there_is_none() -> None:
    from preflight.probe.observations import handshake_ms

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        with socket.create_connection(listener.getsockname()) as client:
            assert 0 < handshake_ms(client) < 1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as datagram:
        assert handshake_ms(datagram) is None  # not TCP: the kernel has no tcp_info to give


def keep_answering(connections: list[asyncio.StreamWriter], answer: bytes) -> Any:
    """A keep-alive server that answers every request on a connection alike, and records each connection."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    return serve


def test_requests_to_one_endpoint_share_a_kept_alive_connection() -> None:
    """The connect test opens and closes its own connection; the unauthenticated and the keyed request then share
    one kept-alive connection: the server sees two connections for three observations."""
    seen: list[asyncio.StreamWriter] = []
    serve = keep_answering(seen, b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")

    async def go() -> dict[str, Any]:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        service = ServiceConfig(name="qwen", kind="completion", endpoint=f"http://127.0.0.1:{port}", api_key="DW-x")
        config = Config(region="cn-shanghai", targets=())
        try:
            async with build_client(config) as client:
                collector = LocalCollector(config, client)
                dns = await collector.dns(service)
                tcp = await collector.tcp(service, dns)
                http = await collector.http(service, dns)
                models = await collector.models(service, dns)
                return {"tcp": tcp, "http": http, "models": models}
        finally:
            await asyncio.sleep(0.05)
            server.close()
            await server.wait_closed()

    found = asyncio.run(go())
    assert found["tcp"]["connected"] and found["tcp"]["error"] is None
    assert found["http"]["status"] == found["models"]["status"] == 401
    assert found["http"]["sent_key"] is False and found["models"]["sent_key"] is True
    assert len(seen) == 2


def test_a_refused_connect_test_is_classified() -> None:
    service = ServiceConfig(name="qwen", kind="completion", endpoint=f"http://127.0.0.1:{closed_port()}",
                            api_key="DW-x")
    found = observe_locally(Config(region="cn-shanghai", targets=()), service, ["dns", "tcp"])
    assert found["tcp"]["connected"] is False and found["tcp"]["error"] == "refused"
    assert found["tcp"]["detail"] == "connection refused (RST): nothing listens"


class _RefusesStreamOptions(BaseHTTPRequestHandler):
    """A server that, like some OpenAI-compatible ones, refuses a stream request that carries stream_options."""

    protocol_version = "HTTP/1.1"
    server: Any

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.bodies.append(body)
        if "stream_options" in body:
            status, kind = 400, "application/json"
            payload = b'{"error": {"message": "Unrecognized request argument supplied: stream_options"}}'
        else:
            status, kind = 200, "text/event-stream"
            payload = b'data: {"choices": [{"text": "hi"}]}\n\ndata: [DONE]\n\n'
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_stream_is_asked_for_its_usage_and_sent_again_without_when_the_server_refuses() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RefusesStreamOptions)
    server.bodies = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    try:
        config = small_config(f"http://{HOST}:{port}", f"{{resolve: {{'{HOST}:{port}': 127.0.0.1}}}}")
        service = config.targets[0].services[0]
        for observe in (observe_locally, observe_in_network):
            server.bodies.clear()  # type: ignore[attr-defined]
            stream = observe(config, service, ["dns", "tcp", "stream"])["stream"]
            asked, again = server.bodies  # type: ignore[attr-defined]
            assert asked["stream_options"] == {"include_usage": True} and "stream_options" not in again
            assert stream["status"] == 200 and stream["done"] is True and stream["text"] == "hi", observe
            assert stream["usage_requested"] is False and stream["usage_refused"] is True
            assert "stream_options" not in stream["request_body"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(2)


def test_a_stream_the_server_accepts_asks_for_usage_once(healthy: Simulator) -> None:
    config = config_for(healthy)
    service = next(s for s in config.targets[0].services if s.name == "qwen")
    for observe in (observe_locally, observe_in_network):
        stream = observe(config, service, ["dns", "tcp", "stream"])["stream"]
        assert stream["usage_requested"] is True and stream["usage_refused"] is False
        assert stream["request_body"]["stream_options"] == {"include_usage": True} and stream["done"] is True


def test_a_key_with_a_line_break_is_never_sent_nor_echoed(healthy: Simulator) -> None:
    """Neither collector sends a header with a line break in it, nor repeats the key in what it reports."""
    key = "DW-k\r\nX-Injected: 1"
    config = parse_config(healthy.config_text(), "sim.yaml", {**healthy.environ(), KEY_ENV["completion"]: key})
    service = next(s for s in config.targets[0].services if s.name == "qwen")
    for observe in (observe_locally, observe_in_network):
        models = observe(config, service, ["dns", "tcp", "models"])["models"]
        assert models["status"] is None and models["error"] == "error", observe
        assert "X-Injected" not in repr(models) and "line break" in models["detail"]
