"""API Gateway's WebSocket limits, the close codes it answers them with, and the stand-in's own
request timeouts.

API Gateway's WebSocket quotas ("Quotas for configuring and running a WebSocket API in API
Gateway"; none can be raised): "WebSocket frame size 32 KB", "Message payload size 128 KB"
("If a larger message (or larger frame size) is received, the connection is closed with code
1009"), "Idle Connection Timeout 10 minutes", "Connection duration for WebSocket API 2 hours".
"""

from __future__ import annotations

import asyncio

from aiohttp import web

#: Largest client frame API Gateway accepts (32 KB); one byte more closes the socket with 1009.
MAX_FRAME_BYTES = 32 * 1024
#: Largest client message (fragments reassembled) and ``PostToConnection`` payload (128 KB).
MAX_MESSAGE_BYTES = 128 * 1024
#: Seconds without a client data frame before API Gateway closes the connection (10 min).
IDLE_TIMEOUT_S = 10 * 60.0
#: Seconds after which API Gateway closes any connection, busy or not (2 h).
MAX_CONNECTION_S = 2 * 60 * 60.0
#: Seconds a client has to send complete request headers (slowloris), and a request body.
HEADER_TIMEOUT_S = 5.0
BODY_TIMEOUT_S = 30.0

# Close codes and the ``disconnectReason`` strings API Gateway reports for them.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_NO_STATUS = 1005
CLOSE_ABNORMAL = 1006
CLOSE_UNSUPPORTED = 1003
CLOSE_TOO_BIG = 1009
GOING_AWAY = "Going away"
# AWS documents the codes of these closes, not the disconnectReason it reports with them.
REASON_BINARY = "Binary frames are not supported"
REASON_FRAME_TOO_BIG = "Frame size exceeds 32 KB limit"
REASON_MESSAGE_TOO_BIG = "Message size exceeds 128 KB limit"


async def read_body(request: web.Request, timeout: float) -> bytes:
    """The request body, or 408 if it trickles in slower than ``timeout`` allows (slowloris)."""
    try:
        return await asyncio.wait_for(request.read(), timeout)
    except TimeoutError:
        raise web.HTTPRequestTimeout() from None
