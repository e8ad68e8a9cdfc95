"""The real SDKs against the cloud simulator: conformance, signatures, the credential chain, retries, extras."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from preflight.cli.main import main
from preflight.cli.run import HOLD_FOR_SDK_SERVICES
from preflight.cloud.pacing import THROTTLING_ATTEMPTS
from preflight.config import parse_config
from preflight.simulator.harness import Simulator
from preflight.simulator.scenarios import (
    ACCESS_KEY_ID,
    ACCESS_KEY_SECRET,
    FIRST_VPC,
    RESOURCE_GROUP_ID,
    WORKSPACE_ID,
    get_scenario,
)


@pytest.fixture
def healthy() -> Iterator[Simulator]:
    with Simulator(get_scenario("healthy")) as simulator:
        yield simulator


def generated_config(port: int, secret: str = ACCESS_KEY_SECRET) -> object:
    from alibabacloud_tea_openapi.utils_models import Config

    return Config(access_key_id=ACCESS_KEY_ID, access_key_secret=secret, endpoint=f"127.0.0.1:{port}",
                  protocol="http", region_id="cn-beijing")


def test_the_generated_dataworks_client_reads_the_simulator(healthy: Simulator) -> None:
    from alibabacloud_dataworks_public20240518 import models
    from alibabacloud_dataworks_public20240518.client import Client

    client = Client(generated_config(healthy.cloud_port))
    project = client.get_project(models.GetProjectRequest(id=int(WORKSPACE_ID))).body.project
    assert (project.name, project.status) == ("llm_demo", "Available")
    group = client.get_resource_group(models.GetResourceGroupRequest(id=RESOURCE_GROUP_ID)).body.resource_group
    assert (group.resource_group_type, group.status) == ("CommonV2", "Normal")
    networks = client.list_networks(models.ListNetworksRequest(resource_group_id=RESOURCE_GROUP_ID,
                                                               page_size=1, page_number=2)).body.paging_info
    assert networks.total_count == 2 and [n.vpc_id for n in networks.network_list] == [FIRST_VPC]
    attached = client.list_resource_group_associate_projects(
        models.ListResourceGroupAssociateProjectsRequest(resource_group_id=RESOURCE_GROUP_ID)).body
    assert attached.project_id_list == [int(WORKSPACE_ID)]


def test_the_generated_network_clients_read_the_simulator(healthy: Simulator) -> None:
    from alibabacloud_privatelink20200415 import models as pl_models
    from alibabacloud_privatelink20200415.client import Client as PrivateLink
    from alibabacloud_pvtz20180101 import models as pvtz_models
    from alibabacloud_pvtz20180101.client import Client as Pvtz

    zones = Pvtz(generated_config(healthy.cloud_port)).describe_zones(
        pvtz_models.DescribeZonesRequest(query_vpc_id=FIRST_VPC)).body.zones.zone
    assert len(zones) == 3 and all(zone.zone_name.endswith("dataworks-model.aliyuncs.com") for zone in zones)
    endpoints = PrivateLink(generated_config(healthy.cloud_port)).list_vpc_endpoints(
        pl_models.ListVpcEndpointsRequest(region_id="cn-beijing", vpc_id=FIRST_VPC)).body.endpoints
    assert {e.endpoint_status for e in endpoints} == {"Active"}


def test_a_wrong_secret_is_refused_by_the_signature_check(healthy: Simulator) -> None:
    from alibabacloud_dataworks_public20240518 import models
    from alibabacloud_dataworks_public20240518.client import Client
    from alibabacloud_tea_openapi.exceptions import ClientException

    client = Client(generated_config(healthy.cloud_port, secret="not-the-secret-0000000000"))
    with pytest.raises(ClientException) as caught:
        client.get_project(models.GetProjectRequest(id=int(WORKSPACE_ID)))
    assert caught.value.code == "SignatureDoesNotMatch"


def run_preflight(simulator: Simulator, env: dict[str, str], *args: str, config_text: str | None = None,
                  tmp: Path) -> dict[str, Any]:
    config = tmp / "preflight.yaml"
    config.write_text(config_text or simulator.config_text())
    result = subprocess.run([sys.executable, "-m", "preflight", "run", "-c", str(config), "--format", "json",
                             "--no-reports", *args], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode in (0, 1), result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def base_env(tmp: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ALIBABA_CLOUD_")}
    env.update({"HOME": str(tmp), "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true", "CI": "true"})
    return env


def test_credentials_from_the_environment_name_their_provider(healthy: Simulator, tmp_path: Path) -> None:
    env = {**base_env(tmp_path), **healthy.environ()}
    report = run_preflight(healthy, env, "--only", "cloud.credentials", tmp=tmp_path)
    (result,) = [r for r in report["results"] if r["check"] == "cloud.credentials"]
    assert result["status"] == "pass" and "env" in result["summary"] and "LTAI****" in result["summary"]
    assert ACCESS_KEY_SECRET not in json.dumps(report)


def test_credentials_from_a_named_cli_profile(healthy: Simulator, tmp_path: Path) -> None:
    (tmp_path / ".aliyun").mkdir()
    (tmp_path / ".aliyun" / "config.json").write_text(json.dumps({"current": "default", "profiles": [
        {"name": "ci", "mode": "AK", "access_key_id": ACCESS_KEY_ID, "access_key_secret": ACCESS_KEY_SECRET,
         "region_id": "cn-beijing"}]}))
    env = {**base_env(tmp_path), **{k: v for k, v in healthy.environ().items() if k.startswith("DW_")}}
    text = healthy.config_text().replace("cloud: {", "cloud: {profile: ci, ", 1)
    report = run_preflight(healthy, env, "--only", "cloud.credentials", config_text=text, tmp=tmp_path)
    (result,) = [r for r in report["results"] if r["check"] == "cloud.credentials"]
    assert result["status"] == "pass" and "profile" in result["summary"].lower(), result


def test_no_credentials_at_all_is_a_clear_failure(healthy: Simulator, tmp_path: Path) -> None:
    keys = {k: v for k, v in healthy.environ().items() if k.startswith("DW_")}
    report = run_preflight(healthy, {**base_env(tmp_path), **keys}, "--only", "cloud.credentials", tmp=tmp_path)
    (result,) = [r for r in report["results"] if r["check"] == "cloud.credentials"]
    assert result["status"] == "fail" and "no credentials" in result["summary"]


def test_throttling_is_retried_up_to_the_cap_and_fails_saying_so(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    with Simulator(get_scenario("cloud-throttled")) as simulator:
        for name, value in simulator.environ().items():
            monkeypatch.setenv(name, value)
        config = parse_config(simulator.config_text(), "sim.yaml")
        assert config.targets
        path = tmp_path / "sim.yaml"
        path.write_text(simulator.config_text())
        code = main(["run", "-c", str(path), "--only", "network.first_vpc", "--format", "json", "--no-reports"])
        calls = simulator._servers[-1].calls  # type: ignore[attr-defined]
    captured = capsys.readouterr()
    assert code == 1, captured.err
    report = json.loads(captured.out)
    assert calls.get("ListNetworks") == THROTTLING_ATTEMPTS, (calls, [(r["check"], r["summary"])
                                                                      for r in report["results"]])
    (result,) = [r for r in report["results"] if r["check"] == "network.first_vpc"]
    assert "throttled by the account's flow control (Throttling.User)" in result["summary"]
    assert "run fewer targets at once" in result["summary"] and result["evidence"]["request_id"]


def test_without_the_network_extra_the_optional_checks_skip(healthy: Simulator, tmp_path: Path) -> None:
    # A site directory whose sitecustomize hides the optional SDK packages, as if they were not installed.
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import sys\n"
        "class Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('alibabacloud_pvtz20180101', 'alibabacloud_privatelink20200415',\n"
        "                                  'alibabacloud_vpc20160428'):\n"
        "            raise ModuleNotFoundError(name)\n"
        "        return None\n"
        "sys.meta_path.insert(0, Hide())\n")
    env = {**base_env(tmp_path), **healthy.environ(), "PYTHONPATH": str(site)}
    report = run_preflight(healthy, env, "--only", "network.*", tmp=tmp_path)
    statuses = {(r["check"], r["status"]) for r in report["results"] if r["service"] == "qwen"}
    assert ("network.model_allowlist", "warn") in statuses
    optional = [r for r in report["results"] if r["check"] in ("network.private_dns", "network.privatelink")]
    assert optional and all(r["status"] == "skip" and "extra" in r["summary"] for r in optional)


def test_credentials_from_a_named_profile_in_credentials_ini(healthy: Simulator, tmp_path: Path) -> None:
    # Without a CLI config.json, cloud.profile falls back to the section of ~/.alibabacloud/credentials.ini.
    (tmp_path / ".alibabacloud").mkdir()
    (tmp_path / ".alibabacloud" / "credentials.ini").write_text(
        f"[ci]\ntype = access_key\naccess_key_id = {ACCESS_KEY_ID}\naccess_key_secret = {ACCESS_KEY_SECRET}\n")
    env = {**base_env(tmp_path), **{k: v for k, v in healthy.environ().items() if k.startswith("DW_")}}
    text = healthy.config_text().replace("cloud: {", "cloud: {profile: ci, ", 1)
    report = run_preflight(healthy, env, "--only", "cloud.credentials", config_text=text, tmp=tmp_path)
    (result,) = [r for r in report["results"] if r["check"] == "cloud.credentials"]
    assert result["status"] == "pass" and "credentials.ini" in result["summary"], result
    assert ACCESS_KEY_SECRET not in json.dumps(report)


def test_a_missing_profile_is_named(healthy: Simulator, tmp_path: Path) -> None:
    env = {**base_env(tmp_path), **{k: v for k, v in healthy.environ().items() if k.startswith("DW_")}}
    text = healthy.config_text().replace("cloud: {", "cloud: {profile: nowhere, ", 1)
    report = run_preflight(healthy, env, "--only", "cloud.credentials", config_text=text, tmp=tmp_path)
    (result,) = [r for r in report["results"] if r["check"] == "cloud.credentials"]
    assert result["status"] == "fail" and "'nowhere'" in result["summary"], result


def test_a_wrong_secret_in_the_environment_fails_naming_the_provider(healthy: Simulator, tmp_path: Path) -> None:
    wrong = "wrong0secret0wrong0secret0wrong0"
    env = {**base_env(tmp_path), **healthy.environ(), "ALIBABA_CLOUD_ACCESS_KEY_SECRET": wrong}
    report = run_preflight(healthy, env, "--only", "cloud.credentials", tmp=tmp_path)
    (result,) = [r for r in report["results"] if r["check"] == "cloud.credentials"]
    assert result["status"] == "fail" and "SignatureDoesNotMatch" in result["summary"], result
    assert "environment variables" in result["summary"] and "LTAI****" in result["summary"]
    assert wrong not in json.dumps(report)


def test_no_api_answer_at_all_cannot_tell(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for name, value in (("ALIBABA_CLOUD_ACCESS_KEY_ID", ACCESS_KEY_ID),
                        ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", ACCESS_KEY_SECRET),
                        ("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")):
        monkeypatch.setenv(name, value)
    path = tmp_path / "closed.yaml"
    path.write_text(f"version: 1\nregion: cn-beijing\ncloud: {{endpoint: '127.0.0.1:{port}', protocol: http, "
                    f"connect_timeout_ms: 500, read_timeout_ms: 500}}\ntargets:\n  - name: t\n"
                    f"    workspace: '{WORKSPACE_ID}'\n    resource_group: {RESOURCE_GROUP_ID}\n")
    code = main(["run", "-c", str(path), "--only", "workspace.exists", "--format", "json",
                 "--no-reports"])
    report = json.loads(capsys.readouterr().out)
    results = {r["check"]: r for r in report["results"]}
    assert results["cloud.credentials"]["status"] == "warn", results
    assert "cannot tell" in results["cloud.credentials"]["summary"]
    # The check that needed the answer carries the cause, so the run still fails on it.
    assert results["workspace.exists"]["status"] == "fail" and code == 1
    assert "could not be reached" in results["workspace.exists"]["summary"]


def test_a_timed_out_get_project_leaves_credentials_proven_by_get_resource_group(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    with Simulator(get_scenario("cloud-timeout")) as simulator:
        for name, value in simulator.environ().items():
            monkeypatch.setenv(name, value)
        path = tmp_path / "sim.yaml"
        path.write_text(simulator.config_text())
        main(["run", "-c", str(path), "--only", "workspace.exists", "--format", "json",
              "--no-reports"])
    results = {r["check"]: r for r in json.loads(capsys.readouterr().out)["results"]}
    credentials = results["cloud.credentials"]
    assert credentials["status"] == "pass" and credentials["summary"].startswith("GetResourceGroup accepted")
    assert "GetProject failed with Timeout" in credentials["summary"]
    assert results["workspace.exists"]["status"] == "fail"


@pytest.mark.parametrize("argv", [["list"], ["--version"]])
def test_listing_checks_and_the_version_import_no_sdk_httpx_or_rich(tmp_path: Path, argv: list[str]) -> None:
    # `--version` as the console script answers it; `list` through main(), since the console script ends in os._exit.
    run = ("from preflight.cli import console\nconsole()\n" if argv == ["--version"]
           else "from preflight.cli.main import main\nmain(sys.argv[1:])\n")
    script = (f"import sys\nsys.argv = ['preflight', *{argv!r}]\n{run}"
              "loaded = sorted(m.split('.')[0] for m in sys.modules\n"
              "                if m.startswith(('alibabacloud', 'darabonba', 'Tea', 'httpx', 'rich', 'requests')))\n"
              "print('LOADED', sorted(set(loaded)), file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", script], env=base_env(tmp_path), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert ("cloud.credentials" if argv == ["list"] else "preflight ") in result.stdout
    assert "LOADED []" in result.stderr, result.stderr


def test_a_run_starts_the_sdk_import_before_it_reads_its_config(tmp_path: Path) -> None:
    """`run` and `demo` start importing the generated clients on a background thread at once; a command line that
    narrows the run (`--only`, `--endpoint`) leaves it to the run, which starts it only if it asks the cloud."""
    script = ("import sys\nfrom preflight.cli.main import main\n"
              "code = main(sys.argv[1:])\n"
              "from preflight.cloud import imports as cloud\n"
              "cloud._IMPORTS.get('dataworks') and cloud._IMPORTS['dataworks'].result(timeout=60)\n"
              "print('STARTED', sorted(cloud._IMPORTS), code, 'alibabacloud_dataworks_public20240518.client' in "
              "sys.modules)\n")

    def started(*argv: str) -> str:
        result = subprocess.run([sys.executable, "-c", script, *argv], env=base_env(tmp_path), capture_output=True,
                                text=True, timeout=120, cwd=tmp_path)
        return next(line for line in result.stdout.splitlines() if line.startswith("STARTED"))

    # The config does not exist: the run ends with a usage error before any check, the import already under way.
    assert started("run", "-c", "missing.yaml") == "STARTED ['credentials', 'dataworks', 'privatelink', 'pvtz'] 2 True"
    assert started("run", "-c", "missing.yaml", "--only", "endpoint.tcp") == "STARTED [] 2 False"


def test_concurrent_first_calls_build_the_sdks_session_once(healthy: Simulator,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """darabonba creates its per-endpoint session on first use without a lock; a run's first wave of questions,
    on many threads of the session's pool, must not make every thread build one (and load a trust store)."""
    import asyncio
    import threading
    import time

    import darabonba.core
    from requests import Session

    from preflight.cloud.session import CloudSession

    for name, value in healthy.environ().items():
        monkeypatch.setenv(name, value)
    built = []
    callers = set()

    class SlowSession(Session):
        def __init__(self) -> None:
            built.append(threading.get_ident())
            time.sleep(0.05)  # widen the window in which an unlocked cache lets other threads in
            super().__init__()

        def send(self, *args: Any, **kwargs: Any) -> Any:
            callers.add(threading.current_thread().name)
            return super().send(*args, **kwargs)

    monkeypatch.setattr(darabonba.core, "Session", SlowSession)
    session = CloudSession(parse_config(healthy.config_text(), "sim.yaml", healthy.environ()).cloud)

    async def ask_all() -> list[dict[str, Any]]:
        return await asyncio.gather(*(session.call("dataworks", "GetProject", {"id": int(WORKSPACE_ID)}, "cn-beijing")
                                      for _ in range(16)))

    try:
        answers = asyncio.run(ask_all())
    finally:
        session.close()
    assert [answer["Project"]["Name"] for answer in answers] == ["llm_demo"] * 16
    assert len(built) == 1, f"{len(built)} sessions built for one endpoint"
    # The calls ran at once, on the session's own threads of this process.
    assert len(callers) > 1 and all(name.startswith("preflight-cloud") for name in callers), callers


