"""Server frames: one builder per frame type the server sends, and the list of them.

``protocol.py`` holds what clients may send; this module is the other direction. Every
``{"type": ...}`` dict posted to a connection is made here, so a frame's shape has one home
and ``SERVER_FRAMES`` can say which keys each type carries (docs/protocol.md lists the same
types; tests/test_frames.py checks both, and checks every frame the suite's runs deliver).

Builders keep each frame's keys in the order they have always been sent (the wire format is
byte-for-byte what clients already parse). Paged frames are bounded here with
``protocol.fit`` / ``page_of`` / ``page_at``; a builder whose frame is filled list by list
by its caller (``welcome``, ``overview``) returns the head the caller fits lists into.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalicelib import errors
from chalicelib.protocol import fit, page_at, page_of

Frame = dict[str, Any]
#: ``closed.by`` when an admin erased the visitor's data (the summary then carries only ids).
ERASED = "erased"


@dataclass(frozen=True)
class Shape:
    """The keys one server frame type carries besides ``type``: always, and sometimes."""

    required: frozenset[str]
    optional: frozenset[str] = frozenset()


def _shape(required: str, optional: str = "") -> Shape:
    return Shape(frozenset(required.split()), frozenset(optional.split()))


_PAGE = "items more cursor after"  # protocol.page_at / page_of
#: Every server frame type and its keys. ``truncated`` may come with any of them: the
#: Outbox's backstop (``protocol.shrink``) marks a frame it had to cut.
SERVER_FRAMES: dict[str, Shape] = {
    "welcome": _shape("role site token",
                      "agent next conversations offers snippets queue visitor status conversation"),
    "conversation": _shape("conversation summary"),
    "queued": _shape("conversation position"),
    "assigned": _shape("conversation summary"),
    "requeued": _shape("conversation message summary"),
    "no_agents": _shape("conversation message email"),
    "by_email": _shape("conversation email summary"),
    "message": _shape("conversation seq id from text ts", "channel"),
    "ack": _shape("ref conversation seq ts"),
    "typing": _shape("conversation role on"),
    "read": _shape("conversation role seq"),
    "messages": _shape("conversation after summary items more", "ref"),
    "past": _shape("items next", "ref"),
    "closed": _shape("conversation summary by"),
    "presence": _shape("conversation state since"),
    "queue": _shape(_PAGE),
    "inbox": _shape(_PAGE),
    "shift": _shape("on away agent"),
    "error": _shape("code message", "ref retry_after"),
    "pong": _shape("ref"),
    "status": _shape("online in_hours agents next_open", "closure"),
    "message_left": _shape("id ref"),
    "page": _shape("conversation visitor", "url title referrer ts"),
    "invitation": _shape("id text from"),
    "rules_due": _shape("in_ms"),
    "invitation_closed": _shape("id accepted"),
    "invited": _shape("id visitor ref"),
    "invitation_answer": _shape("id visitor accepted"),
    "note": _shape("conversation text from ts"),
    "notes": _shape("conversation " + _PAGE),
    "snippets": _shape(_PAGE),
    "transfer_offer": _shape("conversation summary from note"),
    "transferred": _shape("conversation to"),
    "transfer_declined": _shape("conversation by"),
    "transfer_pending": _shape("conversation to"),
    "rated": _shape("conversation rating", "ref"),
    "transcript_queued": _shape("conversation id email confirm ref"),
    "evicted": _shape(""),
    "overview": _shape("after queue_length next", "agents queue conversations"),
    "history": _shape("query items more cursor"),
    "visitors": _shape(_PAGE),
    "context": _shape("conversation pages more cursor after",
                      "visitor page referrer user_agent timezone name email past"),
}


def problems(frame: Any) -> list[str]:
    """What is wrong with ``frame`` against ``SERVER_FRAMES`` (empty when it is valid). A frame
    the Outbox cut (``truncated``) may lack keys; it must still be of a known type."""
    if not isinstance(frame, dict):
        return [f"not an object: {type(frame).__name__}"]
    kind = frame.get("type")
    shape = SERVER_FRAMES.get(kind) if isinstance(kind, str) else None
    if shape is None:
        return [f"unknown frame type {kind!r}"]
    keys = set(frame) - {"type", "truncated"}
    found = [f"{kind}: unexpected key {k!r}" for k in sorted(keys - shape.required - shape.optional)]
    if not frame.get("truncated"):
        found += [f"{kind}: missing key {k!r}" for k in sorted(shape.required - keys)]
    return found


# -- one builder per type, in the order of docs/protocol.md ------------------------------------

def welcome(role: str, site: str, token: str) -> Frame:
    """The head of ``welcome``; presence fills in the caller's state list by list."""
    return {"type": "welcome", "role": role, "site": site, "token": token}


