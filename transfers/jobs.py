"""Lambda entry points for transfers: the S3 ObjectCreated event source, GuardDuty's scan results and the hourly
expiry sweep.

Both are invoked at least once: the services they call are idempotent. Errors are logged and re-raised so
Lambda's retry and alarms see them (Zappa retries a scheduled function with fewer arguments on TypeError).
"""

import logging
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote_plus

from fxfer.events import scheduled_time
from fxfer.observability import SWEEP_DELETIONS, add_metric, observed_job
from reports.jobruns import recorded_run
from transfers import services
from transfers.services import scanning
from transfers.services.approvals import approval_timeouts
from transfers.services.expiry import sweep_heal

logger = logging.getLogger(__name__)


@observed_job("transfers.jobs.on_object_created")
def on_object_created(event: dict, context=None) -> dict:
    """S3 ObjectCreated notification → verify each object (the same path as the browser's "done" call)."""
    results = []
    try:
        for record in event.get("Records", []):
            s3 = record.get("s3", {})
            s3_object = s3.get("object", {})
            # Keys arrive URL-encoded, with "+" for spaces.
            key = unquote_plus(s3_object.get("key", ""))
            noticed = services.upload_object_noticed(
                bucket=s3.get("bucket", {}).get("name", ""),
                key=key,
                size=int(s3_object.get("size", 0)),
                version_id=s3_object.get("versionId") or None,
            )
            results.append({"key": noticed.key, "outcome": noticed.outcome})
    except Exception:
        logger.exception("job.on_object_created.failed")
        raise
    return {"records": results}


@observed_job("transfers.jobs.on_scan_result")
def on_scan_result(event: dict, context=None) -> dict:
    """GuardDuty Malware Protection for S3's EventBridge event "GuardDuty Malware Protection Object Scan Result"
    → the file's verdict recorded (and its transfer released when every file is clean). The EventBridge rule
    `provision` creates hands it to Zappa as a command (`{"command": "transfers.jobs.on_scan_result", ...}`),
    since Zappa's handler routes only scheduled EventBridge events by themselves. At-least-once: a repeat changes
    nothing; AWS busy raises, so Lambda retries it (then the hourly heal reads the object's tag)."""
    try:
        recorded = scanning.scan_event_record(event)
    except Exception:
        logger.exception("job.on_scan_result.failed")
        raise
    if recorded is None:
        return {"outcome": "ignored"}
    return {"key": recorded.key, "outcome": recorded.outcome, "status": recorded.status}


@observed_job("transfers.jobs.expire_sweep")
@recorded_run  # its last run, for the operator's page (reports.operations)
def expire_sweep(event: dict, context=None) -> dict:
    """Hourly: heal what a crash left (unreleased verified transfers, half-done deletions, unsent mails, orphan
    reply requests), then delete files and links past their expiry, uploads abandoned before release and
    objects no live record owns, each with a deletion receipt; held transfers are skipped. Stops before the
    Lambda's time runs out; the next run goes on where this one stopped."""
    deadline = lambda_deadline(context)
    now = scheduled_time(event)
    try:
        healed = sweep_heal(now=now, deadline=deadline)
        scans = scanning.scan_heal(now=now, deadline=deadline)  # verdicts whose event was lost
        # Approvals past their time: escalated or rejected (never released), and rejections' files deleted.
        approval = approval_timeouts(now=now, deadline=deadline)
        done = services.expiry_sweep(now=now, deadline=deadline)
    except Exception:
        logger.exception("job.expire_sweep.failed")
        raise
    add_metric(SWEEP_DELETIONS, done.files_deleted + done.abandoned_deleted + done.orphan_objects_deleted)
    return {
        "started_at": done.started_at.isoformat(),
        "transfers_expired": done.transfers_expired,
        "abandoned_deleted": done.abandoned_deleted,
        "held_skipped": done.held_skipped,
        "files_deleted": done.files_deleted,
        "orphan_objects_deleted": done.orphan_objects_deleted,
        "orphan_keys_checked": done.orphan_keys_checked,
        "released": healed.released,
        "deletions_finished": healed.deletions_finished,
        "mails_sent": healed.mails_sent,
        "orphan_replies_removed": healed.orphan_replies_removed,
        "approvals_timed_out": approval.timed_out,
        "approvals_escalated": approval.escalated,
        "scans_recorded": scans.recorded,
        "scans_overdue": scans.overdue,
        "complete": healed.complete and done.complete and scans.complete and approval.complete,
    }


# The work between two deadline checks (one transfer's deletion, one object) fits in this margin.
STOP_BEFORE_END_SECONDS = 5


def lambda_deadline(context) -> datetime | None:
    """When a job must stop starting new work: the Lambda's remaining time less a margin; None outside Lambda."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return None
    return datetime.now(UTC) + timedelta(milliseconds=remaining()) - timedelta(seconds=STOP_BEFORE_END_SECONDS)
