"""Inference checks: a completion, a stream, a chat answer and embeddings actually come back."""

from __future__ import annotations

from typing import TYPE_CHECKING

from checks.judges.inference import judge_chat, judge_completion, judge_embedding, judge_stream
from checks.observe import observed
from preflight.engine.model import Outcome
from preflight.engine.registry import check

if TYPE_CHECKING:
    from preflight.config.context import CheckContext

DOCS = "https://www.alibabacloud.com/help/en/dataworks/user-guide/model-service"
KINDS = {"inference.completion": ("completion",), "inference.stream": ("completion",),
         "inference.chat": ("chat",), "inference.embedding": ("embedding",)}


def _not_applicable(context: CheckContext, check_id: str) -> Outcome | None:
    service = context.service
    assert service is not None
    if service.kind not in KINDS[check_id]:
        return Outcome.skipped(f"not for a service of kind {service.kind} (only {', '.join(KINDS[check_id])})")
    budget = context.resources.budget
    if budget.exhausted():
        spent = f"≈{budget.spent}" if budget.estimated else str(budget.spent)
        return Outcome.skipped(f"the token budget is spent ({spent} of {budget.limit} tokens, "
                               "--max-tokens-budget)")
    return None


@check("inference.completion", "A completion comes back", depends_on=("auth.key_valid",), plane="data",
       tags=("inference", "data"), timeout_s=30, docs=DOCS,
       proves="POST /v1/completions with a small max_tokens returns text; latency and usage are recorded.",
       how='Sends {"model", "prompt", "max_tokens": 8, "stream": false}; the budget counts the tokens the answer '
           "reports, or, when it reports no usage, the request's upper bound (prompt bytes plus max_tokens, marked "
           "≈ and tokens_estimated).",
       failure_means="5xx: the service is unhealthy; an empty text with finish_reason length: a reasoning model "
                     "needs a larger max_tokens (warn).",
       fix="Check the service's status and logs; raise max_tokens for reasoning models.")
async def completion(context: CheckContext) -> Outcome:
    return _not_applicable(context, "inference.completion") or await observed(context, "completion",
                                                                                judge_completion)


@check("inference.stream", "A streamed completion arrives as it is made", depends_on=("auth.key_valid",),
       plane="data", tags=("inference", "data", "stream"), timeout_s=30, docs=DOCS,
       proves="SSE: text/event-stream, JSON data: chunks with text, data: [DONE] at the end, time to first token.",
       how="Sends stream: true (asking for usage in the stream) and reads the stream up to the byte cap, timing "
           "every event; a stream without usage counts the request's upper bound against the budget (≈).",
       failure_means="No [DONE]: the server does not end streams properly, or a proxy cut the stream; one burst at "
                     "the end: a proxy buffers it; slow TTFT: load.",
       fix="Turn off proxy buffering for the model path; check the service's load.")
async def stream(context: CheckContext) -> Outcome:
    service = context.service
    assert service is not None
    limit = service.expect.max_ttft_ms
    return _not_applicable(context, "inference.stream") or await observed(
        context, "stream", lambda answer: judge_stream(answer, limit))


@check("inference.chat", "A chat completion comes back", depends_on=("auth.key_valid",), plane="data",
       tags=("inference", "data"), timeout_s=30, docs=DOCS,
       proves="POST /v1/chat/completions returns message content (for kind: chat services).",
       how="Sends one user message with a small max_tokens.",
       failure_means="The service is not a chat model, or it is unhealthy.",
       fix="Check the service's kind and status.")
async def chat(context: CheckContext) -> Outcome:
    return _not_applicable(context, "inference.chat") or await observed(context, "chat", judge_chat)


@check("inference.embedding", "Embeddings of the expected dimension come back", depends_on=("auth.key_valid",),
       plane="data", tags=("inference", "data"), timeout_s=30, docs=DOCS,
       proves="POST /v1/embeddings returns one finite vector per input, matched by its index, of the expected "
              "dimension (1024 for bge-m3), for one input and for a batch of two; out of input order is a warning.",
       how="Sends the documented request and a batch of two; vectors are summarised, never stored whole.",
       failure_means="Another model behind the endpoint, a wrong expect.dimensions, or a broken deployment.",
       fix="Set expect.dimensions to the model's size, or redeploy the intended model.")
async def embedding(context: CheckContext) -> Outcome:
    service = context.service
    assert service is not None
    dimensions = service.expected_dimensions
    return _not_applicable(context, "inference.embedding") or await observed(
        context, "embedding", lambda answer: judge_embedding(answer, dimensions))


CHECKS = (completion, stream, chat, embedding)
