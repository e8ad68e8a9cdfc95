"""Judges on recorded observations, hostile ones included: the verdict depends only on what was observed."""

from __future__ import annotations

from typing import Any

import pytest

from checks.judges.dns import classify_address, judge_dns
from checks.judges.http import judge_http
from checks.judges.inference import judge_completion, judge_embedding, judge_stream
from checks.judges.key import judge_key_format, judge_key_valid, judge_listed
from checks.judges.tcp import judge_tcp
from checks.judges.url import judge_url
from preflight.engine.model import Status
from preflight.probe import observations as obs

HOST = "ms-abc.cn-beijing.dataworks-model.aliyuncs.com"


def exchange(name: str, status: int | None = 200, body: bytes = b"{}", content_type: str = "application/json",
             **changes: Any) -> dict[str, Any]:
    observation = obs.exchange(name, "POST", f"http://{HOST}/v1/x", "/v1/x", True, None)
    observation.update({"status": status, "content_type": content_type})
    obs.finish_body(observation, body, changes.pop("capped", False), name)
    observation.update(changes)
    return observation


def stream(chunks: list[tuple[float, bytes]], **changes: Any) -> dict[str, Any]:
    observation = exchange("stream", content_type="text/event-stream", body=b"")
    reader = obs.SseReader(observation)
    for at, data in chunks:
        reader.feed(data, at)
    observation["total_ms"] = chunks[-1][0] if chunks else 0.0
    observation.update(changes)
    return observation


def event(text: str, finish: str | None = None) -> bytes:
    import json

    return b"data: " + json.dumps({"choices": [{"text": text, "finish_reason": finish}]}).encode() + b"\n\n"


@pytest.mark.parametrize(("url", "region", "status", "words"), [
    (f"http://{HOST}", "cn-beijing", Status.PASS, "ms-abc"),
    (f"http://{HOST}", "cn-hangzhou", Status.FAIL, "region cn-beijing"),
    (f"https://{HOST}", "cn-beijing", Status.WARN, "plain HTTP"),
    ("http://litellm.internal:4000", "cn-beijing", Status.WARN, "generic OpenAI-compatible"),
    ("ftp://x", "cn-beijing", Status.FAIL, "malformed"),
    ("http://host:99999", "cn-beijing", Status.FAIL, "malformed"),
    (f"http://{HOST}/v1", "cn-beijing", Status.FAIL, "/v1/v1/"),
    (f"http://{HOST.upper()}", "cn-beijing", Status.PASS, "ms-abc"),
])
def test_url(url: str, region: str, status: Status, words: str) -> None:
    outcome = judge_url(url, region, "raw")
    assert outcome.status is status and words in outcome.summary


@pytest.mark.parametrize(("address", "kind"), [("10.1.2.3", "private"), ("172.16.0.1", "private"),
                                               ("100.100.2.136", "shared"), ("127.0.0.1", "loopback"),
                                               ("47.93.1.1", "public"), ("fd00::1", "private")])
def test_addresses_are_classified(address: str, kind: str) -> None:
    assert classify_address(address) == kind


def test_nxdomain_on_a_model_domain_explains_the_allowlist() -> None:
    outcome = judge_dns({"host": HOST, "answers": [], "resolver": "100.100.2.136", "error": "nxdomain",
                         "detail": "", "elapsed_ms": 3.0})
    assert outcome.status is Status.FAIL and "NXDOMAIN" in outcome.summary
    assert "allowlist" in outcome.remediation and "100.100.2.136 and 100.100.2.138" in outcome.remediation


def test_a_public_answer_for_a_model_domain_is_a_warning() -> None:
    outcome = judge_dns({"host": HOST, "answers": ["47.93.1.1"], "resolver": "system", "error": None})
    assert outcome.status is Status.WARN
    assert "100.100.2.136" in outcome.remediation


def test_an_answer_that_is_not_an_address_fails() -> None:
    outcome = judge_dns({"host": HOST, "answers": ["not-an-ip"], "resolver": "override", "error": None})
    assert outcome.status is Status.FAIL and "not an address" in outcome.summary


