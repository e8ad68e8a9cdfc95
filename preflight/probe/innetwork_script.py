"""The collector that runs inside the resource group: stdlib-only Python 3.6, on the helpers of dnswire.py and
observations.py.

Not imported by the tool: script.py pastes it, after those modules and before PLAN, into the script a Shell node runs.
"""

import base64
import hashlib
import http.client
import json
import os
import random
import socket
import ssl
import struct
import sys
import threading
import time
import zlib

MARKER = "PREFLIGHT-OBSERVATIONS"
MAX_PARALLEL = 32  # services observed at once inside the group


def _ms(start):
    return round((time.monotonic() - start) * 1000, 3)


def _split(entry, default_port):
    if entry.count(":") == 1:
        host, port = entry.split(":")
        return host, int(port)
    return entry.strip("[]"), default_port


def _dns_query(host, server, port, timeout):
    """One A question to a chosen resolver, over UDP, again over TCP if truncated; returns (rcode, addresses).

    The message format and the reading of answers are dnswire.py's (dns_query, dns_answer): a datagram that
    answers something else is ignored, as dnspython ignores it locally; a malformed one is a ValueError."""
    ident = random.randint(0, 0xFFFF)
    packet = dns_query(host, ident)
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    deadline = time.monotonic() + timeout
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.settimeout(timeout)
        sock.sendto(packet, (server, port))
        while True:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            data, _ = sock.recvfrom(4096)
            answer = dns_answer(data, ident, host)
            if answer is not None:
                break
    finally:
        sock.close()
    if answer[1]:
        with socket.create_connection((server, port), timeout=max(0.001, deadline - time.monotonic())) as stream:
            stream.sendall(struct.pack(">H", len(packet)) + packet)
            reader = stream.makefile("rb")
            while True:
                size = reader.read(2)
                data = reader.read(struct.unpack(">H", size)[0]) if len(size) == 2 else b""
                if not data:
                    raise ValueError("the TCP answer ended early")
                answer = dns_answer(data, ident, host)
                if answer is not None:
                    break
    return answer[0], answer[2]


def _is_address(host):
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except (OSError, ValueError):
            continue
        return True
    return False


def _endpoint(url):
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    scheme = parts.scheme or "http"
    port = parts.port or (443 if scheme == "https" else 80)
    host = (parts.hostname or "").lower()
    default = (scheme, port) in (("http", 80), ("https", 443))
    named = "[%s]" % host if ":" in host else host  # an IPv6 literal keeps its brackets
    return {"scheme": scheme, "host": host, "port": port, "base": parts.path.rstrip("/"),
            "host_header": named if default else "%s:%d" % (named, port)}


