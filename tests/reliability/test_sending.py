"""The sender's and requester's flows under every fault at every AWS call (tests/faults.py): create (with and
without replies), release, resend, request create, request finish, revoke.

After each case the healing that runs in production runs here too (the outbox retry job; the S3 event or the
hourly job calling transfer_release again), then the invariants are checked: what the caller was told is true;
every state change has exactly one audit event; every released transfer's recipients each get exactly one
accepted link mail; nothing half-created is visible; the audit chain verifies once linked.

    FXFER_FAULT_MATRIX=fault-matrix.md python -m pytest tests/reliability/test_sending.py
"""

import itertools
from datetime import timedelta
from email import message_from_string

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from fxfer import aws
from reports.models import AuditEvent
from tests.faults import Killed, sweep_faults
from tests.reliability.chain import chain_verifies
from tests.transfers.conftest import (
    ALICE,
    LINK,
    NOW,
    as_guest,
    create,
    create_request,
    guest_grant,
    guest_upload,
    multipart_uploads,
    put_object_as_browser,
    tokens_from,
)
from transfers import selectors, services
from transfers.errors import TransferError
from transfers.models import FILE_VERIFIED, READY, REVOKED, File, OutboxMail, Recipient, Transfer
from transfers.outbox import outbox_retry
from transfers.policy import FileDeclared

_n = itertools.count()
LATER = NOW + timedelta(hours=6)  # past every retry delay: the retry job sends whatever is still due


@pytest.fixture(autouse=True)
def _through_ses(settings):
    """Mail goes through (moto's) SES, so SES faults are injected like any other AWS call."""
    settings.EMAIL_BACKEND = "fxfer.mail.SESBackend"


@pytest.fixture(autouse=True)
def _s3_as_in_the_transfer_tests():
    """As tests/transfers/conftest.py: a fresh KMS key per test, and no bucket policy (moto ignores its
    conditions, so each conditional Deny would deny every request)."""
    from django.conf import settings

    from fxfer import aws
    from transfers import storage

    storage.forget_kms_key_arn()
    aws.client("s3").delete_bucket_policy(Bucket=settings.FXFER_BUCKET)
    yield
    storage.forget_kms_key_arn()


def _address(tag: str) -> str:
    return f"{tag}{next(_n)}@partner.example"


def _events(subject_id: str, action: str, outcome: str = "ok") -> list[AuditEvent]:
    return [
        e
        for e in AuditEvent.scan(AuditEvent.subject == f"transfer:{subject_id}")
        if e.action == action and e.outcome == outcome
    ]


def _accepted(to: str) -> list[str]:
    """The distinct mails SES accepted for `to`. SES has no idempotency key: a send whose answer was lost is sent
    again (by botocore's retry or the outbox's), so the same message may arrive twice; the design accepts a rare
    duplicate over a lost mail. Two different links, or none, are what must never happen."""
    from django.conf import settings

    sent = ses_backends[DEFAULT_ACCOUNT_ID][settings.AWS_SES_REGION_NAME].sent_messages
    distinct = {}
    for message in sent:
        if to in message.destinations:
            body = message_from_string(message.raw_data).get_payload(decode=True).decode()
            distinct.setdefault(body, body)  # the same mail sent twice differs only in its headers
    return list(distinct.values())


def _chain_verifies():
    chain_verifies(LATER)


def _heal():
    outbox_retry(now=LATER)


def _unavailable_or_ok(error):
    """The person is told it worked, or "unavailable: nothing was lost, try again" (503); a killed Lambda tells
    them nothing (API Gateway answers 502)."""
    assert (
        error is None or isinstance(error, Killed) or (isinstance(error, TransferError) and error.code == "unavailable")
    ), repr(error)


def _told_failed(error) -> bool:
    return isinstance(error, TransferError)


# --- create ------------------------------------------------------------------------------------------------------


def _create_setup(allow_replies: bool):
    def setup():
        return {"to": _address("bob"), "subject": f"figures {next(_n)}", "allow_replies": allow_replies}

    return setup


