"""``make dev``: run the whole product locally and print where everything is."""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import sys
import threading

from infra.local.dynamodb import Unavailable
from infra.local.gateway import IDLE_TIMEOUT_S, MAX_CONNECTION_S
from infra.local.stack import LOCAL_DIR, Stack, write_private

DEMO_AGENT, DEMO_PASSWORD = "demo", "demo-password"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.local")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    parser.add_argument("--fresh", action="store_true", help="start with an empty database")
    parser.add_argument("--company", default=os.environ.get("COMPANY") or None,
                        help="the demo site's company name, as visitors see it (asked for when "
                             "run in a terminal; make dev COMPANY=\"Acme Shoes\")")
    # API Gateway's WebSocket limits, on by default as on AWS; 0 turns one off (debugging).
    parser.add_argument("--idle-timeout", type=float, default=IDLE_TIMEOUT_S, metavar="SECONDS",
                        help=f"close WebSockets idle this long (default {IDLE_TIMEOUT_S:g}; 0: never)")
    parser.add_argument("--max-connection", type=float, default=MAX_CONNECTION_S,
                        metavar="SECONDS",
                        help=f"close WebSockets open this long (default {MAX_CONNECTION_S:g}; 0: never)")
    args = parser.parse_args()
    # A thousand visitors are a thousand sockets; many shells default to 1,024 descriptors.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 65536)), hard))
    data_dir = LOCAL_DIR / "dynamodb"
    if args.fresh and data_dir.exists():
        for path in data_dir.iterdir():
            path.unlink()
    from chalicelib import telemetry
    from infra.local.metrics import printer

    # The app's EMF lines stay JSON on stdout (as CloudWatch gets them); each metric is also
    # printed readably on stderr: "metric MessagesSent=1 side=visitor (...)".
    telemetry.add_sink(printer())
    stack = Stack(port=args.port, data_dir=data_dir, idle_timeout=args.idle_timeout or None,
                  max_connection_duration=args.max_connection or None)
    try:
        stack.start()
    except Unavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    assert stack.gateway and stack.dynamodb and stack.ses and stack.sqs and stack.smtp
    keys = ("AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL_SESV2",
            "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "TABLE_NAME",
            "TOKEN_SECRET", "AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI")
    # It holds the token secret and the management API's key: owner-only.
    write_private(LOCAL_DIR / "dev.json", json.dumps({**{k: os.environ[k] for k in keys},
                                                      "ws_url": stack.gateway.ws_url,
                                                      "http_url": stack.gateway.http_url}))
    from chalicelib import agents, config
    from chalicelib.errors import Refusal
    from infra import company

    # The demo website's site, kept from earlier runs; named by --company, or asked for in a
    # terminal (Enter keeps the name it has); a run nobody watches never waits on a prompt.
    try:
        company.apply(config.settings().default_site, args.company)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        stack.stop()
        return 1
    try:
        agents.create(DEMO_AGENT, "Demo Agent", DEMO_PASSWORD, role="admin")
    except Refusal:
        pass  # kept from an earlier run
    http = stack.gateway.http_url
    print(f"""
click-to-chat is running locally (Ctrl-C to stop)

  demo website (visitor)   {http}/
  agent console            {http}/console/      sign in: {DEMO_AGENT} / {DEMO_PASSWORD}
  WebSocket API            {stack.gateway.ws_url}
  REST API                 {http}/api/
  management API           {stack.gateway.management_endpoint}/@connections/<id>
  DynamoDB Local           {stack.dynamodb.endpoint}   (table {os.environ['TABLE_NAME']})
  emails sent (SES)        {stack.ses.endpoint}/        (aws-ses-v2-local: every email, nothing leaves)
  mail queue (SQS, moto)   {stack.sqs.endpoint}
  reply by email: {stack.smtp.url}   (plays SES receiving for {config.settings().reply_domain})
    python -c "import smtplib; smtplib.SMTP('127.0.0.1', {stack.smtp.port}).sendmail('{{FROM}}', \
['{{REPLY_TO}}'], 'From: {{FROM}}\\nSubject: Re\\n\\nThanks!')"
    ({{FROM}}: the visitor's address; {{REPLY_TO}}: the Reply-To of the agent's emailed reply)

  more agents:  make agent ID=alice NAME="Alice"
  metrics:      JSON logs and EMF lines on stdout; each metric also as "metric Name=value ..."
""", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
        (LOCAL_DIR / "dev.json").unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
