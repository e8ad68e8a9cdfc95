"""The DNS and TCP judges name the real trouble, and advise --from resource-group only when there is a group."""

from __future__ import annotations

from typing import Any

import pytest

from checks.judges.dns import judge_dns
from checks.judges.tcp import judge_tcp
from preflight.engine.model import Status

HOST = "ms-abc.cn-beijing.dataworks-model.aliyuncs.com"


def failed_dns(error: str, detail: str, resolver: str = "10.0.0.2:53", **extra: Any) -> dict[str, Any]:
    return {"host": HOST, "answers": [], "resolver": resolver, "answered_by": None, "error": error,
            "detail": detail, **extra}


@pytest.mark.parametrize(("error", "detail", "summary", "fix"), [
    ("refused", "10.0.0.2:53 answered REFUSED", "was refused by the resolver via resolver 10.0.0.2:53: 10.0.0.2:53 "
     "answered REFUSED", "refused to answer"),
    ("servfail", "10.0.0.2:53 answered SERVFAIL", "could not be resolved (SERVFAIL)", "SERVFAIL"),
    ("timeout", "no answer within 3 s", "got no answer in time via resolver 10.0.0.2:53: no answer within 3 s",
     "port 53"),
    ("unreachable", f"{HOST}: Temporary failure in name resolution",
     "resolver unreachable via resolver 10.0.0.2:53: " + f"{HOST}: Temporary failure in name resolution",
     "could be reached"),
])
def test_a_resolvers_trouble_is_named_with_its_reason_in_the_summary(error: str, detail: str, summary: str,
                                                                     fix: str) -> None:
    outcome = judge_dns(failed_dns(error, detail))
    assert outcome.status is Status.FAIL and summary in outcome.summary, outcome.summary
    assert fix in outcome.remediation and "allowlist" not in outcome.remediation


@pytest.mark.parametrize(("error", "words"), [("nxdomain", "does not exist (NXDOMAIN)"),
                                              ("no-answer", "has no address record (NODATA)")])
def test_a_missing_record_on_a_model_domain_advises_by_the_config(error: str, words: str) -> None:
    observation = failed_dns(error, "", answered_by="10.0.0.2:53")
    grouped = judge_dns(observation, resource_group=True)
    alone = judge_dns(observation, resource_group=False)
    for outcome in (grouped, alone):
        assert outcome.status is Status.FAIL and words in outcome.summary and "allowlist" in outcome.remediation
    assert "--from resource-group" in grouped.remediation
    assert "--from resource-group" not in alone.remediation and "inside one of those VPCs" in alone.remediation


def test_the_resolver_that_answered_is_named() -> None:
    outcome = judge_dns({"host": HOST, "answers": ["10.1.1.1"], "resolver": "10.0.0.2:53,10.0.0.3:53",
                         "answered_by": "10.0.0.3:53", "error": None})
    assert outcome.status is Status.PASS and outcome.summary.endswith("via 10.0.0.3:53")
    assert outcome.evidence["resolver"] == "10.0.0.2:53,10.0.0.3:53"


def test_a_public_answer_advises_the_resource_group_only_when_there_is_one() -> None:
    observation = {"host": HOST, "answers": ["47.93.1.1"], "resolver": "system", "answered_by": "system"}
    assert "resource group" in judge_dns(observation).remediation
    assert "resource group" not in judge_dns(observation, resource_group=False).remediation


def test_an_unreachable_address_advises_the_resource_group_only_when_there_is_one() -> None:
    observation = {"host": HOST, "address": "10.0.0.5", "port": 80, "connected": False, "error": "unreachable",
                   "detail": "No route to host"}
    assert "--from resource-group" in judge_tcp(observation).remediation
    alone = judge_tcp(observation, resource_group=False)
    assert alone.status is Status.FAIL and "--from resource-group" not in alone.remediation
    assert "no route" in alone.remediation.lower()
