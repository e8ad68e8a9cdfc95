"""One HTTP exchange of the local collector through the run's httpx client, its body decoded here in bounded pieces.

Bodies are read raw and decoded by `Decoder`: httpx inflates each compressed chunk whole, which would let a gzip
bomb past the byte cap.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx

from preflight.engine.aio import within
from preflight.probe import observations as obs
from preflight.probe.endpoint import Endpoint

if TYPE_CHECKING:
    from preflight.config import HttpConfig, ServiceConfig
    from preflight.engine.context import Observation

PIECE = 64 * 1024  # the most a decompression step hands over at once
DECODED = ("gzip", "x-gzip", "deflate")  # the content codings asked for (Accept-Encoding) and decoded


class BodyError(Exception):
    """The body is not what its Content-Encoding says, or is in a coding that cannot be decoded in bounds."""


class Decoder:
    """gzip or deflate, handed over in bounded pieces. deflate is tried with its zlib wrapper, then raw."""

    def __init__(self, encoding: str) -> None:
        self._raw_deflate_tried = encoding != "deflate"
        self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding != "deflate" else zlib.MAX_WBITS)
        self._started = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The decoded pieces of `data`, at most PIECE bytes each, made only as they are taken: a caller that
        stops early (a byte cap) never holds more than one piece of a compression bomb."""
        try:
            piece = self._inflate.decompress(data, PIECE)
        except zlib.error as exc:
            if self._started or self._raw_deflate_tried:
                raise BodyError(f"the body does not decode as its Content-Encoding says: {exc}") from None
            self._raw_deflate_tried = True  # some servers send deflate without the zlib wrapper
            self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
            yield from self.feed(data)
            return
        self._started = True
        if piece:
            yield piece
        while self._inflate.unconsumed_tail:
            piece = self._inflate.decompress(self._inflate.unconsumed_tail, PIECE)
            if piece:
                yield piece

    def flush(self) -> bytes:
        try:
            return self._inflate.flush()
        except zlib.error as exc:
            raise BodyError(f"the body does not decode as its Content-Encoding says: {exc}") from None


def decoder_for(content_encoding: str) -> Decoder | None:
    """The decoder for an answer's Content-Encoding; None for none; BodyError for one that was not asked for."""
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in DECODED:
        return Decoder(encoding)
    raise BodyError(f"the body is in Content-Encoding {content_encoding[:40]!r}, which was not asked for "
                    f"(Accept-Encoding: gzip, deflate)")


