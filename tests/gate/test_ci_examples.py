"""The CI examples parse, use the JUnit report and the exit codes, and the Shell node gates a simulated service."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from preflight.simulator.harness import Simulator
from preflight.simulator.scenarios import get_scenario

EXAMPLES = Path(__file__).parents[2] / "examples"
SHELL_NODE = EXAMPLES / "dataworks-shell-node.sh"
PREFLIGHT = Path(sys.executable).with_name("preflight")


def test_the_github_workflow_parses_and_publishes_junit() -> None:
    text = (EXAMPLES / "github-actions.yml").read_text()
    workflow = yaml.safe_load(text)
    steps = workflow["jobs"]["preflight"]["steps"]
    gate = next(step for step in steps if step.get("id") == "gate")
    assert "preflight run" in gate["run"] and "--wait" in gate["run"] and "exit $code" in gate["run"]
    for code in ("0)", "1)", "2)", "3)"):
        assert code in gate["run"]
    junit = next(step for step in steps if "junit" in step.get("uses", ""))
    assert junit["with"]["report_paths"] == "reports/junit.xml" and junit["if"] == "always()"


def test_the_gitlab_job_parses_and_reports_junit() -> None:
    pipeline = yaml.safe_load((EXAMPLES / "gitlab-ci.yml").read_text())
    job = pipeline["preflight"]
    assert job["artifacts"]["reports"]["junit"] == "reports/junit.xml" and job["artifacts"]["when"] == "always"
    script = "\n".join(job["script"])
    assert "preflight run" in script and "exit $code" in script
    assert all(f"{code})" in script for code in (0, 1, 2, 3))
    assert pipeline["enable-schedule"]["needs"] == ["preflight"]


def test_the_shell_node_passes_bash_n() -> None:
    bash = shutil.which("bash")
    assert bash is not None
    subprocess.run([bash, "-n", str(SHELL_NODE)], check=True)
    text = SHELL_NODE.read_text()
    assert "junit.xml" in text and "exit $code" in text


def run_node(scenario: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    assert PREFLIGHT.exists(), "install the package into this environment: make .venv/.installed"
    with Simulator(get_scenario(scenario)) as simulator:
        config = tmp_path / "preflight.yaml"
        config.write_text(simulator.config_text())
        environ = {**os.environ, **simulator.environ(), "PREFLIGHT": str(PREFLIGHT), "PREFLIGHT_CONFIG": str(config),
                   "PREFLIGHT_WAIT": "1s", "PREFLIGHT_REPORTS": str(tmp_path / "reports"), "CI": "true"}
        return subprocess.run(["bash", str(SHELL_NODE)], env=environ, capture_output=True, text=True, timeout=120,
                              cwd=tmp_path)


def test_the_shell_node_lets_a_healthy_schedule_run(tmp_path: Path) -> None:
    done = run_node("healthy", tmp_path)
    assert done.returncode == 0, done.stderr
    assert "0 failed, 0 broke" in done.stdout and "the schedule may run" in done.stdout


def test_the_shell_node_stops_the_schedule_and_names_the_failure(tmp_path: Path) -> None:
    done = run_node("wrong-key", tmp_path)
    assert done.returncode == 1, done.stderr
    assert "  FAILURE demo.qwen auth.key_valid: GET /v1/models with the key: HTTP 401" in done.stdout
    assert "the downstream nodes will not run" in done.stdout
