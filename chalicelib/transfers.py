"""Transfers: an agent hands a conversation to another agent, with a private note.

Two steps, so the receiving agent can decline: the offer is recorded on the conversation
(``transfer``); accepting moves it with conditional writes (capacity reserved on the
receiver first, the conversation moved only if the offer still stands, the giver's capacity
released last), so a chat is never held by two agents or by none. The history goes with it:
it is the same conversation; the visitor sees a short notice.
"""

from __future__ import annotations

from typing import Any

from pynamodb.expressions.condition import size
from pynamodb.expressions.update import Action

from chalicelib import clock, conversations, frames, notes, routing
from chalicelib.auth import Caller
from chalicelib.errors import AT_CAPACITY, CONFLICT, FORBIDDEN, NOT_FOUND, Refusal
from chalicelib.fanout import Outbox
from chalicelib.store import (
    META,
    AgentModel,
    ConversationModel,
    agent_key,
    conversation_key,
    get_or_none,
    update_or_old,
)


def offer(who: Caller, conv_id: str, to_agent: str, note: str | None, outbox: Outbox) -> None:
    if to_agent == who.subject:
        raise Refusal(CONFLICT, "That conversation is already yours.")
    target = get_or_none(AgentModel, agent_key(to_agent), consistent_read=True)
    if target is None or target.site != who.site:  # another site's agent ids are not revealed
        raise Refusal(NOT_FOUND, "No such agent.")
    if not target.on_shift or target.away or not target.conns:
        raise Refusal(NOT_FOUND, "That agent is not available (off shift, away or offline).")
    if target.load >= target.max_chats:
        raise Refusal(AT_CAPACITY, f"{target.name} has no room for another chat.")
    C = ConversationModel
    giver = AgentModel.get(agent_key(who.subject), META).name
    pending = {"to": to_agent, "from": who.subject, "from_name": giver, "ts": clock.now_ms()}
    # An unanswered offer lapses after OFFER_SECONDS (the receiver may have closed their
    # console), so a chat is never stuck waiting for a reply that cannot come.
    stale = clock.now_ms() - OFFER_SECONDS * 1000
    ok, conv = update_or_old(C, conversation_key(conv_id), [C.transfer.set(pending)],
                             (C.agent_id == who.subject) & C.status.is_in(routing.ASSIGNED, routing.ACTIVE)
                             & (C.transfer.does_not_exist() | (C.transfer["ts"] < stale)))
    if conv is None or conv.agent_id != who.subject:
        raise Refusal(FORBIDDEN, "That is not one of your conversations.")
    if not ok:
        raise Refusal(CONFLICT, "That conversation is closed or already being transferred.")
    note_frame = notes.add(who, conv_id, note, conv=conv) if note else None
    A = AgentModel
    A(agent_key(to_agent)).update(actions=[A.offers.add({conv.id})])
    outbox.to(sorted(target.conns or ()), offer_frame(conv, giver, note_frame))
    outbox.to(conv.connections_of("a:"), frames.transfer_pending(conv.id, {"id": to_agent,
                                                                            "name": target.name}))


OFFER_SECONDS = 60


def offer_frame(conv: ConversationModel, giver_name: str | None = None,
                note: dict[str, Any] | None = None) -> dict[str, Any]:
    pending: dict[str, Any] = dict(conv.transfer.as_dict()) if conv.transfer else {}
    giver = {"id": pending.get("from"), "name": giver_name or pending.get("from_name")}
    return frames.transfer_offer(conv.id, conv.summary(), giver, note)


def pending_offers(agent: AgentModel) -> list[dict[str, Any]]:
    """Offers still open for this agent (shown again after a reload); lapsed ones are dropped."""
    offers = []
    stale = clock.now_ms() - OFFER_SECONDS * 1000
    for conv_id in sorted(agent.offers or ()):
        conv = get_or_none(ConversationModel, conversation_key(conv_id), consistent_read=True)
        if conv is None:
            continue
        pending = dict(conv.transfer.as_dict()) if conv.transfer else {}
        if pending.get("to") == agent.id and int(pending.get("ts", 0)) >= stale:
            offers.append(offer_frame(conv))
        else:
            AgentModel(agent.pk).update(actions=[AgentModel.offers.delete({conv_id})])
    return offers


def answer(who: Caller, conv_id: str, accept: bool, outbox: Outbox) -> None:
    C, A = ConversationModel, AgentModel
    conv = get_or_none(C, conversation_key(conv_id), consistent_read=True)
    if conv is None:
        raise Refusal(NOT_FOUND, "That transfer is no longer open.")
    pending: dict[str, Any] = dict(conv.transfer.as_dict()) if conv.transfer else {}
    AgentModel(agent_key(who.subject)).update(actions=[AgentModel.offers.delete({conv_id})])
    if pending.get("to") != who.subject:
        raise Refusal(NOT_FOUND, "That transfer is no longer open.")
    giver = str(pending["from"])
    giver_agent = A.get(agent_key(giver), META)
    if not accept:
        update_or_old(C, conv.pk, [C.transfer.remove()], C.transfer["to"] == who.subject)
        outbox.to(sorted(giver_agent.conns or ()), frames.transfer_declined(conv.id, who.subject))
        return
    reserved, receiver = update_or_old(
        A, agent_key(who.subject), [A.convs.add({conv.id})],
        (A.convs.does_not_exist() | (size(A.convs) < A.max_chats)) & ~A.convs.contains(conv.id))
    if not reserved or receiver is None:
        raise Refusal(AT_CAPACITY, "You already have your maximum number of chats.")
    actions: list[Action] = [C.agent_id.set(who.subject), C.agent_name.set(receiver.name),
                             C.assigned_at.set(clock.now_ms()), C.transfer.remove(),
                             C.transfers.add(1)]  # counted in the figures when it closes
    actions += [C.conns[c].remove() for c in conv.connections_of(f"a:{giver}")]
    actions += [C.conns[c].set(f"a:{who.subject}") for c in sorted(receiver.conns or ())]
    moved, fresh = update_or_old(C, conv.pk, actions,
                                 (C.agent_id == giver) & (C.transfer["to"] == who.subject)
                                 & C.status.is_in(routing.ASSIGNED, routing.ACTIVE))
    if not moved or fresh is None:
        routing.release(who.subject, conv.id)
        raise Refusal(CONFLICT, "That transfer is no longer open.")
    routing.release(giver, conv.id)
    outbox.to(sorted(giver_agent.conns or ()),
              frames.transferred(conv.id, {"id": who.subject, "name": receiver.name}))
    outbox.to(fresh.connections(), frames.assigned(fresh.id, fresh.summary()))
    conversations.post_system(fresh, f"You are now chatting with {receiver.name}.", outbox)
    routing.drain(fresh.site, outbox)  # the giver has room again
