"""`preflight bundle`: the last run's reports, the masked config, versions and resolvers, and no secret."""

from __future__ import annotations

import json
import platform
import re
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from preflight.cli.bundle import resolver_configuration
from preflight.cli.main import main

LITERAL_KEY = "plainLiteralKey-0f9e8d7c6b5a"
FLOW_KEY = "DW-ms-flowstyle-key-5566"
PASSWORD = "hunter2-but-longer"
ENV_KEY = "DW-ms-from-environment-1234"
AK_SECRET = "BundleAccessKeySecret00998877"
CONFIG = f"""\
version: 1
region: cn-beijing
dns: {{nameservers: ['127.0.0.1:5353'], timeout_s: 2}}
targets:
  - name: prod
    services:
      - name: qwen
        kind: completion
        endpoint: http://ms-abc.cn-beijing.dataworks-model.aliyuncs.com
        api_key: "{LITERAL_KEY}"
      - {{name: bge, kind: embedding,
         endpoint: "http://ms-bge.cn-beijing.dataworks-model.aliyuncs.com", api_key: {FLOW_KEY}}}
      - name: chat
        kind: chat
        endpoint: http://ms-chat.cn-beijing.dataworks-model.aliyuncs.com
        api_key: ${{DW_BUNDLE_KEY}}   # from the environment
"""
SECRETS = (LITERAL_KEY, FLOW_KEY, PASSWORD, ENV_KEY, AK_SECRET)


@pytest.fixture
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory with a config and the reports of a real (simulated) run, as cwd."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DW_BUNDLE_KEY", ENV_KEY)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", AK_SECRET)
    assert main(["demo", "--scenario", "wrong-key", "--report-dir", "reports", "--format", "json"]) == 1
    (tmp_path / "preflight.yaml").write_text(CONFIG, encoding="utf-8")
    # A report written by something that did not redact: the bundle must still not carry the secrets.
    (tmp_path / "reports" / "notes.txt").write_text(f"key={ENV_KEY} secret {AK_SECRET}\n", encoding="utf-8")
    return tmp_path


def read_zip(path: Path) -> dict[str, str]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name).decode("utf-8") for name in archive.namelist()}


def assert_no_secret(files: dict[str, str]) -> None:
    for name, text in files.items():
        for secret in SECRETS:
            assert secret not in text, f"{secret[:6]}... in {name}"


def test_the_default_bundle_lands_in_the_current_directory(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["bundle"]) == 0
    printed = capsys.readouterr().out.strip()
    assert re.fullmatch(r"preflight-bundle-\d{8}T\d{6}Z\.zip", printed), printed
    files = read_zip(run_dir / printed)
    assert sorted(files) == ["REDACTIONS.txt", "config/preflight.yaml", "environment.json", "reports/junit.xml",
                             "reports/notes.txt", "reports/report.html", "reports/report.json", "reports/report.md",
                             "resolver.txt"]
    assert_no_secret(files)
    report = json.loads(files["reports/report.json"])
    assert report["schema"] == "preflight-report/1"
    assert [r["status"] for r in report["results"] if r["check"] == "auth.key_valid"] == ["fail"] * 3


def test_the_config_is_masked_but_references_stay(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bundle", "-o", "out/b.zip", "-c", "preflight.yaml"]) == 0
    assert capsys.readouterr().out == "out/b.zip\n"
    files = read_zip(run_dir / "out" / "b.zip")
    expected = (CONFIG.replace(f'"{LITERAL_KEY}"', "'[REDACTED]'").replace(FLOW_KEY, "'[REDACTED]'"))
    assert files["config/preflight.yaml"] == expected
    redactions = files["REDACTIONS.txt"].splitlines()
    assert redactions[0] == "What was masked in this bundle, and where (the values themselves are not in it):"
    assert "- config/preflight.yaml:10: targets[0].services[0].api_key (a value written in the file)" in redactions
    assert "- config/preflight.yaml:12: targets[0].services[1].api_key (a value written in the file)" in redactions
    assert "- reports/notes.txt: the registered secret access_key_secret (1x)" in redactions
    assert "- reports/notes.txt: the registered secret api_key:prod/chat (1x)" in redactions
    assert any(line.startswith("- reports/report.json: ") and "masked when the run wrote it" in line
               for line in redactions)
    assert_no_secret(files)


def test_versions_python_os_and_resolvers_are_recorded(run_dir: Path) -> None:
    assert main(["bundle", "-o", "b.zip"]) == 0
    files = read_zip(run_dir / "b.zip")
    environment = json.loads(files["environment.json"])
    assert environment["python"] == platform.python_version()
    assert environment["platform"] == platform.platform()
    for package in ("alibabacloud-tea-openapi", "alibabacloud-credentials", "alibabacloud-dataworks-public20240518",
                    "requests", "certifi", "pyyaml", "rich", "dnspython", "dw-preflight"):
        assert environment["packages"][package] == metadata.version(package)
    assert "# the config's dns section\ndns: {nameservers: ['127.0.0.1:5353'], timeout_s: 2}\n" in files["resolver.txt"]


def test_resolver_configuration_keeps_only_resolver_lines(tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("# generated\nnameserver 100.100.2.136\nsearch corp.example\noptions ndots:2\nsortlist x\n")
    assert resolver_configuration(None, resolv) == (
        f"# {resolv} (nameserver, search and options lines)\nnameserver 100.100.2.136\nsearch corp.example\n"
        "options ndots:2\n\n# the config's dns section\n(none: the system resolver is asked)\n")
    assert "(cannot be read: No such file or directory)" in resolver_configuration(None, tmp_path / "missing")


def test_a_config_that_is_not_yaml_is_masked_line_by_line(run_dir: Path) -> None:
    broken = run_dir / "broken.yaml"
    broken.write_text(f"targets: [\n  api_key: {LITERAL_KEY}\n  password: '{PASSWORD}'\n  api_key: ${{DW_X}}\n")
    assert main(["bundle", "-o", "b.zip", "-c", str(broken)]) == 0
    files = read_zip(run_dir / "b.zip")
    assert files["config/broken.yaml"] == "targets: [\n  api_key: '[REDACTED]'\n  password: '[REDACTED]'\n" \
                                          "  api_key: ${DW_X}\n"
    assert "- config/broken.yaml:3: password (a value written in the file)" in files["REDACTIONS.txt"]
    assert_no_secret(files)


def test_no_reports_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["bundle"]) == 2
    assert capsys.readouterr().err == ("preflight: reports: no report directory; run `preflight run` (or `preflight "
                                       "demo`) first, or pass --report-dir DIR\n")
    (tmp_path / "empty").mkdir()
    assert main(["bundle", "--report-dir", "empty"]) == 2
    assert capsys.readouterr().err.startswith("preflight: empty: holds no reports; ")
    assert main(["bundle", "--report-dir", "empty", "-c", "nope.yaml"]) == 2
    assert capsys.readouterr().err == "preflight: nope.yaml: no such file\n"
    assert list(tmp_path.glob("*.zip")) == []
