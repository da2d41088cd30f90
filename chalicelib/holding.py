"""Holding messages: when a visitor has waited too long for their agent's reply, the product
says so on the agent's behalf ("Your agent is looking into your question"), once per wait.

Found without scanning: the site's team (one Query per site) lists the chats each agent holds; a chat
needs one when its last writer is the visitor and the agent has been silent for the site's
setting since the later of that line and the moment the chat became theirs (``silent_since``):
a chat that waited in line is not "held" the minute it is assigned, before its agent has even
looked. A chat whose visitor has gone (every tab closed, ``v_left_at``) gets none, nor does a
message left with the form (``channel`` "email", chalicelib.inbox): nobody would read it.
The holding message itself becomes the last writer, so it is sent once per
wait, and the write that adds it is conditional on nothing having changed, so two timers
never send two. It never becomes the chat's preview (``conversations.post_system``).
"""

from __future__ import annotations

from chalicelib import clock, conversations, routing, sites
from chalicelib.fanout import Outbox
from chalicelib.store import AgentModel, ConversationModel, SiteModel, keys


def silent_since(conv: ConversationModel) -> int | None:
    """Since when the visitor has been waiting for their agent: the later of their last line
    and the assignment; None when the visitor is not the one waiting (the agent or the
    product wrote last, or the chat has no agent)."""
    if conv.status not in (routing.ASSIGNED, routing.ACTIVE) or not (conv.last_by or "").startswith("v:"):
        return None
    return max(int(conv.last_at or 0), int(conv.assigned_at or 0))


def sweep(site: SiteModel, outbox: Outbox, now_ms: int | None = None) -> list[str]:
    """One site's turn of the minute timer (``sites.walk``)."""
    now = clock.now_ms() if now_ms is None else now_ms
    held: list[str] = []
    settings = sites.console(site)["holding"]
    if not settings.get("enabled", True):
        return []
    cutoff = now - int(settings.get("after_seconds", 90)) * 1000
    # everyone holding chats: on shift, away, or off shift finishing up
    for agent in AgentModel.team_index.query(keys.team_key(site.id),
                                              filter_condition=AgentModel.convs.exists()):
        for conv in routing.held(agent):
            since = silent_since(conv)
            # nobody reads it: the visitor left, or wrote from the form and waits for an email
            if since is None or since > cutoff or conv.v_left_at is not None or conv.channel:
                continue
            C = ConversationModel
            seq = conversations.post_system(
                conv, settings["text"], outbox,
                condition=((C.seq == int(conv.seq)) & C.last_by.startswith("v:")
                           & C.v_left_at.does_not_exist() & C.agent_id.exists()
                           & (C.assigned_at.does_not_exist() | (C.assigned_at <= cutoff))),
                count=C.holds.add(1))
            if seq is not None:
                held.append(conv.id)
    return held
