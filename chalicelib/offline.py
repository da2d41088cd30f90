"""After hours: messages left for the team, digests of unanswered chats, replies by email.

Durable first. A message left for the team is written to DynamoDB (marked ``UNQUEUED`` in the
"due" index), acknowledged, then put on the mail queue and unmarked. If the process dies
between store and queue, the scheduled sweep finds it by that mark and queues it. Every
email is sent through ``mail.send_once`` with a key derived from the job, so a redelivered
or re-queued job never sends a second email.

A job only names what it is about (an offline message, a conversation): the consumer reads
it at send time. A record that is gone (the visitor's data was erased on request) or past
its retention drops the job without sending, so erasure also cancels queued mail.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalicelib import (
    auth,
    clock,
    config,
    email_channel,
    inbox,
    lifecycle,
    limits,
    mail,
    queue,
    routing,
    sites,
    stats,
    transcripts,
)
from chalicelib.availability import status
from chalicelib.errors import (
    BAD_EMAIL,
    BAD_NAME,
    BAD_PAGE,
    BAD_REQUEST,
    BAD_TEXT,
    RATE_LIMITED,
    SPAM,
    Refusal,
)
from chalicelib.hours import from_ms
from chalicelib.protocol import MAX_TEXT_CHARS
from chalicelib.store import (
    ConversationModel,
    MessageModel,
    OfflineMessageModel,
    SiteModel,
    VisitorModel,
    conversation_key,
    due_sk,
    email_key,
    expired,
    get_or_none,
    keep_until,
    keys,
    message_sk,
    update_or_old,
    visitor_key,
)
from chalicelib.validate import email_address, is_web_url

log = logging.getLogger(__name__)

MAX_NAME = 100
MAX_PAGE = 2048
TRANSCRIPT_LIMIT = 200
HONEYPOT = "website"  # a field people never see and bots fill in
UNQUEUED = keys.UNQUEUED


@dataclass(frozen=True)
class Fields:
    email: str
    text: str
    name: str | None
    page: str | None


def validate(doc: Any) -> Fields:
    """Check a leave-a-message form; every refusal says which field and why."""
    if not isinstance(doc, dict):
        raise Refusal(BAD_REQUEST, "Send a JSON object.")
    if doc.get(HONEYPOT):
        raise Refusal(SPAM, "This message looks automated and was not accepted.")
    email, text = doc.get("email"), doc.get("text")
    name, page = doc.get("name") or None, doc.get("page") or None
    email = email_address(email)
    if email is None:
        raise Refusal(BAD_EMAIL, "Please give a valid email address so we can answer.")
    if not isinstance(text, str) or not text.strip():
        raise Refusal(BAD_TEXT, "Please write a message.")
    if len(text) > MAX_TEXT_CHARS:
        raise Refusal(BAD_TEXT, f"Messages are limited to {MAX_TEXT_CHARS} characters.")
    if name is not None and (not isinstance(name, str) or len(name) > MAX_NAME
                             or not name.isprintable()):
        raise Refusal(BAD_NAME, f"A name is one line of at most {MAX_NAME} characters.")
    if page is not None and not is_web_url(page):
        raise Refusal(BAD_PAGE, "The page must be an http(s) address.")
    return Fields(email=email, text=text, name=name.strip() if name else None, page=page)


def leave(site_id: str, doc: Any, *, visitor_id: str | None = None,
          ip_hash: str | None = None) -> str:
    """Validate, rate-limit and durably store an offline message; returns its id.

    The caller acknowledges after this returns and then calls ``dispatch``.
    """
    fields = validate(doc)
    per_visitor, per_network = limits.OFFLINE_PER_VISITOR, limits.OFFLINE_PER_NETWORK
    if visitor_id and not per_visitor.allow(visitor_id, config.settings().offline_per_visitor_per_hour):
        raise Refusal(RATE_LIMITED, "You have sent several messages already; we will answer "
                      "them soon.", retry_after=per_visitor.retry_after())
    if ip_hash and not per_network.allow(ip_hash, config.settings().offline_per_ip_per_hour):
        raise Refusal(RATE_LIMITED, "Too many messages from your network; try again later.",
                      retry_after=per_network.retry_after())
    try:  # two mails: the team's and the visitor's receipt
        limits.spend_mail(site_id, 2, ip_hash)
    except limits.OverBudget as over:
        raise Refusal(RATE_LIMITED, over.message, retry_after=over.retry_after) from None
    conv_id = _attach(visitor_id, fields.email) if visitor_id else None
    now = clock.now_ms()
    # The work happens in the console: the message is a conversation in the site's inbox.
    inbox.open_message(site_id, visitor_id=visitor_id, email=fields.email, name=fields.name,
                       page=fields.page, text=fields.text, now=now)
    message_id = auth.new_id()
    OfflineMessageModel(keys.offline_key(message_id), site=site_id, visitor_id=visitor_id, conv_id=conv_id,
                        name=fields.name, email=fields.email, text=fields.text, page=fields.page,
                        created_at=now, due_pk=UNQUEUED, due_sk=due_sk(now, f"#{message_id}"),
                        email_key=email_key(site_id, fields.email), ttl=keep_until(now)).save()
    try:  # the message is safe; a figure that failed to count must not make the visitor resend
        stats.count_offline(site_id, now)
    except Exception:
        log.exception("offline message stored but not counted in the figures")
    return message_id


def _attach(visitor_id: str, email: str) -> str | None:
    """Remember the email on the visitor's open conversation, so an agent's later reply there
    reaches them by email."""
    visitor = get_or_none(VisitorModel, visitor_key(visitor_id), consistent_read=True)
    if visitor is None:
        return None
    if not visitor.conv:
        return None
    C = ConversationModel
    update_or_old(C, conversation_key(visitor.conv),
                  [C.email.set(email), C.email_key.set(email_key(str(visitor.site), email))], C.pk.exists())
    return visitor.conv


def dispatch(message_id: str) -> None:
    """Queue a stored message for mailing, then clear its "unqueued" mark. A failure here is
    logged, not raised: the message is safe in DynamoDB and the sweep will queue it."""
    try:
        queue.enqueue(mail.OfflineJob(message_id))
    except Exception:
        log.exception("offline message stored but not queued; the sweep will retry")
        return
    M = OfflineMessageModel
    update_or_old(M, keys.offline_key(message_id), [M.due_pk.remove(), M.due_sk.remove()], M.due_pk.exists())


def sweep_unqueued(now_ms: int | None = None) -> list[str]:
    """Queue messages that were stored but never queued (a crash between the two steps)."""
    now = clock.now_ms() if now_ms is None else now_ms
    cutoff = due_sk(now - config.settings().unqueued_after_seconds * 1000)
    stranded = [m.id for m in OfflineMessageModel.due_index.query(
        UNQUEUED, OfflineMessageModel.due_sk < cutoff)]
    for message_id in stranded:
        dispatch(message_id)
    return stranded


def sweep_digests(site: SiteModel, now_ms: int | None = None) -> list[str]:
    """Mail the team the unanswered lines of chats waiting on a site with nobody on shift,
    once each chat has been quiet for a while: one email per burst, not per line. One site's
    turn of the minute timer (``sites.walk``)."""
    now = clock.now_ms() if now_ms is None else now_ms
    quiet_since = now - config.settings().digest_quiet_seconds * 1000
    queued: list[str] = []
    if status(site, now).online:
        return []
    for conv in routing.waiting(site.id):
        if lifecycle.ghost(conv):
            continue  # the visitor left with no address to answer: nothing to tell the team
        done = int(conv.digested_seq or 0)
        if int(conv.seq or 0) <= done or int(conv.last_at or 0) > quiet_since:
            continue
        try:  # the site's and deployment's mail budgets: when spent, it waits a later round
            limits.spend_mail(site.id, 1)
        except limits.OverBudget:
            log.warning("digest held back: mail budget spent", extra={"site": site.id})
            continue
        # Queue first, then mark: a failed enqueue leaves it unmarked for the next round,
        # and a double enqueue (two sweeps) is one email, its key being the lines it covers.
        queue.enqueue(mail.DigestJob(conv.id, done, int(conv.seq)))
        C = ConversationModel
        update_or_old(C, conv.pk, [C.digested_seq.set(int(conv.seq))],
                      C.digested_seq.does_not_exist() | (C.digested_seq < int(conv.seq)))
        queued.append(conv.id)
    return queued


# --- the consumer side: one queue record is one job -------------------------------------

def _current[R: (OfflineMessageModel, ConversationModel)](model: type[R], pk: str, kind: str) -> R | None:
    """The record a job is about, or None (the job is dropped) when it was erased or is past
    its retention. Logged by kind only: the record's content never goes to the logs."""
    item = get_or_none(model, pk, consistent_read=True)
    if item is None or expired(item, clock.now_ms()):
        log.info("mail job dropped: its record is gone", extra={"job": kind})
        return None
    return item



