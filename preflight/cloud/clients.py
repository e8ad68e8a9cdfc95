"""The generated client of a product for one region, built to check every answer before its typed model drops
fields, on an SDK whose shared HTTP session cache is made safe for many threads."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from preflight.cloud.failures import check_answer
from preflight.cloud.imports import sdk

if TYPE_CHECKING:
    from preflight.config import CloudConfig


def build_client(cloud: CloudConfig, product: str, region: str, credential: Any) -> Any:
    """A product's checked client for one region, signing with `credential`, at the config's endpoint if it names
    one."""
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


@functools.cache
def _client_class(product: str) -> type:
    """The product's generated client, checking every answer before its typed response is built from it.

    A body that is not a JSON object, or one that says `Success: false` over HTTP 200, raises CloudError; the
    typed models would drop those fields. Checked where the SDK hands the generated client the raw answer.
    """
    base: type = sdk(product).Client

    class CheckedClient(base):  # type: ignore[misc]
        def call_api(self, params: Any, request: Any, runtime: Any) -> Any:
            answer = super().call_api(params, request, runtime)
            check_answer(product, str(params.action), answer.get("body") if isinstance(answer, dict) else None)
            return answer

    return CheckedClient


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


__all__ = ["build_client"]
