"""The conversation lifecycle: its states, who moves it from which to which, why it closed,
and the timers. docs/lifecycle.md is the same written out as tables.

Stored states (``status``)::

    queued ──assign/accept──▶ assigned ──agent reads──▶ active
      ▲                          │                         │
      └────── requeue (agent gone past grace, handback) ───┘
    queued / assigned / active ──close / abandon / erase──▶ closed (with a ``reason``)

Derived, never stored as a status (so a transition cannot forget them):

* **visitor away**: ``v_left_at`` is set (the visitor's last tab closed; cleared when a tab
  comes back). Agents see it as ``presence`` ``away`` ``since`` then; ``online`` otherwise.
* **by email**: the visitor can still be reached by email (they chose to continue by email,
  ``by_email``, or gave an address on the chat). Such a chat is never a ghost: it is routed,
  digested and never abandoned, because the agent's reply reaches them by mail.
* **ghost**: away and not by email. A ghost is not handed to an agent, gets no holding
  message, is not mailed to the team as unanswered, and is closed as ``abandoned`` by the
  minute timer once away longer than the site's ``abandon`` setting (``queued_after_seconds``
  while it waits, ``assigned_after_seconds`` once an agent has it).

Every transition is one conditional write on the conversation item, so two actors racing
(two agents accepting, the timer and a returning visitor) can never both win:

====================  =====================  ===================  ===================================
from -> to            who / what             where                condition of the write
====================  =====================  ===================  ===================================
new -> queued         visitor ``start``      conversations.start  the visitor's ``conv`` is free
queued -> assigned    routing, ``accept``    routing.assign       queued, same site, not a ghost
assigned -> active    the agent reads it     conversations.read   open, the reader takes part
with agent -> queued  grace ends, handback   routing.requeue      held by that agent
with agent -> same    transfer accepted      transfers.answer     held by the giver, offer stands
open -> closed        agent / visitor        conversations.close  open, the closer takes part
open -> closed        minute timer           abandonment.sweep    status and ``v_left_at`` as read,
                                                                  not by email
closed -> queued      visitor's email answer lifecycle.reopen     closed (the inbox, ``INBOX#``)
====================  =====================  ===================  ===================================
"""

from __future__ import annotations

from typing import Any

from pynamodb.expressions.condition import Condition
from pynamodb.expressions.operand import Path
from pynamodb.expressions.update import Action

from chalicelib import frames
from chalicelib.store import ConversationModel, keep_until, keys, update_or_old

QUEUED, ASSIGNED, ACTIVE, CLOSED = "queued", "assigned", "active", "closed"
OPEN_STATES = (QUEUED, ASSIGNED, ACTIVE)
WITH_AGENT = (ASSIGNED, ACTIVE)

# Why a conversation closed (``reason`` on the item and in its summary).
RESOLVED = "resolved"  # an agent closed it
ENDED = "ended"  # the visitor ended it
ABANDONED = "abandoned"  # the minute timer closed it: the visitor had been gone too long
MOVED_TO_EMAIL = "moved_to_email"  # it goes on by email (the nowait part of issue 16)
REASONS = (RESOLVED, ENDED, ABANDONED, MOVED_TO_EMAIL)

# Who moves a conversation from which state to which (docs/lifecycle.md, the table above).
TRANSITIONS: dict[tuple[str, str], tuple[str, ...]] = {
    (QUEUED, ASSIGNED): ("routing", "agent"),
    (ASSIGNED, ACTIVE): ("agent",),
    (ASSIGNED, QUEUED): ("grace", "agent"),
    (ACTIVE, QUEUED): ("grace", "agent"),
    (QUEUED, CLOSED): ("visitor", "agent", "timer", "erasure"),
    (ASSIGNED, CLOSED): ("visitor", "agent", "timer", "erasure"),
    (ACTIVE, CLOSED): ("visitor", "agent", "timer", "erasure"),
    (CLOSED, QUEUED): ("email",),  # the visitor's emailed answer: back in the site's inbox
}

# Presence as agents see it.
ONLINE, AWAY = "online", "away"

# Abandonment timers: the site's ``console.abandon`` settings (chalicelib.sites), in seconds.
ABANDON_DEFAULTS = {"queued_after_seconds": 180, "assigned_after_seconds": 900}
ABANDON_BOUNDS = (60, 86400)
# The visitor chose to continue by email (set by the nowait helper's ``continue_by_email``);
# read as a raw path so this module does not depend on that attribute's declaration.
BY_EMAIL = Path(["by_email"])
EMAIL = Path(["email"])
V_LEFT_AT = Path(["v_left_at"])


def close_reason(closed_by: str, by_email: bool = False) -> str:
    """The reason a person's ``close`` records: a visitor ends; an agent resolves, or, for a chat
    the visitor moved to email (``continue_by_email``), closes what went on by email: the
    visitor's widget then says the answer went to their address, and the team's history
    tells these from chats resolved live."""
    if closed_by == "visitor":
        return ENDED
    return MOVED_TO_EMAIL if by_email else RESOLVED


def gone_keys(site: str, left_at: int, conv_id: str) -> tuple[str, str]:
    """``due`` index keys of a conversation whose visitor left at ``left_at``: the site's
    partition of chats whose visitor is away, keyed by when they left, so the minute timer
    finds what to abandon with one Query per site, no Scan."""
    return keys.gone_key(site), keys.timed_sk(left_at, conv_id)


