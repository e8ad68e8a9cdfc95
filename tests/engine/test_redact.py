"""The redactor masks registered secrets and secret-shaped text wherever they appear."""

from __future__ import annotations

import base64
import json
import time
import urllib.parse

import hypothesis
import pytest
from hypothesis import strategies as st

from preflight.engine.redact import MASK, Redactor, mask_access_key_id


def test_registered_values_are_masked_also_when_url_encoded() -> None:
    redactor = Redactor()
    secret = "k3y/with+odd=chars&more"
    redactor.add(secret, "api_key")
    text = f"plain {secret} quoted {urllib.parse.quote(secret, safe='')} plus {urllib.parse.quote_plus(secret)}"
    assert secret not in redactor.text(text)
    assert urllib.parse.quote(secret, safe="") not in redactor.text(text)
    assert redactor.text(text).count(MASK) == 3 and redactor.hits["api_key"] >= 1


def test_secret_shapes_are_masked_without_registration() -> None:
    redactor = Redactor()
    cases = {
        "Authorization: DW-ms-abc123-secret": "Authorization: " + MASK,
        '{"authorization": "Bearer sk-verysecrettoken"}': '{"authorization": "' + MASK + '"}',
        "headers={'Authorization': 'ACS3-HMAC-SHA256 Credential=LTAI5tAbc'}": "headers={'Authorization': '"
                                                                              + MASK + "'}",
        "GET /v1/models?api_key=abcdef123456 HTTP/1.1": "GET /v1/models?api_key=" + MASK + " HTTP/1.1",
        "the key DW-ms-0a1b2c3d4e was rejected": f"the key {MASK} was rejected",
        "AccessKeyId LTAI5tQwErTyUiOp1234 denied": "AccessKeyId LTAI**** denied",
    }
    for given, expected in cases.items():
        assert redactor.text(given) == expected


def test_evidence_fields_named_like_secrets_are_masked_whole() -> None:
    redactor = Redactor()
    evidence = {"api_key": "anything", "headers": {"Authorization": "x y z"}, "status": 401,
                "nested": [{"security_token": "t" * 20}], "key_length": 24}
    assert redactor.mapping(evidence) == {"api_key": MASK, "headers": {"Authorization": MASK}, "status": 401,
                                          "nested": [{"security_token": MASK}], "key_length": 24}


def test_access_key_ids_are_shown_by_their_first_four_characters() -> None:
    assert mask_access_key_id("LTAI5tQwErTyUiOp1234") == "LTAI****"
    assert mask_access_key_id("") == ""


def test_short_or_empty_values_are_not_registered() -> None:
    redactor = Redactor()
    redactor.add("", "x")
    redactor.add("abc", "x")
    assert redactor.text("abc is fine") == "abc is fine"


@pytest.mark.parametrize(("given", "expected"), [
    ("Authorization: Basic dXNlcjpzM2NyZXQ=", "Authorization: " + MASK),
    ("authorization: Token abcdef0123456789", "authorization: " + MASK),
    ("Authorization: sk-plainkey0123 (rejected)", "Authorization: " + MASK),  # one word too many is safe
    ("Authorization=Digest username\nnext line", "Authorization=" + MASK + "\nnext line"),
    ('{"Authorization": "Custom a\\"b c"}', '{"Authorization": "' + MASK + '"}'),
    ("<td>Authorization: DW-ms-abc123-secret</td>", "<td>Authorization: " + MASK + "</td>"),
    ("sent Bearer eyJhbGciOi.payload.sig", "sent Bearer " + MASK),
    ("https://user:pa55w0rd@proxy.example.com:8080/v1", "https://user:" + MASK + "@proxy.example.com:8080/v1"),
    ("http://h/v1/models?model=x&apikey=abc123&x=1", "http://h/v1/models?model=x&apikey=" + MASK + "&x=1"),
    ("GET /?Action=GetProject&SecurityToken=CAISabc&Signature=f00d", "GET /?Action=GetProject&SecurityToken="
     + MASK + "&Signature=" + MASK),
    ('{"SecurityToken": "anything-at-all"}', '{"SecurityToken": "' + MASK + '"}'),
    ("x-acs-security-token: tok3n-value", "x-acs-security-token: " + MASK),
    ("token CAIS1a2B3c4D5e6F7g8H9i0Jk.lMnO in text", "token " + MASK + " in text"),
    ("AccessKeySecret=abc/def+ghi", "AccessKeySecret=" + MASK),
    ("ak STS.NUgYrLnoC37mZZCNnAbCdEf is temporary", "ak STS.**** is temporary"),
    ("Authorization: [REDACTED] stays one mask", "Authorization: [REDACTED] stays one mask"),
])
def test_more_secret_shapes(given: str, expected: str) -> None:
    assert Redactor().text(given) == expected


def test_registered_values_are_masked_json_escaped_and_base64_encoded() -> None:
    redactor = Redactor()
    secret = 'Secr3t"with\\slash/and+plus'
    redactor.add(secret, "access_key_secret")
    body = json.dumps({"echo": secret}) + " " + base64.b64encode(secret.encode()).decode()
    masked, found = redactor.scan(body)
    assert masked == '{"echo": "' + MASK + '"} ' + MASK + "="
    assert found == {"access_key_secret": 2}


