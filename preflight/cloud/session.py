"""Calls to the Alibaba Cloud OpenAPIs through the generated SDK clients and their typed request models.

One client per product and region, called from the run's thread pool (the SDK is synchronous); every call passes
through `CloudSession.call`, paced per product, region and action (preflight.cloud.pacing), answers are shared per run
(`call`), and failures become CloudError.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from preflight.engine.text import shorten
from preflight.errors import SDK_UNUSABLE, CloudError

if TYPE_CHECKING:
    import concurrent.futures
    from types import ModuleType

    from preflight.config import CloudConfig, Config
    from preflight.config.context import CheckContext


@dataclass(frozen=True, slots=True)
class Product:
    """One OpenAPI product and the package of its generated client; `optional` ones are in the `network` extra."""

    name: str
    package: str
    optional: bool = False


PRODUCTS = {
    "dataworks": Product("dataworks", "alibabacloud_dataworks_public20240518"),
    "pvtz": Product("pvtz", "alibabacloud_pvtz20180101", optional=True),
    "privatelink": Product("privatelink", "alibabacloud_privatelink20200415", optional=True),
    "vpc": Product("vpc", "alibabacloud_vpc20160428", optional=True),
    # Who the credentials belong to: the in-network task's Owner when the config names none.
    "sts": Product("sts", "alibabacloud_sts20150401"),
}
# Every action the tool calls, with the generated client's method for it; its request model is `<Action>Request`
# and its RAM action `<product>:<Action>`. The client method carries the HTTP method and where each parameter goes.
ACTIONS: dict[tuple[str, str], str] = {
    ("dataworks", "GetProject"): "get_project",
    ("dataworks", "GetResourceGroup"): "get_resource_group",
    ("dataworks", "ListResourceGroups"): "list_resource_groups",  # preflight init only
    ("dataworks", "ListResourceGroupAssociateProjects"): "list_resource_group_associate_projects",
    ("dataworks", "ListNetworks"): "list_networks",
    ("dataworks", "GetNode"): "get_node",
    ("dataworks", "GetTask"): "get_task",
    ("dataworks", "ExecuteAdhocWorkflowInstance"): "execute_adhoc_workflow_instance",
    ("dataworks", "GetWorkflowInstance"): "get_workflow_instance",
    ("dataworks", "ListTaskInstances"): "list_task_instances",
    ("dataworks", "GetTaskInstance"): "get_task_instance",
    ("dataworks", "GetTaskInstanceLog"): "get_task_instance_log",
    ("pvtz", "DescribeZones"): "describe_zones",
    ("pvtz", "DescribeZoneVpcTree"): "describe_zone_vpc_tree",
    ("pvtz", "DescribeZoneRecords"): "describe_zone_records",
    ("privatelink", "ListVpcEndpoints"): "list_vpc_endpoints",
    ("privatelink", "ListVpcEndpointZones"): "list_vpc_endpoint_zones",
    ("vpc", "DescribeVSwitchAttributes"): "describe_vswitch_attributes",
    ("sts", "GetCallerIdentity"): "get_caller_identity",  # no request model: the action takes no parameters
}
# What a full run imports, in the order it needs them: the credential chain and DataWorks sign the first call.
RUN_IMPORTS = ("credentials", "dataworks", "pvtz", "privatelink")
CREDENTIAL_CODES = ("InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidTimeStamp", "InvalidSecurityToken",
                    "NoCredentials", "IncompleteSignature", "MissingAuthorization")
MANAGED_POLICIES = {"dataworks": "AliyunDataWorksReadOnlyAccess (AliyunDataWorksFullAccess for "
                                 "ExecuteAdhocWorkflowInstance)",
                    "pvtz": "AliyunPvtzReadOnlyAccess", "privatelink": "AliyunPrivateLinkReadOnlyAccess",
                    "vpc": "AliyunVPCReadOnlyAccess", "sts": "none (GetCallerIdentity needs no permission)"}
# Read-only policies do not grant these; everything else the tool calls is a Get/List/Describe.
WRITE_ACTIONS = frozenset({"dataworks:ExecuteAdhocWorkflowInstance"})
# The credentials SDK names its providers; say in words where the key came from.
PROVIDER_SOURCES = {
    "env": "environment variables ALIBABA_CLOUD_ACCESS_KEY_ID/SECRET",
    "oidc_role_arn": "OIDC role (ALIBABA_CLOUD_ROLE_ARN, ALIBABA_CLOUD_OIDC_TOKEN_FILE)",
    "cli_profile": "CLI profile in ~/.aliyun/config.json",
    "profile": "profile in ~/.alibabacloud/credentials.ini",
    "ecs_ram_role": "ECS RAM role (instance metadata)",
    "credential_uri": "credentials URI (ALIBABA_CLOUD_CREDENTIALS_URI)",
    "ram_role_arn": "assumed RAM role",
    "cloud_sso": "CloudSSO sign-in",
    "oauth": "OAuth sign-in",
    "external": "external credential process",
    "rsa_key_pair": "RSA key pair",
    "static_ak": "static AccessKey",
    "static_sts": "static STS token",
}
NOT_A_WORKSPACE_ID = "NotAWorkspaceId"  # the code of a question not asked: the config's workspace is no number
# Cloud calls a run keeps in flight at once (the session's threads), and connections kept per endpoint.
MAX_CALLS_IN_FLIGHT = 128

# The import of each SDK part (RUN_IMPORTS' names), started once per process and awaited by the first call.
_IMPORTS: dict[str, concurrent.futures.Future[ModuleType]] = {}
_OPEN: list[CloudSession] = []  # sessions not closed yet; a run's follower and its checks share one
_TRACE: Callable[[str], None] | None = None  # where `-v` prints each call (set_trace)
TRACE_VALUE_CHARS = 200


def _module_name(part: str) -> str:
    return "alibabacloud_credentials.client" if part == "credentials" else f"{PRODUCTS[part].package}.client"


def start_import(parts: tuple[str, ...] = RUN_IMPORTS) -> None:
    """Import the generated clients on a background thread, so config parsing and the data plane run meanwhile.

    Idempotent; a part already imported or importing is not started again. A part that cannot be imported (an
    optional product without the extra) keeps its ImportError for the call that needs it.
    """
    import concurrent.futures
    import threading

    mine = []
    for part in parts:
        future: concurrent.futures.Future[ModuleType] = concurrent.futures.Future()
        # setdefault is atomic: of two threads starting the same part, one owns its import.
        if _IMPORTS.setdefault(part, future) is future:
            mine.append(part)
    if mine:
        threading.Thread(target=_import_parts, args=(mine,), name="preflight-sdk-import", daemon=True).start()


def _import_parts(parts: list[str]) -> None:
    import importlib

    for part in parts:
        future = _IMPORTS[part]
        try:
            future.set_result(importlib.import_module(_module_name(part)))
        except BaseException as exc:  # handed to the call that waits for it
            future.set_exception(exc)


def _sdk(part: str) -> ModuleType:
    """The generated client module of a product (or the credentials client), waiting for its import."""
    start_import((part,))
    return _IMPORTS[part].result()


def _models(product: str) -> ModuleType:
    """A product's generated request and response models (imported with its client)."""
    import importlib

    return importlib.import_module(f"{PRODUCTS[product].package}.models")


