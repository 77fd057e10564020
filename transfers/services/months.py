"""The `by-month` index's key on transfers made before it existed (issue 15): `manage.py transfer_months`."""

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.conf import settings
from pynamodb.exceptions import UpdateError

from reports.services import local_day
from transfers.models import Transfer
from transfers.services.common import utc


@dataclass(frozen=True)
class MonthsBackfilled:
    days_read: int
    updated: int  # transfers given their created_month
    already: int  # transfers that had it


def transfer_months_backfill(*, now: datetime | None = None) -> MonthsBackfilled:
    """Give every transfer still kept that has no created_month the month of its created_day, so a date range
    (one Query a month on `by-month`) finds it. Reads the `by-day` index day by day over the longest time a
    transfer's metadata is kept (no Scan); each write is conditional on the attribute being absent, so the command
    is safe to run again and beside new transfers."""
    now = utc(now)
    today = local_day(now)
    kept_days = settings.FXFER_AUDIT_RETENTION_DAYS + settings.FXFER_MAX_RETENTION_DAYS + 2
    updated = already = 0
    for offset in range(kept_days + 1):
        day: date = today - timedelta(days=offset)
        for transfer in Transfer.by_day.query(day.isoformat()):
            if transfer.created_month:
                already += 1
                continue
            try:
                transfer.update(
                    actions=[Transfer.created_month.set(day.strftime("%Y-%m"))],
                    condition=Transfer.created_month.does_not_exist() & Transfer.transfer_id.exists(),
                )
            except UpdateError as exc:
                if exc.cause_response_code != "ConditionalCheckFailedException":
                    raise
                already += 1  # set meanwhile (a second run), or the item is gone (purged): nothing to do
            else:
                updated += 1
    return MonthsBackfilled(days_read=kept_days + 1, updated=updated, already=already)
