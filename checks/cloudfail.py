"""Turn a failed cloud API call into an Outcome that says what to do."""

from __future__ import annotations

from typing import Any

from preflight.cloud.session import is_credential_error, managed_policy
from preflight.engine.model import Outcome, Status
from preflight.errors import SDK_UNUSABLE, CloudError


def error_evidence(error: CloudError) -> dict[str, Any]:
    return {"action": error.action, "code": error.code, "http_status": error.status_code,
            "request_id": error.request_id, "auth_action": error.auth_action or None}


def outcome_of(error: CloudError, what: str) -> Outcome:
    """The failure of `what` (a phrase like 'GetResourceGroup for group X') with the fix for its kind."""
    evidence = error_evidence(error)
    request = f" (request id {error.request_id})" if error.request_id else ""
    code = error.code
    if code == SDK_UNUSABLE:
        return Outcome(Status.ERROR, f"{what}: not asked: the tool could not use the cloud SDK: {error}", evidence,
                       "A problem of dw-preflight or its SDK installation, not of the cloud: reinstall "
                       "(pip install --force-reinstall dw-preflight); if it persists, report it with "
                       "`preflight bundle`.")
    if code == "Forbidden.RAM" or code.startswith("Forbidden"):
        action = error.auth_action or error.action
        policy = managed_policy(action)
        return Outcome.failed(f"{what}: permission denied: the RAM identity may not call {action}{request}",
                              f"Grant {action} to the RAM user or role running preflight (RAM console > Users/Roles "
                              f"> Add Permissions), for example with the managed policy {policy}.", **evidence)
    if is_credential_error(error):
        return Outcome.failed(f"{what}: the API refused the credentials ({code}){request}",
                              "Check ALIBABA_CLOUD_ACCESS_KEY_ID/SECRET or the profile in ~/.aliyun/config.json.",
                              **evidence)
    if code.startswith("Throttling") or error.status_code == 429:
        # Not a verdict about the resource: the question was not answered.
        return Outcome.failed(f"{what}: not answered: {error}{request}",
                              "Too many API calls for this account: raise its flow-control limit or lower "
                              "cloud.rate_limits to what it allows, or run fewer targets at once.", **evidence)
    if code == "Timeout":
        return Outcome.failed(f"{what}: the API did not answer in time: {error}",
                              "Check the network path to the API endpoint (cloud.endpoint, proxies), or raise "
                              "cloud.read_timeout_ms.", **evidence)
    if code == "InvalidResponse":
        return Outcome.failed(f"{what}: the answer cannot be read (not JSON, or not the shape the API documents): "
                              f"{error}",
                              "A proxy or captive portal answered instead of the API; check cloud.endpoint and "
                              "proxies.", **evidence)
    if code == "ConnectionError":
        return Outcome.failed(f"{what}: the API could not be reached: {error}",
                              "Check cloud.endpoint / cloud.protocol and the network path to it.", **evidence)
    if (error.status_code or 0) >= 500 or code in ("InternalError", "ServiceUnavailable"):
        return Outcome.failed(f"{what}: the API failed on its side ({code}, HTTP {error.status_code}){request}",
                              "A temporary failure of the service: retry; if it persists, open a ticket quoting the "
                              "request id.", **evidence)
    return Outcome.failed(f"{what}: {code}: {error}{request}", "See the error code in the API's documentation.",
                          **evidence)


__all__ = ["error_evidence", "outcome_of"]
