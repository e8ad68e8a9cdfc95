"""The frozen value types of the result model and the registry (frozen dataclasses with slots)."""

from __future__ import annotations

import dataclasses

import pytest

from preflight.engine.model import CheckResult, Outcome, RunReport, Status, Timings
from preflight.engine.registry import check


async def _probe(context: object) -> Outcome:
    return Outcome.passed("fine")


async def _other(context: object) -> Outcome:
    return Outcome.failed("broken")


def test_values_compare_and_hash_by_their_fields() -> None:
    assert Timings(1.0, 2.0) == Timings(1.0, 2.0)
    assert Timings(1.0, 2.0) != Timings(1.0, 3.0)
    assert hash(Timings(1.0, 2.0)) == hash(Timings(1.0, 2.0))
    assert Outcome(Status.PASS, "ok") == Outcome.passed("ok")
    assert Outcome.passed("ok", host="h") != Outcome.passed("ok", host="other")
    assert Outcome.passed("ok") != (Status.PASS, "ok", {}, "", "", 0)  # not a tuple
    assert Timings() != _SameFields()  # another class with the same fields is another value


class _SameFields(Timings):
    __slots__ = ()


def test_defaults_are_fresh_and_positional_order_is_the_declared_one() -> None:
    first, second = Outcome(Status.PASS, "a"), Outcome(Status.PASS, "b")
    assert first.evidence == {} and first.evidence is not second.evidence
    result = CheckResult("x.y", "X", "t", None, Status.FAIL, "no", {"k": 1}, "fix it", "docs", ("a.b",), "rg",
                         Timings(1.0, 2.0), 7)
    assert (result.remediation, result.blocked_by, result.origin, result.timings.duration_ms, result.tokens) == (
        "fix it", ("a.b",), "rg", 2.0, 7)
    assert CheckResult("x.y", "X", "t", None, Status.PASS, "ok").timings == Timings(0.0, 0.0)
    assert RunReport({}, "now", 1.0, (result,)).first_failure() is result


def test_values_are_frozen() -> None:
    outcome = Outcome.passed("ok")
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'summary'"):
        outcome.summary = "changed"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot delete field 'summary'"):
        del outcome.summary  # type: ignore[misc]
    # No new attribute either: slots leave no room for one (Python 3.10 and 3.11 say so with a TypeError, from
    # the frozen __setattr__ of a class that slots=True rebuilt).
    with pytest.raises((AttributeError, TypeError)):
        outcome.extra = 1  # type: ignore[attr-defined]
    assert outcome.summary == "ok"


def test_repr_names_the_fields_and_a_check_leaves_out_its_function() -> None:
    assert repr(Timings(1.0, 2.5)) == "Timings(start_ms=1.0, duration_ms=2.5, ready_ms=None)"
    assert Timings(5.0, 1.0, ready_ms=2.0).queued_ms == 3.0 and Timings(5.0, 1.0).queued_ms == 0.0
    made = check("x.y", "X", depends_on=["a.b"], plane="data")(_probe)
    assert repr(made).startswith("Check(id='x.y', title='X', depends_on=('a.b',), plane='data', scope='service'")
    assert "_probe" not in repr(made)


def test_checks_compare_without_their_function_and_keep_it_when_credited_to_a_pack() -> None:
    first, second = check("x.y", "X")(_probe), check("x.y", "X")(_other)
    assert first == second
    credited = first.in_pack("some-pack")
    assert credited.pack == "some-pack" and credited.run is _probe and credited != first
    assert credited.describe() == {**first.describe(), "pack": "some-pack"}
