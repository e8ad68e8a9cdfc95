"""The SDK worker process: a run's cloud calls happen there, and a worker that dies or never starts is a CloudError."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from preflight import cloud
from preflight.cloud_worker import CloudWorker
from preflight.config import CloudConfig, parse_config
from preflight.errors import WORKER_EXITED, CloudError
from preflight.redact import redact, register_secrets
from preflight.simulator.harness import Simulator
from preflight.simulator.openapi import CloudApi
from preflight.simulator.scenarios import (
    ACCESS_KEY_ID,
    ACCESS_KEY_SECRET,
    RESOURCE_GROUP_ID,
    WORKSPACE_ID,
    World,
    get_scenario,
)


@pytest.fixture(autouse=True)
def access_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", ACCESS_KEY_SECRET)
    monkeypatch.delenv("ALIBABA_CLOUD_SECURITY_TOKEN", raising=False)


@pytest.fixture
def api() -> Iterator[CloudApi]:
    server = CloudApi(World(), faults=frozenset({"get-project-timeout"}))
    server.start()
    yield server
    server.stop()


def cloud_config(port: int, read_timeout_ms: int = 20000) -> CloudConfig:
    endpoint = f"127.0.0.1:{port}"
    return parse_config(
        "version: 1\nregion: cn-beijing\n"
        f"cloud: {{endpoint: '{endpoint}', protocol: http, connect_timeout_ms: 1000, "
        f"read_timeout_ms: {read_timeout_ms}}}\n"
        f"targets:\n  - name: t\n    workspace: '{WORKSPACE_ID}'\n", "test.yaml").cloud


def test_a_worker_killed_mid_call_fails_that_call_and_every_later_one(api: CloudApi) -> None:
    worker = CloudWorker()
    try:
        worker.configure(cloud_config(api.port))
        assert worker.identity(timeout=60).access_key_id == ACCESS_KEY_ID[:4] + "****"
        pending = worker.submit("dataworks", "GetProject", {"Id": WORKSPACE_ID}, "cn-beijing", "GET")
        deadline = time.monotonic() + 10
        while not api.calls.get("GetProject") and time.monotonic() < deadline:  # the call is on the wire
            time.sleep(0.01)
        os.kill(worker.pid, signal.SIGKILL)
        began = time.monotonic()
        with pytest.raises(CloudError) as caught:
            pending.result(timeout=10)
        assert time.monotonic() - began < 5  # not the 20 s read timeout: the worker's end is noticed at once
        assert caught.value.code == WORKER_EXITED and "ended unexpectedly" in str(caught.value)
        with pytest.raises(CloudError) as later:
            worker.call("dataworks", "ListNetworks", {"ResourceGroupId": "x"}, "cn-beijing")
        assert later.value.code == WORKER_EXITED
    finally:
        worker.close()


def test_an_answer_for_a_call_its_asker_gave_up_on_is_dropped(api: CloudApi,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A check that times out cancels its wait; the worker's late answer must not break the reader thread."""
    import asyncio
    import threading

    crashes: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: crashes.append(args.exc_value))
    worker = CloudWorker()
    try:
        worker.configure(cloud_config(api.port, read_timeout_ms=500))

        async def give_up() -> None:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(worker.acall("dataworks", "GetProject", {"Id": WORKSPACE_ID}, "cn-beijing"),
                                       0.05)

        asyncio.run(give_up())
        time.sleep(1.5)  # the worker's Timeout answer arrives for a cancelled future
        # The reader still works: the next call gets its own answer.
        body = worker.submit("dataworks", "GetResourceGroup", {"Id": RESOURCE_GROUP_ID}, "cn-beijing", "GET"
                             ).result(timeout=20)
        assert RESOURCE_GROUP_ID in json.dumps(body) and api.calls["GetProject"] == 1
    finally:
        worker.close()
    assert crashes == []


