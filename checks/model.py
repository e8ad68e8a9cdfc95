"""The `model.listed` check: the configured model is among those the service lists."""

from __future__ import annotations

from typing import TYPE_CHECKING

from checks.judges.key import judge_listed
from checks.observe import observed
from preflight.engine.model import Outcome
from preflight.engine.registry import check

if TYPE_CHECKING:
    from preflight.config.context import CheckContext

DOCS = "https://www.alibabacloud.com/help/en/dataworks/user-guide/model-service"


@check("model.listed", "Configured model is served", depends_on=("auth.key_valid",), plane="data",
       tags=("model", "data"), timeout_s=30, docs=DOCS,
       proves="The configured model name is among those GET /v1/models lists.",
       how="Reuses the answer of auth.key_valid; skips when the server has no models list (the inference checks "
           "then show whether the model is served).",
       failure_means="A typo in model:, or the service runs another model.",
       fix="Use one of the served names the summary lists.")
async def model_listed(context: CheckContext) -> Outcome:
    service = context.service
    assert service is not None
    if not service.model:
        return Outcome.skipped("no model configured for this service (model:), nothing to compare")
    model = service.model
    return await observed(context, "models", lambda answer: judge_listed(answer, model))


CHECKS = (model_listed,)
