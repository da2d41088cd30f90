"""Service figures: what one conversation measured, and the daily aggregates reports read.

Recorded where things happen, at no cost on the message path: the message write itself
keeps a count and a first-message time per client instance (``mn``, ``mf``, owned per
``co``), routing stamps the first acceptance, transfers and holding messages add one to
their counters, presence notes when the visitor's last tab closed (chalicelib.lifecycle).
When the conversation closes, ``settle`` turns that into figures (``measure``, a pure
function) and adds them to the site's day item and its agent's day item, in one
transaction with the conversation's ``counted`` mark, so each conversation is counted
exactly once (see models.py).

Definitions (docs/console.md repeats them for readers of the reports):

* wait: queued to the first acceptance by any agent;
* first response: that acceptance to the first message an agent wrote;
* resolution: started to closed;
* missed: the visitor left (closed, or every tab gone) before any agent accepted, whoever
  closed it afterwards (the visitor, an agent, or the abandonment timer: ``closed_by``
  ``"system"``);
* abandoned: accepted, then the visitor's tabs all closed and the chat ended without them:
  an agent ended it, or the timer did after the site's ``assigned_after_seconds``. Counted
  so even if the agent had already replied: the chat did not end with the visitor there,
  and a team wants to see how many visitors walk away mid-chat;
* answered: everything else (the chat ended with the visitor there, or they ended it);
* after hours: started while the site was offline (outside hours or nobody on shift); its
  "answered after" is start to the first agent message, however late.

Wait and first response count only chats that were not missed (a missed chat picked up
hours later says nothing about live waiting); after-hours answers measure those.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from chalicelib import clock, lifecycle, sites
from chalicelib.hours import from_ms
from chalicelib.store import (
    EMAIL_CHANNEL,
    ConversationModel,
    SiteModel,
    keys,
    plain_map,
    raw_update,
    transact_write,
)

ANSWERED, MISSED, ABANDONED = "answered", "missed", "abandoned"

# Histogram bucket edges, in seconds: bucket i holds [EDGES[i-1], EDGES[i]), the last one
# everything from a day on. Fine where chats live (seconds to minutes), coarse beyond.
EDGES = (5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 300, 450, 600, 900, 1200, 1800, 2700,
         3600, 7200, 14400, 28800, 86400)
BUCKETS = len(EDGES) + 1
HISTOGRAMS = {"wait": "w", "first_response": "f"}  # figure -> attribute prefix of its buckets

# Every counter a day item may hold (besides histogram buckets and hour counts).
COUNTERS = ("chats", "answered", "missed", "abandoned", "wait_n", "wait_ms", "frt_n", "frt_ms",
            "res_n", "res_ms", "msg_v", "msg_a", "transfers", "holds", "ah_chats", "ah_msgs",
            "ah_ans_n", "ah_ans_ms", "offline", "up", "down")


def bucket(ms: int) -> int:
    return bisect.bisect_right(EDGES, ms / 1000)


def bucket_name(prefix: str, index: int) -> str:
    return f"{prefix}{index:02d}"


def quantile(histogram: list[int], q: float) -> float | None:
    """The ``q`` quantile in seconds of a bucketed distribution: found in its bucket, then
    placed linearly inside it (the usual reading of a histogram). None when empty."""
    total = sum(histogram)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, n in enumerate(histogram):
        if n and seen + n >= rank:
            low = 0 if i == 0 else EDGES[i - 1]
            high = EDGES[i] if i < len(EDGES) else low
            return low + (high - low) * (rank - seen) / n
        seen += n
    return float(EDGES[-1])


def zone(site: SiteModel) -> tzinfo:
    return sites.schedule(site).zone


def local_day(ms: int, tz: tzinfo) -> tuple[str, int]:
    """The site's calendar date and hour of an instant: the day and hour a figure counts for."""
    at = from_ms(ms).astimezone(tz)
    return at.date().isoformat(), at.hour


def day_key(site: str, day: str, agent: str | None = None) -> dict[str, Any]:
    return {"pk": {"S": keys.stats_key(site)}, "sk": {"S": keys.day_sk(day, agent)}}


