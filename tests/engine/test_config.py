"""Config loading: typed values, env references, and errors that name file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from preflight.config import load_config, parse_config
from preflight.errors import ConfigError

VALID = """\
version: 1
region: cn-beijing
cloud: {endpoint: null, protocol: https, profile: null}
dns: {nameservers: [], resolve: {}}
targets:
  - name: prod
    workspace: 123456
    resource_group: Serverless_res_group_xxx
    nodes: []
    services:
      - name: qwen
        kind: completion
        endpoint: http://ms-abc.cn-beijing.dataworks-model.aliyuncs.com
        api_key: ${DW_QWEN_KEY}
        model: qwen3-1.7b
        auth: raw
        allowed_vpcs: []
        expect: {dimensions: 1024, max_ttft_ms: 5000}
      - name: bge
        kind: embedding
        endpoint: http://ms-bge.cn-beijing.dataworks-model.aliyuncs.com
        api_key: ${DW_BGE_KEY}
        model: bge-m3
"""
ENV = {"DW_QWEN_KEY": "DW-ms-abc-secret-value", "DW_BGE_KEY": "DW-ms-bge-secret-value"}


def error_of(text: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "preflight.yaml", ENV if environ is None else environ)
    return str(caught.value)


def test_the_documented_shape_loads_into_typed_objects() -> None:
    config = parse_config(VALID, "preflight.yaml", ENV)
    target = config.targets[0]
    assert (config.region, target.name, target.workspace) == ("cn-beijing", "prod", "123456")
    qwen, bge = target.services
    assert qwen.api_key == ENV["DW_QWEN_KEY"] and qwen.api_key_env == "DW_QWEN_KEY" and not qwen.api_key_literal
    assert qwen.expect.dimensions == 1024 and qwen.expect.max_ttft_ms == 5000 and qwen.line == 11
    assert bge.expected_dimensions == 1024  # bge-m3 dense vectors, even without expect.dimensions
    assert config.secrets()[0] == (ENV["DW_QWEN_KEY"], "api_key:prod/qwen")


def test_a_bad_kind_names_file_line_and_field() -> None:
    text = VALID.replace("kind: embedding", "kind: embeddings")
    assert error_of(text) == ("preflight.yaml:20: targets[0].services[1].kind: "
                              "expected one of completion, chat, embedding")


def test_an_unknown_field_suggests_the_right_one() -> None:
    message = error_of(VALID.replace("    nodes: []", "    node: []"))
    assert message == "preflight.yaml:9: targets[0].node: unknown field; did you mean 'nodes'?"


def test_an_unset_environment_variable_is_named() -> None:
    message = error_of(VALID, {"DW_QWEN_KEY": "x" * 10})
    assert message == "preflight.yaml:22: targets[0].services[1].api_key: environment variable DW_BGE_KEY is not set"


def test_a_literal_key_loads_with_a_warning_and_no_value_in_it() -> None:
    config = parse_config(VALID.replace("${DW_QWEN_KEY}", "DW-ms-literal-key-000"), "preflight.yaml", ENV)
    assert config.targets[0].services[0].api_key_literal
    assert config.warnings and "DW-ms-literal" not in " ".join(config.warnings)


@pytest.mark.parametrize(("text", "expected"), [
    ("", "preflight.yaml: the file is empty; see the README for a minimal config"),
    ("region: cn-beijing\n", "preflight.yaml:1: targets: is required: list at least one target"),
    ("region: [\n", "preflight.yaml:2: not valid YAML: did not find expected node content"),
    ("- a\n- b\n", "preflight.yaml:1: expected a mapping, got a list"),
    ("region: cn-beijing\ntargets: []\n", "preflight.yaml:2: targets: is empty: list at least one target"),
    ("region: Beijing\ntargets: [{name: a}]\n", "preflight.yaml:1: region: expected a region id like cn-beijing"),
    ("version: 2\nregion: cn-beijing\ntargets: [{name: a}]\n",
     "preflight.yaml:1: version: expected 1 (the only config version so far)"),
    ("region: cn-beijing\ntargets: [{name: a}, {name: a}]\n", "preflight.yaml:2: targets[1].name: 'a' is used twice"),
])
def test_broken_documents_get_one_clear_line(text: str, expected: str) -> None:
    assert error_of(text) == expected


def test_an_alias_bomb_is_refused_before_it_expands() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for level in range(1, 9):
        previous = chr(ord("a") + level - 1)
        name = chr(ord("a") + level)
        bomb += f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 10) + "]\n"
    bomb += "region: cn-beijing\ntargets: [{name: a}]\n"
    assert "alias bomb" in error_of(bomb)


def test_deep_nesting_is_refused() -> None:
    too_deep = "the document nests too deeply to be a config (more than 64 levels)"
    assert error_of("region: cn-beijing\ntargets: " + "[" * 5000 + "]" * 5000 + "\n") == f"preflight.yaml:2: {too_deep}"
    block = "region: cn-beijing\ntargets:\n" + "".join("  " * depth + "-\n" for depth in range(1, 80))
    assert error_of(block) == f"preflight.yaml:67: {too_deep}"


def test_files_that_cannot_be_configs(tmp_path: Path) -> None:
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\x00\x01\x02")
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("region: caf\xe9\n".encode("latin-1"))
    cases = {
        tmp_path / "missing.yaml": "no such file",
        tmp_path: "is a directory",
        binary: "is a binary file",
        latin: "is not UTF-8 text",
    }
    for path, expected in cases.items():
        with pytest.raises(ConfigError) as caught:
            load_config(path, ENV)
        assert str(caught.value).startswith(str(path)) and expected in str(caught.value)


def test_yaml_numbers_are_read_the_way_a_person_means_them() -> None:
    text = VALID.replace("workspace: 123456", "workspace: 0123456").replace("dimensions: 1024", "dimensions: 1_024")
    text = text.replace("dns: {nameservers: [], resolve: {}}", "dns: {nameservers: [], resolve: {}, timeout_s: 2.5}")
    config = parse_config(text.replace("        auth: raw\n", "        auth: raw\n        max_tokens: 0x10\n"),
                          "preflight.yaml", ENV)
    qwen = config.targets[0].services[0]
    assert (config.targets[0].workspace, qwen.expect.dimensions, qwen.max_tokens, config.dns.timeout_s) == \
        ("0123456", 1024, 16, 2.5)


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("max_ttft_ms: 5000", "max_ttft_ms: 1:20", "preflight.yaml:18: targets[0].services[0].expect.max_ttft_ms: "
                                               "expected a whole number, got the text '1:20'"),
    ("resolve: {}}", "resolve: {}, timeout_s: .inf}", "preflight.yaml:4: dns.timeout_s: expected a finite number "
                                                      "of at least 0.01"),
    ("resolve: {}}", "resolve: {}, timeout_s: .nan}", "preflight.yaml:4: dns.timeout_s: expected a finite number "
                                                      "of at least 0.01"),
    ("    nodes: []", "    \"no\\tdes\": []", "preflight.yaml:9: targets[0].no\\tdes: unknown field; did you mean "
                                                 "'nodes'?"),
])
def test_odd_scalars_and_keys_get_one_line(old: str, new: str, expected: str) -> None:
    assert error_of(VALID.replace(old, new)) == expected


ALL_INTEGERS = """\
version: 1
region: cn-beijing
cloud: {connect_timeout_ms: 5000, read_timeout_ms: 10000}
http: {max_body_bytes: 65536}
in_network: {timeout_s: 600}
max_tokens_budget: 100
targets:
  - name: prod
    services:
      - name: qwen
        kind: completion
        endpoint: http://ms-abc.cn-beijing.dataworks-model.aliyuncs.com
        api_key: ${DW_QWEN_KEY}
        max_tokens: 8
        expect: {dimensions: 1024, max_ttft_ms: 5000, max_latency_ms: 9000}
