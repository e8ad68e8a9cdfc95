"""The layout the architecture asks for: short modules, a short command line, and no import cycles.

The import contracts between layers are import-linter's (`make contracts`); these are the rules it has no contract for.
"""

from __future__ import annotations

from collections import deque
from itertools import pairwise
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("preflight", "checks")
MAX_MODULE_LINES = 400
MAX_CLI_MAIN_LINES = 300  # the command line parses and dispatches; the commands live in their own modules


def _lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def test_no_module_is_longer_than_the_limit() -> None:
    modules = sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))
    assert modules, "no modules found: is the test looking in the project's root?"
    long = [f"{path.relative_to(ROOT)}: {lines} lines" for path in modules
            if (lines := _lines(path)) > MAX_MODULE_LINES]
    assert not long, f"modules over {MAX_MODULE_LINES} lines:\n" + "\n".join(long)


def test_the_command_lines_parse_and_dispatch_module_is_short() -> None:
    lines = _lines(ROOT / "preflight" / "cli" / "main.py")
    assert lines <= MAX_CLI_MAIN_LINES, f"preflight/cli/main.py has {lines} lines, over {MAX_CLI_MAIN_LINES}"


def _cycle_through(graph: grimp.ImportGraph, start: str, among: set[str]) -> list[str]:
    """The shortest import cycle from `start` back to itself through modules of `among` (breadth first)."""
    previous: dict[str, str] = {}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        for imported in sorted(graph.find_modules_directly_imported_by(module) & among):
            if imported == start:
                path = [module]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return [start, *reversed(path[:-1]), start]
            if imported not in previous:
                previous[imported] = module
                queue.append(imported)
    raise AssertionError(f"no cycle through {start}")


def _strongly_connected(graph: grimp.ImportGraph) -> list[set[str]]:
    """The groups of modules that import each other, directly or not (Tarjan's algorithm, without recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            module, imported = work[-1]
            step = next(imported, None)
            if step is not None:
                if step not in index:
                    index[step] = low[step] = len(index)
                    stack.append(step)
                    on_stack.add(step)
                    work.append((step, iter(sorted(graph.find_modules_directly_imported_by(step)))))
                elif step in on_stack:
                    low[module] = min(low[module], index[step])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[module])
            if low[module] == index[module]:
                group: set[str] = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == module:
                        break
                if len(group) > 1:
                    groups.append(group)
    return groups


def _describe(graph: grimp.ImportGraph, cycle: list[str]) -> str:
    """`a -> b (l.12) -> a (l.3)`: each import with the lines it is on."""
    words = [cycle[0]]
    for importer, imported in pairwise(cycle):
        lines = sorted({detail["line_number"] for detail in graph.get_import_details(importer=importer,
                                                                                     imported=imported)})
        words.append(f"{imported} (l.{', '.join(map(str, lines))})")
    return " -> ".join(words)


def test_there_is_no_import_cycle_among_the_projects_modules() -> None:
    """Every import counts: at the top of a module, inside a function, or only for the type checker."""
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    cycles = [_describe(graph, _cycle_through(graph, min(group), group)) for group in _strongly_connected(graph)]
    assert not cycles, "import cycles:\n" + "\n".join(sorted(cycles))


def test_a_cycle_is_found_and_shown_import_by_import() -> None:
    graph = grimp.ImportGraph()
    for importer, imported, line in (("p.a", "p.b", 3), ("p.b", "p.c", 5), ("p.c", "p.a", 7), ("p.c", "p.d", 8),
                                     ("p.d", "p.e", 1)):
        graph.add_import(importer=importer, imported=imported, line_number=line, line_contents=f"import {imported}")
    groups = _strongly_connected(graph)
    assert groups == [{"p.a", "p.b", "p.c"}]
    assert _describe(graph, _cycle_through(graph, "p.a", groups[0])) == "p.a -> p.b (l.3) -> p.c (l.5) -> p.a (l.7)"