def test_a_resolver_timeout_on_another_host_points_at_the_resolver() -> None:
    outcome = judge_dns({"host": "llm.example.internal", "answers": [], "resolver": "10.0.0.2:53",
                         "error": "timeout"})
    assert outcome.status is Status.FAIL and "got no answer in time" in outcome.summary
    assert "dns.nameservers" in outcome.remediation and "port 53" in outcome.remediation


@pytest.mark.parametrize(("error", "words"), [("refused", "nothing listens"), ("timeout", "security group"),
                                              ("unreachable", "no route")])
def test_tcp_failures_each_have_their_own_fix(error: str, words: str) -> None:
    outcome = judge_tcp({"host": HOST, "address": "10.0.0.5", "port": 80, "connected": False, "error": error,
                         "detail": "x"})
    assert outcome.status is Status.FAIL and words in outcome.remediation


def test_tcp_time_is_the_kernels_handshake_when_known_else_the_collectors_clock() -> None:
    connected = {"host": HOST, "address": "10.0.0.5", "port": 80, "connected": True, "error": None,
                 "detail": "", "elapsed_ms": 87.2}
    outcome = judge_tcp({**connected, "handshake_ms": 0.034})
    assert outcome.summary == "connected to 10.0.0.5:80, handshake round trip 0.03 ms"
    assert outcome.evidence["handshake_ms"] == 0.034 and outcome.evidence["elapsed_ms"] == 87.2
    assert judge_tcp({**connected, "handshake_ms": None}).summary == "connected to 10.0.0.5:80 in 87 ms"


def test_tcp_without_an_address_names_the_host_and_dns() -> None:
    outcome = judge_tcp({"host": HOST, "address": None, "port": 80, "connected": False, "error": "no-address",
                         "detail": "no answer"})
    assert outcome.status is Status.FAIL
    assert outcome.summary.startswith(f"TCP connect to {HOST}:80 had no address to try")
    assert "endpoint.dns" in outcome.remediation


def test_http_tells_guarded_open_and_proxy_pages_apart() -> None:
    assert judge_http(exchange("http", 401)).status is Status.PASS
    assert judge_http(exchange("http", 200)).status is Status.WARN
    page = exchange("http", 502, b"<html><body>502 Bad Gateway</body></html>", "text/html",
                    headers={"server": "nginx"})
    outcome = judge_http(page)
    assert outcome.status is Status.FAIL and "nginx answered HTTP 502" in outcome.summary
    redirected = exchange("http", 302, b"", redirect="http://evil.example/v1/models")
    assert "not followed" in judge_http(redirected).summary


@pytest.mark.parametrize(("status", "body", "content_type", "verdict", "summary"), [
    (401, b'{"error": "no key"}', "application/json", Status.PASS, "reachable and guarded: HTTP 401 without a key"),
    (403, b"forbidden", "text/plain", Status.PASS, "reachable and guarded: HTTP 403 without a key"),
    (404, b'{"detail": "Not Found"}', "application/json", Status.PASS,
     "reachable: HTTP 404 without a key; the keyed request decides"),
    (400, b'{"error": "missing header"}', "application/json", Status.PASS,
     "reachable: HTTP 400 without a key; the keyed request decides"),
    (500, b"Internal Server Error", "text/plain", Status.PASS,
     "reachable: HTTP 500 without a key; the keyed request decides"),
    (503, b'{"error": "auth backend down"}', "application/json", Status.PASS,
     "reachable: HTTP 503 without a key; the keyed request decides"),
    (200, b'{"data": []}', "application/json", Status.WARN,
     "the service answered 200 without a key: it is open to anyone who can reach it"),
    (504, b"<html><body>504 Gateway Time-out</body></html>", "text/html", Status.FAIL,
     "GET /v1/models: envoy answered HTTP 504 with an HTML error page: a proxy or gateway in front of the model "
     "service failed"),
])
def test_any_answer_of_the_service_itself_proves_it_reachable(status: int, body: bytes, content_type: str,
                                                              verdict: Status, summary: str) -> None:
    observation = exchange("http", status, body, content_type, headers={"server": "envoy"}, method="GET",
                           path="/v1/models")
    outcome = judge_http(observation)
    assert (outcome.status, outcome.summary) == (verdict, summary)
    assert outcome.evidence["status"] == status and outcome.evidence["server"] == "envoy"
    assert outcome.evidence["body_excerpt"] == body.decode()