"""
INTEGER_FIELDS = [  # (field, line, value as written)
    ("version", 1, "1"), ("cloud.connect_timeout_ms", 3, "5000"), ("cloud.read_timeout_ms", 3, "10000"),
    ("http.max_body_bytes", 4, "65536"), ("in_network.timeout_s", 5, "600"), ("max_tokens_budget", 6, "100"),
    ("targets[0].services[0].max_tokens", 14, "8"), ("targets[0].services[0].expect.dimensions", 15, "1024"),
    ("targets[0].services[0].expect.max_ttft_ms", 15, "5000"),
    ("targets[0].services[0].expect.max_latency_ms", 15, "9000"),
]


def with_value(field: str, line: int, value: str, replacement: str) -> str:
    key = field.rsplit(".", 1)[-1]
    lines = ALL_INTEGERS.splitlines(keepends=True)
    assert f"{key}: {value}" in lines[line - 1], (field, lines[line - 1])
    lines[line - 1] = lines[line - 1].replace(f"{key}: {value}", f"{key}: {replacement}", 1)
    return "".join(lines)


def test_every_integer_field_is_read() -> None:
    config = parse_config(ALL_INTEGERS, "preflight.yaml", ENV)
    service = config.targets[0].services[0]
    assert (config.cloud.connect_timeout_ms, config.cloud.read_timeout_ms, config.http.max_body_bytes,
            config.in_network.timeout_s, config.max_tokens_budget, service.max_tokens, service.expect.dimensions,
            service.expect.max_ttft_ms, service.expect.max_latency_ms) == (5000, 10000, 65536, 600, 100, 8, 1024,
                                                                           5000, 9000)


@pytest.mark.parametrize(("field", "line", "value"), INTEGER_FIELDS, ids=[f[0] for f in INTEGER_FIELDS])
def test_every_integer_field_refuses_text_alike(field: str, line: int, value: str) -> None:
    quoted = error_of(with_value(field, line, value, f'"{value}"'))
    assert quoted == (f"preflight.yaml:{line}: {field}: expected a whole number, got the text '{value}'; "
                      f"write {value} without quotes")
    words = error_of(with_value(field, line, value, '"eight"'))
    assert words == f"preflight.yaml:{line}: {field}: expected a whole number, got the text 'eight'"
    unbraced = error_of(with_value(field, line, value, "$DW_NUMBER"))
    assert unbraced.endswith("got the text '$DW_NUMBER'; to read the environment variable, write ${DW_NUMBER}")


@pytest.mark.parametrize(("field", "line", "value"), INTEGER_FIELDS, ids=[f[0] for f in INTEGER_FIELDS])
def test_a_whole_reference_stands_for_an_integer(field: str, line: int, value: str) -> None:
    text = with_value(field, line, value, '"${DW_NUMBER}"')  # quoted: YAML's flow style reads braces itself
    assert parse_config(text, "preflight.yaml", {**ENV, "DW_NUMBER": value}) == parse_config(
        ALL_INTEGERS, "preflight.yaml", ENV)
    assert error_of(text, {**ENV, "DW_NUMBER": "many"}) == (f"preflight.yaml:{line}: {field}: expected a whole "
                                                            "number in ${DW_NUMBER}")


def test_an_unbraced_reference_is_a_warning_that_shows_the_braced_spelling() -> None:
    text = VALID.replace("api_key: ${DW_QWEN_KEY}", "api_key: $DW_QWEN_KEY").replace(
        "resource_group: Serverless_res_group_xxx", "resource_group: $DW_GROUP")
    config = parse_config(text, "preflight.yaml", ENV)
    qwen = config.targets[0].services[0]
    assert qwen.api_key == "$DW_QWEN_KEY" and qwen.api_key_literal and config.targets[0].resource_group == "$DW_GROUP"
    expected = ("an environment reference without braces is taken literally (only the ${NAME} spelling is "
                "expanded); to read the variable, write ")
    assert config.warnings == (f"preflight.yaml:14: targets[0].services[0].api_key: {expected}${{DW_QWEN_KEY}}",
                               f"preflight.yaml:8: targets[0].resource_group: {expected}${{DW_GROUP}}")
    plain = parse_config(VALID.replace("api_key: ${DW_QWEN_KEY}", "api_key: DW-ms-$x-literal"), "p.yaml", ENV)
    assert len(plain.warnings) == 1 and "written in the file" in plain.warnings[0]  # not a reference: no hint


def test_rate_limits_and_region_endpoints_load() -> None:
    text = VALID.replace("cloud: {endpoint: null, protocol: https, profile: null}",
                         "cloud:\n  endpoint: dataworks.{region}.aliyuncs.com\n"
                         "  rate_limits: {default: 5, 'dataworks:ListNetworks': 2.5}\n"
                         "  endpoints:\n    cn-shanghai: dw.sh.example\n"
                         "    cn-hangzhou: {dataworks: dw.hz.example, pvtz: pvtz.hz.example}")
    cloud = parse_config(text, "preflight.yaml", ENV).cloud
    assert cloud.rate_limits == {"default": 5.0, "dataworks:ListNetworks": 2.5}
    assert cloud.endpoint_for("cn-shanghai") == "dw.sh.example"
    assert cloud.endpoint_for("cn-beijing") == "dataworks.cn-beijing.aliyuncs.com"
    assert cloud.endpoint_for("cn-hangzhou", "pvtz") == "pvtz.hz.example"
    assert cloud.endpoint_for("cn-hangzhou", "vpc") is None  # the generated client's own map


@pytest.mark.parametrize(("cloud", "expected"), [
    ("{rate_limits: {default: 0}}", "preflight.yaml:3: cloud.rate_limits.default: expected a positive number"),
    ("{rate_limits: {default: fast}}", "preflight.yaml:3: cloud.rate_limits.default: expected a number, got the "
                                       "text 'fast'"),
    ("{rate_limits: {'dataworks:ListNetwork': 2}}", "preflight.yaml:3: cloud.rate_limits.dataworks:ListNetwork: "
                                                    "unknown field; did you mean 'dataworks:ListNetworks'?"),
    ("{rate_limits: 5}", "preflight.yaml:3: cloud.rate_limits: expected a mapping of action to calls per second"),
    ("{endpoints: {shanghai: x}}", "preflight.yaml:3: cloud.endpoints.shanghai: expected a region id like "
                                   "cn-beijing"),
    ("{endpoints: {cn-shanghai: {dataworks: x, ecs: y}}}", "preflight.yaml:3: cloud.endpoints.cn-shanghai.ecs: "
                                                           "unknown field"),
])
def test_rate_limits_and_region_endpoints_name_line_and_field(cloud: str, expected: str) -> None:
    text = VALID.replace("cloud: {endpoint: null, protocol: https, profile: null}", f"cloud: {cloud}")
    assert error_of(text).startswith(expected)


def test_a_rate_limit_of_an_action_the_tool_does_not_call_is_refused() -> None:
    text = VALID.replace("cloud: {endpoint: null, protocol: https, profile: null}",
                         "cloud:\n  rate_limits:\n    default: 5\n    'oss:PutObject': 2")
    assert error_of(text).startswith("preflight.yaml:6: cloud.rate_limits.oss:PutObject: unknown field; "
                                     "expected one of default, dataworks:")


def test_rate_limits_take_every_action_the_cloud_session_calls() -> None:
    from preflight.actions import RATE_LIMIT_KEYS
    from preflight.cloud.session import ACTIONS

    assert set(RATE_LIMIT_KEYS) == {"default", *(f"{product}:{action}" for product, action in ACTIONS)}


def test_loading_a_config_imports_nothing_of_the_cloud_layer() -> None:
    import subprocess
    import sys

    script = ("import sys\nfrom preflight.config import parse_config\n"
              f"parse_config({VALID!r}.replace('cloud: {{endpoint', 'cloud: {{rate_limits: {{default: 5}}, endpoint'),"
              f" 'p.yaml', {ENV!r})\n"
              "print(sorted(name for name in sys.modules if name.startswith('preflight.cloud')))")
    shown = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert shown.strip() == "[]"
