"""Flood protection at the edge: API Gateway throttling and access logs on both API stages.

Per stage in .chalice/config.json (Chalice ignores the key; docs/deploy.md explains the values)::

  "api_protection": {
    "rest": {"rate_limit": 100, "burst_limit": 200},              every REST route (*/*)
    "rest_routes": {"POST /auth/login": {"rate_limit": 10, "burst_limit": 20}},
    "websocket": {"rate_limit": 500, "burst_limit": 1000},        $default and $disconnect
    "websocket_routes": {"$connect": {"rate_limit": 100, "burst_limit": 200}},
    "access_log_source_ip": false
  }

``rate_limit`` is requests per second, steady; ``burst_limit`` how many may arrive at once (the
size of API Gateway's token bucket). A route's own limits must not exceed its API's. Both
``make deploy`` (``Deployer.ensure_api_stages``, after ``chalice deploy``, which sets neither)
and ``make package`` (``template.postprocess_sam``) apply them, with the access logs.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from typing import Any

from infra.deploy import DeployError
from infra.deploy.chalice_config import stage_config

WEBSOCKET_ROUTE_KEYS = ("$connect", "$default", "$disconnect")
_PROTECTION_KEYS = {"rest", "rest_routes", "websocket", "websocket_routes", "access_log_source_ip"}

# One JSON line per request: what tells a flood from normal traffic, and where the time went.
# No bodies, no query strings, no paths with values in them (resourcePath is the route's
# template, /sites/{site}/...), no user agent. The caller's IP address only if the stage sets
# access_log_source_ip: it is personal data, and docs/privacy.md says none is stored.
REST_ACCESS_LOG = {
    "requestId": "$context.requestId",
    "time": "$context.requestTime",
    "method": "$context.httpMethod",
    "resource": "$context.resourcePath",
    "status": "$context.status",
    "protocol": "$context.protocol",
    "responseLength": "$context.responseLength",
    "latency": "$context.responseLatency",
    "integrationLatency": "$context.integrationLatency",
    "integrationStatus": "$context.integration.status",
    "error": "$context.error.message",
    "errorType": "$context.error.responseType",
    "xrayTraceId": "$context.xrayTraceId",
}
WEBSOCKET_ACCESS_LOG = {
    "requestId": "$context.requestId",
    "time": "$context.requestTime",
    "eventType": "$context.eventType",
    "routeKey": "$context.routeKey",
    "status": "$context.status",
    "connectionId": "$context.connectionId",
    "integrationLatency": "$context.integrationLatency",
    "integrationStatus": "$context.integrationStatus",
    "error": "$context.error.message",
    "errorType": "$context.error.responseType",
}
SOURCE_IP = {"ip": "$context.identity.sourceIp"}


@dataclasses.dataclass(frozen=True)
class Throttle:
    rate_limit: float  # requests per second, steady
    burst_limit: int  # requests at once


@dataclasses.dataclass(frozen=True)
class ApiProtection:
    rest: Throttle
    rest_routes: dict[tuple[str, str], Throttle]  # (METHOD, /path) -> its own limits
    websocket: Throttle
    websocket_routes: dict[str, Throttle]  # route key -> its own limits
    access_log_source_ip: bool = False

    def access_log_format(self, fields: Mapping[str, str]) -> str:
        return json.dumps({**fields, **(SOURCE_IP if self.access_log_source_ip else {})},
                          separators=(",", ":"))


def _throttle(value: Any, where: str, ceiling: Throttle | None = None) -> Throttle:
    if not isinstance(value, Mapping) or set(value) != {"rate_limit", "burst_limit"}:
        raise DeployError(f'{where}: expected {{"rate_limit": <per second>, "burst_limit": <at once>}}.')
    rate, burst = value["rate_limit"], value["burst_limit"]
    if (isinstance(rate, bool) or not isinstance(rate, int | float) or rate <= 0
            or isinstance(burst, bool) or not isinstance(burst, int) or burst < 1):
        raise DeployError(f"{where}: rate_limit must be a positive number, burst_limit a positive integer.")
    limits = Throttle(rate, burst)
    if ceiling and (rate > ceiling.rate_limit or burst > ceiling.burst_limit):
        raise DeployError(f"{where}: a route's limits cannot exceed its API's ({ceiling}).")
    return limits


def api_protection(config: Mapping[str, Any], stage: str) -> ApiProtection:
    """The stage's API Gateway limits: ``api_protection`` of the stage over the global one."""
    merged = dict(config.get("api_protection", {}))
    merged.update(stage_config(config, stage).get("api_protection", {}))
    where = f".chalice/config.json, stage {stage}: api_protection"
    unknown = sorted(set(merged) - _PROTECTION_KEYS)
    missing = sorted({"rest", "websocket"} - set(merged))
    if unknown or missing:
        raise DeployError(f"{where}: " + "; ".join(
            ([f"unknown {', '.join(unknown)}"] if unknown else []) + ([f"missing {', '.join(missing)}"]
                                                                       if missing else [])))
    rest = _throttle(merged["rest"], f"{where}.rest")
    websocket = _throttle(merged["websocket"], f"{where}.websocket")
    rest_routes: dict[tuple[str, str], Throttle] = {}
    for route, value in dict(merged.get("rest_routes", {})).items():
        match = re.fullmatch(r"(GET|POST|PUT|PATCH|DELETE) (/[^\s*]*)", str(route))
        if not match:
            raise DeployError(f'{where}.rest_routes: {route!r} is not "METHOD /path" (as in app.py).')
        rest_routes[(match[1], match[2])] = _throttle(value, f"{where}.rest_routes[{route!r}]", rest)
    websocket_routes: dict[str, Throttle] = {}
    for key, value in dict(merged.get("websocket_routes", {})).items():
        if key not in WEBSOCKET_ROUTE_KEYS:
            raise DeployError(f"{where}.websocket_routes: {key!r} is not one of "
                              f"{', '.join(WEBSOCKET_ROUTE_KEYS)}.")
        websocket_routes[key] = _throttle(value, f"{where}.websocket_routes[{key!r}]", websocket)
    source_ip = merged.get("access_log_source_ip", False)
    if not isinstance(source_ip, bool):
        raise DeployError(f"{where}.access_log_source_ip: true or false.")
    return ApiProtection(rest, rest_routes, websocket, websocket_routes, source_ip)


