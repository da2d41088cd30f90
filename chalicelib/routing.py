"""Routing: who gets a waiting conversation, and the first-come-first-served queue.

Every conversation enters the queue; ``drain`` then hands the oldest waiting conversations to
the on-shift agents with the fewest chats. Two conditional writes make an assignment and
neither trusts an earlier read: the agent's write adds the conversation only while
``size(convs) < max_chats`` (capacity), the conversation's write succeeds only while it is
still ``queued`` (nobody else took it). If the second fails, the first is undone. So two
routers, or two agents accepting at once, can never double-assign or overfill.

A chat whose visitor has gone (every tab closed, no email to answer to: a "ghost", see
chalicelib.lifecycle) is never handed to an agent: the conversation's write requires it, and
``drain`` does not even try. It stays in line, shown as "Visitor left", until the visitor
comes back (their tab's join routes it again) or the minute timer closes it as abandoned.

One chat cannot jam the line: if the conversation's write fails for any reason (an item
grown too large to write, a throttle that outlasted the retries), the agent's reservation is
given back before the error goes on, and ``drain`` skips that chat (counted as
``RoutingFailures``) and routes the ones behind it.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pynamodb.expressions.condition import size
from pynamodb.expressions.update import Action

from chalicelib import clock, frames, lifecycle, telemetry
from chalicelib.auth import Caller
from chalicelib.errors import AT_CAPACITY, CONFLICT, FORBIDDEN, Refusal
from chalicelib.fanout import Outbox

# The states' one home is chalicelib.lifecycle; named here too, for routing's many readers.
from chalicelib.lifecycle import ACTIVE as ACTIVE
from chalicelib.lifecycle import ASSIGNED as ASSIGNED
from chalicelib.lifecycle import CLOSED as CLOSED
from chalicelib.lifecycle import OPEN_STATES as OPEN_STATES
from chalicelib.lifecycle import QUEUED as QUEUED
from chalicelib.protocol import page_view
from chalicelib.store import (
    EMAIL_CHANNEL,
    AgentModel,
    ConversationModel,
    agent_key,
    conversation_key,
    expired,
    get_or_none,
    keys,
    plain_map,
    update_or_old,
)

QUEUE_PAGE = 100
IN_FLIGHT_MS = 5_000  # a conversation this new is still being routed by its own start


def queue_keys(site: str, queued_at: int, conv_id: str) -> tuple[str, str]:
    """Sparse index keys: sorting by the zero-padded time gives oldest first."""
    return keys.queue_key(site), keys.timed_sk(queued_at, conv_id)


def waiting(site: str, limit: int = QUEUE_PAGE, after: str | None = None) -> list[ConversationModel]:
    """Waiting conversations on ``site``, oldest first (a Query on the sparse queue index);
    one past its retention that DynamoDB has not deleted yet is not served. ``after``: only
    those behind that place in line (a queue sort key, ``queue_keys``), for walking the line
    a page at a time."""
    now = clock.now_ms()
    C = ConversationModel
    behind = C.q_sk > after if after else None
    return [c for c in C.queue_index.query(keys.queue_key(site), behind, limit=limit)
            if not expired(c, now)]


def on_shift(site: str, with_room: bool = False) -> list[AgentModel]:
    """Agents on shift on ``site`` with their load (a Query on the sparse shift index);
    ``with_room``: only those below their maximum, which is all a router needs (filtered in
    DynamoDB, so a busy 500-agent team does not send 500 items to every start)."""
    A = AgentModel
    room = (A.convs.does_not_exist() | (size(A.convs) < A.max_chats)) if with_room else None
    return list(A.shift_index.query(keys.shift_key(site), filter_condition=room))


def anyone_on_shift(site: str) -> bool:
    """Whether the site has an agent on shift: one item read, however large the team (it
    is asked on every visitor hello and start)."""
    return next(iter(AgentModel.shift_index.query(keys.shift_key(site), limit=1)), None) is not None


@dataclass
class Assignment:
    conversation: ConversationModel
    agent: AgentModel


def assign(conv_id: str, agent_id: str, require_shift: bool = True) -> Assignment | str:
    """Give one queued conversation of the agent's own site to that agent, or say why not
    ("full"; "gone" when its visitor left and cannot be reached by email; or "taken" when it
    is no longer waiting or belongs to another site).

    Automatic routing only picks agents on shift; an agent picking by hand may do so while
    off shift (a supervisor helping out), but never beyond their maximum.
    """
    A, C = AgentModel, ConversationModel
    # "not already held": a stale index read must not make the undo below drop a chat the
    # agent legitimately has.
    room = ((A.convs.does_not_exist() | (size(A.convs) < A.max_chats)) & A.pk.exists()
            & ~A.convs.contains(conv_id))
    if require_shift:
        room = room & (A.on_shift == True)  # noqa: E712
    reserved, agent = update_or_old(A, agent_key(agent_id), [A.convs.add({conv_id})], room)
    if not reserved or agent is None:
        return "full"
    now = clock.now_ms()
    actions: list[Action] = [C.status.set(ASSIGNED), C.agent_id.set(agent_id), C.agent_name.set(agent.name),
               C.assigned_at.set(now), C.q_pk.remove(), C.q_sk.remove(),
               C.accepted_at.set(C.accepted_at | now)]  # the first acceptance: where waiting ends
    actions += [C.conns[c].set(f"a:{agent_id}") for c in sorted(agent.conns or ())]
    try:
        claimed, conv = update_or_old(C, conversation_key(conv_id), actions,
                                      (C.status == QUEUED) & (C.site == agent.site) & lifecycle.routable())
    except Exception:
        release(agent_id, conv_id)  # whatever failed, the reserved place is not kept
        raise
    if not claimed or conv is None:
        release(agent_id, conv_id)
        if conv is not None and conv.status == QUEUED and lifecycle.ghost(conv):
            return "gone"
        return "taken"
    return Assignment(conv, agent)


def held_by(who: Caller, conv_id: str) -> ConversationModel:
    """The conversation, if ``who`` is the agent holding it (for what only that agent may
    see or do: notes, visitor context); a refusal that does not reveal whether it exists."""
    conv = get_or_none(ConversationModel, conversation_key(conv_id), consistent_read=True)
    if conv is None:
        raise Refusal(FORBIDDEN, "That is not one of your conversations.")
    if conv.agent_id != who.subject or conv.site != who.site:
        raise Refusal(FORBIDDEN, "That is not one of your conversations.")
    return conv


def held(agent: AgentModel) -> list[ConversationModel]:
    """The conversations an agent holds. One that no longer exists (erased on a visitor's
    request, or deleted by retention) is released, so it neither breaks the console nor
    keeps taking a place in the agent's capacity."""
    convs = []
    for conv_id in sorted(agent.convs or ()):
        conv = get_or_none(ConversationModel, conversation_key(conv_id), consistent_read=True)
        if conv is None:
            release(agent.id, conv_id)
        else:
            convs.append(conv)
    return convs


