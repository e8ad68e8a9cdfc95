"""A third-party pack installed beside the built-in one appears and runs with no change to our code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACK = Path(__file__).resolve().parents[1] / "packs" / "tinypack"


@pytest.fixture(scope="module")
def installed_pack(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    target = tmp_path_factory.mktemp("site")
    build = tmp_path_factory.mktemp("build")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "--no-deps", "--no-build-isolation", "--no-index", "--target", str(target), str(PACK)],
                   check=True, cwd=build, capture_output=True, timeout=300)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(target), env.get("PYTHONPATH", "")]))
    env["CI"] = "true"
    return env


def preflight(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "preflight", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_an_installed_pack_is_listed(installed_pack: dict[str, str]) -> None:
    listed = json.loads(preflight(installed_pack, "list", "--format", "json").stdout)
    ids = [item["id"] for item in listed]
    assert {"tiny.ok", "tiny.crash"} <= set(ids) and ids[0] == "config.valid"
    assert next(item for item in listed if item["id"] == "tiny.ok")["pack"] == "preflight-tinypack"


def test_a_crashing_pack_check_is_an_error_and_the_others_still_run(installed_pack: dict[str, str],
                                                                     tmp_path: Path) -> None:
    config = tmp_path / "preflight.yaml"
    config.write_text("region: cn-beijing\ntargets:\n  - name: prod\n")
    result = preflight(installed_pack, "run", "-c", str(config), "--only", "tiny", "--format", "json",
                       "--report-dir", str(tmp_path / "reports"), cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    report = json.loads(result.stdout)
    statuses = {item["check"]: item["status"] for item in report["results"]}
    assert statuses == {"config.valid": "pass", "tiny.ok": "pass", "tiny.crash": "error"}
    crash = next(item for item in report["results"] if item["check"] == "tiny.crash")
    assert crash["summary"] == "the check raised RuntimeError: tiny pack exploded while holding [REDACTED]"
    assert "Traceback" not in result.stdout + result.stderr
