"""The run's cloud session: credentials, one generated client per product and region, and the threads that call
them, paced per action (preflight.cloud.pacing); `call` shares each answer within a run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from preflight.cloud.actions import ACTIONS, PRODUCTS, Product
from preflight.cloud.failures import MANAGED_POLICIES, check_answer, is_credential_error, managed_policy, translate
from preflight.cloud.imports import RUN_IMPORTS, extra_installed, imported, models, sdk, sdk_models, start_import
from preflight.cloud.trace import set_trace, trace
from preflight.engine.text import shorten
from preflight.errors import SDK_UNUSABLE, CloudError

if TYPE_CHECKING:
    from preflight.cloud.credentials import Identity
    from preflight.config import CloudConfig, Config
    from preflight.config.context import CheckContext

NOT_A_WORKSPACE_ID = "NotAWorkspaceId"  # the code of a question not asked: the config's workspace is no number
# Cloud calls a run keeps in flight at once (the session's threads), and connections kept per endpoint.
MAX_CALLS_IN_FLIGHT = 128

_OPEN: list[CloudSession] = []  # sessions not closed yet; a run's follower and its checks share one


class CloudSession:
    """The run's credentials, one generated client per product and region, and the threads that call them."""

    def __init__(self, cloud: CloudConfig) -> None:
        import threading
        from concurrent.futures import ThreadPoolExecutor  # by name: see preflight/engine/redact.py

        self.cloud = cloud
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        self._credentials: tuple[Any, Identity] | None = None
        self._pool = ThreadPoolExecutor(MAX_CALLS_IN_FLIGHT, thread_name_prefix="preflight-cloud")
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
        await self._ready(product)

        async def send() -> dict[str, Any]:
            # The wait for a token happened in asyncio: a thread of the pool is taken only to send.
            return await loop.run_in_executor(self._pool, self._invoke, product, action, request, region)

        return await self.pacer.call(product, action, region, send, deadline=deadline)

    async def _ready(self, product: str) -> None:
        """Wait, holding no token and no thread, for what a first call would otherwise wait for on its thread: the
        product's SDK import and the credentials. A token taken before them would be spent on a call that leaves
        only when they are done, at once with every call paced meanwhile, and the gateway would throttle the pile.
        A failure is left to the call, which reports it as its own."""
        await imported(product)
        if self._credentials is None:
            try:
                await self.identity()
            except Exception:  # the call meets it again and reports it as the failure of its action
                return

    async def identity(self) -> Identity:
        """Where the credentials came from; raises the CloudError of a chain that yielded none."""
        import asyncio

        return (await asyncio.get_running_loop().run_in_executor(self._pool, self.resolve))[1]

    def resolve(self) -> tuple[Any, Identity]:
        """The SDK credential and where it came from, resolved once."""
        with self._lock:
            if self._credentials is None:
                try:
                    sdk("credentials")
                except ImportError as exc:
                    raise CloudError(f"the credentials SDK cannot be imported: {exc}", code=SDK_UNUSABLE) from None
                from preflight.cloud.credentials import resolve_credentials  # here: `preflight list` needs none

                self._credentials = resolve_credentials(self.cloud)
            return self._credentials

    def client(self, product: str, region: str) -> Any:
        credential, _ = self.resolve()
        with self._lock:
            key = (product, region)
            if key not in self._clients:
                from preflight.cloud.clients import build_client

                self._clients[key] = build_client(self.cloud, product, region, credential)
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
            sdk(product)
            if isinstance(request, Mapping):
                model = getattr(models(product), f"{action}Request", None)
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
            trace(where, request, exc)
            raise
        except Exception as exc:
            error = translate(exc, where)
            trace(where, request, error)
            raise error from None
        if response.body is None:  # the SDK could not build its model from the answer
            raise CloudError(f"{action} answered a body that does not fit the SDK's model of it",
                             code="InvalidResponse", action=where)
        answer = dict(response.body.to_map())
        trace(where, request, answer)
        return answer


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


def project_id(workspace: str, action: str) -> int:
    """A workspace id as the API's ProjectId, an int; CloudError NOT_A_WORKSPACE_ID (nothing sent) when it is not
    a number."""
    if not workspace.isdigit():
        raise CloudError(f"workspace {workspace!r} is not a DataWorks workspace id, which is a number: not asked",
                         code=NOT_A_WORKSPACE_ID, action=action)
    return int(workspace)


# Re-exported from the modules that now hold them, for the callers that import them from here.
__all__ = ["ACTIONS", "MANAGED_POLICIES", "NOT_A_WORKSPACE_ID", "PRODUCTS", "RUN_IMPORTS", "CloudSession", "Product",
           "call", "check_answer", "close_sessions", "extra_installed", "is_credential_error", "managed_policy",
           "open_session", "project_id", "sdk_models", "session", "set_trace", "start_import", "translate"]
