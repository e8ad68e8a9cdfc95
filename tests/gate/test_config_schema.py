"""The config's JSON Schema: generated from the loader's field table, shipped, and in agreement with the loader."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from preflight.cli.main import main
from preflight.config import parse_config
from preflight.config.schema import config_schema, schema_text
from preflight.errors import ConfigError

ROOT = Path(__file__).parents[2]
ENV = {"DW_QWEN_KEY": "DW-ms-abc-key", "DW_BGE_KEY": "DW-ms-def-key", "DW_KEY": "DW-ms-abc-key",
       "REGION": "cn-shanghai", "BUDGET": "100"}


class _TextDates(yaml.SafeLoader):
    """YAML as an editor's language server reads it for the schema: a date stays the text it is written as."""


_TextDates.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def schema_accepts(text: str) -> bool:
    document = yaml.load(text, Loader=_TextDates)  # a SafeLoader subclass
    try:
        jsonschema.validate(document, config_schema(), format_checker=jsonschema.FormatChecker())
    except jsonschema.ValidationError:
        return False
    return True


class _AnyVariable(dict[str, str]):
    """An environment in which every variable is set, for example configs that name their own."""

    def __contains__(self, name: object) -> bool:
        return True

    def __missing__(self, name: str) -> str:
        return ENV.get(name, "DW-ms-any-key")


def loader_accepts(text: str, environ: dict[str, str] | None = None) -> bool:
    try:
        parse_config(text, "preflight.yaml", ENV if environ is None else environ)
    except ConfigError:
        return False
    return True


def test_the_shipped_schema_is_the_generated_one() -> None:
    shipped = resources.files("preflight").joinpath("config.schema.json").read_text(encoding="utf-8")
    assert shipped == schema_text(), "regenerate it: preflight schema > preflight/config.schema.json"


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(config_schema())


def test_preflight_schema_prints_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == config_schema()
    assert main(["schema", "--check", str(ROOT / "preflight" / "config.schema.json")]) == 0


def test_schema_check_says_when_a_file_differs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "config.schema.json"
    stale.write_text("{}\n")
    assert main(["schema", "--check", str(stale)]) == 1
    assert "regenerate it with `preflight schema > " in capsys.readouterr().err


def _readme_configs() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    return [block for block in blocks if re.search(r"^targets:", block, flags=re.M)]


def example_configs() -> list[tuple[str, str]]:
    """Every example config in the repository: examples/*.yaml configs, the README's, and the simulator's."""
    found = [(str(path.relative_to(ROOT)), path.read_text(encoding="utf-8"))
             for path in sorted((ROOT / "examples").glob("*.yaml")) if "targets:" in path.read_text()]
    found += [(f"README.md config #{index}", block) for index, block in enumerate(_readme_configs())]
    from preflight.simulator.harness import Simulator
    from preflight.simulator.scenarios import get_scenario

    found.append(("simulator config", Simulator(get_scenario("healthy")).config_text()))
    return found


EXAMPLES = example_configs()


def test_there_are_examples_to_check() -> None:
    names = [name for name, _ in EXAMPLES]
    assert any(name.startswith("README.md") for name in names) and "examples/preflight.yaml" in names


@pytest.mark.parametrize(("name", "text"), EXAMPLES, ids=[name for name, _ in EXAMPLES])
def test_every_example_config_validates_against_the_schema(name: str, text: str) -> None:
    assert schema_accepts(text), name
    assert loader_accepts(text, _AnyVariable()), name


BASE = """version: 1
region: cn-beijing
targets:
  - name: prod
    workspace: 123456
    resource_group: Serverless_res_group_1
    services:
      - name: qwen
        kind: completion
        endpoint: http://ms-abc.cn-beijing.dataworks-model.aliyuncs.com
        api_key: ${DW_QWEN_KEY}
"""

