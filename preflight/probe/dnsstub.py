"""A stub resolver for one question, an A record, asked of the configured resolvers in order as resolv.conf does.

The DNS check asks a resolver chosen in the config (in a VPC, 100.100.2.136 and 100.100.2.138) for the model
domain's address, and needs the answer, or which of NXDOMAIN, no record, SERVFAIL or silence it got. That is one
query and one answer's parsing; dnspython's resolver does it too, but its import delayed the first DNS check by
100 ms, and each answer cost twice the CPU it costs here (0.7 ms against 0.3 ms). The simulator's DNS
server still builds its answers with dnspython, so every test of this module is read by an implementation that
is not this one.

What this resolver does, as a stub resolver should:
- one query with recursion desired, a random id, the name IDNA-encoded, no EDNS (so answers fit 512 bytes);
- an answer counts only if it has our id, is a response, and repeats our question; anything else on the socket
  is ignored, as a spoofed or late datagram should be;
- a truncated answer is asked again over TCP, of the same resolver;
- CNAMEs in the answer are followed from the name asked (at most 16), and only the A records of the end of that
  chain count;
- NXDOMAIN ends the lookup; SERVFAIL, REFUSED, a malformed answer, an error or silence move on to the next
  resolver, each of which gets the whole timeout (`observations.dns_lookup`, shared with the in-network
  collector).

The message format (the query, and reading an answer with its compression pointers bounded: a pointer loop or
an overrun is a malformed answer, never a hang or a crash) is in `observations`, which the in-network collector
carries too, so both collectors read answers alike.
"""

from __future__ import annotations

import asyncio
import random
import struct
from collections.abc import Sequence
from typing import Any

from preflight.aio import within
from preflight.probe.observations import dns_answer, dns_lookup, dns_query

Answer = tuple[int, bool, list[str]]  # rcode, truncated, addresses


class DnsFailure(Exception):
    """The lookup ended without an address: `kind` is nxdomain, no-answer, servfail, timeout or error."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, ident: int, host: str) -> None:
        self.ident, self.host = ident, host
        self.answer: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.answer.done():
            return
        try:
            parsed = dns_answer(data, self.ident, self.host)
        except ValueError as exc:
            self.answer.set_exception(exc)
            return
        if parsed is not None:
            self.answer.set_result(parsed)

    def error_received(self, exc: Exception) -> None:  # an ICMP port unreachable, for example
        if not self.answer.done():
            self.answer.set_exception(exc)


async def ask(host: str, server: str, port: int) -> Answer:
    """One question to one resolver over UDP, again over TCP if the answer was truncated; no timeout of its own."""
    ident = random.getrandbits(16)
    query = dns_query(host, ident)
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(lambda: _Datagrams(ident, host),
                                                              remote_addr=(server, port))
    try:
        transport.sendto(query)
        answer = await protocol.answer
    finally:
        transport.close()
    if not answer[1]:
        return answer
    reader, writer = await asyncio.open_connection(server, port)
    try:
        writer.write(struct.pack(">H", len(query)) + query)
        await writer.drain()
        while True:
            size = struct.unpack(">H", await reader.readexactly(2))[0]
            parsed = dns_answer(await reader.readexactly(size), ident, host)
            if parsed is not None:
                return parsed[0], False, parsed[2]
    except asyncio.IncompleteReadError:
        raise ValueError("the TCP answer ended early") from None
    finally:
        writer.close()


async def resolve(host: str, servers: Sequence[tuple[str, int]], timeout_s: float) -> list[str]:
    """The A addresses of `host` from the first resolver that gives a usable answer; DnsFailure otherwise.

    The policy, and the words of every failure, are `dns_lookup`'s, which the in-network collector follows too.
    """
    lookup = dns_lookup(host, servers, timeout_s)
    try:
        server, port = next(lookup)
        while True:
            outcome: Any
            try:
                rcode, _, addresses = await within(ask(host, server, port), timeout_s)
                outcome = (rcode, addresses)
            except asyncio.TimeoutError:  # before OSError: from Python 3.11 it is the builtin TimeoutError
                outcome = "timeout"
            except (ValueError, OSError) as exc:
                outcome = exc
            server, port = lookup.send(outcome)
    except StopIteration as done:
        kind, detail, found = done.value
    if kind:
        raise DnsFailure(kind, detail)
    return list(found)


__all__ = ["Answer", "DnsFailure", "ask", "resolve"]
