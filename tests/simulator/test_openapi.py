"""The cloud API simulator on a real socket: signatures, error bodies, RAM denials, paging and each cloud fault."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

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
from preflight.simulator.signature import SignatureProblem, canonical_query, verify


@pytest.fixture
def api() -> Iterator[CloudApi]:
    server = CloudApi(World())
    server.start()
    yield server
    server.stop()


def started(world: World | None = None, faults: frozenset[str] = frozenset(), latency_s: float = 0.0) -> CloudApi:
    server = CloudApi(world or World(), faults=faults, latency_s=latency_s)
    server.start()
    return server


def client(port: int, *, key_id: str = ACCESS_KEY_ID, secret: str = ACCESS_KEY_SECRET,
           read_timeout_ms: int = 5000) -> Any:
    from alibabacloud_dataworks_public20240518.client import Client
    from alibabacloud_tea_openapi.utils_models import Config

    return Client(Config(access_key_id=key_id, access_key_secret=secret, endpoint=f"127.0.0.1:{port}",
                         protocol="http", region_id=REGION, read_timeout=read_timeout_ms, connect_timeout=2000))


def generic(port: int, action: str, version: str = "2024-05-18", **query: str) -> dict[str, Any]:
    from alibabacloud_tea_openapi.client import Client
    from alibabacloud_tea_openapi.utils_models import Config, OpenApiRequest, Params
    from darabonba.runtime import RuntimeOptions

    api = Params(action=action, version=version, protocol="HTTP", pathname="/", method="GET", auth_type="AK",
                 style="RPC", req_body_type="formData", body_type="json")
    answer: dict[str, Any] = Client(Config(access_key_id=ACCESS_KEY_ID, access_key_secret=ACCESS_KEY_SECRET,
                                           endpoint=f"127.0.0.1:{port}", protocol="http")).call_api(
        api, OpenApiRequest(query=query), RuntimeOptions())
    return answer


def get_project(port: int, **kwargs: Any) -> Any:
    from alibabacloud_dataworks_public20240518 import models

    return client(port, **kwargs).get_project(models.GetProjectRequest(id=int(WORKSPACE_ID))).body


# --- signature -------------------------------------------------------------------------------------------


def test_the_generic_client_is_accepted_and_sees_the_request_id(api: CloudApi) -> None:
    answer = generic(api.port, "GetProject", Id=WORKSPACE_ID)
    assert answer["statusCode"] == 200 and answer["body"]["Project"]["Name"] == "llm_demo"
    assert answer["body"]["RequestId"].startswith("5E1C0A6B-")
    assert answer["headers"]["content-length"] == str(len(json.dumps(answer["body"])))


def test_a_wrong_secret_is_signature_does_not_match(api: CloudApi) -> None:
    from alibabacloud_tea_openapi.exceptions import ClientException

    with pytest.raises(ClientException) as caught:
        get_project(api.port, secret="not-the-secret-000000000000")
    error = caught.value
    assert (error.code, error.status_code) == ("SignatureDoesNotMatch", 400)
    assert error.request_id and ACCESS_KEY_SECRET not in str(error) and "not-the-secret" not in str(error)


def test_an_unknown_access_key_id_is_not_found(api: CloudApi) -> None:
    from alibabacloud_tea_openapi.exceptions import ClientException

    with pytest.raises(ClientException) as caught:
        get_project(api.port, key_id="LTAI5tNobodyHasThisKey00")
    assert (caught.value.code, caught.value.status_code) == ("InvalidAccessKeyId.NotFound", 404)


def _raw_request(port: int, method: str, query: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request(method, f"/?{query}" if query else "/", body=body, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def _signed(method: str, query: str, body: bytes, secret: str = ACCESS_KEY_SECRET) -> dict[str, str]:
    """Sign by hand with the canonical request the verifier rebuilds (the SDK's own result is tested above)."""
    import hashlib
    import hmac

    body_hash = hashlib.sha256(body).hexdigest()
    headers = {"host": "127.0.0.1", "x-acs-action": "GetProject", "x-acs-version": "2024-05-18",
               "x-acs-content-sha256": body_hash, "x-acs-date": "2026-11-24T00:00:00Z"}
    signed = sorted(headers)
    lines = "".join(f"{name}:{headers[name]}\n" for name in signed)
    request = f"{method}\n/\n{canonical_query(query)}\n{lines}\n{';'.join(signed)}\n{body_hash}"
    to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(request.encode()).hexdigest()
    signature = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = (f"ACS3-HMAC-SHA256 Credential={ACCESS_KEY_ID},SignedHeaders={';'.join(signed)},"
                                f"Signature={signature}")
    return headers


def test_a_tampered_query_or_body_fails_the_signature(api: CloudApi) -> None:
    query = f"Id={WORKSPACE_ID}"
    status, body = _raw_request(api.port, "GET", query, _signed("GET", query, b""))
    assert status == 200 and body["Project"]["Id"] == int(WORKSPACE_ID)
    status, body = _raw_request(api.port, "GET", "Id=999999", _signed("GET", query, b""))
    assert (status, body["Code"]) == (400, "SignatureDoesNotMatch")
    headers = _signed("POST", query, b"a=1")
    status, body = _raw_request(api.port, "POST", query, headers, b"a=2")
    assert (status, body["Code"]) == (400, "InvalidContentSha256")
    status, body = _raw_request(api.port, "GET", query, {"x-acs-action": "GetProject"})
    assert (status, body["Code"]) == (400, "MissingAuthorization")


def test_canonical_query_is_sorted_and_rfc3986_encoded() -> None:
    assert canonical_query("b=x%20y&a=%7E%2A&c=") == "a=~%2A&b=x%20y&c="
    with pytest.raises(SignatureProblem) as caught:
        verify("GET", "", {"authorization": "Basic abc"}, b"", {ACCESS_KEY_ID: ACCESS_KEY_SECRET})
    assert caught.value.code == "InvalidAuthorization"


# --- routing, errors and paging ------------------------------------------------------------------------


def test_an_unknown_action_or_version_is_invalid_action(api: CloudApi) -> None:
    from alibabacloud_tea_openapi.exceptions import ClientException

    for action, version in (("DeleteEverything", "2024-05-18"), ("GetProject", "2099-01-01"),
                            ("DescribeZones", "2024-05-18")):
        with pytest.raises(ClientException) as caught:
            generic(api.port, action, version)
        assert (caught.value.code, caught.value.status_code) == ("InvalidAction.NotFound", 404), action


def test_a_ram_denial_names_the_action_in_access_denied_detail() -> None:
    from alibabacloud_dataworks_public20240518 import models
    from alibabacloud_tea_openapi.exceptions import ClientException

    server = started(get_scenario("ram-denied").world)
    try:
        with pytest.raises(ClientException) as caught:
            client(server.port).list_networks(models.ListNetworksRequest(resource_group_id=RESOURCE_GROUP_ID))
        error = caught.value
        assert (error.code, error.status_code) == ("Forbidden.RAM", 403)
        assert error.access_denied_detail["AuthAction"] == "dataworks:ListNetworks"
        assert error.access_denied_detail["NoPermissionType"] == "ImplicitDeny"
        assert error.access_denied_detail["AuthPrincipalType"] == "SubUser"
        # Other actions are not denied.
        assert get_project(server.port).project.status == "Available"
    finally:
        server.stop()


def test_not_found_answers_use_the_real_codes(api: CloudApi) -> None:
    from alibabacloud_dataworks_public20240518 import models
    from alibabacloud_tea_openapi.exceptions import ClientException

    sdk = client(api.port)
    calls = [
        (lambda: sdk.get_project(models.GetProjectRequest(id=42)), "Invalid.Tenant.ProjectNotExists"),
        (lambda: sdk.get_resource_group(models.GetResourceGroupRequest(id="Serverless_res_group_nope")),
         "Invalid.ResourceGroup.NotFound"),
        (lambda: sdk.get_node(models.GetNodeRequest(id="1", project_id=int(WORKSPACE_ID))), "Invalid.Node.NotFound"),
        (lambda: sdk.get_task_instance(models.GetTaskInstanceRequest(id=7)), "Invalid.TaskInstance.NotFound"),
    ]
    for call, code in calls:
        with pytest.raises(ClientException) as caught:
            call()
        assert caught.value.code == code
        assert caught.value.data["Recommend"] and caught.value.data["HostId"]


def test_paging_splits_lists_and_rejects_garbage(api: CloudApi) -> None:
    from alibabacloud_tea_openapi.exceptions import ClientException

    pages = [generic(api.port, "ListNodes", ProjectId=WORKSPACE_ID, PageSize="1", PageNumber=str(number))["body"]
             for number in (1, 2, 3)]
    assert [len(p["PagingInfo"]["Nodes"]) for p in pages] == [1, 1, 0]
    assert {p["PagingInfo"]["TotalCount"] for p in pages} == {2}
    assert pages[0]["PagingInfo"]["Nodes"][0]["Id"] != pages[1]["PagingInfo"]["Nodes"][0]["Id"]
    with pytest.raises(ClientException) as caught:
        generic(api.port, "ListNodes", ProjectId=WORKSPACE_ID, PageSize="many")
    assert caught.value.code == "InvalidParameter"


def test_keep_alive_serves_many_requests_on_one_connection(api: CloudApi) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", api.port, timeout=5)
    try:
        for _ in range(3):
            connection.request("GET", "/", headers={"x-acs-action": "GetProject"})
            response = connection.getresponse()
            assert response.getheader("Content-Length") and response.status == 400
            response.read()
        connection.request("POST", "/", body=b"", headers={"Content-Length": "nonsense"})
        response = connection.getresponse()
        assert (response.status, json.loads(response.read())["Code"]) == (400, "InvalidParameter")
    finally:
        connection.close()
    assert api.calls == {}, "unsigned requests never reach an action"


def test_latency_is_added_before_every_answer() -> None:
    server = started(latency_s=0.2)
    try:
        begun = time.monotonic()
        get_project(server.port)
        assert time.monotonic() - begun >= 0.2
    finally:
        server.stop()


# --- cloud fault scenarios ------------------------------------------------------------------------------


def test_cloud_5xx_is_a_server_exception() -> None:
    from alibabacloud_dataworks_public20240518 import models
    from alibabacloud_tea_openapi.exceptions import ServerException

    server = started(faults=get_scenario("cloud-5xx").cloud_faults)
    try:
        with pytest.raises(ServerException) as caught:
            client(server.port).get_resource_group(models.GetResourceGroupRequest(id=RESOURCE_GROUP_ID))
        assert (caught.value.code, caught.value.status_code) == ("ServiceUnavailable", 503)
        assert caught.value.request_id
    finally:
        server.stop()


def test_cloud_throttled_carries_retry_after() -> None:
    from alibabacloud_dataworks_public20240518 import models
    from alibabacloud_tea_openapi.exceptions import ThrottlingException

    server = started(faults=get_scenario("cloud-throttled").cloud_faults)
    try:
        for _ in range(2):  # always, not only the first time
            with pytest.raises(ThrottlingException) as caught:
                client(server.port).list_networks(models.ListNetworksRequest(resource_group_id=RESOURCE_GROUP_ID))
            assert caught.value.code == "Throttling.User" and caught.value.retry_after == 200
        assert server.calls["ListNetworks"] == 2
    finally:
        server.stop()


def test_cloud_not_json_is_unretryable() -> None:
    from alibabacloud_dataworks_public20240518 import models
    from darabonba.exceptions import UnretryableException

    server = started(faults=get_scenario("cloud-not-json").cloud_faults)
    try:
        with pytest.raises(UnretryableException):
            client(server.port).list_resource_group_associate_projects(
                models.ListResourceGroupAssociateProjectsRequest(resource_group_id=RESOURCE_GROUP_ID))
    finally:
        server.stop()


def test_cloud_timeout_outlasts_the_read_timeout_and_stops_early_on_shutdown() -> None:
    from darabonba.exceptions import UnretryableException

    server = started(faults=get_scenario("cloud-timeout").cloud_faults)
    try:
        begun = time.monotonic()
        with pytest.raises(UnretryableException):
            get_project(server.port, read_timeout_ms=500)
        assert 0.4 < time.monotonic() - begun < 3
    finally:
        begun = time.monotonic()
        server.stop()
        assert time.monotonic() - begun < 2, "stop() waited out the 6 s sleep"


def test_cloud_success_false_is_http_200_with_success_false() -> None:
    server = started(faults=get_scenario("cloud-success-false").cloud_faults)
    try:
        answer = generic(server.port, "GetProject", Id=WORKSPACE_ID)
        assert answer["statusCode"] == 200
        assert answer["body"]["Success"] is False and answer["body"]["Code"] and "Project" not in answer["body"]
    finally:
        server.stop()


def test_world_changes_show_through(api: CloudApi) -> None:
    server = started(replace(World(), resource_group_status="Stop", attached_workspaces=("999999",)))
    try:
        group = generic(server.port, "GetResourceGroup", Id=RESOURCE_GROUP_ID)["body"]["ResourceGroup"]
        assert group["Status"] == "Stop"
        attached = generic(server.port, "ListResourceGroupAssociateProjects", ResourceGroupId=RESOURCE_GROUP_ID)
        assert attached["body"]["ProjectIdList"] == [999999]
    finally:
        server.stop()


def test_cloud_error_code_is_the_older_success_false_shape() -> None:
    from alibabacloud_dataworks_public20240518 import models

    server = started(faults=get_scenario("cloud-error-code").cloud_faults)
    try:
        typed = client(server.port).get_resource_group(models.GetResourceGroupRequest(id=RESOURCE_GROUP_ID))
        assert typed.status_code == 200 and typed.body.resource_group is None, "the SDK raises nothing"
        answer = generic(server.port, "GetResourceGroup", Id=RESOURCE_GROUP_ID)
        body = answer["body"]
        assert answer["statusCode"] == 200
        assert (body["Success"], body["ErrorCode"], body["HttpStatusCode"]) == (False, "InternalError.System", 200)
        assert body["ErrorMessage"] and "Code" not in body and "Message" not in body and body["RequestId"]
    finally:
        server.stop()
