"""Conversations: start, messages (the hot path), typing, read markers, resume, close.

The message path is two DynamoDB requests and never reads first:

1. ``UpdateItem`` on the conversation: only if the sender's connection is a participant, the
   conversation is open and the client counter is new for that client; it increments
   ``seq`` and returns the participants (``ALL_NEW``), or on refusal the old item
   (``ALL_OLD``), which says why: not a participant, closed, or a resend.
2. ``PutItem`` of the message at ``MSG#<seq>``, only if that key is free.

Then the ack goes to the sender and the message to every other participant connection.
A resend (same client id and counter) fails step 1, learns the seq its first attempt got,
and repeats step 2: if the first attempt was stored it is only acknowledged again; if it was
lost between the steps (a crash) it is stored and delivered now. Either way it is stored
and delivered exactly once.

Sequence numbers increase strictly per conversation. Clients send one message at a time
per client id (wait for the ack), which is what makes a resend always the latest counter.

Flood control rides on the same ``UpdateItem`` (no extra request): each connection has
``MESSAGES_PER_SECOND`` time slots on the conversation item (top-level attributes
``rl#<connection>#<n>``), and a message takes slot ``counter mod N`` only if that slot was
last used over a second ago. Any one second therefore holds at most N messages per
connection, whatever counters a client picks; an honest client (counters 1, 2, 3...) gets
exactly "N in any second". The refused write returns the old item, which tells a flood
(``rate_limited``, retry after a second) from the other refusals; a resend of a stored
message is recognised before that and acknowledged as always.

Bounded, in the same write: the dedupe and figure state is kept per client instance (five
map entries each), and client ids are the client's choice, so a conversation takes at most
``MAX_CLIENTS`` of them from anyone and ``AGENT_CLIENTS`` more from agents only (checked
with ``size`` in the condition, so a visitor inventing ids can fill only their own share and
never lock the agent out). An honest tab keeps one id for its life; a client that has used
up the share is refused (``conflict``) and its resends of what it already sent still work.
No client's state is ever evicted, so every resend stays idempotent. See models.py for the
item's worst case.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from pynamodb.expressions.condition import Condition, size
from pynamodb.expressions.operand import Path
from pynamodb.expressions.update import Action

from chalicelib import (
    auth,
    availability,
    clock,
    config,
    frames,
    lifecycle,
    limits,
    mail,
    queue,
    routing,
    sites,
    stats,
    telemetry,
    transcripts,
    unattended,
    validate,
)
from chalicelib.auth import Caller
from chalicelib.errors import BAD_FRAME, CLOSED, CONFLICT, FORBIDDEN, RATE_LIMITED, RETRY, STALE, Refusal
from chalicelib.fanout import Outbox
from chalicelib.protocol import MAX_SYNC_PAGE, Frame
from chalicelib.store import (
    META,
    ConversationModel,
    MessageModel,
    SiteModel,
    VisitorModel,
    conversation_key,
    email_key,
    expired,
    get_or_none,
    keep_until,
    keys,
    message_sk,
    plain_map,
    put_or_old,
    update_into_maps,
    update_or_old,
    visitor_key,
)

PREVIEW_CHARS = 140
RATE_WINDOW_MS = 1000  # the flood-control window of MESSAGES_PER_SECOND
MAX_CLIENTS = 32  # client instances any participant may add to a conversation
AGENT_CLIENTS = 32  # and beyond that, agents' only: a visitor cannot crowd them out
PAST_KEPT = 20  # a visitor's closed conversations listed on their item, newest last
SYSTEM = "system"  # the role of messages the product writes itself
NOT_PARTICIPANT = "You are not a participant in that conversation."


class Opening(NamedTuple):
    """The agent's line a conversation opens with (an accepted invitation): stored as message
    seq 1, so both sides, resume and sync show it, and the chat's preview is never empty."""

    text: str
    author: str  # the inviting agent's id, or ``TEAM`` for a rule's invitation
    name: str  # shown as the sender: the agent's name, or the site's team name
    ref: str  # the invitation id: the message's id is ``invite:<ref>``


TEAM = "team"  # the author of an opening line no single agent wrote (a rule's invitation)