@dataclass(frozen=True)
class Measures:
    """One closed conversation's figures (milliseconds; None when it did not happen)."""

    agent: str | None
    day: str
    hour: int
    outcome: str
    wait_ms: int | None
    first_response_ms: int | None
    resolution_ms: int
    messages_visitor: int
    messages_agent: int
    transfers: int
    holds: int
    after_hours: bool
    after_hours_answer_ms: int | None
    # An email-channel conversation (an offline message, chalicelib.inbox): counted in every
    # figure above like a chat (an agent's reply by email is its first response), and split
    # out here, with the time from the message left to the first reply, as its writer waits.
    email: bool = False
    email_answer_ms: int | None = None

    def increments(self) -> dict[str, int]:
        """What this conversation adds to a day item."""
        out = {"chats": 1, self.outcome: 1, "res_n": 1, "res_ms": self.resolution_ms,
               "msg_v": self.messages_visitor, "msg_a": self.messages_agent,
               "transfers": self.transfers, "holds": self.holds, f"h{self.hour:02d}": 1}
        for name, value in (("wait", self.wait_ms), ("frt", self.first_response_ms)):
            if value is not None:
                out[f"{name}_n"], out[f"{name}_ms"] = 1, value
                prefix = HISTOGRAMS["wait" if name == "wait" else "first_response"]
                out[bucket_name(prefix, bucket(value))] = 1
        if self.after_hours:
            out["ah_chats"], out["ah_msgs"] = 1, self.messages_visitor
            if self.after_hours_answer_ms is not None:
                out["ah_ans_n"], out["ah_ans_ms"] = 1, self.after_hours_answer_ms
        if self.email:
            out["em_chats"] = 1
            if self.email_answer_ms is not None:
                out["em_ans_n"], out["em_ans_ms"] = 1, self.email_answer_ms
        return out


def first_agent_message(conv: ConversationModel) -> int | None:
    """When an agent first wrote: the earliest first-message time of the agents' clients."""
    owners, firsts = plain_map(conv.client_owners), plain_map(conv.first_message_at)
    times = [int(firsts[c]) for c, tag in owners.items() if str(tag).startswith("a:") and c in firsts]
    return min(times) if times else None


def messages_by_side(conv: ConversationModel) -> tuple[int, int]:
    owners, counts = plain_map(conv.client_owners), plain_map(conv.message_counts)
    visitor = sum(int(n) for c, n in counts.items() if str(owners.get(c, "")).startswith("v:"))
    agent = sum(int(n) for c, n in counts.items() if str(owners.get(c, "")).startswith("a:"))
    return visitor, agent


def measure(conv: ConversationModel, tz: tzinfo, closed_by: str | None) -> Measures:
    """The figures of a closed conversation, from what it recorded along the way."""
    created = int(conv.created_at)
    queued = int(conv.queued_at or created)
    closed = int(conv.closed_at or clock.now_ms())
    accepted = int(conv.accepted_at) if conv.accepted_at is not None else None
    left = int(conv.v_left_at) if conv.v_left_at is not None else None
    first = first_agent_message(conv)
    if accepted is None or (left is not None and left < accepted):
        outcome = MISSED
    elif left is not None and closed_by in ("agent", "system"):
        outcome = ABANDONED
    else:
        outcome = ANSWERED
    live = outcome != MISSED and accepted is not None
    visitor_msgs, agent_msgs = messages_by_side(conv)
    day, hour = local_day(created, tz)
    email = conv.channel == EMAIL_CHANNEL
    return Measures(
        agent=conv.agent_id, day=day, hour=hour, outcome=outcome,
        wait_ms=max(0, accepted - queued) if live and accepted is not None else None,
        first_response_ms=(max(0, first - accepted) if live and accepted is not None
                           and first is not None else None),
        resolution_ms=max(0, closed - created), messages_visitor=visitor_msgs,
        messages_agent=agent_msgs, transfers=int(conv.transfers or 0), holds=int(conv.holds or 0),
        after_hours=bool(conv.after_hours),
        after_hours_answer_ms=max(0, first - created) if conv.after_hours and first is not None else None,
        email=email, email_answer_ms=max(0, first - created) if email and first is not None else None)


