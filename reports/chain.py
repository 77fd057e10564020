"""The audit trail's hash chain: linked off the request path by one writer, checked on demand.

Linking (audit_chain_link, the chainer): request paths write audit events unchained, each in the transaction
of the change it records, so no item is shared by all writers and no request waits on the chain. The chainer
(every minute; locally a thread of `make run`; in tests a call) takes the unchained events in time order and
gives each the next seq: one AuditLink per event whose hash covers the previous link's hash and the event's
fields, committed with the chain head in one transaction (conditional on the head it read, so a second chainer
running at the same time loses and re-reads). An event waits at most MERGE_DELAY to be linked.

Running totals: the same transaction adds the linked events' figures to their local day's DailyRunning item
(reports.aggregation.today_figures reads it for the dashboard). The transaction takes each unchained event once
and commits or not as a whole, with a token that makes botocore's retry a no-op: the totals count every linked
event exactly once, whatever answer is lost and however many chainers run.

Checking (audit_chain_verify): walk the links by seq (BatchGet, a hundred at a time; no Scan), fetch each
event, recompute each hash, check each link and the head, and report any event still unchained past the merge
delay. Links older than the audit retention may have been removed by DynamoDB TTL, so the walk starts at the
oldest link still present: a binary search over seq for the first present link (GetItem), then a look at the
days since the retention boundary (by-day index) for any older event that search stepped over, so a hole in
the retained part of the chain cannot pass for expiry.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.utils.translation import gettext_lazy as _

from fxfer.change import MAX_ITEMS, Change, ChangeRefused
from reports import aggregation
from reports.models import AuditChainHead, AuditEvent, AuditLink, DailyRunning
from reports.services import CHAIN, GENESIS_HASH, UNCHAINED, chained_fields, event_hash, local_day

_BATCH = 100
# Two items per event (its link and its own update), the head and each local day's running totals (one, two
# across midnight): within a transaction's 100 items (the batch is cut shorter when it spans more days).
_LINK_BATCH = 48
# DynamoDB TTL deletes up to ~2 days late; a margin on top.
_TTL_LAG = timedelta(days=3)
MERGE_DELAY = timedelta(minutes=2)

ALTERED, REMOVED, INSERTED, HEAD_MISMATCH, UNLINKED = "altered", "removed", "inserted", "head_mismatch", "unchained"
EXPLANATIONS = {
    ALTERED: _("The event's content does not match its hash: it was changed after it was written."),
    REMOVED: _("The event is missing from the chain: it was deleted."),
    INSERTED: _("The event does not link to the one before it: it was put in or replaced after the fact."),
    HEAD_MISMATCH: _("The chain head does not match the newest event: events were added or removed at the end."),
    UNLINKED: _("The event was written but not linked into the chain within the merge delay."),
}


@dataclass(frozen=True)
class ChainLinked:
    linked: int
    head_seq: int
    complete: bool  # False: the deadline or the limit stopped it with events still unchained


def audit_chain_link(
    *, now: datetime | None = None, deadline: datetime | None = None, limit: int = 10_000
) -> ChainLinked:
    """Link every unchained event whose time has come (an aggregated event's minute is over) into the chain,
    oldest first, stopping at `deadline` (the Lambda's time) or after `limit` events. Safe to run twice at once
    and to retry: the head's condition serialises chainers, the transaction token makes a retry a no-op."""
    linked, head_seq, attempts = 0, 0, 0
    while linked < limit and attempts < limit:
        attempts += 1
        if deadline is not None and datetime.now(UTC) >= deadline:
            return ChainLinked(linked=linked, head_seq=head_seq, complete=False)
        cutoff = (now or datetime.now(UTC)).astimezone(UTC).isoformat()
        keys = [
            e.event_id
            for e in AuditEvent.by_unchained.query(
                UNCHAINED, AuditEvent.sort_key < cutoff, limit=min(_LINK_BATCH, limit - linked)
            )
        ]
        if not keys:
            break
        # The index may lag: the events themselves (consistent) say what is linked and what each holds now.
        found = {e.event_id: e for e in AuditEvent.batch_get(keys, consistent_read=True)}
        events = sorted(
            (found[k] for k in keys if k in found and found[k].unchained),
            key=lambda e: e.sort_key,
        )
        while events and 2 * len(events) + 1 + len({_day_of(e) for e in events}) > MAX_ITEMS:
            events.pop()  # a backlog spanning many days: the rest goes in the next transaction
        if not events:
            continue
        head = _head()
        head_seq = int(head.seq) if head else 0
        prev_hash = head.hash if head else GENESIS_HASH
        link_time = datetime.now(UTC)
        running_since = _running_since(head, link_time)
        digest = hashlib.sha256("|".join(e.event_id for e in events).encode()).hexdigest()[:16]
        # Unique per attempt: botocore's retries resend the same token; another chainer's attempt is another op.
        change = Change(op=f"chain:{head_seq}:{digest}:{secrets.token_hex(8)}", now=link_time)
        seq = head_seq
        for event in events:
            seq += 1
            link_hash = event_hash(prev_hash=prev_hash, fields=chained_fields(event, seq))
            link = AuditLink(
                link_id=f"{seq:012d}",
                seq=seq,
                event_id=event.event_id,
                linked_at=link_time,
                prev_hash=prev_hash,
                hash=link_hash,
                expires_at=event.expires_at,
            )
            change.put(link, condition=AuditLink.link_id.does_not_exist())
            unchanged = (
                AuditEvent.count == int(event.count) if event.count is not None else AuditEvent.count.does_not_exist()
            )
            change.update(
                event,
                actions=[AuditEvent.seq.set(seq), AuditEvent.unchained.remove()],
                condition=AuditEvent.unchained.exists() & unchanged,
            )
            prev_hash = link_hash
        additions = _running_additions(events, last_seq=seq, cutoff=cutoff, running_since=running_since)
        for day, actions in additions:
            change.update(DailyRunning(day=day, scope=aggregation.RUNNING_SCOPE), actions=actions)
        head_condition = AuditChainHead.seq == head_seq if head else AuditChainHead.chain.does_not_exist()
        change.put(
            AuditChainHead(chain=CHAIN, seq=seq, hash=prev_hash, running_since=running_since), condition=head_condition
        )
        try:
            change.commit(send_mails=False)
        except ChangeRefused:
            continue  # another chainer moved the head, or an event changed: read again
        linked += len(events)
        head_seq = seq
    complete = linked < limit
    return ChainLinked(linked=linked, head_seq=head_seq, complete=complete)


def _day_of(event: AuditEvent) -> str:
    return event.day_shard.partition("#")[0]  # the local day the by-day index files it under


def _running_since(head: AuditChainHead | None, link_time: datetime) -> str:
    """The first day whose every event has been added to its running totals (see AuditChainHead)."""
    if head is None:
        return date.min.isoformat()  # a new chain: every event ever linked is in the totals
    if head.running_since:
        return head.running_since
    return (local_day(link_time) + timedelta(days=1)).isoformat()  # today's earlier events were linked without


def _running_additions(events: list[AuditEvent], *, last_seq: int, cutoff: str, running_since: str):
    """(day, update actions) adding these events' figures to each of their days' DailyRunning item."""
    by_day: dict[str, aggregation.Tally] = {}
    kept = aggregation.with_kinds([aggregation.day_event(e) for e in events])  # in the events' order
    for event, kept_event in zip(events, kept, strict=True):
        by_day.setdefault(_day_of(event), aggregation.Tally()).add(kept_event)
    for day, tally in sorted(by_day.items()):
        actions = [
            getattr(DailyRunning, name).add(int(tally.counts[name]))
            for name in aggregation.COUNTED
            if tally.counts[name]
        ]
        if tally.domains:
            actions.append(DailyRunning.domains.add(*sorted(tally.domains)))
        actions += [
            DailyRunning.events.add(tally.events),
            DailyRunning.last_seq.set(last_seq),
            DailyRunning.linked_before.set(cutoff),
            # Set once, when the day's first event is added: whether the totals hold the day from its start.
            DailyRunning.complete.set(DailyRunning.complete | (day >= running_since)),
        ]
        yield day, actions


@dataclass(frozen=True)
class ChainBreak:
    kind: str  # altered, removed, inserted, head_mismatch, unchained
    seq: int
    explanation: str
    at: datetime | None = None  # the event's time, when it is there
    event_id: str | None = None


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
    """Check the chain from `from_seq` (default: the oldest link present) towards the head, at most `limit`
    events, and report the first break: an altered event, a removed one, one inserted or replaced, a head that
    does not match the newest link, or an event left unchained past the merge delay."""
    now = now or datetime.now(UTC)
    head = _head()
    head_seq = int(head.seq) if head else 0
    if head_seq == 0:
        extra = _link(1)
        first_break = _link_break(INSERTED, extra) if extra else _unlinked(now)
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
    previous = _link(start - 1) if start > 1 else None
    previous_hash = previous.hash if previous else (GENESIS_HASH if start == 1 else None)
    checked, oldest_at, first_break = 0, None, None
    for batch_start in range(start, end + 1, _BATCH):
        seqs = range(batch_start, min(end, batch_start + _BATCH - 1) + 1)
        links = {link.seq: link for link in AuditLink.batch_get([f"{s:012d}" for s in seqs], consistent_read=True)}
        events = {
            e.event_id: e
            for e in AuditEvent.batch_get({link.event_id for link in links.values()}, consistent_read=True)
        }
        for seq in seqs:
            link = links.get(seq)
            event = events.get(link.event_id) if link else None
            if event is None:
                first_break = ChainBreak(kind=REMOVED, seq=seq, explanation=EXPLANATIONS[REMOVED])
                break
            oldest_at = oldest_at or event.at
            checked += 1
            recomputed = event_hash(prev_hash=link.prev_hash, fields=chained_fields(event, seq))
            if event.seq is None or int(event.seq) != seq or recomputed != link.hash:
                first_break = _link_break(ALTERED, link, event)
                break
            if previous_hash is not None and link.prev_hash != previous_hash:
                first_break = _link_break(INSERTED, link, event)
                break
            previous_hash = link.hash
        if first_break:
            break
    complete = end == head_seq
    if first_break is None and complete:
        if previous_hash != head.hash:
            first_break = ChainBreak(kind=HEAD_MISMATCH, seq=head_seq, explanation=EXPLANATIONS[HEAD_MISMATCH])
        elif extra := _link(head_seq + 1):
            first_break = _link_break(INSERTED, extra)
        else:
            first_break = _unlinked(now)
    return ChainVerified(
        ok=first_break is None,
        first_seq=start,
        last_seq=(first_break.seq if first_break and first_break.seq else end),
        head_seq=head_seq,
        events_checked=checked,
        oldest_at=oldest_at,
        complete=complete,
        starts_after_retention=oldest > 1,
        first_break=first_break,
    )


def _unlinked(now: datetime) -> ChainBreak | None:
    """The oldest event still unchained past the merge delay, as a break (the chainer stopped, or an event was
    put in the trail bypassing it)."""
    cutoff = (now - MERGE_DELAY).astimezone(UTC).isoformat()
    for event in AuditEvent.by_unchained.query(UNCHAINED, AuditEvent.sort_key < cutoff, limit=1):
        return ChainBreak(
            kind=UNLINKED, seq=0, explanation=EXPLANATIONS[UNLINKED], at=event.at, event_id=event.event_id
        )
    return None


def _link_break(kind: str, link: AuditLink, event: AuditEvent | None = None) -> ChainBreak:
    return ChainBreak(
        kind=kind,
        seq=int(link.seq),
        explanation=EXPLANATIONS[kind],
        at=event.at if event else None,
        event_id=link.event_id,
    )


def _head() -> AuditChainHead | None:
    try:
        return AuditChainHead.get(CHAIN, consistent_read=True)
    except AuditChainHead.DoesNotExist:
        return None


def _link(seq: int) -> AuditLink | None:
    try:
        return AuditLink.get(f"{seq:012d}", consistent_read=True)
    except AuditLink.DoesNotExist:
        return None


def _oldest_present(head_seq: int, now: datetime) -> int:
    """The lowest seq still present. TTL removes the oldest links first, so presence is a suffix of the chain
    (binary search); a hole inside the retained period is then found by looking for older retained events."""
    if _link(1) is not None:
        return 1
    low, high = 1, head_seq  # link `high` may itself be missing; then the walk reports it
    while low < high:
        middle = (low + high) // 2
        if _link(middle) is None:
            low = middle + 1
        else:
            high = middle
    candidate = _link(low)
    if candidate is None:
        return low
    # Any event written since the retention boundary (less the TTL lag) must still be here: look for a linked
    # one older than the candidate on the days from that boundary up to the candidate's day.
    day = local_day(now - timedelta(days=settings.FXFER_AUDIT_RETENTION_DAYS) - _TTL_LAG)
    last = local_day(candidate.linked_at)
    oldest = low
    while day <= last:
        for shard in range(settings.FXFER_AUDIT_DAY_SHARDS):
            for event in AuditEvent.by_day.query(f"{day.isoformat()}#{shard}", limit=5):
                if event.seq is not None:
                    oldest = min(oldest, int(event.seq))
        if oldest < low:
            return oldest
        day += timedelta(days=1)
    return oldest
