"""Site settings: business hours, the team's address, a display name.

All sites live in one partition (``SITE``), so the scheduled status check lists them with
one Query. A site nobody configured has no item: it is always open, mail goes to the
deployment's ``TEAM_EMAIL``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pynamodb.expressions.update import Action

from chalicelib import config
from chalicelib.hours import Schedule, ScheduleError
from chalicelib.models import SiteModel

EMAIL = re.compile(r"^[^@\s<>\"',;]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")


def valid_email(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 254 and bool(EMAIL.match(value))


def get(site: str) -> SiteModel:
    """The site's settings, or defaults when it was never configured."""
    try:
        return SiteModel.get("SITE", site, consistent_read=True)
    except SiteModel.DoesNotExist:
        return SiteModel("SITE", site)


def schedule(site: SiteModel) -> Schedule:
    return Schedule.from_dict(json.loads(site.hours)) if site.hours else Schedule.open_always()


def team_email(site: SiteModel) -> str:
    return site.team_email or config.TEAM_EMAIL


def display_name(site: SiteModel) -> str:
    return site.name or site.id


def all_sites() -> list[SiteModel]:
    return list(SiteModel.query("SITE"))


def public(site: SiteModel) -> dict[str, Any]:
    return {"site": site.id, "name": display_name(site), "team_email": team_email(site),
            "hours": schedule(site).to_dict()}


def update(site_id: str, doc: Any) -> SiteModel:
    """Apply a settings document (any of hours, team_email, name); raises ValueError."""
    if not isinstance(doc, dict) or not set(doc) <= {"hours", "team_email", "name"} or not doc:
        raise ValueError("Send an object with any of: hours, team_email, name.")
    S = SiteModel
    actions: list[Action] = []
    if "hours" in doc:
        if doc["hours"] is None:
            actions.append(S.hours.remove())
        else:
            parsed = Schedule.from_dict(doc["hours"])  # ScheduleError is a ValueError
            actions.append(S.hours.set(json.dumps(parsed.to_dict())))
    if "team_email" in doc:
        if not valid_email(doc["team_email"]):
            raise ValueError("team_email: not a valid email address.")
        actions.append(S.team_email.set(doc["team_email"]))
    if "name" in doc:
        if not isinstance(doc["name"], str) or not 0 < len(doc["name"]) <= 100:
            raise ValueError("name: 1 to 100 characters.")
        actions.append(S.name.set(doc["name"]))
    item = SiteModel("SITE", site_id)
    item.update(actions=actions)
    return item


__all__ = ["ScheduleError", "all_sites", "get", "public", "schedule", "update", "valid_email"]
