"""Observability: the EMF metrics real flows emit (names, values, dimensions), the correlation
keys on structured log lines (and nothing private on them), the readable local form, and the
CloudWatch dashboard and alarms in infra/template.yaml.

Metrics are read as the EMF lines chalicelib/telemetry.py writes to stdout (through its sink
hook, so handler threads are seen too); each test filters them by its own site or function.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from chalicelib import config, fanout, telemetry
from chalicelib.fanout import Outbox
from chalicelib.hours import to_ms
from chalicelib.models import META, ConversationModel, conversation_key
from infra.deploy import ROOT
from infra.deploy.chalice_config import load_chalice_config, stage_config, stage_env
from infra.deploy.names import names as stage_names
from infra.deploy.policy import policy_path
from infra.deploy.template import _function_name, load_template
from infra.local.metrics import readable
from tests.support.client import Client, eventually, rest, settle
from tests.support.clock import Clock
from tests.support.flows import PASSWORD, start_chat


class Emitted:
    """EMF lines emitted while a test runs."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def clear(self) -> None:
        self.lines.clear()

    def docs(self, name: str, **match: str) -> list[dict[str, Any]]:
        """EMF documents carrying metric ``name`` whose dimensions/properties equal ``match``."""
        found = []
        for line in list(self.lines):
            doc = json.loads(line)
            names = {m["Name"] for d in doc["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
            if name in names and all(doc.get(k) == v for k, v in match.items()):
                found.append(doc)
        return found

    def values(self, name: str, **match: str) -> list[float]:
        out: list[float] = []
        for doc in self.docs(name, **match):
            value = doc[name]
            out += value if isinstance(value, list) else [value]
        return out

    def total(self, name: str, **match: str) -> float:
        return sum(self.values(name, **match))


@pytest.fixture
def emf(stack: Any) -> Iterator[Emitted]:
    settle(stack)  # earlier tests' $disconnects are done and flushed
    emitted = Emitted()
    remove = telemetry.add_sink(emitted.lines.append)
    yield emitted
    remove()


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def records(self, message: str) -> list[dict[str, Any]]:
        return [d for d in map(json.loads, list(self.lines)) if d.get("message") == message]


@pytest.fixture
def logs(stack: Any) -> Iterator[Capture]:
    """The app's structured log lines, formatted by Powertools exactly as on Lambda."""
    settle(stack)
    capture = Capture()
    capture.setFormatter(telemetry.logger.registered_formatter)
    telemetry.logger.addHandler(capture)
    yield capture
    telemetry.logger.removeHandler(capture)


def _conns(conv: str) -> dict[str, str]:
    return ConversationModel.get(conversation_key(conv), META, consistent_read=True).connections()


def _directive(doc: dict[str, Any]) -> dict[str, Any]:
    (directive,) = doc["_aws"]["CloudWatchMetrics"]
    return dict(directive)


# ---- metrics from real flows -------------------------------------------------------------------


def test_messages_are_counted_once_per_side(visitor, agent, stack, site, emf):
    guest, console, conv = start_chat(visitor, agent)
    first = guest.next_id()
    guest.say(conv, "Where is my parcel?", first)
    console.expect("message")
    assert guest.say(conv, "Where is my parcel?", first)["type"] == "ack"  # a resend
    console.say(conv, "Let me check.")
    guest.expect("message")
    settle(stack)
    assert emf.values("MessagesSent", site=site, side="visitor") == [1]
    assert emf.values("MessagesSent", site=site, side="agent") == [1]
    (doc,) = emf.docs("MessagesSent", site=site, side="visitor")
    directive = _directive(doc)
    assert directive["Namespace"] == config.settings().metrics_namespace
    assert [sorted(d) for d in directive["Dimensions"]] == [["service", "side"]]
    assert {"Name": "MessagesSent", "Unit": "Count"} in directive["Metrics"]
    assert doc["service"] == config.SERVICE
    # the invocation's correlation keys ride along (properties, not dimensions)
    assert doc["conversation"] == conv and doc["action"] == "send" and doc["connection"]


def test_connects_disconnects_and_refusals_are_counted(visitor, agent, stack, site, emf):
    console = agent(shift=False)
    guest = visitor()
    eventually(lambda: emf.total("Connects", site=site, role="visitor") == 1)
    assert emf.values("Connects", site=site, role="agent") == [1]
    (doc,) = emf.docs("Connects", site=site, role="agent")
    assert doc["agent"] == console.agent_id
    assert [sorted(d) for d in _directive(doc)["Dimensions"]] == [["role", "service"]]
    guest.ws.close()
    eventually(lambda: emf.total("Disconnects", site=site, role="visitor") == 1)
    with pytest.raises(InvalidStatus):
        Client(stack.gateway.ws_url, {"token": "not-a-token"})
    eventually(lambda: emf.total("ConnectsRefused") == 1)
    settle(stack)
    assert emf.values("Disconnects", site=site, role="agent") == []
    assert emf.total("ConnectsRefused") == 1


def test_a_gone_connection_during_fan_out_counts_as_gone(visitor, agent, stack, site, emf):
    guest, console, conv = start_chat(visitor, agent)
    before = set(_conns(conv))
    visitor(token=guest.welcome["token"])  # a second tab
    (tab,) = set(_conns(conv)) - before
    stack.gateway.drop(tab)  # vanished without a $disconnect: the next post gets 410
    console.say(conv, "Still there?")
    guest.expect("message")
    eventually(lambda: tab not in _conns(conv))
    settle(stack)
    assert emf.values("FanoutFailures", site=site, reason="gone") == [1]
    assert emf.values("FanoutFailures", site=site, reason="error") == []


def test_a_failing_post_counts_as_an_error_and_spares_the_others(emf):
    """The management API unreachable (a closed port): every post fails after its retries;
    deliver still returns (nothing is gone) and counts both failures, from the pool threads."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    outbox = Outbox()
    outbox.to(["conn-one="], {"type": "pong", "ref": None})
    outbox.to(["conn-two="], {"type": "pong", "ref": None})
    name = f"clicktochat-test-{secrets.token_hex(3)}"
    with telemetry.invocation(name):
        assert fanout.deliver(outbox, f"http://127.0.0.1:{port}") == []
    assert emf.values("FanoutFailures", function_name=name, reason="error") == [2]
    assert emf.values("FanoutFailures", function_name=name, reason="gone") == []


def test_mail_sends_and_failures_are_counted(stack, site, emf, monkeypatch):
    # An hour of our own, so the per-address rate limit of earlier tests does not apply.
    now = to_ms(datetime(2031, 1, 1, tzinfo=UTC)) + secrets.randbelow(50_000) * 3_600_000
    Clock(monkeypatch, now)
    stack.poller.drain()  # earlier tests' jobs
    emf.clear()
    stack.ses.stop()
    try:
        status, _ = rest(stack.gateway.http_url, "POST", "/offline",
                         {"site": site, "email": "someone@example.org", "text": "Are you open?"})
        assert status == 202
        assert stack.poller.poll_once() == 1  # attempted, SES unreachable, left for a retry
    finally:
        stack.ses.start()
    assert emf.total("MailFailures") == 1 and emf.total("MailSent") == 0
    stack.poller.drain()
    assert emf.total("MailSent") == 2  # the team's email and the visitor's confirmation
    assert emf.total("MailFailures") == 1


def test_queue_length_follows_routing(visitor, agent, stack, site, emf):
    first, second = visitor(), visitor()
    first.start()
    first.expect("queued", position=1)
    second.start()
    second.expect("queued", position=2)
    agent()  # on shift: both are assigned
    first.expect("assigned")
    second.expect("assigned")
    settle(stack)
    levels = emf.values("QueueLength", site=site)
    assert levels[:2] == [1, 2] and levels[-1] == 0 and max(levels) == 2
    for doc in emf.docs("QueueLength", site=site):
        assert [sorted(d) for d in _directive(doc)["Dimensions"]] == [["service", "site"]]


def test_cold_start_is_counted_once_per_function(emf):
    name = f"clicktochat-test-{secrets.token_hex(3)}"
    for _ in range(3):
        with telemetry.invocation(name):
            pass
    assert emf.values("ColdStart", function_name=name) == [1]
    (doc,) = emf.docs("ColdStart", function_name=name)
    assert doc["service"] == config.SERVICE
    assert [sorted(d) for d in _directive(doc)["Dimensions"]] == [["function_name", "service"]]


def test_metrics_recorded_outside_an_invocation_go_nowhere(emf):
    telemetry.count("MessagesSent", side="visitor")  # tests, the admin CLI: no handler running
    telemetry.gauge("QueueLength", 3, site="nowhere")
    assert emf.values("QueueLength", site="nowhere") == []


def test_emf_lines_go_to_stdout_and_read_well_locally(emf, capsys):
    name = f"clicktochat-test-{secrets.token_hex(3)}"
    with telemetry.invocation(name):
        telemetry.tag(site="shop", conversation="conv-123456")
        telemetry.count("MessagesSent", side="agent")
        telemetry.count("MessagesSent", side="agent")
        telemetry.gauge("QueueLength", 4, site="shop")
    out = capsys.readouterr().out.splitlines()
    emitted = [line for line in emf.lines if name in line or '"shop"' in line]
    assert emitted and all(line in out for line in emitted)  # one line each, as CloudWatch reads
    printed = [text for line in emitted for text in readable(line)]
    assert any(re.match(r"metric MessagesSent=2 side=agent +\(clicktochat-local; site=shop "
                        r"conversation=conv-123456", text) for text in printed), printed
    assert any(text.startswith("metric QueueLength=4 site=shop") for text in printed), printed
    assert any(text.startswith(f"metric ColdStart=1 function_name={name}") for text in printed)
    assert readable('{"level": "INFO", "message": "connected"}') == []


# ---- logs --------------------------------------------------------------------------------------


def test_log_lines_carry_correlation_keys_and_nothing_private(visitor, agent, stack, site, logs, emf):
    console = agent()
    guest = visitor()
    guest.send({"action": "start", "name": "Pat Secret", "email": "pat.secret@example.org"})
    conv = guest.expect("conversation")["conversation"]
    console.expect("assigned")
    guest.say(conv, "my card number is 4111 1111")
    console.expect("message")
    console.say(conv, "thanks, checking now")
    guest.expect("message")
    guest.ws.close()
    eventually(lambda: any(r.get("role") == "visitor" for r in logs.records("disconnected")))
    settle(stack)

    (agent_line,) = [r for r in logs.records("connected") if r.get("agent") == console.agent_id]
    assert agent_line["site"] == site and agent_line["role"] == "agent" and agent_line["connection"]
    assert agent_line["function_name"].endswith("connect")  # the $connect function
    assert agent_line["function_request_id"] and agent_line["service"] == config.SERVICE
    (started,) = [r for r in logs.records("conversation started") if r.get("conversation") == conv]
    assert started["site"] == site and started["action"] == "start" and started["role"] == "visitor"
    assert started["connection"] and "agent" not in started
    (assigned,) = [r for r in logs.records("conversation assigned") if r.get("conversation") == conv]
    assert assigned["assigned_to"] == console.agent_id and assigned["site"] == site
    (gone,) = [r for r in logs.records("disconnected") if r.get("role") == "visitor"
               and r.get("site") == site]
    assert gone["connection"]

    private = ["Pat Secret", "pat.secret@example.org", "4111 1111", "thanks, checking now",
               guest.welcome["token"], console.token or "no-token", PASSWORD]
    for line in logs.lines + emf.lines:
        for secret in private:
            assert secret not in line, (secret, line)


# ---- the template and the stage configuration --------------------------------------------------


def _functions() -> set[str]:
    """The deployed function names, as infra/deploy/template.py gives them, from the app's handlers."""
    import app as app_module

    names = stage_names("prod")
    app = app_module.app
    routes = {"$connect": "Connect", "$default": "Message", "$disconnect": "Disconnect"}
    logical = {f"Websocket{routes[route]}": "" for route in app.websocket_handlers}
    logical.update({"".join(p.capitalize() for p in s.name.split("_")): f"app.{s.name}"
                    for s in app.event_sources})
    logical["APIHandler"] = "app.app"
    return {_function_name(names, lid, handler) for lid, handler in logical.items()}


def _dashboard(template: dict[str, Any]) -> dict[str, Any]:
    body = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    body = body.replace("${AppName}", "clicktochat").replace("${Stage}", "prod")
    body = body.replace("${AWS::Region}", "us-east-1")
    body = re.sub(r"\$\{(\w+)\.Arn\}", r"arn:alarm:\1", body)
    assert "${" not in body, body
    return dict(json.loads(body))


def test_dashboard_shows_every_metric_and_every_function():
    template = load_template()
    widgets = _dashboard(template)["widgets"]
    rows = [row for w in widgets if w["type"] == "metric" for row in w["properties"]["metrics"]]
    app_rows = [r for r in rows if isinstance(r[0], str) and r[0] == "clicktochat-prod"]
    searches = " ".join(r[0]["expression"] for r in rows if isinstance(r[0], dict))
    shown = {r[1] for r in app_rows} | set(re.findall(r'MetricName=\\?"(\w+)', searches))
    assert set(telemetry.METRICS) <= shown, set(telemetry.METRICS) - shown
    for row in app_rows:
        assert row[2:4] == ["service", config.SERVICE]
    assert searches.count('{"clicktochat-prod",') == 2
    for metric in ("Invocations", "Errors", "Duration"):
        functions = {r[3] for r in rows if r[:3] == ["AWS/Lambda", metric, "FunctionName"]}
        assert functions == _functions(), metric
    alarms = {k for k, r in template["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    (alarm_widget,) = [w for w in widgets if w["type"] == "alarm"]
    assert set(alarm_widget["properties"]["alarms"]) == {f"arn:alarm:{a}" for a in alarms}
    (log_widget,) = [w for w in widgets if w["type"] == "log"]
    for key in ("connection", "conversation", "site", "agent"):
        assert key in log_widget["properties"]["query"]


def _alarm_metrics(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    return [m["MetricStat"] for m in alarm.get("Metrics", []) if "MetricStat" in m]


def _dimension(stat: dict[str, Any], name: str) -> Any:
    return next(d["Value"] for d in stat["Metric"]["Dimensions"] if d["Name"] == name)


def test_alarms_watch_dead_letters_errors_duration_and_fan_out():
    template = load_template()
    resources = template["Resources"]
    interactive = {f for f in _functions() if not f.endswith(("housekeeping", "send_mail"))}

    def functions(alarm: str, metric: str, stat: str) -> set[str]:
        return {_dimension(s, "FunctionName")["Fn::Sub"].replace("${AppName}-${Stage}", "clicktochat-prod")
                for s in _alarm_metrics(resources[alarm]["Properties"])
                if s["Metric"]["MetricName"] == metric and s["Stat"] == stat}

    dlq = resources["MailDeadLetterAlarm"]["Properties"]
    assert dlq["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert dlq["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["MailDeadLetterQueue", "QueueName"]}

    errors = resources["HandlerErrorRateAlarm"]["Properties"]
    assert functions("HandlerErrorRateAlarm", "Errors", "Sum") == interactive
    assert functions("HandlerErrorRateAlarm", "Invocations", "Sum") == interactive
    (frames,) = [s for s in _alarm_metrics(errors) if s["Metric"]["MetricName"] == "FrameErrors"]
    assert frames["Metric"]["Namespace"] == {"Fn::Sub": "${AppName}-${Stage}"}
    assert errors["Threshold"] == {"Ref": "ErrorRatePercent"}
    assert functions("BackgroundErrorsAlarm", "Errors", "Sum") == _functions() - interactive

    assert functions("HandlerDurationAlarm", "Duration", "p99") == interactive
    assert resources["HandlerDurationAlarm"]["Properties"]["Threshold"] == {"Ref": "HandlerP99Millis"}

    fanout_alarm = resources["FanoutErrorsAlarm"]["Properties"]
    assert fanout_alarm["MetricName"] == "FanoutFailures"
    assert {"Name": "reason", "Value": "error"} in fanout_alarm["Dimensions"]
    assert {"Name": "service", "Value": config.SERVICE} in fanout_alarm["Dimensions"]

    notify = {"Fn::If": ["HasAlarmEmail", [{"Ref": "AlarmTopic"}], {"Ref": "AWS::NoValue"}]}
    for key, resource in resources.items():
        if resource["Type"] == "AWS::CloudWatch::Alarm":
            assert resource["Properties"]["AlarmActions"] == notify, key
    topic = resources["AlarmTopic"]["Properties"]["Subscription"]
    assert topic == [{"Protocol": "email", "Endpoint": {"Ref": "AlarmEmail"}}]


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_stages_trace_and_write_metrics_where_the_dashboard_reads(stage):
    config_doc = load_chalice_config()
    names = stage_names(stage)
    xray = stage_config(config_doc, stage).get("xray", config_doc.get("xray"))
    assert xray is True  # Lambda active tracing on every function
    env = stage_env(config_doc, stage)
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == f"{names.app}-{stage}"
    assert load_template()["Outputs"]["MetricsNamespace"]["Value"] == {
        "Fn::Sub": "${AppName}-${Stage}"}
    policy = json.loads(policy_path(ROOT, config_doc, stage).read_text())
    granted = {a for s in policy["Statement"] for a in s["Action"]}
    assert {"xray:PutTraceSegments", "xray:PutTelemetryRecords"} <= granted
