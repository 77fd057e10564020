"""Delete now: the sender (and compliance) deletes a transfer's files at once, every version, with a receipt per
file; its links die at once; a transfer on legal hold is refused with a clear error. Through the services and
through the sender's pages (Django's test client, in-process moto)."""

from datetime import timedelta

import pytest
from django.conf import settings

from fxfer import aws
from reports.models import AuditEvent
from tests.transfers.conftest import ALICE, MALLORY, NOW, Sender, code_from, later, put_object_as_browser
from tests.transfers.conftest import ready_transfer as _ready_transfer
from tests.transfers.test_views import alice_id, sign_in
from transfers import selectors, services
from transfers.errors import TransferError
from transfers.models import File, Transfer
from transfers.policy import FileDeclared

BOB = "bob@partner.example"
OFFICER = "u-carol"


def _receipts(transfer_id: str) -> list[AuditEvent]:
    return [e for e in AuditEvent.by_subject.query(f"transfer:{transfer_id}") if e.action == "file.deleted"]


def _versions(key: str) -> list:
    page = aws.client("s3").list_object_versions(Bucket=settings.FXFER_BUCKET, Prefix=key)
    return [v for v in page.get("Versions", []) + page.get("DeleteMarkers", []) if v["Key"] == key]


def _refused(code: str, call) -> TransferError:
    with pytest.raises(TransferError) as refused:
        call()
    assert refused.value.code == code
    return refused.value


def test_the_sender_deletes_now_with_receipts_and_the_links_die(mailoutbox):
    created, tokens = _ready_transfer(recipients=[BOB], mailoutbox=mailoutbox)
    services.guest_code_send(token=tokens[BOB], now=NOW)
    access = services.guest_code_verify(token=tokens[BOB], code=code_from(mailoutbox, BOB), now=NOW)

    deleted = services.transfer_delete_now(
        owner_id=ALICE.id, transfer_id=created.transfer_id, ip="203.0.113.5", user_agent="UA", now=later(5)
    )

    [receipt] = deleted.receipts
    assert receipt.key == created.files[0].key and receipt.by == "sender" and receipt.size == len(b"hello world")
    assert _versions(created.files[0].key) == []
    transfer = Transfer.get(created.transfer_id)
    assert transfer.status == "deleted" and transfer.deleted_by == "sender" and transfer.due_shard is None
    [event] = _receipts(created.transfer_id)
    assert event.actor == f"user:{ALICE.id}" and event.ip == "203.0.113.5" and event.details["by"] == "sender"
    # Well before the expiry, nothing of it works any more.
    _refused("not_found", lambda: services.guest_link_open(token=tokens[BOB], now=later(6)))
    _refused(
        "not_found",
        lambda: services.guest_download_url(
            transfer_id=access.transfer_id,
            recipient_id=access.recipient_id,
            grant=access.grant,
            file_id=created.files[0].file_id,
            now=later(6),
        ),
    )
    detail = selectors.transfer_detail_for_owner(owner_id=ALICE.id, transfer_id=created.transfer_id, now=later(6))
    assert detail.summary.status == "deleted" and [r.key for r in detail.receipts] == [created.files[0].key]
    assert detail.receipts[0].checksum.startswith(("sha256:", "etag:"))
    # The sweep later finds nothing more to do, and writes nothing twice.
    assert services.expiry_sweep(now=transfer.expires_at).transfers_expired == 0
    assert len(_receipts(created.transfer_id)) == 1


def test_deleting_twice_or_someone_elses_transfer_is_refused(mailoutbox):
    created, _tokens = _ready_transfer(recipients=[BOB], mailoutbox=mailoutbox)
    _refused("not_found", lambda: services.transfer_delete_now(owner_id=MALLORY.id, transfer_id=created.transfer_id))
    assert _versions(created.files[0].key)
    services.transfer_delete_now(owner_id=ALICE.id, transfer_id=created.transfer_id, now=later(1))
    _refused(
        "state_conflict",
        lambda: services.transfer_delete_now(owner_id=ALICE.id, transfer_id=created.transfer_id, now=later(2)),
    )
    assert len(_receipts(created.transfer_id)) == 1


