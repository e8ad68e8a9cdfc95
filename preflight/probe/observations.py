"""The data-plane observation format and the pure helpers both collectors share (stdlib only, Python 3.6+).

This module is embedded verbatim into the in-network collector script, so it must not import anything outside
the standard library nor use syntax newer than Python 3.6.

Every observation is a JSON-ready dict with "kind", "v" (OBSERVATION_VERSION) and "elapsed_ms":
- dns:  host, port, resolver (what was asked), answered_by (the resolver that gave the answer, or None), answers
  [ip], error (None|nxdomain|no-answer|servfail|refused|timeout|unreachable|error), detail
- tcp:  host, address, port, connected, error (None|refused|timeout|unreachable|no-address|error), detail,
  handshake_ms (the kernel's round-trip time of the handshake, or None where the platform does not say)
- http, models, completion, chat, embedding (HTTP exchanges): method, url, path, sent_key, request_body, status,
  reason, headers, content_type, body_bytes, body_capped, body_utf8, body_excerpt, json, json_error, redirect,
  error (None|timeout|connect|reset|tls|protocol|error), detail; embedding adds "single" (the one-input request)
  and replaces every vector in "json" by its summary (see summarise_vector)
- stream: the exchange fields plus usage_requested, usage_refused (the server refused stream_options and the request
  was sent again without it), events, json_errors, first_json_error, done, text, ttft_ms, first_byte_ms,
  event_times_ms, total_ms, capped, stalled, usage, finish_reason
"""

import json
import math
import socket
import struct
import sys
from typing import Any, Dict, Generator, List, Optional, Sequence, Tuple  # noqa: F401  (used in type comments)

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


def dns_gai_error(host, exc):
    """(kind, detail) for the system resolver's failure, with the OS's own reason in the detail."""
    number = exc.errno
    if number == socket.EAI_NONAME:
        kind = "nxdomain"
    elif number == getattr(socket, "EAI_NODATA", -5):
        kind = "no-answer"
    elif number == socket.EAI_AGAIN:
        kind = "unreachable"  # no resolver could be reached, or none answered in time
    elif number == socket.EAI_FAIL:
        kind = "servfail"
    else:
        kind = "error"
    return kind, "%s: %s" % (host, exc.strerror or exc)


def dns_timeout_detail(resolvers, timeout_s):
    """The same words from both collectors when no resolver answered."""
    if resolvers > 1:
        return "no answer from any of %d resolvers within %g s each" % (resolvers, timeout_s)
    return "no answer within %g s" % timeout_s


# --- DNS on the wire: one A question and its answer (RFC 1035), for the in-network collector, which has no ------
# --- dnspython; the local collector asks with dnspython and reads the answer the same way ----------------------

DNS_TYPE_A, DNS_TYPE_CNAME, DNS_CLASS_IN = 1, 5, 1
DNS_RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
DNS_MAX_CNAME_HOPS = 16


def dns_encode_name(host):
    # type: (str) -> bytes
    """The name in wire format; ValueError for a name DNS cannot carry."""
    try:
        encoded = host.rstrip(".").encode("idna")
    except UnicodeError as exc:
        raise ValueError("%r is not a valid DNS name: %s" % (host, exc)) from None
    labels = encoded.split(b".")
    if not encoded or len(encoded) > 253 or any(not 0 < len(label) <= 63 for label in labels):
        raise ValueError("%r is not a valid DNS name" % (host,))
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"


def dns_query(host, ident):
    # type: (str, int) -> bytes
    """An A query for `host` with recursion desired and no EDNS (so an answer fits 512 bytes)."""
    return (struct.pack(">HHHHHH", ident, 0x0100, 1, 0, 0, 0) + dns_encode_name(host)
            + struct.pack(">HH", DNS_TYPE_A, DNS_CLASS_IN))


def dns_read_name(data, offset):
    # type: (bytes, int) -> Tuple[str, int]
    """The (lowercased) name at `offset` and the offset after it; ValueError if it is malformed.

    Compression pointers are followed at most 64 times, so a pointer loop is an error, not a hang."""
    labels = []  # type: List[str]
    end = -1
    jumps = 0
    total = 0
    while True:
        if offset >= len(data):
            raise ValueError("a name runs past the end of the message")
        length = data[offset]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(data):
                raise ValueError("a compression pointer runs past the end of the message")
            jumps += 1
            if jumps > 64:
                raise ValueError("compression pointers loop")
            if end < 0:
                end = offset + 2
            offset = ((length & 0x3F) << 8) | data[offset + 1]
            continue
        if length & 0xC0:
            raise ValueError("an unknown label type")
        offset += 1
        if length == 0:
            break
        label = data[offset:offset + length]
        if len(label) < length:
            raise ValueError("a label runs past the end of the message")
        total += length + 1
        if total > 255:
            raise ValueError("a name longer than 255 bytes")
        labels.append(label.decode("ascii", "replace").lower())
        offset += length
    return ".".join(labels), (end if end >= 0 else offset)


