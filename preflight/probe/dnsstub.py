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
  resolver, each of which gets the whole timeout.

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
from preflight.probe.observations import DNS_RCODES, dns_answer, dns_query

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


async def resolve(host: str, servers: Sequence[tuple[str, int]], timeout_s: float, timeout_detail: str
                  ) -> list[str]:
    """The A addresses of `host` from the first resolver that gives a usable answer; DnsFailure otherwise."""
    try:
        dns_query(host, 0)
    except ValueError as exc:
        raise DnsFailure("error", str(exc)) from None
    problems: list[str] = []
    silent = 0
    for server, port in servers:
        where = f"{server}:{port}"
        try:
            rcode, _, addresses = await within(ask(host, server, port), timeout_s)
        except asyncio.TimeoutError:
            silent += 1
            problems.append(f"{where} did not answer within {timeout_s:g} s")
            continue
        except ValueError as exc:
            problems.append(f"{where} sent a malformed answer ({exc})")
            continue
        except OSError as exc:
            problems.append(f"{where}: {exc.strerror or exc}")
            continue
        if rcode == 3:
            raise DnsFailure("nxdomain", f"{host} does not exist (NXDOMAIN)")
        if rcode == 0:
            if not addresses:
                raise DnsFailure("no-answer", f"{host} has no A record")
            return list(addresses)
        problems.append(f"{where} answered {DNS_RCODES.get(rcode, f'rcode {rcode}')}")
    if servers and silent == len(servers):
        raise DnsFailure("timeout", timeout_detail)
    raise DnsFailure("servfail", f"no resolver gave a usable answer: {'; '.join(problems)}")


__all__ = ["Answer", "DnsFailure", "ask", "resolve"]
