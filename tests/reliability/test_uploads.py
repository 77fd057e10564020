"""Verification under AWS faults: each fault kind (error answer, timeout, lost answer), once and outlasting every
retry, at each AWS call of three flows that verify a file: the browser's "done" after a POST upload, the S3
ObjectCreated event, and the server's completion of a multipart upload. After each case, what production does
next (the S3 event delivered again, the browser calling again, the outbox's retry job) runs, then:

- the user was told the truth: success, or "unavailable" (503, try again) for the browser, or an exception for
  Lambda to retry the event; never a refusal because AWS was busy;
- the file is verified with exactly one "file.verified" event;
- its transfer is released and each recipient has one link mail (the same mail twice at worst, when the
  outbox could not record that SES accepted it);
- the audit chain verifies once the chainer has run."""

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.core import mail

from fxfer import aws
from fxfer.aws import transient
from reports.models import AuditEvent
from tests.faults import Killed, sweep_faults
from tests.reliability.chain import chain_verifies
from tests.transfers.conftest import (  # noqa: F401 - autouse fixtures: a fresh KMS key ARN, moto's bucket policy
    ALICE,
    LINK,
    NOW,
    _bucket_policy_without_conditions_is_not_ours,
    _fresh_kms_key_arn,
    browser_put_parts,
    checksums_of,
    create,
    put_object_as_browser,
    sign_parts,
)
from transfers import services, storage
from transfers.errors import TransferError
from transfers.jobs import on_object_created
from transfers.models import File, Transfer
from transfers.outbox import outbox_retry
from transfers.policy import FileDeclared

BODY = b"hello world"
_numbers = itertools.count(1)


@pytest.fixture(autouse=True)
def _mail(mailoutbox):
    return mailoutbox


def _event(key: str, version_id: str | None) -> dict:
    obj = {"key": key, "size": 1, **({"versionId": version_id} if version_id else {})}
    return {"Records": [{"s3": {"bucket": {"name": settings.FXFER_BUCKET}, "object": obj}}]}


def _fresh_tables() -> None:
    """Each case starts from empty tables and an empty mailbox. moto copies every table a transaction touches
    (to roll back), so without this each case of a sweep would cost more than the one before it."""
    from moto.dynamodb.models import dynamodb_backends

    for regions in dynamodb_backends.values():
        for backend in regions.values():
            for table in backend.tables.values():
                table.items.clear()
    mail.outbox.clear()


def _outbox_job() -> None:
    """The outbox's retry job, a few minutes on: past any claim a crashed or answerless sender left."""
    outbox_retry(now=datetime.now(UTC) + timedelta(minutes=5))


def _setup(*, size: int = len(BODY)) -> dict:
    _fresh_tables()
    n = next(_numbers)
    recipients = [f"bob{n}@partner.example", f"carol{n}@other.example"]
    created = create(files=[FileDeclared(name=f"report-{n}.pdf", size=size)], recipients=recipients)
    file = created.files[0]
    ids = {"owner_id": ALICE.id, "transfer_id": created.transfer_id, "file_id": file.file_id}
    return {"created": created, "file": file, "ids": ids, "recipients": recipients}


def _posted() -> dict:
    """A transfer whose one file the browser has POSTed to S3 (not yet reported done)."""
    state = _setup()
    services.upload_authorize(**state["ids"], now=NOW)
    put_object_as_browser(state["file"].key, BODY)
    # A cold Lambda looks the KMS key up again: verification's KMS call is part of the flow.
    storage.forget_kms_key_arn()
    return state


def _deliver_event(state) -> dict | None:
    """What S3 does after an object is created: notify, with the new version's id."""
    head = storage.object_head(key=state["file"].key)
    if head is None:
        return None
    return on_object_created(_event(state["file"].key, head.version_id), None)


def _heal(state) -> None:
    """What production runs next: the S3 event (again), the browser's "done" (again), the outbox retry job."""
    _deliver_event(state)
    services.upload_done(**state["ids"], now=NOW)
    _outbox_job()


def _check_delivered(state) -> None:
    transfer_id, file_id = state["created"].transfer_id, state["file"].file_id
    file = File.get(transfer_id, file_id, consistent_read=True)
    assert file.state == "verified", f"file left {file.state} ({file.refused_reason})"
    events = [
        e
        for e in AuditEvent.scan(AuditEvent.subject == f"transfer:{transfer_id}")
        if e.action == "file.verified" and (e.details or {}).get("file_id") == file_id
    ]
    assert [e.outcome for e in events] == ["ok"], f"file.verified events: {[e.outcome for e in events]}"
    assert Transfer.get(transfer_id, consistent_read=True).status == "ready", "verified, but never released"
    for address in state["recipients"]:
        links = [LINK.search(m.body)[0] for m in mail.outbox if m.to == [address] and LINK.search(m.body)]
        # SES has no idempotency key: when recording "sent" fails after SES accepted, the outbox sends the
        # same mail again (DESIGN: a rare duplicate over a lost mail). Never a second, different link.
        assert 1 <= len(links) <= 2 and len(set(links)) == 1, f"{address} got {len(links)} link mails"
    chain_verifies()


