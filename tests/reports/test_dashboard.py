"""The dashboard's "today" (issue 15 item 2): the chainer adds each event it links to its local day's running
totals in the linking transaction, and the dashboard reads those totals and the few events not linked yet. Its
figures are the full tally's (tally(day_events(day))) at every moment: before, during and after linking, across
Tokyo's midnight, after a lost answer, a throttle, a kill or a second chainer at the chainer's transaction, on
the day the totals began; and a dashboard view costs the same DynamoDB calls at 10 events today as at 1,000."""

import contextlib
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from pynamodb.exceptions import PynamoDBException

from reports import aggregation, selectors
from reports.chain import audit_chain_link, audit_chain_verify
from reports.models import AuditChainHead, AuditEvent, DailyRunning
from reports.services import audit_count, audit_event, audit_record, daily_stats_rebuild
from tests.faults import ERROR, KILLED, LOST, PERSISTENT, TIMEOUT, Killed, inject, recording
from transfers.models import KIND_REQUEST, Transfer

TOKYO = ZoneInfo("Asia/Tokyo")
MIDNIGHT = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)  # 00:00 on 29 November in Tokyo
BEFORE, AFTER = date(2026, 11, 28), date(2026, 11, 29)


def _transfer(transfer_id: str, *, kind: str | None = None) -> None:
    extra = {"kind": kind} if kind else {}
    Transfer(
        transfer_id=transfer_id,
        owner_id="u-alice",
        owner_email="alice@corp.example",
        created_at=MIDNIGHT - timedelta(hours=1),
        created_day="2026-11-28",
        expires_at=MIDNIGHT + timedelta(days=7),
        download_limit=3,
        **extra,
    ).save()


def _events_around_midnight() -> None:
    """A mix of what the figures count, some minutes either side of Tokyo's midnight."""
    _transfer("t-sent")
    _transfer("t-asked", kind=KIND_REQUEST)
    for minute in range(-3, 4):
        at = MIDNIGHT + timedelta(minutes=minute, seconds=10)
        audit_record(
            action="transfer.created",
            actor="user:u-alice",
            subject="transfer:t-sent",
            details={"recipients": [f"bob@p{minute % 3}.example", "eve@Q.example"], "files": [{}, {}]},
            now=at,
        )
        audit_record(action="file.verified", actor="system", subject="transfer:t-sent", details={"size": 5}, now=at)
        audit_record(action="file.verified", actor="guest:r1", subject="transfer:t-asked", details={"size": 7}, now=at)
        audit_record(
            action="download.url_issued", actor="guest:r1", subject="transfer:t-sent", details={"size": 5}, now=at
        )
        audit_record(action="code.failed", actor="guest:r1", subject="transfer:t-sent", outcome="refused", now=at)
        audit_record(action="request.created", actor="user:u-alice", subject="transfer:t-asked", now=at)
        for _ in range(3):  # an aggregated event: 3 hits in one minute
            audit_count(action="signin.refused", ip="198.51.100.7", now=at)


def _full(day: date) -> dict:
    return aggregation._shown(aggregation.tally(aggregation.day_events(day)))


def _local_noon(day: date) -> datetime:
    return datetime.combine(day, time(12), tzinfo=TOKYO)


def _assert_matches_full_tally() -> None:
    for day in (BEFORE, AFTER):
        assert aggregation.today_figures(_local_noon(day)) == _full(day), day


def test_today_matches_the_full_tally_before_during_and_after_linking_across_tokyo_midnight():
    _events_around_midnight()
    _assert_matches_full_tally()  # nothing linked: both days counted from their events
    audit_chain_link(now=MIDNIGHT + timedelta(seconds=30))  # the 28th and the 29th's first minute: one transaction
    running = {item.day: item for item in DailyRunning.scan()}
    assert set(running) == {"2026-11-28", "2026-11-29"} and all(item.complete for item in running.values())
    assert aggregation.today_figures(_local_noon(AFTER))["events"] > int(running["2026-11-29"].events)
    _assert_matches_full_tally()  # the 29th: running totals and events still unchained
    audit_chain_link(now=MIDNIGHT + timedelta(hours=1))
    _assert_matches_full_tally()  # everything linked
    figures = aggregation.today_figures(_local_noon(AFTER))
    # 4 minutes of the 29th; the hits of 23:59's minute too (an aggregated event's time is its minute's end).
    assert (figures["files_received"], figures["failed_signins"], figures["external_domains"]) == (4, 15, 4)
    assert audit_chain_verify(now=MIDNIGHT + timedelta(hours=2)).ok
    daily_stats_rebuild(day=AFTER)  # the day's report reads its day's items: the running totals are not one
    report = selectors.day_report(day=AFTER)
    assert report.day.figures["failed_signins"] == 15 and [name for name, _ in report.departments] == ["(none)"]
    assert selectors.month_report(month=AFTER).totals["failed_signins"] == 15


