"""The one error model: a ``Refusal`` (a code, a message, an optional ``retry_after``), the
codes clients switch on, and the table from code to HTTP status.

Every refusal, whatever its origin (a bad frame, a bad form, a locked sign-in, a $connect we
will not take), is this one type; it is rendered in exactly two places: as the ``error``
frame (``Refusal.frame``, sent by dispatch) and as the REST body ``{"code", "message"}`` plus
``retry_after`` when set (``Refusal.body``, answered by app.py's one handler). Nothing here
imports the rest of chalicelib, so any module may raise a refusal.
"""

from __future__ import annotations

from typing import Any

# Codes, in one place so clients can switch on them. The first group may reach WebSocket
# clients in an ``error`` frame (protocol.ERROR_CODES); the REST routes use them too.
BAD_JSON = "bad_json"
BAD_FRAME = "bad_frame"
UNKNOWN_ACTION = "unknown_action"
TOO_LARGE = "too_large"
FORBIDDEN = "forbidden"
NOT_FOUND = "not_found"
CONFLICT = "conflict"
AT_CAPACITY = "at_capacity"
CLOSED = "closed"
STALE = "stale_message"
RETRY = "retry"
RATE_LIMITED = "rate_limited"  # always with ``retry_after`` (whole seconds)
# An offline message's fields (``leave_message`` and ``POST /api/offline``).
BAD_REQUEST = "bad_request"
BAD_EMAIL = "bad_email"
BAD_TEXT = "bad_text"
BAD_NAME = "bad_name"
BAD_PAGE = "bad_page"
SPAM = "spam"
# REST only: no WebSocket client ever sees these.
UNAUTHORIZED = "unauthorized"  # no bearer token, or wrong credentials at sign-in
BAD_SITE = "bad_site"  # POST /offline without a usable site id
NO_SITE = "no_site"  # POST /offline for a site nobody created
BAD_TOKEN = "bad_token"  # POST /offline with a token that is not this site's visitor's

#: Every code an ``error`` frame may carry; clients and the fuzz tests hold replies to it.
FRAME_CODES = frozenset({
    BAD_JSON, BAD_FRAME, UNKNOWN_ACTION, TOO_LARGE, FORBIDDEN, NOT_FOUND, CONFLICT, AT_CAPACITY,
    CLOSED, STALE, RETRY, RATE_LIMITED, BAD_REQUEST, BAD_EMAIL, BAD_TEXT, BAD_NAME, BAD_PAGE, SPAM})

#: The HTTP status of each code: the REST answer, and the $connect refusal. One table, so a
#: code means the same status on every route (tests/test_errors.py holds every code to it).
HTTP_STATUS: dict[str, int] = {
    BAD_JSON: 400, BAD_FRAME: 400, UNKNOWN_ACTION: 400, TOO_LARGE: 413, BAD_REQUEST: 400,
    BAD_EMAIL: 400, BAD_TEXT: 400, BAD_NAME: 400, BAD_PAGE: 400, SPAM: 400, BAD_SITE: 400,
    UNAUTHORIZED: 401,
    FORBIDDEN: 403, BAD_TOKEN: 403,
    NOT_FOUND: 404, NO_SITE: 404,
    CONFLICT: 409, AT_CAPACITY: 409, CLOSED: 409, STALE: 409,
    RATE_LIMITED: 429,
    RETRY: 503,
}


class Refusal(Exception):
    """A request the server refuses, with a code clients switch on and a message fit to show.

    ``retry_after`` (whole seconds) comes with ``rate_limited``: the same request may be made
    again after that long. ``ref`` is the client's frame ref, echoed in the ``error`` frame
    (REST has no use for it). Subclasses may fix the code, and carry nothing else."""

    def __init__(self, code: str, message: str, ref: str | None = None,
                 retry_after: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref
        self.retry_after = retry_after

    @property
    def status(self) -> int:
        """The HTTP status of this refusal (HTTP_STATUS; 400 for a code missing from it)."""
        return HTTP_STATUS.get(self.code, 400)

    def body(self) -> dict[str, Any]:
        """The REST error body: ``{"code", "message"}``, plus ``retry_after`` when set."""
        return error_body(self.code, self.message, self.retry_after)

    def frame(self, ref: str | None = None) -> dict[str, Any]:
        """The ``error`` frame; ``ref`` is used when the refusal names none of its own."""
        return error_frame(self.code, self.message, self.ref if self.ref is not None else ref,
                           self.retry_after)


def error_body(code: str, message: str, retry_after: int | None = None) -> dict[str, Any]:
    """One body shape for every REST refusal, the same keys as the ``error`` frame's."""
    body: dict[str, Any] = {"code": code, "message": message}
    if retry_after is not None:
        body["retry_after"] = retry_after
    return body


def error_frame(code: str, message: str, ref: str | None = None,
                retry_after: int | None = None) -> dict[str, Any]:
    """The ``error`` frame; one shape for every refusal. ``retry_after`` (seconds) comes with
    ``rate_limited``: the same frame may be sent again after that long."""
    frame: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if ref is not None:
        frame["ref"] = ref
    if retry_after is not None:
        frame["retry_after"] = retry_after
    return frame
