"""Judges for the API key and the model calls: models list, completion, stream, chat, embedding."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from checks.judges.http import exchange_evidence, transport_problem
from preflight.model import Outcome, Status

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (README, Start-up)
if TYPE_CHECKING:
    from typing import Any

KEY_CONSOLE = "DataWorks > Model Service > API keys"


def judge_key_format(key: str | None, auth: str, dataworks: bool) -> Outcome:
    """The key is present and written the way the service wants it; never shows more than its first 3 characters."""
    if not key:
        return Outcome.failed("no API key is configured for this service",
                              "Set api_key: ${DW_KEY} in the config and export DW_KEY=<your key> "
                              f"(create one in {KEY_CONSOLE}).")
    evidence = {"key_length": len(key), "key_prefix": key[:3], "auth": auth}
    if auth == "raw" and key.lower().startswith("bearer"):
        return Outcome.failed("the key starts with 'Bearer ', but DataWorks wants the raw key in Authorization",
                              "Remove the 'Bearer ' prefix: Authorization: DW-... (or set auth: bearer for a "
                              "non-DataWorks server).", **evidence)
    if any(ch.isspace() for ch in key):
        return Outcome.failed("the key contains whitespace or a newline (a copy-paste accident?)",
                              "Export the key without spaces or line breaks: export DW_KEY=\"$(printf %s "
                              "'<key>' | tr -d '[:space:]')\"", **evidence)
    if key[0] in "'\"" or key[-1] in "'\"":
        return Outcome.failed("the key is wrapped in quotes", "Remove the quotes from the variable's value.",
                              **evidence)
    if dataworks and not key.startswith("DW"):
        return Outcome.failed("a DataWorks model-service key starts with 'DW'; this one does not",
                              f"Copy the key from {KEY_CONSOLE} (it looks like DW-ms-...).", **evidence)
    return Outcome.passed(f"{len(key)} characters, starts with {key[:3]}, sent as "
                          f"{'the raw key' if auth == 'raw' else 'Bearer <key>'}", **evidence)


def _status_problem(observation: Mapping[str, Any], what: str) -> Outcome | None:
    """What an HTTP status says about an authenticated call: key refused, quota, server trouble."""
    problem = transport_problem(observation)
    if problem is not None:
        return problem
    evidence = exchange_evidence(observation)
    status = observation.get("status")
    if status in (401, 403):
        return Outcome.failed(f"{what}: HTTP {status}: the service refused the key",
                              f"The key is wrong, disabled or deleted (a disabled or deleted key takes about 5 "
                              f"minutes to stop working, a new one may take as long to start). Check it in "
                              f"{KEY_CONSOLE} and that it belongs to this model service.", **evidence)
    if status == 429:
        return Outcome.warned(f"{what}: HTTP 429: rate limit or quota reached",
                              "The key works but the service is throttling; retry later or raise the quota.",
                              **evidence)
    if isinstance(status, int) and status >= 500:
        return Outcome.failed(f"{what}: the service answered HTTP {status}",
                              "The model service is unhealthy: check its status, replicas and logs in DataWorks > "
                              "Model Service.", **evidence)
    if isinstance(status, int) and status >= 400:
        return Outcome.failed(f"{what}: HTTP {status}: {str(observation.get('body_excerpt') or '')[:160]}",
                              "The service rejected the request; check the model name and the endpoint path.",
                              **evidence)
    if observation.get("error"):
        return Outcome.failed(f"{what}: the answer broke off ({observation.get('error')}): "
                              f"{observation.get('detail')}",
                              "A proxy or the server cut the connection mid-answer; retry, and check the service's "
                              "health and any proxy between here and it.", **evidence)
    if observation.get("body_capped"):
        return Outcome.failed(f"{what}: the answer is larger than the {observation.get('body_bytes')}-byte cap",
                              "A model answer this large is not a normal completion: something in front of the "
                              "service answers instead, or raise http.max_body_bytes.", **evidence)
    if not observation.get("body_utf8", True):
        return Outcome.failed(f"{what}: the body is not UTF-8 text",
                              "The service or a proxy sends corrupted bytes; check the service's health.", **evidence)
    if observation.get("json") is None:
        return Outcome.failed(f"{what}: HTTP {status} but the body is not JSON ({observation.get('json_error')})",
                              "An OpenAI-compatible service answers JSON; something else answered.", **evidence)
    return None


def judge_key_valid(observation: Mapping[str, Any]) -> Outcome:
    """GET /v1/models with the key: 200 means the key is accepted (no tokens spent)."""
    problem = _status_problem(observation, "GET /v1/models with the key")
    if problem is not None:
        return problem
    return Outcome.passed(f"the key is accepted: HTTP {observation.get('status')} from GET /v1/models",
                          **exchange_evidence(observation))


def served_models(observation: Mapping[str, Any]) -> list[str]:
    document = observation.get("json")
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, list):
        return []
    return [str(item.get("id")) for item in data if isinstance(item, dict) and item.get("id") is not None]


def judge_listed(observation: Mapping[str, Any], model: str) -> Outcome:
    """The configured model is among those the service says it serves."""
    served = served_models(observation)
    evidence = {"model": model, "served": served[:50]}
    if model in served:
        return Outcome.passed(f"{model} is served", **evidence)
    return Outcome.failed(f"{model} is not served here; the service serves: {', '.join(served[:10]) or 'nothing'}",
                          "Use one of the served model names in the config (model:), or deploy the model you meant.",
                          **evidence)


def _usage_tokens(document: Any) -> int:
    usage = document.get("usage") if isinstance(document, dict) else None
    if not isinstance(usage, dict):
        return 0
    total = usage.get("total_tokens")
    if isinstance(total, int) and total >= 0:
        return total
    parts = [usage.get("prompt_tokens"), usage.get("completion_tokens")]
    return sum(part for part in parts if isinstance(part, int) and part >= 0)


def _first_choice(document: Any) -> dict[str, Any]:
    choices = document.get("choices") if isinstance(document, dict) else None
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return choices[0]
    return {}


def _with_tokens(outcome: Outcome, tokens: int) -> Outcome:
    return Outcome(outcome.status, outcome.summary, outcome.evidence, outcome.remediation, outcome.docs, tokens)


def judge_completion(observation: Mapping[str, Any], *, chat: bool = False) -> Outcome:
    """A completion comes back with text; an empty text cut by max_tokens is a reasoning model's warning."""
    what = "POST /v1/chat/completions" if chat else "POST /v1/completions"
    problem = _status_problem(observation, what)
    document = observation.get("json")
    tokens = _usage_tokens(document)
    if problem is not None:
        return _with_tokens(problem, tokens)
    choice = _first_choice(document)
    message = choice.get("message")
    text = message.get("content") if chat and isinstance(message, dict) else choice.get("text")
    evidence = {**exchange_evidence(observation), "usage": document.get("usage") if isinstance(document, dict)
                else None, "finish_reason": choice.get("finish_reason")}
    evidence.pop("body_excerpt", None)
    if not choice:
        return _with_tokens(Outcome.failed(f"{what}: HTTP 200 but no choices in the answer",
                                           "The answer is not an OpenAI-compatible completion.", **evidence), tokens)
    if isinstance(text, str) and text.strip():
        evidence["text_excerpt"] = text[:80]
        return _with_tokens(Outcome.passed(f"{len(text)} characters in {observation.get('elapsed_ms', 0):.0f} ms "
                                           f"({tokens} tokens)", **evidence), tokens)
    if choice.get("finish_reason") == "length":
        return _with_tokens(Outcome.warned(
            "the answer stopped at max_tokens before any text (a reasoning model thinking first?)",
            "Raise max_tokens for this service in the config (for example 256) so text comes back.", **evidence),
            tokens)
    return _with_tokens(Outcome.failed(f"{what}: the answer has no text", "Look at the evidence; the model "
                                       "returned an empty completion.", **evidence), tokens)


