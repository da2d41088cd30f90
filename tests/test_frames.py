"""Server frames a real run delivers match ``frames.SERVER_FRAMES`` (the suite-wide check is
tests/frames_check.py; here it is shown to be on and to catch). The builders and the protocol
doc are checked without the stack in tests/unit/test_frames.py."""

from __future__ import annotations

from typing import Any

from chalicelib import frames


def test_frames_a_real_run_delivers_are_checked(stack, visitor, agent):
    """The suite's checker is installed on the Outbox and sees real frames; a malformed frame
    handed to the Outbox is caught (and taken back out here, so this test does not fail)."""
    from chalicelib import fanout
    from tests import frames_check

    console = agent()
    guest = visitor()
    assert fanout.checker is frames_check.record
    seen: list[dict[str, Any]] = []
    fanout.checker = lambda frame: (seen.append(frame), frames_check.record(frame))[-1]
    try:
        guest.request({"action": "start", "name": "Ann"}, "conversation")
        console.expect("assigned")
        guest.send({"action": "ping", "ref": "p1"})
        guest.expect("pong")
    finally:
        fanout.checker = frames_check.record
    kinds = {f["type"] for f in seen}
    assert {"conversation", "assigned", "pong"} <= kinds
    assert all(frames.problems(f) == [] for f in seen)
    fanout.Outbox().to(["nobody="], {"type": "made_up"})
    with frames_check._lock:
        caught = frames_check._found[:]
        frames_check._found.clear()
    assert caught == ["unknown frame type 'made_up'"]
