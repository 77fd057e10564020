"""Uploads go straight to S3 with what the server signs; nothing is released before the server has verified
every object (size, SSE-KMS with our key, integrity), whether the browser or the S3 event reports it first."""

import base64
import hashlib
import json
from datetime import UTC, datetime

import pytest
import requests
from django.conf import settings

from fxfer import aws
from fxfer.aws import transient
from reports.models import AuditEvent
from tests import faults
from tests.faults import ERROR, KILLED, LOST, Killed, inject
from tests.transfers.conftest import (
    ALICE,
    MALLORY,
    NOW,
    Sender,
    browser_post,
    browser_put_parts,
    checksums_of,
    create,
    later,
    multipart_uploads,
    put_object_as_browser,
    sign_parts,
)
from transfers import services, storage
from transfers.errors import TransferError
from transfers.jobs import on_object_created
from transfers.models import File, Recipient, Transfer, TransferSearchTerm
from transfers.policy import FileDeclared

MiB = 1024**2


def _events(action: str) -> list[AuditEvent]:
    return sorted((e for e in AuditEvent.scan() if e.action == action), key=lambda e: e.sort_key)


def _versions(key: str) -> list[dict]:
    listed = aws.client("s3").list_object_versions(Bucket=settings.FXFER_BUCKET, Prefix=key)
    return listed.get("Versions", []) + listed.get("DeleteMarkers", [])


def _authorize(created, index=0, owner=ALICE):
    return services.upload_authorize(
        owner_id=owner.id, transfer_id=created.transfer_id, file_id=created.files[index].file_id, now=NOW
    )


def _done(created, index=0):
    return services.upload_done(
        owner_id=ALICE.id, transfer_id=created.transfer_id, file_id=created.files[index].file_id
    )


def _event(key: str, version_id: str | None = None) -> dict:
    obj = {"key": key.replace(" ", "+"), "size": 1}
    if version_id:
        obj["versionId"] = version_id
    return {"Records": [{"s3": {"bucket": {"name": settings.FXFER_BUCKET}, "object": obj}}]}


# --- creation ------------------------------------------------------------------------------------------------


def test_create_records_a_pending_transfer_with_its_files_recipients_and_search_terms():
    created = create(
        files=[FileDeclared(name="Report.PDF", size=11), FileDeclared(name="data.csv", size=5)],
        recipients=["bob@partner.example", "carol@other.example"],
    )
    transfer = Transfer.get(created.transfer_id)
    assert transfer.status == "pending" and transfer.owner_id == ALICE.id and transfer.owner_email == ALICE.email
    assert (transfer.file_count, transfer.total_bytes) == (2, 16)
    assert {r.email for r in Recipient.query(created.transfer_id)} == {"bob@partner.example", "carol@other.example"}
    assert all(r.token_hash is None for r in Recipient.query(created.transfer_id))  # no link before release
    terms = {t.term for t in TransferSearchTerm.scan() if t.transfer_id == created.transfer_id}
    assert terms == {
        "sender:alice@corp.example",
        "recipient:bob@partner.example",
        "recipient:carol@other.example",
        "domain:partner.example",
        "domain:other.example",
        "file:report.pdf",
        "file:data.csv",
    }
    [event] = _events("transfer.created")
    assert event.actor == f"user:{ALICE.id}" and event.subject == f"transfer:{created.transfer_id}"
    assert event.details["recipients"] == ["bob@partner.example", "carol@other.example"]


@pytest.mark.parametrize("name", ["../../x.pdf", "files/other-transfer/abcdefgh12345678", "..\\..\\boot.ini", "%2e%2e"])
def test_keys_are_generated_by_the_server_never_from_the_file_name(name):
    created = create(files=[FileDeclared(name=name, size=11)])
    file = created.files[0]
    assert file.key == f"files/{created.transfer_id}/{file.file_id}"
    assert storage.parse_file_key(file.key) == (created.transfer_id, file.file_id)
    assert "/" not in file.name and "\\" not in file.name
    authorized = _authorize(created)
    assert authorized.key == file.key and authorized.fields["key"] == file.key


# --- small files: presigned POST -----------------------------------------------------------------------------


