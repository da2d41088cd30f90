"""What agents can know about a visitor and do for them: the page they are on, the pages of
this visit, and proactive invitations ("Can I help you decide?")."""

from __future__ import annotations

from typing import Any

from pynamodb.expressions.condition import size

from chalicelib import auth, clock, conversations, routing
from chalicelib.auth import Caller
from chalicelib.fanout import Outbox
from chalicelib.models import (
    META,
    AgentModel,
    ConversationModel,
    VisitorModel,
    agent_key,
    conversation_key,
    update_or_old,
    visitor_key,
)
from chalicelib.protocol import CONFLICT, NOT_FOUND, Frame, ProtocolError

MAX_PAGES = 50  # pages kept per visit, enough for "where have they been" without growing


def record_page(who: Caller, frame: Frame, outbox: Outbox) -> None:
    """The visitor moved (page load or single-page-app navigation): remember it and tell the
    agent of their open conversation."""
    V = VisitorModel
    page = {"url": frame["url"], "title": frame.get("title") or "", "referrer": frame.get("referrer") or "",
            "ts": clock.now_ms()}
    ok, visitor = update_or_old(V, visitor_key(who.subject),
                                [V.page.set(page), V.pages.set((V.pages | []).append([page]))],
                                V.pk.exists() & (V.pages.does_not_exist() | (size(V.pages) < MAX_PAGES)))
    if not ok:  # the visit's list is full: keep the current page only
        ok, visitor = update_or_old(V, visitor_key(who.subject), [V.page.set(page)], V.pk.exists())
    if visitor is None or not visitor.conv:
        return
    conv = ConversationModel.get(conversation_key(visitor.conv), META)
    outbox.to(conv.connections_of("a:"), {"type": "page", "conversation": conv.id,
                                          "visitor": who.subject, **page})


def invite(agent: Caller, visitor_id: str, text: str, outbox: Outbox) -> str:
    """An agent invites a visitor browsing the site to chat."""
    try:
        visitor = VisitorModel.get(visitor_key(visitor_id), META, consistent_read=True)
    except VisitorModel.DoesNotExist:
        raise ProtocolError(NOT_FOUND, "That visitor is not on the site.") from None
    if visitor.site != agent.site or not visitor.conns:
        raise ProtocolError(NOT_FOUND, "That visitor is not on the site.")
    if visitor.conv:
        raise ProtocolError(CONFLICT, "That visitor is already chatting.")
    name = AgentModel.get(agent_key(agent.subject), META).name
    invitation = {"id": auth.new_id(6), "agent": agent.subject, "name": name, "text": text,
                  "ts": clock.now_ms()}
    V = VisitorModel
    VisitorModel(visitor_key(visitor_id)).update(actions=[V.invite.set(invitation)])
    outbox.to(sorted(visitor.conns), {"type": "invitation", "id": invitation["id"], "text": text,
                                      "from": {"name": name}})
    return str(invitation["id"])


def answer(who: Caller, frame: Frame, outbox: Outbox) -> None:
    """The visitor accepts (a chat starts, with the inviting agent when they have room) or
    dismisses; the inviting agent hears either way."""
    V = VisitorModel
    ok, visitor = update_or_old(V, visitor_key(who.subject), [V.invite.remove()],
                                V.invite["id"] == frame["id"], returning="ALL_OLD")
    if not ok or visitor is None or visitor.invite is None:
        raise ProtocolError(NOT_FOUND, "That invitation is no longer open.", frame.ref)
    invitation: dict[str, Any] = dict(visitor.invite.as_dict())
    agent_id = str(invitation["agent"])
    agent = AgentModel.get(agent_key(agent_id), META)
    outbox.to(sorted(agent.conns or ()), {"type": "invitation_answer", "id": frame["id"],
                                          "visitor": who.subject, "accepted": frame["accept"]})
    if not frame["accept"]:
        return
    conv = conversations.start(who, outbox, route=False)
    if conv.status == routing.QUEUED:
        result = routing.assign(conv.id, agent_id, require_shift=False)
        if isinstance(result, routing.Assignment):
            routing.announce(result, outbox)
        routing.drain(who.site, outbox)

