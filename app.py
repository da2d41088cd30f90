"""Chalice entry points: thin handlers that parse, call the domain in chalicelib/, deliver.

WebSocket routes ($connect, $default, $disconnect) carry the chat; REST routes carry sign-in;
a schedule sweeps agents whose grace period ended.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from chalice import BadRequestError, Chalice, Rate, Response
from chalice.app import SQSEvent, WebsocketEvent

from chalicelib import (
    abandonment,
    agents,
    auth,
    availability,
    aws,
    config,
    dispatch,
    email_channel,
    fanout,
    frames,
    holding,
    mail,
    offline,
    presence,
    privacy,
    reports,
    sites,
    telemetry,
    transcripts,
    unattended,
    validate,
    visitors,
)
from chalicelib.auth import Caller
from chalicelib.errors import (
    BAD_REQUEST,
    BAD_SITE,
    BAD_TOKEN,
    FORBIDDEN,
    NO_SITE,
    NOT_FOUND,
    UNAUTHORIZED,
    Refusal,
)
from chalicelib.fanout import Outbox
from chalicelib.store import SiteModel
from chalicelib.telemetry import logger


def _refused(refusal: Refusal) -> Response:
    """The one REST error answer: ``{"code", "message"}`` (plus ``retry_after``) with the
    code's status (errors.HTTP_STATUS); a wait also goes in the standard ``Retry-After``."""
    headers: dict[str, str | list[str]] = {}
    if refusal.retry_after is not None:
        headers["Retry-After"] = str(refusal.retry_after)
    return Response(refusal.body(), status_code=refusal.status, headers=headers)


