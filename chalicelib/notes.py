"""Private notes: what agents write about a conversation for each other. Kept beside the
messages (``NOTE#<ms>#<id>``), outside the message sequence, and never sent to a visitor."""

from __future__ import annotations

from typing import Any

from chalicelib import auth, clock, frames, routing
from chalicelib.auth import Caller
from chalicelib.fanout import Outbox
from chalicelib.store import META, AgentModel, ConversationModel, NoteModel, agent_key, keep_until, keys

NOTE = "note"


def add(who: Caller, conv_id: str, text: str, outbox: Outbox | None = None,
        conv: ConversationModel | None = None) -> dict[str, Any]:
    conv = conv or routing.held_by(who, conv_id)
    name = AgentModel.get(agent_key(who.subject), META).name
    now = clock.now_ms()
    note = NoteModel(conv.pk, keys.note_sk(now, auth.new_id(4)), seq=0, role=NOTE,
                     author=who.subject, name=name, text=text, cmid="", ts=now,
                     ttl=keep_until(now))
    note.save()
    frame = note_frame(conv.id, note)
    if outbox is not None:
        outbox.to(conv.connections_of("a:"), frame)
    return frame


def note_frame(conv_id: str, note: NoteModel) -> dict[str, Any]:
    return frames.note(conv_id, note.text, {"id": note.author, "name": note.name}, int(note.ts))


def history(who: Caller, conv_id: str, cursor: str | None = None) -> dict[str, Any]:
    """The chat's notes, oldest first, one page (``more``, ``cursor``: how many were sent);
    ``after`` echoes the cursor asked from, so the console appends rather than replaces."""
    conv = routing.held_by(who, conv_id)
    items = NoteModel.query(conv.pk, NoteModel.sk.startswith(keys.NOTE), consistent_read=True)
    return frames.notes(conv.id, [note_frame(conv.id, n) for n in items], cursor)
