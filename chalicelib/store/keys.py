"""Every key of the one table: its prefixes and the functions that build them.

Single-table design puts several item types in one keyspace, so a key's prefix is what tells
them apart; a typo in one is a silent miss, not an error. Keeping every prefix here, and
building keys only through these functions, means the access-pattern table
(``chalicelib.store.table.ACCESS_PATTERNS``) can be checked against them, and a test can
forbid raw ``"XYZ#"`` literals anywhere else. The stored formats are fixed: changing one is
a data migration.
"""

from __future__ import annotations

META = "META"  # sort key of every "one item per partition" type

# Partition prefixes of the table's own items.
CONVERSATION = "CONV#"
AGENT = "AGENT#"
VISITOR = "VISITOR#"
CONNECTION = "CONN#"
OFFLINE = "OFFLINE#"
MAIL = "MAIL#"
RATE = "RATE#"
KNOWN_SOURCE = "LOGIN-FROM#"  # a counter item: this account signed in from this source lately
CURSOR = "CURSOR#"
LOCKS = "LOCKS#"
STATS = "STATS#"
SITES = "SITE"  # the one partition holding every site (sort key: the site id)

# Sort-key prefixes under a conversation's partition.
MESSAGE = "MSG#"
NOTE = "NOTE#"
# Sort-key prefix of a day's figures under a site's STATS partition.
DAY = "D#"

# Index partitions (sparse: an item is in the index only while it carries the attribute).
TEAM = "TEAM#"  # team: every agent of a site
SHIFT = "SHIFT#"  # shift: agents on shift
QUEUE = "QUEUE#"  # queue: waiting conversations, oldest first
HISTORY = "HIST#"  # queue index, second use: a site's closed conversations by close time
INBOX = "INBOX#"  # queue index, third use: a site's offline messages waiting for an agent
GONE = "GONE#"  # due: open chats whose visitor is away
SITE_VISITORS = "VCONN#"  # site_visitors: visitor connections of a site
GRACE = "GRACE"  # due: agents whose grace period (no console open) ends
UNQUEUED = "UNQUEUED"  # due: offline messages stored but not yet on the mail queue

HOUSEKEEPING = "housekeeping"  # the minute timer's cursor over the sites


def item_id(key: str) -> str:
    """The id part of a ``PREFIX#id`` partition key."""
    return key.split("#", 1)[1]


def conversation_key(conv_id: str) -> str:
    return f"{CONVERSATION}{conv_id}"


def is_conversation_key(key: str) -> bool:
    return key.startswith(CONVERSATION)


def message_sk(seq: int) -> str:
    """Zero-padded, so string order is seq order (resume: ``sk > message_sk(N)``)."""
    return f"{MESSAGE}{seq:012d}"


def note_sk(at_ms: int, nonce: str) -> str:
    return f"{NOTE}{at_ms:015d}#{nonce}"


def agent_key(agent_id: str) -> str:
    return f"{AGENT}{agent_id}"


def visitor_key(visitor_id: str) -> str:
    return f"{VISITOR}{visitor_id}"


def connection_key(connection_id: str) -> str:
    return f"{CONNECTION}{connection_id}"


def offline_key(message_id: str) -> str:
    return f"{OFFLINE}{message_id}"


def mail_key(job_key: str) -> str:
    return f"{MAIL}{job_key}"


def rate_key(key: str, window: int) -> str:
    """One rate-limit counter: ``key`` in time window number ``window``."""
    return f"{RATE}{key}#{window}"


def known_source_key(account: str, source: str) -> str:
    return f"{KNOWN_SOURCE}{account}#{source}"


def cursor_key(name: str) -> str:
    return f"{CURSOR}{name}"


def locks_key(site: str) -> str:
    return f"{LOCKS}{site}"


def lock_sk(at_ms: int, scope: str, agent: str) -> str:
    return f"{at_ms:015d}#{scope}#{agent}"


def stats_key(site: str) -> str:
    return f"{STATS}{site}"


def day_sk(day: str, agent: str | None = None) -> str:
    """A day's figures: the site's (``D#<day>#*``) or one agent's (``D#<day>#a#<agent>``)."""
    return f"{DAY}{day}#*" if agent is None else f"{DAY}{day}#a#{agent}"


def day_range(first: str, last: str) -> tuple[str, str]:
    """Sort-key bounds of every figure item from ``first`` to ``last`` (dates, inclusive)."""
    return f"{DAY}{first}", f"{DAY}{last}#~"


def team_key(site: str) -> str:
    return f"{TEAM}{site}"


def shift_key(site: str) -> str:
    return f"{SHIFT}{site}"


def queue_key(site: str) -> str:
    return f"{QUEUE}{site}"


def history_key(site: str) -> str:
    return f"{HISTORY}{site}"


def inbox_key(site: str) -> str:
    return f"{INBOX}{site}"


def gone_key(site: str) -> str:
    return f"{GONE}{site}"


def site_visitors_key(site: str) -> str:
    return f"{SITE_VISITORS}{site}"


def due_sk(at_ms: int, suffix: str = "") -> str:
    """Sort key of the "due" index: zero-padded milliseconds, so string order is time order."""
    return f"{at_ms:015d}{suffix}"


def timed_sk(at_ms: int, conv_id: str) -> str:
    """``<ms>#<conversation>``: the sort key of the queue, history and gone lists (time
    order, ties broken by id)."""
    return due_sk(at_ms, f"#{conv_id}")


def email_key(site: str, email: str) -> str:
    """The ``by_email`` key: per site, case-insensitive."""
    return f"{site}#{email.strip().lower()}"