class _Body:
    """What an exchange has read so far: it stays when a deadline ends the reading."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.data = bytearray()
        self.capped = False
        self.answered = False

    def take(self, chunk: bytes) -> bytes:
        room = self.cap - len(self.data)
        if len(chunk) > room:
            chunk, self.capped = chunk[:room], True
        self.data.extend(chunk)
        return chunk


async def exchange(client: httpx.AsyncClient, limits: HttpConfig, name: str, service: ServiceConfig,
                   dns_obs: Observation, *, with_key: bool, total_s: float, batch: bool = False,
                   body: dict[str, Any] | None = None) -> Observation:
    """The observation `name` of one request to the address DNS found, with the service's name in Host (and SNI);
    `total_s` bounds the whole exchange, and what was read before it ran out stays in the observation."""
    endpoint = Endpoint.of(service.endpoint)
    path = obs.endpoint_path(name)
    if body is None:
        body = obs.request_body(name, service.model, service.prompt, service.max_tokens, batch)
    method = "GET" if body is None else "POST"
    observation: dict[str, Any] = obs.exchange(name, method, f"{service.endpoint.rstrip('/')}{path}", path,
                                               with_key and bool(service.api_key), body)
    headers = {"Host": endpoint.host_header}
    if with_key and service.api_key:
        headers["Authorization"] = obs.authorization(service.api_key, service.auth)
    payload = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    answers = dns_obs.get("answers") or []
    address = str(answers[0]) if answers else endpoint.host
    extensions = {"sni_hostname": endpoint.host} if endpoint.scheme == "https" else {}
    start = time.monotonic()
    reader = obs.SseReader(observation) if name == "stream" else None
    read = _Body(limits.max_body_bytes)
    try:
        request = client.build_request(method, endpoint.url_at(address, path), headers=headers, content=payload,
                                       extensions=extensions)
        # One deadline for the whole exchange, not one per read: what was read before it stays in `read`.
        await within(_send(client, request, observation, reader, read, start), total_s)
    except asyncio.TimeoutError:
        observation.update({"error": "timeout",
                            "detail": f"no complete answer within the total deadline of {total_s:.1f} s"})
    except (httpx.HTTPError, BodyError) as exc:
        observation["error"], observation["detail"] = _failure(exc, read.answered, limits)
    if observation["error"] == "timeout" and reader is not None and observation.get("events"):
        observation["stalled"] = True
    observation["elapsed_ms"] = round((time.monotonic() - start) * 1000, 3)
    obs.finish_body(observation, bytes(read.data), read.capped, name)
    if reader is not None:
        observation.update({"total_ms": observation["elapsed_ms"], "capped": read.capped, "json": None,
                            "json_error": None})
    return observation


async def _send(client: httpx.AsyncClient, request: httpx.Request, observation: dict[str, Any],
                reader: obs.SseReader | None, read: _Body, start: float) -> None:
    response = await client.send(request, stream=True)
    try:
        read.answered = True
        observation.update({"status": response.status_code, "reason": response.reason_phrase,
                            "headers": obs.clean_headers(response.headers.multi_items()),
                            "content_type": response.headers.get("content-type") or ""})
        if 300 <= response.status_code < 400:
            observation["redirect"] = response.headers.get("location")
        if response.is_stream_consumed:  # an answer made in memory (httpx.MockTransport), decoded by httpx
            _keep(read, response.content, reader, start)
            return
        decoder = decoder_for(response.headers.get("content-encoding") or "")
        async for raw in response.aiter_raw():
            for piece in decoder.feed(raw) if decoder is not None else (raw,):
                if _keep(read, piece, reader, start):
                    return
        tail = decoder.flush() if decoder is not None else b""
        if tail:
            _keep(read, tail, reader, start)
    finally:
        await response.aclose()


def _keep(read: _Body, piece: bytes, reader: obs.SseReader | None, start: float) -> bool:
    """Keep a decoded piece up to the cap; True once the cap is reached."""
    kept = read.take(piece)
    if reader is not None:
        reader.feed(kept, (time.monotonic() - start) * 1000)
    return read.capped


def _failure(exc: BaseException, answered: bool, limits: HttpConfig) -> tuple[str, str]:
    """(error kind, detail) for an exchange httpx could not finish: timeout, tls, connect, reset or protocol."""
    if isinstance(exc, httpx.ConnectTimeout):
        return "timeout", f"no connection within {limits.connect_timeout_s:g} s"
    if isinstance(exc, httpx.ReadTimeout):
        if answered:
            return "timeout", f"the server went silent for {limits.read_timeout_s:g} s in the middle of the answer"
        return "timeout", f"no answer within {limits.read_timeout_s:g} s of the request"
    if isinstance(exc, httpx.TimeoutException):
        return "timeout", _short(exc)
    if isinstance(exc, httpx.LocalProtocolError):  # its message quotes the offending header, the key perhaps
        return "error", obs.HEADER_REFUSED
    cause = _root(exc)
    if isinstance(cause, ssl.SSLError):
        return "tls", _short(cause)
    if isinstance(exc, httpx.ConnectError):
        return "connect", _short(cause)
    if isinstance(cause, (ConnectionResetError, BrokenPipeError)):
        return "reset", f"the connection was reset: {_short(cause)}"
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError, BodyError)):
        return "protocol", _short(exc)
    return "error", _short(exc)


def _root(exc: BaseException) -> BaseException:
    """The deepest cause of an httpx error: the OSError or ssl.SSLError underneath."""
    seen = exc
    for _ in range(8):
        nxt = seen.__cause__ or seen.__context__
        if nxt is None:
            break
        seen = nxt
    return seen


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]


__all__ = ["DECODED", "PIECE", "BodyError", "Decoder", "decoder_for", "exchange"]
