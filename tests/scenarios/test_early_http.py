"""endpoint.http's unauthenticated request, and auth.key_valid's to a DataWorks model domain, go out alongside
endpoint.tcp's connect, and only when they will be used."""

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


@pytest.mark.parametrize(("observation", "check", "per_service"), [("http", "endpoint.http", 1),
                                                                    ("models", "auth.key_valid", 2)])
def test_the_request_is_sent_while_the_connect_test_is_still_going(observation: str, check: str, per_service: int,
                                                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """The connect test is held up for 0.3 s; the unauthenticated request, and to a DataWorks model domain with a
    well-formed key the keyed one, must start before it ends, and the check judges that very answer: one
    unauthenticated request per service, and one keyed when auth.key_valid runs."""
    import asyncio
    import time

    from preflight.probe.local import LocalCollector

    real_tcp, real_request = LocalCollector.tcp, getattr(LocalCollector, observation)
    tcp_ended: dict[str, float] = {}
    request_started: dict[str, float] = {}

    async def slow_tcp(self: LocalCollector, service: object, *args: object, **kwargs: object) -> object:
        found = await real_tcp(self, service, *args, **kwargs)  # type: ignore[arg-type]
        await asyncio.sleep(0.3)
        tcp_ended[service.name] = time.monotonic()  # type: ignore[attr-defined]
        return found

    async def watched(self: LocalCollector, service: object, *args: object, **kwargs: object) -> object:
        request_started[service.name] = time.monotonic()  # type: ignore[attr-defined]
        return await real_request(self, service, *args, **kwargs)

    monkeypatch.setattr(LocalCollector, "tcp", slow_tcp)
    monkeypatch.setattr(LocalCollector, observation, watched)
    code, report, requests = run_against("healthy", ["--only", check], tmp_path, monkeypatch, capsys)
    judged = verdicts(report, check)
    assert code == 0 and judged and set(judged) == {"pass"}
    assert request_started and set(request_started) == set(tcp_ended)
    assert all(request_started[name] < tcp_ended[name] for name in request_started)
    assert requests == {"GET /v1/models": per_service * len(judged)}


@pytest.mark.parametrize("args", [["--only", "endpoint.http"],
                                  ["--only", "auth.key_valid", "--skip", "auth.key_format"],
                                  ["--only", "auth.key_valid", "--skip", "endpoint.http"]])
def test_the_key_goes_early_only_when_auth_key_valid_and_its_dependencies_run(
        args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from preflight.probe.local import LocalCollector

    keyed: list[str] = []
    real_models = LocalCollector.models

    async def watched_models(self: LocalCollector, service: object, *rest: object, **kwargs: object) -> object:
        keyed.append(service.name)  # type: ignore[attr-defined]
        return await real_models(self, service, *rest, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(LocalCollector, "models", watched_models)
    run_against("healthy", args, tmp_path, monkeypatch, capsys)
    assert keyed == []


def test_a_badly_written_key_is_never_sent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, report, requests = run_against("bearer-prefix", [], tmp_path, monkeypatch, capsys)
    assert code == 1
    assert set(verdicts(report, "auth.key_format")) == {"fail"}
    assert set(verdicts(report, "auth.key_valid")) == {"skip"}
    assert requests == {"GET /v1/models": len(verdicts(report, "endpoint.http"))}  # the unauthenticated ones


@pytest.mark.parametrize(("endpoint", "early"), [
    ("http://ms-abc123.cn-shanghai.dataworks-model.aliyuncs.com", True),
    ("https://ms-abc123.cn-shanghai.dataworks-model.aliyuncs.com", False),  # endpoint.url warns
    ("http://ms-abc123.cn-beijing.dataworks-model.aliyuncs.com", False),  # another region: endpoint.url fails
    ("http://127.0.0.1:8000", False),  # a generic OpenAI-compatible server
])
def test_the_key_goes_early_only_to_a_dataworks_model_domain_of_the_region(endpoint: str, early: bool) -> None:
    from checks.endpoint import key_goes_early
    from preflight.config import Config, ServiceConfig, TargetConfig
    from preflight.context import Context, Resources

    every = frozenset({"endpoint.http", "auth.key_format", "auth.key_valid"})
    for key, checks, expected in (("DW-ms-abc123-0000000000", every, early), ("Bearer DW-ms-abc", every, False),
                                  ("DW-ms-abc123-0000000000", every - {"auth.key_format"}, False),
                                  ("DW-ms-abc123-0000000000", None, False)):
        service = ServiceConfig(name="qwen", kind="llm", endpoint=endpoint, api_key=key)
        target = TargetConfig(name="prod", services=(service,))
        config = Config(region="cn-shanghai", targets=(target,))
        context = Context(config=config, target=target, service=service, resources=Resources(config, checks=checks))
        assert key_goes_early(context) is expected, (endpoint, key, checks)
