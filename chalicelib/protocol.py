"""The WebSocket wire protocol: every frame a client may send, its schema, and the limits.

This module is the single source of truth for what clients send, and for the limits and
paging helpers (``fit``, ``page_of``, ``page_at``, ``clip``) that bound what the server sends;
the server's frames themselves are built in ``chalicelib/frames.py``. ``docs/protocol.md``
describes both directions for people and the tests read the schemas from here.

Client -> server frames are JSON objects with an ``action``. Server -> client frames are
JSON objects with a ``type``. Anything that does not match a schema is answered with an
``error`` frame (``code``, ``message`` and the client's ``ref`` when it gave one) and changes
nothing; the connection stays usable.

Why the limits are what they are: API Gateway refuses frames over 32 KB. A message of
``MAX_TEXT_CHARS`` characters is at most 16 KB of UTF-8 (4 bytes per code point), so the
server's outgoing ``message`` frame always fits with room to spare, and incoming frames are
capped at ``MAX_FRAME_BYTES`` so an attacker cannot make us parse large documents.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalicelib.errors import (  # noqa: F401 (the codes are re-exported: frames raise them)
    AT_CAPACITY,
    BAD_EMAIL,
    BAD_FRAME,
    BAD_JSON,
    BAD_NAME,
    BAD_PAGE,
    BAD_REQUEST,
    BAD_TEXT,
    CLOSED,
    CONFLICT,
    FORBIDDEN,
    FRAME_CODES,
    NOT_FOUND,
    RATE_LIMITED,
    RETRY,
    SPAM,
    STALE,
    TOO_LARGE,
    UNKNOWN_ACTION,
    Refusal,
)
from chalicelib.validate import is_web_url, utf8_len

MAX_FRAME_BYTES = 20_000
MAX_TEXT_CHARS = 4_000
MAX_SYNC_PAGE = 200

#: Every server frame, encoded, is at most this many bytes: one API Gateway frame (32 KB), so
#: it is never split, and a quarter of what ``@connections`` accepts (128 KB; more is refused
#: with 413 and never delivered). Builders fit lists into it with :func:`fit`; the ``Outbox``
#: measures every frame and degrades (:func:`shrink`) one a builder let grow past it.
FRAME_BUDGET = 32 * 1024
#: Bytes :func:`fit` keeps free for what is added after a list: ``more``, ``cursor``, ``next``
#: (cursors are at most ``MAX_CURSOR_CHARS``), a ``ref``.
FRAME_RESERVE = 512
MAX_CURSOR_CHARS = 100
#: Byte caps on page fields in outgoing frames. The client's page fields are limited in
#: characters (a title of 300 four-byte characters is 1,200 bytes, a referrer any 2,048), so
#: a list of pages or of visitors would grow without bound in bytes; clipped on a UTF-8
#: boundary, a page costs at most ~2 KB whatever the visitor sends.
PAGE_FIELD_BYTES = {"url": 1024, "title": 256, "referrer": 512}
#: Pages of a visit sent in a ``visitors`` item (the newest); ``page_count`` says how many there are.
VISITOR_PAGES_SHOWN = 5

# A client message id is "<client instance>:<counter>". The instance part is random per
# browser tab (kept across reconnects); the counter increases by one per message. The
# server deduplicates on it, so a resend after a lost ack is stored and delivered once.
CLIENT_MESSAGE_ID = re.compile(r"^[A-Za-z0-9_-]{6,40}:[0-9]{1,12}$")
CONVERSATION_ID = re.compile(r"^[A-Za-z0-9_-]{8,40}$")
# A request id chosen by the client (transcript requests), so a resend is the same request.
REQUEST_ID = re.compile(r"^[A-Za-z0-9_-]{6,40}$")
MAX_COMMENT_CHARS = 500
# Every text a visitor can have stored is limited in UTF-8 bytes too (DynamoDB counts bytes;
# one character may be four): these figures are what the item budgets in chalicelib/store add up.
MAX_TEXT_BYTES = 16_000
MAX_NAME_BYTES = 400
MAX_EMAIL_BYTES = 254
MAX_URL_BYTES = 2048
MAX_TITLE_BYTES = 1200
MAX_TZ_BYTES = 64
MAX_COMMENT_BYTES = 2000


# The error model lives in chalicelib/errors.py; these names stay importable from here, where
# the frame schemas that raise them are.
ERROR_CODES = FRAME_CODES  # every code an ``error`` frame may carry


@dataclass(frozen=True)
class Field:
    """One field of a frame schema: a type check plus an optional extra rule."""

    kind: type | tuple[type, ...]
    required: bool = True
    check: Callable[[Any], bool] | None = None
    rule: str = ""


def _text(value: Any) -> bool:
    return (isinstance(value, str) and len(value.strip()) > 0 and len(value) <= MAX_TEXT_CHARS
            and utf8_len(value) <= MAX_TEXT_BYTES)


def _short(value: str, limit: int, nbytes: int | None = None) -> bool:
    return len(value) <= limit and utf8_len(value) <= (limit if nbytes is None else nbytes)


def _conv_id(value: Any) -> bool:
    return isinstance(value, str) and bool(CONVERSATION_ID.match(value))


def _seq(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**12


CONVERSATION = Field(str, check=_conv_id, rule="a conversation id")
#: Where the next page of a list starts: the ``cursor`` (or a ``next`` entry) of the page before.
CURSOR = Field(str, required=False, check=lambda v: len(v) <= MAX_CURSOR_CHARS,
               rule=f"a cursor from the previous page (at most {MAX_CURSOR_CHARS} characters)")
SEQ = Field(int, check=_seq, rule="a non-negative integer")

# action -> {field: Field}. Who may send each action: chalicelib.dispatch.ACTIONS.
SCHEMAS: dict[str, dict[str, Field]] = {
    "ping": {},
    "hello": {},
    "start": {
        "name": Field(str, required=False, check=lambda v: _short(v, 100, MAX_NAME_BYTES),
                      rule=f"at most 100 characters ({MAX_NAME_BYTES} bytes)"),
        "email": Field(str, required=False, check=lambda v: _short(v, MAX_EMAIL_BYTES),
                       rule="an email address"),
        # The visitor's first line, stored (as ``send`` would, same id rules) before the chat is
        # routed, so the waiting list agents are sent already shows it. Both or neither.
        "text": Field(str, required=False, check=_text,
                      rule=f"1 to {MAX_TEXT_CHARS} characters ({MAX_TEXT_BYTES} bytes), not blank"),
        "id": Field(str, required=False, check=lambda v: bool(CLIENT_MESSAGE_ID.match(v)),
                    rule='"<client id>:<counter>", e.g. "k3Jd9a:1"'),
    },
    "send": {
        "conversation": CONVERSATION,
        "id": Field(str, check=lambda v: bool(CLIENT_MESSAGE_ID.match(v)),
                    rule='"<client id>:<counter>", e.g. "k3Jd9a:12"'),
        "text": Field(str, check=_text,
                      rule=f"1 to {MAX_TEXT_CHARS} characters ({MAX_TEXT_BYTES} bytes), not blank"),
    },
    "typing": {"conversation": CONVERSATION, "on": Field(bool)},
    "read": {"conversation": CONVERSATION, "seq": SEQ},
    "sync": {
        "conversation": CONVERSATION,
        "after": SEQ,
        "limit": Field(int, required=False, check=lambda v: _seq(v) and 0 < v <= MAX_SYNC_PAGE,
                       rule=f"1 to {MAX_SYNC_PAGE}"),
    },
    "close": {"conversation": CONVERSATION, "transcript": Field(bool, required=False)},
    # A visitor's own earlier conversations (the widget's "Previous conversations").
    "past": {"cursor": CURSOR},
    "past_messages": {"conversation": CONVERSATION, "after": Field(int, required=False, check=_seq,
                                                                   rule="a non-negative integer")},
    "note": {"conversation": CONVERSATION,
             "text": Field(str, check=_text, rule=f"1 to {MAX_TEXT_CHARS} characters, not blank")},
    "notes": {"conversation": CONVERSATION, "cursor": CURSOR},
    "transfer": {"conversation": CONVERSATION,
                 "to": Field(str, check=lambda v: 0 < len(v) <= 40, rule="an agent id"),
                 "note": Field(str, required=False, check=lambda v: len(v) <= MAX_TEXT_CHARS,
                               rule=f"at most {MAX_TEXT_CHARS} characters")},
    "transfer_answer": {"conversation": CONVERSATION, "accept": Field(bool)},
    "away": {"on": Field(bool)},
    "overview": {"cursor": CURSOR},
    "visitors": {"cursor": CURSOR},
    "snippets": {"cursor": CURSOR},
    "history": {"text": Field(str, check=lambda v: len(v.strip()) > 0 and len(v) <= 100,
                              rule="1 to 100 characters")},
    "shift": {"on": Field(bool)},
    "accept": {"conversation": CONVERSATION},
    "queue": {"cursor": CURSOR},
    "inbox": {"cursor": CURSOR},
    "take": {"conversation": CONVERSATION},
    "leave_message": {
        "email": Field(str),
        "text": Field(str),
        "name": Field(str, required=False),
        "page": Field(str, required=False),
        "website": Field(str, required=False),
    },
    "status": {},
    "page": {
        "url": Field(str, check=is_web_url, rule=f"an http(s) address of at most {MAX_URL_BYTES} bytes"),
        "title": Field(str, required=False, check=lambda v: _short(v, 300, MAX_TITLE_BYTES),
                       rule=f"at most 300 characters ({MAX_TITLE_BYTES} bytes)"),
        "referrer": Field(str, required=False, check=lambda v: _short(v, MAX_URL_BYTES),
                          rule=f"at most {MAX_URL_BYTES} bytes"),
        "tz": Field(str, required=False, check=lambda v: len(v) > 0 and _short(v, MAX_TZ_BYTES),
                    rule="an IANA time zone"),
    },
    "context": {"conversation": CONVERSATION, "cursor": CURSOR},
    # Ask again for the site's invitation rules, when a ``rules_due`` said a time rule is met.
    "rules": {},
    "rate": {
        "conversation": CONVERSATION,
        "score": Field(str, check=lambda v: v in ("up", "down"), rule='"up" or "down"'),
        "comment": Field(str, required=False,
                         check=lambda v: _short(v, MAX_COMMENT_CHARS, MAX_COMMENT_BYTES),
                         rule=f"at most {MAX_COMMENT_CHARS} characters ({MAX_COMMENT_BYTES} bytes)"),
    },
    "transcript": {
        "conversation": CONVERSATION,
        "id": Field(str, check=lambda v: bool(REQUEST_ID.match(v)),
                    rule="a request id: 6 to 40 of A-Z a-z 0-9 _ -"),
        "email": Field(str, required=False, check=lambda v: len(v) <= 254, rule="an email address"),
    },
    "invite": {
        "visitor": Field(str, check=lambda v: _short(v, 40) and len(v) > 0, rule="a visitor id"),
        "text": Field(str, check=lambda v: len(v.strip()) > 0 and len(v) <= 300, rule="1 to 300 characters"),
    },
    "invitation": {
        "id": Field(str, check=lambda v: _short(v, 40) and len(v) > 0, rule="an invitation id"),
        "accept": Field(bool),
    },
    # Nobody on shift: the visitor continues by email (chalicelib.unattended).
    "continue_by_email": {
        "conversation": CONVERSATION,
        "email": Field(str, check=lambda v: _short(v, MAX_EMAIL_BYTES), rule="an email address"),
    },
    # The holding agent puts the chat back at the front of the line (chalicelib.handback).
    "handback": {"conversation": CONVERSATION},
}
#: Every action a client may send (dispatch registers exactly these, each with its roles).
ACTIONS = frozenset(SCHEMAS)


@dataclass(frozen=True)
class Budget:
    """How many frames of one action class a connection may send per fixed window.

    ``durable``: the count is also kept on the connection's item in DynamoDB, because on
    Lambda each frame may run in another container and a count held in memory alone would
    multiply with the containers a flood spreads over. Only ``ping`` does without: refusing
    it costs exactly what answering it does (one post back), and it touches no table.
    """

    limit: int
    window_seconds: int
    durable: bool = True


#: Per-connection frame budgets by action class (docs/protocol.md, "Rate limits", says the
#: same for people). Windows of ten seconds let a console open (hello, queue, overview,
#: visitors, then sync/notes/context per chat) in one burst, while a flood is cut within
#: the first fraction of a second. ``send`` is not here: it has its own, finer limit
#: (``Settings.messages_per_second``) checked inside the message write, so the message path
#: stays at two DynamoDB requests.
BUDGETS: dict[str, Budget] = {
    "ping": Budget(20, 10, durable=False),
    "signal": Budget(40, 10),  # typing, read markers, page views: relayed or small writes
    "query": Budget(40, 10),  # reads and queries that answer only the sender
    "change": Budget(20, 10),  # writes that change shared state (shift, accept, close...)
}

#: The class of each action (every action but ``send`` has one).
ACTION_CLASS: dict[str, str] = {
    "ping": "ping",
    "typing": "signal", "read": "signal", "page": "signal", "rules": "signal",
    "hello": "query", "status": "query", "sync": "query", "queue": "query", "notes": "query",
    "overview": "query", "history": "query", "visitors": "query", "context": "query",
    "snippets": "query", "past": "query", "past_messages": "query", "inbox": "query",
    "start": "change", "close": "change", "shift": "change", "away": "change",
    "accept": "change", "transfer": "change", "transfer_answer": "change", "note": "change",
    "invite": "change", "invitation": "change", "rate": "change", "leave_message": "change",
    "transcript": "change", "continue_by_email": "change", "handback": "change", "take": "change",
}

# The optional correlation field every frame may carry; echoed as ``ref`` in replies.
REF = "ref"


@dataclass(frozen=True)
class Frame:
    """A validated client frame."""

    action: str
    body: dict[str, Any]
    ref: str | None

    def __getitem__(self, key: str) -> Any:
        return self.body[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.body.get(key, default)


def _unicode(value: Any) -> bool:
    """A string that is real Unicode text. JSON can spell lone UTF-16 surrogates ("\\ud800")
    that no UTF-8 encoder (ours, DynamoDB's) accepts; letting one through would fail later,
    half-way through a handler, instead of here with a clear error."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse(raw: str | bytes | None) -> Frame:
    """Parse and validate one client frame, or raise Refusal saying what is wrong."""
    if raw is None:
        raise Refusal(BAD_FRAME, "Empty frame.")
    size = len(raw.encode("utf-8")) if isinstance(raw, str) else len(raw)
    if size > MAX_FRAME_BYTES:
        raise Refusal(TOO_LARGE, f"Frame is {size} bytes; the limit is {MAX_FRAME_BYTES}.")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: [[[[...]]]]
        raise Refusal(BAD_JSON, "Frame is not valid JSON.") from None
    if not isinstance(doc, dict):
        raise Refusal(BAD_FRAME, "Frame must be a JSON object.")
    ref = doc.get(REF) if _unicode(doc.get(REF)) and len(doc[REF]) <= 64 else None
    action = doc.get("action")
    if not isinstance(action, str):
        raise Refusal(BAD_FRAME, 'Frame needs an "action" string.', ref)
    schema = SCHEMAS.get(action)
    if schema is None:
        raise Refusal(UNKNOWN_ACTION, f"Unknown action {action[:40]!r}.", ref)
    body: dict[str, Any] = {}
    for name, field in schema.items():
        if name not in doc:
            if field.required:
                raise Refusal(BAD_FRAME, f'"{action}" needs "{name}".', ref)
            continue
        value = doc[name]
        if isinstance(value, str) and not _unicode(value):
            raise Refusal(BAD_FRAME, f'"{name}" must be Unicode text (it has a lone surrogate).', ref)
        ok = isinstance(value, field.kind) and not (field.kind is int and isinstance(value, bool))
        if not ok or (field.check is not None and not field.check(value)):
            expected = field.rule or getattr(field.kind, "__name__", "a valid value")
            raise Refusal(BAD_FRAME, f'"{name}" must be {expected}.', ref)
        body[name] = value
    if action == "send":
        ref = body["id"]
    return Frame(action=action, body=body, ref=ref)


def encode(frame: Any) -> bytes:
    """Serialise a server frame compactly (bytes go straight to post_to_connection)."""
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def clip(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` of UTF-8, never inside a character (Python
    strings are code points, so decoding the cut bytes with ``ignore`` drops only a partial
    last character); an ellipsis marks a cut."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    return data[:max(0, max_bytes - 3)].decode("utf-8", "ignore") + "\u2026"


def page_view(page: dict[str, Any] | None) -> dict[str, Any] | None:
    """A visited page as frames carry it: url, title and referrer clipped to ``PAGE_FIELD_BYTES``."""
    if not page:
        return None
    view = dict(page)
    for name, limit in PAGE_FIELD_BYTES.items():
        if isinstance(view.get(name), str):
            view[name] = clip(view[name], limit)
    return view


def fit(frame: dict[str, Any], key: str, items: list[Any],
        cursor: Callable[[Any], str | int] | None = None, at_least_one: bool = True) -> str | int | None:
    """Put the longest prefix of ``items`` into ``frame[key]`` that keeps the whole frame within
    ``FRAME_BUDGET - FRAME_RESERVE`` bytes, encoded. Returns None when all fit, otherwise the
    cursor to ask for the rest with: ``cursor(last item sent)``, or the count sent.

    With ``at_least_one`` (the default) it sends at least one item when there are any, so
    paging always moves on (every builder keeps its single items far below the budget; the
    ``Outbox`` is the backstop). Several lists in one frame are fitted one after another,
    each in what the others left, the later ones without ``at_least_one``: their cursor is
    then ``""`` or ``0`` (from the start).
    """
    frame[key] = []
    used = len(encode(frame)) + FRAME_RESERVE
    kept = 0
    for item in items:
        cost = len(encode(item)) + (1 if kept else 0)  # its comma
        if used + cost > FRAME_BUDGET and (kept or not at_least_one):
            break
        used += cost
        kept += 1
    frame[key] = list(items[:kept])
    if kept == len(items):
        return None
    if cursor is None:
        return kept
    return cursor(items[kept - 1]) if kept else ""


def page_of(frame: dict[str, Any], key: str, items: list[Any],
            cursor: Callable[[Any], str | int] | None = None) -> dict[str, Any]:
    """:func:`fit` for a frame that is one list: sets ``more`` and ``cursor`` (null at the end)."""
    rest = fit(frame, key, items, cursor)
    frame["more"] = rest is not None
    frame["cursor"] = rest
    return frame


def offset(cursor: str | None) -> int:
    """The position a count cursor (from :func:`fit` without ``cursor``) continues at."""
    return int(cursor) if cursor is not None and cursor.isdigit() else 0


def page_at(frame: dict[str, Any], key: str, items: list[Any], after: str | None) -> dict[str, Any]:
    """:func:`page_of` for a list addressed by position: ``cursor`` is how many items came
    before the next page (a string), ``after`` echoes the cursor this page was asked from
    (null for the first page: the client replaces its list; otherwise it appends)."""
    start = offset(after)
    frame["after"] = after
    rest = fit(frame, key, items[start:])
    frame["more"] = rest is not None
    frame["cursor"] = None if rest is None else str(start + int(rest))
    return frame


def shrink(frame: dict[str, Any], budget: int = FRAME_BUDGET) -> dict[str, Any]:
    """A copy of an over-budget frame that fits: long strings clipped (halving the cap until
    it fits), then lists cut, with ``truncated: true``. Only the ``Outbox``'s backstop for a
    builder that failed to bound its frame: the client still gets a frame of that type
    (a console waiting for ``welcome`` gets its ``welcome``), not nothing."""
    def clipped(value: Any, cap: int) -> Any:
        if isinstance(value, str):
            return clip(value, cap)
        if isinstance(value, list):
            return [clipped(v, cap) for v in value]
        if isinstance(value, dict):
            return {k: v if k in ("type", "conversation") else clipped(v, cap) for k, v in value.items()}
        return value

    out = dict(frame, truncated=True)
    cap = 4096
    while len(encode(out)) > budget and cap >= 16:
        out = clipped(dict(frame, truncated=True), cap)
        cap //= 2
    while len(encode(out)) > budget:
        lists = [k for k, v in out.items() if isinstance(v, list) and v]
        if not lists:
            return {k: v for k, v in out.items() if k in ("type", "conversation", "ref", "truncated")}
        longest = max(lists, key=lambda k: len(encode(out[k])))
        out[longest] = out[longest][:len(out[longest]) // 2]
    return out
