"""What an observation keeps of an embedding vector: its length and how many entries are not finite numbers."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from preflight.probe.observations import summarise_vector

ENTRIES = st.one_of(st.floats(), st.floats(allow_nan=False, allow_infinity=False), st.integers(),
                    st.booleans(), st.none(), st.text(max_size=3))


def counted(vector: list[Any]) -> dict[str, Any]:
    """The summary by looking at every entry, the way it is defined."""
    non_numeric = sum(1 for item in vector if isinstance(item, bool) or not isinstance(item, (int, float)))
    non_finite = sum(1 for item in vector if isinstance(item, float) and not math.isfinite(item))
    return {"type": "list", "length": len(vector), "non_numeric": non_numeric, "non_finite": non_finite}


@given(st.lists(ENTRIES, max_size=40))
def test_any_list_is_summarised_as_counting_every_entry_would(vector: list[Any]) -> None:
    assert summarise_vector(vector) == counted(vector)


@given(st.lists(st.floats(min_value=-1e308, max_value=1e308), min_size=1, max_size=64))
def test_large_finite_floats_whose_sum_overflows_are_still_finite(vector: list[float]) -> None:
    assert summarise_vector([*vector, 1e308, 1e308])["non_finite"] == 0


def test_the_usual_vector_and_the_odd_ones() -> None:
    assert summarise_vector([0.25] * 1024) == counted([0.25] * 1024)
    assert summarise_vector([1.0, math.nan, math.inf, -math.inf])["non_finite"] == 3
    assert summarise_vector([1, 2.0, 10 ** 400]) == counted([1, 2.0, 10 ** 400])  # a huge int is finite
    assert summarise_vector("abc") == {"type": "str", "length": 3, "non_numeric": 0, "non_finite": 0}
