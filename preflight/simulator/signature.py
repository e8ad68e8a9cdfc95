"""Verify an ACS3-HMAC-SHA256 request signature the way the Alibaba Cloud gateway does."""

from __future__ import annotations

import hashlib
import hmac
import re
import urllib.parse
from collections.abc import Mapping

_AUTHORIZATION = re.compile(r"^ACS3-HMAC-SHA256 Credential=(?P<ak>[^,]+),SignedHeaders=(?P<signed>[^,]*),"
                            r"Signature=(?P<signature>[0-9a-f]+)$")


class SignatureProblem(Exception):
    """Why a request's signature does not verify: an error code and a message, as the gateway answers."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


def canonical_query(raw_query: str) -> str:
    pairs = urllib.parse.parse_qsl(raw_query, keep_blank_values=True)
    return "&".join(f"{key}={urllib.parse.quote(value, safe='~')}" for key, value in sorted(pairs))


def canonical_request(method: str, raw_query: str, headers: Mapping[str, str], signed: list[str],
                      body_hash: str) -> str:
    lines = "".join(f"{name}:{headers.get(name, '').strip()}\n" for name in signed)
    return f"{method}\n/\n{canonical_query(raw_query)}\n{lines}\n{';'.join(signed)}\n{body_hash}"


def verify(method: str, raw_query: str, headers: Mapping[str, str], body: bytes,
           secrets: Mapping[str, str]) -> str:
    """Return the AccessKey id of a correctly signed request, or raise SignatureProblem."""
    authorization = headers.get("authorization", "")
    match = _AUTHORIZATION.match(authorization)
    if match is None:
        raise SignatureProblem("MissingAuthorization" if not authorization else "InvalidAuthorization",
                               "The Authorization header is missing or not ACS3-HMAC-SHA256.")
    access_key_id = match.group("ak")
    if access_key_id not in secrets:
        raise SignatureProblem("InvalidAccessKeyId.NotFound", "Specified access key is not found.", 404)
    body_hash = hashlib.sha256(body).hexdigest()
    if headers.get("x-acs-content-sha256", body_hash) != body_hash:
        raise SignatureProblem("InvalidContentSha256", "The x-acs-content-sha256 header does not match the body.")
    signed = match.group("signed").split(";") if match.group("signed") else []
    request = canonical_request(method, raw_query, headers, signed, body_hash)
    to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(request.encode()).hexdigest()
    expected = hmac.new(secrets[access_key_id].encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, match.group("signature")):
        raise SignatureProblem("SignatureDoesNotMatch", "Specified signature does not match our calculation.")
    return access_key_id


__all__ = ["SignatureProblem", "canonical_query", "canonical_request", "verify"]
