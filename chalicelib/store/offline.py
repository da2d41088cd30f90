"""After-hours mail: offline messages left for the team, and emails sent at most once."""

from __future__ import annotations

from pynamodb.attributes import NumberAttribute, TTLAttribute, UnicodeAttribute
from pynamodb.indexes import GlobalSecondaryIndex, KeysOnlyProjection

from chalicelib.store.base import TableModel
from chalicelib.store.conversations import EmailItemsIndex, VisitorItemsIndex
from chalicelib.store.keys import META, item_id


class OfflineDueIndex(GlobalSecondaryIndex["OfflineMessageModel"]):
    """The "due" index, offline-message side: stored but not yet queued (kind ``UNQUEUED``)."""

    class Meta:
        index_name = "due"
        projection = KeysOnlyProjection()

    due_pk = UnicodeAttribute(hash_key=True)
    due_sk = UnicodeAttribute(range_key=True)


class OfflineMessageModel(TableModel):
    """A message left while nobody was on shift; stored before it is acknowledged."""

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default=META)
    site = UnicodeAttribute()
    visitor_id = UnicodeAttribute(null=True)
    conv_id = UnicodeAttribute(null=True)
    name = UnicodeAttribute(null=True)
    email = UnicodeAttribute()
    text = UnicodeAttribute()
    page = UnicodeAttribute(null=True)
    created_at = NumberAttribute()
    due_pk = UnicodeAttribute(null=True)  # "UNQUEUED" until it is on the mail queue
    due_sk = UnicodeAttribute(null=True)
    email_key = UnicodeAttribute(null=True)  # see EmailItemsIndex
    ttl = TTLAttribute(null=True)  # retention, see keep_until
    due_index = OfflineDueIndex()
    visitor_index = VisitorItemsIndex()
    email_index = EmailItemsIndex()

    @property
    def id(self) -> str:
        return item_id(self.pk)


class MailModel(TableModel):
    """An email that must go out at most once: claimed with a lease, then marked sent."""

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default=META)
    lease_until = NumberAttribute(null=True)
    sent_at = NumberAttribute(null=True)
    attempts = NumberAttribute(default=0)
    provider_id = UnicodeAttribute(null=True)
    # On ``mail_key("suppressed:<fingerprint of the address>")`` only: why nothing more is
    # sent to that address ("bounce" or "complaint", chalicelib.email_channel).
    suppressed = UnicodeAttribute(null=True)
    ttl = TTLAttribute(null=True)
