"""Scheduled entry points for reports (Zappa `events`), and how every job entry point treats a failure.

Lambda invokes schedules (and the S3 and SNS events) asynchronously: a raised error makes it run the same event
twice more, then hand it to the on-failure queue `provision` creates (fxfer-<stage>-failed-events, kept 14
days). That is right for a transient error (a throttle, a timeout, a 5xx, a transaction conflict): a later try
may succeed. It is wrong for an error the same event meets every time (a validation error, an item too large, a
bug): the retries only repeat it. `job_entry_point` re-raises the first kind and logs and returns the second.

It also keeps a TypeError from escaping: Zappa's handler (zappa/handler.py, `run_function`) answers a TypeError
by calling the function again with fewer arguments, `f(event)` and then `f()`, so one from inside a job would
run the job again without its context (no time limit) and end as a misleading "signature is invalid".
"""

import functools
import logging
import time
from datetime import UTC, datetime, timedelta

from fxfer.aws import transient
from fxfer.events import scheduled_time
from fxfer.observability import observed_job, record_chain_lag
from reports import services
from reports.jobruns import recorded_run

logger = logging.getLogger(__name__)

# Stop starting new work this long before the Lambda's time ends: one more step (a transaction, an SES call
# with its retries) must still fit.
SAFETY_MARGIN = timedelta(seconds=8)


def job_entry_point(function):
    """Wrap a Lambda entry point `function(event, context)`: a transient error is logged and re-raised (Lambda
    retries, then the on-failure queue keeps the event); any other error is logged and answered with
    {"error": ...}, so the event is not retried."""
    name = f"{function.__module__}.{function.__qualname__}"
    function = recorded_run(function, name=name)  # its last run, for the operator's page

    @functools.wraps(function)
    def entry(event=None, context=None):
        try:
            return function(event, context)
        except Exception as exc:
            if transient(exc):
                logger.exception("job.failed", extra={"job": name, "retried": True})
                raise
            logger.exception("job.failed", extra={"job": name, "retried": False})
            return {"error": type(exc).__name__, "retried": False}

    # One "job" log line, the job's outcome as a metric, and its buffered metrics flushed.
    return observed_job(name)(entry)


def deadline_for(context, *, now: datetime | None = None) -> datetime | None:
    """When a job must stop starting new work: the Lambda's remaining time less SAFETY_MARGIN; None when run
    without a Lambda context (locally, in tests, from a management command)."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return None
    now = now or datetime.now(UTC)
    return now + max(timedelta(0), timedelta(milliseconds=remaining()) - SAFETY_MARGIN)


@job_entry_point
def every_minute(event: dict | None, context=None) -> dict:
    """Every minute: link new audit events into the hash chain (the chainer, the chain's only writer), then
    release the transfers whose mis-send hold has just ended (transfers.services.missend), then send the outbox
    mails due for another attempt. Each stops before the Lambda's time ends; what is left waits
    for the next minute. Locally `make run` calls this every ten seconds; tests call it directly."""
    from reports.chain import audit_chain_link
    from transfers.outbox import outbox_retry
    from transfers.services.missend import held_release_due

    started = datetime.now(UTC)
    deadline = deadline_for(context, now=started)
    # The chain gets at most half the time, so a long backlog of events never starves the mails.
    chain_deadline = started + (deadline - started) / 2 if deadline else None
    failures: list[Exception] = []
    result: dict = {}
    clock = time.monotonic()
    try:
        linked = audit_chain_link(deadline=chain_deadline)
        result.update(linked=linked.linked, chain_head=linked.head_seq, chain_complete=linked.complete)
        result["chain_lag_seconds"] = record_chain_lag()
    except Exception as exc:  # the mails still go out; the error is raised (or not) below
        logger.exception("job.every_minute.chain_failed")
        failures.append(exc)
    try:
        held = held_release_due(deadline=deadline)
        result.update(holds_tried=held.tried, holds_released=held.released, holds_complete=held.complete)
    except Exception as exc:  # the other transfers' mails still go; the next minute tries again
        logger.exception("job.every_minute.hold_release_failed")
        failures.append(exc)
    try:
        retried = outbox_retry(deadline=deadline)
        result.update(mails_tried=retried.tried, mails_sent=retried.sent, outbox_complete=retried.complete)
    except Exception as exc:
        logger.exception("job.every_minute.outbox_failed")
        failures.append(exc)
    result["seconds"] = round(time.monotonic() - clock, 3)
    if failures:
        # A transient failure first, so the wrapper retries the minute when any part may succeed later.
        raise sorted(failures, key=lambda e: not transient(e))[0]
    logger.info("job.every_minute.done", extra=result)
    return result


@job_entry_point
def aggregate_daily(event: dict | None, context=None) -> dict:
    """00:10 Asia/Tokyo: aggregate the previous local day, then mail the compliance summary (once per day).
    The day comes from the event's time, not the clock, so a retried or delayed invocation aggregates the day
    it was scheduled for. The figures count every event of the day whether or not the chainer has linked it
    yet (they are read by day, not by chain position), so the job does not wait for the chain. A failed re-run
    leaves a good day's figures in place (services.daily_stats_rebuild)."""
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
