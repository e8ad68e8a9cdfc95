"""The parts of a service URL the collectors and checks need: scheme, host, port, base path and Host header."""

from __future__ import annotations

import functools

# A `from` import: the SDK's background import may be loading this module at the same moment (see
# preflight/engine/redact.py).
from urllib.parse import urlsplit


class Endpoint:
    """The parts of a service URL a collector needs. `Endpoint.of(url)` parses each URL once per process."""

    @staticmethod
    @functools.lru_cache(maxsize=1024)
    def of(url: str) -> Endpoint:
        return Endpoint(url)

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.scheme = parts.scheme or "http"
        self.host = (parts.hostname or "").lower()
        self.port = parts.port or (443 if self.scheme == "https" else 80)
        self.base_path = parts.path.rstrip("/")
        default = (self.scheme, self.port) in (("http", 80), ("https", 443))
        named = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 literal keeps its brackets
        self.host_header = named if default else f"{named}:{self.port}"

    def url_at(self, address: str, path: str) -> str:
        """The request URL with the resolved address in place of the name (the name goes in Host and SNI)."""
        where = f"[{address}]" if ":" in address else address
        return f"{self.scheme}://{where}:{self.port}{self.base_path}{path}"


__all__ = ["Endpoint"]
