"""Load script (issue 8): hundreds of simultaneous conversations against ``make dev``, then an
audit from both ends and from the database.

    make dev                       # in one terminal
    python -m bench.soak           # in another: 600 visitors, 250 agents x 2 chats, 20,400 messages (~20 min)
    python -m bench.soak --spawn   # or start a private in-memory stack for the run

What it does: 250 agents go on shift with room for 2 chats each (500 at once); 600 visitors
start a chat at the same time, so 500 are routed and 100 queue; a third of the visitors open
a second tab (over 1,000 WebSocket connections in all). Both sides of every conversation send
their share of messages (one in flight per client id, as the protocol requires, with a
random think time between them, 30 s on average: a real chat's pace, and with 1,000 people
typing it offers about 33 messages a second, which the single-process stand-in can carry;
at ``--think 8`` it offers 125 a second, more than the stand-in carries, and the latency
figures then measure its backlog); when both sides are done and have seen each other's lines,
the visitor closes the chat and the agent's freed slot pulls the next queued visitor.

Then it checks, and writes ``bench/results/soak.json``:

* from both ends: every message reached every other connection of its conversation exactly
  once, and placed by ``seq`` (as the widget and console place them) each sender's lines read
  in the order they were written;
* from the database: every conversation holds exactly the messages that were acknowledged,
  with no duplicate client ids and gap-free ``seq`` numbers;
* every visitor was told ``queued`` (with a position) or ``assigned`` at once, and every one
  was served in the end;
* p50/p95/p99 delivery latency (send to the other side's receipt), throughput, and error
  frames by code (a refusal the client retries, such as a rate limit, is counted, then
  resent with the same id).

The tokens are signed with the stack's own secret (``.local/dev.json``) and the agents are
written straight to the table with one password hash: the run measures chat, not sign-in.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import resource
import secrets
import statistics
import sys
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.client import AsyncClient

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def open_socket(ws_url: str, query: dict[str, str]) -> Coroutine[Any, Any, AsyncClient]:
    """A connection with the widget's and console's heartbeat (a visitor waiting in line
    sends nothing of its own; idle connections are closed after 10 minutes)."""
    return AsyncClient.open(ws_url, query, open_timeout=120, close_timeout=5, heartbeat=240)


@dataclass
class Run:
    think: float
    per_side: int
    sent: dict[str, tuple[str, str, float]] = field(default_factory=dict)  # id -> conv, side, time
    acked: dict[str, int] = field(default_factory=dict)  # id -> seq
    errors: Counter[str] = field(default_factory=Counter)

    async def talk(self, sock: AsyncClient, conv: str, side: str, done: asyncio.Event) -> None:
        """One side's share of a conversation: one message in flight, resend on a refusal."""
        client = secrets.token_urlsafe(8).replace("-", "a").replace("_", "b")
        for n in range(1, self.per_side + 1):
            await asyncio.sleep(random.uniform(0.5, 1.5) * self.think)
            message_id = f"{client}:{n}"
            frame = {"action": "send", "conversation": conv, "id": message_id,
                     "text": f"{side} line {n} of {conv}"}
            self.sent[message_id] = (conv, side, time.perf_counter())
            for attempt in range(20):
                reply = await sock.request(frame)
                if reply["type"] == "ack":
                    self.acked[message_id] = int(reply["seq"])
                    break
                self.errors[str(reply.get("code"))] += 1
                await asyncio.sleep(float(reply.get("retry_after") or 0.5 * (attempt + 1)))
        done.set()


def make_agents(dev: dict[str, str], site: str, count: int, max_chats: int) -> list[str]:
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = dev["AWS_ENDPOINT_URL_DYNAMODB"]
    from bench.load import PASSWORD
    from chalicelib import auth, sites
    from chalicelib.models import AgentModel, agent_key

    sites.ensure(site)  # sites exist only once created; visitors of any other id are refused

    hashed = auth.hash_password(PASSWORD)
    ids = [f"soak{secrets.token_hex(4)}" for _ in range(count)]
    with AgentModel.batch_write() as batch:
        for agent_id in ids:
            batch.save(AgentModel(agent_key(agent_id), name=agent_id, pw_hash=hashed, max_chats=max_chats,
                                  site=site, team_pk=f"TEAM#{site}", team_sk=agent_id))
    return ids


