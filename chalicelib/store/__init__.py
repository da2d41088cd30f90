"""The store: one DynamoDB table, its items, its indexes, and every access pattern.

Single-table design. Every request path is a GetItem, a Query or a conditional write on a
known key; nothing here ever scans.

The access patterns are data: ``chalicelib.store.table.ACCESS_PATTERNS`` (rendered in
docs/data.md, checked against the indexes and key builders by tests/test_store.py). Keys are
built only by ``chalicelib.store.keys``; no other module writes a ``PREFIX#`` literal.

Layout: ``keys`` (prefixes and key builders), ``base`` (the shared Meta and client,
``get_or_none``, ``update_or_old``/``put_or_old``, transactions, raw requests, item sizes),
one module per item family (``conversations``, ``agents``, ``sites``, ``visitors``,
``offline``, ``counters``) and ``table`` (the patterns, the table definition). Python
attribute names are readable; where the stored name is short (it is repeated in every
request and counted in the item's bytes) it is kept with ``attr_name``.

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
                    + 200 email replies' Message-ID hashes x ~26 B (5.2 KB, ``em``)
visitor META        current page 5.4 KB + 25 brief pages x 1.2 KB (30 KB) + 20 past    48 KB
                    ids, user agent 1.2 KB, tz, invitation 1.3 KB + 10 tabs x 20 B
message             text 16,000 B + an email reply's original 16,000 B + keys        33 KB
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

from chalicelib.store import keys
from chalicelib.store.agents import AgentDueIndex, AgentModel, ShiftIndex, TeamIndex
from chalicelib.store.base import (
    CONVERSATION_MAX_BYTES,
    ITEM_LIMIT,
    VISITOR_MAX_BYTES,
    TableModel,
    client,
    delete_returning_old,
    expired,
    get_or_none,
    item_bytes,
    keep_until,
    plain_map,
    put_or_old,
    raw_query,
    raw_update,
    transact_write,
    update_into_maps,
    update_or_old,
)
from chalicelib.store.conversations import (
    EMAIL_CHANNEL,
    ConversationDueIndex,
    ConversationModel,
    EmailItemsIndex,
    MessageModel,
    NoteModel,
    QueueIndex,
    VisitorItemsIndex,
    email_actions,
)
from chalicelib.store.counters import CounterModel, CursorModel, LockEventModel
from chalicelib.store.keys import (
    META,
    agent_key,
    connection_key,
    conversation_key,
    due_sk,
    email_key,
    message_sk,
    visitor_key,
)
from chalicelib.store.offline import MailModel, OfflineDueIndex, OfflineMessageModel
from chalicelib.store.sites import SiteModel
from chalicelib.store.table import (
    ACCESS_PATTERNS,
    ALL_MODELS,
    AccessPattern,
    create_table,
    reset_connections,
    table_definition,
)
from chalicelib.store.visitors import ConnectionModel, SiteConnectionsIndex, VisitorModel

__all__ = [
    "ACCESS_PATTERNS",
    "ALL_MODELS",
    "CONVERSATION_MAX_BYTES",
    "EMAIL_CHANNEL",
    "ITEM_LIMIT",
    "META",
    "VISITOR_MAX_BYTES",
    "AccessPattern",
    "AgentDueIndex",
    "AgentModel",
    "ConnectionModel",
    "ConversationDueIndex",
    "ConversationModel",
    "CounterModel",
    "CursorModel",
    "EmailItemsIndex",
    "LockEventModel",
    "MailModel",
    "MessageModel",
    "NoteModel",
    "OfflineDueIndex",
    "OfflineMessageModel",
    "QueueIndex",
    "ShiftIndex",
    "SiteConnectionsIndex",
    "SiteModel",
    "TableModel",
    "TeamIndex",
    "VisitorItemsIndex",
    "VisitorModel",
    "agent_key",
    "client",
    "connection_key",
    "conversation_key",
    "create_table",
    "delete_returning_old",
    "due_sk",
    "email_actions",
    "email_key",
    "expired",
    "get_or_none",
    "item_bytes",
    "keep_until",
    "keys",
    "message_sk",
    "plain_map",
    "put_or_old",
    "raw_query",
    "raw_update",
    "reset_connections",
    "table_definition",
    "transact_write",
    "update_into_maps",
    "update_or_old",
    "visitor_key",
]
