"""Agents: accounts, capacity, open consoles, and the indexes that find them per site."""

from __future__ import annotations

from pynamodb.attributes import BooleanAttribute, NumberAttribute, UnicodeAttribute, UnicodeSetAttribute
from pynamodb.indexes import GlobalSecondaryIndex, IncludeProjection, KeysOnlyProjection

from chalicelib import config
from chalicelib.store.base import TableModel
from chalicelib.store.keys import META, item_id


class ShiftIndex(GlobalSecondaryIndex["AgentModel"]):
    """Agents on shift per site (present only while on shift)."""

    class Meta:
        index_name = "shift"
        projection = IncludeProjection(["name", "convs", "conns", "max_chats", "on_shift"])

    s_pk = UnicodeAttribute(hash_key=True)
    s_sk = UnicodeAttribute(range_key=True)


class AgentDueIndex(GlobalSecondaryIndex["AgentModel"]):
    """The "due" index, agent side: agents whose grace period ends (kind ``GRACE``)."""

    class Meta:
        index_name = "due"
        projection = KeysOnlyProjection()

    due_pk = UnicodeAttribute(hash_key=True)
    due_sk = UnicodeAttribute(range_key=True)


class TeamIndex(GlobalSecondaryIndex["AgentModel"]):
    """Every agent of a site (the admin's team list and the transfer picker)."""

    class Meta:
        index_name = "team"
        projection = IncludeProjection(["name", "role", "max_chats", "convs", "conns", "on_shift",
                                        "away", "email", "disabled"])

    team_pk = UnicodeAttribute(hash_key=True)
    team_sk = UnicodeAttribute(range_key=True)


class AgentModel(TableModel):
    """An agent account, its capacity, its assigned conversations and its open consoles."""

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default=META)
    name = UnicodeAttribute()
    site = UnicodeAttribute(default=lambda: config.settings().default_site)
    email = UnicodeAttribute(null=True)
    pw_hash = UnicodeAttribute(null=True)
    role = UnicodeAttribute(default="agent")
    max_chats = NumberAttribute(default=lambda: config.settings().default_max_chats)
    convs = UnicodeSetAttribute(null=True)
    conns = UnicodeSetAttribute(null=True)
    on_shift = BooleanAttribute(default=False)
    s_pk = UnicodeAttribute(null=True)  # SHIFT#<site> while on shift
    s_sk = UnicodeAttribute(null=True)
    due_pk = UnicodeAttribute(null=True)  # GRACE while no console is open
    due_sk = UnicodeAttribute(null=True)
    away = BooleanAttribute(default=False)
    disabled = BooleanAttribute(default=False)
    offers = UnicodeSetAttribute(null=True)  # conversations offered to this agent by transfer
    team_pk = UnicodeAttribute(null=True)  # TEAM#<site>
    team_sk = UnicodeAttribute(null=True)
    shift_index = ShiftIndex()
    team_index = TeamIndex()
    due_index = AgentDueIndex()

    @property
    def id(self) -> str:
        return item_id(self.pk)

    @property
    def load(self) -> int:
        return len(self.convs or ())
