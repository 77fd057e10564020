"""An SES bounce notification under every fault at every AWS call it makes (tests/faults.py), then what runs next
in production: Lambda's retry of the event (or SNS delivering it again) and the outbox's retry job. Invariants:
the guest's mail ends bounced with exactly one "mail.bounced" event; the sender gets exactly one notice (one
outbox item, one "mail.sent" event; SES itself may take it twice after a lost answer, the outbox's accepted
duplicate); a run that did not record the bounce raised, so Lambda retries it; the audit chain verifies."""

import itertools
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy

import pytest
from django.conf import settings
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from reports.chain import audit_chain_link, audit_chain_verify
from reports.models import AuditEvent
from tests.faults import sweep_faults
from tests.transfers.conftest import sent_link_mail
from transfers.models import MAIL_BOUNCED, MAIL_SENT, OutboxMail
from transfers.notifications import on_ses_notification, ses_bounce_message, sns_event
from transfers.outbox import outbox_retry

SENDER = "alice@corp.example"
_numbers = itertools.count()


@pytest.fixture(autouse=True)
def through_ses(settings):
    """Mail goes through (in-process) SES: bounces name the message ids SES gave."""
    settings.EMAIL_BACKEND = "fxfer.mail.SESBackend"


def _released_transfer_with_link_mail() -> dict:
    """A transfer whose link mail to its guest SES accepted (the outbox sent it), and SES's bounce of it."""
    n = next(_numbers)
    now = datetime.now(UTC)
    transfer_id, guest = f"t-bounce-{n}", f"nobody-{n}@partner.example"
    key, message_id = sent_link_mail(
        transfer_id=transfer_id,
        to=guest,
        now=now,
        owner_id="u-alice",
        owner_email=SENDER,
        owner_name="Alice",
        subject=f"Figures {n}",
    )
    event = sns_event(ses_bounce_message(message_id=message_id, to=guest, bounce_subtype="NoEmail"))
    return {"transfer_id": transfer_id, "guest": guest, "link_key": key, "event": event}


def _recorded(state: dict) -> dict:
    """What is committed for this bounce: the mail's status, its events, the sender's notices."""
    subject = f"transfer:{state['transfer_id']}"
    events = list(AuditEvent.by_subject.query(subject))
    notices = [m for m in OutboxMail.by_parent.query(state["transfer_id"]) if m.kind == "bounce_notice"]
    return {
        "status": OutboxMail.get(state["link_key"], consistent_read=True).status,
        "bounced_events": [e for e in events if e.action == "mail.bounced"],
        "notice_sent_events": [
            e for e in events if e.action == "mail.sent" and (e.details or {}).get("kind") == "bounce_notice"
        ],
        "notices": notices,
    }


def _notices_ses_took(guest: str) -> int:
    backend = ses_backends[DEFAULT_ACCOUNT_ID][settings.AWS_SES_REGION_NAME]
    count = 0
    for message in backend.sent_messages:
        if set(message.destinations) != {SENDER}:
            continue
        parsed = message_from_bytes(message.raw_data.encode("utf-8", "surrogateescape"), policy=policy.default)
        count += f"Mail to {guest} could not be delivered" == str(parsed["subject"])
    return count


def _act(state: dict) -> dict:
    on_ses_notification(state["event"], None)
    recorded = _recorded(state)
    return {"complete": recorded["status"] == MAIL_BOUNCED and len(recorded["notices"]) == 1}


def _heal(state: dict) -> None:
    on_ses_notification(state["event"], None)  # Lambda's retry after a failure, or SNS delivering it twice
    outbox_retry(now=datetime.now(UTC) + timedelta(hours=1))  # the outbox's retry job, once claims have lapsed


def _check(state: dict, result, error) -> None:
    assert error is not None or result["complete"], "the handler returned without recording the bounce"
    recorded = _recorded(state)
    assert recorded["status"] == MAIL_BOUNCED, f"the link mail is {recorded['status']}, not bounced"
    assert len(recorded["bounced_events"]) == 1, f"{len(recorded['bounced_events'])} mail.bounced events"
    assert len(recorded["notices"]) == 1, f"{len(recorded['notices'])} notices to the sender"
    assert recorded["notices"][0].status == MAIL_SENT, f"the notice is {recorded['notices'][0].status}"
    assert len(recorded["notice_sent_events"]) == 1, f"{len(recorded['notice_sent_events'])} mail.sent events"
    assert _notices_ses_took(state["guest"]) >= 1, "SES never took the sender's notice"


def test_a_bounce_is_recorded_once_and_the_sender_told_once_whatever_fails():
    calls = sweep_faults("ses bounce", setup=_released_transfer_with_link_mail, act=_act, heal=_heal, check=_check)
    assert ("dynamodb", "TransactWriteItems", 1) in calls  # the one transaction of the bounce
    assert ("ses", "SendRawEmail", 1) in calls  # the sender's notice
    later = datetime.now(UTC) + timedelta(hours=1)
    audit_chain_link(now=later)
    assert audit_chain_verify(now=later).ok


def test_a_persistent_failure_raises_so_lambda_retries_and_the_retry_finishes():
    from tests.faults import PERSISTENT, TIMEOUT, inject

    state = _released_transfer_with_link_mail()
    with inject(TIMEOUT, service="dynamodb", operation="TransactWriteItems", times=PERSISTENT):
        with pytest.raises(Exception, match="Lambda retries"):
            on_ses_notification(state["event"], None)
    assert _recorded(state)["status"] == MAIL_SENT  # nothing recorded yet, and the handler said so

    assert on_ses_notification(state["event"], None)["records"] == [{"outcome": "bounced"}]
    _check(state, {"complete": True}, None)
    assert _notices_ses_took(state["guest"]) == 1
