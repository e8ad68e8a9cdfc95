"""Submitting and following the collector: the request's shape, backoff, deadline, trouble, and the key's path."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from preflight.cli.main import main
from preflight.config import Config, InNetworkConfig, parse_config
from preflight.engine.redact import MASK, register_secrets
from preflight.errors import CloudError
from preflight.probe.logs import encode_payload
from preflight.probe.submit import Follower, Owner, business_date, collect
from preflight.simulator import scenarios
from preflight.simulator.harness import Simulator
from preflight.simulator.scenarios import Scenario, get_scenario

KEY = "DW-ms-unitqwen01-s3cretkeyvalue9"
CONFIG = f"""
version: 1
region: cn-beijing
targets:
  - name: prod
    workspace: 4242
    resource_group: Serverless_res_group_1_2
    services:
      - name: qwen
        kind: completion
        endpoint: http://ms-unitqwen01.cn-beijing.dataworks-model.aliyuncs.com
        api_key: {KEY}
        model: qwen3
"""
PAYLOAD = {"version": 1, "origin": "resource-group:Serverless_res_group_1_2", "python": "3.6.15",
           "targets": {"prod": {"qwen": {"dns": {"answers": ["10.0.0.5"]}, "http": {"status": 401}}}}}


def config(**in_network: Any) -> Config:
    parsed = parse_config(CONFIG, "unit.yaml", {})
    register_secrets(parsed.secrets())
    return replace(parsed, in_network=replace(InNetworkConfig(), **in_network))


class FakeDataWorks:
    """An API caller that plays DataWorks: a task walks `statuses`, then its log is `log`.

    It receives the SDK's typed request models, as the run's CloudSession does, and records their wire fields.
    """

    def __init__(self, statuses: list[str], log: str = "", *, errors: dict[str, list[CloudError]] | None = None,
                 stall_s: float = 0.0, tasks_appear: bool = True) -> None:
        self.statuses = statuses
        self.log = log
        self.errors = errors or {}
        self.stall_s = stall_s
        self.tasks_appear = tasks_appear
        self.calls: list[tuple[float, str, dict[str, Any]]] = []
        self.requests: list[Any] = []

    def status(self) -> str:
        polls = sum(1 for _, action, _ in self.calls if action in ("ListTaskInstances", "GetTaskInstance"))
        return self.statuses[min(polls, len(self.statuses)) - 1]

    async def __call__(self, action: str, request: Any) -> dict[str, Any]:
        from alibabacloud_dataworks_public20240518 import models

        assert isinstance(request, getattr(models, f"{action}Request")), (action, request)
        params = request.to_map()
        self.calls.append((time.monotonic(), action, params))
        self.requests.append(request)
        pending = self.errors.get(action)
        if pending:
            raise pending.pop(0)
        if self.stall_s and action == "GetTaskInstance":
            await asyncio.sleep(self.stall_s)
        if action == "ExecuteAdhocWorkflowInstance":
            return {"WorkflowInstanceId": 9001, "RequestId": "r1"}
        if action == "GetWorkflowInstance":
            return {"WorkflowInstance": {"Id": params["Id"], "Status": self.statuses[-1] if not self.tasks_appear
                                         else "Running"}}
        if action == "ListTaskInstances":
            tasks = [{"Id": 9002, "Status": self.status()}] if self.tasks_appear else []
            return {"PagingInfo": {"TaskInstances": tasks}}
        if action == "GetTaskInstance":
            return {"TaskInstance": {"Id": params["Id"], "Status": self.status()}}
        if action == "GetTaskInstanceLog":
            return {"TaskInstanceLog": self.log}
        raise AssertionError(action)

    def actions(self) -> list[str]:
        return [action for _, action, _ in self.calls]


CALLER = Owner("207000000000001", "STS GetCallerIdentity UserId (RAM user)")


def follow(api: FakeDataWorks, *, send_key: bool = False, seconds: float = 20.0, stages: list[str] | None = None,
           settings: Config | None = None, owner: Owner | None = CALLER) -> dict[str, Any]:
    cfg = settings or config()
    seen = stages if stages is not None else []
    follower = Follower(cfg, cfg.targets[0], api, send_key=send_key, deadline=time.monotonic() + seconds,
                        stage=lambda subject, message: seen.append(f"{subject}: {message}"), backoff=(0.01, 0.05),
                        owner=owner)
    return asyncio.run(follower.run())


def node_log(*lines: str) -> str:
    return "".join(f"2026-11-24 10:00:00 INFO {line}\n" for line in ("Running shell task", *lines, "Exit code 0"))


def test_one_shell_task_is_submitted_to_the_group_and_followed_to_its_log() -> None:
    api = FakeDataWorks(["NotRun", "WaitResource", "Running", "Success"], node_log(encode_payload(PAYLOAD)))
    stages: list[str] = []
    record = follow(api, stages=stages)
    submitted = api.calls[0][2]
    assert api.calls[0][1] == "ExecuteAdhocWorkflowInstance"
    assert submitted["ProjectId"] == 4242 and submitted["EnvType"] == "Prod"
    assert submitted["Owner"] == CALLER.id
    # BizDate: yesterday at 00:00 in the region's time zone (cn-beijing: China time), in milliseconds.
    assert submitted["BizDate"] == business_date("cn-beijing").ms
    midnight = dt.datetime.fromtimestamp(submitted["BizDate"] / 1000, ZoneInfo("Asia/Shanghai"))
    assert (midnight.hour, midnight.minute) == (0, 0)
    assert midnight.date() == dt.datetime.now(ZoneInfo("Asia/Shanghai")).date() - dt.timedelta(days=1)
    listed = [params for _, action, params in api.calls if action == "ListTaskInstances"]
    assert listed and all(params["Bizdate"] == submitted["BizDate"] for params in listed)
    from alibabacloud_dataworks_public20240518 import models

    (typed,) = api.requests[0].tasks  # the task is the SDK's sub-model, which the client encodes as JSON
    assert isinstance(typed, models.ExecuteAdhocWorkflowInstanceRequestTasks)
    assert isinstance(typed.script, models.ExecuteAdhocWorkflowInstanceRequestTasksScript)
    (task,) = submitted["Tasks"]
    assert task["Type"] == "DIDE_SHELL" and task["RuntimeResource"] == {"ResourceGroupId": "Serverless_res_group_1_2"}
    assert task["Script"]["Content"].startswith("#!/bin/sh") and "python3 -" not in task["Script"]["Content"]
    assert "PY=python3" in task["Script"]["Content"] and 10 <= task["Timeout"] <= 20
    assert task["ClientUniqueCode"].startswith("preflight_prod_") and task["Owner"] == CALLER.id
    assert KEY not in json.dumps(submitted["Tasks"])
    assert {"GetWorkflowInstance", "ListTaskInstances", "GetTaskInstance"} <= set(api.actions())
    assert api.actions()[-1] == "GetTaskInstanceLog"
    assert api.calls[-1][2] == {"Id": 9002, "RunNumber": 1}
    assert record["status"] == "Success" and record["payload"] == PAYLOAD
    assert record["statuses"] == ["NotRun", "WaitResource", "Running", "Success"]
    assert record["workflow_instance_id"] == 9001 and record["task_instance_id"] == 9002
    assert (record["owner"], record["owner_source"]) == (CALLER.id, CALLER.source)
    assert (record["biz_date"], record["biz_date_ms"]) == (midnight.date().isoformat(), submitted["BizDate"])
    assert [stage.split(": ", 1)[1].split(" (")[0] for stage in stages] == [
        "collector submitted to Serverless_res_group_1_2", "submitted, not started yet",
        "waiting for resources of the group", "running", "success", "log read"]


def test_the_owner_task_type_and_key_go_where_they_are_configured() -> None:
    api = FakeDataWorks(["Success"], node_log(encode_payload(PAYLOAD)))
    follow(api, send_key=True, settings=config(owner="207947397706614299", task_type="SHELL", python="python3.8"),
           owner=None)
    submitted = api.calls[0][2]
    (task,) = submitted["Tasks"]
    assert submitted["Owner"] == task["Owner"] == "207947397706614299"
    assert task["Type"] == "SHELL" and "PY=python3.8" in task["Script"]["Content"]
    assert KEY in task["Script"]["Content"]  # --send-key: the key travels inside the script, and only there
    assert all(KEY not in json.dumps(params) for _, action, params in api.calls[1:])


def test_polling_backs_off_up_to_a_ceiling() -> None:
    api = FakeDataWorks(["Running"] * 12 + ["Success"], node_log(encode_payload(PAYLOAD)))
    follow(api)
    polls = [at for at, action, _ in api.calls if action == "GetTaskInstance"]
    gaps = [later - earlier for earlier, later in itertools.pairwise(polls)]
    assert gaps[2] > gaps[0] * 1.5, gaps  # grows
    assert max(gaps) < 0.05 + 0.04, gaps  # but never past the ceiling (plus scheduling slack)


def test_a_task_that_never_ends_is_a_timeout_with_its_log_tail_redacted() -> None:
    api = FakeDataWorks(["WaitResource"] * 3 + ["Running"], node_log(*(f"line {n}" for n in range(40)),
                                                                      f"curl -H 'Authorization: Bearer {KEY}'"))
    started = time.monotonic()
    record = follow(api, seconds=0.6)
    assert time.monotonic() - started < 0.6 + 1.0
    assert record["status"] == "Timeout" and record["statuses"] == ["WaitResource", "Running"]
    tail = record["log_tail"]
    assert len(tail) == 20 and tail[-1] == "2026-11-24 10:00:00 INFO Exit code 0"
    assert KEY not in json.dumps(record) and any(MASK in line for line in tail)


def test_a_stalled_api_answer_does_not_hold_the_run_past_its_deadline() -> None:
    api = FakeDataWorks(["Running"], stall_s=3.0)
    started = time.monotonic()
    record = follow(api, seconds=0.5)
    assert time.monotonic() - started < 0.5 + 1.0
    assert record["status"] == "Timeout"


def test_a_failed_task_keeps_its_status_and_last_lines() -> None:
    api = FakeDataWorks(["Running", "Failure"], node_log("python3: command not found"))
    record = follow(api)
    assert record["status"] == "Failure" and "payload" not in record
    assert "python3: command not found" in record["log_tail"][-2]


def test_a_workflow_that_fails_before_its_task_appears_is_reported_without_a_log() -> None:
    api = FakeDataWorks(["Failure"], tasks_appear=False)
    record = follow(api)
    assert record["status"] == "Failure" and record["log_tail"] == [] and "GetTaskInstanceLog" not in api.actions()


def test_throttling_while_following_is_asked_again_and_access_denied_is_not() -> None:
    throttled = CloudError("Throttling.User", code="Throttling.User", status_code=400)
    api = FakeDataWorks(["Running", "Success"], node_log(encode_payload(PAYLOAD)),
                        errors={"GetTaskInstance": [throttled, throttled], "GetTaskInstanceLog": [
                            CloudError("server busy", code="ServiceUnavailable", status_code=503)]})
    record = follow(api)
    assert record["status"] == "Success" and record["transient_errors"] == 2 and record["payload"] == PAYLOAD
    denied = CloudError("You are not authorized", code="Forbidden.Access", status_code=403,
                        action="dataworks:GetTaskInstanceLog", auth_action="dataworks:GetTaskInstanceLog")
    api = FakeDataWorks(["Success"], errors={"GetTaskInstanceLog": [denied]})
    record = follow(api)
    assert record["status"] == "Unfollowed" and record["auth_action"] == "dataworks:GetTaskInstanceLog"
    assert record["workflow_instance_id"] == 9001 and "You are not authorized" in record["problem"]


@pytest.mark.parametrize(("log", "problem"), [
    (node_log("all done"), "has no PREFLIGHT-OBSERVATIONS line"),
    (node_log(encode_payload(PAYLOAD)[:60]), "is truncated"),
    (node_log(encode_payload(PAYLOAD), encode_payload({**PAYLOAD, "python": "3.12"})), "2 different"),
    (node_log(encode_payload({**PAYLOAD, "targets": {"staging": {}}})), "not for target prod (they are for: staging)"),
    (node_log(encode_payload({**PAYLOAD, "targets": ["prod"]})), "not for target prod"),
])
def test_a_successful_task_with_a_bad_marked_line_is_unreadable_not_a_crash(log: str, problem: str) -> None:
    record = follow(FakeDataWorks(["Success"], log))
    assert record["status"] == "LogUnreadable" and problem in record["problem"], record
    assert "payload" not in record and record["log_tail"]


@pytest.fixture(scope="module")
def healthy() -> Iterator[Simulator]:
    with Simulator(get_scenario("healthy")) as simulator:
        yield simulator


def test_with_the_key_it_rides_in_the_stored_script_and_never_in_the_task_log(healthy: Simulator) -> None:
    from preflight.cloud.session import close_sessions, open_session

    env = healthy.environ()
    cfg = parse_config(healthy.config_text(), "sim.yaml", env)
    keys = [key for name, key in env.items() if name.startswith("DW_DEMO_")]
    stages: list[str] = []
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        found = asyncio.run(collect(cfg, list(cfg.targets), send_key=True, deadline=time.monotonic() + 60,
                                    stage=lambda subject, message: stages.append(message)))
        record = found.observations[("demo", "")]["probe"]
        assert record["status"] == "Success", record
        session = open_session(cfg)  # the session collect() used, still open for the run's checks
        try:
            answer = asyncio.run(session.call("dataworks", "GetTaskInstanceLog",
                                              {"id": record["task_instance_id"], "run_number": 1}, cfg.region))
        finally:
            close_sessions()
        log = answer["TaskInstanceLog"]
    assert "PREFLIGHT-OBSERVATIONS" in log
    assert not [key for key in keys if key in log]
    cloud = next(server for server in healthy._servers if type(server).__name__ == "CloudApi")
    script = cloud.workflows.tasks[record["task_instance_id"]].script  # type: ignore[attr-defined]
    assert all(key in script for key in keys)
    assert found.observations[("demo", "qwen")]["models"]["status"] == 200
    assert found.origins == {"demo": f"resource-group:{healthy.world.resource_group_id}"}
    # Polled at 1, 2, 4 ... s (issue 21), the simulator's short task is seen submitted and then done.
    assert any(stage.startswith("log read") for stage in stages) and "success" in stages


def test_without_the_key_key_checks_that_cannot_reach_the_endpoint_from_here_skip_honestly(
        healthy: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Locally the model domain does not resolve (a resolver that is not there), as on a laptop outside the
    # VPC; the resource group's collector uses the simulator's DNS and sees it.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        nowhere = probe.getsockname()[1]
    text = re.sub(r"nameservers: \['127\.0\.0\.1:\d+'\]", f"nameservers: ['127.0.0.1:{nowhere}']",
                  healthy.config_text())
    assert str(nowhere) in text
    path = tmp_path / "preflight.yaml"
    path.write_text(text)
    for name, value in healthy.environ().items():
        monkeypatch.setenv(name, value)
    code = main(["run", "-c", str(path), "--from", "resource-group", "--format", "json", "--no-reports",
                 "--timeout", "60"])
    report = json.loads(capsys.readouterr().out)
    results = {(r["check"], r["service"]): r for r in report["results"]}
    for service in ("qwen", "qwen-chat", "bge-m3"):
        for check in ("endpoint.dns", "endpoint.tcp", "endpoint.http"):
            assert results[(check, service)]["status"] == "pass", results[(check, service)]
            assert results[(check, service)]["origin"].startswith("resource-group:")
        keyed = [r for (check, name), r in results.items() if name == service
                 and check.startswith(("auth.key_valid", "model.listed", "inference."))]
        assert keyed and all(r["status"] == "skip" for r in keyed), keyed
        key_valid = results[("auth.key_valid", service)]
        assert "--send-key" in key_valid["summary"] and "not reachable from here" in key_valid["summary"]
    assert code == 0
    assert any("--send-key" in note for note in report["notes"])


@pytest.mark.parametrize(("denied", "words"), [
    ("dataworks:ExecuteAdhocWorkflowInstance", "the collector was not submitted"),
    ("dataworks:GetTaskInstanceLog", "submitted but could not be followed"),
    ("dataworks:GetWorkflowInstance", "submitted but could not be followed"),
])
def test_a_refused_action_is_a_failure_that_names_it(denied: str, words: str, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    refused = Scenario(f"refused-{denied}", f"the RAM user may not call {denied}",
                       world=replace(scenarios.World(), ram_denied=frozenset({denied})))
    monkeypatch.setitem(scenarios.SCENARIOS, refused.name, refused)
    code = main(["demo", "--scenario", refused.name, "--from", "resource-group", "--format", "json", "--no-reports",
                 "--only", "resource_group.probe", "--timeout", "30"])
    report = json.loads(capsys.readouterr().out)
    probe = next(r for r in report["results"] if r["check"] == "resource_group.probe")
    assert code == 1 and probe["status"] == "fail" and words in probe["summary"], probe
    assert probe["evidence"]["auth_action"] == denied and denied in probe["summary"]


def test_the_follower_and_the_checks_share_one_cloud_session(monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """--from resource-group submits and follows through the run's session; the checks then use the same
    credentials, clients and threads, and the command closes it at the end."""
    from preflight.cloud import session as cloud

    sessions: list[cloud.CloudSession] = []
    real_init = cloud.CloudSession.__init__

    def counted(self: cloud.CloudSession, settings: Any) -> None:
        sessions.append(self)
        real_init(self, settings)

    monkeypatch.setattr(cloud.CloudSession, "__init__", counted)
    code = main(["demo", "--from", "resource-group", "--format", "json", "--no-reports", "--timeout", "60"])
    report = json.loads(capsys.readouterr().out)
    statuses = {(r["check"], r["service"]): r["status"] for r in report["results"]}
    assert code == 0 and statuses[("resource_group.probe", None)] == "pass"
    assert statuses[("network.first_vpc", None)] == "pass"
    assert len(sessions) == 1 and not cloud._OPEN
    assert sessions[0]._pool._shutdown  # closed with the command
