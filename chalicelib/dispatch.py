"""The ``$default`` route: parse a frame, authorize it, hand it to the domain.

One table maps each action to its handler. Before it runs, the frame is counted against its
connection's budget for that kind of action (``limits.admit``; ``send`` is counted inside its
own write). Every refusal becomes an ``error`` frame for the sender only; the connection stays
usable and nothing is changed by a refused frame.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger

from chalicelib import (
    auth,
    availability,
    config,
    conversations,
    frames,
    handback,
    limits,
    notes,
    offline,
    presence,
    ratings,
    routing,
    sites,
    supervision,
    telemetry,
    transcripts,
    transfers,
    unattended,
    visitors,
)
from chalicelib.fanout import Outbox
from chalicelib.protocol import BAD_FRAME, FORBIDDEN, RETRY, Frame, ProtocolError, parse

logger = Logger(service=config.SERVICE, child=True)

Handler = Callable[[str, Frame, Outbox], None]


def _ping(connection_id: str, frame: Frame, outbox: Outbox) -> None:
    outbox.to([connection_id], frames.pong(frame.ref))


def _hello(connection_id: str, frame: Frame, outbox: Outbox) -> None:
    presence.greet(presence.caller(connection_id), outbox)


def _start(connection_id: str, frame: Frame, outbox: Outbox) -> None:
    who = presence.caller(connection_id)
    presence.require_visitor(who)
    conversations.start(who, outbox, name=frame.get("name"), email=frame.get("email"),
                        first=conversations.first_line(frame))


def _continue_by_email(connection_id: str, frame: Frame, outbox: Outbox) -> None:
    who = presence.caller(connection_id)
    presence.require_visitor(who)
    unattended.continue_by_email(who, frame, outbox, who.ip_hash)


def _handback(connection_id: str, frame: Frame, outbox: Outbox) -> None:
    handback.handback(_agent(connection_id), frame["conversation"], outbox)


def _shift(connection_id: str, frame: Frame, outbox: Outbox) -> None:
    who = presence.caller(connection_id)
    presence.require_agent(who)
    presence.set_shift(who, frame["on"], outbox)


def _accept(connection_id: str, frame: Frame, outbox: Outbox) -> None:
    who = presence.caller(connection_id)
    presence.require_agent(who)
    routing.accept(who.subject, frame["conversation"], outbox)


def _queue(connection_id: str, frame: Frame, outbox: Outbox) -> None:
    who = presence.caller(connection_id)
    presence.require_agent(who)
    outbox.to([connection_id], routing.queue_listing(routing.waiting(who.site), frame.get("cursor")))


def _send(connection_id: str, frame: Frame, outbox: Outbox) -> None:
    conversations.send(connection_id, frame, outbox)


def _close(connection_id: str, frame: Frame, outbox: Outbox) -> None:
    # The closer's network counts a transcript against the mail budgets (one read, only then).
    network = presence.connection(connection_id).ip_hash if frame.get("transcript") else None
    conversations.close(connection_id, frame, outbox, network)


def _leave_message(connection_id: str, frame: Frame, outbox: Outbox) -> None:
    item = presence.connection(connection_id)
    if item.role != auth.VISITOR:
        raise ProtocolError(FORBIDDEN, "Only visitors can do that.", frame.ref)
    # A refusal here is the same type as any frame's: handle() answers it with the frame's ref.
    message_id = offline.leave(item.site, frame.body, visitor_id=item.subject, ip_hash=item.ip_hash)
    outbox.to([connection_id], frames.message_left(message_id, frame.ref))
    offline.dispatch(message_id)


def _status(connection_id: str, frame: Frame, outbox: Outbox) -> None:
    who = presence.caller(connection_id)
    outbox.to([connection_id], availability.status(sites.get(who.site)).frame())


def _page(connection_id: str, frame: Frame, outbox: Outbox) -> None:
    who = presence.caller(connection_id)
    presence.require_visitor(who)
    visitors.record_page(who, frame, outbox)


def _rules(connection_id: str, frame: Frame, outbox: Outbox) -> None:
    who = presence.caller(connection_id)
    presence.require_visitor(who)
    visitors.recheck(who, outbox)


def _invite(connection_id: str, frame: Frame, outbox: Outbox) -> None:
    who = presence.caller(connection_id)
    presence.require_agent(who)
    invitation = visitors.invite(who, frame["visitor"], frame["text"], outbox)
    outbox.to([connection_id], frames.invited(invitation, frame["visitor"], frame.ref))


def _invitation(connection_id: str, frame: Frame, outbox: Outbox) -> None:
    who = presence.caller(connection_id)
    presence.require_visitor(who)
    visitors.answer(who, frame, outbox)


def _agent(connection_id: str) -> auth.Caller:
    who = presence.caller(connection_id)
    presence.require_agent(who)
    return who


def _note(connection_id: str, frame: Frame, outbox: Outbox) -> None:
    notes.add(_agent(connection_id), frame["conversation"], frame["text"], outbox)


def _notes(connection_id: str, frame: Frame, outbox: Outbox) -> None:
    outbox.to([connection_id], notes.history(_agent(connection_id), frame["conversation"],
                                                  frame.get("cursor")))


def _transfer(connection_id: str, frame: Frame, outbox: Outbox) -> None:
    transfers.offer(_agent(connection_id), frame["conversation"], frame["to"], frame.get("note"), outbox)


def _transfer_answer(connection_id: str, frame: Frame, outbox: Outbox) -> None:
    transfers.answer(_agent(connection_id), frame["conversation"], frame["accept"], outbox)


def _away(connection_id: str, frame: Frame, outbox: Outbox) -> None:
    presence.set_shift(_agent(connection_id), None, outbox, away=frame["on"])


def _overview(connection_id: str, frame: Frame, outbox: Outbox) -> None:
    outbox.to([connection_id], supervision.overview(_agent(connection_id), frame.get("cursor")))


def _history(connection_id: str, frame: Frame, outbox: Outbox) -> None:
    outbox.to([connection_id], supervision.history(_agent(connection_id), frame["text"]))


def _context(connection_id: str, frame: Frame, outbox: Outbox) -> None:
    outbox.to([connection_id], visitors.context(_agent(connection_id), frame["conversation"],
                                                     frame.get("cursor")))


def _visitors(connection_id: str, frame: Frame, outbox: Outbox) -> None:
    outbox.to([connection_id], visitors.live(_agent(connection_id), frame.get("cursor")))


def _snippets(connection_id: str, frame: Frame, outbox: Outbox) -> None:
    outbox.to([connection_id], presence.snippets(_agent(connection_id), frame.get("cursor")))


def _visitor(connection_id: str) -> auth.Caller:
    who = presence.caller(connection_id)
    presence.require_visitor(who)
    return who


def _reply(frame: Frame, answer: dict[str, Any]) -> dict[str, Any]:
    """``answer`` with the request's ``ref`` when it gave one (room for it: FRAME_RESERVE)."""
    return answer if frame.ref is None else {**answer, "ref": frame.ref}


