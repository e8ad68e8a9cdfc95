"""What the cloud API's action handlers share: the OpenAPI error answer, the state they read, and paging."""

from __future__ import annotations

from typing import Any

from preflight.simulator.scenarios import World


class ApiError(Exception):
    """An error answer in the OpenAPI shape."""

    def __init__(self, status: int, code: str, message: str, *, denied: dict[str, str] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.denied = denied
        self.headers = headers or {}


class WorldActions:
    """The state each product's handlers answer from: one region's World and the scenario's faults."""

    world: World
    faults: frozenset[str]


def paginate(items: list[Any], params: dict[str, str], default_size: int = 10) -> tuple[list[Any], int, int]:
    """One page of `items` as PageNumber and PageSize ask for it, with the number and size it was."""
    try:
        number = max(1, int(params.get("PageNumber") or 1))
        size = max(1, min(100, int(params.get("PageSize") or default_size)))
    except ValueError:
        raise ApiError(400, "InvalidParameter", "PageNumber and PageSize must be integers.") from None
    return items[(number - 1) * size: number * size], number, size


__all__ = ["ApiError", "WorldActions", "paginate"]
