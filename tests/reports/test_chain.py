"""The chain check finds an altered, a removed and an inserted (or replaced) event, a head that does not
match, an event left unchained past the merge delay, and tells expiry by retention from removal."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from reports.chain import MERGE_DELAY, audit_chain_link, audit_chain_verify
from reports.models import AuditChainHead, AuditEvent, AuditLink
from reports.services import audit_record, chained_fields, event_hash
from tests.reports.conftest import events_of

RECENT = datetime.now(UTC) - timedelta(days=1)


def _chain(count: int, *, start: datetime = RECENT) -> None:
    for i in range(count):
        audit_record(
            action="transfer.created", actor="user:a", subject=f"transfer:t{i}", now=start + timedelta(minutes=i)
        )
    audit_chain_link()


def _link(seq: int) -> AuditLink:
    return AuditLink.get(f"{seq:012d}")


def _event(seq: int) -> AuditEvent:
    return AuditEvent.get(_link(seq).event_id)


def test_an_intact_chain_verifies():
    _chain(5)
    result = audit_chain_verify()
    assert result.ok and (result.first_seq, result.last_seq, result.events_checked) == (1, 5, 5)
    out = StringIO()
    call_command("audit_verify", stdout=out)
    assert "OK: events 1..5 intact" in out.getvalue()


def test_an_altered_event_is_found():
    _chain(5)
    event = _event(3)
    event.details = {"recipients": ["someone-else@evil.example"]}
    event.save()
    result = audit_chain_verify()
    assert not result.ok
    assert (result.first_break.kind, result.first_break.seq, result.events_checked) == ("altered", 3, 3)
    with pytest.raises(CommandError, match="BROKEN at event 3: altered") as raised:
        call_command("audit_verify")
    assert raised.value.returncode == 1


@pytest.mark.parametrize("what", ["event", "link", "both"])
def test_a_removed_event_is_found(what):
    _chain(5)
    event, link = _event(2), _link(2)
    if what in {"event", "both"}:
        event.delete()
    if what in {"link", "both"}:
        link.delete()
    result = audit_chain_verify()
    assert (result.first_break.kind, result.first_break.seq) == ("removed", 2)


def test_a_replaced_event_with_a_recomputed_link_is_found_at_the_link_after_it():
    _chain(5)
    forged, link = _event(3), _link(3)
    forged.actor = "user:someone-else"
    forged.save()
    link.hash = event_hash(prev_hash=link.prev_hash, fields=chained_fields(forged, 3))
    link.save()
    result = audit_chain_verify()
    assert (result.first_break.kind, result.first_break.seq) == ("inserted", 4)


def test_a_link_added_after_the_head_is_found():
    _chain(3)
    last = _link(3)
    audit_record(action="transfer.revoked", actor="user:a", subject="transfer:t0")
    [extra_event] = [e for e in AuditEvent.scan() if e.seq is None]
    extra = AuditLink(
        link_id=f"{4:012d}",
        seq=4,
        event_id=extra_event.event_id,
        linked_at=last.linked_at,
        prev_hash=last.hash,
        hash=event_hash(prev_hash=last.hash, fields=chained_fields(extra_event, 4)),
    )
    extra.save()
    result = audit_chain_verify()
    assert (result.first_break.kind, result.first_break.seq) == ("inserted", 4)


def test_a_head_that_does_not_match_is_found():
    _chain(3)
    head = AuditChainHead.get("main")
    head.hash = "f" * 64
    head.save()
    assert audit_chain_verify().first_break.kind == "head_mismatch"


def test_an_event_the_chainer_never_linked_is_a_break_after_the_merge_delay():
    _chain(2)
    written = datetime.now(UTC) - MERGE_DELAY - timedelta(minutes=1)
    late = audit_record(action="transfer.created", actor="user:a", subject="transfer:late", now=written)
    assert audit_chain_verify(now=written + MERGE_DELAY - timedelta(seconds=5)).ok  # still within the delay
    result = audit_chain_verify()
    assert (result.first_break.kind, result.first_break.event_id) == ("unchained", late.event_id)
    with pytest.raises(CommandError, match=f"BROKEN at event id {late.event_id}: unchained"):
        call_command("audit_verify")
    audit_chain_link()
    assert audit_chain_verify().ok


def test_events_past_retention_may_be_gone_but_a_hole_after_them_is_found(settings):
    old = datetime.now(UTC) - timedelta(days=settings.FXFER_AUDIT_RETENTION_DAYS + 10)
    _chain(2, start=old)
    _chain(8)  # seq 3..10
    for seq in (1, 2):  # removed by TTL: expected
        _event(seq).delete()
        _link(seq).delete()
    result = audit_chain_verify()
    assert result.ok and result.first_seq == 3 and result.starts_after_retention
    _event(7).delete()  # inside the retained period: an attack, even though a binary search would step over it
    _link(7).delete()
    result = audit_chain_verify()
    assert (result.first_break.kind, result.first_break.seq, result.first_seq) == ("removed", 7, 3)


def test_the_admin_page_says_where_the_chain_breaks(officer, carol):
    _chain(4)
    _event(2).delete()
    page = officer.post("/admin/audit/verify/", {}).content.decode()
    assert "The chain breaks at event 2: removed" in page
    assert "it was deleted" in page
    [check] = events_of("audit.verified")
    assert check.outcome == "failed" and check.details["break"] == "removed"
    assert check.actor == f"user:{carol.user_id}"
    assert "the check starts at the oldest event still present" in officer.get("/admin/audit/verify/").content.decode()