def by_email(conv: Any) -> bool:
    """Whether the visitor can still be reached by email (exempt from abandonment)."""
    return bool(getattr(conv, "by_email", None) or conv.email)


def away(conv: Any) -> bool:
    return conv.v_left_at is not None


def ghost(conv: Any) -> bool:
    """The visitor is gone and cannot be reached by email: nobody to answer."""
    return away(conv) and not by_email(conv)


def routable() -> Condition:
    """The write condition that keeps a ghost from being handed to an agent."""
    return V_LEFT_AT.does_not_exist() | EMAIL.exists() | BY_EMAIL.exists()


def presence(conv: Any) -> dict[str, Any]:
    """``{"state": "online"|"away", "since": ms}`` for agents: online since the visitor's
    first tab of this stretch joined (``v_on_at``; the start if never away), away since their
    last tab closed."""
    if conv.v_left_at is not None:
        return {"state": AWAY, "since": int(conv.v_left_at)}
    since = getattr(conv, "v_on_at", None) or conv.created_at
    return {"state": ONLINE, "since": int(since)}


def presence_frame(conv_id: str, view: dict[str, Any]) -> dict[str, Any]:
    """The ``presence`` frame pushed to agents when the visitor leaves or comes back."""
    return frames.presence(conv_id, view)


def abandon_after(settings: dict[str, Any], status: str) -> int:
    """Seconds a visitor may be away before a chat in ``status`` is abandoned."""
    merged = {**ABANDON_DEFAULTS, **(settings or {})}
    key = "queued_after_seconds" if status == QUEUED else "assigned_after_seconds"
    return int(merged[key])


def abandon_note(after_seconds: int) -> str:
    """The system line an assigned chat closes with when its visitor left."""
    minutes = max(1, round(after_seconds / 60))
    return f"The visitor left; chat closed after {minutes} min."


def validate_abandon(doc: Any) -> dict[str, int]:
    """Check the ``abandon`` settings an admin sends; the refusal names the field."""
    low, high = ABANDON_BOUNDS
    if not (isinstance(doc, dict) and set(doc) <= set(ABANDON_DEFAULTS)
            and all(type(v) is int and low <= v <= high for v in doc.values())):
        raise ValueError(f"console.abandon: {{queued_after_seconds, assigned_after_seconds}}, "
                         f"whole seconds from {low} to {high}.")
    return doc


def closing(now: int, reason: str | None = None, site: str | None = None,
            conv_id: str = "") -> list[Action]:
    """The actions of every ``open -> closed`` write: state, when, why (when the writer
    knows it before the write), off the timer's list, and out of the line: into the site's
    history (the other partition of the queue index) when the writer knows the ``site``."""
    C = ConversationModel
    actions: list[Action] = [C.status.set(CLOSED), C.closed_at.set(now), C.due_pk.remove(),
                             C.due_sk.remove(), C.ttl.set(keep_until(now))]
    if site is None:
        actions += [C.q_pk.remove(), C.q_sk.remove()]
    else:
        actions += [C.q_pk.set(keys.history_key(site)), C.q_sk.set(keys.timed_sk(now, conv_id))]
    return actions + ([C.reason.set(reason)] if reason else [])


def reopen(conv: ConversationModel, line_ts: int) -> bool:
    """A visitor answered a closed conversation by email: put it back in the site's inbox
    (``INBOX#``, newest first, as a new offline message), so an agent sees the line and
    takes it again; otherwise the answer would be stored where nobody looks. Only from
    ``closed``, and only if it closed before the line (``line_ts``) arrived: two answers
    racing reopen it once, one taken meanwhile stays taken, and a redelivered email does
    not reopen what an agent closed after reading it. Its
    figures stay as they were settled: the ``counted`` mark stays, so closing it again
    adds nothing."""
    C = ConversationModel
    ok, _ = update_or_old(C, conv.pk, [C.status.set(QUEUED), C.q_pk.set(keys.inbox_key(conv.site)),
                                       C.q_sk.set(keys.timed_sk(line_ts, conv.id)), C.agent_id.remove(),
                                       C.agent_name.remove(), C.closed_at.remove(), C.reason.remove()],
                          (C.status == CLOSED) & (C.closed_at <= line_ts))
    return ok


def visitor_left(conv: ConversationModel, now: int) -> ConversationModel | None:
    """The visitor's last tab closed while the chat was open: note when (figures, presence)
    and put the chat on the site's ``GONE#`` list for the abandonment timer. Returns the
    chat as it is now, or None when it was no longer open."""
    C = ConversationModel
    due_pk, due_sk = gone_keys(conv.site, now, conv.id)
    ok, fresh = update_or_old(C, conv.pk, [C.v_left_at.set(now), C.v_on_at.remove(),
                                           C.due_pk.set(due_pk), C.due_sk.set(due_sk)],
                              C.status.is_in(*OPEN_STATES))
    return fresh if ok else None


def back_actions(now: int) -> list[Action]:
    """What a visitor's tab joining their open chat writes (in the join itself): not away
    any more, off the abandonment list, online since now unless they already were."""
    C = ConversationModel
    return [C.v_left_at.remove(), C.due_pk.remove(), C.due_sk.remove(), C.v_on_at.set(C.v_on_at | now)]
