"""The outbox: a committed mail is sent once, retried while SES is busy, given up with the reason, and never
re-sent forever when recording it fails."""

from datetime import UTC, datetime, timedelta

import pytest

from fxfer.change import Change
from reports.models import AuditEvent
from tests.faults import ERROR, inject
from transfers.models import MAIL_FAILED, MAIL_PENDING, MAIL_SENT, OutboxMail
from transfers.outbox import MAX_ATTEMPTS, OutboxRetried, outbox_retry, outbox_send

NOW = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)


@pytest.fixture
def ses(settings):
    """Mail through SES (moto) rather than Django's locmem backend, so SES can fail."""
    settings.EMAIL_BACKEND = "fxfer.mail.SESBackend"


def _commit(key="notice:1", **extra):
    change = Change(op=f"test:{key}", now=NOW)
    change.mail(key=key, kind=extra.pop("kind", "notice"), to="bob@partner.example", subject="S", body="B", **extra)
    return change.commit(send_mails=False)


def _sent_events():
    return [e for e in AuditEvent.scan() if e.action == "mail.sent"]


def test_a_link_mail_whose_recipient_is_gone_is_still_recorded_as_sent(mailoutbox):
    _commit(key="link:t1:r1:x", kind="link", parent_id="t1", recipient_id="r1")
    assert outbox_send(mail_key="link:t1:r1:x", now=NOW).sent
    assert OutboxMail.get("link:t1:r1:x").status == MAIL_SENT
    assert len(mailoutbox) == 1 and len(_sent_events()) == 1
    assert outbox_retry(now=NOW + timedelta(hours=1)).tried == 0  # nothing left to send again


def test_ses_throttling_is_retried_then_the_mail_goes(ses):
    _commit()
    with inject(ERROR, service="ses", times=10):
        result = outbox_send(mail_key="notice:1", now=NOW)
    assert (result.sent, result.status, result.error) == (False, MAIL_PENDING, "Throttling")
    mail = OutboxMail.get("notice:1")
    assert mail.attempts == 1 and mail.last_error == "Throttling" and mail.next_attempt_at > NOW
    assert outbox_retry(now=NOW).tried == 0  # not due yet
    assert outbox_retry(now=mail.next_attempt_at).sent == 1
    assert OutboxMail.get("notice:1").status == MAIL_SENT
    assert [(e.outcome, e.details["attempts"]) for e in _sent_events()] == [("ok", 2)]


def test_a_mail_ses_keeps_refusing_is_given_up_with_its_reason_and_one_event(ses):
    _commit()
    at = NOW
    with inject(ERROR, service="ses", times=10_000):
        for _ in range(MAX_ATTEMPTS):
            outbox_send(mail_key="notice:1", now=at)
            at = OutboxMail.get("notice:1").next_attempt_at or at
    mail = OutboxMail.get("notice:1")
    assert (mail.status, mail.last_error) == (MAIL_FAILED, "Throttling")
    assert [(e.outcome, e.details["error"]) for e in _sent_events()] == [("failed", "Throttling")]
    assert outbox_retry(now=at + timedelta(days=1)).tried == 0


def test_a_mail_that_cannot_be_recorded_as_sent_stops_after_max_attempts(mailoutbox):
    _commit()
    at = NOW
    with inject(ERROR, service="dynamodb", operation="TransactWriteItems", times=10_000):
        for _ in range(MAX_ATTEMPTS + 3):
            outbox_send(mail_key="notice:1", now=at)
            at += timedelta(minutes=5)  # past each claim
    assert len(mailoutbox) == MAX_ATTEMPTS  # duplicates, as SES has no idempotency key, but bounded
    outbox_send(mail_key="notice:1", now=at)
    assert OutboxMail.get("notice:1").status == MAIL_FAILED


def test_a_lost_answer_on_the_claim_is_recognised_and_the_mail_goes_at_once(mailoutbox):
    from tests.faults import LOST

    _commit()
    with inject(LOST, service="dynamodb", operation="UpdateItem"):
        assert outbox_send(mail_key="notice:1", now=NOW).sent
    assert len(mailoutbox) == 1 and OutboxMail.get("notice:1").status == MAIL_SENT


def test_a_mail_claimed_by_another_sender_is_left_to_it(mailoutbox):
    _commit()
    OutboxMail.get("notice:1").update(actions=[OutboxMail.claimed_until.set(NOW + timedelta(seconds=60))])
    assert not outbox_send(mail_key="notice:1", now=NOW).sent
    assert mailoutbox == []
    assert outbox_send(mail_key="notice:1", now=NOW + timedelta(seconds=61)).sent


def test_the_retry_job_sends_every_due_mail_page_after_page_and_says_when_it_stopped(mailoutbox):
    for number in range(5):
        _commit(key=f"notice:{number}")
    later = NOW + timedelta(minutes=1)
    # A deadline already past: nothing tried, and the run says it did not finish.
    assert outbox_retry(now=later, deadline=datetime.now(UTC) - timedelta(seconds=1), page_size=2) == (
        OutboxRetried(tried=0, sent=0, complete=False)
    )
    # Pages of two: all five go in one run, not the first page's two.
    assert outbox_retry(now=later, page_size=2) == OutboxRetried(tried=5, sent=5, complete=True)
    assert len(mailoutbox) == 5
    assert {OutboxMail.get(f"notice:{n}").status for n in range(5)} == {MAIL_SENT}
