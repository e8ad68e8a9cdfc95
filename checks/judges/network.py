"""Judges for the endpoint's URL, name resolution, TCP reachability and unauthenticated HTTP answer."""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

from preflight.model import Outcome

DATAWORKS_DOMAIN = re.compile(r"^(?P<id>[a-z0-9][a-z0-9-]*)\.(?P<region>[a-z]{2,}(?:-[a-z0-9]+)+)"
                              r"\.dataworks-model\.aliyuncs\.com$")
SHARED = ipaddress.ip_network("100.64.0.0/10")
VPC_RESOLVERS = "100.100.2.136 and 100.100.2.138"
ALLOWLIST_HINT = ("The model domain resolves only inside the VPCs in the model service's allowlist (DataWorks > "
                  "Resource Groups > your Serverless group > Model Service > network settings). Run the check from "
                  "the resource group (preflight run --from resource-group), or add the resource group's first VPC "
                  "to the allowlist and wait until its binding is Available.")


def is_dataworks_host(host: str) -> bool:
    return DATAWORKS_DOMAIN.match(host) is not None


def judge_url(endpoint: str, region: str, auth: str) -> Outcome:
    """The URL is well formed and, for a DataWorks model domain, plain HTTP in the target's region."""
    try:
        parts = urllib.parse.urlsplit(endpoint)
        port = parts.port
    except ValueError as exc:
        return Outcome.failed(f"malformed endpoint URL: {exc}", "Write it as http://<model-service-id>.<region>."
                              "dataworks-model.aliyuncs.com", endpoint=endpoint)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        return Outcome.failed("malformed endpoint URL: expected http://host[:port]",
                              "Copy the endpoint from DataWorks > Model Service > the service's invocation details; "
                              "it looks like http://<model-service-id>.<region>.dataworks-model.aliyuncs.com",
                              endpoint=endpoint)
    evidence: dict[str, Any] = {"endpoint": endpoint, "scheme": parts.scheme, "host": host,
                                "port": port or (443 if parts.scheme == "https" else 80)}
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


def classify_address(address: str) -> str:
    """private, shared (100.64.0.0/10, carrier-grade NAT and Alibaba Cloud internal), loopback, or public."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "invalid"
    if ip.is_loopback:
        return "loopback"
    if ip.version == 4 and ip in SHARED:
        return "shared"
    if ip.is_private or ip.is_link_local:
        return "private"
    return "public"


def judge_dns(observation: Mapping[str, Any]) -> Outcome:
    """The name resolves; for a model domain, to a private or shared address."""
    host = str(observation.get("host", ""))
    answers = [str(a) for a in observation.get("answers") or []]
    classes = {answer: classify_address(answer) for answer in answers}
    evidence = {"host": host, "answers": answers, "address_classes": classes,
                "resolver": observation.get("resolver"), "elapsed_ms": observation.get("elapsed_ms"),
                "error": observation.get("error"), "detail": observation.get("detail")}
    dataworks = is_dataworks_host(host)
    error = observation.get("error")
    if error or not answers:
        what = {"nxdomain": "does not exist (NXDOMAIN)", "no-answer": "has no address record",
                "timeout": "got no answer in time", "servfail": "could not be resolved (SERVFAIL)"}.get(
                    str(error), f"could not be resolved ({error})")
        if dataworks:
            fix = ALLOWLIST_HINT
            if observation.get("resolver") not in ("system", "override"):
                fix += f" Inside a VPC the resolvers are {VPC_RESOLVERS}."
        else:
            fix = "Check the host name, or point dns.nameservers at a resolver that knows it."
        return Outcome.failed(f"{host} {what} via resolver {observation.get('resolver')}", fix, **evidence)
    if dataworks and all(kind == "public" for kind in classes.values()):
        return Outcome.warned(f"{host} resolves to a public address ({', '.join(answers)})",
                              "A DataWorks model domain should resolve to a private PrivateLink address inside an "
                              "allowed VPC; a public answer means another resolver or a hosts entry answered.",
                              **evidence)
    kinds = ", ".join(f"{a} ({k})" for a, k in classes.items())
    return Outcome.passed(f"{host} -> {kinds} via {observation.get('resolver')}", **evidence)


TCP_FIXES = {
    "refused": "The address answers but nothing listens on the port: the model service may be stopped or still "
               "deploying (DataWorks > Model Service: status Running?), or the name points at the wrong address.",
    "timeout": "Packets are dropped on the way: a security group, a network ACL or a route blocks the path. Check "
               "the security group the model service created in the VPC and the vSwitch routes.",
    "unreachable": "There is no route to the address from here: the address is private to another network. Run "
                   "from the resource group (--from resource-group) or check the VPC routes.",
    "no-address": "DNS gave no address; fix endpoint.dns first.",
}


def judge_tcp(observation: Mapping[str, Any]) -> Outcome:
    """A TCP connection to the resolved address and port opens."""
    evidence = {key: observation.get(key) for key in ("host", "address", "port", "connected", "error", "detail",
                                                       "elapsed_ms")}
    target = f"{observation.get('address')}:{observation.get('port')}"
    if observation.get("connected"):
        return Outcome.passed(f"connected to {target} in {observation.get('elapsed_ms', 0):.0f} ms", **evidence)
    error = str(observation.get("error") or "error")
    summary = {"refused": "refused", "timeout": "timed out", "unreachable": "unreachable"}.get(error, error)
    return Outcome.failed(f"TCP connect to {target} {summary}: {observation.get('detail')}",
                          TCP_FIXES.get(error, "See the evidence; check security groups and routes."), **evidence)


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


__all__ = ["DATAWORKS_DOMAIN", "classify_address", "exchange_evidence", "is_dataworks_host", "judge_dns",
           "judge_http", "judge_tcp", "judge_url", "transport_problem"]
