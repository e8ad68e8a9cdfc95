"""Broken configs: every way a file can be wrong is one readable line and exit 2, never a traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from preflight.cli import main

VALID = """\
version: 1
region: cn-beijing
dns: {nameservers: [], resolve: {}}
targets:
  - name: prod
    workspace: 123456
    resource_group: Serverless_res_group_xxx
    services:
      - name: qwen
        kind: completion
        endpoint: http://ms-abc.cn-beijing.dataworks-model.aliyuncs.com
        api_key: ${DW_FUZZ_KEY}
        model: qwen3-1.7b
        expect: {dimensions: 1024, max_ttft_ms: 5000}
"""


def run(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["run", "-c", str(path), "--no-reports", "--only", "config.valid", "--format", "json"])
    return code, capsys.readouterr().err


def assert_one_clear_line(code: int, err: str, path: Path) -> None:
    assert code in (0, 2), err
    if code == 2:
        assert err.startswith(f"preflight: {path}") and err.count("\n") == 1, err
    assert "Traceback" not in err


@pytest.mark.parametrize(("content", "message"), [
    (b"", "the file is empty; see the README for a minimal config"),
    (b"\x00\x01\x02binary", "is a binary file, not YAML"),
    (b"region: cn-beijing\n\xff\xfe targets: []\n", "is not UTF-8 text (byte 19)"),
    (b"a: &a [1, 2]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
     b"d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
     b"f: [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n", "more than 20000 values (an alias bomb?)"),
    (b"region: cn-beijing\ntargets: " + b"[" * 3000 + b"]" * 3000 + b"\n", "nests too deeply"),
    (b"region: cn-beijing\ntargets:\n  - name: a\n    servces: []\n", "unknown field; did you mean 'services'?"),
    (b"region: [\n", "not valid YAML"),
])
def test_each_broken_file_has_its_message(content: bytes, message: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "preflight.yaml"
    path.write_bytes(content)
    code, err = run(path, capsys)
    assert code == 2 and message in err, err
    assert_one_clear_line(code, err, path)


def test_a_directory_a_missing_file_and_a_dangling_link(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, capsys) == (2, f"preflight: {tmp_path}: is a directory, not a config file\n")
    missing = tmp_path / "nope.yaml"
    assert run(missing, capsys) == (2, f"preflight: {missing}: no such file; pass -c FILE or create preflight.yaml\n")
    link = tmp_path / "link.yaml"
    link.symlink_to(tmp_path / "gone.yaml")
    code, err = run(link, capsys)
    assert code == 2 and "no such file" in err


def test_an_unreadable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Root reads anything with mode 000, so use something no one can read as a file: a FIFO would block,
    # a socket cannot be opened.
    import socket

    path = tmp_path / "preflight.yaml"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        code, err = run(path, capsys)
    assert code == 2 and err.startswith(f"preflight: {path}: cannot be read"), err


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=st.text(max_size=400))
def test_arbitrary_text_never_crashes(text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "preflight.yaml"
    path.write_text(text, encoding="utf-8")
    code, err = run(path, capsys)
    assert_one_clear_line(code, err, path)


MUTATIONS = st.one_of(
    st.tuples(st.just("delete"), st.integers(0, 13)),
    st.tuples(st.just("replace-value"), st.integers(0, 13), st.sampled_from(["[]", "{}", "-1", "true", "null", "''",
                                                                             "3.5", "*x", "&x y", "${NOPE}", "~"])),
    st.tuples(st.just("unknown-key"), st.integers(0, 13), st.sampled_from(["nmae", "kinds", "x", "targets"])),
    st.tuples(st.just("insert"), st.integers(0, 13), st.text(max_size=20)),
    st.tuples(st.just("duplicate"), st.integers(0, 13)),
    st.tuples(st.just("indent"), st.integers(0, 13), st.integers(-4, 4)),
)


def mutate(text: str, mutation: tuple[object, ...]) -> str:
    lines = text.splitlines()
    kind, index = mutation[0], int(mutation[1]) % len(lines)  # type: ignore[call-overload]
    line = lines[index]
    if kind == "delete":
        del lines[index]
    elif kind == "replace-value" and ":" in line:
        lines[index] = line.split(":", 1)[0] + ": " + str(mutation[2])
    elif kind == "unknown-key":
        lines.insert(index, " " * (len(line) - len(line.lstrip())) + f"{mutation[2]}: 1")
    elif kind == "insert":
        lines.insert(index, str(mutation[2]))
    elif kind == "duplicate":
        lines.insert(index, line)
    elif kind == "indent":
        shift = int(mutation[2])  # type: ignore[call-overload]
        lines[index] = (" " * shift + line) if shift > 0 else line[-shift:]
    return "\n".join(lines) + "\n"


@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(mutations=st.lists(MUTATIONS, min_size=1, max_size=3))
def test_mutations_of_a_valid_config_load_or_fail_clearly(mutations: list[tuple[object, ...]], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    os.environ["DW_FUZZ_KEY"] = "DW-ms-fuzz-key-000000"
    text = VALID
    for mutation in mutations:
        text = mutate(text, mutation)
    path = tmp_path / "preflight.yaml"
    path.write_text(text, encoding="utf-8")
    code, err = run(path, capsys)
    assert_one_clear_line(code, err, path)
