"""The ``$default`` route: parse a frame, authorize it, hand it to the domain.

Every action is registered here once, with ``@action(name, roles=...)`` (like Chalice's own
``@app.route``): the one table (``ACTIONS``) of who may send what and which handler runs it.
tests/test_authorization.py reads the roles from it, so a new action is in the authorization
matrix the moment it is registered. Before a handler runs, the frame is counted against its
connection's budget for that kind of action (``limits.admit``; ``send`` is counted inside its
own write), then the caller's role is checked against the table. Every refusal becomes an
``error`` frame for the sender only; the connection stays usable and nothing is changed by a
refused frame.

Actions open to every role do not look the caller up here: ``send`` and the other
conversation actions prove membership inside their own conditional write, which keeps the
message path at two DynamoDB requests.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger

from chalicelib import (
    auth,
    availability,
    config,
    conversations,
    frames,
    handback,
    inbox,
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
from chalicelib.errors import BAD_FRAME, FORBIDDEN, RETRY, Refusal
from chalicelib.fanout import Outbox
from chalicelib.protocol import Frame, parse

logger = Logger(service=config.SERVICE, child=True)

AGENTS = frozenset({auth.AGENT})
VISITORS = frozenset({auth.VISITOR})
ANYONE = frozenset({auth.AGENT, auth.VISITOR})
#: What a caller of another role is told (``forbidden``), per restricted role set.
WRONG_ROLE = {AGENTS: "Only agents can do that.", VISITORS: "Only visitors can do that."}


class Call:
    """One frame being handled: who sent it (looked up once, on first use), what, and where
    the answers go."""

    def __init__(self, connection_id: str, frame: Frame, outbox: Outbox) -> None:
        self.connection_id = connection_id
        self.frame = frame
        self.outbox = outbox

    @functools.cached_property
    def who(self) -> auth.Caller:
        """The caller (one GetItem, or none when the frame budget's write read the item)."""
        return presence.caller(self.connection_id)

    def answer(self, frame: dict[str, Any]) -> None:
        """Send ``frame`` to the sender only."""
        self.outbox.to([self.connection_id], frame)


Handler = Callable[[Call], None]


@dataclass(frozen=True)
class Action:
    """One registered action: who may send it and what runs it."""

    name: str
    roles: frozenset[str]
    handler: Handler

    def authorize(self, call: Call) -> None:
        """Refuse a caller whose role may not send this action (before anything is read or
        written for it; actions open to every role look nobody up)."""
        if self.roles != ANYONE and call.who.role not in self.roles:
            raise Refusal(FORBIDDEN, WRONG_ROLE[self.roles], call.frame.ref)


#: action name -> its roles and handler: the one place that decides who may send what.
ACTIONS: dict[str, Action] = {}


def action(name: str, roles: frozenset[str] = ANYONE) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of ``name``, for callers of ``roles``."""
    if roles != ANYONE and roles not in WRONG_ROLE:
        raise ValueError(f"{name}: no refusal message for roles {sorted(roles)}")

    def register(handler: Handler) -> Handler:
        if name in ACTIONS:
            raise ValueError(f"action {name!r} registered twice")
        ACTIONS[name] = Action(name, roles, handler)
        return handler

    return register


def _reply(frame: Frame, answer: dict[str, Any]) -> dict[str, Any]:
    """``answer`` with the request's ``ref`` when it gave one (room for it: FRAME_RESERVE)."""
    return answer if frame.ref is None else {**answer, "ref": frame.ref}


# --- anyone -------------------------------------------------------------------------------

@action("ping")
def _ping(call: Call) -> None:
    call.answer(frames.pong(call.frame.ref))


@action("hello")
def _hello(call: Call) -> None:
    presence.greet(call.who, call.outbox)


@action("status")
def _status(call: Call) -> None:
    call.answer(availability.status(sites.get(call.who.site)).frame())


@action("send")
def _send(call: Call) -> None:
    conversations.send(call.connection_id, call.frame, call.outbox)


@action("typing")
def _typing(call: Call) -> None:
    conversations.typing(call.connection_id, call.frame, call.outbox)


@action("read")
def _read(call: Call) -> None:
    conversations.read(call.connection_id, call.frame, call.outbox)


@action("sync")
def _sync(call: Call) -> None:
    conversations.sync(call.connection_id, call.frame, call.outbox)


@action("close")
def _close(call: Call) -> None:
    # The closer's network counts a transcript against the mail budgets (one read, only then).
    network = presence.connection(call.connection_id).ip_hash if call.frame.get("transcript") else None
    conversations.close(call.connection_id, call.frame, call.outbox, network)


@action("rate")
def _rate(call: Call) -> None:
    ratings.rate(call.connection_id, call.frame, call.outbox)  # the chat's own visitor only


@action("transcript")
def _transcript(call: Call) -> None:
    transcripts.request(call.who, call.frame, call.outbox)


# --- visitors -----------------------------------------------------------------------------

@action("start", roles=VISITORS)
def _start(call: Call) -> None:
    conversations.start(call.who, call.outbox, name=call.frame.get("name"), email=call.frame.get("email"),
                        first=conversations.first_line(call.frame))


@action("continue_by_email", roles=VISITORS)
def _continue_by_email(call: Call) -> None:
    unattended.continue_by_email(call.who, call.frame, call.outbox, call.who.ip_hash)


@action("leave_message", roles=VISITORS)
def _leave_message(call: Call) -> None:
    who = call.who
    # A refusal here is the same type as any frame's: handle() answers it with the frame's ref.
    message_id = offline.leave(who.site, call.frame.body, visitor_id=who.subject, ip_hash=who.ip_hash)
    call.answer(frames.message_left(message_id, call.frame.ref))
    offline.dispatch(message_id)


@action("page", roles=VISITORS)
def _page(call: Call) -> None:
    visitors.record_page(call.who, call.frame, call.outbox)


@action("rules", roles=VISITORS)
def _rules(call: Call) -> None:
    visitors.recheck(call.who, call.outbox)


@action("invitation", roles=VISITORS)
def _invitation(call: Call) -> None:
    visitors.answer(call.who, call.frame, call.outbox)


@action("past", roles=VISITORS)
def _past(call: Call) -> None:
    call.answer(_reply(call.frame, conversations.past(call.who, call.frame.get("cursor"))))


@action("past_messages", roles=VISITORS)
def _past_messages(call: Call) -> None:
    call.answer(_reply(call.frame, conversations.past_messages(call.who, call.frame)))


# --- agents -------------------------------------------------------------------------------

@action("shift", roles=AGENTS)
def _shift(call: Call) -> None:
    presence.set_shift(call.who, call.frame["on"], call.outbox)


@action("away", roles=AGENTS)
def _away(call: Call) -> None:
    presence.set_shift(call.who, None, call.outbox, away=call.frame["on"])


@action("accept", roles=AGENTS)
def _accept(call: Call) -> None:
    routing.accept(call.who.subject, call.frame["conversation"], call.outbox)


@action("queue", roles=AGENTS)
def _queue(call: Call) -> None:
    call.answer(routing.queue_listing(routing.waiting(call.who.site), call.frame.get("cursor")))


@action("inbox", roles=AGENTS)
def _inbox(call: Call) -> None:
    call.answer(inbox.listing(call.who.site, call.frame.get("cursor")))


@action("take", roles=AGENTS)
def _take(call: Call) -> None:
    inbox.take(call.who, call.frame["conversation"], call.outbox)


@action("handback", roles=AGENTS)
def _handback(call: Call) -> None:
    handback.handback(call.who, call.frame["conversation"], call.outbox)


@action("invite", roles=AGENTS)
def _invite(call: Call) -> None:
    invitation = visitors.invite(call.who, call.frame["visitor"], call.frame["text"], call.outbox)
    call.answer(frames.invited(invitation, call.frame["visitor"], call.frame.ref))


@action("note", roles=AGENTS)
def _note(call: Call) -> None:
    notes.add(call.who, call.frame["conversation"], call.frame["text"], call.outbox)


@action("notes", roles=AGENTS)
def _notes(call: Call) -> None:
    call.answer(notes.history(call.who, call.frame["conversation"], call.frame.get("cursor")))


@action("transfer", roles=AGENTS)
def _transfer(call: Call) -> None:
    transfers.offer(call.who, call.frame["conversation"], call.frame["to"], call.frame.get("note"),
                    call.outbox)


@action("transfer_answer", roles=AGENTS)
def _transfer_answer(call: Call) -> None:
    transfers.answer(call.who, call.frame["conversation"], call.frame["accept"], call.outbox)


@action("overview", roles=AGENTS)
def _overview(call: Call) -> None:
    call.answer(supervision.overview(call.who, call.frame.get("cursor")))


@action("history", roles=AGENTS)
def _history(call: Call) -> None:
    call.answer(supervision.history(call.who, call.frame["text"]))


@action("context", roles=AGENTS)
def _context(call: Call) -> None:
    call.answer(visitors.context(call.who, call.frame["conversation"], call.frame.get("cursor")))


@action("visitors", roles=AGENTS)
def _visitors(call: Call) -> None:
    call.answer(visitors.live(call.who, call.frame.get("cursor")))


@action("snippets", roles=AGENTS)
def _snippets(call: Call) -> None:
    call.answer(presence.snippets(call.who, call.frame.get("cursor")))


def handle(connection_id: str, body: str | None, outbox: Outbox, binary: bool = False) -> None:
    """Run one client frame; whatever happens, the sender gets an answer in ``outbox``.
    ``binary``: the client sent a binary WebSocket frame (API Gateway passes it base64
    encoded); the protocol is JSON text, so it is refused without being decoded."""
    ref = None
    try:
        if binary:
            raise Refusal(BAD_FRAME, "Frames must be JSON text, not binary.")
        frame = parse(body)
        ref = frame.ref
        telemetry.tag(action=frame.action, conversation=frame.get("conversation"))
        with presence.known(limits.admit(connection_id, frame)):
            registered = ACTIONS[frame.action]
            call = Call(connection_id, frame, outbox)
            registered.authorize(call)
            registered.handler(call)
    except Refusal as exc:
        echoed = ref if exc.ref is None else exc.ref  # an empty ref is still the client's ref
        outbox.to([connection_id], frames.error(exc.code, exc.message, echoed, exc.retry_after))
    except Exception:
        # DynamoDB throttling past its retries, a timeout, a bug: the frame may be resent
        # safely (sends are idempotent), so say so rather than drop the connection.
        telemetry.count("FrameErrors")
        logger.exception("frame failed")
        outbox.to([connection_id], frames.error(RETRY, "Temporary problem; please resend.", ref))
