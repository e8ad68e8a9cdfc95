"""Judge of the unauthenticated HTTP answer, and the transport problems every HTTP exchange can have."""

from __future__ import annotations

from collections.abc import Mapping

from preflight.model import Outcome

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (README, Start-up)
if TYPE_CHECKING:
    from typing import Any


def exchange_evidence(observation: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of an HTTP exchange a person reads in a report."""
    keys = ("method", "url", "status", "reason", "content_type", "body_bytes", "body_capped", "redirect", "error",
            "detail", "elapsed_ms")
    evidence = {key: observation.get(key) for key in keys}
    server = (observation.get("headers") or {}).get("server")
    if server:
        evidence["server"] = server
    excerpt = str(observation.get("body_excerpt") or "")
    if excerpt:
        evidence["body_excerpt"] = excerpt[:300]
    return evidence


def transport_problem(observation: Mapping[str, Any]) -> Outcome | None:
    """A failure below HTTP semantics: no answer, a reset, TLS, a redirect or a proxy's error page."""
    evidence = exchange_evidence(observation)
    error = observation.get("error")
    where = f"{observation.get('method')} {observation.get('path')}"
    if error == "tls":
        return Outcome.failed(f"{where}: TLS verification failed: {observation.get('detail')}",
                              "The server's certificate is not trusted. Use the service's http:// endpoint, or trust "
                              "your private CA with --ca-bundle FILE (verification stays on).", **evidence)
    if error and observation.get("status") is None:
        fixes = {"timeout": "The server did not answer in time: check the service's load and status, or raise "
                            "http.total_timeout_s if it is known to be slow.",
                 "reset": "The connection was reset: a proxy, firewall or a crashing server cut it.",
                 "connect": "The connection failed although TCP worked a moment ago: look at the service's health."}
        return Outcome.failed(f"{where}: {error}: {observation.get('detail')}",
                              fixes.get(str(error), "See the evidence."), **evidence)
    status = observation.get("status")
    if observation.get("redirect"):
        return Outcome.failed(
            f"{where} answered {status}, a redirect to {observation.get('redirect')} (not followed: the key "
            "is never sent to another host)",
            "A model service answers directly; a redirect means a proxy or a wrong endpoint. Use the endpoint the "
            "redirect should not be needed for.", **evidence)
    content_type = str(observation.get("content_type") or "")
    if isinstance(status, int) and status >= 500 and "html" in content_type:
        server = evidence.get("server") or "a proxy"
        return Outcome.failed(
            f"{where}: {server} answered HTTP {status} with an HTML error page: a proxy or gateway in front of "
            "the model service failed", "The model service behind the proxy is down or unreachable from the "
            "proxy; check the service status in DataWorks and any HTTP proxy (HTTP_PROXY) between here and it.",
            **evidence)
    return None


def judge_http(observation: Mapping[str, Any]) -> Outcome:
    """An unauthenticated request is answered, and the service is guarded (401/403)."""
    problem = transport_problem(observation)
    if problem is not None:
        return problem
    evidence = exchange_evidence(observation)
    status = observation.get("status")
    if observation.get("error"):
        return Outcome.failed(f"the answer broke off: {observation.get('error')}: {observation.get('detail')}",
                              "See the evidence.", **evidence)
    if status in (401, 403):
        return Outcome.passed(f"reachable and guarded: HTTP {status} without a key", **evidence)
    if status == 200:
        return Outcome.warned("the service answered 200 without a key: it is open to anyone who can reach it",
                              "DataWorks model services require an API key; if this is another server, put it "
                              "behind authentication.", **evidence)
    if isinstance(status, int) and status >= 500:
        return Outcome.failed(f"the service answered HTTP {status} without a key",
                              "The service is unhealthy: check its status and logs in DataWorks > Model Service.",
                              **evidence)
    return Outcome.passed(f"reachable: HTTP {status} without a key", **evidence)


__all__ = ["exchange_evidence", "judge_http", "transport_problem"]
