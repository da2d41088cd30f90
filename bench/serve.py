"""Run one local stack (in memory) in its own process for the benchmarks, and print where it
is as one JSON line. Clients run in the benchmark process, so they do not share a GIL with
the gateway and the handlers (as on AWS, where clients are elsewhere).

    python -m bench.serve [--echo]     # --echo: the floor handler (tests/support/echo_app.py) instead
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import secrets
import signal
import sys
import threading

os.environ.setdefault("TOKEN_SECRET", secrets.token_urlsafe(48))
os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
os.environ["AWS_DEFAULT_REGION"] = os.environ["AWS_REGION"] = "us-east-1"
os.environ.setdefault("TABLE_NAME", "bench")
os.environ.setdefault("FANOUT_WORKERS", "16")
# The benchmark's clients send back to back, faster than any person types: flood control
# (5 a second per connection) would refuse most of them. It rides on the message's own
# UpdateItem, so turning it off does not change the work per message.
os.environ.setdefault("MESSAGES_PER_SECOND", "0")
# The fan-out step posts one message to up to 20 tabs of one visitor (bench/load.fanout): it
# measures concurrent delivery, not the per-visitor tab cap (10 by default, Settings.visitor_tabs),
# which would evict tabs under it and refuse racing connects (broken since the cap came in).
os.environ.setdefault("VISITOR_TABS", "25")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--echo", action="store_true")
    args = parser.parse_args()
    from infra.local.gateway import GatewayServer
    from infra.local.stack import Stack

    if args.echo:
        app = importlib.import_module("tests.support.echo_app").app
        gateway = GatewayServer(app, max_workers=64)
        gateway.start()
        os.environ["AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI"] = gateway.management_endpoint
        info = {"ws_url": gateway.ws_url, "http_url": gateway.http_url}
        stop = gateway.stop
    else:
        stack = Stack(table=os.environ["TABLE_NAME"], schedule_interval=None, poll_queues=False,
                      token_secret=os.environ["TOKEN_SECRET"]).start()
        assert stack.gateway and stack.dynamodb
        info = {"ws_url": stack.gateway.ws_url, "http_url": stack.gateway.http_url,
                "dynamodb": stack.dynamodb.endpoint, "table": os.environ["TABLE_NAME"],
                "token_secret": os.environ["TOKEN_SECRET"]}
        stop = stack.stop
    print(json.dumps(info), flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
