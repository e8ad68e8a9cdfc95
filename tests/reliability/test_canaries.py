"""Canary secrets through every scenario and every output: console (plain and colour), reports, the bundle."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import urllib.parse
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from preflight.simulator.harness import Simulator
from preflight.simulator.scenarios import SCENARIOS, get_scenario

API_KEY = "DW-ms-canary-apikey-7f3a9c2e1b"
ACCESS_KEY_SECRET = "CanaryAccessKeySecret9b8c7d6e5f"
STS_TOKEN = "CAIS.canary-sts-token-0a1b2c3d4e5f6a7b"
CANARIES = (API_KEY, ACCESS_KEY_SECRET, STS_TOKEN)
# The slow scenarios prove nothing more about secrets than their fast siblings.
SCENARIO_NAMES = sorted(name for name in SCENARIOS if name not in ("trickle-headers", "stream-stall", "slow"))


def forms(secret: str) -> list[str]:
    return [secret, urllib.parse.quote(secret, safe=""), secret[4:-2]]


def scan(name: str, text: str) -> None:
    for canary in CANARIES:
        for form in forms(canary):
            assert form not in text, f"{canary[:8]}... ({form[:10]}) leaked into {name}"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("canary")


def canary_environment(simulator: Simulator, home: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("ALIBABA_CLOUD_", "DW_"))}
    env.update(simulator.environ())
    # The canary key is the one sent to the model service (which refuses it and echoes it back), and the canary
    # AccessKey secret and STS token are the ones the SDK signs with (the API refuses the signature).
    env.update({name: API_KEY for name in simulator.environ() if name.startswith("DW_")})
    env.update({"ALIBABA_CLOUD_ACCESS_KEY_SECRET": ACCESS_KEY_SECRET, "ALIBABA_CLOUD_SECURITY_TOKEN": STS_TOKEN,
                "HOME": str(home), "CI": "true"})
    return env


def preflight(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "preflight", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=180)


@pytest.fixture(scope="module", params=SCENARIO_NAMES)
def scenario_run(request: pytest.FixtureRequest, workdir: Path) -> Iterator[tuple[str, Path, list[str]]]:
    name = request.param
    run_dir = workdir / name
    run_dir.mkdir()
    with Simulator(get_scenario(name)) as simulator:
        env = canary_environment(simulator, run_dir)
        config = run_dir / "preflight.yaml"
        # One more service whose key is written literally in the file: a warn, and a secret all the same.
        config.write_text(simulator.config_text().replace("${DW_DEMO_QWEN_KEY}", API_KEY))
        outputs = []
        for extra in ([], ["--color", "always"], ["--format", "json"]):
            result = preflight(env, run_dir, "run", "-c", str(config), "--report-dir", str(run_dir / "reports"),
                               *extra)
            assert result.returncode in (0, 1), result.stderr
            assert "Traceback" not in result.stderr
            outputs += [result.stdout, result.stderr]
        bundle = preflight(env, run_dir, "bundle", "-o", str(run_dir / "bundle.zip"), "-c", str(config),
                           "--report-dir", str(run_dir / "reports"))
        assert bundle.returncode == 0, bundle.stderr
        outputs += [bundle.stdout, bundle.stderr]
    yield name, run_dir, outputs


def test_console_output_has_no_secret(scenario_run: tuple[str, Path, list[str]]) -> None:
    name, _, outputs = scenario_run
    for index, text in enumerate(outputs):
        scan(f"{name} output #{index}", text)


def test_reports_have_no_secret(scenario_run: tuple[str, Path, list[str]]) -> None:
    name, run_dir, _ = scenario_run
    reports = sorted((run_dir / "reports").iterdir())
    assert [path.name for path in reports] == ["junit.xml", "report.html", "report.json", "report.md"]
    for path in reports:
        scan(f"{name} {path.name}", path.read_text(encoding="utf-8"))
    if name == "healthy":  # the canary key really went out and came back in the server's 401 body
        report = (run_dir / "reports" / "report.json").read_text(encoding="utf-8")
        assert "Invalid API key '[REDACTED]'" in report


def test_the_bundle_has_no_secret_and_says_what_was_masked(scenario_run: tuple[str, Path, list[str]]) -> None:
    name, run_dir, _ = scenario_run
    with zipfile.ZipFile(run_dir / "bundle.zip") as archive:
        names = archive.namelist()
        assert {"REDACTIONS.txt", "environment.json", "resolver.txt", "config/preflight.yaml"} <= set(names)
        for member in names:
            scan(f"{name} bundle:{member}", archive.read(member).decode("utf-8", "replace"))
        redactions = archive.read("REDACTIONS.txt").decode()
        config = archive.read("config/preflight.yaml").decode()
    assert "config/preflight.yaml" in redactions and "a literal api_key" in redactions
    assert "${DW_DEMO_CHAT_KEY}" in config  # references stay as written


def test_the_in_process_console_rendering_masks_too() -> None:
    from preflight.model import CheckResult, RunReport, Status
    from preflight.redact import REDACTOR
    from preflight.report.console import LiveConsole, render_final

    REDACTOR.add(ACCESS_KEY_SECRET, "access_key_secret")
    result = CheckResult("x.y", "X", "t", None, Status.FAIL, f"refused {ACCESS_KEY_SECRET}",
                         remediation=f"Authorization: Bearer {API_KEY}")
    out = io.StringIO()
    live = LiveConsole(out, plain=True, total=1)
    live.finished(result)
    live.stage("t", f"submitted with {API_KEY}")
    render_final(RunReport({}, "now", 1.0, (result,)), out, color=True)
    scan("console", out.getvalue())
