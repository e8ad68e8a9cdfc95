"""Each route and fault of the model-service simulator, over real loopback sockets with httpx."""

from __future__ import annotations

import base64
import json
import math
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import httpx
import pytest
import trustme

from preflight.simulator.model_service import ModelService, unit_vector
from preflight.simulator.scenarios import SCENARIOS, SimModel, World

WORLD = World()
QWEN, CHAT, BGE = WORLD.models
PROMPT = {"model": QWEN.model, "prompt": "Say OK.", "max_tokens": 8}


@pytest.fixture
def faulty(request: pytest.FixtureRequest) -> Iterator[ModelService]:
    server = ModelService(WORLD, faults=frozenset({request.param}))
    server.start()
    yield server
    server.stop()


def call(port: int, model: SimModel, method: str, path: str, *, body: Any = None, key: str | None = None,
         timeout: float = 5.0) -> httpx.Response:
    headers = {"Host": model.host, "Authorization": model.api_key if key is None else key}
    return httpx.request(method, f"http://127.0.0.1:{port}{path}", json=body, headers=headers, timeout=timeout,
                         trust_env=False)


def events(text: str) -> list[str]:
    return [line[len("data: "):] for line in text.split("\n\n") if line.startswith("data: ")]


def open_stream(client: httpx.Client, port: int, model: SimModel = QWEN) -> httpx.Response:
    request = client.build_request("POST", f"http://127.0.0.1:{port}/v1/completions",
                                   json={**PROMPT, "stream": True},
                                   headers={"Host": model.host, "Authorization": model.api_key})
    return client.send(request, stream=True)


# --- routes ----------------------------------------------------------------------------------------


def test_models_lists_the_services_model(service: ModelService) -> None:
    answer = call(service.port, QWEN, "GET", "/v1/models")
    assert answer.status_code == 200 and answer.json()["object"] == "list"
    assert [(m["id"], m["object"]) for m in answer.json()["data"]] == [(QWEN.model, "model")]


def test_served_models_override_replaces_the_ids() -> None:
    server = ModelService(replace(WORLD, served_models_override=("other-a", "other-b")))
    port = server.start()
    try:
        assert [m["id"] for m in call(port, QWEN, "GET", "/v1/models").json()["data"]] == ["other-a", "other-b"]
    finally:
        server.stop()


def test_each_host_is_its_own_service(service: ModelService) -> None:
    assert call(service.port, BGE, "GET", "/v1/models").json()["data"][0]["id"] == BGE.model
    # Another service's key does not open this one.
    assert call(service.port, QWEN, "GET", "/v1/models", key=BGE.api_key).status_code == 401


def test_unknown_host_is_a_json_404(service: ModelService) -> None:
    answer = httpx.get(f"http://127.0.0.1:{service.port}/v1/models", trust_env=False,
                       headers={"Host": "ms-nobody.cn-beijing.dataworks-model.aliyuncs.com",
                                "Authorization": QWEN.api_key})
    assert answer.status_code == 404 and answer.json()["object"] == "error"


@pytest.mark.parametrize("key", ["", "DW-wrong", f"Bearer {QWEN.api_key}", QWEN.api_key.upper()])
def test_anything_but_the_raw_key_is_a_json_401(service: ModelService, key: str) -> None:
    answer = call(service.port, QWEN, "POST", "/v1/completions", body=PROMPT, key=key)
    assert answer.status_code == 401 and answer.json()["type"] == "AuthenticationError"


def test_bearer_mode_wants_the_prefix() -> None:
    server = ModelService(replace(WORLD, auth_mode="bearer"))
    port = server.start()
    try:
        assert call(port, QWEN, "GET", "/v1/models", key=f"Bearer {QWEN.api_key}").status_code == 200
        assert call(port, QWEN, "GET", "/v1/models").status_code == 401
    finally:
        server.stop()


@pytest.mark.parametrize("max_tokens", [1, 2, 8, 512])
def test_completion_text_is_never_empty(service: ModelService, max_tokens: int) -> None:
    answer = call(service.port, QWEN, "POST", "/v1/completions", body={**PROMPT, "max_tokens": max_tokens}).json()
    choice = answer["choices"][0]
    assert choice["text"] and choice["finish_reason"] == "stop" and answer["usage"]["total_tokens"] > 0


