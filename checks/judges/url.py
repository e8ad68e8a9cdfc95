"""Judge of the endpoint URL: well formed, and for a DataWorks model domain, plain HTTP in the target's region."""

from __future__ import annotations

import re
from typing import Any

from preflight.engine.model import Outcome

DATAWORKS_DOMAIN = re.compile(r"^(?P<id>[a-z0-9][a-z0-9-]*)\.(?P<region>[a-z]{2,}(?:-[a-z0-9]+)+)"
                              r"\.dataworks-model\.aliyuncs\.com$")
CONSOLE_ENDPOINT = ("Copy the endpoint from DataWorks > Model Service > the service's invocation details; it looks "
                    "like http://<model-service-id>.<region>.dataworks-model.aliyuncs.com")


def is_dataworks_host(host: str) -> bool:
    """Whether a host name is a DataWorks model-service domain."""
    return DATAWORKS_DOMAIN.match(host.lower()) is not None


def judge_url(endpoint: str, region: str, auth: str) -> Outcome:
    """The URL is well formed and, for a DataWorks model domain, plain HTTP in the target's region."""
    import urllib.parse  # here, not at the top: `preflight list` imports this module and needs none of it

    try:
        parts = urllib.parse.urlsplit(endpoint)
        port = parts.port
    except ValueError as exc:
        return Outcome.failed(f"malformed endpoint URL: {exc}", CONSOLE_ENDPOINT, endpoint=endpoint)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        return Outcome.failed("malformed endpoint URL: expected http://host[:port]", CONSOLE_ENDPOINT,
                              endpoint=endpoint)
    evidence: dict[str, Any] = {"endpoint": endpoint, "scheme": parts.scheme, "host": host, "auth": auth,
                                "port": port or (443 if parts.scheme == "https" else 80)}
    if parts.path.rstrip("/").endswith("/v1"):
        # The OpenAI SDK's base_url ends in /v1; preflight adds /v1/... itself, so the requests would 404.
        return Outcome.failed(f"the endpoint ends in {parts.path.rstrip('/')}: requests would go to /v1/v1/...",
                              "Write the endpoint without /v1 (the OpenAI SDK's base_url has it, the preflight "
                              "config's endpoint does not).", **evidence)
    match = DATAWORKS_DOMAIN.match(host)
    if match is None:
        return Outcome.warned(
            "not a DataWorks model service; checking it as a generic OpenAI-compatible endpoint",
            "Fine for LiteLLM, vLLM and similar servers (use auth: bearer for them). DataWorks model services "
            "live at http://<model-service-id>.<region>.dataworks-model.aliyuncs.com.", **evidence)
    evidence.update({"model_service_id": match.group("id"), "url_region": match.group("region"),
                     "target_region": region})
    if match.group("region") != region:
        return Outcome.failed(
            f"the endpoint is in region {match.group('region')}, the target in {region}",
            "A resource group reaches model services of its own region only: fix the endpoint or the target's "
            "region in the config.", **evidence)
    if parts.scheme == "https":
        return Outcome.warned("https on a DataWorks model domain: the service answers plain HTTP on port 80",
                              "Use http://; the traffic stays inside the VPC over PrivateLink.", **evidence)
    return Outcome.passed(f"DataWorks model service {match.group('id')} in {region}", **evidence)


__all__ = ["CONSOLE_ENDPOINT", "DATAWORKS_DOMAIN", "is_dataworks_host", "judge_url"]
