"""The runner: dependency order, blocked-by skips, timeouts, crashing checks, shared answers."""

from __future__ import annotations

import asyncio

import pytest

from preflight.config import parse_config
from preflight.config.context import CheckContext
from preflight.engine.context import Context
from preflight.engine.model import Outcome, Status
from preflight.engine.redact import REDACTOR
from preflight.engine.registry import Check, Registry, check
from preflight.engine.runner import RunOptions, Selection, run
from preflight.errors import RegistryError

CONFIG = parse_config("""\
region: cn-beijing
targets:
  - name: a
    services:
      - {name: s1, kind: completion, endpoint: "http://127.0.0.1:9"}
      - {name: s2, kind: embedding, endpoint: "http://127.0.0.1:9"}
  - name: b
    services:
      - {name: s1, kind: completion, endpoint: "http://127.0.0.1:9"}
""", "t.yaml", {})


def make(id: str, outcome: Outcome | None = None, *, depends_on: tuple[str, ...] = (), scope: str = "service",
         timeout_s: float = 5.0, delay: float = 0.0, raises: Exception | None = None) -> Check:
    async def body(context: CheckContext) -> Outcome:
        await asyncio.sleep(delay)
        if raises is not None:
            raise raises
        return outcome or Outcome.passed(f"{id} ok on {context.target.name}")

    return check(id, id.title(), depends_on=depends_on, scope=scope, timeout_s=timeout_s, tags=("t",))(body)


def by_key(report: object) -> dict[tuple[str, str, str | None], object]:
    return {(r.check, r.target, r.service): r for r in report.results}  # type: ignore[attr-defined]


def test_target_checks_run_once_and_service_checks_per_service() -> None:
    registry = Registry([make("t.root", scope="target"), make("s.leaf", depends_on=("t.root",))])
    report = run(CONFIG, registry)
    keys = [(r.check, r.target, r.service) for r in report.results]
    assert keys == [("t.root", "a", None), ("s.leaf", "a", "s1"), ("s.leaf", "a", "s2"),
                    ("t.root", "b", None), ("s.leaf", "b", "s1")]
    assert all(r.status is Status.PASS and r.origin == "local" for r in report.results)


def test_a_failed_dependency_blocks_its_dependents_only() -> None:
    registry = Registry([
        make("a.root", Outcome.failed("root broke", "fix the root")),
        make("b.child", depends_on=("a.root",)),
        make("c.grandchild", depends_on=("b.child",)),
        make("d.unrelated"),
    ])
    results = by_key(run(CONFIG, registry))
    child = results[("b.child", "a", "s1")]
    grandchild = results[("c.grandchild", "a", "s1")]
    assert child.status is Status.SKIP and child.blocked_by == ("a.root",)  # type: ignore[attr-defined]
    assert child.summary == "blocked: a.root is fail"  # type: ignore[attr-defined]
    assert grandchild.blocked_by == ("b.child",)  # type: ignore[attr-defined]
    assert results[("d.unrelated", "a", "s1")].status is Status.PASS  # type: ignore[attr-defined]


def test_a_warning_does_not_block() -> None:
    registry = Registry([make("a.root", Outcome.warned("meh")), make("b.child", depends_on=("a.root",))])
    assert by_key(run(CONFIG, registry))[("b.child", "a", "s1")].status is Status.PASS  # type: ignore[attr-defined]


def test_a_raising_check_is_an_error_with_its_message_redacted_and_the_run_goes_on() -> None:
    REDACTOR.add("DW-ms-runner-canary-000111", "api_key")
    registry = Registry([make("a.boom", raises=ValueError("bad value DW-ms-runner-canary-000111")),
                         make("b.fine")])
    results = by_key(run(CONFIG, registry))
    boom = results[("a.boom", "a", "s1")]
    assert boom.status is Status.ERROR  # type: ignore[attr-defined]
    assert boom.summary == "the check raised ValueError: bad value [REDACTED]"  # type: ignore[attr-defined]
    assert results[("b.fine", "a", "s1")].status is Status.PASS  # type: ignore[attr-defined]


def test_a_check_that_hangs_fails_at_its_timeout() -> None:
    registry = Registry([make("a.hang", timeout_s=0.2, delay=30)])
    report = run(CONFIG, registry, Selection(targets=frozenset({"b"})))
    (result,) = report.results
    assert result.status is Status.FAIL and result.summary.startswith("did not finish within 0.2 s")
    assert report.duration_ms < 5000


def test_the_run_deadline_stops_everything() -> None:
    registry = Registry([make("a.slow", timeout_s=30, delay=30), make("b.after", depends_on=("a.slow",))])
    report = run(CONFIG, registry, options=RunOptions(timeout_s=0.3))
    assert report.duration_ms < 5000
    assert {r.status for r in report.results if r.check == "a.slow"} == {Status.FAIL}
    assert "run deadline" in report.results[0].summary


