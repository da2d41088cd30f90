"""What a team lead sees: everyone's load, the queue, all open chats; and past conversations
found by the visitor's email, name or first words."""

from __future__ import annotations

from typing import Any

from chalicelib import agents, clock, routing
from chalicelib.auth import Caller
from chalicelib.models import META, AgentModel, ConversationModel, agent_key, expired
from chalicelib.protocol import FORBIDDEN, ProtocolError

HISTORY_PAGE = 50


def require_lead(who: Caller) -> AgentModel:
    agent = AgentModel.get(agent_key(who.subject), META, consistent_read=True)
    if agent.role not in agents.LEADS or agent.site != who.site:
        raise ProtocolError(FORBIDDEN, "Only admins and supervisors can see the whole team.")
    return agent


def overview(who: Caller) -> dict[str, Any]:
    """Every agent on shift or still holding chats (away, or off shift finishing up), with
    their load and chats; the queue; and every open chat."""
    require_lead(who)
    team = [a for a in AgentModel.team_index.query(f"TEAM#{who.site}") if a.on_shift or a.convs]
    chats = [c for a in team for c in routing.held(a)]
    queue = routing.waiting(who.site)
    return {"type": "overview",
            "agents": [{"id": a.id, "name": a.name, "load": a.load, "max_chats": a.max_chats,
                        "online": bool(a.conns), "on_shift": bool(a.on_shift), "away": bool(a.away),
                        "conversations": sorted(a.convs or ())} for a in team],
            "queue_length": len(queue), "queue": routing.queue_listing(queue)["items"],
            "conversations": [c.summary() for c in chats]}


def history(who: Caller, text: str) -> dict[str, Any]:
    """Closed conversations of this site, newest first, whose visitor email, name or first
    message contains ``text`` (one Query on the site's history, filtered; no Scan). Admins
    only: it reaches every visitor's past chats, not just the caller's."""
    require_lead(who)
    needle = text.strip().lower()
    found = []
    now = clock.now_ms()
    for conv in ConversationModel.queue_index.query(f"HIST#{who.site}", scan_index_forward=False,
                                                    limit=1000):
        if expired(conv, now):
            continue
        haystack = " ".join(filter(None, (conv.email, conv.visitor_name, conv.preview))).lower()
        if needle in haystack:
            found.append(conv.summary())
            if len(found) >= HISTORY_PAGE:
                break
    return {"type": "history", "query": text, "items": found}

