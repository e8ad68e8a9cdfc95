"""Exact text of the markdown report and of the plain console, live lines and stages included, on a fixed run."""

from __future__ import annotations

import dataclasses
import io
import subprocess
import sys
from pathlib import Path

from preflight.engine.model import CheckResult, RunReport, Status, Timings
from preflight.report.console import LIVE_ROWS, LiveConsole, render_final
from preflight.report.markdown import MarkdownFormat

TOOL = {"name": "dw-preflight", "version": "0.1.0", "python": "3.11.7", "platform": "Linux"}


class _Check:
    """The one attribute of a registered check that the console reads."""

    def __init__(self, check_id: str) -> None:
        self.id = check_id


def fixed() -> RunReport:
    results = (
        CheckResult(check="cloud.credentials", title="AccessKey accepted", target="prod", service=None,
                    status=Status.PASS, summary="GetProject accepted the key (LTAI****)", timings=Timings(0, 30)),
        CheckResult(check="resource_group.ready", title="Serverless group", target="prod", service=None,
                    status=Status.WARN, summary="group is Serverless but scaling", timings=Timings(30, 12),
                    remediation="Wait until the group is Normal."),
        CheckResult(check="endpoint.dns", title="DNS", target="prod", service="qwen", status=Status.PASS,
                    summary="resolves to 10.0.0.5", origin="resource-group:rg-1", timings=Timings(42, 3)),
        CheckResult(check="inference.stream", title="Stream", target="prod", service="qwen", status=Status.FAIL,
                    summary="the stream ends without data: [DONE]", origin="resource-group:rg-1",
                    remediation="A proxy cuts | the stream.\nTurn off buffering.",
                    docs="https://www.alibabacloud.com/help/en/dataworks/", timings=Timings(45, 900), tokens=7),
        CheckResult(check="inference.chat", title="Chat", target="prod", service="qwen", status=Status.SKIP,
                    summary="blocked: inference.stream is fail", blocked_by=("inference.stream",),
                    timings=Timings(945, 0)),
    )
    return RunReport(tool=TOOL, started_at="2026-11-24T10:00:00+00:00", duration_ms=1250.0, results=results,
                     config_path="preflight.yaml", notes=("ran from resource group rg-1",),
                     argv=("preflight", "run", "-c", "preflight.yaml", "--from", "resource-group"))


def test_markdown_is_exact() -> None:
    assert MarkdownFormat().render(fixed()) == (
        "# dw-preflight report\n"
        "\n"
        "**FAIL** — 2 pass, 1 warn, 1 fail, 1 skip, 0 error; 5 results in 1.25 s "
        "(started 2026-11-24T10:00:00+00:00, dw-preflight 0.1.0).\n"
        "\n"
        "Command: `preflight run -c preflight.yaml --from resource-group`\n"
        "\n"
        "Config: `preflight.yaml`\n"
        "\n"
        "Tokens spent: 7\n"
        "\n"
        "> ran from resource group rg-1\n"
        "\n"
        "## Fix first\n"
        "\n"
        "**inference.stream** (fail) on `prod/qwen` (resource-group:rg-1): the stream ends without data: [DONE]\n"
        "\n"
        "A proxy cuts | the stream.\nTurn off buffering.\n"
        "\n"
        "Docs: https://www.alibabacloud.com/help/en/dataworks/\n"
        "\n"
        "## prod\n"
        "\n"
        "| status | check | summary | fix | origin |\n"
        "|---|---|---|---|---|\n"
        "| ✅ pass | `cloud.credentials` | GetProject accepted the key (LTAI****) |  | local |\n"
        "| ⚠️ warn | `resource_group.ready` | group is Serverless but scaling | Wait until the group is Normal. "
        "| local |\n"
        "\n"
        "## prod/qwen\n"
        "\n"
        "| status | check | summary | fix | origin |\n"
        "|---|---|---|---|---|\n"
        "| ✅ pass | `endpoint.dns` | resolves to 10.0.0.5 |  | resource-group:rg-1 |\n"
        "| ❌ fail | `inference.stream` | the stream ends without data: [DONE] | "
        "A proxy cuts \\| the stream. Turn off buffering. | resource-group:rg-1 |\n"
        "| ⏭️ skip | `inference.chat` | blocked: inference.stream is fail | blocked by `inference.stream` | local |\n")