def conversation(conv_id: str, summary: dict[str, Any]) -> Frame:
    return {"type": "conversation", "conversation": conv_id, "summary": summary}


def queued(conv_id: str, position: int) -> Frame:
    return {"type": "queued", "conversation": conv_id, "position": position}


def assigned(conv_id: str, summary: dict[str, Any]) -> Frame:
    return {"type": "assigned", "conversation": conv_id, "summary": summary}


def requeued(conv_id: str, message: str, summary: dict[str, Any]) -> Frame:
    return {"type": "requeued", "conversation": conv_id, "message": message, "summary": summary}


def no_agents(conv_id: str, message: str, email: str | None) -> Frame:
    return {"type": "no_agents", "conversation": conv_id, "message": message, "email": email}


def by_email(conv_id: str, email: str, summary: dict[str, Any]) -> Frame:
    return {"type": "by_email", "conversation": conv_id, "email": email, "summary": summary}


def message(conv_id: str, seq: int, message_id: str, author: dict[str, Any], text: str, ts: int,
            channel: str | None = None) -> Frame:
    """``channel`` only for a line that did not travel by web chat ("email"): chat lines keep
    the shape clients have always had."""
    frame: Frame = {"type": "message", "conversation": conv_id, "seq": seq, "id": message_id,
                    "from": author, "text": text, "ts": ts}
    if channel:
        frame["channel"] = channel
    return frame


def ack(ref: str, conv_id: str, seq: int, ts: int) -> Frame:
    return {"type": "ack", "ref": ref, "conversation": conv_id, "seq": seq, "ts": ts}


def typing(conv_id: str, role: str, on: bool) -> Frame:
    return {"type": "typing", "conversation": conv_id, "role": role, "on": on}


def read(conv_id: str, role: str, seq: int) -> Frame:
    return {"type": "read", "conversation": conv_id, "role": role, "seq": seq}


def messages(conv_id: str, after: int, summary: dict[str, Any], items: list[Frame], more: bool) -> Frame:
    """One bounded page of ``message`` frames; ``more`` also when the page was cut by bytes
    (``more`` given true when the caller read past its ``limit``)."""
    page: Frame = {"type": "messages", "conversation": conv_id, "after": after, "summary": summary}
    rest = fit(page, "items", items, lambda m: m["seq"])
    page["more"] = rest is not None or more
    return page


def past(items: list[dict[str, Any]], then: str | None) -> Frame:
    """A page of the visitor's earlier chats; ``next`` is where a cut page stopped, else ``then``
    (the id to read on from, or None at the end)."""
    frame: Frame = {"type": "past"}
    rest = fit(frame, "items", items, lambda s: s["id"])
    frame["next"] = rest if rest is not None else then
    return frame


def closed(conv_id: str, summary: dict[str, Any], by: str) -> Frame:
    if by == ERASED:  # this notice has always put ``by`` first; kept so its bytes do not change
        return {"type": "closed", "conversation": conv_id, "by": by, "summary": summary}
    return {"type": "closed", "conversation": conv_id, "summary": summary, "by": by}


def presence(conv_id: str, view: dict[str, Any]) -> Frame:
    """``view`` is ``lifecycle.presence``: ``state`` and ``since``."""
    return {"type": "presence", "conversation": conv_id, **view}


def queue(after: str | None, items: list[dict[str, Any]], cursor: Callable[[Any], str | int]) -> Frame:
    return page_of({"type": "queue", "after": after}, "items", items, cursor)


def inbox(after: str | None, items: list[dict[str, Any]], cursor: Callable[[Any], str | int],
          more: bool) -> Frame:
    """A page of the "Messages" inbox (chalicelib.inbox), newest first; ``more`` also when the
    Query itself stopped at its page size."""
    frame = page_of({"type": "inbox", "after": after}, "items", items, cursor)
    if more and not frame["more"] and items:
        frame["more"], frame["cursor"] = True, cursor(items[-1])
    return frame


def shift(on: bool, away: bool, agent: dict[str, Any]) -> Frame:
    return {"type": "shift", "on": on, "away": away, "agent": agent}


def error(code: str, message: str, ref: str | None = None, retry_after: int | None = None) -> Frame:
    """The ``error`` frame, one shape for every refusal: rendered by the refusal's own module
    (``chalicelib.errors``), which REST shares, so the two never drift apart."""
    return errors.error_frame(code, message, ref, retry_after)


def pong(ref: str | None) -> Frame:
    return {"type": "pong", "ref": ref}


