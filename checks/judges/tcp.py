"""Judge of the TCP connect: opened, or refused, timed out or unreachable, each with its own fix."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from preflight.engine.model import Outcome

TCP_FIXES = {
    "refused": "The address answers but nothing listens on the port: the model service may be stopped or still "
               "deploying (DataWorks > Model Service: is its status Running?), or the name points at the wrong "
               "address.",
    "timeout": "Packets are dropped on the way: a security group, a network ACL or a route blocks the path. Check "
               "the security group the model service created in the VPC and the vSwitch routes.",
    "unreachable": "There is no route to the address from here: the address is private to another network. Run "
                   "from the resource group (--from resource-group) or check the VPC routes.",
    "unreachable-no-group": "There is no route to the address from here: the address is private to another "
                            "network. Run from a machine inside that network, or check the routes to it.",
    "no-address": "DNS gave no address; fix endpoint.dns first.",
}
SUMMARIES = {"refused": "was refused", "timeout": "timed out", "unreachable": "is unreachable",
             "no-address": "had no address to try"}


def _took(observation: Mapping[str, Any]) -> str:
    """The connect's time: the kernel's handshake round trip when known, else the collector's own clock."""
    handshake, elapsed = observation.get("handshake_ms"), observation.get("elapsed_ms")
    if isinstance(handshake, (int, float)):
        return f", handshake round trip {_ms(handshake)} ms"
    if isinstance(elapsed, (int, float)):
        return f" in {_ms(elapsed)} ms"
    return ""


def _ms(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.0f}"


def judge_tcp(observation: Mapping[str, Any], *, resource_group: bool = True) -> Outcome:
    """A TCP connection to the resolved address and port opens (`resource_group`: the target names one)."""
    evidence = {key: observation.get(key) for key in ("host", "address", "port", "connected", "error", "detail",
                                                       "handshake_ms", "elapsed_ms")}
    target = f"{observation.get('address') or observation.get('host')}:{observation.get('port')}"
    if observation.get("connected"):
        return Outcome.passed(f"connected to {target}{_took(observation)}", **evidence)
    error = str(observation.get("error") or "error")
    summary = SUMMARIES.get(error, f"failed ({error})")
    fix = TCP_FIXES.get(f"{error}-no-group" if not resource_group else error) or TCP_FIXES.get(error)
    return Outcome.failed(f"TCP connect to {target} {summary}: {observation.get('detail')}",
                          fix or "See the evidence; check security groups and routes.", **evidence)


__all__ = ["TCP_FIXES", "judge_tcp"]
