"""DynamoDB data model: one table, its items, its indexes, and every access pattern.

Single-table design. Every request path is a GetItem, a Query or a conditional write on a
known key; nothing here ever scans.

==============================================  =================================  =========================
access pattern                                  key                                how
==============================================  =================================  =========================
conversation state, participants' connections   CONV#<id> / META                   GetItem / UpdateItem
send a message (hot path, 2 requests)           CONV#<id> / META, then MSG#<seq>   UpdateItem + PutItem
messages after seq N, in order (resume)         CONV#<id> / MSG#<seq:012d>         Query sk > MSG#<N>
what a connection is (role, who, site)          CONN#<connection id> / META        Get/Put/DeleteItem, TTL
a connection's frame budget (rate limits)       CONN#<connection id> / META        UpdateItem (conditional)
a visitor's open conversation and tabs          VISITOR#<id> / META                UpdateItem
an agent: profile, capacity, chats, tabs        AGENT#<id> / META                  GetItem / UpdateItem
agents on shift on a site (routing)             GSI shift: SHIFT#<site> / <agent>  Query (sparse)
every agent of a site (team admin)              GSI team: TEAM#<site> / <agent>    Query
waiting conversations, oldest first             GSI queue: QUEUE#<site> / <ms>#id  Query (sparse)
timers due before T (grace ends, sweeps)         GSI due: <kind> / <due ms>         Query (sparse)
a site's chats whose visitor is away (abandon)  GSI due: GONE#<site> / <left ms>#id  Query (sparse, keys)
visitors on a site now (status push, live list)  GSI site_visitors: VCONN#<site>/id  Query (sparse)
site settings: hours, team address; all sites    SITE / <site id>                   GetItem; Query SITE
offline message left for the team               OFFLINE#<id> / META                PutItem, UpdateItem
a visitor's conversations and offline messages  GSI by_visitor: <visitor id> / pk  Query (sparse, keys)
conversations and offline messages by email     GSI by_email: <site>#<email> / pk   Query (sparse, keys)
an email sent at most once (idempotency)        MAIL#<job key> / META              UpdateItem, TTL
rate-limit counter for one key and window       RATE#<key>#<window> / META         UpdateItem ADD, TTL
where the minute timer's round of sites stopped  CURSOR#<name> / META               GetItem / UpdateItem
a site's recent sign-in lock events, newest 1st  LOCKS#<site> / <ms>#<scope>#<agent> PutItem; Query desc, TTL
daily figures of a site, one day (its own zone)  STATS#<site> / D#<date>#*          UpdateItem ADD (in a txn)
daily figures of one agent of a site             STATS#<site> / D#<date>#a#<agent>  UpdateItem ADD (in a txn)
a site's figures for a date range (reports)      STATS#<site> / D#<from> .. D#<to>~ Query (one partition)
==============================================  =================================  =========================

Figures are kept as conversations close (``chalicelib.stats``): the close marks the
conversation ``counted`` and adds its figures to the site's day item and its agent's day
item in one transaction, so a conversation is counted once, or not at all if the
transaction fails. The day is the local date the conversation started on, in the site's
zone. Day items hold counts, sums and a fixed histogram of wait and first-response times,
so a report over any range is one Query and a sum: medians and p90s come from the summed
histograms, never from a scan. The date first in the sort key puts a day's site item and
its agents' items together: a range is one contiguous slice of the partition.

Capacity is derived, not counted: an agent's load is ``size(convs)``, checked in the same
conditional write that adds a conversation, so two routers can never overfill an agent and
there is no counter to drift.

Retention: every item holding visitor data (conversation, message, note, visitor, offline
message) carries ``ttl``, the table's one TTL attribute, set to ``Settings.retention_days``
after its last write by the write itself (no extra request). DynamoDB deletes expired items
lazily, so reads that serve them skip any ``expired`` item. Export and erasure
(``chalicelib.privacy``) find a visitor's items through ``by_visitor`` and ``by_email``:
keys-only, so the per-message update of a conversation never writes to them.

Item budgets (bytes, as DynamoDB counts them: ``item_bytes``). An item at 400 KB cannot be
written at all, and a write is billed on the larger of the item before and after, so each
item a visitor can grow is bounded well below (docs/resilience.md has the breakdown;
tests/test_items.py drives each to its worst case):

==================  ===============================================================  ========
item                worst case                                                       budget
==================  ===============================================================  ========
conversation META   64 client ids x 276 B (17.7 KB) + page 5.4 KB + name, email,      64 KB
                    preview, rating, 3 transcript requests (~5.5 KB) + transfer
                    note 16 KB + scalars 1 KB + 10 visitor tabs x ~300 B (3 KB)
visitor META        current page 5.4 KB + 25 brief pages x 1.2 KB (30 KB) + 20 past    48 KB
                    ids, user agent 1.2 KB, tz, invitation 1.3 KB + 10 tabs x 20 B
message             text 16,000 B + keys and scalars                                 17 KB
offline message     text 16,000 B + name, email, page                                20 KB
==================  ===============================================================  ========

Open tabs are capped (``Settings.visitor_tabs``, 10, a ``size(conns)`` check in the write that
attaches one; at the cap the newest tab evicts the oldest, see chalicelib.presence), and a
visitor's tab joins a conversation only while it holds fewer than ``Settings.conversation_conns`` (40)
connections of anyone, a backstop that alone keeps the conversation under 64 KB.

Every later write of a conversation (assign, transfer, close, figures, erasure) adds at most
a few hundred bytes, so each budget leaves over 300 KB of room for the rest of its life.

A conversation item's ``conns`` map is ``{connection id: "v:<visitor>" | "a:<agent>"}``. It is
the fan-out list and the authorization check in one: a frame naming a conversation is
accepted only when its connection is a key of that map, tested inside the write itself.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError
from pynamodb.attributes import (
    BooleanAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
)
from pynamodb.connection import TableConnection
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.indexes import (
    AllProjection,
    GlobalSecondaryIndex,
    IncludeProjection,
    KeysOnlyProjection,
)
from pynamodb.models import Model

from chalicelib import aws, config

_REGION = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"

META = "META"


_RETRIES = aws.policy_for("dynamodb")


class _TableName:
    """``Meta.table_name``, read from the settings each time PynamoDB asks (it compares it with
    its cached connection's on every request), not frozen into the class at import."""

    def __get__(self, instance: object, owner: type | None = None) -> str:
        return config.settings().table_name


class _Meta:
    table_name = _TableName()
    region = _REGION
    # Lambda's own time is short: bounded retries (chalicelib.aws), then the client resends
    # (every write is idempotent).
    max_retry_attempts = _RETRIES.attempts - 1
    connect_timeout_seconds = _RETRIES.connect_timeout
    read_timeout_seconds = _RETRIES.read_timeout


_CLIENT_LOCK = threading.Lock()
_shared_client: Any = None


class TableModel(Model):
    """Base of every item type. They all live in one table, so they share one botocore client.

    PynamoDB builds a client per model class, each from its own per-thread botocore session,
    so each one parses the DynamoDB service model from disk again (tens of ms of CPU). On a
    cold Lambda that is paid once per item type a request touches; under concurrency (the
    local stand-in runs invocations in threads) every thread that races the first use of a
    model builds its own. One client, built once under a lock, removes both (botocore
    clients are thread-safe; PynamoDB's only per-connection hook adds extra headers, which
    we do not use). That client follows the project's DynamoDB retry policy
    (chalicelib.aws: backoff, and no retry the invocation has no time left for).
    """

    @classmethod
    def _get_connection(cls) -> TableConnection:
        global _shared_client
        table = super()._get_connection()
        if table.connection._client is None:
            with _CLIENT_LOCK:
                if _shared_client is None:
                    _shared_client = aws.bound_retries(table.connection.client, _RETRIES)
                table.connection._client = _shared_client
        return table


class QueueIndex(GlobalSecondaryIndex["ConversationModel"]):
    """Waiting conversations per site, oldest first (present only while queued)."""

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


def email_key(site: str, email: str) -> str:
    """The ``by_email`` key: per site, case-insensitive."""
    return f"{site}#{email.strip().lower()}"


def email_actions(site: str, email: str, *, unless_set: bool = False) -> list[Action]:
    """The writes that put an address on a conversation: the address and its ``by_email`` key
    together, never one without the other (the team finds the chat by it). ``unless_set``:
    only if the chat has no address yet (the pre-chat one stays the chat's)."""
    C = ConversationModel
    if unless_set:
        return [C.email.set(C.email | email), C.email_key.set(C.email_key | email_key(site, email))]
    return [C.email.set(email), C.email_key.set(email_key(site, email))]


def keep_until(now_ms: int) -> datetime:
    """When an item written at ``now_ms`` expires (``ttl``): the retention period later."""
    return datetime.fromtimestamp(now_ms / 1000, tz=UTC) + timedelta(days=config.settings().retention_days)


def expired(item: Model, now_ms: int) -> bool:
    """Past its ``ttl`` but not yet deleted (DynamoDB deletes lazily, up to days late)."""
    ttl = getattr(item, "ttl", None)
    return ttl is not None and ttl.timestamp() * 1000 <= now_ms


class ConversationModel(TableModel):
    """A conversation's state; its messages live beside it under the same partition key.

    The item also carries undeclared top-level attributes ``rl#<connection>#<n>`` (the
    flood-control slots of chat messages, see chalicelib.conversations): written and checked
    by the message's own UpdateItem, removed when the connection leaves. Top-level so that
    items written before they existed need no migration (a nested path needs its parent map).
    """

    class Meta(_Meta):
        pass

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
    cm = MapAttribute[str, Any](default=dict)
    cs = MapAttribute[str, Any](default=dict)
    co = MapAttribute[str, Any](default=dict)  # client instance -> the participant tag that owns it
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
    # the first message's time (``mn``, ``mf``; ``co`` says whose client it is), so per-side
    # counts and the first agent response cost no extra request.
    mn = MapAttribute[str, Any](default=dict)
    mf = MapAttribute[str, Any](default=dict)
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
    tx = MapAttribute[str, Any](null=True)  # transcript requests: request id -> address
    tx_close = BooleanAttribute(null=True)  # closed with "transcript": one to the pre-chat address
    ok = MapAttribute[str, Any](null=True)  # addresses trusted with its transcript: address -> link|agent
    q_pk = UnicodeAttribute(null=True)
    q_sk = UnicodeAttribute(null=True)
    email_key = UnicodeAttribute(null=True)  # see EmailItemsIndex
    ttl = TTLAttribute(null=True)  # retention, see keep_until
    queue_index = QueueIndex()
    visitor_index = VisitorItemsIndex()
    email_index = EmailItemsIndex()
    due_index = ConversationDueIndex()

    @property
    def id(self) -> str:
        return self.pk.split("#", 1)[1]

    def connections(self) -> dict[str, str]:
        """The conns map as a plain dict (PynamoDB returns a raw MapAttribute)."""
        return plain_map(self.conns)

    def connections_of(self, role_prefix: str) -> list[str]:
        """Connection ids of one side: ``"v:"`` for the visitor's tabs, ``"a:"`` for the agent."""
        return [c for c, who in self.connections().items() if who.startswith(role_prefix)]

    def client_state(self, client: str) -> tuple[int, int] | None:
        """(last counter, its seq) for one client instance, if it has sent here."""
        counters, seqs = plain_map(self.cm), plain_map(self.cs)
        if client not in counters:
            return None
        return int(counters[client]), int(seqs[client])

    def client_owner(self, client: str) -> str | None:
        """The participant tag that owns a client instance id, if it has been used here."""
        owner = plain_map(self.co).get(client)
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
                **({"by_email": True} if self.by_email else {})}

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

    class Meta(_Meta):
        pass

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
    ttl = TTLAttribute(null=True)  # retention, see keep_until