def test_streamed_completion_is_sse_ending_in_done(service: ModelService) -> None:
    answer = call(service.port, QWEN, "POST", "/v1/completions", body={**PROMPT, "stream": True})
    assert answer.headers["content-type"].startswith("text/event-stream")
    *chunks, done = events(answer.text)
    assert done == "[DONE]" and "".join(json.loads(c)["choices"][0]["text"] for c in chunks) == "OK, ready."


def test_chat_plain_and_streamed(service: ModelService) -> None:
    body = {"model": CHAT.model, "messages": [{"role": "user", "content": "Say OK."}]}
    plain = call(service.port, CHAT, "POST", "/v1/chat/completions", body=body).json()
    assert plain["choices"][0]["message"]["content"]
    *chunks, done = events(call(service.port, CHAT, "POST", "/v1/chat/completions",
                                body={**body, "stream": True}).text)
    assert done == "[DONE]" and [json.loads(c)["object"] for c in chunks] == ["chat.completion.chunk"] * 4


def test_embeddings_of_a_string_and_of_a_list(service: ModelService) -> None:
    one = call(service.port, BGE, "POST", "/v1/embeddings", body={"model": "bge-m3", "input": "alpha"}).json()
    many = call(service.port, BGE, "POST", "/v1/embeddings",
                body={"model": "bge-m3", "input": ["alpha", "beta", "gamma"]}).json()
    assert [d["index"] for d in many["data"]] == [0, 1, 2] and many["usage"]["total_tokens"] > 0
    vectors = [d["embedding"] for d in many["data"]]
    assert one["data"][0]["embedding"] == vectors[0] == unit_vector("alpha", 1024)
    assert len({json.dumps(v) for v in vectors}) == 3
    assert all(len(v) == 1024 and abs(math.fsum(x * x for x in v) - 1.0) < 1e-3 for v in vectors)
    # The vectors are computed and written once, then spliced into the answer: the bytes are what json.dumps of
    # the whole answer gives, and asking again gives them again.
    raw = call(service.port, BGE, "POST", "/v1/embeddings", body={"model": "bge-m3", "input": ["alpha", "beta"]})
    assert raw.content == json.dumps(
        {"object": "list", "model": "bge-m3",
         "data": [{"object": "embedding", "index": i, "embedding": unit_vector(t, 1024)}
                  for i, t in enumerate(["alpha", "beta"])],
         "usage": {"prompt_tokens": 2, "total_tokens": 2}}).encode()
    unit_vector("alpha", 1024)[0] = 99.0  # a caller's copy: changing it changes no later answer
    assert call(service.port, BGE, "POST", "/v1/embeddings", body={"model": "bge-m3", "input": "alpha"}
                ).json() == one


def test_embeddings_in_base64_are_little_endian_float32(service: ModelService) -> None:
    answer = call(service.port, BGE, "POST", "/v1/embeddings",
                  body={"model": "bge-m3", "input": "alpha", "encoding_format": "base64"}).json()
    packed = base64.b64decode(answer["data"][0]["embedding"])
    decoded = struct.unpack(f"<{len(packed) // 4}f", packed)
    assert len(decoded) == 1024
    assert max(abs(a - b) for a, b in zip(decoded, unit_vector("alpha", 1024), strict=True)) < 1e-6


def test_dimensions_follow_the_model() -> None:
    small = replace(BGE, dimensions=768)
    server = ModelService(replace(WORLD, models=(QWEN, CHAT, small)))
    port = server.start()
    try:
        answer = call(port, small, "POST", "/v1/embeddings", body={"model": "bge-m3", "input": "x"}).json()
        assert len(answer["data"][0]["embedding"]) == 768
    finally:
        server.stop()


@pytest.mark.parametrize(("model", "path", "body"), [
    (QWEN, "/v1/embeddings", {"input": "x"}),
    (BGE, "/v1/completions", PROMPT),
    (BGE, "/v1/chat/completions", {"messages": []}),
    (BGE, "/v1/embeddings", {"input": 42}),
])
def test_kind_mismatch_and_bad_input_are_json_400(service: ModelService, model: SimModel, path: str,
                                                  body: Any) -> None:
    answer = call(service.port, model, "POST", path, body=body)
    assert answer.status_code == 400 and answer.json()["type"] == "BadRequestError"


def test_unknown_path_and_non_json_body(service: ModelService) -> None:
    assert call(service.port, QWEN, "GET", "/v1/nothing").status_code == 404
    answer = httpx.post(f"http://127.0.0.1:{service.port}/v1/completions", content=b"{not json", trust_env=False,
                        headers={"Host": QWEN.host, "Authorization": QWEN.api_key})
    assert answer.status_code == 400 and answer.json()["object"] == "error"


