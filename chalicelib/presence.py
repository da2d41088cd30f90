"""Who is connected: connection identity, visitors' tabs, agents' consoles, shifts, grace.

A connection is registered in three places, each serving one access pattern: its own item
(what it is, for frames that do not name a conversation), the visitor's or agent's ``conns``
set (to attach new conversations to every open tab), and the ``conns`` map of each open
conversation (fan-out and authorization on the hot path).

Tabs are capped: a visitor holds at most ``Settings.visitor_tabs`` connections, checked with
``size(conns)`` in the very write that adds one. At the cap the newest tab evicts the oldest
(by its connection item's ``connected_at``; entries whose item is missing, a tab still
connecting or one long expired, go last): it is taken off the visitor and their open
conversation, its connection item is deleted, and ``connect`` hands its id back so the
handler hangs it up through the management API (a socket already gone answers 410, which
is fine). So stale entries (a ``$disconnect`` that never arrived) can never lock a visitor
out, and a script opening thousands of sockets with one token keeps only the newest ten.
The conversation's side is bounded by the same rule (a visitor's tabs there are a subset of
the visitor's), with a backstop in the join itself: a visitor's tab is not added to a
conversation already holding ``Settings.conversation_conns`` connections of anyone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import timedelta
from typing import Any

from pynamodb.expressions.condition import size
from pynamodb.expressions.update import Action

from chalicelib import (
    agents,
    auth,
    availability,
    clock,
    config,
    conversations,
    frames,
    handback,
    lifecycle,
    routing,
    sites,
    telemetry,
    transfers,
    unattended,
    validate,
)
from chalicelib.auth import Caller
from chalicelib.errors import BAD_REQUEST, FORBIDDEN, NOT_FOUND, RATE_LIMITED, Refusal
from chalicelib.fanout import Outbox
from chalicelib.protocol import fit
from chalicelib.store import (
    META,
    AgentModel,
    ConnectionModel,
    ConversationModel,
    VisitorModel,
    agent_key,
    connection_key,
    conversation_key,
    delete_returning_old,
    get_or_none,
    keep_until,
    keys,
    update_or_old,
    visitor_key,
)

VISIT_GAP_MS = 30 * 60 * 1000  # a visitor gone this long starts a new visit when they return
ATTACH_ATTEMPTS = 5  # evictions one $connect may make when other tabs race it for the last place


def connect(connection_id: str, query: dict[str, str], source_ip: str | None = None,
            headers: dict[str, str] | None = None, evicted: list[str] | None = None,
            outbox: Outbox | None = None) -> Caller:
    """Register a new connection, or raise a Refusal, whose code gives $connect's status
    (errors.HTTP_STATUS): agents need a valid token; anyone who presents a token must present
    a valid one; a visitor's site must exist, 404 otherwise, checked before anything is
    written so a stranger's made-up ids cost one read and leave nothing behind; a visitor's
    page must be on an origin the site allows, when it lists any.
    Tabs a visitor at the cap gave up for this one are appended to ``evicted``: the caller
    hangs them up. ``outbox`` gets what others must hear (the visitor is back: their agent)."""
    outbox = Outbox() if outbox is None else outbox
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    token = query.get("token")
    if token:
        try:
            claims = auth.verify(token)
        except auth.InvalidToken as exc:
            raise Refusal(FORBIDDEN, str(exc)) from None
        caller = Caller(connection_id, claims.role, claims.subject, claims.site)
    elif query.get("role") == auth.AGENT:
        raise Refusal(FORBIDDEN, "agent connections need a token")
    else:
        site = query.get("site") or config.settings().default_site
        if not validate.SITE_ID.match(site):
            raise Refusal(BAD_REQUEST, "bad site")
        caller = Caller(connection_id, auth.VISITOR, auth.new_id(), site)
    now = clock.now_ms()
    if caller.role == auth.AGENT:
        _attach_agent(caller)
    else:
        settings = sites.find(caller.site)
        if settings is None:
            raise Refusal(NOT_FOUND, "no such site")
        if not sites.allows_origin(settings, headers.get("origin")):
            raise Refusal(FORBIDDEN, "origin not allowed for this site")
        evicted = [] if evicted is None else evicted
        if not _attach_visitor(caller, now, headers.get("user-agent"), resuming=bool(token),
                               evicted=evicted, outbox=outbox):
            # The token's visitor record is gone: erased on request (or past retention). It
            # resumes nothing; the visitor goes on as a new one, linked to nothing before.
            caller = Caller(connection_id, auth.VISITOR, auth.new_id(), caller.site)
            _attach_visitor(caller, now, headers.get("user-agent"), evicted=evicted, outbox=outbox)
    item = ConnectionModel(connection_key(connection_id), role=caller.role, subject=caller.subject,
                           site=caller.site, connected_at=now,
                           ttl=timedelta(seconds=config.CONNECTION_TTL_SECONDS))
    if caller.role == auth.VISITOR:
        item.site_pk, item.site_sk = keys.site_visitors_key(caller.site), connection_id
        item.ip_hash = auth.fingerprint(source_ip) if source_ip else None
    item.save()
    identify(caller)
    return caller


def identify(who: Caller) -> None:
    """This invocation acts for ``who``: its site (and agent id) join the log keys."""
    telemetry.tag(site=who.site, role=who.role,
                  agent=who.subject if who.role == auth.AGENT else None)


def _attach_agent(caller: Caller) -> None:
    A = AgentModel
    ok, agent = update_or_old(A, agent_key(caller.subject),
                              [A.conns.add({caller.connection_id}), A.due_pk.remove(), A.due_sk.remove(),
                               # agents created before the team index get into it here
                               A.team_pk.set(A.team_pk | keys.team_key(caller.site)),
                               A.team_sk.set(A.team_sk | caller.subject)],
                              A.pk.exists() & (A.disabled.does_not_exist() | (A.disabled == False)))  # noqa: E712
    if not ok or agent is None:
        raise Refusal(FORBIDDEN, "unknown agent")
    for conv_id in sorted(agent.convs or ()):
        _join(conv_id, caller)


def _attach_visitor(caller: Caller, now: int, user_agent: str | None = None,
                    resuming: bool = False, evicted: list[str] | None = None,
                    outbox: Outbox | None = None) -> bool:
    """Add the connection to the visitor's record (creating it for a new visitor), within
    the cap of open tabs: at the cap, the oldest tab is evicted (appended to ``evicted``)
    and the add is tried again. False when ``resuming`` a record that no longer exists."""
    V = VisitorModel
    actions: list[Action] = [V.conns.add({caller.connection_id}), V.site.set(V.site | caller.site),
                             V.created_at.set(V.created_at | now), V.ttl.set(keep_until(now))]
    if user_agent:
        actions.append(V.user_agent.set(user_agent[:300]))
    room = V.conns.does_not_exist() | (size(V.conns) < config.settings().visitor_tabs)
    for _ in range(ATTACH_ATTEMPTS):
        ok, visitor = update_or_old(V, visitor_key(caller.subject), actions,
                                    (V.pk.exists() & room) if resuming else room)
        if visitor is None:
            return False
        if visitor.site != caller.site:
            raise Refusal(FORBIDDEN, "token for another site")
        if ok:
            break
        victim = _evict_oldest(visitor, outbox)
        if victim is not None and evicted is not None:
            evicted.append(victim)
    else:
        raise Refusal(RATE_LIMITED, "too many tabs opening at once")
    page = visitor.current_page()
    if visitor.conns == {caller.connection_id} and page and now - int(page["ts"]) > VISIT_GAP_MS:
        # Back after a long while: a new visit, so its pages and fired rules start afresh.
        visitor.update(actions=[V.pages.remove(), V.fired.remove(), V.page.remove()])
    if visitor.conv:
        _join(visitor.conv, caller, outbox)
    return True


def _evict_oldest(visitor: VisitorModel, outbox: Outbox | None = None) -> str | None:
    """Give up the visitor's oldest tab (a visitor at the cap opened another): off the
    visitor's set (only if still there: two new tabs racing evict two different ones), off
    their open conversation, its connection item deleted. Returns its id, for the caller to
    hang up, or None when another tab took it first. One BatchGetItem and three writes, at
    $connect only and only at the cap."""
    tabs = sorted(visitor.conns or ())
    if not tabs:
        return None
    seen = {keys.item_id(item.pk): int(item.connected_at or 0)
            for item in ConnectionModel.batch_get([(connection_key(c), META) for c in tabs])}
    # The oldest first; a tab without its item (still connecting, or expired long ago) last.
    victim = min(tabs, key=lambda c: (c not in seen, seen.get(c, 0), c))
    V = VisitorModel
    ok, _ = update_or_old(V, visitor.pk, [V.conns.delete({victim})], V.conns.contains(victim))
    if not ok:
        return None
    ConnectionModel(connection_key(victim), META).delete()
    if visitor.conv:
        _leave(visitor.conv, victim, outbox)
    telemetry.count("TabsEvicted")
    return victim


def _join(conv_id: str, caller: Caller, outbox: Outbox | None = None) -> None:
    """Add a connection to an open conversation it belongs to (no-op otherwise). A visitor's
    tab is not added to a conversation that already holds ``Settings.conversation_conns`` connections
    (a backstop: the visitor's own cap keeps their side far below it).

    A visitor coming back to a chat they had left (every tab closed) is online again: their
    agent (or, while it waits, the agents on shift) is told, and a waiting chat that routing
    had passed over for it is routed now."""
    C = ConversationModel
    condition = C.status.is_in(*routing.OPEN_STATES)
    actions: list[Action] = [C.conns[caller.connection_id].set(caller.tag)]
    if caller.role == auth.AGENT:
        condition &= C.agent_id == caller.subject
    else:
        condition &= (C.visitor_id == caller.subject) & (size(C.conns) < config.settings().conversation_conns)
        actions += lifecycle.back_actions(clock.now_ms())  # back: they did not leave after all
    ok, old = update_or_old(C, conversation_key(conv_id), actions, condition, returning="ALL_OLD")
    if not ok or old is None or caller.role == auth.AGENT or old.v_left_at is None or outbox is None:
        return
    view = {"state": lifecycle.ONLINE, "since": clock.now_ms()}
    _tell_agents_of(old, lifecycle.presence_frame(old.id, view), outbox)
    if old.status == routing.QUEUED:
        routing.drain(old.site, outbox, quiet=True)


def _tell_agents_of(conv: ConversationModel, frame: dict[str, Any], outbox: Outbox) -> None:
    """Agents who see this chat: its agent's consoles, or while it waits everyone on shift
    (it is in their waiting list)."""
    if conv.status == routing.QUEUED:
        outbox.to([c for a in routing.on_shift(conv.site) for c in sorted(a.conns or ())], frame)
    else:
        outbox.to(conv.connections_of("a:"), frame)


# The connection item this invocation already holds: the frame budget's counted write returns
# it (chalicelib/limits.py), so the handler's "who is this?" costs no second request.
_known: ContextVar[ConnectionModel | None] = ContextVar("known_connection", default=None)


@contextlib.contextmanager
def known(item: ConnectionModel | None) -> Iterator[None]:
    """Within this block, ``connection`` answers from ``item`` (fresh from a write made in
    this invocation) instead of reading it again. Reset on exit: a warm Lambda container
    runs the next invocation in the same context."""
    token = _known.set(item)
    try:
        yield
    finally:
        _known.reset(token)


def caller(connection_id: str) -> Caller:
    """The identity of a live connection (one GetItem, or none when the frame budget's write
    already returned the item; not used on the message path)."""
    item = connection(connection_id)
    who = Caller(connection_id, *_identity(item), ip_hash=item.ip_hash)
    identify(who)
    return who


def connection(connection_id: str) -> ConnectionModel:
    held = _known.get()
    if held is not None and held.pk == connection_key(connection_id):
        return held
    item = get_or_none(ConnectionModel, connection_key(connection_id), consistent_read=True)
    if item is None:
        raise Refusal(FORBIDDEN, "This connection is not registered; reconnect.")
    return item


def _identity(item: ConnectionModel) -> tuple[str, str, str]:
    return item.role, item.subject, item.site


def greet(who: Caller, outbox: Outbox) -> None:
    """Answer ``hello``: the ``welcome``, then, for a visitor whose chat waits while nobody
    can answer, ``no_agents`` (the welcome's conversation says ``no_agents: true`` too)."""
    welcome, after = _welcome(who)
    outbox.to([who.connection_id], welcome)
    for frame in after:
        outbox.to([who.connection_id], frame)


def hello(who: Caller) -> dict[str, Any]:
    """The ``welcome`` frame (see ``_welcome``)."""
    return _welcome(who)[0]


def _welcome(who: Caller) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The ``welcome`` frame: identity, a fresh token, and the state to render; and the
    frames that follow it.

    An agent's lists share one frame budget, most needed first: their chats, transfer offers,
    snippets, then the line. A list cut short is named in ``next`` with the cursor its own
    action (``snippets``, ``queue``) continues from: a welcome that did not fit would not be
    delivered at all, and a console waiting for it reconnects forever."""
    frame = frames.welcome(who.role, who.site, auth.issue(who.role, who.subject, who.site))
    after: list[dict[str, Any]] = []
    if who.role == auth.AGENT:
        agent = AgentModel.get(agent_key(who.subject), META, consistent_read=True)
        convs = routing.held(agent)
        frame["agent"] = agents.public(agent)
        frame["next"] = {}
        fit(frame, "conversations", [c.summary() for c in convs])
        fit(frame, "offers", transfers.pending_offers(agent), at_least_one=False)
        rest = fit(frame, "snippets", sites.console(sites.get(who.site))["snippets"], at_least_one=False)
        if rest is not None:
            frame["next"]["snippets"] = str(rest)
        rest = fit(frame, "queue", routing.queue_items(routing.waiting(who.site)), routing.queue_cursor,
                   at_least_one=False)
        if rest is not None:
            frame["next"]["queue"] = rest
    else:
        frame["visitor"] = who.subject
        settings = sites.get(who.site)
        current = availability.status(settings)
        frame["status"] = {k: v for k, v in current.frame().items() if k != "type"}
        visitor = VisitorModel.get(visitor_key(who.subject), META, consistent_read=True)
        frame["conversation"] = None
        conv = conversations.open_conversation(visitor)
        if conv is not None:
            frame["conversation"] = conv.summary()
            if conv.status == routing.QUEUED:
                queue = [c.id for c in routing.waiting(who.site)]
                frame["conversation"]["position"] = (
                    queue.index(conv.id) + 1 if conv.id in queue else len(queue) + 1)
                if not current.online and not conv.by_email:
                    frame["conversation"]["no_agents"] = True
                    after.append(unattended.frame(conv, unattended.offline_message(settings)))
    return frame, after


def snippets(who: Caller, cursor: str | None = None) -> dict[str, Any]:
    """A page of the site's snippets (``snippets`` frame): the rest of what ``welcome`` had no
    room for. 200 snippets of 2,000 characters can be over a megabyte."""
    return frames.snippets(sites.console(sites.get(who.site))["snippets"], cursor)


def disconnect(connection_id: str, outbox: Outbox) -> ConnectionModel | None:
    """Forget a connection: on $disconnect, or when a post found it gone (410). Returns what
    the connection was, or None when it was already forgotten."""
    item = delete_returning_old(ConnectionModel, connection_key(connection_id))
    if item is None:
        return None
    if item.role == auth.AGENT:
        A = AgentModel
        ok, agent = update_or_old(A, agent_key(item.subject), [A.conns.delete({connection_id})],
                                  A.pk.exists())
        if not ok or agent is None:
            return item
        for conv_id in sorted(agent.convs or ()):
            _leave(conv_id, connection_id, outbox)
        if not agent.conns and (agent.on_shift or agent.convs):
            # Also off shift with chats still open (finishing up): they must not wait for ever.
            deadline = clock.now_ms() + config.settings().agent_grace_seconds * 1000
            update_or_old(A, agent_key(item.subject),
                          [A.due_pk.set(keys.GRACE), A.due_sk.set(keys.due_sk(deadline))],
                          A.conns.does_not_exist() & ((A.on_shift == True) | A.convs.exists()))  # noqa: E712
    else:
        V = VisitorModel
        visitor = V(visitor_key(item.subject))
        visitor.update(actions=[V.conns.delete({connection_id})])
        if visitor.conv:
            _leave(visitor.conv, connection_id, outbox)
    return item


def forget(connection_id: str, conversations: set[str], outbox: Outbox) -> None:
    """A post found this connection gone (410): forget it like a $disconnect, and take it out
    of the conversations it was posted for even if its own record is already gone (expired,
    or a $disconnect that raced the post)."""
    disconnect(connection_id, outbox)
    for conv_id in sorted(conversations):
        _leave(conv_id, connection_id, outbox)


def _leave(conv_id: str, connection_id: str, outbox: Outbox | None = None) -> None:
    """Take a connection out of a conversation, with its flood-control slots; when it was the
    visitor's last tab of an open chat, note when they left (missed or abandoned, in the
    figures; the abandonment timer) and tell the agents who see the chat."""
    C = ConversationModel
    ok, old = update_or_old(C, conversation_key(conv_id),
                            [C.conns[connection_id].remove(),
                             *(slot.remove() for slot in conversations.rate_slots(connection_id))],
                            C.pk.exists(), returning="ALL_OLD")
    if not ok or old is None:
        return
    tags = old.connections()
    gone = tags.get(connection_id, "")
    if (gone.startswith("v:") and old.status in routing.OPEN_STATES
            and not any(t.startswith("v:") for c, t in tags.items() if c != connection_id)):
        now = clock.now_ms()
        left = lifecycle.visitor_left(old, now)
        if left is not None and outbox is not None:
            _tell_agents_of(left, lifecycle.presence_frame(left.id, lifecycle.presence(left)), outbox)


def set_shift(who: Caller, on: bool | None, outbox: Outbox, away: bool | None = None) -> AgentModel:
    """Go on or off shift, or set yourself away. Only an agent on shift and not away is in the
    routing index (gets new chats, counts as "someone is there"); going off shift or away
    stops new assignments while the agent's open chats carry on."""
    A = AgentModel
    current = A.get(agent_key(who.subject), META, consistent_read=True)
    on_shift = current.on_shift if on is None else on
    is_away = bool(current.away) if away is None else away
    actions: list[Action] = [A.on_shift.set(on_shift), A.away.set(is_away)]
    if on_shift and not is_away:
        actions += [A.s_pk.set(keys.shift_key(who.site)), A.s_sk.set(who.subject)]
    else:
        actions += [A.s_pk.remove(), A.s_sk.remove()]
    agent = A(agent_key(who.subject))
    agent.update(actions=actions, condition=A.pk.exists())
    outbox.to(sorted(agent.conns or ()), frames.shift(on_shift, is_away, agents.public(agent)))
    if on_shift and not is_away:  # the line is unchanged unless this agent takes from it
        routing.drain(who.site, outbox, quiet=True, newcomer=sorted(agent.conns or ()))
    availability.refresh(who.site, outbox)
    return agent


def sweep(outbox: Outbox, now: int | None = None) -> list[str]:
    """Take agents off shift whose grace period ended with no console open, and put their
    conversations back in line (front first, by original wait). Runs on a schedule.

    Per site, the status is refreshed first: when nobody is left, the waiting visitors are
    told (``no_agents``) before these chats rejoin the line, and these are told one by one
    (``handback.back_in_line``), so nobody is told twice and nobody is promised a "next one"
    who does not exist."""
    A = AgentModel
    now = clock.now_ms() if now is None else now
    expired = list(A.due_index.query(keys.GRACE, A.due_sk <= keys.due_sk(now)))
    gone: list[str] = []
    held: dict[str, list[tuple[str, str]]] = {}  # site -> (agent, conversation)
    for entry in expired:
        ok, agent = update_or_old(
            A, entry.pk, [A.on_shift.set(False), A.away.set(False), A.s_pk.remove(), A.s_sk.remove(),
                          A.due_pk.remove(), A.due_sk.remove()],
            A.conns.does_not_exist() & A.due_pk.exists())
        if not ok or agent is None:
            continue
        gone.append(agent.id)
        held.setdefault(agent.site, []).extend((agent.id, c) for c in sorted(agent.convs or ()))
    for site in sorted(held):
        online = availability.refresh(site, outbox).online
        settings = sites.get(site) if held[site] else None
        for agent_id, conv_id in held[site]:
            conv = routing.requeue(conv_id, agent_id)
            if conv is not None and settings is not None:
                handback.back_in_line(conv, settings, online, outbox)
        routing.drain(site, outbox)
    return gone
