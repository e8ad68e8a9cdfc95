"""Property tests: arbitrary text, YAML and mutations of a valid config either load or give one line and exit 2."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from preflight.cli.main import main
from preflight.config import Config, parse_config
from preflight.errors import ConfigError

VALID = """\
version: 1
region: cn-beijing
cloud: {endpoint: null, protocol: https}
dns: {nameservers: [], resolve: {}}
http: {connect_timeout_s: 5, max_body_bytes: 1048576}
targets:
  - name: prod
    workspace: 123456
    resource_group: Serverless_res_group_xxx
    nodes: [700001]
    services:
      - name: qwen
        kind: completion
        endpoint: http://ms-abc.cn-beijing.dataworks-model.aliyuncs.com
        api_key: ${DW_FUZZ_KEY}
        model: qwen3-1.7b
        expect: {dimensions: 1024, max_ttft_ms: 5000}
      - {name: bge, kind: embedding, endpoint: "http://ms-bge.cn-beijing.dataworks-model.aliyuncs.com"}
"""
ENV = {"DW_FUZZ_KEY": "DW-ms-fuzz-key-000000"}
# Bounded and derandomized, so CI runs the same examples every time in a few seconds.
PROPERTY = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(autouse=True, scope="module")
def fuzz_key() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DW_FUZZ_KEY", ENV["DW_FUZZ_KEY"])
        yield


def run(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["run", "-c", str(path), "--no-reports", "--only", "config.valid", "--format", "json"])
    return code, capsys.readouterr().err


def assert_loads_or_one_clear_line(code: int, err: str, path: Path) -> None:
    assert "Traceback" not in err
    assert code in (0, 1, 2), err  # 1: config.valid warned or failed on a config that loaded
    if code == 2:
        assert err.startswith(f"preflight: {path}") and err.endswith("\n") and err.count("\n") == 1, err


def assert_parses_or_config_error(text: str) -> None:
    try:
        assert isinstance(parse_config(text, "fuzz.yaml", ENV), Config)
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith("fuzz.yaml") and "\n" not in message, message


def test_the_seed_config_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "preflight.yaml"
    path.write_text(VALID)
    assert run(path, capsys) == (0, "")


@PROPERTY
@given(data=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(lambda text: text.encode("utf-8"))))
def test_arbitrary_bytes_never_crash(data: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "preflight.yaml"
    path.write_bytes(data)
    code, err = run(path, capsys)
    assert_loads_or_one_clear_line(code, err, path)


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
                    st.sampled_from(["cn-beijing", "completion", "${DW_FUZZ_KEY}", "${NOPE}", "${}", "http://x"]))
KEYS = st.one_of(st.text(max_size=12), st.sampled_from(["version", "region", "targets", "name", "services", "kind",
                                                        "endpoint", "api_key", "dns", "resolve", "expect"]))
DOCUMENTS = st.recursive(SCALARS, lambda children: st.one_of(st.lists(children, max_size=4),
                                                             st.dictionaries(KEYS, children, max_size=5)),
                         max_leaves=25)


@PROPERTY
@given(document=DOCUMENTS)
def test_arbitrary_yaml_documents_parse_or_fail_clearly(document: Any) -> None:
    assert_parses_or_config_error(yaml.safe_dump(document))


MUTATIONS = st.one_of(
    st.tuples(st.just("delete"), st.integers(0, 99)),
    st.tuples(st.just("replace-value"), st.integers(0, 99),
              st.sampled_from(["[]", "{}", "-1", "true", "null", "''", "3.5", "*x", "&x y", "${NOPE}", "~", "0x1F",
                               "1e999", ".nan", "!!binary aGVsbG8=", "|", "[[[[", "'unterminated", "{a: 1"])),
    st.tuples(st.just("unknown-key"), st.integers(0, 99), st.sampled_from(["nmae", "kinds", "x", "targets", "<<"])),
    st.tuples(st.just("insert-text"), st.integers(0, 99), st.text(max_size=20)),
    st.tuples(st.just("insert-bytes"), st.integers(0, 99), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("duplicate"), st.integers(0, 99)),
    st.tuples(st.just("indent"), st.integers(0, 99), st.integers(-4, 4)),
)


def mutate(data: bytes, mutation: tuple[Any, ...]) -> bytes:
    lines = data.split(b"\n")
    kind, index = mutation[0], mutation[1] % len(lines)
    line = lines[index]
    if kind == "delete":
        del lines[index]
    elif kind == "replace-value" and b":" in line:
        lines[index] = line.split(b":", 1)[0] + b": " + mutation[2].encode()
    elif kind == "unknown-key":
        lines.insert(index, b" " * (len(line) - len(line.lstrip())) + mutation[2].encode() + b": 1")
    elif kind == "insert-text":
        lines.insert(index, mutation[2].encode("utf-8"))
    elif kind == "insert-bytes":  # inside a line, where a stray byte hurts most
        cut = len(line) // 2
        lines[index] = line[:cut] + mutation[2] + line[cut:]
    elif kind == "duplicate":
        lines.insert(index, line)
    elif kind == "indent":
        shift = mutation[2]
        lines[index] = (b" " * shift + line) if shift > 0 else line[-shift:]
    return b"\n".join(lines)


@PROPERTY
@given(mutations=st.lists(MUTATIONS, min_size=1, max_size=3))
def test_mutations_of_a_valid_config_load_or_fail_clearly(mutations: list[tuple[Any, ...]], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    data = VALID.encode()
    for mutation in mutations:
        data = mutate(data, mutation)
    path = tmp_path / "preflight.yaml"
    path.write_bytes(data)
    code, err = run(path, capsys)
    assert_loads_or_one_clear_line(code, err, path)