# --- transport behaviour ---------------------------------------------------------------------------


def test_keep_alive_without_delayed_ack_stalls(service: ModelService) -> None:
    # Nagle plus delayed ACK would cost about 40 ms per request on a reused connection.
    with httpx.Client(trust_env=False, headers={"Host": QWEN.host, "Authorization": QWEN.api_key}) as client:
        url = f"http://127.0.0.1:{service.port}/v1/completions"
        client.post(url, json=PROMPT)
        started = time.perf_counter()
        for _ in range(30):
            assert client.post(url, json=PROMPT).status_code == 200
        assert (time.perf_counter() - started) / 30 < 0.02


def test_latency_is_added_to_every_request() -> None:
    server = ModelService(WORLD, latency_s=0.2)
    port = server.start()
    try:
        for path, body in (("/v1/models", None), ("/v1/completions", PROMPT)):
            started = time.monotonic()
            call(port, QWEN, "GET" if body is None else "POST", path, body=body)
            assert 0.2 <= time.monotonic() - started < 1.0
    finally:
        server.stop()


def test_a_hundred_concurrent_clients() -> None:
    # With 100 ms per request, a hundred answered one after another would take ten seconds; half of that proves
    # they overlap, with room for a slow 2-core CI machine (3 s was missed by 80 ms on one).
    server = ModelService(WORLD, latency_s=0.1)
    port = server.start()
    try:
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=100) as pool:
            codes = list(pool.map(lambda _: call(port, QWEN, "POST", "/v1/completions", body=PROMPT).status_code,
                                  range(100)))
        assert codes == [200] * 100 and time.monotonic() - started < 5.0
        assert server.requests["POST /v1/completions"] == 100
    finally:
        server.stop()


