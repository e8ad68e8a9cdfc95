"""The in-network task's Owner (the config's, else the caller's own from STS) and its business date."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import socket
from dataclasses import replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from preflight.cli.main import main
from preflight.config import InNetworkConfig, parse_config
from preflight.errors import CloudError, ConfigError
from preflight.probe.submit import REGION_ZONES, business_date, region_zone, task_owner
from preflight.simulator.harness import Simulator
from preflight.simulator.scenarios import CALLER_USER_ID, get_scenario

CONFIG = """
version: 1
region: cn-beijing
targets:
  - name: prod
    workspace: 4242
    resource_group: Serverless_res_group_1_2
    services: []
"""


# --- the business date ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("region", "zone"), [("cn-beijing", "Asia/Shanghai"), ("cn-wulanchabu", "Asia/Shanghai"),
                                              ("ap-southeast-1", "Asia/Singapore"), ("eu-central-1", "Europe/Berlin"),
                                              ("us-west-1", "America/Los_Angeles"), ("xx-nowhere-9", "UTC")])
def test_each_region_has_its_time_zone(region: str, zone: str) -> None:
    assert region_zone(region) == zone
    assert all(ZoneInfo(name) for name in REGION_ZONES.values())  # every zone of the table exists


@pytest.mark.parametrize(("region", "now", "expected"), [
    # 01:00 in Beijing on the 2nd is still the 1st in UTC: the business date follows Beijing.
    ("cn-beijing", dt.datetime(2026, 12, 1, 17, 0, tzinfo=dt.timezone.utc), "2026-12-01"),
    ("cn-beijing", dt.datetime(2026, 12, 1, 15, 59, tzinfo=dt.timezone.utc), "2026-11-30"),
    # Summer time: Berlin's midnight is 22:00 UTC, Los Angeles' 07:00 UTC.
    ("eu-central-1", dt.datetime(2026, 7, 15, 12, 0, tzinfo=dt.timezone.utc), "2026-07-14"),
    ("us-west-1", dt.datetime(2026, 7, 15, 3, 0, tzinfo=dt.timezone.utc), "2026-07-13"),
])
def test_the_business_date_is_yesterdays_midnight_in_the_regions_zone(region: str, now: dt.datetime,
                                                                       expected: str) -> None:
    found = business_date(region, now)
    assert found.date.isoformat() == expected and found.zone == region_zone(region)
    midnight = dt.datetime.fromtimestamp(found.ms / 1000, ZoneInfo(found.zone))
    assert midnight.date().isoformat() == expected and (midnight.hour, midnight.minute, midnight.second) == (0, 0, 0)
    assert found.ms % 1000 == 0


def test_without_a_time_zone_database_the_standard_offset_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    import zoneinfo

    def missing(name: str) -> Any:
        raise zoneinfo.ZoneInfoNotFoundError(name)

    monkeypatch.setattr(zoneinfo, "ZoneInfo", missing)
    found = business_date("cn-shanghai", dt.datetime(2026, 12, 1, 17, 0, tzinfo=dt.timezone.utc))
    assert found.date == dt.date(2026, 12, 1)
    assert found.ms == int(dt.datetime(2026, 12, 1, tzinfo=dt.timezone(dt.timedelta(hours=8))).timestamp()) * 1000


# --- the owner ------------------------------------------------------------------------------------------


class Sts:
    """A session that answers GetCallerIdentity as STS does for one kind of identity."""

    def __init__(self, answer: dict[str, Any] | CloudError) -> None:
        self.answer = answer
        self.asked: list[tuple[str, str]] = []

    async def call(self, product: str, action: str, request: Any, region: str) -> dict[str, Any]:
        self.asked.append((product, action))
        if isinstance(self.answer, CloudError):
            raise self.answer
        return self.answer


def owner_of(answer: dict[str, Any] | CloudError, owner: str | None = None) -> tuple[str, str]:
    config = parse_config(CONFIG, "unit.yaml", {})
    config = replace(config, in_network=replace(InNetworkConfig(), owner=owner))
    found = asyncio.run(task_owner(config, Sts(answer), "cn-beijing"))  # type: ignore[arg-type]
    return found.id, found.source


def test_a_ram_user_owns_the_task_by_its_user_id() -> None:
    assert owner_of({"IdentityType": "RAMUser", "AccountId": "1968", "UserId": "2169", "PrincipalId": "2169"}) == (
        "2169", "STS GetCallerIdentity UserId (RAM user)")


def test_the_root_account_owns_it_by_the_account_id() -> None:
    assert owner_of({"IdentityType": "Account", "AccountId": "1968", "UserId": "1968"}) == (
        "1968", "STS GetCallerIdentity UserId (Alibaba Cloud account)")


def test_an_assumed_role_has_no_user_id_and_owns_it_by_its_role_id() -> None:
    assert owner_of({"IdentityType": "AssumedRoleUser", "AccountId": "1968", "RoleId": "3353",
                     "PrincipalId": "3353:ci"}) == ("3353", "STS GetCallerIdentity RoleId (assumed RAM role)")


def test_the_configured_owner_wins_and_sts_is_not_asked() -> None:
    sts = Sts({"UserId": "2169"})
    config = replace(parse_config(CONFIG, "unit.yaml", {}), in_network=replace(InNetworkConfig(), owner="42"))
    found = asyncio.run(task_owner(config, sts, "cn-beijing"))  # type: ignore[arg-type]
    assert (found.id, found.source, sts.asked) == ("42", "in_network.owner", [])


def test_an_identity_without_an_id_is_a_config_error_naming_in_network_owner() -> None:
    with pytest.raises(ConfigError) as caught:
        owner_of({"IdentityType": "Federated", "AccountId": "1968"})
    assert caught.value.field == "in_network.owner" and "set in_network.owner" in str(caught.value)


def test_refused_credentials_are_left_to_cloud_credentials() -> None:
    refused = CloudError("bad signature", code="SignatureDoesNotMatch", status_code=400)
    with pytest.raises(CloudError):
        owner_of(refused)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def run_from_group(text: str, simulator: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    for name, value in simulator.environ().items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "preflight.yaml"
    path.write_text(text)
    return main(["run", "-c", str(path), "--from", "resource-group", "--format", "json", "--no-reports",
                 "--only", "resource_group.probe", "--timeout", "30"])


def test_the_caller_owns_the_submitted_task_on_the_simulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    with Simulator(get_scenario("healthy")) as simulator:
        code = run_from_group(simulator.config_text(), simulator, tmp_path, monkeypatch)
        stats = simulator.stats()
    (probe,) = [r for r in json.loads(capsys.readouterr().out)["results"] if r["check"] == "resource_group.probe"]
    assert code == 0 and probe["status"] == "pass"
    evidence = probe["evidence"]
    assert (evidence["owner"], evidence["owner_source"]) == (CALLER_USER_ID, "STS GetCallerIdentity UserId (RAM user)")
    assert f"owner {CALLER_USER_ID}, business date {evidence['biz_date']} ({evidence['biz_date_ms']})" in \
        probe["summary"]
    assert stats["cloud"]["GetCallerIdentity"] == 1 and stats["refusals"] == [] and stats["deviations"] == []


def test_without_an_owner_or_a_reachable_sts_the_run_is_a_config_error(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    with Simulator(get_scenario("healthy")) as simulator:
        text = re.sub(r"sts: '127\.0\.0\.1:\d+'", f"sts: '127.0.0.1:{closed_port()}'", simulator.config_text())
        assert "sts: '127.0.0.1:" in text
        code = run_from_group(text, simulator, tmp_path, monkeypatch)
        submitted = simulator.stats()["cloud"].get("ExecuteAdhocWorkflowInstance", 0)
    err = capsys.readouterr().err
    assert code == 2 and submitted == 0
    assert "in_network.owner is not set, and the caller's own id could not be read from STS GetCallerIdentity" in err
    assert "ConnectionError" in err and "Traceback" not in err