def first_line(frame: Frame) -> Frame | None:
    """The ``send`` a ``start`` carries (its ``text`` and ``id``), or None; one without the
    other is refused before anything is written."""
    text, message_id = frame.get("text"), frame.get("id")
    if text is None and message_id is None:
        return None
    if text is None or message_id is None:
        raise Refusal(BAD_FRAME, '"text" and "id" go together: the first message and its id.',
                      frame.ref)
    return Frame("send", {"conversation": "", "text": text, "id": message_id}, message_id)


def start(who: Caller, outbox: Outbox, *, name: str | None = None, email: str | None = None,
          route: bool = True, opening: Opening | None = None,
          first: Frame | None = None) -> ConversationModel:
    """Open the visitor's conversation (or return the one already open) and route it. The
    pre-chat answers (name, email) go on the conversation: the agent sees them, and an email
    lets a later reply reach a visitor who has left. ``opening``: the agent's first line,
    written (message first, then the conversation at seq 1) before anyone is told.
    ``first``: the visitor's first line (``first_line``), stored like any ``send`` (acked,
    idempotent on its id) before routing, so the ``queue`` agents get shows it: sent as a
    ``send`` after the start, it landed after that frame was built and the waiting list said
    "No message yet" until something else moved the line."""
    if email is not None:
        email = validate.email_address(email)
        if email is None:
            raise Refusal(BAD_FRAME, '"email" must be a valid email address.')
    V, C = VisitorModel, ConversationModel
    conv_id = auth.new_id()
    now = clock.now_ms()
    claimed, visitor = update_or_old(V, visitor_key(who.subject),
                                     [V.conv.set(conv_id), V.ttl.set(keep_until(now))],
                                     V.conv.does_not_exist())
    if not claimed:
        if visitor is None or not visitor.conv:
            raise Refusal(FORBIDDEN, "This connection is not registered; reconnect.")
        existing = open_conversation(visitor)
        if existing is None:  # an earlier start died between its two writes; try again
            return start(who, outbox, name=name, email=email, route=route, opening=opening,
                         first=first)
        outbox.to([who.connection_id], frames.conversation(existing.id, existing.summary()))
        if first is not None:  # a resent start (lost answer): its line is acked, stored once
            _send_first(who, existing.id, first, outbox)
        return existing
    assert visitor is not None
    _count_start(who, conv_id)
    q_pk, q_sk = routing.queue_keys(who.site, now, conv_id)
    tabs = sorted(visitor.conns or ()) or [who.connection_id]
    # Started while nobody could answer (outside hours, or nobody on shift): an after-hours
    # chat in the figures, answered whenever an agent first writes.
    settings = sites.get(who.site)
    after_hours = not availability.status(settings, now).online
    conv = C(conversation_key(conv_id), site=who.site, visitor_id=who.subject,
             status=routing.QUEUED, seq=0, conns={c: who.tag for c in tabs}, created_at=now, v_on_at=now,
             queued_at=now, q_pk=q_pk, q_sk=q_sk, visitor_name=(name or "").strip() or None,
             email=email, email_key=email_key(who.site, email) if email else None,
             page=visitor.current_page(), ttl=keep_until(now), after_hours=after_hours or None)
    opened = _open_with(conv, opening, now) if opening is not None else None
    conv.save()
    telemetry.tag(conversation=conv.id)
    telemetry.logger.info("conversation started")
    outbox.to(tabs, frames.conversation(conv.id, conv.summary()))
    if opened is not None:
        outbox.to(tabs, message_frame(conv.id, opened))
    if first is not None:
        _send_first(who, conv.id, first, outbox)
    if route:
        _route_new(conv, settings, after_hours, outbox)
    return conv


def _route_new(conv: ConversationModel, settings: SiteModel, after_hours: bool, outbox: Outbox) -> None:
    """Hand a new conversation to an agent, or tell its visitor why they wait."""
    if routing.drain(conv.site, outbox, joined=conv.id):
        return
    # Waiting: make sure the site is known to the minute timer, which mails digests of
    # chats nobody can answer (a site nobody configured has no settings item yet).
    availability.refresh(conv.site, outbox)
    if after_hours and settings.online is False:
        # Nobody to answer: say so now, with the offer to go on by email. (Had the stored
        # status still said online, the refresh just flipped it and told the whole line.)
        unattended.tell(conv, settings, outbox)


