"""API Gateway's rules for client frames, applied to the raw bytes before aiohttp parses them.

A client frame over 32 KB or a message over 128 KB closes the connection with 1009, a binary
frame closes it with 1003, in both cases with no route invoked ("Quotas for configuring and
running a WebSocket API in API Gateway", "Working with binary media types for WebSocket APIs").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.http_websocket import WebSocketError, WebSocketWriter
from aiohttp.web_request import BaseRequest

from infra.local.gateway.limits import (
    CLOSE_TOO_BIG,
    CLOSE_UNSUPPORTED,
    MAX_FRAME_BYTES,
    MAX_MESSAGE_BYTES,
    REASON_BINARY,
    REASON_FRAME_TOO_BIG,
    REASON_MESSAGE_TOO_BIG,
)

_OP_BINARY = 0x2
_OP_CLOSE = 0x8


def _header_size(header: bytes | bytearray) -> int:
    """Bytes in a WebSocket frame header, as far as its first two bytes tell (RFC 6455 5.2)."""
    if len(header) < 2:
        return 2
    length = header[1] & 0x7F
    extended = 2 if length == 126 else 8 if length == 127 else 0
    return 2 + extended + (4 if header[1] & 0x80 else 0)


class FrameRules:
    """API Gateway's rules for client frames, applied to the raw bytes before aiohttp parses them.

    aiohttp's ``max_msg_size`` only bounds a whole message, and its reader never tells how a
    message was fragmented; API Gateway bounds every *frame* (32 KB) as well as the message
    (128 KB) and refuses binary frames. So this sits between the connection and aiohttp's
    ``WebSocketReader``: it follows the frame headers in the byte stream (skipping payloads, so
    it costs a few operations per frame) and forwards the bytes unchanged. At the first frame
    API Gateway would refuse, it forwards the frames before it (they are dispatched, as on
    AWS), drops the rest, and fails aiohttp's message queue with the close code: the reader
    loop gets ``WSMsgType.ERROR`` and aiohttp closes the socket with that code, the way it
    does for its own protocol errors. Control frames and protocol errors are left to aiohttp.
    """

    def __init__(self, reader: Any, queue: Any, refuse: Callable[[int, str], None]) -> None:
        self._reader = reader  # aiohttp's WebSocketReader: feed_data / feed_eof
        self._queue = queue  # aiohttp's WebSocketDataQueue: set_exception
        self._refuse = refuse
        self._header = bytearray()  # a frame header split across reads
        self._frame_start = 0  # where the header being read began in this read
        self._skip = 0  # payload bytes of the current frame still to pass
        self._message = 0  # payload bytes of the data message in progress
        self._refused = False

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if self._refused:
            return True, b""
        verdict = self._scan(data)
        if verdict is None:
            result: tuple[bool, bytes] = self._reader.feed_data(data)
            return result
        code, reason = verdict
        self._refused = True
        if self._frame_start > 0:
            eof, _ = self._reader.feed_data(data[:self._frame_start])
            if eof:  # aiohttp found a protocol error first: its verdict stands
                return True, b""
        self._refuse(code, reason)
        self._queue.set_exception(WebSocketError(code, reason))
        return True, b""

    def feed_eof(self) -> None:
        self._reader.feed_eof()

    def _scan(self, data: bytes) -> tuple[int, str] | None:
        """Follow frame headers through ``data``; the first refused frame's (code, reason)."""
        pos, end = 0, len(data)
        self._frame_start = 0
        while pos < end:
            if self._skip:
                step = min(self._skip, end - pos)
                self._skip -= step
                pos += step
                continue
            if not self._header:
                self._frame_start = pos
            take = min(_header_size(self._header) - len(self._header), end - pos)
            self._header += data[pos:pos + take]
            pos += take
            if len(self._header) < _header_size(self._header):
                continue  # incomplete, or it just said it is longer
            verdict = self._check(self._header)
            self._header.clear()
            if verdict is not None:
                return verdict
        return None

    def _check(self, header: bytearray) -> tuple[int, str] | None:
        fin, opcode, length = header[0] & 0x80, header[0] & 0x0F, header[1] & 0x7F
        if length == 126:
            length = int.from_bytes(header[2:4])
        elif length == 127:
            length = int.from_bytes(header[2:10])
        self._skip = length
        if opcode >= _OP_CLOSE:
            return None  # close / ping / pong (interleaving is allowed)
        if opcode == _OP_BINARY:
            return CLOSE_UNSUPPORTED, REASON_BINARY
        if length > MAX_FRAME_BYTES:
            return CLOSE_TOO_BIG, REASON_FRAME_TOO_BIG
        self._message += length
        if self._message > MAX_MESSAGE_BYTES:
            return CLOSE_TOO_BIG, REASON_MESSAGE_TOO_BIG
        if fin:
            self._message = 0
        return None


class GatewayWebSocket(web.WebSocketResponse):
    """aiohttp's server socket with :class:`FrameRules` in front of its reader.

    The rules go in where aiohttp installs its reader (``_post_start``), synchronously, so no
    byte can reach the reader around them; bytes that arrived with the upgrade request are
    held back and sent through the rules too.
    """

    def __init__(self, refuse: Callable[[int, str], None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._refuse = refuse

    def _post_start(self, request: BaseRequest, protocol: str | None,
                    writer: WebSocketWriter) -> None:
        handler = request.protocol
        early, handler._message_tail = handler._message_tail, b""
        super()._post_start(request, protocol, writer)
        rules = FrameRules(handler._payload_parser, self._reader, self._refuse)
        handler._payload_parser = rules
        if early and rules.feed_data(early)[0]:
            handler.close()

