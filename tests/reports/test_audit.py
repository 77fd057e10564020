"""Audit events are written unchained, each on its own item (nothing shared on the request path); the chainer
links them in time order, one link per event, and anonymous traffic is counted, not logged hit by hit."""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from reports.chain import audit_chain_link, audit_chain_verify
from reports.models import AuditChainHead, AuditEvent, AuditLink
from reports.services import GENESIS_HASH, audit_count, audit_record, chained_fields, event_hash
from tests.faults import ERROR, LOST, TIMEOUT, inject

AT = datetime(2026, 11, 28, 1, 2, 3, tzinfo=UTC)
LATER = AT + timedelta(minutes=10)


def _events() -> list[AuditEvent]:
    return sorted(AuditEvent.scan(), key=lambda e: e.sort_key)


def _links() -> list[AuditLink]:
    return sorted(AuditLink.scan(), key=lambda link: link.seq)


def test_events_are_written_unchained_then_linked_in_time_order():
    first = audit_record(action="signin.succeeded", actor="user:a", subject="user:a", ip="192.0.2.1", now=AT)
    second = audit_record(action="signout", actor="user:a", subject="user:a", now=AT + timedelta(seconds=1))
    assert [e.seq for e in _events()] == [None, None]
    assert audit_chain_link(now=LATER).linked == 2
    links = _links()
    assert [(link.seq, link.event_id) for link in links] == [(1, first.event_id), (2, second.event_id)]
    assert links[0].prev_hash == GENESIS_HASH and links[1].prev_hash == links[0].hash
    events = _events()
    assert links[1].hash == event_hash(prev_hash=links[0].hash, fields=chained_fields(events[1], 2))
    assert [e.seq for e in events] == [1, 2] and events[0].ip == "192.0.2.1"
    assert AuditChainHead.get("main").seq == 2
    assert audit_chain_link(now=LATER).linked == 0  # nothing left: a second run changes nothing


def test_changing_a_recorded_field_breaks_its_hash():
    audit_record(action="transfer.created", actor="user:a", subject="transfer:t1", now=AT)
    audit_chain_link(now=LATER)
    event, link = _events()[0], _links()[0]
    event.actor = "user:mallory"
    assert event_hash(prev_hash=link.prev_hash, fields=chained_fields(event, 1)) != link.hash


def test_day_index_uses_the_local_day():
    # 23:30 UTC on the 27th is 08:30 on the 28th in Tokyo.
    audit_record(action="x", actor="a", subject="s", now=datetime(2026, 11, 27, 23, 30, tzinfo=UTC))
    assert _events()[0].day_shard.startswith("2026-11-28#")


def test_concurrent_writers_never_wait_on_each_other_and_each_event_is_linked_once():
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda i: audit_record(action="x", actor=f"user:{i}", subject="s", now=AT), range(40)))
    assert len({r.event_id for r in results}) == 40
    with ThreadPoolExecutor(max_workers=2) as pool:  # two chainers at once: one wins each batch
        linked = list(pool.map(lambda _: audit_chain_link(now=LATER).linked, range(2)))
    assert sum(linked) == 40
    assert sorted(link.seq for link in _links()) == list(range(1, 41))
    assert len({link.event_id for link in _links()}) == 40
    assert audit_chain_verify(now=LATER).ok


@pytest.mark.parametrize("kind", [ERROR, TIMEOUT, LOST])
def test_a_fault_on_the_write_records_the_event_exactly_once(kind):
    with inject(kind, service="dynamodb", operation="PutItem") as fault:
        audit_record(action="transfer.created", actor="user:a", subject="transfer:t1", now=AT)
    assert fault.fired == 1
    assert [e.action for e in _events()] == ["transfer.created"]


def test_an_event_too_large_is_shortened_not_refused():
    audit_record(action="x", actor="a", subject="s", details={"recipients": ["a" * 50 for _ in range(1000)]}, now=AT)
    [event] = _events()
    assert event.details["truncated"] is True
    assert len(str(event.details)) < 10_000


def test_anonymous_hits_are_counted_per_ip_and_minute_and_linked_once_the_minute_is_over():
    for _ in range(30):
        audit_count(action="signin.refused", ip="198.51.100.7", now=AT)
    audit_count(action="signin.refused", ip="198.51.100.8", now=AT)
    counted = {e.ip: int(e.count) for e in _events()}
    assert counted == {"198.51.100.7": 30, "198.51.100.8": 1}
    assert audit_chain_link(now=AT).linked == 0  # the minute is still open: its count may still grow
    assert audit_chain_link(now=LATER).linked == 2
    audit_count(action="signin.refused", ip="198.51.100.7", now=AT)  # a late hit of a linked minute
    assert sorted(int(e.count) for e in _events() if e.ip == "198.51.100.7") == [1, 30]
    audit_chain_link(now=LATER + timedelta(minutes=5))
    assert audit_chain_verify(now=LATER + timedelta(minutes=10)).ok
