"""The "Messages" inbox: offline messages are conversations on the email channel.

A message left with the form (widget ``leave_message`` or ``POST /api/offline``) becomes a
conversation with ``channel`` "email": its text is the visitor's message at seq 1, the name,
address and page are on the conversation, and it carries the visitor's id when known, so it
is in their history and a returning visitor sees the thread. It is not put in the live line
(``QUEUE#``: routed, positioned, abandoned when the visitor leaves) but in the site's inbox,
the same sparse index under ``INBOX#<site>``, newest first: an agent takes one by hand
(``take``: the same two conditional writes as accepting a chat, so two agents can never both
hold it), replies in the console (the visitor is not connected, so ``conversations.send``
queues each reply as an email, the path every by-email conversation already uses) and
closes it like any chat. Nothing here scans: the inbox is one Query, a page at a time.
"""

from __future__ import annotations

from typing import Any

from pynamodb.expressions.condition import size

from chalicelib import auth, clock, frames, routing
from chalicelib.auth import Caller
from chalicelib.errors import AT_CAPACITY, CONFLICT, Refusal
from chalicelib.fanout import Outbox
from chalicelib.store import (
    EMAIL_CHANNEL,
    ConversationModel,
    MessageModel,
    VisitorModel,
    conversation_key,
    email_key,
    expired,
    keep_until,
    keys,
    message_sk,
    update_or_old,
    visitor_key,
)

INBOX_PAGE = 50  # conversations per ``inbox`` page (one Query; the frame budget may cut it shorter)
PREVIEW_CHARS = 140  # as a chat's preview (chalicelib.conversations)
PAST_KEPT = 20  # as chalicelib.conversations.PAST_KEPT: the visitor item's list stays in budget


def open_message(site: str, *, visitor_id: str | None, email: str, name: str | None,
                 page: str | None, text: str, now: int) -> ConversationModel:
    """Store an offline message as an email-channel conversation waiting in the inbox.

    The message first, then the conversation (as an agent's invitation is written): a crash
    between the two leaves an orphan line nobody sees, never a conversation with a hole at
    seq 1. A writer who is not a known visitor (the REST form without a token) gets a fresh
    visitor id that no token holds: nobody can read the thread as them."""
    C = ConversationModel
    conv_id = auth.new_id()
    visitor = visitor_id or auth.new_id()
    tag, client = f"v:{visitor}", f"offline-{conv_id}"
    MessageModel(conversation_key(conv_id), message_sk(1), seq=1, role=auth.VISITOR, author=visitor,
                 name=name, text=text, cmid=f"offline:{conv_id}", ts=now, ttl=keep_until(now)).save()
    conv = C(conversation_key(conv_id), site=site, visitor_id=visitor, status=routing.QUEUED, seq=1,
             conns={}, created_at=now, queued_at=now, q_pk=keys.inbox_key(site),
             q_sk=keys.timed_sk(now, conv_id), visitor_name=name, email=email,
             email_key=email_key(site, email), page={"url": page} if page else None,
             preview=text[:PREVIEW_CHARS], last_at=now, last_by=tag, channel=EMAIL_CHANNEL,
             # the figures count the visitor's line like a chat's (chalicelib.stats)
             client_owners={client: tag}, message_counts={client: 1}, first_message_at={client: now},
             ttl=keep_until(now))
    conv.save()
    if visitor_id:
        _remember(site, visitor_id, conv_id, now)
    return conv


def _remember(site: str, visitor_id: str, conv_id: str, now: int) -> None:
    """List the conversation among the visitor's earlier ones (their ``past``), so the widget
    shows the thread when they come back; the oldest goes when the list is full. A visitor
    who never started a chat has no item yet: this write makes it (their token is verified)."""
    V = VisitorModel
    keep = [V.site.set(V.site | site), V.ttl.set(keep_until(now))]
    ok, old = update_or_old(V, visitor_key(visitor_id), [V.past.set((V.past | []).append([conv_id])), *keep],
                            V.past.does_not_exist() | (size(V.past) < PAST_KEPT))
    if not ok and old is not None:
        kept = [*[str(p) for p in old.past or []][-(PAST_KEPT - 1):], conv_id]
        update_or_old(V, visitor_key(visitor_id), [V.past.set(kept), *keep], None)


def waiting(site: str, cursor: str | None = None,
            limit: int = INBOX_PAGE) -> tuple[list[ConversationModel], bool]:
    """One page of the site's inbox, newest first, and whether more follow; ``cursor``: only
    those older than that place (an inbox sort key)."""
    C = ConversationModel
    older = C.q_sk < cursor if cursor else None
    found = list(C.queue_index.query(keys.inbox_key(site), older, scan_index_forward=False,
                                     limit=limit + 1))
    now = clock.now_ms()
    return [c for c in found[:limit] if not expired(c, now)], len(found) > limit


def item(conv: ConversationModel) -> dict[str, Any]:
    """An inbox line as agents see it: who, when, the first words (text, rendered as text)."""
    return {"conversation": conv.id, "at": int(conv.created_at), "preview": conv.preview,
            "name": conv.visitor_name, "email": conv.email}


def cursor_of(entry: dict[str, Any]) -> str:
    return keys.timed_sk(int(entry["at"]), entry["conversation"])


def listing(site: str, cursor: str | None = None) -> dict[str, Any]:
    """The ``inbox`` frame: one page (``after`` echoes the cursor it was asked from)."""
    convs, more = waiting(site, cursor)
    return frames.inbox(cursor, [item(c) for c in convs], cursor_of, more)


def take(who: Caller, conv_id: str, outbox: Outbox) -> routing.Assignment:
    """An agent takes a message from the inbox: it becomes one of their conversations (the
    ``assigned`` frame, as accepting a chat), and they get the inbox without it. Same
    refusals as ``accept``: a second agent finds it taken."""
    result = routing.assign(conv_id, who.subject, require_shift=False)
    if result == "full":
        raise Refusal(AT_CAPACITY, "You already have your maximum number of conversations.")
    if not isinstance(result, routing.Assignment):
        raise Refusal(CONFLICT, "That message is no longer waiting.")
    routing.announce(result, outbox)
    outbox.to([who.connection_id], listing(who.site))
    return result
