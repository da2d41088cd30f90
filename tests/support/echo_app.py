"""Smallest useful Chalice WebSocket app: echoes every frame back to its sender.

Used by ``tests/test_gateway.py`` to exercise the local gateway, and as the
"floor" handler for benchmarks (a handler that does nothing but one
``PostToConnection``), so keep it cheap. Its SQS handler (``jobs``) serves
``tests/test_local_aws.py``, which plays Lambda's SQS trigger with ``infra/local/sqs.py``.

Why it builds its own management client instead of ``app.websocket_api.send``:
Chalice's ``WebsocketAPI`` derives its endpoint from ``apiId`` and the region
(``https://{apiId}.execute-api.{region}.amazonaws.com/{stage}``) and passes it
explicitly as ``endpoint_url``, which overrides boto3's
``AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI``. Locally we must honour that
variable, falling back to ``https://{domainName}/{stage}`` (what AWS documents).
"""

from __future__ import annotations

import collections
import os
import threading
from typing import Any

import boto3
from chalice.app import (
    Chalice,
    CloudWatchEvent,
    Rate,
    SQSEvent,
    WebsocketDisconnectedError,
    WebsocketEvent,
)

app = Chalice(app_name="echo")
app.experimental_feature_flags.update(["WEBSOCKETS"])
app.websocket_api.session = boto3.session.Session()

#: Evidence for tests that handlers really ran (bounded: benchmarks run long).
disconnects: collections.deque[dict[str, Any]] = collections.deque(maxlen=1000)
schedule_runs: list[dict[str, Any]] = []

_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()  # boto3 sessions are not thread-safe


def management_client(event: WebsocketEvent) -> Any:
    """The ``apigatewaymanagementapi`` client for the API that sent ``event``.

    Cached per endpoint (creating clients is slow and not thread-safe); the
    endpoint is re-read each time because tests start several gateways.
    """
    endpoint = os.environ.get("AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI") or (
        f"https://{event.domain_name}/{event.stage}"
    )
    client = _clients.get(endpoint)
    if client is None:
        with _clients_lock:
            client = _clients.get(endpoint)
            if client is None:
                session = app.websocket_api.session
                assert session is not None
                client = session.client("apigatewaymanagementapi", endpoint_url=endpoint)
                _clients[endpoint] = client
    return client


@app.on_ws_connect()
def connect(event: WebsocketEvent) -> dict[str, Any] | None:
    """Refuse ``?deny=1`` with 403 so tests can check handshake refusal."""
    query = event.to_dict().get("queryStringParameters") or {}
    if query.get("deny") == "1":
        return {"statusCode": 403, "body": '{"message": "Forbidden"}'}
    return None


@app.on_ws_message()
def message(event: WebsocketEvent) -> None:
    """Echo the frame back to its sender."""
    client = management_client(event)
    try:
        client.post_to_connection(ConnectionId=event.connection_id, Data=event.body.encode())
    except client.exceptions.GoneException as exc:
        raise WebsocketDisconnectedError(event.connection_id) from exc


@app.on_ws_disconnect()
def disconnect(event: WebsocketEvent) -> None:
    """Record who left and why (``requestContext.disconnectStatusCode``)."""
    context = event.to_dict()["requestContext"]
    disconnects.append({
        "connectionId": event.connection_id,
        "code": context.get("disconnectStatusCode"),
        "reason": context.get("disconnectReason"),
    })


@app.route("/ping")
def ping() -> dict[str, str]:
    """Echo ``?name=`` so tests can tell Chalice really parsed the request."""
    request = app.current_request
    params: dict[str, str] = dict((request.query_params if request else None) or {})
    return {"pong": params.get("name", "")}


@app.schedule(Rate(1, unit=Rate.MINUTES))
def tick(event: CloudWatchEvent) -> None:
    """Record the scheduled event so tests can see it fired."""
    schedule_runs.append(event.to_dict())


#: Every SQS batch the ``jobs`` handler received: one list of raw Lambda records per invocation.
sqs_batches: list[list[dict[str, Any]]] = []


@app.on_sqs_message(queue="echo-jobs", batch_size=5)
def jobs(event: SQSEvent) -> dict[str, Any]:
    """Record each batch; body ``fail`` is reported as a failed item, body ``crash`` raises."""
    records = [record.to_dict() for record in event]
    sqs_batches.append(records)
    if any(record["body"] == "crash" for record in records):
        raise RuntimeError("crash requested")
    return {"batchItemFailures": [{"itemIdentifier": record["messageId"]}
                                  for record in records if record["body"] == "fail"]}
