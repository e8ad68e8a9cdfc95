"""Find and decode the one marked observations line that the in-network collector prints into a node log."""

from __future__ import annotations

import base64
import hashlib
import json
import zlib
from typing import Any

from preflight.errors import LogFormatError

MARKER = "PREFLIGHT-OBSERVATIONS"
PAYLOAD_VERSION = 1


def encode_payload(payload: dict[str, Any]) -> str:
    """The marked line: marker, length and checksum of the data, then compressed base64 JSON.

    Base64 survives log viewers that re-wrap or escape JSON; the length and checksum make truncation
    by a log store obvious instead of a confusing JSON error.
    """
    data = base64.b64encode(zlib.compress(json.dumps(payload, separators=(",", ":")).encode("utf-8"))).decode()
    digest = hashlib.sha256(data.encode()).hexdigest()[:16]
    return f"{MARKER} v{PAYLOAD_VERSION} {len(data)} {digest} {data}"


def decode_payload(log: str, *, source: str = "the log") -> dict[str, Any]:
    """Return the payload of the single marked line in `log`, or say exactly what is wrong with it."""
    lines = [line.strip() for line in log.splitlines() if MARKER in line]
    # Log viewers prefix lines with timestamps; keep what follows the marker.
    marked = [line[line.index(MARKER):] for line in lines]
    if not marked:
        raise LogFormatError(f"{source} has no {MARKER} line: the collector did not finish (look at the last "
                             "lines of the log), or this is not the log of a preflight task")
    if len(set(marked)) > 1:
        raise LogFormatError(f"{source} has {len(marked)} different {MARKER} lines; expected one. "
                             "Save the log of a single run and try again")
    parts = marked[0].split(" ")
    if len(parts) != 5 or parts[1] != f"v{PAYLOAD_VERSION}":
        raise LogFormatError(f"{source}: the {MARKER} line is not in the v{PAYLOAD_VERSION} format "
                             "(a different dw-preflight version wrote it?)")
    _, _, length, digest, data = parts
    if not length.isdigit() or len(data) != int(length):
        raise LogFormatError(f"{source}: the {MARKER} line is truncated ({len(data)} of {length} characters); "
                             "the log store may cut long lines: download the full log")
    if hashlib.sha256(data.encode()).hexdigest()[:16] != digest:
        raise LogFormatError(f"{source}: the {MARKER} line is corrupted (checksum mismatch)")
    try:
        payload = json.loads(zlib.decompress(base64.b64decode(data, validate=True)).decode("utf-8"))
    except (ValueError, zlib.error) as exc:
        raise LogFormatError(f"{source}: the {MARKER} line cannot be decoded: {exc}") from None
    if not isinstance(payload, dict):
        raise LogFormatError(f"{source}: the {MARKER} payload is not an object")
    return payload


__all__ = ["MARKER", "PAYLOAD_VERSION", "decode_payload", "encode_payload"]