def test_no_answer_fails_with_an_action_for_each_cause() -> None:
    for error in ("timeout", "reset", "connect", "protocol", "error"):
        outcome = judge_http(exchange("http", None, b"", error=error, detail="x " * 200))
        assert outcome.status is Status.FAIL and outcome.remediation and "See the evidence" not in outcome.remediation
        assert outcome.summary.endswith("…") and len(outcome.summary) < 220  # the evidence keeps the whole detail
        assert outcome.evidence["detail"] == "x " * 200


@pytest.mark.parametrize(("key", "auth", "status", "words"), [
    ("DW-ms-abc-0123456789", "raw", Status.PASS, "starts with DW-"),
    ("Bearer DW-ms-abc-0123456789", "raw", Status.FAIL, "Bearer"),
    ("DW-ms-abc 0123456789", "raw", Status.FAIL, "whitespace"),
    ("DW-ms-abc-0123456789\n", "raw", Status.FAIL, "whitespace"),
    ('"DW-ms-abc-0123456789"', "raw", Status.FAIL, "quotes"),
    ("sk-0123456789", "raw", Status.FAIL, "starts with 'DW'"),
    (None, "raw", Status.FAIL, "no API key"),
])
def test_key_format(key: str | None, auth: str, status: Status, words: str) -> None:
    outcome = judge_key_format(key, auth, dataworks=True)
    assert outcome.status is status and words in outcome.summary
    assert "0123456789" not in repr(outcome)


def test_key_valid_statuses() -> None:
    assert judge_key_valid(exchange("models", 200, b'{"data": []}')).status is Status.PASS
    refused = judge_key_valid(exchange("models", 401, b'{"message": "bad key"}'))
    assert refused.status is Status.FAIL and "5 minutes" in refused.remediation
    forbidden = judge_key_valid(exchange("models", 403, b"{}"))
    assert forbidden.status is Status.FAIL and "API keys" in forbidden.remediation
    assert judge_key_valid(exchange("models", 429, b"{}")).status is Status.WARN
    unhealthy = judge_key_valid(exchange("models", 503, b"{}", method="GET", path="/v1/models"))
    assert unhealthy.status is Status.FAIL
    assert unhealthy.summary == "GET /v1/models with the key: HTTP 503: the service is unhealthy"
    assert "Model Service" in unhealthy.remediation


def test_a_server_without_a_models_list_leaves_the_key_to_the_inference_checks() -> None:
    answer = exchange("models", 404, b'{"detail": "Not Found"}')
    outcome = judge_key_valid(answer)
    assert outcome.status is Status.WARN and outcome.status.ok  # the inference checks still run
    assert "proved by the inference checks" in outcome.summary
    listed = judge_listed(answer, "m")
    assert listed.status is Status.SKIP and "HTTP 404" in listed.summary


def test_listed_names_what_is_served() -> None:
    answer = exchange("models", 200, b'{"data": [{"id": "qwen2.5-7b"}, {"id": "bge-large"}]}')
    outcome = judge_listed(answer, "qwen3-1.7b")
    assert outcome.status is Status.FAIL and "qwen2.5-7b, bge-large" in outcome.summary


def test_completion_hostile_bodies() -> None:
    truncated = exchange("completion", 200, b'{"choices": [{"text": "O')
    assert "not JSON" in judge_completion(truncated).summary
    broken_utf8 = exchange("completion", 200, b'{"choices": [{"text": "\xff\xfe"}]}')
    assert "not UTF-8" in judge_completion(broken_utf8).summary
    capped = exchange("completion", 200, b'{"choices": [' + b" " * 100, capped=True)
    assert "cap" in judge_completion(capped).summary


def test_reasoning_model_cut_at_max_tokens_is_a_warning_with_advice() -> None:
    answer = exchange("completion", 200, b'{"choices": [{"text": "", "finish_reason": "length"}], '
                                         b'"usage": {"total_tokens": 12}}')
    outcome = judge_completion(answer)
    assert outcome.status is Status.WARN and "max_tokens" in outcome.remediation and outcome.tokens == 12


def test_a_good_stream_passes_and_counts() -> None:
    chunks = [(20.0, event("O")), (30.0, event("K")), (40.0, event(".", "stop")), (41.0, b"data: [DONE]\n\n")]
    outcome = judge_stream(stream(chunks), 5000)
    assert outcome.status is Status.PASS and "first token after 20 ms" in outcome.summary