def _encoded_path(path: str) -> str:
    """A REST resource path as method settings name it: /auth/login -> ~1auth~1login."""
    return path.replace("/", "~1")


def _cfn_throttle(limits: Throttle) -> dict[str, Any]:
    return {"ThrottlingBurstLimit": limits.burst_limit, "ThrottlingRateLimit": limits.rate_limit}


def apply_api_protection(sam: dict[str, Any], protection: ApiProtection, tracing: bool) -> None:
    """Throttling and access logs on Chalice's two API stages in its SAM template (in place).
    The access log groups are infra/template.yaml's (RestApiAccessLogs, WebsocketApiAccessLogs)."""
    resources = sam["Resources"]
    rest = next((r for r in resources.values() if r["Type"] == "AWS::Serverless::Api"), None)
    if rest is not None:
        props = rest["Properties"]
        paths = props.get("DefinitionBody", {}).get("paths", {})
        settings = [{"HttpMethod": "*", "ResourcePath": "/*", **_cfn_throttle(protection.rest)}]
        for (method, path), limits in sorted(protection.rest_routes.items(), key=lambda kv: kv[0][::-1]):
            if method.lower() not in paths.get(path, {}):
                raise DeployError(f"api_protection.rest_routes: the REST API has no {method} {path}.")
            settings.append({"HttpMethod": method, "ResourcePath": "/" + _encoded_path(path),
                             **_cfn_throttle(limits)})
        props["MethodSettings"] = settings
        props["AccessLogSetting"] = {"DestinationArn": _log_group_arn("RestApiAccessLogs"),
                                     "Format": protection.access_log_format(REST_ACCESS_LOG)}
        props["TracingEnabled"] = tracing  # `chalice deploy` sets it from "xray" too
    stage = next((r for r in resources.values() if r["Type"] == "AWS::ApiGatewayV2::Stage"), None)
    if stage is not None:
        props = stage["Properties"]
        props["DefaultRouteSettings"] = _cfn_throttle(protection.websocket)
        props["RouteSettings"] = {key: _cfn_throttle(limits)
                                  for key, limits in sorted(protection.websocket_routes.items())}
        props["AccessLogSettings"] = {"DestinationArn": _log_group_arn("WebsocketApiAccessLogs"),
                                      "Format": protection.access_log_format(WEBSOCKET_ACCESS_LOG)}


