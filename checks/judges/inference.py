"""Judges for the model calls: completion, stream, chat and embeddings, and the tokens each spent."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from checks.judges.http import detail_of, exchange_evidence
from checks.judges.key import status_problem
from preflight.engine.model import Outcome
from preflight.engine.text import shorten

# Tokens a chat template or a tokenizer's begin marker may add around a prompt (role markers, BOS), counted in the
# upper bound of a request whose answer reports no usage.
TEMPLATE_TOKENS = 16


def _reported_tokens(usage: Any) -> int | None:
    """The tokens a usage object reports, or None when it reports none."""
    if not isinstance(usage, dict):
        return None
    total = usage.get("total_tokens")
    if isinstance(total, int) and not isinstance(total, bool) and total >= 0:
        return total
    parts = [part for part in (usage.get("prompt_tokens"), usage.get("completion_tokens"))
             if isinstance(part, int) and not isinstance(part, bool) and part >= 0]
    return sum(parts) if parts else None


def _upper_bound(request_body: Any) -> int:
    """The most tokens a request can spend: its prompt's UTF-8 bytes (no tokenizer makes a token of less than one
    byte), what a template adds, and max_tokens."""
    body = request_body if isinstance(request_body, dict) else {}
    texts: list[Any] = [body.get("prompt")]
    texts += [m.get("content") for m in body.get("messages") or [] if isinstance(m, dict)]
    inputs = body.get("input")
    texts += inputs if isinstance(inputs, list) else [inputs]
    prompt = sum(len(text.encode("utf-8")) + TEMPLATE_TOKENS for text in texts if isinstance(text, str))
    max_tokens = body.get("max_tokens")
    return prompt + (max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else 0)


class Spent:
    """The tokens one exchange spent: as its answer reports them, else its request's upper bound (estimated)."""

    __slots__ = ("estimated", "tokens")

    def __init__(self, tokens: int = 0, estimated: bool = False) -> None:
        self.tokens = tokens
        self.estimated = estimated

    @classmethod
    def of(cls, observation: Mapping[str, Any], usage: Any) -> Spent:
        reported = _reported_tokens(usage)
        if reported is not None:
            return cls(reported)
        status = observation.get("status")
        if isinstance(status, int) and 200 <= status < 300:  # answered: the model may have generated
            return cls(_upper_bound(observation.get("request_body")), True)
        return cls()

    def __add__(self, other: Spent) -> Spent:
        return Spent(self.tokens + other.tokens, self.estimated or other.estimated)

    def __str__(self) -> str:
        return f"≈{self.tokens} tokens" if self.estimated else f"{self.tokens} tokens"


def _usage_of(document: Any) -> Any:
    return document.get("usage") if isinstance(document, dict) else None


def _first_choice(document: Any) -> dict[str, Any]:
    choices = document.get("choices") if isinstance(document, dict) else None
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return choices[0]
    return {}


def _with_tokens(outcome: Outcome, spent: Spent) -> Outcome:
    """The outcome carrying what was spent; an estimate is said in the summary (≈) and the evidence."""
    summary, evidence = outcome.summary, outcome.evidence
    if spent.tokens:
        evidence = {**evidence, "tokens_estimated": spent.estimated}
    if spent.estimated and spent.tokens:
        summary += f" ({spent} counted: no usage reported)"
    return Outcome(outcome.status, summary, evidence, outcome.remediation, outcome.docs, spent.tokens)


def judge_completion(observation: Mapping[str, Any], *, chat: bool = False) -> Outcome:
    """A completion comes back with text; an empty text cut by max_tokens is a reasoning model's warning."""
    what = "POST /v1/chat/completions" if chat else "POST /v1/completions"
    problem = status_problem(observation, what)
    document = observation.get("json")
    spent = Spent.of(observation, _usage_of(document))
    if problem is not None:
        return _with_tokens(problem, spent)
    choice = _first_choice(document)
    message = choice.get("message")
    text = message.get("content") if chat and isinstance(message, dict) else choice.get("text")
    evidence = {**exchange_evidence(observation), "usage": document.get("usage") if isinstance(document, dict)
                else None, "finish_reason": choice.get("finish_reason")}
    evidence.pop("body_excerpt", None)
    if not choice:
        return _with_tokens(Outcome.failed(f"{what}: HTTP 200 but no choices in the answer",
                                           "Point the endpoint at an OpenAI-compatible service: this answer has no "
                                           "choices list (see body_excerpt in the evidence).",
                                           **exchange_evidence(observation)), spent)
    if isinstance(text, str) and text.strip():
        evidence["text_excerpt"] = shorten(text, 80)
        reported = "" if spent.estimated else f" ({spent})"
        return _with_tokens(Outcome.passed(f"{len(text)} characters in {observation.get('elapsed_ms', 0):.0f} ms"
                                           f"{reported}", **evidence), spent)
    if choice.get("finish_reason") == "length":
        return _with_tokens(Outcome.warned(
            "the answer stopped at max_tokens before any text (a reasoning model thinking first?)",
            "Raise max_tokens for this service in the config (for example 256) so text comes back.", **evidence),
            spent)
    return _with_tokens(Outcome.failed(f"{what}: the answer has no text (finish_reason "
                                       f"{choice.get('finish_reason')})",
                                       "Try the same prompt by hand (curl) and check the service's logs; if the "
                                       "model answers every prompt empty, redeploy it, else set prompt: in the "
                                       "config to one it answers.",
                                       **evidence), spent)


