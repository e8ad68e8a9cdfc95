"""The one place that knows what a secret looks like, and removes it from everything that leaves."""

from __future__ import annotations

import base64
import functools
import json
import re
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

# A `from` import: the SDK's background import may be loading this module at the same moment, and Python can
# return from `import a.b` before `b` is set on `a` (an AttributeError on first use).
from urllib.parse import quote, quote_plus

MASK = "[REDACTED]"
# Environment variables whose values are secrets wherever they show up; registered when the CLI starts.
SECRET_ENVIRONMENT = (("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "access_key_secret"),
                      ("ALIBABA_CLOUD_SECURITY_TOKEN", "security_token"))

_SECRET_FIELD = (r"(authorization|api[_-]?key|access[_-]?key[_-]?secret|secret|security[_-]?token|sts[_-]?token|"
                 r"password|passwd|credential)$")
_MASKED = re.escape(MASK)
_VALUE_END = r"\s\"'<>,;}&"
_PLACEHOLDER = r"[^\s\"'<>]{0,6}\.\.\.(?![^\s\"'<>])"


class _Shape(NamedTuple):
    """One kind of secret-shaped text: how it looks, what stays readable, and where a match can begin.

    `source` (the pattern, compiled by _patterns) has a group `keep` for the readable part before the secret (a
    header name, a URL up to the password); the rest becomes `mask`. A shape only ever matches starting at one of
    its `triggers` (lowercase when `lowered`, then looked for in a lowercased copy): finding them is a C-speed
    substring search, and the pattern is then tried at those places only. A regex search for a pattern that starts
    with a word boundary or a case-insensitive word looks at every position and runs at a few MB/s; reports are
    megabytes. A `searched` shape's triggers can be too common to try one by one (every & of an HTML entity): in a
    text holding more than `_SEARCH_FROM` of them, a regex search finds it instead.
    """

    kind: str
    source: str
    triggers: tuple[str, ...]
    lowered: bool = False
    mask: str = MASK
    searched: bool = False
    # A shape whose triggers are common but whose matches always end right before the first `closing` text after
    # their start, at most `reach` characters on (a URL's password before its @), is looked for from each
    # `closing` instead: a report has a "://" in every docs link and hardly an @.
    closing: str = ""
    reach: int = 0


# In the order a combined alternation would try them: at one position, the first listed shape that matches wins.
# REDACTIONS.txt reports the kind.
_SHAPES: tuple[_Shape, ...] = (
    # "Authorization": "<anything>" in JSON or a repr: everything up to the closing quote, escapes included.
    _Shape("Authorization header", r"(?P<keep>(?i:authorization[\"']?\s*[:=]\s*)(?P<quote>[\"']))"
                                   r"(?:\\.|(?!(?P=quote))[^\\\r\n])*", ("authorization",), True),
    # A header line "Authorization: <scheme> <credential>" of any scheme, or a raw key; the scheme word is masked
    # with the credential. A placeholder written in prose ("Authorization: DW-...") is not a secret.
    _Shape("Authorization header",
           rf"(?P<keep>(?i:authorization\s*[:=][ \t]*))(?!{_MASKED}|[\"'])(?:[A-Za-z][A-Za-z0-9-]{{1,30}}[ \t]+)?"
           rf"(?!{_MASKED}|{_PLACEHOLDER})[^\s\"'<>]+", ("authorization",), True),
    _Shape("Bearer token", rf"(?P<keep>\b(?i:bearer)[ \t]+)(?!{_MASKED}|{_PLACEHOLDER})[A-Za-z0-9._~+/=-]{{6,}}",
           ("bearer",), True),
    _Shape("DataWorks API key", r"\bDW-[A-Za-z0-9][A-Za-z0-9_-]{5,}", ("DW-",)),
    _Shape("secret in a URL query",
           r"(?P<keep>[?&](?i:api[_-]?key|key|token|access[_-]?token|signature|security[_-]?token|secret|"
           rf"access[_-]?key[_-]?secret|password)=)(?!{_MASKED})[^&#{_VALUE_END}]+", ("?", "&"), searched=True),
    # scheme://user:password@host, from its "://" (a scheme is any word, so it cannot be the trigger). Neither the
    # user nor the password holds an @, so a match ends before the first @ after its start, 3 + 64 + 1 + 256 on.
    _Shape("password in a URL",
           rf"(?P<keep>://[^/:@{_VALUE_END}]{{0,64}}:)(?!{_MASKED})[^/@{_VALUE_END}]{{1,256}}(?=@)", ("://",),
           closing="@", reach=324),
    _Shape("STS token", rf"(?P<keep>(?i:security[_-]?token[\"']?\s*[:=]\s*[\"']?))(?!{_MASKED})[^{_VALUE_END}]+",
           ("security",), True),
    # Alibaba Cloud STS tokens start with CAIS and are long base64.
    _Shape("STS token", r"\bCAIS[A-Za-z0-9+/=_.-]{20,}", ("CAIS",)),
    _Shape("AccessKey secret",
           rf"(?P<keep>(?i:access[_-]?key[_-]?secret[\"']?\s*[:=]\s*[\"']?))(?!{_MASKED})[^{_VALUE_END}]+",
           ("access",), True),
    # AccessKey ids are not secret on their own, but shown only by their first four characters, as the console does.
    _Shape("AccessKey id (first 4 characters kept)", r"\b(?P<keep>LTAI|STS\.)[A-Za-z0-9]{8,40}\b",
           ("LTAI", "STS."), mask="****"),
)
SHAPE_KINDS = frozenset(shape.kind for shape in _SHAPES)


@functools.cache
def _patterns() -> tuple[tuple[re.Pattern[str], ...], re.Pattern[str]]:
    """The shapes' patterns, in _SHAPES' order, and the search for any trigger: compiled when first needed.

    Compiled on first use, so that a command that never masks a shape (`preflight list`) does not pay for it.
    Most text holds none of the triggers: one search of its lowercased form says so, and the shapes are skipped.
    """
    any_trigger = "|".join(sorted({re.escape(trigger.lower()) for shape in _SHAPES for trigger in shape.triggers},
                                  key=len, reverse=True))
    return tuple(re.compile(shape.source) for shape in _SHAPES), re.compile(any_trigger)


_PREFIX = 3  # registered secrets are grouped by their first characters (they are at least 4 long)
# A searched shape's triggers are tried one by one up to this many in a text (a JSON report has a handful of ?
# and no &, where a regex search of the whole text costs more), and searched for beyond it (an HTML page's entities).
_SEARCH_FROM = 256
# From this length, the registered secrets present in a text are found from the places their first characters
# occur rather than by one substring search of the whole text each (a hundred keys that all start with DW-).
_LOCATE_FROM = 4096
_MEMO_LENGTH, _MEMO_ENTRIES = 1024, 10_000  # what the redactor remembers: text up to 1 KB, 10,000 of them


_SECRET_FIELDS: dict[str, bool] = {}  # field names seen, and whether each says secret


def _secret_field(key: str) -> bool:
    """Whether a field's name says its value is secret; a run asks this of the same few dozen names."""
    known = _SECRET_FIELDS.get(key)
    if known is None:
        known = re.search(_SECRET_FIELD, key, re.IGNORECASE) is not None
        if len(_SECRET_FIELDS) < _MEMO_ENTRIES:  # names come from servers too: remembered up to a bound
            _SECRET_FIELDS[key] = known
    return known


class _Cursor:
    """Finds one shape's matches left to right in one text; each trigger is searched for once per occurrence."""

    def __init__(self, shape: _Shape, pattern: re.Pattern[str], text: str, lowered: str | None) -> None:
        self.shape = shape
        self.pattern = pattern
        self.text = text
        # A searched shape in a text full of its triggers, or a case-insensitive one without an aligned lowercase
        # copy, uses a regex search.
        dense = shape.searched and sum(text.count(trigger) for trigger in shape.triggers) > _SEARCH_FROM
        self.haystack = None if dense else text if not shape.lowered else lowered
        self.next_at = [-1] * len(shape.triggers)  # where each trigger occurs next (-1: look again)

    def find(self, position: int) -> re.Match[str] | None:
        """The shape's leftmost match starting at or after `position`."""
        if self.haystack is None:
            return self.pattern.search(self.text, position)
        if self.shape.closing:
            return self._find_back(position)
        haystack = self.haystack
        while True:
            for index, trigger in enumerate(self.shape.triggers):
                at = self.next_at[index]
                if at != len(haystack) and at < position:
                    found = haystack.find(trigger, position)
                    self.next_at[index] = len(haystack) if found < 0 else found
            start = min(self.next_at)
            if start == len(haystack):
                return None
            match = self.pattern.match(self.text, start)
            if match is not None:
                return match
            position = start + 1

    def _find_back(self, position: int) -> re.Match[str] | None:
        """find() for a shape with a `closing`: from each closing on, the starts at most `reach` before it.

        A start before one closing cannot match up to a later one, so every start is tried once at most.
        """
        haystack, (trigger,), closing = self.haystack, self.shape.triggers, self.shape.closing
        assert haystack is not None
        low = position
        while True:
            end = haystack.find(closing, low)
            if end < 0:
                return None
            start = haystack.find(trigger, max(low, end - self.shape.reach), end)
            while start >= 0:
                match = self.pattern.match(self.text, start)
                if match is not None:
                    return match
                start = haystack.find(trigger, start + 1, end)
            low = end + 1


def _mask_shapes(text: str, found: dict[str, int]) -> str:
    """Every shape masked, leftmost match first (ties to the earlier shape): what one combined alternation
    scanned with re.sub would do, at the speed of a few substring searches."""
    lowered = text.lower()
    patterns, any_trigger = _patterns()
    if any_trigger.search(lowered) is None:
        return text
    # lower() keeps positions unless a character grows (U+0130 becomes two): then search case-insensitively.
    aligned = lowered if len(lowered) == len(text) else None
    cursors = [_Cursor(shape, pattern, text, aligned) for shape, pattern in zip(_SHAPES, patterns, strict=True)]
    heads = [cursor.find(0) for cursor in cursors]
    pieces: list[str] = []
    position = 0
    while True:
        best: re.Match[str] | None = None
        for index, head in enumerate(heads):
            if head is not None and (best is None or head.start() < best.start()):  # a tie keeps the earlier shape
                best, shape = head, _SHAPES[index]
        if best is None:
            break
        match = best
        pieces += [text[position:match.start()], (match.groupdict().get("keep") or "") + shape.mask]
        found[shape.kind] = found.get(shape.kind, 0) + 1
        position = match.end()
        for index, other in enumerate(heads):
            if other is not None and other.start() < position:
                heads[index] = cursors[index].find(position)
    if not pieces:
        return text
    pieces.append(text[position:])
    return "".join(pieces)


def mask_access_key_id(access_key_id: str) -> str:
    """Show an AccessKey id as its first four characters, which is how the console shows it too."""
    return access_key_id[:4] + "****" if access_key_id else ""


def _variants(secret: str) -> set[str]:
    """The ways a value is commonly re-encoded on its way into a URL, a JSON body or a header."""
    raw = secret.encode("utf-8")
    return {secret, secret.strip(), quote(secret, safe=""), quote(secret),
            quote_plus(secret), json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
            base64.b64encode(raw).decode().rstrip("="), base64.urlsafe_b64encode(raw).decode().rstrip("=")}


class Redactor:
    """Replaces registered secret values and secret-shaped text with a mask."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: dict[str, str] = {}
        self._groups: dict[str, dict[int, dict[str, str]]] | None = None
        # Text already scanned against the current secrets, and what was found in it. A run's results repeat
        # most of their strings (statuses, regions, titles, shared answers): five in six scans were repeats.
        self._scanned: dict[str, tuple[str, dict[str, int]]] = {}
        self.hits: dict[str, int] = {}

    def add(self, secret: str | None, label: str = "secret") -> None:
        """Remember a value to mask wherever it appears (also URL-, JSON- and base64-encoded)."""
        if not secret or len(secret.strip()) < 4:
            return
        with self._lock:
            for variant in _variants(secret):
                # Short encodings (base64 of a 4-character value) would match ordinary words.
                if len(variant) >= 4 and variant not in self._secrets:
                    self._secrets[variant] = label
                    self._groups = None
                    self._scanned = {}

    def labels(self) -> list[str]:
        with self._lock:
            return sorted(set(self._secrets.values()))

    def _registered(self, value: str) -> list[tuple[str, str]]:
        """The registered secrets that occur in `value`, longest first.

        Longest first, so a secret is masked whole rather than around a shorter one inside it. Secrets are grouped
        by their first characters: a text without a group's prefix needs no search for any of its secrets. In a
        long text, the secrets of a group are then read off where the prefix occurs (one dictionary lookup per
        place and secret length), instead of searching the whole text once per secret: a report of a hundred
        services holds a hundred DW- keys' worth of candidates and only a handful of places that start with DW-.
        """
        with self._lock:
            if self._groups is None:
                groups: dict[str, dict[int, dict[str, str]]] = {}
                for secret, label in self._secrets.items():
                    groups.setdefault(secret[:_PREFIX], {}).setdefault(len(secret), {})[secret] = label
                self._groups = groups
            groups = self._groups
        present: list[tuple[str, str]] = []
        for prefix, by_length in groups.items():
            at = value.find(prefix)
            if at < 0:
                continue
            size = sum(len(secrets) for secrets in by_length.values())
            # Where the prefix is everywhere (hostile text), one search per secret is the bounded cost.
            if len(value) < _LOCATE_FROM or value.count(prefix) > 16 * size + 64:
                present += [(secret, label) for secrets in by_length.values() for secret, label in secrets.items()
                            if secret in value]
                continue
            seen: dict[str, str] = {}
            while at >= 0:
                for length, secrets in by_length.items():
                    known = secrets.get(value[at:at + length])
                    if known is not None:
                        seen[value[at:at + length]] = known
                at = value.find(prefix, at + 1)
            present += seen.items()
        return sorted(present, key=lambda pair: -len(pair[0]))

    def scan(self, value: str) -> tuple[str, Counter[str]]:
        """Mask `value` and count what was masked by kind (registered labels and secret shapes)."""
        masked, found = self._scan(value)
        self._tally(found)
        return masked, Counter(found)

    def _scan(self, value: str) -> tuple[str, dict[str, int]]:
        """`scan`, remembered for text seen before; the counts returned are shared and must not be changed."""
        if not value:
            return value, {}
        scanned = self._scanned  # replaced, not changed, when a secret is added
        known = scanned.get(value) if len(value) <= _MEMO_LENGTH else None
        if known is not None:
            return known
        original = value
        found: dict[str, int] = {}
        # A substring search per registered value is a fast C scan; a regex alternation of them is not.
        for secret, label in self._registered(value):
            if secret in value:
                found[label] = found.get(label, 0) + value.count(secret)
                value = value.replace(secret, MASK)
        value = _mask_shapes(value, found)
        if len(original) <= _MEMO_LENGTH:
            if len(scanned) >= _MEMO_ENTRIES:
                scanned.clear()
            scanned[original] = (value, found)
        return value, found

    def _tally(self, found: Mapping[str, int]) -> None:
        """Add what one scan masked, by kind, to the run's counts (REDACTIONS.txt)."""
        if found:
            with self._lock:
                for label, count in found.items():
                    self.hits[label] = self.hits.get(label, 0) + count

    def text(self, value: str) -> str:
        """Mask every known secret and every secret-shaped substring of `value`."""
        masked, found = self._scan(value)
        self._tally(found)
        return masked

    def value(self, value: Any, key: str = "") -> Any:
        """Redact any JSON-like value; fields whose name says secret are masked whole."""
        if key and _secret_field(key) and value not in (None, "", [], {}):
            if isinstance(value, str | bytes):
                return MASK
            if not isinstance(value, Mapping | list | tuple):
                return MASK
        # The types JSON gives, by their exact type first: an isinstance test against Mapping is slow.
        kind = type(value)
        if kind is str:
            return self.text(value)
        if kind is dict:
            return {str(k): self.value(v, str(k)) for k, v in value.items()}
        if kind is list:
            return [self.value(item) for item in value]
        if value is None or kind is int or kind is float or kind is bool:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, bytes):
            return self.text(value.decode("utf-8", "replace"))
        if isinstance(value, Mapping):
            return {str(k): self.value(v, str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(item) for item in value]
        return value

    def mapping(self, value: Mapping[str, Any]) -> dict[str, Any]:
        redacted = self.value(value)
        assert isinstance(redacted, dict)
        return redacted


REDACTOR = Redactor()


def register_secrets(values: Iterable[tuple[str | None, str]]) -> None:
    """Register (value, label) pairs with the process-wide redactor."""
    for secret, label in values:
        REDACTOR.add(secret, label)


def register_environment(environ: Mapping[str, str]) -> None:
    """Register the AccessKey secret and STS token of the environment, whatever command runs."""
    register_secrets((environ.get(name), label) for name, label in SECRET_ENVIRONMENT)


def redact(value: str) -> str:
    """Mask secrets in a string with the process-wide redactor."""
    return REDACTOR.text(value)


__all__ = ["MASK", "REDACTOR", "SECRET_ENVIRONMENT", "SHAPE_KINDS", "Redactor", "mask_access_key_id", "redact",
           "register_environment", "register_secrets"]
