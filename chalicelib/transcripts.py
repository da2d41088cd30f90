"""Transcripts by email, on request: the visitor at the end of a chat (to the address from
the pre-chat form, or one they type), an agent from the console (to the visitor's address).

No open relay. A transcript carries what the visitor wrote, so it goes only to an address
this chat has reason to trust (``ok`` on the conversation: address -> how):

- an address the visitor gave (pre-chat, the offline form, or typed here) is trusted once
  its owner opens the link of a confirmation email; that email carries no visitor text, only
  the site's name and the link (a signed, expiring token, ``confirm``), so a stranger who
  types someone else's address can make us send a fixed note at most, within the budgets;
- an agent's request is an explicit action of the team: trusted at once.

Opening the link (``confirm``) trusts the address and queues every request waiting on it.

Through the same mail queue as after-hours mail (``offline.process`` sends them). Exactly
once per request: each request carries a client-chosen id, recorded on the conversation
(``tx``: id -> address) before it is queued; a resend finds its id and is queued again, and
the email's key is the request, so SQS redelivery, a resend or a second click never mails
twice. Limited to ``MAX_PER_CONVERSATION`` requests per chat, ``Settings.transcripts_per_hour``
per person and the mail budgets (``limits.spend_mail``). (Closing with ``transcript: true`` asks for
one to the pre-chat address, key ``transcript:<conversation>``, flagged by ``tx_close``.)
"""

from __future__ import annotations

from dataclasses import dataclass

from pynamodb.expressions.condition import size

from chalicelib import auth, config, frames, limits, mail, queue, sites, validate
from chalicelib.auth import Caller
from chalicelib.errors import BAD_FRAME, CONFLICT, FORBIDDEN, RATE_LIMITED, RETRY, Refusal
from chalicelib.fanout import Outbox
from chalicelib.protocol import Frame
from chalicelib.store import (
    ConversationModel,
    conversation_key,
    email_actions,
    get_or_none,
    plain_map,
    update_or_old,
)

MAX_PER_CONVERSATION = 3
CONFIRM = "confirm"  # the purpose signed into confirmation links
BY_LINK, BY_AGENT = "link", "agent"  # how an address came to be trusted


def mail_key(conv_id: str, request_id: str | None) -> str:
    return f"transcript:{conv_id}:{request_id}" if request_id else f"transcript:{conv_id}"


def address(conv: ConversationModel, request_id: str | None) -> str | None:
    """Where one request's transcript goes (the pre-chat address for the close-time one)."""
    if request_id is None:
        return conv.email
    value = plain_map(conv.transcript_requests).get(request_id)
    return None if value is None else str(value)


def trusted(conv: ConversationModel, to: str | None) -> bool:
    """Whether this chat may mail its transcript (visitor text) to ``to``."""
    return bool(to) and to in plain_map(conv.trusted_addresses)


def _allowed(who: Caller, conv: ConversationModel) -> bool:
    if who.role == auth.VISITOR:
        return conv.connections().get(who.connection_id, "") == who.tag
    return conv.site == who.site and (conv.agent_id == who.subject or who.connection_id in conv.connections())


def _trust(conv: ConversationModel, to: str, how: str) -> None:
    C = ConversationModel
    trusted = C.trusted_addresses
    if conv.trusted_addresses is None:
        ok, _ = update_or_old(C, conv.pk, [trusted.set({to: how})], trusted.does_not_exist())
        if ok:
            return
    update_or_old(C, conv.pk, [trusted[to].set(how)], trusted[to].does_not_exist())


def _queue(conv: ConversationModel, rid: str | None, to: str) -> bool:
    """Queue the transcript when ``to`` is trusted, else the confirmation link; True when the
    transcript itself was queued."""
    if trusted(conv, to):
        queue.enqueue(mail.TranscriptJob(conv.id, rid))
        return True
    queue.enqueue(mail.ConfirmJob(conv.id, rid))
    return False


def request(who: Caller, frame: Frame, outbox: Outbox) -> None:
    C = ConversationModel
    conv = get_or_none(C, conversation_key(frame["conversation"]), consistent_read=True)
    if conv is None or not _allowed(who, conv):
        raise Refusal(FORBIDDEN, "That is not one of your conversations.", frame.ref)
    rid = frame["id"]
    to = validate.email_address(frame.get("email") or conv.email)
    if to is None:
        raise Refusal(BAD_FRAME, "Give an email address to send the transcript to.", frame.ref)
    if address(conv, rid) is None:
        if not limits.TRANSCRIPTS_PER_PERSON.allow(who.tag, config.settings().transcripts_per_hour):
            raise Refusal(RATE_LIMITED, "Too many transcripts asked for; try again later.", frame.ref,
                          retry_after=limits.TRANSCRIPTS_PER_PERSON.retry_after())
        _spend(conv, to, who.ip_hash, ref=frame.ref, agent=who.role == auth.AGENT)
        # The address a visitor gives is kept on the chat (when it had none), in the same write,
        # so the team can follow up and find the chat by it (``by_email``). One address: the
        # pre-chat one, or the first given here, never replaced by a later request.
        keep = email_actions(conv.site, to, unless_set=True) if who.role == auth.VISITOR else []
        requests = C.transcript_requests
        if conv.transcript_requests is None:
            ok, old = update_or_old(C, conv.pk, [requests.set({rid: to}), *keep], requests.does_not_exist())
        else:
            ok, old = update_or_old(C, conv.pk, [requests[rid].set(to), *keep],
                                    (size(requests) < MAX_PER_CONVERSATION) & requests[rid].does_not_exist())
        if not ok:
            if old is None:
                raise Refusal(RETRY, "Temporary problem; please resend.", frame.ref)
            if address(old, rid) is None:
                if len(plain_map(old.transcript_requests)) >= MAX_PER_CONVERSATION:
                    raise Refusal(CONFLICT, f"At most {MAX_PER_CONVERSATION} transcripts per chat.",
                                  frame.ref)
                raise Refusal(RETRY, "Temporary problem; please resend.", frame.ref)
            conv = old
    to = address(conv, rid) or to
    if who.role == auth.AGENT and not trusted(conv, to):  # the team's explicit action
        _trust(conv, to, BY_AGENT)
        conv.trusted_addresses = {**plain_map(conv.trusted_addresses), to: BY_AGENT}
    sent = _queue(conv, rid, to)  # again on a resend: the email itself goes out once
    outbox.to([who.connection_id], frames.transcript_queued(conv.id, rid, to, not sent, frame.ref))


