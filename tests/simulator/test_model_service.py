"""The model-service simulator speaks the protocol: the official OpenAI client, the documented curl, DNS, redirects."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace

import dns.message
import dns.query
import dns.rcode
import httpx
import openai
import pytest

from preflight.simulator.dns_server import DnsServer
from preflight.simulator.model_service import ModelService
from preflight.simulator.scenarios import World

WORLD = World()
QWEN, _, BGE = WORLD.models


@pytest.fixture(scope="module")
def service() -> Iterator[ModelService]:
    server = ModelService(WORLD)
    server.start()
    yield server
    server.stop()


def client_for(service: ModelService, model_host: str, key: str) -> openai.OpenAI:
    # The official client, its traffic pointed at loopback while the Host header names the model service.
    http_client = httpx.Client(headers={"Host": model_host}, trust_env=False)
    return openai.OpenAI(base_url=f"http://127.0.0.1:{service.port}/v1", api_key="unused", http_client=http_client,
                         default_headers={"Authorization": key}, max_retries=0)


def test_official_client_completion_stream_and_embeddings(service: ModelService) -> None:
    qwen = client_for(service, QWEN.host, QWEN.api_key)
    completion = qwen.completions.create(model=QWEN.model, prompt="Say OK.", max_tokens=8)
    assert completion.choices[0].text and completion.usage is not None
    pieces = [chunk.choices[0].text for chunk in qwen.completions.create(model=QWEN.model, prompt="Hi", max_tokens=8,
                                                                        stream=True)]
    assert "".join(pieces) == "OK, ready."
    bge = client_for(service, BGE.host, BGE.api_key)
    vectors = bge.embeddings.create(model=BGE.model, input=["one", "two"]).data
    assert [v.index for v in vectors] == [0, 1] and {len(v.embedding) for v in vectors} == {1024}
    assert abs(sum(x * x for x in vectors[0].embedding) - 1.0) < 1e-3


def test_documented_curl_with_stream_as_a_string(service: ModelService) -> None:
    body = '{"prompt": "Say OK.", "stream": "false", "max_tokens": 8}'
    answer = httpx.post(f"http://127.0.0.1:{service.port}/v1/completions", content=body, trust_env=False,
                        headers={"Host": QWEN.host, "Authorization": QWEN.api_key,
                                 "Content-Type": "application/json"})
    assert answer.status_code == 200 and answer.json()["choices"][0]["text"]


def test_raw_key_wanted_bearer_refused_and_switchable() -> None:
    url_path = "/v1/models"
    raw = ModelService(WORLD)
    bearer = ModelService(replace(WORLD, auth_mode="bearer"))
    try:
        for server, good, bad in ((raw, QWEN.api_key, f"Bearer {QWEN.api_key}"),
                                  (bearer, f"Bearer {QWEN.api_key}", QWEN.api_key)):
            port = server.start()
            url = f"http://127.0.0.1:{port}{url_path}"
            assert httpx.get(url, headers={"Host": QWEN.host, "Authorization": good}, trust_env=False).status_code \
                == 200
            assert httpx.get(url, headers={"Host": QWEN.host, "Authorization": bad}, trust_env=False).status_code \
                == 401
    finally:
        raw.stop()
        bearer.stop()


def test_redirect_target_never_sees_the_key() -> None:
    server = ModelService(WORLD, faults=frozenset({"redirect"}))
    port = server.start()
    try:
        answer = httpx.get(f"http://127.0.0.1:{port}/v1/models", trust_env=False,
                           headers={"Host": QWEN.host, "Authorization": QWEN.api_key})
        assert answer.status_code == 302 and answer.headers["location"].startswith("http://127.0.0.2:")
        httpx.get(answer.headers["location"], trust_env=False)  # what a careful client may do: no key
        assert server.received_authorizations == [""]
    finally:
        server.stop()


def test_dns_answers_the_model_domain_and_nothing_else() -> None:
    server = DnsServer({QWEN.host: "127.0.0.1"})
    port = server.start()
    try:
        answer = dns.query.udp(dns.message.make_query(QWEN.host, "A"), "127.0.0.1", port=port, timeout=2)
        assert [item.to_text() for rrset in answer.answer for item in rrset] == ["127.0.0.1"]
        missing = dns.query.udp(dns.message.make_query("ms-none.cn-beijing.dataworks-model.aliyuncs.com", "A"),
                                "127.0.0.1", port=port, timeout=2)
        assert missing.rcode() == dns.rcode.NXDOMAIN
        other = dns.query.udp(dns.message.make_query("example.com", "A"), "127.0.0.1", port=port, timeout=2)
        assert other.rcode() == dns.rcode.REFUSED
    finally:
        server.stop()


def test_embedding_nan_is_really_sent(service: ModelService) -> None:
    server = ModelService(WORLD, faults=frozenset({"embedding-nan"}))
    port = server.start()
    try:
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/embeddings", trust_env=False,
                            headers={"Host": BGE.host, "Authorization": BGE.api_key},
                            json={"model": "bge-m3", "input": "x"})
        assert "NaN" in answer.text and "Infinity" in answer.text
        assert json.loads(answer.text)["data"][0]["embedding"][0] != json.loads(answer.text)["data"][0]["embedding"][0]
    finally:
        server.stop()
