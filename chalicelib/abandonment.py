"""Abandonment: chats whose visitor left for good are closed by the minute timer.

A visitor's last tab closing puts their open chat on the site's ``GONE#<site>`` list in the
``due`` index, keyed by when they left (chalicelib.lifecycle.visitor_left); a tab coming back
takes it off. Each minute, one Query per site (its turn in ``sites.walk``) finds those gone
longer than the shorter of the site's two ``abandon`` timers; each is read once and closed
as ``abandoned`` when it is still a ghost past the timer of its state:

* waiting (``queued_after_seconds``, default 3 min): nobody ever answered; it leaves the
  line (agents get the new line) and counts as missed;
* with an agent (``assigned_after_seconds``, default 15 min): a system line says so ("The
  visitor left; chat closed after 15 min"), the agent gets it and the ``closed`` frame
  (``by: "system"``, reason ``abandoned``), their place is freed for the next chat.

The close is one conditional write: still in the state read, the visitor still gone since
the same moment, and not reachable by email, so a visitor who comes back (or chooses email)
a moment before the timer keeps their chat.
"""

from __future__ import annotations

from chalicelib import clock, conversations, frames, lifecycle, routing, sites, stats, telemetry
from chalicelib.fanout import Outbox
from chalicelib.store import (
    ConversationModel,
    MessageModel,
    get_or_none,
    keep_until,
    keys,
    message_sk,
    update_or_old,
)

SWEEP_LIMIT = 100  # chats looked at per site per minute (one read each); the rest wait a turn


def sweep(site: sites.SiteModel, outbox: Outbox, now_ms: int | None = None) -> list[str]:
    """One site's turn of the minute timer: close its abandoned chats; returns their ids."""
    now = clock.now_ms() if now_ms is None else now_ms
    timers = sites.console(site)["abandon"]
    shortest = min(lifecycle.abandon_after(timers, s) for s in (lifecycle.QUEUED, lifecycle.ASSIGNED))
    C = ConversationModel
    due_pk, _ = lifecycle.gone_keys(site.id, 0, "")
    gone = C.due_index.query(due_pk, C.due_sk < keys.due_sk(now - shortest * 1000 + 1), limit=SWEEP_LIMIT)
    closed: list[str] = []
    line_changed = False
    for entry in gone:
        conv = get_or_none(C, entry.pk, consistent_read=True)
        if conv is None:
            continue
        after = lifecycle.abandon_after(timers, conv.status)
        if conv.status in lifecycle.OPEN_STATES and lifecycle.away(conv) and not lifecycle.ghost(conv):
            # Answered by mail, never abandoned: off the list, or every minute would read it
            # again (and a site's old email chats would crowd real ghosts out of the page).
            update_or_old(C, conv.pk, [C.due_pk.remove(), C.due_sk.remove()],
                          lifecycle.EMAIL.exists() | lifecycle.BY_EMAIL.exists())
            continue
        if (conv.status not in lifecycle.OPEN_STATES or not lifecycle.ghost(conv)
                or now - int(conv.v_left_at) < after * 1000):
            continue
        if abandon(conv, after, outbox, now):
            closed.append(conv.id)
            line_changed |= conv.status == lifecycle.QUEUED
    if closed:
        routing.drain(site.id, outbox, quiet=not line_changed)
    return closed


def abandon(conv: ConversationModel, after_seconds: int, outbox: Outbox, now: int) -> bool:
    """Close one ghost chat as ``abandoned`` (see the module docstring); False when it
    changed meanwhile (the visitor came back, an agent took or closed it)."""
    C = ConversationModel
    with_agent = conv.status in lifecycle.WITH_AGENT
    note = lifecycle.abandon_note(after_seconds) if with_agent else None
    actions = lifecycle.closing(now, lifecycle.ABANDONED, conv.site, conv.id)
    if note is not None:  # the note is a message of its own, with the next seq
        actions += [C.seq.set(C.seq + 1), C.last_at.set(now), C.last_by.set("s:system")]
    condition = ((C.status == conv.status) & (C.v_left_at == int(conv.v_left_at))
                 & lifecycle.EMAIL.does_not_exist() & lifecycle.BY_EMAIL.does_not_exist())
    ok, fresh = update_or_old(C, conv.pk, actions, condition)
    if not ok or fresh is None:
        return False
    telemetry.count("ChatsAbandoned", state=conv.status)
    if note is not None:
        seq = int(fresh.seq)
        message = MessageModel(conv.pk, message_sk(seq), seq=seq, role=conversations.SYSTEM,
                               author="system", name=None, text=note, cmid=f"system:{seq}", ts=now,
                               ttl=keep_until(now))
        message.save()
        outbox.to(fresh.connections(), conversations.message_frame(fresh.id, message))
    try:
        stats.settle(fresh, "system")
    except Exception:  # closed either way; a lost figure must not undo it
        telemetry.logger.exception("abandoned conversation not counted in the figures")
    conversations.forget_open(fresh.visitor_id, fresh.id, now)
    outbox.to(fresh.connections(), frames.closed(fresh.id, fresh.summary(), "system"))
    if fresh.agent_id:
        routing.release(fresh.agent_id, fresh.id)
    return True

