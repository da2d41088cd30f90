"""Settings read from the Lambda environment, in one place: :class:`Settings`.

Everything a deployment may tune is an environment variable set per stage in
``.chalice/config.json``; the defaults suit a small team. Each field of :class:`Settings` names
its type, its default and the variable it comes from; nothing else reads those variables.

Read once per cold start, at first use (:func:`settings`, cached), and by every reader at call
time (one attribute of a cached object): never copied into module globals or class attributes
at import. So the order of imports cannot freeze a value before the environment is ready (the
local stand-in sets its variables after the app is imported), :func:`reload` is what a new cold
start would read, and tests change a value with :func:`override`, which the handlers running
in the stand-in's threads see, with no monkeypatching of module globals.

The token secret is not a field: it may need an SSM request, so it has its own cached reader
(:func:`token_secret`) and is never held where it could be printed with the rest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
from collections.abc import Iterator, Mapping
from typing import Any

SERVICE = "clicktochat"  # Powertools service name: logs, metrics and traces share it (a constant)

# Connection items outlive API Gateway's 2-hour connection limit, then DynamoDB's TTL
# removes any that a lost $disconnect left behind. API Gateway's limit, not a setting.
CONNECTION_TTL_SECONDS = 3 * 3600

#: Variables read by :func:`token_secret` rather than held in :class:`Settings`.
SECRET_VARIABLES = ("TOKEN_SECRET", "TOKEN_SECRET_PARAM")


def _env[T](variable: str, default: T) -> T:
    """A field of :class:`Settings` read from ``variable``, parsed as its default's type."""
    return dataclasses.field(default=default, metadata={"env": variable})