def judge_stream(observation: Mapping[str, Any], max_ttft_ms: int) -> Outcome:
    """An SSE stream: event-stream type, JSON data lines with text, [DONE] at the end, a reasonable first token."""
    evidence = {**exchange_evidence(observation)}
    evidence.pop("body_excerpt", None)
    evidence.update({key: observation.get(key) for key in ("events", "json_errors", "first_json_error", "done",
                                                           "ttft_ms", "first_byte_ms", "total_ms", "capped",
                                                           "stalled", "finish_reason")})
    tokens = _usage_tokens({"usage": observation.get("usage")})
    if observation.get("capped"):
        return _with_tokens(Outcome.failed(
            f"the stream never ended: cut at the {observation.get('body_bytes')}-byte cap after "
            f"{observation.get('events')} events", "The server keeps streaming without [DONE]; check the service "
            "or proxy, or lower max_tokens.", **evidence), tokens)
    if observation.get("stalled"):
        return _with_tokens(Outcome.failed(
            f"the stream stalled after {observation.get('events')} event(s): {observation.get('detail')}",
            "The server or a proxy stopped sending mid-stream; check the service's health and proxy timeouts.",
            **evidence), tokens)
    problem = _status_problem({**observation, "json": {}}, "POST /v1/completions (stream)")
    if problem is not None:
        return _with_tokens(problem, tokens)
    content_type = str(observation.get("content_type") or "")
    if "text/event-stream" not in content_type:
        return _with_tokens(Outcome.failed(f"the stream's content type is {content_type or 'missing'}, not "
                                           "text/event-stream", "A proxy may be rewriting the answer; streaming "
                                           "needs text/event-stream end to end.", **evidence), tokens)
    if observation.get("json_errors"):
        return _with_tokens(Outcome.failed(
            f"{observation.get('json_errors')} of {observation.get('events')} data: lines are not valid JSON "
            f"({observation.get('first_json_error')})", "The stream is corrupted on the way: check proxies that "
            "rewrite or re-chunk responses.", **evidence), tokens)
    if not observation.get("done"):
        return _with_tokens(Outcome.failed(
            f"the stream ended without data: [DONE] after {observation.get('events')} events",
            "Clients such as the OpenAI SDK wait for [DONE]; a proxy cut the stream or the server ended early.",
            **evidence), tokens)
    if not observation.get("text"):
        return _with_tokens(Outcome.failed("the stream carried no text", "See the evidence.", **evidence), tokens)
    times = [float(t) for t in observation.get("event_times_ms") or []]
    total = float(observation.get("total_ms") or 0.0)
    if len(times) >= 3 and times[-1] - times[0] < 5.0 and times[0] > 50.0:
        return _with_tokens(Outcome.warned(
            f"all {len(times)} events arrived in one burst at {times[0]:.0f} ms: a proxy buffers the stream",
            "Turn off response buffering for this path in the proxy (nginx: proxy_buffering off; "
            "X-Accel-Buffering: no) so tokens reach the client as they are made.", **evidence), tokens)
    ttft = observation.get("ttft_ms")
    if isinstance(ttft, (int, float)) and ttft > max_ttft_ms:
        return _with_tokens(Outcome.warned(
            f"time to first token {ttft:.0f} ms is over expect.max_ttft_ms = {max_ttft_ms}",
            "The service is slow to start answering: check its load and replicas, or raise expect.max_ttft_ms.",
            **evidence), tokens)
    return _with_tokens(Outcome.passed(f"{observation.get('events')} events, first token after {ttft:.0f} ms, "
                                       f"[DONE] after {total:.0f} ms", **evidence), tokens)


