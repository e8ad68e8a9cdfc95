"""The generated SDK clients, imported once per process on a background thread and awaited by the first call.

A run starts the import before it reads its config, so parsing and the data plane go on while the SDK loads.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from preflight.cloud.actions import PRODUCTS
from preflight.errors import SDK_UNUSABLE, CloudError

if TYPE_CHECKING:
    import concurrent.futures
    from types import ModuleType

# What a full run imports, in the order it needs them: the credential chain and DataWorks sign the first call.
RUN_IMPORTS = ("credentials", "dataworks", "pvtz", "privatelink")

# The import of each part (RUN_IMPORTS' names, or any product), started once per process.
_IMPORTS: dict[str, concurrent.futures.Future[ModuleType]] = {}


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


def started() -> bool:
    """Whether this process has begun importing any part."""
    return bool(_IMPORTS)


def sdk(part: str) -> ModuleType:
    """The generated client module of a product (or the credentials client), waiting for its import."""
    start_import((part,))
    return _IMPORTS[part].result()


def models(product: str) -> ModuleType:
    """A product's generated request and response models (imported with its client)."""
    import importlib

    return importlib.import_module(f"{PRODUCTS[product].package}.models")


async def imported(part: str) -> None:
    """Wait, not blocking the loop, until the part's import has ended, well or not (`sdk` says which)."""
    import asyncio

    start_import((part,))
    await asyncio.wait([asyncio.wrap_future(_IMPORTS[part])])


async def sdk_models(product: str) -> ModuleType:
    """A product's generated models, once their import has finished (awaited, not blocking the loop)."""
    import asyncio

    start_import((product,))
    try:
        await asyncio.wrap_future(_IMPORTS[product])
    except ImportError as exc:
        raise CloudError(f"the {product} SDK cannot be imported: {exc}", code=SDK_UNUSABLE) from None
    return models(product)


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


__all__ = ["RUN_IMPORTS", "extra_installed", "imported", "models", "sdk", "sdk_models", "start_import", "started"]
