"""The store layer holds its promises: the access-pattern table matches the table's indexes and
key builders, the stored names and key formats are the ones already in the table (no data
migration), and no module outside chalicelib/store builds a key by hand. Pure: no stack."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from chalicelib import store
from chalicelib.store import ACCESS_PATTERNS, ALL_MODELS, keys, table_definition
from chalicelib.store.table import patterns_markdown

ROOT = Path(__file__).resolve().parent.parent
STORE = ROOT / "chalicelib" / "store"

# Every attribute name as stored, per item type: what items already in the table carry.
# Renaming a Python attribute is free; changing one of these is a data migration.
STORED_NAMES = {
    "ConversationModel": {
        "accepted_at", "after_hours", "agent_id", "agent_name", "assigned_at", "by_email", "closed_at",
        "ch", "cm", "co", "conns", "counted", "created_at", "cs", "digested_seq", "due_pk", "due_sk", "em",
        "email",
        "email_key", "holds", "last_at", "last_by", "mf", "mn", "ok", "outcome", "page", "pk", "preview",
        "q_pk", "q_sk", "queued_at", "rating", "reads", "reason", "seq", "site", "sk", "status", "transfer",
        "transfers", "ttl", "tx", "tx_close", "v_left_at", "v_on_at", "visitor_id", "visitor_name"},
    "MessageModel": {"attempt", "author", "ch", "cmid", "name", "orig", "pk", "role", "seq", "sk", "text",
                     "ts", "ttl"},
    "NoteModel": {"attempt", "author", "ch", "cmid", "name", "orig", "pk", "role", "seq", "sk", "text", "ts",
                  "ttl"},
    "ConnectionModel": {"connected_at", "ip_hash", "pk", "rn", "role", "rw", "site", "site_pk", "site_sk",
                        "sk", "subject", "ttl"},
    "VisitorModel": {"conns", "conv", "created_at", "fired", "invite", "page", "pages", "past", "pk", "site",
                     "sk", "timezone", "ttl", "user_agent"},
    "AgentModel": {"away", "conns", "convs", "disabled", "due_pk", "due_sk", "email", "max_chats", "name",
                   "offers", "on_shift", "pk", "pw_hash", "role", "s_pk", "s_sk", "site", "sk", "team_pk",
                   "team_sk"},
    "SiteModel": {"console", "hours", "na_after", "name", "online", "pk", "sk", "team_email", "widget"},
    "OfflineMessageModel": {"conv_id", "created_at", "due_pk", "due_sk", "email", "email_key", "name", "page",
                            "pk", "site", "sk", "text", "ttl", "visitor_id"},
    "MailModel": {"attempts", "lease_until", "pk", "provider_id", "sent_at", "sk", "suppressed", "ttl"},
    "CounterModel": {"n", "pk", "sk", "ttl"},
    "CursorModel": {"after", "pk", "sk"},
    "LockEventModel": {"agent", "at", "pk", "scope", "sk", "source", "ttl"},
}


def _index_names() -> set[str]:
    return {i["IndexName"] for i in table_definition()["GlobalSecondaryIndexes"]}


def test_every_index_serves_a_pattern_and_every_pattern_names_a_real_index():
    indexes = _index_names()
    used = {p.index for p in ACCESS_PATTERNS if p.index is not None}
    assert indexes == {"queue", "shift", "due", "site_visitors", "team", "by_visitor", "by_email"}
    assert indexes - used == set(), "an index no pattern uses: list it, or drop it"
    assert used - indexes == set(), "a pattern on an index the table does not define"


def test_each_pattern_key_builder_produces_its_listed_prefix():
    for p in ACCESS_PATTERNS:
        key = p.key(*p.example)
        assert key.startswith(p.prefix), (p.name, key, p.prefix)
        if p.index is None:  # the table's own partitions are all typed by their prefix
            assert p.prefix, p.name


def test_site_history_on_the_queue_index_is_listed():
    """The pattern that had drifted out of the old docstring table."""
    history = [p for p in ACCESS_PATTERNS if p.prefix == keys.HISTORY]
    assert history and history[0].index == "queue"


def test_every_partition_key_builder_and_prefix_is_in_the_table():
    builders = {name for name, fn in inspect.getmembers(keys, inspect.isfunction)
                if name.endswith("_key") and name != "is_conversation_key"}
    listed = {getattr(p.key, "__name__", "") for p in ACCESS_PATTERNS}
    assert builders - listed == set(), "a key builder no access pattern lists"
    partition_prefixes = {value for name, value in vars(keys).items()
                          if name.isupper() and isinstance(value, str)
                          and name not in ("META", "MESSAGE", "NOTE", "DAY", "HOUSEKEEPING")}
    assert partition_prefixes - {p.prefix for p in ACCESS_PATTERNS} == set()
    sorts = " ".join(p.sort for p in ACCESS_PATTERNS)
    for sort_prefix in (keys.MESSAGE, keys.NOTE, keys.DAY):
        assert sort_prefix in sorts


def test_key_formats_are_the_stored_ones():
    assert keys.conversation_key("c1") == "CONV#c1"
    assert keys.message_sk(7) == "MSG#000000000007"
    assert keys.note_sk(5, "ab12") == "NOTE#000000000000005#ab12"
    assert keys.agent_key("a1") == "AGENT#a1"
    assert keys.visitor_key("v1") == "VISITOR#v1"
    assert keys.connection_key("k1") == "CONN#k1"
    assert keys.offline_key("m1") == "OFFLINE#m1"
    assert keys.mail_key("j1") == "MAIL#j1"
    assert keys.rate_key("login-ip#h", 42) == "RATE#login-ip#h#42"
    assert keys.known_source_key("a1", "h1") == "LOGIN-FROM#a1#h1"
    assert keys.cursor_key(keys.HOUSEKEEPING) == "CURSOR#housekeeping"
    assert keys.locks_key("s1") == "LOCKS#s1"
    assert keys.lock_sk(5, "source", "a1") == "000000000000005#source#a1"
    assert keys.stats_key("s1") == "STATS#s1"
    assert keys.day_sk("2026-01-02") == "D#2026-01-02#*"
    assert keys.day_sk("2026-01-02", "a1") == "D#2026-01-02#a#a1"
    assert keys.day_range("2026-01-01", "2026-01-31") == ("D#2026-01-01", "D#2026-01-31#~")
    assert (keys.team_key("s"), keys.shift_key("s"), keys.queue_key("s"), keys.history_key("s"),
            keys.gone_key("s"), keys.site_visitors_key("s")) == (
        "TEAM#s", "SHIFT#s", "QUEUE#s", "HIST#s", "GONE#s", "VCONN#s")
    assert (keys.GRACE, keys.UNQUEUED, keys.SITES, keys.META) == ("GRACE", "UNQUEUED", "SITE", "META")
    assert keys.inbox_key("s") == "INBOX#s"
    assert keys.timed_sk(5, "c1") == "000000000000005#c1"
    assert keys.email_key("s1", " A@B.co ") == "s1#a@b.co"
    assert keys.item_id("CONV#c1#x") == "c1#x"


def test_stored_attribute_names_are_unchanged():
    assert {m.__name__ for m in ALL_MODELS} == set(STORED_NAMES)
    for model in ALL_MODELS:
        stored = {a.attr_name for a in model.get_attributes().values()}
        assert stored == STORED_NAMES[model.__name__], model.__name__


def test_short_stored_names_have_readable_python_names():
    short = [(m.__name__, py) for m in ALL_MODELS for py, a in m.get_attributes().items()
             if py in ("cm", "cs", "co", "mn", "mf", "tx", "ok", "n", "rw", "rn", "na_after")]
    assert short == []
    assert store.ConversationModel.client_counters.attr_name == "cm"
    assert store.CounterModel.hits.attr_name == "n"


def test_one_meta_for_every_item_type():
    for model in ALL_MODELS:
        assert "Meta" not in vars(model), f"{model.__name__} declares its own Meta"
        assert model.Meta is store.TableModel.Meta


def test_docs_show_the_access_patterns_as_they_are():
    assert patterns_markdown() in (ROOT / "docs" / "data.md").read_text()


# The store's knowledge, as it would look leaking into other modules.
_RAW_PREFIX = re.compile(r"""(?<![\w])f?["'][A-Z][A-Z_-]*#""")
_LEAKS = {
    "a raw key prefix (use chalicelib.store.keys)": _RAW_PREFIX,
    "a try/get/except DoesNotExist (use store.get_or_none)": re.compile(r"DoesNotExist"),
    "a private PynamoDB call (add a store function)": re.compile(
        r"_get_connection|_make_api_call|_get_save_args|from_raw_data"),
    "a model's own Meta (TableModel carries the one Meta)": re.compile(r"class Meta\(_Meta\)"),
}


def _sources_outside_the_store() -> list[Path]:
    files = [ROOT / "app.py", *sorted((ROOT / "chalicelib").rglob("*.py"))]
    return [f for f in files if STORE not in f.parents]


def test_no_module_outside_the_store_knows_keys_or_pynamodb_internals():
    found = []
    for path in _sources_outside_the_store():
        for n, line in enumerate(path.read_text().splitlines(), 1):
            for what, pattern in _LEAKS.items():
                if pattern.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{n}: {what}: {line.strip()}")
    assert found == []


def test_the_leak_check_sees_what_it_looks_for():
    """The patterns above would catch the code this layer replaced."""
    samples = ['A.s_pk.set(f"SHIFT#{who.site}")', 'WALK_CURSOR = "CURSOR#housekeeping"',
               'CounterModel(f"LOGIN-FROM#{account}#{source}", META)']
    assert all(_RAW_PREFIX.search(s) for s in samples)
    assert not _RAW_PREFIX.search('return f"{site}#{email}"')
    assert _LEAKS["a private PynamoDB call (add a store function)"].search(
        "C._get_connection().connection.client._make_api_call(")
