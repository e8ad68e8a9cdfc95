"""Every kind of cloud API failure, from the simulator over real sockets, becomes a CloudError and the right fix."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from checks.cloudfail import outcome_of
from preflight.cloud.credentials import describe_provider
from preflight.cloud.failures import is_credential_error, managed_policy, translate
from preflight.cloud.pacing import THROTTLING_ATTEMPTS, TRANSIENT_ATTEMPTS
from preflight.cloud.session import CloudSession
from preflight.config import Config, parse_config
from preflight.engine.model import Status
from preflight.engine.redact import redact
from preflight.errors import SDK_UNUSABLE, CloudError
from preflight.simulator.openapi import CloudApi
from preflight.simulator.scenarios import (
    ACCESS_KEY_ID,
    ACCESS_KEY_SECRET,
    FIRST_VPC,
    RESOURCE_GROUP_ID,
    WORKSPACE_ID,
    World,
)

READ_TIMEOUT_MS = 1500


def config_text(port: int) -> str:
    endpoint = f"127.0.0.1:{port}"
    return ("version: 1\nregion: cn-beijing\n"
            f"cloud: {{endpoint: '{endpoint}', protocol: http, connect_timeout_ms: 1000, "
            f"read_timeout_ms: {READ_TIMEOUT_MS}, network_endpoints: {{pvtz: '{endpoint}', privatelink: '{endpoint}', "
            f"vpc: '{endpoint}'}}}}\n"
            f"targets:\n  - name: t\n    workspace: '{WORKSPACE_ID}'\n    resource_group: {RESOURCE_GROUP_ID}\n")


def config_for(port: int) -> Config:
    return parse_config(config_text(port), "test.yaml")


@pytest.fixture(autouse=True)
def access_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", ACCESS_KEY_SECRET)
    monkeypatch.setenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
    monkeypatch.delenv("ALIBABA_CLOUD_SECURITY_TOKEN", raising=False)


def ask(session: CloudSession, product: str, action: str, **fields: Any) -> dict[str, Any]:
    """One call through the session, as a check makes it: `fields` are the request model's."""
    return asyncio.run(session.call(product, action, fields, "cn-beijing"))


class Api:
    """A simulated cloud API with one world and a set of faults, and a session pointed at it."""

    def __init__(self, world: World | None = None, faults: frozenset[str] = frozenset()) -> None:
        self.server = CloudApi(world or World(), faults=faults)
        self.session = CloudSession(config_for(self.server.start()).cloud)

    def fail(self, product: str, action: str, **fields: Any) -> CloudError:
        with pytest.raises(CloudError) as caught:
            ask(self.session, product, action, **fields)
        return caught.value


@pytest.fixture
def apis() -> Iterator[list[Api]]:
    started: list[Api] = []
    yield started
    for api in started:
        api.session.close()
        api.server.stop()


def start(apis: list[Api], world: World | None = None, faults: frozenset[str] = frozenset()) -> Api:
    api = Api(world, faults)
    apis.append(api)
    return api


def test_a_healthy_answer_is_the_json_body(apis: list[Api]) -> None:
    api = start(apis)
    body = ask(api.session, "dataworks", "GetProject", id=int(WORKSPACE_ID))
    assert body["Project"]["Status"] == "Available" and body["RequestId"]
    assert asyncio.run(api.session.identity()).access_key_id == ACCESS_KEY_ID[:4] + "****"


def test_ram_denial_names_the_action_and_the_managed_policy(apis: list[Api]) -> None:
    api = start(apis, World(ram_denied=frozenset({"dataworks:ListNetworks", "pvtz:DescribeZones"})))
    error = api.fail("dataworks", "ListNetworks", resource_group_id=RESOURCE_GROUP_ID)
    assert (error.code, error.status_code, error.auth_action) == ("Forbidden.RAM", 403, "dataworks:ListNetworks")
    assert error.request_id and error.action == "dataworks:ListNetworks"
    outcome = outcome_of(error, f"ListNetworks for {RESOURCE_GROUP_ID}")
    assert outcome.status is Status.FAIL and "dataworks:ListNetworks" in outcome.summary
    assert error.request_id in outcome.summary
    assert outcome.remediation and "AliyunDataWorksReadOnlyAccess" in outcome.remediation
    assert outcome.evidence["auth_action"] == "dataworks:ListNetworks"
    pvtz = outcome_of(api.fail("pvtz", "DescribeZones", keyword="x"), "DescribeZones")
    assert pvtz.remediation and "AliyunPvtzReadOnlyAccess" in pvtz.remediation
    assert "pvtz:DescribeZones" in pvtz.summary


