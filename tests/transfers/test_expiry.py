"""Files do not stay (issue 6), time-controlled on moto: expiry holds at read time before any sweep; the
hourly sweep deletes every version and writes one receipt per file, once, however often and concurrently it
runs; held transfers survive it and go after release; abandoned uploads and objects without a live record are
collected; ephemeral items carry short TTLs while transfers and audit events keep the audit retention."""

import threading
from datetime import timedelta

import pytest
from django.conf import settings

from fxfer import aws, dynamo
from reports.models import AuditEvent
from tests.faults import ERROR, LOST, inject, recording
from tests.transfers.conftest import ALICE, NOW, code_from, create, later, put_object_as_browser, ready_transfer
from transfers import services, storage
from transfers.errors import TransferError
from transfers.jobs import expire_sweep
from transfers.models import File, GuestGrant, OneTimeCode, RateLimit, Recipient, Transfer
from transfers.policy import FileDeclared
from transfers.services.expiry import orphan_objects_sweep

BOB = "bob@partner.example"
OFFICER = "u-carol"


def _events(transfer_id: str, action: str | None = None) -> list[AuditEvent]:
    events = list(AuditEvent.by_subject.query(f"transfer:{transfer_id}"))
    return [e for e in events if action is None or e.action == action]


def _versions(key: str) -> list:
    page = aws.client("s3").list_object_versions(Bucket=settings.FXFER_BUCKET, Prefix=key)
    return [v for v in page.get("Versions", []) + page.get("DeleteMarkers", []) if v["Key"] == key]


def _refused(code: str, call) -> None:
    with pytest.raises(TransferError) as refused:
        call()
    assert refused.value.code == code


@pytest.fixture
def ready(mailoutbox):
    created, tokens = ready_transfer(recipients=[BOB], mailoutbox=mailoutbox)
    return created, tokens


def _expires_at(created) -> object:
    return Transfer.get(created.transfer_id).expires_at


# --- expiry at read time ---------------------------------------------------------------------------------------


def test_link_code_and_download_fail_after_expiry_before_any_sweep(ready, mailoutbox):
    created, tokens = ready
    expires_at = _expires_at(created)
    before = expires_at - timedelta(minutes=5)
    services.guest_code_send(token=tokens[BOB], now=before)
    code = code_from(mailoutbox, BOB)
    access = services.guest_code_verify(token=tokens[BOB], code=code, now=before)
    services.guest_code_send(token=tokens[BOB], now=before + timedelta(minutes=1))
    second_code = code_from(mailoutbox, BOB)

    _refused("not_found", lambda: services.guest_link_open(token=tokens[BOB], now=expires_at))
    _refused("not_found", lambda: services.guest_code_send(token=tokens[BOB], now=expires_at))
    _refused("not_found", lambda: services.guest_code_verify(token=tokens[BOB], code=second_code, now=expires_at))
    _refused(
        "not_found",
        lambda: services.guest_download_url(
            transfer_id=access.transfer_id,
            recipient_id=access.recipient_id,
            grant=access.grant,
            file_id=created.files[0].file_id,
            now=expires_at,
        ),
    )
    # No sweep has run: the object is still there, and only the read-time check refused.
    assert _versions(created.files[0].key)
    assert Transfer.get(created.transfer_id).deleted_at is None


# --- the sweep --------------------------------------------------------------------------------------------------


def test_the_sweep_deletes_every_version_kills_links_and_writes_a_receipt(ready):
    created, tokens = ready
    file = created.files[0]
    put_object_as_browser(file.key, b"a stray later version")  # versioning keeps both
    assert len(_versions(file.key)) == 2
    expires_at = _expires_at(created)

    assert services.expiry_sweep(now=expires_at - timedelta(seconds=1)).transfers_expired == 0
    assert len(_versions(file.key)) == 2

    result = expire_sweep({"time": expires_at.isoformat()}, None)
    assert result["transfers_expired"] == 1 and result["files_deleted"] == 1

    assert _versions(file.key) == []
    transfer = Transfer.get(created.transfer_id)
    assert transfer.status == "expired" and transfer.deleted_by == "sweep" and transfer.due_shard is None
    assert File.get(created.transfer_id, file.file_id).state == "deleted"
    assert all(r.token_hash is None for r in Recipient.query(created.transfer_id))
    [receipt] = _events(created.transfer_id, "file.deleted")
    details = receipt.details
    assert receipt.actor == "job:expire_sweep"
    assert details["key"] == file.key and details["size"] == len(b"hello world") and details["by"] == "sweep"
    assert details["etag"] and len(details["version_ids"]) == 2
    assert details["deleted_at"] == expires_at.isoformat()
    [ended] = _events(created.transfer_id, "transfer.expired")
    assert ended.details["files_deleted"] == 1
    _refused("not_found", lambda: services.guest_link_open(token=tokens[BOB], now=expires_at))


