"""Calls to the Alibaba Cloud OpenAPIs through the official SDK's generic client, shared and translated."""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Mapping
from dataclasses import dataclass

from preflight.errors import CloudError
from preflight.text import shorten

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (README, Start-up)
if TYPE_CHECKING:
    import threading
    from typing import Any

    from preflight.cloud_worker import CloudWorker
    from preflight.config import CloudConfig, Config
    from preflight.context import Context


@dataclass(frozen=True, slots=True)
class Product:
    """One OpenAPI product: its version, default endpoint pattern and SDK package (for the optional extra)."""

    name: str
    version: str
    endpoint: str
    package: str | None = None


PRODUCTS = {
    "dataworks": Product("dataworks", "2024-05-18", "dataworks.{region}.aliyuncs.com"),
    "pvtz": Product("pvtz", "2018-01-01", "pvtz.aliyuncs.com", "alibabacloud_pvtz20180101"),
    "privatelink": Product("privatelink", "2020-04-15", "privatelink.{region}.aliyuncs.com",
                           "alibabacloud_privatelink20200415"),
    "vpc": Product("vpc", "2016-04-28", "vpc.{region}.aliyuncs.com", "alibabacloud_vpc20160428"),
}
CREDENTIAL_CODES = ("InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidTimeStamp", "InvalidSecurityToken",
                    "NoCredentials", "IncompleteSignature", "MissingAuthorization")
MANAGED_POLICIES = {"dataworks": "AliyunDataWorksReadOnlyAccess (AliyunDataWorksFullAccess for "
                                 "ExecuteAdhocWorkflowInstance)",
                    "pvtz": "AliyunPvtzReadOnlyAccess", "privatelink": "AliyunPrivateLinkReadOnlyAccess",
                    "vpc": "AliyunVPCReadOnlyAccess"}
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
MAX_RETRY_AFTER_S = 2.0
# Cloud calls a run keeps in flight at once (the SDK worker's threads), and connections kept per endpoint.
MAX_CALLS_IN_FLIGHT = 128
_imported = False  # import_sdk has finished
_SPAWNED: list[CloudWorker] = []


def _lock() -> threading.Lock:
    import threading

    return threading.Lock()


def import_sdk() -> None:
    """Import the SDK's generic client and credential chain: what every call needs, and most of its cost."""
    import alibabacloud_credentials.client  # noqa: F401
    import alibabacloud_tea_openapi.client  # noqa: F401

    global _imported
    _imported = True


def prefetch() -> None:
    """Start importing the SDK in the background, so the import overlaps network work instead of preceding it."""
    import threading  # here: `preflight list` imports this module (through the check specs) and needs no threads

    if not _imported:
        threading.Thread(target=import_sdk, name="preflight-sdk-import", daemon=True).start()


def start_worker() -> None:
    """Start the SDK worker process before the config is read (or adopt the one the command line started first):
    it imports the SDK meanwhile, on another core."""
    from preflight import cloud_worker, workerproc

    if not _SPAWNED and workerproc.enabled():
        with contextlib.suppress(OSError):  # then the SDK is imported here, in a thread, when a run needs it
            _SPAWNED.append(cloud_worker.CloudWorker(process=workerproc.take()))


def spawn_worker(cloud: CloudConfig) -> None:
    """Make sure a worker for these cloud settings is starting; the run's `session()` will take it.

    Unless PREFLIGHT_CLOUD_WORKER=0, or the worker cannot be started: then the SDK is imported in a thread of this
    process, as early as possible.
    """
    if _SPAWNED and _SPAWNED[-1].cloud not in (None, cloud):
        close_spawned()  # configured for other cloud settings: a worker's settings are fixed
    start_worker()
    if _SPAWNED and _SPAWNED[-1].cloud is None:
        _SPAWNED[-1].configure(cloud)
    if not _SPAWNED:
        prefetch()


def _claim_worker(cloud: CloudConfig) -> CloudWorker | None:
    while _SPAWNED:
        worker = _SPAWNED.pop()
        if worker.cloud == cloud:
            return worker
        worker.close()
    return None


def close_spawned() -> None:
    """Stop a worker that no session took (a run that ended early, or a config that needs no cloud)."""
    while _SPAWNED:
        _SPAWNED.pop().close()


@functools.cache
def extra_installed(product: str) -> bool:
    """Whether the optional SDK package of a network product is installed (`preflight[network]`).

    Asked once per product and process: every network check asks, and each search of sys.path costs more than
    the check's own judgement (a few per cent of a 100-service run's CPU before).
    """
    package = PRODUCTS[product].package
    if package is None:
        return True
    import importlib.util

    try:
        return importlib.util.find_spec(package) is not None
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


