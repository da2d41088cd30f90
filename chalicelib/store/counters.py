"""Small bookkeeping items: rate-limit counters, cursors of paged walks, sign-in lock events."""

from __future__ import annotations

from pynamodb.attributes import NumberAttribute, TTLAttribute, UnicodeAttribute

from chalicelib.store.base import TableModel
from chalicelib.store.keys import META


class CounterModel(TableModel):
    """A rate-limit counter for one key in one time window."""

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default=META)
    hits = NumberAttribute(default=0, attr_name="n")  # what the window has counted so far
    ttl = TTLAttribute(null=True)


class CursorModel(TableModel):
    """Where a paged background walk stopped (the minute timer's round of sites)."""

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default=META)
    after = UnicodeAttribute(null=True)  # the last key served; the next run goes on after it


class LockEventModel(TableModel):
    """A sign-in limit that filled up: shown to the site's admins (who was locked, from where)."""

    pk = UnicodeAttribute(hash_key=True)  # LOCKS#<site>
    sk = UnicodeAttribute(range_key=True)  # <ms:015d>#<scope>#<agent>
    at = NumberAttribute()
    agent = UnicodeAttribute()
    scope = UnicodeAttribute()  # "account+source", "source" or "account"
    source = UnicodeAttribute(null=True)  # keyed hash of the address (auth.fingerprint), never the IP
    ttl = TTLAttribute(null=True)