class ClickToChat(Chalice):
    """Chalice, with every REST view answering a Refusal in the one error shape.

    Chalice renders exceptions inside the view (as ``{"Code", "Message"}``) before any
    middleware sees them, so the conversion wraps each view where it is registered: one
    place, and handlers simply raise."""

    def route(self, path: str, **kwargs: Any) -> Callable[..., Any]:
        register = super().route(path, **kwargs)

        def answering(view: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(view)  # Chalice and the OpenAPI test read the view's name
            def answered(*args: Any, **kw: Any) -> Any:
                try:
                    return view(*args, **kw)
                except Refusal as refusal:
                    return _refused(refusal)
            register(answered)
            return view
        return answering


app = ClickToChat(app_name="clicktochat")
app.experimental_feature_flags.update(["WEBSOCKETS"])
# Delivery goes through chalicelib.fanout (concurrent posts), not Chalice's sequential
# websocket_api.send, so no boto3 session is attached here (boto3 costs ~90 ms of imports).
# Every handler, of every kind, runs inside one observed invocation: fresh log keys, its own
# metrics flushed as EMF at the end (chalicelib/telemetry.py says why not log_metrics).
app.register_middleware(telemetry.middleware, "all")


@app.middleware("all")
def within_the_timeout(event: Any, get_response: Callable[[Any], Any]) -> Any:
    """Every handler runs under its Lambda deadline: AWS calls are not retried past the time
    left to answer (chalicelib.aws), so a throttled table gets the client a "resend" error
    rather than a killed invocation."""
    context = getattr(event, "context", None) or getattr(event, "lambda_context", None)
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    with aws.deadline(remaining() if remaining is not None else None):
        return get_response(event)


def _endpoint(event: WebsocketEvent) -> str:
    ctx = event.to_dict()["requestContext"]
    return fanout.endpoint(ctx.get("apiId"), ctx.get("stage"))


def _deliver(outbox: Outbox, url: str) -> None:
    """Post everything queued; connections found gone are forgotten like a $disconnect."""
    gone = fanout.deliver(outbox, url)
    while gone:
        follow_up = Outbox()
        for connection_id in gone:
            presence.forget(connection_id, outbox.conversations.get(connection_id, set()), follow_up)
        outbox, gone = follow_up, fanout.deliver(follow_up, url)


@app.on_ws_connect()
def connect(event: WebsocketEvent) -> dict[str, Any]:
    raw = event.to_dict()
    query = raw.get("queryStringParameters") or {}
    source_ip = raw["requestContext"].get("identity", {}).get("sourceIp")
    evicted: list[str] = []
    others = Outbox()  # what other connections must hear (a visitor back in their chat)
    try:
        who = presence.connect(event.connection_id, query, source_ip, raw.get("headers") or {},
                               evicted, others)
    except Refusal as refused:
        telemetry.count("ConnectsRefused")
        logger.info("connection refused", extra={"reason": str(refused)})
        return {"statusCode": refused.status}  # its code's status: errors.HTTP_STATUS
    finally:
        others.drop(event.connection_id)  # its own state comes in its welcome
        _deliver(others, _endpoint(event))
        if evicted:  # tabs over the visitor's cap: the oldest are told, then hung up
            url, notice = _endpoint(event), Outbox()
            notice.to(evicted, frames.evicted())  # so they wait to be seen before coming back
            fanout.deliver(notice, url)  # gone already: fine, and closing it is too
            fanout.close(evicted, url)
    telemetry.count("Connects", role=who.role)
    logger.info("connected")
    return {"statusCode": 200}


@app.on_ws_message()
def message(event: WebsocketEvent) -> None:
    outbox = Outbox()
    binary = bool(event.to_dict().get("isBase64Encoded"))
    dispatch.handle(event.connection_id, event.body, outbox, binary=binary)
    _deliver(outbox, _endpoint(event))


@app.on_ws_disconnect()
def disconnect(event: WebsocketEvent) -> None:
    outbox = Outbox()
    gone = presence.disconnect(event.connection_id, outbox)
    if gone is not None:
        presence.identify(Caller(event.connection_id, gone.role, gone.subject, gone.site))
        telemetry.count("Disconnects", role=gone.role)
        logger.info("disconnected")
    _deliver(outbox, _endpoint(event))


@app.schedule(Rate(1, unit=Rate.MINUTES))
def housekeeping(event: Any) -> None:
    """The minute timer: agents gone past their grace period go off shift (their chats go
    back in line); opening hours that began or ended are pushed to visitors (and, when
    nobody is left, waiting visitors are told, a long line a few pages a minute); offline
    messages stranded between store and queue are queued; quiet unanswered chats are mailed."""
    outbox = Outbox()
    done: dict[str, int] = {}

    def run(steps: dict[str, Callable[[], list[str] | None]], **keys: str) -> None:
        for name, step in steps.items():
            try:  # one failing step (say, the queue is unreachable) must not stop the others
                done[name] = done.get(name, 0) + len(step() or ())
            except Exception:
                logger.exception("housekeeping step failed", extra={"step": name, **keys})

    run({"agents_timed_out": lambda: presence.sweep(outbox),
         "requeued_offline": offline.sweep_unqueued})

    def serve(site: SiteModel) -> None:
        run({"status": lambda: [site.id] if availability.refresh(site.id, outbox).online else [],
             "digests": lambda: offline.sweep_digests(site),
             "holding_messages": lambda: holding.sweep(site, outbox),
             "invitation_rules": lambda: visitors.sweep_rules(site, outbox),
             "no_agents_told": lambda: unattended.continue_telling(
                 site, lambda: availability.status(site).online, outbox),
             "abandoned": lambda: abandonment.sweep(site, outbox)}, site=site.id)

    # Sites in turn, under a time budget, from where the last run stopped (sites.walk).
    served = sites.walk(serve, _time_left(event, config.settings().housekeeping_site_seconds,
                                          config.settings().housekeeping_reserve_seconds))
    done["sites"] = len(served)
    logger.info("housekeeping", extra=done)
    _deliver(outbox, fanout.endpoint())


def _time_left(event: Any, budget: float, reserve: float) -> Callable[[], float]:
    """Seconds left of ``budget`` from now, never closer than ``reserve`` to the Lambda's end."""
    started = time.monotonic()
    context = getattr(event, "context", None)
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return lambda: min(budget - (time.monotonic() - started),
                       (remaining() / 1000 - reserve) if remaining is not None else budget)


def _mail_record(record: Any) -> None:
    offline.process(record.body)


# Chalice takes the queue name at import (it is the event source `chalice package` wires up, with
# the stage's environment set): the one setting read at import, by the framework's design.
@app.on_sqs_message(queue=config.settings().mail_queue_name, batch_size=10)
def send_mail(event: SQSEvent) -> dict[str, Any]:
    """Mail jobs. Only failed records are reported back (partial batch response), so one bad
    record does not resend the others; each email is sent at most once anyway."""
    # Imported here: only this function needs it, and it costs every other cold start ~40 ms.
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    response = process_partial_response(event=event.to_dict(), record_handler=_mail_record,
                                        processor=BatchProcessor(event_type=EventType.SQS),
                                        context=event.context)  # type: ignore[arg-type]
    return dict(response)


@app.lambda_function(name="receive_email")
def receive_email(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """SES receiving: the receipt rule stored the raw email in S3 and invokes this with the
    SES event (one record per email; the S3 key is the prefix and ``mail.messageId``). The
    domain answers an outcome for every email, never an error, so SES does not retry poison;
    an S3 or DynamoDB failure raises, and the asynchronous invocation is retried (stored once:
    ``conversations.receive`` is idempotent on the Message-ID)."""
    outbox, outcomes = Outbox(), []
    for record in event.get("Records") or []:
        ses = record.get("ses") or {}
        receipt = ses.get("receipt") or {}
        outcome = email_channel.screened(receipt)
        if outcome is None:  # not judged bad by SES: read it (S3) and take it in
            raw = mail.received(str(ses["mail"]["messageId"]), email_channel.MAX_RAW_BYTES)
            outcome = email_channel.receive(raw, list(receipt.get("recipients") or []), outbox)
        logger.info("inbound email", extra={"outcome": outcome})
        outcomes.append(outcome)
    _deliver(outbox, fanout.endpoint())
    return {"outcomes": outcomes}


@app.route("/auth/login", methods=["POST"], cors=True)
def login() -> Response:
    request = app.current_request
    body = _json_body()
    if not isinstance(body, dict):
        raise Refusal(BAD_REQUEST, 'Send {"agent": "...", "password": "..."}.')
    agent_id, password = body.get("agent"), body.get("password")
    if not isinstance(agent_id, str) or not isinstance(password, str):
        raise Refusal(BAD_REQUEST, 'Send {"agent": "...", "password": "..."}.')
    source = request.context.get("identity", {}).get("sourceIp") if request is not None else None
    token = agents.sign_in(agent_id, password, auth.fingerprint(source) if source else None)
    if token is None:
        raise Refusal(UNAUTHORIZED, "Wrong agent id or password.")
    return Response({"token": token}, status_code=200)


def _json_body() -> Any:
    """The request's JSON body (None without one); a body that is not JSON is refused in the
    one error shape rather than Chalice's."""
    request = app.current_request
    try:
        return request.json_body if request is not None else None
    except BadRequestError as exc:
        raise Refusal(BAD_REQUEST, str(exc)) from None


@app.route("/offline", methods=["POST"], cors=True)
def leave_offline_message() -> Response:
    """Leave a message for the team (the widget's form, or a site without WebSockets).
    202 once it is stored; mailing happens after."""
    body = _json_body()
    site = body.get("site") if isinstance(body, dict) else None
    if not isinstance(site, str) or not validate.SITE_ID.match(site):
        raise Refusal(BAD_SITE, 'Send the "site" this message is for.')
    if sites.find(site) is None:  # before anything is counted or stored
        raise Refusal(NO_SITE, "No such site.")
    request = app.current_request
    origin = request.headers.get("origin") if request is not None else None
    settings = sites.get(site)
    if not sites.allows_origin(settings, origin):
        return _site_cors(_refused(Refusal(FORBIDDEN, "This site does not take messages from "
                                           "that page.")), settings, origin)
    try:
        answer = _offline_message(site, body, request)
    except Refusal as refusal:  # answered here only to carry the site's CORS headers too
        answer = _refused(refusal)
    return _site_cors(answer, settings, origin)


def _site_cors(response: Response, settings: SiteModel, origin: str | None) -> Response:
    """A site that lists its origins is answered for those only: the request's own origin when
    listed, else the first listed (which a browser on any other page will not accept). Chalice's
    ``cors=True`` would say ``*``; it leaves a header the response already has alone."""
    allowed = sites.console(settings)["origins"]
    if allowed:
        response.headers["Access-Control-Allow-Origin"] = str(origin if origin in allowed else allowed[0])
        response.headers["Vary"] = "Origin"
    return response


def _offline_message(site: str, body: dict[str, Any], request: Any) -> Response:
    source_ip = request.context.get("identity", {}).get("sourceIp") if request is not None else None
    visitor_id = None
    if isinstance(body.get("token"), str):
        try:
            claims = auth.verify(body["token"])
        except auth.InvalidToken:
            raise Refusal(BAD_TOKEN, "That visitor token is not valid.") from None
        if claims.role != auth.VISITOR or claims.site != site:
            raise Refusal(BAD_TOKEN, "That token is not a visitor token for this site.")
        visitor_id = claims.subject
    message_id = offline.leave(site, body, visitor_id=visitor_id,
                               ip_hash=auth.fingerprint(source_ip) if source_ip else None)
    offline.dispatch(message_id)
    return Response({"id": message_id}, status_code=202)


@app.route("/transcripts/confirm/{token}", methods=["GET"])
def confirm_transcript_address(token: str) -> Response:
    """The link in a confirmation email: trusts the address for its chat and sends the
    transcripts waiting on it. A small plain page (opened from a mail client, not the widget);
    safe to open twice. No CORS: no page has any business fetching it."""
    done = transcripts.confirm(token)
    page = ("<!doctype html><meta charset=utf-8><meta name=viewport content='width=device-width'>"
            f"<title>Email address</title><p>{done.message}</p>")
    return Response(page, status_code=done.status, headers={
        "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer", "Content-Security-Policy": "default-src 'none'"})


@app.route("/sites/{site}/status", cors=True)
def site_status(site: str) -> dict[str, Any]:
    """Is anyone there? For pages that ask before opening a socket."""
    settings = sites.find(site)
    if settings is None:
        raise Refusal(NOT_FOUND, "No such site.")
    current = availability.status(settings).frame()
    current.pop("type")
    return current


@app.route("/sites/{site}/widget", cors=True)
def widget_config(site: str) -> dict[str, Any]:
    """Everything the embedded widget needs on first open: look, FAQ links, pre-chat form,
    and whether anyone is there. Public: it holds nothing secret, and not the site id either
    (visitors never see it: ``name`` is null until an admin names the site)."""
    settings = sites.find(site)
    if settings is None:
        raise Refusal(NOT_FOUND, "No such site.")
    current = availability.status(settings).frame()
    current.pop("type")
    return {"name": settings.name or None, **sites.widget(settings),
            "status": current}


def _signed_in(site: str, admin: bool = True, lead: bool = False) -> agents.AgentModel:
    """The agent behind the request's bearer token: an admin of ``site`` unless ``admin``
    is False (then any active agent of the site), or an admin or supervisor with ``lead``."""
    request = app.current_request
    header = (request.headers.get("authorization") or "") if request is not None else ""
    if not header.startswith("Bearer "):
        raise Refusal(UNAUTHORIZED, "Sign in: send Authorization: Bearer <agent token>.")
    check = agents.require_lead if lead else agents.require_admin if admin else agents.require_member
    return check(header[len("Bearer "):], site)


def _admin(site: str) -> None:
    _signed_in(site)


@app.route("/sites/{site}/agents", methods=["GET"], cors=True)
def list_agents(site: str) -> dict[str, Any]:
    """The site's team: for the admin page and the transfer picker (any agent of the site)."""
    _signed_in(site, admin=False)
    return {"agents": agents.team(site)}


@app.route("/sites/{site}/agents", methods=["POST"], cors=True)
def add_agent(site: str) -> Response:
    _admin(site)
    body = _json_body()
    required = ("id", "name", "password")
    if not isinstance(body, dict) or not all(isinstance(body.get(k), str) for k in required):
        raise Refusal(BAD_REQUEST, 'Send {"id", "name", "password", "role"?, "max_chats"?, "email"?}.')
    agent = agents.create(body["id"], body["name"], body["password"], role=body.get("role", "agent"),
                          max_chats=body.get("max_chats"), email=body.get("email"), site=site)
    return Response(agents.public(agent), status_code=201)


@app.route("/sites/{site}/agents/{agent_id}", methods=["PATCH"], cors=True)
def change_agent(site: str, agent_id: str) -> dict[str, Any]:
    _admin(site)
    return agents.public(agents.change(site, agent_id, _json_body()))


@app.route("/sites/{site}/agents/{agent_id}", methods=["DELETE"], cors=True)
def revoke_agent(site: str, agent_id: str) -> Response:
    """Revoke an agent: signed out everywhere now (their consoles are hung up)."""
    admin = _signed_in(site)
    if admin.id == agent_id:
        raise Refusal(BAD_REQUEST, "You cannot revoke yourself.")
    consoles = agents.disable(site, agent_id)
    fanout.close(consoles, fanout.endpoint())
    outbox = Outbox()
    availability.refresh(site, outbox)
    _deliver(outbox, fanout.endpoint())
    return Response("", status_code=204)


@app.route("/sites/{site}/locks", methods=["GET"], cors=True)
def sign_in_locks(site: str) -> dict[str, Any]:
    """Recent sign-in lock events of the site's accounts (admins): when, whom, and a hash of
    the address the failed attempts came from."""
    _admin(site)
    return {"locks": agents.lock_events(site)}


@app.route("/sites/{site}", methods=["GET"], cors=True)
def get_site(site: str) -> dict[str, Any]:
    _admin(site)
    return sites.public(sites.get(site))


@app.route("/sites/{site}", methods=["PUT"], cors=True)
def put_site(site: str) -> dict[str, Any]:
    """Admins set business hours, the team's address and the site's name."""
    _admin(site)
    try:
        sites.update(site, _json_body())
    except ValueError as exc:  # sites' validation (shared with the admin CLI) names the field
        raise Refusal(BAD_REQUEST, str(exc)) from None
    outbox = Outbox()
    availability.refresh(site, outbox)
    _deliver(outbox, fanout.endpoint())
    return sites.public(sites.get(site))


@app.route("/sites/{site}/reports", methods=["GET"], cors=True)
def site_reports(site: str) -> Response:
    """Service figures for a date range (admins and supervisors): JSON, or a CSV download
    with ``format=csv``. Query: from, to (YYYY-MM-DD, the site's days), agent."""
    _signed_in(site, lead=True)
    request = app.current_request
    query: dict[str, str] = dict(request.query_params or {}) if request is not None else {}
    agent = query.get("agent") or None
    if agent is not None and not agents.AGENT_ID.match(agent):
        raise Refusal(BAD_REQUEST, "agent: an agent id.")
    first, last = reports.date_range(query.get("from"), query.get("to"), site)
    doc = reports.report(site, first, last, agent)
    if query.get("format") == "csv":
        name = f"report-{site}-{doc['from']}-{doc['to']}{'-' + agent if agent else ''}.csv"
        return Response(reports.to_csv(doc), status_code=200, headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{name}"'})
    return Response(doc, status_code=200)
def _holdings(site: str, visitor: str) -> privacy.Holdings:
    """What we hold about ``visitor`` (a visitor id, or an email address) on ``site``."""
    _admin(site)
    found = privacy.find(site, unquote(visitor))
    if found.empty():
        raise Refusal(NOT_FOUND, "Nothing is held about that visitor on this site.")
    return found


@app.route("/sites/{site}/visitors/{visitor}/export", methods=["GET"], cors=True)
def export_visitor(site: str, visitor: str) -> dict[str, Any]:
    """Everything held about a visitor (by visitor id or email address), as JSON: a data
    subject's access request. Admins only."""
    return privacy.export(_holdings(site, visitor))


@app.route("/sites/{site}/visitors/{visitor}", methods=["DELETE"], cors=True)
def erase_visitor(site: str, visitor: str) -> dict[str, Any]:
    """Erase everything held about a visitor (by visitor id or email address), including
    offline messages and mail not sent yet; their open chat ends, their tabs are hung up."""
    outbox = Outbox()
    erased = privacy.erase(_holdings(site, visitor), outbox)
    _deliver(outbox, fanout.endpoint())
    fanout.close(erased.hang_up, fanout.endpoint())
    return {"erased": erased.counts}


@app.route("/health", cors=True)
def health() -> dict[str, str]:
    return {"status": "ok"}
