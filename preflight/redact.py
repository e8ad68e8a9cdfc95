"""The one place that knows what a secret looks like, and removes it from everything that leaves."""

from __future__ import annotations

import base64
import json
import re
import threading
import urllib.parse
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "[REDACTED]"
# Environment variables whose values are secrets wherever they show up; registered when the CLI starts.
SECRET_ENVIRONMENT = (("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "access_key_secret"),
                      ("ALIBABA_CLOUD_SECURITY_TOKEN", "security_token"))

_SECRET_FIELD = re.compile(
    r"(authorization|api[_-]?key|access[_-]?key[_-]?secret|secret|security[_-]?token|sts[_-]?token|"
    r"password|passwd|credential)$",
    re.IGNORECASE,
)
_MASKED = re.escape(MASK)
_VALUE_END = r"\s\"'<>,;}&"
_PLACEHOLDER = r"[^\s\"'<>]{0,6}\.\.\.(?![^\s\"'<>])"
# Each alternative is one kind of secret-shaped text; the group name says which, and REDACTIONS.txt reports it.
# One combined pattern means one pass over the text however many shapes there are.
_SHAPES: dict[str, tuple[str, str]] = {
    # "Authorization": "<anything>" in JSON or a repr: everything up to the closing quote, escapes included.
    "auth_quoted": (r"(?i:authorization[\"']?\s*[:=]\s*)(?P<auth_quote>[\"'])(?:\\.|(?!(?P=auth_quote))[^\\\r\n])*",
                    "Authorization header"),
    # A header line "Authorization: <scheme> <credential>" of any scheme, or a raw key. A placeholder written
    # in prose and remediations ("Authorization: DW-...") is not a secret and stays readable.
    "auth_line": (rf"(?i:authorization\s*[:=][ \t]*)(?!{_MASKED}|[\"'])(?:[A-Za-z][A-Za-z0-9-]{{1,30}}[ \t]+)?"
                  rf"(?!{_MASKED}|{_PLACEHOLDER})[^\s\"'<>]+", "Authorization header"),
    "bearer": (rf"(?i:\bbearer[ \t]+)(?!{_MASKED}|{_PLACEHOLDER})[A-Za-z0-9._~+/=-]{{6,}}", "Bearer token"),
    "dw_key": (r"\bDW-[A-Za-z0-9][A-Za-z0-9_-]{5,}", "DataWorks API key"),
    "url_query": (r"(?i:[?&](?:api[_-]?key|key|token|access[_-]?token|signature|security[_-]?token|secret|"
                  rf"access[_-]?key[_-]?secret|password)=)(?!{_MASKED})[^&#{_VALUE_END}]+", "secret in a URL query"),
    "url_userinfo": (rf"(?i:\b[a-z][a-z0-9+.-]{{0,15}}://[^/:@{_VALUE_END}]{{0,64}}:)(?!{_MASKED})"
                     rf"[^/@{_VALUE_END}]{{1,256}}(?=@)",
                     "password in a URL"),
    "security_token": (rf"(?i:security[_-]?token[\"']?\s*[:=]\s*[\"']?)(?!{_MASKED})[^{_VALUE_END}]+", "STS token"),
    # Alibaba Cloud STS tokens start with CAIS and are long base64.
    "sts_shape": (r"\bCAIS[A-Za-z0-9+/=_.-]{20,}", "STS token"),
    "ak_secret": (rf"(?i:access[_-]?key[_-]?secret[\"']?\s*[:=]\s*[\"']?)(?!{_MASKED})[^{_VALUE_END}]+",
                  "AccessKey secret"),
    # AccessKey ids are not secret on their own, but shown only by their first four characters.
    "ak_id": (r"\b(?:LTAI|STS\.)[A-Za-z0-9]{8,40}\b", "AccessKey id (first 4 characters kept)"),
}
SHAPE_KINDS = frozenset(kind for _, kind in _SHAPES.values())
_PREFIXED = {"auth_quoted", "auth_line", "bearer", "url_query", "url_userinfo", "security_token", "ak_secret"}
_SHAPE_PATTERN = re.compile("|".join(f"(?P<{name}>{pattern})" for name, (pattern, _) in _SHAPES.items()))
# Where the secret part of a prefixed match starts: after the name, separator and opening quote.
_PREFIX_END = {
    "auth_quoted": re.compile(r"(?i)authorization[\"']?\s*[:=]\s*[\"']"),
    "auth_line": re.compile(r"(?i)authorization\s*[:=][ \t]*"),  # the scheme word is masked with the credential
    "bearer": re.compile(r"(?i)bearer[ \t]+"),
    "url_query": re.compile(r"[?&][^=]*="),
    "url_userinfo": re.compile(r"(?i)[a-z][a-z0-9+.-]*://[^:]*:"),
    "security_token": re.compile(r"(?i)security[_-]?token[\"']?\s*[:=]\s*[\"']?"),
    "ak_secret": re.compile(r"(?i)access[_-]?key[_-]?secret[\"']?\s*[:=]\s*[\"']?"),
}


def mask_access_key_id(access_key_id: str) -> str:
    """Show an AccessKey id as its first four characters, which is how the console shows it too."""
    return access_key_id[:4] + "****" if access_key_id else ""


def _variants(secret: str) -> set[str]:
    """The ways a value is commonly re-encoded on its way into a URL, a JSON body or a header."""
    raw = secret.encode("utf-8")
    return {secret, secret.strip(), urllib.parse.quote(secret, safe=""), urllib.parse.quote(secret),
            urllib.parse.quote_plus(secret), json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
            base64.b64encode(raw).decode().rstrip("="), base64.urlsafe_b64encode(raw).decode().rstrip("=")}


class Redactor:
    """Replaces registered secret values and secret-shaped text with a mask."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: dict[str, str] = {}
        self._ordered: list[tuple[str, str]] | None = None
        self.hits: dict[str, int] = {}

    def add(self, secret: str | None, label: str = "secret") -> None:
        """Remember a value to mask wherever it appears (also URL-, JSON- and base64-encoded)."""
        if not secret or len(secret.strip()) < 4:
            return
        with self._lock:
            for variant in _variants(secret):
                # Short encodings (base64 of a 4-character value) would match ordinary words.
                if len(variant) >= 4 and variant not in self._secrets:
                    self._secrets[variant] = label
                    self._ordered = None

    def labels(self) -> list[str]:
        with self._lock:
            return sorted(set(self._secrets.values()))

    def _registered(self) -> list[tuple[str, str]]:
        with self._lock:
            if self._ordered is None:
                # Longest first, so a secret is masked whole rather than around a shorter one inside it.
                self._ordered = sorted(self._secrets.items(), key=lambda item: -len(item[0]))
            return self._ordered

    def scan(self, value: str) -> tuple[str, Counter[str]]:
        """Mask `value` and count what was masked by kind (registered labels and secret shapes)."""
        found: Counter[str] = Counter()
        if not value:
            return value, found
        # A substring search per registered value is a fast C scan; a regex alternation of them is not.
        for secret, label in self._registered():
            if secret in value:
                found[label] += value.count(secret)
                value = value.replace(secret, MASK)
        value = _SHAPE_PATTERN.sub(lambda match: _shape(match, found), value)
        if found:
            with self._lock:
                for label, count in found.items():
                    self.hits[label] = self.hits.get(label, 0) + count
        return value, found

    def text(self, value: str) -> str:
        """Mask every known secret and every secret-shaped substring of `value`."""
        return self.scan(value)[0]

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


def _shape(match: re.Match[str], found: Counter[str]) -> str:
    name = match.lastgroup or ""
    if name == "auth_quote":  # the quote's own group is the last one closed inside auth_quoted
        name = "auth_quoted"
    text = match.group(0)
    found[_SHAPES[name][1]] += 1
    if name == "ak_id":
        return mask_access_key_id(text)
    if name in _PREFIXED:
        prefix = _PREFIX_END[name].match(text)
        kept = text[:prefix.end()] if prefix else ""
        return kept + MASK
    return MASK


REDACTOR = Redactor()


def register_secrets(values: Iterable[tuple[str | None, str]]) -> None:
    """Register (value, label) pairs with the process-wide redactor."""
    for secret, label in values:
        REDACTOR.add(secret, label)


def register_environment(environ: Mapping[str, str]) -> None:
    """Register the AccessKey secret and STS token of the environment, whatever command runs."""
    register_secrets((environ.get(name), label) for name, label in SECRET_ENVIRONMENT)


def redact(value: str) -> str:
    """Mask secrets in a string with the process-wide redactor."""
    return REDACTOR.text(value)


__all__ = ["MASK", "REDACTOR", "SECRET_ENVIRONMENT", "SHAPE_KINDS", "Redactor", "mask_access_key_id", "redact",
           "register_environment", "register_secrets"]
