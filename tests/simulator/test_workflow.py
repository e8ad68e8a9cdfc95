"""Ad hoc workflow instances really run their script: statuses, logs, a clean environment, timeouts and faults."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from preflight.simulator.harness import Simulator
from preflight.simulator.openapi import CloudApi
from preflight.simulator.scenarios import (
    ACCESS_KEY_ID,
    ACCESS_KEY_SECRET,
    REGION,
    RESOURCE_GROUP_ID,
    WORKSPACE_ID,
    World,
    get_scenario,
)
from preflight.simulator.workflow import LOG_CAP_BYTES, TaskRun, WorkflowRunner

DONE = ("Success", "Failure")
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d INFO ")


@pytest.fixture
def runner() -> Iterator[WorkflowRunner]:
    running = WorkflowRunner({"PREFLIGHT_NAMESERVERS": "127.0.0.1:5353"}, wait_resource_s=0.01)
    yield running
    running.stop()


def finish(run: TaskRun, within_s: float = 10.0) -> list[str]:
    """Poll like a follower does; return every status seen, in order."""
    seen = [run.status]
    deadline = time.monotonic() + within_s
    while run.status not in DONE:
        assert time.monotonic() < deadline, f"task still {run.status} after {within_s} s"
        time.sleep(0.005)
        if run.status != seen[-1]:
            seen.append(run.status)
    return seen


def test_a_script_runs_and_every_status_is_visible() -> None:
    slow = WorkflowRunner({}, wait_resource_s=0.15)
    try:
        # The script runs for a moment, as real tasks do: two echoes alone can finish between two polls.
        run = slow.submit("hello", RESOURCE_GROUP_ID, "echo hello from $0\necho to stderr >&2\nsleep 0.3\n", 10)
        seen = finish(run)
    finally:
        slow.stop()
    assert seen == ["NotRun", "WaitResource", "Running", "Success"]
    lines = run.log.splitlines()
    assert all(LOG_LINE.match(line) for line in lines), run.log
    assert any(line.endswith("INFO to stderr") for line in lines)
    assert any("INFO hello from" in line for line in lines) and lines[-1].endswith("Exit code 0")
    assert run.exit_code == 0 and run.started is not None and run.finished is not None


def test_the_environment_is_clean(runner: WorkflowRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "CanarySecretMustNotReachTheTask")
    run = runner.submit("env", RESOURCE_GROUP_ID, "env | sort\n", 10)
    finish(run)
    names = {line.split(" INFO ", 1)[1].split("=", 1)[0] for line in run.log.splitlines() if "=" in line}
    assert names == {"PATH", "HOME", "LANG", "PREFLIGHT_NAMESERVERS", "PWD"}, names
    assert "CanarySecretMustNotReachTheTask" not in run.log
    assert "PREFLIGHT_NAMESERVERS=127.0.0.1:5353" in run.log


def test_a_failing_script_is_failure_with_its_exit_code(runner: WorkflowRunner) -> None:
    run = runner.submit("fails", RESOURCE_GROUP_ID, "echo about to fail\nexit 3\n", 10)
    finish(run)
    assert (run.status, run.exit_code) == ("Failure", 3)
    assert "about to fail" in run.log and run.log.splitlines()[-1].endswith("Exit code 3")


def test_the_timeout_kills_the_script_and_its_children(runner: WorkflowRunner) -> None:
    run = runner.submit("sleeps", RESOURCE_GROUP_ID, "sleep 30 &\necho child $!\nwait\necho never\n", 1)
    begun = time.monotonic()
    finish(run, within_s=8)
    assert time.monotonic() - begun < 5
    assert run.status == "Failure" and "timed out after 1 s" in run.log and "never" not in run.log
    child = int(re.search(r"child (\d+)", run.log).group(1))  # type: ignore[union-attr]
    deadline = time.monotonic() + 3
    while _alive(child):
        assert time.monotonic() < deadline, "the script's child outlived the timeout"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_endless_output_is_cut(runner: WorkflowRunner) -> None:
    run = runner.submit("chatty", RESOURCE_GROUP_ID, f"head -c {LOG_CAP_BYTES + 4096} /dev/zero | tr '\\0' x\n", 20)
    finish(run, within_s=20)
    assert run.status == "Success" and f"[log cut at {LOG_CAP_BYTES} bytes]" in run.log


@pytest.mark.parametrize(("mode", "status", "words"), [("fail", "Failure", "python3: not found"),
                                                        ("cut-lines", "Success", "x" * 1024 + "\n")])
def test_fault_modes(mode: str, status: str, words: str) -> None:
    faulty = WorkflowRunner({}, wait_resource_s=0.01, mode=mode)
    try:
        run = faulty.submit("m", RESOURCE_GROUP_ID, "printf '%02000d\\n' 0 | tr 0 x\n", 10)
        finish(run)
    finally:
        faulty.stop()
    assert run.status == status and words in run.log
    if mode == "cut-lines":
        assert "x" * 1025 not in run.log


def test_a_hanging_group_waits_for_resources_until_stopped() -> None:
    hanging = WorkflowRunner({}, wait_resource_s=0.01, mode="hang")
    run = hanging.submit("h", RESOURCE_GROUP_ID, "echo hi\n", 10)
    time.sleep(0.3)
    assert run.status == "WaitResource"
    hanging.stop()
    assert run.status == "WaitResource" and "hi" not in run.log
    with pytest.raises(ValueError, match="unknown task mode"):
        WorkflowRunner({}, mode="explode")


# --- through the API and the real SDK -------------------------------------------------------------------


def sdk(port: int) -> Any:
    from alibabacloud_dataworks_public20240518.client import Client
    from alibabacloud_tea_openapi.utils_models import Config

    return Client(Config(access_key_id=ACCESS_KEY_ID, access_key_secret=ACCESS_KEY_SECRET, region_id=REGION,
                         endpoint=f"127.0.0.1:{port}", protocol="http"))


BIZ_DATE = 1764432000000  # 2025-11-30 00:00 in Asia/Shanghai, as epoch milliseconds


def submit(port: int, script: str, *, group: str = RESOURCE_GROUP_ID, task_type: str = "DIDE_SHELL",
           timeout: int = 30) -> int:
    from alibabacloud_dataworks_public20240518 import models

    task = models.ExecuteAdhocWorkflowInstanceRequestTasks(
        client_unique_code="t1", name="preflight_probe", owner="preflight-ci", type=task_type, timeout=timeout,
        script=models.ExecuteAdhocWorkflowInstanceRequestTasksScript(content=script),
        runtime_resource=models.ExecuteAdhocWorkflowInstanceRequestTasksRuntimeResource(resource_group_id=group))
    answer = sdk(port).execute_adhoc_workflow_instance(models.ExecuteAdhocWorkflowInstanceRequest(
        project_id=int(WORKSPACE_ID), name="preflight", owner="preflight-ci", env_type="Prod", biz_date=BIZ_DATE,
        tasks=[task]))
    workflow_id: int = answer.body.workflow_instance_id
    return workflow_id


def follow(port: int, workflow_id: int) -> tuple[str, str]:
    from alibabacloud_dataworks_public20240518 import models

    client = sdk(port)
    deadline = time.monotonic() + 15
    while True:
        status = client.get_workflow_instance(models.GetWorkflowInstanceRequest(id=workflow_id)).body \
            .workflow_instance.status
        if status in DONE:
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    tasks = client.list_task_instances(models.ListTaskInstancesRequest(
        project_id=int(WORKSPACE_ID), bizdate=BIZ_DATE, workflow_instance_id=workflow_id)).body.paging_info \
        .task_instances
    assert len(tasks) == 1 and tasks[0].status == status
    log = client.get_task_instance_log(models.GetTaskInstanceLogRequest(id=tasks[0].id)).body.task_instance_log
    return status, log


def test_the_sdk_runs_a_tiny_script_and_reads_its_log_back() -> None:
    with Simulator(get_scenario("healthy")) as simulator:
        workflow_id = submit(simulator.cloud_port, "echo PREFLIGHT-OBSERVATIONS '{\"ok\": true}'\n"
                                                   "echo \"dns=$PREFLIGHT_NAMESERVERS\"\n")
        status, log = follow(simulator.cloud_port, workflow_id)
        dns_port = simulator.dns_port
    assert status == "Success"
    marked = next(line for line in log.splitlines() if "PREFLIGHT-OBSERVATIONS" in line)
    assert json.loads(marked.split("PREFLIGHT-OBSERVATIONS ", 1)[1]) == {"ok": True}
    assert f"dns=127.0.0.1:{dns_port}" in log


def test_bad_submissions_are_refused() -> None:
    from alibabacloud_tea_openapi.exceptions import ClientException

    api = CloudApi(World())
    port = api.start()
    try:
        for kwargs, code in (({"group": "Serverless_res_group_not_ours"}, "Invalid.ResourceGroup.NotFound"),
                             ({"task_type": "PYTHON"}, "InvalidParameter")):
            with pytest.raises(ClientException) as caught:
                submit(port, "echo hi\n", **kwargs)  # type: ignore[arg-type]
            assert caught.value.code == code
        assert api.workflows.tasks == {}, "a refused submission ran nothing"
    finally:
        api.stop()


def test_a_failing_group_is_seen_by_the_follower() -> None:
    api = CloudApi(replace(World(), task_mode="fail"))
    port = api.start()
    try:
        status, log = follow(port, submit(port, "echo hi\n"))
    finally:
        api.stop()
    assert status == "Failure" and "python3: not found" in log


def test_stop_kills_running_tasks() -> None:
    api = CloudApi(World())
    port = api.start()
    run = api.workflows.by_workflow(submit(port, "sleep 30\n"))
    assert run is not None
    deadline = time.monotonic() + 5
    while run.status != "Running":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.1)
    begun = time.monotonic()
    api.stop()
    finish(run, within_s=5)
    assert time.monotonic() - begun < 3 and run.status == "Failure"
