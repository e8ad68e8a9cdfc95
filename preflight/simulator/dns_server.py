"""A loopback DNS server that answers the model domains the way a VPC's private zone would."""

from __future__ import annotations

import contextlib
import socket
import threading

MODEL_SUFFIX = "dataworks-model.aliyuncs.com."


class DnsServer:
    """UDP DNS on 127.0.0.1: A records for the given names, NXDOMAIN elsewhere in the model domain."""

    def __init__(self, records: dict[str, str], *, latency_s: float = 0.0) -> None:
        self.records = {name.lower().rstrip(".") + ".": address for name, address in records.items()}
        self.latency_s = latency_s
        self.port = 0
        self.queries = 0
        self._socket: socket.socket | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> int:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.settimeout(0.1)
        self.port = int(self._socket.getsockname()[1])
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self.port

    def _serve(self) -> None:
        assert self._socket is not None
        while not self._stop.is_set():
            try:
                data, peer = self._socket.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.queries += 1
            if self.latency_s:
                threading.Timer(self.latency_s, self._answer, (data, peer)).start()
            else:
                self._answer(data, peer)

    def _answer(self, data: bytes, peer: tuple[str, int]) -> None:
        import dns.message
        import dns.rcode
        import dns.rdataclass
        import dns.rdatatype
        import dns.rrset

        try:
            query = dns.message.from_wire(data)
        except Exception:  # not DNS: ignore, as a real server would
            return
        response = dns.message.make_response(query)
        response.flags |= 0x0400  # authoritative, like a private zone
        for question in query.question:
            name = question.name.to_text().lower()
            if name in self.records:
                if question.rdtype == dns.rdatatype.A:
                    response.answer.append(dns.rrset.from_text(question.name, 60, dns.rdataclass.IN,
                                                               dns.rdatatype.A, self.records[name]))
            elif name.endswith(MODEL_SUFFIX):
                response.set_rcode(dns.rcode.NXDOMAIN)
            else:
                response.set_rcode(dns.rcode.REFUSED)
        sock = self._socket
        if sock is not None and not self._stop.is_set():
            with contextlib.suppress(OSError):
                sock.sendto(response.to_wire(), peer)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._socket is not None:
            self._socket.close()
            self._socket = None


__all__ = ["DnsServer"]
