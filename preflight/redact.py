"""The one place that knows what a secret looks like, and removes it from everything that leaves."""

from __future__ import annotations

import re
import threading
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "[REDACTED]"

_SECRET_FIELD = re.compile(
    r"(authorization|api[_-]?key|access[_-]?key[_-]?secret|secret|security[_-]?token|sts[_-]?token|"
    r"password|passwd|credential)$",
    re.IGNORECASE,
)
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Header lines, JSON pairs and repr()s of Authorization values, whatever the scheme.
    (re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)(?:bearer\s+|acs3-hmac-sha256\s+)?[^\s\"',}]+"),
     r"\1" + MASK),
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{6,}"), "Bearer " + MASK),
    # DataWorks model-service keys start with DW; they are long and never ordinary words.
    (re.compile(r"\bDW-[A-Za-z0-9][A-Za-z0-9_-]{5,}"), MASK),
    (re.compile(r"(?i)([?&](?:api[_-]?key|key|token|access_token|signature)=)[^&\s\"']+"), r"\1" + MASK),
    (re.compile(r"(?i)(security[_-]?token[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"), r"\1" + MASK),
    (re.compile(r"(?i)(access[_-]?key[_-]?secret[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"), r"\1" + MASK),
)
_ACCESS_KEY_ID = re.compile(r"\b(LTAI|STS\.)([A-Za-z0-9]{8,40})\b")


def mask_access_key_id(access_key_id: str) -> str:
    """Show an AccessKey id as its first four characters, which is how the console shows it too."""
    return access_key_id[:4] + "****" if access_key_id else ""


class Redactor:
    """Replaces registered secret values and secret-shaped text with a mask."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: dict[str, str] = {}
        self.hits: dict[str, int] = {}

    def add(self, secret: str | None, label: str = "secret") -> None:
        """Remember a value to mask wherever it appears (also URL- and JSON-escaped)."""
        if not secret or len(secret) < 4:
            return
        variants = {secret, secret.strip(), urllib.parse.quote(secret, safe=""),
                    urllib.parse.quote_plus(secret)}
        with self._lock:
            for variant in variants:
                if len(variant) >= 4:
                    self._secrets[variant] = label

    def labels(self) -> list[str]:
        with self._lock:
            return sorted(set(self._secrets.values()))

    def text(self, value: str) -> str:
        """Mask every known secret and every secret-shaped substring of `value`."""
        if not value:
            return value
        with self._lock:
            secrets = sorted(self._secrets.items(), key=lambda item: -len(item[0]))
        for secret, label in secrets:
            if secret in value:
                value = value.replace(secret, MASK)
                self.hits[label] = self.hits.get(label, 0) + 1
        for pattern, replacement in _PATTERNS:
            value = pattern.sub(replacement, value)
        return _ACCESS_KEY_ID.sub(lambda match: match.group(1)[:4] + "****", value)

    def value(self, value: Any, key: str = "") -> Any:
        """Redact any JSON-like value; fields whose name says secret are masked whole."""
        if key and _SECRET_FIELD.search(key) and value not in (None, "", [], {}):
            if isinstance(value, str | bytes):
                return MASK
            if not isinstance(value, Mapping | list | tuple):
                return MASK
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, bytes):
            return self.text(value.decode("utf-8", "replace"))
        if isinstance(value, Mapping):
            return {str(k): self.value(v, str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(item) for item in value]
        return value

    def mapping(self, value: Mapping[str, Any]) -> dict[str, Any]:
        redacted = self.value(value)
        assert isinstance(redacted, dict)
        return redacted


REDACTOR = Redactor()


def register_secrets(values: Iterable[tuple[str | None, str]]) -> None:
    """Register (value, label) pairs with the process-wide redactor."""
    for secret, label in values:
        REDACTOR.add(secret, label)


def redact(value: str) -> str:
    """Mask secrets in a string with the process-wide redactor."""
    return REDACTOR.text(value)


__all__ = ["MASK", "REDACTOR", "Redactor", "mask_access_key_id", "redact", "register_secrets"]