class SiteConnectionsIndex(GlobalSecondaryIndex["ConnectionModel"]):
    """Visitor connections per site, to push "are we open?" changes to everyone browsing."""

    class Meta:
        index_name = "site_visitors"
        projection = IncludeProjection(["subject", "connected_at"])

    site_pk = UnicodeAttribute(hash_key=True)
    site_sk = UnicodeAttribute(range_key=True)


class ConnectionModel(TableModel):
    """What a WebSocket connection is; expires by TTL if a $disconnect never arrives."""

    class Meta(_Meta):
        pass

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default=META)
    role = UnicodeAttribute()
    subject = UnicodeAttribute()
    site = UnicodeAttribute()
    connected_at = NumberAttribute()
    # A keyed hash of the source address, for per-address rate limits without storing it.
    ip_hash = UnicodeAttribute(null=True)
    site_pk = UnicodeAttribute(null=True)
    site_sk = UnicodeAttribute(null=True)
    # Frame budgets (chalicelib/limits.py): per action class, the window being counted and
    # the frames counted in it. Two small maps; a class adds a key, not an attribute.
    rw = MapAttribute[str, Any](default=dict)
    rn = MapAttribute[str, Any](default=dict)
    ttl = TTLAttribute()
    site_index = SiteConnectionsIndex()


