"""The scheduled jobs under every fault at every AWS call (tests/faults.py): the daily aggregation (a first
run, and a re-run over a day that already has good figures) and the minute job (the chainer, then the outbox
retry).

Invariants: a day with good figures never loses them, whatever a re-run meets, and a failed first run shows as
failed (or, when even recording that failed, as not aggregated), never as good figures; every failure the job
raises is one Lambda may retry (transient), and the next run heals it. The minute job leaves no event
unchained and no mail unsent once the next minutes have run, each mail accepted by SES with exactly one
"mail.sent" event, and the chain verifies.

    make fault-matrix        (or FXFER_FAULT_MATRIX=fault-matrix.md python -m pytest -p no:xdist tests/reliability)
"""

import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from fxfer.change import Change
from reports.chain import audit_chain_link
from reports.jobs import aggregate_daily, every_minute, transient
from reports.models import AuditEvent, DailyStats
from reports.services import audit_record, daily_stats_rebuild
from tests.faults import Killed, sweep_faults
from tests.reliability.chain import chain_verifies
from transfers.models import MAIL_SENT, OutboxMail
from transfers.outbox import outbox_item

_n = itertools.count()
TOKYO = ZoneInfo("Asia/Tokyo")


@pytest.fixture(autouse=True)
def _through_ses(settings):
    """Mail goes through (moto's) SES, so SES faults are injected like any other AWS call."""
    settings.EMAIL_BACKEND = "fxfer.mail.SESBackend"


class _LambdaContext:
    def get_remaining_time_in_millis(self) -> int:
        return 30_000


# --- The daily aggregation -----------------------------------------------------------------------------------


def _new_day(*, events: int) -> dict:
    day = date(2026, 1, 1) + timedelta(days=next(_n))
    for hour in range(events):
        at = datetime.combine(day, time(9 + hour), tzinfo=TOKYO).astimezone(UTC)
        audit_record(action="transfer.created", actor="user:a", subject=f"transfer:{day}-{hour}", now=at)
    fired = datetime.combine(day + timedelta(days=1), time(0, 10), tzinfo=TOKYO).astimezone(UTC)
    return {"day": day, "event": {"detail-type": "Scheduled Event", "time": fired.isoformat()}, "events": events}


def _stats(day: date) -> DailyStats | None:
    try:
        return DailyStats.get(day.isoformat(), "all", consistent_read=True)
    except DailyStats.DoesNotExist:
        return None


def _first_run_setup() -> dict:
    return _new_day(events=3)


def _rerun_setup() -> dict:
    state = _new_day(events=3)
    daily_stats_rebuild(day=state["day"])  # last night's good figures
    at = datetime.combine(state["day"], time(20), tzinfo=TOKYO).astimezone(UTC)
    audit_record(action="transfer.created", actor="user:a", subject="transfer:late", now=at)
    state["events"] = 4
    return state


def _aggregate(state: dict):
    return aggregate_daily(state["event"], _LambdaContext())


def _aggregation_check(state: dict, result, error) -> None:
    if error is not None:
        # Killed: the Lambda died (a timeout or crash), and Lambda retries the event.
        assert isinstance(error, Killed) or transient(error), f"a {type(error).__name__} Lambda would retry in vain"
    else:
        assert "error" not in result, f"the job swallowed {result}"
    stats = _stats(state["day"])
    assert stats is not None and stats.status == "ok", "the next run did not heal the day"
    assert stats.figures["events"] == state["events"] and stats.figures["transfers_sent"] == state["events"]
    assert stats.error is None


def _aggregation_heal(state: dict) -> None:
    stats = _stats(state["day"])
    good_before = state["events"] == 4
    if good_before:
        assert stats is not None and stats.status == "ok", "a failed re-run replaced the good figures"
        assert stats.figures["events"] in (3, 4)
    elif stats is not None and stats.status == "ok":
        assert stats.figures["events"] == 3, "figures from an incomplete read"
    _aggregate(state)  # tomorrow's run, or Lambda's retry


def test_daily_aggregation_first_run():
    sweep_faults(
        "daily aggregation", setup=_first_run_setup, act=_aggregate, check=_aggregation_check, heal=_aggregation_heal
    )


def test_daily_aggregation_rerun_keeps_good_figures():
    sweep_faults(
        "daily aggregation re-run",
        setup=_rerun_setup,
        act=_aggregate,
        check=_aggregation_check,
        heal=_aggregation_heal,
    )


# --- The minute job: the chainer, then the outbox retry ----------------------------------------------------


def _minute_setup() -> dict:
    n = next(_n)
    now = datetime.now(UTC)
    for k in range(3):
        change = Change(op=f"minute-test:{n}:{k}", now=now)
        change.audit("thing.made", actor="user:a", subject=f"transfer:m{n}", k=k)
        change.commit(send_mails=False)
    to = f"minute{n}@partner.example"
    outbox_item(key=f"notice:m{n}", kind="notice", to=to, subject="Hello", body="Hi", now=now, parent_id=f"m{n}").save()
    return {"n": n, "to": to, "key": f"notice:m{n}", "subject": f"transfer:m{n}"}


def _minute_act(state: dict):
    return every_minute({"detail-type": "Scheduled Event"}, _LambdaContext())


def _minute_heal(state: dict) -> None:
    from transfers.outbox import outbox_retry

    later = datetime.now(UTC) + timedelta(hours=6)  # the next minutes, past every claim and retry delay
    audit_chain_link(now=later)
    outbox_retry(now=later)
    audit_chain_link(now=later + timedelta(minutes=1))  # the minute after: links the mails' own events


def _accepted(to: str) -> int:
    from django.conf import settings

    sent = ses_backends[DEFAULT_ACCOUNT_ID][settings.AWS_SES_REGION_NAME].sent_messages
    return sum(1 for m in sent if to in m.destinations)


def _minute_check(state: dict, result, error) -> None:
    if error is not None:
        # Killed: the Lambda died (a timeout or crash), and Lambda retries the event.
        assert isinstance(error, Killed) or transient(error), f"a {type(error).__name__} Lambda would retry in vain"
    else:
        assert "error" not in result, f"the job swallowed {result}"
    assert OutboxMail.get(state["key"], consistent_read=True).status == MAIL_SENT, "a mail was never sent"
    assert _accepted(state["to"]) >= 1, "marked sent, but SES never accepted it"
    sent_events = [e for e in AuditEvent.scan(AuditEvent.subject == state["subject"]) if e.action == "mail.sent"]
    assert len(sent_events) == 1, f"{len(sent_events)} mail.sent events"
    assert not list(AuditEvent.by_unchained.query("pending")), "an event was left unchained"
    chain_verifies(datetime.now(UTC) + timedelta(hours=6, minutes=1))


def test_minute_job_chainer_and_outbox_retry():
    sweep_faults("minute job", setup=_minute_setup, act=_minute_act, check=_minute_check, heal=_minute_heal)