def test_checks_run_concurrently() -> None:
    registry = Registry([make(f"c.n{i}", delay=0.3) for i in range(10)])
    report = run(CONFIG, registry)
    assert len(report.results) == 30 and report.duration_ms < 2500


def test_skip_and_only_selection() -> None:
    registry = Registry([make("a.root"), make("b.child", depends_on=("a.root",)), make("c.other")])
    skipped = by_key(run(CONFIG, registry, Selection.build(registry, skip=["a.root"])))
    assert skipped[("a.root", "a", "s1")].summary == "skipped by --skip"  # type: ignore[attr-defined]
    assert skipped[("b.child", "a", "s1")].blocked_by == ("a.root",)  # type: ignore[attr-defined]
    only = run(CONFIG, registry, Selection.build(registry, only=["b.child"]))
    assert {r.check for r in only.results} == {"a.root", "b.child"}
    with pytest.raises(RegistryError, match="matches no check"):
        Selection.build(registry, only=["nope"])


def test_shared_answers_are_asked_once_per_run() -> None:
    calls: list[str] = []

    async def ask() -> str:
        calls.append("asked")
        await asyncio.sleep(0.05)
        return "answer"

    @check("s.shared", "Shared", scope="target")
    async def shared(context: CheckContext) -> Outcome:
        return Outcome.passed(await context.resources.shared(("question",), ask))

    report = run(CONFIG, Registry([shared]))
    assert [r.summary for r in report.results] == ["answer", "answer"] and calls == ["asked"]


def test_registry_rejects_duplicates_unknown_dependencies_and_cycles() -> None:
    with pytest.raises(RegistryError, match="registered twice"):
        Registry([make("a.x"), make("a.x")])
    with pytest.raises(RegistryError, match="depends on unknown check 'a.missing'"):
        Registry([make("a.x", depends_on=("a.missing",))])
    with pytest.raises(RegistryError, match="dependency cycle among: a.x, a.y"):
        Registry([make("a.x", depends_on=("a.y",)), make("a.y", depends_on=("a.x",))])
    with pytest.raises(RegistryError, match="cannot depend on service-scoped"):
        Registry([make("a.x", scope="target", depends_on=("a.y",)), make("a.y")])


def test_registry_order_is_deterministic_and_topological() -> None:
    checks = [make("z.first"), make("a.second", depends_on=("z.first",)), make("m.alone")]
    assert [c.id for c in Registry(checks).ordered] == ["z.first", "a.second", "m.alone"]
    assert [c.id for c in Registry(reversed(checks)).ordered] == ["m.alone", "z.first", "a.second"]


def test_the_reports_platform_is_found_without_a_subprocess(monkeypatch: pytest.MonkeyPatch) -> None:
    """platform.platform() runs `uname -p` in a subprocess: a fork of the whole process at the end of every run."""
    import platform
    import subprocess
    import sys

    from preflight.engine.runner import platform_name, tool_info

    expected = platform.platform(terse=True)  # before forbidding subprocesses: this one may run one

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("a subprocess was started")

    monkeypatch.setattr(subprocess.Popen, "__init__", forbidden)
    monkeypatch.setattr(platform, "_uname_cache", None)  # platform's own answers, remembered from above
    monkeypatch.setattr(platform, "_platform_cache", {})
    platform_name.cache_clear()
    info = tool_info()
    if sys.platform.startswith("linux"):
        assert info["platform"] == expected
    assert info["python"] == platform.python_version()


def test_a_shared_answer_or_failure_reaches_every_asker_and_one_cancelled_asker_stops_nobody() -> None:
    from preflight.engine.context import Resources

    asked: list[str] = []

    async def slow() -> str:
        asked.append("slow")
        await asyncio.sleep(0.05)
        return "answer"

    async def broken() -> str:
        asked.append("broken")
        await asyncio.sleep(0.01)
        raise ValueError("no answer")

    async def go() -> None:
        resources = Resources()
        first = asyncio.ensure_future(resources.shared("q", slow))
        await asyncio.sleep(0)
        impatient = asyncio.ensure_future(resources.shared("q", slow))
        patient = asyncio.ensure_future(resources.shared("q", slow))
        await asyncio.sleep(0.01)
        impatient.cancel()
        assert await first == "answer" and await patient == "answer"
        assert impatient.cancelled()
        assert await resources.shared("q", slow) == "answer"  # after the answer: no new question
        for _ in range(3):
            with pytest.raises(ValueError, match="no answer"):
                await resources.shared("b", broken)

    asyncio.run(go())
    assert asked == ["slow", "broken"]