def day_update(site: str, day: str, agent: str | None, increments: dict[str, int]) -> dict[str, Any]:
    """A raw transaction item adding ``increments`` to one day item (created on first use)."""
    names = {"#site": "site", "#day": "day"}
    values: dict[str, Any] = {":site": {"S": site}, ":day": {"S": day}}
    sets = ["#site = :site", "#day = :day"]
    if agent is not None:
        names["#agent"], values[":agent"] = "agent", {"S": agent}
        sets.append("#agent = :agent")
    adds = []
    for i, (name, value) in enumerate(sorted(increments.items())):
        if value:
            names[f"#n{i}"], values[f":v{i}"] = name, {"N": str(int(value))}
            adds.append(f"#n{i} :v{i}")
    expression = "SET " + ", ".join(sets) + (" ADD " + ", ".join(adds) if adds else "")
    return {"Update": {"Key": day_key(site, day, agent), "UpdateExpression": expression,
                       "ExpressionAttributeNames": names, "ExpressionAttributeValues": values}}


def _conv_key(conv: ConversationModel) -> dict[str, Any]:
    return {"pk": {"S": conv.pk}, "sk": {"S": conv.sk}}


def settle(conv: ConversationModel, closed_by: str | None) -> Measures | None:
    """Count a closed conversation into its day's figures, once: the ``counted`` mark and
    the additions are one transaction, so a repeat (or a race) adds nothing. None when it
    was counted already."""
    site = sites.get(conv.site)
    m = measure(conv, zone(site), closed_by)
    mark = {"Update": {
        "Key": _conv_key(conv),
        "UpdateExpression": "SET #counted = :yes, #outcome = :outcome",
        "ConditionExpression": "attribute_not_exists(#counted) AND #status = :closed",
        "ExpressionAttributeNames": {"#counted": "counted", "#outcome": "outcome", "#status": "status"},
        "ExpressionAttributeValues": {":yes": {"BOOL": True}, ":outcome": {"S": m.outcome},
                                      ":closed": {"S": lifecycle.CLOSED}}}}
    items = [mark, day_update(conv.site, m.day, None, m.increments())]
    if m.agent:
        items.append(day_update(conv.site, m.day, m.agent, m.increments()))
    return m if transact_write(items) else None


def rating_items(conv: ConversationModel, connection_id: str, rating: dict[str, Any]) -> list[dict[str, Any]]:
    """The transaction that stores a visitor's rating once and counts it on the day (and the
    agent) the conversation counts for."""
    site = sites.get(conv.site)
    day, _ = local_day(int(conv.created_at), zone(site))
    stored = {"score": {"S": rating["score"]}, "ts": {"N": str(rating["ts"])}}
    if rating.get("comment"):
        stored["comment"] = {"S": rating["comment"]}
    mark = {"Update": {
        "Key": _conv_key(conv),
        "UpdateExpression": "SET #rating = :rating",
        "ConditionExpression": ("attribute_not_exists(#rating) AND #status = :closed "
                                "AND attribute_exists(#conns.#conn)"),
        "ExpressionAttributeNames": {"#rating": "rating", "#status": "status", "#conns": "conns",
                                     "#conn": connection_id},
        "ExpressionAttributeValues": {":rating": {"M": stored}, ":closed": {"S": lifecycle.CLOSED}}}}
    score = {rating["score"]: 1}
    items = [mark, day_update(conv.site, day, None, score)]
    if conv.agent_id:
        items.append(day_update(conv.site, day, conv.agent_id, score))
    return items


def count_offline(site_id: str, at_ms: int) -> None:
    """An after-hours message left with the form: counted on the site's day when it is left."""
    day, _ = local_day(at_ms, zone(sites.get(site_id)))
    raw_update(day_update(site_id, day, None, {"offline": 1})["Update"])
