"""The local collector on an httpx.MockTransport: every kind of trouble becomes an observation, within bounds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from preflight.config import parse_config
from preflight.probe.local import LocalCollector

CONFIG = parse_config("""\
region: cn-beijing
http: {connect_timeout_s: 1, read_timeout_s: 0.5, total_timeout_s: 2, max_body_bytes: 4096}
targets:
  - name: t
    services:
      - {name: s, kind: completion, endpoint: "http://ms-x.cn-beijing.dataworks-model.aliyuncs.com",
         api_key: "DW-ms-x-secret-000000", model: m}
""", "t.yaml", {})
SERVICE = CONFIG.targets[0].services[0]
DNS = {"answers": ["10.1.2.3"]}
Handler = Callable[[httpx.Request], httpx.Response]


def collect(name: str, handler: Handler) -> tuple[dict[str, Any], list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    async def go() -> dict[str, Any]:
        collector = LocalCollector(CONFIG, lambda: httpx.MockTransport(record))
        try:
            result: dict[str, Any] = await getattr(collector, name)(SERVICE, DNS)
            return result
        finally:
            await collector.aclose()

    return asyncio.run(go()), seen


def test_requests_go_to_the_resolved_address_with_the_host_and_the_raw_key() -> None:
    observation, seen = collect("models", lambda r: httpx.Response(200, json={"data": [{"id": "m"}]}))
    request = seen[0]
    assert request.url.host == "10.1.2.3" and request.headers["host"] == "ms-x.cn-beijing.dataworks-model.aliyuncs.com"
    assert request.headers["authorization"] == "DW-ms-x-secret-000000"
    assert observation["status"] == 200 and observation["json"] == {"data": [{"id": "m"}]}
    assert observation["sent_key"] is True and "DW-ms-x-secret" not in repr(observation)


def test_the_unauthenticated_probe_sends_no_key() -> None:
    _, seen = collect("http", lambda r: httpx.Response(401))
    assert "authorization" not in seen[0].headers


def test_a_redirect_is_recorded_and_not_followed() -> None:
    observation, seen = collect("models", lambda r: httpx.Response(302, headers={"location": "http://evil.example/"}))
    assert len(seen) == 1 and observation["redirect"] == "http://evil.example/"


def test_a_huge_body_is_cut_at_the_cap() -> None:
    observation, _ = collect("completion", lambda r: httpx.Response(200, content=b"x" * 100_000))
    assert observation["body_capped"] is True and observation["body_bytes"] == 4096 and observation["json"] is None


def test_broken_utf8_and_truncated_json_are_described() -> None:
    broken, _ = collect("completion", lambda r: httpx.Response(200, content=b'{"a": "\xff"}'))
    assert broken["body_utf8"] is False and broken["json_error"] == "the body is not UTF-8"
    truncated, _ = collect("completion", lambda r: httpx.Response(200, content=b'{"choices": [{"te'))
    assert truncated["json"] is None and truncated["json_error"]


class Endless(httpx.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            yield b'data: {"choices": [{"text": "more"}]}\n\n'


class Stalls(httpx.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'data: {"choices": [{"text": "O"}]}\n\n'
        await asyncio.sleep(60)
        yield b""


def test_an_endless_stream_is_cut_at_the_cap() -> None:
    headers = {"content-type": "text/event-stream"}
    observation, _ = collect("stream", lambda r: httpx.Response(200, headers=headers, stream=Endless()))
    assert observation["capped"] is True and observation["events"] > 10 and observation["done"] is False


def test_a_stalled_stream_ends_at_the_total_deadline() -> None:
    headers = {"content-type": "text/event-stream"}
    start = time.monotonic()
    observation, _ = collect("stream", lambda r: httpx.Response(200, headers=headers, stream=Stalls()))
    assert time.monotonic() - start < 4
    assert observation["stalled"] is True and observation["error"] == "timeout" and observation["events"] == 1


def test_connection_trouble_is_an_observation_not_an_exception() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    observation, _ = collect("completion", refuse)
    assert observation["status"] is None and observation["error"] == "connect"
