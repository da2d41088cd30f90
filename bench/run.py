"""``make bench``: the numbers behind "fast, light and cheap", rerunnable by anyone.

Writes ``bench/results/latest.json`` and PNG charts beside it. Every figure carries the
machine (cores), the commit, and the median with its spread over repeated runs. Budgets are
reported as met or missed, never asserted: benchmarks are not tests.

    python -m bench.run            # full suite (several minutes)
    python -m bench.run --quick    # fewer repeats and smaller loads, for a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gzip
import json
import os
import platform
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

# One secret and table name for this process and every stack it starts (each stack has its
# own DynamoDB Local).
os.environ.setdefault("TOKEN_SECRET", secrets.token_urlsafe(48))
os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
os.environ["AWS_DEFAULT_REGION"] = os.environ["AWS_REGION"] = "us-east-1"
TABLE = "bench"

# Budgets (DEVELOPERS.md, issue 7).
BUDGET = {"dynamodb_requests_per_message": 2, "lambda_invocations_per_message": 1,
          "import_ms": 250, "package_mb": 5, "widget_gzip_bytes": 15 * 1024}

# AWS list prices, us-east-1, as published on 2026-11-01 (on-demand, no free tier).
PRICES_DATE = "2026-11-01"
PRICE_WS_MESSAGE = 1.00 / 1_000_000        # API Gateway WebSocket, per message (32 KB units)
PRICE_WS_CONNECTION_MINUTE = 0.25 / 1_000_000
PRICE_LAMBDA_GB_SECOND = 0.0000166667      # x86
PRICE_LAMBDA_REQUEST = 0.20 / 1_000_000
PRICE_DDB_WRITE_UNIT = 0.625 / 1_000_000   # on-demand write request unit
PRICE_DDB_READ_UNIT = 0.125 / 1_000_000    # on-demand read request unit
PRICE_SES_EMAIL = 0.10 / 1_000
PRICE_SQS_REQUEST = 0.40 / 1_000_000
LAMBDA_MEMORY_MB = 512                     # .chalice/config.json


def machine() -> dict[str, Any]:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    return {"cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "commit": commit, "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}


def spread(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 2), "min": round(min(values), 2),
            "max": round(max(values), 2), "runs": len(values)}


# --- 1. work per message and per conversation, counted -------------------------------------


def work_counts() -> dict[str, Any]:
    """In-process stack with botocore hooks: requests and consumed capacity, exactly."""
    from infra.local.stack import Stack
    from tests.support.client import Client, settle

    stack = Stack(table=TABLE, schedule_interval=None, poll_queues=False).start()
    assert stack.gateway is not None
    from chalicelib import agents, sites
    from chalicelib.models import ALL_MODELS

    calls: list[tuple[str, float]] = []

    def after(model: Any, parsed: Any, **_: Any) -> None:
        used = parsed.get("ConsumedCapacity") or {}
        if isinstance(used, list):
            used = used[0] if used else {}
        calls.append((model.name, float(used.get("CapacityUnits", 0.0))))

    for client in {id(m._get_connection().connection.client): m._get_connection().connection.client
                   for m in ALL_MODELS}.values():
        client.meta.events.register("after-call.dynamodb", after)
    try:
        site = f"work{secrets.token_hex(3)}"
        sites.create(site)
        agents.create("benchagent", "Bench Agent", "bench-password-1", site=site)
        counters = stack.gateway.counters
        keys = ("invoke:$connect", "invoke:$default", "invoke:$disconnect", "post")
        calls.clear()
        # Once per agent shift, not per conversation: sign in, open the console, go on shift.
        token = Client.login(stack.gateway.http_url, "benchagent", "bench-password-1")
        console = Client(stack.gateway.ws_url, {"token": token})
        console.request({"action": "shift", "on": True}, "shift")
        settle(stack, quiet=0.3)
        shift_calls = len(calls)
        calls.clear()
        base = {k: counters[k] for k in keys}
        # One conversation: the visitor connects, starts, is routed, 20 messages, closes, leaves.
        guest = Client(stack.gateway.ws_url, {"site": site})
        conv = guest.start()
        console.expect("assigned")
        settle(stack, quiet=0.3)
        setup_calls = len(calls)
        per_message: list[list[tuple[str, float]]] = []
        for n in range(10):
            for sender, receiver in ((guest, console), (console, guest)):
                settle(stack, quiet=0.2)
                before = len(calls)
                sender.say(conv, f"line {n}")
                receiver.expect("message", conversation=conv)
                settle(stack, quiet=0.2)
                per_message.append(calls[before:])
        guest.request({"action": "close", "conversation": conv}, "closed")
        guest.close()
        settle(stack, quiet=0.3)
        conversation = {k: counters[k] - base[k] for k in keys}
        console.close()
        requests = [len(m) for m in per_message]
        units = [sum(u for _, u in m) for m in per_message]
        return {
            "per_message": {"dynamodb_requests": spread([float(r) for r in requests]),
                            "dynamodb_ops": [op for op, _ in per_message[-1]],
                            "capacity_units": spread(units), "lambda_invocations": 1,
                            "posts": 2, "budget_dynamodb": BUDGET["dynamodb_requests_per_message"],
                            "met": max(requests) <= BUDGET["dynamodb_requests_per_message"]},
            "per_conversation": {"lambda_invocations": sum(v for k, v in conversation.items()
                                                           if "invoke" in k),
                                 "dynamodb_requests": len(calls), "setup_dynamodb_requests": setup_calls,
                                 "agent_shift_dynamodb_requests": shift_calls,
                                 "capacity_units": round(sum(u for _, u in calls), 1),
                                 "posts": conversation["post"], "messages": 20},
        }
    finally:
        stack.stop()


# --- 2./3. latency, throughput, floor, fan-out (stack in another process) -------------------


class Server:
    def __init__(self, echo: bool = False) -> None:
        args = [sys.executable, "-m", "bench.serve"] + (["--echo"] if echo else [])
        self.process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                        text=True, start_new_session=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        while not line.startswith("{\"ws_url"):
            line = self.process.stdout.readline()
        self.info: dict[str, Any] = json.loads(line)
        # keep reading (handler logs go to stdout, as on Lambda), or the child blocks on a full pipe
        threading.Thread(target=self.process.stdout.read, daemon=True).start()

    def stop(self) -> None:
        """Stop the stack; one still busy with a run's thousand disconnects after 30 s is
        killed with its DynamoDB Local (its own process group): it is thrown away anyway."""
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)


def delivery(sizes: list[int], messages: int, repeats: int) -> dict[str, Any]:
    from bench import load

    out: dict[str, Any] = {}
    for size in sizes:
        runs, floors = [], []
        for _ in range(repeats):
            server = Server()
            try:
                runs.append(asyncio.run(load.conversations(server.info, size, messages)))
            finally:
                server.stop()
            echo = Server(echo=True)
            try:
                floors.append(asyncio.run(load.floor(echo.info, size, messages)))
            finally:
                echo.stop()
        out[str(size)] = {
            "conversations": size, "connections": 2 * size, "messages_per_run": runs[0]["messages"],
            "lost": sum(r["lost"] for r in runs), "errors": sum(r["errors"] for r in runs),
            **{k: spread([r[k] for r in runs]) for k in ("p50_ms", "p95_ms", "p99_ms", "msgs_per_s")},
            "floor": {k: spread([f[k] for f in floors]) for k in ("p50_ms", "p99_ms", "msgs_per_s")},
            "ratio_p50_to_floor": round(statistics.median(r["p50_ms"] for r in runs)
                                        / max(statistics.median(f["p50_ms"] for f in floors), 0.01), 2),
        }
    return out


def fanout(counts: list[int], rounds: int) -> dict[str, Any]:
    from bench import load

    server = Server()
    try:
        return {str(n): asyncio.run(load.fanout(server.info, n, rounds)) for n in counts}
    finally:
        server.stop()


# --- 4. cold start and package size -----------------------------------------------------------


def cold_start(runs: int) -> dict[str, Any]:
    """The zip as shipped, imported in the runtime sandbox (bench/packaged.py): the app's cold
    import against the SDK's own, plus the package's size and files."""
    from bench import packaged

    measured = packaged.measure(packaged.build(), runs)
    app = measured["cold_import_ms"]["app"]
    return {"import_ms": app, "sdk_import_ms": measured["cold_import_ms"]["botocore"],
            "runtime_boto3_import_ms": measured["cold_import_ms"]["runtime_boto3"],
            "budget_ms": BUDGET["import_ms"], "met": app["median"] <= BUDGET["import_ms"],
            "package": {"mb": round(measured["zip_bytes"] / 1e6, 2), "files": measured["files"],
                        "unpacked_mb": round(measured["unpacked_bytes"] / 1e6, 2),
                        "budget_mb": BUDGET["package_mb"],
                        "met": measured["zip_bytes"] / 1e6 <= BUDGET["package_mb"]},
            "how": measured["how"]}


# --- 5. widget --------------------------------------------------------------------------------


def widget(runs: int) -> dict[str, Any]:
    data = (ROOT / "widget" / "widget.js").read_bytes()
    gz = len(gzip.compress(data, 9))
    result: dict[str, Any] = {"gzip_bytes": gz, "raw_bytes": len(data),
                              "budget_bytes": BUDGET["widget_gzip_bytes"],
                              "met": gz <= BUDGET["widget_gzip_bytes"]}
    if not Path("/usr/bin/chromium").exists():
        result["browser"] = "skipped: /usr/bin/chromium missing"
        return result
    from playwright.sync_api import sync_playwright

    server = Server()
    try:
        base = server.info["http_url"]
        launcher: list[float] = []
        with_widget: list[float] = []
        without: list[float] = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"])
            for _ in range(runs):
                for block, bucket in ((False, with_widget), (True, without)):
                    context = browser.new_context()
                    page = context.new_page()
                    if block:
                        page.route("**/widget/widget.js", lambda route: route.abort())
                    page.goto(f"{base}/", wait_until="load")
                    bucket.append(page.evaluate(
                        "performance.getEntriesByType('navigation')[0].loadEventEnd"))
                    if not block:
                        page.wait_for_function(
                            "() => { const h = document.querySelector('[data-chat-widget]') || "
                            "[...document.querySelectorAll('*')].find(e => e.shadowRoot); "
                            "return h && h.shadowRoot && h.shadowRoot.querySelector('button'); }")
                        launcher.append(page.evaluate("performance.now()"))
                    context.close()
            browser.close()
        result.update({"launcher_visible_ms": spread(launcher), "host_load_ms_with": spread(with_widget),
                       "host_load_ms_without": spread(without)})
    finally:
        server.stop()
    return result


# --- 6. cost ----------------------------------------------------------------------------------


def cost(work: dict[str, Any], latency_ms: float, after_hours_share: float = 0.2) -> dict[str, Any]:
    """Dollars per 1,000 conversations of 20 messages at list prices."""
    conv = work["per_conversation"]
    n = 1000
    minutes_connected = 2 * 10  # two connections, ~10 minutes per chat
    lines = {
        "api_gateway_messages": n * (conv["posts"] + conv["lambda_invocations"]) * PRICE_WS_MESSAGE,
        "api_gateway_connection_minutes": n * minutes_connected * PRICE_WS_CONNECTION_MINUTE,
        "lambda_requests": n * conv["lambda_invocations"] * PRICE_LAMBDA_REQUEST,
        "lambda_compute": n * conv["lambda_invocations"] * (max(latency_ms, 20) / 1000)
        * (LAMBDA_MEMORY_MB / 1024) * PRICE_LAMBDA_GB_SECOND,
        "dynamodb": n * conv["capacity_units"] * (PRICE_DDB_WRITE_UNIT + PRICE_DDB_READ_UNIT) / 2,
        "ses_after_hours": n * after_hours_share * 2 * PRICE_SES_EMAIL,
        "sqs_after_hours": n * after_hours_share * 3 * PRICE_SQS_REQUEST,
    }
    return {"prices_date": PRICES_DATE, "per_1000_conversations_usd": round(sum(lines.values()), 4),
            "lines_usd": {k: round(v, 5) for k, v in lines.items()},
            "assumptions": {"messages_per_conversation": 20, "minutes_connected_per_connection": 10,
                            "after_hours_share": after_hours_share, "lambda_memory_mb": LAMBDA_MEMORY_MB,
                            "lambda_ms_per_invocation": max(latency_ms, 20),
                            "dynamodb_units_priced_as": "half write, half read units"}}


# --- charts -----------------------------------------------------------------------------------


def charts(results: dict[str, Any]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    sizes = list(results["delivery"])
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, key in enumerate(("p50_ms", "p95_ms", "p99_ms")):
        heights = [results["delivery"][s][key]["median"] for s in sizes]
        ax.bar([x + i * 0.25 for x in range(len(sizes))], heights, 0.25, label=key.replace("_ms", ""))
    ax.plot([x + 0.25 for x in range(len(sizes))], [results["delivery"][s]["floor"]["p50_ms"]["median"]
                                                    for s in sizes], "k--o", label="floor p50 (echo)")
    ax.set_xticks([x + 0.25 for x in range(len(sizes))], [f"{s} conv." for s in sizes])
    ax.set_ylabel("ms, visitor send to agent receipt")
    ax.set_title(f"Delivery latency ({results['machine']['cores']} cores, local stand-in)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "latency.png", dpi=110)
    made.append("latency.png")
    counts = list(results["fanout"])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([int(c) for c in counts], [results["fanout"][c]["p50_ms"] for c in counts], "o-", label="p50")
    ax.plot([int(c) for c in counts], [results["fanout"][c]["p95_ms"] for c in counts], "o--", label="p95")
    ax.set_xlabel("recipient connections")
    ax.set_ylabel("ms to the last recipient")
    ax.set_title("Fan-out (concurrent posts)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "fanout.png", dpi=110)
    made.append("fanout.png")
    lines = results["cost"]["lines_usd"]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.barh(list(lines), list(lines.values()))
    ax.set_xlabel("USD per 1,000 conversations of 20 messages")
    ax.set_title(f"Cost model (list prices {PRICES_DATE})")
    fig.tight_layout()
    fig.savefig(RESULTS / "cost.png", dpi=110)
    made.append("cost.png")
    plt.close("all")
    return made


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    repeats = 1 if args.quick else 3
    sizes = [10, 100] if args.quick else [10, 100, 500]
    RESULTS.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"machine": machine(), "quick": args.quick}
    steps = [("work", work_counts), ("delivery", lambda: delivery(sizes, 10 if args.quick else 20, repeats)),
             ("fanout", lambda: fanout([1, 2, 5, 20], 10 if args.quick else 30)),
             ("cold_start", lambda: cold_start(3 if args.quick else 9)),
             ("widget", lambda: widget(repeats))]
    for name, step in steps:
        started = time.perf_counter()
        print(f"bench: {name} ...", flush=True)
        results[name] = step()
        print(f"bench: {name} done in {time.perf_counter() - started:.0f} s: "
              f"{json.dumps(results[name])[:300]}", flush=True)
    p50 = results["delivery"][str(sizes[0])]["p50_ms"]["median"]
    results["cost"] = cost(results["work"], p50)
    results["charts"] = charts(results)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS / 'latest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
