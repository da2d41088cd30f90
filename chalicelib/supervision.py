"""What a team lead sees: everyone's load, the queue, all open chats; and past conversations
found by the visitor's email, name or first words."""

from __future__ import annotations

from typing import Any

from chalicelib import agents, clock, frames, routing
from chalicelib.auth import Caller
from chalicelib.errors import FORBIDDEN, Refusal
from chalicelib.protocol import fit, offset
from chalicelib.store import META, AgentModel, ConversationModel, agent_key, expired, keys

HISTORY_PAGE = 50


def require_lead(who: Caller) -> AgentModel:
    agent = AgentModel.get(agent_key(who.subject), META, consistent_read=True)
    if agent.role not in agents.LEADS or agent.site != who.site:
        raise Refusal(FORBIDDEN, "Only admins and supervisors can see the whole team.")
    return agent


#: The lists of an ``overview``, in the order they fill its frame.
OVERVIEW_LISTS = ("agents", "queue", "conversations")


def overview(who: Caller, cursor: str | None = None) -> dict[str, Any]:
    """Every agent on shift or still holding chats (away, or off shift finishing up), with
    their load and chats; the queue; and every open chat.

    Paged: ~310 open chats are 128 KB. The first page fills the frame with the lists in
    ``OVERVIEW_LISTS`` order; each list cut short is named in ``next`` with a cursor
    ``"<list>:<position>"``. ``overview`` with that cursor answers with that list from there
    (and ``after`` = the cursor, so the console appends) and its own ``next``."""
    require_lead(who)
    team = [a for a in AgentModel.team_index.query(keys.team_key(who.site)) if a.on_shift or a.convs]
    queue = routing.waiting(who.site)
    wanted, _, at = (cursor or "").partition(":")
    lists = OVERVIEW_LISTS if cursor is None else tuple(k for k in OVERVIEW_LISTS if k == wanted)
    start = offset(at) if cursor is not None else 0
    frame = frames.overview(cursor, len(queue))
    for name in lists:
        if name == "agents":
            items: list[Any] = [
                {"id": a.id, "name": a.name, "load": a.load, "max_chats": a.max_chats,
                 "online": bool(a.conns), "on_shift": bool(a.on_shift), "away": bool(a.away),
                 "conversations": sorted(a.convs or ())} for a in team]
        elif name == "queue":
            items = routing.queue_items(queue)
        else:
            items = [c.summary() for a in team for c in routing.held(a)]
        rest = fit(frame, name, items[start:], at_least_one=cursor is not None or name == "agents")
        if rest is not None:
            frame["next"][name] = f"{name}:{start + int(rest)}"
    return frame


def history(who: Caller, text: str) -> dict[str, Any]:
    """Closed conversations of this site, newest first, whose visitor email, name or first
    message contains ``text`` (one Query on the site's history, filtered; no Scan). Admins
    only: it reaches every visitor's past chats, not just the caller's."""
    require_lead(who)
    needle = text.strip().lower()
    found = []
    now = clock.now_ms()
    for conv in ConversationModel.queue_index.query(keys.history_key(who.site), scan_index_forward=False,
                                                    limit=1000):
        if expired(conv, now):
            continue
        haystack = " ".join(filter(None, (conv.email, conv.visitor_name, conv.preview))).lower()
        if needle in haystack:
            found.append(conv.summary())
            if len(found) >= HISTORY_PAGE:
                break
    # Up to 50 summaries; ``more`` when they did not all fit one frame (search narrower).
    return frames.history(text, found)