def test_the_post_policy_pins_key_exact_size_sse_kms_key_and_a_short_expiry():
    created = create(files=[FileDeclared(name="a.pdf", size=1234)])
    before = datetime.now(UTC)
    authorized = _authorize(created)
    assert authorized.mode == "post"
    document = json.loads(base64.b64decode(authorized.fields["policy"]))
    conditions = document["conditions"]
    assert {"key": created.files[0].key} in conditions
    assert {"bucket": settings.FXFER_BUCKET} in conditions
    assert ["content-length-range", 1234, 1234] in conditions
    assert {"x-amz-server-side-encryption": "aws:kms"} in conditions
    assert {"x-amz-server-side-encryption-aws-kms-key-id": storage.kms_key_arn()} in conditions
    assert storage.kms_key_arn().startswith("arn:aws:kms:")  # the alias resolved to the key's ARN
    expires = datetime.fromisoformat(document["expiration"].replace("Z", "+00:00"))
    assert 0 < (expires - before).total_seconds() <= settings.FXFER_UPLOAD_POLICY_SECONDS + 5


def test_a_declared_sha256_is_pinned_in_the_policy():
    digest = base64.b64encode(hashlib.sha256(b"hello world").digest()).decode()
    created = create(files=[FileDeclared(name="a.pdf", size=11, sha256=digest)])
    conditions = json.loads(base64.b64decode(_authorize(created).fields["policy"]))["conditions"]
    assert {"x-amz-checksum-sha256": digest} in conditions


def test_a_browser_post_is_verified_and_releases_the_transfer_with_one_mail_per_recipient(mailoutbox):
    created = create(recipients=["bob@partner.example", "carol@other.example"])
    response = browser_post(_authorize(created), b"hello world")
    assert int(response.status_code) == 201  # moto hands `requests` the status as text
    verified = _done(created)
    assert (verified.outcome, verified.released) == ("verified", True)
    file = File.get(created.transfer_id, created.files[0].file_id)
    assert (file.state, file.verified_size) == ("verified", 11)
    assert file.version_id and file.etag
    assert Transfer.get(created.transfer_id).status == "ready"
    assert sorted(m.to[0] for m in mailoutbox) == ["bob@partner.example", "carol@other.example"]
    assert len(_events("file.verified")) == 1 and len(_events("mail.sent")) == 2


def test_nothing_is_released_while_a_file_is_missing():
    created = create(files=[FileDeclared(name="a.pdf", size=11), FileDeclared(name="b.pdf", size=3)])
    put_object_as_browser(created.files[0].key, b"hello world")
    assert _done(created, 0).released is False
    assert _done(created, 1).outcome == "missing"
    assert Transfer.get(created.transfer_id).status == "pending"
    put_object_as_browser(created.files[1].key, b"abc")
    assert _done(created, 1).released is True


def test_the_browser_and_the_s3_event_lead_to_one_idempotent_verification(mailoutbox):
    created = create()
    put_object_as_browser(created.files[0].key, b"hello world")
    first = on_object_created(_event(created.files[0].key), None)
    assert first == {"records": [{"key": created.files[0].key, "outcome": "verified"}]}
    assert _done(created).outcome == "verified"
    assert on_object_created(_event(created.files[0].key), None)["records"][0]["outcome"] == "verified"
    assert len(_events("file.verified")) == 1
    assert len(mailoutbox) == 1  # released once


@pytest.mark.parametrize(
    ("body", "extra", "reason"),
    [
        (b"hello world!", {}, "size"),
        (b"hello world", {"ServerSideEncryption": "AES256", "SSEKMSKeyId": None}, "encryption"),
    ],
)
def test_an_object_unlike_the_declared_file_is_refused_and_deleted(body, extra, reason):
    created = create()
    key = created.files[0].key
    put_object_as_browser(key, body, **extra)
    result = on_object_created(_event(key), None)
    assert result["records"][0]["outcome"] == "refused"
    file = File.get(created.transfer_id, created.files[0].file_id)
    assert (file.state, file.refused_reason) == ("refused", reason)
    assert [v for v in _versions(key) if v.get("IsLatest") or "VersionId" in v] == []  # gone for good
    [event] = _events("file.verified")
    assert (event.outcome, event.details["reason"]) == ("refused", reason)
    assert Transfer.get(created.transfer_id).status == "pending"


def test_an_object_encrypted_with_another_kms_key_is_refused():
    other = aws.client("kms").create_key(Description="someone else's")["KeyMetadata"]["Arn"]
    created = create()
    put_object_as_browser(created.files[0].key, b"hello world", SSEKMSKeyId=other)
    assert _done(created).reason == "kms_key"