def test_an_unknown_access_key_is_a_credential_error(apis: list[Api]) -> None:
    api = start(apis, World(access_key_id="LTAI5tSomeoneElse000000"))
    error = api.fail("dataworks", "GetProject", id=int(WORKSPACE_ID))
    assert error.code.startswith("InvalidAccessKeyId") and error.status_code == 404
    assert is_credential_error(error)
    outcome = outcome_of(error, "GetProject")
    assert outcome.status is Status.FAIL and "refused the credentials" in outcome.summary
    assert ACCESS_KEY_SECRET not in repr(outcome) + str(error)


def test_a_wrong_secret_fails_the_signature(apis: list[Api]) -> None:
    api = start(apis, World(access_key_secret="a-different-secret-000000000"))
    error = api.fail("dataworks", "GetResourceGroup", id=RESOURCE_GROUP_ID)
    assert (error.code, error.status_code) == ("SignatureDoesNotMatch", 400) and is_credential_error(error)


def test_a_5xx_names_the_request_id(apis: list[Api]) -> None:
    api = start(apis, faults=frozenset({"get-resource-group-503"}))
    error = api.fail("dataworks", "GetResourceGroup", id=RESOURCE_GROUP_ID)
    assert (error.code, error.status_code) == ("ServiceUnavailable", 503) and error.request_id
    outcome = outcome_of(error, "GetResourceGroup")
    assert "failed on its side" in outcome.summary and error.request_id in outcome.summary
    assert outcome.remediation and "request id" in outcome.remediation


def test_throttling_is_retried_no_sooner_than_retry_after(apis: list[Api]) -> None:
    api = start(apis, faults=frozenset({"list-networks-throttled"}))
    began = time.monotonic()
    error = api.fail("dataworks", "ListNetworks", resource_group_id=RESOURCE_GROUP_ID)
    elapsed = time.monotonic() - began
    assert error.code == "Throttling.User" and api.server.calls["ListNetworks"] == THROTTLING_ATTEMPTS
    # Each retry waited at least the 200 ms the server asked for.
    assert elapsed >= 0.2 * (THROTTLING_ATTEMPTS - 1)
    assert "throttled" in outcome_of(error, "ListNetworks").summary


def test_a_body_that_is_not_json_is_an_invalid_response(apis: list[Api]) -> None:
    api = start(apis, faults=frozenset({"associate-not-json"}))
    error = api.fail("dataworks", "ListResourceGroupAssociateProjects", resource_group_id=RESOURCE_GROUP_ID)
    assert error.code == "InvalidResponse" and not is_credential_error(error)
    assert "not JSON" in outcome_of(error, "ListResourceGroupAssociateProjects").summary


def test_success_false_over_http_200_is_an_error(apis: list[Api]) -> None:
    api = start(apis, faults=frozenset({"get-project-success-false"}))
    error = api.fail("dataworks", "GetProject", id=int(WORKSPACE_ID))
    assert (error.code, error.status_code) == ("Internal.Error", 200) and error.request_id
    assert "Success: false" in str(error)


def test_a_read_that_times_out_is_asked_again_each_within_the_read_timeout(apis: list[Api]) -> None:
    api = start(apis, faults=frozenset({"get-project-timeout"}))
    began = time.monotonic()
    error = api.fail("dataworks", "GetProject", id=int(WORKSPACE_ID))
    elapsed = time.monotonic() - began
    assert error.code == "Timeout" and api.server.calls["GetProject"] == TRANSIENT_ATTEMPTS
    assert elapsed < TRANSIENT_ATTEMPTS * (READ_TIMEOUT_MS / 1000 + 1)
    assert "did not answer in time" in outcome_of(error, "GetProject").summary


def test_a_closed_port_is_a_connection_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    session = CloudSession(config_for(port).cloud)
    with pytest.raises(CloudError) as caught:
        ask(session, "dataworks", "GetProject", id=int(WORKSPACE_ID))
    assert caught.value.code == "ConnectionError"
    assert "could not be reached" in outcome_of(caught.value, "GetProject").summary


def test_the_sdk_exception_attributes_are_carried_over() -> None:
    from alibabacloud_tea_openapi.exceptions import ClientException, ThrottlingException

    denied = ClientException(code="Forbidden.RAM", status_code=403, message="no", request_id="RID-1",
                             access_denied_detail={"AuthAction": "privatelink:ListVpcEndpoints"})
    error = translate(denied, "privatelink:ListVpcEndpoints")
    assert (error.code, error.status_code, error.request_id, error.auth_action) == (
        "Forbidden.RAM", 403, "RID-1", "privatelink:ListVpcEndpoints")
    # Older answers carry the detail only inside `data`.
    from_data = translate(ClientException(code="Forbidden.RAM", status_code=403, message="no",
                                          data={"AccessDeniedDetail": {"AuthAction": "vpc:DescribeVSwitchAttributes"}}),
                          "vpc:DescribeVSwitchAttributes")
    assert from_data.auth_action == "vpc:DescribeVSwitchAttributes"
    assert "AliyunVPCReadOnlyAccess" in (outcome_of(from_data, "x").remediation or "")
    throttled = translate(ThrottlingException(code="Throttling", status_code=400, message="slow down",
                                              request_id="RID-2", retry_after=100), "dataworks:ListNetworks")
    assert throttled.code == "Throttling" and throttled.request_id == "RID-2" and throttled.retry_after_s == 0.1


