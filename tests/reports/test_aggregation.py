"""The daily figures, company-wide and per department, from the day's events only; idempotent; backfilled by
command; a failed day shows in the admin; daily and monthly reports with CSV."""

import csv
import io
from datetime import UTC, date, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command

from reports import services
from reports.models import AuditEvent, DailyStats
from reports.services import audit_record, daily_stats_rebuild
from tests.reports.conftest import make_user
from transfers.models import Transfer

DAY = date(2026, 11, 28)


def _at(hour: int) -> datetime:
    return datetime(2026, 11, 28, hour, tzinfo=UTC)  # 28 November in Tokyo for hours 0-14


def _transfer(transfer_id: str, owner_id: str) -> None:
    Transfer(
        transfer_id=transfer_id,
        owner_id=owner_id,
        owner_email="x@corp.example",
        created_at=_at(0),
        created_day="2026-11-28",
        expires_at=_at(0) + timedelta(days=7),
        download_limit=3,
    ).save()


@pytest.fixture
def day_of_events(alice):
    bob = make_user("bob@corp.example", roles=["employee"], department="Legal")
    _transfer("t-alice", alice.user_id)
    _transfer("t-bob", bob.user_id)
    a, b = f"user:{alice.user_id}", f"user:{bob.user_id}"
    audit_record(
        action="transfer.created",
        actor=a,
        subject="transfer:t-alice",
        details={"recipients": ["x@partner.example", "y@PARTNER.example"], "files": [{}, {}], "total_bytes": 300},
        now=_at(1),
    )
    audit_record(action="file.verified", actor="system", subject="transfer:t-alice", details={"size": 100}, now=_at(1))
    audit_record(action="file.verified", actor="system", subject="transfer:t-alice", details={"size": 200}, now=_at(1))
    audit_record(
        action="transfer.created",
        actor=b,
        subject="transfer:t-bob",
        details={"recipients": ["z@other.example"], "files": [{}], "total_bytes": 50},
        now=_at(2),
    )
    audit_record(
        action="download.url_issued", actor="guest:r1", subject="transfer:t-alice", details={"size": 100}, now=_at(3)
    )
    audit_record(
        action="download.url_issued", actor="guest:r1", subject="transfer:t-alice", outcome="refused", now=_at(3)
    )
    audit_record(action="code.failed", actor="guest:r2", subject="transfer:t-bob", outcome="refused", now=_at(4))
    audit_record(action="signin.failed", actor="anonymous", subject="saml", outcome="failed", now=_at(5))
    audit_record(action="signin.refused", actor="user:nobody", subject="saml", outcome="refused", now=_at(5))
    audit_record(action="request.created", actor=b, subject="request:q1", now=_at(6))
    audit_record(action="transfer.created", actor=a, subject="transfer:t-other-day", now=_at(20))  # the 29th
    return alice, bob


def test_the_day_is_counted_company_wide_and_per_department(day_of_events):
    built = daily_stats_rebuild(day=DAY)
    whole = DailyStats.get("2026-11-28", "all").figures
    assert {k: whole[k] for k in ("transfers_sent", "requests", "files", "bytes_uploaded", "bytes_downloaded")} == {
        "transfers_sent": 2,
        "requests": 1,
        "files": 3,
        "bytes_uploaded": 300,
        "bytes_downloaded": 100,
    }
    assert (whole["downloads"], whole["failed_codes"], whole["failed_signins"]) == (1, 1, 2)
    assert whole["domains"] == ["other.example", "partner.example"] and whole["external_domains"] == 2
    assert built.events_read == whole["events"] == 10
    sales = DailyStats.get("2026-11-28", "dept:Sales").figures
    legal = DailyStats.get("2026-11-28", "dept:Legal").figures
    # Guests' downloads count for the department of the transfer's sender.
    assert (sales["transfers_sent"], sales["downloads"], sales["bytes_uploaded"], sales["failed_codes"]) == (
        1,
        1,
        300,
        0,
    )
    assert (legal["transfers_sent"], legal["requests"], legal["failed_codes"]) == (1, 1, 1)
    assert DailyStats.get("2026-11-28", "dept:(none)").figures["failed_signins"] == 2


