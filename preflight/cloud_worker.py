"""The cloud SDK in a process of its own, so its import and its calls use another core than the checks.

Importing the official SDK (the generic OpenAPI client, the credential chain, Tea, aiohttp, requests) costs a
third of a second or more of CPU, and every signed call about a millisecond more. In one process that CPU competes
for the interpreter lock with everything else the run does, so the control-plane chain could only start once the
import was done and every data-plane check had waited for it. A `preflight run` that will probably need the cloud
therefore starts this worker before it even imports its command line (preflight.workerproc), and sends it the
cloud settings once the config is read: the worker imports the SDK and resolves the credential chain while the main
process reads the config, imports its own modules and starts the data-plane checks.

The protocol is JSON lines over the worker's stdin and stdout:

    main -> worker   {"cloud": {...CloudConfig...}}                          first line, once
    worker -> main   {"identity": {"provider", "access_key_id"}, "secrets": [...]}   or {"error": {...}}
    main -> worker   {"id": 7, "product": "dataworks", "action": "GetProject", "params": {...},
                      "region": "cn-beijing", "method": "GET"}
    worker -> main   {"id": 7, "body": {...}}   or   {"id": 7, "error": {"message", "code", ...}}

Calls are answered as they finish, not in order. `secrets` carries the resolved AccessKey secret and STS token so
the main process masks them in everything it writes (a profile's secret is not in the environment). The worker
exits when its stdin closes. Errors cross the boundary as the fields of a `CloudError`; a worker that dies turns
every pending and later call into a `CloudError` with code `WorkerExited` and the end of its stderr, masked.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import subprocess
import sys
import threading
import types
from collections.abc import Mapping
from dataclasses import asdict
from typing import IO, TYPE_CHECKING, Any

from preflight import workerproc
from preflight.errors import WORKER_ERROR, WORKER_EXITED, CloudError
from preflight.text import shorten

if TYPE_CHECKING:
    from preflight.cloud import Identity
    from preflight.config import CloudConfig

STDERR_TAIL = 2000


def _error_fields(error: CloudError) -> dict[str, Any]:
    return {"message": str(error), "code": error.code, "status_code": error.status_code,
            "request_id": error.request_id, "action": error.action, "auth_action": error.auth_action}


def _error_from(fields: Mapping[str, Any]) -> CloudError:
    status = fields.get("status_code")
    return CloudError(str(fields.get("message", "")), code=str(fields.get("code", "")),
                      status_code=status if isinstance(status, int) else None,
                      request_id=str(fields.get("request_id") or ""), action=str(fields.get("action") or ""),
                      auth_action=str(fields.get("auth_action") or ""))


def _settle(future: concurrent.futures.Future[Any], outcome: Any) -> None:
    """Give a call its answer or CloudError, unless its asker gave up (a check's timeout, the end of a run)."""
    with contextlib.suppress(concurrent.futures.InvalidStateError):
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


class CloudWorker:
    """The main process's end: starts the worker, sends it calls, and hands back answers or CloudErrors."""

    def __init__(self, *, argv: list[str] | None = None, process: subprocess.Popen[bytes] | None = None) -> None:
        """Start a worker (or `argv`, for tests), or adopt the `process` workerproc.launch_early started."""
        self.cloud: CloudConfig | None = None
        self._lock = threading.Lock()
        self._pending: dict[int, concurrent.futures.Future[dict[str, Any]]] = {}
        self._next_id = 0
        self._gone: CloudError | None = None
        self._stderr_tail = b""
        self._hello: concurrent.futures.Future[Identity] = concurrent.futures.Future()
        self._process = process or workerproc.launch(argv)
        assert self._process.stdin is not None and self._process.stdout is not None
        self._stdin: IO[bytes] = self._process.stdin
        self._stderr_reader = threading.Thread(target=self._drain_stderr, name="preflight-cloud-worker-stderr",
                                               daemon=True)
        self._stderr_reader.start()
        threading.Thread(target=self._read, args=(self._process.stdout,), name="preflight-cloud-worker",
                         daemon=True).start()

    def configure(self, cloud: CloudConfig) -> None:
        """Send the cloud settings; the worker was started before the config was read, and imports meanwhile."""
        if self.cloud is not None:
            raise ValueError("the cloud SDK worker is configured already")
        self.cloud = cloud
        self._send({"cloud": asdict(cloud)})

    @property
    def pid(self) -> int:
        return self._process.pid

    def _send(self, message: Mapping[str, Any]) -> None:
        """Write one line. Never raises: if the worker is gone, its reader fails every waiting call with why."""
        line = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        with self._lock:
            if self._gone is not None:
                return
            with contextlib.suppress(OSError, ValueError):
                self._stdin.write(line)
                self._stdin.flush()

    def submit(self, product: str, action: str, params: Mapping[str, Any], region: str, method: str
               ) -> concurrent.futures.Future[dict[str, Any]]:
        future: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()
        with self._lock:
            if self._gone is not None:
                future.set_exception(self._gone)
                return future
            self._next_id += 1
            call_id = self._next_id
            self._pending[call_id] = future
        self._send({"id": call_id, "product": product, "action": action,
                    "params": {key: str(value) for key, value in params.items() if value is not None},
                    "region": region, "method": method})
        return future

    def call(self, product: str, action: str, params: Mapping[str, Any], region: str, method: str = "GET"
             ) -> dict[str, Any]:
        return self.submit(product, action, params, region, method).result()

    async def acall(self, product: str, action: str, params: Mapping[str, Any], region: str, method: str = "GET"
                    ) -> dict[str, Any]:
        import asyncio

        return await asyncio.wrap_future(self.submit(product, action, params, region, method))

    def identity(self, timeout: float | None = None) -> Identity:
        """Where the worker's credentials came from; raises the CloudError of a chain that yielded none."""
        try:
            return self._hello.result(timeout)
        except concurrent.futures.TimeoutError:
            raise CloudError("the cloud SDK worker did not resolve credentials in time", code="Timeout") from None

    def _read(self, stdout: IO[bytes]) -> None:
        from preflight.cloud import Identity
        from preflight.redact import register_secrets

        for raw in stdout:
            try:
                message = json.loads(raw)
                if not isinstance(message, dict):
                    continue
                if "id" not in message:
                    if "identity" in message:
                        register_secrets((str(secret), "cloud credential") for secret in message.get("secrets") or ())
                        found = message["identity"]
                        _settle(self._hello, Identity(str(found.get("provider", "")),
                                                      str(found.get("access_key_id", ""))))
                    elif "error" in message:
                        _settle(self._hello, _error_from(message["error"]))
                    continue
                with self._lock:
                    future = self._pending.pop(message["id"], None)
                if future is None:
                    continue
                body = message.get("body")
                _settle(future, body if isinstance(body, dict) else _error_from(message.get("error") or {}))
            except (ValueError, TypeError, AttributeError, KeyError):
                continue  # not a line of the protocol; the reader must outlive it, or every call would hang
        self._fail_all()

    def _drain_stderr(self) -> None:
        stderr = self._process.stderr
        assert stderr is not None
        descriptor = stderr.fileno()
        for chunk in iter(lambda: os.read(descriptor, 4096), b""):
            self._stderr_tail = (self._stderr_tail + chunk)[-STDERR_TAIL:]

    def _fail_all(self) -> None:
        """The worker's stdout ended: every call still waiting, and every later one, fails with why."""
        try:
            code = self._process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            code = None
        self._stderr_reader.join(timeout=1)  # its last words are often the reason
        from preflight.redact import redact

        tail = redact(self._stderr_tail.decode("utf-8", "replace").strip()[-400:])
        error = CloudError(f"the cloud SDK worker process ended unexpectedly (exit code {code})"
                           + (f": {tail}" if tail else ""), code=WORKER_EXITED)
        with self._lock:
            self._gone = self._gone or error
            pending = list(self._pending.values())
            self._pending.clear()
        for future in pending:
            _settle(future, error)
        _settle(self._hello, error)

    def close(self, *, wait: bool = True) -> None:
        """End the worker at once. It keeps no state worth saving, and calls still running answer nobody.

        With `wait=False` the process is left to die (the kernel takes 10 to 15 ms to tear down its threads and
        memory) while the caller goes on, for `reap()` to collect later: a run writes its reports meanwhile.
        """
        with self._lock:
            self._gone = self._gone or CloudError("the cloud SDK worker was closed", code=WORKER_EXITED)
            with contextlib.suppress(OSError):
                self._stdin.close()
        if self._process.poll() is None:
            self._process.kill()
        if wait:
            self._process.wait()
        else:
            _DYING.append(self._process)


_DYING: list[subprocess.Popen[bytes]] = []  # workers killed and not waited for yet (close(wait=False))


def reap() -> None:
    """Wait for the workers `close(wait=False)` killed."""
    while _DYING:
        _DYING.pop().wait()


class _DeferredModule(types.ModuleType):
    """Stands in for a module until something really uses it, then hands every lookup to the real one.

    Tea and darabonba import aiohttp at the top for their async clients, and this process makes only synchronous
    calls (through requests). Importing aiohttp costs about a third of this process's start: asyncio, attrs, yarl,
    multidict, and two SSL contexts with the system trust store. At import time the SDK only names two classes, in
    type hints; the stand-in answers those two with placeholders. Any other attribute (an async call) imports the
    real module and is served by it. A submodule import fails, and `_import_sdk` then imports the SDK again
    without the stand-in: a later SDK that needs more of aiohttp at import gets a slower start, not a broken one.
    """

    def __init__(self, name: str, placeholders: Mapping[str, type]) -> None:
        super().__init__(name)
        self._placeholders = dict(placeholders)
        self._real: types.ModuleType | None = None

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__"):  # __path__ among them: `from aiohttp import X` must not look for submodules
            raise AttributeError(attribute)
        if self._real is None and attribute in self._placeholders:
            return self._placeholders[attribute]
        return getattr(self.load(), attribute)

    def load(self) -> types.ModuleType:
        if self._real is None:
            import importlib

            if sys.modules.get(self.__name__) is self:
                del sys.modules[self.__name__]
            self._real = importlib.import_module(self.__name__)
        return self._real


class _TypeHintOnly:
    """What the SDK's type hints name while aiohttp is deferred; never instantiated by a synchronous call."""


_SCHEDULER_MODULE = "apscheduler.schedulers.background"


class _SchedulerOnDemand:
    """apscheduler's BackgroundScheduler, imported when the credential chain first makes one.

    The ECS RAM role provider imports the class at the top (30 ms: apscheduler, tzlocal, its executors) and
    makes one only when it is constructed to refresh credentials in the background, on an ECS instance or in
    a resource group. Making one here imports the real module and returns the real scheduler.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        module = sys.modules.get(_SCHEDULER_MODULE)
        if isinstance(module, _DeferredModule):
            real = module.load()
        else:
            import importlib

            real = importlib.import_module(_SCHEDULER_MODULE)
        return real.BackgroundScheduler(*args, **kwargs)


# What the SDK imports at the top and this process rarely or never uses, and what the SDK takes from each then.
_DEFERRED: dict[str, dict[str, type]] = {
    "aiohttp": {"ClientResponse": _TypeHintOnly, "ClientSession": _TypeHintOnly},
    _SCHEDULER_MODULE: {"BackgroundScheduler": _SchedulerOnDemand},
}


def _import_sdk() -> None:
    """Import the SDK's generic client and credential chain, with aiohttp and apscheduler deferred.

    See _DeferredModule. A module that something imported before is left alone.
    """
    import gc

    from preflight.cloud import import_sdk

    deferred = [name for name in _DEFERRED if name.split(".")[0] not in sys.modules]
    for name in deferred:
        sys.modules[name] = _DeferredModule(name, _DEFERRED[name])
    gc.disable()  # the import allocates tens of thousands of long-lived objects: collecting them is wasted time
    try:
        import_sdk()
    except ImportError:
        if not deferred:
            raise
        # This SDK needs more of a deferred module while importing than its stand-in offers: import everything
        # as it is.
        for name in [name for name in sys.modules if name.split(".")[0] in _SDK_PACKAGES]:
            del sys.modules[name]
        import_sdk()
    finally:
        gc.enable()
    gc.freeze()


_SDK_PACKAGES = frozenset({"aiohttp", "apscheduler", "Tea", "darabonba", "alibabacloud_credentials",
                           "alibabacloud_tea_openapi", "alibabacloud_tea_util", "alibabacloud_openapi_util",
                           "alibabacloud_gateway_spi"})


def main() -> int:
    """The worker process: import the SDK, resolve credentials, then answer calls until stdin closes."""
    # The protocol owns the original stdout; anything a library prints goes to stderr instead.
    channel = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    write_lock = threading.Lock()

    def send(message: Mapping[str, Any]) -> None:
        line = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        with write_lock:
            channel.write(line)

    _import_sdk()
    from preflight.cloud import MAX_CALLS_IN_FLIGHT, CloudSession
    from preflight.config import CloudConfig, Config

    first = sys.stdin.buffer.readline()
    if not first:
        return 0
    fields = dict(json.loads(first)["cloud"])
    fields["network_endpoints"] = dict(fields.get("network_endpoints") or {})
    session = CloudSession(Config(region="", targets=(), cloud=CloudConfig(**fields)))
    try:
        credential, identity = session.resolve()
    except CloudError as error:
        send({"error": _error_fields(error)})
    else:
        secrets = [value for value in (credential.access_key_secret, credential.security_token) if value]
        send({"identity": {"provider": identity.provider, "access_key_id": identity.access_key_id},
              "secrets": secrets})

    def answer(request: Mapping[str, Any]) -> None:
        try:
            body = session.call(str(request["product"]), str(request["action"]), request.get("params") or {},
                                str(request["region"]), str(request.get("method") or "GET"))
        except CloudError as error:
            send({"id": request["id"], "error": _error_fields(error)})
        except Exception as exc:  # a bug here must still answer, or the caller would wait until its timeout
            send({"id": request["id"], "error": {"message": f"{type(exc).__name__}: {shorten(str(exc), 300)}",
                                                 "code": WORKER_ERROR, "action": str(request.get("action"))}})
        else:
            send({"id": request["id"], "body": body})

    pool = concurrent.futures.ThreadPoolExecutor(MAX_CALLS_IN_FLIGHT, thread_name_prefix="preflight-cloud")
    for raw in sys.stdin.buffer:
        try:
            request = json.loads(raw)
        except ValueError:
            continue
        if isinstance(request, dict) and "id" in request:
            pool.submit(answer, request)
    # The main process is done: calls still running answer nobody, and interpreter teardown would only add time.
    channel.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
