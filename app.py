"""Chalice entry points: thin handlers that parse, call the domain in chalicelib/, deliver.

WebSocket routes ($connect, $default, $disconnect) carry the chat; REST routes carry sign-in;
a schedule sweeps agents whose grace period ended.
"""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools import Logger
from chalice import BadRequestError, Chalice, Rate, Response, UnauthorizedError
from chalice.app import WebsocketEvent

from chalicelib import agents, config, dispatch, fanout, presence
from chalicelib.fanout import Outbox

app = Chalice(app_name="clicktochat")
app.experimental_feature_flags.update(["WEBSOCKETS"])
app.websocket_api.session = boto3.session.Session()
logger = Logger(service=config.SERVICE)


def _log_context(connection_id: str) -> None:
    """Per-invocation log keys; thread-safe because the local stand-in runs invocations in
    threads of one process (on Lambda each invocation has its own process)."""
    logger.thread_safe_clear_keys()
    logger.thread_safe_append_keys(connection=connection_id)


def _endpoint(event: WebsocketEvent) -> str:
    ctx = event.to_dict()["requestContext"]
    return fanout.endpoint(ctx.get("apiId"), ctx.get("stage"))


def _deliver(outbox: Outbox, url: str) -> None:
    """Post everything queued; connections found gone are forgotten like a $disconnect."""
    gone = fanout.deliver(outbox, url)
    while gone:
        follow_up = Outbox()
        for connection_id in gone:
            presence.disconnect(connection_id, follow_up)
        gone = fanout.deliver(follow_up, url)


@app.on_ws_connect()
def connect(event: WebsocketEvent) -> dict[str, Any]:
    query = event.to_dict().get("queryStringParameters") or {}
    _log_context(event.connection_id)
    try:
        who = presence.connect(event.connection_id, query)
    except presence.Refused as refused:
        logger.info("connection refused", extra={"reason": str(refused)})
        return {"statusCode": refused.status}
    logger.info("connected", extra={"role": who.role, "site": who.site})
    return {"statusCode": 200}


@app.on_ws_message()
def message(event: WebsocketEvent) -> None:
    _log_context(event.connection_id)
    outbox = Outbox()
    dispatch.handle(event.connection_id, event.body, outbox)
    _deliver(outbox, _endpoint(event))


@app.on_ws_disconnect()
def disconnect(event: WebsocketEvent) -> None:
    _log_context(event.connection_id)
    outbox = Outbox()
    presence.disconnect(event.connection_id, outbox)
    _deliver(outbox, _endpoint(event))


@app.schedule(Rate(1, unit=Rate.MINUTES))
def presence_sweep(event: Any) -> None:
    """Agents gone longer than the grace period go off shift; their chats go back in line."""
    outbox = Outbox()
    gone = presence.sweep(outbox)
    if gone:
        logger.info("agents timed out", extra={"count": len(gone)})
    _deliver(outbox, fanout.endpoint())


@app.route("/auth/login", methods=["POST"], cors=True)
def login() -> Response:
    request = app.current_request
    body = request.json_body if request is not None else None
    if not isinstance(body, dict):
        raise BadRequestError('Send {"agent": "...", "password": "..."}.')
    agent_id, password = body.get("agent"), body.get("password")
    if not isinstance(agent_id, str) or not isinstance(password, str):
        raise BadRequestError('Send {"agent": "...", "password": "..."}.')
    token = agents.sign_in(agent_id, password)
    if token is None:
        raise UnauthorizedError("Wrong agent id or password.")
    return Response({"token": token}, status_code=200)


@app.route("/health", cors=True)
def health() -> dict[str, str]:
    return {"status": "ok"}
