"""`preflight ingest`: a saved node log becomes the usual reports; a broken log is one clear message."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from preflight.cli.main import main
from preflight.config import parse_config
from preflight.probe.logs import MARKER
from preflight.probe.script import build_plan, build_shell_script
from preflight.simulator.harness import Simulator
from preflight.simulator.scenarios import get_scenario


def saved_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Simulator]:
    simulator = Simulator(get_scenario("healthy")).start()
    for name, value in simulator.environ().items():
        monkeypatch.setenv(name, value)
    config_path = tmp_path / "preflight.yaml"
    config_path.write_text(simulator.config_text())
    config = parse_config(simulator.config_text(), str(config_path))
    script = build_shell_script(build_plan(config, config.targets[0], send_key=False))
    env = {"PATH": os.environ["PATH"], "PREFLIGHT_NAMESERVERS": f"127.0.0.1:{simulator.dns_port}"}
    result = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, timeout=60, env=env)
    log = tmp_path / "node.log"
    lines = result.stdout.splitlines()
    log.write_text("".join(f"2026-11-24 10:00:0{n} INFO {line}\n" for n, line in enumerate(lines)))
    return log, config_path, simulator


def test_a_saved_log_is_judged_and_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    log, config, simulator = saved_log(tmp_path, monkeypatch)
    try:
        code = main(["ingest", str(log), "-c", str(config), "--format", "json", "--report-dir",
                     str(tmp_path / "reports")])
    finally:
        simulator.stop()
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    dns = next(r for r in report["results"] if r["check"] == "endpoint.dns" and r["service"] == "qwen")
    assert dns["status"] == "pass" and dns["origin"].startswith("resource-group:")
    assert (tmp_path / "reports" / "report.html").exists()


@pytest.mark.parametrize(("mangle", "message"), [
    (lambda text: text.replace(MARKER, "SOMETHING-ELSE"), "has no PREFLIGHT-OBSERVATIONS line"),
    (lambda text: text[: text.index(MARKER) + 200] + "\n", "is truncated"),
    (lambda text: text + text.replace(" v1 ", " v1 ", 1).replace("INFO", "WARN")[: len(text) // 2] + "\n",
     "PREFLIGHT-OBSERVATIONS"),
])
def test_a_broken_log_is_one_clear_line(mangle: object, message: str, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    log, config, simulator = saved_log(tmp_path, monkeypatch)
    simulator.stop()
    log.write_text(mangle(log.read_text()))  # type: ignore[operator]
    code = main(["ingest", str(log), "-c", str(config), "--no-reports"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("preflight: ") and message in err and err.count("\n") == 1
    assert "Traceback" not in err
