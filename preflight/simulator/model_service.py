"""A loopback OpenAI-compatible model service that behaves like a DataWorks one, with injectable faults."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
import ssl
import struct
import threading
import time
from typing import Any

from preflight.simulator.model_streams import STREAM_CHUNKS, StreamingHandler, StreamingServer
from preflight.simulator.scenarios import SimModel, World
from preflight.simulator.server import LoopbackHandler, LoopbackServer

# A fixed timestamp keeps answers byte-identical from run to run, so observations of them can be compared.
CREATED = 1767225600


def unit_vector(text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector for `text` (the same text always embeds the same way)."""
    return list(_unit_vector(text, dimensions))


# A run asks for the same few texts' embeddings again and again (every embedding service, every check), and a
# full-size vector costs more CPU to compute and write as JSON than the rest of the request. A real service spends
# it on its own hardware; here it would share the cores with the run under test, so the simulator computes each
# vector, and writes it, once.
@functools.lru_cache(maxsize=256)
def _unit_vector(text: str, dimensions: int) -> tuple[float, ...]:
    values: list[float] = []
    counter = 0
    while len(values) < dimensions:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values.extend((byte - 127.5) / 127.5 for byte in digest)
        counter += 1
    values = values[:dimensions]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return tuple(round(v / norm, 6) for v in values)


@functools.lru_cache(maxsize=256)
def _vector_json(text: str, dimensions: int) -> str:
    return json.dumps(_unit_vector(text, dimensions))


class _Server(StreamingServer):
    # The handler threads look these up (faults and stopping too); set by ModelService.
    world: World
    latency_s: float
    redirect_to: str
    received_authorizations: list[str]
    requests: dict[str, int]
    lock: threading.Lock
    started: float  # time.monotonic() when it began to listen: the age warm_up_s and key_delay_s count from


