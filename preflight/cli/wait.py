"""`run --wait`: re-run what did not pass, and what it blocked, until everything passes, a check that waiting cannot
change fails, or the time is spent."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from preflight.engine.model import CheckResult, RunReport, Status
from preflight.errors import UsageError

Key = tuple[str, str, str | None]  # (target, check, service)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
MAX_LISTED = 5  # failing checks named on a round's console line; the rest are counted


def parse_duration(text: str, option: str = "--wait") -> float:
    """Seconds in `90`, `90s`, `10m`, `1h` or `500ms`; anything else is a usage error naming the option."""
    match = _DURATION.match(text)
    if match is None or float(match.group(1)) <= 0:
        raise UsageError(f"{option}: expected a positive duration like 90s, 10m or 1h, got '{text}'")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def _key(result: CheckResult) -> Key:
    return (result.target, result.check, result.service)


def label(result: CheckResult) -> str:
    """`auth.key_valid on prod/qwen`, as a round's line names a check."""
    return f"{result.check} on {result.subject}"


def needs_rerun(result: CheckResult, *, strict: bool) -> bool:
    """Whether another round should run this check again: it failed or broke (warned, with --strict), or a
    dependency that did not pass blocked it."""
    if result.status in (Status.FAIL, Status.ERROR) or (strict and result.status is Status.WARN):
        return True
    return result.status is Status.SKIP and bool(result.blocked_by)


def failing(report: RunReport, *, strict: bool) -> list[CheckResult]:
    """The results that keep a run from passing (blocked skips are their causes' consequence, not listed)."""
    return [result for result in report.results
            if result.status in (Status.FAIL, Status.ERROR) or (strict and result.status is Status.WARN)]


def hopeless(report: RunReport, waitable: Callable[[str], bool], *, strict: bool) -> list[CheckResult]:
    """Failing results that waiting cannot change: a check declared not waitable, or a crash of the tool."""
    return [result for result in failing(report, strict=strict)
            if result.status is Status.ERROR or not waitable(result.check)]


def round_line(number: int, still: list[CheckResult]) -> str:
    """`round 3: 2 still failing: auth.key_valid on prod/qwen, model.listed on prod/qwen`."""
    if not still:
        return f"round {number}: everything passes"
    named = ", ".join(label(result) for result in still[:MAX_LISTED])
    more = f", and {len(still) - MAX_LISTED} more" if len(still) > MAX_LISTED else ""
    return f"round {number}: {len(still)} still failing: {named}{more}"


@dataclass
class WaitState:
    """What the rounds so far found: one entry per round, and when each check first passed."""

    duration_s: float
    interval_s: float
    rounds: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    first_passed: dict[Key, dict[str, Any]] = dataclasses.field(default_factory=dict)
    stopped: str = ""
    stopped_by: list[str] = dataclasses.field(default_factory=list)

    def record(self, number: int, at_s: float, report: RunReport, still: list[CheckResult], ran: int) -> None:
        self.rounds.append({"round": number, "at_s": round(at_s, 3), "ran": ran, "status": report.summary.status,
                            "failing": [label(result) for result in still]})
        for result in report.results:
            if result.status in (Status.PASS, Status.WARN) and _key(result) not in self.first_passed:
                self.first_passed[_key(result)] = {"round": number, "at_s": round(at_s, 3)}

    def as_dict(self) -> dict[str, Any]:
        return {"duration_s": self.duration_s, "interval_s": self.interval_s, "stopped": self.stopped,
                "stopped_by": list(self.stopped_by), "rounds": list(self.rounds),
                "first_passed": [{"target": key[0], "check": key[1], "service": key[2], **when}
                                 for key, when in self.first_passed.items()]}


RunRound = Callable[[Mapping[Key, CheckResult]], Awaitable[RunReport]]


async def wait_until_ready(run_round: RunRound, *, duration_s: float, interval_s: float,
                           waitable: Callable[[str], bool], strict: bool = False,
                           say: Callable[[str], None] = lambda line: None) -> RunReport:
    """Run rounds until nothing fails, a failure cannot change by waiting, or `duration_s` is spent.

    Each round is a fresh run (its own shared answers, so nothing memoised in one round hides a change) given
    the results that stand from the round before; the report returned is the last round's, with the history in
    its `wait`.
    """
    started = time.monotonic()
    state = WaitState(duration_s=duration_s, interval_s=interval_s)
    carried: dict[Key, CheckResult] = {}
    number = 0
    first_started_at = ""
    while True:
        number += 1
        at_s = time.monotonic() - started
        report = await run_round(dict(carried))
        first_started_at = first_started_at or report.started_at
        ran = len(report.results) - len(carried)
        still = failing(report, strict=strict)
        state.record(number, at_s, report, still, ran)
        say(round_line(number, still))
        stuck = hopeless(report, waitable, strict=strict)
        remaining = duration_s - (time.monotonic() - started)
        if not still:
            state.stopped = "passed"
        elif stuck:
            state.stopped = "cannot-wait"
            state.stopped_by = [label(result) for result in stuck]
            say("stopped waiting: waiting cannot change " + ", ".join(state.stopped_by))
        elif remaining <= interval_s:
            state.stopped = "time"
            say(f"stopped waiting: --wait {duration_s:g} s spent after {number} round(s)")
        if state.stopped:
            # The report spans the whole wait: it started with the first round and lasted until now.
            return dataclasses.replace(report, wait=state.as_dict(), started_at=first_started_at,
                                       duration_ms=round((time.monotonic() - started) * 1000, 3))
        carried = {_key(result): result for result in report.results if not needs_rerun(result, strict=strict)}
        await asyncio.sleep(interval_s)


__all__ = ["WaitState", "failing", "hopeless", "label", "needs_rerun", "parse_duration", "round_line",
           "wait_until_ready"]