async def sdk_models(product: str) -> ModuleType:
    """A product's generated models, once their import has finished (awaited, not blocking the loop)."""
    import asyncio

    start_import((product,))
    try:
        await asyncio.wrap_future(_IMPORTS[product])
    except ImportError as exc:
        raise CloudError(f"the {product} SDK cannot be imported: {exc}", code=SDK_UNUSABLE) from None
    return _models(product)


@functools.cache
def extra_installed(product: str) -> bool:
    """Whether the optional SDK package of a network product is installed (`preflight[network]`).

    Asked once per product and process: every network check asks, and each search of sys.path costs more than
    the check's own judgement.
    """
    info = PRODUCTS[product]
    if not info.optional:
        return True
    import importlib.util

    try:
        return importlib.util.find_spec(info.package) is not None
    except ImportError:  # a broken or blocked installation counts as absent
        return False


@dataclass(frozen=True, slots=True)
class Identity:
    """Where the credentials came from, safe to show: provider name and masked AccessKey id."""

    provider: str
    access_key_id: str

    @property
    def source(self) -> str:
        """The provider in words, with the SDK's chain name in brackets (`default/env`)."""
        return describe_provider(self.provider)


def describe_provider(chain: str) -> str:
    """`default/cli_profile/static_ak` -> 'CLI profile in ~/.aliyun/config.json (default/cli_profile/static_ak)'."""
    names = [name for name in chain.split("/") if name and name != "default"]
    words = PROVIDER_SOURCES.get(names[0], names[0]) if names else "default credential chain"
    return f"{words} ({chain})" if chain else words


