"""The protocol's arithmetic without the stack: UTF-8 lengths and clipping, page views, URLs,
fitting lists into one frame with cursors, the backstop that shrinks a frame, and the budgets
every action is counted against."""

from __future__ import annotations

import pytest

from chalicelib import protocol
from chalicelib.protocol import (
    ACTION_CLASS,
    BUDGETS,
    FRAME_BUDGET,
    FRAME_RESERVE,
    PAGE_FIELD_BYTES,
    SCHEMAS,
    clip,
    encode,
    fit,
    is_web_url,
    offset,
    page_at,
    page_of,
    page_view,
    shrink,
    utf8_len,
)

EMOJI = "\U0001f600"  # four bytes of UTF-8


def test_utf8_len_counts_bytes_not_characters():
    assert utf8_len("abc") == 3
    assert utf8_len("é") == 2
    assert utf8_len(EMOJI * 3) == 12


def test_clip_leaves_short_text_alone_and_never_cuts_inside_a_character():
    assert clip("hello", 5) == "hello"
    cut = clip(EMOJI * 10, 11)
    assert cut.endswith("\u2026") and utf8_len(cut) <= 11
    assert cut[:-1] == EMOJI * 2  # 8 bytes of whole emoji, then the 3-byte ellipsis
    assert clip("abcdefghij", 6) == "abc\u2026"
    assert utf8_len(clip("x" * 100, 2)) <= 3  # a cap under the ellipsis still ends in one


def test_page_view_clips_each_field_to_its_own_limit_and_keeps_the_rest():
    assert page_view(None) is None and page_view({}) is None
    long = {name: "é" * limit for name, limit in PAGE_FIELD_BYTES.items()}
    view = page_view({**long, "ts": 5})
    assert view is not None and view["ts"] == 5
    for name, limit in PAGE_FIELD_BYTES.items():
        assert utf8_len(view[name]) <= limit and view[name].endswith("\u2026")
    plain = {"url": "https://a.example/", "title": None}
    assert page_view(plain) == plain


@pytest.mark.parametrize(("value", "ok"), [
    ("https://shop.example/p?q=1", True),
    ("http://localhost:8000/", True),
    ("javascript:alert(1)", False),
    ("ftp://files.example/", False),
    ("https://a b.example/", False),
    ("https://a.example/\x00", False),
    (None, False),
    ("https://a.example/" + "x" * 2048, False),
])
def test_is_web_url_accepts_only_bounded_http_urls(value, ok):
    assert is_web_url(value) is ok


def test_fit_sends_everything_that_fits_and_says_so():
    frame = {"type": "queue"}
    assert fit(frame, "items", [1, 2, 3]) is None
    assert frame["items"] == [1, 2, 3]


def test_fit_stops_at_the_budget_and_returns_the_cursor_of_the_last_item_sent():
    items = [{"id": f"i{n}", "text": "x" * 1000} for n in range(100)]
    frame = {"type": "queue"}
    rest = fit(frame, "items", items, cursor=lambda item: item["id"])
    sent = len(frame["items"])
    assert 0 < sent < 100 and rest == f"i{sent - 1}"
    assert len(encode(frame)) <= FRAME_BUDGET - FRAME_RESERVE
    frame["items"].append(items[sent])  # one more would have broken the budget
    assert len(encode(frame)) > FRAME_BUDGET - FRAME_RESERVE


def test_fit_without_a_cursor_counts_and_always_moves_on_unless_told_not_to():
    big = ["x" * (FRAME_BUDGET + 10)]
    frame: dict = {"type": "t"}
    assert fit(frame, "items", [*big, "y"]) == 1 and frame["items"] == big  # at least one
    assert fit(frame, "items", big, cursor=str, at_least_one=False) == "" and frame["items"] == []
    assert fit(frame, "items", big, at_least_one=False) == 0


def test_page_of_and_page_at_set_more_and_a_cursor_to_continue_from():
    first = page_of({"type": "t"}, "items", [1, 2])
    assert first["more"] is False and first["cursor"] is None
    items = ["x" * 1000 for _ in range(80)]
    page = page_at({"type": "t"}, "items", items, None)
    assert page["after"] is None and page["more"] is True
    start = int(page["cursor"])
    assert start == len(page["items"])
    second = page_at({"type": "t"}, "items", items, page["cursor"])
    assert second["after"] == page["cursor"] and second["items"] == items[start:start + len(second["items"])]


@pytest.mark.parametrize(("cursor", "position"), [(None, 0), ("", 0), ("12", 12), ("abc", 0), ("-3", 0)])
def test_offset_reads_only_count_cursors(cursor, position):
    assert offset(cursor) == position


def test_shrink_makes_an_over_budget_frame_fit_and_marks_it():
    huge = {"type": "welcome", "conversation": "c1", "items": ["y" * 5000] * 40, "note": "z" * 100_000}
    small = shrink(huge)
    assert len(encode(small)) <= FRAME_BUDGET
    assert small["type"] == "welcome" and small["conversation"] == "c1" and small["truncated"] is True
    assert small["items"] and all(utf8_len(i) < 5000 for i in small["items"])


def test_every_action_but_send_has_a_budget_class():
    assert set(ACTION_CLASS) == set(SCHEMAS) - {"send"}
    assert set(ACTION_CLASS.values()) <= set(BUDGETS)
    assert not BUDGETS["ping"].durable and all(b.durable for k, b in BUDGETS.items() if k != "ping")
    assert all(b.limit > 0 and b.window_seconds > 0 for b in BUDGETS.values())


def test_a_schema_field_refuses_what_its_rule_refuses():
    with pytest.raises(protocol.Refusal) as refused:
        protocol.parse('{"action": "sync", "conversation": "abcdefgh12", "after": -1}')
    assert refused.value.code == "bad_frame" and "after" in str(refused.value)