def _create_act(state):
    return create(recipients=[state["to"]], subject=state["subject"], allow_replies=state["allow_replies"])


def _create_check(state, result, error):
    _unavailable_or_ok(error)
    mine = [t for t in Transfer.scan(Transfer.subject == state["subject"])]
    replies = [t for t in Transfer.scan(Transfer.subject == f"Reply: {state['subject']}")]
    if error is None:
        # Told "created": it exists, with exactly one created event (and its reply request with its own).
        assert [t.transfer_id for t in mine] == [result.transfer_id], "told created, but it is not there"
        assert len(_events(result.transfer_id, "transfer.created")) == 1, "created events != 1"
        if state["allow_replies"]:
            assert [r.transfer_id for r in replies] == [mine[0].reply_request_id], "reply request missing"
            assert len(_events(replies[0].transfer_id, "request.created")) == 1, "request.created events != 1"
    elif _told_failed(error):
        # Told "try again": nothing was created that anyone can see.
        assert mine == [] and replies == [], "half-created transfer or reply request visible after an error"
    for transfer in mine:
        assert len(_events(transfer.transfer_id, "transfer.created")) == 1, "a transfer without one created event"
    visible, cursor = set(), None
    while True:  # every page: the cases' requests share one creation time, so a page holds any of them
        received = selectors.request_list_for_owner(owner_id=ALICE.id, cursor=cursor)
        visible |= {r.request_id for r in received.items}
        if not (cursor := received.next_cursor):
            break
    assert all(r.transfer_id in visible for r in replies) and all(
        t.reply_request_id in {r.transfer_id for r in replies} for t in mine if t.reply_request_id
    ), "reply request without its transfer (or the other way round)"
    _chain_verifies()


def test_create_under_every_fault():
    sweep_faults("create", setup=_create_setup(False), act=_create_act, check=_create_check)


def test_create_with_replies_under_every_fault():
    sweep_faults("create with replies", setup=_create_setup(True), act=_create_act, check=_create_check)


# --- create with a large file: its multipart upload is started after the commit, best effort -------------------

LARGE = 12 * 1024**2


def _create_large_setup():
    return {"to": _address("bob"), "subject": f"large {next(_n)}"}


def _create_large_act(state):
    return create(recipients=[state["to"]], subject=state["subject"], files=[FileDeclared(name="big.bin", size=LARGE)])


def _create_large_check(state, result, error):
    _create_check({**state, "allow_replies": False}, result, error)
    transfers = list(Transfer.scan(Transfer.subject == state["subject"]))
    if not transfers:
        return  # told "try again", and nothing is there (checked above)
    [transfer] = transfers
    [file] = File.query(transfer.transfer_id)
    if result is not None and result.files[0].upload_id:
        # Told "this upload is yours": the file records it and S3 holds it.
        assert result.files[0].upload_id == file.multipart_upload_id, "told an upload the file does not record"
        assert file.multipart_upload_id in multipart_uploads(file.s3_key), "told an upload S3 does not hold"
    # What the uploader does next: authorize finds the upload, or starts one, and the file records it.
    ids = {"owner_id": ALICE.id, "transfer_id": transfer.transfer_id, "file_id": file.file_id}
    authorized = services.upload_authorize(**ids, now=NOW)
    file.refresh(consistent_read=True)
    assert authorized.upload_id == file.multipart_upload_id, "authorize answered an upload the file does not record"
    uploads = multipart_uploads(file.s3_key)
    assert file.multipart_upload_id in uploads, "the file records an upload S3 does not hold"
    # Besides it, only uploads whose CreateMultipartUpload answer was lost (one per attempt botocore made) or
    # whose process was killed: no file records them, and the hourly sweep aborts them (tests/transfers/
    # test_uploads.py). Never more than one creation's attempts.
    attempts = aws.client("s3").meta.config.retries["total_max_attempts"]
    assert len(uploads) <= 1 + attempts, f"{len(uploads)} uploads at one file's key"