@pytest.mark.parametrize(("chunks", "changes", "status", "words"), [
    ([(20.0, event("O")), (30.0, event("K"))], {}, Status.FAIL, "without data: [DONE]"),
    ([(900.0, event("O") + event("K") + event(".") + b"data: [DONE]\n\n")], {}, Status.WARN, "buffers"),
    ([(20.0, event("O")), (30.0, b"data: [DONE]\n\n")], {}, Status.WARN, "max_ttft_ms"),
    ([(20.0, b'data: {"choices": [{"text": "O"\n\n'), (30.0, b"data: [DONE]\n\n")], {}, Status.FAIL, "not valid JSON"),
    ([(20.0, event("more") * 50)], {"capped": True}, Status.FAIL, "never ended"),
    ([(20.0, event("O"))], {"stalled": True, "error": "timeout"}, Status.FAIL, "stalled"),
])
def test_stream_faults(chunks: list[tuple[float, bytes]], changes: dict[str, Any], status: Status,
                       words: str) -> None:
    outcome = judge_stream(stream(chunks, **changes), 10)
    assert outcome.status is status and words in outcome.summary, outcome.summary


def embeddings(vectors: list[Any], status: int = 200) -> dict[str, Any]:
    import json

    data = [{"index": i, "embedding": v} for i, v in enumerate(vectors)]
    return exchange("embedding", status, json.dumps({"data": data}).encode())


def test_embedding_dimensions_types_and_finiteness() -> None:
    good = embeddings([[0.1] * 4, [0.2] * 4])
    good["single"] = embeddings([[0.3] * 4])
    assert judge_embedding(good, 4).status is Status.PASS
    wrong_size = {**good, "single": embeddings([[0.3] * 3])}
    assert "3 dimensions, 4 expected" in judge_embedding(wrong_size, 4).summary
    nan = {**good, "single": embeddings([[0.3, float("nan"), float("inf"), 1.0]])}
    assert "2 NaN or infinite" in judge_embedding(nan, 4).summary
    text = {**good, "single": embeddings(["not a vector"])}
    assert "a str where vector 0 should be" in judge_embedding(text, 4).summary
    missing = {**good, "single": embeddings([None])}
    assert "a null where" in judge_embedding(missing, 4).summary
    one_for_two = embeddings([[0.1] * 4])
    one_for_two["single"] = embeddings([[0.3] * 4])
    assert "1 vector(s) for 2 input(s)" in judge_embedding(one_for_two, 4).summary


def indexed(indexes: list[Any], vectors: list[Any] | None = None) -> dict[str, Any]:
    import json

    vectors = vectors or [[0.1 * (n + 1)] * 4 for n in range(len(indexes))]
    data = [{"embedding": v} if i is None else {"index": i, "embedding": v}
            for i, v in zip(indexes, vectors, strict=True)]
    answer = exchange("embedding", 200, json.dumps({"data": data}).encode())
    answer["single"] = embeddings([[0.3] * 4])
    return answer


def test_embeddings_out_of_input_order_are_matched_by_index_and_warned() -> None:
    outcome = judge_embedding(indexed([1, 0], [[0.2] * 4, [0.1] * 3]), 4)
    assert outcome.status is Status.FAIL  # vector 0 (second in the list) is the short one: matched by index
    assert outcome.summary == "a batch of two: vector 0 has 3 dimensions, 4 expected"
    outcome = judge_embedding(indexed([1, 0]), 4)
    assert outcome.status is Status.WARN and outcome.status.ok
    assert outcome.summary == ("a batch of two: the vectors came back out of input order (indexes [1, 0]); "
                               "matched by index")
    assert "positionally pairs texts with the wrong vectors" in outcome.remediation
    assert outcome.evidence["indexes"] == [1, 0]


@pytest.mark.parametrize(("indexes", "words"), [
    ([0, 0], "index 0 appears more than once (indexes [0, 0])"),
    ([1, 2], "no vector for input 0 (indexes [1, 2], inputs 0 to 1)"),
    ([0, None], "the vector at position 1 has no index (None) while others have"),
    (["0", 1], "the vector at position 0 has no index ('0') while others have"),
])
def test_missing_or_repeated_indexes_fail(indexes: list[Any], words: str) -> None:
    outcome = judge_embedding(indexed(indexes), 4)
    assert outcome.status is Status.FAIL and outcome.summary == f"a batch of two: {words}"


