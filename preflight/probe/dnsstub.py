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

Names in answers are read with compression pointers bounded: a pointer loop or an overrun is a malformed answer,
never a hang or a crash.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from preflight.aio import within

TYPE_A, TYPE_CNAME, CLASS_IN = 1, 5, 1
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
MAX_CNAME_HOPS = 16
_HEADER = struct.Struct(">HHHHHH")
_RECORD = struct.Struct(">HHIH")


class DnsFailure(Exception):
    """The lookup ended without an address: `kind` is nxdomain, no-answer, servfail, timeout or error."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True)
class Answer:
    rcode: int
    truncated: bool
    addresses: tuple[str, ...]


def encode_name(host: str) -> bytes:
    """The name in wire format; DnsFailure for a name DNS cannot carry."""
    try:
        encoded = host.rstrip(".").encode("idna")
    except UnicodeError as exc:
        raise DnsFailure("error", f"{host!r} is not a valid DNS name: {exc}") from None
    labels = encoded.split(b".")
    if not encoded or len(encoded) > 253 or any(not 0 < len(label) <= 63 for label in labels):
        raise DnsFailure("error", f"{host!r} is not a valid DNS name")
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"


def build_query(host: str, ident: int) -> bytes:
    """An A query for `host` with recursion desired."""
    return _HEADER.pack(ident, 0x0100, 1, 0, 0, 0) + encode_name(host) + struct.pack(">HH", TYPE_A, CLASS_IN)


def read_name(data: bytes, offset: int) -> tuple[str, int]:
    """The (lowercased) name at `offset` and the offset after it; ValueError if it is malformed."""
    labels: list[str] = []
    end = -1
    jumps = 0
    length_so_far = 0
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
        length_so_far += length + 1
        if length_so_far > 255:
            raise ValueError("a name longer than 255 bytes")
        labels.append(label.decode("ascii", "replace").lower())
        offset += length
    return ".".join(labels), (end if end >= 0 else offset)


def parse_answer(data: bytes, ident: int, host: str) -> Answer | None:
    """The answer in `data` to our question about `host`, None if `data` answers something else.

    ValueError if it claims to be our answer but is malformed.
    """
    if len(data) < _HEADER.size:
        return None
    got_id, flags, questions, answers, _, _ = _HEADER.unpack_from(data)
    if got_id != ident or not flags & 0x8000:
        return None
    rcode = flags & 0x000F
    wanted = host.rstrip(".").lower()
    offset = _HEADER.size
    if questions != 1:
        if questions == 0 and rcode != 0:  # some servers leave the question out of an error
            return Answer(rcode, bool(flags & 0x0200), ())
        return None
    name, offset = read_name(data, offset)
    if offset + 4 > len(data):
        raise ValueError("the question runs past the end of the message")
    qtype, qclass = struct.unpack_from(">HH", data, offset)
    offset += 4
    if name != _ascii(wanted) or (qtype, qclass) != (TYPE_A, CLASS_IN):
        return None
    if flags & 0x0200:
        return Answer(rcode, True, ())
    addresses: dict[str, list[str]] = {}
    aliases: dict[str, str] = {}
    for _ in range(answers):
        owner, offset = read_name(data, offset)
        if offset + _RECORD.size > len(data):
            raise ValueError("a record runs past the end of the message")
        rtype, rclass, _, length = _RECORD.unpack_from(data, offset)
        offset += _RECORD.size
        if offset + length > len(data):
            raise ValueError("a record's data runs past the end of the message")
        if rclass == CLASS_IN and rtype == TYPE_A and length == 4:
            addresses.setdefault(owner, []).append(socket.inet_ntoa(data[offset:offset + 4]))
        elif rclass == CLASS_IN and rtype == TYPE_CNAME:
            aliases[owner] = read_name(data, offset)[0]
        offset += length
    current = _ascii(wanted)
    for _ in range(MAX_CNAME_HOPS + 1):
        if current in addresses:
            return Answer(rcode, False, tuple(sorted(set(addresses[current]))))
        if current not in aliases:
            break
        current = aliases[current]
    return Answer(rcode, False, ())


def _ascii(host: str) -> str:
    return host.encode("idna").decode("ascii").lower() if not host.isascii() else host


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, ident: int, host: str) -> None:
        self.ident, self.host = ident, host
        self.answer: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: object) -> None:
        if self.answer.done():
            return
        try:
            parsed = parse_answer(data, self.ident, self.host)
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
    query = build_query(host, ident)
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(lambda: _Datagrams(ident, host),
                                                              remote_addr=(server, port))
    try:
        transport.sendto(query)
        answer = await protocol.answer
    finally:
        transport.close()
    if not answer.truncated:
        return answer
    reader, writer = await asyncio.open_connection(server, port)
    try:
        writer.write(struct.pack(">H", len(query)) + query)
        await writer.drain()
        while True:
            size = struct.unpack(">H", await reader.readexactly(2))[0]
            parsed = parse_answer(await reader.readexactly(size), ident, host)
            if parsed is not None:
                return Answer(parsed.rcode, False, parsed.addresses)
    except asyncio.IncompleteReadError:
        raise ValueError("the TCP answer ended early") from None
    finally:
        writer.close()


async def resolve(host: str, servers: Sequence[tuple[str, int]], timeout_s: float, timeout_detail: str
                  ) -> list[str]:
    """The A addresses of `host` from the first resolver that gives a usable answer; DnsFailure otherwise."""
    problems: list[str] = []
    silent = 0
    for server, port in servers:
        where = f"{server}:{port}"
        try:
            answer = await within(ask(host, server, port), timeout_s)
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
        if answer.rcode == 3:
            raise DnsFailure("nxdomain", f"{host} does not exist (NXDOMAIN)")
        if answer.rcode == 0:
            if not answer.addresses:
                raise DnsFailure("no-answer", f"{host} has no A record")
            return list(answer.addresses)
        problems.append(f"{where} answered {RCODES.get(answer.rcode, f'rcode {answer.rcode}')}")
    if servers and silent == len(servers):
        raise DnsFailure("timeout", timeout_detail)
    raise DnsFailure("servfail", f"no resolver gave a usable answer: {'; '.join(problems)}")


__all__ = ["Answer", "DnsFailure", "ask", "build_query", "encode_name", "parse_answer", "read_name", "resolve"]