def process(body: str) -> None:
    """Send the emails one job asks for; raises to have the record retried."""
    job = mail.decode(body)
    HANDLERS[type(job)](job)


def _offline(message_id: str) -> None:
    msg = _current(OfflineMessageModel, keys.offline_key(message_id), "offline")
    if msg is None:
        return
    site = sites.get(msg.site)
    who = f"{msg.name} <{msg.email}>" if msg.name else msg.email
    lines = [f"{who} left a message on {sites.display_name(site)} "
             f"({_local(site, msg.created_at)}):", "", msg.text, ""]
    if msg.page:
        lines += [f"Page: {msg.page}", ""]
    if msg.conv_id:
        lines += _transcript(site, msg.conv_id)
    lines += [f"Answer {msg.name or msg.email} from the console's Messages, or reply to this email."]
    if sites.console(site)["notify_team"]:  # the site's choice; the message is in the inbox anyway
        mail.send_once(f"offline:{message_id}:team", mail.Email(
            to=sites.team_email(site), reply_to=msg.email,
            subject=f"[{sites.display_name(site)}] Message from {msg.name or msg.email}",
            text="\n".join(lines)))
    back = status(site).next_open
    when = (f"We are back {_local(site, back)}." if back else "We will answer as soon as we can.")
    mail.send_once(f"offline:{message_id}:confirm", mail.Email(
        to=msg.email, reply_to=sites.team_email(site),
        subject=f"We got your message - {sites.display_name(site)}",
        # Nothing the visitor wrote (not even their name): this address is not confirmed.
        text="\n".join(["Hello,", "",
                        f"Thank you for writing to {sites.display_name(site)}. Nobody could chat "
                        f"just now, but your message has reached the team. {when}"])))