def test_a_check_starts_only_once_its_dependencies_have_settled() -> None:
    """Tasks are made as dependencies settle: before its last dependency, a check has no task at all."""
    from preflight.config import TargetConfig
    from preflight.engine.runner import Runner

    events: list[tuple[str, str, str | None]] = []
    tasks_seen: dict[str, int] = {}
    runner: Runner[TargetConfig] | None = None

    class Watch:
        def started(self, check: Check, target: str, service: str | None) -> None:
            events.append(("start", check.id, f"{target}/{service}"))
            assert runner is not None
            tasks_seen.setdefault(check.id, len(runner.tasks))

        def finished(self, result: object) -> None:
            events.append(("end", result.check, f"{result.target}/{result.service}"))  # type: ignore[attr-defined]

    registry = Registry([make("a.root", scope="target", delay=0.02), make("b.mid", depends_on=("a.root",)),
                         make("c.leaf", depends_on=("b.mid", "a.root"), delay=0.01), make("d.free")])

    async def main() -> object:
        nonlocal runner
        runner = Runner(CONFIG, registry, progress=Watch())
        return await runner.run()

    report = asyncio.run(main())
    assert all(r.status is Status.PASS for r in report.results)  # type: ignore[attr-defined]
    for kind, check_id, subject in events:
        if kind != "start":
            continue
        target = subject.split("/")[0]
        needs = {"b.mid": [("a.root", f"{target}/None")],
                 "c.leaf": [("b.mid", subject), ("a.root", f"{target}/None")]}.get(check_id, [])
        position = events.index((kind, check_id, subject))
        for dependency in needs:
            assert events.index(("end", *dependency)) < position, (check_id, subject, dependency)
    # The roots and free checks of both targets have tasks at once; the others only once they may start.
    assert tasks_seen["a.root"] == tasks_seen["d.free"] == 5 and tasks_seen["b.mid"] > 5


def test_a_checks_time_is_its_own_work_and_its_wait_for_a_slot_is_queue_time() -> None:
    # One slot for two checks of 0.1 s each: the second waits for it, and that wait is not its time.
    registry = Registry([make("q.slow", delay=0.1, scope="target")])
    report = run(CONFIG, registry, Selection(targets=frozenset({"a", "b"})), RunOptions(concurrency=1))
    timings = sorted((r.timings for r in report.results), key=lambda t: t.start_ms)
    assert all(95 <= t.duration_ms < 300 for t in timings), timings
    assert timings[0].queued_ms < 50 and timings[1].queued_ms >= 90, timings
    assert all(t.ready_ms is not None and t.ready_ms <= t.start_ms for t in timings)


def test_the_registry_orders_checks_by_dependencies_then_plane_then_declaration() -> None:
    registry = Registry([
        check("c.cfg", "C", plane="-")(_body), check("n.dns", "N", plane="network", depends_on=("c.cfg",))(_body),
        check("k.cloud", "K", plane="control", depends_on=("c.cfg",))(_body),
        check("u.url", "U", plane="-", depends_on=("c.cfg",))(_body),
        check("d.data", "D", plane="data", depends_on=("n.dns",))(_body),
    ])
    assert [item.id for item in registry] == ["c.cfg", "u.url", "k.cloud", "n.dns", "d.data"]


async def _body(context: CheckContext) -> Outcome:
    return Outcome.passed("ok")


def test_the_engine_runs_any_plan_of_named_targets_and_services() -> None:
    """The engine reads a plan's targets, their services' names, its path and its token budget: nothing more."""
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Service:
        name: str

    @dataclass(frozen=True)
    class Target:
        name: str
        services: tuple[Service, ...]

    @dataclass(frozen=True)
    class Plan:
        targets: tuple[Target, ...]
        path: str | None = "plan.txt"
        max_tokens_budget: int | None = 7

    seen: list[tuple[str, str | None, int | None]] = []

    async def body(context: Context[Plan, Target, Service]) -> Outcome:
        service = context.service.name if context.service is not None else None
        seen.append((context.target.name, service, context.resources.budget.limit))
        return Outcome.passed("ok")

    plan = Plan((Target("x", (Service("p"), Service("q"))),))
    report = run(plan, Registry([check("t.any", "Any")(body)]),
                 describe=lambda target: {"name": target.name, "services": str(len(target.services))})
    assert seen == [("x", "p", 7), ("x", "q", 7)]
    assert report.config_path == "plan.txt" and report.targets == ({"name": "x", "services": "2"},)


def test_no_check_starts_before_the_runs_hold_has_ended() -> None:
    events: list[str] = []

    async def hold() -> None:
        events.append("hold")
        await asyncio.sleep(0.05)
        events.append("held")

    async def body(context: CheckContext) -> Outcome:
        events.append("check")
        return Outcome.passed("ok")

    registry = Registry([check("c.first", "First", scope="target", tags=("t",))(body)])
    report = run(CONFIG, registry, options=RunOptions(hold=hold))
    assert events == ["hold", "held", "check", "check"]
    # The hold is part of the run's time, as a user waits for it.
    assert report.duration_ms >= 50
