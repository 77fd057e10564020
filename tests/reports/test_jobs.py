"""The daily job aggregates the previous local day from that day's events only; running it twice changes nothing."""

from datetime import UTC, date, datetime

import pytest
from pynamodb.exceptions import QueryError

from reports import services
from reports.jobs import aggregate_daily, every_minute
from reports.models import DailyStats
from reports.services import audit_record
from tests.faults import ERROR, inject

ALWAYS = 100  # every Query and each of its retries is throttled

# EventBridge fires cron(10 15 * * ? *) at 15:10 UTC, which is 00:10 in Tokyo on the next day.
FIRED = {"detail-type": "Scheduled Event", "time": "2026-11-28T15:10:00Z"}


def _record(action: str, at: datetime, outcome: str = "ok") -> None:
    audit_record(action=action, actor="user:a", subject="s", outcome=outcome, now=at)


def test_aggregates_the_previous_local_day_only():
    _record("transfer.created", datetime(2026, 11, 27, 15, 0, tzinfo=UTC))  # 28th 00:00 Tokyo
    _record("transfer.created", datetime(2026, 11, 28, 14, 59, tzinfo=UTC))  # 28th 23:59 Tokyo
    _record("code.failed", datetime(2026, 11, 28, 3, 0, tzinfo=UTC), outcome="refused")
    _record("transfer.created", datetime(2026, 11, 27, 14, 59, tzinfo=UTC))  # 27th in Tokyo: not counted
    _record("transfer.created", datetime(2026, 11, 28, 15, 5, tzinfo=UTC))  # 29th in Tokyo: not counted

    result = aggregate_daily(FIRED, None)

    assert result == {"day": "2026-11-28", "events_read": 3}
    stats = DailyStats.get("2026-11-28", "all")
    assert stats.status == "ok"
    assert stats.figures["by_action"] == {"code.failed.refused": 1, "transfer.created.ok": 2}


def test_running_twice_gives_the_same_figures():
    _record("transfer.created", datetime(2026, 11, 28, 1, 0, tzinfo=UTC))
    aggregate_daily(FIRED, None)
    first = DailyStats.get("2026-11-28", "all").figures
    aggregate_daily(FIRED, None)
    again = DailyStats.get("2026-11-28", "all").figures
    assert again == first
    assert again["events"] == 1
    assert again["transfers_sent"] == 1
    assert again["by_action"] == {"transfer.created.ok": 1}


def test_a_throttled_day_is_recorded_as_failed_and_raised_for_lambda_to_retry():
    _record("transfer.created", datetime(2026, 11, 28, 1, 0, tzinfo=UTC))
    with inject(ERROR, service="dynamodb", operation="Query", times=ALWAYS), pytest.raises(QueryError):
        aggregate_daily(FIRED, None)
    stats = DailyStats.get("2026-11-28", "all")
    assert stats.status == "failed"
    assert "Throttling" in stats.error
    aggregate_daily(FIRED, None)  # Lambda's retry
    stats = DailyStats.get("2026-11-28", "all")
    assert (stats.status, stats.figures["events"], stats.error) == ("ok", 1, None)


def test_a_failing_rerun_keeps_the_good_figures_and_notes_the_failure():
    _record("transfer.created", datetime(2026, 11, 28, 1, 0, tzinfo=UTC))
    aggregate_daily(FIRED, None)
    good = DailyStats.get("2026-11-28", "all")
    with inject(ERROR, service="dynamodb", operation="Query", times=ALWAYS), pytest.raises(QueryError):
        aggregate_daily(FIRED, None)
    kept = DailyStats.get("2026-11-28", "all")
    assert (kept.status, kept.figures, kept.computed_at) == ("ok", good.figures, good.computed_at)
    assert kept.error.startswith("Last re-run failed at ") and "Throttling" in kept.error
    from reports.selectors import days_figures

    (shown,) = days_figures([date(2026, 11, 28)])  # what the admin's reports show
    assert (shown.status, shown.figures["transfers_sent"]) == ("ok", 1)


def test_an_error_retrying_cannot_fix_is_logged_and_not_retried(monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise TypeError("a bug")  # Zappa would call the job again with fewer arguments if this escaped

    monkeypatch.setattr(services.AuditEvent.by_day, "query", broken)
    assert aggregate_daily(FIRED, None) == {"error": "TypeError", "retried": False}
    assert DailyStats.get("2026-11-28", "all").status == "failed"
    assert any(r.getMessage() == "job.failed" and r.retried is False for r in caplog.records)


def test_backfill_uses_the_same_service():
    _record("x", datetime(2026, 11, 1, 1, 0, tzinfo=UTC))
    built = services.daily_stats_rebuild(day=date(2026, 11, 1))
    assert built.events_read == 1


def test_backfill_command_rebuilds_each_day_of_the_range():
    from io import StringIO

    from django.core.management import call_command

    _record("x", datetime(2026, 11, 2, 1, 0, tzinfo=UTC))
    _record("x", datetime(2026, 11, 2, 2, 0, tzinfo=UTC))
    out = StringIO()
    call_command("aggregate_days", "2026-11-01", "2026-11-03", stdout=out)
    assert out.getvalue().splitlines() == ["2026-11-01  0 events", "2026-11-02  2 events", "2026-11-03  0 events"]
    assert DailyStats.get("2026-11-02", "all").figures["events"] == 2


def test_backfill_command_refuses_a_reversed_range():
    from django.core.management import call_command
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="before the first"):
        call_command("aggregate_days", "2026-11-03", "2026-11-01")


# --- The minute job: the chainer, then the outbox -------------------------------------------------------------


class _LambdaContext:
    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def _unsent_mail(key: str = "notice:1") -> None:
    from transfers.outbox import outbox_item

    outbox_item(key=key, kind="notice", to="bob@example.com", subject="Hello", body="Hi", now=datetime.now(UTC)).save()


def test_every_minute_links_new_events_and_sends_due_mails():
    from django.core import mail

    from reports.chain import audit_chain_verify
    from reports.models import AuditEvent

    _record("transfer.created", datetime.now(UTC))
    _unsent_mail()
    result = every_minute({"detail-type": "Scheduled Event"}, _LambdaContext(30_000))
    assert (result["linked"], result["mails_sent"]) == (1, 1)
    assert [m.to for m in mail.outbox] == [["bob@example.com"]]
    events = {e.action: e for e in AuditEvent.scan()}
    assert events["transfer.created"].seq == 1
    assert events["mail.sent"].seq is None  # written after this minute's chaining: the next minute links it
    assert every_minute({}, _LambdaContext(30_000))["linked"] == 1
    assert audit_chain_verify().ok


def test_every_minute_starts_nothing_when_the_lambda_has_no_time_left():
    from django.core import mail

    _record("transfer.created", datetime.now(UTC))
    _unsent_mail()
    result = every_minute({}, _LambdaContext(3_000))  # less than the safety margin
    assert (result["linked"], result["chain_complete"], result["outbox_complete"]) == (0, False, False)
    assert mail.outbox == []
    again = every_minute({}, None)  # the next minute (locally: no context, no limit)
    assert (again["linked"], again["mails_sent"]) == (1, 1)


def test_a_throttled_minute_is_raised_for_lambda_to_retry_and_the_mails_still_go():
    from django.core import mail

    _record("transfer.created", datetime.now(UTC))
    _unsent_mail()
    with (
        inject(ERROR, service="dynamodb", operation="BatchGetItem", times=ALWAYS),
        pytest.raises(Exception) as raised,
    ):
        every_minute({}, None)
    from reports.jobs import transient

    assert transient(raised.value)
    assert len(mail.outbox) == 1
