"""The `-v` trace of cloud calls: each call's action, request fields and answer, redacted, on one line."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from preflight.errors import CloudError

TRACE_VALUE_CHARS = 200
_TRACE: Callable[[str], None] | None = None  # where `-v` prints each call (set_trace)


def set_trace(write: Callable[[str], None] | None) -> None:
    """Hand every cloud call's action, request fields and answer (redacted) to `write`, or stop (`-v`)."""
    global _TRACE
    _TRACE = write


def trace(where: str, request: Any, answer: dict[str, Any] | CloudError) -> None:
    """One line per call for `-v`: the raw answers a user with a real account checks the assumptions against."""
    write = _TRACE
    if write is None:
        return
    import json

    from preflight.engine.redact import REDACTOR

    def short(value: Any) -> Any:  # a task's script would fill the screen; its start says what it is
        if isinstance(value, str) and len(value) > TRACE_VALUE_CHARS:
            return f"{value[:TRACE_VALUE_CHARS]}... ({len(value)} characters)"
        if isinstance(value, dict):
            return {key: short(item) for key, item in value.items()}
        if isinstance(value, list):
            return [short(item) for item in value]
        return value

    # Redacted before shortening: a secret cut in half would no longer be recognised.
    fields = short(REDACTOR.value(request.to_map())) if request is not None and hasattr(request, "to_map") else {}
    if isinstance(answer, CloudError):
        said: Any = {"error": answer.code, "message": str(answer), "http_status": answer.status_code,
                     "request_id": answer.request_id}
    else:
        said = short(REDACTOR.value(answer))
    text = f"cloud {where} {json.dumps(fields, default=str)} -> {json.dumps(said, default=str)}"
    write(REDACTOR.text(text))


__all__ = ["set_trace", "trace"]