def managed_policy(action: str) -> str:
    """The managed policy that grants a RAM action like `dataworks:ListNetworks`."""
    product = action.split(":")[0]
    if action in WRITE_ACTIONS:
        return "AliyunDataWorksFullAccess"
    if product == "dataworks":
        return "AliyunDataWorksReadOnlyAccess"
    return MANAGED_POLICIES.get(product, "a policy that allows it")


def is_credential_error(error: CloudError) -> bool:
    return error.code.startswith(CREDENTIAL_CODES)


def project_id(workspace: str, action: str) -> int:
    """A workspace id as the API's ProjectId, an int; CloudError NOT_A_WORKSPACE_ID (nothing sent) when it is not
    a number."""
    if not workspace.isdigit():
        raise CloudError(f"workspace {workspace!r} is not a DataWorks workspace id, which is a number: not asked",
                         code=NOT_A_WORKSPACE_ID, action=action)
    return int(workspace)


class CloudSession:
    """The run's credentials, one generated client per product and region, and the threads that call them."""

    def __init__(self, cloud: CloudConfig) -> None:
        import concurrent.futures
        import threading

        self.cloud = cloud
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        self._credentials: tuple[Any, Identity] | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(MAX_CALLS_IN_FLIGHT, thread_name_prefix="preflight-cloud")
        from preflight.cloud.pacing import Pacer  # here: `preflight list` imports this module and needs no asyncio

        self.pacer = Pacer(cloud.rate_limits)

    async def call(self, product: str, action: str, request: Any, region: str, *,
                   deadline: float = float("inf")) -> dict[str, Any]:
        """Every cloud call of a run goes through here, paced and retried by the session's Pacer.

        `request` is the action's SDK request model, or a mapping of its fields (`{"id": 42}`), built into one
        once the SDK is imported. The answer is the typed response's body as a dict (wire names, as the API
        documents them). `deadline` (a `time.monotonic` instant) bounds the waits for a token and the retries.
        """
        import asyncio

        loop = asyncio.get_running_loop()

        async def send() -> dict[str, Any]:
            # The wait for a token happened in asyncio: a thread of the pool is taken only to send.
            return await loop.run_in_executor(self._pool, self._invoke, product, action, request, region)

        return await self.pacer.call(product, action, region, send, deadline=deadline)

    async def identity(self) -> Identity:
        """Where the credentials came from; raises the CloudError of a chain that yielded none."""
        import asyncio

        return (await asyncio.get_running_loop().run_in_executor(self._pool, self.resolve))[1]

    def resolve(self) -> tuple[Any, Identity]:
        """The SDK credential and where it came from, resolved once."""
        with self._lock:
            if self._credentials is None:
                try:
                    _sdk("credentials")
                except ImportError as exc:
                    raise CloudError(f"the credentials SDK cannot be imported: {exc}", code=SDK_UNUSABLE) from None
                self._credentials = _resolve_credentials(self.cloud)
            return self._credentials

    def client(self, product: str, region: str) -> Any:
        credential, _ = self.resolve()
        with self._lock:
            key = (product, region)
            if key not in self._clients:
                self._clients[key] = _build_client(self.cloud, product, region, credential)
            return self._clients[key]

    def close(self) -> None:
        """Stop taking calls; a call still running ends at the SDK's read timeout and answers nobody."""
        if self in _OPEN:
            _OPEN.remove(self)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _invoke(self, product: str, action: str, request: Any, region: str) -> dict[str, Any]:
        """One blocking call through the generated client, on a thread of the pool."""
        where = f"{product}:{action}"
        method = ACTIONS.get((product, action))
        if method is None:
            raise CloudError(f"{action} is not an action this tool calls", code=SDK_UNUSABLE, action=where)
        try:
            _sdk(product)
            if isinstance(request, Mapping):
                model = getattr(_models(product), f"{action}Request", None)
                # An action without parameters (STS GetCallerIdentity) has no request model to build.
                if model is None and request:
                    raise TypeError(f"{action} takes no parameters")
                request = model(**request) if model is not None else None
        except Exception as exc:  # the SDK is not installed, or the tool built a request its model does not have
            raise CloudError(f"{action} could not be sent: {type(exc).__name__}: {shorten(str(exc), 300)}",
                             code=SDK_UNUSABLE, action=where) from None
        from darabonba.runtime import RuntimeOptions

        cloud = self.cloud
        runtime = RuntimeOptions(connect_timeout=cloud.connect_timeout_ms, read_timeout=cloud.read_timeout_ms,
                                 autoretry=False, max_attempts=0, max_idle_conns=MAX_CALLS_IN_FLIGHT)
        try:
            client = self.client(product, region)
            send = getattr(client, f"{method}_with_options")
            response = send(runtime) if request is None else send(request, runtime)
        except CloudError as exc:
            exc.action = exc.action or where
            _trace(where, request, exc)
            raise
        except Exception as exc:
            error = translate(exc, where)
            _trace(where, request, error)
            raise error from None
        if response.body is None:  # the SDK could not build its model from the answer
            raise CloudError(f"{action} answered a body that does not fit the SDK's model of it",
                             code="InvalidResponse", action=where)
        answer = dict(response.body.to_map())
        _trace(where, request, answer)
        return answer


