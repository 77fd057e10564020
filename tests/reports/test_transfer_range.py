"""Admin "all transfers" over a date range (issue 15): the range is read by month (the `by-month` index), newest
first, the last month alone and the others together in parallel, and reading stops once the page is full, so a
year costs at most 13 Queries, not 365. The pages, their order and their cursors are those of reading one day
after the other (the code before, kept here as the reference); a month that cannot be read gives no page at all
(503, "try again"), never a page with a hole presented as complete."""

import contextlib
import io
import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from reports.errors import AuditError
from reports.selectors import _decode, _transfer_row, transfer_search
from tests.faults import _THROTTLE, ERROR, LOST, _response, inject, recording
from transfers.models import KIND_REQUEST, Transfer

TOKYO = ZoneInfo("Asia/Tokyo")
LAST_DAY = date(2026, 11, 28)
FIRST_DAY = LAST_DAY - timedelta(days=364)  # a year
NOW = datetime(2026, 11, 28, 23, tzinfo=TOKYO).astimezone(UTC)
_numbers = itertools.count()


def _transfer(day: date, hour: int, *, request: bool = False, status: str = "ready", legacy: bool = False) -> str:
    transfer_id = f"{next(_numbers):032x}"
    created_at = datetime.combine(day, time(hour), TOKYO).astimezone(UTC)
    Transfer(
        transfer_id=transfer_id,
        owner_id="u1",
        owner_email="alice@corp.example",
        owner_name="Alice",
        subject=f"{day} {hour}",
        created_at=created_at,
        created_day=day.isoformat(),
        created_month=None if legacy else day.strftime("%Y-%m"),
        expires_at=NOW + timedelta(days=30),
        download_limit=3,
        status=status,
        kind=KIND_REQUEST if request else "send",
    ).save()
    return transfer_id


def _reference(*, first_day: date, last_day: date, status: str = "", kind: str = "") -> list[str]:
    """Every row of the range as the day-by-day walk read it, newest first."""
    ids = []
    day = last_day
    while day >= first_day:
        for transfer in Transfer.by_day.query(day.isoformat(), scan_index_forward=False):
            row = _transfer_row(transfer, NOW)
            if (not status or row.status == status) and (not kind or row.kind == kind):
                ids.append(row.transfer_id)
        day -= timedelta(days=1)
    return ids


def _walk(**search) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        page = transfer_search(first_day=FIRST_DAY, last_day=LAST_DAY, cursor=cursor, now=NOW, **search)
        pages.append([row.transfer_id for row in page.rows])
        cursor = page.next_cursor
        if not cursor:
            return pages
        assert len(pages) < 100


def _queries(fault) -> int:
    return sum(1 for service, operation in fault.calls if (service, operation) == ("dynamodb", "Query"))


@pytest.fixture
def several_days():
    """Transfers and requests on several days of the year: busy days, single ones, long empty stretches."""
    for offset, count in ((0, 3), (1, 1), (2, 4), (5, 2), (40, 1), (41, 3), (200, 2), (364, 1)):
        for hour in range(count):
            day = LAST_DAY - timedelta(days=offset)
            _transfer(day, 8 + hour, request=hour % 2 == 1, status="revoked" if hour == 2 else "ready")
    # Outside the range, in its first and last months: never shown.
    _transfer(FIRST_DAY - timedelta(days=1), 23)
    _transfer(LAST_DAY + timedelta(days=1), 0)


@pytest.mark.parametrize(
    ("limit", "filters"),
    [(2, {}), (3, {}), (5, {}), (50, {}), (2, {"kind": "request"}), (3, {"status": "revoked"}), (1, {})],
)
def test_pages_and_order_are_those_of_reading_day_by_day_and_a_cursor_resumes_exactly(
    several_days, settings, limit, filters
):
    settings.FXFER_ADMIN_PAGE_SIZE = limit
    expected = _reference(first_day=FIRST_DAY, last_day=LAST_DAY, **filters)
    pages = _walk(**filters)
    shown = [transfer_id for page in pages for transfer_id in page]
    assert shown == expected  # same rows, same order, none twice, none skipped across day boundaries
    assert all(len(page) == limit for page in pages[:-1])  # every page but the last is full
    assert len(pages[-1]) <= limit


def test_a_cursor_taken_mid_day_resumes_after_the_last_row_shown(several_days, settings):
    settings.FXFER_ADMIN_PAGE_SIZE = 2
    expected = _reference(first_day=FIRST_DAY, last_day=LAST_DAY)
    first = transfer_search(first_day=FIRST_DAY, last_day=LAST_DAY, now=NOW)  # two of the last day's three
    assert [r.transfer_id for r in first.rows] == expected[:2]
    # The position kept in the cursor is the one DynamoDB itself gives after those two rows.
    read = Transfer.by_month.query(
        "2026-11", Transfer.created_at < datetime(2026, 11, 29, tzinfo=TOKYO), scan_index_forward=False, limit=2
    )
    list(read)
    assert _decode(first.next_cursor) == {"m": "2026-11", "lek": read.last_evaluated_key}
    # A transfer made on the last day after the first page was shown is newer than the cursor: not shown again.
    _transfer(LAST_DAY, 22)
    second = transfer_search(first_day=FIRST_DAY, last_day=LAST_DAY, cursor=first.next_cursor, now=NOW)
    assert [r.transfer_id for r in second.rows] == expected[2:4]


