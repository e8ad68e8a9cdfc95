"""Check specs and their discovery through the `preflight.checks` entry-point group."""

from __future__ import annotations

import dataclasses
import fnmatch
import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from preflight.engine.model import Outcome
from preflight.errors import RegistryError

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from preflight.engine.context import Context

ENTRY_POINT_GROUP = "preflight.checks"
PLANES = ("-", "control", "network", "data")
SCOPES = ("target", "service")

# Any: the engine runs a check over whatever plan it is given; a pack types its context for its own plan.
CheckFunction = Callable[["Context[Any, Any, Any]"], Awaitable[Outcome]]


@dataclass(frozen=True, slots=True)
class Check:
    """A check: a stable dotted id, what it depends on, and an async function of a context."""

    id: str
    title: str
    run: CheckFunction = field(compare=False, repr=False)
    depends_on: tuple[str, ...] = ()
    plane: str = "-"
    scope: str = "service"
    tags: tuple[str, ...] = ()
    timeout_s: float = 30.0
    docs: str = ""
    proves: str = ""
    how: str = ""
    failure_means: str = ""
    fix: str = ""
    pack: str = ""
    # Whether `run --wait` may re-run this check after it fails: None means by plane, as `can_wait` says.
    waitable: bool | None = None

    @property
    def can_wait(self) -> bool:
        """Whether waiting can change this check's verdict. Undeclared: a check that reads only the config
        (plane "-") cannot, any check that asks a service or an API can; retrying a read-only check costs
        only time within --wait, while wrongly refusing to wait would fail a rollout that was about to pass."""
        return self.plane != "-" if self.waitable is None else self.waitable

    def in_pack(self, pack: str) -> Check:
        """This check, credited to `pack`."""
        return dataclasses.replace(self, pack=pack)

    def describe(self) -> dict[str, Any]:
        """The public, JSON-ready description used by `preflight list` and `explain`."""
        return {
            "id": self.id, "title": self.title, "plane": self.plane, "scope": self.scope,
            "depends_on": list(self.depends_on), "tags": list(self.tags), "timeout_s": self.timeout_s,
            "docs": self.docs, "pack": self.pack, "proves": self.proves, "how": self.how,
            "failure_means": self.failure_means, "fix": self.fix, "waitable": self.can_wait,
        }


def check(id: str, title: str, *, depends_on: Sequence[str] = (), plane: str = "-", scope: str = "service",
          tags: Sequence[str] = (), timeout_s: float = 30.0, docs: str = "", proves: str = "", how: str = "",
          failure_means: str = "", fix: str = "", waitable: bool | None = None
          ) -> Callable[[CheckFunction], Check]:
    """Turn an async function of a context into a Check."""

    def wrap(function: CheckFunction) -> Check:
        if not inspect.iscoroutinefunction(function):
            raise RegistryError(f"check {id}: {function.__qualname__} must be 'async def'")
        return Check(id=id, title=title, run=function, depends_on=tuple(depends_on), plane=plane, scope=scope,
                     tags=tuple(tags), timeout_s=timeout_s, docs=docs, proves=proves, how=how,
                     failure_means=failure_means, fix=fix, waitable=waitable)

    return wrap


@dataclass(frozen=True, slots=True)
class LoadedPack:
    """One entry point and the checks it yielded."""

    name: str
    distribution: str
    checks: tuple[Check, ...]


def _distribution(entry_point: EntryPoint) -> str:
    dist = getattr(entry_point, "dist", None)
    name = dist.metadata["Name"] if dist is not None else None
    return str(name) if name else entry_point.value.partition(":")[0].split(".")[0]


def find_entry_points() -> list[EntryPoint]:
    """Every entry point of the group, the built-in pack first, then by name and value (deterministic).

    A distribution found twice on sys.path (an installed copy and a development one) is read once, the first:
    importlib.metadata already skips later copies of the same name.
    """
    from importlib.metadata import entry_points

    found: dict[tuple[str, str], EntryPoint] = {}
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault((entry_point.name, entry_point.value), entry_point)
    return sorted(found.values(), key=lambda ep: (ep.name != "builtin", ep.name, ep.value))


def import_pack(entry_point: EntryPoint) -> LoadedPack:
    """Load one entry point: a callable returning checks, or an iterable of checks."""
    try:
        loaded = entry_point.load()
        produced = loaded() if callable(loaded) else loaded
        checks = tuple(produced)
    except Exception as exc:
        raise RegistryError(f"check pack '{entry_point.name}' ({entry_point.value}) failed to load: "
                            f"{type(exc).__name__}: {exc}") from exc
    for item in checks:
        if not isinstance(item, Check):
            raise RegistryError(f"check pack '{entry_point.name}' yielded {item!r}, not a Check")
    distribution = _distribution(entry_point)
    return LoadedPack(entry_point.name, distribution, tuple(_with_pack(item, distribution) for item in checks))