def release(agent_id: str, conv_id: str) -> None:
    """Give back the capacity one conversation held."""
    AgentModel(agent_key(agent_id)).update(actions=[AgentModel.convs.delete({conv_id})])


def announce(assignment: Assignment, outbox: Outbox) -> None:
    """Tell both sides (every tab of each) that the conversation has an agent."""
    conv = assignment.conversation
    telemetry.logger.info("conversation assigned",
                          extra={"conversation": conv.id, "assigned_to": assignment.agent.id})
    outbox.to(conv.connections(), frames.assigned(conv.id, conv.summary()))


def drain(site: str, outbox: Outbox, *, joined: str | None = None, quiet: bool = False,
          newcomer: Sequence[str] = ()) -> int:
    """Assign waiting conversations, oldest first, while anyone has capacity; then tell the
    waiting visitors and the on-shift agents whatever changed in the line.

    What changed decides who is told, because a full broadcast costs one post per waiting
    visitor and per agent, and a burst of starts or closes would make that quadratic:

    * ``joined``: this invocation just put that conversation at the back of the line (a
      start). If it alone went to an agent, the line is as everyone last saw it and nothing
      is sent; if it waits, only its own visitor learns a position (nobody ahead moved) and
      the agents get the longer line.
    * ``quiet``: the caller did not change the line itself (a chat that had an agent
      ended, an agent came on shift). If nothing is assigned either, only the
      ``newcomer`` connections (an agent who just came on shift) get the line.
    * otherwise (requeues, transfers, erasure, a chat that waited leaving): everyone is told.

    Concurrent routers each pick the least-loaded agents in an order of their own (a hash of
    the conversation and agent ids), so a burst of starts spreads over the agents instead of
    every router racing for the same one and paying for the failed conditional writes.
    """
    queue = waiting(site)
    agents = on_shift(site, with_room=True)
    load = {a.id: a.load for a in agents}
    taken: list[str] = []
    for conv in _to_route(queue, joined):
        if lifecycle.ghost(conv):
            continue  # nobody to answer: it keeps its place (and its "Visitor left") in line
        free = sorted((a for a in agents if load[a.id] < a.max_chats),
                      key=lambda a: (load[a.id], _spread(conv.id, a.id)))
        if not free:
            break
        for agent in free:
            try:
                result = assign(conv.id, agent.id)
            except Exception:
                # This chat cannot be placed now (assign gave the place back): the ones
                # behind it must not wait for it. It stays in line for a later pass.
                telemetry.count("RoutingFailures")
                telemetry.logger.exception("conversation could not be assigned",
                                           extra={"conversation": conv.id})
                break
            if isinstance(result, Assignment):
                load[agent.id] += 1
                announce(result, outbox)
                queue.remove(conv)
                taken.append(conv.id)
                break
            if result == "taken":
                queue.remove(conv)
                break
            if result == "gone":
                break
            load[agent.id] = int(agent.max_chats)  # the index was stale: full or off shift now
    _tell_line(site, outbox, queue, taken, joined=joined, quiet=quiet, newcomer=newcomer)
    return len(taken)


