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

from fxfer.aws import transient
from reports.chain import audit_chain_link, audit_chain_verify
from reports.models import AuditEvent
from tests.faults import Killed, sweep_faults
from tests.transfers.conftest import (  # noqa: F401 - autouse fixtures: a fresh KMS key ARN, moto's bucket policy
    ALICE,
    LINK,
    NOW,
    _bucket_policy_without_conditions_is_not_ours,
    _fresh_kms_key_arn,
    browser_put_parts,
    create,
    put_object_as_browser,
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
    audit_chain_link()
    verified = audit_chain_verify()
    assert verified.ok, f"audit chain: {verified}"


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
        browser_put_parts(authorized.part_urls, body, authorized.part_size)
        state["upload_id"] = authorized.upload_id
        storage.forget_kms_key_arn()
        return state

    def act(state):
        return services.upload_complete_multipart(**state["ids"], upload_id=state["upload_id"], now=NOW)

    def heal(state):
        _deliver_event(state)  # S3 notifies once the upload is complete
        services.upload_complete_multipart(**state["ids"], upload_id=state["upload_id"], now=NOW)  # the browser
        _outbox_job()

    def check(state, result, error):
        _told_the_browser_the_truth(result, error)
        _check_delivered(state)
        assert storage.object_head(key=state["file"].key).size == size

    sweep_faults("verify: multipart complete", setup=setup, act=act, check=check, heal=heal)
