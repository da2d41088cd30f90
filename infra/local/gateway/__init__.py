"""Local stand-in for API Gateway: WebSocket API, ``@connections`` API, REST and static.

``chalice local`` only emulates the REST API, but this project lives on a WebSocket API.
:class:`GatewayServer` fills the gap in one process: an aiohttp server on its own asyncio loop
(in a daemon thread) that hands every event to the very callable the Lambda runtime would call
(``app.handler_map[...]``). One module per job, in the spirit of Chalice's own
``chalice/local.py``:

* :mod:`.limits` API Gateway's quotas and close codes, and the request timeouts;
* :mod:`.events` the events Lambda receives, key for key as API Gateway and EventBridge send
  them (``tests/test_gateway_events.py`` compares them with Powertools' samples);
* :mod:`.runtime` how handlers run: the thread pool, the Lambda context, per-thread request
  state, the counters;
* :mod:`.frame_rules` API Gateway's rules for client frames, on the raw bytes;
* :mod:`.websocket` ``GET /ws``: ``$connect`` / ``$default`` / ``$disconnect``, the idle and
  2-hour limits;
* :mod:`.management` the ``@connections`` API, on the wire, for an unmodified boto3 client, on
  its own loopback-only listener under a per-run secret path;
* :mod:`.rest` ``/api/...`` forwarded to Chalice's :class:`chalice.local.LocalGateway`;
* :mod:`.static` static folders (the demo page, the widget), caching disabled;
* :mod:`.schedules` ``@app.schedule`` handlers on demand or on a timer;
* :mod:`.server` :class:`GatewayServer`, which composes them.

It refuses by default what API Gateway refuses: a client frame over 32 KB or a message over
128 KB closes the connection with 1009, a binary frame closes it with 1003, in both cases with
no route invoked; a connection idle for 10 minutes or open for 2 hours is closed (1001); an
``@connections`` POST over 128 KB answers 413.

A client must finish its request headers within ``header_timeout`` seconds of connecting (or
of its previous request), and a request body within ``body_timeout``: a client that trickles
bytes (slowloris) is cut off instead of holding a connection and a handler for ever.
"""

from infra.local.gateway.limits import (
    BODY_TIMEOUT_S,
    HEADER_TIMEOUT_S,
    IDLE_TIMEOUT_S,
    MAX_CONNECTION_S,
    MAX_FRAME_BYTES,
    MAX_MESSAGE_BYTES,
)
from infra.local.gateway.runtime import LocalLambdaContext
from infra.local.gateway.server import GatewayServer

__all__ = [
    "BODY_TIMEOUT_S",
    "HEADER_TIMEOUT_S",
    "IDLE_TIMEOUT_S",
    "MAX_CONNECTION_S",
    "MAX_FRAME_BYTES",
    "MAX_MESSAGE_BYTES",
    "GatewayServer",
    "LocalLambdaContext",
]