def test_a_call_takes_its_token_only_once_its_sdk_is_imported(healthy: Simulator,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A token taken before the import ends would be spent on a call that leaves with every other call paced
    meanwhile, all at once: the gateway would throttle the pile."""
    import asyncio
    import concurrent.futures
    import importlib

    from preflight.cloud import imports
    from preflight.cloud.session import CloudSession

    for name, value in healthy.environ().items():
        monkeypatch.setenv(name, value)
    pending: concurrent.futures.Future[Any] = concurrent.futures.Future()
    monkeypatch.setitem(imports._IMPORTS, "dataworks", pending)  # an import still running
    session = CloudSession(parse_config(healthy.config_text(), "sim.yaml", healthy.environ()).cloud)

    async def ask() -> dict[str, Any]:
        call = asyncio.ensure_future(session.call("dataworks", "GetProject", {"id": int(WORKSPACE_ID)},
                                                  "cn-beijing"))
        for _ in range(20):
            await asyncio.sleep(0.01)
        assert not call.done() and not session.pacer.buckets  # waiting, with no bucket touched
        pending.set_result(importlib.import_module("alibabacloud_dataworks_public20240518.client"))
        return await call

    try:
        answer = asyncio.run(ask())
    finally:
        if not pending.done():  # a thread that took the call first waits on it: let it end
            pending.set_result(importlib.import_module("alibabacloud_dataworks_public20240518.client"))
        session.close()
    assert answer["Project"]["Name"] == "llm_demo"
    assert healthy.stats()["cloud"].get("GetProject") == 1


def run_scaled(services: int, check: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
               capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any], dict[str, int]]:
    """`--only check` against a healthy world of this many services over three targets: the exit code, the JSON
    report and the cloud calls the simulator received."""
    from dataclasses import replace

    from preflight.simulator.scenarios import scaled_world

    scenario = replace(get_scenario("healthy"), world=scaled_world(services, targets=3))
    with Simulator(scenario, run_scripts=False) as simulator:
        for name, value in simulator.environ().items():
            monkeypatch.setenv(name, value)
        config = tmp_path / "sim.yaml"
        config.write_text(simulator.config_text())
        code = main(["run", "-c", str(config), "--only", check, "--format", "json", "--no-reports"])
        calls = simulator.stats()["cloud"]
    return code, json.loads(capsys.readouterr().out), calls


def test_one_zone_tree_serves_every_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """A question per service would be a hundred DescribeZones (and as many DescribeZoneInfo) at once, enough to
    be throttled in a real account; every zone and its VPCs come from one DescribeZoneVpcTree per run."""
    code, report, calls = run_scaled(105, "network.private_dns", tmp_path, monkeypatch, capsys)
    verdicts = [r["status"] for r in report["results"] if r["check"] == "network.private_dns"]
    assert code == 0 and verdicts == ["pass"] * 105
    assert calls["DescribeZoneVpcTree"] == 1 and calls["DescribeZoneRecords"] == 105
    assert "DescribeZones" not in calls and "DescribeZoneInfo" not in calls


def test_the_most_specific_zone_covering_the_model_domain_is_chosen() -> None:
    from checks.answers import covering_zone

    host = "ms-abc.cn-beijing.dataworks-model.aliyuncs.com"
    parent = {"ZoneId": "z-parent", "ZoneName": "cn-beijing.dataworks-model.aliyuncs.com"}
    own, twin = {"ZoneId": "z-own", "ZoneName": host}, {"ZoneId": "z-twin", "ZoneName": host}
    lookalike = {"ZoneId": "z-look", "ZoneName": "abc.cn-beijing.dataworks-model.aliyuncs.com"}
    by_name: dict[str, list[dict[str, Any]]] = {}
    for zone in (parent, lookalike, own, twin):
        by_name.setdefault(zone["ZoneName"], []).append(zone)
    assert covering_zone(by_name, host) is own  # the host's own zone, the first of two with its name
    del by_name[host]
    assert covering_zone(by_name, host) is parent  # "abc.cn-beijing..." is not a parent of "ms-abc.cn-beijing..."
    assert covering_zone(by_name, "ms-abc.cn-hangzhou.dataworks-model.aliyuncs.com") is None
    assert covering_zone({}, host) is None


def test_an_endpoint_leads_to_the_service_its_service_name_ends_with_as_a_whole_label() -> None:
    from checks.answers import service_of

    name = "com.aliyuncs.privatelink.cn-beijing.dataworks-model."
    assert service_of({"ServiceName": name + "ms-abc"}) == "ms-abc"
    assert service_of({"ServiceName": name + "xms-abc"}) != "ms-abc"  # a longer id that merely ends the same
    assert service_of({"ServiceName": "ms-abc"}) == "ms-abc"
    assert service_of({}) == ""


def test_privatelink_asks_each_endpoints_zones_once_for_every_service(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The endpoints are listed once and indexed by VPC and service; each service's ENI addresses are asked once
    although the early questions and network.privatelink both need them."""
    code, report, calls = run_scaled(30, "network.privatelink", tmp_path, monkeypatch, capsys)
    found = {r["service"]: r["evidence"]["endpoints"] for r in report["results"] if r["check"] == "network.privatelink"}
    assert code == 0 and len(found) == 30
    assert all(len(endpoints) == 1 and endpoints[0]["service"].endswith("." + service)
               for service, endpoints in found.items())
    assert calls["ListVpcEndpoints"] == 1 and calls["ListVpcEndpointZones"] == 30


class Recorder(http.server.BaseHTTPRequestHandler):
    """Answers every OpenAPI call with an empty success and records how it arrived."""

    seen: ClassVar[list[tuple[str, str, dict[str, str], dict[str, str]]]] = []
    answer: ClassVar[dict[str, Any]] = {"RequestId": "R-1"}

    def do_GET(self) -> None:
        self.record()

    def do_POST(self) -> None:
        self.record()

    def record(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
        self.seen.append((self.command, self.headers["x-acs-action"], query, dict(urllib.parse.parse_qsl(body))))
        answer = json.dumps(self.answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A CloudSession pointed at a Recorder on loopback, for every product."""
    import threading

    from preflight.cloud.session import CloudSession

    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", ACCESS_KEY_SECRET)
    Recorder.seen.clear()
    monkeypatch.setattr(Recorder, "answer", {"RequestId": "R-1"})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"127.0.0.1:{server.server_address[1]}"
    config = parse_config(f"version: 1\nregion: cn-beijing\ncloud: {{endpoint: '{endpoint}', protocol: http, "
                          f"network_endpoints: {{pvtz: '{endpoint}', privatelink: '{endpoint}'}}}}\n"
                          "targets: [{name: t}]\n", "wire.yaml", {})
    session = CloudSession(config.cloud)
    try:
        yield session
    finally:
        session.close()
        server.shutdown()
        server.server_close()


def test_an_answer_that_does_not_fit_its_model_is_an_invalid_response(recorder: Any) -> None:
    import asyncio

    from preflight.errors import CloudError

    Recorder.answer = {"RequestId": "R-2", "Project": ["not", "an", "object"]}
    with pytest.raises(CloudError) as caught:
        asyncio.run(recorder.call("dataworks", "GetProject", {"id": 4242}, "cn-beijing"))
    assert caught.value.code == "InvalidResponse" and "does not fit" in str(caught.value)


def test_each_call_is_sent_as_its_generated_client_sends_it(recorder: Any) -> None:
    """The generated methods carry the wire contract the generic path guessed: these actions are POSTs (it sent
    them as GET), each parameter in the query or the form body as the method says, ints as numbers."""
    import asyncio

    calls = [("dataworks", "GetProject", {"id": 4242}),
             ("dataworks", "ListResourceGroupAssociateProjects", {"resource_group_id": RESOURCE_GROUP_ID}),
             ("dataworks", "ListTaskInstances", {"project_id": 4242, "workflow_instance_id": 9001}),
             ("pvtz", "DescribeZoneRecords", {"zone_id": "z-1"}),
             ("privatelink", "ListVpcEndpoints", {"region_id": "cn-beijing", "max_results": 1000})]

    async def ask_each() -> None:
        for product, action, fields in calls:
            assert (await recorder.call(product, action, fields, "cn-beijing"))["RequestId"] == "R-1"

    asyncio.run(ask_each())
    seen = {action: (method, query, form) for method, action, query, form in Recorder.seen}
    assert seen["GetProject"][0] == "GET" and seen["GetProject"][1]["Id"] == "4242"
    assert seen["ListResourceGroupAssociateProjects"][0] == "POST"
    assert seen["ListResourceGroupAssociateProjects"][1]["ResourceGroupId"] == RESOURCE_GROUP_ID  # a POST query
    method, query, form = seen["ListTaskInstances"]
    assert method == "POST" and "ProjectId" not in query
    assert (form["ProjectId"], form["WorkflowInstanceId"]) == ("4242", "9001")
    assert seen["DescribeZoneRecords"][0] == "POST" and seen["ListVpcEndpoints"][0] == "POST"


def test_every_action_of_the_table_has_its_generated_method_and_request_model() -> None:
    import importlib
    import inspect

    from preflight.cloud.actions import ACTIONS, PRODUCTS

    for (product, action), method in ACTIONS.items():
        package = PRODUCTS[product].package
        client = importlib.import_module(f"{package}.client").Client
        models = importlib.import_module(f"{package}.models")
        send = getattr(client, f"{method}_with_options")
        assert callable(send), (product, action)
        if hasattr(models, f"{action}Request"):
            assert isinstance(getattr(models, f"{action}Request")(), object), (product, action)
        else:  # an action without parameters (STS GetCallerIdentity): the method takes the runtime alone
            assert list(inspect.signature(send).parameters) == ["self", "runtime"], (product, action)


@pytest.mark.parametrize(("services", "held"), [(HOLD_FOR_SDK_SERVICES - 1, False), (HOLD_FOR_SDK_SERVICES, True)])
def test_a_run_of_many_services_starts_its_checks_once_the_sdk_is_imported(services: int, held: bool) -> None:
    import asyncio

    from preflight.cli.run import _sdk_first
    from preflight.cloud import imports
    from preflight.engine.runner import Selection

    lines = [f"      - {{name: s{i}, kind: completion, endpoint: 'http://127.0.0.1:9'}}" for i in range(services)]
    config = parse_config("region: cn-beijing\ntargets:\n  - name: a\n    workspace: '1'\n    services:\n"
                          + "\n".join(lines) + "\n", "t.yaml", {})
    imports.start_import()
    hold = _sdk_first(config, Selection())
    assert (hold is not None) is held
    if hold is not None:
        asyncio.run(hold())  # type: ignore[arg-type]
        assert all(imports._IMPORTS[part].done() for part in imports.RUN_IMPORTS)