def _count_start(who: Caller, conv_id: str) -> None:
    """Count a new conversation against the visitor's and the network's hourly starts; over
    either, give the visitor's claim on ``conv_id`` back and refuse (a refused start leaves the
    visitor as it found them)."""
    per_visitor = config.settings().conversations_per_visitor_per_hour
    per_network = config.settings().conversations_per_ip_per_hour
    if not limits.STARTS_PER_VISITOR.allow(who.subject, per_visitor) or (
            per_network and who.ip_hash
            and not limits.STARTS_PER_NETWORK.allow(who.ip_hash, per_network)):
        V = VisitorModel
        update_or_old(V, visitor_key(who.subject), [V.conv.remove()], V.conv == conv_id)
        raise Refusal(RATE_LIMITED, "You have started several chats in a short time; "
                                    "please try again later.",
                      retry_after=limits.STARTS_PER_VISITOR.retry_after())


def _open_with(conv: ConversationModel, opening: Opening, now: int) -> MessageModel:
    """Store the agent's invitation as seq 1 of ``conv`` (not saved yet), before the
    conversation: a crash between the two writes leaves no gap at seq 1. Not counted in the
    figures (``message_counts``): an invitation is not a response to anything."""
    opened = MessageModel(conv.pk, message_sk(1), seq=1, role=auth.AGENT, author=opening.author,
                          name=opening.name, text=opening.text, cmid=f"invite:{opening.ref}",
                          ts=now, ttl=keep_until(now))
    opened.save()
    conv.seq, conv.preview, conv.last_at = 1, opening.text[:PREVIEW_CHARS], now
    conv.last_by = f"a:{opening.author}"
    return opened


def _send_first(who: Caller, conv_id: str, first: Frame, outbox: Outbox) -> None:
    """The start's first line, as the ``send`` it stands for. A refusal (a flood slot, say)
    goes to the visitor as that send's error; the chat is open either way."""
    try:
        send(who.connection_id, Frame("send", {**first.body, "conversation": conv_id}, first.ref), outbox)
    except Refusal as refused:
        outbox.to([who.connection_id],
                  frames.error(refused.code, refused.message, first.ref, refused.retry_after))


def open_conversation(visitor: VisitorModel) -> ConversationModel | None:
    """The visitor's open conversation. A pointer to one that was never written (a start
    that died between claiming and writing) is cleared, so the visitor is never stranded; so
    is one past its retention that DynamoDB has not deleted yet."""
    if not visitor.conv:
        return None
    conv = get_or_none(ConversationModel, conversation_key(visitor.conv), consistent_read=True)
    if conv is None or expired(conv, clock.now_ms()):
        V = VisitorModel
        update_or_old(V, visitor.pk, [V.conv.remove()], V.conv == visitor.conv)
        return None
    return conv


def _client_counter(message_id: str) -> tuple[str, int]:
    client, counter = message_id.split(":")
    return client, int(counter)


def _sender(conv: ConversationModel, connection_id: str) -> tuple[str, str, str | None]:
    tag = conv.connections()[connection_id]
    role = auth.AGENT if tag.startswith("a:") else auth.VISITOR
    return role, tag[2:], (conv.agent_name if role == auth.AGENT else None)


def rate_slots(connection_id: str) -> list[Path]:
    """The flood-control slots of one connection (removed when it leaves a conversation)."""
    return [Path([f"rl#{connection_id}#{n}"]) for n in range(max(config.settings().messages_per_second, 0))]


def _flood_control(connection_id: str, counter: int, now: int) -> tuple[list[Action], Condition | None]:
    """The write and the check of this message's time slot (see the module docstring). A slot
    from the future (a server clock stepped back) counts as free rather than blocking."""
    slots = rate_slots(connection_id)
    if not slots:
        return [], None
    slot = slots[counter % len(slots)]
    return [slot.set(now)], (slot.does_not_exist() | (slot <= now - RATE_WINDOW_MS)
                             | (slot > now + RATE_WINDOW_MS))


