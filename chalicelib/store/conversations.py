"""Conversations and what lives under their partition: messages and internal notes."""

from __future__ import annotations

from typing import Any

from pynamodb.attributes import (
    BooleanAttribute,
    MapAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
)
from pynamodb.expressions.update import Action
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection

from chalicelib.store.base import TableModel, plain_map
from chalicelib.store.keys import META, email_key, item_id

#: ``ConversationModel.channel`` of a conversation that began as an offline message or went on
#: by email (stored "email"; no attribute means "chat", so older items need no migration).
EMAIL_CHANNEL = "email"


class QueueIndex(GlobalSecondaryIndex["ConversationModel"]):
    """Waiting conversations per site, oldest first (``QUEUE#<site>``, present only while
    queued); closed ones per site by close time (``HIST#<site>``, the supervisor's history);
    offline messages waiting for an agent (``INBOX#<site>``, the console's "Messages" inbox:
    kept out of the live line so that nobody routes or abandons them like a chat)."""

    class Meta:
        index_name = "queue"
        projection = AllProjection()

    q_pk = UnicodeAttribute(hash_key=True)
    q_sk = UnicodeAttribute(range_key=True)


class VisitorItemsIndex(GlobalSecondaryIndex[Any]):
    """A visitor's conversations and offline messages, for export and erasure (keys only)."""

    class Meta:
        index_name = "by_visitor"
        projection = KeysOnlyProjection()

    visitor_id = UnicodeAttribute(hash_key=True)
    pk = UnicodeAttribute(range_key=True)


class EmailItemsIndex(GlobalSecondaryIndex[Any]):
    """Conversations and offline messages that carry an email address, per site (keys only):
    how an admin finds a person who asks by email."""

    class Meta:
        index_name = "by_email"
        projection = KeysOnlyProjection()

    email_key = UnicodeAttribute(hash_key=True)
    pk = UnicodeAttribute(range_key=True)


class ConversationDueIndex(GlobalSecondaryIndex["ConversationModel"]):
    """The "due" index, conversation side: open chats whose visitor is away, per site
    (``GONE#<site>`` / when they left), for the minute timer's abandonment (chalicelib.lifecycle)."""

    class Meta:
        index_name = "due"
        projection = KeysOnlyProjection()

    due_pk = UnicodeAttribute(hash_key=True)
    due_sk = UnicodeAttribute(range_key=True)


def email_actions(site: str, email: str, *, unless_set: bool = False) -> list[Action]:
    """The writes that put an address on a conversation: the address and its ``by_email`` key
    together, never one without the other (the team finds the chat by it). ``unless_set``:
    only if the chat has no address yet (the pre-chat one stays the chat's)."""
    C = ConversationModel
    if unless_set:
        return [C.email.set(C.email | email), C.email_key.set(C.email_key | email_key(site, email))]
    return [C.email.set(email), C.email_key.set(email_key(site, email))]


