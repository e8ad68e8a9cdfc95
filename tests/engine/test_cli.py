"""The command line through main([...]): exit codes, messages, list and explain."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from preflight import __version__
from preflight.cli.main import main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"preflight {__version__}\n"


def test_list_json_describes_every_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--format", "json"]) == 0
    checks = json.loads(capsys.readouterr().out)
    assert checks[0]["id"] == "config.valid"
    for item in checks:
        assert {"id", "title", "plane", "depends_on"} <= set(item) and item["title"]


def test_explain_names_what_a_check_proves(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "config.valid"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("config.valid: ") and "What it proves:" in out and "How to fix it:" in out


def test_explain_unknown_check_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "config.vaild"]) == 2
    assert capsys.readouterr().err == "preflight: no check 'config.vaild'; did you mean 'config.valid'?\n"


def test_unknown_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--bogus"]) == 2
    assert capsys.readouterr().err == "preflight: unrecognized arguments: --bogus\n"


@pytest.mark.parametrize(("argv", "expected"), [
    (["lst"], "preflight: argument command: invalid choice: 'lst' (choose from 'run', 'list', 'explain', "),
    (["list", "--format", "x"], "preflight: list: argument --format: invalid choice: 'x' (choose from 'table', "),
])
def test_a_usage_error_names_the_program_once_and_the_command(argv: list[str], expected: str,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith(expected)


def test_broken_config_exits_2_with_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "preflight.yaml"
    config.write_text("region: cn-beijing\ntargets:\n  - name: prod\n    services:\n"
                      "      - {name: q, kind: completions, endpoint: 'http://127.0.0.1:9'}\n")
    assert main(["run", "-c", str(config), "--no-reports"]) == 2
    err = capsys.readouterr().err
    assert err == (f"preflight: {config}:5: targets[0].services[0].kind: "
                   "expected one of completion, chat, embedding\n")


def test_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "-c", str(tmp_path / "nope.yaml")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_unset_api_key_env_for_a_single_endpoint(capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DW_NOT_SET_ANYWHERE", raising=False)
    code = main(["run", "--endpoint", "http://ms-x.cn-beijing.dataworks-model.aliyuncs.com",
                 "--api-key-env", "DW_NOT_SET_ANYWHERE", "--no-reports"])
    assert code == 2
    assert capsys.readouterr().err == "preflight: --api-key-env: environment variable DW_NOT_SET_ANYWHERE is not set\n"


def test_readme_catalogue_matches_the_registry() -> None:
    from preflight.cli.catalogue import README_BEGIN, README_END, as_markdown
    from preflight.engine.registry import load_registry

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    start, end = readme.index(README_BEGIN), readme.index(README_END) + len(README_END)
    assert readme[start:end] + "\n" == as_markdown(load_registry()), "run `make catalogue` to refresh the README"


@pytest.mark.parametrize(("scenario", "code"), [("healthy", 0), ("wrong-key", 1)])
def test_the_installed_command_exits_with_the_runs_code(tmp_path: Path, scenario: str, code: int) -> None:
    import shutil
    import subprocess
    import sys

    command = shutil.which("preflight", path=str(Path(sys.executable).parent))
    assert command is not None, "the console script is installed beside the interpreter"
    result = subprocess.run([command, "demo", "--scenario", scenario, "--report-dir", str(tmp_path / "r"),
                             "--format", "json"], capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "CI": "true", "HOME": str(tmp_path)})
    assert result.returncode == code, result.stderr
    report = json.loads(result.stdout)  # everything printed was flushed before the process left
    assert report["summary"]["status"] == ("pass" if code == 0 else "fail")
    assert (tmp_path / "r" / "report.html").stat().st_size > 0


def test_json_on_stdout_is_the_report_json_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--scenario", "wrong-key", "--report-dir", str(tmp_path), "--format", "json"]) == 1
    printed = capsys.readouterr().out
    assert printed == (tmp_path / "report.json").read_text(encoding="utf-8")
    assert json.loads(printed)["summary"]["status"] == "fail"


def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path: Path) -> None:
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-m", "preflight", "demo", "--report-dir", str(tmp_path)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={"PATH": "/usr/bin:/bin", "CI": "true", "HOME": str(tmp_path)})
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader is gone before anything is printed, like `| true`
    errors = process.stderr.read()
    assert process.wait(timeout=120) == 141
    assert "Traceback" not in errors and "internal error" not in errors and "BrokenPipe" not in errors
    assert "checks finished: " in errors  # progress went on to stderr, which was still read
    assert (tmp_path / "report.json").exists()  # the reports were written before the table was printed


def test_the_parser_builds_the_options_of_the_command_given_only() -> None:
    from preflight.cli.main import build_parser
    from preflight.errors import UsageError

    full, listing = build_parser(), build_parser("list")
    assert listing.parse_args(["list", "--format", "json"]).format == "json"
    with pytest.raises(UsageError):  # run's options were not built for a `list`
        listing.parse_args(["run", "-c", "x.yaml"])
    assert full.parse_args(["run", "-c", "x.yaml"]).config == "x.yaml"
    assert build_parser("lst").parse_args(["run", "-c", "x.yaml"]).config == "x.yaml"  # not a command: all of them
    assert "run" not in _subcommands(listing)
    assert set(_subcommands(full)) >= {"run", "list", "explain", "demo"}  # `preflight --help` names every command
    assert _subcommands(listing)["list"].format_help() == _subcommands(full)["list"].format_help()


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no subcommands")


@pytest.mark.parametrize("secret", [None, "EnvAccessKeySecret000111"])
def test_list_starts_without_the_network_stack_rich_the_sdks_or_the_redaction_patterns(secret: str | None) -> None:
    import os
    import subprocess
    import sys

    from preflight.cli.main import SECRET_VARIABLES
    from preflight.engine.redact import SECRET_ENVIRONMENT

    assert tuple(name for name, _ in SECRET_ENVIRONMENT) == SECRET_VARIABLES
    script = ("import io, sys, contextlib\n"
              "from preflight.cli.main import main\n"
              "with contextlib.redirect_stdout(io.StringIO()):\n"
              "    code = main(['list'])\n"
              "redactor = 'preflight.engine.redact' in sys.modules\n"
              "heavy = [m for m in ('httpx', 'rich', 'alibabacloud_dataworks_public20240518', 'Tea', 'yaml',\n"
              "                     'subprocess', 'preflight.engine.runner', 'preflight.report') if m in sys.modules]\n"
              "from preflight.engine import redact\n"
              "print(code, heavy, redactor, redact._patterns.cache_info().currsize, redact.redact(sys.argv[1]))\n")
    environ = {name: value for name, value in os.environ.items() if name not in SECRET_VARIABLES}
    if secret:
        environ["ALIBABA_CLOUD_ACCESS_KEY_SECRET"] = secret
    out = subprocess.run([sys.executable, "-c", script, f"key={secret}"], capture_output=True, text=True,
                         check=True, env=environ).stdout
    # The redactor is imported, and the secret registered, only when the environment holds one.
    assert out.split() == ["0", "[]", str(bool(secret)), "0", "key=[REDACTED]" if secret else "key=None"]


def test_version_is_answered_before_the_command_line_is_imported() -> None:
    import subprocess
    import sys

    script = ("import sys\n"
              "sys.argv = ['preflight', '--version']\n"
              "from preflight.cli import console\n"
              "console()\n"
              "print('argparse' in sys.modules, 'preflight.cli.main' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == [f"preflight {__version__}", "False False"]
    import os

    reader, writer = os.pipe()
    os.close(reader)  # the reader is gone before the command starts
    try:
        gone = subprocess.run([sys.executable, "-m", "preflight", "--version"], stdout=writer,
                              stderr=subprocess.PIPE, timeout=30)
    finally:
        os.close(writer)
    assert gone.returncode == 141 and b"Traceback" not in gone.stderr


@pytest.mark.parametrize("columns", ["50", "120", "0", "wide"])
def test_help_is_wrapped_to_the_terminal_width(monkeypatch: pytest.MonkeyPatch, columns: str) -> None:
    import shutil

    from preflight.cli.main import build_parser

    monkeypatch.setenv("COLUMNS", columns)
    if not columns.isdigit() or columns == "0":  # not a width: as shutil says (the terminal's, or 80)
        columns = str(shutil.get_terminal_size().columns)
    # argparse cannot break the list of command names; every other line fits
    lines = [line for line in build_parser().format_help().splitlines() if "{run," not in line]
    assert max(len(line) for line in lines) <= int(columns) - 2
    assert max(len(line) for line in lines) > int(columns) - 20  # the width is used, not a narrower default


def test_color_always_draws_rich_table_and_piped_output_is_plain(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--no-reports", "--only", "endpoint.url", "--color", "always"]) == 0
    drawn = capsys.readouterr().out
    assert "\x1b[" in drawn and "─" in drawn and "endpoint.url" in drawn
    assert main(["demo", "--no-reports", "--only", "endpoint.url"]) == 0
    plain = capsys.readouterr()
    assert "\x1b[" not in plain.out and "  PASS  endpoint.url" in plain.out
    assert plain.err == "4 checks finished: 4 pass\n"  # a healthy run's progress is its count alone
