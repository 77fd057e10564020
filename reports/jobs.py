"""Scheduled entry points for reports (Zappa `events`)."""

import logging
from datetime import timedelta

from fxfer.events import scheduled_time
from reports import services

logger = logging.getLogger(__name__)


def aggregate_daily(event: dict, context=None) -> dict:
    """00:10 Asia/Tokyo: aggregate the previous local day, then mail the compliance summary (once per day).
    The day comes from the event's time, not the clock, so a retried or delayed invocation aggregates the day
    it was scheduled for."""
    from reports.summary import daily_summary_send

    day = services.local_day(scheduled_time(event)) - timedelta(days=1)
    try:
        built = services.daily_stats_rebuild(day=day)
        summary = daily_summary_send(day=day, figures=built.figures)
    except Exception:
        logger.exception("job.aggregate_daily.failed", extra={"day": day.isoformat()})
        raise
    logger.info(
        "job.aggregate_daily.done",
        extra={"day": day.isoformat(), "events_read": built.events_read, "summary_sent": summary.sent},
    )
    return {"day": day.isoformat(), "events_read": built.events_read}