def _told_the_browser_the_truth(result, error) -> None:
    if isinstance(error, Killed):
        return  # the browser got no answer (a 502 from API Gateway) and calls again: the heal
    if error is not None:
        assert isinstance(error, TransferError) and error.code == "unavailable", f"browser got {error!r}"
    else:
        assert result.outcome == "verified", f"browser told {result.outcome} ({result.reason})"


def test_verify_through_the_browsers_done_call_under_every_fault():
    def act(state):
        return services.upload_done(**state["ids"], now=NOW)

    def check(state, result, error):
        _told_the_browser_the_truth(result, error)
        _check_delivered(state)

    sweep_faults("verify: done (POST upload)", setup=_posted, act=act, check=check, heal=_heal)


def test_verify_through_the_s3_event_under_every_fault():
    def setup():
        state = _posted()
        state["version_id"] = storage.object_head(key=state["file"].key).version_id  # what S3's event carries
        storage.forget_kms_key_arn()
        return state

    def act(state):
        return on_object_created(_event(state["file"].key, state["version_id"]), None)

    def heal(state):
        # Lambda retries a failed event (twice), and S3 may deliver it again besides; the browser's "done" too.
        on_object_created(_event(state["file"].key, state["version_id"]), None)
        services.upload_done(**state["ids"], now=NOW)
        _outbox_job()

    def check(state, result, error):
        if isinstance(error, Killed):
            pass  # the Lambda died: Lambda retries the event (the heal)
        elif error is not None:
            assert transient(error), f"the event failed for good: {error!r}"  # else Lambda retries it in vain
        else:
            assert result["records"][0]["outcome"] == "verified", f"event answered {result}"
        _check_delivered(state)

    sweep_faults("verify: S3 event", setup=setup, act=act, check=check, heal=heal)


