"""Tokens, password hashes and frame parsing, without the stack."""

from __future__ import annotations

import pytest

from chalicelib import auth
from chalicelib.errors import Refusal
from chalicelib.protocol import MAX_TEXT_CHARS, SCHEMAS, parse


def test_token_round_trip_and_every_kind_of_tampering():
    token = auth.issue("visitor", "v123", "site1", ttl=60, now=1_000)
    claims = auth.verify(token, now=1_030)
    assert (claims.role, claims.subject, claims.site) == ("visitor", "v123", "site1")
    with pytest.raises(auth.InvalidToken):
        auth.verify(token, now=1_061)  # expired
    payload, mac = token.split(".")
    other = auth.issue("agent", "v123", "site1", ttl=60, now=1_000).split(".")[0]
    for bad in (f"{other}.{mac}", f"{payload}.{mac[:-2]}xx", payload, "", "a.b.c"):
        with pytest.raises(auth.InvalidToken):
            auth.verify(bad, now=1_030)


def test_passwords_are_salted_slow_hashes():
    first, second = auth.hash_password("hunter2hunter2"), auth.hash_password("hunter2hunter2")
    assert first != second and first.startswith("scrypt$16384$")
    assert auth.check_password("hunter2hunter2", first)
    assert not auth.check_password("hunter2hunter3", first)
    assert not auth.check_password("hunter2hunter2", "garbage")


def test_parse_accepts_every_schema_with_its_required_fields():
    samples = {"conversation": "abcdefgh12", "id": "client1:1", "text": "hi", "on": True,
               "seq": 3, "after": 0, "limit": 5, "email": "a@b.co",
               "url": "https://x.example/", "visitor": "v1", "accept": True,
               "to": "bob", "score": "up"}
    per_action = {"transcript": {"id": "request1"}}  # a request id, not a message id
    for action, schema in SCHEMAS.items():
        body = {name: per_action.get(action, {}).get(name, samples[name])
                for name, f in schema.items() if f.required}
        frame = parse(__import__("json").dumps({"action": action, **body}))
        assert frame.action == action and frame.body == body


@pytest.mark.parametrize(("raw", "code"), [
    (None, "bad_frame"),
    ("", "bad_json"),
    ('"just a string"', "bad_frame"),
    ('{"action": 5}', "bad_frame"),
    ('{"action": "send", "conversation": "abcdefgh12", "id": "c1:1", "text": "x"}', "bad_frame"),
    ('{"action": "sync", "conversation": "abcdefgh12", "after": 1.5}', "bad_frame"),
    ('{"action": "sync", "conversation": "abcdefgh12", "after": 1, "limit": 0}', "bad_frame"),
    ('{"action": "typing", "conversation": "short", "on": true}', "bad_frame"),
])
def test_parse_refuses_with_a_code(raw, code):
    with pytest.raises(Refusal) as refused:
        parse(raw)
    assert refused.value.code == code


def test_text_limit_counts_characters_not_bytes():
    emoji = "\U0001F600" * MAX_TEXT_CHARS
    frame = parse(f'{{"action":"send","conversation":"abcdefgh12","id":"client1:1","text":"{emoji}"}}')
    assert len(frame["text"]) == MAX_TEXT_CHARS
