"""DNS as both collectors do it: the resolver policy they share, and one A question and its answer on the wire.

The in-network collector has no dnspython: script.py pastes this module into it, so it is stdlib-only Python 3.6.
"""

import socket
import struct
from typing import Any, Dict, Generator, List, Optional, Sequence, Tuple  # noqa: F401  (used in type comments)

DNS_TYPE_A, DNS_TYPE_CNAME, DNS_CLASS_IN = 1, 5, 1
DNS_RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
DNS_MAX_CNAME_HOPS = 16


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