def test_embeddings_without_any_index_are_read_in_order() -> None:
    outcome = judge_embedding(indexed([None, None]), 4)
    assert outcome.status is Status.PASS and "in input order" in outcome.summary


def completion_body(max_tokens: int = 8) -> dict[str, Any]:
    return {"model": "m", "prompt": "Say OK.", "max_tokens": max_tokens, "stream": True}


def test_a_stream_without_usage_counts_the_requests_upper_bound() -> None:
    chunks = [(20.0, event("O")), (30.0, event("K", "stop")), (31.0, b"data: [DONE]\n\n")]
    outcome = judge_stream(stream(chunks, request_body=completion_body()), 5000)
    upper = len(b"Say OK.") + 16 + 8  # prompt bytes, what a template may add, max_tokens
    assert outcome.status is Status.PASS and outcome.tokens == upper
    assert outcome.evidence["tokens_estimated"] is True
    assert outcome.summary.endswith(f"(≈{upper} tokens counted: no usage reported)")
    reported = judge_stream(stream(chunks, request_body=completion_body(), usage={"total_tokens": 5}), 5000)
    assert reported.tokens == 5 and reported.evidence["tokens_estimated"] is False and "≈" not in reported.summary
    refused = judge_stream(stream(chunks, request_body=completion_body(), status=401), 5000)
    assert refused.tokens == 0 and "tokens_estimated" not in refused.evidence  # no answer: nothing generated


def test_a_completion_without_usage_is_estimated_too() -> None:
    answer = exchange("completion", 200, b'{"choices": [{"text": "OK", "finish_reason": "stop"}]}',
                      request_body={"model": "m", "prompt": "Say OK.", "max_tokens": 8, "stream": False})
    outcome = judge_completion(answer)
    assert outcome.status is Status.PASS and outcome.tokens == 31 and "≈31 tokens" in outcome.summary
    with_usage = exchange("completion", 200, b'{"choices": [{"text": "OK"}], "usage": {"total_tokens": 9}}')
    assert judge_completion(with_usage).summary.endswith("(9 tokens)")


def test_the_budget_says_when_its_count_is_estimated() -> None:
    from preflight.engine.context import TokenBudget

    budget = TokenBudget(10)
    budget.spend(4)
    assert not budget.estimated and not budget.exhausted()
    budget.spend(31, estimated=True)
    assert budget.estimated and budget.exhausted() and budget.spent == 35


def test_a_stream_without_done_gets_a_fix_a_person_can_carry_out() -> None:
    finished = judge_stream(stream([(20.0, event("O")), (30.0, event("K", "stop"))]), 5000)
    assert finished.status is Status.FAIL and "although the model finished (finish_reason stop)" in finished.summary
    assert finished.remediation.startswith("Make the server end every stream with data: [DONE]")
    cut = judge_stream(stream([(20.0, event("O")), (30.0, event("K"))]), 5000)
    assert cut.status is Status.FAIL and "cut short" in cut.summary
    assert cut.remediation.startswith("Find what closes the connection early")


def test_summaries_quoting_a_body_are_cut_on_a_word_boundary() -> None:
    body = ("The model name you sent is not deployed on this service; deployed models are listed in the "
            "console under Model Service, where each deployment shows its served name and replicas status")
    outcome = judge_key_valid(exchange("models", 400, body.encode(), "text/plain"))
    quoted = outcome.summary.split(": ", 2)[2]
    assert quoted.endswith("…") and body.startswith(quoted[:-1]) and body[len(quoted) - 1] == " "
    assert outcome.evidence["body_excerpt"] == body


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"3", b"null", b'{"usage": [1], "data": 7}'])
def test_answers_of_any_json_shape_are_verdicts_not_crashes(body: bytes) -> None:
    batch = exchange("embedding", 200, body)
    batch["single"] = exchange("embedding", 200, body)
    assert judge_embedding(batch, 4).status is Status.FAIL
    assert judge_completion(exchange("completion", 200, body)).status is Status.FAIL
    assert judge_key_valid(exchange("models", 200, body)).status in (Status.PASS, Status.FAIL)
