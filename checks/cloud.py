"""The `cloud.credentials` check: the credential chain yields an AccessKey the DataWorks API accepts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from checks.answers import get_project, get_resource_group
from checks.cloudfail import outcome_of
from preflight.cloud.session import NOT_A_WORKSPACE_ID, is_credential_error, session
from preflight.engine.model import Outcome
from preflight.engine.registry import check
from preflight.errors import SDK_UNUSABLE, CloudError

if TYPE_CHECKING:
    from preflight.config.context import CheckContext

DOCS = "https://www.alibabacloud.com/help/en/dataworks/user-guide/serverless-resource-groups"
# Codes of calls that got no API answer at all: they prove nothing about the key.
NO_ANSWER = ("Timeout", "ConnectionError", "InvalidResponse", NOT_A_WORKSPACE_ID)
NO_CONTROL = "no workspace or resource_group configured for this target: control-plane checks skip"


@check("cloud.credentials", "Cloud credentials are accepted", depends_on=("config.valid",), plane="control",
       scope="target", tags=("control", "cloud"), timeout_s=30, docs=DOCS,
       proves="The credential chain yields an AccessKey the DataWorks API accepts (the signature verifies).",
       how="Resolves the default chain (or cloud.profile) and signs GetProject (else GetResourceGroup); the answer "
           "is shared with the checks that need it.",
       failure_means="A wrong or disabled AccessKey, a wrong secret (SignatureDoesNotMatch), a clock far off, or no "
                     "credentials at all.",
       fix="Export ALIBABA_CLOUD_ACCESS_KEY_ID/SECRET, or name a profile of ~/.aliyun/config.json in cloud.profile.")
async def credentials(context: CheckContext) -> Outcome:
    target = context.target
    if target.workspace is None and target.resource_group is None:
        return Outcome.skipped(NO_CONTROL)
    cloud = await session(context)
    import asyncio

    from checks.warm import warm

    # Not awaited here: the questions run while this check and others wait; the run's memo hands out the answers.
    context.resources.background(asyncio.ensure_future(warm(context)))
    try:
        identity = await cloud.identity()
    except CloudError as error:
        if error.code != "NoCredentials":
            return outcome_of(error, "resolving the credential chain")
        return Outcome.failed(str(error), "Configure credentials: export ALIBABA_CLOUD_ACCESS_KEY_ID and "
                              "ALIBABA_CLOUD_ACCESS_KEY_SECRET, or set cloud.profile.", code=error.code)
    askers = [("GetProject", get_project)] if target.workspace else []
    if target.resource_group:
        askers.append(("GetResourceGroup", get_resource_group))
    errors: list[CloudError] = []
    for action, ask in askers:
        try:
            await ask(context)
        except CloudError as error:
            if is_credential_error(error):
                outcome = outcome_of(error, f"{action} signed with the key from the {identity.source}, AccessKey id "
                                            f"{identity.access_key_id}")
                return Outcome(outcome.status, outcome.summary, {**outcome.evidence, "provider": identity.provider,
                                                                 "access_key_id": identity.access_key_id},
                               outcome.remediation)
            errors.append(error)
            continue
        # A question that failed for another reason is judged by the check that needs it; say so, not blame it here.
        note = "".join(f"; {e.action.split(':')[-1]} failed with {e.code}, judged by the check that needs it"
                       for e in errors)
        return Outcome.passed(f"{action} accepted the key from the {identity.source}, AccessKey id "
                              f"{identity.access_key_id}{note}", provider=identity.provider,
                              access_key_id=identity.access_key_id, verified_with=action,
                              other_errors=[e.code for e in errors])
    if errors and all(e.code == SDK_UNUSABLE for e in errors):
        return outcome_of(errors[0], f"{errors[0].action.split(':')[-1]} (to verify the key)")
    evidence = {"provider": identity.provider, "access_key_id": identity.access_key_id,
                "errors": {e.action: e.code for e in errors}}
    answered = [e for e in errors if e.code not in NO_ANSWER]
    if not answered:
        # Nothing came back at all, so nothing proves the key either way; the checks that asked report the cause.
        return Outcome.warned(f"cannot tell: no API answer to verify the key from the {identity.source} "
                              f"({', '.join(f'{e.code} on {e.action}' for e in errors)})",
                              "Check cloud.endpoint, cloud.protocol and the network path to the API; the checks "
                              "that need the answers say more.", **evidence)
    last = answered[-1]
    return Outcome.passed(f"the API accepted the signature ({last.code} on {last.action} is judged by the check that "
                          f"needs it); key from the {identity.source}, AccessKey id {identity.access_key_id}",
                          last_code=last.code, **evidence)


CHECKS = (credentials,)
