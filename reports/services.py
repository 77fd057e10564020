"""Writes: the audit trail and the daily statistics."""

import hashlib
import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from pynamodb.exceptions import PutError, UpdateError

from fxfer.observability import count_audit_event
from reports.models import AuditEvent, DailyStats

logger = logging.getLogger(__name__)

CHAIN = "main"
GENESIS_HASH = "0" * 64
UNCHAINED = "pending"
# An event's details are bounded: DynamoDB refuses items over 400 KB, and a transaction carries up to 100 of them.
DETAILS_MAX_CHARS = 8000
ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class AuditRecorded:
    event_id: str


def local_day(moment: datetime) -> date:
    """The day in the company's time zone (settings.TIME_ZONE) that `moment` falls on."""
    return moment.astimezone(ZoneInfo(settings.TIME_ZONE)).date()


def event_hash(*, prev_hash: str, fields: dict) -> str:
    """SHA-256 over the previous hash and the event's fields in canonical JSON: change any, and it shows."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


def chained_fields(event: AuditEvent, seq: int) -> dict:
    """The fields a link's hash covers: the event's place and everything it says (not the index helpers)."""
    return {
        "seq": int(seq),
        "event_id": event.event_id,
        "at": event.at.astimezone(UTC).isoformat(),
        "action": event.action,
        "outcome": event.outcome,
        "actor": event.actor,
        "subject": event.subject,
        "ip": event.ip,
        "user_agent": event.user_agent,
        "details": event.details,
        "count": int(event.count) if event.count is not None else None,
    }


def event_id_for(op: str | None, n: int = 0) -> str:
    """An event's id: derived from its operation (`op`, the n-th event of it) so a retried operation finds the
    event it wrote before instead of writing a second one; random when the operation has no stable id."""
    if op is None:
        return secrets.token_hex(16)
    return hashlib.sha256(f"{op}#{n}".encode()).hexdigest()[:32]


def bounded_details(details: dict | None) -> dict | None:
    """Details as stored: None when empty; values shortened when the whole would exceed DETAILS_MAX_CHARS."""
    if not details:
        return None
    text = json.dumps(details, ensure_ascii=False, default=str)
    if len(text) <= DETAILS_MAX_CHARS:
        return details
    share = max(64, DETAILS_MAX_CHARS // max(1, len(details)))
    shortened = {}
    for key, value in details.items():
        as_text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        shortened[key] = value if len(as_text) <= share else as_text[: share - 1] + "…"
    shortened["truncated"] = True
    return shortened


def audit_event(
    *,
    action: str,
    actor: str,
    subject: str,
    outcome: str = "ok",
    ip: str | None = None,
    user_agent: str | None = None,
    details: dict | None = None,
    now: datetime | None = None,
    event_id: str | None = None,
) -> AuditEvent:
    """A new, unchained audit event (not yet written): fxfer.change.Change puts it in the transaction of the
    change it records; the chainer links it later."""
    at = (now or datetime.now(UTC)).astimezone(UTC)
    event_id = event_id or event_id_for(None)
    event = AuditEvent(
        event_id=event_id,
        unchained=UNCHAINED,
        at=at,
        action=action,
        outcome=outcome,
        actor=actor,
        subject=subject,
        ip=ip,
        user_agent=(user_agent or "")[:512] or None,
        details=bounded_details(details),
    )
    # The write order breaks ties between events of the same moment (a test's fixed clock, one transaction).
    event.sort_key = f"{at.isoformat()}#{time.time_ns():020d}#{event_id}"
    event.day_shard = f"{local_day(at).isoformat()}#{int(event_id[:8], 16) % settings.FXFER_AUDIT_DAY_SHARDS}"
    event.expires_at = at + timedelta(days=settings.FXFER_AUDIT_RETENTION_DAYS)
    return event


def audit_record(
    *,
    action: str,
    actor: str,
    subject: str,
    outcome: str = "ok",
    ip: str | None = None,
    user_agent: str | None = None,
    details: dict | None = None,
    now: datetime | None = None,
    event_id: str | None = None,
) -> AuditRecorded:
    """Write one audit event on its own (an event that records no other write: a refusal, a sign-in). One
    conditional put of its own item, so nothing is contended; a retry after a lost answer finds its own event."""
    event = audit_event(
        action=action,
        actor=actor,
        subject=subject,
        outcome=outcome,
        ip=ip,
        user_agent=user_agent,
        details=details,
        now=now,
        event_id=event_id,
    )
    try:
        event.save(condition=AuditEvent.event_id.does_not_exist())
    except PutError as exc:
        if getattr(exc, "cause_response_code", "") != "ConditionalCheckFailedException":
            raise
        # Our own earlier write (a retry after a lost answer): the event is there once.
    else:
        count_audit_event(event.action, event.outcome, event.details)
    log_event(event)
    return AuditRecorded(event_id=event.event_id)


def log_event(event: AuditEvent) -> None:
    logger.info(
        "audit",
        extra={"audit_action": event.action, "audit_outcome": event.outcome, "audit_subject": event.subject},
    )


def audit_count(
    *,
    action: str,
    subject: str = "system",
    outcome: str = "refused",
    ip: str | None,
    reason: str | None = None,
    actor: str = ANONYMOUS,
    user_agent: str | None = None,
    details: dict | None = None,
    now: datetime | None = None,
) -> None:
    """Traffic that could flood the trail is counted, not logged hit by hit: one event per action, `actor` (for
    anonymous traffic: its IP), subject, `reason` (a short code from a fixed set, kept in details) and minute,
    whose `count` goes up; its ip, user agent and `details` are the minute's first hit's. Its time is the
    minute's end, so the chainer links it only once the minute is over (an ADD after that is refused and the
    hit counted in the next minute's event)."""
    at = (now or datetime.now(UTC)).astimezone(UTC)
    who = ip if actor == ANONYMOUS else actor
    for minute in (at, at + timedelta(minutes=1)):
        start = minute.replace(second=0, microsecond=0)
        key = f"count:{action}:{outcome}:{who}:{start.isoformat()}" + (f":{reason}" if reason else "")
        key += f":{subject}" if subject != "system" else ""
        event_id = event_id_for(key)
        template = audit_event(
            action=action,
            actor=actor,
            subject=subject,
            outcome=outcome,
            ip=ip,
            user_agent=user_agent,
            details={**({"reason": reason} if reason else {}), **(details or {})},
            now=start + timedelta(minutes=1),
            event_id=event_id,
        )
        template.sort_key = f"{template.at.isoformat()}#{0:020d}#{event_id}"
        fields = ("unchained", "at", "action", "outcome", "actor", "subject", "sort_key", "day_shard")
        actions = [getattr(AuditEvent, name).set(getattr(template, name)) for name in fields]
        # What may differ between the minute's hits (an employee's address or browser, the id probed): its first.
        firsts = ("ip", "user_agent", "details")
        actions += [
            getattr(AuditEvent, n).set(getattr(AuditEvent, n) | getattr(template, n))
            for n in firsts
            if getattr(template, n)
        ]
        actions += [AuditEvent.count.add(1), AuditEvent.expires_at.set(template.expires_at)]
        try:
            AuditEvent(event_id=event_id).update(
                actions=actions,
                condition=AuditEvent.event_id.does_not_exist() | AuditEvent.unchained.exists(),
            )
            count_audit_event(action, outcome, template.details)
            return
        except UpdateError as exc:
            if getattr(exc, "cause_response_code", "") != "ConditionalCheckFailedException":
                raise
    logger.warning("audit.count.dropped", extra={"audit_action": action})