def judge_chat(observation: Mapping[str, Any]) -> Outcome:
    """A chat completion comes back with message content."""
    return judge_completion(observation, chat=True)


def judge_stream(observation: Mapping[str, Any], max_ttft_ms: int) -> Outcome:
    """An SSE stream: event-stream type, JSON data lines with text, [DONE] at the end, a reasonable first token."""
    evidence = {**exchange_evidence(observation)}
    evidence.pop("body_excerpt", None)
    evidence.update({key: observation.get(key) for key in ("events", "json_errors", "first_json_error", "done",
                                                           "ttft_ms", "first_byte_ms", "total_ms", "capped",
                                                           "stalled", "finish_reason")})
    tokens = Spent.of(observation, observation.get("usage"))
    if observation.get("capped"):
        return _with_tokens(Outcome.failed(
            f"the stream never ended: cut at the {observation.get('body_bytes')}-byte cap after "
            f"{observation.get('events')} events", "Try the same request by hand (curl -N) to see whether the "
            "service or a proxy in front keeps sending; lower max_tokens in the config if the model only talks "
            "long, and check the service's logs.", **evidence), tokens)
    if observation.get("stalled"):
        return _with_tokens(Outcome.failed(
            f"the stream stalled after {observation.get('events')} event(s): {detail_of(observation)}",
            "Check the service's logs and load for a stuck request, and the idle timeout of any proxy or gateway "
            "in front of it.",
            **evidence), tokens)
    problem = status_problem({**observation, "json": {}}, "POST /v1/completions (stream)")
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
            f"({shorten(str(observation.get('first_json_error')), 120)})", "Try the same request by hand (curl -N) "
            "at the service and through any proxy in front of it: one that rewrites or re-chunks responses "
            "corrupts the stream; turn that off for the model path.", **evidence), tokens)
    if not observation.get("done"):
        return _with_tokens(judge_no_done(observation, evidence), tokens)
    if not observation.get("text"):
        return _with_tokens(Outcome.failed(
            f"the stream carried no text in {observation.get('events')} event(s)",
            "Raise max_tokens for this service in the config (a reasoning model may think first), and try the same "
            "request by hand (curl -N) to see what the events hold.", **evidence), tokens)
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


def judge_no_done(observation: Mapping[str, Any], evidence: Mapping[str, Any]) -> Outcome:
    """A stream that ended without data: [DONE]: finished by the model but not terminated, or cut short."""
    events = observation.get("events")
    finish = observation.get("finish_reason")
    if finish:
        return Outcome.failed(
            f"the stream ended without data: [DONE] after {events} events, although the model finished "
            f"(finish_reason {finish})",
            "Make the server end every stream with data: [DONE], as the OpenAI API does: upgrade it or turn that on "
            "in its settings, or have the proxy in front pass the last event through; until then, clients that "
            "wait for [DONE] hang or fail.", **evidence)
    return Outcome.failed(
        f"the stream ended without data: [DONE] or a finish_reason after {events} events: it was cut short",
        "Find what closes the connection early: raise the read or idle timeout of any proxy or gateway in front of "
        "the service (nginx: proxy_read_timeout), and check the service's logs for errors at that time.",
        **evidence)


def _vectors(document: Any) -> tuple[list[dict[str, Any]] | None, str]:
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, list):
        return None, "the answer has no data list"
    return [item for item in data if isinstance(item, dict)], ""


