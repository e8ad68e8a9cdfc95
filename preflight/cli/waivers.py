"""Waivers: a config's accepted, expiring exceptions turn a matching fail or warn into `waived` after a run."""

from __future__ import annotations

import dataclasses
import datetime as dt
import fnmatch
from collections.abc import Sequence
from typing import Any

from preflight.config import Waiver
from preflight.engine.model import CheckResult, RunReport, Status

WAIVABLE = (Status.FAIL, Status.WARN)  # never ERROR: a crash of the tool is not a known, accepted exception


def matches(waiver: Waiver, result: CheckResult) -> bool:
    """Whether `waiver` names this result's check (an id or a glob) and, when it says so, its target and service."""
    if not fnmatch.fnmatchcase(result.check, waiver.check):
        return False
    if waiver.target is not None and not fnmatch.fnmatchcase(result.target, waiver.target):
        return False
    return waiver.service is None or (result.service is not None
                                      and fnmatch.fnmatchcase(result.service, waiver.service))


def describe(waiver: Waiver) -> str:
    """`network.privatelink on prod/* (preflight.yaml:31)`, as notes name a waiver."""
    scope = waiver.target or "*"
    if waiver.service is not None:
        scope += f"/{waiver.service}"
    where = f" ({waiver.where})" if waiver.where else ""
    return f"{waiver.check} on {scope}{where}"


def _record(waiver: Waiver, result: CheckResult) -> dict[str, Any]:
    return {"original_status": result.status.value, "check": waiver.check, "target": waiver.target,
            "service": waiver.service, "reason": waiver.reason, "until": waiver.until.isoformat(),
            "ticket": waiver.ticket, "where": waiver.where}


def apply_waivers(report: RunReport, waivers: Sequence[Waiver], today: dt.date | None = None) -> RunReport:
    """The report with every fail or warn a live waiver matches as `waived`, and notes for expired and unused ones.

    A waiver is live up to and including its `until` day. An expired waiver waives nothing and the report says so;
    one that matched nothing is a note and a warning on `config.valid`, so a stale waiver is seen and removed.
    """
    if not waivers:
        return report
    day = today or dt.date.today()
    used: set[int] = set()
    expired_hits: dict[int, list[str]] = {}
    results: list[CheckResult] = []
    for result in report.results:
        if result.status is Status.WAIVED:  # carried from an earlier round of --wait
            used.update(index for index, waiver in enumerate(waivers) if matches(waiver, result))
            results.append(result)
            continue
        if result.status in WAIVABLE:
            for index, waiver in enumerate(waivers):
                if not matches(waiver, result):
                    continue
                if waiver.until < day:
                    expired_hits.setdefault(index, []).append(f"{result.check} on {result.subject}")
                    continue
                used.add(index)
                result = dataclasses.replace(result, status=Status.WAIVED, waiver=_record(waiver, result))
                break
        results.append(result)
    notes = list(report.notes)
    for index, hits in expired_hits.items():
        waiver = waivers[index]
        notes.append(f"waiver {describe(waiver)} expired on {waiver.until.isoformat()} and no longer waives: "
                     f"{', '.join(hits)}; fix it, or renew the waiver with a new until")
    stale = [waiver for index, waiver in enumerate(waivers) if index not in used and index not in expired_hits]
    for waiver in stale:
        notes.append(f"waiver {describe(waiver)} matched no fail or warn; remove it if the problem is fixed")
    if stale:
        results = _warn_config_valid(results, stale)
    return dataclasses.replace(report, results=tuple(results), notes=tuple(notes))


def _warn_config_valid(results: list[CheckResult], stale: list[Waiver]) -> list[CheckResult]:
    """Each stale waiver becomes a warning on the `config.valid` of the target it names (else the first target)."""
    targets = [result.target for result in results if result.check == "config.valid"]
    if not targets:
        return results
    by_target: dict[str, list[Waiver]] = {}
    for waiver in stale:
        named = [target for target in targets if waiver.target and fnmatch.fnmatchcase(target, waiver.target)]
        for target in named or targets[:1]:
            by_target.setdefault(target, []).append(waiver)
    changed = []
    for result in results:
        mine = by_target.get(result.target) if result.check == "config.valid" else None
        if mine and "stale_waivers" not in result.evidence and result.status in (Status.PASS, Status.WARN):
            names = ", ".join(describe(waiver) for waiver in mine)
            summary = f"{len(mine)} waiver(s) matched no fail or warn: {names}"
            if result.status is Status.WARN:
                summary = f"{result.summary}; {summary}"
            result = dataclasses.replace(
                result, status=Status.WARN, summary=summary,
                remediation=result.remediation or "Remove waivers whose problem is fixed, so the gate sees it "
                                                  "if it comes back.",
                evidence={**result.evidence, "stale_waivers": [describe(waiver) for waiver in mine]})
        changed.append(result)
    return changed


__all__ = ["WAIVABLE", "apply_waivers", "describe", "matches"]
