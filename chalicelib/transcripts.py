"""Transcripts by email, on request: the visitor at the end of a chat (to the address from
the pre-chat form, or one they type), an agent from the console (to the visitor's address).

Through the same mail queue as after-hours mail (``offline.process`` sends them). Exactly
once per request: each request carries a client-chosen id, recorded on the conversation
(``tx``: id -> address) before it is queued; a resend finds its id and is queued again, and
the email's key is the request, so SQS redelivery or a resend never mails twice. Limited to
``MAX_PER_CONVERSATION`` requests per chat and ``config.TRANSCRIPTS_PER_HOUR`` per person.
(Closing with ``transcript: true`` still mails the visitor's pre-chat address, key
``transcript:<conversation>``.)
"""

from __future__ import annotations

from typing import Any

from pynamodb.expressions.condition import size

from chalicelib import auth, config, limits, queue, sites
from chalicelib.auth import Caller
from chalicelib.fanout import Outbox
from chalicelib.models import META, ConversationModel, conversation_key, plain_map, update_or_old
from chalicelib.protocol import BAD_FRAME, CONFLICT, FORBIDDEN, RATE_LIMITED, RETRY, Frame, ProtocolError

MAX_PER_CONVERSATION = 3


def job(conv_id: str, request_id: str | None) -> dict[str, Any]:
    return {"kind": "transcript", "conv": conv_id, **({"rid": request_id} if request_id else {})}


def mail_key(conv_id: str, request_id: str | None) -> str:
    return f"transcript:{conv_id}:{request_id}" if request_id else f"transcript:{conv_id}"


LIMIT_WINDOW = 3600  # TRANSCRIPTS_PER_HOUR


def limit_key(tag: str) -> str:
    """The rate-limit key of one person's transcript requests (``v:<visitor>``/``a:<agent>``)."""
    return f"transcript#{tag}"


def address(conv: ConversationModel, request_id: str | None) -> str | None:
    """Where one request's transcript goes (the pre-chat address for the close-time one)."""
    if request_id is None:
        return conv.email
    value = plain_map(conv.tx).get(request_id)
    return None if value is None else str(value)


def _allowed(who: Caller, conv: ConversationModel) -> bool:
    if who.role == auth.VISITOR:
        return conv.connections().get(who.connection_id, "") == who.tag
    return conv.site == who.site and (conv.agent_id == who.subject or who.connection_id in conv.connections())


def request(who: Caller, frame: Frame, outbox: Outbox) -> None:
    C = ConversationModel
    try:
        conv = C.get(conversation_key(frame["conversation"]), META, consistent_read=True)
    except C.DoesNotExist:
        conv = None
    if conv is None or not _allowed(who, conv):
        raise ProtocolError(FORBIDDEN, "That is not one of your conversations.", frame.ref)
    rid = frame["id"]
    to = frame.get("email") or conv.email
    if not sites.valid_email(to):
        raise ProtocolError(BAD_FRAME, "Give an email address to send the transcript to.", frame.ref)
    if address(conv, rid) is None:
        if not limits.allow(limit_key(who.tag), config.TRANSCRIPTS_PER_HOUR, LIMIT_WINDOW):
            raise ProtocolError(RATE_LIMITED, "Too many transcripts asked for; try again later.", frame.ref,
                                retry_after=limits.retry_after(LIMIT_WINDOW))
        if conv.tx is None:
            ok, old = update_or_old(C, conv.pk, [C.tx.set({rid: to})], C.tx.does_not_exist())
        else:
            ok, old = update_or_old(C, conv.pk, [C.tx[rid].set(to)],
                                    (size(C.tx) < MAX_PER_CONVERSATION) & C.tx[rid].does_not_exist())
        if not ok:
            if old is None:
                raise ProtocolError(RETRY, "Temporary problem; please resend.", frame.ref)
            if address(old, rid) is None:
                if len(plain_map(old.tx)) >= MAX_PER_CONVERSATION:
                    raise ProtocolError(CONFLICT, f"At most {MAX_PER_CONVERSATION} transcripts per chat.",
                                        frame.ref)
                raise ProtocolError(RETRY, "Temporary problem; please resend.", frame.ref)
            conv = old
    queue.enqueue(job(conv.id, rid))  # again on a resend: the email itself goes out once
    outbox.to([who.connection_id], {"type": "transcript_queued", "conversation": conv.id, "id": rid,
                                    "email": address(conv, rid) or to, "ref": frame.ref})