def test_a_second_sweep_deletes_nothing_and_writes_no_second_receipt(ready):
    created, _tokens = ready
    expires_at = _expires_at(created)
    assert services.expiry_sweep(now=expires_at).transfers_expired == 1
    again = services.expiry_sweep(now=expires_at + timedelta(hours=1))
    assert again.transfers_expired == 0 and again.files_deleted == 0
    assert len(_events(created.transfer_id, "file.deleted")) == 1
    assert len(_events(created.transfer_id, "transfer.expired")) == 1


def test_concurrent_sweeps_delete_once(mailoutbox):
    transfers = [ready_transfer(recipients=[BOB], mailoutbox=mailoutbox)[0] for _ in range(3)]
    expires_at = max(_expires_at(c) for c in transfers)
    results, errors = [], []
    start = threading.Barrier(4)

    def sweep():
        try:
            start.wait()
            results.append(services.expiry_sweep(now=expires_at))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=sweep) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(r.transfers_expired for r in results) == 3
    assert sum(r.files_deleted for r in results) == 3
    for created in transfers:
        assert len(_events(created.transfer_id, "file.deleted")) == 1
        assert len(_events(created.transfer_id, "transfer.expired")) == 1
        assert _versions(created.files[0].key) == []


def test_a_revoked_transfer_is_swept_at_its_expiry_and_stays_revoked(ready):
    created, _tokens = ready
    services.transfer_revoke(owner_id=ALICE.id, transfer_id=created.transfer_id, now=later(5))
    services.expiry_sweep(now=_expires_at(created))
    transfer = Transfer.get(created.transfer_id)
    assert transfer.status == "revoked" and transfer.deleted_at is not None
    assert _versions(created.files[0].key) == []
    assert len(_events(created.transfer_id, "file.deleted")) == 1


# --- legal hold ---------------------------------------------------------------------------------------------------


def test_a_held_transfer_survives_the_sweep_and_goes_after_release(ready):
    created, _tokens = ready
    key = created.files[0].key
    expires_at = _expires_at(created)
    held = services.transfer_hold_set(officer_id=OFFICER, transfer_id=created.transfer_id, reason="Case 2026-17")
    assert held.versions == 1
    assert all(storage.legal_hold_status(key=key, version_id=v["VersionId"]) == "ON" for v in _versions(key))
    assert Transfer.get(created.transfer_id).purge_at is None  # the metadata outlives the hold

    swept = services.expiry_sweep(now=expires_at + timedelta(days=40))
    assert swept.transfers_expired == 0 and swept.held_skipped == 1
    assert _versions(key) and _events(created.transfer_id, "file.deleted") == []
    _refused(
        "on_legal_hold",
        lambda: services.transfer_delete_now(owner_id=ALICE.id, transfer_id=created.transfer_id, now=later(1)),
    )

    services.transfer_hold_release(
        officer_id=OFFICER, transfer_id=created.transfer_id, reason="Case closed", now=expires_at + timedelta(days=41)
    )
    released = Transfer.get(created.transfer_id)
    assert not released.held and released.purge_at >= expires_at + timedelta(days=settings.FXFER_AUDIT_RETENTION_DAYS)
    assert services.expiry_sweep(now=expires_at + timedelta(days=41, hours=1)).transfers_expired == 1
    assert _versions(key) == []
    assert len(_events(created.transfer_id, "file.deleted")) == 1
    [hold] = _events(created.transfer_id, "legal_hold.set")
    [release] = _events(created.transfer_id, "legal_hold.released")
    assert hold.actor == f"user:{OFFICER}" and hold.details["reason"] == "Case 2026-17"
    assert release.details["reason"] == "Case closed"


