"""The local collector against a loopback server: every kind of trouble becomes an observation, within bounds."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from preflight.config import parse_config
from preflight.probe.local import LocalCollector, build_client

HOST = "ms-x.cn-beijing.dataworks-model.aliyuncs.com"
KEY = "DW-ms-x-secret-000000"
Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def answer(status: str, body: bytes = b"", **headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *(f"{k.replace('_', '-')}: {v}"
                                                                        for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def replying(reply: bytes, heard: list[bytes]) -> Serve:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                heard.append(head + await reader.readexactly(length))
                writer.write(reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    return serve


def collect(name: str, serve: Serve | bytes, key: str = KEY) -> tuple[dict[str, Any], list[bytes]]:
    """One observation made against a loopback server that answers `serve` (raw bytes, or a stream handler)."""
    heard: list[bytes] = []
    handler = replying(serve, heard) if isinstance(serve, bytes) else serve

    async def go() -> dict[str, Any]:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        config = parse_config(f"""\
region: cn-beijing
http: {{connect_timeout_s: 1, read_timeout_s: 0.5, total_timeout_s: 2, max_body_bytes: 4096}}
targets:
  - name: t
    services:
      - {{name: s, kind: completion, endpoint: "http://{HOST}:{port}", api_key: {json.dumps(key)}, model: m}}