class ConversationModel(TableModel):
    """A conversation's state; its messages live beside it under the same partition key.

    The item also carries undeclared top-level attributes ``rl#<connection>#<n>`` (the
    flood-control slots of chat messages, see chalicelib.conversations): written and checked
    by the message's own UpdateItem, removed when the connection leaves. Top-level so that
    items written before they existed need no migration (a nested path needs its parent map).

    Maps written on every message have short stored names (``attr_name``): each is repeated
    per message in the request and counted in the item's bytes.
    """

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default=META)
    site = UnicodeAttribute()
    visitor_id = UnicodeAttribute()
    status = UnicodeAttribute()
    agent_id = UnicodeAttribute(null=True)
    agent_name = UnicodeAttribute(null=True)
    seq = NumberAttribute(default=0)
    conns = MapAttribute[str, Any](default=dict)
    # Resend detection: last client counter per client instance, and the seq it received.
    client_counters = MapAttribute[str, Any](default=dict, attr_name="cm")
    client_seqs = MapAttribute[str, Any](default=dict, attr_name="cs")
    # client instance -> the participant tag that owns it
    client_owners = MapAttribute[str, Any](default=dict, attr_name="co")
    reads = MapAttribute[str, Any](default=dict)
    preview = UnicodeAttribute(null=True)
    email = UnicodeAttribute(null=True)
    visitor_name = UnicodeAttribute(null=True)
    page = MapAttribute[str, Any](null=True)  # where the visitor was when they started
    last_at = NumberAttribute(null=True)
    last_by = UnicodeAttribute(null=True)  # tag of the last writer: "v:..", "a:..", "s:system"
    transfer = MapAttribute[str, Any](null=True)  # a pending transfer offer: to, from, note
    digested_seq = NumberAttribute(null=True)
    created_at = NumberAttribute()
    queued_at = NumberAttribute(null=True)
    assigned_at = NumberAttribute(null=True)
    closed_at = NumberAttribute(null=True)
    # Figures (chalicelib.stats). The hot path keeps per client instance a message count and
    # the first message's time (``client_owners`` says whose client it is), so per-side
    # counts and the first agent response cost no extra request.
    message_counts = MapAttribute[str, Any](default=dict, attr_name="mn")
    first_message_at = MapAttribute[str, Any](default=dict, attr_name="mf")
    accepted_at = NumberAttribute(null=True)  # the first time any agent took it
    v_left_at = NumberAttribute(null=True)  # the visitor's last tab closed (cleared on return)
    v_on_at = NumberAttribute(null=True)  # a tab came back after they had left (cleared on leaving)
    reason = UnicodeAttribute(null=True)  # why it closed: chalicelib.lifecycle.REASONS
    due_pk = UnicodeAttribute(null=True)  # GONE#<site> while the visitor is away (lifecycle)
    due_sk = UnicodeAttribute(null=True)
    after_hours = BooleanAttribute(null=True)  # started while the site was offline
    by_email = BooleanAttribute(null=True)  # the visitor chose to continue by email (chalicelib.unattended)
    transfers = NumberAttribute(null=True)
    holds = NumberAttribute(null=True)  # holding messages sent
    counted = BooleanAttribute(null=True)  # its figures are in the daily aggregates
    outcome = UnicodeAttribute(null=True)  # answered | missed | abandoned (set when counted)
    rating = MapAttribute[str, Any](null=True)  # the visitor's: score up/down, comment, ts
    # transcript requests: request id -> address
    transcript_requests = MapAttribute[str, Any](null=True, attr_name="tx")
    tx_close = BooleanAttribute(null=True)  # closed with "transcript": one to the pre-chat address
    # addresses trusted with its transcript: address -> link|agent
    trusted_addresses = MapAttribute[str, Any](null=True, attr_name="ok")
    # "email" when it began as an offline message or went on by email; absent = "chat"
    channel = UnicodeAttribute(null=True, attr_name="ch")
    q_pk = UnicodeAttribute(null=True)  # QUEUE#/INBOX#<site> while waiting, HIST#<site> once closed
    q_sk = UnicodeAttribute(null=True)
    email_key = UnicodeAttribute(null=True)  # see EmailItemsIndex
    # Email replies received (chalicelib.email_channel): hash of the email's Message-ID -> the
    # seq it got, so a redelivered email stores once; at most conversations.MAX_EMAIL_LINES.
    # Written (empty) with the conversation, so the first reply's write has a map to go into;
    # a conversation from before has it added once (store.update_into_maps).
    email_lines = MapAttribute[str, Any](default=dict, attr_name="em")
    ttl = TTLAttribute(null=True)  # retention, see keep_until
    queue_index = QueueIndex()
    visitor_index = VisitorItemsIndex()
    email_index = EmailItemsIndex()
    due_index = ConversationDueIndex()

    @property
    def id(self) -> str:
        return item_id(self.pk)

    def connections(self) -> dict[str, str]:
        """The conns map as a plain dict (PynamoDB returns a raw MapAttribute)."""
        return plain_map(self.conns)

    def connections_of(self, role_prefix: str) -> list[str]:
        """Connection ids of one side: ``"v:"`` for the visitor's tabs, ``"a:"`` for the agent."""
        return [c for c, who in self.connections().items() if who.startswith(role_prefix)]

    def client_state(self, client: str) -> tuple[int, int] | None:
        """(last counter, its seq) for one client instance, if it has sent here."""
        counters, seqs = plain_map(self.client_counters), plain_map(self.client_seqs)
        if client not in counters:
            return None
        return int(counters[client]), int(seqs[client])

    def client_owner(self, client: str) -> str | None:
        """The participant tag that owns a client instance id, if it has been used here."""
        owner = plain_map(self.client_owners).get(client)
        return None if owner is None else str(owner)

    def summary(self) -> dict[str, Any]:
        """The conversation as both clients see it (no connection ids, no dedupe state)."""
        return {"id": self.id, "status": self.status, "seq": int(self.seq or 0),
                "agent": self.agent_name, "visitor": self.visitor_id,
                "created_at": self.created_at, "queued_at": self.queued_at,
                "assigned_at": self.assigned_at, "preview": self.preview,
                "visitor_name": self.visitor_name, "email": self.email,
                "reads": {k: int(v) for k, v in plain_map(self.reads).items()},
                "rating": self.rating_view(), **self.lifecycle_view(),
                **({"by_email": True} if self.by_email else {}),
                **({"channel": self.channel} if self.channel else {})}

    def lifecycle_view(self) -> dict[str, Any]:
        """``reason`` once closed; the visitor's ``presence`` while open (chalicelib.lifecycle)."""
        from chalicelib import lifecycle  # lifecycle writes through this module: imported late

        if self.status == lifecycle.CLOSED:
            return {"reason": self.reason} if self.reason else {}
        return {"presence": lifecycle.presence(self)}

    def rating_view(self) -> dict[str, Any] | None:
        """The visitor's rating as clients see it (chalicelib.ratings stores it)."""
        if not self.rating:
            return None
        doc = plain_map(self.rating)
        return {"score": doc.get("score"), "comment": doc.get("comment"), "ts": int(doc.get("ts") or 0)}


class MessageModel(TableModel):
    """One stored message; ``sk`` orders messages by their per-conversation sequence number."""

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    seq = NumberAttribute()
    role = UnicodeAttribute()
    author = UnicodeAttribute()
    name = UnicodeAttribute(null=True)
    text = UnicodeAttribute()
    cmid = UnicodeAttribute()
    ts = NumberAttribute()
    # Which attempt stored it: a PutItem retried after its answer was lost finds its own
    # write (not an earlier invocation's), so the message is still delivered.
    attempt = UnicodeAttribute(null=True)
    # How the line travelled: null for web chat, "email" for a reply that came by email
    # (chalicelib.email_channel); "orig" keeps that email's whole text (quotes, signature),
    # bounded to email_channel.MAX_ORIGINAL_BYTES, for the agent.
    channel = UnicodeAttribute(null=True, attr_name="ch")
    original = UnicodeAttribute(null=True, attr_name="orig")
    ttl = TTLAttribute(null=True)  # retention, see keep_until


class NoteModel(MessageModel):
    """An internal note on a conversation (agents only; never sent to the visitor).

    Stored exactly like a message (same attributes, ``role`` "note", ``seq`` 0) under
    ``NOTE#<ms>#<nonce>`` in the conversation's partition, so the conversation's one Query
    (export, erasure) finds both; its own class so that code says which one it means."""
