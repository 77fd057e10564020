"""The hourly job under faults: every AWS call of the expiry sweep, delete-now, the orphan check and the healer
gets each fault kind once (botocore absorbs it) and persistently (the caller sees it); then the next hourly run
(an hour later: claims and leases are stale) does what production would. Invariants: every deleted object has
exactly one `file.deleted` receipt naming exactly its versions, and the bucket agrees; nothing is deleted
while on legal hold; the orphan cursor never skips a page; a verified transfer reaches its recipient; an
orphan reply request is removed with one event; the chain verifies once linked."""

import itertools
from datetime import timedelta

from django.conf import settings
from django.core import mail

from fxfer import aws
from fxfer.change import Change
from reports.models import AuditEvent
from tests.faults import sweep_faults
from tests.reliability.chain import chain_verifies
from tests.transfers.conftest import (  # noqa: F401 - fixtures the transfer helpers need
    ALICE,
    NOW,
    _bucket_policy_without_conditions_is_not_ours,
    _fresh_kms_key_arn,
    create,
    put_object_as_browser,
    ready_transfer,
)
from transfers import services
from transfers.jobs import expire_sweep
from transfers.models import FILE_VERIFIED, MAIL_SENT, File, OutboxMail, SweepCursor, Transfer
from transfers.policy import FileDeclared
from transfers.services.expiry import (
    ORPHAN_CURSOR,
    ORPHAN_UPLOADS_CURSOR,
    orphan_objects_sweep,
    orphan_uploads_sweep,
    sweep_heal,
)
from transfers.services.requests import reply_request_create

OFFICER = "u-carol"
_numbers = itertools.count()
# The calls that change something, and the reads that decide what is deleted or passed over (S3's listing, the
# BatchGetItem of a page of due transfers, of the orphan keys' files and their transfers): another read that
# fails only makes the run fail earlier, which the next run covers the same way. Every call of these flows would
# take longer than the suite may (each case provisions a released transfer).
_WRITES = {
    "BatchGetItem",
    "TransactWriteItems",
    "UpdateItem",
    "PutItem",
    "DeleteItem",
    "BatchWriteItem",
    "DeleteObject",
    "ListObjectVersions",
    "PutObjectLegalHold",
    "ListMultipartUploads",
    "AbortMultipartUpload",
    "SendRawEmail",
    "SendEmail",
}


def _changes(service: str, operation: str) -> bool:
    return operation in _WRITES


def _versions(key: str) -> list[str]:
    page = aws.client("s3").list_object_versions(Bucket=settings.FXFER_BUCKET, Prefix=key)
    return [v["VersionId"] for v in page.get("Versions", []) + page.get("DeleteMarkers", []) if v["Key"] == key]


def _receipts(key: str) -> list[AuditEvent]:
    # Test inspection only: a foreign key's receipt has no transfer to be found by.
    # The action is filtered by the Scan itself: the stand-in then returns (and serialises) only those events.
    deleted = AuditEvent.scan(AuditEvent.action == "file.deleted")
    return [e for e in deleted if (e.details or {}).get("key") == key]


def _events(transfer_id: str, action: str) -> list[AuditEvent]:
    return [
        e for e in AuditEvent.by_subject.query(f"transfer:{transfer_id}") if e.action == action and e.outcome == "ok"
    ]


def _chain_verifies() -> None:
    chain_verifies(NOW + timedelta(days=60))


def _deleted_once(key: str, versions: list[str]) -> None:
    assert _versions(key) == [], "the object is still in the bucket"
    receipts = _receipts(key)
    assert len(receipts) == 1, f"{len(receipts)} receipts for one deleted object"
    assert sorted(receipts[0].details["version_ids"]) == sorted(versions), "the receipt names other versions"


def _next_hour(at) -> None:
    expire_sweep({"time": (at + timedelta(hours=1)).isoformat()}, None)


# --- the expiry sweep of an expired transfer -------------------------------------------------------------------