class _Handler(StreamingHandler):
    server: _Server

    def version_string(self) -> str:
        # The Server header: what vLLM answers with, or the proxy that stands in front of it.
        return "nginx" if "proxy-502" in self.server.faults else "uvicorn"

    # --- plumbing --------------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str = "application/json",
              headers: dict[str, str] | None = None) -> None:
        self.answer(status, [("Content-Type", content_type), ("Content-Length", str(len(body))),
                             *(headers or {}).items()], body)

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload).encode())

    def _error(self, status: int, message: str, kind: str) -> None:
        self._json(status, {"object": "error", "message": message, "type": kind, "code": status})

    def _body(self) -> Any:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return None
        raw = self.rfile.read(length) if length > 0 else b""
        try:
            return json.loads(raw or b"{}")
        except ValueError:
            return None

    def _model(self) -> SimModel | None:
        host = (self.headers.get("Host") or "").split(":")[0].lower()
        label = host.split(".")[0]
        return next((m for m in self.server.world.models if m.service_id == label), None)

    def _authorised(self, model: SimModel) -> bool:
        given = self.headers.get("Authorization", "")
        expected = model.api_key if self.server.world.auth_mode == "raw" else f"Bearer {model.api_key}"
        return given == expected

    # --- routing ---------------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def _route(self, method: str) -> None:
        faults = self.server.faults
        with self.server.lock:
            key = f"{method} {self.path.split('?')[0]}"
            self.server.requests[key] = self.server.requests.get(key, 0) + 1
        body = self._body() if method == "POST" else None
        if self.server.latency_s:
            self._sleep(self.server.latency_s)
        if "proxy-502" in faults:
            page = b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1>" \
                   b"</center><hr><center>nginx</center></body></html>"
            self._send(502, page, "text/html")
            return
        if "redirect" in faults:
            self._send(302, b"", "text/plain", {"Location": self.server.redirect_to + self.path})
            return
        model = self._model()
        if model is None:
            self._error(404, "no model service answers at this host name", "NotFound")
            return
        path = self.path.split("?")[0]
        age = time.monotonic() - self.server.started
        if age < self.server.world.warm_up_s:
            self._error(503, "the model service is starting", "ServiceUnavailable")
            return
        if not self._authorised(model) or age < self.server.world.key_delay_s:
            # Some servers echo what they were given; the tool must mask it wherever it shows the answer.
            given = self.headers.get("Authorization", "")
            self._error(401, f"Invalid API key {given!r}, please check your Authorization header",
                        "AuthenticationError")
            return
        routes = {("GET", "/v1/models"): self._models, ("POST", "/v1/completions"): self._completions,
                  ("POST", "/v1/chat/completions"): self._chat, ("POST", "/v1/embeddings"): self._embeddings}
        handler = routes.get((method, path))
        if handler is None:
            self._error(404, f"{method} {path} is not served", "NotFound")
            return
        if body is None and method == "POST":
            self._error(400, "the request body is not JSON", "BadRequestError")
            return
        handler(model, body or {})

    # --- the API ---------------------------------------------------------------------------------
    def _models(self, model: SimModel, body: dict[str, Any]) -> None:
        override = self.server.world.served_models_override
        served = override if override is not None else (model.model,)
        self._json(200, {"object": "list", "data": [
            {"id": name, "object": "model", "created": CREATED, "owned_by": "dataworks"} for name in served]})

    def _wants_stream(self, body: dict[str, Any]) -> bool:
        value = body.get("stream", False)
        return value is True or (isinstance(value, str) and value.lower() == "true")

    def _max_tokens(self, body: dict[str, Any]) -> int:
        value = body.get("max_tokens", 16)
        return value if isinstance(value, int) and value > 0 else 16

    def _completions(self, model: SimModel, body: dict[str, Any]) -> None:
        if model.kind == "embedding":
            self._error(400, f"{model.model} is an embedding model", "BadRequestError")
            return
        faults = self.server.faults
        if self._wants_stream(body):
            self._stream(model, body, chat=False)
            return
        if "completion-500" in faults:
            self._error(500, "Internal Server Error", "InternalServerError")
            return
        if "completion-not-json" in faults:
            self._send(200, b"OK", "text/plain")
            return
        if "completion-not-utf8" in faults:
            self._send(200, b'{"choices": [{"text": "\xff\xfe\xfa broken"}]}')
            return
        if "completion-huge" in faults:
            filler = b"x" * (10 * 1024 * 1024)
            self._send(200, b'{"choices": [{"text": "' + filler + b'"}]}')
            return
        text = "".join(STREAM_CHUNKS)[: max(1, self._max_tokens(body) * 4)]
        payload = json.dumps(self._completion_payload(model, text, "stop")).encode()
        if "completion-trickle" in faults:
            self._trickle(payload)
            return
        if "completion-reset" in faults:
            self._reset_after_half(payload)
            return
        self._send(200, payload)

    def _completion_payload(self, model: SimModel, text: str, finish: str) -> dict[str, Any]:
        return {"id": "cmpl-sim", "object": "text_completion", "created": CREATED, "model": model.model,
                "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": None}],
                "usage": {"prompt_tokens": 4, "completion_tokens": len(STREAM_CHUNKS),
                          "total_tokens": 4 + len(STREAM_CHUNKS)}}

    def _chat(self, model: SimModel, body: dict[str, Any]) -> None:
        if model.kind == "embedding":
            self._error(400, f"{model.model} is an embedding model", "BadRequestError")
            return
        if self._wants_stream(body):
            self._stream(model, body, chat=True)
            return
        self._json(200, {"id": "chatcmpl-sim", "object": "chat.completion", "created": CREATED,
                         "model": model.model,
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": "".join(STREAM_CHUNKS)}}],
                         "usage": {"prompt_tokens": 6, "completion_tokens": 4, "total_tokens": 10}})

    def _embeddings(self, model: SimModel, body: dict[str, Any]) -> None:
        if model.kind != "embedding":
            self._error(400, f"{model.model} is not an embedding model", "BadRequestError")
            return
        given = body.get("input")
        inputs = [given] if isinstance(given, str) else given
        if not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) for i in inputs):
            self._error(400, "input must be a string or a list of strings", "BadRequestError")
            return
        items = []
        for index, text in enumerate(inputs):
            if "embedding-nan" in self.server.faults or body.get("encoding_format") == "base64":
                vector: list[Any] = unit_vector(text, model.dimensions)
                if "embedding-nan" in self.server.faults:
                    vector[0], vector[1] = float("nan"), float("inf")
                embedding: Any = vector
                if body.get("encoding_format") == "base64":
                    # What vLLM sends when asked (the openai client asks by default): little-endian float32.
                    embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
                # json.dumps writes NaN and Infinity, which is exactly the broken output this fault stands for.
                encoded = json.dumps(embedding)
            else:
                encoded = _vector_json(text, model.dimensions)
            items.append(f'{{"object": "embedding", "index": {index}, "embedding": {encoded}}}')
        tokens = sum(max(1, len(text) // 4) for text in inputs)
        envelope = json.dumps({"object": "list", "model": model.model, "data": None,
                               "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
        self._send(200, envelope.replace('"data": null', f'"data": [{", ".join(items)}]', 1).encode())


class _RedirectTarget(LoopbackServer):
    """The 'other host' a redirect points at; it remembers any Authorization header that reached it."""

    received_authorizations: list[str]


class _RecordingHandler(LoopbackHandler):
    server: _RedirectTarget

    def do_GET(self) -> None:
        self.server.received_authorizations.append(self.headers.get("Authorization") or "")
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_POST = do_GET


class ModelService:
    """The model service on 127.0.0.1 for one World and set of faults."""

    def __init__(self, world: World, *, faults: frozenset[str] = frozenset(), latency_s: float = 0.0,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.world = world
        self.faults = faults
        self.latency_s = latency_s
        self.ssl_context = ssl_context
        self.port = 0
        self.stopping = threading.Event()
        self.received_authorizations: list[str] = []
        self.requests: dict[str, int] = {}
        self._server: _Server | None = None
        self._other: _RedirectTarget | None = None
        self._threads: list[threading.Thread] = []

    def start(self, port: int = 0) -> int:
        redirect_to = "http://127.0.0.2:9"
        if "redirect" in self.faults:
            self._other = _RedirectTarget(("127.0.0.2", 0), _RecordingHandler)
            self._other.received_authorizations = self.received_authorizations
            redirect_to = f"http://127.0.0.2:{self._other.server_address[1]}"
            self._spawn(self._other)
        server = _Server(("127.0.0.1", port), _Handler)
        server.world, server.faults, server.latency_s = self.world, self.faults, self.latency_s
        server.stopping, server.redirect_to = self.stopping, redirect_to
        server.received_authorizations = self.received_authorizations
        server.requests, server.lock = self.requests, threading.Lock()
        server.started = time.monotonic()
        if self.ssl_context is not None:
            # The handshake then happens on the first read in the handler's thread, so a client that never
            # finishes it holds up only itself, not the accept loop.
            server.socket = self.ssl_context.wrap_socket(server.socket, server_side=True,
                                                         do_handshake_on_connect=False)
        self._server = server
        self.port = int(server.server_address[1])
        self._spawn(server)
        return self.port

    def _spawn(self, server: LoopbackServer) -> None:
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        self.stopping.set()
        for server in (self._server, self._other):
            if server is not None:
                server.shutdown()
                server.server_close()
        self._server = self._other = None


__all__ = ["ModelService", "unit_vector"]
