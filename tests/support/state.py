"""What tests read from (or seed into) the table directly, beside what the clients see: a
conversation's item, its stored messages and connections, a day of figures, a report's days.

Reads are consistent: a test checks what the app has written, never a stale replica.
"""

from __future__ import annotations

from datetime import UTC, datetime

from chalicelib import stats
from chalicelib.models import (
    META,
    ConversationModel,
    MessageModel,
    conversation_key,
    raw_query,
    transact_write,
)

# 20:00 UTC on 10 March 2026 is 09:00 on 11 March in Auckland (UTC+13): a day item keyed by
# the UTC date would be wrong, so the tests of figures also check the site's own calendar.
T0 = int(datetime(2026, 3, 10, 20, 0, tzinfo=UTC).timestamp() * 1000)
ZONE = "Pacific/Auckland"
DAY = "2026-03-11"
ALL_DAY = {d: [["00:00", "24:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def conv_item(conv_id: str) -> ConversationModel:
    return ConversationModel.get(conversation_key(conv_id), META, consistent_read=True)


def stored(conv: str) -> list[tuple[int, str]]:
    """(seq, text) of every message stored in ``conv``, in order."""
    pk = conversation_key(conv)
    return [(m.seq, m.text) for m in MessageModel.query(pk, MessageModel.sk.startswith("MSG#"),
                                                        consistent_read=True)]


def connections(conv: str) -> dict[str, str]:
    """The connections ``conv`` fans out to (connection id -> role)."""
    return conv_item(conv).connections()


def day_item(site: str, agent: str | None = None, day: str = DAY) -> dict[str, int]:
    sk = f"D#{day}#*" if agent is None else f"D#{day}#a#{agent}"
    items = raw_query(KeyConditionExpression="pk = :pk AND sk = :sk",
                      ExpressionAttributeValues={":pk": {"S": f"STATS#{site}"}, ":sk": {"S": sk}})
    return {k: int(v["N"]) for item in items for k, v in item.items() if "N" in v}


# ------------------------------------------------------------------ a report's seeded days

MON, TUE, WED = "2026-03-09", "2026-03-10", "2026-03-11"


def measures(agent: str, day: str, hour: int, wait_s: float | None, *, outcome: str = "answered",
             frt_s: float | None = None, after_hours: bool = False) -> stats.Measures:
    """The figures of one chat, as ``stats.measure`` would have taken them."""
    return stats.Measures(
        agent=agent, day=day, hour=hour, outcome=outcome,
        wait_ms=None if wait_s is None else int(wait_s * 1000),
        first_response_ms=None if frt_s is None else int(frt_s * 1000), resolution_ms=600_000,
        messages_visitor=3, messages_agent=4, transfers=0, holds=0, after_hours=after_hours,
        after_hours_answer_ms=7_200_000 if after_hours else None)


# Ten waits: 3 8 12 25 40 | 50 70 100 200 400 s. Read from the histogram, the median is the
# top of the 30-45 s bucket that holds the 5th (45 s, which is also the true median of 40 and
# 50) and the p90 the top of the 180-240 s bucket that holds the 9th (240 s).
def seed_chats(alice: str, bob: str) -> list[stats.Measures]:
    return [
        measures(alice, MON, 10, 3, frt_s=20), measures(alice, MON, 10, 8, frt_s=20),
        measures(alice, MON, 10, 12, frt_s=20), measures(alice, MON, 10, None, outcome="missed"),
        measures(alice, WED, 14, 25, frt_s=20), measures(alice, WED, 14, 40, frt_s=20),
        measures(alice, WED, 14, 50, frt_s=20),
        measures(bob, WED, 14, 70, frt_s=20), measures(bob, WED, 14, 100, frt_s=20),
        measures(bob, WED, 14, 200, outcome="abandoned", frt_s=20), measures(bob, WED, 14, 400, frt_s=20),
        measures(bob, WED, 14, None, outcome="missed", after_hours=True),
    ]


def seed(site: str, alice: str, bob: str) -> None:
    """Write ``seed_chats``' figures, two ratings and two offline messages into the site's days."""
    for m in seed_chats(alice, bob):
        transact_write([stats.day_update(site, m.day, None, m.increments()),
                        stats.day_update(site, m.day, m.agent, m.increments())])
    for day, who, rating in ((MON, alice, {"up": 3}), (WED, bob, {"down": 1})):
        transact_write([stats.day_update(site, day, None, rating), stats.day_update(site, day, who, rating)])
    transact_write([stats.day_update(site, WED, None, {"offline": 2})])

