"""DNS as both collectors ask it (dnspython locally, the stdlib codec in the resource group): crafted answers good
and bad from loopback resolvers, and the kinds of failure they are told apart by."""

from __future__ import annotations

import select
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from preflight.probe import dnswire
from preflight.probe.dnswire import dns_answer, dns_gai_error, dns_lookup, dns_query, dns_read_name
from preflight.simulator.dns_server import DnsServer
from tests.probe.test_real_sockets import HOST, closed_port, observe_in_network, observe_locally, small_config, stable

Reply = Callable[[int], list[bytes]]


def name(text: str) -> bytes:
    return b"".join(bytes([len(label)]) + label.encode() for label in text.split(".")) + b"\x00"


def record(owner: bytes, rtype: int, rdata: bytes) -> bytes:
    return owner + struct.pack(">HHIH", rtype, 1, 60, len(rdata)) + rdata


def response(ident: int, records: list[bytes], *, rcode: int = 0, truncated: bool = False,
             question: str = HOST, qtype: int = 1) -> bytes:
    flags = 0x8180 | rcode | (0x0200 if truncated else 0)
    header = struct.pack(">HHHHHH", ident, flags, 1, len(records), 0, 0)
    return header + name(question) + struct.pack(">HH", qtype, 1) + b"".join(records)


def address(*octets: int) -> Reply:
    return lambda ident: [response(ident, [record(name(HOST), 1, bytes(octets))])]


def same_port_listener(sockets: list[socket.socket]) -> socket.socket:
    """A TCP listener on the first UDP socket's port; that port may be taken for TCP by another process on this
    machine, so the UDP socket moves to a new port until both fit."""
    for _ in range(50):
        listener = socket.socket()
        try:
            listener.bind(("127.0.0.1", sockets[0].getsockname()[1]))
        except OSError:
            listener.close()
            sockets[0].close()
            sockets[0] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sockets[0].bind(("127.0.0.1", 0))
            continue
        listener.listen(4)
        return listener
    raise AssertionError("no loopback port was free for both UDP and TCP")


