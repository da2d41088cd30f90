"""Settings read from the Lambda environment, in one place.

Everything a deployment may tune is an environment variable set per stage in
``.chalice/config.json``; the defaults suit a small team.
"""

from __future__ import annotations

import functools
import os

SERVICE = "clicktochat"  # Powertools service name: logs, metrics and traces share it
# CloudWatch namespace of the app's metrics (chalicelib/telemetry.py); "<app>-<stage>" when
# deployed, so the stages never mix and infra/template.yaml's dashboard can name it.
METRICS_NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "clicktochat-local")
TABLE_NAME = os.environ.get("TABLE_NAME", "chat")
DEFAULT_SITE = os.environ.get("DEFAULT_SITE", "default")

# The minute timer serves sites in turn for at most this long per run (and never closer
# than HOUSEKEEPING_RESERVE_SECONDS to its Lambda timeout); the next run goes on from where
# it stopped (chalicelib.sites.walk), so any number of sites fits.
HOUSEKEEPING_SITE_SECONDS = float(os.environ.get("HOUSEKEEPING_SITE_SECONDS", "30"))
HOUSEKEEPING_RESERVE_SECONDS = float(os.environ.get("HOUSEKEEPING_RESERVE_SECONDS", "10"))

# An agent whose last connection closed stays on shift this long, so a page refresh or a
# brief network drop does not hand their chats to someone else.
AGENT_GRACE_SECONDS = int(os.environ.get("AGENT_GRACE_SECONDS", "30"))
DEFAULT_MAX_CHATS = int(os.environ.get("DEFAULT_MAX_CHATS", "4"))

AGENT_TOKEN_TTL = int(os.environ.get("AGENT_TOKEN_TTL", str(12 * 3600)))
VISITOR_TOKEN_TTL = int(os.environ.get("VISITOR_TOKEN_TTL", str(30 * 86400)))

# Connection items outlive API Gateway's 2-hour connection limit, then DynamoDB's TTL
# removes any that a lost $disconnect left behind.
CONNECTION_TTL_SECONDS = 3 * 3600

# Open tabs (WebSocket connections) one visitor may hold; the newest evicts the oldest
# (chalicelib.presence). A conversation refuses a visitor's tab once it holds
# CONVERSATION_CONNS connections of anyone (a backstop; agents are never refused).
VISITOR_TABS = int(os.environ.get("VISITOR_TABS", "10"))
CONVERSATION_CONNS = int(os.environ.get("CONVERSATION_CONNS", "40"))

# After hours: where mail comes from and goes to, and the queue in between.
MAIL_FROM = os.environ.get("MAIL_FROM", "chat@example.com")
TEAM_EMAIL = os.environ.get("TEAM_EMAIL", "team@example.com")  # a site's own address wins
MAIL_QUEUE_NAME = os.environ.get("MAIL_QUEUE_NAME", "clicktochat-mail")
MAIL_DLQ_NAME = os.environ.get("MAIL_DLQ_NAME", f"{MAIL_QUEUE_NAME}-dlq")
# Deliveries before a mail job is parked in the dead-letter queue (the queue's redrive policy).
MAIL_MAX_RECEIVES = int(os.environ.get("MAIL_MAX_RECEIVES", "5"))
# Unanswered visitor lines in a waiting chat are mailed as one digest after this much quiet.
DIGEST_QUIET_SECONDS = int(os.environ.get("DIGEST_QUIET_SECONDS", "120"))
# A message stored but not on the queue this long is re-queued by the sweep.
UNQUEUED_AFTER_SECONDS = int(os.environ.get("UNQUEUED_AFTER_SECONDS", "60"))
# Offline messages: per source address and per visitor, per hour.
OFFLINE_PER_IP_PER_HOUR = int(os.environ.get("OFFLINE_PER_IP_PER_HOUR", "10"))
OFFLINE_PER_VISITOR_PER_HOUR = int(os.environ.get("OFFLINE_PER_VISITOR_PER_HOUR", "3"))

# Transcripts by email on request: per person (visitor or agent), per hour.
TRANSCRIPTS_PER_HOUR = int(os.environ.get("TRANSCRIPTS_PER_HOUR", "5"))
# A visitor's address is confirmed by a link before the first transcript; the link lasts this long.
MAIL_CONFIRM_TTL_SECONDS = int(os.environ.get("MAIL_CONFIRM_TTL_SECONDS", str(24 * 3600)))
# Hourly budgets of the emails strangers can cause (offline messages, transcripts and their
# confirmation links, digests): per network address, per site, per deployment (chalicelib.limits.spend_mail;
# docs/resilience.md). 0 turns one off; the local stand-in turns off the per-network one.
MAIL_PER_NETWORK_PER_HOUR = int(os.environ.get("MAIL_PER_NETWORK_PER_HOUR", "20"))
MAIL_PER_SITE_PER_HOUR = int(os.environ.get("MAIL_PER_SITE_PER_HOUR", "200"))
MAIL_PER_DEPLOYMENT_PER_HOUR = int(os.environ.get("MAIL_PER_DEPLOYMENT_PER_HOUR", "1000"))


def public_api_url() -> str:
    """Where the REST API answers, for links in emails (address confirmation): ``PUBLIC_API_URL``
    (a custom domain, or the local stand-in's own), else the execute-api URL of ``REST_API_ID``.
    Read at call time: the stand-in learns its port after the app is imported."""
    url = os.environ.get("PUBLIC_API_URL")
    if url:
        return url.rstrip("/")
    api_id = os.environ.get("REST_API_ID")
    if not api_id:
        raise RuntimeError("Set PUBLIC_API_URL (or REST_API_ID) so emails can link to the API.")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    return f"https://{api_id}.execute-api.{region}.amazonaws.com/{os.environ.get('REST_API_STAGE', 'api')}"

# Retention: conversations, messages, notes, visitor records and offline messages are deleted
# (DynamoDB TTL) this many days after their last write.
RETENTION_DAYS = int(os.environ.get("RETENTION_DAYS", "365"))

# Chat messages per connection in any one second (a burst allowance; checked inside the
# message write itself, so it costs no extra request). 0 turns the limit off.
MESSAGES_PER_SECOND = int(os.environ.get("MESSAGES_PER_SECOND", "5"))
# New conversations a visitor may open per hour (resuming the open one is not counted).
CONVERSATIONS_PER_VISITOR_PER_HOUR = int(os.environ.get("CONVERSATIONS_PER_VISITOR_PER_HOUR", "10"))
# ... and per network (source address): a new visitor identity is one tokenless connect away,
# so the per-visitor limit alone is easy to get round. 0 turns it off (the local stand-in
# does: every local client is 127.0.0.1).
CONVERSATIONS_PER_IP_PER_HOUR = int(os.environ.get("CONVERSATIONS_PER_IP_PER_HOUR", "100"))

# Failed agent sign-ins per source address per 15 minutes, whatever the account: against
# guessing across many accounts. 0 turns it off (the local stand-in does: every local client
# is 127.0.0.1, so one developer's typos would lock everyone out).
LOGIN_FAILURES_PER_ADDRESS = int(os.environ.get("LOGIN_FAILURES_PER_ADDRESS", "50"))

# Concurrent posts to the management API per invocation.
FANOUT_WORKERS = int(os.environ.get("FANOUT_WORKERS", "16"))


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
