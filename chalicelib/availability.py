"""Is anyone there? A site is online when it is inside its opening hours AND at least one
agent is on shift. Visitors get the status on hello and a push whenever it flips."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib import clock, frames, routing, sites, unattended
from chalicelib.fanout import Outbox
from chalicelib.hours import from_ms, to_ms
from chalicelib.store import ConnectionModel, SiteModel, keys, update_or_old


@dataclass(frozen=True)
class Status:
    online: bool
    in_hours: bool
    agents: bool
    next_open: int | None  # ms since the epoch; the client shows it in the visitor's zone
    # Why a site is out of hours today, when it is a closure date: its note ("Christmas"), or
    # "" for a closure without one; None otherwise. The console's banner says why visitors
    # read "We're away" (issue 16); the widget does not need it.
    closure: str | None = None

    def frame(self) -> dict[str, Any]:
        return frames.status(self.online, self.in_hours, self.agents, self.next_open, self.closure)


def status(site: SiteModel, now_ms: int | None = None) -> Status:
    now = from_ms(clock.now_ms() if now_ms is None else now_ms)
    plan = sites.schedule(site)
    in_hours = plan.is_open(now)
    agents = routing.anyone_on_shift(site.id)
    upcoming = None  # open but nobody on shift: back when someone signs on, no promise
    closure = None
    if not in_hours:
        opening = plan.next_open(now)
        upcoming = to_ms(opening) if opening else None
        closure = plan.closures.get(now.astimezone(plan.zone).date())
    return Status(online=in_hours and agents, in_hours=in_hours, agents=agents, next_open=upcoming,
                  closure=closure)


def refresh(site_id: str, outbox: Outbox) -> Status:
    """Recompute a site's status; when it flipped, tell every visitor connected to the site,
    and when it flipped to offline, tell every waiting visitor that nobody can answer now
    (``unattended.tell_waiting``: every place where nobody can become left calls this),
    and tell the consoles of agents on shift (so they learn at once that visitors read "We're
    away": one more Query, only on a flip).

    The flip is detected with a conditional write on the site item, so concurrent triggers
    (a shift change and the minute timer) push it once.
    """
    site = sites.get(site_id)
    current = status(site)
    S = SiteModel
    # S.sk.exists(): an UpdateItem would otherwise create the item of a site nobody created
    changed, _ = update_or_old(S, keys.SITES, [S.online.set(current.online)],
                               S.sk.exists() & (S.online.does_not_exist() | (S.online != current.online)),
                               range_key=site_id)
    if changed:
        visitors = ConnectionModel.site_index.query(keys.site_visitors_key(site_id))
        conns = [keys.item_id(c.pk) for c in visitors]
        conns += [conn for agent in routing.on_shift(site_id) for conn in sorted(agent.conns or ())]
        outbox.to(conns, current.frame())
        if not current.online:
            unattended.tell_waiting(site_id, outbox)
    return current
