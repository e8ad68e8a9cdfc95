"""A loopback DNS server that answers the model domains the way a VPC's private zone would."""

from __future__ import annotations

import contextlib
import functools
import heapq
import socket
import socketserver
import struct
import threading
import time
from collections.abc import Callable

MODEL_SUFFIX = "dataworks-model.aliyuncs.com."
# Distinct queries whose answers a server remembers (a benchmark world asks a few hundred names).
ANSWER_MEMO = 4096
HEADER_SIZE = 12


def answer_query(records: dict[str, str], data: bytes) -> bytes | None:
    """The wire answer to one wire query, or None when `data` is not DNS (a real server stays silent then)."""
    # dnspython is imported here so that starting the CLI does not pay for it.
    import dns.flags
    import dns.message
    import dns.rcode
    import dns.rdataclass
    import dns.rdatatype
    import dns.rrset

    try:
        query = dns.message.from_wire(data)
    except Exception:  # any parse error: the sender is not speaking DNS
        return None
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA  # authoritative, like a private zone
    for question in query.question:
        name = question.name.to_text().lower()
        if name in records:
            # A known name without an A record of that type is NOERROR with no answer, as zones do for AAAA.
            if question.rdtype == dns.rdatatype.A:
                response.answer.append(dns.rrset.from_text(question.name, 60, dns.rdataclass.IN,
                                                           dns.rdatatype.A, records[name]))
        elif name.endswith(MODEL_SUFFIX):
            response.set_rcode(dns.rcode.NXDOMAIN)
        else:
            response.set_rcode(dns.rcode.REFUSED)
    wire: bytes = response.to_wire()
    return wire


class _TcpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    owner: DnsServer


class _TcpHandler(socketserver.BaseRequestHandler):
    """DNS over TCP: each message is preceded by its two-byte length (RFC 1035 4.2.2)."""

    server: _TcpServer

    def handle(self) -> None:
        owner = self.server.owner
        self.request.settimeout(5)
        with contextlib.suppress(OSError, struct.error):
            while not owner.stopping.is_set():
                prefix = self._read(2)
                if not prefix:
                    return
                data = self._read(struct.unpack("!H", prefix)[0])
                owner.count_query()
                if owner.latency_s and owner.stopping.wait(owner.latency_s):
                    return
                wire = owner.answer(data)
                if wire is None:
                    return
                self.request.sendall(struct.pack("!H", len(wire)) + wire)

    def _read(self, size: int) -> bytes:
        chunks = b""
        while len(chunks) < size:
            piece = self.request.recv(size - len(chunks))
            if not piece:
                return b""
            chunks += piece
        return chunks


class DnsServer:
    """DNS on 127.0.0.1, UDP and TCP on one port: A records for the given names, NXDOMAIN elsewhere in the
    model domain, REFUSED for any other name."""

    def __init__(self, records: dict[str, str], *, latency_s: float = 0.0) -> None:
        self.records = {name.lower().rstrip(".") + ".": address for name, address in records.items()}
        self.latency_s = latency_s
        self.port = 0
        self.queries = 0
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._tcp: _TcpServer | None = None
        self._threads: list[threading.Thread] = []
        # Answers waiting for their latency: (when due, query, peer), earliest first.
        self._due: list[tuple[float, bytes, tuple[str, int]]] = []
        self._due_changed = threading.Condition(self._lock)
        # Answers by everything after the query's id; see answer().
        self._answers: dict[bytes, bytes | None] = {}

    def answer(self, data: bytes) -> bytes | None:
        """answer_query for this server's records, remembered.

        The answer depends on nothing but the records, which never change, and the query after its two-byte id,
        which the answer repeats: a query seen before is answered with its id and the answer's remaining bytes,
        byte for byte what dnspython would build again. Building it was a large share of the simulator's CPU in a
        benchmark run, time the checker under test would compete with for the same cores.
        """
        if len(data) < HEADER_SIZE:
            return answer_query(self.records, data)
        key = data[2:]
        if key in self._answers:
            wire = self._answers[key]
            return None if wire is None else data[:2] + wire[2:]
        wire = answer_query(self.records, data)
        if len(self._answers) < ANSWER_MEMO:
            self._answers[key] = wire
        return wire

    def count_query(self) -> None:
        with self._lock:
            self.queries += 1

    def start(self, port: int = 0) -> int:
        # The TCP listener must share the UDP port; another process may hold it, so a few tries (one for a given port).
        for _ in range(20 if port == 0 else 1):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind(("127.0.0.1", port))
            bound = int(udp.getsockname()[1])
            try:
                tcp = _TcpServer(("127.0.0.1", bound), _TcpHandler)
            except OSError:
                udp.close()
                continue
            tcp.owner = self
            udp.settimeout(0.1)
            self._socket, self._tcp, self.port = udp, tcp, bound
            self._spawn(self._serve_udp)
            if self.latency_s:
                self._spawn(self._answer_when_due)
            # serve_forever must run even if stop() comes first: shutdown() waits for it to return.
            self._spawn(functools.partial(tcp.serve_forever, poll_interval=0.05))
            return bound
        raise OSError(f"no loopback port free for both UDP and TCP{f' ({port})' if port else ''}")

    def _spawn(self, target: Callable[[], object]) -> None:
        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _serve_udp(self) -> None:
        sock = self._socket
        while sock is not None and not self.stopping.is_set():
            try:
                data, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.count_query()
            if self.latency_s:
                # Each answer waits its own latency from its own arrival: one slow answer does not delay the next.
                with self._due_changed:
                    heapq.heappush(self._due, (time.monotonic() + self.latency_s, data, peer))
                    self._due_changed.notify()
            else:
                self._answer_udp(data, peer)

    def _answer_when_due(self) -> None:
        """One thread sends every delayed answer (a timer thread per query cost the simulator more CPU)."""
        while not self.stopping.is_set():
            with self._due_changed:
                wait = self._due[0][0] - time.monotonic() if self._due else 0.1
                if wait > 0:
                    self._due_changed.wait(min(wait, 0.1))
                    continue
                _, data, peer = heapq.heappop(self._due)
            self._answer_udp(data, peer)

    def _answer_udp(self, data: bytes, peer: tuple[str, int]) -> None:
        wire = self.answer(data)
        sock = self._socket
        if wire is not None and sock is not None and not self.stopping.is_set():
            with contextlib.suppress(OSError):
                sock.sendto(wire, peer)

    def stop(self) -> None:
        self.stopping.set()
        with self._due_changed:
            self._due_changed.notify()
        if self._tcp is not None:
            self._tcp.shutdown()
            self._tcp.server_close()
            self._tcp = None
        deadline = time.monotonic() + 2
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self._threads.clear()
        if self._socket is not None:
            self._socket.close()
            self._socket = None


__all__ = ["DnsServer", "answer_query"]
