"""Headless Chromium for the tests of what people see: one browser per run, shared helpers.

Debian's Chromium (``/usr/bin/chromium``) driven by Playwright; ``playwright install`` cannot
download here. Without Chromium the browser tests skip, except in CI where they must run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
# As root, without the background-networking flags Chromium keeps calling hosts it cannot reach.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required"]
ARTIFACTS = ROOT / "tests" / "artifacts"
W = "[data-chat-widget]"  # the widget's host; Playwright's CSS selectors pierce its shadow root

# An init script counting beeps: widget and console synthesise them with WebAudio (one
# oscillator per beep, see widget/chatlink.js), so a test can hear without a sound card.
COUNT_BEEPS = """(() => {
  window.__beeps = 0;
  const Ctx = window.AudioContext;
  if (!Ctx) return;
  const make = Ctx.prototype.createOscillator;
  Ctx.prototype.createOscillator = function () { window.__beeps += 1; return make.apply(this, arguments); };
})();"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium per test module: Playwright's sync API keeps an event loop running in
    this thread while it is open, which other modules' ``asyncio.run`` cannot share."""
    if not CHROMIUM.exists() and os.environ.get("CI") != "true":
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield launched
        launched.close()


def wait_until(page: Any, check: Callable[[], Any], timeout: float = 5.0) -> None:
    """Poll a Python-side condition while the page keeps running."""
    for _ in range(int(timeout * 10)):
        if check():
            return
        page.wait_for_timeout(100)
    raise AssertionError("condition not reached in time")


def screenshot(page: Any, name: str) -> None:
    """``tests/artifacts/<name>.png`` always; ``docs/<name>.png`` (the README's pictures) only
    with UPDATE_SCREENSHOTS=1 or when missing, so test runs do not churn tracked images."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), animations="disabled")
    docs = ROOT / "docs" / f"{name}.png"
    if os.environ.get("UPDATE_SCREENSHOTS") == "1" or not docs.exists():
        shutil.copyfile(path, docs)


AXE = ROOT / ".tools" / "node_modules" / "axe-core" / "axe.min.js"  # pinned in infra/local/package.json
# WCAG 2.0/2.1 A and AA, and axe's best practices (landmarks, headings, region): what a
# demanding customer's accessibility audit runs.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]


def axe_violations(page: Any, context: str | None = None) -> list[dict[str, Any]]:
    """Run axe-core (Deque's engine, the one browser audits use) in the page as it is now and
    return its violations, each with rule id, impact, help and the offending nodes' targets.
    It reaches into open shadow roots, so the widget is audited inside its host too.
    ``context`` limits the audit to one CSS selector (default: the whole document)."""
    if not AXE.exists():
        raise AssertionError(f"{AXE} missing: make setup installs axe-core into .tools/")
    if not page.evaluate("() => !!window.axe"):
        page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        """async ([context, tags]) => {
          const r = await window.axe.run(context || document,
                                         {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']});
          return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                         nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ')
                                           + ' :: ' + (n.failureSummary || '').slice(0, 200))}));
        }""", [context, AXE_TAGS])
    return list(result)


def assert_accessible(page: Any, state: str, context: str | None = None) -> None:
    """No axe violations in ``state`` (named in the failure, with each rule and node)."""
    found = axe_violations(page, context)
    assert not found, f"axe found {len(found)} violation(s) in {state}:\n" + "\n".join(
        f"- {v['id']} ({v['impact']}): {v['help']}\n    " + "\n    ".join(v["nodes"]) for v in found)