def test_expiry_sweep_of_an_expired_transfer_under_faults():
    def setup():
        address = f"bob{next(_numbers)}@partner.example"
        created, _tokens = ready_transfer(recipients=[address])
        key = created.files[0].key
        put_object_as_browser(key, b"a second version")
        # Another transfer, on legal hold and past its expiry too: it must survive every case.
        held, _ = ready_transfer(recipients=[address], body=b"evidence")
        services.transfer_hold_set(officer_id=OFFICER, transfer_id=held.transfer_id, reason="Case 2026-21")
        expires_at = Transfer.get(created.transfer_id).expires_at
        return {
            "id": created.transfer_id,
            "key": key,
            "versions": _versions(key),
            "held_key": held.files[0].key,
            "at": expires_at,
        }

    def act(state):
        return services.expiry_sweep(now=state["at"])

    def heal(state):
        _next_hour(state["at"])

    def check(state, result, error):
        _deleted_once(state["key"], state["versions"])
        assert len(_events(state["id"], "transfer.expired")) == 1, "the transfer's end is not recorded once"
        assert Transfer.get(state["id"]).deleted_at is not None
        assert _versions(state["held_key"]), "a held object was deleted"
        if error is None:
            assert result.files_deleted <= 1
        _chain_verifies()

    sweep_faults("expiry sweep", setup=setup, act=act, check=check, heal=heal, only=_changes)


# --- delete now ---------------------------------------------------------------------------------------------------


def test_delete_now_under_faults():
    def setup():
        created, _tokens = ready_transfer(recipients=[f"bob{next(_numbers)}@partner.example"])
        key = created.files[0].key
        return {"id": created.transfer_id, "key": key, "versions": _versions(key)}

    def act(state):
        return services.transfer_delete_now(owner_id=ALICE.id, transfer_id=state["id"], now=NOW + timedelta(minutes=5))

    def heal(state):
        _next_hour(NOW + timedelta(minutes=5))

    def check(state, result, error):
        transfer = Transfer.get(state["id"])
        if error is not None and transfer.deletion_claimed_at is None and transfer.deleted_at is None:
            # Refused before anything was claimed: the sender was told it failed, and nothing is gone.
            assert sorted(_versions(state["key"])) == sorted(state["versions"]), "deleted without a claim"
            assert _receipts(state["key"]) == []
        else:
            _deleted_once(state["key"], state["versions"])
            [ended] = _events(state["id"], "transfer.deleted")
            assert ended.details["by"] == "sender" and transfer.status == "deleted"
        if error is None:
            assert [r.key for r in result.receipts] == [state["key"]], "the sender was shown no receipt"
        _chain_verifies()

    sweep_faults("delete now", setup=setup, act=act, check=check, heal=heal, only=_changes)


# --- the orphan check -------------------------------------------------------------------------------------------


def test_orphan_check_under_faults(settings):
    settings.FXFER_ORPHAN_KEYS_PER_RUN = 2

    def setup():
        SweepCursor(name=ORPHAN_CURSOR).delete()  # each case starts its own listing
        n = next(_numbers)
        keys = [f"files/{c * 12}{n:04d}/{'Q' * 16}" for c in "ABC"]  # never a key an earlier case used
        put_object_as_browser(keys[0], b"one")
        put_object_as_browser(keys[0], b"one, again")  # two versions: the receipt names both
        for key in keys[1:]:
            put_object_as_browser(key, b"x")
        return {"keys": keys, "versions": {key: _versions(key) for key in keys}}

    def act(state):
        return orphan_objects_sweep(now=NOW)

    def heal(state):
        # The next hourly runs: a page holds two versions (the first key alone fills one), and an earlier case
        # may have left a key too. Four runs reach the end of the listing; a page skipped leaves its key behind.
        for hours in range(1, 5):
            orphan_objects_sweep(now=NOW + timedelta(hours=hours))

    def check(state, result, error):
        for key in state["keys"]:
            _deleted_once(key, state["versions"][key])
        _chain_verifies()
        for key in state["keys"]:  # the next case starts from an empty bucket and a fresh cursor
            assert _versions(key) == []

    sweep_faults("orphan check", setup=setup, act=act, check=check, heal=heal, only=_changes)


# --- multipart uploads no live record owns ------------------------------------------------------------------------


def _uploads(key: str) -> list[str]:
    listed = aws.client("s3").list_multipart_uploads(Bucket=settings.FXFER_BUCKET, Prefix=key)
    return [u["UploadId"] for u in listed.get("Uploads", []) if u["Key"] == key]