def test_policies_and_provider_names() -> None:
    assert managed_policy("dataworks:GetProject") == "AliyunDataWorksReadOnlyAccess"
    assert managed_policy("dataworks:ExecuteAdhocWorkflowInstance") == "AliyunDataWorksFullAccess"
    assert managed_policy("privatelink:ListVpcEndpoints") == "AliyunPrivateLinkReadOnlyAccess"
    assert describe_provider("default/env").startswith("environment variables")
    assert "~/.aliyun/config.json" in describe_provider("default/cli_profile/static_ak")
    assert "ECS RAM role" in describe_provider("default/ecs_ram_role")
    assert "OIDC" in describe_provider("default/oidc_role_arn")


def test_an_sts_token_from_the_chain_is_registered_with_the_redactor(apis: list[Api],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # No CAIS prefix: the pattern rules would hide it anyway.
    token = "stscanary0123456789abcdefInProc"
    monkeypatch.setenv("ALIBABA_CLOUD_SECURITY_TOKEN", token)
    assert token in redact(f"the value {token}")  # not known before the chain is read
    api = start(apis)
    # The simulator ignores the token, so the call succeeds, and the token is now a known secret.
    ask(api.session, "dataworks", "GetProject", id=int(WORKSPACE_ID))
    assert token not in redact(f"the value {token}")


def test_a_region_placeholder_in_the_endpoint_is_filled_in(apis: list[Api]) -> None:
    api = start(apis)
    cloud = dataclasses.replace(api.session.cloud, endpoint=f"127.0.0.1:{api.server.port}",
                                network_endpoints={"pvtz": "{region}.invalid"})
    session = CloudSession(cloud)
    body = ask(session, "dataworks", "ListNetworks", resource_group_id=RESOURCE_GROUP_ID)
    assert FIRST_VPC in str(body)
    assert session.client("pvtz", "cn-beijing")._endpoint == "cn-beijing.invalid"


def test_a_request_its_model_does_not_take_is_never_sent_and_is_the_tools_error(apis: list[Api]) -> None:
    api = start(apis)
    unknown_field = api.fail("dataworks", "GetProject", project=int(WORKSPACE_ID))
    unknown_action = api.fail("dataworks", "DeleteProject", id=int(WORKSPACE_ID))
    for error in (unknown_field, unknown_action):
        assert error.code == SDK_UNUSABLE and error.action.startswith("dataworks:")
        assert outcome_of(error, "GetProject").status is Status.ERROR
    assert "project" in str(unknown_field) and not api.server.calls


def test_a_workspace_that_is_no_number_is_not_asked_and_fails_clearly(apis: list[Api],
                                                                      capsys: pytest.CaptureFixture[str],
                                                                      tmp_path: Path) -> None:
    from preflight.cli.main import main

    api = start(apis)
    path = tmp_path / "named.yaml"
    path.write_text(config_text(api.server.port).replace(f"workspace: '{WORKSPACE_ID}'", "workspace: llm_demo"))
    code = main(["run", "-c", str(path), "--only", "workspace.exists", "--format", "json", "--no-reports"])
    results = {r["check"]: r for r in json.loads(capsys.readouterr().out)["results"]}
    assert code == 1 and results["workspace.exists"]["status"] == "fail"
    assert "'llm_demo' is not a workspace id" in results["workspace.exists"]["summary"]
    # The key is proven by the question that could be asked.
    assert results["cloud.credentials"]["summary"].startswith("GetResourceGroup accepted")
    assert "GetProject" not in api.server.calls


def test_without_an_override_the_generated_client_picks_the_regions_endpoint(apis: list[Api]) -> None:
    api = start(apis)
    session = CloudSession(dataclasses.replace(api.session.cloud, endpoint=None, network_endpoints={}))
    try:
        # The SDK's own endpoint maps: PrivateZone is regional in Beijing and global in Hangzhou.
        assert session.client("dataworks", "cn-shanghai")._endpoint == "dataworks.cn-shanghai.aliyuncs.com"
        assert session.client("pvtz", "cn-beijing")._endpoint == "pvtz.cn-beijing.aliyuncs.com"
        assert session.client("pvtz", "cn-hangzhou")._endpoint == "pvtz.aliyuncs.com"
    finally:
        session.close()