def test_a_pending_transfer_can_be_deleted_and_is_never_released_after(mailoutbox):
    created = services.transfer_create(
        sender=ALICE,
        recipients=[BOB],
        files=[FileDeclared(name="a.pdf", size=3), FileDeclared(name="b.pdf", size=3)],
        now=NOW,
    )
    first, second = created.files
    services.upload_authorize(owner_id=ALICE.id, transfer_id=created.transfer_id, file_id=first.file_id, now=NOW)
    put_object_as_browser(first.key, b"abc")
    services.upload_done(owner_id=ALICE.id, transfer_id=created.transfer_id, file_id=first.file_id, now=NOW)
    services.upload_authorize(owner_id=ALICE.id, transfer_id=created.transfer_id, file_id=second.file_id, now=NOW)

    deleted = services.transfer_delete_now(owner_id=ALICE.id, transfer_id=created.transfer_id, now=later(1))
    assert [r.key for r in deleted.receipts] == [first.key]  # the second never arrived: nothing to receipt
    # The second file's upload policy is still valid: its object arrives late, is never released, and the
    # orphan sweep removes it.
    put_object_as_browser(second.key, b"def")
    assert services.file_verify(key=second.key, now=later(2)).outcome == "deleted"
    assert not [m for m in mailoutbox if BOB in m.to]
    assert services.expiry_sweep(now=later(60)).orphan_objects_deleted == 1
    assert _versions(second.key) == []
    assert File.get(created.transfer_id, second.file_id).state == "deleted"


def test_compliance_deletes_now_with_the_same_receipts(mailoutbox):
    created, _tokens = _ready_transfer(recipients=[BOB], mailoutbox=mailoutbox)
    deleted = services.transfer_delete_for_compliance(
        officer_id=OFFICER, transfer_id=created.transfer_id, reason="Sent to the wrong customer", now=later(1)
    )
    assert [r.by for r in deleted.receipts] == ["compliance"]
    [event] = _receipts(created.transfer_id)
    assert event.actor == f"user:{OFFICER}" and event.details["reason"] == "Sent to the wrong customer"
    assert Transfer.get(created.transfer_id).deleted_by == "compliance"


def test_delete_now_on_legal_hold_is_refused_clearly_and_audited(mailoutbox):
    created, _tokens = _ready_transfer(recipients=[BOB], mailoutbox=mailoutbox)
    services.transfer_hold_set(officer_id=OFFICER, transfer_id=created.transfer_id, reason="Case 2026-19")
    error = _refused(
        "on_legal_hold",
        lambda: services.transfer_delete_now(owner_id=ALICE.id, transfer_id=created.transfer_id, now=later(1)),
    )
    assert "legal hold" in error.message and error.status == 409
    _refused(
        "on_legal_hold",
        lambda: services.transfer_delete_for_compliance(
            officer_id=OFFICER, transfer_id=created.transfer_id, reason="Tidy up", now=later(1)
        ),
    )
    assert _versions(created.files[0].key) and _receipts(created.transfer_id) == []
    refusals = [
        e
        for e in AuditEvent.by_subject.query(f"transfer:{created.transfer_id}")
        if e.action == "transfer.deleted" and e.outcome == "refused"
    ]
    assert [e.details["refused"] for e in refusals] == ["on_legal_hold", "on_legal_hold"]
    _refused(
        "state_conflict",
        lambda: services.transfer_hold_set(officer_id=OFFICER, transfer_id=created.transfer_id, reason="Again"),
    )


# --- the sender's pages ---------------------------------------------------------------------------------------


@pytest.fixture
def alice_client(client):
    client.defaults["HTTP_USER_AGENT"] = "pytest-browser/1.0"
    return sign_in(client)


def _ready_for_signed_in_alice(mailoutbox):
    sender = Sender(id=alice_id(), email="alice@example.com", display_name="Alice")
    created = services.transfer_create(
        sender=sender, recipients=[BOB], files=[FileDeclared(name="見積書.pdf", size=5)], expires_in=timedelta(days=3)
    )
    file = created.files[0]
    services.upload_authorize(owner_id=sender.id, transfer_id=created.transfer_id, file_id=file.file_id)
    put_object_as_browser(file.key, b"12345")
    assert services.upload_done(owner_id=sender.id, transfer_id=created.transfer_id, file_id=file.file_id).released
    return created