def _kind(field: dataclasses.Field[Any]) -> type[Any]:
    """What a field's variable is parsed as: its default's type (str, int or float)."""
    return type(field.default)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """Every setting of a deployment: field = environment variable, typed, with its default."""

    # CloudWatch namespace of the app's metrics (chalicelib/telemetry.py); "<app>-<stage>" when
    # deployed, so the stages never mix and infra/template.yaml's dashboard can name it.
    metrics_namespace: str = _env("POWERTOOLS_METRICS_NAMESPACE", "clicktochat-local")
    table_name: str = _env("TABLE_NAME", "chat")
    # The site of visitors whose connection names none.
    default_site: str = _env("DEFAULT_SITE", "default")

    # The minute timer serves sites in turn for at most this long per run (and never closer
    # than housekeeping_reserve_seconds to its Lambda timeout); the next run goes on from where
    # it stopped (chalicelib.sites.walk), so any number of sites fits.
    housekeeping_site_seconds: float = _env("HOUSEKEEPING_SITE_SECONDS", 30.0)
    housekeeping_reserve_seconds: float = _env("HOUSEKEEPING_RESERVE_SECONDS", 10.0)

    # An agent whose last connection closed stays on shift this long, so a page refresh or a
    # brief network drop does not hand their chats to someone else.
    agent_grace_seconds: int = _env("AGENT_GRACE_SECONDS", 30)
    # Concurrent chats of a new agent (each agent's own maximum is set on the agent).
    default_max_chats: int = _env("DEFAULT_MAX_CHATS", 4)

    # Token lifetimes, in seconds.
    agent_token_ttl: int = _env("AGENT_TOKEN_TTL", 12 * 3600)
    visitor_token_ttl: int = _env("VISITOR_TOKEN_TTL", 30 * 86400)

    # Open tabs (WebSocket connections) one visitor may hold; the newest evicts the oldest
    # (chalicelib.presence). A conversation refuses a visitor's tab once it holds
    # conversation_conns connections of anyone (a backstop; agents are never refused).
    visitor_tabs: int = _env("VISITOR_TABS", 10)
    conversation_conns: int = _env("CONVERSATION_CONNS", 40)

    # After hours: where mail comes from and goes to, and the queue in between.
    mail_from: str = _env("MAIL_FROM", "chat@example.com")  # the verified SES identity
    team_email: str = _env("TEAM_EMAIL", "team@example.com")  # a site's own address wins
    mail_queue_name: str = _env("MAIL_QUEUE_NAME", "clicktochat-mail")
    mail_dlq_name: str = _env("MAIL_DLQ_NAME", "")  # empty: "<mail_queue_name>-dlq"
    # Deliveries before a mail job is parked in the dead-letter queue (the queue's redrive policy).
    mail_max_receives: int = _env("MAIL_MAX_RECEIVES", 5)
    # Unanswered visitor lines in a waiting chat are mailed as one digest after this much quiet.
    digest_quiet_seconds: int = _env("DIGEST_QUIET_SECONDS", 120)
    # A message stored but not on the queue this long is re-queued by the sweep.
    unqueued_after_seconds: int = _env("UNQUEUED_AFTER_SECONDS", 60)
    # Offline messages: per source address and per visitor, per hour.
    offline_per_ip_per_hour: int = _env("OFFLINE_PER_IP_PER_HOUR", 10)
    offline_per_visitor_per_hour: int = _env("OFFLINE_PER_VISITOR_PER_HOUR", 3)

    # Replies by email (chalicelib.email_channel): an agent's emailed reply says "reply to
    # reply+<signed token>@REPLY_DOMAIN", and SES receiving for that domain brings the answer
    # back into the conversation. Empty: no reply address (replies go to the team's address).
    reply_domain: str = _env("REPLY_DOMAIN", "")
    # How long such a reply address works after the mail that gave it.
    reply_token_days: int = _env("REPLY_TOKEN_DAYS", 90)
    # Where SES receiving stores each inbound email (raw MIME): bucket and key prefix, the key
    # being the prefix and SES's message id (infra/template.yaml's receipt rule).
    inbound_bucket: str = _env("INBOUND_BUCKET", "clicktochat-inbound")
    inbound_prefix: str = _env("INBOUND_PREFIX", "inbound/")

    # Transcripts by email on request: per person (visitor or agent), per hour.
    transcripts_per_hour: int = _env("TRANSCRIPTS_PER_HOUR", 5)
    # A visitor's address is confirmed by a link before the first transcript; the link lasts this long.
    mail_confirm_ttl_seconds: int = _env("MAIL_CONFIRM_TTL_SECONDS", 24 * 3600)
    # Hourly budgets of the emails strangers can cause (offline messages, transcripts and their
    # confirmation links, digests): per network address, per site, per deployment
    # (chalicelib.limits.spend_mail; docs/resilience.md). 0 turns one off; the local stand-in turns off
    # the per-network one.
    mail_per_network_per_hour: int = _env("MAIL_PER_NETWORK_PER_HOUR", 20)
    mail_per_site_per_hour: int = _env("MAIL_PER_SITE_PER_HOUR", 200)
    mail_per_deployment_per_hour: int = _env("MAIL_PER_DEPLOYMENT_PER_HOUR", 1000)

    # Where the REST API answers, for links in emails (address confirmation): public_api_url (a
    # custom domain, or the local stand-in's own), else the execute-api URL of rest_api_id and
    # rest_api_stage. See :func:`public_api_url`.
    public_api_url: str = _env("PUBLIC_API_URL", "")
    rest_api_id: str = _env("REST_API_ID", "")
    rest_api_stage: str = _env("REST_API_STAGE", "api")
    # The WebSocket API whose connections the management API posts to (chalicelib.fanout), for
    # handlers whose event does not say (schedules, the mail queue); written after the first deploy.
    websocket_api_id: str = _env("WEBSOCKET_API_ID", "")
    websocket_stage: str = _env("WEBSOCKET_STAGE", "api")

    # Retention: conversations, messages, notes, visitor records and offline messages are deleted
    # (DynamoDB TTL) this many days after their last write.
    retention_days: int = _env("RETENTION_DAYS", 365)

    # Chat messages per connection in any one second (a burst allowance; checked inside the
    # message write itself, so it costs no extra request). 0 turns the limit off.
    messages_per_second: int = _env("MESSAGES_PER_SECOND", 5)
    # New conversations a visitor may open per hour (resuming the open one is not counted).
    conversations_per_visitor_per_hour: int = _env("CONVERSATIONS_PER_VISITOR_PER_HOUR", 10)
    # ... and per network (source address): a new visitor identity is one tokenless connect away,
    # so the per-visitor limit alone is easy to get round. 0 turns it off (the local stand-in
    # does: every local client is 127.0.0.1).
    conversations_per_ip_per_hour: int = _env("CONVERSATIONS_PER_IP_PER_HOUR", 100)

    # Failed agent sign-ins per source address per 15 minutes, whatever the account: against
    # guessing across many accounts. 0 turns it off (the local stand-in does: every local client
    # is 127.0.0.1, so one developer's typos would lock everyone out).
    login_failures_per_address: int = _env("LOGIN_FAILURES_PER_ADDRESS", 50)

    # Concurrent posts to the management API per invocation.
    fanout_workers: int = _env("FANOUT_WORKERS", 16)

    def __post_init__(self) -> None:
        # Checked here, so an override with the wrong type fails where it is made, not in a handler.
        for field in dataclasses.fields(self):
            value, kind = getattr(self, field.name), _kind(field)
            if not isinstance(value, kind) and not (kind is float and type(value) is int):
                raise TypeError(f"Settings.{field.name} must be {kind.__name__}, not {value!r}")
        if not self.mail_dlq_name:
            object.__setattr__(self, "mail_dlq_name", f"{self.mail_queue_name}-dlq")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """The settings ``environ`` gives; a value that does not parse fails here, naming its
        variable (a cold start that fails loudly, not a handler that fails later)."""
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            raw = environ.get(field.metadata["env"])
            if raw is None:
                continue
            kind = _kind(field)
            try:
                values[field.name] = kind(raw)
            except ValueError:
                what = {int: "an integer", float: "a number"}[kind]
                raise ValueError(f"{field.metadata['env']} must be {what}, not {raw!r}") from None
        return cls(**values)