def test_an_event_the_index_still_lists_after_its_linking_is_not_counted_twice(monkeypatch):
    _events_around_midnight()
    stale = list(AuditEvent.by_unchained.query("pending"))  # what a lagging index would still answer
    audit_chain_link(now=MIDNIGHT + timedelta(hours=1))
    monkeypatch.setattr(AuditEvent.by_unchained, "query", lambda *args, **kwargs: iter(stale))
    _assert_matches_full_tally()


@pytest.mark.parametrize(
    ("kind", "times", "nth"),
    [
        (LOST, 1, 1),
        (LOST, 1, 2),
        (TIMEOUT, 1, 1),
        (ERROR, 1, 2),
        (ERROR, PERSISTENT, 1),
        (ERROR, PERSISTENT, 2),
        (LOST, PERSISTENT, 1),
        (KILLED, 1, 1),
    ],
)
def test_a_fault_at_the_chainers_transaction_leaves_the_totals_exact(kind, times, nth, settings):
    _events_around_midnight()
    with inject(kind, service="dynamodb", operation="TransactWriteItems", nth=nth, times=times) as fault:
        try:
            audit_chain_link(now=MIDNIGHT + timedelta(hours=1))
        except (Exception, Killed):
            assert times == PERSISTENT or kind == KILLED  # what botocore's retry absorbs does not surface
    assert fault.fired
    _assert_matches_full_tally()
    audit_chain_link(now=MIDNIGHT + timedelta(hours=1))  # the next minute's run
    assert not list(AuditEvent.by_unchained.query("pending"))
    _assert_matches_full_tally()
    linked = sum(1 for e in AuditEvent.scan() if e.day_shard.startswith("2026-11-29#"))
    assert sum(int(e.count or 1) for e in AuditEvent.scan() if e.day_shard.startswith("2026-11-29#")) == int(
        DailyRunning.get("2026-11-29", "running").events
    )
    assert linked > 0


@pytest.mark.parametrize("nth", [1, 2])  # the events' consistent read; the verified files' transfers
def test_a_read_the_chainer_cannot_make_links_nothing_and_the_next_run_counts_everything_once(nth):
    _events_around_midnight()
    with inject(ERROR, service="dynamodb", operation="BatchGetItem", nth=nth, times=PERSISTENT) as fault:
        with pytest.raises(PynamoDBException):
            audit_chain_link(now=MIDNIGHT + timedelta(hours=1))
    assert fault.fired and not list(DailyRunning.scan())
    audit_chain_link(now=MIDNIGHT + timedelta(hours=1))
    _assert_matches_full_tally()


@pytest.mark.parametrize(("operation", "nth"), [("Query", 1), ("BatchGetItem", 1), ("BatchGetItem", 2)])
def test_a_throttled_read_of_the_dashboard_is_retried_and_counts_the_same(operation, nth):
    _events_around_midnight()
    audit_chain_link(now=MIDNIGHT + timedelta(seconds=30))
    expected = _full(AFTER)
    with inject(ERROR, service="dynamodb", operation=operation, nth=nth) as fault:
        assert aggregation.today_figures(_local_noon(AFTER)) == expected
    assert fault.fired


def test_two_chainers_at_once_count_each_event_once():
    _events_around_midnight()
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda _: audit_chain_link(now=MIDNIGHT + timedelta(hours=1)), range(2)))
    assert not list(AuditEvent.by_unchained.query("pending"))
    _assert_matches_full_tally()


def test_a_backlog_over_many_days_is_linked_within_the_transaction_limit():
    start = datetime(2026, 9, 1, 3, tzinfo=UTC)
    days = [start + timedelta(days=n) for n in range(60)]  # one event a day: 3 items each in one transaction
    for at in days:
        audit_record(action="transfer.created", actor="user:a", subject="transfer:t", details={"files": [{}]}, now=at)
    with recording() as calls:
        assert audit_chain_link(now=days[-1] + timedelta(hours=1)).linked == 60
    assert [op for _, op in calls.calls].count("TransactWriteItems") >= 2
    for at in days:
        assert aggregation.today_figures(at)["files"] == 1 == _full(at.astimezone(TOKYO).date())["files"]


