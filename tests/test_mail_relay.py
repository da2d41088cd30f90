"""The product's SES identity is not an open relay (issue 15).

A stranger can type anything and any address. Hostile inputs, each against the local stack
(real WebSocket clients, REST through the stand-in, mail read back from aws-ses-v2-local):
visitor text never reaches an address that did not confirm by the link; the hourly mail
budgets refuse with ``retry_after``/``Retry-After``; addresses SES would refuse are refused up
front; an IDNA domain is accepted and encoded; a mail cut at the message cap says so.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from chalicelib import auth, config, limits, mail, offline, sites, transcripts, validate
from chalicelib.models import META, ConversationModel, CounterModel, conversation_key
from tests.support.client import confirmation_link, rest
from tests.support.clock import Clock

SPAM = "BUY CHEAP WATCHES AT scam.example"

# Every test here spends 127.0.0.1's offline and mail allowances: give them back after each.
pytestmark = pytest.mark.usefixtures("address_counters")


def _get(url: str) -> tuple[int, str, dict[str, str]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


def _chat(visitor, agent, email: str | None = None) -> tuple[object, str]:
    console = agent()
    guest = visitor()
    guest.send({"action": "start", **({"email": email} if email else {})})
    conv = guest.expect("conversation")["conversation"]
    console.expect("assigned", conversation=conv)
    guest.say(conv, SPAM)
    return guest, conv


def test_a_transcript_to_an_arbitrary_address_carries_no_visitor_text_until_the_link_is_opened(
        stack, visitor, agent, mailbox):
    guest, conv = _chat(visitor, agent, "tina@example.org")
    guest.request({"action": "close", "conversation": conv}, "closed")
    queued = guest.request({"action": "transcript", "conversation": conv, "id": "relay-1",
                            "email": "victim@example.net"}, "transcript_queued")
    assert queued["email"] == "victim@example.net" and queued["confirm"] is True

    (note,) = mailbox("victim@example.net")  # one mail, and not the transcript
    assert SPAM not in note["body"]["text"] and SPAM not in note["subject"]
    assert not [e for e in stack.ses.emails() if SPAM in e["body"]["text"]]  # to nobody at all
    url = confirmation_link(note)

    status, page, headers = _get(url)
    assert status == 200 and "confirmed" in page and headers["Content-Type"].startswith("text/html")
    mails = mailbox("victim@example.net")
    assert len(mails) == 2 and SPAM in mails[1]["body"]["text"]  # the owner asked for it: it comes
    assert _get(url)[0] == 200 and len(mailbox("victim@example.net")) == 2  # a second click: nothing more

    # Now trusted for this chat: a later request to it is mailed at once.
    again = guest.request({"action": "transcript", "conversation": conv, "id": "relay-2",
                           "email": "victim@example.net"}, "transcript_queued")
    assert again["confirm"] is False and len(mailbox("victim@example.net")) == 3


def test_closing_with_a_transcript_confirms_the_pre_chat_address_first(stack, visitor, agent, mailbox):
    guest, conv = _chat(visitor, agent, "pre@example.org")
    guest.request({"action": "close", "conversation": conv, "transcript": True}, "closed")
    (note,) = mailbox("pre@example.org")
    assert SPAM not in note["body"]["text"]
    assert _get(confirmation_link(note))[0] == 200
    assert SPAM in mailbox("pre@example.org")[1]["body"]["text"]


def test_bad_tampered_and_expired_links_confirm_nothing(stack, visitor, agent, mailbox):
    guest, conv = _chat(visitor, agent, "late@example.org")
    guest.request({"action": "transcript", "conversation": conv, "id": "late-1"}, "transcript_queued")
    url = confirmation_link(mailbox("late@example.org")[0])
    base = url.rsplit("/", 1)[0]
    payload, mac = url.rsplit("/", 1)[1].split(".")
    assert _get(f"{base}/{payload}.{mac[:-2]}AA")[0] == 404
    assert _get(f"{base}/nonsense")[0] == 404
    visitor_token = auth.issue(auth.VISITOR, "someone", "site")  # another purpose's token
    assert _get(f"{base}/{visitor_token}")[0] == 404
    expired = auth.sign(transcripts.CONFIRM, {"c": conv, "h": auth.fingerprint("late@example.org")},
                        ttl=60, now=0)
    status, page, _ = _get(f"{base}/{expired}")
    assert status == 410 and "expired" in page
    assert len(mailbox("late@example.org")) == 1  # still only the confirmation


def test_an_agents_request_is_trusted_at_once(stack, visitor, agent, mailbox):
    console = agent()
    guest = visitor()
    guest.send({"action": "start", "email": "omar@example.org"})
    conv = guest.expect("conversation")["conversation"]
    console.expect("assigned", conversation=conv)
    guest.say(conv, "Thanks for the refund")
    queued = console.request({"action": "transcript", "conversation": conv, "id": "agent-1"},
                             "transcript_queued")
    assert queued["confirm"] is False
    (mail_,) = mailbox("omar@example.org")
    assert "Thanks for the refund" in mail_["body"]["text"]


def _network_key() -> str:
    return limits.MAILS_PER_NETWORK.counter_key(auth.fingerprint("127.0.0.1"))


def test_the_network_budget_refuses_with_retry_after(stack, visitor, agent, app_settings, mailbox):
    CounterModel(_network_key()).delete()
    app_settings(mail_per_network_per_hour=3)
    try:
        guest, conv = _chat(visitor, agent, "net@example.org")
        guest.request({"action": "transcript", "conversation": conv, "id": "net-one"}, "transcript_queued")
        refused = guest.request({"action": "transcript", "conversation": conv, "id": "net-two",
                                 "email": "other@example.org", "ref": "r2"}, "error")
        assert refused["code"] == "rate_limited" and 0 < refused["retry_after"] <= 3600
        assert refused["ref"] == "r2" and "network" in refused["message"]
        assert mailbox("other@example.org") == []
    finally:
        CounterModel(_network_key()).delete()


def test_the_site_budget_refuses_over_rest_with_retry_after(stack, site, app_settings, address_counters):
    app_settings(mail_per_site_per_hour=3)  # one offline message is two mails
    doc = {"site": site, "email": "s@example.org", "text": "hello"}
    assert rest(stack.gateway.http_url, "POST", "/offline", doc)[0] == 202
    request = urllib.request.Request(f"{stack.gateway.http_url}/api/offline", method="POST",
                                     headers={"Content-Type": "application/json"},
                                     data=b'{"site": "%s", "email": "s@example.org", "text": "again"}'
                                     % site.encode())
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 429
    retry = int(refused.value.headers["Retry-After"])
    import json

    body = json.loads(refused.value.read())
    assert body["code"] == "rate_limited" and body["retry_after"] == retry and 0 < retry <= 3600


def test_the_deployment_budget_covers_every_site(stack, visitor, app_settings, mailbox):
    key = limits.MAILS_PER_DEPLOYMENT.counter_key()
    try:
        spent = int(CounterModel.get(key, META, consistent_read=True).hits)
    except CounterModel.DoesNotExist:
        spent = 0
    app_settings(mail_per_deployment_per_hour=spent + 1)
    guest = visitor()
    guest.send({"action": "leave_message", "email": "d@example.org", "text": "hi", "ref": "d1"})
    refused = guest.expect("error")
    assert refused["code"] == "rate_limited" and refused["retry_after"] > 0 and refused["ref"] == "d1"
    assert mailbox("d@example.org") == []


@pytest.mark.parametrize("bad", [
    "tina@example.org\n",  # a trailing newline
    "ti\x07na@example.org",  # a control character
    "ti\x00na@example.org",
    "josé@example.org",  # a non-ASCII local part: SES has no SMTPUTF8
])
def test_addresses_ses_would_refuse_are_refused_up_front(stack, site, visitor, agent, bad, address_counters):
    guest = visitor()
    refused = guest.request({"action": "start", "email": bad, "ref": "s"}, "error")
    assert refused["code"] == "bad_frame"
    status, body = rest(stack.gateway.http_url, "POST", "/offline",
                        {"site": site, "email": bad, "text": "hi"})
    assert status == 400 and body["code"] == "bad_email"
    conv = guest.start()
    asked = guest.request({"action": "transcript", "conversation": conv, "id": "bad-addr", "email": bad,
                           "ref": "t"}, "error")
    assert asked["code"] == "bad_frame"
    assert validate.email_address(bad) is None


def test_an_idna_domain_is_accepted_and_encoded(stack, visitor, agent, mailbox):
    guest, conv = _chat(visitor, agent, "Tina@Bücher.Example")
    stored = ConversationModel.get(conversation_key(conv), META, consistent_read=True)
    assert stored.email == "Tina@xn--bcher-kva.example"
    queued = guest.request({"action": "transcript", "conversation": conv, "id": "idna-1"},
                           "transcript_queued")
    assert queued["email"] == "Tina@xn--bcher-kva.example"
    (note,) = mailbox("Tina@xn--bcher-kva.example")
    assert note["destination"]["to"] == ["Tina@xn--bcher-kva.example"]


def test_a_cut_transcript_and_digest_say_so(stack, site, visitor, agent, monkeypatch, mailbox):
    monkeypatch.setattr(offline, "TRANSCRIPT_LIMIT", 3)
    console = agent()
    guest = visitor()
    guest.send({"action": "start", "email": "long@example.org"})
    conv = guest.expect("conversation")["conversation"]
    console.expect("assigned", conversation=conv)
    for n in range(5):
        guest.say(conv, f"line {n}")
    console.request({"action": "transcript", "conversation": conv, "id": "long-1"}, "transcript_queued")
    (cut,) = mailbox("long@example.org")
    assert "line 2" in cut["body"]["text"] and "line 3" not in cut["body"]["text"]
    assert "and 2 more messages not included" in cut["body"]["text"]

    # A digest of a waiting chat on a site with nobody on shift, cut the same way.
    clock = Clock(monkeypatch, 10**13)
    console.request({"action": "shift", "on": False}, "shift")
    waiting = visitor()
    conv2 = waiting.start()
    for n in range(5):
        waiting.say(conv2, f"waiting {n}")
    clock.advance(config.settings().digest_quiet_seconds + 1)
    offline.sweep_digests(sites.get(site))
    digests = [e for e in mailbox(config.settings().team_email) if "waiting 0" in e["body"]["text"]]
    assert len(digests) == 1 and "waiting 3" not in digests[0]["body"]["text"]
    said = "more messages not included here; see the conversation in the console"
    assert said in digests[0]["body"]["text"]


# Queue records exactly as the code before typed jobs wrote them (and as may still wait on a
# queue or in its dead-letter queue during a deploy): each must read back as its job, and a
# job must write exactly these bytes.
QUEUED_BEFORE = {
    '{"kind":"offline","id":"m1a2b3"}': mail.OfflineJob("m1a2b3"),
    '{"kind":"digest","conv":"c1a2b3c4","after":0,"upto":7}': mail.DigestJob("c1a2b3c4", 0, 7),
    '{"kind":"reply","conv":"c1a2b3c4","seq":4}': mail.ReplyJob("c1a2b3c4", 4),
    '{"kind":"waiting_by_email","conv":"c1a2b3c4"}': mail.WaitingByEmailJob("c1a2b3c4"),
    '{"kind":"transcript","conv":"c1a2b3c4"}': mail.TranscriptJob("c1a2b3c4"),
    '{"kind":"transcript","conv":"c1a2b3c4","rid":"req-one"}': mail.TranscriptJob("c1a2b3c4", "req-one"),
    '{"kind":"confirm","conv":"c1a2b3c4","rid":"req-one"}': mail.ConfirmJob("c1a2b3c4", "req-one"),
    '{"kind":"confirm","conv":"c1a2b3c4"}': mail.ConfirmJob("c1a2b3c4", None),
}


def test_mail_jobs_read_and_write_the_records_already_queued():
    for body, job in QUEUED_BEFORE.items():
        assert mail.decode(body) == job, body
        assert mail.encode(job) == body
    assert mail.encode(mail.TranscriptJob("c1a2b3c4", "")) == '{"kind":"transcript","conv":"c1a2b3c4"}'
    assert mail.decode('{"kind":"transcript","conv":"c1a2b3c4","rid":""}').rid is None
    # Every kind is covered above, and the consumer has one handler per job type.
    assert set(mail.JOBS) == {json.loads(body)["kind"] for body in QUEUED_BEFORE}
    assert set(offline.HANDLERS) == set(mail.JOBS.values())
    with pytest.raises(ValueError, match="unknown mail job"):  # retried, then dead-lettered
        mail.decode('{"kind":"fax","conv":"c1a2b3c4"}')
    with pytest.raises(KeyError):  # a record missing a field is not sent about "None"
        mail.decode('{"kind":"reply","conv":"c1a2b3c4"}')