def _tell_line(site: str, outbox: Outbox, queue: list[ConversationModel], taken: list[str], *,
               joined: str | None, quiet: bool, newcomer: Sequence[str]) -> None:
    """After ``drain``'s assignments, tell only those whose view of the line changed (the
    cases are drain's docstring)."""
    if joined is not None and taken == [joined]:
        return
    if joined is not None and not taken:
        for position, conv in enumerate(queue, start=1):
            if conv.id == joined:
                outbox.to(conv.connections_of("v:"), frames.queued(conv.id, position))
        _tell_agents(site, outbox, queue, on_shift(site))
        return
    if quiet and not taken:
        if newcomer:
            outbox.to(list(newcomer), queue_listing(queue))
        return
    broadcast_queue(site, outbox, queue)


def _to_route(queue: list[ConversationModel], joined: str | None) -> list[ConversationModel]:
    """What this router tries to place, oldest first. A start routes its own conversation
    and at most one that has waited past ``IN_FLIGHT_MS`` (its start may have died before
    routing it), not the ones other starts wrote a moment ago: those starts are routing
    them right now. In a burst, every router walking the whole line would fight over the
    same conversations (each lost race costs three writes), which made 500 simultaneous
    starts quadratic; this keeps each start's work bounded."""
    if joined is None:
        return list(queue)
    settled = clock.now_ms() - IN_FLIGHT_MS
    stranded = next((c.id for c in queue if c.id != joined and int(c.queued_at or 0) < settled), None)
    return [c for c in queue if c.id in (joined, stranded)]


def _spread(conv_id: str, agent_id: str) -> int:
    """A tie-break among equally loaded agents that differs from one conversation to the
    next (stable for a given pair, so a router never flip-flops within one pass)."""
    return zlib.crc32(f"{conv_id}/{agent_id}".encode())