def variables() -> dict[str, str]:
    """Each environment variable :class:`Settings` reads, with its field's name."""
    return {f.metadata["env"]: f.name for f in dataclasses.fields(Settings)}


_current: Settings | None = None


def settings() -> Settings:
    """This cold start's settings (read from the environment at first use)."""
    return _current if _current is not None else reload()


def reload(environ: Mapping[str, str] | None = None) -> Settings:
    """Read the settings again, as a new cold start would (the local stand-in calls this when it
    has set its environment; ``environ`` defaults to ``os.environ``)."""
    global _current
    _current = Settings.from_env(os.environ if environ is None else environ)
    return _current


@contextlib.contextmanager
def override(**fields: Any) -> Iterator[Settings]:
    """Run with some settings changed, then put the earlier ones back (tests).

    Process-wide on purpose: the handlers a test drives run in the stand-in's threads of the
    same process, and must see the change. Nested overrides undo in reverse order.
    """
    global _current
    before = settings()
    _current = dataclasses.replace(before, **fields)
    try:
        yield _current
    finally:
        _current = before


def public_api_url() -> str:
    """Where the REST API answers, for links in emails (address confirmation)."""
    current = settings()
    if current.public_api_url:
        return current.public_api_url.rstrip("/")
    if not current.rest_api_id:
        raise RuntimeError("Set PUBLIC_API_URL (or REST_API_ID) so emails can link to the API.")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    return f"https://{current.rest_api_id}.execute-api.{region}.amazonaws.com/{current.rest_api_stage}"


@functools.cache
def token_secret() -> bytes:
    """The HMAC key for tokens; read once per cold start, refused when weak.

    Deployed stages keep it in an SSM SecureString named by ``TOKEN_SECRET_PARAM`` (so it is
    never in the Lambda configuration); the local stand-in and tests pass ``TOKEN_SECRET``.
    """
    secret = os.environ.get("TOKEN_SECRET", "")
    param = os.environ.get("TOKEN_SECRET_PARAM")
    if not secret and param:
        from chalicelib.aws import client

        ssm = client("ssm")
        secret = ssm.get_parameter(Name=param, WithDecryption=True)["Parameter"]["Value"]
    if len(secret) < 32:
        raise RuntimeError("TOKEN_SECRET must be set to at least 32 characters.")
    return secret.encode("utf-8")
