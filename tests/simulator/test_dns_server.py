"""The DNS simulator answers the model domain like a private zone, over UDP and TCP, through dnspython."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import dns.message
import dns.query
import dns.rcode
import dns.resolver
import pytest

from preflight.simulator.dns_server import DnsServer
from preflight.simulator.scenarios import World

QWEN, CHAT, BGE = World().models


@pytest.fixture(scope="module")
def server() -> Iterator[DnsServer]:
    dns_server = DnsServer({QWEN.host: "127.0.0.1", BGE.host: "127.0.0.9"})
    dns_server.start()
    yield dns_server
    dns_server.stop()


def resolver_for(port: int) -> dns.resolver.Resolver:
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = port
    resolver.lifetime = 3
    return resolver


def test_resolver_gets_each_record_case_insensitively(server: DnsServer) -> None:
    resolver = resolver_for(server.port)
    assert [r.to_text() for r in resolver.resolve(QWEN.host, "A")] == ["127.0.0.1"]
    assert [r.to_text() for r in resolver.resolve(BGE.host.upper(), "A")] == ["127.0.0.9"]


def test_other_model_names_are_nxdomain(server: DnsServer) -> None:
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver_for(server.port).resolve(CHAT.host, "A")


def test_names_outside_the_model_domain_are_refused(server: DnsServer) -> None:
    answer = dns.query.udp(dns.message.make_query("example.com", "A"), "127.0.0.1", port=server.port, timeout=2)
    assert answer.rcode() == dns.rcode.REFUSED and not answer.answer


def test_known_name_without_that_type_has_no_answer(server: DnsServer) -> None:
    with pytest.raises(dns.resolver.NoAnswer):
        resolver_for(server.port).resolve(QWEN.host, "AAAA")


def test_tcp_answers_on_the_same_port(server: DnsServer) -> None:
    answer = dns.query.tcp(dns.message.make_query(QWEN.host, "A"), "127.0.0.1", port=server.port, timeout=2)
    assert [item.to_text() for rrset in answer.answer for item in rrset] == ["127.0.0.1"]
    missing = dns.query.tcp(dns.message.make_query(CHAT.host, "A"), "127.0.0.1", port=server.port, timeout=2)
    assert missing.rcode() == dns.rcode.NXDOMAIN


def test_garbage_is_ignored_and_the_server_keeps_answering(server: DnsServer) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.3)
        sock.sendto(b"\x00not dns", ("127.0.0.1", server.port))
        with pytest.raises(TimeoutError):
            sock.recvfrom(512)
    assert [r.to_text() for r in resolver_for(server.port).resolve(QWEN.host, "A")] == ["127.0.0.1"]


def test_queries_are_counted(server: DnsServer) -> None:
    before = server.queries
    resolver_for(server.port).resolve(QWEN.host, "A")
    assert server.queries == before + 1


def test_latency_is_honoured_on_udp_and_tcp() -> None:
    slow = DnsServer({QWEN.host: "127.0.0.1"}, latency_s=0.3)
    port = slow.start()
    try:
        for ask in (dns.query.udp, dns.query.tcp):
            started = time.monotonic()
            ask(dns.message.make_query(QWEN.host, "A"), "127.0.0.1", port=port, timeout=3)
            assert 0.3 <= time.monotonic() - started < 2.0
    finally:
        slow.stop()


def test_stop_is_quick_and_frees_the_port() -> None:
    dns_server = DnsServer({})
    port = dns_server.start()
    started = time.monotonic()
    dns_server.stop()
    assert time.monotonic() - started < 1.5
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", port))


def test_each_delayed_answer_waits_only_its_own_latency() -> None:
    """Fifty questions at once, 0.2 s of latency: all answered after about 0.2 s, not one after the other."""
    slow = DnsServer({QWEN.host: "127.0.0.1"}, latency_s=0.2)
    port = slow.start()
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(50)]
    try:
        started = time.monotonic()
        for sock in sockets:
            sock.settimeout(3)
            sock.sendto(dns.message.make_query(QWEN.host, "A").to_wire(), ("127.0.0.1", port))
        for sock in sockets:
            answer = dns.message.from_wire(sock.recvfrom(512)[0])
            assert [r.to_text() for r in answer.answer[0]] == ["127.0.0.1"]
        assert 0.2 <= time.monotonic() - started < 1.5
        assert slow.queries == 50
    finally:
        for sock in sockets:
            sock.close()
        slow.stop()


def test_a_remembered_answer_is_byte_for_byte_what_dnspython_builds() -> None:
    from preflight.simulator.dns_server import answer_query

    records = {QWEN.host: "127.0.0.1", BGE.host: "127.0.0.9"}
    dns_server = DnsServer(records)  # answers without being started: no sockets needed for this
    queries = [dns.message.make_query(QWEN.host, "A"), dns.message.make_query(BGE.host.upper(), "A"),
               dns.message.make_query(QWEN.host, "AAAA"), dns.message.make_query(CHAT.host, "A"),
               dns.message.make_query("example.com", "A"), dns.message.make_query(QWEN.host, "A", use_edns=0),
               dns.message.make_query(BGE.host, "A", want_dnssec=True)]
    wires = [query.to_wire() for query in queries] + [b"\x00\x01" + b"\xff" * 20]  # the last is not DNS
    for ident in (0, 1, 0x1234, 0xFFFF, 7):  # the first round fills the memory, the others are answered from it
        for wire in wires:
            query = ident.to_bytes(2, "big") + wire[2:]
            expected = answer_query(dns_server.records, query)
            assert dns_server.answer(query) == expected
            if expected is not None:
                assert expected[:2] == query[:2]
    assert len(dns_server._answers) == len(wires)
    assert dns_server.answer(b"\x12") is None and len(dns_server._answers) == len(wires)  # too short to remember