def test_an_object_held_in_s3_is_never_reported_deleted(ready):
    """Should the record and S3 disagree, S3's refusal wins: the transfer is not marked deleted."""
    created, _tokens = ready
    storage.legal_hold(key=created.files[0].key, on=True)
    swept = services.expiry_sweep(now=_expires_at(created))
    assert swept.transfers_expired == 0 and swept.held_skipped == 1
    transfer = Transfer.get(created.transfer_id)
    assert transfer.deleted_at is None and transfer.deletion_claimed_at is None
    assert _events(created.transfer_id, "file.deleted") == []


# --- orphans ------------------------------------------------------------------------------------------------------


def test_an_upload_abandoned_before_release_is_collected_after_the_configured_time(settings):
    settings.FXFER_ORPHAN_PENDING_HOURS = 24
    created = create(
        files=[FileDeclared(name="a.pdf", size=3), FileDeclared(name="b.pdf", size=3)], expires_in=timedelta(days=7)
    )
    first = created.files[0]
    services.upload_authorize(owner_id=ALICE.id, transfer_id=created.transfer_id, file_id=first.file_id, now=NOW)
    put_object_as_browser(first.key, b"abc")
    services.upload_done(owner_id=ALICE.id, transfer_id=created.transfer_id, file_id=first.file_id, now=NOW)
    assert Transfer.get(created.transfer_id).status == "pending"  # the second file never came

    assert services.expiry_sweep(now=later(days=1) - timedelta(minutes=1)).abandoned_deleted == 0
    swept = services.expiry_sweep(now=later(days=1))
    assert swept.abandoned_deleted == 1 and swept.files_deleted == 1
    transfer = Transfer.get(created.transfer_id)
    assert transfer.status == "deleted" and transfer.deleted_by == "orphan-sweep" and transfer.pending_shard is None
    assert _versions(first.key) == []
    [receipt] = _events(created.transfer_id, "file.deleted")
    assert receipt.details["by"] == "orphan-sweep" and receipt.details["key"] == first.key


def test_objects_without_a_live_record_are_collected_and_live_or_held_ones_kept(ready, mailoutbox):
    live, _tokens = ready
    held, _ = ready_transfer(recipients=[BOB], mailoutbox=mailoutbox, body=b"evidence")
    services.transfer_hold_set(officer_id=OFFICER, transfer_id=held.transfer_id, reason="Case 2026-18")
    deleted, _ = ready_transfer(recipients=[BOB], mailoutbox=mailoutbox)
    services.transfer_delete_now(owner_id=ALICE.id, transfer_id=deleted.transfer_id, now=later(1))
    late = deleted.files[0].key
    put_object_as_browser(late, b"arrived after the deletion")  # a still-valid upload policy used late
    no_record = "files/ZZZZZZZZZZZZZZZZ/YYYYYYYYYYYYYYYY"
    put_object_as_browser(no_record, b"nobody's")
    foreign = "files/not-one-of-ours.txt"
    put_object_as_browser(foreign, b"dropped here by hand")

    swept = services.expiry_sweep(now=later(2))
    assert swept.orphan_objects_deleted == 3
    assert _versions(late) == [] and _versions(no_record) == [] and _versions(foreign) == []
    assert _versions(live.files[0].key) and _versions(held.files[0].key)
    late_receipts = [e for e in _events(deleted.transfer_id, "file.deleted") if e.details["by"] == "orphan-sweep"]
    assert len(late_receipts) == 1 and late_receipts[0].details["key"] == late
    [nobody] = _events("ZZZZZZZZZZZZZZZZ", "file.deleted")
    assert nobody.details["key"] == no_record and nobody.details["size"] == len(b"nobody's")


def test_the_orphan_listing_is_capped_per_run_and_continues_next_hour(settings):
    settings.FXFER_ORPHAN_KEYS_PER_RUN = 2
    keys = [f"files/{c * 16}/{'Q' * 16}" for c in "ABCDE"]
    for key in keys:
        put_object_as_browser(key, b"x")
    checked = []
    for hour in range(3):
        swept = services.expiry_sweep(now=later(hour * 60))
        checked.append(swept.orphan_keys_checked)
    assert checked == [2, 2, 1]
    assert all(_versions(k) == [] for k in keys)