def test_console_final_is_exact_in_chain_order_with_an_origin_column() -> None:
    out = io.StringIO()
    render_final(fixed(), out, color=False)
    assert out.getvalue() == (
        "prod\n"
        "  PASS  cloud.credentials              GetProject accepted the key (LTAI****) [local]\n"
        "  WARN  resource_group.ready           group is Serverless but scaling [local]\n"
        "prod/qwen\n"
        "  PASS  endpoint.dns                   resolves to 10.0.0.5 [resource-group:rg-1]\n"
        "  FAIL  inference.stream               the stream ends without data: [DONE] [resource-group:rg-1]\n"
        "  SKIP  inference.chat                 blocked: inference.stream is fail [local]\n"
        "\n"
        "FAIL: 2 pass, 1 warn, 1 fail, 1 skip in 1.25 s; 7 tokens spent\n"
        "note: ran from resource group rg-1\n"
        "\n"
        "First problem: inference.stream on prod/qwen (resource-group:rg-1)\n"
        "  the stream ends without data: [DONE]\n"
        "  Fix: A proxy cuts | the stream.\n"
        "       Turn off buffering.\n"
        "  Docs: https://www.alibabacloud.com/help/en/dataworks/\n")


def shared_cause(services: tuple[str, ...] = ("qwen", "chat", "bge")) -> RunReport:
    """Three services of one target behind one resource group whose first VPC the model does not allow."""
    results: list[CheckResult] = [
        CheckResult(check="network.first_vpc", title="First VPC", target="prod", service=None, status=Status.PASS,
                    summary="first VPC vpc-1 is Running"),
    ]
    for name in services:
        results += [
            CheckResult(check="endpoint.url", title="URL", target="prod", service=name, status=Status.PASS,
                        summary=f"model service ms-{name}"),
            CheckResult(check="network.model_allowlist", title="Allowlist", target="prod", service=name,
                        status=Status.FAIL, summary="the model does not allow the first VPC vpc-1",
                        remediation="Add vpc-1 to the model service's allowed VPCs.",
                        docs="https://www.alibabacloud.com/help/en/dataworks/"),
            CheckResult(check="network.private_dns", title="DNS zone", target="prod", service=name,
                        status=Status.SKIP, summary="blocked: network.model_allowlist is fail",
                        blocked_by=("network.model_allowlist",)),
            CheckResult(check="inference.chat", title="Chat", target="prod", service=name, status=Status.SKIP,
                        summary="not for a service of kind completion"),
        ]
    results.append(CheckResult(check="auth.key_valid", title="Key", target="prod", service=services[0],
                               status=Status.FAIL, summary="HTTP 401: the key is refused"))
    return RunReport(tool=TOOL, started_at="2026-11-24T10:00:00+00:00", duration_ms=300.0, results=tuple(results))


def test_console_groups_a_cause_shared_by_several_services_into_one_line() -> None:
    out = io.StringIO()
    render_final(shared_cause(), out, color=False)
    assert out.getvalue() == (
        "prod\n"
        "  PASS  network.first_vpc                   first VPC vpc-1 is Running\n"
        "  FAIL  3 services: network.model_allowlist the model does not allow the first VPC vpc-1\n"
        "  SKIP  3 services: network.private_dns     blocked: network.model_allowlist is fail\n"
        "prod/qwen\n"
        "  PASS  endpoint.url                        model service ms-qwen\n"
        "  SKIP  inference.chat                      not for a service of kind completion\n"
        "  FAIL  auth.key_valid                      HTTP 401: the key is refused\n"
        "prod/chat\n"
        "  PASS  endpoint.url                        model service ms-chat\n"
        "  SKIP  inference.chat                      not for a service of kind completion\n"
        "prod/bge\n"
        "  PASS  endpoint.url                        model service ms-bge\n"
        "  SKIP  inference.chat                      not for a service of kind completion\n"
        "\n"
        "FAIL: 4 pass, 4 fail, 6 skip in 0.30 s\n"
        "\n"
        "First problem: network.model_allowlist on 3 services: prod/qwen, prod/chat, prod/bge (local)\n"
        "  the model does not allow the first VPC vpc-1\n"
        "  Fix: Add vpc-1 to the model service's allowed VPCs.\n"
        "  Docs: https://www.alibabacloud.com/help/en/dataworks/\n"
        "  (1 more problem: auth.key_valid; see the reports)\n")