@contextmanager
def resolvers(*replies: Reply, tcp_answer: Callable[[int], bytes] | None = None) -> Iterator[list[int]]:
    """Loopback UDP resolvers, each answering a query with what its reply makes of the query's id; the first also
    answers over TCP on the same port when `tcp_answer` is given, as a real resolver does."""
    sockets = []
    for _ in replies:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sockets.append(sock)
    listener = None
    if tcp_answer is not None:
        listener = same_port_listener(sockets)
    stop = threading.Event()

    def serve() -> None:
        watched: list[socket.socket] = [*sockets, *([listener] if listener else [])]
        while not stop.is_set():
            for ready in select.select(watched, [], [], 0.05)[0]:
                if ready is listener and tcp_answer is not None:
                    connection, _ = ready.accept()
                    with connection:
                        size = struct.unpack(">H", connection.recv(2))[0]
                        ident = struct.unpack(">H", connection.recv(size)[:2])[0]
                        answer = tcp_answer(ident)
                        connection.sendall(struct.pack(">H", len(answer)) + answer)
                    continue
                data, peer = ready.recvfrom(4096)
                for datagram in replies[sockets.index(ready)](struct.unpack(">H", data[:2])[0]):
                    ready.sendto(datagram, peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield [sock.getsockname()[1] for sock in sockets]
    finally:
        stop.set()
        thread.join(2)
        for sock in sockets:
            sock.close()
        if listener is not None:
            listener.close()


def both(ports: list[int], timeout: float = 1.0) -> tuple[dict[str, Any], dict[str, Any]]:
    """The DNS observation of each collector, asking the given loopback resolvers in order."""
    servers = ", ".join(f"'127.0.0.1:{port}'" for port in ports)
    config = small_config(f"http://{HOST}:80", f"{{nameservers: [{servers}], timeout_s: {timeout}}}")
    service = config.targets[0].services[0]
    return observe_locally(config, service, ["dns"])["dns"], observe_in_network(config, service, ["dns"])["dns"]


def test_an_answer_names_the_resolver_that_gave_it() -> None:
    with resolvers(lambda ident: [response(ident, [], rcode=2)], address(10, 0, 0, 3)) as ports:
        local, remote = both(ports)
    assert stable(local) == stable(remote)
    assert local["answers"] == ["10.0.0.3"] and local["error"] is None
    assert local["answered_by"] == f"127.0.0.1:{ports[1]}"
    assert local["resolver"] == f"127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}"


def test_a_spoofed_datagram_before_the_answer_is_ignored() -> None:
    def reply(ident: int) -> list[bytes]:
        spoof = response((ident + 1) % 65536, [record(name(HOST), 1, bytes([6, 6, 6, 6]))])
        return [spoof, *address(10, 0, 0, 5)(ident)]

    with resolvers(reply) as ports:
        local, remote = both(ports)
    assert stable(local) == stable(remote) and local["answers"] == ["10.0.0.5"]


def test_a_truncated_answer_is_asked_again_over_tcp() -> None:
    def full(ident: int) -> bytes:
        return response(ident, [record(name(HOST), 1, bytes([10, 0, 0, n])) for n in (7, 8)])

    with resolvers(lambda ident: [response(ident, [], truncated=True)], tcp_answer=full) as ports:
        local, remote = both(ports)
    assert stable(local) == stable(remote) and local["answers"] == ["10.0.0.7", "10.0.0.8"]


def test_cnames_are_followed_from_the_name_asked() -> None:
    middle, end = "alias.example.com", "real.example.com"

    def chain(ident: int) -> list[bytes]:
        return [response(ident, [record(name(HOST), 5, name(middle)), record(name(middle), 5, name(end)),
                                 record(name(end), 1, bytes([10, 1, 1, 1]))])]

    with resolvers(chain) as ports:
        local, remote = both(ports)
    assert stable(local) == stable(remote) and local["answers"] == ["10.1.1.1"]


@pytest.mark.parametrize(("rcode", "kind", "words"), [
    (2, "servfail", "answered SERVFAIL"), (5, "refused", "answered REFUSED"),
    (3, "nxdomain", "does not exist (NXDOMAIN)"), (0, "no-answer", "has no A record (NODATA)")])
def test_each_kind_of_no_answer_is_told_apart(rcode: int, kind: str, words: str) -> None:
    with resolvers(lambda ident: [response(ident, [], rcode=rcode)]) as ports:
        local, remote = both(ports)
    assert stable(local) == stable(remote)
    assert local["error"] == kind and words in local["detail"] and local["answers"] == []


def test_silence_is_a_timeout_and_every_resolver_is_asked_in_turn() -> None:
    quiet = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    quiet.bind(("127.0.0.1", 0))
    try:
        local, remote = both([quiet.getsockname()[1]], timeout=0.3)
        assert stable(local) == stable(remote)
        assert local["error"] == "timeout" and local["detail"] == dnswire.dns_timeout_detail(1, 0.3)
        with resolvers(address(10, 0, 0, 4)) as ports:
            local, remote = both([quiet.getsockname()[1], *ports], timeout=0.3)
        assert stable(local) == stable(remote) and local["answers"] == ["10.0.0.4"]
    finally:
        quiet.close()


def test_mixed_failures_take_the_first_resolvers_kind_and_list_every_one() -> None:
    def refused(ident: int) -> list[bytes]:
        return [response(ident, [], rcode=5)]

    def servfail(ident: int) -> list[bytes]:
        return [response(ident, [], rcode=2)]

    with resolvers(refused, servfail) as ports:
        local, remote = both(ports)
    assert stable(local) == stable(remote) and local["error"] == "refused"
    assert "answered REFUSED" in local["detail"] and "answered SERVFAIL" in local["detail"]


def test_the_simulators_dns_server_answers_alike() -> None:
    server = DnsServer({HOST: "10.20.30.40"})
    port = server.start()
    try:
        local, remote = both([port])
    finally:
        server.stop()
    assert stable(local) == stable(remote) and local["answers"] == ["10.20.30.40"]


def test_the_resolver_policy_tells_refused_unreachable_and_malformed_apart() -> None:
    """The outcomes a socket gives (no loopback resolver can make a route vanish), fed to the shared policy."""
    for outcome, kind, words in ((ConnectionRefusedError(111, "Connection refused"), "refused", "refused the "
                                  "connection"),
                                 (OSError(101, "Network is unreachable"), "unreachable", "Network is unreachable"),
                                 (ValueError("a label runs past the end"), "servfail", "malformed answer")):
        lookup = dns_lookup(HOST, [("10.0.0.2", 53)], 1.0)
        assert next(lookup) == ("10.0.0.2", 53)
        with pytest.raises(StopIteration) as done:
            lookup.send(outcome)
        found, detail, answers, answered_by = done.value.value
        assert (found, answers, answered_by) == (kind, [], None) and words in detail, detail
    lookup = dns_lookup("a" * 64 + ".example.com", [("10.0.0.2", 53)], 1.0)
    with pytest.raises(StopIteration) as invalid:
        next(lookup)
    assert invalid.value.value[0] == "error"


def test_the_system_resolvers_failures_carry_the_os_reason() -> None:
    cases = ((socket.EAI_NONAME, "Name or service not known", "nxdomain"),
             (socket.EAI_AGAIN, "Temporary failure in name resolution", "unreachable"),
             (socket.EAI_FAIL, "Non-recoverable failure in name resolution", "servfail"))
    for number, reason, kind in cases:
        assert dns_gai_error(HOST, socket.gaierror(number, reason)) == (kind, f"{HOST}: {reason}")


def test_a_literal_address_needs_no_resolver() -> None:
    config = small_config(f"http://127.0.0.1:{closed_port()}", "{nameservers: ['127.0.0.1:9']}")
    service = config.targets[0].services[0]
    local = observe_locally(config, service, ["dns"])["dns"]
    remote = observe_in_network(config, service, ["dns"])["dns"]
    assert stable(local) == stable(remote)
    assert local["resolver"] == local["answered_by"] == "literal" and local["answers"] == ["127.0.0.1"]


# --- The in-network collector's own codec (dnswire.py) ---------------------------------------------------------

def test_the_query_asks_for_an_a_record_with_recursion() -> None:
    query = dns_query(HOST.upper(), 0x1234)
    ident, flags, questions, answers, _, _ = struct.unpack(">HHHHHH", query[:12])
    assert (ident, flags, questions, answers) == (0x1234, 0x0100, 1, 0)
    assert dns_read_name(query, 12)[0] == HOST and query.endswith(b"\x00\x01\x00\x01")
    with pytest.raises(ValueError):
        dns_query("a" * 64 + ".example.com", 1)


def test_only_the_answer_to_our_question_counts() -> None:
    good = response(7, [record(name(HOST), 1, bytes([10, 0, 0, 9]))])
    assert dns_answer(good, 7, HOST) == (0, False, ["10.0.0.9"])
    assert dns_answer(good, 8, HOST) is None  # another id: late, or spoofed
    assert dns_answer(good[:2] + b"\x01\x00" + good[4:], 7, HOST) is None  # a query, not a response
    assert dns_answer(response(7, [], question="evil.example.com"), 7, HOST) is None
    assert dns_answer(response(7, [], qtype=28), 7, HOST) is None
    assert dns_answer(b"\x00\x07", 7, HOST) is None


def test_a_cname_loop_gives_no_address() -> None:
    middle = "alias.example.com"
    loop = [record(name(HOST), 5, name(middle)), record(name(middle), 5, name(HOST))]
    assert dns_answer(response(1, loop), 1, HOST) == (0, False, [])


def test_compression_pointers_are_followed_and_loops_and_overruns_are_malformed() -> None:
    # The answer names its owner by a pointer to the question's name at offset 12.
    compressed = response(3, [record(b"\xc0\x0c", 1, bytes([10, 2, 2, 2]))])
    assert dns_answer(compressed, 3, HOST) == (0, False, ["10.2.2.2"])
    looping = response(3, [record(b"\xc0" + bytes([len(response(3, []))]), 1, bytes(4))])
    with pytest.raises(ValueError):
        dns_answer(looping, 3, HOST)
    with pytest.raises(ValueError):
        dns_answer(compressed[:-3], 3, HOST)  # the record's data is cut short