# --- retention ------------------------------------------------------------------------------------------------------


def test_ephemeral_items_have_short_ttls_and_transfers_and_audit_keep_the_retention(ready, mailoutbox):
    created, tokens = ready
    client = aws.client("dynamodb")
    for short in ("one-time-codes", "guest-grants", "rate-limits", "sessions", "saml-assertions-seen"):
        ttl = client.describe_time_to_live(TableName=dynamo.table_name(short))["TimeToLiveDescription"]
        assert ttl["TimeToLiveStatus"] == "ENABLED", short
    services.guest_code_send(token=tokens[BOB], ip="198.51.100.7", now=NOW)
    access = services.guest_code_verify(token=tokens[BOB], code=code_from(mailoutbox, BOB), now=NOW)
    [recipient] = Recipient.query(created.transfer_id)
    services.guest_code_send(token=tokens[BOB], now=NOW)
    code = OneTimeCode.get(f"{created.transfer_id}#{recipient.recipient_id}")
    assert code.purge_at <= NOW + timedelta(hours=1)
    grant = next(iter(GuestGrant.scan()))  # test inspection only
    assert grant.parent_id == access.transfer_id
    assert grant.purge_at <= NOW + timedelta(days=1)
    counters = list(RateLimit.scan())  # test inspection only
    assert counters and all(c.purge_at <= NOW + timedelta(hours=1) for c in counters)

    retention = timedelta(days=settings.FXFER_AUDIT_RETENTION_DAYS)
    transfer = Transfer.get(created.transfer_id)
    assert transfer.purge_at >= transfer.expires_at + retention
    for event in _events(created.transfer_id):
        # DynamoDB's TTL counts whole seconds: an event written at a moment with microseconds expires within one.
        assert timedelta(0) <= event.at + retention - event.expires_at < timedelta(seconds=1)
    services.expiry_sweep(now=transfer.expires_at)
    [receipt] = _events(created.transfer_id, "file.deleted")
    assert receipt.expires_at == receipt.at + retention  # a receipt is kept as long as any audit event
    assert Transfer.get(created.transfer_id).purge_at == transfer.purge_at  # deletion keeps the metadata


def test_a_file_that_arrives_after_the_hold_is_held_in_s3_too():
    created = create(
        files=[FileDeclared(name="a.pdf", size=3), FileDeclared(name="late.pdf", size=4)], expires_in=timedelta(days=7)
    )
    first, late = created.files
    services.upload_authorize(owner_id=ALICE.id, transfer_id=created.transfer_id, file_id=first.file_id, now=NOW)
    put_object_as_browser(first.key, b"abc")
    services.upload_done(owner_id=ALICE.id, transfer_id=created.transfer_id, file_id=first.file_id, now=NOW)
    services.transfer_hold_set(officer_id=OFFICER, transfer_id=created.transfer_id, reason="Case 2026-19")

    services.upload_authorize(owner_id=ALICE.id, transfer_id=created.transfer_id, file_id=late.file_id, now=NOW)
    put_object_as_browser(late.key, b"late")
    services.upload_done(owner_id=ALICE.id, transfer_id=created.transfer_id, file_id=late.file_id, now=NOW)

    assert all(storage.legal_hold_status(key=late.key, version_id=v["VersionId"]) == "ON" for v in _versions(late.key))
    assert services.expiry_sweep(now=later(days=40)).files_deleted == 0
    assert _versions(late.key)


def test_compliance_search_keeps_finding_a_held_transfer_after_the_audit_retention(ready):
    from transfers.models import TransferSearchTerm

    created, _tokens = ready
    terms = list(TransferSearchTerm.query(f"recipient:{BOB}"))
    assert terms and all(term.purge_at is not None for term in terms)
    services.transfer_hold_set(officer_id=OFFICER, transfer_id=created.transfer_id, reason="Case 2026-20")
    held_terms = [t for t in TransferSearchTerm.query(f"recipient:{BOB}") if t.transfer_id == created.transfer_id]
    assert held_terms and all(term.purge_at is None for term in held_terms)
    services.transfer_hold_release(officer_id=OFFICER, transfer_id=created.transfer_id, reason="Case closed")
    released = [t for t in TransferSearchTerm.query(f"recipient:{BOB}") if t.transfer_id == created.transfer_id]
    assert released and all(term.purge_at is not None for term in released)
    assert len(released) == len(held_terms)


