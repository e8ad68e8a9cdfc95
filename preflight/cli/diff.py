"""`preflight diff OLD.json NEW.json`: what changed between two reports, subject by subject, as pure functions."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from preflight.errors import UsageError

SCHEMA = "preflight-report/1"
FAILING = ("fail", "error")
PASSING = ("pass", "warn")
DEFAULT_TTFT_THRESHOLD_MS = 1000.0
# The evidence fields that say what the account and the service look like, per check: (what a person calls it,
# the evidence key). Lists compare as sets: the order a resolver or an API answers in is no change.
FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "network.first_vpc": (("first VPC", "first_vpc"),),
    "network.model_allowlist": (("first VPC", "first_vpc"), ("allowed VPCs", "allowed_vpcs")),
    "endpoint.dns": (("resolved addresses", "answers"),),
    "endpoint.http": (("HTTP status", "status"),),
    "auth.key_valid": (("HTTP status", "status"),),
    "model.listed": (("model list", "served"),),
    "inference.completion": (("HTTP status", "status"),),
    "inference.chat": (("HTTP status", "status"),),
    "inference.embedding": (("embedding dimension", "dimensions"),),
}
SETS = frozenset({"allowed_vpcs", "answers", "served"})
# A failed embedding check names the size it got only in its summary ("vector 0 has 768 dimensions").
_DIMENSIONS = re.compile(r"\b(\d+) dimensions\b")


class DiffInputError(UsageError):
    """A file given to `preflight diff` is not a readable report.json."""


@dataclass(frozen=True)
class Change:
    """One difference in one check of one subject."""

    check: str
    kind: str  # now-failing, fixed, status, evidence, added, removed
    text: str


@dataclass(frozen=True)
class SubjectDiff:
    """What changed for one target or service; `state` is new, removed or changed."""

    subject: str
    state: str
    changes: tuple[Change, ...] = ()


@dataclass(frozen=True)
class ReportDiff:
    """Every subject that differs, in the new report's order, then the removed ones."""

    old: str
    new: str
    subjects: tuple[SubjectDiff, ...] = field(default_factory=tuple)

    @property
    def regressions(self) -> list[tuple[str, Change]]:
        """Checks that passed (or warned) before and fail now."""
        return [(item.subject, change) for item in self.subjects for change in item.changes
                if change.kind == "now-failing"]

    @property
    def exit_code(self) -> int:
        return 1 if self.regressions else 0


def load_report(path: str | Path) -> dict[str, Any]:
    """A report.json as data; anything else is a DiffInputError naming the file."""
    name = str(path)
    try:
        data = json.loads(Path(path).read_bytes())
    except OSError as exc:
        raise DiffInputError(f"{name}: cannot be read: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DiffInputError(f"{name}: not JSON ({exc}); give two report.json files") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or not isinstance(data.get("results"), list):
        raise DiffInputError(f"{name}: not a report.json of schema {SCHEMA}")
    for index, result in enumerate(data["results"]):
        if not isinstance(result, dict) or not isinstance(result.get("check"), str) \
                or not isinstance(result.get("target"), str) or not isinstance(result.get("status"), str):
            raise DiffInputError(f"{name}: results[{index}] is not a check result")
    return data


def _subjects(report: Mapping[str, Any]) -> dict[str, dict[str, Mapping[str, Any]]]:
    groups: dict[str, dict[str, Mapping[str, Any]]] = {}
    for result in report["results"]:
        service = result.get("service")
        subject = result["target"] if service is None else f"{result['target']}/{service}"
        groups.setdefault(subject, {})[result["check"]] = result
    return groups


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value) or "none"
    return str(value)


def _fields(result: Mapping[str, Any]) -> dict[str, Any]:
    evidence = result.get("evidence")
    found = dict(evidence) if isinstance(evidence, dict) else {}
    if result.get("check") == "inference.embedding" and "dimensions" not in found:
        size = _DIMENSIONS.search(str(result.get("summary", "")))
        if size is not None:
            found["dimensions"] = int(size.group(1))
    return found


def _evidence(check: str, old: Mapping[str, Any], new: Mapping[str, Any], ttft_threshold_ms: float) -> list[str]:
    """The changed fields that matter, as `first VPC: vpc-a -> vpc-b`."""
    before, after = _fields(old), _fields(new)
    changed = []
    for label, key in FIELDS.get(check, ()):
        if key not in before and key not in after:
            continue
        was, now = before.get(key), after.get(key)
        same = (sorted(map(str, was)) == sorted(map(str, now)) if key in SETS and isinstance(was, list)
                and isinstance(now, list) else was == now)
        if not same:
            changed.append(f"{label}: {_shown(was)} -> {_shown(now)}")
    if check == "inference.stream":
        was, now = before.get("ttft_ms"), after.get("ttft_ms")
        if isinstance(was, int | float) and isinstance(now, int | float) and abs(now - was) > ttft_threshold_ms:
            changed.append(f"time to first token: {was:.0f} ms -> {now:.0f} ms")
    return changed