def test_a_server_echo_of_the_key_is_masked() -> None:
    redactor = Redactor()
    redactor.add("plain-key-without-prefix-0001", "api_key:prod/qwen")
    echo = '{"error": {"message": "Invalid API key \'Bearer plain-key-without-prefix-0001\', check it"}}'
    assert redactor.text(echo) == '{"error": {"message": "Invalid API key \'Bearer ' + MASK + '\', check it"}}'


def test_scan_counts_what_it_masked_by_kind() -> None:
    redactor = Redactor()
    redactor.add("registered-0001", "api_key:t/s")
    _, found = redactor.scan("registered-0001 and Authorization: Basic abc and LTAI5tQwErTyUiOp1234 registered-0001")
    assert found == {"api_key:t/s": 2, "Authorization header": 1, "AccessKey id (first 4 characters kept)": 1}
    assert redactor.hits["api_key:t/s"] == 2


def test_environment_secrets_are_registered() -> None:
    from preflight.engine.redact import REDACTOR, register_environment

    register_environment({"ALIBABA_CLOUD_ACCESS_KEY_SECRET": "EnvAccessKeySecret000111",
                          "ALIBABA_CLOUD_SECURITY_TOKEN": "EnvStsToken0000999", "HOME": "/root"})
    assert REDACTOR.text("s=EnvAccessKeySecret000111 t=EnvStsToken0000999 h=/root") == f"s={MASK} t={MASK} h=/root"
    assert {"access_key_secret", "security_token"} <= set(REDACTOR.labels())


def test_redaction_stays_linear_on_hostile_text() -> None:
    redactor = Redactor()
    for index in range(20):
        redactor.add(f"registered-secret-{index:04d}", "api_key")
    hostile = ["a." * 200_000, "http://u:" * 50_000, "Authorization: " * 30_000, "DW-" * 100_000,
               "?key=" * 50_000, "a" * 400_000, "LTAI" * 100_000, "://u:p@" * 50_000, "://" * 100_000 + ":x@",
               "@" * 300_000, ("://" + "x" * 300 + "@") * 1_000]
    started = time.perf_counter()
    for text in hostile:
        redactor.text(text)
    # Linear work on these ~3 MB takes well under a second; a quadratic pattern would take minutes.
    assert time.perf_counter() - started < 5.0


def test_a_password_in_a_url_is_masked_among_thousands_of_plain_urls() -> None:
    """The URL shape is looked for from each @, not from each "://" of a report's docs links."""
    plain_urls = "docs https://www.alibabacloud.com/help/en/dataworks/x " * 5_000
    text = plain_urls + "proxy http://user:s3cretPass@proxy.example:3128/ and mail a@b.example"
    assert Redactor().text(text) == plain_urls + f"proxy http://user:{MASK}@proxy.example:3128/ and mail a@b.example"


@pytest.mark.parametrize(("given", "expected"), [
    ("DataWorks wants Authorization: DW-... (the raw key); 'Bearer DW-...' is refused.",
     "DataWorks wants Authorization: DW-... (the raw key); 'Bearer DW-...' is refused."),
    ("sent Authorization: sk-abcdefgh1234... (cut)", "sent Authorization: " + MASK + " (cut)"),
    ("excerpt: Bearer opaqueTokenValue1234...", "excerpt: Bearer " + MASK),
])
def test_placeholders_in_prose_stay_but_truncated_secrets_do_not(given: str, expected: str) -> None:
    assert Redactor().text(given) == expected


def _mask_by_definition(text: str) -> tuple[str, list[str]]:
    """What one alternation of the shapes does under re.sub: at each position the first shape that matches
    there wins, and scanning goes on after it; elsewhere one character is kept and the scan moves on."""
    from preflight.engine.redact import _SHAPES, _patterns

    pieces, kinds, position = [], [], 0
    while position < len(text):
        for shape, pattern in zip(_SHAPES, _patterns()[0], strict=True):
            match = pattern.match(text, position)
            if match is not None:
                pieces.append((match.groupdict().get("keep") or "") + shape.mask)
                kinds.append(shape.kind)
                position = match.end()
                break
        else:
            pieces.append(text[position])
            position += 1
    return "".join(pieces), kinds


# Pieces of every shape and of near misses, so that random texts hit overlaps, ties and boundaries.
FRAGMENTS = ["Authorization: ", "authorization=", "AUTHORIZATION", '"Authorization": "', "'", '"', "Bearer ",
             "bearer", "xbearer ", "DW-", "DW-ms-abc123", "xDW-ms-abc123", "?key=", "&token=", "?api_key=",
             "https://", "://", "user:", "pa55word", "@host", "security_token=", "SecurityToken: ",
             "CAIS" + "A" * 24, "access_key_secret: ", "LTAI", "LTAI5tAbcdefgh12", "STS.", "STS.abcdefghij",
             "[REDACTED]", "...", " ", "\n", "\t", ",", ";", "}", "<", "&", "=", ":", "/", "a", "Z", "9", "-", "_",
             "\u0130", "\u00e9", "\\"]


