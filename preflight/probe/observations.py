"""The data-plane observation format and the pure helpers both collectors share.

script.py pastes this module into the in-network collector, so it imports only the standard library and uses no
syntax newer than Python 3.6.
"""

import json
import math
import socket
import struct
import sys
from typing import Dict  # noqa: F401  (used in type comments)

OBSERVATION_VERSION = 1
NAMES = ("dns", "tcp", "http", "models", "completion", "stream", "chat", "embedding")
EXCERPT_CHARS = 2048
MAX_HEADERS = 40
MAX_EVENT_TIMES = 256
HEADER_REFUSED = ("the request was not sent: a header holds a character HTTP does not allow (a line break or a "
                  "control character in the key?)")  # said instead of the library's words, which quote the header
SECRET_HEADERS = ("authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key")


def authorization(key, auth):
    """The Authorization header value: the raw key for DataWorks, 'Bearer <key>' for other servers."""
    return "Bearer " + key if auth == "bearer" else key


def request_body(name, model, prompt, max_tokens, batch=False):
    """The JSON body each data-plane request sends (never the key)."""
    if name == "completion":
        return {"model": model, "prompt": prompt, "max_tokens": max_tokens, "stream": False}
    if name == "stream":
        # vLLM-style servers report a stream's usage only when asked; usage_refused() sends it again without.
        return {"model": model, "prompt": prompt, "max_tokens": max_tokens, "stream": True,
                "stream_options": {"include_usage": True}}
    if name == "chat":
        return {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens}
    if name == "embedding":
        text = "dw-preflight embedding probe"
        return {"model": model, "input": [text, "a second input"] if batch else text}
    return None


def without_usage(body):
    """The stream request again, without the stream_options a server refused."""
    return {key: value for key, value in body.items() if key != "stream_options"}


def usage_refused(observation):
    """Whether the server refused the stream request because of its stream_options field."""
    return (observation.get("status") in (400, 422) and "stream_options" in (observation.get("body_excerpt") or "")
            and "stream_options" in (observation.get("request_body") or {}))


# In Linux's struct tcp_info, tcpi_rtt (microseconds) follows eight one-byte fields and fifteen 32-bit ones.
_TCPI_RTT_OFFSET = 68


def handshake_ms(sock):
    """The kernel's round-trip time of a just-opened TCP connection, in ms, or None where it cannot say.

    Right after connect() the kernel's estimate is the SYN / SYN-ACK exchange itself, timed as the packets
    moved. A clock read by the process after connect() returns also counts the time the process was busy
    elsewhere (an event loop running other checks), which is not the network's.
    """
    if not sys.platform.startswith("linux") or not hasattr(socket, "TCP_INFO"):
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    except (OSError, AttributeError, TypeError):
        return None
    if len(info) < _TCPI_RTT_OFFSET + 4:
        return None
    rtt_us = struct.unpack_from("I", info, _TCPI_RTT_OFFSET)[0]
    # No sample (a retransmitted SYN gives none, by Karn's rule): say nothing rather than zero.
    return round(rtt_us / 1000.0, 3) if rtt_us else None


def endpoint_path(name):
    return {"http": "/v1/models", "models": "/v1/models", "completion": "/v1/completions",
            "stream": "/v1/completions", "chat": "/v1/chat/completions", "embedding": "/v1/embeddings"}[name]


def base(kind):
    """A new observation: a JSON-ready dict with "kind", "v" (OBSERVATION_VERSION) and "elapsed_ms"; each kind adds

    - dns:  host, port, resolver (what was asked), answered_by (the resolver that gave the answer, or None), answers
      [ip], error (None|nxdomain|no-answer|servfail|refused|timeout|unreachable|error), detail
    - tcp:  host, address, port, connected, error (None|refused|timeout|unreachable|no-address|error), detail,
      handshake_ms (the kernel's round-trip time of the handshake, or None where the platform does not say)
    - http, models, completion, chat, embedding (HTTP exchanges): method, url, path, sent_key, request_body, status,
      reason, headers, content_type, body_bytes, body_capped, body_utf8, body_excerpt, json, json_error, redirect,
      error (None|timeout|connect|reset|tls|protocol|error), detail; embedding adds "single" (the one-input request)
      and replaces every vector in "json" by its summary (see summarise_vector)
    - stream: the exchange fields plus usage_requested, usage_refused (the server refused stream_options and the
      request was sent again without it), events, json_errors, first_json_error, done, text, ttft_ms,
      first_byte_ms, event_times_ms, total_ms, capped, stalled, usage, finish_reason
    """
    return {"kind": kind, "v": OBSERVATION_VERSION, "elapsed_ms": 0.0}


def clean_headers(pairs):
    """Lower-cased response headers, secrets dropped, at most MAX_HEADERS of them."""
    headers = {}  # type: Dict[str, str]
    for name, value in pairs:
        name = name.lower()
        if name in SECRET_HEADERS or len(headers) >= MAX_HEADERS:
            continue
        headers[name] = value[:512]
    return headers