class VisitorModel(TableModel):
    """A visitor: their open conversation (at most one) and their open tabs."""

    class Meta(_Meta):
        pass

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default=META)
    site = UnicodeAttribute(null=True)
    conv = UnicodeAttribute(null=True)
    conns = UnicodeSetAttribute(null=True)
    created_at = NumberAttribute(null=True)
    page = MapAttribute[str, Any](null=True)  # where the visitor is now: url, title, referrer, ts
    pages = ListAttribute[Any](null=True)  # the pages of this visit, oldest first (bounded)
    fired = UnicodeSetAttribute(null=True)  # invitation rules already fired this visit
    user_agent = UnicodeAttribute(null=True)
    timezone = UnicodeAttribute(null=True)
    past = ListAttribute[Any](null=True)  # ids of this visitor's closed conversations, newest last
    ttl = TTLAttribute(null=True)  # retention, see keep_until

    def current_page(self) -> dict[str, Any] | None:
        return plain_map(self.page) if self.page else None

    def visit_pages(self) -> list[dict[str, Any]]:
        return [plain_map(p) for p in self.pages or []]
    invite = MapAttribute[str, Any](null=True)  # the pending proactive invitation


class ShiftIndex(GlobalSecondaryIndex["AgentModel"]):
    """Agents on shift per site (present only while on shift)."""

    class Meta:
        index_name = "shift"
        projection = IncludeProjection(["name", "convs", "conns", "max_chats", "on_shift"])

    s_pk = UnicodeAttribute(hash_key=True)
    s_sk = UnicodeAttribute(range_key=True)