""", "t.yaml", {})
        try:
            async with build_client(config) as client:
                collector = LocalCollector(config, client)
                result: dict[str, Any] = await getattr(collector, name)(config.targets[0].services[0],
                                                                       {"answers": ["127.0.0.1"]})
                return result
        finally:
            server.close()

    return asyncio.run(go()), heard


def test_requests_go_to_the_resolved_address_with_the_host_and_the_raw_key() -> None:
    observation, heard = collect("models", answer("200 OK", b'{"data": [{"id": "m"}]}',
                                                  Content_Type="application/json"))
    lines = heard[0].decode().split("\r\n")
    assert lines[0] == "GET /v1/models HTTP/1.1" and lines[1].startswith(f"Host: {HOST}:")
    assert f"Authorization: {KEY}" in lines
    assert observation["status"] == 200 and observation["json"] == {"data": [{"id": "m"}]}
    assert observation["sent_key"] is True and "DW-ms-x-secret" not in repr(observation)


def test_a_completion_is_posted_as_json() -> None:
    _, heard = collect("completion", answer("200 OK", b'{"choices": [{"text": "hi"}]}'))
    head, _, body = heard[0].partition(b"\r\n\r\n")
    assert head.startswith(b"POST /v1/completions HTTP/1.1\r\n") and b"Content-Type: application/json" in head
    assert json.loads(body)["model"] == "m"


def test_the_unauthenticated_probe_sends_no_key() -> None:
    _, heard = collect("http", answer("401 Unauthorized"))
    assert b"authorization" not in heard[0].lower()


def test_a_redirect_is_recorded_and_not_followed() -> None:
    observation, heard = collect("models", answer("302 Found", Location="http://evil.example/"))
    assert len(heard) == 1 and observation["redirect"] == "http://evil.example/"


def test_a_huge_body_is_cut_at_the_cap() -> None:
    observation, _ = collect("completion", answer("200 OK", b"x" * 100_000))
    assert observation["body_capped"] is True and observation["body_bytes"] == 4096 and observation["json"] is None


def test_broken_utf8_and_truncated_json_are_described() -> None:
    broken, _ = collect("completion", answer("200 OK", b'{"a": "\xff"}'))
    assert broken["body_utf8"] is False and broken["json_error"] == "the body is not UTF-8"
    truncated, _ = collect("completion", answer("200 OK", b'{"choices": [{"te'))
    assert truncated["json"] is None and truncated["json_error"]


def streaming(events: Callable[[asyncio.StreamWriter], Awaitable[None]]) -> Serve:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        with contextlib.suppress(ConnectionError, OSError):
            await events(writer)
        writer.close()

    return serve


def event(text: str) -> bytes:
    data = f'data: {{"choices": [{{"text": "{text}"}}]}}\n\n'.encode()
    return b"%x\r\n%s\r\n" % (len(data), data)


def test_an_endless_stream_is_cut_at_the_cap() -> None:
    async def endless(writer: asyncio.StreamWriter) -> None:
        while True:
            writer.write(event("more"))
            await writer.drain()

    observation, _ = collect("stream", streaming(endless))
    assert observation["capped"] is True and observation["events"] > 10 and observation["done"] is False


def test_a_stalled_stream_ends_at_the_total_deadline() -> None:
    async def stalls(writer: asyncio.StreamWriter) -> None:
        writer.write(event("O"))
        await writer.drain()
        for _ in range(40):  # a keep-alive comment every 0.1 s: never silent for the read timeout
            await asyncio.sleep(0.1)
            writer.write(b"3\r\n:\n\n\r\n")
            await writer.drain()

    start = time.monotonic()
    observation, _ = collect("stream", streaming(stalls))
    assert time.monotonic() - start < 4
    assert observation["stalled"] is True and observation["error"] == "timeout" and observation["events"] == 1
    assert "total deadline of 2.0 s" in observation["detail"]


def test_silence_mid_answer_is_a_read_timeout() -> None:
    async def silent(writer: asyncio.StreamWriter) -> None:
        writer.write(event("O"))
        await writer.drain()
        await asyncio.sleep(3)

    observation, _ = collect("stream", streaming(silent))
    assert observation["error"] == "timeout" and "went silent for 0.5 s" in observation["detail"]


def test_connection_trouble_is_an_observation_not_an_exception() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    observation, _ = collect("completion", hang_up)
    assert observation["status"] is None and observation["error"] == "protocol"
    assert "disconnected without sending a response" in observation["detail"]


def test_the_host_header_names_the_endpoint_as_its_url_does() -> None:
    from preflight.probe.endpoint import Endpoint

    assert Endpoint("http://ms-x.example").host_header == "ms-x.example"
    assert Endpoint("https://ms-x.example:8443/base/").host_header == "ms-x.example:8443"
    assert Endpoint("http://[::1]:8080").host_header == "[::1]:8080"
    assert Endpoint("http://[fd00::5]").host_header == "[fd00::5]"


def test_a_compressed_bomb_is_decoded_in_bounded_pieces_up_to_the_cap() -> None:
    import gzip

    bomb = gzip.compress(b"\0" * 20_000_000)  # 20 MB from about 20 KB
    observation, _ = collect("completion", answer("200 OK", bomb, Content_Encoding="gzip"))
    assert observation["status"] == 200 and observation["body_capped"] is True
    assert observation["body_bytes"] == 4096 and observation["error"] is None


def test_the_decoder_makes_pieces_only_as_they_are_taken() -> None:
    """A caller that stops at its cap holds one piece of a compression bomb, not the whole of it."""
    import gzip

    from preflight.probe.http import PIECE, Decoder

    pieces = Decoder("gzip").feed(gzip.compress(b"\0" * (64 * PIECE)))
    first = next(pieces)
    assert len(first) <= PIECE
    assert sum(len(piece) for piece in pieces) + len(first) == 64 * PIECE


def test_deflate_with_and_without_its_zlib_wrapper_is_decoded() -> None:
    import zlib

    text = b'{"choices": [{"text": "hi"}]}'
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    for body in (zlib.compress(text), raw.compress(text) + raw.flush()):
        observation, _ = collect("completion", answer("200 OK", body, Content_Encoding="deflate"))
        assert observation["json"] == {"choices": [{"text": "hi"}]}, observation


def test_a_content_encoding_not_asked_for_is_refused_not_decoded() -> None:
    observation, heard = collect("completion", answer("200 OK", b"\x1b\x00\x00", Content_Encoding="br"))
    assert b"accept-encoding: gzip, deflate\r\n" in heard[0].lower()
    assert observation["status"] == 200 and observation["error"] == "protocol" and observation["json"] is None
    assert "'br', which was not asked for" in observation["detail"]


def test_a_body_that_does_not_decode_as_it_says_is_a_protocol_error() -> None:
    observation, _ = collect("completion", answer("200 OK", b"not gzip at all", Content_Encoding="gzip"))
    assert observation["error"] == "protocol" and "does not decode" in observation["detail"]


def test_headers_trickled_byte_by_byte_end_at_the_total_deadline() -> None:
    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        with contextlib.suppress(ConnectionError):
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"y" * 100:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.1)  # each byte well within the read timeout

    start = time.monotonic()
    observation, _ = collect("completion", trickle)
    assert time.monotonic() - start < 3.5
    assert observation["status"] is None and observation["error"] == "timeout"
    assert "total deadline of 2.0 s" in observation["detail"]


def test_a_reset_before_the_answer_is_a_reset() -> None:
    import socket
    import struct

    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    observation, _ = collect("completion", reset)
    assert observation["status"] is None and observation["error"] == "reset", observation


def test_no_cookie_is_kept_from_one_request_to_the_next() -> None:
    observation, heard = collect("embedding", answer("200 OK", b'{"data": []}', Set_Cookie="session=abc; Path=/"))
    assert len(heard) == 2 and all(b"cookie" not in request.lower() for request in heard)
    assert "set-cookie" not in observation["headers"]


def test_a_proxy_in_the_environment_is_not_used(monkeypatch: Any) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there
    observation, heard = collect("models", answer("200 OK", b'{"data": []}'))
    assert observation["status"] == 200 and len(heard) == 1


def test_the_client_is_injected_and_the_request_goes_to_the_address_with_the_name() -> None:
    """With httpx.MockTransport: the URL carries the DNS answer, Host and SNI the service's name."""
    import httpx

    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(401, json={"error": "no key"})

    config = parse_config(f"""\
region: cn-beijing
targets:
  - name: t
    services:
      - {{name: s, kind: completion, endpoint: "https://{HOST}:8443/base", api_key: "{KEY}", model: m}}
""", "t.yaml", {})

    async def go() -> dict[str, Any]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            found: dict[str, Any] = await LocalCollector(config, client).http(config.targets[0].services[0],
                                                                              {"answers": ["10.1.2.3"]})
            return found

    observation = asyncio.run(go())
    (request,) = seen
    assert str(request.url) == "https://10.1.2.3:8443/base/v1/models"
    assert request.headers["host"] == f"{HOST}:8443" and request.extensions["sni_hostname"] == HOST
    assert "authorization" not in request.headers
    assert observation["status"] == 401 and observation["url"] == f"https://{HOST}:8443/base/v1/models"


def test_a_key_with_a_line_break_is_refused_before_anything_is_sent() -> None:
    observation, heard = collect("models", answer("200 OK"), key="DW-k\r\nX-Injected: 1")
    assert heard == [] and observation["status"] is None and observation["error"] == "error"
    assert "X-Injected" not in repr(observation)
