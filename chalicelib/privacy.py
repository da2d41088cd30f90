"""A visitor's data on request: find everything we hold about them, export it, erase it.

An admin names the person by visitor id, or by the email address they gave (pre-chat form,
offline message). Nothing scans: the visitor's own partition (``VISITOR#<id>``), the
``by_visitor`` and ``by_email`` indexes (their conversations and offline messages), and each
conversation's partition (messages and notes) are Queries and GetItems on known keys. An
email address also brings in the visitors it was given by, and their other data.

Erasure deletes every one of those items, plus the visitor's live connection records and
their offline-message rate counters. An open conversation is closed first, so no message
can land after the sweep; its agent is told (``closed``, ``by: "erased"``) and gets the
capacity back. Mail already queued for an erased record sends nothing: the consumer reads
the record at send time and drops a job whose record is gone (``chalicelib.offline``).
What remains: mail idempotency markers (``MAIL#``: job keys and counts, no content; they
expire after 30 days) and anything already emailed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from chalicelib import clock, config, frames, limits, routing
from chalicelib.fanout import Outbox
from chalicelib.store import (
    META,
    AgentModel,
    ConnectionModel,
    ConversationModel,
    MessageModel,
    OfflineMessageModel,
    VisitorModel,
    agent_key,
    connection_key,
    email_key,
    get_or_none,
    update_or_old,
    visitor_key,
)
from chalicelib.store.keys import MESSAGE, NOTE, is_conversation_key, item_id, offline_key

ERASED = frames.ERASED  # the ``by`` of the ``closed`` frame agents get for an erased conversation


@dataclass
class Holdings:
    """The keys of everything held about one person on one site."""

    site: str
    visitors: dict[str, VisitorModel | None] = field(default_factory=dict)  # None: no record left
    conversations: dict[str, ConversationModel] = field(default_factory=dict)
    offline: dict[str, OfflineMessageModel] = field(default_factory=dict)

    def empty(self) -> bool:
        return not (self.visitors or self.conversations or self.offline)


def is_email(who: str) -> bool:
    """Visitor ids are URL-safe base64 (never an ``@``); anything else names an email."""
    return "@" in who


def find(site: str, who: str) -> Holdings:
    """Everything held about ``who`` (a visitor id or an email address) on ``site``."""
    found = Holdings(site)
    if is_email(who):
        for pk in _index_keys(ConversationModel.email_index, email_key(site, who)):
            owner = _add(found, pk)
            if owner:
                found.visitors.setdefault(owner, None)
        for visitor_id in list(found.visitors):
            _add_visitor(found, visitor_id)
    else:
        _add_visitor(found, who)
        if not found.visitors.get(who) and not found.conversations and not found.offline:
            found.visitors.pop(who, None)
    return found


def _index_keys(index: Any, key: str) -> list[str]:
    return sorted({item.pk for item in index.query(key)})


def _add_visitor(found: Holdings, visitor_id: str) -> None:
    visitor: VisitorModel | None = get_or_none(VisitorModel, visitor_key(visitor_id), consistent_read=True)
    if visitor is not None and visitor.site not in (None, found.site):
        found.visitors.pop(visitor_id, None)  # another site's visitor (tokens are per site)
        return
    found.visitors[visitor_id] = visitor
    for pk in _index_keys(ConversationModel.visitor_index, visitor_id):
        _add(found, pk)


def _add(found: Holdings, pk: str) -> str | None:
    """Add a conversation or offline message of this site by key; returns its visitor id."""
    item: ConversationModel | OfflineMessageModel | None
    if is_conversation_key(pk):
        item = get_or_none(ConversationModel, pk, consistent_read=True)
    else:
        item = get_or_none(OfflineMessageModel, pk, consistent_read=True)
    if item is None:
        return None  # deleted since the index was written
    if item.site != found.site:
        return None
    if isinstance(item, ConversationModel):
        found.conversations[item_id(pk)] = item
    else:
        found.offline[item_id(pk)] = item
    return item.visitor_id


# --- export ----------------------------------------------------------------------------


def export(found: Holdings) -> dict[str, Any]:
    """Everything in ``found`` as plain JSON: each record as stored, with its messages, notes
    and pages."""
    conversations = []
    for conv_id, conv in sorted(found.conversations.items()):
        items = [plain(m) for m in MessageModel.query(conv.pk, consistent_read=True) if m.sk != META]
        conversations.append({"id": conv_id, "record": plain(conv),
                              "messages": [m for m in items if m["sk"].startswith(MESSAGE)],
                              "notes": [m for m in items if m["sk"].startswith(NOTE)]})
    visitors = []
    for visitor_id, visitor in sorted(found.visitors.items()):
        connections = []
        for conn_id in sorted(visitor.conns or ()) if visitor else ():
            conn = get_or_none(ConnectionModel, connection_key(conn_id))
            if conn is not None:
                connections.append(plain(conn))
        visitors.append({"id": visitor_id, "record": plain(visitor) if visitor else None,
                         "connections": connections})
    retention_days = config.settings().retention_days
    return {"site": found.site, "exported_at": clock.now_ms(), "retention_days": retention_days,
            "visitors": visitors, "conversations": conversations,
            "offline_messages": [plain(m) for _, m in sorted(found.offline.items())]}


def plain(item: Any) -> dict[str, Any]:
    """One stored item as JSON-ready values (sets become sorted lists)."""
    return {k: _plain(v) for k, v in sorted(item.to_dynamodb_dict().items())}


def _plain(value: dict[str, Any]) -> Any:
    (kind, raw), = value.items()
    if kind == "N":
        number = float(raw)
        return int(number) if number.is_integer() else number
    if kind in ("SS", "NS"):
        return sorted(_plain({kind[0]: v}) for v in raw)
    if kind == "M":
        return {k: _plain(v) for k, v in sorted(raw.items())}
    if kind == "L":
        return [_plain(v) for v in raw]
    if kind == "NULL":
        return None
    return raw  # S, BOOL


# --- erasure ---------------------------------------------------------------------------


@dataclass
class Erased:
    counts: dict[str, int]
    hang_up: list[str]  # the visitor's live connections: the caller closes them


def erase(found: Holdings, outbox: Outbox) -> Erased:
    """Delete everything in ``found``. Open conversations end first (their agents hear it in
    ``outbox``); the visitor's connection records go before their visitor record, so a
    ``$disconnect`` racing the erasure finds nothing to update and recreates nothing."""
    counts = {"visitors": 0, "conversations": 0, "messages": 0, "offline_messages": 0}
    sites_to_drain: set[str] = set()
    for conv in found.conversations.values():
        if _end(conv, outbox):
            sites_to_drain.add(conv.site)
    hang_up: list[str] = []
    keys: list[tuple[str, str]] = []
    for visitor in found.visitors.values():
        conns = sorted(visitor.conns or ()) if visitor else []
        hang_up += conns
        keys += [(connection_key(c), META) for c in conns]
    _delete(keys)
    keys = []
    for conv in found.conversations.values():
        # twice: a message whose first write won the race with the close lands in between
        for _ in range(2):
            partition = _partition(conv.pk)
            counts["messages"] += sum(1 for _, sk in partition if sk != META)
            _delete(partition)
        counts["conversations"] += 1
    for message_id in found.offline:
        keys.append((offline_key(message_id), META))
        counts["offline_messages"] += 1
    for visitor_id in found.visitors:
        keys += _partition(visitor_key(visitor_id))
        counts["visitors"] += 1
        # Their rate counters name them too: offline messages, new chats, transcripts.
        limits.forget_visitor(visitor_id)
    _delete(keys)
    for site in sorted(sites_to_drain):
        routing.drain(site, outbox)  # the agent has room again; the queue moved
    return Erased(counts, hang_up)


def _end(conv: ConversationModel, outbox: Outbox) -> bool:
    """Close an open conversation and give its agent the capacity back; True if it was open."""
    C = ConversationModel
    ok, closed = update_or_old(C, conv.pk, [C.status.set(routing.CLOSED), C.q_pk.remove(), C.q_sk.remove(),
                                            C.closed_at.set(clock.now_ms())],
                               C.status.is_in(*routing.OPEN_STATES))
    if not ok or closed is None:
        return False
    # only ids: the summary would carry the data being erased
    outbox.to(closed.connections(), frames.closed(closed.id, {"id": closed.id, "status": routing.CLOSED},
                                                   ERASED))
    if closed.agent_id:
        routing.release(closed.agent_id, closed.id)
    offer = closed.transfer.as_dict() if closed.transfer else {}
    if offer.get("to"):
        A = AgentModel
        update_or_old(A, agent_key(str(offer["to"])), [A.offers.delete({closed.id})], A.pk.exists())
    return True


def _partition(pk: str) -> list[tuple[str, str]]:
    return [(item.pk, item.sk) for item in
            MessageModel.query(pk, consistent_read=True, attributes_to_get=["pk", "sk"])]


def _delete(keys: Iterable[tuple[str, str]]) -> None:
    """Batched deletes (25 per request; PynamoDB retries what DynamoDB leaves unprocessed)."""
    with MessageModel.batch_write() as batch:
        for pk, sk in keys:
            batch.delete(MessageModel(pk, sk))
