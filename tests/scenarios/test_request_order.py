"""What is sent when: a request leaves only once the checks the one that needs it depends on have passed."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from preflight.cli.main import main
from preflight.simulator.harness import Simulator
from preflight.simulator.scenarios import get_scenario

Sent = list[dict[str, Any]]


def run_against(scenario: str, args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any], dict[str, int], Sent]:
    """A run against the simulator; every request the run's httpx client sent, with when it began and ended."""
    sent: Sent = []
    real_send = httpx.AsyncClient.send

    async def watched(self: httpx.AsyncClient, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        record = {"host": request.headers.get("host"), "path": request.url.path,
                  "keyed": "authorization" in request.headers, "began": time.monotonic(), "ended": None}
        sent.append(record)
        try:
            return await real_send(self, request, **kwargs)
        finally:
            record["ended"] = time.monotonic()

    monkeypatch.setattr(httpx.AsyncClient, "send", watched)
    with Simulator(get_scenario(scenario), run_scripts=False) as simulator:
        for name, value in simulator.environ().items():
            monkeypatch.setenv(name, value)
        config = tmp_path / "sim.yaml"
        config.write_text(simulator.config_text())
        code = main(["run", "-c", str(config), "--format", "json", "--no-reports", *args])
        requests = simulator.stats()["model"]
    return code, json.loads(capsys.readouterr().out), requests, sent


def verdicts(report: dict[str, Any], check: str) -> list[str]:
    return [r["status"] for r in report["results"] if r["check"] == check]


@pytest.mark.parametrize("scenario", ["proxy-502", "redirect-other-host"])
def test_no_request_carries_the_key_when_endpoint_http_fails(scenario: str, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, report, requests, sent = run_against(scenario, [], tmp_path, monkeypatch, capsys)
    http = verdicts(report, "endpoint.http")
    assert code == 1 and http and set(http) == {"fail"}
    assert set(verdicts(report, "auth.key_valid")) == {"skip"}
    assert sent and not any(request["keyed"] for request in sent)
    assert requests == {"GET /v1/models": len(http)}  # the unauthenticated request of each service, nothing else


def test_the_connect_test_alone_sends_no_http_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["--only", "endpoint.tcp"], ["--only", "endpoint.http", "--skip", "endpoint.http"]):
        code, report, requests, sent = run_against("healthy", args, tmp_path, monkeypatch, capsys)
        assert code == 0 and verdicts(report, "endpoint.tcp") and set(verdicts(report, "endpoint.tcp")) == {"pass"}
        assert requests == {} and sent == [], args


def test_the_key_goes_only_after_the_unauthenticated_answer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Per service, the first keyed request begins after the unauthenticated one has ended, and only to the
    configured endpoint's host."""
    code, report, _, sent = run_against("healthy", [], tmp_path, monkeypatch, capsys)
    assert code == 0
    hosts = {request["host"] for request in sent}
    assert hosts and len(hosts) == len(verdicts(report, "endpoint.http"))
    for host in hosts:
        plain = [r for r in sent if r["host"] == host and not r["keyed"]]
        keyed = [r for r in sent if r["host"] == host and r["keyed"]]
        assert len(plain) == 1 and keyed, host
        assert min(r["began"] for r in keyed) >= plain[0]["ended"], host


def test_one_unauthenticated_request_per_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, report, requests, sent = run_against("healthy", ["--only", "endpoint.http"], tmp_path, monkeypatch,
                                               capsys)
    answers = verdicts(report, "endpoint.http")
    assert code == 0 and answers and set(answers) == {"pass"}
    assert requests == {"GET /v1/models": len(answers)} and not any(r["keyed"] for r in sent)


def test_a_badly_written_key_is_never_sent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, report, requests, sent = run_against("bearer-prefix", [], tmp_path, monkeypatch, capsys)
    assert code == 1
    assert set(verdicts(report, "auth.key_format")) == {"fail"}
    assert set(verdicts(report, "auth.key_valid")) == {"skip"}
    assert requests == {"GET /v1/models": len(verdicts(report, "endpoint.http"))}  # the unauthenticated ones
    assert not any(r["keyed"] for r in sent)
