"""Audit trail and daily statistics (PynamoDB only; no ORM models)."""

from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from fxfer import dynamo


class AuditByDay(GlobalSecondaryIndex):
    """A local day's events, spread over a few shards ("2026-11-28#0" … "#3") so a busy day can fan out."""

    class Meta:
        index_name = "by-day"
        projection = AllProjection()

    day_shard = UnicodeAttribute(hash_key=True)
    sort_key = UnicodeAttribute(range_key=True)


class AuditBySubject(GlobalSecondaryIndex):
    """Everything that happened to one thing (a transfer, a user), in order."""

    class Meta:
        index_name = "by-subject"
        projection = AllProjection()

    subject = UnicodeAttribute(hash_key=True)
    sort_key = UnicodeAttribute(range_key=True)


class AuditByActor(GlobalSecondaryIndex):
    """Everything one person (or job) did, in order."""

    class Meta:
        index_name = "by-actor"
        projection = AllProjection()

    actor = UnicodeAttribute(hash_key=True)
    sort_key = UnicodeAttribute(range_key=True)


class AuditUnchained(GlobalSecondaryIndex):
    """Events not yet linked into the hash chain, oldest first (sparse: `unchained` goes when the chainer links
    the event). The chainer reads it; the chain check reports any event left here past the merge delay."""

    class Meta:
        index_name = "by-unchained"
        projection = AllProjection()

    unchained = UnicodeAttribute(hash_key=True)  # "pending"
    sort_key = UnicodeAttribute(range_key=True)


class AuditEvent(Model):
    """One append-only audit event. Request paths write it unchained (in the same transaction as the change it
    records); the chainer, the single writer of the chain, later gives it a `seq` and an AuditLink."""

    Meta = dynamo.meta("audit-events")

    event_id = UnicodeAttribute(hash_key=True)  # derived from the operation that wrote it: a retry finds it
    seq = NumberAttribute(null=True)  # its place in the chain, once linked
    unchained = UnicodeAttribute(null=True)  # "pending" until linked (the by-unchained index)
    count = NumberAttribute(null=True)  # an aggregated event (anonymous traffic, access.denied): hits in its minute
    at = UTCDateTimeAttribute()
    sort_key = UnicodeAttribute()  # "<ISO time>#<write order>#<event_id>": time order, unique
    day_shard = UnicodeAttribute()
    action = UnicodeAttribute()
    outcome = UnicodeAttribute()  # "ok", "granted", "refused", "failed"
    actor = UnicodeAttribute()  # "user:<id>", "guest:<recipient id>", "job:<name>", "anonymous"
    subject = UnicodeAttribute()  # "transfer:<id>", "user:<id>", "system"
    ip = UnicodeAttribute(null=True)
    user_agent = UnicodeAttribute(null=True)
    details = JSONAttribute(null=True)
    # Kept for the audit-retention period (FXFER_AUDIT_RETENTION_DAYS), then DynamoDB TTL removes it.
    expires_at = TTLAttribute(null=True)

    by_day = AuditByDay()
    by_subject = AuditBySubject()
    by_actor = AuditByActor()
    by_unchained = AuditUnchained()


class AuditLink(Model):
    """One link of the hash chain: event `event_id` is number `seq`; `hash` covers the previous link's hash and
    the event's fields. Written only by the chainer, in the same transaction as the chain head."""

    Meta = dynamo.meta("audit-links")

    link_id = UnicodeAttribute(hash_key=True)  # zero-padded seq: "000000000042"
    seq = NumberAttribute()
    event_id = UnicodeAttribute()
    linked_at = UTCDateTimeAttribute()
    prev_hash = UnicodeAttribute()
    hash = UnicodeAttribute()
    expires_at = TTLAttribute(null=True)


class AuditChainHead(Model):
    """The chain's newest seq and hash; the chainer advances it with a conditional write."""

    Meta = dynamo.meta("audit-chain")

    chain = UnicodeAttribute(hash_key=True)  # "main"
    seq = NumberAttribute()
    hash = UnicodeAttribute()
    # The first local day whose every event the chainer added to its DailyRunning totals ("2026-11-28"). A chain
    # begun before the chainer kept totals gets the day after its first run with them; a new chain, any day.
    running_since = UnicodeAttribute(null=True)


class DailyStats(Model):
    """Figures of one local day, for the whole company ("all") or one department ("dept:<name>")."""

    Meta = dynamo.meta("daily-stats")

    day = UnicodeAttribute(hash_key=True)  # "2026-11-28", local time
    scope = UnicodeAttribute(range_key=True)
    status = UnicodeAttribute()  # "ok" or "failed"
    figures = JSONAttribute(default=dict)
    events_read = NumberAttribute(default=0)
    computed_at = UTCDateTimeAttribute()
    error = UnicodeAttribute(null=True)


class DailyRunning(Model):
    """A local day's figures so far (scope "running", in the daily-stats table beside that day's DailyStats): the
    chainer adds each event's share in the transaction that links it, so each event counts exactly once, and the
    dashboard reads this one item plus the few events not linked yet instead of the whole day. The figures are
    those of reports.aggregation.FIGURES (external domains as the set of them)."""

    Meta = dynamo.meta("daily-stats")

    day = UnicodeAttribute(hash_key=True)  # "2026-11-28", local time
    scope = UnicodeAttribute(range_key=True)  # "running"
    transfers_sent = NumberAttribute(null=True)
    requests = NumberAttribute(null=True)
    files = NumberAttribute(null=True)
    files_received = NumberAttribute(null=True)
    bytes_uploaded = NumberAttribute(null=True)
    bytes_downloaded = NumberAttribute(null=True)
    downloads = NumberAttribute(null=True)
    received_downloads = NumberAttribute(null=True)
    failed_codes = NumberAttribute(null=True)
    failed_signins = NumberAttribute(null=True)
    mails_bounced = NumberAttribute(null=True)
    mails_complained = NumberAttribute(null=True)
    domains = UnicodeSetAttribute(null=True)  # external domains (DynamoDB keeps no empty set: absent when none)
    events = NumberAttribute(null=True)  # hits counted (an aggregated event counts its `count`)
    last_seq = NumberAttribute(null=True)  # the newest link of the last transaction that added to this item
    # That transaction's cutoff (an event sort key): every event it or an earlier one linked sorts before it.
    linked_before = UnicodeAttribute(null=True)
    complete = BooleanAttribute(null=True)  # False: the day began before the chainer kept totals (count the day)


class JobRun(Model):
    """The last run of one scheduled job (one item per job, keyed by its dotted path), for the operator's page.
    Written when a run ends (reports.jobruns.recorded_run); a run Lambda killed writes nothing, so the page
    calls a job overdue when no run has ended within twice its interval."""

    # Short timeouts and one retry: the record must never hold up the job it records (its time is the job's).
    Meta = type(
        "Meta",
        (dynamo.meta("job-runs"),),
        {"connect_timeout_seconds": 2, "read_timeout_seconds": 2, "max_retry_attempts": 1},
    )

    job = UnicodeAttribute(hash_key=True)  # "reports.jobs.every_minute"
    started_at = UTCDateTimeAttribute(null=True)  # the last run's start
    finished_at = UTCDateTimeAttribute(null=True)
    outcome = UnicodeAttribute(null=True)  # "ok" or "failed"
    summary = UnicodeAttribute(null=True)  # its counts, or the error's type (never its message)
    duration_ms = NumberAttribute(null=True)
    last_ok_at = UTCDateTimeAttribute(null=True)  # when a run last finished "ok"
    failures_in_a_row = NumberAttribute(null=True)
