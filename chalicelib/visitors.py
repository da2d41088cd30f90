"""What agents can know about a visitor and do for them: the page they are on, the pages of
this visit, and proactive invitations ("Can I help you decide?")."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pynamodb.expressions.condition import size
from pynamodb.expressions.update import Action

from chalicelib import auth, availability, clock, conversations, frames, routing, sites
from chalicelib.auth import Caller
from chalicelib.errors import CONFLICT, NOT_FOUND, Refusal
from chalicelib.fanout import Outbox
from chalicelib.protocol import PAGE_FIELD_BYTES, VISITOR_PAGES_SHOWN, Frame, clip, page_view
from chalicelib.store import (
    META,
    AgentModel,
    ConnectionModel,
    ConversationModel,
    SiteModel,
    VisitorModel,
    agent_key,
    conversation_key,
    expired,
    get_or_none,
    keep_until,
    keys,
    plain_map,
    update_or_old,
    visitor_key,
)

# The visit's pages are history: kept in brief and few, so the visitor item (rewritten on
# every page view, and billed on its size) stays small whatever a page's address or title.
MAX_PAGES = 25  # pages kept per visit, enough for "where have they been"
HISTORY_URL_BYTES = 512  # of a page's address, and of its referrer
HISTORY_TITLE_BYTES = 128


def record_page(who: Caller, frame: Frame, outbox: Outbox) -> None:
    """The visitor moved (page load or single-page-app navigation): remember it and tell the
    agent of their open conversation."""
    V = VisitorModel
    page = {"url": frame["url"], "title": frame.get("title") or "", "referrer": frame.get("referrer") or "",
            "ts": clock.now_ms()}
    brief = {"url": clip(page["url"], HISTORY_URL_BYTES), "title": clip(page["title"], HISTORY_TITLE_BYTES),
             "referrer": clip(page["referrer"], HISTORY_URL_BYTES), "ts": page["ts"]}
    extra: list[Action] = [V.ttl.set(keep_until(int(page["ts"])))]
    if frame.get("tz"):
        extra.append(V.timezone.set(frame["tz"]))
    ok, visitor = update_or_old(V, visitor_key(who.subject),
                                [V.page.set(page), V.pages.set((V.pages | []).append([brief])), *extra],
                                V.pk.exists() & (V.pages.does_not_exist() | (size(V.pages) < MAX_PAGES)))
    if not ok:  # the visit's list is full: keep the current page only
        ok, visitor = update_or_old(V, visitor_key(who.subject), [V.page.set(page), *extra], V.pk.exists())
    if visitor is None:
        return
    if not visitor.conv:
        if visitor.invite:  # still open: this tab may have opened after it went out
            outbox.to([who.connection_id], invitation_frame(plain_map(visitor.invite)))
        else:
            apply_rules(who.site, visitor, outbox, tab=who.connection_id)
        return
    conv = get_or_none(ConversationModel, conversation_key(visitor.conv))
    if conv is None:  # its start is writing it right now (page and start arrive together on a
        return        # page load); nobody to tell yet
    outbox.to(conv.connections_of("a:"), frames.page(conv.id, who.subject, page_view(page)))


PAST_SHOWN = 5


USER_AGENT_BYTES = 512


def context(who: Caller, conv_id: str, cursor: str | None = None) -> dict[str, Any]:
    """Everything the agent of a conversation may know about its visitor, in one frame; the
    visit's pages (up to 50, clipped) paged by position: with ``cursor``, only more ``pages``
    (``after`` = the cursor) for the console to append."""
    conv = routing.held_by(who, conv_id)
    visitor = get_or_none(VisitorModel, visitor_key(conv.visitor_id), consistent_read=True)
    if visitor is None:
        visitor = VisitorModel(visitor_key(conv.visitor_id))
    pages = [page_view(p) for p in visitor.visit_pages()]
    if cursor is not None:
        return frames.context(conv.id, pages, cursor)
    past_ids = [str(p) for p in (visitor.past or [])][-PAST_SHOWN:][::-1]
    past = []
    now = clock.now_ms()
    for past_id in past_ids:
        earlier = get_or_none(ConversationModel, conversation_key(past_id))
        if earlier is None:
            continue  # erased, or deleted by retention
        if not expired(earlier, now):
            past.append(earlier.summary())
    referrer = _arrived_from(visitor.visit_pages())
    about = {"visitor": conv.visitor_id, "page": page_view(visitor.current_page()),
             "referrer": clip(referrer, PAGE_FIELD_BYTES["referrer"]) if referrer else None,
             "user_agent": clip(visitor.user_agent, USER_AGENT_BYTES) if visitor.user_agent else None,
             "timezone": visitor.timezone, "name": conv.visitor_name, "email": conv.email,
             "past": past}
    return frames.context(conv.id, pages, None, about)


def _arrived_from(pages: list[dict[str, Any]]) -> str | None:
    """Where the visitor came from: the first referrer on another site than the page."""
    for page in pages:
        referrer = str(page.get("referrer") or "")
        if referrer and urlsplit(referrer).netloc != urlsplit(str(page.get("url", ""))).netloc:
            return referrer
    return None


#: Visitors read for one ``visitors`` page: more than fit in one frame (an item is >= 120 bytes).
LIVE_READS = 300


def live(who: Caller, cursor: str | None = None) -> dict[str, Any]:
    """Visitors on the site right now: where they are, since when, where they have been
    (the newest ``VISITOR_PAGES_SHOWN`` pages, clipped, and ``page_count``). Paged by visitor
    id: ``cursor`` is the last id sent, ``after`` echoes it (the console appends)."""
    seen: dict[str, int] = {}
    for conn in ConnectionModel.site_index.query(keys.site_visitors_key(who.site)):
        seen[conn.subject] = int(min(seen.get(conn.subject, conn.connected_at), conn.connected_at))
    now = clock.now_ms()
    items = []
    ids = sorted(v for v in seen if cursor is None or v > cursor)
    for visitor_id in ids[:LIVE_READS]:
        visitor = get_or_none(VisitorModel, visitor_key(visitor_id))
        if visitor is None:
            continue
        page = visitor.current_page()
        pages = visitor.visit_pages()
        items.append({"visitor": visitor_id, "page": page_view(page),
                      "on_page_ms": now - int(page["ts"]) if page else None,
                      "pages": [page_view(p) for p in pages[-VISITOR_PAGES_SHOWN:]],
                      "page_count": len(pages), "chatting": bool(visitor.conv),
                      "since": seen[visitor_id], "invited": bool(visitor.invite)})
    frame = frames.visitors(cursor, items, lambda i: i["visitor"])
    if not frame["more"] and len(ids) > LIVE_READS:  # not read yet: the next page reads them
        frame["more"], frame["cursor"] = True, ids[LIVE_READS - 1]
    return frame


def invite(agent: Caller, visitor_id: str, text: str, outbox: Outbox) -> str:
    """An agent invites a visitor browsing the site to chat."""
    name = AgentModel.get(agent_key(agent.subject), META).name
    return _invite(agent.site, visitor_id, text, outbox, agent=agent.subject, name=name)


def _invite(site: str, visitor_id: str, text: str, outbox: Outbox, *, agent: str | None,
            name: str, rule: str | None = None, tab: str | None = None) -> str:
    """Open an invitation on the visitor's record (a rule's: only if that rule has not fired
    this visit and none is open, in the same conditional write) and show it on their tabs;
    ``tab``: the connection whose page event asked, shown it whatever the race."""
    visitor = get_or_none(VisitorModel, visitor_key(visitor_id), consistent_read=True)
    if visitor is None:
        raise Refusal(NOT_FOUND, "That visitor is not on the site.")
    if visitor.site != site or not visitor.conns:
        raise Refusal(NOT_FOUND, "That visitor is not on the site.")
    if visitor.conv:
        raise Refusal(CONFLICT, "That visitor is already chatting.")
    invitation = {"id": auth.new_id(6), "agent": agent, "name": name, "text": text,
                  "ts": clock.now_ms()}
    V = VisitorModel
    actions: list[Action] = [V.invite.set(invitation)]
    condition = V.pk.exists()
    if rule is not None:  # each rule at most once per visit
        actions.append(V.fired.add({rule}))
        condition = condition & ~V.fired.contains(rule) & V.invite.does_not_exist()
    ok, fresh = update_or_old(V, visitor_key(visitor_id), actions, condition)
    if not ok:
        if fresh is not None and fresh.invite and tab is not None:
            # Another evaluation (the minute timer, another tab's page) won the race: its
            # invitation may have gone to tabs that were closing; this one shows it too.
            outbox.to([tab], invitation_frame(plain_map(fresh.invite)))
        raise Refusal(CONFLICT, "That visitor has an invitation already.")
    # To the tabs open at the write, not at the read before it: a page load replaces a tab,
    # and one sent only to the closing tab was never seen (the rule had fired: never again).
    tabs = set((fresh.conns if fresh is not None else None) or visitor.conns or ())
    outbox.to(sorted(tabs | ({tab} if tab else set())), invitation_frame(invitation))
    return str(invitation["id"])


def invitation_frame(invitation: dict[str, Any]) -> dict[str, Any]:
    """The ``invitation`` card as the widget shows it (the same id each time it is sent)."""
    return frames.invitation(str(invitation["id"]), str(invitation.get("text") or ""),
                             str(invitation.get("name") or ""))


def answer(who: Caller, frame: Frame, outbox: Outbox) -> None:
    """The visitor accepts (a chat starts, with the inviting agent when they have room) or
    dismisses; the inviting agent hears either way."""
    V = VisitorModel
    ok, visitor = update_or_old(V, visitor_key(who.subject), [V.invite.remove()],
                                V.invite["id"] == frame["id"], returning="ALL_OLD")
    if not ok or visitor is None or visitor.invite is None:
        raise Refusal(NOT_FOUND, "That invitation is no longer open.", frame.ref)
    invitation: dict[str, Any] = dict(visitor.invite.as_dict())
    # every tab showed the card: take it down everywhere
    outbox.to(sorted(visitor.conns or ()), frames.invitation_closed(frame["id"], frame["accept"]))
    agent_id = invitation.get("agent")
    if agent_id:
        agent = AgentModel.get(agent_key(str(agent_id)), META)
        outbox.to(sorted(agent.conns or ()),
                  frames.invitation_answer(frame["id"], who.subject, frame["accept"]))
    if not frame["accept"]:
        return
    opening = conversations.Opening(text=str(invitation.get("text") or ""),
                                    author=str(agent_id) if agent_id else conversations.TEAM,
                                    name=str(invitation.get("name") or ""), ref=str(frame["id"]))
    conv = conversations.start(who, outbox, route=not agent_id, opening=opening)
    if agent_id and conv.status == routing.QUEUED:
        # To the agent who invited, if on shift with room; otherwise into the line like any chat.
        result = routing.assign(conv.id, str(agent_id))
        if isinstance(result, routing.Assignment):
            routing.announce(result, outbox)
        else:
            routing.drain(who.site, outbox, joined=conv.id)


def apply_rules(site_id: str, visitor: VisitorModel, outbox: Outbox, now_ms: int | None = None,
                tab: str | None = None) -> list[str]:
    """Fire the site's invitation rules that this visitor now meets (each once per visit):
    ``min_pages`` counts matching pages this visit (met on the page event itself);
    ``min_seconds`` is time on a matching page. Evaluated on each page event; when the page
    matches a time rule not yet met, the asking ``tab`` is told when to ask again
    (``rules_due``, answered by the ``rules`` action), so that rule fires within a second of
    its time, not at the next minute timer, which only catches what a tab never asked for
    (a widget that does not re-ask). The conditional write in ``_invite`` makes it once."""
    if visitor.conv or visitor.invite or not visitor.conns:
        return []
    site = sites.get(site_id)
    rules = sites.console(site)["rules"]
    if not rules or not availability.status(site, now_ms).online:
        return []  # never invite a visitor to a chat nobody can answer
    fired = set(visitor.fired or ())
    now = clock.now_ms() if now_ms is None else now_ms
    page, pages = visitor.current_page(), visitor.visit_pages()
    due: list[int] = []  # in how many ms each time rule this page matches is met
    for rule in rules:
        if rule["id"] in fired:
            continue
        needle = rule["url_contains"]
        if "min_pages" in rule:
            met = sum(needle in str(p.get("url", "")) for p in pages) >= int(rule["min_pages"])
        else:
            on_page = page is not None and needle in str(page.get("url", ""))
            left = int(rule["min_seconds"]) * 1000 - (now - int((page or {}).get("ts", now)))
            met = on_page and left <= 0
            if on_page and left > 0:
                due.append(left)
        if met:
            try:
                _invite(site_id, keys.item_id(visitor.pk), rule["text"], outbox, agent=None,
                        name=sites.display_name(site), rule=rule["id"], tab=tab)
            except Refusal:
                return []
            return [rule["id"]]  # one invitation at a time
    if due and tab is not None:
        outbox.to([tab], frames.rules_due(min(due)))
    return []


def recheck(who: Caller, outbox: Outbox) -> None:
    """The ``rules`` action: a tab asks again when a ``rules_due`` said a time rule would be
    met (one read of the visitor's own record; rules are the site's, nothing the visitor
    sends is used). A pending invitation is shown again instead."""
    visitor = get_or_none(VisitorModel, visitor_key(who.subject), consistent_read=True)
    if visitor is None:
        return
    if visitor.conv or visitor.site != who.site:
        return
    if visitor.invite:
        outbox.to([who.connection_id], invitation_frame(plain_map(visitor.invite)))
        return
    apply_rules(who.site, visitor, outbox, tab=who.connection_id)


def sweep_rules(site: SiteModel, outbox: Outbox, now_ms: int | None = None) -> list[str]:
    """The minute timer (one site's turn, see ``sites.walk``): time-on-page rules fire without
    the visitor doing anything."""
    fired: list[str] = []
    if not sites.console(site)["rules"]:
        return []
    subjects = {c.subject for c in ConnectionModel.site_index.query(keys.site_visitors_key(site.id))}
    for visitor_id in sorted(subjects):
        visitor = get_or_none(VisitorModel, visitor_key(visitor_id), consistent_read=True)
        if visitor is None:
            continue
        fired += apply_rules(site.id, visitor, outbox, now_ms)
    return fired
