"""CloudFormation templates: ``infra/template.yaml`` (the infra stack), its table block, and
Chalice's SAM template made into what we deploy and merged with it (``make package``)."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from infra.deploy import ROOT, DeployError
from infra.deploy.chalice_config import function_setting
from infra.deploy.names import Names
from infra.deploy.policy import as_list
from infra.deploy.protection import api_protection, apply_api_protection

TEMPLATE = ROOT / "infra" / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !Sub, !GetAtt...) as their long forms."""


def _cfn_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "Condition":
        return {"Condition": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    return dict(yaml.load(path.read_text(), Loader=_CfnLoader))


def table_schema() -> dict[str, Any]:
    """Keys, attributes and indexes of the one table, from chalicelib.models (the source)."""
    from chalicelib.models import table_definition

    definition = table_definition()
    return {k: definition[k] for k in ("KeySchema", "AttributeDefinitions", "GlobalSecondaryIndexes")}


def template_table_schema(template: Mapping[str, Any]) -> dict[str, Any]:
    props = template["Resources"]["Table"]["Properties"]
    return {k: props[k] for k in ("KeySchema", "AttributeDefinitions", "GlobalSecondaryIndexes")}


def table_yaml() -> str:
    """The schema block of the Table resource, ready to paste into infra/template.yaml."""
    schema = table_schema()
    lines = ["      KeySchema:"]
    lines += [f"        - {{AttributeName: {k['AttributeName']}, KeyType: {k['KeyType']}}}"
              for k in schema["KeySchema"]]
    lines.append("      AttributeDefinitions:")
    lines += [f"        - {{AttributeName: {a['AttributeName']}, AttributeType: {a['AttributeType']}}}"
              for a in schema["AttributeDefinitions"]]
    lines.append("      GlobalSecondaryIndexes:")
    for index in schema["GlobalSecondaryIndexes"]:
        lines.append(f"        - IndexName: {index['IndexName']}")
        lines.append("          KeySchema:")
        lines += [f"            - {{AttributeName: {k['AttributeName']}, KeyType: {k['KeyType']}}}"
                  for k in index["KeySchema"]]
        projection = index["Projection"]
        if projection.get("NonKeyAttributes"):
            lines += ["          Projection:",
                      f"            ProjectionType: {projection['ProjectionType']}",
                      f"            NonKeyAttributes: [{', '.join(projection['NonKeyAttributes'])}]"]
        else:
            lines.append(f"          Projection: {{ProjectionType: {projection['ProjectionType']}}}")
    return "\n".join(lines) + "\n"


def postprocess_sam(sam: dict[str, Any], config: Mapping[str, Any], stage_names: Names) -> dict[str, Any]:
    """Make Chalice's SAM template what we deploy: partial batch responses and a concurrency
    cap on the mail trigger, the environment wired to the infra resources by reference, and
    the stage's API Gateway throttling and access logs (``api_protection``)."""
    sam = json.loads(json.dumps(sam))
    concurrency = function_setting(config, stage_names.stage, "send_mail", "reserved_concurrency")
    references: dict[str, Any] = {
        "TABLE_NAME": {"Ref": "Table"},
        "MAIL_QUEUE_NAME": {"Fn::GetAtt": ["MailQueue", "QueueName"]},
        "MAIL_DLQ_NAME": {"Fn::GetAtt": ["MailDeadLetterQueue", "QueueName"]},
        "TOKEN_SECRET_PARAM": {"Fn::Sub": "/${AppName}/${Stage}/token-secret"},
        "POWERTOOLS_METRICS_NAMESPACE": {"Fn::Sub": "${AppName}-${Stage}"},  # the dashboard's
        "WEBSOCKET_API_ID": {"Ref": "WebsocketAPI"},
        "INBOUND_BUCKET": {"Ref": "InboundBucket"},
        "REPLY_DOMAIN": {"Ref": "ReplyDomain"},
    }
    function_names: dict[str, str] = {}
    for logical_id, resource in sam["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function":
            # The names `chalice deploy` gives (the log and policy ARNs rely on them).
            props["FunctionName"] = function_names[logical_id] = _function_name(
                stage_names, logical_id, str(props.get("Handler", "")))
            variables = props.setdefault("Environment", {}).setdefault("Variables", {})
            for key, ref in references.items():
                if key in variables or key == "WEBSOCKET_API_ID":
                    variables[key] = ref
            for event in props.get("Events", {}).values():
                if event["Type"] != "SQS":
                    continue
                event["Properties"]["FunctionResponseTypes"] = ["ReportBatchItemFailures"]
                if isinstance(concurrency, int) and concurrency >= 2:
                    event["Properties"]["ScalingConfig"] = {"MaximumConcurrency": concurrency}
                if str(event["Properties"].get("Queue", {}).get("Fn::Sub", "")).endswith(
                        f":{stage_names.mail_queue}"):
                    event["Properties"]["Queue"] = {"Fn::GetAtt": ["MailQueue", "Arn"]}
        if resource["Type"] == "AWS::IAM::Role":
            for policy in props.get("Policies", []):
                for statement in policy["PolicyDocument"]["Statement"]:
                    statement["Resource"] = [_pin_execute_api(r) for r in as_list(statement["Resource"])]
    for resource in sam["Resources"].values():
        if resource["Type"] == "AWS::Logs::LogGroup":
            # Chalice 1.34 names the REST handler's group after "${ApiHandler}", a resource
            # that does not exist (it is "APIHandler"): name every group literally.
            target = re.fullmatch(r"/aws/lambda/\$\{(\w+)\}",
                                  str(resource["Properties"]["LogGroupName"].get("Fn::Sub", "")))
            if target:
                wanted = {k.lower(): v for k, v in function_names.items()}.get(target.group(1).lower())
                if wanted:
                    resource["Properties"]["LogGroupName"] = f"/aws/lambda/{wanted}"
            # Said, not implied: a stage's logs go with it (a kept group, its name fixed,
            # would make the next stack of that stage fail to create).
            resource["DeletionPolicy"] = resource["UpdateReplacePolicy"] = "Delete"
    apply_api_protection(sam, api_protection(config, stage_names.stage),
                         bool(function_setting(config, stage_names.stage, "api_handler", "xray")))
    return sam


def _function_name(stage_names: Names, logical_id: str, handler: str) -> str:
    prefix = f"{stage_names.app}-{stage_names.stage}"
    if logical_id == "APIHandler":
        return prefix
    if logical_id.startswith("Websocket"):
        return f"{prefix}-websocket_{logical_id[len('Websocket'):].lower()}"
    return f"{prefix}-{handler.rsplit('.', 1)[-1]}"


def _pin_execute_api(resource: Any) -> Any:
    match = re.fullmatch(r"arn:aws:execute-api:[^:]*:[^:]*:[^/]+/(.+)", str(resource))
    if not match:
        return resource
    return {"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:"
                       "${WebsocketAPI}/" + match.group(1)}


def merge_templates(sam: dict[str, Any], infra: dict[str, Any], stage_names: Names) -> dict[str, Any]:
    """One template: Chalice's functions and APIs plus the infra stack, defaults set to the stage."""
    merged: dict[str, Any] = {"AWSTemplateFormatVersion": "2010-09-09", "Transform": sam["Transform"],
                              "Description": infra.get("Description", "")}
    parameters = json.loads(json.dumps(infra["Parameters"]))
    parameters["AppName"]["Default"] = stage_names.app
    parameters["Stage"]["Default"] = stage_names.stage
    # The API access logs are kept as long as the functions' logs (log_retention_in_days).
    retention = Counter(r["Properties"]["RetentionInDays"] for r in sam.get("Resources", {}).values()
                        if r["Type"] == "AWS::Logs::LogGroup" and "RetentionInDays" in r["Properties"])
    if retention and "LogRetentionDays" in parameters:
        parameters["LogRetentionDays"]["Default"] = retention.most_common(1)[0][0]
    merged["Parameters"] = parameters
    merged["Conditions"] = infra.get("Conditions", {})
    for section in ("Resources", "Outputs"):
        clash = set(sam.get(section, {})) & set(infra.get(section, {}))
        if clash:
            raise DeployError(f"Chalice and infra/template.yaml both define {section}: {sorted(clash)}")
        merged[section] = {**infra.get(section, {}), **sam.get(section, {})}
    return merged
