"""Admin command for a deployment (or, with ``--local``, the running ``make dev``).

    python -m infra.admin create-site shop [--company "Our shop"]   # sites exist only once created
    python -m infra.admin create-agent alice --name "Alice" [--site shop] [--role admin] [--max-chats 4]
    python -m infra.admin site default --hours hours.json --team-email team@example.com [--company "Acme"]
    python -m infra.admin dlq list              # mail jobs that failed every attempt
    python -m infra.admin dlq redrive [--all | ID ...]
    python -m infra.admin visitor export default VISITOR_ID_OR_EMAIL [-o data.json]
    python -m infra.admin visitor erase default VISITOR_ID_OR_EMAIL --yes

The password is read from ``$AGENT_PASSWORD`` or prompted for, never taken from argv (it
would land in shell history). With ``--local`` the command targets a running ``make dev``.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from typing import Any

import boto3

from infra.local.stack import LOCAL_DIR

DEV_ENV = LOCAL_DIR / "dev.json"


def _use_local() -> None:
    if not DEV_ENV.exists():
        sys.exit("The local stand-in is not running: start it with `make dev` first.")
    os.environ.update(json.loads(DEV_ENV.read_text()))


def dead_letters(limit: int = 100) -> list[dict[str, Any]]:
    """Peek at the mail dead-letter queue (messages stay there)."""
    from chalicelib import config  # after --local has set the environment

    sqs = boto3.session.Session().client("sqs")
    url = sqs.get_queue_url(QueueName=config.settings().mail_dlq_name)["QueueUrl"]
    seen: dict[str, dict[str, Any]] = {}
    while len(seen) < limit:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0,
                                    AttributeNames=["All"], WaitTimeSeconds=0).get("Messages", [])
        fresh = [m for m in batch if m["MessageId"] not in seen]
        if not fresh:
            break
        for m in fresh:
            seen[m["MessageId"]] = {"id": m["MessageId"], "body": m["Body"],
                                    "receives": int(m["Attributes"].get("ApproximateReceiveCount", 0)),
                                    "sent": int(m["Attributes"].get("SentTimestamp", 0))}
    return list(seen.values())


def redrive(ids: list[str] | None = None) -> list[str]:
    """Move dead-lettered mail jobs (all, or those ids) back to the mail queue. Safe to repeat:
    every email is sent at most once, whatever happens to its job."""
    from chalicelib import config

    sqs = boto3.session.Session().client("sqs")
    dlq = sqs.get_queue_url(QueueName=config.settings().mail_dlq_name)["QueueUrl"]
    main_queue = sqs.get_queue_url(QueueName=config.settings().mail_queue_name)["QueueUrl"]
    moved: list[str] = []
    while True:
        batch = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, VisibilityTimeout=30,
                                    WaitTimeSeconds=0).get("Messages", [])
        wanted = [m for m in batch if ids is None or m["MessageId"] in ids]
        for m in batch:
            if m in wanted:
                sqs.send_message(QueueUrl=main_queue, MessageBody=m["Body"])
                sqs.delete_message(QueueUrl=dlq, ReceiptHandle=m["ReceiptHandle"])
                moved.append(m["MessageId"])
            else:
                sqs.change_message_visibility(QueueUrl=dlq, ReceiptHandle=m["ReceiptHandle"],
                                              VisibilityTimeout=0)
        if not wanted:
            return moved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.admin", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--local", action="store_true", help="target the running `make dev`")
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create-agent", help="create an agent account")
    create.add_argument("agent_id")
    create.add_argument("--name", required=True)
    create.add_argument("--email")
    create.add_argument("--role", default="agent", choices=["agent", "admin"])
    create.add_argument("--max-chats", type=int, default=None)
    create.add_argument("--site", help="the agent's site (default: the deployment's DEFAULT_SITE)")
    new_site = sub.add_parser("create-site", help="create a site (visitors of any other id are refused)")
    new_site.add_argument("site_id")
    new_site.add_argument("--company", "--name", dest="company",
                          help="the company name visitors see (asked for in a terminal)")
    site = sub.add_parser("site", help="set a site's hours, team address or name")
    site.add_argument("site_id")
    site.add_argument("--hours", type=argparse.FileType("r"), help="JSON file, see chalicelib/hours.py")
    site.add_argument("--team-email")
    site.add_argument("--company", "--name", dest="company", help="the company name visitors see")
    dlq = sub.add_parser("dlq", help="mail jobs that failed every attempt")
    dlq.add_argument("operation", choices=["list", "redrive"])
    dlq.add_argument("ids", nargs="*")
    dlq.add_argument("--all", action="store_true")
    visitor = sub.add_parser("visitor", help="export or erase what is held about a visitor")
    visitor.add_argument("operation", choices=["export", "erase"])
    visitor.add_argument("site_id")
    visitor.add_argument("who", help="a visitor id, or the email address they gave")
    visitor.add_argument("-o", "--out", help="export: write the JSON here (default: stdout)")
    visitor.add_argument("--yes", action="store_true", help="erase: confirm (it cannot be undone)")
    args = parser.parse_args(argv)
    if args.local:
        _use_local()
    if args.command == "site":
        return _site(args)
    if args.command == "create-site":
        return _create_site(args)
    if args.command == "dlq":
        return _dlq(args)
    if args.command == "visitor":
        return _visitor(args)
    from chalicelib import agents
    from chalicelib.errors import Refusal

    password = os.environ.get("AGENT_PASSWORD") or getpass.getpass("Password: ")
    try:
        agent = agents.create(args.agent_id, args.name, password, role=args.role,
                              max_chats=args.max_chats, email=args.email, site=args.site)
    except Refusal as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"created {agent.role} {agent.id!r} (max {agent.max_chats} chats)")
    return 0


def _create_site(args: argparse.Namespace) -> int:
    """The only way a site comes to be (besides deploy's first admin and ``make dev``'s demo
    site): visitors and REST callers naming any other site id are refused."""
    from chalicelib import sites
    from infra import company

    try:
        sites.create(args.site_id, company.choose(args.company, None))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(sites.public(sites.get(args.site_id)), indent=2))
    return 0


def _site(args: argparse.Namespace) -> int:
    from chalicelib import sites

    doc: dict[str, Any] = {}
    if args.hours:
        doc["hours"] = json.load(args.hours)
    if args.team_email:
        doc["team_email"] = args.team_email
    if args.company is not None:
        doc["name"] = args.company
    try:
        sites.update(args.site_id, doc)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(sites.public(sites.get(args.site_id)), indent=2))
    return 0


def _dlq(args: argparse.Namespace) -> int:
    if args.operation == "list":
        for item in dead_letters():
            print(json.dumps(item))
        return 0
    if not args.all and not args.ids:
        print("error: name the ids to redrive, or --all", file=sys.stderr)
        return 1
    moved = redrive(None if args.all else args.ids)
    print(f"moved {len(moved)} job(s) back to the mail queue")
    return 0


def _visitor(args: argparse.Namespace) -> int:
    """The same export and erasure as ``GET|DELETE /sites/{site}/visitors/{who}``."""
    from chalicelib import fanout, privacy
    from chalicelib.fanout import Outbox

    found = privacy.find(args.site_id, args.who)
    if found.empty():
        print(f"error: nothing is held about {args.who!r} on site {args.site_id!r}", file=sys.stderr)
        return 1
    if args.operation == "export":
        text = json.dumps(privacy.export(found), indent=2, ensure_ascii=False)
        if args.out:
            with open(args.out, "w", encoding="utf-8") as out:
                out.write(text + "\n")
        else:
            print(text)
        return 0
    if not args.yes:
        print("error: erasing cannot be undone; add --yes", file=sys.stderr)
        return 1
    outbox = Outbox()
    erased = privacy.erase(found, outbox)
    # Tell connected agents and hang up the visitor's tabs, when the WebSocket API is known
    # (set WEBSOCKET_API_ID for a deployment; --local knows the stand-in's).
    if os.environ.get("AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI") or os.environ.get("WEBSOCKET_API_ID"):
        fanout.deliver(outbox, fanout.endpoint())
        fanout.close(erased.hang_up, fanout.endpoint())
    elif erased.hang_up or len(outbox):
        print("note: WEBSOCKET_API_ID not set, so open consoles and tabs were not told; their "
              "records are gone all the same", file=sys.stderr)
    print(json.dumps({"erased": erased.counts}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