def broadcast_queue(site: str, outbox: Outbox, queue: list[ConversationModel] | None = None,
                    agents: list[AgentModel] | None = None) -> None:
    """Push positions to waiting visitors and the queue to on-shift agents."""
    queue = waiting(site) if queue is None else queue
    agents = on_shift(site) if agents is None else agents
    for position, conv in enumerate(queue, start=1):
        outbox.to(conv.connections_of("v:"), frames.queued(conv.id, position))
    _tell_agents(site, outbox, queue, agents)


def tell_agents(site: str, outbox: Outbox) -> None:
    """Push the line to the on-shift agents only (a chat in it changed, nobody moved)."""
    _tell_agents(site, outbox, waiting(site), on_shift(site))


def _tell_agents(site: str, outbox: Outbox, queue: list[ConversationModel],
                 agents: list[AgentModel]) -> None:
    telemetry.gauge("QueueLength", len(queue), site=site)  # known here: no extra request
    listing = queue_listing(queue)
    outbox.to([c for a in agents for c in sorted(a.conns or ())], listing)


def queue_items(queue: list[ConversationModel], after: str | None = None) -> list[dict[str, Any]]:
    """The line as agents see it: oldest first, with absolute positions, wait start, first
    words and the page (clipped); with ``after`` (a cursor), only the chats behind it."""
    items = [{"conversation": c.id, "position": i, "queued_at": c.queued_at, "preview": c.preview,
              "page": page_view(plain_map(c.page)) if c.page else None,
              "presence": lifecycle.presence(c),
              **({"by_email": True} if c.by_email else {})}
             for i, c in enumerate(queue, start=1)]
    return items if not after else [i for i in items if queue_cursor(i) > after]


def queue_cursor(item: dict[str, Any]) -> str:
    """Where a page of the line ends: its last chat's place in line (wait start, then id), so
    the next page starts right behind it even if chats ahead left meanwhile."""
    return keys.timed_sk(int(item['queued_at'] or 0), item['conversation'])


def queue_listing(queue: list[ConversationModel], after: str | None = None) -> dict[str, Any]:
    """The ``queue`` frame agents see, one page of it (``more``, ``cursor``); ``after``: the
    page that follows that cursor (echoed, so the console appends instead of replacing)."""
    return frames.queue(after, queue_items(queue, after), queue_cursor)


def accept(agent_id: str, conv_id: str, outbox: Outbox) -> Assignment:
    """An agent picks a conversation from the queue by hand."""
    result = assign(conv_id, agent_id, require_shift=False)
    if result == "full":
        raise Refusal(AT_CAPACITY, "You already have your maximum number of chats.")
    if result == "taken":
        raise Refusal(CONFLICT, "That conversation is no longer waiting.")
    if result == "gone":
        raise Refusal(CONFLICT, "The visitor has left; the chat closes by itself unless they "
                                "come back.")
    assert isinstance(result, Assignment)
    announce(result, outbox)
    broadcast_queue(result.conversation.site, outbox)
    return result


def requeue(conv_id: str, agent_id: str) -> ConversationModel | None:
    """Put an agent's conversation back in line at its original place (agent vanished)."""
    C = ConversationModel
    conv = get_or_none(C, conversation_key(conv_id), consistent_read=True)
    if conv is None:
        return None
    queued_at = int(conv.queued_at or conv.created_at)
    q_pk, q_sk = queue_keys(conv.site, queued_at, conv_id)
    if conv.channel == EMAIL_CHANNEL and not conv.connections_of("v:"):  # back to the inbox it came from
        q_pk = keys.inbox_key(conv.site)
    actions: list[Action] = [C.status.set(QUEUED), C.q_pk.set(q_pk), C.q_sk.set(q_sk), C.agent_id.remove(),
               C.agent_name.remove(), C.assigned_at.remove()]
    actions += [C.conns[c].remove() for c in conv.connections_of("a:")]
    ok, new = update_or_old(C, conversation_key(conv_id), actions,
                            (C.agent_id == agent_id) & C.status.is_in(ASSIGNED, ACTIVE))
    release(agent_id, conv_id)
    return new if ok else None