class AgentDueIndex(GlobalSecondaryIndex["AgentModel"]):
    """The "due" index, agent side: agents whose grace period ends (kind ``GRACE``)."""

    class Meta:
        index_name = "due"
        projection = KeysOnlyProjection()

    due_pk = UnicodeAttribute(hash_key=True)
    due_sk = UnicodeAttribute(range_key=True)


class OfflineDueIndex(GlobalSecondaryIndex["OfflineMessageModel"]):
    """The "due" index, offline-message side: stored but not yet queued (kind ``UNQUEUED``)."""

    class Meta:
        index_name = "due"
        projection = KeysOnlyProjection()

    due_pk = UnicodeAttribute(hash_key=True)
    due_sk = UnicodeAttribute(range_key=True)


class TeamIndex(GlobalSecondaryIndex["AgentModel"]):
    """Every agent of a site (the admin's team list and the transfer picker)."""

    class Meta:
        index_name = "team"
        projection = IncludeProjection(["name", "role", "max_chats", "convs", "conns", "on_shift",
                                        "away", "email", "disabled"])

    team_pk = UnicodeAttribute(hash_key=True)
    team_sk = UnicodeAttribute(range_key=True)


class AgentModel(TableModel):
    """An agent account, its capacity, its assigned conversations and its open consoles."""

    class Meta(_Meta):
        pass

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default=META)
    name = UnicodeAttribute()
    site = UnicodeAttribute(default=lambda: config.settings().default_site)
    email = UnicodeAttribute(null=True)
    pw_hash = UnicodeAttribute(null=True)
    role = UnicodeAttribute(default="agent")
    max_chats = NumberAttribute(default=lambda: config.settings().default_max_chats)
    convs = UnicodeSetAttribute(null=True)
    conns = UnicodeSetAttribute(null=True)
    on_shift = BooleanAttribute(default=False)
    s_pk = UnicodeAttribute(null=True)
    s_sk = UnicodeAttribute(null=True)
    due_pk = UnicodeAttribute(null=True)
    due_sk = UnicodeAttribute(null=True)
    away = BooleanAttribute(default=False)
    disabled = BooleanAttribute(default=False)
    offers = UnicodeSetAttribute(null=True)  # conversations offered to this agent by transfer
    team_pk = UnicodeAttribute(null=True)
    team_sk = UnicodeAttribute(null=True)
    shift_index = ShiftIndex()
    team_index = TeamIndex()
    due_index = AgentDueIndex()

    @property
    def id(self) -> str:
        return self.pk.split("#", 1)[1]

    @property
    def load(self) -> int:
        return len(self.convs or ())