def test_running_twice_gives_the_same_figures_and_a_moved_department_leaves_nothing_behind(day_of_events):
    daily_stats_rebuild(day=DAY)
    first = {i.scope: i.figures for i in DailyStats.query("2026-11-28")}
    daily_stats_rebuild(day=DAY)
    assert {i.scope: i.figures for i in DailyStats.query("2026-11-28")} == first

    alice, _ = day_of_events
    alice.update(actions=[type(alice).department.set("Marketing")])
    daily_stats_rebuild(day=DAY)
    scopes = {i.scope for i in DailyStats.query("2026-11-28")}
    assert "dept:Sales" not in scopes and "dept:Marketing" in scopes


def test_the_day_is_read_by_querying_its_shards_never_by_scanning(day_of_events, monkeypatch, settings):
    def no_scan(*args, **kwargs):
        raise AssertionError("the aggregation scanned the audit table")

    monkeypatch.setattr(AuditEvent, "scan", no_scan)
    queried = []
    original = AuditEvent.by_day.query
    monkeypatch.setattr(AuditEvent.by_day, "query", lambda key, *a, **k: queried.append(key) or original(key, *a, **k))
    daily_stats_rebuild(day=DAY)
    assert sorted(queried) == [f"2026-11-28#{n}" for n in range(settings.FXFER_AUDIT_DAY_SHARDS)]


def test_backfill_rebuilds_a_range(day_of_events):
    out = StringIO()
    call_command("aggregate_days", "2026-11-27", "2026-11-29", stdout=out)
    assert out.getvalue().splitlines() == ["2026-11-27  0 events", "2026-11-28  10 events", "2026-11-29  1 events"]
    assert DailyStats.get("2026-11-29", "all").figures["transfers_sent"] == 1
    assert DailyStats.get("2026-11-27", "all").status == "ok"


def test_a_failed_day_shows_in_the_admin(officer, monkeypatch):
    day = services.local_day(datetime.now(UTC)) - timedelta(days=2)

    def throttled(*args, **kwargs):
        raise RuntimeError("ProvisionedThroughputExceeded")

    monkeypatch.setattr(services.DailyStats, "batch_write", throttled)
    with pytest.raises(RuntimeError):
        daily_stats_rebuild(day=day)
    monkeypatch.undo()
    page = officer.get("/admin/reports/daily/", {"day": day.isoformat()}).content.decode()
    assert "The aggregation of this day failed" in page and "ProvisionedThroughputExceeded" in page
    dashboard = officer.get("/admin/").content.decode()
    assert "Aggregation failed for" in dashboard and day.isoformat() in dashboard
    monthly = officer.get("/admin/reports/monthly/", {"month": day.strftime("%Y-%m")}).content.decode()
    assert "Aggregation failed for" in monthly


def test_daily_and_monthly_reports_with_csv(officer, day_of_events):
    call_command("aggregate_days", "2026-11-27", "2026-11-29", stdout=StringIO())
    daily = officer.get("/admin/reports/daily/", {"day": "2026-11-28"}).content.decode()
    assert "Aggregated" in daily and "Sales" in daily and "partner.example" in daily
    body = b"".join(officer.get("/admin/reports/daily.csv", {"day": "2026-11-28"}).streaming_content)
    assert body.startswith(b"\xef\xbb\xbf")
    rows = {r[0]: r for r in csv.reader(io.StringIO(body.decode("utf-8-sig")))}
    assert rows["department"][2] == "Transfers sent"
    assert rows["(all)"][2] == "2" and rows["Sales"][2] == "1" and rows["Legal"][2] == "1"

    monthly = b"".join(officer.get("/admin/reports/monthly.csv", {"month": "2026-11"}).streaming_content)
    rows = {r[0]: r for r in csv.reader(io.StringIO(monthly.decode("utf-8-sig")))}
    assert rows["2026-11-28"][1] == "ok" and rows["2026-11-28"][2] == "2"
    assert rows["2026-11-01"][1] == "missing"
    assert rows["total"][2] == "3"  # 2 on the 28th, 1 on the 29th
    assert rows["department: Sales"][2] == "2"
