"""The official openai client and the documented curl body talk to the model-service simulator unchanged."""

from __future__ import annotations

from dataclasses import replace

import httpx
import httpx2
import openai
import pytest

from preflight.simulator.model_service import ModelService
from preflight.simulator.scenarios import World

WORLD = World()
QWEN, CHAT, BGE = WORLD.models


def client_for(port: int, model_host: str, key: str, *, raw_key: bool = True) -> openai.OpenAI:
    # Traffic goes to loopback while the Host header names the model service, as DNS would arrange.
    # httpx2 is the client's own HTTP library since openai 3.
    http_client = httpx2.Client(headers={"Host": model_host}, trust_env=False)
    # DataWorks wants the raw key; the client would send "Bearer <key>" unless told otherwise.
    headers = {"Authorization": key} if raw_key else {}
    return openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, http_client=http_client,
                         default_headers=headers, max_retries=0)


def test_completion(service: ModelService) -> None:
    completion = client_for(service.port, QWEN.host, QWEN.api_key).completions.create(
        model=QWEN.model, prompt="Say OK.", max_tokens=1)
    assert completion.choices[0].text and completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens > 0


def test_streamed_completion_like_the_documented_python_client(service: ModelService) -> None:
    stream = client_for(service.port, QWEN.host, QWEN.api_key).completions.create(
        model=QWEN.model, prompt="Hi", max_tokens=8, stream=True)
    chunks = list(stream)
    assert len(chunks) == 4 and "".join(c.choices[0].text for c in chunks) == "OK, ready."
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_chat_plain_and_streamed(service: ModelService) -> None:
    chat = client_for(service.port, CHAT.host, CHAT.api_key)
    messages: list[openai.types.chat.ChatCompletionMessageParam] = [{"role": "user", "content": "Say OK."}]
    answer = chat.chat.completions.create(model=CHAT.model, messages=messages, max_tokens=8)
    assert answer.choices[0].message.content == "OK, ready."
    pieces = [c.choices[0].delta.content for c in chat.chat.completions.create(
        model=CHAT.model, messages=messages, max_tokens=8, stream=True)]
    assert "".join(p or "" for p in pieces) == "OK, ready."


def test_embeddings_as_the_client_asks_for_them(service: ModelService) -> None:
    bge = client_for(service.port, BGE.host, BGE.api_key)
    # The client asks for base64 by default and decodes it; floats when asked explicitly.
    encoded = bge.embeddings.create(model=BGE.model, input=["one", "two"]).data
    floats = bge.embeddings.create(model=BGE.model, input=["one", "two"], encoding_format="float").data
    assert [v.index for v in encoded] == [0, 1] and {len(v.embedding) for v in encoded} == {1024}
    for packed, plain in zip(encoded, floats, strict=True):
        assert max(abs(a - b) for a, b in zip(packed.embedding, plain.embedding, strict=True)) < 1e-6
    assert abs(sum(x * x for x in floats[0].embedding) - 1.0) < 1e-3
    assert floats[0].embedding != floats[1].embedding
    single = bge.embeddings.create(model=BGE.model, input="one", encoding_format="float").data
    assert single[0].embedding == floats[0].embedding


def test_models_list(service: ModelService) -> None:
    assert [m.id for m in client_for(service.port, QWEN.host, QWEN.api_key).models.list()] == [QWEN.model]


def test_wrong_key_and_wrong_kind_are_the_clients_own_errors(service: ModelService) -> None:
    with pytest.raises(openai.AuthenticationError):
        client_for(service.port, QWEN.host, "DW-wrong").completions.create(model=QWEN.model, prompt="x")
    with pytest.raises(openai.BadRequestError):
        client_for(service.port, QWEN.host, QWEN.api_key).embeddings.create(model=QWEN.model, input="x")


def test_bearer_mode_takes_the_clients_default_header() -> None:
    server = ModelService(replace(WORLD, auth_mode="bearer"))
    port = server.start()
    try:
        bearer = client_for(port, QWEN.host, QWEN.api_key, raw_key=False)
        assert bearer.completions.create(model=QWEN.model, prompt="x", max_tokens=2).choices[0].text
        with pytest.raises(openai.AuthenticationError):
            client_for(port, QWEN.host, QWEN.api_key).completions.create(model=QWEN.model, prompt="x")
    finally:
        server.stop()


@pytest.mark.parametrize("stream", ['"false"', "false"])
def test_documented_curl_body(service: ModelService, stream: str) -> None:
    # The documentation's curl sends "stream":"false" as a string; the server takes it as false.
    body = '{"prompt": "Say OK.", "stream": ' + stream + ', "max_tokens": 8}'
    answer = httpx.post(f"http://127.0.0.1:{service.port}/v1/completions", content=body, trust_env=False,
                        headers={"Host": QWEN.host, "Authorization": QWEN.api_key,
                                 "Content-Type": "application/json"})
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    assert answer.json()["choices"][0]["text"]


def test_stream_true_as_a_string_streams(service: ModelService) -> None:
    answer = httpx.post(f"http://127.0.0.1:{service.port}/v1/completions", trust_env=False,
                        content='{"prompt": "Hi", "stream": "true", "max_tokens": 8}',
                        headers={"Host": QWEN.host, "Authorization": QWEN.api_key})
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert answer.text.endswith("data: [DONE]\n\n")