class SiteModel(TableModel):
    """One site's settings. All sites share a partition, so listing them is one Query."""

    class Meta(_Meta):
        pass

    pk = UnicodeAttribute(hash_key=True, default="SITE")
    sk = UnicodeAttribute(range_key=True)
    name = UnicodeAttribute(null=True)
    team_email = UnicodeAttribute(null=True)
    hours = UnicodeAttribute(null=True)  # JSON, see chalicelib.hours
    widget = UnicodeAttribute(null=True)  # JSON, see chalicelib.sites.validate_widget
    console = UnicodeAttribute(null=True)  # JSON, see chalicelib.sites.validate_console
    online = BooleanAttribute(null=True)  # the status last pushed to visitors
    na_after = UnicodeAttribute(null=True)  # no_agents not yet told past this place in line (unattended)

    @property
    def id(self) -> str:
        return self.sk


class OfflineMessageModel(TableModel):
    """A message left while nobody was on shift; stored before it is acknowledged."""

    class Meta(_Meta):
        pass

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default=META)
    site = UnicodeAttribute()
    visitor_id = UnicodeAttribute(null=True)
    conv_id = UnicodeAttribute(null=True)
    name = UnicodeAttribute(null=True)
    email = UnicodeAttribute()
    text = UnicodeAttribute()
    page = UnicodeAttribute(null=True)
    created_at = NumberAttribute()
    due_pk = UnicodeAttribute(null=True)  # "UNQUEUED" until it is on the mail queue
    due_sk = UnicodeAttribute(null=True)
    email_key = UnicodeAttribute(null=True)  # see EmailItemsIndex
    ttl = TTLAttribute(null=True)  # retention, see keep_until
    due_index = OfflineDueIndex()
    visitor_index = VisitorItemsIndex()
    email_index = EmailItemsIndex()

    @property
    def id(self) -> str:
        return self.pk.split("#", 1)[1]


class MailModel(TableModel):
    """An email that must go out at most once: claimed with a lease, then marked sent."""

    class Meta(_Meta):
        pass

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default=META)
    lease_until = NumberAttribute(null=True)
    sent_at = NumberAttribute(null=True)
    attempts = NumberAttribute(default=0)
    provider_id = UnicodeAttribute(null=True)
    ttl = TTLAttribute(null=True)


class CounterModel(TableModel):
    """A rate-limit counter for one key in one time window."""

    class Meta(_Meta):
        pass

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default=META)
    n = NumberAttribute(default=0)
    ttl = TTLAttribute(null=True)


ITEM_LIMIT = 400 * 1024  # DynamoDB's item size limit, in bytes
# The worst cases of the items a visitor can grow (the "Item budgets" table above).
CONVERSATION_MAX_BYTES = 64 * 1024
VISITOR_MAX_BYTES = 48 * 1024


def item_bytes(raw: dict[str, Any]) -> int:
    """The size DynamoDB counts for an item in its wire form (``{"name": {"S": ...}}``): what
    the 400 KB limit applies to and what a write is billed on. The rules are AWS's ("Item
    sizes and formats")."""
    return sum(len(name.encode()) + _value_bytes(value) for name, value in raw.items())


def _value_bytes(value: dict[str, Any]) -> int:
    (kind, data), = value.items()
    if kind == "S":
        return len(str(data).encode())
    if kind == "N":
        return _number_bytes(str(data))
    if kind == "B":
        return len(data)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(str(v).encode()) for v in data)
    if kind == "NS":
        return sum(_number_bytes(str(v)) for v in data)
    if kind == "L":
        return 3 + sum(1 + _value_bytes(v) for v in data)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + _value_bytes(v) for k, v in data.items())
    raise ValueError(f"unknown DynamoDB type {kind}")


