"""Service figures' arithmetic without the stack: histogram buckets, quantiles read from them,
the site's own calendar day, and what one closed chat adds to a day item."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from chalicelib import stats
from chalicelib.stats import BUCKETS, EDGES, HISTOGRAMS, Measures, bucket, bucket_name, local_day, quantile
from tests.support.state import DAY, T0, ZONE, seed_chats


@pytest.mark.parametrize(("ms", "index"), [
    (0, 0), (4_999, 0), (5_000, 1), (9_999, 1), (44_999, 5), (45_000, 6),
    (86_399_999, BUCKETS - 2), (86_400_000, BUCKETS - 1), (10**12, BUCKETS - 1),
])
def test_a_duration_falls_in_the_bucket_its_edges_say(ms, index):
    assert bucket(ms) == index


def test_bucket_names_sort_like_their_indexes():
    names = [bucket_name("w", i) for i in range(BUCKETS)]
    assert names[0] == "w00" and names[-1] == f"w{BUCKETS - 1:02d}" and names == sorted(names)


def test_quantiles_of_an_empty_histogram_are_unknown():
    assert quantile([0] * BUCKETS, 0.5) is None


def test_a_quantile_is_placed_linearly_inside_its_bucket():
    histogram = [0] * BUCKETS
    histogram[bucket(35_000)] = 4  # four waits in 30-45 s
    assert quantile(histogram, 0.5) == pytest.approx(37.5)
    assert quantile(histogram, 1.0) == pytest.approx(45.0)
    assert quantile(histogram, 0.25) == pytest.approx(33.75)


def test_the_seeded_reports_median_and_p90_come_from_the_histogram():
    """The ten waits of tests.support.state (3 8 12 25 40 | 50 70 100 200 400 s): the median
    reads 45 s (the top of 30-45 s), the p90 240 s (the top of 180-240 s)."""
    histogram = [0] * BUCKETS
    for m in seed_chats("alice", "bob"):
        if m.wait_ms is not None:
            histogram[bucket(m.wait_ms)] += 1
    assert sum(histogram) == 10
    assert quantile(histogram, 0.5) == pytest.approx(45.0)
    assert quantile(histogram, 0.9) == pytest.approx(240.0)


def test_everything_past_a_day_reads_as_a_day():
    histogram = [0] * BUCKETS
    histogram[-1] = 3
    assert quantile(histogram, 0.5) == float(EDGES[-1])


def test_a_figure_counts_for_the_sites_own_calendar_day_and_hour():
    assert local_day(T0, ZoneInfo(ZONE)) == (DAY, 9)  # 20:00 UTC is 09:00 the next day in Auckland
    assert local_day(T0, UTC) == ("2026-03-10", 20)
    new_york = int(datetime(2026, 3, 8, 6, 30, tzinfo=UTC).timestamp() * 1000)  # the day DST starts
    assert local_day(new_york, ZoneInfo("America/New_York")) == ("2026-03-08", 1)


def _measures(**changes: object) -> Measures:
    base = dict(agent="ann", day="2026-03-11", hour=9, outcome=stats.ANSWERED, wait_ms=12_000,
                first_response_ms=50_000, resolution_ms=600_000, messages_visitor=3, messages_agent=4,
                transfers=1, holds=0, after_hours=False, after_hours_answer_ms=None)
    return Measures(**{**base, **changes})  # type: ignore[arg-type]


def test_an_answered_chat_adds_its_counts_sums_and_histogram_buckets():
    out = _measures().increments()
    assert out["chats"] == 1 and out["answered"] == 1 and out["h09"] == 1
    assert (out["wait_n"], out["wait_ms"], out["frt_n"], out["frt_ms"]) == (1, 12_000, 1, 50_000)
    assert out[bucket_name(HISTOGRAMS["wait"], bucket(12_000))] == 1
    assert out[bucket_name(HISTOGRAMS["first_response"], bucket(50_000))] == 1
    assert (out["res_n"], out["res_ms"], out["msg_v"], out["msg_a"]) == (1, 600_000, 3, 4)
    assert out["transfers"] == 1 and not {"ah_chats", "missed"} & set(out)
    buckets = {k for k in out if k[:1] in "wf" and k[1:].isdigit()}
    assert set(out) - {f"h{h:02d}" for h in range(24)} - buckets <= set(stats.COUNTERS)


def test_a_missed_chat_has_no_wait_or_first_response():
    out = _measures(outcome=stats.MISSED, wait_ms=None, first_response_ms=None).increments()
    assert out["missed"] == 1
    assert not {"wait_n", "wait_ms", "frt_n", "frt_ms"} & set(out)
    assert not any(k[:1] in "wf" and k[1:].isdigit() for k in out)


def test_an_after_hours_chat_counts_its_messages_and_its_answer():
    out = _measures(after_hours=True, after_hours_answer_ms=7_200_000).increments()
    assert (out["ah_chats"], out["ah_msgs"], out["ah_ans_n"], out["ah_ans_ms"]) == (1, 3, 1, 7_200_000)
    unanswered = _measures(after_hours=True).increments()
    assert unanswered["ah_chats"] == 1 and "ah_ans_n" not in unanswered
