"""The audit chain verifies after every fault case, without re-reading the whole chain each time.

A sweep runs dozens of cases in one test, each adding events; verifying the chain from its first link after every
case read it all again (quadratic: two thirds of the slowest sweep's time). `chain_verifies` links what is
pending, then checks the links added since its last call in this test, joined to the last link it verified (whose
hash must not have changed), and the head. The `chain_verified_whole` fixture (autouse in this package) then
checks the whole chain once at the end of every test that called it, so a case that rewrote an older link is still
caught.
"""

from datetime import UTC, datetime

from reports.chain import audit_chain_link, audit_chain_verify
from reports.models import AuditLink

_state: dict = {"seq": 0, "hash": None, "now": None}


def reset() -> None:
    _state.update(seq=0, hash=None, now=None)


def _unchanged(seq: int, hash_: str | None) -> bool:
    if not seq:
        return False
    try:
        return AuditLink.get(f"{seq:012d}", consistent_read=True).hash == hash_
    except AuditLink.DoesNotExist:
        return False


def chain_verifies(now: datetime | None = None) -> None:
    now = now or datetime.now(UTC)
    audit_chain_link(now=now)
    start = _state["seq"] if _unchanged(_state["seq"], _state["hash"]) else None
    verified = audit_chain_verify(from_seq=start, now=now)
    assert verified.ok, f"the audit chain does not verify: {verified.first_break}"
    head = verified.head_seq
    _state.update(seq=head, hash=AuditLink.get(f"{head:012d}", consistent_read=True).hash if head else None, now=now)


def verify_whole() -> None:
    """The whole chain, once, if this test verified part of it."""
    if _state["now"] is None:
        return
    now = _state["now"]
    reset()
    verified = audit_chain_verify(now=now)
    assert verified.ok, f"the audit chain does not verify as a whole: {verified.first_break}"
