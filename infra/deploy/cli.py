"""Deploy a stage to AWS, package it, or tear it down.

    python -m infra.deploy deploy  --stage prod --mail-from chat@shop.com --team-email help@shop.com \
                                   [--company "Acme Shoes"]
    python -m infra.deploy destroy --stage prod [--yes]
    python -m infra.deploy package --stage prod      # small zip + merged CloudFormation template
    python -m infra.deploy table [--check]           # the table block of infra/template.yaml

``make deploy STAGE=prod``, ``make package`` and ``make destroy`` call this. ``deploy`` is one
idempotent pass (a second run changes nothing):

1. the token-signing key: an SSM SecureString created once (CloudFormation cannot create one);
2. the infra stack (``infra/template.yaml``): table, mail queues, SES, S3 + CloudFront;
3. its outputs and the mail settings written into ``.chalice/config.json`` (the stage's
   environment) and ``.chalice/policy-<stage>.json`` (the SES identity, the WebSocket API);
4. ``chalice deploy`` from a staged copy of the project whose dependencies are vendored for
   the runtime in ``infra/runtime.py`` (refused if AWS deprecated it), with our own pinned
   botocore trimmed to the services the app calls, and ``tzdata``;
   the first time twice, because ``WEBSOCKET_API_ID`` is only known after the first;
5. the SQS event source mapping gets ``ReportBatchItemFailures`` (Chalice 1.34 never sets it,
   and ``send_mail`` returns partial batch responses) and a maximum concurrency; both API
   stages get the stage's throttling and their access logs (``api_protection``; Chalice sets
   neither), after API Gateway's CloudWatch Logs role if the account has none;
6. the widget and the console uploaded (content-hashed, immutable where possible) with the
   API addresses baked into ``console/config.js``; CloudFront invalidated when files changed;
7. the site, named for the company (``--company``/``COMPANY=``, or asked for in a terminal;
   else it keeps its name), and a first admin agent if it has none (password printed once);
8. the embed snippet printed.

Everything AWS goes through one injectable boto3 session, and ``chalice`` runs through an
injectable runner, so ``tests/test_deploy.py`` drives all of it against moto.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from infra.deploy import DeployError
from infra.deploy.packaging import package
from infra.deploy.site import company_name, ensure_admin_here
from infra.deploy.stack import DEFAULT_SITE, Deployer, Options
from infra.deploy.template import load_template, table_schema, table_yaml, template_table_schema


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.deploy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    dep = sub.add_parser("deploy", help="deploy (or update) a stage")
    dep.add_argument("--stage", required=True)
    dep.add_argument("--mail-from", help="sender address (kept in .chalice/config.json)")
    dep.add_argument("--team-email", help="where messages for the team go by default")
    dep.add_argument("--mail-identity", help="SES identity (default: the domain of --mail-from)")
    dep.add_argument("--mail-identity-mode", choices=["domain", "address", "existing"])
    dep.add_argument("--alarm-email", help="told when mail jobs land in the dead-letter queue")
    dep.add_argument("--reply-domain", help="receive visitors' email replies on this domain (SES "
                                            "receiving; after a first deploy, docs/deploy.md)")
    dep.add_argument("--site-domain", help="custom domain for widget and console (CloudFront)")
    dep.add_argument("--site-certificate-arn", help="its ACM certificate, in us-east-1")
    dep.add_argument("--price-class", choices=["PriceClass_100", "PriceClass_200", "PriceClass_All"])
    dep.add_argument("--site", default=DEFAULT_SITE, help="site of the snippet and the first admin")
    dep.add_argument("--admin", default="admin", help="id of the first admin (created if none)")
    dep.add_argument("--admin-name", default="Admin")
    dep.add_argument("--admin-email")
    dep.add_argument("--company", default=os.environ.get("COMPANY") or None,
                     help="the company name visitors see (asked for in a terminal; else kept)")
    dep.add_argument("--force", action="store_true", help="run chalice deploy even if nothing changed")
    des = sub.add_parser("destroy", help="remove everything of a stage (the table too)")
    des.add_argument("--stage", required=True)
    des.add_argument("--yes", action="store_true", help="do not ask")
    des.add_argument("--backup", action="store_true", help="keep an on-demand backup of the table")
    pkg = sub.add_parser("package", help="small Lambda zip + merged CloudFormation template")
    pkg.add_argument("--stage", required=True)
    sec = sub.add_parser("secret", help="create the token secret of a stage if missing")
    sec.add_argument("--stage", required=True)
    tbl = sub.add_parser("table", help="print the table block of infra/template.yaml")
    tbl.add_argument("--check", action="store_true", help="exit 1 if the template differs")
    adm = sub.add_parser("ensure-admin", help=argparse.SUPPRESS)
    adm.add_argument("--site", required=True)
    adm.add_argument("--id", required=True)
    adm.add_argument("--name", required=True)
    adm.add_argument("--email")
    adm.add_argument("--company")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except DeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    if args.command == "table":
        if args.check:
            same = template_table_schema(load_template()) == table_schema()
            print("infra/template.yaml matches chalicelib.models" if same else
                  "infra/template.yaml differs from chalicelib.models; replace its Table block with:\n"
                  + table_yaml())
            return 0 if same else 1
        print(table_yaml(), end="")
        return 0
    if args.command == "ensure-admin":
        print(json.dumps(ensure_admin_here(args.site, args.id, args.name, args.email, args.company)))
        return 0
    if args.command == "package":
        package(args.stage)
        return 0
    deployer = Deployer(args.stage)
    if args.command == "secret":
        deployer.ensure_secret()
        return 0
    if args.command == "destroy":
        if not args.yes and input(f"Delete stage {args.stage!r}, its table and every conversation? "
                                  f"Type the stage name: ").strip() != args.stage:
            print("not confirmed; nothing removed")
            return 1
        deployer.destroy(backup=args.backup)
        return 0
    deployer.deploy(Options(
        mail_from=args.mail_from, team_email=args.team_email, mail_identity=args.mail_identity,
        mail_identity_mode=args.mail_identity_mode, alarm_email=args.alarm_email,
        reply_domain=args.reply_domain,
        site_domain=args.site_domain, site_certificate_arn=args.site_certificate_arn,
        price_class=args.price_class, site=args.site, admin_id=args.admin, admin_name=args.admin_name,
        admin_email=args.admin_email, force=args.force, company=company_name(args.company)))
    return 0
