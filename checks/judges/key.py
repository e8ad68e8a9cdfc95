"""Judges for the API key: how it is written, whether the service accepts it, and the models it lists."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from checks.judges.http import detail_of, exchange_evidence, transport_problem
from preflight.engine.model import Outcome
from preflight.engine.text import shorten

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


def status_problem(observation: Mapping[str, Any], what: str) -> Outcome | None:
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
        return Outcome.failed(f"{what}: HTTP {status}: the service is unhealthy",
                              "Check the service's status, replicas and logs in DataWorks > Model Service, and "
                              "restart or scale it if it is not Running.", **evidence)
    if isinstance(status, int) and status >= 400:
        return Outcome.failed(f"{what}: HTTP {status}: {shorten(str(observation.get('body_excerpt') or ''), 160)}",
                              "The service rejected the request; check the model name and the endpoint path.",
                              **evidence)
    if observation.get("error"):
        return Outcome.failed(f"{what}: the answer broke off ({observation.get('error')}): "
                              f"{detail_of(observation)}",
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
        return Outcome.failed(f"{what}: HTTP {status} but the body is not JSON "
                              f"({shorten(str(observation.get('json_error')), 120)})",
                              "Point the endpoint at the OpenAI-compatible service itself (see body_excerpt in the "
                              "evidence for what answered instead).", **evidence)
    return None


def judge_key_valid(observation: Mapping[str, Any]) -> Outcome:
    """GET /v1/models with the key, judged alone: 200 accepts the key (no tokens spent), 401/403 refuse it.

    A server that does not serve the models list (404) says nothing about the key: a warning, and the inference
    checks, which send the key too, prove it.
    """
    if observation.get("status") == 404 and not observation.get("redirect") and not observation.get("error"):
        return Outcome.warned("GET /v1/models with the key: HTTP 404: this server has no models list, so the key "
                              "is proved by the inference checks instead",
                              "Nothing to do if the inference checks pass; if this is a DataWorks model service, "
                              "check that the endpoint has no path after the host.",
                              **exchange_evidence(observation))
    problem = status_problem(observation, "GET /v1/models with the key")
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
    status = observation.get("status")
    if status != 200:
        return Outcome.skipped(f"no models list to compare with (GET /v1/models answered HTTP {status}); the "
                               f"inference checks show whether {model} is served", status=status, model=model)
    served = served_models(observation)
    evidence = {"model": model, "served": served[:50]}
    if model in served:
        return Outcome.passed(f"{model} is served", **evidence)
    return Outcome.failed(f"{model} is not served here; the service serves: {', '.join(served[:10]) or 'nothing'}",
                          "Use one of the served model names in the config (model:), or deploy the model you meant.",
                          **evidence)


__all__ = ["KEY_CONSOLE", "judge_key_format", "judge_key_valid", "judge_listed", "served_models", "status_problem"]