def _number_bytes(text: str) -> int:
    """One byte per two significant digits, plus one (leading and trailing zeros trimmed)."""
    digits = text.lstrip("-").replace(".", "").strip("0") or "0"
    return (len(digits) + 1) // 2 + 1


class CursorModel(TableModel):
    """Where a paged background walk stopped (the minute timer's round of sites)."""

    class Meta(_Meta):
        pass

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default=META)
    after = UnicodeAttribute(null=True)  # the last key served; the next run goes on after it


class LockEventModel(TableModel):
    """A sign-in limit that filled up: shown to the site's admins (who was locked, from where)."""

    class Meta(_Meta):
        pass

    pk = UnicodeAttribute(hash_key=True)  # LOCKS#<site>
    sk = UnicodeAttribute(range_key=True)  # <ms:015d>#<scope>#<agent>
    at = NumberAttribute()
    agent = UnicodeAttribute()
    scope = UnicodeAttribute()  # "account+source", "source" or "account"
    source = UnicodeAttribute(null=True)  # keyed hash of the address (auth.fingerprint), never the IP
    ttl = TTLAttribute(null=True)


def due_sk(at_ms: int, suffix: str = "") -> str:
    """Sort key of the "due" index: zero-padded milliseconds, so string order is time order."""
    return f"{at_ms:015d}{suffix}"


def plain_map(value: Any) -> dict[str, Any]:
    """A raw MapAttribute (or None) as a plain dict."""
    raw = value.as_dict() if isinstance(value, MapAttribute) else value
    return dict(raw or {})


def conversation_key(conv_id: str) -> str:
    return f"CONV#{conv_id}"


def message_sk(seq: int) -> str:
    return f"MSG#{seq:012d}"


def agent_key(agent_id: str) -> str:
    return f"AGENT#{agent_id}"


def visitor_key(visitor_id: str) -> str:
    return f"VISITOR#{visitor_id}"


def connection_key(connection_id: str) -> str:
    return f"CONN#{connection_id}"


def update_or_old[M: Model](model: type[M], hash_key: str, actions: Sequence[Action],
                            condition: Condition | None, range_key: str = META,
                            returning: str = "ALL_NEW") -> tuple[bool, M | None]:
    """One conditional UpdateItem that returns the new item (or, with ``returning="ALL_OLD"``,
    the item as it was), or the old one if it failed.

    PynamoDB's ``Model.update`` drops ``ReturnValuesOnConditionCheckFailure``; with it, a
    refused write tells us why (not a participant? a resend?) without a second read, which
    is what keeps the message path at two requests.
    """
    conn = model._get_connection().connection
    kwargs = conn.get_operation_kwargs(
        table_name=model.Meta.table_name, hash_key=hash_key, range_key=range_key,
        actions=list(actions), condition=condition, return_values=returning)
    ok, data = _call_or_old(model, "UpdateItem", kwargs)
    return ok, (model.from_raw_data(data) if data else None)


def update_into_maps[M: Model](model: type[M], hash_key: str, actions: Sequence[Action],
                               condition: Condition | None, maps: Sequence[Any]) -> tuple[bool, M | None]:
    """``update_or_old`` for actions that write into map attributes (``maps``) an item written
    before those maps existed may lack: DynamoDB refuses a path into a missing map
    (ValidationException), so the maps are added (once, off the usual path) and the write made
    again. Items written since have them, so this costs nothing on the message path."""
    try:
        return update_or_old(model, hash_key, actions, condition)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ValidationException":
            raise
    update_or_old(model, hash_key, [m.set(m | {}) for m in maps], model.pk.exists())  # type: ignore[attr-defined]
    return update_or_old(model, hash_key, actions, condition)


def put_or_old[M: Model](item: M, condition: Condition) -> tuple[bool, M | None]:
    """One conditional PutItem; on refusal, the item that was already there (no extra read)."""
    model = type(item)
    args, save = item._get_save_args(condition=condition)
    kwargs = model._get_connection().connection.get_operation_kwargs(
        table_name=model.Meta.table_name, hash_key=next(iter(args)), range_key=save.get("range_key"),
        key="Item", attributes=save["attributes"], condition=condition)
    ok, old = _call_or_old(model, "PutItem", kwargs)
    return ok, (None if ok or not old else model.from_raw_data(old))


