"""One stage's deployment: :class:`Deployer`, an idempotent deploy pass (a second run changes
nothing) and its teardown, in the order the command line's help lists the steps.

Everything AWS goes through one injectable boto3 session, and ``chalice`` runs through an
injectable runner, so ``tests/test_deploy.py`` drives all of it against moto.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

from infra.deploy import ROOT, DeployError, client_error_code
from infra.deploy.chalice_config import (
    function_setting,
    load_chalice_config,
    set_stage_env,
    stage_config,
    stage_env,
    write_json_if_changed,
)
from infra.deploy.names import names
from infra.deploy.packaging import (
    Out,
    Runner,
    chalice_command,
    lambda_runtime,
    project_fingerprint,
    run_subprocess,
    stage_project,
)
from infra.deploy.policy import mail_identity, policy_path, render_policy
from infra.deploy.protection import api_protection, rest_stage_patch, websocket_stage_update
from infra.deploy.site import first_admin
from infra.deploy.template import TEMPLATE, load_template
from infra.deploy.uploads import empty_bucket, site_files, upload_site

DEFAULT_SITE = "default"
ALARM_PARAMETERS = ("ErrorRatePercent", "HandlerP99Millis", "FanoutErrorThreshold")
# Documentation domains (RFC 2606): SES can never verify them, so a deploy refuses them.
RESERVED_DOMAINS = ("example.com", "example.net", "example.org")
LOGGING_ROLE_TEMPLATE = ROOT / "infra" / "apigateway-account.yaml"


@dataclasses.dataclass
class Options:
    mail_from: str | None = None
    team_email: str | None = None
    mail_identity: str | None = None
    mail_identity_mode: str | None = None  # domain | address | existing
    alarm_email: str | None = None
    reply_domain: str | None = None  # SES receiving of visitors' email replies (REPLY_DOMAIN)
    site_domain: str | None = None
    site_certificate_arn: str | None = None
    price_class: str | None = None
    site: str = DEFAULT_SITE
    admin_id: str = "admin"
    admin_name: str = "Admin"
    admin_email: str | None = None
    force: bool = False
    company: str | None = None  # the site's name for visitors; None keeps what it has


@dataclasses.dataclass
class Result:
    changes: list[str]
    snippet: str
    console_url: str
    websocket_url: str
    api_url: str
    admin_password: str | None = None


class Deployer:
    """One stage's deployment. ``session``/``endpoint_url`` pick the AWS to talk to, ``runner``
    runs ``chalice``, ``env`` is the environment of child processes, ``out`` prints."""

    def __init__(self, stage: str, *, session: Any = None, endpoint_url: str | None = None,
                 root: Path = ROOT, runner: Runner = run_subprocess, out: Out = print,
                 env: Mapping[str, str] | None = None, template_body: str | None = None) -> None:
        self.root = root
        self.names = names(stage, root)
        self.stage = stage
        self.session = session or boto3.session.Session()
        self.endpoint_url = endpoint_url
        self.runner = runner
        self.out = out
        self.env = dict(os.environ if env is None else env)
        self.template_body = template_body if template_body is not None else TEMPLATE.read_text()
        self.region = str(self.session.region_name or self.env.get("AWS_REGION")
                          or self.env.get("AWS_DEFAULT_REGION") or "")
        if not self.region:
            raise DeployError("No AWS region: set AWS_REGION (or a profile with a region).")
        self.changes: list[str] = []
        self._clients: dict[str, Any] = {}

    # -- plumbing
    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(service, region_name=self.region,
                                                         endpoint_url=self.endpoint_url)
        return self._clients[service]

    def changed(self, what: str) -> None:
        self.changes.append(what)
        self.out(f"  changed: {what}")

    @property
    def deployed_record(self) -> Path:
        return self.root / ".chalice" / "deployed" / f"{self.stage}.json"

    @property
    def fingerprint_record(self) -> Path:
        return self.root / ".chalice" / "deployed" / f"{self.stage}.fingerprint"

    def child_env(self) -> dict[str, str]:
        env = dict(self.env)
        env["AWS_DEFAULT_REGION"] = env["AWS_REGION"] = self.region
        if self.endpoint_url:
            env["AWS_ENDPOINT_URL"] = self.endpoint_url
        return env

    # -- 1. the token secret
    def ensure_secret(self) -> str:
        ssm, name = self.client("ssm"), self.names.token_secret_param
        try:
            ssm.get_parameter(Name=name)  # metadata only: the value is never read here
        except ClientError as exc:
            if client_error_code(exc) != "ParameterNotFound":
                raise
            ssm.put_parameter(Name=name, Type="SecureString", Value=secrets.token_urlsafe(48),
                              Description=f"{self.names.app} {self.stage}: token-signing key",
                              Overwrite=False)
            self.changed(f"SSM SecureString {name} created")
        return name

    # -- 2. the infra stack
    def stack(self) -> dict[str, Any] | None:
        try:
            stacks = self.client("cloudformation").describe_stacks(StackName=self.names.stack)["Stacks"]
        except ClientError as exc:
            if "does not exist" in str(exc):
                return None
            raise
        return dict(stacks[0]) if stacks else None

    def stack_parameters(self, options: Options, mail_from: str,
                         current: Mapping[str, str], api_origins: str) -> dict[str, str]:
        domain = mail_from.rsplit("@", 1)[-1]
        defaults = {"MailIdentityMode": "domain", "AlarmEmail": "", "ReplyDomain": "", "SiteDomain": "",
                    "SiteCertificateArn": "", "PriceClass": "PriceClass_100"}
        given = {"MailIdentityMode": options.mail_identity_mode, "AlarmEmail": options.alarm_email,
                 "ReplyDomain": options.reply_domain,
                 "SiteDomain": options.site_domain, "SiteCertificateArn": options.site_certificate_arn,
                 "PriceClass": options.price_class}
        # The identity follows MAIL_FROM (its domain, or the address itself if that is what
        # was verified) unless one is given.
        params = {"AppName": self.names.app, "Stage": self.stage,
                  "ApiOrigins": api_origins, "TableDeletionProtection": "true"}
        # The API access logs are kept as long as the functions' logs.
        retention = function_setting(load_chalice_config(self.root), self.stage, "api_handler",
                                     "log_retention_in_days")
        if retention:
            params["LogRetentionDays"] = str(retention)
        for key, default in defaults.items():
            value = given[key]
            params[key] = value if value is not None else current.get(key, default)
        # Alarm thresholds: kept as the stack has them (a team may tune them), else the template's.
        template = load_template(self.root / "infra" / "template.yaml")["Parameters"]
        for key in ALARM_PARAMETERS:
            params[key] = current.get(key, str(template[key]["Default"]))
        previous = current.get("MailIdentity", "")
        derived = mail_from if params["MailIdentityMode"] == "address" else domain
        params["MailIdentity"] = options.mail_identity or (
            previous if previous in (mail_from, domain) and options.mail_identity_mode is None else derived)
        return params

    def ensure_stack(self, params: Mapping[str, str]) -> dict[str, str]:
        cfn = self.client("cloudformation")
        stack = self.stack()
        if stack is not None and stack["StackStatus"] == "ROLLBACK_COMPLETE":
            self.out(f"  stack {self.names.stack} never got created (ROLLBACK_COMPLETE): deleting it first")
            cfn.delete_stack(StackName=self.names.stack)
            cfn.get_waiter("stack_delete_complete").wait(StackName=self.names.stack,
                                                         WaiterConfig={"Delay": 5, "MaxAttempts": 360})
            stack = None
        wanted = [{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(params.items())]
        if stack is None:
            cfn.create_stack(StackName=self.names.stack, TemplateBody=self.template_body,
                             Parameters=wanted, Tags=[{"Key": "app", "Value": self.names.app},
                                                      {"Key": "stage", "Value": self.stage}])
            self._wait("stack_create_complete")
            self.changed(f"stack {self.names.stack} created")
        else:
            have = {p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])}
            body = cfn.get_template(StackName=self.names.stack)["TemplateBody"]
            if not isinstance(body, str):  # botocore decodes JSON template bodies
                body = json.dumps(body, sort_keys=True)
                same_body = body == json.dumps(_json_or_none(self.template_body), sort_keys=True)
            else:
                same_body = body == self.template_body
            if not same_body or any(have.get(k) != v for k, v in params.items()):
                try:
                    cfn.update_stack(StackName=self.names.stack, TemplateBody=self.template_body,
                                     Parameters=wanted)
                except ClientError as exc:
                    if "No updates are to be performed" not in str(exc):
                        raise
                else:
                    self._wait("stack_update_complete")
                    self.changed(f"stack {self.names.stack} updated")
        return self.outputs()

    def _wait(self, waiter: str) -> None:
        try:
            self.client("cloudformation").get_waiter(waiter).wait(
                StackName=self.names.stack, WaiterConfig={"Delay": 5, "MaxAttempts": 720})
        except Exception as exc:
            raise DeployError(f"Stack {self.names.stack}: {waiter} failed ({exc}); see its events in "
                              "the CloudFormation console.") from exc

    def outputs(self) -> dict[str, str]:
        stack = self.stack() or {}
        return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}

    # -- 3. the stage configuration
    def write_stage_config(self, outputs: Mapping[str, str], mail_from: str, team_email: str,
                           websocket_api_id: str | None, public_api_url: str | None = None) -> None:
        config = load_chalice_config(self.root)
        values: dict[str, str | None] = {
            "TABLE_NAME": outputs["TableName"],
            "MAIL_QUEUE_NAME": outputs["MailQueueName"],
            "MAIL_DLQ_NAME": outputs["MailDeadLetterQueueName"],
            "MAIL_MAX_RECEIVES": outputs.get("MailMaxReceives", "5"),
            "TOKEN_SECRET_PARAM": outputs["TokenSecretParamName"],
            "WEBSOCKET_STAGE": str(config.get("websocket_api_stage", "api")),
            "MAIL_FROM": mail_from,
            "TEAM_EMAIL": team_email,
            # Where chalicelib/telemetry.py writes metrics: the namespace the dashboard reads.
            "POWERTOOLS_METRICS_NAMESPACE": outputs.get("MetricsNamespace",
                                                        f"{self.names.app}-{self.stage}"),
            # Inbound email (chalicelib.email_channel): where SES stores it, the reply domain.
            "INBOUND_BUCKET": outputs.get("InboundBucketName", f"{self.names.app}-{self.stage}-inbound"),
            "REPLY_DOMAIN": outputs.get("ReplyDomain", ""),
        }
        if websocket_api_id:
            values["WEBSOCKET_API_ID"] = websocket_api_id
        if public_api_url:  # links in emails (address confirmation) point here
            values["PUBLIC_API_URL"] = public_api_url
        changed = set_stage_env(self.root, self.stage, values)
        if changed:
            self.changed(f".chalice/config.json stage {self.stage}: {', '.join(changed)}")
        path = policy_path(self.root, config, self.stage)
        policy = render_policy(json.loads(path.read_text()),
                               mail_identity=outputs.get("MailIdentity") or mail_from.rsplit("@", 1)[-1],
                               configuration_set=outputs.get("ConfigurationSetName",
                                                             self.names.configuration_set),
                               websocket_api_id=websocket_api_id,
                               websocket_stage=str(config.get("websocket_api_stage", "api")))
        if write_json_if_changed(path, policy):
            self.changed(f".chalice/{path.name}")

    # -- 4. chalice deploy
    def deployed(self) -> dict[str, dict[str, Any]]:
        """Chalice's record of the stage: resource name -> its deployed values."""
        if not self.deployed_record.exists():
            return {}
        doc = json.loads(self.deployed_record.read_text())
        return {r["name"]: r for r in doc.get("resources", [])}

    def chalice_deploy(self, force: bool) -> bool:
        project = stage_project(self.root, self.stage)
        fingerprint = project_fingerprint(project)
        if (not force and self.deployed_record.exists() and self.fingerprint_record.exists()
                and self.fingerprint_record.read_text().strip() == fingerprint):
            return False
        staged_record = project / ".chalice" / "deployed" / f"{self.stage}.json"
        staged_record.parent.mkdir(parents=True, exist_ok=True)
        if self.deployed_record.exists():
            shutil.copy2(self.deployed_record, staged_record)
        elif staged_record.exists():
            staged_record.unlink()
        self.runner([chalice_command(), "--project-dir", str(project), "deploy", "--stage", self.stage],
                    project, self.child_env())
        if not staged_record.exists():
            raise DeployError("chalice deploy left no .chalice/deployed record.")
        self.deployed_record.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(staged_record, self.deployed_record)
        self.fingerprint_record.write_text(fingerprint + "\n")
        self.changed(f"chalice deploy --stage {self.stage}")
        return True

    # -- 5. the mail trigger
    def ensure_event_source(self) -> None:
        config = load_chalice_config(self.root)
        concurrency = function_setting(config, self.stage, "send_mail", "reserved_concurrency")
        lam = self.client("lambda")
        for resource in self.deployed().values():
            if resource.get("resource_type") != "sqs_event":
                continue
            mapping = lam.get_event_source_mapping(UUID=resource["event_uuid"])
            update: dict[str, Any] = {}
            if "ReportBatchItemFailures" not in (mapping.get("FunctionResponseTypes") or []):
                update["FunctionResponseTypes"] = ["ReportBatchItemFailures"]
            if isinstance(concurrency, int) and concurrency >= 2 and (
                    mapping.get("ScalingConfig") or {}).get("MaximumConcurrency") != concurrency:
                update["ScalingConfig"] = {"MaximumConcurrency": concurrency}
            if update:
                lam.update_event_source_mapping(UUID=resource["event_uuid"], **update)
                self.changed(f"SQS trigger {resource['name']}: {', '.join(sorted(update))}")

    # -- 5b. the API stages: throttling and access logs (Chalice sets neither)
    def ensure_api_logging_role(self) -> None:
        """API Gateway writes REST and WebSocket access logs through one IAM role per account
        and region (AWS::ApiGateway::Account, "only one per region per account", AWS says).
        If the account has none, it gets one from a stack of its own
        (infra/apigateway-account.yaml), shared by every stage and kept by ``destroy``; a role
        set by anything else is left alone."""
        if self.client("apigateway").get_account().get("cloudwatchRoleArn"):
            return
        cfn = self.client("cloudformation")
        name = f"{self.names.app}-apigateway-logging"
        try:
            status = cfn.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
        except ClientError as exc:
            if "does not exist" not in str(exc):
                raise
        else:
            if status in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
                return
            raise DeployError(f"Stack {name} (API Gateway's CloudWatch Logs role) is {status}: "
                              "read its events, delete it, and deploy again.")
        cfn.create_stack(StackName=name, TemplateBody=LOGGING_ROLE_TEMPLATE.read_text(),
                         Capabilities=["CAPABILITY_IAM"], Tags=[{"Key": "app", "Value": self.names.app}])
        cfn.get_waiter("stack_create_complete").wait(StackName=name,
                                                     WaiterConfig={"Delay": 5, "MaxAttempts": 120})
        self.changed(f"stack {name} created (API Gateway's CloudWatch Logs role, this account and region)")

    def ensure_api_stages(self, outputs: Mapping[str, str]) -> None:
        """The stage's ``api_protection`` on both deployed API stages, and their access logs
        into the stack's log groups; nothing is changed when they have it already."""
        protection = api_protection(load_chalice_config(self.root), self.stage)
        deployed = self.deployed()
        for kind, output in (("rest_api", "RestAccessLogGroupArn"),
                             ("websocket_api", "WebsocketAccessLogGroupArn")):
            record = deployed.get(kind)
            if not record:
                continue
            destination = outputs.get(output)
            if not destination:
                raise DeployError(f"The stack {self.names.stack} has no output {output}.")
            stage = str(record[f"{kind}_url"]).rstrip("/").rsplit("/", 1)[-1]
            if kind == "rest_api":
                apigateway = self.client("apigateway")
                current = apigateway.get_stage(restApiId=record["rest_api_id"], stageName=stage)
                ops = rest_stage_patch(current, protection, destination)
                if ops:
                    apigateway.update_stage(restApiId=record["rest_api_id"], stageName=stage,
                                            patchOperations=ops)
                    self.changed(f"REST API stage {stage}: throttling and access logs")
            else:
                v2 = self.client("apigatewayv2")
                current = v2.get_stage(ApiId=record["websocket_api_id"], StageName=stage)
                update = websocket_stage_update(current, protection, destination)
                if update:
                    v2.update_stage(ApiId=record["websocket_api_id"], StageName=stage, **update)
                    self.changed(f"WebSocket API stage {stage}: throttling and access logs")

    # -- 6. widget and console
    def endpoints(self) -> tuple[str, str]:
        """(WebSocket URL, REST base URL), custom domains first."""
        config = load_chalice_config(self.root)
        stage = stage_config(config, self.stage)
        deployed = self.deployed()
        ws = str(deployed.get("websocket_api", {}).get("websocket_api_url", "")).rstrip("/")
        api = str(deployed.get("rest_api", {}).get("rest_api_url", "")).rstrip("/")
        for key, scheme in (("websocket_api_custom_domain", "wss"), ("api_gateway_custom_domain", "https")):
            domain = stage.get(key) or config.get(key)
            if domain:
                prefix = str(domain.get("url_prefix", "")).strip("/")
                url = f"{scheme}://{domain['domain_name']}" + (f"/{prefix}" if prefix else "")
                ws, api = (url, api) if scheme == "wss" else (ws, url)
        if not ws or not api:
            raise DeployError("No API addresses in .chalice/deployed: did chalice deploy run?")
        return ws, api

    def api_origins(self) -> str:
        config = load_chalice_config(self.root)
        stage = stage_config(config, self.stage)
        origins = []
        for key, scheme in (("api_gateway_custom_domain", "https"), ("websocket_api_custom_domain", "wss")):
            domain = stage.get(key) or config.get(key)
            if domain:
                origins.append(f"{scheme}://{domain['domain_name']}")
        return " ".join(origins)

    # -- 7. the first admin
    def ensure_admin(self, options: Options, table: str) -> str | None:
        """Create an admin on the site unless it has one; the password, if one was made."""
        password = first_admin(self.root, self.child_env(), table, site=options.site,
                               admin_id=options.admin_id, admin_name=options.admin_name,
                               admin_email=options.admin_email, company=options.company)
        if password is not None:
            self.changed(f"admin agent {options.admin_id!r} created on site {options.site!r}")
        return password

    # -- the whole thing
    def deploy(self, options: Options | None = None) -> Result:
        options = options or Options()
        self.changes = []
        lambda_runtime()  # before anything is created: a deprecated runtime is refused outright
        config = load_chalice_config(self.root)
        env = stage_env(config, self.stage)
        mail_from = options.mail_from or env.get("MAIL_FROM", "")
        team_email = options.team_email or env.get("TEAM_EMAIL", "")
        for label, address in (("MAIL_FROM", mail_from), ("TEAM_EMAIL", team_email)):
            if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", address):
                raise DeployError(f"{label} must be an email address "
                                  f"(make deploy ... {label}=you@yourdomain).")
            if address.rsplit("@", 1)[1].lower() in RESERVED_DOMAINS:
                raise DeployError(f"{label} is {address}: use a domain you own, e.g. "
                                  f"make deploy STAGE={self.stage} {label}=chat@yourdomain.com")
        self.out(f"deploying stage {self.stage} to {self.region}")
        self.ensure_secret()
        current = {p["ParameterKey"]: p["ParameterValue"] for p in (self.stack() or {}).get("Parameters", [])}
        params = self.stack_parameters(options, mail_from, current, self.api_origins())
        outputs = self.ensure_stack(params)
        api_id = env.get("WEBSOCKET_API_ID") or None
        public_api = env.get("PUBLIC_API_URL") or None
        self.write_stage_config(outputs, mail_from, team_email, api_id, public_api)
        self.chalice_deploy(options.force)
        deployed_id = self.deployed().get("websocket_api", {}).get("websocket_api_id")
        deployed_api = self.endpoints()[1]
        if (deployed_id and deployed_id != api_id) or deployed_api != public_api:
            # The APIs exist only now: the WebSocket API's id (management API endpoint outside
            # WebSocket handlers, and the policy) and the REST API's address (links in emails)
            # go into the environment, then one more deploy.
            self.write_stage_config(outputs, mail_from, team_email, deployed_id or api_id, deployed_api)
            self.chalice_deploy(force=True)
        self.ensure_event_source()
        self.ensure_api_logging_role()
        self.ensure_api_stages(outputs)
        ws, api = self.endpoints()
        site_url = outputs.get("SiteUrl") or f"https://{outputs.get('DistributionDomainName', '')}"
        snippet = (f'<script async src="{site_url}/widget/widget.js" data-site="{options.site}"\n'
                   f'        data-ws="{ws}" data-api="{api}"></script>')
        upload_site(self.client, outputs["SiteBucketName"], outputs.get("DistributionId", ""),
                    site_files(self.root, self.stage, ws, api, options.site, snippet + "\n"),
                    self.changed)
        password = self.ensure_admin(options, outputs["TableName"])
        result = Result(list(self.changes), snippet, f"{site_url}/console/", ws, api, password)
        self.report(result, outputs, options)
        return result

    def report(self, result: Result, outputs: Mapping[str, str], options: Options) -> None:
        self.out("")
        self.out("nothing changed" if not result.changes else f"{len(result.changes)} change(s)")
        self.out(f"  agent console   {result.console_url}")
        self.out(f"  WebSocket API   {result.websocket_url}")
        self.out(f"  REST API        {result.api_url}")
        if result.admin_password:
            self.out(f"  first admin     {options.admin_id} / {result.admin_password}   (shown once)")
        dkim = [outputs[k] for k in ("DkimRecord1", "DkimRecord2", "DkimRecord3") if k in outputs]
        if dkim:
            self.out(f"  SES: publish these DNS records to verify {outputs.get('MailIdentity')}:")
            for record in dkim:
                self.out(f"    {record}")
        self.out("")
        self.out("Embed the chat on your site:")
        self.out("")
        self.out(result.snippet)

    # -- teardown
    def destroy(self, backup: bool = False) -> list[str]:
        """Remove the stage; with ``backup``, an on-demand backup of the table first (it
        outlives the table, and is billed per GB-month until you delete it)."""
        self.changes = []
        self.out(f"destroying stage {self.stage} in {self.region}")
        self._chalice_delete()
        self.fingerprint_record.unlink(missing_ok=True)
        stack = self.stack()
        if stack is not None:
            self._delete_stack(stack, backup)
        try:
            self.client("ssm").delete_parameter(Name=self.names.token_secret_param)
            self.changed(f"SSM parameter {self.names.token_secret_param} deleted")
        except ClientError as exc:
            if client_error_code(exc) != "ParameterNotFound":
                raise
        if set_stage_env(self.root, self.stage, {"WEBSOCKET_API_ID": None, "PUBLIC_API_URL": None}):
            self.changed(f".chalice/config.json stage {self.stage}: WEBSOCKET_API_ID, PUBLIC_API_URL removed")
        self._unpin_policy()
        self.out("nothing to remove" if not self.changes else "done")
        return list(self.changes)

    def _chalice_delete(self) -> None:
        """``chalice delete`` of what Chalice deployed, if it deployed anything."""
        if not self.deployed_record.exists():
            return
        project = stage_project(self.root, self.stage)
        staged = project / ".chalice" / "deployed" / f"{self.stage}.json"
        staged.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(self.deployed_record, staged)
        self.runner([chalice_command(), "--project-dir", str(project), "delete", "--stage", self.stage],
                    project, self.child_env())
        self.deployed_record.unlink()
        staged.unlink(missing_ok=True)
        self.changed(f"chalice delete --stage {self.stage}")

    def _delete_stack(self, stack: Mapping[str, Any], backup: bool) -> None:
        """The infra stack, its bucket emptied first and its table's deletion protection lifted
        (CloudFormation refuses both otherwise); with ``backup``, the table backed up first."""
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        if outputs.get("SiteBucketName"):
            empty_bucket(self.client("s3"), outputs["SiteBucketName"], self.changed)
        params = {p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])}
        if backup and outputs.get("TableName"):
            name = f"{outputs['TableName']}-final-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
            arn = self.client("dynamodb").create_backup(TableName=outputs["TableName"], BackupName=name)[
                "BackupDetails"]["BackupArn"]
            self.changed(f"table backed up: {arn}")
        cfn = self.client("cloudformation")
        if params.get("TableDeletionProtection") == "true":
            cfn.update_stack(StackName=self.names.stack, UsePreviousTemplate=True, Parameters=[
                {"ParameterKey": k, "ParameterValue": "false"} if k == "TableDeletionProtection"
                else {"ParameterKey": k, "UsePreviousValue": True} for k in sorted(params)])
            self._wait("stack_update_complete")
        table = outputs.get("TableName")
        if table:  # if the stack update did not get there (it should), say it to DynamoDB
            dynamodb = self.client("dynamodb")
            try:
                described = dynamodb.describe_table(TableName=table)["Table"]
            except ClientError as exc:
                if client_error_code(exc) != "ResourceNotFoundException":
                    raise
            else:
                if described.get("DeletionProtectionEnabled"):
                    dynamodb.update_table(TableName=table, DeletionProtectionEnabled=False)
        cfn.delete_stack(StackName=self.names.stack)
        self._wait("stack_delete_complete")
        self.changed(f"stack {self.names.stack} deleted")

    def _unpin_policy(self) -> None:
        """The policy back to ``*`` for the WebSocket API, which no longer exists."""
        config = load_chalice_config(self.root)
        path = policy_path(self.root, config, self.stage)
        policy = json.loads(path.read_text())
        if write_json_if_changed(path, render_policy(
                policy, mail_identity=mail_identity(policy), configuration_set=self.names.configuration_set,
                websocket_api_id=None, websocket_stage=str(config.get("websocket_api_stage", "api")))):
            self.changed(f".chalice/{path.name}: WebSocket API unpinned")


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None