def _log_group_arn(logical_id: str) -> dict[str, str]:
    # Without GetAtt's trailing ":*": the form API Gateway's own documents and console use.
    return {"Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:${"
                       + logical_id + "}"}


def _method_settings_key(key: str) -> tuple[str, str]:
    """(path, METHOD) of a key of a REST stage's methodSettings: "*/*", "~1auth~1login/POST"."""
    path, _, method = key.rpartition("/")
    if path == "*":
        return path, method
    path = path.replace("~1", "/")
    return ("/" + path.lstrip("/")), method


def rest_stage_patch(stage: Mapping[str, Any], protection: ApiProtection,
                     destination_arn: str) -> list[dict[str, str]]:
    """The patch operations (apigateway ``update_stage``) that bring a REST stage, as
    ``get_stage`` returns it, to the protection; empty when it has it already."""
    have = {_method_settings_key(k): v for k, v in (stage.get("methodSettings") or {}).items()}
    wanted = {("*", "*"): protection.rest,
              **{(path, method): limits for (method, path), limits in protection.rest_routes.items()}}
    ops: list[dict[str, str]] = []
    for (path, method), limits in wanted.items():
        current = have.get((path, method), {})
        prefix = "/*/*" if path == "*" else f"/{_encoded_path(path)}/{method}"
        if current.get("throttlingRateLimit") != limits.rate_limit:
            ops.append({"op": "replace", "path": f"{prefix}/throttling/rateLimit",
                        "value": str(limits.rate_limit)})
        if current.get("throttlingBurstLimit") != limits.burst_limit:
            ops.append({"op": "replace", "path": f"{prefix}/throttling/burstLimit",
                        "value": str(limits.burst_limit)})
    access = stage.get("accessLogSettings") or {}
    for key, value in (("destinationArn", destination_arn),
                       ("format", protection.access_log_format(REST_ACCESS_LOG))):
        if access.get(key) != value:
            ops.append({"op": "replace", "path": f"/accessLogSettings/{key}", "value": value})
    return ops


def websocket_stage_update(stage: Mapping[str, Any], protection: ApiProtection,
                           destination_arn: str) -> dict[str, Any]:
    """The arguments of apigatewayv2 ``update_stage`` that bring a WebSocket stage, as
    ``get_stage`` returns it, to the protection; empty when it has it already."""
    update: dict[str, Any] = {}
    default = dict(stage.get("DefaultRouteSettings") or {})
    wanted_default = {**default, **_cfn_throttle(protection.websocket)}
    if wanted_default != default:
        update["DefaultRouteSettings"] = wanted_default
    routes = {key: dict(value) for key, value in (stage.get("RouteSettings") or {}).items()}
    wanted_routes = {**routes, **{key: {**routes.get(key, {}), **_cfn_throttle(limits)}
                                  for key, limits in protection.websocket_routes.items()}}
    if wanted_routes != routes:
        update["RouteSettings"] = wanted_routes
    access = {"DestinationArn": destination_arn, "Format": protection.access_log_format(WEBSOCKET_ACCESS_LOG)}
    if dict(stage.get("AccessLogSettings") or {}) != access:
        update["AccessLogSettings"] = access
    return update


# ---- the deployment -------------------------------------------------------------------------------