class CloudSession:
    """The run's credentials and one SDK client per product, built once.

    With a `worker`, the SDK lives in that process (preflight.cloud_worker) and this object only forwards calls.
    """

    def __init__(self, config: Config, worker: CloudWorker | None = None) -> None:
        self.config = config
        self.worker = worker
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = _lock()
        self._credentials: tuple[Any, Identity] | None = None

    def identity(self) -> Identity:
        if self.worker is not None:
            return self.worker.identity(timeout=self.config.cloud.read_timeout_ms / 1000 + 60)
        return self.resolve()[1]

    def resolve(self) -> tuple[Any, Identity]:
        """The SDK credential and where it came from, resolved once (in this process)."""
        with self._lock:
            if self._credentials is None:
                self._credentials = _resolve_credentials(self.config.cloud)
            return self._credentials

    def close(self, *, wait: bool = True) -> None:
        if self.worker is not None:
            self.worker.close(wait=wait)

    async def acall(self, product: str, action: str, params: Mapping[str, Any], region: str, method: str = "GET"
                    ) -> dict[str, Any]:
        """`call` without holding a thread of the event loop's executor while a worker answers."""
        if self.worker is not None:
            return await self.worker.acall(product, action, params, region, method)
        import asyncio

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, lambda: self.call(product, action, params, region, method))

    def client(self, product: str, region: str) -> Any:
        credential, _ = self.resolve()
        with self._lock:
            key = (product, region)
            if key not in self._clients:
                self._clients[key] = _build_client(self.config.cloud, PRODUCTS[product], region, credential)
            return self._clients[key]

    def call(self, product: str, action: str, params: Mapping[str, Any], region: str, method: str = "GET"
             ) -> dict[str, Any]:
        """One blocking call, with one retry after throttling; errors become CloudError."""
        if self.worker is not None:
            return self.worker.call(product, action, params, region, method)
        from alibabacloud_tea_openapi.utils_models import OpenApiRequest, Params
        from darabonba.runtime import RuntimeOptions

        info = PRODUCTS[product]
        cloud = self.config.cloud
        values = {key: str(value) for key, value in params.items() if value is not None}
        request = OpenApiRequest(query=values) if method == "GET" else OpenApiRequest(body=values)
        api = Params(action=action, version=info.version, protocol=cloud.protocol.upper(), pathname="/",
                     method=method, auth_type="AK", style="RPC", req_body_type="formData", body_type="json")
        runtime = RuntimeOptions(connect_timeout=cloud.connect_timeout_ms, read_timeout=cloud.read_timeout_ms,
                                 autoretry=False, max_attempts=0,
                                 max_idle_conns=MAX_CALLS_IN_FLIGHT)
        for attempt in (1, 2):
            try:
                client = self.client(product, region)
                answer = client.call_api(api, request, runtime)
            except CloudError as exc:
                exc.action = exc.action or f"{product}:{action}"
                raise
            except Exception as exc:
                error = translate(exc, f"{product}:{action}")
                retry_after = getattr(exc, "retry_after", None)
                if attempt == 1 and error.code.startswith("Throttling"):
                    time.sleep(min(MAX_RETRY_AFTER_S, max(0.05, (retry_after or 200) / 1000)))
                    continue
                raise error from None
            body = answer.get("body") if isinstance(answer, dict) else None
            if not isinstance(body, dict):
                raise CloudError(f"{action} answered a body that is not a JSON object", code="InvalidResponse",
                                 action=f"{product}:{action}")
            if body.get("Success") is False:
                raise CloudError(f"{action} answered HTTP 200 with Success: false ({body.get('Code')}: "
                                 f"{body.get('Message')})", code=str(body.get("Code") or "SuccessFalse"),
                                 status_code=200, request_id=str(body.get("RequestId") or ""),
                                 action=f"{product}:{action}")
            return body
        raise AssertionError("unreachable")


def _resolve_credentials(cloud: CloudConfig) -> tuple[Any, Identity]:
    import importlib

    from alibabacloud_credentials.client import Client
    from alibabacloud_credentials.utils import auth_util

    from preflight.redact import mask_access_key_id, register_secrets

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