def test_a_declared_checksum_must_be_what_s3_holds():
    digest = base64.b64encode(hashlib.sha256(b"hello world").digest()).decode()
    created = create(files=[FileDeclared(name="a.pdf", size=11, sha256=digest)])
    put_object_as_browser(created.files[0].key, b"hello there")  # same size, other bytes
    assert _done(created).reason == "checksum"


def test_a_refused_file_can_be_uploaded_again_and_then_passes():
    created = create()
    put_object_as_browser(created.files[0].key, b"wrong size!!")
    assert _done(created).outcome == "refused"
    authorized = _authorize(created)
    assert authorized.mode == "post"
    assert int(browser_post(authorized, b"hello world").status_code) == 201
    assert _done(created).outcome == "verified"


def test_upload_calls_for_another_owners_transfer_look_like_a_missing_one():
    created = create()
    for call in (
        lambda: _authorize(created, owner=MALLORY),
        lambda: services.upload_done(
            owner_id=MALLORY.id, transfer_id=created.transfer_id, file_id=created.files[0].file_id
        ),
        lambda: _authorize(
            type(created)(transfer_id="nope-nope-nope", expires_at=NOW, recipients=(), files=created.files)
        ),
    ):
        with pytest.raises(TransferError) as caught:
            call()
        assert caught.value.code == "not_found" and caught.value.status == 404


def test_a_verified_file_is_not_authorized_again():
    created = create()
    put_object_as_browser(created.files[0].key, b"hello world")
    _done(created)
    with pytest.raises(TransferError) as caught:
        _authorize(created)
    assert caught.value.code == "state_conflict"


def test_a_later_version_at_a_verified_key_is_removed_and_never_served():
    created = create()
    put_object_as_browser(created.files[0].key, b"hello world")
    _done(created)
    verified_version = File.get(created.transfer_id, created.files[0].file_id).version_id
    put_object_as_browser(created.files[0].key, b"evil world!")  # a re-used policy within its ten minutes
    stray = storage.object_head(key=created.files[0].key).version_id
    result = on_object_created(_event(created.files[0].key, stray), None)
    assert result["records"][0]["outcome"] == "stray_version"
    assert storage.object_head(key=created.files[0].key).version_id == verified_version


def test_unknown_and_foreign_keys_are_left_alone():
    assert on_object_created(_event("files/unknown1234/unknown5678"), None)["records"][0]["outcome"] == "unknown_key"
    assert on_object_created(_event("somewhere/else"), None)["records"][0]["outcome"] == "unknown_key"


# --- large files: multipart ----------------------------------------------------------------------------------


@pytest.fixture
def small_parts(settings):
    settings.FXFER_MULTIPART_THRESHOLD = 6 * MiB
    settings.FXFER_MULTIPART_PART_BYTES = 5 * MiB
    settings.FXFER_PART_URL_BATCH = 2