def _spend(conv: ConversationModel, to: str, network: str | None, *, ref: str | None, agent: bool) -> None:
    """Count the request's mails (the transcript, and the confirmation link it may need first)
    against the hourly budgets; agents are the team, so their network is not counted."""
    try:
        limits.spend_mail(conv.site, 1 if trusted(conv, to) or agent else 2, None if agent else network)
    except limits.OverBudget as over:
        raise Refusal(RATE_LIMITED, over.message, ref, retry_after=over.retry_after) from None


def at_close(conv: ConversationModel, role: str, network: str | None, ref: str | None, outbox: Outbox,
             connection_id: str) -> None:
    """``close`` with ``transcript: true``: one transcript to the pre-chat address, after the
    confirmation link when a visitor asked and the address is not trusted yet. The chat is
    closed either way; a spent budget is told to the closer as a ``rate_limited`` error."""
    to = validate.email_address(conv.email)
    if to is None:
        return
    try:
        _spend(conv, to, network, ref=ref, agent=role == auth.AGENT)
    except Refusal as refused:
        outbox.to([connection_id], frames.error(refused.code, refused.message, ref, refused.retry_after))
        return
    C = ConversationModel
    C(conv.pk).update(actions=[C.tx_close.set(True)])
    if role == auth.AGENT and not trusted(conv, to):
        _trust(conv, to, BY_AGENT)
        conv.trusted_addresses = {**plain_map(conv.trusted_addresses), to: BY_AGENT}
    _queue(conv, None, to)


# --- the confirmation link ---------------------------------------------------------------

def link(conv_id: str, to: str) -> str:
    """The confirmation URL for ``to`` on this chat. The token names the chat and a keyed hash
    of the address (never the address: URLs end up in access logs)."""
    token = auth.sign(CONFIRM, {"c": conv_id, "h": auth.fingerprint(to)},
                      config.settings().mail_confirm_ttl_seconds)
    return f"{config.public_api_url()}/transcripts/confirm/{token}"


def send_confirmation(conv: ConversationModel, request_id: str | None) -> None:
    """Mail the confirmation link (consumer side, one per address per chat). Fixed text only:
    nothing the visitor wrote, so an unconfirmed address can receive nothing of theirs."""
    to = address(conv, request_id)
    if not to:
        return
    if trusted(conv, to):  # confirmed meanwhile: the transcript is what is owed
        queue.enqueue(mail.TranscriptJob(conv.id, request_id))
        return
    site = sites.get(conv.site)
    name = sites.display_name(site)
    hours = config.settings().mail_confirm_ttl_seconds // 3600
    mail.send_once(f"confirm:{conv.id}:{auth.fingerprint(to)}", mail.Email(
        to=to, reply_to=sites.team_email(site), subject=f"Confirm your email address - {name}",
        text="\n".join([
            f"Someone asked for the transcript of a chat on {name} to be sent to this address.", "",
            f"To receive it, confirm the address by opening this link (valid {hours} hours):",
            link(conv.id, to), "",
            "If it was not you, ignore this email: nothing more will be sent."])))


@dataclass(frozen=True)
class Confirmed:
    """What opening a link did: ``status`` is the HTTP status of the page to show."""

    status: int
    message: str


def confirm(token: str) -> Confirmed:
    """Open a confirmation link: trust the address for its chat and queue every transcript
    waiting on it. Idempotent: a second click queues them again and the mail keys send nothing."""
    try:
        doc = auth.unsign(CONFIRM, token)
    except auth.InvalidToken as exc:
        if str(exc) == "expired":
            return Confirmed(410, "This link has expired. Ask for the transcript again from the chat.")
        return Confirmed(404, "This link is not valid.")
    C = ConversationModel
    conv = get_or_none(C, conversation_key(doc.get("c", "")), consistent_read=True)
    if conv is None:
        return Confirmed(404, "This conversation is no longer kept.")
    waiting = {rid: str(to) for rid, to in plain_map(conv.transcript_requests).items()}
    if conv.tx_close and conv.email:
        waiting[""] = conv.email
    matching = {rid: to for rid, to in waiting.items() if auth.fingerprint(to) == doc.get("h")}
    if not matching:
        return Confirmed(404, "This conversation is no longer kept.")
    to = next(iter(matching.values()))
    _trust(conv, to, BY_LINK)
    for rid in matching:
        queue.enqueue(mail.TranscriptJob(conv.id, rid or None))
    return Confirmed(200, "Thank you: your address is confirmed. The transcript is on its way.")
