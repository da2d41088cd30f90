"""Admin command: manage agent accounts in a deployment's table (or the local stand-in's).

    python -m infra.admin create-agent alice --name "Alice" [--role admin] [--max-chats 4]

The password is read from ``$AGENT_PASSWORD`` or prompted for, never taken from argv (it
would land in shell history). With ``--local`` the command targets a running ``make dev``.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys

from infra.local.stack import LOCAL_DIR

DEV_ENV = LOCAL_DIR / "dev.json"


def _use_local() -> None:
    if not DEV_ENV.exists():
        sys.exit("The local stand-in is not running: start it with `make dev` first.")
    os.environ.update(json.loads(DEV_ENV.read_text()))


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
    args = parser.parse_args(argv)
    if args.local:
        _use_local()
    from chalicelib import agents

    password = os.environ.get("AGENT_PASSWORD") or getpass.getpass("Password: ")
    try:
        agent = agents.create(args.agent_id, args.name, password, role=args.role,
                              max_chats=args.max_chats, email=args.email)
    except agents.AgentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"created {agent.role} {agent.id!r} (max {agent.max_chats} chats)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