BIG = bytes(range(256)) * (12 * MiB // 256)  # 12 MiB: parts of 5, 5 and 2 MiB


def test_a_multipart_upload_is_signed_in_batches_completed_by_the_server_and_verified(small_parts, mailoutbox):
    created = create(files=[FileDeclared(name="big.iso.zip", size=len(BIG))])
    authorized = _authorize(created)
    assert (authorized.mode, authorized.part_size, authorized.part_count) == ("multipart", 5 * MiB, 3)
    assert authorized.part_urls == {}  # each URL is signed for its part's CRC, which the browser computes first
    ids = {"owner_id": ALICE.id, "transfer_id": created.transfer_id, "file_id": created.files[0].file_id}
    with pytest.raises(TransferError) as caught:  # a batch is at most FXFER_PART_URL_BATCH (2 here) parts
        services.upload_parts_sign(
            **ids, upload_id=authorized.upload_id, part_checksums=dict.fromkeys([1, 2, 3], "AAAAAAAAAAA=")
        )
    assert caught.value.code == "parts_invalid"
    browser_put_parts(sign_parts(ids, authorized.upload_id, [1, 2]), BIG, authorized.part_size)
    browser_put_parts(sign_parts(ids, authorized.upload_id, [3]), BIG, authorized.part_size)
    assert [p.part_number for p in services.upload_parts_list(**ids, upload_id=authorized.upload_id)] == [1, 2, 3]
    verified = services.upload_complete_multipart(**ids, upload_id=authorized.upload_id, **checksums_of(BIG))
    assert (verified.outcome, verified.released) == ("verified", True)
    head = storage.object_head(key=created.files[0].key)
    assert head.etag.endswith('-3"') and head.size == len(BIG)
    assert head.encryption == "aws:kms" and head.kms_key_id == storage.kms_key_arn()
    assert len(mailoutbox) == 1


def test_an_interrupted_multipart_upload_resumes_with_the_parts_already_there(small_parts):
    created = create(files=[FileDeclared(name="big.bin", size=len(BIG))])
    first = _authorize(created)
    ids = {"owner_id": ALICE.id, "transfer_id": created.transfer_id, "file_id": created.files[0].file_id}
    browser_put_parts(sign_parts(ids, first.upload_id, [1]), BIG, first.part_size)
    resumed = _authorize(created)  # the page was reloaded
    assert resumed.upload_id == first.upload_id
    assert [p.part_number for p in resumed.parts_done] == [1]


def test_completing_with_parts_missing_is_refused_and_loses_nothing(small_parts):
    created = create(files=[FileDeclared(name="big.bin", size=len(BIG))])
    authorized = _authorize(created)
    ids = {"owner_id": ALICE.id, "transfer_id": created.transfer_id, "file_id": created.files[0].file_id}
    browser_put_parts(sign_parts(ids, authorized.upload_id, [1, 2]), BIG, authorized.part_size)  # 2 parts of 3
    with pytest.raises(TransferError) as caught:
        services.upload_complete_multipart(**ids, upload_id=authorized.upload_id, **checksums_of(BIG))
    assert caught.value.code == "upload_incomplete" and caught.value.params["missing_parts"] == [3]
    browser_put_parts(sign_parts(ids, authorized.upload_id, [3]), BIG, authorized.part_size)
    done = services.upload_complete_multipart(**ids, upload_id=authorized.upload_id, **checksums_of(BIG))
    assert done.outcome == "verified"


def test_parts_that_do_not_add_up_to_the_declared_size_are_refused(small_parts):
    created = create(files=[FileDeclared(name="big.bin", size=len(BIG))])
    authorized = _authorize(created)
    ids = {"owner_id": ALICE.id, "transfer_id": created.transfer_id, "file_id": created.files[0].file_id}
    urls = sign_parts(ids, authorized.upload_id, [1, 2, 3])
    bigger = BIG + b"x" * MiB  # the last part is larger than declared
    browser_put_parts(urls, bigger, authorized.part_size)
    requests.put(urls[3], data=bigger[10 * MiB :], timeout=60)
    result = services.upload_complete_multipart(**ids, upload_id=authorized.upload_id, **checksums_of(bigger))
    assert (result.outcome, result.reason) == ("refused", "size")
    assert storage.object_head(key=created.files[0].key) is None
    assert Transfer.get(created.transfer_id).status == "pending"


def test_part_urls_are_only_signed_for_this_upload_and_in_small_batches(small_parts):
    created = create(files=[FileDeclared(name="big.bin", size=len(BIG))])
    authorized = _authorize(created)
    ids = {"owner_id": ALICE.id, "transfer_id": created.transfer_id, "file_id": created.files[0].file_id}
    crc = "AAAAAAAAAAA="
    for numbers in ([0], [4], [1, 2, 3], []):
        with pytest.raises(TransferError) as caught:
            services.upload_parts_sign(
                **ids, upload_id=authorized.upload_id, part_checksums=dict.fromkeys(numbers, crc)
            )
        assert caught.value.code == "parts_invalid"
    with pytest.raises(TransferError) as caught:
        services.upload_parts_sign(**ids, upload_id="someone-elses-upload", part_checksums={1: crc})
    assert caught.value.code == "state_conflict"
    with pytest.raises(TransferError) as caught:
        services.upload_parts_sign(
            **{**ids, "owner_id": MALLORY.id}, upload_id=authorized.upload_id, part_checksums={1: crc}
        )
    assert caught.value.code == "not_found"


def test_cancelling_a_file_aborts_its_upload_and_releases_the_rest(small_parts, mailoutbox):
    created = create(files=[FileDeclared(name="a.pdf", size=11), FileDeclared(name="big.bin", size=len(BIG))])
    put_object_as_browser(created.files[0].key, b"hello world")
    assert _done(created, 0).released is False
    authorized = _authorize(created, 1)
    cancelled = services.upload_cancel(
        owner_id=ALICE.id, transfer_id=created.transfer_id, file_id=created.files[1].file_id
    )
    assert (cancelled.outcome, cancelled.released) == ("cancelled", True)
    assert storage.multipart_parts(key=created.files[1].key, upload_id=authorized.upload_id) is None
    transfer = Transfer.get(created.transfer_id)
    assert (transfer.status, transfer.file_count, transfer.total_bytes) == ("ready", 1, 11)
    assert len(mailoutbox) == 1 and "big.bin" not in mailoutbox[0].body


def test_uploads_stop_when_the_transfer_is_revoked(small_parts):
    created = create(files=[FileDeclared(name="big.bin", size=len(BIG))])
    authorized = _authorize(created)
    services.transfer_revoke(owner_id=ALICE.id, transfer_id=created.transfer_id)
    assert storage.multipart_parts(key=created.files[0].key, upload_id=authorized.upload_id) is None
    with pytest.raises(TransferError) as caught:
        _authorize(created)
    assert caught.value.code == "state_conflict"


# --- crash consistency (issue 11): a lost answer, a throttle or a killed Lambda never strands a file --------------


def _links_to(mailoutbox, address: str) -> int:
    return sum(1 for m in mailoutbox if m.to == [address] and "/t/" in m.body)


def _posted(recipients=("bob@partner.example", "carol@other.example")):
    created = create(recipients=list(recipients))
    put_object_as_browser(created.files[0].key, b"hello world")
    return created


@pytest.mark.parametrize("kind", [LOST, KILLED])
def test_a_verified_write_whose_answer_was_lost_still_releases_and_mails_everyone(kind, mailoutbox):
    created = _posted()
    with inject(kind, service="dynamodb", operation="TransactWriteItems", nth=1) as fault:
        try:
            _done(created)
        except Killed:
            pass  # the Lambda died right after the write: the browser got no answer and calls again
    assert fault.fired == 1
    verified = _done(created) if kind == KILLED else None
    assert verified is None or verified.outcome == "verified"
    assert Transfer.get(created.transfer_id).status == "ready"
    assert _links_to(mailoutbox, "bob@partner.example") == _links_to(mailoutbox, "carol@other.example") == 1
    assert [e.outcome for e in _events("file.verified")] == ["ok"]


def test_a_release_that_keeps_failing_after_the_verification_is_finished_by_the_next_s3_event(mailoutbox):
    created = _posted()
    # The verification commits (transaction 1), then its malware-scan verdict (2); every attempt of the release's
    # commit (transaction 3) fails.
    with inject(ERROR, service="dynamodb", operation="TransactWriteItems", nth=3, times=10):
        with pytest.raises(TransferError) as caught:
            _done(created)
    assert (caught.value.code, caught.value.status) == ("unavailable", 503)
    assert File.get(created.transfer_id, created.files[0].file_id).state == "verified"
    assert Transfer.get(created.transfer_id).status == "pending" and mailoutbox == []
    version = storage.object_head(key=created.files[0].key).version_id
    assert on_object_created(_event(created.files[0].key, version), None)["records"][0]["outcome"] == "verified"
    assert Transfer.get(created.transfer_id).status == "ready"
    assert _links_to(mailoutbox, "bob@partner.example") == _links_to(mailoutbox, "carol@other.example") == 1
    assert [e.outcome for e in _events("file.verified")] == ["ok"]


@pytest.mark.parametrize(("service", "operation"), [("s3", "HeadObject"), ("kms", "DescribeKey")])
def test_aws_busy_during_the_s3_event_raises_for_lambda_to_retry_and_never_refuses(service, operation, mailoutbox):
    created = _posted()
    storage.forget_kms_key_arn()  # a cold Lambda looks the key up
    with inject(ERROR, service=service, operation=operation, times=10), pytest.raises(Exception) as caught:
        on_object_created(_event(created.files[0].key), None)
    assert transient(caught.value)
    assert File.get(created.transfer_id, created.files[0].file_id).state == "pending"
    assert _events("file.verified") == []
    assert on_object_created(_event(created.files[0].key), None)["records"][0]["outcome"] == "verified"
    assert len(mailoutbox) == 2


def test_an_error_retrying_cannot_fix_ends_the_s3_event(monkeypatch):
    created = _posted()
    too_large = b'{"__type":"com.amazon.coral.validate#ValidationException","message":"Item size has exceeded"}'
    monkeypatch.setitem(faults._THROTTLE, "dynamodb", (400, "application/x-amz-json-1.0", too_large))
    with inject(ERROR, service="dynamodb", operation="TransactWriteItems", times=10) as fault:
        result = on_object_created(_event(created.files[0].key), None)  # logged, not raised: no retry
    assert fault.fired == 1  # not retried either
    assert result["records"][0]["outcome"] == "error"
    assert File.get(created.transfer_id, created.files[0].file_id).state == "pending"


def test_the_done_endpoint_answers_503_when_s3_stays_busy_and_nothing_is_lost(client, mailoutbox):
    from tests.transfers.test_views import alice_id, sign_in

    sign_in(client)
    created = create(sender=Sender(id=alice_id(), email="alice@example.com", display_name="Alice"))
    put_object_as_browser(created.files[0].key, b"hello world")
    url = f"/transfers/{created.transfer_id}/files/{created.files[0].file_id}/done"
    with inject(ERROR, service="s3", operation="HeadObject", times=10):
        busy = client.post(url, "{}", content_type="application/json")
    assert busy.status_code == 503 and busy.json()["error"] == "unavailable"
    assert File.get(created.transfer_id, created.files[0].file_id).state == "pending"
    done = client.post(url, "{}", content_type="application/json")
    assert done.json() == {"outcome": "verified", "reason": None, "released": True}
    assert len(mailoutbox) == 1


def test_a_lost_answer_on_completing_a_multipart_upload_still_verifies_it(settings, mailoutbox):
    settings.FXFER_MULTIPART_THRESHOLD = 1024
    body = bytes(range(256)) * 8
    created = create(files=[FileDeclared(name="big.bin", size=len(body))])
    authorized = _authorize(created)
    ids = {"owner_id": ALICE.id, "transfer_id": created.transfer_id, "file_id": created.files[0].file_id}
    browser_put_parts(sign_parts(ids, authorized.upload_id, [1]), body, authorized.part_size)
    with inject(LOST, service="s3", operation="CompleteMultipartUpload", times=10):
        verified = services.upload_complete_multipart(**ids, upload_id=authorized.upload_id, **checksums_of(body))
    assert (verified.outcome, verified.released) == ("verified", True)
    assert len(mailoutbox) == 1
    # the browser's retry
    again = services.upload_complete_multipart(**ids, upload_id=authorized.upload_id, **checksums_of(body))
    assert again.outcome == "verified" and len(mailoutbox) == 1


def test_a_lost_answer_on_a_cancellation_is_not_a_conflict_and_shrinks_the_totals_once(mailoutbox):
    created = create(files=[FileDeclared(name="a.pdf", size=11), FileDeclared(name="b.pdf", size=3)])
    put_object_as_browser(created.files[0].key, b"hello world")
    assert _done(created, 0).released is False
    ids = {"owner_id": ALICE.id, "transfer_id": created.transfer_id, "file_id": created.files[1].file_id}
    with inject(LOST, service="dynamodb", operation="TransactWriteItems", times=10):
        cancelled = services.upload_cancel(**ids)
    assert cancelled.outcome == "cancelled"
    assert services.upload_cancel(**ids).outcome == "cancelled"  # the browser's retry
    transfer = Transfer.get(created.transfer_id)
    assert (transfer.status, transfer.file_count, transfer.total_bytes) == ("ready", 1, 11)
    assert len(_events("upload.cancelled")) == 1 and len(mailoutbox) == 1


def test_a_lost_answer_when_a_refused_file_is_uploaded_again_is_not_an_error():
    created = create()
    put_object_as_browser(created.files[0].key, b"wrong size!!")
    assert _done(created).outcome == "refused"
    with inject(LOST, service="dynamodb", operation="UpdateItem"):
        authorized = _authorize(created)
    assert authorized.mode == "post"
    assert File.get(created.transfer_id, created.files[0].file_id).state == "pending"
    assert storage.object_head(key=created.files[0].key) is None  # the refused object is gone


# --- issue 12: multipart abuse, stray versions (attacked through the uploader's endpoints) -------------------------


@pytest.fixture
def alice_browser(client):
    """Alice's browser, signed in through SSO: the uploader's JSON endpoints as send.js calls them."""
    from tests.transfers.test_views import alice_id, sign_in

    sign_in(client)
    return Sender(id=alice_id(), email="alice@example.com", display_name="Alice")


def _call(client, created, action: str, data: dict | None = None, index: int = 0):
    url = f"/transfers/{created.transfer_id}/files/{created.files[index].file_id}/{action}"
    return client.post(url, json.dumps(data or {}), content_type="application/json")


def _signed_headers(url: str) -> list[str]:
    from urllib.parse import parse_qs, urlsplit

    return parse_qs(urlsplit(url).query)["X-Amz-SignedHeaders"][0].split(";")


def test_every_part_url_is_signed_for_its_length_and_its_crc(client, alice_browser, small_parts):
    # S3 checks a signed Content-Length and CRC-64/NVME (proved against LocalStack in tests/integration): here,
    # that every URL the endpoints hand out signs both, in every batch.
    created = create(files=[FileDeclared(name="big.bin", size=len(BIG))], sender=alice_browser)
    authorized = _call(client, created, "authorize").json()
    assert authorized["partUrls"] == {}
    crc = "AAAAAAAAAAA="
    first = _call(client, created, "parts", {"uploadId": authorized["uploadId"], "parts": {"1": crc, "2": crc}})
    second = _call(client, created, "parts", {"uploadId": authorized["uploadId"], "parts": {"3": crc}})
    urls = {**first.json()["partUrls"], **second.json()["partUrls"]}
    assert sorted(urls) == ["1", "2", "3"]
    signed = ["content-length", "host", "x-amz-checksum-crc64nvme"]
    assert all(_signed_headers(url) == signed for url in urls.values())


def test_a_refused_multipart_upload_is_aborted_and_uploading_again_leaves_no_orphan(client, alice_browser, small_parts):
    created = create(files=[FileDeclared(name="big.bin", size=len(BIG))], sender=alice_browser)
    key = created.files[0].key
    first = _call(client, created, "authorize").json()
    ids = {"owner_id": alice_browser.id, "transfer_id": created.transfer_id, "file_id": created.files[0].file_id}
    urls = sign_parts(ids, first["uploadId"], [1, 2, 3])
    # moto does not check the signed length: parts of the wrong layout reach S3 here, and the server refuses.
    browser_put_parts(urls, BIG + b"x" * MiB, first["partSize"])
    refused = _call(client, created, "complete", {"uploadId": first["uploadId"], **checksums_of(BIG)})
    assert refused.json()["outcome"] == "refused"
    assert multipart_uploads(key) == []  # aborted: its parts are gone and its part URLs take nothing more
    again = _call(client, created, "authorize").json()
    assert again["uploadId"] != first["uploadId"]
    assert multipart_uploads(key) == [again["uploadId"]]  # the refused one is not left behind
    assert File.get(created.transfer_id, created.files[0].file_id).multipart_upload_id == again["uploadId"]


def test_cancelling_aborts_the_upload_and_removes_every_version_a_reused_policy_left(client, alice_browser):
    created = create(
        files=[FileDeclared(name="a.pdf", size=11), FileDeclared(name="b.pdf", size=11)], sender=alice_browser
    )
    key = created.files[1].key
    assert _call(client, created, "authorize", index=1).status_code == 200
    for body in (b"hello world", b"other bytes", b"third time!"):  # the same policy, three times in its minutes
        put_object_as_browser(key, body)
    assert len(_versions(key)) == 3
    cancelled = _call(client, created, "cancel", index=1)
    assert cancelled.json()["outcome"] == "cancelled"
    assert _versions(key) == []  # every version, not only the newest


def test_a_refused_file_loses_every_version_not_only_the_newest(client, alice_browser):
    created = create(sender=alice_browser)
    key = created.files[0].key
    assert _call(client, created, "authorize").status_code == 200
    put_object_as_browser(key, b"wrong size!!")
    put_object_as_browser(key, b"also wrong!!")
    done = _call(client, created, "done").json()
    assert (done["outcome"], done["reason"]) == ("refused", "size")
    assert _versions(key) == []


def test_verification_keeps_only_the_verified_version_and_a_later_one_goes_too(client, alice_browser, mailoutbox):
    created = create(sender=alice_browser)
    key = created.files[0].key
    assert _call(client, created, "authorize").status_code == 200
    put_object_as_browser(key, b"first bytes")
    put_object_as_browser(key, b"hello world")  # the policy re-used: the newest is what the server checks
    assert _call(client, created, "done").json()["outcome"] == "verified"
    file = File.get(created.transfer_id, created.files[0].file_id)
    assert [v["VersionId"] for v in _versions(key)] == [file.version_id]
    [removed] = _events("file.stray_version_removed")
    assert removed.details["count"] == 1 and removed.details["kept_version_id"] == file.version_id
    # Another POST within the policy's minutes, after verification: its S3 event removes it.
    put_object_as_browser(key, b"evil world!")
    stray = storage.object_head(key=key).version_id
    assert on_object_created(_event(key, stray), None)["records"][0]["outcome"] == "stray_version"
    assert [v["VersionId"] for v in _versions(key)] == [file.version_id]
    assert on_object_created(_event(key, stray), None)["records"][0]["outcome"] == "stray_version"  # again: no-op
    assert len(_events("file.stray_version_removed")) == 2
    assert (
        requests.get(
            storage.download_url(key=key, version_id=file.version_id, filename="report.pdf"), timeout=10
        ).content
        == b"hello world"
    )
    assert len(mailoutbox) == 1


def test_delete_now_aborts_an_upload_in_progress(client, alice_browser, small_parts):
    created = create(files=[FileDeclared(name="big.bin", size=len(BIG))], sender=alice_browser)
    authorized = _call(client, created, "authorize").json()
    ids = {"owner_id": alice_browser.id, "transfer_id": created.transfer_id, "file_id": created.files[0].file_id}
    browser_put_parts(sign_parts(ids, authorized["uploadId"], [1]), BIG, authorized["partSize"])
    response = client.post(f"/transfers/{created.transfer_id}/delete")
    assert response.status_code == 302
    assert multipart_uploads(created.files[0].key) == []


def test_the_sweep_aborts_uploads_no_live_file_owns_and_keeps_the_one_being_uploaded(
    client, alice_browser, small_parts
):
    from transfers.jobs import expire_sweep

    # S3 took the first file's CreateMultipartUpload (the transfer's creation starts each file's upload) but its
    # answer was lost: botocore's retry made a second upload, and the file records only that one. The first is
    # nobody's.
    with inject(LOST, service="s3", operation="CreateMultipartUpload"):
        created = create(
            files=[FileDeclared(name="big.bin", size=len(BIG)), FileDeclared(name="gone.bin", size=len(BIG))],
            sender=alice_browser,
        )
    key, cancelled_key = created.files[0].key, created.files[1].key
    live = created.files[0].upload_id
    assert _call(client, created, "authorize").json()["uploadId"] == live
    [lost] = [u for u in multipart_uploads(key) if u != live]
    # A cancelled file whose abort never happened, and keys no record owns at all.
    gone = _call(client, created, "authorize", index=1).json()["uploadId"]
    File(parent_id=created.transfer_id, file_id=created.files[1].file_id).update(actions=[File.state.set("cancelled")])
    s3 = aws.client("s3")
    stranger = f"files/{created.transfer_id}/nosuchfile000000"
    foreign = s3.create_multipart_upload(Bucket=settings.FXFER_BUCKET, Key="files/not-ours")["UploadId"]
    unknown = s3.create_multipart_upload(Bucket=settings.FXFER_BUCKET, Key=stranger)["UploadId"]

    expire_sweep({"time": later(minutes=90).isoformat()}, None)
    assert multipart_uploads(key) == [live]  # the upload in progress goes on
    assert multipart_uploads(cancelled_key) == multipart_uploads(stranger) == multipart_uploads("files/not-ours") == []
    [event] = _events("upload.orphans_aborted")
    assert event.details["count"] == 4 and event.actor == "job:expire_sweep"
    assert {u["upload_id"] for u in event.details["uploads"]} == {lost, gone, foreign, unknown}
    expire_sweep({"time": later(minutes=150).isoformat()}, None)  # nothing left to abort: nothing recorded
    assert len(_events("upload.orphans_aborted")) == 1 and multipart_uploads(key) == [live]