def transact_write(items: list[dict[str, Any]]) -> bool:
    """One TransactWriteItems of raw ``Update`` items (table name filled in); False when a
    condition failed (nothing was written). For writes that must happen together or not at
    all, such as counting a conversation into the daily figures exactly once."""
    client = ConversationModel._get_connection().connection.client
    for item in items:
        for value in item.values():
            value["TableName"] = config.settings().table_name
    try:
        client._make_api_call("TransactWriteItems", {"TransactItems": items})
    except ClientError as exc:
        reasons = exc.response.get("CancellationReasons") or []
        if exc.response.get("Error", {}).get("Code") == "TransactionCanceledException" and any(
                r.get("Code") == "ConditionalCheckFailed" for r in reasons):
            return False
        raise
    return True


def raw_query(**kwargs: Any) -> list[dict[str, Any]]:
    """Every item of one raw Query (all pages), for items whose attributes are open-ended
    (the daily figures' histogram buckets), which PynamoDB models cannot describe."""
    client = ConversationModel._get_connection().connection.client
    items: list[dict[str, Any]] = []
    kwargs = {"TableName": config.settings().table_name, **kwargs}
    while True:
        page = client._make_api_call("Query", kwargs)
        items += page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _call_or_old(model: type[Model], operation: str, kwargs: dict[str, Any]) -> tuple[bool, Any]:
    kwargs["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    kwargs["ReturnConsumedCapacity"] = "TOTAL"  # as PynamoDB asks for its own calls
    try:
        data = model._get_connection().connection.client._make_api_call(operation, kwargs)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise
        return False, exc.response.get("Item")
    return True, data.get("Attributes")


ALL_MODELS: tuple[type[Model], ...] = (
    ConversationModel, MessageModel, ConnectionModel, VisitorModel, AgentModel, SiteModel,
    OfflineMessageModel, MailModel, CounterModel, CursorModel, LockEventModel)


def table_definition() -> dict[str, Any]:
    """The CreateTable request for the one table, derived from the models' indexes."""
    attrs: dict[str, str] = {"pk": "S", "sk": "S"}
    indexes: list[dict[str, Any]] = []
    for index in (ConversationModel.queue_index, AgentModel.shift_index, AgentModel.due_index,
                  ConnectionModel.site_index, AgentModel.team_index, ConversationModel.visitor_index,
                  ConversationModel.email_index):
        schema = index._get_schema()
        for attr in schema["attribute_definitions"]:
            attrs[attr["AttributeName"]] = attr["AttributeType"]
        # HASH before RANGE, as DynamoDB requires (PynamoDB lists them in attribute order)
        keys = sorted(schema["key_schema"], key=lambda k: k["KeyType"] != "HASH")
        indexes.append({"IndexName": schema["index_name"], "KeySchema": keys,
                        "Projection": schema["projection"]})
    return {
        "TableName": config.settings().table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                      {"AttributeName": "sk", "KeyType": "RANGE"}],
        "AttributeDefinitions": [{"AttributeName": n, "AttributeType": t} for n, t in attrs.items()],
        "GlobalSecondaryIndexes": indexes,
    }


def create_table() -> None:
    """Create the table and enable TTL, or add the indexes a kept table lacks (local
    stand-in and tests; AWS uses infra/)."""
    client = ConversationModel._get_connection().connection.client
    wanted = table_definition()
    try:
        client.create_table(**wanted)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceInUseException":
            raise
        described = client.describe_table(TableName=config.settings().table_name)["Table"]
        have = {i["IndexName"] for i in described.get("GlobalSecondaryIndexes", [])}
        for index in wanted["GlobalSecondaryIndexes"]:
            if index["IndexName"] not in have:
                client.update_table(TableName=config.settings().table_name,
                                    AttributeDefinitions=wanted["AttributeDefinitions"],
                                    GlobalSecondaryIndexUpdates=[{"Create": index}])
        return
    client.get_waiter("table_exists").wait(TableName=config.settings().table_name)
    client.update_time_to_live(TableName=config.settings().table_name,
                               TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"})
