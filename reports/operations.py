"""The operator's page of the compliance admin (/admin/operations/): which build runs where, and whether the
machinery behind the pages is keeping up — each scheduled job's last run, the audit chainer's lag, mails
waiting for another attempt or given up, and async events Lambda gave up on (the failed-events queue).

Every figure is read on its own: one that AWS does not answer (an error, a refused permission, a
timeout) shows as "could not read" with the reason, and the rest of the page still renders. Nothing here writes.
AWS calls: DynamoDB BatchGetItem (job runs, waiting mails), Query (the chainer's oldest unlinked event, the
waiting mails, the last day's failed mails); SQS GetQueueUrl and GetQueueAttributes.
"""

import json
import logging
import os
import platform
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from fxfer import aws, dynamo
from reports.chain import MERGE_DELAY
from reports.models import AuditEvent, JobRun
from reports.services import UNCHAINED
from transfers.models import OutboxMail
from transfers.outbox import UNSENT

logger = logging.getLogger(__name__)

# Written into the Lambda package at package time (devtools/package.py); absent in a checkout.
BUILD_FILE = Path(__file__).resolve().parent.parent / "fxfer" / "build.json"
# The page must answer within API Gateway's 29 s: no figure is started after this long.
READ_SECONDS = 15
FAILED_MAILS_WINDOW = timedelta(hours=24)
WAITING_MAILS_SAMPLE = 100
FAILED_MAILS_SHOWN = 10


@dataclass(frozen=True)
class Job:
    function: str  # the dotted path zappa_settings.json schedules
    label: str
    every: timedelta

    def overdue(self, run: JobRun | None, now: datetime) -> bool:
        """No run has ended within twice the interval (plus a minute): the schedule or the function is broken,
        or each run is killed before it ends."""
        last = run.finished_at if run is not None else None
        return last is None or now - last > 2 * self.every + timedelta(minutes=1)


# Every scheduled entry point (zappa_settings.json "events" with an expression; a test keeps them in step).
JOBS = (
    Job("reports.jobs.every_minute", _("Audit chain links, then mail retries"), timedelta(minutes=1)),
    Job("reports.jobs.aggregate_daily", _("Daily figures and the compliance summary mail"), timedelta(days=1)),
    Job(
        "transfers.jobs.expire_sweep",
        _("Expiry, abandoned uploads, orphan objects and crash repairs"),
        timedelta(hours=1),
    ),
)


@dataclass(frozen=True)
class Unread:
    """A figure AWS did not give: why, in AWS's words (an error code or the kind of failure)."""

    reason: str


@dataclass(frozen=True)
class JobStatus:
    job: Job
    run: JobRun | None
    overdue: bool

    @property
    def seconds(self) -> str:
        """The last run's duration in seconds, one decimal."""
        if self.run is None or self.run.duration_ms is None:
            return ""
        return f"{self.run.duration_ms / 1000:.1f}"

    @property
    def state(self) -> str:
        if self.run is None or self.run.finished_at is None:
            return "never"
        return "overdue" if self.overdue else (self.run.outcome or "unknown")


@dataclass(frozen=True)
class ChainLag:
    oldest_unlinked_at: datetime | None  # None: every event is linked
    lag: timedelta

    @property
    def late(self) -> bool:
        return self.lag > MERGE_DELAY

    @property
    def lag_seconds(self) -> int:
        return int(self.lag.total_seconds())


@dataclass(frozen=True)
class Mails:
    waiting: int  # not sent yet: due now or later
    retrying: int  # of the sample read, those that have failed at least once
    oldest_created_at: datetime | None
    most_attempts: int
    errors: list[tuple[str, int]]  # the sample's last errors, most common first
    sampled: int


@dataclass(frozen=True)
class FailedMails:
    count: int
    latest: list[dict] = field(default_factory=list)  # {"at", "kind", "error", "subject"}


@dataclass(frozen=True)
class QueueDepth:
    name: str
    waiting: int  # ApproximateNumberOfMessages
    in_flight: int  # ApproximateNumberOfMessagesNotVisible (someone is reading them)


@dataclass(frozen=True)
class NotConfigured:
    code: str  # "unnamed", "local", "missing"
    name: str = ""


@dataclass(frozen=True)
class Operations:
    stage: dict
    versions: list[tuple[str, str]]
    jobs: list[JobStatus] | Unread
    chain: ChainLag | Unread
    mails: Mails | Unread
    failed_mails: FailedMails | Unread
    queue: QueueDepth | NotConfigured | Unread
    read_at: datetime


def operations_state(*, now: datetime | None = None) -> Operations:
    """Everything the page shows; each AWS figure read on its own (in a fixed order), an unanswered one as
    Unread. Once READ_SECONDS have gone (AWS timing out call after call), the rest are not tried."""
    now = now or datetime.now(UTC)
    readers = {
        "jobs": lambda: job_statuses(now=now),
        "chain": lambda: chain_lag(now=now),
        "mails": waiting_mails,
        "failed_mails": lambda: failed_mails(now=now),
        "queue": failed_events_queue,
    }
    started = time.monotonic()
    figures = {}
    for name, read in readers.items():
        if time.monotonic() - started > READ_SECONDS:
            figures[name] = Unread(reason=f"not tried: the figures before took over {READ_SECONDS} s")
            continue
        try:
            figures[name] = read()
        except Exception as exc:  # one figure: the page still renders and says which, and why
            logger.warning("operations.read_failed", extra={"figure": name}, exc_info=True)
            figures[name] = Unread(reason=_reason(exc))
    return Operations(stage=stage_facts(), versions=versions(), read_at=now, **figures)