def test_on_the_day_the_totals_begin_the_dashboard_counts_the_day():
    """A chain that was linked before the chainer kept totals: that day's totals miss its earlier events, so
    the dashboard counts the day; from the next day on it reads the totals."""
    _events_around_midnight()
    audit_chain_link(now=MIDNIGHT + timedelta(minutes=1))
    head = AuditChainHead.get("main")
    head.running_since = None  # as the chain head of an earlier version is
    head.save()
    for item in DailyRunning.scan():
        item.delete()
    audit_chain_link(now=MIDNIGHT + timedelta(hours=1))  # links the rest of the 29th: its totals miss a minute
    assert DailyRunning.get("2026-11-29", "running").complete is False
    _assert_matches_full_tally()
    assert (
        AuditChainHead.get("main").running_since
        == (datetime.now(UTC).astimezone(TOKYO).date() + timedelta(1)).isoformat()
    )


# --- What a dashboard view reads --------------------------------------------------------------------------


def _day_of_events(count: int, *, now: datetime) -> None:
    """`count` events linked today and five not yet linked, all within the last minute of today (local)."""
    midnight = datetime.combine(now.astimezone(TOKYO).date(), time(), tzinfo=TOKYO)
    first = max(now - timedelta(minutes=1), midnight.astimezone(UTC))
    span = (now - first) / (count + 10)
    with AuditEvent.batch_write() as batch:
        for n in range(count):
            batch.save(
                audit_event(
                    action="download.url_issued",
                    actor="guest:r1",
                    subject=f"transfer:t{n}",
                    details={"size": 10},
                    now=first + span * n,
                )
            )
    audit_chain_link(now=first + span * (count + 1))
    for n in range(5):
        audit_record(
            action="code.failed", actor="guest:r1", subject="transfer:t0", outcome="refused", now=now - span * (4 - n)
        )


@contextlib.contextmanager
def _dynamodb_reads():
    """Every DynamoDB call made inside, as (operation, table or index, items it returned), read where moto
    answers (below botocore, as tests/faults.py does)."""
    from moto.core.botocore_stubber import BotocoreStubber

    reads, original = [], BotocoreStubber.__call__

    def answer(self, event_name, request, **kwargs):
        response = original(self, event_name, request, **kwargs)
        if ".dynamodb." in event_name and response is not None:
            operation = event_name.rsplit(".", 1)[1]
            sent, body = json.loads(request.body or b"{}"), json.loads(response.content or b"{}")
            where = sent.get("IndexName") or sent.get("TableName") or ",".join(sent.get("RequestItems", ()))
            items = body.get("Count", 1 if "Item" in body else 0)
            items += sum(len(found) for found in body.get("Responses", {}).values() if isinstance(found, list))
            reads.append((operation, where.rsplit("-", 1)[-1], items))
        return response

    BotocoreStubber.__call__ = answer
    try:
        yield reads
    finally:
        BotocoreStubber.__call__ = original


def _dashboard_reads(officer, count: int) -> list[tuple[str, str, int]]:
    now = datetime.now(UTC)
    _day_of_events(count, now=now)
    with _dynamodb_reads() as reads:
        page = officer.get("/admin/")
    assert page.status_code == 200
    figures = aggregation.today_figures(now)
    assert (figures["downloads"], figures["failed_codes"], figures["bytes_downloaded"]) == (count, 5, 10 * count)
    assert figures == _full(now.astimezone(TOKYO).date())
    return reads


def test_a_dashboard_view_reads_as_much_at_1000_events_today_as_at_10(officer):
    few = _dashboard_reads(officer, 10)
    for event in AuditEvent.scan():  # a new day, a hundred times busier
        event.delete()
    for item in DailyRunning.scan():
        item.delete()
    many = _dashboard_reads(officer, 1000)
    assert many == few
    # The session and its user, the 5 events not linked yet (once: all are newer than the last link), the running
    # totals and the 30 days before: no Query of the day's events (the by-day index), no second read of an event.
    assert sum(items for *_, items in many) == 8
    assert not [read for read in many if read[1] == "day" or read[:2] == ("BatchGetItem", "events")]
