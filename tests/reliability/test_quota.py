"""The quota of bytes in flight under every fault at every AWS call (tests/faults.py): a create charges it, a
file's cancellation and a transfer's deletion give bytes back, compliance changes an allowance.

Invariants after each case (and after what production runs next: the hourly healer): the sender's usage is
exactly the sum of what their transfers still hold (`Transfer.quota_bytes`), so no fault charges twice, loses
a charge, or refunds twice; what the caller was told is true; every change has exactly one audit event.
"""

import itertools
from datetime import timedelta

from django.conf import settings

from reports.models import AuditEvent
from tests.faults import Killed, sweep_faults
from tests.transfers.conftest import (  # noqa: F401 - fixtures the transfer helpers need
    ALICE,
    NOW,
    _bucket_policy_without_conditions_is_not_ours,
    _fresh_kms_key_arn,
    create,
)
from transfers import services
from transfers.errors import TransferError
from transfers.models import FILE_CANCELLED, File, QuotaUsage, Transfer
from transfers.policy import FileDeclared
from transfers.services.expiry import sweep_heal
from transfers.services.quota import quota_backfill, quota_set, quota_state

_n = itertools.count()
GiB = 1024**3
WRITES = {"TransactWriteItems", "UpdateItem", "PutItem", "DeleteItem", "BatchWriteItem", "DeleteObject"}


def _writes(service: str, operation: str) -> bool:
    # The deletion's reads (S3's listing, each file) only make the run fail earlier, which the healer covers.
    return operation in WRITES or operation == "ListObjectVersions"


def _usage_is_what_transfers_hold(owner_id: str = ALICE.id) -> None:
    held = sum(int(t.quota_bytes or 0) for t in Transfer.scan() if t.owner_id == owner_id)  # a Scan: tests only
    try:
        in_flight = int(QuotaUsage.get(owner_id, consistent_read=True).in_flight)
    except QuotaUsage.DoesNotExist:
        in_flight = 0
    assert in_flight == held, f"usage {in_flight} != {held} held by the sender's transfers"


def _events(subject: str, action: str) -> list[AuditEvent]:
    return [e for e in AuditEvent.by_subject.query(subject) if e.action == action and e.outcome == "ok"]


def _unavailable_or_ok(error) -> None:
    assert (
        error is None or isinstance(error, Killed) or (isinstance(error, TransferError) and error.code == "unavailable")
    ), repr(error)


# --- create charges ------------------------------------------------------------------------------------------------


def test_create_charges_once_under_every_fault():
    def setup():
        return {"subject": f"figures {next(_n)}"}

    def act(state):
        return create(subject=state["subject"], files=[FileDeclared(name="a.pdf", size=7 * GiB)])

    def check(state, result, error):
        _unavailable_or_ok(error)
        mine = list(Transfer.scan(Transfer.subject == state["subject"]))
        if error is None:
            assert [t.transfer_id for t in mine] == [result.transfer_id], "told created, but it is not there"
        elif isinstance(error, TransferError):
            assert mine == [], "told to try again, but the transfer is there"
        for transfer in mine:
            assert int(transfer.quota_bytes) == 7 * GiB
            assert len(_events(f"transfer:{transfer.transfer_id}", "transfer.created")) == 1
        _usage_is_what_transfers_hold()

    sweep_faults("create (quota)", setup=setup, act=act, check=check, only=lambda s, o: s == "dynamodb")


# --- deletion and cancellation give back ------------------------------------------------------------------------


def test_delete_now_refunds_once_under_every_fault():
    def setup():
        created = create(files=[FileDeclared(name="a.pdf", size=3 * GiB), FileDeclared(name="b.pdf", size=GiB)])
        return {"id": created.transfer_id}

    def act(state):
        return services.transfer_delete_now(owner_id=ALICE.id, transfer_id=state["id"], now=NOW + timedelta(minutes=5))

    def heal(state):
        sweep_heal(now=NOW + timedelta(hours=1))  # finishes a deletion whose claim a failed run left

    def check(state, result, error):
        transfer = Transfer.get(state["id"])
        ended = _events(f"transfer:{state['id']}", "transfer.deleted")
        if transfer.deleted_at is not None:
            assert transfer.quota_bytes is None, "deleted, but its bytes are still charged"
            assert len(ended) == 1 and ended[0].details["quota_refunded"] == 4 * GiB
        else:
            assert error is not None, "told deleted, but it is not"
            assert int(transfer.quota_bytes) == 4 * GiB and ended == []
        _usage_is_what_transfers_hold()

    sweep_faults("delete now (quota)", setup=setup, act=act, check=check, heal=heal, only=_writes)


