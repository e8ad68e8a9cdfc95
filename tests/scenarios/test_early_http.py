"""endpoint.http's unauthenticated request goes out alongside endpoint.tcp's connect, and only when it will be used."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from preflight.cli import main
from preflight.simulator.harness import Simulator
from preflight.simulator.scenarios import get_scenario


def run_against(scenario: str, args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, object], dict[str, int]]:
    with Simulator(get_scenario(scenario), run_scripts=False) as simulator:
        for name, value in simulator.environ().items():
            monkeypatch.setenv(name, value)
        config = tmp_path / "sim.yaml"
        config.write_text(simulator.config_text())
        code = main(["run", "-c", str(config), "--format", "json", "--no-reports", *args])
        requests = simulator.stats()["model"]
    return code, json.loads(capsys.readouterr().out), requests


def verdicts(report: dict[str, object], check: str) -> list[str]:
    return [r["status"] for r in report["results"] if r["check"] == check]  # type: ignore[attr-defined,index]


def test_the_early_request_is_the_one_endpoint_http_judges(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, report, requests = run_against("healthy", ["--only", "endpoint.http"], tmp_path, monkeypatch, capsys)
    answers = verdicts(report, "endpoint.http")
    assert code == 0 and answers and set(answers) == {"pass"}
    assert requests == {"GET /v1/models": len(answers)}  # one unauthenticated request per service, not two


def test_no_request_when_endpoint_http_is_not_part_of_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["--only", "endpoint.tcp"], ["--only", "endpoint.http", "--skip", "endpoint.http"]):
        code, report, requests = run_against("healthy", args, tmp_path, monkeypatch, capsys)
        assert code == 0 and set(verdicts(report, "endpoint.tcp")) == {"pass"}
        assert requests == {}, args


def test_the_request_is_sent_while_the_connect_test_is_still_going(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """The connect test is held up for 0.3 s; the unauthenticated request must start before it ends."""
    import asyncio
    import time

    from preflight.probe.local import LocalCollector

    real_tcp, real_http = LocalCollector.tcp, LocalCollector.http
    tcp_ended: dict[str, float] = {}
    http_started: dict[str, float] = {}

    async def slow_tcp(self: LocalCollector, service: object, *args: object, **kwargs: object) -> object:
        found = await real_tcp(self, service, *args, **kwargs)  # type: ignore[arg-type]
        await asyncio.sleep(0.3)
        tcp_ended[service.name] = time.monotonic()  # type: ignore[attr-defined]
        return found

    async def watched_http(self: LocalCollector, service: object, *args: object, **kwargs: object) -> object:
        http_started[service.name] = time.monotonic()  # type: ignore[attr-defined]
        return await real_http(self, service, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(LocalCollector, "tcp", slow_tcp)
    monkeypatch.setattr(LocalCollector, "http", watched_http)
    code, report, _ = run_against("healthy", ["--only", "endpoint.http"], tmp_path, monkeypatch, capsys)
    assert code == 0 and set(verdicts(report, "endpoint.http")) == {"pass"}
    assert http_started and set(http_started) == set(tcp_ended)
    assert all(http_started[name] < tcp_ended[name] for name in http_started)