def test_multipart_completion_under_every_fault(settings):
    # One part, smaller than S3's part minimum (allowed for the last part): a real multipart upload, cheaply.
    settings.FXFER_MULTIPART_THRESHOLD = 1024
    size = 2048
    body = bytes(range(256)) * (size // 256)

    def setup():
        state = _setup(size=size)
        authorized = services.upload_authorize(**state["ids"], now=NOW)
        assert authorized.mode == "multipart" and authorized.part_count == 1
        urls = sign_parts(state["ids"], authorized.upload_id, [1], now=NOW)
        browser_put_parts(urls, body, authorized.part_size)
        state["upload_id"] = authorized.upload_id
        storage.forget_kms_key_arn()
        return state

    def act(state):
        return services.upload_complete_multipart(
            **state["ids"], upload_id=state["upload_id"], now=NOW, **checksums_of(body)
        )

    def heal(state):
        _deliver_event(state)  # S3 notifies once the upload is complete
        # the browser
        services.upload_complete_multipart(**state["ids"], upload_id=state["upload_id"], now=NOW, **checksums_of(body))
        _outbox_job()

    def check(state, result, error):
        _told_the_browser_the_truth(result, error)
        _check_delivered(state)
        assert storage.object_head(key=state["file"].key).size == size

    sweep_faults("verify: multipart complete", setup=setup, act=act, check=check, heal=heal)


# --- issue 12: what follows a verdict (every version but the verified one goes; refused and cancelled uploads are
# aborted and emptied) under every fault ------------------------------------------------------------------------


def _versions(key: str) -> list[str]:
    page = aws.client("s3").list_object_versions(Bucket=settings.FXFER_BUCKET, Prefix=key)
    return [v["VersionId"] for v in page.get("Versions", []) + page.get("DeleteMarkers", []) if v["Key"] == key]


def _uploads(key: str) -> list[str]:
    listed = aws.client("s3").list_multipart_uploads(Bucket=settings.FXFER_BUCKET, Prefix=key)
    return [u["UploadId"] for u in listed.get("Uploads", []) if u["Key"] == key]


def _file_events(state, action: str) -> list[AuditEvent]:
    transfer_id, file_id = state["created"].transfer_id, state["file"].file_id
    return [
        e
        for e in AuditEvent.scan(AuditEvent.subject == f"transfer:{transfer_id}")
        if e.action == action and (e.details or {}).get("file_id") == file_id
    ]


def test_verify_with_a_stray_version_under_every_fault():
    """A POST policy used twice: the newest version is verified, the other is removed once, with one event."""

    def setup():
        state = _setup()
        services.upload_authorize(**state["ids"], now=NOW)
        put_object_as_browser(state["file"].key, b"first bytes")
        put_object_as_browser(state["file"].key, BODY)
        storage.forget_kms_key_arn()
        return state

    def act(state):
        return services.upload_done(**state["ids"], now=NOW)

    def check(state, result, error):
        _told_the_browser_the_truth(result, error)
        _check_delivered(state)
        file = File.get(state["created"].transfer_id, state["file"].file_id, consistent_read=True)
        assert _versions(state["file"].key) == [file.version_id], "a stray version is still there"
        removed = _file_events(state, "file.stray_version_removed")
        assert len(removed) == 1, f"{len(removed)} events for one removal"

    sweep_faults("verify with a stray version", setup=setup, act=act, check=check, heal=_heal)


def test_cancel_after_a_reused_policy_under_every_fault():
    """Cancelling a file the policy was used for twice: one event, the totals shrink once, every version goes,
    and the rest of the transfer is released."""

    def setup():
        _fresh_tables()
        n = next(_numbers)
        recipients = [f"bob{n}@partner.example", f"carol{n}@other.example"]
        files = [FileDeclared(name=f"keep-{n}.pdf", size=len(BODY)), FileDeclared(name=f"drop-{n}.pdf", size=4)]
        created = create(files=files, recipients=recipients)
        keep, drop = created.files
        keep_ids = {"owner_id": ALICE.id, "transfer_id": created.transfer_id, "file_id": keep.file_id}
        put_object_as_browser(keep.key, BODY)
        assert services.upload_done(**keep_ids, now=NOW).released is False
        ids = {**keep_ids, "file_id": drop.file_id}
        services.upload_authorize(**ids, now=NOW)
        put_object_as_browser(drop.key, b"one!")
        put_object_as_browser(drop.key, b"two!")
        return {"created": created, "file": drop, "ids": ids, "recipients": recipients}

    def act(state):
        return services.upload_cancel(**state["ids"], now=NOW)

    def heal(state):
        services.upload_cancel(**state["ids"], now=NOW)  # the browser calls again
        _outbox_job()

    def check(state, result, error):
        if not isinstance(error, Killed):
            if error is not None:
                assert isinstance(error, TransferError) and error.code == "unavailable", f"browser got {error!r}"
            else:
                assert result.outcome == "cancelled", f"browser told {result.outcome}"
        file = File.get(state["created"].transfer_id, state["file"].file_id, consistent_read=True)
        assert file.state == "cancelled", f"file left {file.state}"
        assert len(_file_events(state, "upload.cancelled")) == 1
        transfer = Transfer.get(state["created"].transfer_id, consistent_read=True)
        assert (transfer.file_count, transfer.total_bytes) == (1, len(BODY)), "the totals did not shrink once"
        assert _versions(state["file"].key) == [], "a version of the cancelled file is still there"
        assert transfer.status == "ready", "the rest of the transfer was never released"
        chain_verifies()

    sweep_faults("cancel after a re-used policy", setup=setup, act=act, check=check, heal=heal)


def test_refusing_a_multipart_upload_under_every_fault(settings):
    """Parts that do not add up: the file is refused with one event, then its upload is aborted (after the
    commit; the browser's next call finishes it), and uploading again starts a new upload, the only one."""
    settings.FXFER_MULTIPART_THRESHOLD = 1024
    size = 2048

    def setup():
        state = _setup(size=size)
        authorized = services.upload_authorize(**state["ids"], now=NOW)
        urls = sign_parts(state["ids"], authorized.upload_id, [1], now=NOW)
        browser_put_parts(urls, bytes(range(256)) * 12, authorized.part_size)  # 3072 bytes
        state["upload_id"] = authorized.upload_id
        return state

    def act(state):
        return services.upload_complete_multipart(
            **state["ids"], upload_id=state["upload_id"], now=NOW, **checksums_of(bytes(size))
        )

    def heal(state):
        services.upload_complete_multipart(
            **state["ids"], upload_id=state["upload_id"], now=NOW, **checksums_of(bytes(size))
        )

    def check(state, result, error):
        if not isinstance(error, Killed):
            if error is not None:
                assert isinstance(error, TransferError) and error.code == "unavailable", f"browser got {error!r}"
            else:
                assert (result.outcome, result.reason) == ("refused", "size"), f"browser told {result}"
        file = File.get(state["created"].transfer_id, state["file"].file_id, consistent_read=True)
        assert (file.state, file.refused_reason) == ("refused", "size")
        assert [e.outcome for e in _file_events(state, "file.verified")] == ["refused"]
        assert _uploads(state["file"].key) == [], "the refused upload was never aborted"
        again = services.upload_authorize(**state["ids"], now=NOW)
        assert _uploads(state["file"].key) == [again.upload_id]

    sweep_faults("refuse a multipart upload", setup=setup, act=act, check=check, heal=heal)
