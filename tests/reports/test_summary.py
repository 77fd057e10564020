"""The daily summary mail: sent once per day to compliance staff after the aggregation, with the day's figures
and anomalies measured against the previous 30 days."""

from datetime import UTC, date, datetime, timedelta

import pytest

from reports.jobs import aggregate_daily
from reports.models import DailyStats
from reports.services import audit_record
from reports.summary import day_anomalies

FIRED = {"detail-type": "Scheduled Event", "time": "2026-11-28T15:10:00Z"}  # aggregates 28 November
DAY = date(2026, 11, 28)


def _history(**figures):
    for n in range(1, 31):
        DailyStats(
            day=(DAY - timedelta(days=n)).isoformat(),
            scope="all",
            status="ok",
            figures={"failed_codes": 1, "failed_signins": 0, "domains": ["partner.example"], **figures},
            computed_at=datetime.now(UTC),
        ).save()


@pytest.fixture
def busy_day(settings):
    settings.FXFER_COMPLIANCE_SUMMARY_TO = ["carol@corp.example", "dave@corp.example"]
    settings.FXFER_COMPLIANCE_LARGE_TRANSFER_BYTES = 1000
    _history()
    at = datetime(2026, 11, 28, 3, tzinfo=UTC)
    for _ in range(6):
        audit_record(action="code.failed", actor="guest:r", subject="transfer:t1", outcome="refused", now=at)
    audit_record(
        action="transfer.created",
        actor="user:a",
        subject="transfer:big",
        details={"recipients": ["x@partner.example", "y@new-customer.example"], "total_bytes": 5000, "files": [{}]},
        now=at,
    )


def test_the_summary_is_mailed_once_with_figures_and_anomalies(busy_day, mailoutbox):
    aggregate_daily(FIRED, None)
    [mail] = mailoutbox
    assert mail.to == ["carol@corp.example", "dave@corp.example"]
    assert mail.subject == "fxfer daily summary 2026-11-28: 3 to look at"
    assert "Transfers sent: 1" in mail.body
    assert "Failed one-time codes: 6" in mail.body
    assert "6 failed one-time codes (30-day median 1)" in mail.body
    assert "Large transfer big: 4.9 KB" in mail.body
    assert "New external domain: new-customer.example" in mail.body
    assert "New external domain: partner.example" not in mail.body
    assert "/admin/reports/daily/?day=2026-11-28" in mail.body

    aggregate_daily(FIRED, None)  # a retried or repeated job
    assert len(mailoutbox) == 1


def test_an_ordinary_day_has_nothing_to_look_at():
    _history(failed_codes=4)
    assert day_anomalies(day=DAY, figures={"failed_codes": 6, "domains": ["partner.example"]}) == ()


def test_no_mail_without_recipients(settings, mailoutbox):
    settings.FXFER_COMPLIANCE_SUMMARY_TO = []
    aggregate_daily(FIRED, None)
    assert mailoutbox == []


def test_a_failed_send_is_retried_by_the_outbox_and_never_sent_twice(busy_day, mailoutbox, settings):
    from reports.models import AuditEvent
    from tests.faults import ERROR, inject
    from transfers.models import MAIL_PENDING, OutboxMail
    from transfers.outbox import outbox_retry

    settings.EMAIL_BACKEND = "fxfer.mail.SESBackend"
    with inject(ERROR, service="ses", operation="SendRawEmail", times=10):
        aggregate_daily(FIRED, None)  # the figures are in; the mail waits in the outbox
    [mail] = [m for m in OutboxMail.scan() if m.kind == "summary"]
    assert (mail.status, mail.last_error) == (MAIL_PENDING, "Throttling")
    aggregate_daily(FIRED, None)  # a repeated run: the same mail, tried again, not a second one
    outbox_retry(now=mail.next_attempt_at)  # the minute job's retry
    [mail] = [m for m in OutboxMail.scan() if m.kind == "summary"]
    assert mail.status == "sent"
    assert [e.outcome for e in AuditEvent.scan() if e.action == "mail.sent"] == ["ok"]
    assert outbox_retry(now=mail.next_attempt_at + timedelta(hours=1)).tried == 0
