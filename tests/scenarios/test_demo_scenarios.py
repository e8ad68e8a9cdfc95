"""Every simulator scenario through `preflight demo`: one root cause, its dependents blocked, the rest passing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from preflight.cli.main import main
from preflight.simulator.openapi import eni_ip
from preflight.simulator.scenarios import OLD_VPC, OTHER_GROUP, RESOURCE_GROUP_ID, SCENARIOS, Scenario

# Results that are neither the root cause nor blocked by it may still skip for a stated reason.
EXPECTED_SKIP_WORDS = ("kind", "not a", "only for", "no model", "extra", "--from resource-group")


def demo(scenario: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict]:
    code = main(["demo", "--scenario", scenario, "--format", "json", "--report-dir", str(tmp_path), *extra])
    out = capsys.readouterr().out
    return code, json.loads(out)


def descendants(results: list[dict], root: str) -> set[tuple[str, str | None]]:
    """(check, service) pairs blocked, directly or not, by the root cause."""
    blocked: set[tuple[str, str | None]] = set()
    changed = True
    while changed:
        changed = False
        for item in results:
            key = (item["check"], item["service"])
            if key in blocked or item["status"] != "skip":
                continue
            if any(dep == root or any(b[0] == dep for b in blocked) for dep in item["blocked_by"]):
                blocked.add(key)
                changed = True
    return blocked


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_has_a_single_root_cause(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario: Scenario = SCENARIOS[name]
    code, report = demo(name, tmp_path, capsys)
    results = report["results"]
    problems = [r for r in results if r["status"] in ("fail", "warn", "error")]
    if scenario.root_cause is None:
        assert problems == [], [(r["check"], r["service"], r["summary"]) for r in problems]
        assert code == 0
        return
    roots = [r for r in problems if r["check"] == scenario.root_cause]
    assert roots, f"{scenario.root_cause} did not report a problem: {[(r['check'], r['summary']) for r in problems]}"
    assert {r["status"] for r in roots} == {scenario.root_status}
    others = [(r["check"], r["service"], r["status"], r["summary"]) for r in problems
              if r["check"] != scenario.root_cause]
    assert others == [], f"more than one root cause: {others}"
    blocked = descendants(results, scenario.root_cause)
    for item in results:
        if item["status"] == "skip" and (item["check"], item["service"]) not in blocked:
            assert not item["blocked_by"] or set(item["blocked_by"]) <= {b[0] for b in blocked}, item
            if not item["blocked_by"]:
                assert any(word in item["summary"] for word in EXPECTED_SKIP_WORDS), item
    assert code == (1 if scenario.root_status == "fail" else 0)
    assert report["summary"]["status"] == ("fail" if scenario.root_status == "fail" else "pass")


# What issue 19's scenarios must show besides their status: the check, and words its results must hold (summary
# and evidence of every service's result).
EXPECTED_WORDS = {
    "node-not-deployed": ("schedule.node_resource_group", ("not deployed", "daily_summarise")),
    "node-deployed-elsewhere": ("schedule.node_resource_group", (OTHER_GROUP, RESOURCE_GROUP_ID, "deployed")),
    "binding-deleted-first": ("network.first_vpc", (OLD_VPC, "Deleted")),  # shown, never chosen
    "zone-records-paged": ("network.private_dns", (eni_ip(0, 0),)),  # the model's own record, on page two
    "cloud-error-code": ("resource_group.ready", ("GetResourceGroup", "InternalError.System", "5E1C0A6B-")),
}


@pytest.mark.parametrize("name", sorted(EXPECTED_WORDS))
def test_issue_19_scenarios_show_what_they_found(name: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    check, words = EXPECTED_WORDS[name]
    _, report = demo(name, tmp_path, capsys)
    results = [r for r in report["results"] if r["check"] == check]
    assert results, f"{check} did not run"
    text = json.dumps([(r["summary"], r["evidence"]) for r in results])
    missing = [word for word in words if word not in text]
    assert not missing, f"{check} does not mention {missing}: {text[:800]}"


def test_healthy_demo_runs_every_check_and_writes_four_reports(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, report = demo("healthy", tmp_path, capsys)
    assert code == 0
    in_network_code, in_network = demo("healthy", tmp_path.parent / f"{tmp_path.name}-rg", capsys, "--from",
                                       "resource-group", "--send-key")
    assert in_network_code == 0
    ran = {r["check"] for r in report["results"] + in_network["results"] if r["status"] == "pass"}
    listed = main(["list", "--format", "json"])
    catalogue = {item["id"] for item in json.loads(capsys.readouterr().out)}
    assert listed == 0 and ran == catalogue
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junit.xml", "report.html", "report.json", "report.md"]


def test_strict_turns_a_warning_into_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = demo("stream-buffered", tmp_path, capsys, "--strict")
    assert code == 1


def test_unknown_scenario_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--scenario", "helthy"]) == 2
    assert capsys.readouterr().err == "preflight: unknown scenario 'helthy'; did you mean 'healthy'? " \
                                      "(preflight demo --list-scenarios)\n"


def test_list_scenarios_prints_one_a_line_name_first(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--list-scenarios"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(SCENARIOS)
