"""Check specs and their discovery through the `preflight.checks` entry-point group."""

from __future__ import annotations

import fnmatch
import importlib
import os
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence

from preflight.errors import RegistryError
from preflight.model import Outcome, Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (README, Start-up)
if TYPE_CHECKING:
    from typing import Any

    from preflight.context import Context

ENTRY_POINT_GROUP = "preflight.checks"
PLANES = ("-", "control", "network", "data")
SCOPES = ("target", "service")

CheckFunction = Callable[["Context"], Awaitable[Outcome]]
_CO_COROUTINE = 0x80  # inspect.CO_COROUTINE, without importing inspect at start-up


class Check(Record):
    """A check: a stable dotted id, what it depends on, and an async function of a context."""

    __slots__ = (
        "depends_on",
        "docs",
        "failure_means",
        "fix",
        "how",
        "id",
        "pack",
        "plane",
        "proves",
        "run",
        "scope",
        "tags",
        "timeout_s",
        "title",
    )
    _hidden = ("run",)
    id: str
    title: str
    run: CheckFunction
    depends_on: tuple[str, ...]
    plane: str
    scope: str
    tags: tuple[str, ...]
    timeout_s: float
    docs: str
    proves: str
    how: str
    failure_means: str
    fix: str
    pack: str

    def __init__(self, id: str, title: str, run: CheckFunction, depends_on: tuple[str, ...] = (), plane: str = "-",
                 scope: str = "service", tags: tuple[str, ...] = (), timeout_s: float = 30.0, docs: str = "",
                 proves: str = "", how: str = "", failure_means: str = "", fix: str = "", pack: str = "") -> None:
        self._init(id=id, title=title, run=run, depends_on=depends_on, plane=plane, scope=scope, tags=tags,
                   timeout_s=timeout_s, docs=docs, proves=proves, how=how, failure_means=failure_means, fix=fix,
                   pack=pack)

    def in_pack(self, pack: str) -> Check:
        """This check, credited to `pack`."""
        return Check(self.id, self.title, self.run, self.depends_on, self.plane, self.scope, self.tags, self.timeout_s,
                     self.docs, self.proves, self.how, self.failure_means, self.fix, pack)

    def describe(self) -> dict[str, Any]:
        """The public, JSON-ready description used by `preflight list` and `explain`."""
        return {
            "id": self.id, "title": self.title, "plane": self.plane, "scope": self.scope,
            "depends_on": list(self.depends_on), "tags": list(self.tags), "timeout_s": self.timeout_s,
            "docs": self.docs, "pack": self.pack, "proves": self.proves, "how": self.how,
            "failure_means": self.failure_means, "fix": self.fix,
        }


def check(id: str, title: str, *, depends_on: Sequence[str] = (), plane: str = "-", scope: str = "service",
          tags: Sequence[str] = (), timeout_s: float = 30.0, docs: str = "", proves: str = "", how: str = "",
          failure_means: str = "", fix: str = "") -> Callable[[CheckFunction], Check]:
    """Turn an async function of a context into a Check."""

    def wrap(function: CheckFunction) -> Check:
        if not function.__code__.co_flags & _CO_COROUTINE:
            raise RegistryError(f"check {id}: {function.__qualname__} must be 'async def'")
        return Check(id=id, title=title, run=function, depends_on=tuple(depends_on), plane=plane, scope=scope,
                     tags=tuple(tags), timeout_s=timeout_s, docs=docs, proves=proves, how=how,
                     failure_means=failure_means, fix=fix)

    return wrap


class PackEntryPoint(Record):
    """One `preflight.checks` entry point as found on disk: `name = module:attribute`."""

    __slots__ = ("distribution", "name", "value")
    name: str
    value: str
    distribution: str

    def __init__(self, name: str, value: str, distribution: str) -> None:
        self._init(name=name, value=value, distribution=distribution)

    def load(self) -> Any:
        module_name, _, attribute = self.value.partition(":")
        target: Any = importlib.import_module(module_name.strip())
        for part in filter(None, attribute.strip().split(".")):
            target = getattr(target, part)
        return target


class LoadedPack(Record):
    """One entry point and the checks it yielded."""

    __slots__ = ("checks", "distribution", "name")
    name: str
    distribution: str
    checks: tuple[Check, ...]

    def __init__(self, name: str, distribution: str, checks: tuple[Check, ...]) -> None:
        self._init(name=name, distribution=distribution, checks=checks)


def _entry_points_in(text: str) -> list[tuple[str, str]]:
    """The `name = value` lines of the [preflight.checks] section of an entry_points.txt."""
    found: list[tuple[str, str]] = []
    in_group = False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            in_group = line == f"[{ENTRY_POINT_GROUP}]"
        elif in_group and "=" in line and not line.startswith(("#", ";")):
            name, _, value = line.partition("=")
            found.append((name.strip(), value.strip()))
    return found


def _distribution_name(metadata_dir: str, fallback: str) -> str:
    for candidate in ("METADATA", "PKG-INFO"):
        try:
            with open(os.path.join(metadata_dir, candidate), encoding="utf-8") as handle:
                for line in handle:
                    if line.startswith("Name:"):
                        return line[5:].strip()
                    if not line.strip():
                        break
        except OSError:
            continue
    return fallback


def find_entry_points() -> list[PackEntryPoint]:
    """Every entry point of the group on sys.path, the built-in pack first, then by name.

    This reads the same `*.dist-info/entry_points.txt` files importlib.metadata reads, without importing
    it: importlib.metadata costs more than the rest of `preflight list` together.
    """
    found: dict[tuple[str, str], PackEntryPoint] = {}
    seen_distributions: set[str] = set()
    for path in sys.path:
        try:
            entries = sorted(os.listdir(path or "."))
        except OSError:
            continue
        for entry in entries:
            if not entry.endswith((".dist-info", ".egg-info")):
                continue
            directory = os.path.join(path or ".", entry)
            try:
                with open(os.path.join(directory, "entry_points.txt"), encoding="utf-8") as handle:
                    text = handle.read()
            except OSError:
                continue
            if f"[{ENTRY_POINT_GROUP}]" not in text:
                continue
            distribution = _distribution_name(directory, entry.split("-")[0])
            key = distribution.lower().replace("_", "-")
            if key in seen_distributions:  # the first on sys.path wins, as for imports
                continue
            seen_distributions.add(key)
            for name, value in _entry_points_in(text):
                found.setdefault((name, value), PackEntryPoint(name, value, distribution))
    return sorted(found.values(), key=lambda ep: (ep.name != "builtin", ep.name, ep.value))


def import_pack(entry_point: PackEntryPoint) -> LoadedPack:
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
    return LoadedPack(entry_point.name, entry_point.distribution,
                      tuple(_with_pack(item, entry_point.distribution) for item in checks))


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
        """Kahn's algorithm; among ready checks the earliest declared goes first, so packs keep their order."""
        position = {check_id: index for index, check_id in enumerate(self._by_id)}
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


__all__ = ["ENTRY_POINT_GROUP", "PLANES", "SCOPES", "Check", "CheckFunction", "LoadedPack", "PackEntryPoint",
           "Registry", "check", "find_entry_points", "import_pack", "load_registry"]
