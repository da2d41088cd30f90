"""Delivery to WebSocket connections through API Gateway's connection management API.

Domain code never posts; it fills an ``Outbox``. The handler then delivers the whole outbox
at once: different connections are posted to concurrently (Chalice's own
``websocket_api.send`` is sequential), frames for one connection keep their order, and
connections that turn out to be gone (410) are returned so the caller can forget them.
"""

from __future__ import annotations

import contextvars
import logging
import os
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.config import Config
from botocore.exceptions import ClientError

from chalicelib import aws, config, telemetry
from chalicelib.protocol import FRAME_BUDGET, encode, shrink

log = logging.getLogger(__name__)
_clients: dict[str, Any] = {}
_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None  # made at first use, sized by the settings (once per cold start)
GONE, ERROR, POSTED = "gone", "error", "posted"  # outcomes of posting to one connection
#: Called with every frame an ``Outbox`` is given, before it is encoded. None in production (no
#: cost per frame); the test suite installs ``frames.problems``-based checking (tests/frames_check.py)
#: so that every frame a run actually sends is validated against ``frames.SERVER_FRAMES``.
checker: Callable[[dict[str, Any]], None] | None = None


class Outbox:
    """Frames waiting to be posted, grouped per connection in the order they were added."""

    def __init__(self) -> None:
        self.frames: dict[str, list[bytes]] = defaultdict(list)
        # Which conversations each connection was addressed for: a connection found gone is
        # removed from those even if its own record has already expired.
        self.conversations: dict[str, set[str]] = defaultdict(set)

    def to(self, connection_ids: Iterable[str], frame: dict[str, Any]) -> None:
        if checker is not None:
            checker(frame)
        data = self.measured(frame)
        conversation = frame.get("conversation")
        for connection_id in connection_ids:
            self.frames[connection_id].append(data)
            if isinstance(conversation, str):
                self.conversations[connection_id].add(conversation)

    def drop(self, connection_id: str) -> None:
        """Post nothing to this connection: one still in its ``$connect`` cannot be posted
        to yet (it answers 410, which would make the caller forget it)."""
        self.frames.pop(connection_id, None)
        self.conversations.pop(connection_id, None)

    @staticmethod
    def measured(frame: dict[str, Any]) -> bytes:
        """The frame encoded, never more than ``FRAME_BUDGET`` bytes. API Gateway refuses a
        post over 128 KB (413, not delivered) and splits one over 32 KB; either way a client
        waiting for it (a console for its ``welcome``) would wait forever. Builders bound
        their frames; one that did not is degraded here (strings clipped, then lists cut,
        ``truncated: true``), logged and counted (``FramesTrimmed``), never posted as is."""
        data = encode(frame)
        if len(data) <= FRAME_BUDGET:
            return data
        log.warning("frame over budget, trimmed: type=%s bytes=%d", frame.get("type"), len(data))
        telemetry.count("FramesTrimmed")
        return encode(shrink(frame))

    def __len__(self) -> int:
        return sum(len(v) for v in self.frames.values())


def endpoint(api_id: str | None = None, stage: str | None = None) -> str:
    """The management API endpoint for this API and stage.

    Honours the SDK's standard ``AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI`` override (the
    local stand-in sets it); otherwise builds the execute-api URL from the API id, which
    also works when the WebSocket API sits behind a custom domain.
    """
    override = os.environ.get("AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI")
    if override:
        return override
    api_id = api_id or config.settings().websocket_api_id
    if not api_id:
        raise RuntimeError("Set WEBSOCKET_API_ID so handlers without a WebSocket event can post.")
    stage = stage or config.settings().websocket_stage
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    return f"https://{api_id}.execute-api.{region}.amazonaws.com/{stage}"


def _client(url: str) -> Any:
    with _lock:
        client = _clients.get(url)
        if client is None:
            # Timeouts and retries: aws.POLICIES (a 5xx or throttled post is retried while
            # the invocation has time; a duplicate post is harmless, clients keep one per seq).
            client = aws.client("apigatewaymanagementapi", endpoint_url=url,
                                config=Config(max_pool_connections=config.settings().fanout_workers))
            _clients[url] = client
        return client


def _workers() -> ThreadPoolExecutor:
    """The posting threads, made at first use so their number is the settings' of this cold
    start, not whatever the environment held when the module was imported."""
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=config.settings().fanout_workers,
                                       thread_name_prefix="fanout")
        return _pool


def _post_all(client: Any, connection_id: str, frames: list[bytes]) -> bool:
    """Post one connection's frames in order; False when the connection is gone."""
    for data in frames:
        try:
            client.post_to_connection(ConnectionId=connection_id, Data=data)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "GoneException":
                return False
            raise
    return True


def close(connection_ids: Iterable[str], url: str) -> None:
    """Hang up connections (a revoked agent's consoles); already gone is fine."""
    client = _client(url)
    for connection_id in connection_ids:
        try:
            client.delete_connection(ConnectionId=connection_id)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "GoneException":
                raise


def deliver(outbox: Outbox, url: str) -> list[str]:
    """Post everything in ``outbox``; return the ids of connections that are gone.

    Outcomes are counted here, in the handler's thread (the posts run in the pool, where
    the invocation's metrics are out of reach): ``FanoutFailures`` by reason, gone or error.
    """
    if not outbox.frames:
        return []
    client = _client(url)
    items = list(outbox.frames.items())
    if len(items) == 1:
        outcomes = {items[0][0]: _post_safely(client, *items[0])}
    else:
        # Each post runs in a copy of this context: it carries the invocation's deadline (aws.py).
        pool = _workers()
        futures = {cid: pool.submit(contextvars.copy_context().run, _post_safely, client, cid, frames)
                   for cid, frames in items}
        outcomes = {cid: future.result() for cid, future in futures.items()}
    gone = [cid for cid, outcome in outcomes.items() if outcome == GONE]
    telemetry.count("FanoutFailures", len(gone), reason=GONE)
    telemetry.count("FanoutFailures", sum(o == ERROR for o in outcomes.values()), reason=ERROR)
    return gone


def _post_safely(client: Any, connection_id: str, frames: list[bytes]) -> str:
    """Like ``_post_all``, but an error other than "gone" (a 5xx or a timeout that survived
    the retries) only costs that recipient this delivery: it catches up with ``sync`` when it
    notices the gap in sequence numbers. Never stops the other recipients."""
    try:
        return POSTED if _post_all(client, connection_id, frames) else GONE
    except Exception:
        log.warning("post to a connection failed", exc_info=True)
        return ERROR
