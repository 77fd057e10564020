"""The audit trail is append-only and hash-chained; concurrent writers never fork or skip the chain."""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from itertools import pairwise

from reports.models import AuditEvent
from reports.services import GENESIS_HASH, audit_record, chained_fields, event_hash


def _chain() -> list[AuditEvent]:
    return sorted(AuditEvent.scan(), key=lambda e: e.sort_key)


def test_events_are_chained_in_order():
    at = datetime(2026, 11, 28, 1, 2, 3, tzinfo=UTC)
    first = audit_record(action="signin.succeeded", actor="user:a", subject="user:a", ip="192.0.2.1", now=at)
    second = audit_record(action="signout", actor="user:a", subject="user:a", now=at)
    events = _chain()
    assert [e.seq for e in events] == [1, 2]
    assert events[0].prev_hash == GENESIS_HASH
    assert events[1].prev_hash == first.hash
    assert second.hash == event_hash(prev_hash=first.hash, fields=chained_fields(events[1]))
    assert events[0].ip == "192.0.2.1"


def test_changing_a_recorded_field_breaks_its_hash():
    audit_record(action="transfer.created", actor="user:a", subject="transfer:t1")
    event = _chain()[0]
    event.actor = "user:mallory"
    assert event_hash(prev_hash=event.prev_hash, fields=chained_fields(event)) != event.hash


def test_day_index_uses_the_local_day():
    # 23:30 UTC on the 27th is 08:30 on the 28th in Tokyo.
    audit_record(action="x", actor="a", subject="s", now=datetime(2026, 11, 27, 23, 30, tzinfo=UTC))
    assert _chain()[0].day_shard.startswith("2026-11-28#")


def test_concurrent_writers_get_distinct_consecutive_seqs():
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda i: audit_record(action="x", actor=f"user:{i}", subject="s"), range(12)))
    events = _chain()
    assert sorted(r.seq for r in results) == list(range(1, 13))
    assert [e.seq for e in events] == list(range(1, 13))
    for previous, current in pairwise(events):
        assert current.prev_hash == previous.hash