class Collector(object):
    """Observes services with sockets and http.client, the way the local collector (httpx, dnspython) does."""

    def __init__(self, plan):
        self.plan = plan
        self.http = plan["http"]
        override = os.environ.get("PREFLIGHT_NAMESERVERS", "")
        self.nameservers = [s for s in override.split(",") if s] or list(plan["dns"]["nameservers"])

    def dns(self, service):
        end = _endpoint(service["endpoint"])
        obs = base("dns")
        obs.update({"host": end["host"], "port": end["port"], "resolver": "system", "answered_by": None,
                    "answers": [], "error": None, "detail": ""})
        start = time.monotonic()
        override = self.plan["dns"]["resolve"].get("%s:%d" % (end["host"], end["port"]))
        timeout = self.plan["dns"]["timeout_s"]
        try:
            if override:
                obs["resolver"], obs["answered_by"], obs["answers"] = "override", "override", [override]
            elif _is_address(end["host"]):
                obs["resolver"], obs["answered_by"], obs["answers"] = "literal", "literal", [end["host"]]
            elif self.nameservers:
                obs["resolver"] = ",".join(self.nameservers)
                kind, detail, obs["answers"], obs["answered_by"] = self._ask_nameservers(end["host"], timeout)
                if kind:
                    obs["error"], obs["detail"] = kind, detail
            else:
                infos = socket.getaddrinfo(end["host"], end["port"], 0, socket.SOCK_STREAM)
                obs["answers"] = list(dict.fromkeys(info[4][0] for info in infos))
                obs["answered_by"] = "system" if obs["answers"] else None
        except socket.gaierror as exc:
            obs["error"], obs["detail"] = dns_gai_error(end["host"], exc)
        except Exception as exc:  # a collector reports, it never crashes
            obs["error"], obs["detail"] = "error", "%s: %s" % (type(exc).__name__, exc)
        if not obs["answers"] and obs["error"] is None:
            obs["error"], obs["detail"] = "no-answer", "the name exists but has no address"
        obs["elapsed_ms"] = _ms(start)
        return obs

    def _ask_nameservers(self, host, timeout):
        """(error kind, detail, addresses, the resolver that answered) by dnswire.dns_lookup's policy, which the
        local collector follows too."""
        servers = [_split(entry, 53) for entry in self.nameservers]
        lookup = dns_lookup(host, servers, timeout)
        try:
            server, port = next(lookup)
            while True:
                try:
                    outcome = _dns_query(host, server, port, timeout)
                except socket.timeout:
                    outcome = "timeout"
                except (ValueError, OSError) as exc:
                    outcome = exc
                server, port = lookup.send(outcome)
        except StopIteration as done:
            return done.value

    def tcp(self, service, dns_obs):
        end = _endpoint(service["endpoint"])
        obs = base("tcp")
        obs.update({"host": end["host"], "address": None, "port": end["port"], "connected": False, "error": None,
                    "detail": ""})
        start = time.monotonic()
        if not dns_obs.get("answers"):
            obs.update({"error": "no-address", "detail": "DNS gave no address to connect to"})
        for address in dns_obs.get("answers") or []:
            obs["address"] = address
            try:
                sock = socket.create_connection((address, end["port"]), timeout=self.http["connect_timeout_s"])
            except socket.timeout:
                obs.update({"error": "timeout", "detail": "no answer to SYN within %.1f s"
                            % self.http["connect_timeout_s"]})
                continue
            except ConnectionRefusedError:
                obs.update({"error": "refused", "detail": "connection refused (RST): nothing listens"})
                continue
            except OSError as exc:
                unreachable = exc.errno in (101, 113, 99)
                obs.update({"error": "unreachable" if unreachable else "error", "detail": str(exc.strerror or exc)})
                continue
            obs.update({"connected": True, "error": None, "detail": "", "handshake_ms": handshake_ms(sock)})
            sock.close()
            break
        obs["elapsed_ms"] = _ms(start)
        return obs

    def stream(self, service, dns_obs):
        """The stream request; sent again without stream_options if the server refuses that field."""
        first = self.exchange("stream", service, dns_obs, True)
        if not usage_refused(first):
            return first
        again = self.exchange("stream", service, dns_obs, True, body=without_usage(first["request_body"]))
        again["usage_refused"] = True
        return again

    def exchange(self, name, service, dns_obs, with_key, batch=False, body=None):
        end = _endpoint(service["endpoint"])
        path = endpoint_path(name)
        if body is None:
            body = request_body(name, service["model"], service["prompt"], service["max_tokens"], batch)
        method = "GET" if body is None else "POST"
        key = service.get("api_key") if with_key else None
        obs = exchange(name, method, service["endpoint"].rstrip("/") + path, path, bool(key), body)
        reader = SseReader(obs) if name == "stream" else None
        total = self.http["total_timeout_s"]
        start = time.monotonic()
        state = {"data": bytearray(), "capped": False, "connection": None}

        def work():
            try:
                self._exchange(end, method, path, body, key, service, dns_obs, obs, reader, state, start)
            except Exception as exc:
                obs["error"], obs["detail"] = _classify(exc)
                if reader is not None and obs.get("events") and obs["error"] == "timeout":
                    obs["stalled"] = True

        worker = threading.Thread(target=work)
        worker.daemon = True
        worker.start()
        worker.join(total)
        if worker.is_alive():
            obs["error"] = "timeout"
            obs["detail"] = "no complete answer within the total deadline of %.1f s" % total
            if reader is not None and obs.get("events"):
                obs["stalled"] = True
            if state["connection"] is not None:
                try:
                    state["connection"].sock.close()
                except Exception:
                    pass
        obs["elapsed_ms"] = _ms(start)
        data = bytes(state["data"])
        finish_body(obs, data, state["capped"], name)
        if reader is not None:
            obs["total_ms"], obs["capped"] = obs["elapsed_ms"], state["capped"]
            obs["json"], obs["json_error"] = None, None
        return obs

    def _exchange(self, end, method, path, body, key, service, dns_obs, obs, reader, state, start):
        address = (dns_obs.get("answers") or [end["host"]])[0]
        timeout = self.http["read_timeout_s"]
        if end["scheme"] == "https":
            context = ssl.create_default_context(cafile=self.http.get("ca_bundle") or None)
            connection = _TlsConnection(address, end["port"], end["host"], context, timeout)
        else:
            connection = http.client.HTTPConnection(address, end["port"], timeout=timeout)
        state["connection"] = connection
        headers = {"Host": end["host_header"], "User-Agent": "dw-preflight", "Accept": "*/*"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if key:
            headers["Authorization"] = authorization(key, service["auth"])
        connection.request(method, end["base"] + path, body=payload, headers=headers)
        response = connection.getresponse()
        obs.update({"status": response.status, "reason": response.reason,
                    "headers": clean_headers(response.getheaders()),
                    "content_type": response.getheader("Content-Type", "") or ""})
        if 300 <= response.status < 400:
            obs["redirect"] = response.getheader("Location")
        cap = self.http["max_body_bytes"]
        read = getattr(response, "read1", None) or response.read
        while True:
            chunk = read(65536)
            if not chunk:
                break
            room = cap - len(state["data"])
            if len(chunk) > room:
                chunk, state["capped"] = chunk[:room], True
            state["data"].extend(chunk)
            if reader is not None:
                reader.feed(chunk, (time.monotonic() - start) * 1000)
            if state["capped"]:
                break
        # read1() ends quietly when the peer hangs up early; the local collector calls that a protocol error, as we do.
        missing = getattr(response, "length", None)
        if not state["capped"] and missing:
            received = len(state["data"])
            obs["error"] = "protocol"
            obs["detail"] = ("peer closed connection without sending complete message body (received %d bytes, "
                             "expected %d)" % (received, received + missing))
        connection.close()


class _TlsConnection(http.client.HTTPSConnection):
    """HTTPS to an address while verifying the certificate for the host name (SNI and checks)."""

    def __init__(self, address, port, hostname, context, timeout):
        http.client.HTTPSConnection.__init__(self, address, port, timeout=timeout, context=context)
        self._hostname = hostname
        self._tls = context

    def connect(self):
        raw = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self._hostname)