# (what differs from BASE, whether it is a valid config): loader and schema must give the same verdict.
CORPUS: list[tuple[str, bool]] = [
    ("", True),
    ("waivers:\n  - {check: network.privatelink, reason: moving, until: 2099-01-31, ticket: NET-1}\n", True),
    ("waivers:\n  - {check: 'inference.*', target: prod, service: qwen, reason: slo, until: 2099-01-31}\n", True),
    ("waivers: null\n", True),
    ("cloud: {protocol: http, connect_timeout_ms: 100, network_endpoints: {pvtz: 127.0.0.1:1}}\n", True),
    ("cloud: null\n", True),
    ("dns: {nameservers: [100.100.2.136], resolve: {'ms-abc.x.com:80': 10.0.0.1}, timeout_s: 0.5}\n", True),
    ("http: {connect_timeout_s: 1, read_timeout_s: 2.5, max_body_bytes: 2048, ca_bundle: ca.pem}\n", True),
    ("in_network: {task_type: DIDE_SHELL, timeout_s: 60, python: python3.11}\n", True),
    ("max_tokens_budget: 500\n", True),
    ("max_tokens_budget: null\n", True),
    ("max_tokens_budget: ${BUDGET}\n", True),
    ("waivers:\n  - {check: '*', reason: all, until: 2099-01-31}\n", False),
    ("waivers:\n  - {check: auth.key_valid, until: 2099-01-31}\n", False),
    ("waivers:\n  - {check: auth.key_valid, reason: x}\n", False),
    ("waivers:\n  - {check: auth.key_valid, reason: x, until: soon}\n", False),
    ("waivers:\n  - {check: auth.key_valid, reason: '', until: 2099-01-31}\n", False),
    ("waivers:\n  - {check: auth.key_valid, reason: x, until: 2099-01-31, owner: me}\n", False),
    ("waivers: {check: auth.key_valid}\n", False),
    ("max_tokens_budget: 0\n", False),
    ("max_tokens_budget: '500'\n", False),
    ("max_tokens_budget: lots\n", False),
    ("version: 2\n", False),
    ("cloud: {protocol: ftp}\n", False),
    ("cloud: {connect_timeout_ms: 0}\n", False),
    ("cloud: {network_endpoints: {ecs: x}}\n", False),
    ("cloud: {endpint: x}\n", False),
    ("dns: {timeout_s: 0}\n", False),
    ("dns: {resolve: {'no-port': 10.0.0.1}}\n", False),
    ("dns: {nameservers: 100.100.2.136}\n", False),
    ("http: {max_body_bytes: 100}\n", False),
    ("http: {read_timeout_s: true}\n", False),
    ("in_network: {timeout_s: 5}\n", False),
    ("colour: red\n", False),
]
SERVICE_CORPUS: list[tuple[str, bool]] = [
    ("        model: qwen3-1.7b\n        auth: bearer\n        max_tokens: 16\n", True),
    ("        expect: {dimensions: 1024, max_ttft_ms: 3000, max_latency_ms: 9000}\n", True),
    ("        allowed_vpcs: [vpc-1, vpc-2]\n        prompt: Hello\n", True),
    ("        model: null\n", True),
    ("        expect: {dimensions: null, max_latency_ms: ~}\n", True),
    ("        expect: {max_ttft_ms: null}\n", False),
    ("        max_tokens: null\n", False),
    ("        kind2: chat\n", False),
    ("        auth: token\n", False),
    ("        max_tokens: 5000\n", False),
    ("        max_tokens: 0\n", False),
    ("        expect: {dimensions: 0}\n", False),
    ("        expect: null\n", False),
    ("        expect: {dims: 3}\n", False),
    ("        allowed_vpcs: vpc-1\n", False),
]


def _with_service(extra: str) -> str:
    return BASE + extra


@pytest.mark.parametrize(("extra", "valid"), CORPUS)
def test_loader_and_schema_agree_on_top_level_fields(extra: str, valid: bool) -> None:
    text = BASE + extra
    assert loader_accepts(text) is valid, text
    assert schema_accepts(text) is valid, text


@pytest.mark.parametrize(("extra", "valid"), SERVICE_CORPUS)
def test_loader_and_schema_agree_on_service_fields(extra: str, valid: bool) -> None:
    text = _with_service(extra)
    assert loader_accepts(text) is valid, text
    assert schema_accepts(text) is valid, text


@pytest.mark.parametrize(("text", "valid"), [
    ("version: 1\nregion: cn-beijing\ntargets: []\n", False),
    ("version: 1\nregion: beijing\ntargets:\n  - name: prod\n", False),
    ("version: 1\nregion: ${REGION}\ntargets:\n  - name: prod\n", True),
    ("version: 1\ntargets:\n  - name: prod\n", False),
    ("version: 1\nregion: cn-beijing\n", False),
    ("region: cn-beijing\ntargets:\n  - name: 'prod target'\n", False),
    ("region: cn-beijing\ntargets:\n  - {name: prod, workspace: 0123, nodes: [700001, '700002']}\n", True),
    ("region: cn-beijing\ntargets:\n  - {name: prod, workspace: 1.5}\n", False),
    ("region: cn-beijing\ntargets:\n  - {workspace: 1}\n", False),
    ("region: cn-beijing\ntargets:\n  - {name: prod, services: [{name: a, kind: chat}]}\n", False),
])
def test_loader_and_schema_agree_on_whole_documents(text: str, valid: bool) -> None:
    assert loader_accepts(text) is valid, text
    assert schema_accepts(text) is valid, text


def _walk(schema: Any) -> list[dict[str, Any]]:
    found = []
    if isinstance(schema, dict):
        if "description" in schema:
            found.append(schema)
        for value in schema.values():
            found += _walk(value)
    elif isinstance(schema, list):
        for value in schema:
            found += _walk(value)
    return found


def test_every_field_has_a_description() -> None:
    properties = config_schema()["properties"]
    assert set(properties) == {"version", "region", "cloud", "dns", "http", "in_network", "max_tokens_budget",
                               "targets", "waivers"}
    assert all(item["description"] for item in _walk(config_schema()))