@dataclass(frozen=True)
class DailyStatsBuilt:
    day: date
    events_read: int
    figures: dict
    departments: dict = field(default_factory=dict)  # department → its figures


SCOPE_ALL = "all"
DEPARTMENT_SCOPE = "dept:"


def daily_stats_rebuild(*, day: date, now: datetime | None = None) -> DailyStatsBuilt:
    """Recount one local day from that day's audit events only (Query by day shard, the shards in parallel) and
    overwrite its figures: the whole company ("all") and each department ("dept:<name>"). An aggregated event
    (anonymous traffic, see audit_count) counts as many times as its `count`.

    Idempotent: running it twice gives the same figures (a department that no longer has events that day loses
    its item). A failure never replaces good figures: a day that has them keeps them (status "ok") with the
    failure noted beside them in `error`; only a day without good figures is recorded as "failed". Then the
    error is re-raised.
    """
    from reports import aggregation

    computed_at = now or datetime.now(UTC)
    try:
        events = aggregation.day_events(day)
        figures = aggregation.tally(events).figures()
        departments = {name: tally.figures() for name, tally in aggregation.tally_by_department(events).items()}
        items = [_stats_item(day, SCOPE_ALL, figures, len(events), computed_at)]
        items += [
            _stats_item(day, f"{DEPARTMENT_SCOPE}{name}", dept, dept["events"], computed_at)
            for name, dept in sorted(departments.items())
        ]
        stale = [
            item
            for item in DailyStats.query(day.isoformat(), DailyStats.scope.startswith(DEPARTMENT_SCOPE))
            if item.scope.removeprefix(DEPARTMENT_SCOPE) not in departments
        ]
        with DailyStats.batch_write() as batch:
            for item in stale:
                batch.delete(item)
            # The company-wide item goes last: once it says "ok", the departments are in place too.
            for item in items[1:]:
                batch.save(item)
        items[0].save()
    except Exception as exc:
        try:
            _stats_failed(day, error=f"{type(exc).__name__}: {exc}", failed_at=computed_at)
        except Exception:
            logger.exception("daily_stats.failure_not_recorded", extra={"day": day.isoformat()})
        raise
    return DailyStatsBuilt(day=day, events_read=len(events), figures=figures, departments=departments)


def _stats_failed(day: date, *, error: str, failed_at: datetime) -> None:
    """Record a failed rebuild: beside good figures when the day has them, else as the day's "failed" item."""
    note = f"{failed_at.astimezone(UTC).isoformat()} {error}"[:1000]
    try:
        DailyStats(day=day.isoformat(), scope=SCOPE_ALL).update(
            actions=[DailyStats.error.set(f"Last re-run failed at {note}")],
            condition=DailyStats.status == "ok",
        )
        return
    except UpdateError as exc:
        if getattr(exc, "cause_response_code", "") != "ConditionalCheckFailedException":
            raise
    try:
        DailyStats(
            day=day.isoformat(), scope=SCOPE_ALL, status="failed", figures={}, computed_at=failed_at, error=note
        ).save(condition=DailyStats.status.does_not_exist() | (DailyStats.status == "failed"))
    except PutError as exc:
        if getattr(exc, "cause_response_code", "") != "ConditionalCheckFailedException":
            raise
        # A rebuild that succeeded meanwhile wrote good figures: they stay, and this failure is old news.


def _stats_item(day: date, scope: str, figures: dict, events_read: int, computed_at: datetime) -> DailyStats:
    return DailyStats(
        day=day.isoformat(),
        scope=scope,
        status="ok",
        figures=figures,
        events_read=events_read,
        computed_at=computed_at,
    )
