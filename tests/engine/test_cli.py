"""The command line through main([...]): exit codes, messages, list and explain."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from preflight import __version__
from preflight.cli import main


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
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


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
    from preflight.catalogue import README_BEGIN, README_END, as_markdown
    from preflight.registry import load_registry

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
    assert "PASS demo config.valid" in errors  # progress went on to stderr, which was still read
    assert (tmp_path / "report.json").exists()  # the reports were written before the table was printed


def test_a_run_collects_garbage_rarely_and_restores_the_collector_after(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    from preflight import gcpolicy, runner

    seen: dict[str, object] = {}
    real_run = runner.Runner.run

    async def observed_run(self: runner.Runner) -> object:
        seen.update(threshold=gc.get_threshold(), frozen=gc.get_freeze_count())
        return await real_run(self)

    monkeypatch.setattr(runner.Runner, "run", observed_run)
    before = gc.get_threshold()
    assert main(["demo", "--scenario", "wrong-key", "--report-dir", str(tmp_path), "--format", "json"]) == 1
    # During the run: what existed before it is frozen out of collections, and collections are rare.
    assert seen["threshold"] == gcpolicy.RUN_GC_THRESHOLD
    assert isinstance(seen["frozen"], int) and seen["frozen"] > 10_000
    # After it: the program that called it (here pytest) gets its collector back as it was.
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
