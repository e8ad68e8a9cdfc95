"""A world in several regions: each region's cloud API on its own port, answering for its own model services."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from preflight.config import parse_config
from preflight.simulator.harness import CLOUD_PRODUCTS, Simulator
from preflight.simulator.scenarios import (
    ACCESS_KEY_ID,
    ACCESS_KEY_SECRET,
    FIRST_VPC,
    REGION,
    get_scenario,
    scaled_world,
)


def config(port: int, region: str) -> Any:
    from alibabacloud_tea_openapi.utils_models import Config

    return Config(access_key_id=ACCESS_KEY_ID, access_key_secret=ACCESS_KEY_SECRET, endpoint=f"127.0.0.1:{port}",
                  protocol="http", region_id=region)


def test_one_region_is_one_cloud_api() -> None:
    with Simulator(get_scenario("healthy")) as simulator:
        assert simulator.cloud_ports == {REGION: simulator.cloud_port}
        assert ", endpoints: {" not in simulator.config_text()


def test_each_region_answers_for_its_own_services_and_counts_its_own_calls() -> None:
    from alibabacloud_privatelink20200415 import models as pl
    from alibabacloud_privatelink20200415.client import Client as PrivateLink
    from alibabacloud_pvtz20180101 import models as pvtz
    from alibabacloud_pvtz20180101.client import Client as Pvtz

    world = scaled_world(6, targets=3, regions=2)
    scenario = dataclasses.replace(get_scenario("healthy"), world=world, rate_limit=1000)
    with Simulator(scenario) as simulator:
        assert list(simulator.cloud_ports) == [REGION, "cn-hangzhou"] and simulator.cloud_port == \
            simulator.cloud_ports[REGION]
        seen = {}
        for region, port in simulator.cloud_ports.items():
            tree = Pvtz(config(port, region)).describe_zone_vpc_tree(pvtz.DescribeZoneVpcTreeRequest()).body
            endpoints = PrivateLink(config(port, region)).list_vpc_endpoints(
                pl.ListVpcEndpointsRequest(region_id=region, vpc_id=FIRST_VPC)).body.endpoints
            seen[region] = sorted(zone.zone_name.split(".")[0] for zone in tree.zones.zone)
            assert {e.region_id for e in endpoints} == {region}
            assert all(f".{region}." in zone.zone_name for zone in tree.zones.zone)
        # Target t is in region t mod 2, and service i belongs to target i mod 3.
        assert seen == {REGION: ["ms-bench00000", "ms-bench00002", "ms-bench00003", "ms-bench00005"],
                        "cn-hangzhou": ["ms-bench00001", "ms-bench00004"]}
        stats = simulator.stats()
        assert stats["cloud_by_region"] == {region: {"DescribeZoneVpcTree": 1, "ListVpcEndpoints": 1}
                                            for region in simulator.cloud_ports}
        assert stats["cloud"] == {"DescribeZoneVpcTree": 2, "ListVpcEndpoints": 2}
        assert simulator.deviations() == [] and simulator.refusals() == []
        parsed = parse_config(simulator.config_text(), "regions.yaml", {**os.environ, **simulator.environ()})
        assert [parsed.region_of(target) for target in parsed.targets] == [REGION, "cn-hangzhou", REGION]
        hosts = [service.endpoint for service in parsed.targets[1].services]
        assert all(".cn-hangzhou.dataworks-model.aliyuncs.com:" in host for host in hosts)
        port = simulator.cloud_ports["cn-hangzhou"]
        assert {product: parsed.cloud.endpoint_for("cn-hangzhou", product) for product in CLOUD_PRODUCTS} == \
            dict.fromkeys(CLOUD_PRODUCTS, f"127.0.0.1:{port}")
        assert parsed.cloud.endpoint_for(REGION) == f"127.0.0.1:{simulator.cloud_port}"
