"""In-network at scale: one collector per resource group for every target on it, polled with a doubling backoff."""

from __future__ import annotations

import ast
import asyncio
import itertools
import json
import re
import time
from dataclasses import replace

from preflight.config import parse_config
from preflight.probe.logs import encode_payload
from preflight.probe.submit import POLL_BACKOFF_S, Follower, group_plan, resource_groups
from tests.innetwork.test_submit import CALLER, FakeDataWorks, node_log

CONFIG = """
version: 1
region: cn-beijing
targets:
  - {name: a, workspace: 4242, resource_group: rg_1, services: [{name: s1, kind: chat, endpoint: 'http://ms-a1.cn-beijing.dataworks-model.aliyuncs.com'}]}
  - {name: b, workspace: 4242, resource_group: rg_1, services: [{name: s2, kind: chat, endpoint: 'http://ms-b2.cn-beijing.dataworks-model.aliyuncs.com'}, {name: s3, kind: chat, endpoint: 'http://ms-b3.cn-beijing.dataworks-model.aliyuncs.com'}]}
  - {name: c, workspace: 4242, resource_group: rg_2, services: []}
  - {name: d, workspace: 4242, resource_group: rg_1, region: cn-shanghai, services: []}
"""  # noqa: E501


def test_targets_on_one_group_in_one_region_share_one_collector() -> None:
    config = parse_config(CONFIG, "fleet.yaml", {})
    groups = resource_groups(config, list(config.targets))
    assert [[target.name for target in members] for members in groups] == [["a", "b"], ["c"], ["d"]]
    plan = group_plan(config, groups[0], send_key=False, budget_s=60)
    assert [(observed["name"], [service["name"] for service in observed["services"]])
            for observed in plan["targets"]] == [("a", ["s1"]), ("b", ["s2", "s3"])]
    assert plan["origin"] == "resource-group:rg_1"


def test_one_submission_follows_a_group_and_brings_back_every_member() -> None:
    config = parse_config(CONFIG, "fleet.yaml", {})
    members = resource_groups(config, list(config.targets))[0]
    payload = {"version": 1, "origin": "resource-group:rg_1", "python": "3.6.15",
               "targets": {"a": {"s1": {"dns": {}}}, "b": {"s2": {"dns": {}}, "s3": {"dns": {}}}}}
    api = FakeDataWorks(["Running", "Success"], node_log(encode_payload(payload)))
    follower = Follower(config, members[0], api, send_key=False, deadline=time.monotonic() + 20,
                        stage=lambda *_: None, backoff=(0.01, 0.05), members=members, owner=CALLER)
    record = asyncio.run(follower.run())
    assert record["status"] == "Success" and api.actions().count("ExecuteAdhocWorkflowInstance") == 1
    script = api.calls[0][2]["Tasks"][0]["Script"]["Content"]
    plan = json.loads(ast.literal_eval(re.search(r"^PLAN = json.loads\((.*)\)$", script, re.M).group(1)))
    assert [(observed["name"], len(observed["services"])) for observed in plan["targets"]] == [("a", 1), ("b", 2)]


def test_polling_backs_off_doubling_up_to_its_cap() -> None:
    assert POLL_BACKOFF_S == (1.0, 8.0)
    config = replace(parse_config(CONFIG, "fleet.yaml", {}))
    api = FakeDataWorks(["Running"] * 7 + ["Failure"], node_log("boom"))
    follower = Follower(config, config.targets[2], api, send_key=False, deadline=time.monotonic() + 30,
                        stage=lambda *_: None, backoff=(0.05, 0.2), owner=CALLER)
    asyncio.run(follower.run())
    polls = [stamp for stamp, action, _ in api.calls if action in ("ListTaskInstances", "GetTaskInstance")]
    gaps = [later - earlier for earlier, later in itertools.pairwise(polls)]
    expected = [0.05, 0.1, 0.2, 0.2, 0.2, 0.2, 0.2]
    assert len(gaps) == len(expected), gaps
    assert all(want - 0.005 <= gap < want + 0.05 for gap, want in zip(gaps, expected, strict=True)), gaps