def _past(connection_id: str, frame: Frame, outbox: Outbox) -> None:
    who = _visitor(connection_id)
    outbox.to([connection_id], _reply(frame, conversations.past(who, frame.get("cursor"))))


def _past_messages(connection_id: str, frame: Frame, outbox: Outbox) -> None:
    outbox.to([connection_id], _reply(frame, conversations.past_messages(_visitor(connection_id), frame)))


def _transcript(connection_id: str, frame: Frame, outbox: Outbox) -> None:
    transcripts.request(presence.caller(connection_id), frame, outbox)


HANDLERS: dict[str, Handler] = {
    "ping": _ping,
    "hello": _hello,
    "start": _start,
    "send": _send,
    "typing": conversations.typing,
    "read": conversations.read,
    "sync": conversations.sync,
    "close": _close,
    "shift": _shift,
    "accept": _accept,
    "queue": _queue,
    "leave_message": _leave_message,
    "status": _status,
    "page": _page,
    "rules": _rules,
    "invite": _invite,
    "invitation": _invitation,
    "note": _note,
    "notes": _notes,
    "transfer": _transfer,
    "transfer_answer": _transfer_answer,
    "away": _away,
    "overview": _overview,
    "history": _history,
    "visitors": _visitors,
    "context": _context,
    "snippets": _snippets,
    "rate": ratings.rate,
    "transcript": _transcript,
    "continue_by_email": _continue_by_email,
    "handback": _handback,
    "past": _past,
    "past_messages": _past_messages,
}


def handle(connection_id: str, body: str | None, outbox: Outbox, binary: bool = False) -> None:
    """Run one client frame; whatever happens, the sender gets an answer in ``outbox``.
    ``binary``: the client sent a binary WebSocket frame (API Gateway passes it base64
    encoded); the protocol is JSON text, so it is refused without being decoded."""
    ref = None
    try:
        if binary:
            raise ProtocolError(BAD_FRAME, "Frames must be JSON text, not binary.")
        frame = parse(body)
        ref = frame.ref
        telemetry.tag(action=frame.action, conversation=frame.get("conversation"))
        with presence.known(limits.admit(connection_id, frame)):
            HANDLERS[frame.action](connection_id, frame, outbox)
    except ProtocolError as exc:
        echoed = ref if exc.ref is None else exc.ref  # an empty ref is still the client's ref
        outbox.to([connection_id], frames.error(exc.code, exc.message, echoed, exc.retry_after))
    except Exception:
        # DynamoDB throttling past its retries, a timeout, a bug: the frame may be resent
        # safely (sends are idempotent), so say so rather than drop the connection.
        telemetry.count("FrameErrors")
        logger.exception("frame failed")
        outbox.to([connection_id], frames.error(RETRY, "Temporary problem; please resend.", ref))
