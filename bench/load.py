"""Many conversations at once against a stack in another process: delivery latency from a
visitor's send to the agent's receipt, and messages per second. Also the fan-out timing.

Used by ``bench/run.py``; kept apart because it is the only asyncio code of the suite.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import statistics
import time
from collections.abc import Coroutine
from typing import Any

from tests.support.client import AsyncClient

PASSWORD = "bench-password-123"


SETUP_WAVE = 50


def _waves(peers: list[AsyncClient]) -> list[list[AsyncClient]]:
    return [peers[i:i + SETUP_WAVE] for i in range(0, len(peers), SETUP_WAVE)]


def open_peer(ws_url: str, query: dict[str, str]) -> Coroutine[Any, Any, AsyncClient]:
    return AsyncClient.open(ws_url, query, open_timeout=60)


def make_agents(info: dict[str, Any], site: str, count: int) -> list[str]:
    """The site (as an admin creates it: visitors of other ids are refused) and agents with
    room for one chat each, written straight to the table (one slow hash for all: the
    benchmark measures chat, not sign-in)."""
    from chalicelib import auth, sites
    from chalicelib.models import AgentModel, agent_key
    from infra.local.faults import route_app_through

    route_app_through(dynamodb=info["dynamodb"])  # each run has its own stack: its own table
    sites.ensure(site)

    hashed = auth.hash_password(PASSWORD)
    ids = [f"b{secrets.token_hex(5)}" for _ in range(count)]
    with AgentModel.batch_write() as batch:
        for agent_id in ids:
            batch.save(AgentModel(agent_key(agent_id), name=agent_id, pw_hash=hashed, max_chats=1, site=site,
                                  team_pk=f"TEAM#{site}", team_sk=agent_id))
    return ids


async def conversations(info: dict[str, Any], count: int, messages: int) -> dict[str, Any]:
    """``count`` conversations (a visitor and an agent connection each), each visitor sending
    ``messages`` one at a time (the protocol's rule), all conversations at once."""
    from chalicelib import auth

    site = f"bench{secrets.token_hex(3)}"
    agent_ids = make_agents(info, site, count)
    agents = await asyncio.gather(*(open_peer(info["ws_url"], {"token": auth.issue("agent", a, site)})
                                    for a in agent_ids))
    # Set-up is not measured. It runs in waves of SETUP_WAVE: every handler of the stand-in
    # shares one interpreter, so 500 routers at once would only queue behind each other
    # (on AWS each is its own Lambda).
    for wave in _waves(agents):
        await asyncio.gather(*(peer.ask({"action": "shift", "on": True}, "shift") for peer in wave))
    visitors = await asyncio.gather(*(open_peer(info["ws_url"], {"site": site}) for _ in range(count)))
    conv_ids: list[str] = []
    for wave in _waves(visitors):
        started = await asyncio.gather(*(peer.ask({"action": "start"}, "conversation") for peer in wave))
        conv_ids += [str(frame["conversation"]) for frame in started]
    await asyncio.gather(*(peer.expect("assigned", timeout=300) for peer in agents))
    sent: dict[str, float] = {}
    errors = 0

    async def talk(peer: AsyncClient, conv: str) -> None:
        nonlocal errors
        client = secrets.token_urlsafe(6)
        for n in range(1, messages + 1):
            message_id = f"{client}:{n}"
            sent[message_id] = time.perf_counter()
            await peer.send({"action": "send", "conversation": conv, "id": message_id,
                             "text": f"message {n} of a benchmark conversation"})
            reply = await peer.expect("ack", "error")
            if reply.get("type") != "ack":
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(talk(p, c) for p, c in zip(visitors, conv_ids, strict=True)))
    deadline = time.perf_counter() + 60
    arrivals: dict[str, float] = {}
    while time.perf_counter() < deadline:
        arrivals = {k: v for peer in agents for k, v in peer.arrivals.items()}
        if len(arrivals) >= len(sent):
            break
        await asyncio.sleep(0.05)
    elapsed = max(arrivals.values(), default=started) - started
    latencies = sorted((arrivals[m] - sent[m]) * 1000 for m in sent if m in arrivals)
    for peer in [*agents, *visitors]:
        await peer.ws.close()
    return {"conversations": count, "connections": 2 * count, "messages": len(sent),
            "delivered": len(latencies), "lost": len(sent) - len(latencies), "errors": errors,
            "msgs_per_s": len(latencies) / elapsed if elapsed > 0 else 0.0,
            **percentiles(latencies)}


async def floor(info: dict[str, Any], count: int, messages: int) -> dict[str, Any]:
    """The same pattern through the same gateway with a handler that only echoes."""
    peers = await asyncio.gather(*(open_peer(info["ws_url"], {}) for _ in range(count)))
    latencies: list[float] = []

    async def talk(peer: AsyncClient) -> None:
        for n in range(messages):
            started = time.perf_counter()
            await peer.ws.send(json.dumps({"action": "echo", "n": n}))
            await peer.expect("None")  # echo frames have no "type"
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(talk(p) for p in peers))
    elapsed = time.perf_counter() - started
    for peer in peers:
        await peer.ws.close()
    return {"conversations": count, "messages": len(latencies),
            "msgs_per_s": len(latencies) / elapsed, **percentiles(sorted(latencies))}


async def fanout(info: dict[str, Any], recipients: int, rounds: int) -> dict[str, Any]:
    """Time from an agent's send to the last of ``recipients`` visitor tabs receiving it."""
    from chalicelib import auth

    site = f"fan{secrets.token_hex(3)}"
    (agent_id,) = make_agents(info, site, 1)
    console = await open_peer(info["ws_url"], {"token": auth.issue("agent", agent_id, site)})
    await console.send({"action": "hello"})
    await console.expect("welcome")
    await console.send({"action": "shift", "on": True})
    await console.expect("shift")
    first = await open_peer(info["ws_url"], {"site": site})
    await first.send({"action": "hello"})
    token = (await first.expect("welcome"))["token"]
    await first.send({"action": "start"})
    conv = (await first.expect("conversation"))["conversation"]
    await console.expect("assigned")
    more = await asyncio.gather(*(open_peer(info["ws_url"], {"token": token}) for _ in range(recipients - 1)))
    tabs = [first, *more]
    await asyncio.sleep(0.5)
    times = []
    client = secrets.token_urlsafe(6)
    for n in range(1, rounds + 1):
        message_id = f"{client}:{n}"
        started = time.perf_counter()
        await console.send({"action": "send", "conversation": conv, "id": message_id, "text": "fan-out"})
        await console.expect("ack")
        while not all(message_id in t.arrivals for t in tabs):
            await asyncio.sleep(0.001)
        times.append((max(t.arrivals[message_id] for t in tabs) - started) * 1000)
    for peer in [console, *tabs]:
        await peer.ws.close()
    return {"recipients": recipients, **percentiles(sorted(times))}


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50_ms": float("nan"), "p95_ms": float("nan"), "p99_ms": float("nan")}

    def at(q: float) -> float:
        return values[min(len(values) - 1, int(q * len(values)))]

    return {"p50_ms": round(statistics.median(values), 2), "p95_ms": round(at(0.95), 2),
            "p99_ms": round(at(0.99), 2)}