def status(online: bool, in_hours: bool, agents: int, next_open: int | None, closure: str | None) -> Frame:
    """Is anyone there; ``closure`` only when the site is closed for a dated closure."""
    frame: Frame = {"type": "status", "online": online, "in_hours": in_hours, "agents": agents,
                    "next_open": next_open}
    if closure is not None:
        frame["closure"] = closure
    return frame


def message_left(message_id: str, ref: str | None) -> Frame:
    return {"type": "message_left", "id": message_id, "ref": ref}


def page(conv_id: str, visitor: str, view: dict[str, Any] | None) -> Frame:
    """``view`` is ``protocol.page_view`` of the visited page (already clipped)."""
    return {"type": "page", "conversation": conv_id, "visitor": visitor, **(view or {})}


def invitation(invitation_id: str, text: str, name: str) -> Frame:
    return {"type": "invitation", "id": invitation_id, "text": text, "from": {"name": name}}


def rules_due(in_ms: int) -> Frame:
    return {"type": "rules_due", "in_ms": in_ms}


def invitation_closed(invitation_id: str, accepted: bool) -> Frame:
    return {"type": "invitation_closed", "id": invitation_id, "accepted": accepted}


def invited(invitation_id: str, visitor: str, ref: str | None) -> Frame:
    return {"type": "invited", "id": invitation_id, "visitor": visitor, "ref": ref}


def invitation_answer(invitation_id: str, visitor: str, accepted: bool) -> Frame:
    return {"type": "invitation_answer", "id": invitation_id, "visitor": visitor, "accepted": accepted}


def note(conv_id: str, text: str, author: dict[str, Any], ts: int) -> Frame:
    return {"type": "note", "conversation": conv_id, "text": text, "from": author, "ts": ts}


def notes(conv_id: str, items: list[Frame], cursor: str | None) -> Frame:
    return page_at({"type": "notes", "conversation": conv_id}, "items", items, cursor)


def snippets(items: list[Any], cursor: str | None) -> Frame:
    return page_at({"type": "snippets"}, "items", items, cursor)


def transfer_offer(conv_id: str, summary: dict[str, Any], giver: dict[str, Any],
                   note: dict[str, Any] | None) -> Frame:
    """``note`` is the giver's note as ``note`` frames carry it, or None."""
    return {"type": "transfer_offer", "conversation": conv_id, "summary": summary, "from": giver,
            "note": note}


def transferred(conv_id: str, to: dict[str, Any]) -> Frame:
    return {"type": "transferred", "conversation": conv_id, "to": to}


def transfer_declined(conv_id: str, by: str) -> Frame:
    return {"type": "transfer_declined", "conversation": conv_id, "by": by}


def transfer_pending(conv_id: str, to: dict[str, Any]) -> Frame:
    return {"type": "transfer_pending", "conversation": conv_id, "to": to}


def rated(conv_id: str, rating: dict[str, Any]) -> Frame:
    """The stored rating; the visitor's own answer adds its ``ref``."""
    return {"type": "rated", "conversation": conv_id,
            "rating": {"score": rating["score"], "comment": rating["comment"], "ts": rating["ts"]}}


def transcript_queued(conv_id: str, request_id: str, email: str, confirm: bool, ref: str | None) -> Frame:
    return {"type": "transcript_queued", "conversation": conv_id, "id": request_id, "email": email,
            "confirm": confirm, "ref": ref}


def evicted() -> Frame:
    """The ``evicted`` frame: this tab was one too many for its visitor (the newest took its
    place) and is about to be hung up. The client does not reconnect until its page is seen
    again or used: reconnecting at once would only evict the next oldest tab."""
    return {"type": "evicted"}


def overview(after: str | None, queue_length: int) -> Frame:
    """The head of ``overview``; supervision fits its lists in and names cut ones in ``next``."""
    return {"type": "overview", "after": after, "queue_length": queue_length, "next": {}}


def history(query: str, items: list[dict[str, Any]]) -> Frame:
    return page_of({"type": "history", "query": query}, "items", items)


def visitors(after: str | None, items: list[dict[str, Any]], cursor: Callable[[Any], str | int]) -> Frame:
    return page_of({"type": "visitors", "after": after}, "items", items, cursor)


def context(conv_id: str, pages: list[Any], cursor: str | None, about: dict[str, Any] | None = None) -> Frame:
    """The visitor's context: with ``about`` (visitor, page, referrer, ..., past) the first
    frame; without, only more ``pages`` from ``cursor``."""
    return page_at({"type": "context", "conversation": conv_id, **(about or {})}, "pages", pages, cursor)