@hypothesis.settings(max_examples=400, deadline=None)
@hypothesis.given(st.lists(st.sampled_from(FRAGMENTS), max_size=30).map("".join))
def test_the_fast_scan_masks_exactly_what_the_alternation_does(text: str) -> None:
    from collections import Counter

    from preflight.engine.redact import _mask_shapes

    found: Counter[str] = Counter()
    expected, kinds = _mask_by_definition(text)
    assert _mask_shapes(text, found) == expected
    assert found == Counter(kinds)


def test_text_whose_lowercase_does_not_align_is_still_masked() -> None:
    # U+0130 lowercases to two characters, so the fast path cannot use a lowercased copy; the fallback must.
    text = "\u0130 AUTHORIZATION: sekrit-value\nthen bearer abcdefghij"
    assert Redactor().text(text) == f"\u0130 AUTHORIZATION: {MASK}\nthen bearer {MASK}"


def test_text_scanned_before_a_secret_was_registered_is_scanned_again() -> None:
    """Scans of repeated text are remembered; a newly registered secret forgets them."""
    redactor = Redactor()
    text = "the key is sk-internal-7f3a9c and nothing else"
    assert redactor.text(text) == text
    redactor.add("sk-internal-7f3a9c", "api_key")
    assert redactor.text(text) == f"the key is {MASK} and nothing else"
    redactor.scan(text)
    assert redactor.hits["api_key"] == 2  # a remembered scan still counts what it masked
    assert redactor.text(text) == f"the key is {MASK} and nothing else"
    assert redactor.hits["api_key"] == 3  # and so does text(), which skips the scan's counters


def test_json_values_of_every_type_are_redacted_alike() -> None:
    """The exact-type fast paths of value() and the general ones give the same answer."""
    import collections

    redactor = Redactor()
    redactor.add("sk-internal-7f3a9c", "api_key")
    plain = {"a": ["x sk-internal-7f3a9c", 1, 2.5, True, None, ("t", "sk-internal-7f3a9c")],
             "api_key": 12345, "nested": {"password": "hunter22", "ok": "fine"}, "raw": b"sk-internal-7f3a9c"}
    ordered = collections.OrderedDict(plain)  # a Mapping that is not exactly a dict
    expected = {"a": [f"x {MASK}", 1, 2.5, True, None, ["t", MASK]], "api_key": MASK,
                "nested": {"password": MASK, "ok": "fine"}, "raw": MASK}
    assert redactor.value(plain) == expected
    assert redactor.value(ordered) == expected


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(st.lists(st.sampled_from(FRAGMENTS), max_size=30).map("".join))
def test_a_text_full_of_query_triggers_is_masked_the_same_by_a_regex_search(text: str) -> None:
    """Past _SEARCH_FROM ? and & in one text (an HTML page's entities), the query shape is found by a regex
    search instead of from each trigger; both ways must mask the same."""
    from collections import Counter

    import preflight.engine.redact as redact

    expected, kinds = _mask_by_definition(text)
    saved = redact._SEARCH_FROM
    redact._SEARCH_FROM = -1
    try:
        found: Counter[str] = Counter()
        assert redact._mask_shapes(text, found) == expected
        assert found == Counter(kinds)
    finally:
        redact._SEARCH_FROM = saved


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(st.lists(st.sampled_from(["DW-alpha-0001", "DW-alpha-00012", "DW-beta-0001", "DW-", "DW-alpha",
                                            "xDW-alpha-0001", "RFctYWxwaGEtMDAwMQ", "filler text ", "\n"]),
                           max_size=40).map("".join))
def test_a_long_text_finds_the_same_registered_secrets_as_a_search_for_each(text: str) -> None:
    """From _LOCATE_FROM characters, registered secrets are read off where their prefix occurs; what is masked
    must not change."""
    padding = "." * 5000
    long_text = padding + text + padding
    redactor = Redactor()
    for secret in ("DW-alpha-0001", "DW-alpha-00012", "DW-beta-0001", "DW-gamma-0001"):
        redactor.add(secret, "api_key")
    from collections import Counter

    from preflight.engine.redact import _mask_shapes

    expected = long_text
    for secret in sorted(redactor._secrets, key=len, reverse=True):  # each registered value, longest first
        expected = expected.replace(secret, MASK)
    assert redactor.text(long_text) == _mask_shapes(expected, Counter())
    assert "DW-alpha-0001" not in redactor.text(long_text) and "DW-beta-0001" not in redactor.text(long_text)


def test_a_long_text_made_of_a_secret_prefix_is_still_masked_in_linear_time() -> None:
    redactor = Redactor()
    for index in range(100):
        redactor.add(f"sk-key-{index:04d}-abcdef", "api_key")
    text = "sk-" * 200_000 + "sk-key-0042-abcdef" + "sk-" * 10
    started = time.perf_counter()
    assert redactor.text(text) == "sk-" * 200_000 + MASK + "sk-" * 10
    assert time.perf_counter() - started < 5.0