def test_create_with_a_large_file_under_every_fault(settings):
    settings.FXFER_MULTIPART_THRESHOLD = 6 * 1024**2
    settings.FXFER_MULTIPART_PART_BYTES = 5 * 1024**2
    calls = sweep_faults(
        "create with a large file", setup=_create_large_setup, act=_create_large_act, check=_create_large_check
    )
    assert ("s3", "CreateMultipartUpload", 1) in calls  # the upload is started within the creation's answer


# --- release ------------------------------------------------------------------------------------------------------


def _verified_unreleased():
    """A transfer whose files are all verified and which is not released yet (what a crash after the verify, or
    a release that failed, leaves)."""
    to = _address("bob")
    created = create(recipients=[to], files=[FileDeclared(name="a.pdf", size=11)])
    put_object_as_browser(created.files[0].key, b"hello world")
    File(parent_id=created.transfer_id, file_id=created.files[0].file_id).update(
        actions=[File.state.set(FILE_VERIFIED), File.verified_size.set(11), File.verified_at.set(NOW)]
    )
    return {"transfer_id": created.transfer_id, "to": to}


def _release_act(state):
    return services.transfer_release(transfer_id=state["transfer_id"], now=NOW)


def _release_heal(state):
    # What runs next in production: the outbox retry job, and the S3 event / hourly job releasing again.
    _heal()
    services.transfer_release(transfer_id=state["transfer_id"], now=NOW)
    _heal()


def _release_check(state, result, error):
    transfer = Transfer.get(state["transfer_id"])
    if result is not None and result.released:
        assert result.mails_sent + result.mails_pending + result.mails_failed == 1
        if result.mails_sent:
            assert _accepted(state["to"]), "told the mail was sent, but SES has none"
    assert transfer.status == READY, "a verified transfer was not released after healing"
    assert len(_events(state["transfer_id"], "transfer.released")) == 1, "transfer.released events != 1"
    accepted = len(_accepted(state["to"]))
    assert accepted == 1, f"{accepted} accepted link mails"
    [recipient] = Recipient.query(state["transfer_id"])
    assert recipient.link_sent_at is not None and recipient.token_hash
    assert LINK.search(_accepted(state["to"])[0]), "the accepted mail carries no link"
    assert len(_events(state["transfer_id"], "mail.sent")) == 1, "mail.sent events != 1 (one per mail)"
    _chain_verifies()


def test_release_under_every_fault():
    sweep_faults("release", setup=_verified_unreleased, act=_release_act, check=_release_check, heal=_release_heal)


# --- resend -------------------------------------------------------------------------------------------------------


def _released():
    state = _verified_unreleased()
    services.transfer_release(transfer_id=state["transfer_id"], now=NOW)
    [recipient] = Recipient.query(state["transfer_id"])
    return {**state, "recipient_id": recipient.recipient_id, "old_hash": recipient.token_hash}


def _resend_act(state):
    return services.recipient_resend(
        owner_id=ALICE.id, transfer_id=state["transfer_id"], recipient_id=state["recipient_id"], now=NOW
    )


def _resend_check(state, result, error):
    _unavailable_or_ok(error)
    recipient = Recipient.get(state["transfer_id"], state["recipient_id"])
    resent = _events(state["transfer_id"], "link.resent")
    accepted = _accepted(state["to"])
    if result is not None and result.status == "sent":
        assert len(accepted) == 2 and recipient.token_hash != state["old_hash"], "told sent, but not in SES"
    if result is not None and result.status == "pending":
        assert len(accepted) >= 1  # the release mail; the new one comes with the retry job
    if error is None:
        assert len(resent) == 1, "link.resent events != 1"
    assert len(resent) <= 1
    # The old link works until SES accepted the new mail; afterwards the new one works.
    if len(accepted) == 1:
        assert recipient.token_hash == state["old_hash"], "the old link died before the new mail was accepted"
    else:
        assert len(accepted) == 2 and recipient.token_hash != state["old_hash"], (
            "accepted, but the new link is not live"
        )
    _chain_verifies()


def test_resend_under_every_fault():
    sweep_faults("resend", setup=_released, act=_resend_act, check=_resend_check, heal=lambda state: _heal())


# --- revoke -------------------------------------------------------------------------------------------------------