def test_orphan_upload_sweep_under_faults(settings):
    """Uploads nobody owns (a lost CreateMultipartUpload answer at a live file's key, keys of no file) are
    aborted by this run or the next ones, each named in exactly one event; the live upload is never touched."""
    settings.FXFER_MULTIPART_THRESHOLD = 1024

    def setup():
        SweepCursor(name=ORPHAN_UPLOADS_CURSOR).delete()  # each case starts its own listing
        n = next(_numbers)
        created = create(files=[FileDeclared(name=f"big-{n}.bin", size=2048)], recipients=[f"bob{n}@partner.example"])
        file = created.files[0]
        live = services.upload_authorize(owner_id=ALICE.id, transfer_id=created.transfer_id, file_id=file.file_id)
        s3 = aws.client("s3")
        orphans = [(file.key, s3.create_multipart_upload(Bucket=settings.FXFER_BUCKET, Key=file.key)["UploadId"])]
        for c in "AB":
            key = f"files/{c * 12}{n:04d}/{'Q' * 16}"  # never a key an earlier case used
            orphans.append((key, s3.create_multipart_upload(Bucket=settings.FXFER_BUCKET, Key=key)["UploadId"]))
        return {"key": file.key, "live": live.upload_id, "orphans": orphans}

    def act(state):
        return orphan_uploads_sweep(now=NOW)  # moto dates every upload 2010: none is in its grace period

    def heal(state):
        for hours in range(1, 3):  # the next hourly runs: a killed run's lease has lapsed
            orphan_uploads_sweep(now=NOW + timedelta(hours=hours))

    def check(state, result, error):
        assert _uploads(state["key"]) == [state["live"]], "the live upload was aborted, or an orphan stayed"
        for key, _upload_id in state["orphans"][1:]:
            assert _uploads(key) == [], f"an orphan upload at {key} stayed"
        named = [
            (u["key"], u["upload_id"])
            for e in AuditEvent.scan(AuditEvent.action == "upload.orphans_aborted")
            for u in e.details["uploads"]
        ]
        for orphan in state["orphans"]:
            assert named.count(orphan) == 1, f"{orphan} named in {named.count(orphan)} events"
        cursor = SweepCursor.get(ORPHAN_UPLOADS_CURSOR, consistent_read=True)
        assert not cursor.claims and not cursor.lease_op, "the cursor kept claims or a lease"
        _chain_verifies()

    sweep_faults("orphan upload sweep", setup=setup, act=act, check=check, heal=heal, only=_changes)


# --- healing ------------------------------------------------------------------------------------------------------


def _verified_but_unreleased(address: str) -> str:
    """What a crash after the file's "verified" write left: the file verified, the transfer still pending."""
    created = create(recipients=[address])
    file = created.files[0]
    services.upload_authorize(owner_id=ALICE.id, transfer_id=created.transfer_id, file_id=file.file_id, now=NOW)
    put_object_as_browser(file.key, b"hello world")
    version = _versions(file.key)[0]
    File(parent_id=created.transfer_id, file_id=file.file_id).update(
        actions=[
            File.state.set(FILE_VERIFIED),
            File.verified_size.set(11),
            File.version_id.set(version),
            File.verified_at.set(NOW),
        ]
    )
    return created.transfer_id


def test_heal_under_faults():
    def setup():
        n = next(_numbers)
        address = f"carl{n}@partner.example"
        transfer_id = _verified_but_unreleased(address)
        # A reply request alone: what a crash left before transfer_create committed both together.
        orphan = Change(op=f"create:never-committed-{n:04d}", now=NOW - timedelta(hours=1))
        reply_id = reply_request_create(
            sender=ALICE,
            transfer_id=f"never-committed-{n:04d}",
            subject="Lost",
            recipients=[("r0000000000000001", f"dana{n}@partner.example")],
            closes_at=NOW + timedelta(days=3),
            change=orphan,
            ip=None,
            user_agent=None,
            now=NOW - timedelta(hours=1),
        )
        orphan.commit()
        change = Change(op=f"notice:{n}", now=NOW)
        mail_key = change.mail(
            key=f"notice:{n}", kind="notice", to=f"erin{n}@partner.example", subject="Hi", body="A notice."
        )
        change.commit(send_mails=False)
        return {"transfer_id": transfer_id, "address": address, "reply_id": reply_id, "mail_key": mail_key}

    def act(state):
        return sweep_heal(now=NOW)

    def heal(state):
        sweep_heal(now=NOW + timedelta(hours=1))

    def check(state, result, error):
        transfer = Transfer.get(state["transfer_id"])
        assert transfer.status == "ready", "a verified transfer was left unreleased"
        assert [m for m in mail.outbox if m.to == [state["address"]]], "the recipient was never mailed"
        assert OutboxMail.get(state["mail_key"]).status == MAIL_SENT, "a mail due stayed unsent"
        assert Transfer.count(state["reply_id"]) == 0, "the orphan reply request is still there"
        removed = _events(state["reply_id"], "reply_request.removed")
        assert len(removed) == 1, f"{len(removed)} events for one removal"
        _chain_verifies()

    sweep_faults("heal", setup=setup, act=act, check=check, heal=heal, only=_changes)
