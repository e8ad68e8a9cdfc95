"""The marked observations line survives a node log, and every way it can be broken has a clear message."""

from __future__ import annotations

import pytest

from preflight.errors import LogFormatError
from preflight.probe.logs import MARKER, decode_payload, encode_payload

PAYLOAD = {"version": 1, "targets": {"prod": {"qwen": {"dns": {"answers": ["10.0.0.5"]}}}}}


def log_with(*lines: str) -> str:
    return "\n".join(["2026-11-23 10:00:00 INFO starting", *lines, "2026-11-23 10:00:02 INFO exit 0"])


def test_round_trip_through_a_log_with_timestamps() -> None:
    line = encode_payload(PAYLOAD)
    assert decode_payload(log_with("2026-11-23 10:00:01 INFO " + line)) == PAYLOAD


def test_the_same_line_printed_twice_is_accepted() -> None:
    line = encode_payload(PAYLOAD)
    assert decode_payload(log_with(line, line)) == PAYLOAD


@pytest.mark.parametrize(("log", "message"), [
    (log_with("nothing here"), "has no PREFLIGHT-OBSERVATIONS line"),
    (log_with(encode_payload(PAYLOAD), encode_payload({"other": 1})), "2 different PREFLIGHT-OBSERVATIONS lines"),
    (log_with(encode_payload(PAYLOAD)[:-10]), "is truncated"),
    (log_with(encode_payload(PAYLOAD)[:-4] + "AAAA"), "checksum mismatch"),
    (log_with(f"{MARKER} v9 3 abc xyz"), "not in the v1 format"),
    (log_with(f"{MARKER} garbage"), "not in the v1 format"),
])
def test_broken_logs_say_what_is_wrong(log: str, message: str) -> None:
    with pytest.raises(LogFormatError, match=message):
        decode_payload(log, source="node.log")