def _tune_sdk_sessions() -> None:
    """Make the SDK build one HTTP session per endpoint, and load a trust store only for https, and only once.

    darabonba keeps one requests session per endpoint in a class-level dict and fills it on first use without a
    lock. A run asks a hundred questions at once, so a hundred threads each built a session. A lock around the
    lookup makes the first caller build it and the others find it.

    Each session's adapter also got a TLS context of its own, loaded with the system trust store (about 50 ms of
    CPU) and, for https, certifi's too (as much again): for an http endpoint, whose connections never use it,
    and once per endpoint where the contexts are alike. A run asks four endpoints (DataWorks, VPC, PrivateZone,
    PrivateLink). Now an http endpoint gets requests' plain adapter, and every https endpoint with the same TLS
    settings shares the SDK's own adapter (connection pools are per host inside it).

    Both are then wrapped in preflight.sdk_transport.SdkAdapter, which carries the calls over kept connections at
    half the CPU of urllib3 and hands anything unusual (a proxy, a client certificate) to the adapter it wraps.

    Both methods are private; if a version of the SDK lacks one, it is left alone and only speed is lost.
    """
    try:
        import ssl

        from darabonba import core
        from requests.adapters import HTTPAdapter

        from preflight.sdk_transport import SdkAdapter
    except ImportError:
        return
    get_session = getattr(core.DaraCore, "_get_session", None)
    if callable(get_session) and not getattr(get_session, "preflight_tuned", False):
        session_lock = _lock()

        def locked(*args: Any, **kwargs: Any) -> Any:
            with session_lock:
                return get_session(*args, **kwargs)

        locked.preflight_tuned = True  # type: ignore[attr-defined]
        core.DaraCore._get_session = staticmethod(locked)
    get_adapter = getattr(core.DaraCore, "get_adapter", None)
    default_size = getattr(core, "DEFAULT_POOL_SIZE", None)
    default_maxsize = getattr(core, "DEFAULT_POOL_MAXSIZE", None)
    if (callable(get_adapter) and not getattr(get_adapter, "preflight_tuned", False)
            and isinstance(default_size, int) and isinstance(default_maxsize, int)):
        adapter_lock = _lock()
        adapters: dict[tuple[str, str | None, int | None], Any] = {}

        def shared(prefix: str, tls_min_version: str | None = None, pool_size: int | None = None) -> Any:
            key = (str(prefix).upper(), tls_min_version, pool_size)
            with adapter_lock:
                adapter = adapters.get(key)
                if adapter is None:
                    maxsize = pool_size if pool_size is not None and pool_size > 0 else default_maxsize
                    if key[0] == "HTTPS":
                        standard = get_adapter(prefix, tls_min_version, pool_size=pool_size)
                    else:
                        standard = HTTPAdapter(pool_connections=default_size, pool_maxsize=maxsize)
                    context = getattr(standard, "ssl_context", None)
                    adapter = SdkAdapter(standard, ssl_context=context if isinstance(context, ssl.SSLContext)
                                         else None, pool_size=maxsize)
                    adapters[key] = adapter
                return adapter

        shared.preflight_tuned = True  # type: ignore[attr-defined]
        core.DaraCore.get_adapter = staticmethod(shared)


def _build_client(cloud: CloudConfig, product: Product, region: str, credential: Any) -> Any:
    from alibabacloud_tea_openapi.client import Client
    from alibabacloud_tea_openapi.utils_models import Config as SdkConfig

    _tune_sdk_sessions()

    override = cloud.network_endpoints.get(product.name) if product.name != "dataworks" else cloud.endpoint
    # `{region}` lets one config name a per-region endpoint, e.g. dataworks-vpc.{region}.aliyuncs.com.
    endpoint = (override or product.endpoint).replace("{region}", region)
    return Client(SdkConfig(access_key_id=credential.access_key_id, access_key_secret=credential.access_key_secret,
                            security_token=credential.security_token or None, region_id=region, endpoint=endpoint,
                            protocol=cloud.protocol, connect_timeout=cloud.connect_timeout_ms,
                            read_timeout=cloud.read_timeout_ms))


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
    return CloudError(shorten(message, 400), code=code, status_code=getattr(exc, "status_code", None),
                      request_id=str(getattr(exc, "request_id", "") or ""), action=action,
                      auth_action=str(detail.get("AuthAction", "") if isinstance(detail, dict) else ""))


async def session(context: Context) -> CloudSession:
    async def factory() -> CloudSession:
        worker = _claim_worker(context.config.cloud)
        if worker is None:
            prefetch()
        return CloudSession(context.config, worker)

    async def closer(cloud: CloudSession) -> None:
        cloud.close(wait=False)  # the worker dies while the reports are written; the command line reaps it

    return await context.resources.get("cloud-session", factory, closer)


async def call(context: Context, product: str, action: str, method: str = "GET", **params: Any) -> dict[str, Any]:
    """Ask a question once per run (targets asking the same share the answer), off the event loop."""
    cloud = await session(context)
    region = context.region
    key = ("cloud", product, region, action, tuple(sorted((k, str(v)) for k, v in params.items())))

    async def ask() -> dict[str, Any]:
        context.resources.count(f"{product}:{action}")
        return await cloud.acall(product, action, params, region, method)

    return await context.resources.shared(key, ask)


__all__ = ["MANAGED_POLICIES", "PRODUCTS", "CloudSession", "Identity", "call", "close_spawned", "describe_provider",
           "extra_installed", "import_sdk", "is_credential_error", "managed_policy", "prefetch", "session",
           "spawn_worker", "start_worker", "translate"]