# --- crash consistency (issue 11) ------------------------------------------------------------------------------


def test_a_lost_answer_on_the_files_deleted_write_still_leaves_one_receipt_with_its_versions(ready):
    created, _tokens = ready
    key = created.files[0].key
    put_object_as_browser(key, b"a second version")
    versions = sorted(v["VersionId"] for v in _versions(key))
    # The sweep's transactions: the claim, the file's deleted state with its receipt, the transfer's end.
    with inject(LOST, service="dynamodb", operation="TransactWriteItems", nth=2) as fault:
        swept = services.expiry_sweep(now=_expires_at(created))
    assert fault.fired == 1 and swept.transfers_expired == 1
    [receipt] = _events(created.transfer_id, "file.deleted")
    assert sorted(receipt.details["version_ids"]) == versions
    assert _versions(key) == []


def test_a_sweep_killed_between_s3_and_dynamodb_finishes_the_same_receipt_next_hour(ready):
    created, _tokens = ready
    key = created.files[0].key
    put_object_as_browser(key, b"a second version")
    versions = sorted(v["VersionId"] for v in _versions(key))
    expires_at = _expires_at(created)
    with inject(ERROR, service="dynamodb", operation="TransactWriteItems", nth=2, times=10):
        with pytest.raises(Exception):  # noqa: B017 - whatever the killed run saw
            services.expiry_sweep(now=expires_at)
    assert _versions(key) == []  # S3 deleted them; the receipt is still to be written
    assert _events(created.transfer_id, "file.deleted") == []

    result = expire_sweep({"time": (expires_at + timedelta(hours=1)).isoformat()}, None)
    assert result["deletions_finished"] + result["transfers_expired"] == 1
    [receipt] = _events(created.transfer_id, "file.deleted")
    assert sorted(receipt.details["version_ids"]) == versions  # the versions it claimed before deleting them
    assert receipt.details["deleted_at"] == expires_at.isoformat()
    assert len(_events(created.transfer_id, "transfer.expired")) == 1


class _Lambda:
    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_the_sweep_stops_before_the_lambdas_time_ends_and_the_next_run_goes_on(ready):
    created, _tokens = ready
    expires_at = _expires_at(created)
    event = {"time": expires_at.isoformat()}
    result = expire_sweep(event, _Lambda(remaining_ms=2_000))  # less than the margin one deletion needs
    assert result["complete"] is False and result["transfers_expired"] == 0
    assert _versions(created.files[0].key) and Transfer.get(created.transfer_id).deletion_claimed_at is None
    result = expire_sweep(event, _Lambda(remaining_ms=60_000))
    assert result["complete"] is True and result["transfers_expired"] == 1
    assert _versions(created.files[0].key) == []


def test_the_orphan_cursor_moves_only_after_its_page_is_done(settings):
    settings.FXFER_ORPHAN_KEYS_PER_RUN = 2
    keys = [f"files/{c * 16}/{'Q' * 16}" for c in "ABCD"]
    for key in keys:
        put_object_as_browser(key, b"x")
    # The run dies at the second key of its page (S3 refuses its deletion for longer than botocore retries).
    with inject(ERROR, service="s3", operation="DeleteObject", nth=2, times=10):
        with pytest.raises(Exception):  # noqa: B017 - whatever the killed run saw
            services.expiry_sweep(now=NOW)
    assert _versions(keys[0]) == [] and _versions(keys[1])
    # The next run takes the same page again: the second key is not skipped.
    assert services.expiry_sweep(now=later(60)).orphan_keys_checked == 2
    assert _versions(keys[1]) == []
    services.expiry_sweep(now=later(120))
    assert all(_versions(k) == [] for k in keys)
    for key in keys:
        receipts = [e for e in AuditEvent.scan() if e.action == "file.deleted" and e.details["key"] == key]
        assert len(receipts) == 1 and len(receipts[0].details["version_ids"]) == 1


