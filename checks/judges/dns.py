"""Judge of name resolution: an answer, which resolver gave it, and what kind of address it is."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from checks.judges.url import is_dataworks_host
from preflight.engine.model import Outcome

if TYPE_CHECKING:
    import ipaddress

VPC_RESOLVERS = "100.100.2.136 and 100.100.2.138"
ALLOWLIST = ("The model domain resolves only inside the VPCs in the model service's allowlist (DataWorks > Resource "
             "Groups > your Serverless group > Model Service > network settings).")
FROM_GROUP = (" Run the check from the resource group (preflight run --from resource-group), or add the resource "
              "group's first VPC to the allowlist and wait until its binding is Available.")
NO_GROUP = (" Run the check from a machine inside one of those VPCs (an ECS instance there, for example), where "
            "the VPC resolvers answer for the domain.")
ALLOWLIST_HINT = ALLOWLIST + FROM_GROUP
# What each kind of failure is called in a summary; the detail (the resolver's or the OS's own words) follows it.
ERRORS = {"nxdomain": "does not exist (NXDOMAIN)", "no-answer": "has no address record (NODATA)",
          "servfail": "could not be resolved (SERVFAIL)", "refused": "was refused by the resolver",
          "timeout": "got no answer in time", "unreachable": "could not be resolved: resolver unreachable"}
RESOLVER_FIXES = {
    "refused": "The resolver refused to answer, or nothing listens on its port: check dns.nameservers (address and "
               "port) and that the resolver serves this network.",
    "timeout": "The resolver did not answer: check dns.nameservers and that UDP/TCP port 53 to it is open.",
    "unreachable": "No resolver could be reached from here: check the network, /etc/resolv.conf or dns.nameservers.",
    "servfail": "The resolver failed to resolve the name (SERVFAIL): check the zone's authoritative servers, or ask "
                "another resolver with dns.nameservers.",
}


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


def judge_dns(observation: Mapping[str, Any], *, resource_group: bool = True) -> Outcome:
    """The name resolves; for a model domain, to a private, shared or loopback address rather than a public one.

    `resource_group` says whether the target names one, so that only then is --from resource-group the advice.
    """
    host = str(observation.get("host") or "")
    answers = [str(a) for a in observation.get("answers") or []]
    classes = {answer: classify_address(answer) for answer in answers}
    resolver = observation.get("resolver")
    answered_by = observation.get("answered_by") or resolver
    evidence = {"host": host, "answers": answers, "address_classes": classes, "resolver": resolver,
                "answered_by": observation.get("answered_by"), "elapsed_ms": observation.get("elapsed_ms"),
                "error": observation.get("error"), "detail": observation.get("detail")}
    dataworks = is_dataworks_host(host)
    error = str(observation.get("error") or "no-answer")
    if observation.get("error") or not answers:
        what = ERRORS.get(error, f"could not be resolved ({error})")
        detail = str(observation.get("detail") or "")
        said = f": {detail}" if detail and error not in ("nxdomain", "no-answer") else ""
        if error in RESOLVER_FIXES:
            fix = RESOLVER_FIXES[error]
        elif dataworks:
            fix = ALLOWLIST + (FROM_GROUP if resource_group else NO_GROUP)
            if resolver not in ("system", "override"):
                fix += f" Inside a VPC the resolvers are {VPC_RESOLVERS}."
        else:
            fix = "Check the host name, or point dns.nameservers at a resolver that knows it."
        return Outcome.failed(f"{host} {what} via resolver {answered_by}{said}", fix, **evidence)
    if "invalid" in classes.values():
        return Outcome.failed(f"{host} resolved to something that is not an address: {', '.join(answers)}",
                              "Check dns.resolve in the config, or the resolver's record.", **evidence)
    kinds = ", ".join(f"{a} ({k})" for a, k in classes.items())
    if dataworks and all(kind == "public" for kind in classes.values()):
        return Outcome.warned(f"{host} resolves to a public address: {kinds} via {answered_by}",
                              "A DataWorks model domain should resolve to a private PrivateLink address inside an "
                              "allowed VPC; a public answer means another resolver or a hosts entry answered. "
                              f"Ask the VPC resolvers ({VPC_RESOLVERS}) with dns.nameservers"
                              + (", or run from the resource group." if resource_group else "."), **evidence)
    return Outcome.passed(f"{host} -> {kinds} via {answered_by}", **evidence)


__all__ = ["ALLOWLIST_HINT", "ERRORS", "RESOLVER_FIXES", "VPC_RESOLVERS", "classify_address", "judge_dns"]