def dns_answer(data, ident, host):
    # type: (bytes, int, str) -> Optional[Tuple[int, bool, List[str]]]
    """(rcode, truncated, addresses) of the answer in `data` to our A question about `host`; None when `data`
    answers something else (another id, not a response, another question): a late or spoofed datagram.

    ValueError if it claims to be our answer but is malformed. CNAMEs are followed from the name asked, and only
    the A records at the end of that chain count."""
    if len(data) < 12:
        return None
    got_id, flags, questions, answers = struct.unpack(">HHHH", data[:8])
    if got_id != ident or not flags & 0x8000:
        return None
    rcode = flags & 0x000F
    truncated = bool(flags & 0x0200)
    wanted = host.rstrip(".").encode("idna").decode("ascii").lower()
    if questions != 1:
        if questions == 0 and rcode != 0:  # some servers leave the question out of an error
            return rcode, truncated, []
        return None
    name, offset = dns_read_name(data, 12)
    if offset + 4 > len(data):
        raise ValueError("the question runs past the end of the message")
    if name != wanted or struct.unpack(">HH", data[offset:offset + 4]) != (DNS_TYPE_A, DNS_CLASS_IN):
        return None
    offset += 4
    if truncated:
        return rcode, True, []
    addresses = {}  # type: Dict[str, List[str]]
    aliases = {}  # type: Dict[str, str]
    for _ in range(answers):
        owner, offset = dns_read_name(data, offset)
        if offset + 10 > len(data):
            raise ValueError("a record runs past the end of the message")
        rtype, rclass, _, length = struct.unpack(">HHIH", data[offset:offset + 10])
        offset += 10
        if offset + length > len(data):
            raise ValueError("a record's data runs past the end of the message")
        if rclass == DNS_CLASS_IN and rtype == DNS_TYPE_A and length == 4:
            addresses.setdefault(owner, []).append(socket.inet_ntoa(data[offset:offset + 4]))
        elif rclass == DNS_CLASS_IN and rtype == DNS_TYPE_CNAME:
            aliases[owner] = dns_read_name(data, offset)[0]
        offset += length
    current = wanted
    for _ in range(DNS_MAX_CNAME_HOPS + 1):
        if current in addresses:
            return rcode, False, sorted(set(addresses[current]))
        if current not in aliases:
            break
        current = aliases[current]
    return rcode, False, []


def dns_lookup(host, servers, timeout_s):
    # type: (str, Sequence[Tuple[str, int]], float) -> Generator[Tuple[str, int], Any, Tuple[Optional[str], str, List[str], Optional[str]]]
    """The resolver policy both collectors follow, without their I/O: a generator that yields each (server, port)
    to ask, in order, and is sent what came of it: (rcode, addresses), "timeout", or the exception (a ValueError
    for a malformed answer, an OSError). It returns (error kind or None, detail, addresses, the resolver that
    answered).

    Each resolver gets the whole timeout, as resolv.conf does. NXDOMAIN or an answer ends the lookup; SERVFAIL,
    REFUSED, a malformed answer, an error or silence moves on to the next resolver. When none answers, the kind
    is what they all said (refused, unreachable, timeout or servfail), or the first resolver's when they differ."""
    try:
        dns_encode_name(host)
    except ValueError as exc:
        return "error", str(exc), [], None
    problems = []  # type: List[str]
    kinds = []  # type: List[str]
    for server, port in servers:
        where = "%s:%d" % (server, port)
        outcome = yield server, port
        if outcome == "timeout":
            kinds.append("timeout")
            problems.append("%s did not answer within %g s" % (where, timeout_s))
        elif isinstance(outcome, ValueError):
            kinds.append("servfail")
            problems.append("%s sent a malformed answer (%s)" % (where, outcome))
        elif isinstance(outcome, ConnectionRefusedError):
            kinds.append("refused")
            problems.append("%s refused the connection (nothing listens on its port)" % where)
        elif isinstance(outcome, BaseException):
            kinds.append("unreachable")
            problems.append("%s is unreachable: %s" % (where, getattr(outcome, "strerror", None) or outcome))
        elif outcome[0] == 3:
            return "nxdomain", "%s does not exist (NXDOMAIN)" % host, [], where
        elif outcome[0] == 0:
            if outcome[1]:
                return None, "", list(outcome[1]), where
            return "no-answer", "%s has no A record (NODATA)" % host, [], where
        else:
            kinds.append("refused" if outcome[0] == 5 else "servfail")
            problems.append("%s answered %s" % (where, DNS_RCODES.get(outcome[0], "rcode %s" % outcome[0])))
    if not kinds:
        return "error", "no resolver to ask", [], None
    kind = kinds[0]
    if kind == "timeout" and set(kinds) == {"timeout"}:
        return "timeout", dns_timeout_detail(len(servers), timeout_s), [], None
    if len(problems) == 1:
        return kind, problems[0], [], None
    return kind, "no resolver gave a usable answer: %s" % "; ".join(problems), [], None


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