def test_a_worker_that_cannot_start_says_why_without_secrets() -> None:
    secret = "worker-start-canary-8c1f2e"
    register_secrets([(secret, "test secret")])
    script = f"import sys; print('not json'); sys.stderr.write('ImportError: no SDK here, key {secret}'); sys.exit(3)"
    worker = CloudWorker(argv=[sys.executable, "-c", script])
    try:
        with pytest.raises(CloudError) as caught:
            worker.identity(timeout=30)
        message = str(caught.value)
        assert caught.value.code == WORKER_EXITED and "exit code 3" in message and "no SDK here" in message
        assert secret not in message and redact(message) == message
    finally:
        worker.close()


def test_a_worker_closed_without_waiting_dies_while_the_caller_goes_on_and_is_reaped_later() -> None:
    """A run's worker is killed as its checks end and collected after the reports (cloud_worker.reap)."""
    from preflight import cloud_worker

    script = "import sys, time; print('{}', flush=True); time.sleep(60)"
    worker = CloudWorker(argv=[sys.executable, "-c", script])
    started = time.monotonic()
    worker.close(wait=False)
    assert time.monotonic() - started < 1.0 and worker._process in cloud_worker._DYING
    cloud_worker.reap()
    assert worker._process.poll() == -signal.SIGKILL and not cloud_worker._DYING


def test_a_worker_nobody_claims_is_stopped() -> None:
    cloud.start_worker()
    try:
        (worker,) = cloud._SPAWNED
        cloud.spawn_worker(cloud_config(1))
        assert [worker] == cloud._SPAWNED and worker.cloud == cloud_config(1)  # the early one, configured
        cloud.spawn_worker(cloud_config(2))
        (replacement,) = cloud._SPAWNED
        assert replacement is not worker and worker._process.poll() is not None
    finally:
        cloud.close_spawned()
    assert not cloud._SPAWNED and replacement._process.poll() is not None


