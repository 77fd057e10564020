"""Verify the audit trail's hash chain: walk the events by seq, recompute each hash, check each link and the head.

Events are fetched by id (the zero-padded seq) with BatchGet, a hundred at a time; nothing is Scanned. Events
older than the audit retention may have been removed by DynamoDB TTL, so the walk starts at the oldest event
still present. Finding it: a binary search over seq for the first present event (GetItem), then a look at the
days since the retention boundary (by-day index) for any older event that search stepped over, so a hole in
the retained part of the chain cannot pass for expiry.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings

from reports.models import AuditChainHead, AuditEvent
from reports.services import CHAIN, GENESIS_HASH, chained_fields, event_hash, local_day

_BATCH = 100
# DynamoDB TTL deletes up to ~2 days late; a margin on top.
_TTL_LAG = timedelta(days=3)

ALTERED, REMOVED, INSERTED, HEAD_MISMATCH = "altered", "removed", "inserted", "head_mismatch"
EXPLANATIONS = {
    ALTERED: "The event's content does not match its hash: it was changed after it was written.",
    REMOVED: "The event is missing from the chain: it was deleted.",
    INSERTED: "The event does not link to the one before it: it was put in or replaced after the fact.",
    HEAD_MISMATCH: "The chain head does not match the newest event: events were added or removed at the end.",
}


@dataclass(frozen=True)
class ChainBreak:
    kind: str  # altered, removed, inserted, head_mismatch
    seq: int
    explanation: str
    at: datetime | None = None  # the event's time, when it is there


@dataclass(frozen=True)
class ChainVerified:
    ok: bool
    first_seq: int  # the oldest event checked (0: the chain is empty)
    last_seq: int  # the newest event checked
    head_seq: int  # the chain head's seq
    events_checked: int
    oldest_at: datetime | None
    complete: bool  # False when `limit` stopped the walk before the head
    starts_after_retention: bool  # older events are gone (expected after FXFER_AUDIT_RETENTION_DAYS)
    first_break: ChainBreak | None


def audit_chain_verify(
    *, from_seq: int | None = None, limit: int | None = None, now: datetime | None = None
) -> ChainVerified:
    """Check the chain from `from_seq` (default: the oldest event present) towards the head, at most `limit`
    events, and report the first break: an altered event, a removed one, one inserted or replaced, or a head
    that does not match the newest event."""
    now = now or datetime.now(UTC)
    head = _head()
    head_seq = int(head.seq) if head else 0
    if head_seq == 0:
        extra = _event(1)
        first_break = _break(INSERTED, extra) if extra else None
        return ChainVerified(
            ok=first_break is None,
            first_seq=0,
            last_seq=0,
            head_seq=0,
            events_checked=0,
            oldest_at=None,
            complete=True,
            starts_after_retention=False,
            first_break=first_break,
        )
    oldest = _oldest_present(head_seq, now)
    start = max(from_seq or oldest, oldest, 1)
    end = head_seq if not limit else min(head_seq, start + int(limit) - 1)
    previous = _event(start - 1) if start > 1 else None
    previous_hash = previous.hash if previous else (GENESIS_HASH if start == 1 else None)
    checked, oldest_at, first_break = 0, None, None
    for batch_start in range(start, end + 1, _BATCH):
        seqs = range(batch_start, min(end, batch_start + _BATCH - 1) + 1)
        found = {e.event_id: e for e in AuditEvent.batch_get([f"{s:012d}" for s in seqs])}
        for seq in seqs:
            event = found.get(f"{seq:012d}")
            if event is None:
                first_break = ChainBreak(kind=REMOVED, seq=seq, explanation=EXPLANATIONS[REMOVED])
                break
            oldest_at = oldest_at or event.at
            checked += 1
            recomputed = event_hash(prev_hash=event.prev_hash, fields=chained_fields(event))
            if int(event.seq) != seq or recomputed != event.hash:
                first_break = _break(ALTERED, event)
                break
            if previous_hash is not None and event.prev_hash != previous_hash:
                first_break = _break(INSERTED, event)
                break
            previous_hash = event.hash
        if first_break:
            break
    complete = end == head_seq
    if first_break is None and complete:
        if previous_hash != head.hash:
            first_break = ChainBreak(kind=HEAD_MISMATCH, seq=head_seq, explanation=EXPLANATIONS[HEAD_MISMATCH])
        elif extra := _event(head_seq + 1):
            first_break = _break(INSERTED, extra)
    return ChainVerified(
        ok=first_break is None,
        first_seq=start,
        last_seq=(first_break.seq if first_break else end),
        head_seq=head_seq,
        events_checked=checked,
        oldest_at=oldest_at,
        complete=complete,
        starts_after_retention=oldest > 1,
        first_break=first_break,
    )


def _break(kind: str, event: AuditEvent) -> ChainBreak:
    return ChainBreak(kind=kind, seq=int(event.seq), explanation=EXPLANATIONS[kind], at=event.at)


def _head() -> AuditChainHead | None:
    try:
        return AuditChainHead.get(CHAIN, consistent_read=True)
    except AuditChainHead.DoesNotExist:
        return None


def _event(seq: int) -> AuditEvent | None:
    try:
        return AuditEvent.get(f"{seq:012d}", consistent_read=True)
    except AuditEvent.DoesNotExist:
        return None


def _oldest_present(head_seq: int, now: datetime) -> int:
    """The lowest seq still present. TTL removes the oldest events first, so presence is a suffix of the chain
    (binary search); a hole inside the retained period is then found by looking for older retained events."""
    if _event(1) is not None:
        return 1
    low, high = 1, head_seq  # event `high` may itself be missing; then the walk reports it
    while low < high:
        middle = (low + high) // 2
        if _event(middle) is None:
            low = middle + 1
        else:
            high = middle
    candidate = _event(low)
    if candidate is None:
        return low
    # Any event written since the retention boundary (less the TTL lag) must still be here: look for one older
    # than the candidate on the days from that boundary up to the candidate's day.
    day = local_day(now - timedelta(days=settings.FXFER_AUDIT_RETENTION_DAYS) - _TTL_LAG)
    last = local_day(candidate.at)
    oldest = low
    while day <= last:
        for shard in range(settings.FXFER_AUDIT_DAY_SHARDS):
            for event in AuditEvent.by_day.query(f"{day.isoformat()}#{shard}", limit=1):
                oldest = min(oldest, int(event.seq))
        if oldest < low:
            return oldest
        day += timedelta(days=1)
    return oldest
