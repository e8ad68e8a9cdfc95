"""Judge of the unauthenticated HTTP answer, and the transport problems every HTTP exchange can have."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from preflight.engine.model import Outcome
from preflight.engine.text import shorten


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
        evidence["body_excerpt"] = shorten(excerpt, 300)
    return evidence


# What to do when a request got no HTTP answer, by the collector's error class.
NO_ANSWER_FIXES = {
    "timeout": "Check the service's load and status in DataWorks > Model Service, or raise http.total_timeout_s "
               "if it is known to be slow.",
    "reset": "Look in the service's logs for a crash or restart at that time, and at any proxy or firewall between "
             "here and it that may cut connections.",
    "connect": "TCP worked a moment ago: retry, and check the service's status and replicas in DataWorks > Model "
               "Service.",
    "protocol": "Something that does not speak HTTP/1.1 answers on this port: check the endpoint's port, and any "
                "proxy or gateway between here and the service.",
    "error": "Retry once; if it fails again, send the support bundle (preflight bundle) with this result.",
}


def detail_of(observation: Mapping[str, Any], limit: int = 160) -> str:
    """The collector's detail, short enough for a summary (the evidence keeps it whole)."""
    return shorten(str(observation.get("detail") or ""), limit)


def transport_problem(observation: Mapping[str, Any]) -> Outcome | None:
    """A failure below HTTP semantics: no answer, a reset, TLS, a redirect or a proxy's error page."""
    evidence = exchange_evidence(observation)
    error = observation.get("error")
    where = f"{observation.get('method')} {observation.get('path')}"
    if error == "tls":
        return Outcome.failed(f"{where}: TLS verification failed: {detail_of(observation)}",
                              "The server's certificate is not trusted. Use the service's http:// endpoint, or trust "
                              "your private CA with --ca-bundle FILE (verification stays on).", **evidence)
    if error and observation.get("status") is None:
        return Outcome.failed(f"{where}: {error}: {detail_of(observation)}",
                              NO_ANSWER_FIXES.get(str(error), NO_ANSWER_FIXES["error"]), **evidence)
    status = observation.get("status")
    if observation.get("redirect"):
        return Outcome.failed(
            f"{where} answered {status}, a redirect to {observation.get('redirect')} (not followed: the key "
            "is never sent to another host)",
            "A model service answers directly; a redirect means a proxy or a wrong endpoint. Copy the endpoint as "
            "DataWorks > Model Service shows it (http://, no path), or ask who runs the gateway in front of it.",
            **evidence)
    content_type = str(observation.get("content_type") or "")
    if isinstance(status, int) and status >= 500 and "html" in content_type:
        server = evidence.get("server") or "a proxy"
        return Outcome.failed(
            f"{where}: {server} answered HTTP {status} with an HTML error page: a proxy or gateway in front of "
            "the model service failed", "The model service behind the proxy is down or unreachable from the "
            "proxy: check the service's status in DataWorks > Model Service, and ask who runs the proxy or gateway "
            "named in the evidence (server) whether it can reach the service.",
            **evidence)
    return None


def judge_http(observation: Mapping[str, Any]) -> Outcome:
    """An unauthenticated request is answered by the service itself; whether the service works is the keyed
    request's to decide (auth.key_valid).

    Some OpenAI-compatible servers and gateways answer a request without a key with 404, 400 or even a plain 500
    while they serve keyed requests well, so any well-formed answer proves the endpoint reachable over HTTP. What
    fails here is an answer that is not the service's (a proxy's error page), a redirect, or none.
    """
    problem = transport_problem(observation)
    if problem is not None:
        return problem
    evidence = {**exchange_evidence(observation), "server": (observation.get("headers") or {}).get("server"),
                "body_excerpt": shorten(str(observation.get("body_excerpt") or ""), 300)}
    status = observation.get("status")
    if observation.get("error"):
        return Outcome.failed(f"the answer broke off: {observation.get('error')}: {detail_of(observation)}",
                              "A proxy or the server cut the connection mid-answer; retry, and check the service's "
                              "health and any proxy between here and it.", **evidence)
    if status in (401, 403):
        return Outcome.passed(f"reachable and guarded: HTTP {status} without a key", **evidence)
    if status == 200:
        return Outcome.warned("the service answered 200 without a key: it is open to anyone who can reach it",
                              "DataWorks model services require an API key; if this is another server, put it "
                              "behind authentication.", **evidence)
    return Outcome.passed(f"reachable: HTTP {status} without a key; the keyed request decides", **evidence)


__all__ = ["NO_ANSWER_FIXES", "detail_of", "exchange_evidence", "judge_http", "transport_problem"]