def run_in_child(simulator: Simulator, tmp_path: Path, **env: str) -> tuple[dict[str, Any], list[str]]:
    """`preflight run` in a fresh interpreter; return its report and the SDK modules that process imported."""
    config = tmp_path / "sim.yaml"
    config.write_text(simulator.config_text())
    script = ("import sys\nfrom preflight.cli import main\n"
              f"code = main(['run', '-c', {str(config)!r}, '--format', 'json', '--no-reports'])\n"
              "loaded = sorted(m for m in sys.modules if m.startswith(('alibabacloud', 'darabonba', 'Tea')))\n"
              "print('LOADED', ','.join(loaded), file=sys.stderr)\nsys.exit(code)\n")
    result = subprocess.run([sys.executable, "-c", script], env={**os.environ, **simulator.environ(), **env},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    loaded = result.stderr.split("LOADED ", 1)[1].strip()
    return json.loads(result.stdout), [name for name in loaded.split(",") if name]


def test_a_run_makes_its_cloud_calls_in_the_worker_with_the_same_results(tmp_path: Path) -> None:
    with Simulator(get_scenario("healthy")) as simulator:
        report, loaded = run_in_child(simulator, tmp_path)
        in_process, loaded_here = run_in_child(simulator, tmp_path, PREFLIGHT_CLOUD_WORKER="0")
    assert loaded == [] and "alibabacloud_tea_openapi.client" in loaded_here
    def outcomes(found: dict[str, Any]) -> set[tuple[str, str | None, str]]:
        return {(r["check"], r["service"], r["status"]) for r in found["results"]}

    assert outcomes(report) == outcomes(in_process)
    assert ("cloud.credentials", None, "pass") in outcomes(report)
    assert ACCESS_KEY_SECRET not in json.dumps(report)


def test_the_worker_imports_the_sdk_without_aiohttp_until_something_uses_it() -> None:
    script = ("import sys\nfrom preflight.cloud_worker import _import_sdk\n_import_sdk()\n"
              "import alibabacloud_tea_openapi.client, darabonba.core\n"
              "print('connector' , 'aiohttp.connector' in sys.modules)\n"
              "import aiohttp\nprint('real', aiohttp.TCPConnector.__module__)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["connector", "False", "real", "aiohttp.connector"]


def test_the_worker_imports_apscheduler_only_when_a_credential_provider_makes_a_scheduler() -> None:
    """The ECS RAM role provider imports apscheduler's BackgroundScheduler at the top and makes one only when it
    refreshes credentials in the background; until then the worker does without the 30 ms import."""
    script = ("import sys\nfrom preflight.cloud_worker import _import_sdk\n_import_sdk()\n"
              "print('before', 'apscheduler.schedulers.base' in sys.modules)\n"
              "from alibabacloud_credentials.provider.ecs_ram_role import EcsRamRoleCredentialsProvider\n"
              "provider = EcsRamRoleCredentialsProvider(async_update_enabled=True)\n"
              "from apscheduler.schedulers.background import BackgroundScheduler\n"
              "made = BackgroundScheduler()\n"
              "print('after', 'apscheduler.schedulers.base' in sys.modules, type(made).__module__,\n"
              "      isinstance(made, BackgroundScheduler))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "ALIBABA_CLOUD_ECS_METADATA": "preflight-test-role",
                                 "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "false"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["before", "False", "after", "True", "apscheduler.schedulers.background", "True"]


def test_an_sdk_that_needs_more_of_aiohttp_is_imported_as_it_is() -> None:
    """A later SDK importing an aiohttp submodule at import time gets the real aiohttp, not an ImportError."""
    script = ("import sys\nfrom preflight import cloud, cloud_worker\nreal = cloud.import_sdk\ncalls = []\n"
              "def needs_more():\n    calls.append(1)\n    import aiohttp.client_exceptions\n    real()\n"
              "cloud.import_sdk = needs_more\ncloud_worker._import_sdk()\n"
              "import aiohttp\n"
              "print(len(calls), type(sys.modules['aiohttp']).__name__, aiohttp.ClientSession.__module__)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["2", "module", "aiohttp.client"]


def test_a_deferred_module_serves_placeholders_then_the_real_module() -> None:
    from preflight.cloud_worker import _DeferredModule

    class Hint:
        pass

    stand_in = _DeferredModule("json", {"JSONDecoder": Hint})
    assert stand_in.JSONDecoder is Hint  # before anything real is asked for
    assert stand_in.dumps([1]) == "[1]" and stand_in.JSONDecoder is json.JSONDecoder
    with pytest.raises(AttributeError):
        stand_in.__path__  # noqa: B018 - `from json import x` must not look for submodules


def run_healthy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                keep: Callable[[str], bool] = lambda line: True) -> tuple[int, pytest.CaptureResult[str]]:
    """`preflight run` through main() against the healthy simulator, with the config lines `keep` accepts."""
    from preflight.cli import main

    with Simulator(get_scenario("healthy")) as simulator:
        for name, value in simulator.environ().items():
            monkeypatch.setenv(name, value)
        config = tmp_path / "sim.yaml"
        config.write_text("\n".join(line for line in simulator.config_text().splitlines() if keep(line)))
        code = main(["run", "-c", str(config), "--format", "json", "--no-reports"])
    return code, capsys.readouterr()


def recording_launches(monkeypatch: pytest.MonkeyPatch) -> list[subprocess.Popen[bytes]]:
    """The processes workerproc.launch starts from now on."""
    from preflight import workerproc

    started: list[subprocess.Popen[bytes]] = []
    real_launch = workerproc.launch

    def record(argv: list[str] | None = None) -> subprocess.Popen[bytes]:
        started.append(real_launch(argv))
        return started[-1]

    monkeypatch.setattr(workerproc, "launch", record)
    return started


def test_the_run_adopts_the_worker_the_command_line_started_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from preflight import workerproc

    started = recording_launches(monkeypatch)
    adopted: list[subprocess.Popen[bytes] | None] = []
    real_init = CloudWorker.__init__

    def adopt(self: CloudWorker, **kwargs: Any) -> None:
        adopted.append(kwargs.get("process"))
        real_init(self, **kwargs)

    monkeypatch.setattr(CloudWorker, "__init__", adopt)
    code, captured = run_healthy(tmp_path, monkeypatch, capsys)
    report = json.loads(captured.out)
    assert code == 0 and {r["status"] for r in report["results"] if r["check"] == "cloud.credentials"} == {"pass"}
    assert len(started) == 1 and adopted == started  # one process: started before parsing, used by the run
    assert started[0].poll() is not None and not workerproc._EARLY and not cloud._SPAWNED


def test_a_worker_started_on_a_guess_is_stopped_when_the_config_needs_no_cloud(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from preflight import workerproc

    started = recording_launches(monkeypatch)
    code, captured = run_healthy(tmp_path, monkeypatch, capsys, lambda line: not line.strip().startswith(
        ("workspace:", "resource_group:", "nodes:")))
    report = json.loads(captured.out)
    assert code == 0 and {r["status"] for r in report["results"] if r["check"] == "cloud.credentials"} == {"skip"}
    assert len(started) == 1 and started[0].poll() is not None  # started early, stopped, reaped
    assert not cloud._SPAWNED and not workerproc._EARLY


def test_a_worker_that_died_before_its_config_arrived_fails_the_calls_not_the_run() -> None:
    worker = CloudWorker(argv=[sys.executable, "-c", "import sys; sys.exit(4)"])
    try:
        deadline = time.monotonic() + 30
        while worker._gone is None and time.monotonic() < deadline:  # the reader has seen it end
            time.sleep(0.01)
        worker.configure(cloud_config(1))  # no exception here: the run goes on and its checks say why
        with pytest.raises(CloudError) as caught:
            worker.submit("dataworks", "GetProject", {"Id": WORKSPACE_ID}, "cn-beijing", "GET").result(timeout=10)
        assert caught.value.code == WORKER_EXITED and "exit code 4" in str(caught.value)
    finally:
        worker.close()


def test_a_run_whose_worker_breaks_says_the_tool_broke_not_the_cloud(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:

    real_init = CloudWorker.__init__
    broken = "import sys; sys.stderr.write('ModuleNotFoundError: No module named Tea'); sys.exit(1)"

    def broken_install(self: CloudWorker, **_: Any) -> None:
        real_init(self, argv=[sys.executable, "-c", broken])

    monkeypatch.setattr(CloudWorker, "__init__", broken_install)
    code, captured = run_healthy(tmp_path, monkeypatch, capsys)
    report = json.loads(captured.out)
    (credentials,) = [r for r in report["results"] if r["check"] == "cloud.credentials"]
    assert code == 3 and credentials["status"] == "error", credentials
    assert "cloud SDK worker failed" in credentials["summary"] and "No module named Tea" in credentials["summary"]
    assert "PREFLIGHT_CLOUD_WORKER=0" in credentials["remediation"]
    assert "Traceback" not in captured.err and {r["status"] for r in report["results"]
                                                if r["check"].startswith("endpoint.")} == {"pass"}


def test_lines_that_are_not_the_protocol_do_not_stop_the_reader() -> None:
    lines = ["not json", "[1]", json.dumps({"id": [1, 2]}), json.dumps({"identity": 5}),
             json.dumps({"identity": {"provider": "env", "access_key_id": "LTAI****"}, "secrets": []})]
    script = f"import time\nfor line in {lines!r}:\n    print(line, flush=True)\ntime.sleep(0.3)\n"
    worker = CloudWorker(argv=[sys.executable, "-c", script])
    try:
        assert worker.identity(timeout=30).provider == "env"
        with pytest.raises(CloudError) as caught:  # and the worker's end is still noticed
            worker.submit("dataworks", "GetProject", {}, "cn-beijing", "GET").result(timeout=30)
        assert caught.value.code == WORKER_EXITED and "exit code 0" in str(caught.value)
    finally:
        worker.close()