def summarise_vector(value):
    """What a judge needs to know about one embedding vector, without shipping 1024 numbers around."""
    if isinstance(value, list):
        non_numeric = 0
        non_finite = 0
        # The usual vector, all floats and all finite, is told in C: a finite sum has no NaN or infinity in it.
        if set(map(type, value)) <= {float} and math.isfinite(sum(value)):
            return {"type": "list", "length": len(value), "non_numeric": 0, "non_finite": 0}
        for item in value:
            if isinstance(item, bool) or not isinstance(item, (int, float)):
                non_numeric += 1
            elif isinstance(item, float) and not math.isfinite(item):  # an int is finite, however large
                non_finite += 1
        return {"type": "list", "length": len(value), "non_numeric": non_numeric, "non_finite": non_finite}
    kind = "null" if value is None else "str" if isinstance(value, str) else \
        "number" if isinstance(value, (int, float)) else "object" if isinstance(value, dict) else type(value).__name__
    return {"type": kind, "length": len(value) if isinstance(value, str) else None, "non_numeric": 0, "non_finite": 0}


def summarise_embeddings(document):
    """Replace every data[i].embedding of an embeddings answer by its summary."""
    if isinstance(document, dict) and isinstance(document.get("data"), list):
        for item in document["data"]:
            if isinstance(item, dict) and "embedding" in item:
                item["embedding"] = summarise_vector(item["embedding"])
    return document


def _jsonable(value):
    """NaN and infinities are not JSON; keep them visible as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def finish_body(observation, body, capped, name):
    """Fill the body fields of an exchange from the bytes read (at most the cap)."""
    observation["body_bytes"] = len(body)
    observation["body_capped"] = capped
    try:
        text = body.decode("utf-8")
        observation["body_utf8"] = True
    except UnicodeDecodeError:
        text = body.decode("utf-8", "replace")
        observation["body_utf8"] = False
    observation["body_excerpt"] = text[:EXCERPT_CHARS]
    observation["json"] = None
    observation["json_error"] = None
    if capped:
        observation["json_error"] = "the body was cut at the byte cap"
    elif not observation["body_utf8"]:
        observation["json_error"] = "the body is not UTF-8"
    elif body:
        try:
            document = json.loads(text)
        except ValueError as exc:
            observation["json_error"] = str(exc)[:200]
        else:
            if name == "embedding":
                document = summarise_embeddings(document)
            observation["json"] = _jsonable(document)
    return observation


def exchange(name, method, url, path, sent_key, body):
    observation = base(name)
    observation.update({
        "method": method, "url": url, "path": path, "sent_key": sent_key, "request_body": body, "status": None,
        "reason": "", "headers": {}, "content_type": "", "body_bytes": 0, "body_capped": False, "body_utf8": True,
        "body_excerpt": "", "json": None, "json_error": None, "redirect": None, "error": None, "detail": "",
    })
    return observation


class SseReader:
    """Turns stream bytes into stream facts incrementally: events, [DONE], text, JSON errors, timings."""

    def __init__(self, observation):
        self.observation = observation
        self.buffer = b""
        self.texts = []
        asked = "stream_options" in (observation.get("request_body") or {})
        observation.update({"usage_requested": asked, "usage_refused": False,
                            "events": 0, "json_errors": 0, "first_json_error": None, "done": False, "text": "",
                            "ttft_ms": None, "first_byte_ms": None, "event_times_ms": [], "total_ms": 0.0,
                            "capped": False, "stalled": False, "usage": None, "finish_reason": None})

    def feed(self, data, at_ms):
        observation = self.observation
        if observation["first_byte_ms"] is None and data:
            observation["first_byte_ms"] = round(at_ms, 3)
        self.buffer += data
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            self._line(line.rstrip(b"\r"), at_ms)

    def _line(self, line, at_ms):
        observation = self.observation
        if not line.startswith(b"data:"):
            return
        payload = line[5:].strip()
        observation["events"] += 1
        if len(observation["event_times_ms"]) < MAX_EVENT_TIMES:
            observation["event_times_ms"].append(round(at_ms, 3))
        if payload == b"[DONE]":
            observation["done"] = True
            return
        try:
            document = json.loads(payload.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            observation["json_errors"] += 1
            if observation["first_json_error"] is None:
                observation["first_json_error"] = str(exc)[:200]
            return
        choices = document.get("choices") if isinstance(document, dict) else None
        choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
        text = choice.get("text")
        if text is None and isinstance(choice.get("delta"), dict):
            text = choice["delta"].get("content")
        if isinstance(text, str) and text:
            if observation["ttft_ms"] is None:
                observation["ttft_ms"] = round(at_ms, 3)
            if sum(len(t) for t in self.texts) < EXCERPT_CHARS:
                self.texts.append(text)
                observation["text"] = "".join(self.texts)[:EXCERPT_CHARS]
        if choice.get("finish_reason"):
            observation["finish_reason"] = choice["finish_reason"]
        if isinstance(document, dict) and isinstance(document.get("usage"), dict):
            observation["usage"] = document["usage"]
