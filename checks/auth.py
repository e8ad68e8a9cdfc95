"""Key checks: the key's format, and that the service accepts it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from checks.judges.key import judge_key_format, judge_key_valid
from checks.judges.url import is_dataworks_host
from checks.observe import observed
from preflight.engine.model import Outcome
from preflight.engine.registry import check

if TYPE_CHECKING:
    from preflight.config.context import CheckContext

DOCS = "https://www.alibabacloud.com/help/en/dataworks/user-guide/model-service"


@check("auth.key_format", "API key is written the way the service wants it", depends_on=("config.valid",),
       tags=("auth", "offline"), timeout_s=5, docs=DOCS, waitable=False,
       proves="The key is present, starts with DW for a DataWorks domain, has no Bearer prefix with auth: raw, and no "
              "whitespace or quotes.",
       how="Looks at the key without sending it; evidence shows only its length and first three characters.",
       failure_means="DataWorks wants Authorization: DW-... (the raw key); 'Bearer DW-...' is refused.",
       fix="Remove the Bearer prefix, quotes or whitespace from the variable holding the key.")
async def key_format(context: CheckContext) -> Outcome:
    service = context.service
    assert service is not None
    from preflight.probe.local import Endpoint

    return judge_key_format(service.api_key, service.auth, is_dataworks_host(Endpoint.of(service.endpoint).host))


@check("auth.key_valid", "API key is accepted", depends_on=("endpoint.http", "auth.key_format"), plane="data",
       tags=("auth", "data"), timeout_s=30, docs=DOCS,
       proves="GET /v1/models with the key answers 200 (spends no tokens).",
       how="Sends the key exactly as configured (raw, or Bearer with auth: bearer), to the configured endpoint only "
           "and only after endpoint.http and auth.key_format have passed; a redirect is never followed with it.",
       failure_means="401/403: a wrong, disabled or deleted key (disabling takes about 5 minutes to apply); "
                     "5xx: the service is unhealthy; 429: quota (warn); 404: a server without a models list (warn: "
                     "the inference checks prove the key).",
       fix="Create or copy the key in DataWorks > Model Service > API keys.")
async def key_valid(context: CheckContext) -> Outcome:
    return await observed(context, "models", judge_key_valid)


CHECKS = (key_format, key_valid)