def test_tls_with_a_private_ca() -> None:
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert(QWEN.host).configure_cert(server_context)
    server = ModelService(WORLD, ssl_context=server_context)
    port = server.start()
    url = f"https://127.0.0.1:{port}/v1/models"
    headers = {"Host": QWEN.host, "Authorization": QWEN.api_key}
    # sni_hostname makes the client check the certificate against the model host, not the loopback address.
    named = {"sni_hostname": QWEN.host}
    try:
        trusted = ssl.create_default_context()
        authority.configure_trust(trusted)
        with httpx.Client(verify=trusted, trust_env=False) as client:
            answer = client.get(url, headers=headers, extensions=named)
            assert answer.status_code == 200 and answer.json()["data"][0]["id"] == QWEN.model
        # A fresh client each time: a pooled connection would skip the handshake being tested.
        with httpx.Client(verify=trusted, trust_env=False) as client, pytest.raises(
                httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            client.get(url, headers=headers, extensions={"sni_hostname": BGE.host})
        with httpx.Client(trust_env=False) as untrusting, pytest.raises(httpx.ConnectError,
                                                                       match="CERTIFICATE_VERIFY_FAILED"):
            untrusting.get(url, headers=headers, extensions=named)
    finally:
        server.stop()


def test_a_client_that_never_finishes_the_handshake_blocks_nobody() -> None:
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert(QWEN.host).configure_cert(server_context)
    server = ModelService(WORLD, ssl_context=server_context)
    port = server.start()
    trusted = ssl.create_default_context()
    authority.configure_trust(trusted)
    try:
        # A TCP connection that never says hello, then a real client behind it.
        with socket.create_connection(("127.0.0.1", port)), httpx.Client(verify=trusted, timeout=3,
                                                                         trust_env=False) as client:
            answer = client.get(f"https://127.0.0.1:{port}/v1/models", extensions={"sni_hostname": QWEN.host},
                                headers={"Host": QWEN.host, "Authorization": QWEN.api_key})
            assert answer.status_code == 200
    finally:
        server.stop()


# --- faults ----------------------------------------------------------------------------------------


def test_hostile_scenarios_carry_their_fault() -> None:
    expected = {"reset-mid-body": "completion-reset", "trickle-headers": "completion-trickle",
                "huge-body": "completion-huge", "not-utf8": "completion-not-utf8",
                "not-json": "completion-not-json", "proxy-502": "proxy-502", "redirect-other-host": "redirect",
                "stream-endless": "stream-endless", "stream-malformed": "stream-malformed",
                "stream-stall": "stream-stall", "embedding-nan": "embedding-nan"}
    for name, fault in expected.items():
        assert SCENARIOS[name].model_faults == frozenset({fault}), name


@pytest.mark.parametrize("faulty", ["completion-500"], indirect=True)
def test_completion_500(faulty: ModelService) -> None:
    answer = call(faulty.port, QWEN, "POST", "/v1/completions", body=PROMPT)
    assert answer.status_code == 500 and answer.json()["type"] == "InternalServerError"
    assert call(faulty.port, QWEN, "GET", "/v1/models").status_code == 200


@pytest.mark.parametrize("faulty", ["completion-reset"], indirect=True)
def test_reset_mid_body(faulty: ModelService) -> None:
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        call(faulty.port, QWEN, "POST", "/v1/completions", body=PROMPT)


@pytest.mark.parametrize("faulty", ["completion-trickle"], indirect=True)
def test_headers_trickle_one_byte_a_second(faulty: ModelService) -> None:
    request = (f"POST /v1/completions HTTP/1.1\r\nHost: {QWEN.host}\r\nAuthorization: {QWEN.api_key}\r\n"
               f"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}").encode()
    with socket.create_connection(("127.0.0.1", faulty.port), timeout=3) as sock:
        sock.sendall(request)
        first = sock.recv(100)
        started = time.monotonic()
        second = sock.recv(100)
        assert (first, second) == (b"H", b"T") and time.monotonic() - started > 0.8
    # A byte a second slips under any read timeout over a second, which is why clients need a total deadline;
    # a shorter read timeout does catch it.
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        call(faulty.port, QWEN, "POST", "/v1/completions", body=PROMPT, timeout=0.5)
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("faulty", ["completion-huge"], indirect=True)
def test_huge_body(faulty: ModelService) -> None:
    with httpx.Client(trust_env=False) as client, client.stream(
            "POST", f"http://127.0.0.1:{faulty.port}/v1/completions", json=PROMPT,
            headers={"Host": QWEN.host, "Authorization": QWEN.api_key}) as answer:
        assert int(answer.headers["content-length"]) > 10 * 1024 * 1024
        assert next(answer.iter_bytes()).startswith(b'{"choices"')


@pytest.mark.parametrize("faulty", ["completion-not-utf8"], indirect=True)
def test_not_utf8(faulty: ModelService) -> None:
    answer = call(faulty.port, QWEN, "POST", "/v1/completions", body=PROMPT)
    assert answer.status_code == 200
    with pytest.raises(UnicodeDecodeError):
        answer.content.decode("utf-8")


@pytest.mark.parametrize("faulty", ["completion-not-json"], indirect=True)
def test_not_json(faulty: ModelService) -> None:
    answer = call(faulty.port, QWEN, "POST", "/v1/completions", body=PROMPT)
    assert (answer.status_code, answer.headers["content-type"], answer.text) == (200, "text/plain", "OK")


@pytest.mark.parametrize("faulty", ["proxy-502"], indirect=True)
def test_proxy_502_on_every_path(faulty: ModelService) -> None:
    for method, path in (("GET", "/v1/models"), ("POST", "/v1/completions"), ("GET", "/")):
        answer = call(faulty.port, QWEN, method, path, body=PROMPT if method == "POST" else None, key="")
        assert answer.status_code == 502 and answer.headers["server"] == "nginx"
        assert answer.headers["content-type"] == "text/html" and "502 Bad Gateway" in answer.text


@pytest.mark.parametrize("faulty", ["redirect"], indirect=True)
def test_redirect_to_another_host(faulty: ModelService) -> None:
    answer = call(faulty.port, QWEN, "POST", "/v1/completions", body=PROMPT)
    location = answer.headers["location"]
    assert answer.status_code == 302 and location.startswith("http://127.0.0.2:")
    assert location.endswith("/v1/completions")
    # A client that follows across hosts must drop the key; httpx does.
    followed = httpx.get(f"http://127.0.0.1:{faulty.port}/v1/models", follow_redirects=True, trust_env=False,
                         headers={"Host": QWEN.host, "Authorization": QWEN.api_key})
    assert followed.status_code == 200 and faulty.received_authorizations == [""]
    # The recorder does record: a key sent there on purpose shows up.
    httpx.get(location, headers={"Authorization": "sent-on-purpose"}, trust_env=False)
    assert faulty.received_authorizations == ["", "sent-on-purpose"]


@pytest.mark.parametrize("faulty", ["stream-no-done"], indirect=True)
def test_stream_without_done(faulty: ModelService) -> None:
    found = events(call(faulty.port, QWEN, "POST", "/v1/completions", body={**PROMPT, "stream": True}).text)
    assert len(found) == 4 and "[DONE]" not in found


@pytest.mark.parametrize("faulty", ["stream-buffered"], indirect=True)
def test_stream_buffered_arrives_in_one_burst(faulty: ModelService) -> None:
    arrivals: list[float] = []
    with httpx.Client(trust_env=False) as client:
        answer = open_stream(client, faulty.port)
        started = time.monotonic()
        for line in answer.iter_lines():
            if line.startswith("data: "):
                arrivals.append(time.monotonic() - started)
        answer.close()
    assert len(arrivals) == 5 and arrivals[0] >= 0.25 and arrivals[-1] - arrivals[0] < 0.005


@pytest.mark.parametrize("faulty", ["slow"], indirect=True)
def test_slow_first_token(faulty: ModelService) -> None:
    with httpx.Client(trust_env=False) as client:
        started = time.monotonic()
        answer = open_stream(client, faulty.port)
        lines = (line for line in answer.iter_lines() if line.startswith("data: "))
        first = next(lines)
        waited = time.monotonic() - started
        rest = list(lines)
        answer.close()
    assert json.loads(first[6:])["choices"][0]["text"] == "OK" and 1.4 <= waited < 3
    assert rest[-1] == "data: [DONE]"


@pytest.mark.parametrize("faulty", ["stream-endless"], indirect=True)
def test_stream_endless_at_full_speed(faulty: ModelService) -> None:
    received = 0
    with httpx.Client(trust_env=False) as client:
        answer = open_stream(client, faulty.port)
        started = time.monotonic()
        for piece in answer.iter_bytes():
            received += len(piece)
            if received > 4 * 1024 * 1024:
                break
        answer.close()
    assert time.monotonic() - started < 5
    assert call(faulty.port, QWEN, "GET", "/v1/models").status_code == 200  # the server survives the hang-up


@pytest.mark.parametrize("fault", ["stream-endless", "stream-stall"])
def test_stop_ends_endless_and_stalled_streams(fault: str) -> None:
    server = ModelService(WORLD, faults=frozenset({fault}))
    port = server.start()
    ended = threading.Event()

    def read_to_the_end() -> None:
        with httpx.Client(trust_env=False, timeout=30) as client:
            answer = open_stream(client, port)
            try:
                for _ in answer.iter_bytes():
                    pass
            except httpx.HTTPError:
                pass  # an unterminated chunked body is a protocol error for the client, which is fine here
            ended.set()

    reader = threading.Thread(target=read_to_the_end, daemon=True)
    reader.start()
    time.sleep(0.3)
    assert not ended.is_set()
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 1.0 and ended.wait(3)


@pytest.mark.parametrize("faulty", ["stream-malformed"], indirect=True)
def test_stream_malformed(faulty: ModelService) -> None:
    found = events(call(faulty.port, QWEN, "POST", "/v1/completions", body={**PROMPT, "stream": True}).text)
    data = [item for item in found if item != "[DONE]"]
    assert data
    for item in data:
        with pytest.raises(json.JSONDecodeError):
            json.loads(item)


@pytest.mark.parametrize("faulty", ["stream-stall"], indirect=True)
def test_stream_stall_after_one_chunk(faulty: ModelService) -> None:
    lines: list[str] = []
    with httpx.Client(trust_env=False, timeout=httpx.Timeout(5, read=1.0)) as client:
        answer = open_stream(client, faulty.port)
        with pytest.raises(httpx.ReadTimeout):
            for line in answer.iter_lines():
                if line:
                    lines.append(line)
        answer.close()
    assert len(lines) == 1 and json.loads(lines[0][6:])["choices"][0]["text"] == "OK"


@pytest.mark.parametrize("faulty", ["embedding-nan"], indirect=True)
def test_embedding_nan(faulty: ModelService) -> None:
    answer = call(faulty.port, BGE, "POST", "/v1/embeddings", body={"model": "bge-m3", "input": ["x", "y"]})
    assert "NaN" in answer.text and "Infinity" in answer.text
    for item in json.loads(answer.text)["data"]:
        assert math.isnan(item["embedding"][0]) and math.isinf(item["embedding"][1])