def _revoke_act(state):
    return services.transfer_revoke(owner_id=ALICE.id, transfer_id=state["transfer_id"], now=NOW)


def _revoke_check(state, result, error):
    _unavailable_or_ok(error)
    transfer = Transfer.get(state["transfer_id"])
    revoked = _events(state["transfer_id"], "transfer.revoked")
    if error is None:
        assert transfer.status == REVOKED and len(revoked) == 1, "told revoked, but it is not (or events != 1)"
    assert len(revoked) == (1 if transfer.status == REVOKED else 0), "revoked without exactly one event"
    _chain_verifies()


def test_revoke_under_every_fault():
    sweep_faults("revoke", setup=_released, act=_revoke_act, check=_revoke_check)


# --- upload requests ----------------------------------------------------------------------------------------------


def _request_setup():
    return {"to": _address("carol"), "subject": f"contract {next(_n)}"}


def _request_act(state):
    return create_request(recipients=[state["to"]], subject=state["subject"])


def _request_check(state, result, error):
    _unavailable_or_ok(error)
    made = list(Transfer.scan(Transfer.subject == state["subject"]))
    if error is None:
        assert [r.transfer_id for r in made] == [result.request_id], "told created, but it is not there"
        [mail] = result.mails
        if mail.sent:
            assert _accepted(state["to"]), "told mailed, but SES has nothing"
    elif _told_failed(error):
        assert made == [], "a request is visible after the caller was told to try again"
    for request in made:
        assert len(_events(request.transfer_id, "request.created")) == 1, "request.created events != 1"
        # Once the retry job ran, the guest has exactly one link that works.
        accepted = len(_accepted(state["to"]))
        assert accepted == 1, f"the guest's link mail was accepted {accepted} times"
        [guest] = Recipient.query(request.transfer_id)
        assert guest.link_sent_at is not None
    _chain_verifies()


def test_request_create_under_every_fault():
    sweep_faults(
        "request create", setup=_request_setup, act=_request_act, check=_request_check, heal=lambda state: _heal()
    )


def _finishing_guest():
    """A request's guest who proved their address and uploaded one file (set up with mail kept in memory, to read
    the link and the code)."""
    from django.core import mail
    from django.test.utils import override_settings

    to = _address("dave")
    with override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):
        mail.outbox = []
        created = create_request(recipients=[to], subject=f"contract {next(_n)}")
        access = guest_grant(tokens_from(mail.outbox)[to], mail.outbox, to)
        declared = services.request_files_declare(
            **as_guest(access), files=[FileDeclared(name="s.pdf", size=5)], now=NOW
        )
        guest_upload(access, declared.files[0], b"hello", now=NOW)
    return {"access": access, "request_id": created.request_id}


def _finish_act(state):
    return services.request_finish(**as_guest(state["access"]), note="Signed.", now=NOW)


def _finish_check(state, result, error):
    _unavailable_or_ok(error)
    finished = _events(state["request_id"], "request.finished")
    guest = Recipient.get(state["request_id"], state["access"].recipient_id)
    if error is None:
        assert guest.finished_at is not None and len(finished) == 1, "told finished, but not recorded once"
        if result.mailed:
            assert _accepted(ALICE.email), "told the employee was mailed, but SES has nothing"
    assert len(finished) == (1 if guest.finished_at else 0), "finished without exactly one event"
    mails = [m for m in OutboxMail.by_parent.query(state["request_id"]) if m.kind == "request_finished"]
    assert len(mails) == len(finished), "the employee's mail and the finish did not commit together"
    assert all(m.status == "sent" for m in mails), "the employee's mail was not sent after the retry job"
    _chain_verifies()


def test_request_finish_under_every_fault(settings):
    settings.FXFER_LINK_LOOKUPS_PER_IP = 100_000  # every set-up opens a link from the same (test) address
    settings.FXFER_CODE_SENDS_PER_WINDOW = 100_000
    sweep_faults(
        "request finish", setup=_finishing_guest, act=_finish_act, check=_finish_check, heal=lambda state: _heal()
    )
