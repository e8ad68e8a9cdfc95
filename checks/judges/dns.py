"""Judge of name resolution: an answer, which resolver gave it, and what kind of address it is."""

from __future__ import annotations

import functools
from collections.abc import Mapping

from checks.judges.url import is_dataworks_host
from preflight.model import Outcome

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (README, Start-up)
if TYPE_CHECKING:
    import ipaddress
    from typing import Any

VPC_RESOLVERS = "100.100.2.136 and 100.100.2.138"
ALLOWLIST_HINT = ("The model domain resolves only inside the VPCs in the model service's allowlist (DataWorks > "
                  "Resource Groups > your Serverless group > Model Service > network settings). Run the check from "
                  "the resource group (preflight run --from resource-group), or add the resource group's first VPC "
                  "to the allowlist and wait until its binding is Available.")
ERRORS = {"nxdomain": "does not exist (NXDOMAIN)", "no-answer": "has no address record",
          "timeout": "got no answer in time", "servfail": "could not be resolved (SERVFAIL)"}


@functools.cache
def shared_network() -> ipaddress.IPv4Network:
    """100.64.0.0/10, the shared address space (ipaddress is imported on first use: `preflight list` needs none)."""
    import ipaddress

    return ipaddress.IPv4Network("100.64.0.0/10")


def classify_address(address: str) -> str:
    """private (RFC 1918, ULA, link-local), shared (100.64.0.0/10), loopback, public, or invalid."""
    import ipaddress

    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "invalid"
    if ip.is_loopback:
        return "loopback"
    # Checked before is_private: Alibaba Cloud's internal services (its VPC resolvers too) live in this block.
    if ip.version == 4 and ip in shared_network():
        return "shared"
    if ip.is_private or ip.is_link_local:
        return "private"
    return "public"


def judge_dns(observation: Mapping[str, Any]) -> Outcome:
    """The name resolves; for a model domain, to a private, shared or loopback address rather than a public one."""
    host = str(observation.get("host") or "")
    answers = [str(a) for a in observation.get("answers") or []]
    classes = {answer: classify_address(answer) for answer in answers}
    resolver = observation.get("resolver")
    evidence = {"host": host, "answers": answers, "address_classes": classes, "resolver": resolver,
                "elapsed_ms": observation.get("elapsed_ms"), "error": observation.get("error"),
                "detail": observation.get("detail")}
    dataworks = is_dataworks_host(host)
    error = observation.get("error")
    if error or not answers:
        what = ERRORS.get(str(error or "no-answer"), f"could not be resolved ({error})")
        if dataworks:
            fix = ALLOWLIST_HINT
            if resolver not in ("system", "override"):
                fix += f" Inside a VPC the resolvers are {VPC_RESOLVERS}."
        elif error == "timeout":
            fix = "The resolver did not answer: check dns.nameservers and that UDP/TCP port 53 to it is open."
        else:
            fix = "Check the host name, or point dns.nameservers at a resolver that knows it."
        return Outcome.failed(f"{host} {what} via resolver {resolver}", fix, **evidence)
    if "invalid" in classes.values():
        return Outcome.failed(f"{host} resolved to something that is not an address: {', '.join(answers)}",
                              "Check dns.resolve in the config, or the resolver's record.", **evidence)
    kinds = ", ".join(f"{a} ({k})" for a, k in classes.items())
    if dataworks and all(kind == "public" for kind in classes.values()):
        return Outcome.warned(f"{host} resolves to a public address: {kinds} via {resolver}",
                              "A DataWorks model domain should resolve to a private PrivateLink address inside an "
                              "allowed VPC; a public answer means another resolver or a hosts entry answered. "
                              f"Ask the VPC resolvers ({VPC_RESOLVERS}) with dns.nameservers, or run from the "
                              "resource group.", **evidence)
    return Outcome.passed(f"{host} -> {kinds} via {resolver}", **evidence)


__all__ = ["ALLOWLIST_HINT", "VPC_RESOLVERS", "classify_address", "judge_dns"]
