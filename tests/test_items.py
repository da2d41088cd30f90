"""Items a visitor can grow stay bounded in bytes, and one chat that cannot be written does
not stop the line (issue 15: bounded everywhere). State is checked in DynamoDB Local."""

from __future__ import annotations

from typing import Any

from chalicelib import config, telemetry
from chalicelib.models import (
    ITEM_LIMIT,
    META,
    AgentModel,
    ConversationModel,
    agent_key,
    conversation_key,
    item_bytes,
)
from tests.client import eventually


def _client() -> Any:
    return ConversationModel._get_connection().connection.client


def raw_item(pk: str) -> dict[str, Any]:
    """An item as DynamoDB stores it (wire form), to measure it."""
    return dict(_client().get_item(TableName=config.TABLE_NAME, Key={"pk": {"S": pk}, "sk": {"S": META}},
                                   ConsistentRead=True)["Item"])


def fill_to_the_limit(pk: str, room: int) -> None:
    """Grow an item directly in DynamoDB Local until only ``room`` bytes are left, the way a
    stranger's appends would have left it."""
    size = item_bytes(raw_item(pk))
    name = "zz"
    filler = "x" * (ITEM_LIMIT - size - len(name) - room)
    _client().update_item(TableName=config.TABLE_NAME, Key={"pk": {"S": pk}, "sk": {"S": META}},
                          UpdateExpression="SET #z = :z", ExpressionAttributeNames={"#z": name},
                          ExpressionAttributeValues={":z": {"S": filler}})


def test_a_chat_that_cannot_be_written_does_not_stop_the_line(visitor, agent):
    """The oldest waiting chat has grown to 400 KB: routing skips it (and counts it), routes
    the next ones, and the agent's place reserved for it is given back."""
    guests = [visitor() for _ in range(3)]
    convs = [g.start() for g in guests]  # nobody on shift: all three wait
    fill_to_the_limit(conversation_key(convs[0]), room=8)
    lines: list[str] = []
    remove = telemetry.add_sink(lines.append)
    try:
        console = agent(max_chats=2)  # comes on shift: the line drains
        got = {console.expect("assigned", timeout=10)["conversation"] for _ in range(2)}
        # metrics are written when the invocation ends, just after its frames went out
        eventually(lambda: any('"RoutingFailures"' in line for line in lines))
    finally:
        remove()
    assert got == {convs[1], convs[2]}
    held = AgentModel.get(agent_key(console.agent_id), META, consistent_read=True)
    assert set(held.convs or ()) == {convs[1], convs[2]}  # no place kept for the stuck chat
    assert ConversationModel.get(conversation_key(convs[0]), META, consistent_read=True).status == "queued"
