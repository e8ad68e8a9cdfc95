"""The stub resolver and the DNS wire format both collectors share: answers from the simulator's dnspython-built
server, and crafted answers good and bad."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable
from typing import Any

import pytest

from preflight.probe import dnsstub
from preflight.probe.dnsstub import DnsFailure
from preflight.probe.observations import dns_answer, dns_query, dns_read_name, dns_timeout_detail
from preflight.simulator.dns_server import DnsServer

HOST = "ms-abc.cn-beijing.dataworks-model.aliyuncs.com"


def name(text: str) -> bytes:
    return b"".join(bytes([len(label)]) + label.encode() for label in text.split(".")) + b"\x00"


def record(owner: bytes, rtype: int, rdata: bytes) -> bytes:
    return owner + struct.pack(">HHIH", rtype, 1, 60, len(rdata)) + rdata


def response(ident: int, records: list[bytes], *, rcode: int = 0, truncated: bool = False,
             question: str = HOST, qtype: int = 1) -> bytes:
    flags = 0x8180 | rcode | (0x0200 if truncated else 0)
    header = struct.pack(">HHHHHH", ident, flags, 1, len(records), 0, 0)
    return header + name(question) + struct.pack(">HH", qtype, 1) + b"".join(records)


def resolve(servers: list[tuple[str, int]], timeout: float = 1.0) -> list[str]:
    return asyncio.run(dnsstub.resolve(HOST, servers, timeout))


def test_the_simulators_answers_nxdomain_and_refusal_are_read() -> None:
    server = DnsServer({HOST: "10.20.30.40", "other.example.com": "10.0.0.1"})
    port = server.start()
    try:
        assert resolve([("127.0.0.1", port)]) == ["10.20.30.40"]
        with pytest.raises(DnsFailure) as missing:
            asyncio.run(dnsstub.resolve("ms-zzz.cn-beijing.dataworks-model.aliyuncs.com", [("127.0.0.1", port)],
                                        1.0))
        assert missing.value.kind == "nxdomain"
        with pytest.raises(DnsFailure) as refused:
            asyncio.run(dnsstub.resolve("www.example.org", [("127.0.0.1", port)], 1.0))
        assert refused.value.kind == "servfail" and "REFUSED" in refused.value.detail
    finally:
        server.stop()


def test_the_query_asks_for_an_a_record_with_recursion() -> None:
    query = dns_query(HOST.upper(), 0x1234)
    ident, flags, questions, answers, _, _ = struct.unpack(">HHHHHH", query[:12])
    assert (ident, flags, questions, answers) == (0x1234, 0x0100, 1, 0)
    assert dns_read_name(query, 12)[0] == HOST and query.endswith(b"\x00\x01\x00\x01")
    with pytest.raises(ValueError):
        dns_query("a" * 64 + ".example.com", 1)
    with pytest.raises(DnsFailure) as invalid:
        asyncio.run(dnsstub.resolve("a" * 64 + ".example.com", [("127.0.0.1", 9)], 1.0))
    assert invalid.value.kind == "error"


def test_only_the_answer_to_our_question_counts() -> None:
    good = response(7, [record(name(HOST), 1, bytes([10, 0, 0, 9]))])
    assert dns_answer(good, 7, HOST) == (0, False, ["10.0.0.9"])
    assert dns_answer(good, 8, HOST) is None  # another id: late, or spoofed
    assert dns_answer(good[:2] + b"\x01\x00" + good[4:], 7, HOST) is None  # a query, not a response
    assert dns_answer(response(7, [], question="evil.example.com"), 7, HOST) is None
    assert dns_answer(response(7, [], qtype=28), 7, HOST) is None
    assert dns_answer(b"\x00\x07", 7, HOST) is None


def test_cnames_are_followed_from_the_name_asked() -> None:
    middle, end = "alias.example.com", "real.example.com"
    records = [record(name(HOST), 5, name(middle)), record(name(middle), 5, name(end)),
               record(name(end), 1, bytes([10, 1, 1, 1])), record(name("unrelated.example.com"), 1, bytes(4))]
    assert dns_answer(response(1, records), 1, HOST) == (0, False, ["10.1.1.1"])
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


class Scripted(asyncio.DatagramProtocol):
    """A UDP resolver that answers each query with what `reply` makes of it (a list of datagrams)."""

    def __init__(self, reply: Callable[[int], list[bytes]]) -> None:
        self.reply = reply
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        ident = struct.unpack(">H", data[:2])[0]
        assert self.transport is not None
        for datagram in self.reply(ident):
            self.transport.sendto(datagram, addr)


def with_scripted(replies: list[Callable[[int], list[bytes]]], body: Callable[[list[int]], None],
                  tcp_answer: Callable[[int], bytes] | None = None) -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        ports, closers = [], []
        for reply in replies:
            transport, _ = await loop.create_datagram_endpoint(lambda r=reply: Scripted(r),  # type: ignore[misc]
                                                               local_addr=("127.0.0.1", 0))
            ports.append(transport.get_extra_info("sockname")[1])
            closers.append(transport.close)
        server = None
        if tcp_answer is not None:
            async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                size = struct.unpack(">H", await reader.readexactly(2))[0]
                ident = struct.unpack(">H", (await reader.readexactly(size))[:2])[0]
                answer = tcp_answer(ident)
                writer.write(struct.pack(">H", len(answer)) + answer)
                await writer.drain()
                writer.close()

            # The TCP side listens on the port of the first UDP resolver, as a real one does.
            server = await asyncio.start_server(serve, "127.0.0.1", ports[0])
        try:
            return await dnsstub.resolve(HOST, [("127.0.0.1", port) for port in ports], 1.0)
        finally:
            for close in closers:
                close()
            if server is not None:
                server.close()

    body_result = asyncio.run(main())
    body([int(part.split(".")[-1]) for part in body_result])


def test_a_spoofed_datagram_before_the_answer_is_ignored() -> None:
    def reply(ident: int) -> list[bytes]:
        spoof = response((ident + 1) % 65536, [record(name(HOST), 1, bytes([6, 6, 6, 6]))])
        return [spoof, response(ident, [record(name(HOST), 1, bytes([10, 0, 0, 5]))])]

    seen: list[list[int]] = []
    with_scripted([reply], seen.append)
    assert seen == [[5]]


def test_a_truncated_answer_is_asked_again_over_tcp() -> None:
    def truncated(ident: int) -> list[bytes]:
        return [response(ident, [], truncated=True)]

    def full(ident: int) -> bytes:
        return response(ident, [record(name(HOST), 1, bytes([10, 0, 0, n])) for n in (7, 8)])

    seen: list[list[int]] = []
    with_scripted([truncated], seen.append, tcp_answer=full)
    assert seen == [[7, 8]]


def test_servfail_and_a_malformed_answer_move_on_to_the_next_resolver() -> None:
    def servfail(ident: int) -> list[bytes]:
        return [response(ident, [], rcode=2)]

    def malformed(ident: int) -> list[bytes]:
        return [response(ident, [record(name(HOST), 1, bytes([10, 0, 0, 1]))])[:-2]]

    def good(ident: int) -> list[bytes]:
        return [response(ident, [record(name(HOST), 1, bytes([10, 0, 0, 3]))])]

    seen: list[list[int]] = []
    with_scripted([servfail, malformed, good], seen.append)
    assert seen == [[3]]
    with pytest.raises(DnsFailure) as failed:
        with_scripted([servfail, malformed], seen.append)
    assert failed.value.kind == "servfail"
    assert "SERVFAIL" in failed.value.detail and "malformed" in failed.value.detail


def test_no_record_and_silence_are_told_apart() -> None:
    def empty(ident: int) -> list[bytes]:
        return [response(ident, [])]

    with pytest.raises(DnsFailure) as nothing:
        with_scripted([empty], lambda _: None)
    assert nothing.value.kind == "no-answer"
    quiet = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    quiet.bind(("127.0.0.1", 0))
    try:
        with pytest.raises(DnsFailure) as silent:
            resolve([("127.0.0.1", quiet.getsockname()[1])], timeout=0.2)
        assert silent.value.kind == "timeout" and silent.value.detail == dns_timeout_detail(1, 0.2)
    finally:
        quiet.close()
