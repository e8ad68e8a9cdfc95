"""shorten(): a message cut for a summary ends on a whole word and says it was cut."""

from __future__ import annotations

import pytest

from preflight.engine.text import ELLIPSIS, shorten

MESSAGE = ("Credentials: the provider chain was unable to load credentials from any of the providers in the chain: "
           "EnvironmentVariableCredentialsProvider, ProfileCredentialsProvider")


@pytest.mark.parametrize("limit", range(len("Credentials: "), len(MESSAGE) + 5))
def test_a_cut_message_ends_on_a_whole_word_with_an_ellipsis(limit: int) -> None:
    cut = shorten(MESSAGE, limit)
    assert len(cut) <= limit
    if len(MESSAGE) <= limit:
        assert cut == MESSAGE
        return
    assert cut.endswith(ELLIPSIS) and not cut[:-1].endswith(" ")
    kept = cut[:-1]
    assert MESSAGE.startswith(kept) and MESSAGE[len(kept)] == " "  # the next character begins a new word


def test_the_credential_providers_message_is_never_left_mid_word() -> None:
    assert shorten(MESSAGE, 56) == "Credentials: the provider chain was unable to load…"


def test_a_first_word_longer_than_the_limit_is_cut_inside_it_and_marked() -> None:
    assert shorten("http://very-long-host.example.internal/v1/models is down", 16) == "http://very-lon…"


def test_text_that_fits_is_returned_unchanged() -> None:
    assert shorten("two  spaces\nand a line", 40) == "two  spaces\nand a line"
