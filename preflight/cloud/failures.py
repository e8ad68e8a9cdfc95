"""What went wrong with a cloud call, as a CloudError: SDK exceptions and refusing answers translated, and the
questions a result asks of one (were the credentials refused, which managed policy grants the action)."""

from __future__ import annotations

from typing import Any

from preflight.cloud.actions import WRITE_ACTIONS
from preflight.engine.text import shorten
from preflight.errors import CloudError

CREDENTIAL_CODES = ("InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidTimeStamp", "InvalidSecurityToken",
                    "NoCredentials", "IncompleteSignature", "MissingAuthorization")
MANAGED_POLICIES = {"dataworks": "AliyunDataWorksReadOnlyAccess (AliyunDataWorksFullAccess for "
                                 "ExecuteAdhocWorkflowInstance)",
                    "pvtz": "AliyunPvtzReadOnlyAccess", "privatelink": "AliyunPrivateLinkReadOnlyAccess",
                    "vpc": "AliyunVPCReadOnlyAccess", "sts": "none (GetCallerIdentity needs no permission)"}


def translate(exc: BaseException, action: str) -> CloudError:
    """Any SDK exception as a CloudError that says what happened to which call, with the code:

        the API's own           the API answered an error (Throttling.User, Forbidden.RAM, InvalidAccessKeyId, ...)
        Timeout                 no answer within the connect or read timeout
        InvalidResponse         an answer that does not decode
        ConnectionError         anything else that kept the call from an answer
    """
    inner = getattr(exc, "inner_exception", None)
    code = str(getattr(exc, "code", "") or "")
    if not code:
        name = type(inner or exc).__name__
        text = str(inner or exc)
        if "timed out" in text.lower() or "timeout" in name.lower():
            code = "Timeout"
        elif "json" in text.lower() or "expecting value" in text.lower() or "decode" in text.lower():
            code = "InvalidResponse"
        else:
            code = "ConnectionError"
        return CloudError(f"{action.split(':')[1]} failed: {name}: {shorten(text, 300)}", code=code, action=action)
    detail = getattr(exc, "access_denied_detail", None) or {}
    data = getattr(exc, "data", None)
    if not detail and isinstance(data, dict):
        detail = data.get("AccessDeniedDetail") or {}
    message = str(getattr(exc, "message", "") or exc)
    retry_after = getattr(exc, "retry_after", None)  # milliseconds, from x-acs-retry-after
    return CloudError(shorten(message, 400), code=code, status_code=getattr(exc, "status_code", None),
                      request_id=str(getattr(exc, "request_id", "") or ""), action=action,
                      auth_action=str(detail.get("AuthAction", "") if isinstance(detail, dict) else ""),
                      retry_after_s=retry_after / 1000 if isinstance(retry_after, int | float) else None)


def check_answer(product: str, action: str, body: Any) -> None:
    """Raise CloudError for an answer that is not a JSON object or that says `Success: false`.

    Such a body names its error `Code`/`Message`, or, in older DataWorks shapes, `ErrorCode`/`ErrorMessage`.
    """
    where = f"{product}:{action}"
    if not isinstance(body, dict):
        raise CloudError(f"{action} answered a body that is not a JSON object", code="InvalidResponse", action=where)
    if body.get("Success") is False:
        code = str(body.get("Code") or body.get("ErrorCode") or "SuccessFalse")
        message = str(body.get("Message") or body.get("ErrorMessage") or "no message")
        # The request id travels apart (request_id): a summary names it once, next to the code.
        raise CloudError(f"{action} answered HTTP 200 with Success: false ({code}: {shorten(message, 300)})",
                         code=code, status_code=200, request_id=str(body.get("RequestId") or ""), action=where)


def is_credential_error(error: CloudError) -> bool:
    return error.code.startswith(CREDENTIAL_CODES)


def managed_policy(action: str) -> str:
    """The managed policy that grants a RAM action like `dataworks:ListNetworks`."""
    product = action.split(":")[0]
    if action in WRITE_ACTIONS:
        return "AliyunDataWorksFullAccess"
    if product == "dataworks":
        return "AliyunDataWorksReadOnlyAccess"
    return MANAGED_POLICIES.get(product, "a policy that allows it")


__all__ = ["CREDENTIAL_CODES", "MANAGED_POLICIES", "check_answer", "is_credential_error", "managed_policy",
           "translate"]
