"""Satisfaction: at the end of a chat the visitor rates it, thumbs up or down, with an
optional comment; the agent sees it on the conversation and in history.

Once per conversation: the first rating stands. A resend of the same rating (a lost ack) is
acknowledged again; a different one is refused. That keeps the figures simple and honest: a
rating is counted on its day exactly once, in the same transaction that stores it, and never
has to be taken back.
"""

from __future__ import annotations

from chalicelib import clock, frames, lifecycle, stats
from chalicelib.errors import CONFLICT, FORBIDDEN, Refusal
from chalicelib.fanout import Outbox
from chalicelib.protocol import Frame
from chalicelib.store import (
    AgentModel,
    ConversationModel,
    agent_key,
    conversation_key,
    get_or_none,
    transact_write,
)

SCORES = ("up", "down")
MAX_COMMENT = 500


def _load(conv_id: str) -> ConversationModel:
    conv = get_or_none(ConversationModel, conversation_key(conv_id), consistent_read=True)
    if conv is None:
        raise Refusal(FORBIDDEN, "You are not a participant in that conversation.")
    return conv


def rate(connection_id: str, frame: Frame, outbox: Outbox) -> None:
    conv = _load(frame["conversation"])
    if not conv.connections().get(connection_id, "").startswith("v:"):
        raise Refusal(FORBIDDEN, "Only the visitor of this chat can rate it.", frame.ref)
    if conv.status != lifecycle.CLOSED:
        raise Refusal(CONFLICT, "A chat is rated once it has ended.", frame.ref)
    comment = (frame.get("comment") or "").strip() or None
    rating = {"score": frame["score"], "comment": comment, "ts": clock.now_ms()}
    fresh = conv.rating is None and transact_write(stats.rating_items(conv, connection_id, rating))
    if not fresh:
        stored = _load(conv.id).rating_view() or {}
        if (stored.get("score"), stored.get("comment")) != (rating["score"], comment):
            raise Refusal(CONFLICT, "This chat was rated already.", frame.ref)
        rating = stored
    frame_out = frames.rated(conv.id, rating)
    outbox.to([connection_id], {**frame_out, "ref": frame.ref})
    if fresh and conv.agent_id:
        agent = get_or_none(AgentModel, agent_key(conv.agent_id), consistent_read=True)
        if agent is None:
            return
        outbox.to(sorted(agent.conns or ()), frame_out)