def _reason(exc: BaseException) -> str:
    """AWS's error code (through PynamoDB's wrapping), else the kind of failure; never a message."""
    current, seen = exc, set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ClientError):
            return current.response.get("Error", {}).get("Code") or "ClientError"
        if isinstance(current, BotoCoreError):
            return type(current).__name__
        current = getattr(current, "cause", None) or current.__cause__
    return getattr(exc, "cause_response_code", None) or type(exc).__name__


# --- Stage and versions --------------------------------------------------------------------------------------


def stage_facts() -> dict:
    return {
        "stage": settings.FXFER_STAGE,
        "region": settings.FXFER_AWS_REGION,
        "function": settings.FXFER_LAMBDA_FUNCTION,
        # Lambda sets these; a local run has neither.
        "function_version": os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", ""),
        "memory_mb": os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", ""),
        "base_url": settings.FXFER_BASE_URL,
        "tables": f"{dynamo.table_prefix()}*",
        "bucket": settings.FXFER_BUCKET,
    }


def build_info() -> dict:
    """{"version", "commit", "built_at"} as packaged; {} when this is not a packaged build."""
    try:
        data = json.loads(BUILD_FILE.read_text())
    except (OSError, ValueError):
        return {}
    return {k: str(data[k]) for k in ("version", "commit", "built_at") if data.get(k)}


def versions() -> list[tuple[str, str]]:
    import boto3
    import botocore
    import django
    import pynamodb

    build = build_info()
    fxfer = build.get("version", "")
    if build.get("commit"):
        fxfer += f" ({build['commit']})"
    return [
        ("fxfer", fxfer),
        (_("Built"), build.get("built_at", "")),
        ("Django", django.get_version()),
        ("Python", platform.python_version()),
        ("boto3", boto3.__version__),
        ("botocore", botocore.__version__),
        ("PynamoDB", pynamodb.__version__),
    ]


# --- AWS figures ---------------------------------------------------------------------------------------------


def job_statuses(*, now: datetime) -> list[JobStatus]:
    """Each scheduled job's last run (one BatchGetItem)."""
    runs = {run.job: run for run in JobRun.batch_get([job.function for job in JOBS])}
    return [
        JobStatus(job=job, run=runs.get(job.function), overdue=job.overdue(runs.get(job.function), now)) for job in JOBS
    ]


def chain_lag(*, now: datetime) -> ChainLag:
    """How long the oldest event not yet linked into the hash chain has waited (the chainer's lag)."""
    oldest = next(iter(AuditEvent.by_unchained.query(UNCHAINED, limit=1)), None)
    if oldest is None:
        return ChainLag(oldest_unlinked_at=None, lag=timedelta(0))
    return ChainLag(oldest_unlinked_at=oldest.at, lag=max(timedelta(0), now - oldest.at))


def waiting_mails() -> Mails:
    """Mails not sent yet (the outbox's by-unsent index: a count, then a sample read for ages and errors)."""
    waiting = OutboxMail.by_unsent.count(UNSENT)
    keys = [key.mail_key for key in OutboxMail.by_unsent.query(UNSENT, limit=WAITING_MAILS_SAMPLE)]
    mails = list(OutboxMail.batch_get(keys)) if keys else []
    errors = Counter(mail.last_error for mail in mails if mail.last_error)
    return Mails(
        waiting=waiting,
        retrying=sum(1 for mail in mails if (mail.attempts or 0) > 0),
        oldest_created_at=min((mail.created_at for mail in mails), default=None),
        most_attempts=max((int(mail.attempts or 0) for mail in mails), default=0),
        errors=errors.most_common(5),
        sampled=len(mails),
    )


def failed_mails(*, now: datetime) -> FailedMails:
    """Mails given up on in the last 24 hours: their "mail.sent" events with outcome "failed" (by-actor index,
    the system's events of the window)."""
    since = (now - FAILED_MAILS_WINDOW).astimezone(UTC).isoformat()
    failed = list(
        AuditEvent.by_actor.query(
            "system",
            AuditEvent.sort_key >= since,
            filter_condition=(AuditEvent.action == "mail.sent") & (AuditEvent.outcome == "failed"),
            scan_index_forward=False,
        )
    )
    latest = [
        {
            "at": e.at,
            "kind": (e.details or {}).get("kind", ""),
            "error": (e.details or {}).get("error", ""),
            "subject": e.subject,
        }
        for e in failed[:FAILED_MAILS_SHOWN]
    ]
    return FailedMails(count=len(failed), latest=latest)


_NO_QUEUE = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}


def failed_events_queue() -> QueueDepth | NotConfigured:
    """Messages on the queue of async events Lambda gave up on (fxfer/provisioning.py creates it)."""
    name = settings.FXFER_FAILED_EVENTS_QUEUE
    if not name:
        return NotConfigured(code="unnamed")
    local = bool(settings.FXFER_DYNAMODB_ENDPOINT or settings.FXFER_S3_ENDPOINT)
    if local and not settings.FXFER_SQS_ENDPOINT:
        return NotConfigured(code="local", name=name)  # local stand-ins without SQS: never ask real AWS
    sqs = aws.client("sqs", timeout_seconds=3, attempts=2)
    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in _NO_QUEUE:
            return NotConfigured(code="missing", name=name)
        raise
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return QueueDepth(
        name=name,
        waiting=int(attributes.get("ApproximateNumberOfMessages", 0)),
        in_flight=int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
    )


# --- The page ------------------------------------------------------------------------------------------------


def operations_view(site, request):
    """GET: the operator's page."""
    return site._render(
        request,
        "admin/fxfer/operations.html",
        _("Operations"),
        {"ops": operations_state(), "merge_delay_minutes": int(MERGE_DELAY.total_seconds() // 60)},
    )
