"""Holding messages: when a visitor has waited too long for their agent's reply, the product
says so on the agent's behalf ("Your agent is looking into your question"), once per wait.

Found without scanning: the site's team (one Query per site) lists the chats each agent holds; a chat
needs one when its last writer is the visitor, longer ago than the site's setting. The
holding message itself becomes the last writer, so it is sent once per wait, and the write
that adds it is conditional on nothing having changed, so two timers never send two.
"""

from __future__ import annotations

from chalicelib import clock, conversations, routing, sites
from chalicelib.fanout import Outbox
from chalicelib.models import AgentModel, ConversationModel, SiteModel


def sweep(site: SiteModel, outbox: Outbox, now_ms: int | None = None) -> list[str]:
    """One site's turn of the minute timer (``sites.walk``)."""
    now = clock.now_ms() if now_ms is None else now_ms
    held: list[str] = []
    settings = sites.console(site)["holding"]
    if not settings.get("enabled", True):
        return []
    cutoff = now - int(settings.get("after_seconds", 90)) * 1000
    # everyone holding chats: on shift, away, or off shift finishing up
    for agent in AgentModel.team_index.query(f"TEAM#{site.id}",
                                              filter_condition=AgentModel.convs.exists()):
        for conv in routing.held(agent):
            waiting = (conv.status in (routing.ASSIGNED, routing.ACTIVE)
                       and conv.v_left_at is None  # nobody is there to read it
                       and (conv.last_by or "").startswith("v:")
                       and int(conv.last_at or now) <= cutoff)
            if not waiting:
                continue
            C = ConversationModel
            seq = conversations.post_system(
                conv, settings["text"], outbox,
                condition=(C.seq == int(conv.seq)) & C.last_by.startswith("v:"),
                count=C.holds.add(1))
            if seq is not None:
                held.append(conv.id)
    return held