def _by_index(vectors: list[dict[str, Any]], inputs: int) -> tuple[list[dict[str, Any]], str | None, str | None]:
    """The vectors in input order, matched by their `index` (the OpenAI API's way) when they carry one; and what is
    wrong (a missing or repeated index: no vector can be trusted to its input) or worth a warning (out of order).

    Without any index the list is taken in order, the only reading there is.
    """
    indexes = [item.get("index") for item in vectors]
    if all(index is None for index in indexes):
        return vectors, None, None
    numbers: list[int] = []
    for position, index in enumerate(indexes):
        if not isinstance(index, int) or isinstance(index, bool):
            return vectors, f"the vector at position {position} has no index ({index!r}) while others have", None
        numbers.append(index)
    repeated = sorted({number for number in numbers if numbers.count(number) > 1})
    if repeated:
        return vectors, f"index {', '.join(map(str, repeated))} appears more than once (indexes {numbers})", None
    missing = [number for number in range(inputs) if number not in numbers]
    if missing:
        return vectors, (f"no vector for input {', '.join(map(str, missing))} (indexes {numbers}, inputs "
                         f"0 to {inputs - 1})"), None
    if numbers == sorted(numbers):
        return vectors, None, None
    ordered = sorted(vectors, key=lambda item: int(item["index"]))
    return ordered, None, f"the vectors came back out of input order (indexes {indexes}); matched by index"


def _check_vectors(observation: Mapping[str, Any], inputs: int,
                   dimensions: int | None) -> tuple[str | None, str | None]:
    """What is wrong with an embeddings answer, if anything, and what is worth a warning."""
    vectors, why = _vectors(observation.get("json"))
    if vectors is None:
        return why, None
    if len(vectors) != inputs:
        return f"{len(vectors)} vector(s) for {inputs} input(s)", None
    vectors, wrong, warning = _by_index(vectors, inputs)
    if wrong is not None:
        return wrong, None
    for position, item in enumerate(vectors):
        number = item.get("index", position)
        summary = item.get("embedding")
        if not isinstance(summary, dict) or summary.get("type") != "list":
            kind = summary.get("type") if isinstance(summary, dict) else type(summary).__name__
            return f"a {kind} where vector {number} should be", None
        if summary.get("non_numeric"):
            return f"vector {number} has {summary['non_numeric']} non-numeric values", None
        if summary.get("non_finite"):
            return f"vector {number} has {summary['non_finite']} NaN or infinite values", None
        if dimensions is not None and summary.get("length") != dimensions:
            return f"vector {number} has {summary.get('length')} dimensions, {dimensions} expected", None
    return None, warning


OUT_OF_ORDER_FIX = ("Read the vectors by their index field, not by position (sort data by index), in every client "
                    "of this service: a client that reads them positionally pairs texts with the wrong vectors.")


def judge_embedding(observation: Mapping[str, Any], dimensions: int | None) -> Outcome:
    """Vectors of the expected dimension, finite numbers, one per input matched by index, for one input and a
    batch; a batch out of input order (allowed: each vector carries its index) is a warning."""
    single = observation.get("single") or {}
    tokens = Spent.of(observation, _usage_of(observation.get("json"))) + Spent.of(single, _usage_of(single.get("json")))
    exchanges: Sequence[tuple[str, Mapping[str, Any], int]] = (
        ("one input", single, 1), ("a batch of two", observation, 2))
    lengths: list[Any] = []
    warnings: list[str] = []
    for label, exchange, inputs in exchanges:
        problem = status_problem(exchange, f"POST /v1/embeddings ({label})")
        if problem is not None:
            return _with_tokens(problem, tokens)
        wrong, warning = _check_vectors(exchange, inputs, dimensions)
        if wrong is not None:
            evidence = {**exchange_evidence(exchange), "expected_dimensions": dimensions}
            evidence.pop("body_excerpt", None)
            fix = ("Check expect.dimensions against the model (BGE-M3 dense vectors have 1024 dimensions) and that "
                   "the service runs the model you expect." if "dimensions" in wrong else
                   "The service returns malformed embeddings: check the model deployment's logs, and redeploy it "
                   "in DataWorks > Model Service if the answer stays so.")
            return _with_tokens(Outcome.failed(f"{label}: {wrong}", fix, **evidence), tokens)
        if warning is not None:
            warnings.append(f"{label}: {warning}")
        vectors, _ = _vectors(exchange.get("json"))
        lengths.extend(item["embedding"].get("length") for item in vectors or [])
    evidence = {"dimensions": lengths[0] if lengths else None, "expected_dimensions": dimensions,
                "elapsed_ms": observation.get("elapsed_ms"),
                "indexes": [item.get("index") for item in _vectors(observation.get("json"))[0] or []]}
    if warnings:
        return _with_tokens(Outcome.warned("; ".join(warnings), OUT_OF_ORDER_FIX, **evidence), tokens)
    summary = f"{len(lengths)} vectors of {lengths[0]} finite numbers, in input order"
    if dimensions is None:
        summary += " (no expect.dimensions to compare with)"
    return _with_tokens(Outcome.passed(summary, **evidence), tokens)


__all__ = ["Spent", "judge_chat", "judge_completion", "judge_embedding", "judge_no_done", "judge_stream"]