def _resolve_credentials(cloud: CloudConfig) -> tuple[Any, Identity]:
    import importlib

    from alibabacloud_credentials.client import Client
    from alibabacloud_credentials.utils import auth_util

    from preflight.engine.redact import mask_access_key_id, register_secrets

    # The chain snapshots its environment variables when first imported; read them as they are now, so a caller
    # that sets them later (a demo, an embedding program) is honoured.
    importlib.reload(auth_util)

    try:
        credential = _profile_credential(cloud.profile) if cloud.profile else Client().get_credential()
    except CloudError:
        raise
    except Exception as exc:
        raise CloudError("no credentials: the default chain (environment ALIBABA_CLOUD_ACCESS_KEY_ID/SECRET, OIDC, "
                         "~/.aliyun/config.json, ~/.alibabacloud/credentials.ini, ECS RAM role) yielded none: "
                         f"{shorten(str(exc), 200)}", code="NoCredentials") from None
    register_secrets([(credential.access_key_secret, "access_key_secret"),
                      (credential.security_token, "security_token")])
    provider = str(getattr(credential, "provider_name", "") or "default")
    return credential, Identity(provider, mask_access_key_id(credential.access_key_id or ""))


def _profile_credential(name: str) -> Any:
    """A named profile as ALIBABA_CLOUD_PROFILE selects it: the CLI's config.json first, then credentials.ini."""
    from alibabacloud_credentials.client import Client
    from alibabacloud_credentials.provider.cli_profile import CLIProfileCredentialsProvider
    from alibabacloud_credentials.provider.profile import ProfileCredentialsProvider

    reasons = []
    for provider in (CLIProfileCredentialsProvider(profile_name=name), ProfileCredentialsProvider(profile_name=name)):
        try:
            return Client(provider=provider).get_credential()
        except Exception as exc:  # the SDK raises several unrelated types for a missing file or profile
            reasons.append(shorten(str(exc), 160))
    raise CloudError(f"no credentials: profile {name!r} (cloud.profile) is in neither ~/.aliyun/config.json nor "
                     f"~/.alibabacloud/credentials.ini, or cannot be used: {'; '.join(reasons)}", code="NoCredentials")


