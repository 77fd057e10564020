"""Writes: the audit trail and the daily statistics."""

import hashlib
import json
import logging
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from fxfer import dynamo
from reports.errors import AuditError
from reports.models import AuditChainHead, AuditEvent, DailyStats

logger = logging.getLogger(__name__)

CHAIN = "main"
GENESIS_HASH = "0" * 64
_APPEND_ATTEMPTS = 25


@dataclass(frozen=True)
class AuditRecorded:
    event_id: str
    seq: int
    hash: str


def local_day(moment: datetime) -> date:
    """The day in the company's time zone (settings.TIME_ZONE) that `moment` falls on."""
    return moment.astimezone(ZoneInfo(settings.TIME_ZONE)).date()


def event_hash(*, prev_hash: str, fields: dict) -> str:
    """SHA-256 over the previous hash and the event's fields in canonical JSON: change any, and it shows."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


def chained_fields(event: AuditEvent) -> dict:
    """The fields the hash covers (everything but the hash itself and the index helpers derived from them)."""
    return {
        "seq": int(event.seq),
        "at": event.at.astimezone(UTC).isoformat(),
        "action": event.action,
        "outcome": event.outcome,
        "actor": event.actor,
        "subject": event.subject,
        "ip": event.ip,
        "user_agent": event.user_agent,
        "details": event.details,
    }


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
) -> AuditRecorded:
    """Append one event to the hash chain. Concurrent writers serialise on the chain head (conditional write)."""
    at = now or datetime.now(UTC)
    for attempt in range(_APPEND_ATTEMPTS):
        if attempt:
            # Full jitter: writers that collided spread out instead of colliding again.
            time.sleep(random.uniform(0, min(0.5, 0.01 * 2**attempt)))  # noqa: S311 - not cryptographic
        head = _chain_head()
        seq = (int(head.seq) + 1) if head else 1
        prev_hash = head.hash if head else GENESIS_HASH
        event = AuditEvent(
            event_id=f"{seq:012d}",
            seq=seq,
            at=at,
            action=action,
            outcome=outcome,
            actor=actor,
            subject=subject,
            ip=ip,
            user_agent=(user_agent or "")[:512] or None,
            details=details or None,
            prev_hash=prev_hash,
        )
        event.sort_key = f"{at.astimezone(UTC).isoformat()}#{event.event_id}"
        event.day_shard = f"{local_day(at).isoformat()}#{seq % settings.FXFER_AUDIT_DAY_SHARDS}"
        event.expires_at = at + timedelta(days=settings.FXFER_AUDIT_RETENTION_DAYS)
        event.hash = event_hash(prev_hash=prev_hash, fields=chained_fields(event))
        new_head = AuditChainHead(chain=CHAIN, seq=seq, hash=event.hash)
        head_condition = AuditChainHead.seq == int(head.seq) if head else AuditChainHead.chain.does_not_exist()
        try:
            with TransactWrite(connection=dynamo.connection()) as tx:
                tx.save(new_head, condition=head_condition)
                tx.save(event, condition=AuditEvent.event_id.does_not_exist())
        except TransactWriteError:
            continue  # another writer took this seq; read the new head and try again
        logger.info(
            "audit", extra={"audit_action": action, "audit_outcome": outcome, "audit_subject": subject, "seq": seq}
        )
        return AuditRecorded(event_id=event.event_id, seq=seq, hash=event.hash)
    raise AuditError("chain_busy", "Could not append to the audit chain; too many concurrent writers.")


def _chain_head() -> AuditChainHead | None:
    try:
        return AuditChainHead.get(CHAIN, consistent_read=True)
    except AuditChainHead.DoesNotExist:
        return None


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
    overwrite its figures: the whole company ("all") and each department ("dept:<name>").

    Idempotent: running it twice gives the same figures (a department that no longer has events that day loses
    its item). A failure is recorded on the day as "failed", then re-raised.
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
        DailyStats(
            day=day.isoformat(),
            scope=SCOPE_ALL,
            status="failed",
            figures={},
            computed_at=computed_at,
            error=f"{type(exc).__name__}: {exc}"[:1000],
        ).save()
        raise
    return DailyStatsBuilt(day=day, events_read=len(events), figures=figures, departments=departments)


def _stats_item(day: date, scope: str, figures: dict, events_read: int, computed_at: datetime) -> DailyStats:
    return DailyStats(
        day=day.isoformat(),
        scope=scope,
        status="ok",
        figures=figures,
        events_read=events_read,
        computed_at=computed_at,
    )