def test_a_cause_shared_by_some_services_names_them() -> None:
    run = shared_cause()
    # bge passes the allowlist: the shared line says which two fail.
    results = tuple(dataclasses.replace(r, status=Status.PASS, summary="allowed", remediation="", blocked_by=())
                    if r.service == "bge" and r.check in ("network.model_allowlist", "network.private_dns") else r
                    for r in run.results)
    out = io.StringIO()
    render_final(dataclasses.replace(run, results=results), out, color=False)
    assert "  FAIL  2 services (qwen, chat): network.model_allowlist the model does not allow" in out.getvalue()
    assert "First problem: network.model_allowlist on 2 services: prod/qwen, prod/chat (local)" in out.getvalue()


def test_console_colour_is_a_rich_table_and_a_clean_run_shows_the_first_warning() -> None:
    run = fixed()
    clean = RunReport(tool=run.tool, started_at=run.started_at, duration_ms=50.0, results=run.results[:2])
    out = io.StringIO()
    render_final(clean, out, color=True)
    text = out.getvalue()
    assert "\x1b[33mWARN" in text and "\x1b[32mPASS" in text  # rich's styles for the marks
    assert "─" in text and "summary" in text  # the table's head
    assert text.endswith("First warning: resource_group.ready on prod: group is Serverless but scaling\n"
                         "  Advice: Wait until the group is Normal.\n")
    assert "First problem" not in text


def test_plain_live_console_prints_only_problems_and_the_count() -> None:
    stream = io.StringIO()
    console = LiveConsole(stream, plain=True, total=7)
    run = shared_cause(("qwen",))
    console.stage("prod", "submitted DI task 42 to rg-1")
    for result in run.results + fixed().results[:2]:
        console.started(_Check(result.check), result.target, result.service)  # type: ignore[arg-type]
        console.finished(result)
    console.close()
    console.close()  # error paths close too: the count is printed once
    assert stream.getvalue() == (
        "prod: submitted DI task 42 to rg-1\n"
        "[3/7] FAIL prod/qwen network.model_allowlist: the model does not allow the first VPC vpc-1\n"
        "[4/7] SKIP prod/qwen network.private_dns: blocked: network.model_allowlist is fail\n"
        "[6/7] FAIL prod/qwen auth.key_valid: HTTP 401: the key is refused\n"
        "[8/7] WARN prod resource_group.ready: group is Serverless but scaling\n"
        "8 checks finished: 3 pass, 1 warn, 2 fail, 2 skip\n")


def test_plain_live_console_of_a_healthy_run_is_one_line() -> None:
    stream = io.StringIO()
    console = LiveConsole(stream, plain=True, total=1)
    console.finished(fixed().results[0])
    console.close()
    assert stream.getvalue() == "1 check finished: 1 pass\n"


def test_live_console_on_a_terminal_stream_draws_and_closes_without_error() -> None:
    stream = io.StringIO()
    console = LiveConsole(stream, plain=False, total=2)
    run = fixed()
    console.started(_Check("cloud.credentials"), "prod", None)  # type: ignore[arg-type]
    console.stage("prod", "waiting for resources")
    console.finished(run.results[0])
    console.close()
    console.close()  # a second close (error paths call it too) is harmless
    assert "prod: waiting for resources" in stream.getvalue()
    assert console.done == 1


def test_live_console_draws_a_bounded_number_of_running_checks() -> None:
    """A fleet's hundreds of running checks share LIVE_ROWS rows; the rest are counted on the bar."""
    console = LiveConsole(io.StringIO(), plain=False, total=LIVE_ROWS + 5)
    for number in range(LIVE_ROWS + 5):
        console.started(_Check("endpoint.http"), "prod", f"svc{number}")  # type: ignore[arg-type]
    progress = console._progress
    assert sum(task.visible for task in progress.tasks) == LIVE_ROWS + 1  # the bar and the rows
    assert progress.tasks[0].description == "checks (and 5 more running)"
    for number in range(LIVE_ROWS + 5):
        console.finished(CheckResult("endpoint.http", "t", "prod", f"svc{number}", Status.PASS, "ok"))
    assert sum(task.visible for task in progress.tasks) == 1
    assert progress.tasks[0].description == "checks"
    console.close()


def test_plain_console_does_not_import_rich() -> None:
    code = (
        "import io, sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_exact_output import fixed, _Check\n"
        "from preflight.report.console import LiveConsole, render_final\n"
        "live = LiveConsole(io.StringIO(), plain=True, total=5)\n"
        "[live.finished(r) for r in fixed().results]\n"
        "render_final(fixed(), io.StringIO(), color=False)\n"
        "print(sorted(m for m in sys.modules if m == 'rich' or m.startswith('rich.')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