async def soak(dev: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    from chalicelib import auth

    site = f"soak{secrets.token_hex(3)}"
    ws_url = dev["ws_url"]
    per_conv = max(2, round(args.messages / args.visitors))
    run = Run(think=args.think, per_side=per_conv // 2)
    agent_ids = make_agents(dev, site, args.agents, args.max_chats)
    print(f"soak: {args.agents} agents x {args.max_chats} chats, {args.visitors} visitors, "
          f"{run.per_side} messages per side", flush=True)
    consoles = await asyncio.gather(*(open_socket(ws_url, {"token": auth.issue("agent", a, site)})
                                      for a in agent_ids))
    for sock in consoles:
        await sock.send({"action": "shift", "on": True})
    await asyncio.gather(*(sock.wait_for("shift", 120) for sock in consoles))
    visitors = await asyncio.gather(*(open_socket(ws_url, {"site": site}) for _ in range(args.visitors)))
    for sock in visitors:
        await sock.send({"action": "hello"})
    welcomes = await asyncio.gather(*(sock.wait_for("welcome", 120) for sock in visitors))
    tabs: dict[int, AsyncClient] = {}
    second = random.sample(range(args.visitors), int(args.visitors * args.second_tab))
    opened = await asyncio.gather(*(open_socket(ws_url, {"token": welcomes[i]["token"]}) for i in second))
    tabs.update(zip(second, opened, strict=True))
    connections = len(consoles) + len(visitors) + len(tabs)
    print(f"soak: {connections} WebSocket connections open", flush=True)

    started = time.perf_counter()
    conv_of: dict[int, str] = {}
    first_word: dict[int, str] = {}
    served: dict[int, float] = {}

    async def visit(i: int) -> None:
        sock = visitors[i]
        await sock.send({"action": "start"})
        conv = str((await sock.wait_for("conversation", 120))["conversation"])
        conv_of[i] = conv
        while True:  # the first word after start: queued (with a position) or assigned
            told = [f for f in sock.events if f.get("type") in ("queued", "assigned")
                    and f.get("conversation") == conv]
            if told:
                first_word[i] = str(told[0]["type"])
                break
            await asyncio.sleep(0.05)
        assigned = await sock.wait_for("assigned", args.timeout, conversation=conv)
        served[i] = time.perf_counter()
        agent_id = str(assigned["summary"]["agent"])
        console = consoles[agent_ids.index(agent_id)]
        await console.wait_for("assigned", 60, conversation=conv)
        v_done, a_done = asyncio.Event(), asyncio.Event()
        await asyncio.gather(run.talk(sock, conv, "visitor", v_done),
                             run.talk(console, conv, "agent", a_done))
        # both sides wait until they have seen each other's lines, then the visitor closes
        deadline = time.perf_counter() + 60
        while time.perf_counter() < deadline:
            got_v = sum(1 for f in console.messages.get(conv, []) if f["from"]["role"] == "visitor")
            got_a = sum(1 for f in sock.messages.get(conv, []) if f["from"]["role"] == "agent")
            if got_v >= run.per_side and got_a >= run.per_side:
                break
            await asyncio.sleep(0.1)
        await sock.send({"action": "close", "conversation": conv})
        await sock.wait_for("closed", 60, conversation=conv)

    outcomes = await asyncio.gather(*(visit(i) for i in range(args.visitors)), return_exceptions=True)
    elapsed = time.perf_counter() - started
    await asyncio.sleep(1.0)  # let the last fan-out land on second tabs
    failures = Counter(f"{type(o).__name__}: {str(o)[:80]}" for o in outcomes if isinstance(o, BaseException))
    audit = await asyncio.to_thread(check_database, dev, run, set(conv_of.values()))
    ends = check_ends(run, conv_of, visitors, tabs, consoles)
    latencies = sorted(ends.pop("latencies_ms"))
    for sock in [*consoles, *visitors, *tabs.values()]:
        await sock.ws.close()
    positions = [f.get("position") for s in visitors for f in s.events if f.get("type") == "queued"]
    return {
        "site": site, "agents": args.agents, "max_chats": args.max_chats,
        "capacity": args.agents * args.max_chats,
        "visitors": args.visitors, "second_tabs": len(tabs), "connections": connections,
        "messages_sent": len(run.sent), "messages_acked": len(run.acked),
        "elapsed_s": round(elapsed, 1), "msgs_per_s": round(len(run.acked) / elapsed, 1),
        "think_s_mean": args.think,
        "latency_ms": {"p50": pct(latencies, 0.5), "p95": pct(latencies, 0.95), "p99": pct(latencies, 0.99),
                       "max": round(latencies[-1], 1) if latencies else None, "samples": len(latencies)},
        "error_frames": dict(run.errors), "failed_visits": dict(failures),
        "queue": {"first_told_queued": sum(1 for w in first_word.values() if w == "queued"),
                  "first_told_assigned": sum(1 for w in first_word.values() if w == "assigned"),
                  "never_told": args.visitors - len(first_word),
                  "max_position": max((p for p in positions if isinstance(p, int)), default=0),
                  "served": len(served)},
        "ends": ends, "database": audit,
    }


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return round(values[min(len(values) - 1, int(q * len(values)))], 1) if q != 0.5 else round(
        statistics.median(values), 1)


def check_ends(run: Run, conv_of: dict[int, str], visitors: list[AsyncClient], tabs: dict[int, AsyncClient],
               consoles: list[AsyncClient]) -> dict[str, Any]:
    """Every other connection of a conversation got each message once, in seq order."""
    by_conv: dict[str, list[str]] = {}
    for message_id, (conv, _side, _t) in run.sent.items():
        by_conv.setdefault(conv, []).append(message_id)
    lost = duplicated = out_of_order = arrived_early = 0
    latencies: list[float] = []
    console_of = {}
    for sock in consoles:
        for conv in sock.messages:
            console_of[conv] = sock
    for i, conv in conv_of.items():
        receivers = {"visitor": [visitors[i]] + ([tabs[i]] if i in tabs else []),
                     "agent": [console_of[conv]] if conv in console_of else []}
        # the visitor's second tab also gets the first tab's lines (it is another connection)
        expected: dict[int, list[str]] = {id(s): [] for group in receivers.values() for s in group}
        for message_id in by_conv.get(conv, []):
            side = run.sent[message_id][1]
            targets = receivers["agent"] if side == "visitor" else receivers["visitor"]
            if side == "visitor" and i in tabs:
                targets = [*targets, tabs[i]]
            for sock in targets:
                expected[id(sock)].append(message_id)
        for group in receivers.values():
            for sock in group:
                frames = [f for f in sock.messages.get(conv, []) if f["from"]["role"] != "system"]
                ids = [str(f["id"]) for f in frames]
                seqs = [int(f["seq"]) for f in sock.messages.get(conv, [])]
                duplicated += len(ids) - len(set(ids))
                lost += len(set(expected[id(sock)]) - set(ids))
                # Order: placed by seq (as the widget and console do), each sender's lines must
                # read in the order they were written. Arrival order across two senders writing
                # at once is not promised (concurrent invocations), so it is only counted.
                by_seq = sorted((int(f["seq"]), str(f["id"])) for f in frames)
                streams: dict[str, list[int]] = {}
                for _seq, message_id in by_seq:
                    client, _, counter = message_id.rpartition(":")
                    streams.setdefault(client, []).append(int(counter))
                out_of_order += sum(1 for c in streams.values() if c != sorted(c))
                arrived_early += sum(1 for a, b in itertools.pairwise(seqs) if b <= a)
        primary = {"visitor": receivers["agent"][:1], "agent": receivers["visitor"][:1]}
        for message_id in by_conv.get(conv, []):
            _conv, side, sent_at = run.sent[message_id]
            for sock in primary[side]:
                if message_id in sock.arrivals:
                    latencies.append((sock.arrivals[message_id] - sent_at) * 1000)
    return {"lost": lost, "duplicated": duplicated, "out_of_order": out_of_order,
            "arrived_before_a_lower_seq": arrived_early, "latencies_ms": latencies}


def check_database(dev: dict[str, str], run: Run, convs: set[str]) -> dict[str, Any]:
    """Each conversation's stored messages: exactly the acknowledged ones, seq without gaps."""
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = dev["AWS_ENDPOINT_URL_DYNAMODB"]
    from chalicelib.models import MessageModel, conversation_key

    acked_by_conv: dict[str, set[str]] = {}
    for message_id in run.acked:
        acked_by_conv.setdefault(run.sent[message_id][0], set()).add(message_id)
    missing = extra = duplicated = gaps = wrong_seq = stored = 0
    for conv in convs:
        items = list(MessageModel.query(conversation_key(conv), MessageModel.sk.startswith("MSG#")))
        stored += len(items)
        seqs = [int(m.seq) for m in items]
        gaps += sum(1 for a, b in itertools.pairwise(seqs) if b != a + 1) + int(bool(seqs) and seqs[0] != 1)
        ids = [m.cmid for m in items if m.role != "system"]
        duplicated += len(ids) - len(set(ids))
        want = acked_by_conv.get(conv, set())
        missing += len(want - set(ids))
        extra += len(set(ids) - want)
        by_id = {m.cmid: int(m.seq) for m in items if m.role != "system"}
        wrong_seq += sum(1 for mid in want if mid in by_id and by_id[mid] != run.acked[mid])
    return {"conversations": len(convs), "messages_stored": stored, "missing": missing,
            "unacknowledged_extra": extra, "duplicated": duplicated, "seq_gaps": gaps,
            "ack_seq_mismatch": wrong_seq}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--visitors", type=int, default=600)
    parser.add_argument("--agents", type=int, default=250)
    parser.add_argument("--max-chats", type=int, default=2)
    parser.add_argument("--messages", type=int, default=20_400, help="in all, both sides")
    parser.add_argument("--second-tab", type=float, default=1 / 3, help="share of visitors with two tabs")
    parser.add_argument("--think", type=float, default=30.0, help="mean seconds between one side's lines")
    parser.add_argument("--timeout", type=float, default=1800, help="longest wait in the queue")
    parser.add_argument("--spawn", action="store_true",
                        help="start a private stack instead of using make dev")
    parser.add_argument("--out", default=str(RESULTS / "soak.json"))
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 65536)), hard))
    server = None
    if args.spawn:
        from bench.run import Server

        server = Server()
        dev = {"ws_url": server.info["ws_url"], "AWS_ENDPOINT_URL_DYNAMODB": server.info["dynamodb"],
               "TABLE_NAME": server.info["table"], "TOKEN_SECRET": server.info["token_secret"]}
    else:
        path = ROOT / ".local" / "dev.json"
        if not path.exists():
            print("error: make dev is not running (no .local/dev.json); start it, or pass --spawn",
                  file=sys.stderr)
            return 1
        dev = json.loads(path.read_text())
    os.environ.update({"TABLE_NAME": dev["TABLE_NAME"], "TOKEN_SECRET": dev["TOKEN_SECRET"],
                       "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "local"),
                       "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "local"),
                       "AWS_DEFAULT_REGION": "us-east-1"})
    from bench.run import machine

    try:
        result = {"machine": machine(), "args": vars(args), **asyncio.run(soak(dev, args))}
    finally:
        if server is not None:
            server.stop()
    ok = (result["ends"]["lost"] == result["ends"]["duplicated"] == result["ends"]["out_of_order"] == 0
          and result["database"]["missing"] == result["database"]["duplicated"] == 0
          and result["database"]["seq_gaps"] == 0 and result["queue"]["served"] == args.visitors
          and result["queue"]["never_told"] == 0 and not result["failed_visits"])
    result["verdict"] = "pass" if ok else "FAIL"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("verdict", "connections", "messages_acked", "msgs_per_s",
                                             "latency_ms", "error_frames", "queue", "ends", "database")},
                     indent=1))
    print(f"wrote {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
