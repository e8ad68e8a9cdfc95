"""Cutting a message to fit a one-line summary: on a word boundary, marked with an ellipsis, never mid-word.

Hand-written because textwrap.shorten, the library's nearest, rewrites the text even when it fits (it collapses
whitespace) and drops a first word longer than the width altogether, leaving only the placeholder.
"""

from __future__ import annotations

ELLIPSIS = "…"


def shorten(text: str, limit: int) -> str:
    """`text` whole when it has at most `limit` characters, else its longest run of whole words that fits with "…".

    Only a first word longer than the whole limit, which has no boundary to cut on, is cut inside (a long URL or a
    token); the ellipsis marks that cut too.
    """
    if len(text) <= limit:
        return text
    room = max(limit - len(ELLIPSIS), 0)
    head = text[:room]
    if not text[room].isspace():  # the cut falls inside a word: give that word back
        boundary = max((index for index, char in enumerate(head) if char.isspace()), default=-1)
        if boundary > 0 and head[:boundary].strip():
            head = head[:boundary]
    return head.rstrip() + ELLIPSIS


__all__ = ["ELLIPSIS", "shorten"]
