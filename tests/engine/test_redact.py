"""The redactor masks registered secrets and secret-shaped text wherever they appear."""

from __future__ import annotations

import urllib.parse

from preflight.redact import MASK, Redactor, mask_access_key_id


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
