"""`preflight diff` over real reports written by demo scenarios."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from preflight.cli.diff import diff_reports, load_report, render_console, render_markdown
from preflight.cli.main import main


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """report.json of a few demo scenarios, written by `preflight demo` itself."""
    found = {}
    for scenario in ("healthy", "vpc-not-first", "wrong-key", "embedding-dimension", "model-missing", "slow"):
        folder = tmp_path_factory.mktemp(scenario)
        main(["demo", "--scenario", scenario, "--format", "json", "--report-dir", str(folder)])
        found[scenario] = folder / "report.json"
    return found


def changes_of(old: Path, new: Path, **options: float) -> dict[str, list[tuple[str, str, str]]]:
    result = diff_reports(load_report(old), load_report(new), **options)
    return {item.subject: [(c.check, c.kind, c.text) for c in item.changes] for item in result.subjects}


def test_the_same_report_has_no_changes(reports: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    healthy = str(reports["healthy"])
    assert main(["diff", healthy, healthy]) == 0
    assert capsys.readouterr().out == f"no changes between {healthy} and {healthy}\n"


def test_a_first_vpc_taken_out_of_the_allowlist_is_a_regression(reports: dict[str, Path],
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    changes = changes_of(reports["healthy"], reports["vpc-not-first"])
    qwen = changes["demo/qwen"]
    assert ("network.model_allowlist", "now-failing") in [(c, k) for c, k, _ in qwen]
    allowed = [text for check, kind, text in qwen if kind == "evidence" and check == "network.model_allowlist"]
    assert allowed == ["allowed VPCs: vpc-2ze0first0000000001 -> vpc-2ze0second000000002"]
    assert ("network.private_dns", "status") in [(c, k) for c, k, _ in qwen]  # pass -> skip: not a regression
    assert main(["diff", str(reports["healthy"]), str(reports["vpc-not-first"])]) == 1
    out = capsys.readouterr().out
    assert "3 check(s) that passed now fail" in out
    assert "  NOW FAILING  network.model_allowlist: pass -> fail: the model allows vpc-2ze0second000000002" in out


def test_the_way_back_is_fixed_and_exits_0(reports: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", str(reports["wrong-key"]), str(reports["healthy"])]) == 0
    out = capsys.readouterr().out
    assert "nothing that passed fails now" in out
    assert "  fixed        auth.key_valid: fail -> pass" in out
    assert "  changed      auth.key_valid: HTTP status: 401 -> 200" in out


def test_a_changed_model_list_and_embedding_dimension_are_named(reports: dict[str, Path]) -> None:
    missing = changes_of(reports["healthy"], reports["model-missing"])
    assert ("model.listed", "evidence", "model list: qwen3-1.7b -> qwen2.5-7b-instruct, bge-large-zh") \
        in missing["demo/qwen"]
    dimension = changes_of(reports["healthy"], reports["embedding-dimension"])
    assert ("inference.embedding", "evidence", "embedding dimension: 1024 -> 768") in dimension["demo/bge-m3"]


def test_ttft_counts_only_beyond_the_threshold(reports: dict[str, Path]) -> None:
    def ttft(threshold: float) -> list[str]:
        changes = changes_of(reports["healthy"], reports["slow"], ttft_threshold_ms=threshold)
        return [text for check, kind, text in changes.get("demo/qwen", []) if text.startswith("time to first")]

    assert ttft(100.0) and ttft(100.0)[0].startswith("time to first token: ")
    assert ttft(1e9) == []


def test_new_and_removed_subjects(reports: dict[str, Path], tmp_path: Path) -> None:
    data = json.loads(reports["healthy"].read_text())
    fewer = {**data, "results": [r for r in data["results"] if r["service"] != "bge-m3"]}
    renamed = {**data, "results": [{**r, "target": "staging"} for r in data["results"]]}
    result = diff_reports(data, fewer)
    assert [(item.subject, item.state) for item in result.subjects] == [("demo/bge-m3", "removed")]
    assert result.exit_code == 0
    both = {item.subject: item.state for item in diff_reports(data, renamed).subjects}
    assert both["staging/qwen"] == "new" and both["demo/qwen"] == "removed"


def test_markdown_for_a_ticket(reports: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", str(reports["healthy"]), str(reports["wrong-key"]), "--format", "markdown"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("# dw-preflight: what changed\n")
    assert "## demo/qwen\n\n| change | check | what |\n|---|---|---|\n" in out
    assert "| NOW FAILING | `auth.key_valid` | pass -> fail: " in out
    result = diff_reports(load_report(reports["healthy"]), load_report(reports["wrong-key"]),
                          old_name=str(reports["healthy"]), new_name=str(reports["wrong-key"]))
    assert render_markdown(result) == out and render_console(result) != out


@pytest.mark.parametrize(("content", "words"), [
    (None, "cannot be read"),
    (b"not json", "not JSON"),
    (b"\xff\xfe", "not JSON"),
    (b'{"schema": "something-else/1", "results": []}', "not a report.json of schema preflight-report/1"),
    (b'{"schema": "preflight-report/1", "results": [1]}', "results[0] is not a check result"),
])
def test_unreadable_input_exits_2_naming_the_file(content: bytes | None, words: str, reports: dict[str, Path],
                                                  tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "old.json"
    if content is not None:
        bad.write_bytes(content)
    assert main(["diff", str(bad), str(reports["healthy"])]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"preflight: {bad}: ") and words in err