def send(connection_id: str, frame: Frame, outbox: Outbox) -> int:
    """Store a message and deliver it; returns its seq. Two DynamoDB requests."""
    conv_id, text, message_id = frame["conversation"], frame["text"], frame["id"]
    client, counter = _client_counter(message_id)
    key = conversation_key(conv_id)
    now = clock.now_ms()
    flood_actions, flood_check = _flood_control(connection_id, counter, now)
    actions, condition = _count_message(connection_id, client, counter, text, now)
    if flood_check is not None:
        condition = condition & flood_check
    # A conversation begun before the figures existed has no ``mn``/``mf`` maps to write into.
    C = ConversationModel
    ok, conv = update_into_maps(C, key, [*actions, *flood_actions], condition,
                                [C.message_counts, C.first_message_at])
    if conv is None or connection_id not in conv.connections():
        raise Refusal(FORBIDDEN, NOT_PARTICIPANT, message_id)
    seq = int(conv.seq) if ok else _resent_seq(conv, connection_id, client, counter, message_id,
                                               flooded=flood_check is not None)
    role, author, name = _sender(conv, connection_id)
    telemetry.tag(site=conv.site, agent=author if role == auth.AGENT else None)
    attempt = auth.new_id(6)
    message = MessageModel(key, message_sk(seq), seq=seq, role=role, author=author, name=name,
                           text=text, cmid=message_id, ts=now, attempt=attempt, ttl=keep_until(now))
    fresh, stored = put_or_old(message, MessageModel.sk.does_not_exist())
    if stored is not None:
        # Already stored by an earlier attempt (or by this very call: DynamoDB applied the
        # PutItem but its answer was lost and botocore retried it). Stored once, acknowledged
        # again. The same id with other text is not a resend but a client bug (a duplicated tab).
        if stored.text != text:
            raise Refusal(CONFLICT, "This message id was already used for another message.",
                          message_id)
        now = int(stored.ts)
        fresh = stored.attempt == attempt
        message = stored
    if role == auth.AGENT and conv.email and (conv.by_email or not conv.connections_of("v:")):
        # The visitor left (an after-hours conversation), or chose to continue by email
        # (``by_email``, on the item this write returned): the reply goes by email. Queued
        # before the ack and again on every resend, so a failed enqueue is retried with the
        # message; the email itself goes out once (its key is the message).
        queue.enqueue(mail.ReplyJob(conv_id, seq))
    outbox.to([connection_id], frames.ack(message_id, conv_id, seq, now))
    if fresh:
        telemetry.count("MessagesSent", side=role)
    # Delivered on every attempt, resends included: the server cannot tell a lost ack (the
    # others have it) from an invocation that died after storing and before its fan-out (nobody
    # has it), and the second must not lose the message. A repeat carries the same seq and id,
    # and every client keeps one message per seq, so nobody sees it twice.
    others = [c for c in conv.connections() if c != connection_id]
    outbox.to(others, message_frame(conv_id, message))
    return seq


def _count_message(connection_id: str, client: str, counter: int, text: str,
                   now: int) -> tuple[list[Action], Condition]:
    """The conversation's half of a message: its update and the condition it is made under.

    A client id belongs to the participant who first used it (``client_owners`` records
    their tag, copied from the conns map inside the write), so nobody can jam another's
    counter. The same write counts the message and keeps its client's first-message time
    (figures: messages per side, first response), so none of them costs a request of its own.
    """
    C = ConversationModel
    counters, owners = C.client_counters, C.client_owners
    counts, firsts = C.message_counts, C.first_message_at
    actions = [C.seq.set(C.seq + 1), counters[client].set(counter), C.client_seqs[client].set(C.seq + 1),
               owners[client].set(C.conns[connection_id]),
               C.preview.set(C.preview | text[:PREVIEW_CHARS]), C.last_at.set(now),
               C.last_by.set(C.conns[connection_id]), C.ttl.set(keep_until(now)),
               counts[client].set((counts[client] | 0) + 1), firsts[client].set(firsts[client] | now)]
    condition = (C.conns[connection_id].exists() & C.status.is_in(*routing.OPEN_STATES)
                 & (owners[client].does_not_exist() | (owners[client] == C.conns[connection_id]))
                 & (counters[client].does_not_exist() | (counters[client] < counter))
                 & (counters[client].exists() | (size(counters) < MAX_CLIENTS)
                    | (C.conns[connection_id].startswith("a:")
                       & (size(counters) < MAX_CLIENTS + AGENT_CLIENTS))))
    return actions, condition


