"""Server frames: every type has one builder whose output matches ``frames.SERVER_FRAMES``,
and docs/protocol.md lists exactly those types (that real runs deliver matching frames is
tests/test_frames.py)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import pytest

from chalicelib import frames
from chalicelib.protocol import encode

SUMMARY = {"id": "c0nversation1", "status": "queued"}
#: One call per builder, with the arguments a caller passes (both forms where a frame has two).
SAMPLES: dict[str, list[dict[str, Any]]] = {
    "welcome": [frames.welcome("agent", "site1", "tok")],
    "conversation": [frames.conversation("c1", SUMMARY)],
    "queued": [frames.queued("c1", 2)],
    "assigned": [frames.assigned("c1", SUMMARY)],
    "requeued": [frames.requeued("c1", "Your agent had to leave.", SUMMARY)],
    "no_agents": [frames.no_agents("c1", "Nobody is here.", None)],
    "by_email": [frames.by_email("c1", "a@example.com", SUMMARY)],
    "message": [frames.message("c1", 1, "abcdef:1", {"role": "visitor", "name": "V"}, "hi", 5)],
    "ack": [frames.ack("abcdef:1", "c1", 1, 5)],
    "typing": [frames.typing("c1", "visitor", True)],
    "read": [frames.read("c1", "agent", 3)],
    "messages": [frames.messages("c1", 0, SUMMARY, [frames.message("c1", 1, "abcdef:1", {}, "x", 5)], False)],
    "past": [frames.past([SUMMARY], None)],
    "closed": [frames.closed("c1", SUMMARY, "agent"), frames.closed("c1", SUMMARY, frames.ERASED)],
    "presence": [frames.presence("c1", {"state": "away", "since": 5})],
    "queue": [frames.queue(None, [{"conversation": "c1"}], lambda i: i["conversation"])],
    "inbox": [frames.inbox(None, [{"conversation": "c1"}], lambda i: i["conversation"], False),
              frames.inbox("x", [{"conversation": "c1"}], lambda i: i["conversation"], True)],
    "shift": [frames.shift(True, False, {"id": "a1", "name": "A"})],
    "error": [frames.error("forbidden", "No."), frames.error("rate_limited", "Slow.", "r1", 3)],
    "pong": [frames.pong(None), frames.pong("r1")],
    "status": [frames.status(True, True, 1, None, None), frames.status(False, False, 0, 9, "Holiday")],
    "message_left": [frames.message_left("m1", None)],
    "page": [frames.page("c1", "v1", {"url": "https://a.example/", "title": "", "referrer": "", "ts": 1}),
             frames.page("c1", "v1", None)],
    "invitation": [frames.invitation("i1", "Hello", "Ann")],
    "rules_due": [frames.rules_due(1000)],
    "invitation_closed": [frames.invitation_closed("i1", True)],
    "invited": [frames.invited("i1", "v1", "r1")],
    "invitation_answer": [frames.invitation_answer("i1", "v1", False)],
    "note": [frames.note("c1", "psst", {"id": "a1", "name": "A"}, 5)],
    "notes": [frames.notes("c1", [frames.note("c1", "psst", {}, 5)], None)],
    "snippets": [frames.snippets([{"title": "t", "text": "x"}], "1")],
    "transfer_offer": [frames.transfer_offer("c1", SUMMARY, {"id": "a1", "name": "A"}, None)],
    "transferred": [frames.transferred("c1", {"id": "a2", "name": "B"})],
    "transfer_declined": [frames.transfer_declined("c1", "a2")],
    "transfer_pending": [frames.transfer_pending("c1", {"id": "a2", "name": "B"})],
    "rated": [frames.rated("c1", {"score": "up", "comment": "", "ts": 5})],
    "transcript_queued": [frames.transcript_queued("c1", "req123", "a@example.com", True, None)],
    "evicted": [frames.evicted()],
    "overview": [frames.overview(None, 0)],
    "history": [frames.history("ann", [SUMMARY])],
    "visitors": [frames.visitors(None, [{"visitor": "v1"}], lambda i: i["visitor"])],
    "context": [frames.context("c1", [], None, {"visitor": "v1", "page": None, "referrer": None,
                                                "user_agent": None, "timezone": None, "name": None,
                                                "email": None, "past": []}),
                frames.context("c1", [{"url": "https://a.example/"}], "0")],
}


def test_every_registered_type_has_one_builder_and_a_sample():
    builders = {name for name, f in inspect.getmembers(frames, inspect.isfunction)
                if f.__module__ == frames.__name__ and name in frames.SERVER_FRAMES}
    assert builders == set(frames.SERVER_FRAMES) == set(SAMPLES)


@pytest.mark.parametrize("kind", sorted(frames.SERVER_FRAMES))
def test_each_builder_makes_its_declared_shape(kind):
    for frame in SAMPLES[kind]:
        assert frame["type"] == kind
        assert frames.problems(frame) == []


def test_the_check_catches_unknown_missing_and_extra_keys():
    assert frames.problems({"type": "nope"}) == ["unknown frame type 'nope'"]
    assert frames.problems({"ref": "x"}) == ["unknown frame type None"]
    assert frames.problems({"type": "pong"}) == ["pong: missing key 'ref'"]
    assert frames.problems({"type": "pong", "ref": None, "extra": 1}) == ["pong: unexpected key 'extra'"]
    # the Outbox's backstop may cut required keys, never add unknown ones
    assert frames.problems({"type": "welcome", "truncated": True}) == []


def test_builders_keep_the_wire_bytes():
    """Key order is part of what clients got before frames.py existed (the erased notice too)."""
    closed = encode(frames.closed("c1", SUMMARY, "agent"))
    assert closed.startswith(b'{"type":"closed","conversation":"c1","summary"')
    assert encode(frames.closed("c1", SUMMARY, frames.ERASED)) == (
        b'{"type":"closed","conversation":"c1","by":"erased","summary":{"id":"c0nversation1","status":"queued"}}')
    assert encode(frames.ack("r", "c1", 2, 3)) == (
        b'{"type":"ack","ref":"r","conversation":"c1","seq":2,"ts":3}')
    assert encode(frames.pong(None)) == b'{"type":"pong","ref":null}'


def _documented() -> set[str]:
    text = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    section = text.split("## Server → client", 1)[1].split("\n## ", 1)[0]
    found: set[str] = set()
    for line in section.splitlines():
        cells = line.split("|")
        if line.startswith("| `") and len(cells) > 2:
            found.update(re.findall(r"`([a-z_]+)`", cells[1]))
    return found


def test_the_protocol_doc_lists_exactly_the_registered_types():
    assert _documented() == set(frames.SERVER_FRAMES)
