"""Sites: one item of settings per site, all in one partition."""

from __future__ import annotations

from pynamodb.attributes import BooleanAttribute, UnicodeAttribute

from chalicelib.store.base import TableModel
from chalicelib.store.keys import SITES


class SiteModel(TableModel):
    """One site's settings. All sites share a partition, so listing them is one Query."""

    pk = UnicodeAttribute(hash_key=True, default=SITES)
    sk = UnicodeAttribute(range_key=True)
    name = UnicodeAttribute(null=True)
    team_email = UnicodeAttribute(null=True)
    hours = UnicodeAttribute(null=True)  # JSON, see chalicelib.hours
    widget = UnicodeAttribute(null=True)  # JSON, see chalicelib.sites.validate_widget
    console = UnicodeAttribute(null=True)  # JSON, see chalicelib.sites.validate_console
    online = BooleanAttribute(null=True)  # the status last pushed to visitors
    # no_agents not yet told past this place in line (chalicelib.unattended)
    no_agents_after = UnicodeAttribute(null=True, attr_name="na_after")

    @property
    def id(self) -> str:
        return self.sk