def _digest(conv_id: str, after: int, upto: int) -> None:
    conv = _current(ConversationModel, conversation_key(conv_id), "digest")
    if conv is None:
        return
    site = sites.get(conv.site)
    items, more = _messages(conv_id, after, upto)
    # Lines an agent already answered (a chat answered earlier, back in line) are not news.
    answered = max((int(m.seq) for m in items if m.role == auth.AGENT), default=0)
    unanswered = [m for m in items if m.role == auth.VISITOR and int(m.seq) > answered]
    if not unanswered:
        return
    lines = [f"A visitor wrote on {sites.display_name(site)} while nobody was on shift:", ""]
    lines += [f"[{_local(site, m.ts)}] {m.text}" for m in unanswered]
    if more:
        lines += ["", _cut(more, team=True)]
    lines += ["", "Open the conversation in the console to answer"
              + (f", or reply to this email to write to {conv.email}." if conv.email else ".")]
    mail.send_once(f"digest:{conv_id}:{upto}", mail.Email(
        to=sites.team_email(site), reply_to=conv.email,
        subject=f"[{sites.display_name(site)}] Unanswered chat ({len(unanswered)} "
                f"message{'s' if len(unanswered) != 1 else ''})",
        text="\n".join(lines)))


def _reply(conv_id: str, seq: int) -> None:
    conv = _current(ConversationModel, conversation_key(conv_id), "reply")
    if conv is None or not conv.email:
        return
    site = sites.get(conv.site)
    message = get_or_none(MessageModel, conv.pk, message_sk(seq), consistent_read=True)
    if message is None:
        return
    company = sites.display_name(site)
    # With a reply domain, the visitor's answer comes back into this conversation (threaded,
    # through the signed reply address); without one, it goes to the team's mailbox as before.
    back = email_channel.reply_address(conv)
    mail.send_once(f"reply:{conv_id}:{seq}", mail.Email(
        to=conv.email, reply_to=back or sites.team_email(site),
        headers=tuple(email_channel.thread_headers(conv, seq).items()) if back else (),
        subject=f"{message.name or 'Our team'} replied - {company}",
        text="\n".join([message.text, "", f"- {message.name or 'The team'}, {company}", "",
                        f"You chatted with {company}. To answer, reply to this email; it goes "
                        "straight to the team."])))


