"""The table's plumbing: one Meta, one botocore client, and the few requests PynamoDB's
public API cannot make (a refused conditional write that returns the old item, a
transaction of raw updates, a raw Query or UpdateItem, a delete that returns what it
deleted).

Every use of PynamoDB's private parts (``_get_connection``, ``_make_api_call``,
``_get_save_args``) is in this module, so a PynamoDB upgrade has one place to check.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError
from pynamodb.attributes import MapAttribute
from pynamodb.connection import TableConnection
from pynamodb.constants import ALL_OLD
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.models import Model

from chalicelib import aws, config
from chalicelib.store.keys import META

_REGION = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"

_RETRIES = aws.policy_for("dynamodb")

_CLIENT_LOCK = threading.Lock()
_shared_client: Any = None


class _TableName:
    """``Meta.table_name``, read from the settings each time PynamoDB asks (it compares it with
    its cached connection's on every request), not frozen into the class at import."""

    def __get__(self, instance: object, owner: type | None = None) -> str:
        return config.settings().table_name


class TableModel(Model):
    """Base of every item type. They all live in one table, so they share one ``Meta`` (an
    item type declares none of its own) and one botocore client.

    PynamoDB builds a client per model class, each from its own per-thread botocore session,
    so each one parses the DynamoDB service model from disk again (tens of ms of CPU). On a
    cold Lambda that is paid once per item type a request touches; under concurrency (the
    local stand-in runs invocations in threads) every thread that races the first use of a
    model builds its own. One client, built once under a lock, removes both (botocore
    clients are thread-safe; PynamoDB's only per-connection hook adds extra headers, which
    we do not use). That client follows the project's DynamoDB retry policy
    (chalicelib.aws: backoff, and no retry the invocation has no time left for).
    """

    class Meta:
        table_name = _TableName()
        region = _REGION
        # Lambda's own time is short: bounded retries (chalicelib.aws), then the client resends
        # (every write is idempotent).
        max_retry_attempts = _RETRIES.attempts - 1
        connect_timeout_seconds = _RETRIES.connect_timeout
        read_timeout_seconds = _RETRIES.read_timeout

    @classmethod
    def _get_connection(cls) -> TableConnection:
        global _shared_client
        if "_connection" not in cls.__dict__:
            # PynamoDB caches the connection on the class: an inherited one would carry another
            # class's key schema (NoteModel's parent's, or this base's, which has none).
            cls._connection = None
        table = super()._get_connection()
        if table.connection._client is None:
            with _CLIENT_LOCK:
                if _shared_client is None:
                    _shared_client = aws.bound_retries(table.connection.client, _RETRIES)
                table.connection._client = _shared_client
        return table


def client() -> Any:
    """The table's one botocore client (tests hook it to count requests)."""
    return TableModel._get_connection().connection.client


def reset_connections(models: Sequence[type[Model]]) -> None:
    """Forget the shared client and each model's PynamoDB connection, so the next request
    builds them again from the environment (the local stand-in's fault proxy re-points the
    DynamoDB endpoint)."""
    global _shared_client
    _shared_client = None
    TableModel._connection = None
    for model in models:
        model._connection = None


def get_or_none[M: Model](model: type[M], hash_key: str, range_key: str | None = META,
                          *, consistent_read: bool = False) -> M | None:
    """One GetItem; None when there is no such item (instead of ``DoesNotExist``)."""
    try:
        return model.get(hash_key, range_key, consistent_read=consistent_read)
    except model.DoesNotExist:
        return None


def keep_until(now_ms: int) -> datetime:
    """When an item written at ``now_ms`` expires (``ttl``): the retention period later."""
    return datetime.fromtimestamp(now_ms / 1000, tz=UTC) + timedelta(days=config.settings().retention_days)


def expired(item: Model, now_ms: int) -> bool:
    """Past its ``ttl`` but not yet deleted (DynamoDB deletes lazily, up to days late)."""
    ttl = getattr(item, "ttl", None)
    return ttl is not None and ttl.timestamp() * 1000 <= now_ms


def plain_map(value: Any) -> dict[str, Any]:
    """A raw MapAttribute (or None) as a plain dict."""
    raw = value.as_dict() if isinstance(value, MapAttribute) else value
    return dict(raw or {})


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


def delete_returning_old[M: Model](model: type[M], hash_key: str, range_key: str = META) -> M | None:
    """One DeleteItem; the item as it was, or None when there was none (PynamoDB's
    ``Model.delete`` needs the item first and returns no attributes)."""
    old = model._get_connection().delete_item(hash_key, range_key, return_values=ALL_OLD)
    attrs = old.get("Attributes")
    return model.from_raw_data(attrs) if attrs else None


def transact_write(items: list[dict[str, Any]]) -> bool:
    """One TransactWriteItems of raw ``Update`` items (table name filled in); False when a
    condition failed (nothing was written). For writes that must happen together or not at
    all, such as counting a conversation into the daily figures exactly once."""
    for item in items:
        for value in item.values():
            value["TableName"] = config.settings().table_name
    try:
        client()._make_api_call("TransactWriteItems", {"TransactItems": items})
    except ClientError as exc:
        reasons = exc.response.get("CancellationReasons") or []
        if exc.response.get("Error", {}).get("Code") == "TransactionCanceledException" and any(
                r.get("Code") == "ConditionalCheckFailed" for r in reasons):
            return False
        raise
    return True


def raw_update(update: dict[str, Any]) -> None:
    """One raw UpdateItem (``Key``, expressions; table name filled in), for items whose
    attributes are open-ended (the daily figures), which PynamoDB models cannot describe."""
    client()._make_api_call("UpdateItem", {"TableName": TableModel.Meta.table_name, **update})


def raw_query(**kwargs: Any) -> list[dict[str, Any]]:
    """Every item of one raw Query (all pages), for items whose attributes are open-ended
    (the daily figures' histogram buckets), which PynamoDB models cannot describe."""
    items: list[dict[str, Any]] = []
    kwargs = {"TableName": config.settings().table_name, **kwargs}
    while True:
        page = client()._make_api_call("Query", kwargs)
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


ITEM_LIMIT = 400 * 1024  # DynamoDB's item size limit, in bytes
# The worst cases of the items a visitor can grow (the "Item budgets" table in chalicelib.store).
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
