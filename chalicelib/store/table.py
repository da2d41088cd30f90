"""The one table: its item types, its indexes, and every access pattern as data.

The access patterns are a list, not prose, so that tests/test_store.py can hold them to the
truth: every index the table defines is used by some pattern, every pattern names an index
that exists, and each pattern's key builder produces the prefix listed. docs/data.md shows
the same list (``patterns_markdown``), checked by the same test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError
from pynamodb.models import Model

from chalicelib import config
from chalicelib.store import keys
from chalicelib.store.agents import AgentModel
from chalicelib.store.base import client
from chalicelib.store.conversations import ConversationModel, MessageModel, NoteModel
from chalicelib.store.counters import CounterModel, CursorModel, LockEventModel
from chalicelib.store.offline import MailModel, OfflineMessageModel
from chalicelib.store.sites import SiteModel
from chalicelib.store.visitors import ConnectionModel, VisitorModel


@dataclass(frozen=True)
class AccessPattern:
    """One way the app reads or writes the table.

    ``index`` is None for the table itself. ``key`` builds the partition key (of the table
    or the index) from ``example``; ``prefix`` is what every such key starts with ("" for
    keys that are a bare id). ``sort`` and ``how`` are for people: the sort key and the
    requests made."""

    name: str
    index: str | None
    key: Callable[..., str]
    example: tuple[Any, ...]
    prefix: str
    sort: str
    how: str


def _constant(value: str) -> Callable[[], str]:
    return lambda: value


ACCESS_PATTERNS: tuple[AccessPattern, ...] = (
    AccessPattern("conversation state, participants' connections", None, keys.conversation_key, ("c1",),
                  keys.CONVERSATION, "META", "GetItem / UpdateItem"),
    AccessPattern("send a message (hot path, 2 requests)", None, keys.conversation_key, ("c1",),
                  keys.CONVERSATION, "META, then MSG#<seq:012d>", "UpdateItem + PutItem"),
    AccessPattern("messages after seq N, in order (resume)", None, keys.conversation_key, ("c1",),
                  keys.CONVERSATION, "MSG#<seq:012d>", "Query, sk after that of seq N"),
    AccessPattern("a conversation's internal notes", None, keys.conversation_key, ("c1",),
                  keys.CONVERSATION, "NOTE#<ms>#<nonce>", "PutItem; Query begins_with NOTE#"),
    AccessPattern("what a connection is (role, who, site)", None, keys.connection_key, ("k1",),
                  keys.CONNECTION, "META", "Get/Put/DeleteItem, TTL"),
    AccessPattern("a connection's frame budget (rate limits)", None, keys.connection_key, ("k1",),
                  keys.CONNECTION, "META", "UpdateItem (conditional)"),
    AccessPattern("a visitor's open conversation and tabs", None, keys.visitor_key, ("v1",),
                  keys.VISITOR, "META", "UpdateItem"),
    AccessPattern("an agent: profile, capacity, chats, tabs", None, keys.agent_key, ("a1",),
                  keys.AGENT, "META", "GetItem / UpdateItem"),
    AccessPattern("agents on shift on a site (routing)", "shift", keys.shift_key, ("s1",),
                  keys.SHIFT, "<agent>", "Query (sparse)"),
    AccessPattern("every agent of a site (team admin)", "team", keys.team_key, ("s1",),
                  keys.TEAM, "<agent>", "Query"),
    AccessPattern("waiting conversations, oldest first", "queue", keys.queue_key, ("s1",),
                  keys.QUEUE, "<queued ms>#<conv>", "Query (sparse)"),
    AccessPattern("a site's closed conversations, newest first (supervisor)", "queue", keys.history_key,
                  ("s1",), keys.HISTORY, "<closed ms>#<conv>", "Query desc"),
    AccessPattern("a site's offline messages waiting for an agent, newest first (inbox)", "queue",
                  keys.inbox_key, ("s1",), keys.INBOX, "<left ms>#<conv>", "Query desc (sparse)"),
    AccessPattern("agents whose grace period ends before T", "due", _constant(keys.GRACE), (),
                  keys.GRACE, "<due ms>", "Query (sparse)"),
    AccessPattern("offline messages stored but not yet queued", "due", _constant(keys.UNQUEUED), (),
                  keys.UNQUEUED, "<created ms>#<message>", "Query (sparse)"),
    AccessPattern("a site's chats whose visitor is away (abandon)", "due", keys.gone_key, ("s1",),
                  keys.GONE, "<left ms>#<conv>", "Query (sparse, keys)"),
    AccessPattern("visitors on a site now (status push, live list)", "site_visitors",
                  keys.site_visitors_key, ("s1",), keys.SITE_VISITORS, "<connection>", "Query (sparse)"),
    AccessPattern("site settings: hours, team address; all sites", None, _constant(keys.SITES), (),
                  keys.SITES, "<site id>", "GetItem; Query SITE"),
    AccessPattern("offline message left for the team", None, keys.offline_key, ("m1",),
                  keys.OFFLINE, "META", "PutItem, UpdateItem"),
    AccessPattern("a visitor's conversations and offline messages", "by_visitor", str, ("v1",),
                  "", "pk", "Query (sparse, keys)"),
    AccessPattern("conversations and offline messages by email", "by_email", keys.email_key,
                  ("s1", "A@B.co"), "s1#a@b.co", "pk", "Query (sparse, keys)"),
    AccessPattern("an email sent at most once (idempotency)", None, keys.mail_key, ("j1",),
                  keys.MAIL, "META", "UpdateItem, TTL"),
    AccessPattern("rate-limit counter for one key and window", None, keys.rate_key, ("k", 7),
                  keys.RATE, "META", "UpdateItem ADD, TTL"),
    AccessPattern("a sign-in source an account used lately (exempt from its ceiling)", None,
                  keys.known_source_key, ("a1", "h1"), keys.KNOWN_SOURCE, "META", "GetItem; PutItem, TTL"),
    AccessPattern("where the minute timer's round of sites stopped", None, keys.cursor_key,
                  (keys.HOUSEKEEPING,), keys.CURSOR, "META", "GetItem / PutItem"),
    AccessPattern("a site's recent sign-in lock events, newest first", None, keys.locks_key, ("s1",),
                  keys.LOCKS, "<ms>#<scope>#<agent>", "PutItem; Query desc, TTL"),
    AccessPattern("daily figures of a site, one day (its own zone)", None, keys.stats_key, ("s1",),
                  keys.STATS, "D#<date>#*", "UpdateItem ADD (in a txn)"),
    AccessPattern("daily figures of one agent of a site", None, keys.stats_key, ("s1",),
                  keys.STATS, "D#<date>#a#<agent>", "UpdateItem ADD (in a txn)"),
    AccessPattern("a site's figures for a date range (reports)", None, keys.stats_key, ("s1",),
                  keys.STATS, "D#<from> .. D#<to>#~", "Query (one partition)"),
)


def patterns_markdown() -> str:
    """The access patterns as a Markdown table (docs/data.md carries it verbatim)."""
    rows = ["| access pattern | index | partition key | sort key | requests |",
            "| --- | --- | --- | --- | --- |"]
    for p in ACCESS_PATTERNS:
        example = p.key(*p.example)
        rows.append(f"| {p.name} | {p.index or 'table'} | `{example}` | `{p.sort}` | {p.how} |")
    return "\n".join(rows) + "\n"


ALL_MODELS: tuple[type[Model], ...] = (
    ConversationModel, MessageModel, NoteModel, ConnectionModel, VisitorModel, AgentModel, SiteModel,
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
        key_schema = sorted(schema["key_schema"], key=lambda k: k["KeyType"] != "HASH")
        indexes.append({"IndexName": schema["index_name"], "KeySchema": key_schema,
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
    dynamodb = client()
    wanted = table_definition()
    try:
        dynamodb.create_table(**wanted)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceInUseException":
            raise
        described = dynamodb.describe_table(TableName=config.settings().table_name)["Table"]
        have = {i["IndexName"] for i in described.get("GlobalSecondaryIndexes", [])}
        for index in wanted["GlobalSecondaryIndexes"]:
            if index["IndexName"] not in have:
                dynamodb.update_table(TableName=config.settings().table_name,
                                      AttributeDefinitions=wanted["AttributeDefinitions"],
                                      GlobalSecondaryIndexUpdates=[{"Create": index}])
        return
    dynamodb.get_waiter("table_exists").wait(TableName=config.settings().table_name)
    dynamodb.update_time_to_live(TableName=config.settings().table_name,
                                 TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"})


def reset_connections() -> None:
    """Forget every model's connection and the shared client (see base.reset_connections)."""
    from chalicelib.store import base

    base.reset_connections(ALL_MODELS)
