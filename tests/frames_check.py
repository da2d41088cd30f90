"""pytest plugin: every frame the app hands an ``Outbox`` during the run is checked against
``chalicelib.frames.SERVER_FRAMES`` (an unknown type, a missing or an unexpected key).

The app runs in this process (``infra/local/stack.py`` imports it), so the plugin installs
``fanout.checker`` once ``chalicelib.fanout`` has been imported (not before: importing it here
would read the configuration before the local stack sets it up). The checker only records: a
raise inside a handler would be turned into a ``retry`` error frame and the test might still
pass. The problems a test caused fail that test at teardown.

A test that posts a deliberately malformed frame (to test the Outbox itself) opts out with
``@pytest.mark.unchecked_frames``.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

_found: list[str] = []
_lock = threading.Lock()
_skip = threading.Event()


def record(frame: dict[str, Any]) -> None:
    """``fanout.checker`` for the suite: remember what is wrong with ``frame``."""
    if _skip.is_set():
        return
    from chalicelib.frames import problems

    wrong = problems(frame)
    if wrong:
        with _lock:
            _found.extend(wrong)


def _install() -> None:
    fanout = sys.modules.get("chalicelib.fanout")
    if fanout is not None and fanout.checker is None:
        fanout.checker = record


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "unchecked_frames: frames this test posts are not shape-checked")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    # The checker stays off during fixture set-up of a marked test, too.
    if item.get_closest_marker("unchecked_frames"):
        _skip.set()
    try:
        return (yield)
    finally:
        _install()  # fixtures (the stack) have imported the app by now


@pytest.hookimpl(trylast=True)  # after the fixtures' teardown: their frames count too
def pytest_runtest_teardown(item: pytest.Item) -> None:
    _skip.clear()
    _install()
    with _lock:
        wrong, _found[:] = list(dict.fromkeys(_found)), []
    if wrong:
        pytest.fail("server frames that do not match chalicelib.frames.SERVER_FRAMES:\n  "
                    + "\n  ".join(wrong[:20]), pytrace=False)
