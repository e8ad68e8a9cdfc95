"""The simulated gateway's flow control: a bucket per action, refilled at the limit, answered as Throttling.User."""

from __future__ import annotations

import time
from typing import Any

import pytest

from preflight.simulator.flowcontrol import FlowControl, default_burst
from preflight.simulator.harness import Simulator
from preflight.simulator.scenarios import (
    ACCESS_KEY_ID,
    ACCESS_KEY_SECRET,
    REGION,
    RESOURCE_GROUP_ID,
    WORKSPACE_ID,
    get_scenario,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_the_rate_and_keeps_actions_apart() -> None:
    clock = Clock()
    flow = FlowControl(10, 2, clock=clock)
    assert [flow.admit("dataworks", REGION, "GetProject") for _ in range(2)] == [0.0, 0.0]
    assert flow.admit("dataworks", REGION, "GetProject") == pytest.approx(0.1)
    assert flow.admit("dataworks", REGION, "ListNetworks") == 0.0, "another action has its own bucket"
    assert flow.admit("dataworks", "cn-hangzhou", "GetProject") == 0.0, "and another region"
    clock.now += 0.1
    assert flow.admit("dataworks", REGION, "GetProject") == 0.0
    clock.now += 60  # an idle bucket fills up to its burst, no further
    assert [flow.admit("dataworks", REGION, "GetProject") for _ in range(3)][2] > 0


def test_the_default_burst_is_small_and_a_rate_must_be_positive() -> None:
    assert (default_burst(20), default_burst(2)) == (4.0, 1.0)
    with pytest.raises(ValueError):
        FlowControl(0)


def client(port: int) -> Any:
    from alibabacloud_dataworks_public20240518.client import Client
    from alibabacloud_tea_openapi.utils_models import Config

    return Client(Config(access_key_id=ACCESS_KEY_ID, access_key_secret=ACCESS_KEY_SECRET, region_id=REGION,
                         endpoint=f"127.0.0.1:{port}", protocol="http"))


def test_a_call_past_the_limit_is_throttling_user_429_without_retry_after() -> None:
    from alibabacloud_dataworks_public20240518 import models
    from alibabacloud_tea_openapi.exceptions import ClientException

    with Simulator(get_scenario("healthy"), rate_limit=4, rate_burst=1) as simulator:
        sdk = client(simulator.cloud_port)
        request = models.GetProjectRequest(id=int(WORKSPACE_ID))
        assert sdk.get_project(request).body.project.status == "Available"
        with pytest.raises(ClientException) as caught:
            sdk.get_project(request)
        error = caught.value
        assert (error.code, error.status_code) == ("Throttling.User", 429)
        assert error.message.endswith(error.request_id) and "flow control" in error.message
        assert sdk.get_resource_group(models.GetResourceGroupRequest(id=RESOURCE_GROUP_ID)).body.resource_group
        time.sleep(0.3)
        assert sdk.get_project(request).body.project.status == "Available", "the bucket refills at the rate"
        stats = simulator.stats()
    assert stats["throttled"] == {"GetProject": 1} and stats["cloud"]["GetProject"] == 3


def test_the_flow_control_scenario_limits_and_a_simulator_can_override_it() -> None:
    scenario = get_scenario("cloud-flow-control")
    assert scenario.rate_limit == 2 and scenario.root_cause is None
    with Simulator(scenario) as limited:
        cloud = limited.cloud
        assert cloud is not None and cloud.flow is not None and cloud.flow.rate == 2
    with Simulator(scenario, rate_limit=0) as unlimited:
        assert unlimited.cloud is not None and unlimited.cloud.flow is None