def _lock_session_cache() -> None:
    """Serialise darabonba's cache of HTTP sessions, which many threads fill at once.

    darabonba keeps one requests Session per endpoint in a class-level dict and fills it on first use with a
    check-then-set and no lock. A run's first wave of questions comes from many threads at once: each would find
    the cache empty and build a session of its own (a TLS context with the trust store loaded, a connection pool),
    all but one of them thrown away with their connections. A lock around the lookup makes the first caller build
    it and the others use it. The method is private; a version of the SDK without it is left alone.
    """
    import threading

    from darabonba import core

    get_session = getattr(core.DaraCore, "_get_session", None)
    if not callable(get_session) or getattr(get_session, "preflight_locked", False):
        return
    lock = threading.Lock()

    def locked(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return get_session(*args, **kwargs)

    locked.preflight_locked = True  # type: ignore[attr-defined]
    core.DaraCore._get_session = staticmethod(locked)


@functools.cache
def _client_class(product: str) -> type:
    """The product's generated client, checking every answer before its typed response is built from it.

    A body that is not a JSON object, or one that says `Success: false` over HTTP 200, raises CloudError; the
    typed models would drop those fields. Checked where the SDK hands the generated client the raw answer.
    """
    base: type = _sdk(product).Client

    class CheckedClient(base):  # type: ignore[misc]
        def call_api(self, params: Any, request: Any, runtime: Any) -> Any:
            answer = super().call_api(params, request, runtime)
            check_answer(product, str(params.action), answer.get("body") if isinstance(answer, dict) else None)
            return answer

    return CheckedClient


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


def set_trace(write: Callable[[str], None] | None) -> None:
    """Hand every cloud call's action, request fields and answer (redacted) to `write`, or stop (`-v`)."""
    global _TRACE
    _TRACE = write


def _trace(where: str, request: Any, answer: dict[str, Any] | CloudError) -> None:
    """One line per call for `-v`: the raw answers a user with a real account checks the assumptions against."""
    write = _TRACE
    if write is None:
        return
    import json

    from preflight.engine.redact import REDACTOR

    def short(value: Any) -> Any:  # a task's script would fill the screen; its start says what it is
        if isinstance(value, str) and len(value) > TRACE_VALUE_CHARS:
            return f"{value[:TRACE_VALUE_CHARS]}... ({len(value)} characters)"
        if isinstance(value, dict):
            return {key: short(item) for key, item in value.items()}
        if isinstance(value, list):
            return [short(item) for item in value]
        return value

    # Redacted before shortening: a secret cut in half would no longer be recognised.
    fields = short(REDACTOR.value(request.to_map())) if request is not None and hasattr(request, "to_map") else {}
    if isinstance(answer, CloudError):
        said: Any = {"error": answer.code, "message": str(answer), "http_status": answer.status_code,
                     "request_id": answer.request_id}
    else:
        said = short(REDACTOR.value(answer))
    text = f"cloud {where} {json.dumps(fields, default=str)} -> {json.dumps(said, default=str)}"
    write(REDACTOR.text(text))


def _build_client(cloud: CloudConfig, product: str, region: str, credential: Any) -> Any:
    from alibabacloud_tea_openapi.utils_models import Config as SdkConfig

    _lock_session_cache()
    # cloud.endpoints names a region's endpoints; `{region}` lets one config name them all, e.g.
    # dataworks-vpc.{region}.aliyuncs.com. Without an override the generated client picks the region's endpoint
    # from its own map.
    endpoint = cloud.endpoint_for(region, product)
    return _client_class(product)(SdkConfig(
        access_key_id=credential.access_key_id, access_key_secret=credential.access_key_secret,
        security_token=credential.security_token or None, region_id=region, endpoint=endpoint,
        protocol=cloud.protocol, connect_timeout=cloud.connect_timeout_ms, read_timeout=cloud.read_timeout_ms))


def translate(exc: BaseException, action: str) -> CloudError:
    """Any SDK exception as a CloudError that says what happened to which call."""
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


def open_session(config: Config) -> CloudSession:
    """The open session for these cloud settings, else a new one: `--from resource-group` and the checks of a run
    share its credentials, clients and threads."""
    for opened in _OPEN:
        if opened.cloud == config.cloud:
            return opened
    created = CloudSession(config.cloud)
    _OPEN.append(created)
    return created


def close_sessions() -> None:
    """Close every session still open (the end of a command)."""
    while _OPEN:
        _OPEN[-1].close()


async def session(context: CheckContext) -> CloudSession:
    async def factory() -> CloudSession:
        return open_session(context.config)

    async def closer(cloud: CloudSession) -> None:
        cloud.close()

    return await context.resources.get("cloud-session", factory, closer)


async def call(context: CheckContext, product: str, action: str, **fields: Any) -> dict[str, Any]:
    """Ask a question once per run (targets asking the same share the answer). `fields` are the request model's
    (`id=42` for GetProjectRequest(id=42)); its types are the model's (ProjectId is an int)."""
    cloud = await session(context)
    region = context.config.region_of(context.target)
    key = ("cloud", product, region, action, tuple(sorted((name, repr(value)) for name, value in fields.items())))

    async def ask() -> dict[str, Any]:
        context.resources.count(f"{product}:{action}")
        return await cloud.call(product, action, fields, region, deadline=context.deadline)

    return await context.resources.shared(key, ask)


__all__ = ["ACTIONS", "MANAGED_POLICIES", "NOT_A_WORKSPACE_ID", "PRODUCTS", "RUN_IMPORTS", "CloudSession", "Identity",
           "Product", "call", "check_answer", "close_sessions", "describe_provider", "extra_installed",
           "is_credential_error", "managed_policy", "open_session", "project_id", "sdk_models", "session",
           "set_trace", "start_import", "translate"]