def _resent_seq(conv: ConversationModel, connection_id: str, client: str, counter: int,
                message_id: str, *, flooded: bool) -> int:
    """Why the conversation's write failed, read from the item it returned: a resend gets its
    message's seq back; anything else is refused with the reason (no extra request)."""
    sent = conv.client_state(client)
    owner = conv.client_owner(client)
    if owner is not None and owner != conv.connections()[connection_id]:
        raise Refusal(CONFLICT, "That client id belongs to another participant; pick a "
                                "new random one.", message_id)
    if sent is not None and sent[0] == counter:
        return sent[1]  # a resend: same message, same seq
    if conv.status not in routing.OPEN_STATES:
        raise Refusal(CLOSED, "This conversation is closed.", message_id)
    if sent is not None and counter < sent[0]:
        raise Refusal(STALE, "An older message id than one already sent; use a new id.",
                      message_id)
    if sent is None and _clients_full(conv, connection_id):
        raise Refusal(CONFLICT, "Too many client ids in this conversation; keep using "
                                "the one you have.", message_id)
    if flooded:  # every other condition held: it was the time slot
        raise Refusal(RATE_LIMITED, "You are sending messages too fast; this one was not "
                      "sent. Send it again in a moment.", message_id,
                      retry_after=RATE_WINDOW_MS // 1000)
    raise Refusal(RETRY, "Temporary problem; please resend.", message_id)  # cannot happen


def _clients_full(conv: ConversationModel, connection_id: str) -> bool:
    """Whether a new client id would exceed the sender's share (see the module docstring)."""
    used = len(plain_map(conv.client_counters))
    agent = conv.connections()[connection_id].startswith("a:")
    return used >= MAX_CLIENTS + (AGENT_CLIENTS if agent else 0)


def forget_open(visitor_id: str, conv_id: str, now: int) -> None:
    """The visitor's chat is over: clear their pointer and remember it among their last
    ``PAST_KEPT`` conversations (older ones are still found by the ``by_visitor`` index, so
    the list is only what an agent is shown first, and never grows past its budget)."""
    V = VisitorModel
    done = [V.conv.remove(), V.ttl.set(keep_until(now))]
    ok, old = update_or_old(V, visitor_key(visitor_id), [*done, V.past.set((V.past | []).append([conv_id]))],
                            (V.conv == conv_id) & (V.past.does_not_exist() | (size(V.past) < PAST_KEPT)))
    if not ok and old is not None and old.conv == conv_id:  # full: drop the oldest
        kept = [*[str(p) for p in old.past or []][-(PAST_KEPT - 1):], conv_id]
        update_or_old(V, visitor_key(visitor_id), [*done, V.past.set(kept)], V.conv == conv_id)


def post_system(conv: ConversationModel, text: str, outbox: Outbox,
                condition: Any = None, count: Any = None) -> int | None:
    """Store and deliver a message from the system itself (holding message, transfer notice):
    the same two writes as a person's message, so it has its own seq and nobody misses it.
    ``count`` is an update action that records it in the figures (in the same write).
    It never touches ``preview``: what agents read of a chat in their lists is a person's
    line, not "Your agent is looking into your question".
    Returns the seq, or None when ``condition`` no longer held."""
    C = ConversationModel
    guard = C.status.is_in(*routing.OPEN_STATES)
    extra = [] if count is None else [count]
    now = clock.now_ms()
    ok, fresh = update_or_old(C, conv.pk, [C.seq.set(C.seq + 1), C.last_at.set(now),
                                           C.last_by.set("s:system"), C.ttl.set(keep_until(now)),
                                           *extra],
                              guard if condition is None else guard & condition)
    if not ok or fresh is None:
        return None
    seq = int(fresh.seq)
    message = MessageModel(conv.pk, message_sk(seq), seq=seq, role=SYSTEM, author="system", name=None,
                           text=text, cmid=f"system:{seq}", ts=now, ttl=keep_until(now))
    message.save()
    outbox.to(fresh.connections(), message_frame(fresh.id, message))
    return seq


EMAIL_CLIENT = "email"  # the client instance every emailed visitor line counts under (figures)
EMAIL_TAG = "v:email"  # its owner tag: a visitor's line (stats.messages_by_side), no connection
MAX_EMAIL_LINES = 200  # email replies one conversation takes (the ``em`` map's bound: ~5 KB)


def receive(conv_id: str, text: str, *, message_id: str, channel: str, original: str | None,
            sender: str, outbox: Outbox) -> str:
    """Store a visitor line that came by another channel (an email reply) and deliver it live.

    The same two requests as ``send``: one conditional ``UpdateItem`` on the conversation
    (the sender is the conversation's address, this ``message_id`` is new, seq + 1, figures
    as a visitor line under ``EMAIL_CLIENT``) and one conditional ``PutItem`` of the message.
    ``message_id`` (a short hash of the email's Message-ID) is remembered on the
    conversation with its seq, so a redelivered email finds its seq and only repeats the
    put: stored once even after a crash between the two writes. No read first: the sender
    check rides on the write's condition and a refusal returns the old item, which says why.

    An answer to a conversation closed before it arrived puts it back in the site's inbox
    (``lifecycle.reopen``: one more conditional write, only then).

    Returns "stored", "duplicate", "mismatch" (not the conversation's address), "gone" (no
    such conversation) or "full" (``MAX_EMAIL_LINES`` reached)."""
    C = ConversationModel
    key, now = conversation_key(conv_id), clock.now_ms()
    counts, firsts, seen = C.message_counts, C.first_message_at, C.email_lines
    actions = [C.seq.set(C.seq + 1), seen[message_id].set(C.seq + 1),
               C.client_owners[EMAIL_CLIENT].set(EMAIL_TAG),
               C.preview.set(C.preview | text[:PREVIEW_CHARS]), C.last_at.set(now),
               C.last_by.set(EMAIL_TAG), C.ttl.set(keep_until(now)),
               counts[EMAIL_CLIENT].set((counts[EMAIL_CLIENT] | 0) + 1),
               firsts[EMAIL_CLIENT].set(firsts[EMAIL_CLIENT] | now)]
    condition = (C.pk.exists() & (C.email == sender) & seen[message_id].does_not_exist()
                 & (seen.does_not_exist() | (size(seen) < MAX_EMAIL_LINES)))
    ok, conv = update_into_maps(C, key, actions, condition,
                                [C.message_counts, C.first_message_at, C.email_lines])
    if conv is None:
        return "gone"
    if conv.email != sender:
        return "mismatch"
    if ok:
        seq = int(conv.seq)
    else:
        earlier = plain_map(conv.email_lines or {}).get(message_id)
        if earlier is None:
            return "full"
        seq = int(earlier)
    telemetry.tag(conversation=conv_id, site=conv.site)
    message = MessageModel(key, message_sk(seq), seq=seq, role=auth.VISITOR, author=conv.visitor_id,
                           name=conv.visitor_name, text=text, cmid=f"{channel}:{message_id}", ts=now,
                           channel=channel, original=original, ttl=keep_until(now))
    fresh, stored = put_or_old(message, MessageModel.sk.does_not_exist())
    if fresh:
        telemetry.count("MessagesSent", side=auth.VISITOR)
    line = stored or message
    if conv.status == lifecycle.CLOSED and conv.closed_at is not None and int(conv.closed_at) <= int(line.ts):
        # An answer to a closed conversation: back in the inbox, or nobody would see it. A
        # transition, not part of the line's two requests: only a line after a close pays it;
        # after the line's writes, so a redelivery after a crash still reopens it.
        lifecycle.reopen(conv, int(line.ts))
    # Delivered on every attempt, like ``send``: a redelivery after a crash before the fan-out
    # must not leave the console without the line; clients keep one message per seq.
    outbox.to(list(conv.connections()), message_frame(conv_id, line))
    return "stored" if ok else "duplicate"


def message_frame(conv_id: str, message: MessageModel) -> dict[str, Any]:
    """A stored message as clients receive it (live or on resume): one shape for both."""
    return frames.message(conv_id, int(message.seq), message.cmid,
                          {"role": message.role, "name": message.name}, message.text, int(message.ts),
                          message.channel)


def _participant(conv_id: str, connection_id: str) -> ConversationModel:
    """The conversation, if this connection takes part in it; otherwise a refusal that does
    not reveal whether the conversation exists."""
    conv = get_or_none(ConversationModel, conversation_key(conv_id), consistent_read=True)
    if conv is None:
        raise Refusal(FORBIDDEN, NOT_PARTICIPANT)
    if connection_id not in conv.connections():
        raise Refusal(FORBIDDEN, NOT_PARTICIPANT)
    return conv


def _other_side(conv: ConversationModel, connection_id: str) -> list[str]:
    own = conv.connections()[connection_id][:2]
    return [c for c, tag in conv.connections().items() if not tag.startswith(own)]


def typing(connection_id: str, frame: Frame, outbox: Outbox) -> None:
    """Relay a typing indicator to the other side; nothing is stored."""
    conv = _participant(frame["conversation"], connection_id)
    role, _, _ = _sender(conv, connection_id)
    outbox.to(_other_side(conv, connection_id),
              frames.typing(conv.id, role, frame["on"]))


def read(connection_id: str, frame: Frame, outbox: Outbox) -> None:
    """Record how far one side has read and tell the other side. Markers only move forward;
    the agent reading an assigned conversation makes it active."""
    C = ConversationModel
    conv = _participant(frame["conversation"], connection_id)
    role, _, _ = _sender(conv, connection_id)
    seq = min(int(frame["seq"]), int(conv.seq or 0))
    actions = [C.reads[role].set(seq)]
    if role == auth.AGENT and conv.status == routing.ASSIGNED:
        actions.append(C.status.set(routing.ACTIVE))
    ok, _ = update_or_old(C, conv.pk, actions,
                          C.conns[connection_id].exists() & C.status.is_in(*routing.OPEN_STATES)
                          & (C.reads[role].does_not_exist() | (C.reads[role] < seq)))
    if ok:
        outbox.to(_other_side(conv, connection_id),
                  frames.read(conv.id, role, seq))


def sync(connection_id: str, frame: Frame, outbox: Outbox) -> None:
    """Everything after ``after``, in order: how a reconnecting client catches up."""
    conv = _participant(frame["conversation"], connection_id)
    limit = int(frame.get("limit") or MAX_SYNC_PAGE)
    outbox.to([connection_id], _messages_page(conv, int(frame["after"]), limit))


def _messages_page(conv: ConversationModel, after: int, limit: int) -> dict[str, Any]:
    """The ``messages`` frame: the messages after ``after``, in order, one bounded page (the
    one shape for ``sync`` and ``past_messages``)."""
    items = list(MessageModel.query(conv.pk, MessageModel.sk.between(
        message_sk(after + 1), message_sk(10**12 - 1)), consistent_read=True, limit=limit + 1))
    now = clock.now_ms()
    items = [m for m in items if not expired(m, now)]  # past retention, not yet deleted
    # One frame of at most FRAME_BUDGET bytes: 200 long emoji messages are megabytes. The
    # client asks again from the last seq it got while ``more`` (so does a cut page).
    return frames.messages(conv.id, after, conv.summary(),
                           [message_frame(conv.id, m) for m in items[:limit]], len(items) > limit)


#: Earlier conversations read for one ``past`` page (one BatchGetItem): the visitor item keeps
#: at most ``PAST_KEPT`` ids, so a returning visitor's whole list is two pages at most.
PAST_PAGE = 10
NOT_YOURS = "That is not one of your conversations."


def past(who: Caller, cursor: str | None = None) -> dict[str, Any]:
    """The ``past`` frame: the visitor's own earlier conversations (summaries), newest first,
    a page at a time. Only what their token's visitor id lists on their own item and what
    belongs to them (site and visitor checked on each), never anything past retention.
    ``cursor`` is the id of the last conversation of the page before; ``next`` the one to
    ask from, null at the end."""
    visitor = get_or_none(VisitorModel, visitor_key(who.subject), consistent_read=True)
    if visitor is None:
        visitor = VisitorModel(visitor_key(who.subject))
    ids = [str(p) for p in visitor.past or []][::-1]
    start = ids.index(cursor) + 1 if cursor in ids else (len(ids) if cursor else 0)
    wanted = ids[start:start + PAST_PAGE]
    now = clock.now_ms()
    keys = [(conversation_key(i), META) for i in wanted]
    found = {c.id: c for c in ConversationModel.batch_get(keys)} if keys else {}
    items = [found[i].summary() for i in wanted
             if i in found and _owned(who, found[i]) and not expired(found[i], now)]
    more = start + len(wanted) < len(ids)
    return frames.past(items, wanted[-1] if more and wanted else None)


def _owned(who: Caller, conv: ConversationModel) -> bool:
    return conv.visitor_id == who.subject and conv.site == who.site


def past_messages(who: Caller, frame: Frame) -> dict[str, Any]:
    """One of the visitor's own conversations, read only (after a reload, from the list of
    earlier ones): a ``messages`` page as ``sync`` gives, authorized by the visitor id of the
    caller's token, not by knowing the id (a refusal does not say whether it exists)."""
    conv = get_or_none(ConversationModel, conversation_key(frame["conversation"]), consistent_read=True)
    if conv is None:
        raise Refusal(FORBIDDEN, NOT_YOURS, frame.ref)
    if not _owned(who, conv) or expired(conv, clock.now_ms()):
        raise Refusal(FORBIDDEN, NOT_YOURS, frame.ref)
    return _messages_page(conv, int(frame.get("after") or 0), MAX_SYNC_PAGE)


def close(connection_id: str, frame: Frame, outbox: Outbox, network: str | None = None) -> ConversationModel:
    """Either side ends the conversation: capacity returns to the agent, the queue moves.
    ``network`` (the closer's address hash) counts a transcript asked for against the mail budgets."""
    C = ConversationModel
    conv_id = frame["conversation"]
    now = clock.now_ms()
    ok, conv = update_or_old(
        C, conversation_key(conv_id), lifecycle.closing(now),
        C.conns[connection_id].exists() & C.status.is_in(*routing.OPEN_STATES))
    if conv is None or connection_id not in conv.connections():
        raise Refusal(FORBIDDEN, NOT_PARTICIPANT, frame.ref)
    if not ok:
        raise Refusal(CONFLICT, "This conversation is already closed.", frame.ref)
    role, _, _ = _sender(conv, connection_id)
    # Closed chats move to the site's history: the other partition of the same sparse index.
    # The same write says why it closed (the closer's side, known from the first write's
    # answer): an agent resolved it (or closed what went on by email), the visitor ended it.
    conv.reason = lifecycle.close_reason(role, bool(conv.by_email))
    C(conv.pk).update(actions=[C.q_pk.set(keys.history_key(conv.site)),
                               C.q_sk.set(keys.timed_sk(now, conv_id)), C.reason.set(conv.reason)])
    try:
        stats.settle(conv, role)  # into the day's figures, exactly once
    except Exception:  # the chat is closed either way; a lost figure must not look like a failure
        telemetry.logger.exception("closed conversation not counted in the figures")
    if frame.get("transcript") and conv.email:
        transcripts.at_close(conv, role, network, frame.ref, outbox, connection_id)
    forget_open(conv.visitor_id, conv_id, now)
    outbox.to(conv.connections(), frames.closed(conv.id, conv.summary(), role))
    if conv.agent_id:
        routing.release(conv.agent_id, conv_id)
    routing.drain(conv.site, outbox, quiet=bool(conv.agent_id))  # one that waited left the line
    return conv