def _classify(exc):
    if isinstance(exc, ValueError) and "header" in str(exc).lower():  # http.client quotes the header: the key
        return "error", HEADER_REFUSED
    text = "%s: %s" % (type(exc).__name__, exc)
    if isinstance(exc, socket.timeout):
        return "timeout", "the server went silent in the middle of the answer"
    if isinstance(exc, ssl.SSLError) or "CERTIFICATE" in text.upper():
        return "tls", text[:300]
    if isinstance(exc, ConnectionResetError):
        return "reset", text[:300]
    if isinstance(exc, (http.client.IncompleteRead, http.client.RemoteDisconnected, http.client.BadStatusLine)):
        return "protocol", text[:300]
    if isinstance(exc, ConnectionError):
        return "connect", text[:300]
    return "error", text[:300]


def observe_service(collector, service, names):
    observed = {}
    dns = collector.dns(service)
    observed["dns"] = dns
    if "tcp" in names:
        observed["tcp"] = collector.tcp(service, dns)
        if not observed["tcp"]["connected"]:
            return observed
    if "http" in names:
        observed["http"] = collector.exchange("http", service, dns, False)
    if not service.get("api_key"):
        return observed
    for name in ("models", "completion", "stream", "chat"):
        if name == "stream" and name in names:
            observed[name] = collector.stream(service, dns)
        elif name in names:
            observed[name] = collector.exchange(name, service, dns, True)
    if "embedding" in names:
        batch = collector.exchange("embedding", service, dns, True, batch=True)
        batch["single"] = collector.exchange("embedding", service, dns, True)
        observed["embedding"] = batch
    return observed


def encode(payload):
    data = base64.b64encode(zlib.compress(json.dumps(payload, separators=(",", ":")).encode("utf-8"))).decode()
    digest = hashlib.sha256(data.encode()).hexdigest()[:16]
    return "%s v1 %d %s %s" % (MARKER, len(data), digest, data)


def main(plan):
    collector = Collector(plan)
    deadline = time.monotonic() + plan["budget_s"]
    targets = {}
    lock = threading.Lock()

    slots = threading.BoundedSemaphore(MAX_PARALLEL)

    def observe(target, service):
        try:
            if time.monotonic() > deadline:
                print("preflight: time budget spent before %s/%s" % (target["name"], service["name"]))
                return
            made = observe_service(collector, service, service["observe"])
            with lock:
                targets[target["name"]][service["name"]] = made
                print("preflight: observed %s/%s" % (target["name"], service["name"]))
        finally:
            slots.release()

    # Every service of the group at once: one instance serves the group however many services it has.
    workers = []
    for target in plan["targets"]:
        targets.setdefault(target["name"], {})
        for service in target["services"]:
            slots.acquire()
            worker = threading.Thread(target=observe, args=(target, service))
            worker.daemon = True
            worker.start()
            workers.append(worker)
    for worker in workers:
        worker.join()
    payload = {"version": 1, "origin": plan["origin"], "targets": targets,
               "python": "%d.%d.%d" % sys.version_info[:3]}
    sys.stdout.write(encode(payload) + "\n")
    sys.stdout.flush()
