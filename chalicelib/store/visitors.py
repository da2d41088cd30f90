"""Visitors and WebSocket connections (of visitors and agents alike)."""

from __future__ import annotations

from typing import Any

from pynamodb.attributes import (
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
)
from pynamodb.indexes import GlobalSecondaryIndex, IncludeProjection

from chalicelib.store.base import TableModel, plain_map
from chalicelib.store.keys import META


class SiteConnectionsIndex(GlobalSecondaryIndex["ConnectionModel"]):
    """Visitor connections per site, to push "are we open?" changes to everyone browsing."""

    class Meta:
        index_name = "site_visitors"
        projection = IncludeProjection(["subject", "connected_at"])

    site_pk = UnicodeAttribute(hash_key=True)
    site_sk = UnicodeAttribute(range_key=True)


class ConnectionModel(TableModel):
    """What a WebSocket connection is; expires by TTL if a $disconnect never arrives."""

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default=META)
    role = UnicodeAttribute()
    subject = UnicodeAttribute()
    site = UnicodeAttribute()
    connected_at = NumberAttribute()
    # A keyed hash of the source address, for per-address rate limits without storing it.
    ip_hash = UnicodeAttribute(null=True)
    site_pk = UnicodeAttribute(null=True)  # VCONN#<site> for a visitor's connection
    site_sk = UnicodeAttribute(null=True)
    # Frame budgets (chalicelib/limits.py): per action class, the window being counted and
    # the frames counted in it. Two small maps; a class adds a key, not an attribute.
    budget_windows = MapAttribute[str, Any](default=dict, attr_name="rw")
    budget_counts = MapAttribute[str, Any](default=dict, attr_name="rn")
    ttl = TTLAttribute()
    site_index = SiteConnectionsIndex()


class VisitorModel(TableModel):
    """A visitor: their open conversation (at most one) and their open tabs."""

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default=META)
    site = UnicodeAttribute(null=True)
    conv = UnicodeAttribute(null=True)
    conns = UnicodeSetAttribute(null=True)
    created_at = NumberAttribute(null=True)
    page = MapAttribute[str, Any](null=True)  # where the visitor is now: url, title, referrer, ts
    pages = ListAttribute[Any](null=True)  # the pages of this visit, oldest first (bounded)
    fired = UnicodeSetAttribute(null=True)  # invitation rules already fired this visit
    user_agent = UnicodeAttribute(null=True)
    timezone = UnicodeAttribute(null=True)
    past = ListAttribute[Any](null=True)  # ids of this visitor's closed conversations, newest last
    ttl = TTLAttribute(null=True)  # retention, see keep_until
    invite = MapAttribute[str, Any](null=True)  # the pending proactive invitation

    def current_page(self) -> dict[str, Any] | None:
        return plain_map(self.page) if self.page else None

    def visit_pages(self) -> list[dict[str, Any]]:
        return [plain_map(p) for p in self.pages or []]
