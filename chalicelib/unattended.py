"""Nobody waits for nobody: when no agent is left to answer, waiting visitors are told at
once and may continue by email, their chat so far kept.

"Nobody to answer" is the site's status going offline (``availability``: outside opening
hours, or no agent on shift and not away). It can become true in several places, and each
already recomputes the status through ``availability.refresh``, whose conditional write on
the site item detects the flip exactly once: the last agent goes off shift or away
(``presence.set_shift``), the grace period of the last one ends (``presence.sweep``), an
agent is revoked (``agents.disable``, then the route refreshes), the hours end (the minute
timer) or an admin changes them. On that flip ``tell_waiting`` sends every waiting visitor
``no_agents``. A visitor who joins the line later (``conversations.start``), comes back
(``welcome``) or is put back in line (``handback``) while it is still so is told then.

Bounded: the line is walked a page at a time (``routing.QUEUE_PAGE``), at most
``TELL_PAGES`` pages in the invocation that saw the flip; where it stopped is kept on the
site item (``na_after``) and the minute timer goes on from there (``continue_telling``)
while the site stays offline. Visitors who already chose email are not told again.

``continue_by_email``: the visitor gives an address (the one validator, ``validate.email_address``);
it is stored on the conversation with ``by_email`` (and the ``by_email`` index key, as for
any address a chat carries), the chat stays in the line for the next agent (exempt from
abandonment: the lifecycle checks ``by_email``), and every later agent reply is mailed
(``conversations.send`` tests ``by_email`` on the item its one write returns: no extra
request). The team gets one mail per conversation (``offline`` job ``waiting_by_email``,
sent once by its key), counted against the mail budgets the first time only; a resend is
answered again and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib import frames, limits, mail, queue, routing, sites, telemetry, validate
from chalicelib.auth import Caller
from chalicelib.errors import BAD_EMAIL, CLOSED, FORBIDDEN, RATE_LIMITED, Refusal
from chalicelib.fanout import Outbox
from chalicelib.protocol import Frame, clip
from chalicelib.store import (
    ConversationModel,
    SiteModel,
    conversation_key,
    email_key,
    get_or_none,
    keys,
    update_or_old,
)

TELL_PAGES = 5  # pages of the line told in the invocation that saw nobody left (500 chats)
MESSAGE_BYTES = 1000  # the offline message as a frame carries it
#: What a waiting visitor reads when the site sets no offline message of its own. It names
#: no site: the site's id must never reach a customer.
DEFAULT_MESSAGE = ("Nobody from the team is available to chat right now. Leave your email "
                   "address and we will answer you there; your conversation so far is kept.")
NOT_YOURS = "That is not your conversation."


def offline_message(site: SiteModel) -> str:
    """The site's offline message (``widget.offline_message``, set in the console's
    Settings), or the neutral default."""
    text = sites.widget(site).get("offline_message")
    return clip(text.strip(), MESSAGE_BYTES) if isinstance(text, str) and text.strip() else DEFAULT_MESSAGE


def frame(conv: ConversationModel, message: str) -> dict[str, Any]:
    """The ``no_agents`` frame: nobody can answer this waiting chat now; ``email`` is the
    address the chat already has (the widget offers it), or null."""
    return frames.no_agents(conv.id, message, conv.email)


def tell(conv: ConversationModel, site: SiteModel, outbox: Outbox) -> None:
    """Tell one waiting chat's visitor (all their tabs) that nobody can answer now."""
    if conv.status == routing.QUEUED and not conv.by_email:
        outbox.to(conv.connections_of("v:"), frame(conv, offline_message(site)))


def tell_waiting(site_id: str, outbox: Outbox, after: str | None = None,
                 pages: int = TELL_PAGES) -> str | None:
    """Tell every waiting visitor of the site, oldest first, from ``after`` (a place in
    line), at most ``pages`` pages; returns where it stopped (None: the whole line was told),
    also kept on the site item for the minute timer."""
    site = sites.get(site_id)
    message = offline_message(site)
    told = 0
    for _ in range(pages):
        page = routing.waiting(site_id, after=after)
        for conv in page:
            if not conv.by_email:
                outbox.to(conv.connections_of("v:"), frame(conv, message))
                told += 1
        if len(page) < routing.QUEUE_PAGE:
            after = None
            break
        after = str(page[-1].q_sk)
    telemetry.count("NoAgentsTold", told)
    S = SiteModel
    if after is not None or site.no_agents_after:
        update_or_old(S, keys.SITES, [S.no_agents_after.set(after) if after else S.no_agents_after.remove()],
                      S.sk.exists(), range_key=site_id)
    return after


def continue_telling(site: SiteModel, online: Callable[[], bool], outbox: Outbox) -> list[str]:
    """The minute timer's step: go on telling a long line where the flip's invocation
    stopped, while nobody is there (forgotten once someone is). ``online`` is asked only
    when there is something to go on with. Returns the site's id when it told anyone."""
    if not site.no_agents_after:
        return []
    if online():
        S = SiteModel
        update_or_old(S, keys.SITES, [S.no_agents_after.remove()], S.sk.exists(), range_key=site.id)
        return []
    tell_waiting(site.id, outbox, after=site.no_agents_after)
    return [site.id]


def continue_by_email(who: Caller, request: Frame, outbox: Outbox, network: str | None) -> ConversationModel:
    """The visitor continues their open chat by email (see the module docstring); answers
    ``by_email`` to all their tabs and updates the agents' view of the chat."""
    address = validate.email_address(request["email"])
    if address is None:
        raise Refusal(BAD_EMAIL, "Please give a valid email address so we can answer you there.",
                      request.ref)
    C = ConversationModel
    conv = get_or_none(C, conversation_key(request["conversation"]), consistent_read=True)
    if conv is None:
        raise Refusal(FORBIDDEN, NOT_YOURS, request.ref)
    if conv.visitor_id != who.subject or who.connection_id not in conv.connections():
        raise Refusal(FORBIDDEN, NOT_YOURS, request.ref)
    if conv.status not in routing.OPEN_STATES:
        raise Refusal(CLOSED, "This conversation is closed.", request.ref)
    if not (conv.by_email and conv.email == address):
        if not conv.by_email:  # the team's one mail about it: counted the first time only
            try:
                limits.spend_mail(conv.site, 1, network)
            except limits.OverBudget as over:
                raise Refusal(RATE_LIMITED, over.message, request.ref, over.retry_after) from None
        ok, fresh = update_or_old(
            C, conv.pk, [C.email.set(address), C.email_key.set(email_key(conv.site, address)),
                         C.by_email.set(True)],
            C.conns[who.connection_id].exists() & C.status.is_in(*routing.OPEN_STATES))
        if not ok or fresh is None:
            raise Refusal(CLOSED, "This conversation is closed.", request.ref)
        conv = fresh
        telemetry.count("ContinuedByEmail")
    # Queued on every call, resends included, so a failed enqueue is retried with the frame;
    # the mail itself goes out once (its key is the conversation).
    queue.enqueue(mail.WaitingByEmailJob(conv.id))
    answer = frames.by_email(conv.id, address, conv.summary())
    outbox.to(conv.connections(), answer)  # the visitor's tabs, and the agent's if it has one
    if conv.status == routing.QUEUED:
        routing.tell_agents(conv.site, outbox)  # the line shows it waits for an email answer
    return conv