def _waiting_by_email(conv_id: str) -> None:
    """Tell the team, once per conversation, that a visitor found nobody on shift and waits
    for an answer by email (chalicelib.unattended); the chat so far goes with it (to the
    team's own address only)."""
    conv = _current(ConversationModel, conversation_key(conv_id), "waiting_by_email")
    if conv is None or not conv.email or not conv.by_email:
        return
    site = sites.get(conv.site)
    lines = [f"A visitor on {sites.display_name(site)} found nobody on shift and asked to continue "
             f"by email at {conv.email}.", "",
             "The chat waits in the console's line: the next agent on shift gets it, and every "
             "reply written there is emailed to the visitor. You can also reply to this email.", "",
             *_transcript(site, conv_id)]
    mail.send_once(f"waiting_by_email:{conv_id}", mail.Email(
        to=sites.team_email(site), reply_to=conv.email,
        subject=f"[{sites.display_name(site)}] A visitor is waiting for an answer by email",
        text="\n".join(lines)))


def _transcript_mail(conv_id: str, request_id: str | None = None) -> None:
    """The whole conversation, for the visitor: asked for when closing (to the pre-chat
    address) or by a request (chalicelib.transcripts), each request mailed once."""
    conv = _current(ConversationModel, conversation_key(conv_id), "transcript")
    to = None if conv is None else transcripts.address(conv, request_id)
    if conv is None or not to:
        return
    if not transcripts.trusted(conv, to):  # never visitor text to an unconfirmed address
        log.warning("transcript job dropped: its address is not confirmed")
        return
    site = sites.get(conv.site)
    lines = [f"Your conversation with {sites.display_name(site)}:", "",
             *_transcript(site, conv_id, team=False)]
    mail.send_once(transcripts.mail_key(conv_id, request_id), mail.Email(
        to=to, reply_to=sites.team_email(site),
        subject=f"Your chat with {sites.display_name(site)}", text="\n".join(lines)))


def _confirm_mail(conv_id: str, request_id: str | None) -> None:
    conv = _current(ConversationModel, conversation_key(conv_id), "confirm")
    if conv is not None:
        transcripts.send_confirmation(conv, request_id)


#: job type -> what runs it: the one dispatcher of the mail queue (every type in mail.JOBS).
HANDLERS: dict[type[mail.Job], Callable[[Any], None]] = {
    mail.OfflineJob: lambda job: _offline(job.id),
    mail.DigestJob: lambda job: _digest(job.conv, job.after, job.upto),
    mail.ReplyJob: lambda job: _reply(job.conv, job.seq),
    mail.WaitingByEmailJob: lambda job: _waiting_by_email(job.conv),
    mail.TranscriptJob: lambda job: _transcript_mail(job.conv, job.rid),
    mail.ConfirmJob: lambda job: _confirm_mail(job.conv, job.rid),
}


def _messages(conv_id: str, after: int, upto: int) -> tuple[list[MessageModel], int]:
    """The first ``TRANSCRIPT_LIMIT`` messages after ``after`` up to ``upto``, and how many
    sequence numbers past them were left out (0 when none): a mail that is cut says so."""
    items = list(MessageModel.query(conversation_key(conv_id), MessageModel.sk.between(
        message_sk(after + 1), message_sk(upto)), consistent_read=True, limit=TRANSCRIPT_LIMIT))
    if len(items) < TRANSCRIPT_LIMIT:
        return items, 0
    last = int(items[-1].seq)
    if upto >= 10**12 - 1:  # "everything": the conversation's own count says how far it goes
        conv = get_or_none(ConversationModel, conversation_key(conv_id))
        upto = last if conv is None else int(conv.seq or last)
    return items, max(0, upto - last)


def _cut(more: int, team: bool) -> str:
    """The line that says a mail stops short (``more`` counts any notices among them too)."""
    where = "see the conversation in the console" if team else "ask us if you need the rest"
    return f"... and {more} more message{'s' if more != 1 else ''} not included here; {where}."


def _transcript(site: SiteModel, conv_id: str, team: bool = True) -> list[str]:
    items, more = _messages(conv_id, 0, 10**12 - 1)
    if not items:
        return []
    lines = ["--- Conversation so far ---"]
    for m in items:
        speaker = {auth.AGENT: m.name or "Agent", auth.VISITOR: "Visitor"}.get(m.role, "")
        if not speaker:
            continue  # system notices are not part of what people said
        lines.append(f"[{_local(site, m.ts)}] {speaker}: {m.text}")
    if more:
        lines.append(_cut(more, team))
    return [*lines, ""]


def _local(site: SiteModel, ms: int | float) -> str:
    """A time as the team reads it: in the site's zone, with the zone named."""
    zone = sites.schedule(site).zone if site.hours else None
    at = from_ms(int(ms))
    return (at.astimezone(zone) if zone else at).strftime("%a %d %b %Y %H:%M %Z")
