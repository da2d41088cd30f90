"""Chalice entry points: thin handlers that parse, call the domain in chalicelib/, deliver.

WebSocket routes ($connect, $default, $disconnect) carry the chat; REST routes carry sign-in;
a schedule sweeps agents whose grace period ended.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from chalice import (
    BadRequestError,
    Chalice,
    ForbiddenError,
    NotFoundError,
    Rate,
    Response,
    UnauthorizedError,
)
from chalice.app import SQSEvent, WebsocketEvent

from chalicelib import (
    agents,
    auth,
    availability,
    config,
    dispatch,
    fanout,
    holding,
    offline,
    presence,
    sites,
    visitors,
)
from chalicelib.fanout import Outbox
from chalicelib.protocol import RATE_LIMITED

app = Chalice(app_name="clicktochat")
app.experimental_feature_flags.update(["WEBSOCKETS"])
# Delivery goes through chalicelib.fanout (concurrent posts), not Chalice's sequential
# websocket_api.send, so no boto3 session is attached here (boto3 costs ~90 ms of imports).
logger = Logger(service=config.SERVICE)


def _log_context(connection_id: str) -> None:
    """Per-invocation log keys; thread-safe because the local stand-in runs invocations in
    threads of one process (on Lambda each invocation has its own process)."""
    logger.thread_safe_clear_keys()
    logger.thread_safe_append_keys(connection=connection_id)


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
    _log_context(event.connection_id)
    try:
        who = presence.connect(event.connection_id, query, source_ip, raw.get("headers") or {})
    except presence.Refused as refused:
        logger.info("connection refused", extra={"reason": str(refused)})
        return {"statusCode": refused.status}
    logger.info("connected", extra={"role": who.role, "site": who.site})
    return {"statusCode": 200}


@app.on_ws_message()
def message(event: WebsocketEvent) -> None:
    _log_context(event.connection_id)
    outbox = Outbox()
    binary = bool(event.to_dict().get("isBase64Encoded"))
    dispatch.handle(event.connection_id, event.body, outbox, binary=binary)
    _deliver(outbox, _endpoint(event))


@app.on_ws_disconnect()
def disconnect(event: WebsocketEvent) -> None:
    _log_context(event.connection_id)
    outbox = Outbox()
    presence.disconnect(event.connection_id, outbox)
    _deliver(outbox, _endpoint(event))


@app.schedule(Rate(1, unit=Rate.MINUTES))
def housekeeping(event: Any) -> None:
    """The minute timer: agents gone past their grace period go off shift (their chats go
    back in line); opening hours that began or ended are pushed to visitors; offline
    messages stranded between store and queue are queued; quiet unanswered chats are mailed."""
    outbox = Outbox()
    done: dict[str, int] = {}
    steps: dict[str, Callable[[], list[str] | None]] = {
        "agents_timed_out": lambda: presence.sweep(outbox),
        "status": lambda: availability.refresh_all(outbox),
        "requeued_offline": offline.sweep_unqueued,
        "digests": offline.sweep_digests,
        "holding_messages": lambda: holding.sweep(outbox),
        "invitation_rules": lambda: visitors.sweep_rules(outbox),
    }
    for name, step in steps.items():
        try:  # one failing step (say, the queue is unreachable) must not stop the others
            done[name] = len(step() or ())
        except Exception:
            logger.exception("housekeeping step failed", extra={"step": name})
    logger.info("housekeeping", extra=done)
    _deliver(outbox, fanout.endpoint())


def _mail_record(record: Any) -> None:
    offline.process(record.body)


@app.on_sqs_message(queue=config.MAIL_QUEUE_NAME, batch_size=10)
def send_mail(event: SQSEvent) -> dict[str, Any]:
    """Mail jobs. Only failed records are reported back (partial batch response), so one bad
    record does not resend the others; each email is sent at most once anyway."""
    # Imported here: only this function needs it, and it costs every other cold start ~40 ms.
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    response = process_partial_response(event=event.to_dict(), record_handler=_mail_record,
                                        processor=BatchProcessor(event_type=EventType.SQS),
                                        context=event.context)  # type: ignore[arg-type]
    return dict(response)


@app.route("/auth/login", methods=["POST"], cors=True)
def login() -> Response:
    request = app.current_request
    body = request.json_body if request is not None else None
    if not isinstance(body, dict):
        raise BadRequestError('Send {"agent": "...", "password": "..."}.')
    agent_id, password = body.get("agent"), body.get("password")
    if not isinstance(agent_id, str) or not isinstance(password, str):
        raise BadRequestError('Send {"agent": "...", "password": "..."}.')
    source = request.context.get("identity", {}).get("sourceIp") if request is not None else None
    try:
        token = agents.sign_in(agent_id, password, auth.fingerprint(source) if source else None)
    except agents.TooManyAttempts as exc:
        return _problem(429, RATE_LIMITED, str(exc), retry_after=exc.retry_after)
    if token is None:
        raise UnauthorizedError("Wrong agent id or password.")
    return Response({"token": token}, status_code=200)


def _json_body() -> Any:
    request = app.current_request
    return request.json_body if request is not None else None


def _problem(status: int, code: str, message: str, retry_after: int | None = None) -> Response:
    """An error answer: ``{"code", "message"}``; a 429 also says when to try again, in the body
    and in the standard ``Retry-After`` header."""
    if retry_after is None:
        return Response({"code": code, "message": message}, status_code=status)
    return Response({"code": code, "message": message, "retry_after": retry_after},
                    status_code=status, headers={"Retry-After": str(retry_after)})


@app.route("/offline", methods=["POST"], cors=True)
def leave_offline_message() -> Response:
    """Leave a message for the team (the widget's form, or a site without WebSockets).
    202 once it is stored; mailing happens after."""
    body = _json_body()
    site = body.get("site") if isinstance(body, dict) else None
    if not isinstance(site, str) or not presence.SITE_ID.match(site):
        return _problem(400, "bad_site", 'Send the "site" this message is for.')
    request = app.current_request
    source_ip = request.context.get("identity", {}).get("sourceIp") if request is not None else None
    visitor_id = None
    if isinstance(body.get("token"), str):
        try:
            claims = auth.verify(body["token"])
        except auth.InvalidToken:
            return _problem(403, "bad_token", "That visitor token is not valid.")
        if claims.role != auth.VISITOR or claims.site != site:
            return _problem(403, "bad_token", "That token is not a visitor token for this site.")
        visitor_id = claims.subject
    try:
        message_id = offline.leave(site, body, visitor_id=visitor_id,
                                   ip_hash=auth.fingerprint(source_ip) if source_ip else None)
    except offline.Refused as refused:
        return _problem(refused.status, refused.code, refused.message, refused.retry_after)
    offline.dispatch(message_id)
    return Response({"id": message_id}, status_code=202)


@app.route("/sites/{site}/status", cors=True)
def site_status(site: str) -> dict[str, Any]:
    """Is anyone there? For pages that ask before opening a socket."""
    if not presence.SITE_ID.match(site):
        raise NotFoundError("No such site.")
    current = availability.status(sites.get(site)).frame()
    current.pop("type")
    return current


@app.route("/sites/{site}/widget", cors=True)
def widget_config(site: str) -> dict[str, Any]:
    """Everything the embedded widget needs on first open: look, FAQ links, pre-chat form,
    and whether anyone is there. Public: it holds nothing secret."""
    if not presence.SITE_ID.match(site):
        raise NotFoundError("No such site.")
    settings = sites.get(site)
    current = availability.status(settings).frame()
    current.pop("type")
    return {"site": site, "name": settings.name, **sites.widget(settings),
            "status": current}


def _signed_in(site: str, admin: bool = True) -> agents.AgentModel:
    """The agent behind the request's bearer token: an admin of ``site`` unless ``admin``
    is False (then any active agent of the site)."""
    request = app.current_request
    header = (request.headers.get("authorization") or "") if request is not None else ""
    if not header.startswith("Bearer "):
        raise UnauthorizedError("Sign in: send Authorization: Bearer <agent token>.")
    check = agents.require_admin if admin else agents.require_member
    try:
        return check(header[len("Bearer "):], site)
    except agents.AgentError as exc:
        raise ForbiddenError(str(exc)) from None


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
        raise BadRequestError('Send {"id", "name", "password", "role"?, "max_chats"?, "email"?}.')
    try:
        agent = agents.create(body["id"], body["name"], body["password"], role=body.get("role", "agent"),
                              max_chats=body.get("max_chats"), email=body.get("email"), site=site)
    except agents.AgentError as exc:
        raise BadRequestError(str(exc)) from None
    return Response(agents.public(agent), status_code=201)


@app.route("/sites/{site}/agents/{agent_id}", methods=["PATCH"], cors=True)
def change_agent(site: str, agent_id: str) -> dict[str, Any]:
    _admin(site)
    try:
        return agents.public(agents.change(site, agent_id, _json_body()))
    except agents.AgentError as exc:
        raise BadRequestError(str(exc)) from None


@app.route("/sites/{site}/agents/{agent_id}", methods=["DELETE"], cors=True)
def revoke_agent(site: str, agent_id: str) -> Response:
    """Revoke an agent: signed out everywhere now (their consoles are hung up)."""
    admin = _signed_in(site)
    if admin.id == agent_id:
        raise BadRequestError("You cannot revoke yourself.")
    try:
        consoles = agents.disable(site, agent_id)
    except agents.AgentError as exc:
        raise NotFoundError(str(exc)) from None
    fanout.close(consoles, fanout.endpoint())
    outbox = Outbox()
    availability.refresh(site, outbox)
    _deliver(outbox, fanout.endpoint())
    return Response("", status_code=204)


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
    except ValueError as exc:
        raise BadRequestError(str(exc)) from None
    outbox = Outbox()
    availability.refresh(site, outbox)
    _deliver(outbox, fanout.endpoint())
    return sites.public(sites.get(site))


@app.route("/health", cors=True)
def health() -> dict[str, str]:
    return {"status": "ok"}
