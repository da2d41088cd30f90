"""Reports: the REST route (JSON and CSV) and the console's Reports page in Chromium, over
day items seeded through the same code that counts closed conversations."""

from __future__ import annotations

import csv
import io
import secrets
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from chalicelib import agents
from tests.support.client import Client, rest
from tests.support.flows import PASSWORD
from tests.support.state import MON, TUE, WED, seed


@pytest.fixture
def seeded(stack, site) -> dict[str, str]:
    """The seeded site, the ids of its two agents with figures (alice, bob) and REST tokens
    of an admin, a supervisor and a plain agent."""
    ids = {"alice": f"alice{secrets.token_hex(3)}", "bob": f"bob{secrets.token_hex(3)}"}
    for key, name in (("alice", "Alice"), ("bob", "Bob")):
        agents.create(ids[key], name, PASSWORD, site=site)
    seed(site, ids["alice"], ids["bob"])
    for role in ("admin", "supervisor", "agent"):
        agent_id = f"{role[:5]}{secrets.token_hex(3)}"
        agents.create(agent_id, role.title(), PASSWORD, role=role, site=site)
        ids[role] = Client.login(stack.gateway.http_url, agent_id, PASSWORD)
    return ids


def get(stack, site: str, token: str, query: str) -> tuple[int, Any]:
    return rest(stack.gateway.http_url, "GET", f"/sites/{site}/reports?{query}", token=token)


def test_the_report_sums_days_and_reads_medians_from_the_histograms(stack, site, seeded):
    status, doc = get(stack, site, seeded["supervisor"], f"from={MON}&to={WED}")
    assert status == 200, doc
    t = doc["totals"]
    assert (t["chats"], t["answered"], t["missed"], t["abandoned"]) == (12, 9, 2, 1)
    assert (t["missed_share"], t["abandoned_share"]) == (round(2 / 12, 4), round(1 / 12, 4))
    assert (t["wait_median_s"], t["wait_p90_s"]) == (45.0, 240.0)
    assert t["first_response_median_s"] == 25.0  # ten 20 s answers: mid 20-30 s bucket, by rank
    assert (t["rated_up"], t["rated_down"], t["satisfaction"]) == (3, 1, 0.75)
    assert (t["after_hours_chats"], t["offline_messages"], t["after_hours_messages"]) == (1, 2, 5)
    assert t["after_hours_answer_avg_s"] == 7200.0 and t["resolution_avg_s"] == 600.0
    assert [d["date"] for d in doc["days"]] == [MON, TUE, WED]
    assert [d["chats"] for d in doc["days"]] == [4, 0, 8]  # a quiet day is there, with zeros
    hours = doc["hours_of_week"]["chats"]
    assert hours[0][10] == 4 and hours[2][14] == 8 and sum(map(sum, hours)) == 12
    by_agent = {a["agent"]: a for a in doc["agents"]}
    alice_id, bob_id = seeded["alice"], seeded["bob"]
    assert (by_agent[alice_id]["chats"], by_agent[bob_id]["chats"]) == (7, 5)
    assert (by_agent[bob_id]["satisfaction"], by_agent[alice_id]["name"]) == (0.0, "Alice")

    status, alice = get(stack, site, seeded["admin"], f"from={MON}&to={WED}&agent={alice_id}")
    assert status == 200
    assert alice["totals"]["chats"] == 7 and [d["chats"] for d in alice["days"]] == [4, 0, 3]
    assert alice["totals"]["wait_median_s"] == 15.0  # 3 8 12 | 25 40 50: the 10-15 s bucket's top
    assert [a["agent"] for a in alice["agents"]] == [alice_id]

    status, one_day = get(stack, site, seeded["admin"], f"from={TUE}&to={WED}")
    assert one_day["totals"]["chats"] == 8


def test_only_admins_and_supervisors_see_reports_and_bad_ranges_are_refused(stack, site, seeded):
    assert get(stack, site, seeded["agent"], f"from={MON}&to={WED}")[0] == 403
    assert rest(stack.gateway.http_url, "GET", f"/sites/{site}/reports")[0] == 401
    assert get(stack, f"{site}x", seeded["admin"], f"from={MON}&to={WED}")[0] == 403  # another site
    for query in ("from=2026-03-11&to=2026-03-09", "from=yesterday", "from=2024-01-01&to=2026-01-01",
                  "agent=../x"):
        status, body = get(stack, site, seeded["admin"], query)
        assert status == 400, (query, body)


