"""What the engine needs of a run plan (named targets with named services, a path, a token budget), as protocols:
the engine runs any plan of this shape and knows nothing of the config that provides one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar


class Named(Protocol):
    """A subject of checks (a service): the engine reads only its name."""

    @property
    def name(self) -> str: ...


class Target(Protocol):
    """A target: its name, and the services its service-scoped checks run for."""

    @property
    def name(self) -> str: ...

    @property
    def services(self) -> Sequence[Named]: ...


TargetT_co = TypeVar("TargetT_co", bound=Target, covariant=True)


class Plan(Protocol[TargetT_co]):
    """The targets of a run, where the plan came from (for the report) and its token budget (None: unlimited)."""

    @property
    def targets(self) -> Sequence[TargetT_co]: ...

    @property
    def path(self) -> str | None: ...

    @property
    def max_tokens_budget(self) -> int | None: ...


__all__ = ["Named", "Plan", "Target"]
