"""Reports: a site's service figures over a date range, per day, per hour of the week, per
agent and overall, from the daily aggregates ``chalicelib.stats`` keeps (one Query on the
site's figures partition, then sums; no scan, whatever the size of the history).

Days are the site's calendar days in its own zone (the zone of its business hours; UTC for
a site without hours). Medians and p90s are read from the summed histograms, so they are
exact to the bucket and placed linearly within it (``stats.EDGES``).
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import date, timedelta
from typing import Any

from chalicelib import agents, clock, sites, stats
from chalicelib.errors import BAD_REQUEST, Refusal
from chalicelib.hours import from_ms
from chalicelib.store import keys, raw_query

MAX_DAYS = 366
DEFAULT_DAYS = 7
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def date_range(start: str | None, end: str | None, site_id: str) -> tuple[date, date]:
    """``from`` and ``to`` (inclusive, YYYY-MM-DD); by default the last seven days, today
    included, in the site's zone."""
    today = from_ms(clock.now_ms()).astimezone(stats.zone(sites.get(site_id))).date()
    try:
        last = date.fromisoformat(end) if end else today
        first = date.fromisoformat(start) if start else last - timedelta(days=DEFAULT_DAYS - 1)
    except ValueError:
        raise Refusal(BAD_REQUEST, "from and to are dates like 2026-03-01.") from None
    if first > last:
        raise Refusal(BAD_REQUEST, "from must not be after to.")
    if (last - first).days + 1 > MAX_DAYS:
        raise Refusal(BAD_REQUEST, f"A report covers at most {MAX_DAYS} days.")
    return first, last


def _numbers(item: dict[str, Any]) -> Counter[str]:
    return Counter({k: int(v["N"]) for k, v in item.items() if "N" in v})


def _seconds(ms_total: int, n: int) -> float | None:
    return round(ms_total / n / 1000, 1) if n else None


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _q(counts: Counter[str], prefix: str, q: float) -> float | None:
    value = stats.quantile([counts[stats.bucket_name(prefix, i)] for i in range(stats.BUCKETS)], q)
    return None if value is None else round(value, 1)


FIGURES = ("chats", "answered", "missed", "abandoned", "missed_share", "abandoned_share",
           "wait_median_s", "wait_p90_s", "first_response_median_s", "first_response_p90_s",
           "resolution_avg_s", "messages_visitor", "messages_agent", "transfers", "holding_messages",
           "rated_up", "rated_down", "satisfaction", "after_hours_chats", "after_hours_messages",
           "offline_messages", "after_hours_answer_avg_s", "chat_conversations", "email_conversations",
           "email_answer_avg_s")


def figures(c: Counter[str]) -> dict[str, Any]:
    """Readable figures from summed day items. Satisfaction is the share of thumbs up."""
    w, f = stats.HISTOGRAMS["wait"], stats.HISTOGRAMS["first_response"]
    return {
        "chats": c["chats"], "answered": c["answered"], "missed": c["missed"], "abandoned": c["abandoned"],
        "missed_share": _share(c["missed"], c["chats"]),
        "abandoned_share": _share(c["abandoned"], c["chats"]),
        "wait_median_s": _q(c, w, 0.5), "wait_p90_s": _q(c, w, 0.9),
        "first_response_median_s": _q(c, f, 0.5), "first_response_p90_s": _q(c, f, 0.9),
        "resolution_avg_s": _seconds(c["res_ms"], c["res_n"]),
        "messages_visitor": c["msg_v"], "messages_agent": c["msg_a"], "transfers": c["transfers"],
        "holding_messages": c["holds"], "rated_up": c["up"], "rated_down": c["down"],
        "satisfaction": _share(c["up"], c["up"] + c["down"]),
        "after_hours_chats": c["ah_chats"], "after_hours_messages": c["ah_msgs"] + c["offline"],
        "offline_messages": c["offline"],
        "after_hours_answer_avg_s": _seconds(c["ah_ans_ms"], c["ah_ans_n"]),
        # the split by channel (chalicelib.inbox): every conversation is one or the other
        "chat_conversations": c["chats"] - c["em_chats"], "email_conversations": c["em_chats"],
        "email_answer_avg_s": _seconds(c["em_ans_ms"], c["em_ans_n"]),
    }


def report(site_id: str, first: date, last: date, agent: str | None = None) -> dict[str, Any]:
    """The figures of ``site_id`` from ``first`` to ``last``, for everyone or one agent."""
    low, high = keys.day_range(first.isoformat(), last.isoformat())
    items = raw_query(
        KeyConditionExpression="pk = :pk AND sk BETWEEN :a AND :b",
        ExpressionAttributeValues={":pk": {"S": keys.stats_key(site_id)}, ":a": {"S": low},
                                   ":b": {"S": high}})
    site_days: dict[str, Counter[str]] = {}
    agent_days: dict[str, dict[str, Counter[str]]] = {}
    for item in items:
        _, day, who = item["sk"]["S"].split("#", 2)
        if who == "*":
            site_days[day] = _numbers(item)
        elif who.startswith("a#"):
            agent_days.setdefault(who[2:], {})[day] = _numbers(item)
    source = agent_days.get(agent, {}) if agent else site_days
    days, total = [], Counter[str]()
    hours = [[0] * 24 for _ in WEEKDAYS]
    day = first
    while day <= last:
        counts = source.get(day.isoformat(), Counter())
        total.update(counts)
        for hour in range(24):
            hours[day.weekday()][hour] += counts[f"h{hour:02d}"]
        days.append({"date": day.isoformat(), **figures(counts)})
        day += timedelta(days=1)
    names = {a["id"]: a["name"] for a in agents.team(site_id)}
    per_agent = [{"agent": a, "name": names.get(a, a), **figures(sum(d.values(), Counter()))}
                 for a, d in sorted(agent_days.items()) if not agent or a == agent]
    return {"site": site_id, "from": first.isoformat(), "to": last.isoformat(), "agent": agent,
            "timezone": sites.schedule(sites.get(site_id)).tz, "totals": figures(total), "days": days,
            "hours_of_week": {"days": list(WEEKDAYS), "chats": hours}, "agents": per_agent}


def to_csv(doc: dict[str, Any]) -> str:
    """One table for a spreadsheet: a row per day, per agent, per hour of the week (chats
    only), and the total; the ``scope`` column says which."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["scope", "date", "agent", *FIGURES])
    for row in doc["days"]:
        writer.writerow(["day", row["date"], doc["agent"] or "", *(_cell(row[k]) for k in FIGURES)])
    span = f"{doc['from']}..{doc['to']}"
    for row in doc["agents"]:
        writer.writerow(["agent", span, row["agent"], *(_cell(row[k]) for k in FIGURES)])
    for d, name in enumerate(WEEKDAYS):
        for hour in range(24):
            chats = doc["hours_of_week"]["chats"][d][hour]
            writer.writerow(["hour_of_week", f"{name} {hour:02d}:00", doc["agent"] or "", chats,
                             *([""] * (len(FIGURES) - 1))])
    writer.writerow(["total", span, doc["agent"] or "",
                     *(_cell(doc["totals"][k]) for k in FIGURES)])
    return out.getvalue()


def _cell(value: Any) -> str:
    return "" if value is None else str(value)
