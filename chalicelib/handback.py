"""A chat with an agent goes back to the line: its agent hands it back (signing out with
open chats, from the console's dialog), or the agent's grace period ended (``presence.sweep``).

Either way it goes back by ``routing.requeue``: one conditional write that holds only while
that agent still has it, at its original place in line (its first wait), so it is at the
front, ahead of everyone who came later; the agent's slot is released. The visitor is told
honestly (``requeued``): "your agent had to leave", and what happens next: the next agent,
or, when nobody is there to answer, ``no_agents`` (``unattended``) with the offer to
continue by email. Then the line moves (``routing.drain``): another agent with room takes
it, and everyone sees the new line.
"""

from __future__ import annotations

from chalicelib import availability, frames, routing, sites, telemetry, unattended
from chalicelib.auth import Caller
from chalicelib.errors import FORBIDDEN, Refusal
from chalicelib.fanout import Outbox
from chalicelib.store import ConversationModel, SiteModel

HAD_TO_LEAVE = "Your agent had to leave."
NEXT_ONE = " You are first in line for the next one."
NOT_HELD = "That chat is not yours to hand back (it was closed, transferred or already handed back)."


def requeued_frame(conv: ConversationModel, message: str) -> dict[str, object]:
    """The ``requeued`` frame (to the visitor's tabs, and the consoles of the agent who
    handed it back): back in line, why, and its state."""
    return frames.requeued(conv.id, message, conv.summary())


def back_in_line(conv: ConversationModel, site: SiteModel, online: bool, outbox: Outbox) -> None:
    """Tell a requeued chat's visitor: the next agent comes, or nobody is there (then
    ``no_agents`` follows, never a promise of a "next one")."""
    outbox.to(conv.connections_of("v:"), requeued_frame(conv, HAD_TO_LEAVE + (NEXT_ONE if online else "")))
    if not online:
        unattended.tell(conv, site, outbox)


def handback(who: Caller, conv_id: str, outbox: Outbox) -> ConversationModel:
    """The holding agent puts a chat back at the front of the line (``handback``)."""
    conv = routing.requeue(conv_id, who.subject)
    if conv is None or conv.site != who.site:
        raise Refusal(FORBIDDEN, NOT_HELD)
    telemetry.count("HandedBack")
    telemetry.logger.info("conversation handed back", extra={"conversation": conv.id})
    settings = sites.get(conv.site)
    back_in_line(conv, settings, availability.status(settings).online, outbox)
    outbox.to([who.connection_id], requeued_frame(conv, "Handed back to the line."))
    routing.drain(conv.site, outbox)  # everyone sees the new line; an agent with room takes it
    return conv