def test_a_year_with_recent_transfers_takes_a_few_queries(settings):
    settings.FXFER_ADMIN_PAGE_SIZE = 50
    for hour in range(30):
        _transfer(LAST_DAY, hour % 24)
        _transfer(LAST_DAY - timedelta(days=3), hour % 24)
    _transfer(FIRST_DAY, 12)
    with recording() as fault:
        page = transfer_search(first_day=FIRST_DAY, last_day=LAST_DAY, now=NOW)
    assert len(page.rows) == 50 and page.next_cursor
    assert _queries(fault) == 1  # the last month alone fills the page
    with recording() as fault:
        rest = transfer_search(first_day=FIRST_DAY, last_day=LAST_DAY, cursor=page.next_cursor, now=NOW)
    assert len(rest.rows) == 11 and rest.next_cursor is None
    # The rest of the last month, then the year's other twelve months at once: not one Query per day.
    assert _queries(fault) == 1 + 12


def test_a_sparse_year_is_thirteen_queries_at_most(settings):
    settings.FXFER_ADMIN_PAGE_SIZE = 50
    expected = [_transfer(LAST_DAY - timedelta(days=offset), 9) for offset in range(0, 365, 9)]
    with recording() as fault:
        page = transfer_search(first_day=FIRST_DAY, last_day=LAST_DAY, now=NOW)
    assert [row.transfer_id for row in page.rows] == expected and page.next_cursor is None
    assert _queries(fault) == 13  # the range touches 13 months (29 Nov 2025 to 28 Nov 2026), one Query each


def test_transfers_made_before_the_month_index_are_found_after_the_backfill(settings):
    from django.core.management import call_command

    settings.FXFER_ADMIN_PAGE_SIZE = 50
    old = [_transfer(LAST_DAY - timedelta(days=offset), 10, legacy=True) for offset in (0, 40, 300)]
    new = _transfer(LAST_DAY, 11)
    before = transfer_search(first_day=FIRST_DAY, last_day=LAST_DAY, now=NOW)
    assert [row.transfer_id for row in before.rows] == [new]  # the index does not hold them yet
    out = io.StringIO()
    call_command("transfer_months", stdout=out)
    assert "3 transfers updated" in out.getvalue()
    after = transfer_search(first_day=FIRST_DAY, last_day=LAST_DAY, now=NOW)
    assert [row.transfer_id for row in after.rows] == [new, *old]
    out = io.StringIO()
    call_command("transfer_months", stdout=out)  # again: nothing left to do, nothing changed
    assert "0 transfers updated" in out.getvalue()


@contextlib.contextmanager
def month_unreadable(day: date):
    """Every Query of the transfers of `day`'s month answers ThrottlingException (past every retry); other calls
    go through."""
    from moto.core.botocore_stubber import BotocoreStubber

    original = BotocoreStubber.__call__
    failed = []

    def faulty(self, event_name, request, **kwargs):
        if event_name == "before-send.dynamodb.Query" and f'"{day.strftime("%Y-%m")}"' in request.body.decode():
            failed.append(day)
            return _response(request, *_THROTTLE["dynamodb"])
        return original(self, event_name, request, **kwargs)

    with inject(ERROR, service="-none-"):  # retries without back-off sleeps
        BotocoreStubber.__call__ = faulty
        try:
            yield failed
        finally:
            BotocoreStubber.__call__ = original


def test_a_month_that_cannot_be_read_gives_no_page_but_try_again(officer, settings):
    settings.FXFER_ADMIN_PAGE_SIZE = 50
    _transfer(LAST_DAY, 9)
    _transfer(LAST_DAY - timedelta(days=100), 9)
    unreadable = LAST_DAY - timedelta(days=150)  # among the months read in parallel
    with month_unreadable(unreadable) as failed:
        with pytest.raises(AuditError) as refused:
            transfer_search(first_day=FIRST_DAY, last_day=LAST_DAY, now=NOW)
    assert len(failed) > 1 and refused.value.code == "unavailable"  # retried, then refused
    with month_unreadable(unreadable) as failed:
        response = officer.get(
            "/admin/transfers/", {"first_day": FIRST_DAY.isoformat(), "last_day": LAST_DAY.isoformat()}
        )
    page = response.content.decode()
    assert failed and response.status_code == 503
    assert "try again" in page and 'id="transfer-results"' not in page


def test_a_fault_botocore_retries_away_changes_nothing(several_days, settings):
    settings.FXFER_ADMIN_PAGE_SIZE = 50
    expected = _reference(first_day=FIRST_DAY, last_day=LAST_DAY)
    with inject(ERROR, service="dynamodb", operation="Query", nth=10, times=1) as fault:
        page = transfer_search(first_day=FIRST_DAY, last_day=LAST_DAY, now=NOW)
    assert fault.fired and [r.transfer_id for r in page.rows] == expected and page.next_cursor is None


@pytest.mark.parametrize(("kind", "times"), [(LOST, 1), (ERROR, 10)], ids=["lost", "error"])
def test_a_backfill_aws_failed_is_finished_by_running_it_again(settings, kind, times):
    from django.core.management import call_command

    settings.FXFER_ADMIN_PAGE_SIZE = 50
    old = [_transfer(LAST_DAY - timedelta(days=offset), 10, legacy=True) for offset in (0, 40, 300)]
    with inject(kind, service="dynamodb", operation="UpdateItem", nth=2, times=times) as fault:
        try:
            call_command("transfer_months", stdout=io.StringIO())
        except Exception:  # the operator sees the error and runs it again
            assert times == 10
    assert fault.fired
    call_command("transfer_months", stdout=io.StringIO())
    page = transfer_search(first_day=FIRST_DAY, last_day=LAST_DAY, now=NOW)
    assert [row.transfer_id for row in page.rows] == old