def test_cancel_refunds_the_file_once_under_every_fault():
    def setup():
        created = create(files=[FileDeclared(name="a.pdf", size=3 * GiB), FileDeclared(name="b.pdf", size=GiB)])
        return {"id": created.transfer_id, "file_id": created.files[0].file_id}

    def act(state):
        return services.upload_cancel(owner_id=ALICE.id, transfer_id=state["id"], file_id=state["file_id"], now=NOW)

    def check(state, result, error):
        _unavailable_or_ok(error)
        file = File.get(state["id"], state["file_id"])
        transfer = Transfer.get(state["id"])
        if error is None:
            assert file.state == FILE_CANCELLED, "told cancelled, but it is not"
        if file.state == FILE_CANCELLED:
            assert int(transfer.quota_bytes) == GiB, "cancelled, but its bytes are still charged"
            assert len(_events(f"transfer:{state['id']}", "upload.cancelled")) == 1
        else:
            assert int(transfer.quota_bytes) == 4 * GiB
        _usage_is_what_transfers_hold()

    sweep_faults("cancel (quota)", setup=setup, act=act, check=check, only=lambda s, o: s == "dynamodb")


# --- the backfill of transfers made before quotas ------------------------------------------------------------


def test_backfill_charges_once_under_every_fault():
    def setup():
        created = create(files=[FileDeclared(name="a.pdf", size=2 * GiB)])
        # As if made before quotas: no charge on it, and none in the usage.
        Transfer(transfer_id=created.transfer_id).update(actions=[Transfer.quota_bytes.remove()])
        QuotaUsage(user_id=ALICE.id).update(actions=[QuotaUsage.in_flight.add(-2 * GiB)])
        return {"id": created.transfer_id}

    def act(state):
        return quota_backfill(now=NOW)

    def heal(state):
        quota_backfill(now=NOW)  # the operator runs it again after an error

    def check(state, result, error):
        assert int(Transfer.get(state["id"]).quota_bytes) == 2 * GiB, "not charged after the second run"
        assert len(_events(f"transfer:{state['id']}", "quota.charged")) == 1, "charged events != 1"
        _usage_is_what_transfers_hold()

    sweep_faults("quota backfill", setup=setup, act=act, check=check, heal=heal, only=lambda s, o: s == "dynamodb")


# --- compliance changes an allowance ----------------------------------------------------------------------------


def test_quota_change_under_every_fault():
    def setup():
        return {"user_id": f"u-person-{next(_n)}"}

    def act(state):
        return quota_set(
            officer_id="u-carol", user_id=state["user_id"], quota_bytes=500 * GiB, version=0, reason="Migration"
        )

    def check(state, result, error):
        _unavailable_or_ok(error)
        events = _events(f"user:{state['user_id']}", "quota.changed")
        override = quota_state(user_id=state["user_id"]).override
        if error is None:
            assert override == 500 * GiB, "told changed, but it is not"
        assert len(events) == (1 if override is not None else 0), "the change and its event disagree"
        if events:
            assert (events[0].details["old"], events[0].details["new"]) == (settings.FXFER_USER_QUOTA_BYTES, 500 * GiB)
        # The officer submits the same form again (after a 503, or a page that never answered): done, once.
        again = quota_set(
            officer_id="u-carol", user_id=state["user_id"], quota_bytes=500 * GiB, version=0, reason="Migration"
        )
        assert again.new == 500 * GiB
        assert quota_state(user_id=state["user_id"]).override == 500 * GiB
        assert len(_events(f"user:{state['user_id']}", "quota.changed")) == 1, "the same change recorded twice"

    sweep_faults("quota change", setup=setup, act=act, check=check)