def test_the_hourly_job_releases_a_verified_transfer_instead_of_deleting_it_as_abandoned(mailoutbox):
    created = create(recipients=[BOB])
    file = created.files[0]
    services.upload_authorize(owner_id=ALICE.id, transfer_id=created.transfer_id, file_id=file.file_id, now=NOW)
    put_object_as_browser(file.key, b"hello world")
    # What a crash right after the file's "verified" write left: the file verified, the transfer pending.
    File(parent_id=created.transfer_id, file_id=file.file_id).update(
        actions=[
            File.state.set("verified"),
            File.verified_size.set(11),
            File.version_id.set(_versions(file.key)[0]["VersionId"]),
            File.verified_at.set(NOW),
        ]
    )
    result = expire_sweep({"time": later(days=1, minutes=60).isoformat()}, None)
    assert result["released"] == 1 and result["abandoned_deleted"] == 0
    transfer = Transfer.get(created.transfer_id)
    assert transfer.status == "ready" and transfer.deleted_at is None
    assert [m for m in mailoutbox if m.to == [BOB]]
    assert _versions(file.key)


def test_an_orphan_reply_request_is_removed_with_its_event_and_never_listed():
    from fxfer.change import Change
    from transfers import selectors
    from transfers.services.requests import reply_request_create

    # What a crash left before transfer_create committed its reply request atomically: the request alone.
    change = Change(op="create:NeverCommitted00", now=NOW)
    reply_id = reply_request_create(
        sender=ALICE,
        transfer_id="NeverCommitted00",
        subject="Figures",
        recipients=[("r0000000000000001", BOB)],
        closes_at=NOW + timedelta(days=3),
        change=change,
        ip=None,
        user_agent=None,
        now=NOW,
    )
    change.commit()
    assert reply_id in [r.request_id for r in selectors.request_list_for_owner(owner_id=ALICE.id, now=NOW).items]
    # Within the grace time the transfer may still commit: the request stays.
    assert expire_sweep({"time": later(5).isoformat()}, None)["orphan_replies_removed"] == 0
    assert expire_sweep({"time": later(60).isoformat()}, None)["orphan_replies_removed"] == 1
    assert selectors.request_list_for_owner(owner_id=ALICE.id, now=later(61)).items == ()
    assert list(Recipient.query(reply_id)) == []
    [removed] = _events(reply_id, "reply_request.removed")
    assert removed.details["reply_to"] == "NeverCommitted00"
    assert expire_sweep({"time": later(120).isoformat()}, None)["orphan_replies_removed"] == 0


def test_the_orphan_check_reads_its_keys_owners_in_batches_not_a_call_per_key(mailoutbox):
    live = [ready_transfer(recipients=[BOB], mailoutbox=mailoutbox)[0] for _ in range(4)]
    held, _ = ready_transfer(recipients=[BOB], mailoutbox=mailoutbox, body=b"evidence")
    services.transfer_hold_set(officer_id=OFFICER, transfer_id=held.transfer_id, reason="Case 2026-31")
    deleted, _ = ready_transfer(recipients=[BOB], mailoutbox=mailoutbox)
    services.transfer_delete_now(owner_id=ALICE.id, transfer_id=deleted.transfer_id, now=later(1))
    put_object_as_browser(deleted.files[0].key, b"arrived after the deletion")
    nobody = "files/ZZZZZZZZZZZZZZZZ/YYYYYYYYYYYYYYYY"
    put_object_as_browser(nobody, b"nobody's")

    with recording() as calls:
        checked = orphan_objects_sweep(now=later(2))
    assert checked == (2, 7, True)  # two deleted, seven keys looked at
    reads = [operation for service, operation in calls.calls if service == "dynamodb" and "Get" in operation]
    # The seven keys' files and their transfers: one BatchGetItem each. Besides: the cursor, its claims, and
    # the deleted transfer's file for its receipt (once per key deleted with a record), never one per key.
    assert reads.count("BatchGetItem") == 2 and reads.count("GetItem") == 3, reads
    assert all(_versions(t.files[0].key) for t in [*live, held])
    assert _versions(deleted.files[0].key) == [] and _versions(nobody) == []
