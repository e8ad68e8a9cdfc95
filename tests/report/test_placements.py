"""A fleet's report groups its results by region, workspace and resource group; a single target's does not."""

from __future__ import annotations

import io

from preflight.engine.model import CheckResult, RunReport, Status, Timings
from preflight.report.base import placements
from preflight.report.console import render_final
from preflight.report.html import HtmlFormat
from preflight.report.markdown import MarkdownFormat

TOOL = {"name": "dw-preflight", "version": "0.1.0", "python": "3.11.7", "platform": "Linux"}
PLACES = {"a": ("cn-beijing", "4242", "rg_1"), "b": ("cn-beijing", "4242", "rg_1"),
          "c": ("cn-shanghai", "4343", "rg_2")}


def fleet(*names: str) -> RunReport:
    results = tuple(CheckResult(check="resource_group.ready", title="Ready", target=name, service=None,
                                status=Status.FAIL if name == "c" else Status.PASS, summary="s",
                                timings=Timings(0.0, 1.0)) for name in names)
    targets = tuple({"name": name, "region": PLACES[name][0], "workspace": PLACES[name][1],
                     "resource_group": PLACES[name][2]} for name in names)
    return RunReport(tool=TOOL, started_at="2026-11-24T10:00:00+00:00", duration_ms=10.0, config_path="p.yaml",
                     notes=(), results=results, targets=targets)


def test_results_are_counted_per_region_workspace_and_group() -> None:
    found = [(place.label, place.targets, place.tally) for place in placements(fleet("a", "b", "c"))]
    assert found == [("cn-beijing / 4242 / rg_1", ("a", "b"), "2 targets: 2 pass"),
                     ("cn-shanghai / 4343 / rg_2", ("c",), "1 target: 1 fail")]
    assert placements(fleet("a", "b")) == []


def test_every_format_shows_the_grouping() -> None:
    run = fleet("a", "b", "c")
    markdown = MarkdownFormat().render(run)
    assert "## By region, workspace and resource group" in markdown
    assert "| cn-shanghai / 4343 / rg_2 | 1 target: 1 fail | c |" in markdown
    html = HtmlFormat().render(run)
    assert "<td>cn-beijing / 4242 / rg_1</td><td>2 targets: 2 pass</td><td>a, b</td>" in html
    out = io.StringIO()
    render_final(run, out, color=False)
    assert "By region / workspace / resource group:\n  cn-beijing / 4242 / rg_1: 2 targets: 2 pass\n" in out.getvalue()
    alone = io.StringIO()
    render_final(fleet("a"), alone, color=False)
    assert "By region" not in alone.getvalue() and "By region" not in MarkdownFormat().render(fleet("a"))