def test_the_sender_confirms_then_sees_the_receipts(alice_client, mailoutbox):
    created = _ready_for_signed_in_alice(mailoutbox)
    url = f"/transfers/{created.transfer_id}/delete"
    page = alice_client.get(f"/transfers/{created.transfer_id}/").content.decode()
    assert url in page and "Delete files now" in page

    confirm = alice_client.get(url)
    assert confirm.status_code == 200 and "Yes, delete the files now" in confirm.content.decode()
    assert _versions(created.files[0].key)  # a GET deletes nothing

    done = alice_client.post(url, follow=True)
    html = done.content.decode()
    assert done.status_code == 200 and "Deletion receipts" in html
    assert created.files[0].key in html and "見積書.pdf" in html and "etag:" in html
    assert _versions(created.files[0].key) == []
    again = alice_client.post(url)
    assert again.status_code == 409


def test_another_sender_gets_the_same_404_for_delete(client, mailoutbox):
    created, _tokens = _ready_transfer(recipients=[BOB], mailoutbox=mailoutbox)
    sign_in(client)
    assert client.get(f"/transfers/{created.transfer_id}/delete").status_code == 404
    assert client.post(f"/transfers/{created.transfer_id}/delete").status_code == 404
    assert _versions(created.files[0].key)


# --- crash consistency (issue 11) ------------------------------------------------------------------------------


def test_a_delete_now_killed_midway_is_finished_by_the_hourly_job_with_the_senders_receipt(mailoutbox):
    from tests.faults import ERROR, inject
    from transfers.jobs import expire_sweep

    created, tokens = _ready_transfer(recipients=[BOB], mailoutbox=mailoutbox)
    key = created.files[0].key
    versions = [v["VersionId"] for v in _versions(key)]
    # Killed after S3 deleted the object, before the file's state and receipt committed.
    with inject(ERROR, service="dynamodb", operation="TransactWriteItems", nth=2, times=10):
        with pytest.raises(Exception):  # noqa: B017 - whatever the killed request saw
            services.transfer_delete_now(owner_id=ALICE.id, transfer_id=created.transfer_id, now=later(5))
    assert _versions(key) == [] and _receipts(created.transfer_id) == []
    _refused("not_found", lambda: services.guest_link_open(token=tokens[BOB], now=later(6)))  # links died first

    result = expire_sweep({"time": later(65).isoformat()}, None)  # well before the transfer's expiry
    assert result["deletions_finished"] == 1
    [receipt] = _receipts(created.transfer_id)
    assert receipt.details["version_ids"] == versions and receipt.details["by"] == "sender"
    # The job wrote it, finishing what the sender asked for.
    assert receipt.actor == "job:expire_sweep" and receipt.details["reason"] == "finishing an interrupted deletion"
    transfer = Transfer.get(created.transfer_id)
    assert transfer.status == "deleted" and transfer.deleted_by == "sender" and transfer.pending_shard is None
    [ended] = [
        e for e in AuditEvent.by_subject.query(f"transfer:{created.transfer_id}") if e.action == "transfer.deleted"
    ]
    assert ended.outcome == "ok" and ended.details["files_deleted"] == 1


def test_a_lost_answer_on_the_legal_hold_leaves_it_held_with_one_event(mailoutbox):
    from tests.faults import LOST, inject

    created, _tokens = _ready_transfer(recipients=[BOB], mailoutbox=mailoutbox)
    with inject(LOST, service="dynamodb", operation="TransactWriteItems") as fault:
        held = services.transfer_hold_set(officer_id=OFFICER, transfer_id=created.transfer_id, reason="Case 2026-22")
    assert fault.fired == 1 and held.held and Transfer.get(created.transfer_id).held
    events = [e for e in AuditEvent.by_subject.query(f"transfer:{created.transfer_id}") if e.action == "legal_hold.set"]
    assert [e.outcome for e in events] == ["ok"]
    assert services.expiry_sweep(now=Transfer.get(created.transfer_id).expires_at).files_deleted == 0
    assert _versions(created.files[0].key)