def _check_changes(check: str, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None,
                   ttft_threshold_ms: float) -> list[Change]:
    if old is None:
        assert new is not None
        return [Change(check, "added", f"new check: {new['status']}: {new.get('summary', '')}")]
    if new is None:
        return [Change(check, "removed", f"no longer run (was {old['status']})")]
    was, now = old["status"], new["status"]
    changes = []
    if now in FAILING and was not in FAILING:
        kind = "now-failing" if was in PASSING else "status"
        changes.append(Change(check, kind, f"{was} -> {now}: {new.get('summary', '')}"))
    elif was in FAILING and now not in FAILING:
        changes.append(Change(check, "fixed", f"{was} -> {now}: {new.get('summary', '')}"))
    elif was != now:
        changes.append(Change(check, "status", f"{was} -> {now}: {new.get('summary', '')}"))
    changes += [Change(check, "evidence", text) for text in _evidence(check, old, new, ttft_threshold_ms)]
    return changes


def diff_reports(old: Mapping[str, Any], new: Mapping[str, Any], *, old_name: str = "OLD", new_name: str = "NEW",
                 ttft_threshold_ms: float = DEFAULT_TTFT_THRESHOLD_MS) -> ReportDiff:
    """What changed from `old` to `new` (two loaded report.json documents)."""
    before, after = _subjects(old), _subjects(new)
    subjects = []
    for subject, checks in after.items():
        if subject not in before:
            failing = sum(result["status"] in FAILING for result in checks.values())
            subjects.append(SubjectDiff(subject, "new", (Change("-", "added", f"new subject: {len(checks)} checks, "
                                                                f"{failing} failing"),)))
            continue
        changes = []
        for check in dict.fromkeys([*before[subject], *checks]):
            changes += _check_changes(check, before[subject].get(check), checks.get(check), ttft_threshold_ms)
        if changes:
            subjects.append(SubjectDiff(subject, "changed", tuple(changes)))
    for subject, checks in before.items():
        if subject not in after:
            subjects.append(SubjectDiff(subject, "removed", (Change("-", "removed", f"no longer checked (had "
                                                                    f"{len(checks)} checks)"),)))
    return ReportDiff(old_name, new_name, tuple(subjects))


_WORDS = {"now-failing": "NOW FAILING", "fixed": "fixed", "status": "status", "evidence": "changed",
          "added": "added", "removed": "removed"}


def _verdict(result: ReportDiff) -> str:
    if not result.subjects:
        return "no changes"
    count = len(result.regressions)
    verdict = f"{count} check(s) that passed now fail" if count else "nothing that passed fails now"
    return f"{len(result.subjects)} subject(s) changed; {verdict}"


def _headline(result: ReportDiff) -> str:
    if not result.subjects:
        return f"no changes between {result.old} and {result.new}"
    return f"from {result.old} to {result.new}: {_verdict(result)}"


def render_console(result: ReportDiff) -> str:
    """Plain text, a block per subject; text from the reports is made safe for a terminal."""
    from preflight.report.console import terminal_text

    lines = [terminal_text(_headline(result))]
    for item in result.subjects:
        lines.append(terminal_text(item.subject + ("" if item.state == "changed" else f" ({item.state})")))
        for change in item.changes:
            check = "" if change.check == "-" else f"{change.check}: "
            lines.append(terminal_text(f"  {_WORDS[change.kind]:<12} {check}{change.text}"))
    return "\n".join(lines) + "\n"


def render_markdown(result: ReportDiff) -> str:
    """Markdown for a ticket or a pull request: a table per subject."""
    lines = ["# dw-preflight: what changed", "", f"`{result.old}` → `{result.new}`: {_verdict(result)}.", ""]
    for item in result.subjects:
        lines += [f"## {item.subject}" + ("" if item.state == "changed" else f" ({item.state})"), "",
                  "| change | check | what |", "|---|---|---|"]
        for change in item.changes:
            check = "" if change.check == "-" else f"`{change.check}`"
            text = change.text.replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {_WORDS[change.kind]} | {check} | {text} |")
        lines.append("")
    return "\n".join(lines)


def cmd_diff(args: argparse.Namespace) -> int:
    old, new = load_report(args.old), load_report(args.new)
    result = diff_reports(old, new, old_name=args.old, new_name=args.new, ttft_threshold_ms=args.ttft_threshold_ms)
    sys.stdout.write(render_markdown(result) if args.format == "markdown" else render_console(result))
    return result.exit_code


__all__ = ["DEFAULT_TTFT_THRESHOLD_MS", "FIELDS", "Change", "DiffInputError", "ReportDiff", "SubjectDiff",
           "cmd_diff", "diff_reports", "load_report", "render_console", "render_markdown"]