def test_csv_export_is_an_attachment_with_the_same_figures(stack, site, seeded):
    request = urllib.request.Request(
        f"{stack.gateway.http_url}/api/sites/{site}/reports?from={MON}&to={WED}&format=csv",
        headers={"Authorization": f"Bearer {seeded['supervisor']}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/csv")
        assert response.headers["Content-Disposition"] == (
            f'attachment; filename="report-{site}-{MON}-{WED}.csv"')
        rows = list(csv.DictReader(io.StringIO(response.read().decode("utf-8"))))
    days = {r["date"]: r for r in rows if r["scope"] == "day"}
    assert (days[MON]["chats"], days[TUE]["chats"], days[WED]["chats"]) == ("4", "0", "8")
    (total,) = [r for r in rows if r["scope"] == "total"]
    assert (total["chats"], total["wait_median_s"], total["wait_p90_s"], total["satisfaction"]) == (
        "12", "45.0", "240.0", "0.75")
    assert {r["agent"] for r in rows if r["scope"] == "agent"} == {seeded["alice"], seeded["bob"]}
    (wed_2pm,) = [r for r in rows if r["scope"] == "hour_of_week" and r["date"] == "Wed 14:00"]
    assert wed_2pm["chats"] == "8"


def test_the_reports_page_shows_the_seeded_figures(stack, site, seeded, console):
    from playwright.sync_api import expect

    page = console("Sue", role="supervisor", shift=False)
    page.click("[data-view=reports]")
    page.fill("#rep-from", MON)
    page.fill("#rep-to", WED)
    page.click("[data-testid=rep-show]")
    totals = page.locator("#rep-totals")
    expect(totals.locator("[data-figure=chats] span")).to_have_text("12")
    expect(totals.locator("[data-figure=wait_median_s] span")).to_have_text("45 s")
    expect(totals.locator("[data-figure=wait_p90_s] span")).to_have_text("4:00")
    expect(totals.locator("[data-figure=missed_share] span")).to_have_text("17 %")
    expect(totals.locator("[data-figure=satisfaction] span")).to_have_text("75 %")
    expect(page.locator(f"#rep-days tr[data-day='{WED}'] td").nth(1)).to_have_text("8")
    expect(page.locator(f"#rep-agents tr[data-agent={seeded['bob']}] td").nth(1)).to_have_text("5")
    # The charts are drawn from the same figures: bars per day and kind, the week's hours.
    bar = page.locator(f"#rep-days-chart rect[data-day='{MON}'][data-kind=answered]")
    expect(bar).to_have_attribute("data-value", "3")
    cell = page.locator("#rep-hours-chart rect[data-day=Wed][data-hour='14']")
    expect(cell).to_have_attribute("data-chats", "8")
    page.screenshot(path=str(stack_artifact("console-reports")))

    page.select_option("#rep-agent", seeded["alice"])
    page.click("[data-testid=rep-show]")
    expect(totals.locator("[data-figure=chats] span")).to_have_text("7")
    with page.expect_download() as download:
        page.click("[data-testid=rep-csv]")
    assert download.value.suggested_filename == f"report-{site}-{MON}-{WED}-{seeded['alice']}.csv"
    text = Path(download.value.path()).read_text(encoding="utf-8")
    assert text.splitlines()[0].startswith("scope,date,agent,chats")


def test_plain_agents_get_no_reports_tab(site, console):
    from playwright.sync_api import expect

    page = console("Pat", shift=False)
    expect(page.locator("[data-view=reports]")).to_be_hidden()
    page.evaluate("location.hash = '#reports'")
    expect(page.locator("#view-reports")).to_be_hidden()


def stack_artifact(name: str) -> Any:
    from tests.support.browser import ARTIFACTS

    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / f"{name}.png"


def test_the_figures_transaction_is_authorized_as_updates_of_the_table():
    """AWS has no IAM action for a transaction: each item is authorized as its own action,
    so the prod policy's UpdateItem on the table covers the counting transaction."""
    from chalicelib import config
    from tests import aws_recorder

    call = aws_recorder.describe("dynamodb", "TransactWriteItems", {"TransactItems": [
        {"Update": {"TableName": config.settings().table_name}},
        {"Update": {"TableName": config.settings().table_name}}]}, "")
    requirements = aws_recorder.requirements_for(call, aws_recorder.prod_settings())
    assert [r.action for r in requirements] == ["dynamodb:UpdateItem"]
    assert requirements[0].resources[0].endswith(":table/clicktochat-prod")