def _vectors(document: Any) -> tuple[list[dict[str, Any]] | None, str]:
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, list):
        return None, "the answer has no data list"
    return [item for item in data if isinstance(item, dict)], ""


def _check_vectors(observation: Mapping[str, Any], inputs: int, dimensions: int | None) -> str | None:
    vectors, why = _vectors(observation.get("json"))
    if vectors is None:
        return why
    if len(vectors) != inputs:
        return f"{len(vectors)} vector(s) for {inputs} input(s)"
    if [item.get("index") for item in vectors] != list(range(inputs)):
        return f"vectors are not in input order (indexes {[item.get('index') for item in vectors]})"
    for item in vectors:
        summary = item.get("embedding")
        if not isinstance(summary, dict) or summary.get("type") != "list":
            kind = summary.get("type") if isinstance(summary, dict) else type(summary).__name__
            return f"a {kind} where vector {item.get('index')} should be"
        if summary.get("non_numeric"):
            return f"vector {item.get('index')} has {summary['non_numeric']} non-numeric values"
        if summary.get("non_finite"):
            return f"vector {item.get('index')} has {summary['non_finite']} NaN or infinite values"
        if dimensions is not None and summary.get("length") != dimensions:
            return f"vector {item.get('index')} has {summary.get('length')} dimensions, {dimensions} expected"
    return None


def judge_embedding(observation: Mapping[str, Any], dimensions: int | None) -> Outcome:
    """Vectors of the expected dimension, finite numbers, one per input in order, for one input and a batch."""
    tokens = _usage_tokens(observation.get("json")) + _usage_tokens((observation.get("single") or {}).get("json"))
    exchanges: Sequence[tuple[str, Mapping[str, Any], int]] = (
        ("one input", observation.get("single") or {}, 1), ("a batch of two", observation, 2))
    lengths: list[Any] = []
    for label, exchange, inputs in exchanges:
        problem = _status_problem(exchange, f"POST /v1/embeddings ({label})")
        if problem is not None:
            return _with_tokens(problem, tokens)
        wrong = _check_vectors(exchange, inputs, dimensions)
        if wrong is not None:
            evidence = {**exchange_evidence(exchange), "expected_dimensions": dimensions}
            evidence.pop("body_excerpt", None)
            fix = ("Check expect.dimensions against the model (BGE-M3 dense vectors have 1024 dimensions) and that "
                   "the service runs the model you expect." if "dimensions" in wrong else
                   "The service returns malformed embeddings; check the model deployment.")
            return _with_tokens(Outcome.failed(f"{label}: {wrong}", fix, **evidence), tokens)
        vectors, _ = _vectors(exchange.get("json"))
        lengths.extend(item["embedding"].get("length") for item in vectors or [])
    status = Status.PASS
    summary = f"{len(lengths)} vectors of {lengths[0]} finite numbers, in input order"
    evidence = {"dimensions": lengths[0] if lengths else None, "expected_dimensions": dimensions,
                "elapsed_ms": observation.get("elapsed_ms")}
    if dimensions is None:
        summary += " (no expect.dimensions to compare with)"
    return Outcome(status, summary, evidence, tokens=tokens)


__all__ = ["judge_chat", "judge_completion", "judge_embedding", "judge_key_format", "judge_key_valid",
           "judge_listed", "judge_stream", "served_models"]


def judge_chat(observation: Mapping[str, Any]) -> Outcome:
    """A chat completion comes back with message content."""
    return judge_completion(observation, chat=True)
