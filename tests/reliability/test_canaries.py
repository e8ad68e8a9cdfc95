"""Canary secrets through every scenario and every output: console (plain and colour), reports, the bundle."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import os
import subprocess
import sys
import threading
import urllib.parse
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from preflight.simulator.harness import Simulator
from preflight.simulator.scenarios import ACCESS_KEY_ID, ACCESS_KEY_SECRET, SCENARIOS, World, get_scenario

# The canaries are the real secrets of the simulated account: the service accepts the keys, the cloud API
# verifies signatures made with the AccessKey secret, and the SDK sends the STS token with every call.
API_KEY = "DW-ms-canary-apikey-7f3a9c2e1b"
CHAT_KEY = "DW-ms-canary-chatkey-4d5e6f7a8b"
BGE_KEY = "DWcanaryBgeKeyNoDash91c2e3f4"  # no DW- shape: only its registration masks it
ECHO_KEY = "DWcanaryEchoedKey3b2a1c0d9e"  # refused, and echoed in the 401 body; no DW- shape, so only registered
ACCESS_KEY_SECRET_CANARY = "CanaryAccessKeySecret9b8c7d6e5f"
STS_TOKEN = "CAIS.canary-sts-token-0a1b2c3d4e5f6a7b"
CANARIES = (API_KEY, CHAT_KEY, BGE_KEY, ECHO_KEY, ACCESS_KEY_SECRET_CANARY, STS_TOKEN)
# What `preflight demo` sends: the simulator's own keys and secret, plus the STS token from the environment.
DEMO_SECRETS = (*(model.api_key for model in World().models), ACCESS_KEY_SECRET, STS_TOKEN)
CANARY_KEYS = {"completion": API_KEY, "chat": CHAT_KEY, "embedding": BGE_KEY}


def forms(secret: str) -> list[str]:
    """The secret, URL-encoded, base64-encoded, and a middle part (a truncated excerpt leaks that)."""
    return [secret, urllib.parse.quote(secret, safe=""), base64.b64encode(secret.encode()).decode().rstrip("="),
            secret[4:-2]]


def scan(name: str, text: str, secrets: tuple[str, ...] = CANARIES) -> None:
    for secret in secrets:
        for form in forms(secret):
            assert form not in text, f"{secret[:8]}... ({form[:10]}...) leaked into {name}"
    # AccessKey ids are shown by their first four characters only.
    assert ACCESS_KEY_ID not in text and ACCESS_KEY_ID[4:] not in text, f"the AccessKey id is whole in {name}"


def canary_scenario(name: str) -> Simulator:
    scenario = get_scenario(name)
    world = scenario.world
    secret = ACCESS_KEY_SECRET_CANARY if world.access_key_secret == ACCESS_KEY_SECRET else world.access_key_secret
    models = tuple(dataclasses.replace(model, api_key=CANARY_KEYS[model.kind]) for model in world.models)
    return Simulator(dataclasses.replace(scenario, world=dataclasses.replace(world, models=models,
                                                                            access_key_secret=secret)))


def clean_environment(home: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("ALIBABA_CLOUD_", "DW_"))}
    env.update({"HOME": str(home), "CI": "true", "ALIBABA_CLOUD_SECURITY_TOKEN": STS_TOKEN,
                "PYTHONDONTWRITEBYTECODE": "1"})
    return env


def canary_config(simulator: Simulator) -> str:
    qwen = next(model for model in simulator.world.models if model.kind == "completion")
    # The completion key is written in the file (a warn, and a secret all the same); one more service sends a
    # key the service refuses, which it echoes back.
    text = simulator.config_text().replace("${DW_DEMO_QWEN_KEY}", API_KEY)
    endpoint = simulator.endpoint_of(qwen.service_id)
    return text + (f"      - name: echo\n        kind: completion\n        endpoint: {endpoint}\n"
                   "        api_key: ${DW_CANARY_ECHO_KEY}\n        model: qwen3-1.7b\n")


def start(env: dict[str, str], cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "preflight", *args], env=env, cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


class Terminal:
    """A run on a pseudo-terminal, so the live spinner and the coloured table are what gets scanned."""

    def __init__(self, env: dict[str, str], cwd: Path, *args: str) -> None:
        primary, secondary = os.openpty()
        env = {**{k: v for k, v in env.items() if k != "CI"}, "TERM": "xterm-256color", "COLUMNS": "120"}
        self.process = subprocess.Popen([sys.executable, "-m", "preflight", *args], env=env, cwd=cwd,
                                        stdin=subprocess.DEVNULL, stdout=secondary, stderr=secondary)
        os.close(secondary)
        self.chunks: list[bytes] = []
        self.reader = threading.Thread(target=self._read, args=(primary,), daemon=True)
        self.reader.start()

    def _read(self, primary: int) -> None:
        try:
            while chunk := os.read(primary, 65536):
                self.chunks.append(chunk)
        except OSError:  # EIO once the child has closed the terminal
            pass
        finally:
            os.close(primary)

    def finish(self) -> list[str]:
        self.process.wait(timeout=180)
        self.reader.join(timeout=10)
        assert self.process.returncode in (0, 1)
        return [b"".join(self.chunks).decode("utf-8", "replace")]


def finish(process: subprocess.Popen[str], codes: tuple[int, ...] = (0, 1)) -> list[str]:
    stdout, stderr = process.communicate(timeout=180)
    assert process.returncode in codes, stderr
    return [stdout, stderr]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("canary")


@pytest.fixture(scope="module", params=sorted(SCENARIOS))
def scenario_run(request: pytest.FixtureRequest, workdir: Path) -> Iterator[tuple[str, Path, list[str], list[str]]]:
    name = request.param
    run_dir = workdir / name
    run_dir.mkdir()
    with canary_scenario(name) as simulator:
        env = clean_environment(run_dir)
        env.update(simulator.environ())
        env.update({"ALIBABA_CLOUD_ACCESS_KEY_SECRET": ACCESS_KEY_SECRET_CANARY, "DW_CANARY_ECHO_KEY": ECHO_KEY})
        config = run_dir / "preflight.yaml"
        config.write_text(canary_config(simulator))
        reports = str(run_dir / "reports")
        # The slow scenarios wait on purpose; running the outputs side by side keeps the suite short.
        runs = [start(env, run_dir, "run", "-c", str(config), "--report-dir", reports),
                start(env, run_dir, "run", "-c", str(config), "--no-reports", "--color", "always"),
                start(env, run_dir, "run", "-c", str(config), "--no-reports", "--format", "json"),
                start(clean_environment(run_dir), run_dir, "demo", "--scenario", name, "--report-dir", "demo-reports",
                      "--color", "always")]
        terminal = Terminal(env, run_dir, "run", "-c", str(config), "--no-reports")
        outputs = [text for process in runs[:3] for text in finish(process)] + terminal.finish()
        demo_outputs = finish(runs[3])
    bundle = start(env, run_dir, "bundle", "-o", str(run_dir / "bundle.zip"), "-c", str(config), "--report-dir",
                   reports)
    outputs += finish(bundle, (0,))
    yield name, run_dir, outputs, demo_outputs


def test_console_output_has_no_secret(scenario_run: tuple[str, Path, list[str], list[str]]) -> None:
    name, _, outputs, demo_outputs = scenario_run
    for index, text in enumerate(outputs):
        scan(f"{name} run output #{index}", text)
    assert "\x1b[" in outputs[2], "--color always draws the terminal rendering"
    assert "\x1b[" in outputs[6] and "\r" in outputs[6], "the live progress drew on the pseudo-terminal"
    for index, text in enumerate(demo_outputs):
        scan(f"{name} demo output #{index}", text, DEMO_SECRETS)


def test_no_output_shows_a_traceback(scenario_run: tuple[str, Path, list[str], list[str]]) -> None:
    name, _, outputs, demo_outputs = scenario_run
    for index, text in enumerate(outputs + demo_outputs):
        assert "Traceback" not in text and "internal error" not in text, f"{name} output #{index}:\n{text}"


def test_reports_have_no_secret(scenario_run: tuple[str, Path, list[str], list[str]]) -> None:
    name, run_dir, _, _ = scenario_run
    for folder, secrets in (("reports", CANARIES), ("demo-reports", DEMO_SECRETS)):
        reports = sorted((run_dir / folder).iterdir())
        assert [path.name for path in reports] == ["junit.xml", "report.html", "report.json", "report.md"]
        for path in reports:
            scan(f"{name} {folder}/{path.name}", path.read_text(encoding="utf-8"), secrets)
    if name == "healthy":  # the canaries really were used: accepted where they are right, echoed where refused
        report = json.loads((run_dir / "reports" / "report.json").read_text(encoding="utf-8"))
        status = {(r["service"], r["check"]): r["status"] for r in report["results"]}
        assert status[(None, "cloud.credentials")] == "pass"  # signed with the canary AccessKey secret
        assert status[("qwen", "inference.completion")] == status[("bge-m3", "inference.embedding")] == "pass"
        assert status[("echo", "auth.key_valid")] == "fail"
        assert "Invalid API key '[REDACTED]'" in json.dumps(report)


def test_the_bundle_has_no_secret_and_says_what_was_masked(
        scenario_run: tuple[str, Path, list[str], list[str]]) -> None:
    name, run_dir, _, _ = scenario_run
    with zipfile.ZipFile(run_dir / "bundle.zip") as archive:
        names = archive.namelist()
        assert {"REDACTIONS.txt", "environment.json", "resolver.txt", "config/preflight.yaml"} <= set(names)
        for member in names:
            scan(f"{name} bundle:{member}", archive.read(member).decode("utf-8", "replace"))
        redactions = archive.read("REDACTIONS.txt").decode()
        config = archive.read("config/preflight.yaml").decode()
    assert "config/preflight.yaml" in redactions and "api_key (a value written in the file)" in redactions
    assert "${DW_DEMO_CHAT_KEY}" in config and "${DW_CANARY_ECHO_KEY}" in config  # references stay as written


def test_the_in_process_console_rendering_masks_too() -> None:
    from preflight.engine.model import CheckResult, RunReport, Status
    from preflight.engine.redact import REDACTOR
    from preflight.report.console import LiveConsole, render_final

    REDACTOR.add(ACCESS_KEY_SECRET_CANARY, "access_key_secret")
    result = CheckResult("x.y", "X", "t", None, Status.FAIL, f"refused {ACCESS_KEY_SECRET_CANARY}",
                         remediation=f"Authorization: Bearer {API_KEY}")
    out = io.StringIO()
    live = LiveConsole(out, plain=True, total=1)
    live.finished(result)
    live.stage("t", f"submitted with {API_KEY}")
    render_final(RunReport({}, "now", 1.0, (result,)), out, color=True)
    scan("console", out.getvalue())


def test_the_cli_registers_environment_secrets_before_any_command(monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from preflight.cli.main import main
    from preflight.engine.redact import MASK, redact

    secret, token = "CanaryCliStartSecret0001", "CanaryCliStartToken0002"
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", secret)
    monkeypatch.setenv("ALIBABA_CLOUD_SECURITY_TOKEN", token)
    assert redact(secret) == secret  # not known before
    assert main(["list", "--format", "json"]) == 0
    capsys.readouterr()
    assert redact(f"{secret} {token}") == f"{MASK} {MASK}"
