"""Shared set-up for the transfer tests: a sender, transfers created through the services, and uploads made
the way a browser makes them (straight to S3, with the fields or part URLs the server handed out)."""

import base64
import hashlib
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import requests
from django.conf import settings

from fxfer import aws
from transfers import services, storage
from transfers.policy import FileDeclared

NOW = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)
LINK = re.compile(r"/t/([A-Za-z0-9_-]{43})")
CODE = re.compile(r"^\s+(\d{6})\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Sender:
    id: str = "u-alice"
    email: str = "alice@corp.example"
    display_name: str = "Alice Sender"


ALICE = Sender()
MALLORY = Sender(id="u-mallory", email="mallory@corp.example", display_name="Mallory")
APPROVERS_GROUP = "approvers-group-id"


def approval_by_manager(settings, *, group_email: str = "approvers@corp.example") -> None:
    """The approval tests' policy: every transfer outside corp.example waits for the sender's manager, 24 hours,
    then is rejected; the approvers' group is the fallback and escalation group, `group_email` its list address
    (its mails)."""
    settings.FXFER_APPROVAL = "external"
    settings.FXFER_APPROVAL_ALLOWED_DOMAINS = ["corp.example"]
    settings.FXFER_APPROVAL_OVER_BYTES = 0
    settings.FXFER_APPROVAL_DEPARTMENTS = []
    settings.FXFER_APPROVER = "manager"
    settings.FXFER_APPROVAL_GROUP = APPROVERS_GROUP
    settings.FXFER_APPROVAL_GROUP_EMAIL = group_email
    settings.FXFER_APPROVAL_TIMEOUT_HOURS = 24
    settings.FXFER_APPROVAL_ON_TIMEOUT = "reject"


@pytest.fixture(autouse=True)
def _fresh_kms_key_arn():
    # A test marked fresh_world (or one that deletes the key) gets a new moto KMS key: the per-process ARN cache
    # must not outlive it.
    storage.forget_kms_key_arn()
    yield
    storage.forget_kms_key_arn()


@pytest.fixture(autouse=True)
def _bucket_policy_without_conditions_is_not_ours():
    """moto evaluates bucket policies but ignores their Condition blocks, so each of our conditional Denies
    (plain HTTP, old TLS, another key) would deny every request. The policy document is tested on its own
    (tests/fxfer/test_provisioning.py); here S3 behaves as it does with the policy for well-behaved calls."""
    if not os.environ.get("FXFER_S3_ENDPOINT"):
        aws.client("s3").delete_bucket_policy(Bucket=settings.FXFER_BUCKET)


@pytest.fixture(autouse=True)
def _mail(mailoutbox):
    """Django's test mail outbox (pytest-django swaps in the locmem backend); one test goes through SES."""
    return mailoutbox


def create(*, files=None, recipients=None, sender=ALICE, now=NOW, **kwargs) -> services.TransferCreated:
    return services.transfer_create(
        sender=sender,
        recipients=recipients or ["bob@partner.example"],
        files=files or [FileDeclared(name="report.pdf", size=11, content_type="application/pdf")],
        subject=kwargs.pop("subject", "Quarterly figures"),
        message=kwargs.pop("message", "Here they are."),
        now=now,
        **kwargs,
    )


def browser_post(authorized: services.UploadAuthorized, body: bytes, **field_changes) -> requests.Response:
    """POST the file the way the uploader does: the server's fields, then the file."""
    fields = {**authorized.fields, **field_changes}
    fields = {k: v for k, v in fields.items() if v is not None}
    return requests.post(authorized.url, data=fields, files={"file": ("ignored-name", body)}, timeout=30)


def multipart_uploads(key: str) -> list[str]:
    """The ids of the multipart uploads S3 holds at `key`, in S3's order."""
    listed = aws.client("s3").list_multipart_uploads(Bucket=settings.FXFER_BUCKET, Prefix=key)
    return [u["UploadId"] for u in listed.get("Uploads", []) if u["Key"] == key]


def put_object_as_browser(key: str, body: bytes, **extra) -> None:
    """What a presigned POST with our fields stores (moto does not enforce POST policies; LocalStack does)."""
    params = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": storage.kms_key_arn(), **extra}
    params = {k: v for k, v in params.items() if v is not None}
    aws.client("s3").put_object(Bucket=settings.FXFER_BUCKET, Key=key, Body=body, **params)


def crc64nvme(data: bytes) -> str:
    """CRC-64/NVME (S3's CRC64NVME), base64 of its 8 bytes: a slow reference for tests, where a stand-in checks
    it (LocalStack). The browser computes it with hash-wasm (static/js/hash-worker.js)."""
    table = _crc64nvme_table()
    crc = 0xFFFFFFFFFFFFFFFF
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return base64.b64encode((crc ^ 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big")).decode()


def _crc64nvme_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ (0x9A6C9329AC4BC9B5 if crc & 1 else 0)
        table.append(crc)
    return table


# moto (without awscrt) neither checks a part's CRC-64/NVME nor the whole file's: in the fast tier any well-formed
# value stands for it. LocalStack checks them: tests/integration use crc64nvme() above.
ANY_CRC = base64.b64encode(bytes(8)).decode()


def sign_parts(
    ids: dict, upload_id: str, numbers, body: bytes | None = None, part_size: int = 0, now: datetime | None = None
) -> dict[int, str]:
    """Part URLs the way the uploader gets them: a batch at a time, each signed for its part's CRC-64/NVME (the
    real one when `body` is given, else ANY_CRC)."""
    numbers = list(numbers)
    batch = settings.FXFER_PART_URL_BATCH
    urls: dict[int, str] = {}
    for start in range(0, len(numbers), batch):
        crcs = {
            n: crc64nvme(body[(n - 1) * part_size : n * part_size]) if body is not None else ANY_CRC
            for n in numbers[start : start + batch]
        }
        urls.update(services.upload_parts_sign(**ids, upload_id=upload_id, part_checksums=crcs, now=now).part_urls)
    return urls


def checksums_of(body: bytes, *, real_crc: bool = False) -> dict[str, str]:
    """What the uploader sends with a multipart completion: the whole file's SHA-256 (hex) and CRC-64/NVME."""
    return {"sha256": hashlib.sha256(body).hexdigest(), "crc64nvme": crc64nvme(body) if real_crc else ANY_CRC}


def browser_put_parts(
    part_urls: dict[int, str], body: bytes, part_size: int, *, real_crc: bool = False
) -> dict[int, str]:
    """PUT each part to its URL with its CRC-64/NVME header, as the uploader does (`real_crc` for a stand-in
    that checks it; the URL must have been signed for the same value)."""
    etags = {}
    for number, url in sorted(part_urls.items()):
        chunk = body[(number - 1) * part_size : number * part_size]
        headers = {"x-amz-checksum-crc64nvme": crc64nvme(chunk) if real_crc else ANY_CRC}
        response = requests.put(url, data=chunk, headers=headers, timeout=60)
        assert response.status_code == 200, response.text
        etags[number] = response.headers["ETag"]
    return etags


def ready_transfer(*, recipients=None, body=b"hello world", name="report.pdf", now=NOW, mailoutbox=None, **kwargs):
    """A released transfer: created, its one file uploaded and verified, the link mails sent. Returns the
    creation result and each recipient's link token, read from their own mail."""
    created = create(files=[FileDeclared(name=name, size=len(body))], recipients=recipients, now=now, **kwargs)
    file = created.files[0]
    services.upload_authorize(owner_id=ALICE.id, transfer_id=created.transfer_id, file_id=file.file_id, now=now)
    put_object_as_browser(file.key, body)
    verified = services.upload_done(owner_id=ALICE.id, transfer_id=created.transfer_id, file_id=file.file_id, now=now)
    assert verified.outcome == "verified" and verified.released
    tokens = {}
    for message in mailoutbox or []:
        match = LINK.search(message.body)
        if match:
            tokens[message.to[0]] = match[1]
    return created, tokens


def code_from(mailoutbox, to: str) -> str:
    for message in reversed(mailoutbox):
        if message.to == [to] and "one-time code" in message.subject:
            return CODE.search(message.body)[1]
    raise AssertionError(f"no code mail to {to}")


def later(minutes: int = 0, *, days: int = 0, seconds: int = 0) -> datetime:
    return NOW + timedelta(minutes=minutes, days=days, seconds=seconds)


# --- upload requests (issue 5) ----------------------------------------------------------------------------------


def create_request(*, recipients=None, sender=ALICE, now=NOW, **kwargs) -> services.RequestCreated:
    """An open upload request made through the service; each guest is mailed their own link."""
    return services.request_create(
        sender=sender,
        recipients=recipients or ["bob@partner.example"],
        subject=kwargs.pop("subject", "Signed contract"),
        message=kwargs.pop("message", "Please send the signed copies."),
        now=now,
        **kwargs,
    )


def tokens_from(mailoutbox) -> dict[str, str]:
    """Each address's link token, from the newest mail to it that carries one."""
    tokens = {}
    for message in mailoutbox:
        match = LINK.search(message.body)
        if match:
            tokens[message.to[0]] = match[1]
    return tokens


def guest_grant(token: str, mailoutbox, to: str, now=NOW) -> services.AccessGranted:
    """What a guest holds after asking for a code on their link and typing it in."""
    services.guest_code_send(token=token, now=now)
    return services.guest_code_verify(token=token, code=code_from(mailoutbox, to), now=now)


def as_guest(access: services.AccessGranted) -> dict:
    """The guest scope the request and upload services take (what the guest session holds)."""
    return {"transfer_id": access.transfer_id, "recipient_id": access.recipient_id, "grant": access.grant}


def guest_upload(access: services.AccessGranted, file: services.FileCreated, body: bytes, now=NOW):
    """A guest's small file: authorized, stored the way the presigned POST stores it, then reported done."""
    services.upload_authorize(**as_guest(access), file_id=file.file_id, now=now)
    put_object_as_browser(file.key, body)
    return services.upload_done(**as_guest(access), file_id=file.file_id, now=now)


# --- browser tests ------------------------------------------------------------------------------------------------


@pytest.fixture
def sending(settings):
    """Mail goes to the SES stand-in (readable at /dev/mailbox/); files of 6 MiB and more go up in 5 MiB parts."""
    settings.EMAIL_BACKEND = "fxfer.mail.SESBackend"
    settings.FXFER_MULTIPART_THRESHOLD = 6 * 1024**2
    settings.FXFER_MULTIPART_PART_BYTES = 5 * 1024**2
    settings.FXFER_PART_URL_BATCH = 2  # a 12 MiB file needs two batches of part URLs


@pytest.fixture
def guest(chromium):
    context = chromium.new_context(accept_downloads=True)  # a browser without the sender's session
    yield context.new_page()
    context.close()


def sent_link_mail(
    *, transfer_id: str, to: str, now, owner_id: str, owner_email: str, owner_name: str = "", subject: str = "Figures"
) -> tuple[str, str]:
    """A ready transfer whose guest `to` was mailed a link that SES accepted (through the outbox, as a release
    sends it): for bounce and complaint tests. Returns the outbox key and SES's message id."""
    from datetime import timedelta

    from fxfer.change import Change
    from transfers.models import OutboxMail, Recipient, Transfer

    Transfer(
        transfer_id=transfer_id,
        owner_id=owner_id,
        owner_email=owner_email,
        owner_name=owner_name,
        subject=subject,
        status="ready",
        created_at=now,
        created_day=now.date().isoformat(),
        expires_at=now + timedelta(days=7),
        download_limit=3,
    ).save()
    Recipient(parent_id=transfer_id, recipient_id="r1", email=to).save()
    change = Change(op=f"release:{transfer_id}", now=now)
    key = change.mail(
        key=f"link:{transfer_id}:r1",
        kind="link",
        to=to,
        subject="Files for you",
        body="Your link.",
        parent_id=transfer_id,
        recipient_id="r1",
    )
    assert change.commit().sent[key]
    return key, OutboxMail.get(key).ses_message_id