def _with_pack(item: Check, pack: str) -> Check:
    return item if item.pack else item.in_pack(pack)


class Registry:
    """All checks, validated, in dependency order (ties keep the order packs declared them)."""

    def __init__(self, checks: Iterable[Check]) -> None:
        self._by_id: dict[str, Check] = {}
        for item in checks:
            if item.id in self._by_id:
                other = self._by_id[item.id]
                raise RegistryError(f"check id '{item.id}' is registered twice (packs '{other.pack}' and "
                                    f"'{item.pack}')")
            self._by_id[item.id] = item
        self._validate()
        self.ordered: tuple[Check, ...] = tuple(self._topological())

    def _validate(self) -> None:
        for item in self._by_id.values():
            if item.plane not in PLANES:
                raise RegistryError(f"check '{item.id}': plane must be one of {', '.join(PLANES)}")
            if item.scope not in SCOPES:
                raise RegistryError(f"check '{item.id}': scope must be one of {', '.join(SCOPES)}")
            for dependency in item.depends_on:
                if dependency not in self._by_id:
                    hint = fnmatch.filter(self._by_id, dependency.split(".")[0] + ".*")
                    tip = f" (known: {', '.join(sorted(hint))})" if hint else ""
                    raise RegistryError(f"check '{item.id}' depends on unknown check '{dependency}'{tip}")
                if item.scope == "target" and self._by_id[dependency].scope == "service":
                    raise RegistryError(f"target-scoped check '{item.id}' cannot depend on service-scoped "
                                        f"'{dependency}'")

    def _topological(self) -> list[Check]:
        """Kahn's algorithm; among ready checks the earliest plane (config, control, network, data) goes first,
        then the earliest declared, so a subject's checks read as the chain a request follows."""
        position = {check_id: (PLANES.index(item.plane), index)
                    for index, (check_id, item) in enumerate(self._by_id.items())}
        waiting = {check_id: set(item.depends_on) for check_id, item in self._by_id.items()}
        ordered: list[Check] = []
        while waiting:
            ready = [check_id for check_id, deps in waiting.items() if not deps]
            if not ready:
                raise RegistryError("dependency cycle among: " + ", ".join(sorted(waiting)))
            chosen = min(ready, key=position.__getitem__)
            del waiting[chosen]
            for deps in waiting.values():
                deps.discard(chosen)
            ordered.append(self._by_id[chosen])
        return ordered

    def __iter__(self) -> Any:
        return iter(self.ordered)

    def __len__(self) -> int:
        return len(self.ordered)

    def __contains__(self, check_id: object) -> bool:
        return check_id in self._by_id

    def get(self, check_id: str) -> Check:
        try:
            return self._by_id[check_id]
        except KeyError:
            import difflib

            hint = difflib.get_close_matches(check_id, list(self._by_id), n=1)
            tip = f"; did you mean '{hint[0]}'?" if hint else "; run 'preflight list' to see them"
            raise RegistryError(f"no check '{check_id}'{tip}") from None

    def matching(self, patterns: Sequence[str]) -> set[str]:
        """Ids matched by ids, tags, planes or shell-style patterns (`inference.*`)."""
        found: set[str] = set()
        for pattern in patterns:
            hits = {item.id for item in self.ordered
                    if fnmatch.fnmatchcase(item.id, pattern) or pattern in item.tags or pattern == item.plane}
            if not hits:
                raise RegistryError(f"--only/--skip '{pattern}' matches no check id, tag or plane; "
                                    "run 'preflight list' to see them")
            found |= hits
        return found

    def with_dependencies(self, ids: set[str]) -> set[str]:
        closure = set(ids)
        stack = list(ids)
        while stack:
            for dependency in self._by_id[stack.pop()].depends_on:
                if dependency not in closure:
                    closure.add(dependency)
                    stack.append(dependency)
        return closure


def load_registry(extra: Iterable[Check] = ()) -> Registry:
    """Find, import and validate every installed check pack."""
    checks: list[Check] = []
    for entry_point in find_entry_points():
        checks.extend(import_pack(entry_point).checks)
    checks.extend(extra)
    return Registry(checks)


__all__ = ["ENTRY_POINT_GROUP", "PLANES", "SCOPES", "Check", "CheckFunction", "LoadedPack", "Registry",
           "check", "find_entry_points", "import_pack", "load_registry"]
