"""Uploads straight from the browser to S3, and the server's verification of every object before release.

Small files: one presigned POST whose policy pins key, exact size, SSE-KMS with our key and a short expiry.
Large files: a multipart upload the server creates (with SSE-KMS), part URLs signed a batch at a time, and
completion by the server after it has checked the parts add up to the declared size. Either way the file is
released only by file_verify, which the browser's "done" call and the S3 ObjectCreated event both reach.

The uploader is either the sender of a pending transfer (`owner_id`) or a guest of an open upload request
(`recipient_id` and the `grant` of their session), who may touch only the files they declared themselves.

Crash consistency (DESIGN "Reliability rules"): a file's verdict (verified or refused) and its "file.verified"
event commit in one transaction whose operation id names the file and the S3 object version
("verify:<file id>:<version id>"), and so does a cancellation with its totals and its event. Everything after
the commit (releasing the transfer, a legal hold, deleting a refused object, aborting a multipart upload) is
safe to repeat, and every caller repeats it: a second "done", a second S3 event, Lambda's retry of a failed
event, the hourly heal. A verified file therefore always leads to its transfer's release, and a retry after a
lost answer finds its own effect (the file already verified at that version) instead of an error.

AWS busy after botocore's retries (a throttle, a timeout, a 5xx, KMS): the browser's calls answer
TransferError("unavailable") (503, nothing lost), and the S3 event handler raises so Lambda retries it; a file
is never refused because AWS was busy. Errors that retrying cannot fix are logged and end the event.
"""

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.utils.translation import gettext as _
from pynamodb.exceptions import PynamoDBException, UpdateError

from fxfer.aws import transient
from fxfer.change import Change, ChangeRefused, ChangeTooLarge, old_value
from transfers import policy, storage
from transfers.errors import TransferError
from transfers.models import (
    FILE_CANCELLED,
    FILE_PENDING,
    FILE_REFUSED,
    FILE_VERIFIED,
    KIND_REQUEST,
    KIND_SEND,
    PENDING,
    READY,
    UPLOAD_MULTIPART,
    UPLOAD_POST,
    File,
    Recipient,
    Transfer,
)
from transfers.services import quota, scanning
from transfers.services.common import (
    conditional_failed,
    file_get,
    later,
    owned_transfer,
    status_at,
    transfer_get,
    unavailable_when_aws_fails,
    utc,
    valid_id,
)
from transfers.services.guests import guest_access
from transfers.services.sending import multipart_start, transfer_release, upload_post

logger = logging.getLogger(__name__)


def _aws_refused(exc: BaseException) -> bool:
    """An error from AWS (or our own change) that retrying cannot fix."""
    return not transient(exc) and isinstance(
        exc, ClientError | BotoCoreError | PynamoDBException | ChangeRefused | ChangeTooLarge | TransferError
    )


@dataclass(frozen=True)
class PartDone:
    part_number: int
    size: int
    etag: str


@dataclass(frozen=True)
class UploadAuthorized:
    """How the browser uploads one file. mode "post": POST `fields` and then the file to `url`. mode
    "multipart": PUT each part to its URL (`part_urls`, then more from upload_parts_sign); `parts_done` lists
    parts S3 already holds (resume after a reload)."""

    file_id: str
    key: str
    mode: str
    expires_at: datetime
    url: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    upload_id: str | None = None
    part_size: int | None = None
    part_count: int | None = None
    parts_done: tuple[PartDone, ...] = ()
    part_urls: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Scoped:
    transfer: Transfer
    file: File
    actor: str


def _scoped_file(
    *,
    transfer_id: str,
    file_id: str,
    now: datetime,
    owner_id: str | None = None,
    recipient_id: str | None = None,
    grant: str | None = None,
    pending: bool = True,
) -> _Scoped:
    """One file the caller may upload: the owner's, of their (`pending`) transfer; or a guest's own, of an open
    request. Everything else (another request, another guest's file, a transfer's file) is `not_found`."""
    if grant is not None:
        transfer, recipient = guest_access(
            transfer_id=transfer_id, recipient_id=recipient_id or "", grant=grant, now=now, kind=KIND_REQUEST
        )
        file = _file(transfer_id, file_id)
        if file.uploader_id != recipient.recipient_id:
            raise TransferError("not_found")
        return _Scoped(transfer=transfer, file=file, actor=f"guest:{recipient.recipient_id}")
    transfer = owned_transfer(owner_id=str(owner_id), transfer_id=transfer_id, kind=KIND_SEND)
    file = _file(transfer_id, file_id)
    scoped = _Scoped(transfer=transfer, file=file, actor=f"user:{owner_id}")
    if pending:
        _require_open(scoped, now)
    return scoped


def _require_open(scoped: _Scoped, now: datetime) -> None:
    """A sender's transfer takes uploads while pending (a guest's request was checked by guest_access)."""
    if scoped.transfer.kind == KIND_SEND and status_at(scoped.transfer, now) != PENDING:
        raise TransferError("state_conflict", _("This transfer no longer accepts uploads."))


def _file(parent_id: str, file_id: str) -> File:
    if not valid_id(file_id):
        raise TransferError("not_found")
    try:
        return File.get(parent_id, file_id, consistent_read=True)
    except File.DoesNotExist:
        raise TransferError("not_found") from None


@unavailable_when_aws_fails
def upload_authorize(
    *,
    transfer_id: str,
    file_id: str,
    owner_id: str | None = None,
    recipient_id: str | None = None,
    grant: str | None = None,
    now: datetime | None = None,
) -> UploadAuthorized:
    """Let the browser upload one declared file: POST fields, or a (resumed) multipart upload and its first
    batch of part URLs. A refused file may be uploaded again; a verified one may not."""
    now = utc(now)
    scope = dict(owner_id=owner_id, recipient_id=recipient_id, grant=grant)
    scoped = _scoped_file(transfer_id=transfer_id, file_id=file_id, now=now, **scope)
    file = scoped.file
    if file.state == FILE_VERIFIED:
        raise TransferError("state_conflict", _("%(name)s has already been uploaded.") % {"name": file.name})
    if file.state == FILE_CANCELLED:
        raise TransferError("state_conflict", _("%(name)s was removed from this transfer.") % {"name": file.name})
    if file.state == FILE_REFUSED:
        _upload_again(file)
    if file.upload_mode != UPLOAD_MULTIPART:
        # A request's guest cannot use a policy after the request closes: S3 refuses it from then on.
        until = scoped.transfer.closes_at if scoped.transfer.kind == KIND_REQUEST else None
        post = upload_post(file, until=until, now=now)
        return UploadAuthorized(
            file_id=file.file_id,
            key=file.s3_key,
            mode=UPLOAD_POST,
            expires_at=post.expires_at,
            url=post.url,
            fields=post.fields,
        )

    parts_done: list[storage.UploadedPart] = []
    upload_id = file.multipart_upload_id
    if upload_id and file.multipart_checksum != storage.MULTIPART_CHECKSUM:
        # Started before uploads carried S3's full-object checksum: its parts have none, so start over.
        storage.multipart_abort(key=file.s3_key, upload_id=upload_id)
        upload_id = None
    if upload_id:
        listed = storage.multipart_parts(key=file.s3_key, upload_id=upload_id)
        if listed is None:
            upload_id = None  # aborted or expired meanwhile: start over
        else:
            parts_done = listed
    if not upload_id:
        upload_id = multipart_start(file)
    part_size, part_count = int(file.part_size), int(file.part_count)
    # No part URL yet: each is signed for its part's CRC-64/NVME, which the browser computes as it reads the
    # file and sends with upload_parts_sign.
    return UploadAuthorized(
        file_id=file.file_id,
        key=file.s3_key,
        mode=UPLOAD_MULTIPART,
        expires_at=later(now, settings.FXFER_PART_URL_SECONDS),
        upload_id=upload_id,
        part_size=part_size,
        part_count=part_count,
        parts_done=tuple(PartDone(part_number=p.part_number, size=p.size, etag=p.etag) for p in parts_done),
    )


def _part_sizes(file: File, numbers: list[int]) -> dict[int, int]:
    """Each part's exact length in the planned layout (every part `part_size`, the last one the rest): what
    its URL is signed for, and what completion expects to find."""
    part_size, part_count, declared = int(file.part_size), int(file.part_count), int(file.declared_size)
    return {n: part_size if n < part_count else declared - part_size * (part_count - 1) for n in numbers}


def _upload_again(file: File) -> None:
    """A refused file becomes pending again: whatever its refusal left (an unaborted multipart upload, an object
    not yet deleted) goes first, so a resumed upload never reuses refused parts."""
    _leftovers_remove(file)
    try:
        file.update(
            actions=[File.state.set(FILE_PENDING), File.refused_reason.remove(), File.multipart_upload_id.remove()],
            condition=File.state == FILE_REFUSED,
        )
    except UpdateError as exc:
        if not conditional_failed(exc):
            raise
        # A lost answer (the retry met its own write) or another tab did it: pending is what we want.
        file.refresh(consistent_read=True)
        if file.state != FILE_PENDING:
            raise TransferError("state_conflict") from None
        return
    file.multipart_upload_id = None


def _multipart_file(*, transfer_id: str, file_id: str, upload_id: str, now: datetime, **scope) -> _Scoped:
    scoped = _scoped_file(transfer_id=transfer_id, file_id=file_id, now=now, **scope)
    file = scoped.file
    if file.state != FILE_PENDING or not file.multipart_upload_id or file.multipart_upload_id != upload_id:
        raise TransferError("state_conflict", _("This upload is no longer in progress."))
    return scoped


@dataclass(frozen=True)
class PartsSigned:
    part_urls: dict[int, str]
    expires_at: datetime


@unavailable_when_aws_fails
def upload_parts_sign(
    *,
    transfer_id: str,
    file_id: str,
    upload_id: str,
    part_checksums: dict[int, str],
    owner_id: str | None = None,
    recipient_id: str | None = None,
    grant: str | None = None,
    now: datetime | None = None,
) -> PartsSigned:
    """URLs for the next batch of parts (at most FXFER_PART_URL_BATCH), each valid FXFER_PART_URL_SECONDS and
    each for its part's CRC-64/NVME (part number → base64, computed by the browser as it reads the file): S3
    refuses a part whose bytes do not match."""
    now = utc(now)
    file = _multipart_file(
        transfer_id=transfer_id,
        file_id=file_id,
        upload_id=upload_id,
        now=now,
        owner_id=owner_id,
        recipient_id=recipient_id,
        grant=grant,
    ).file
    numbers = sorted(part_checksums)
    if (
        not numbers
        or len(numbers) > settings.FXFER_PART_URL_BATCH
        or any(not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= int(file.part_count) for n in numbers)
    ):
        raise TransferError(
            "parts_invalid",
            _("Ask for 1 to %(batch)d parts between 1 and %(count)d.")
            % {"batch": settings.FXFER_PART_URL_BATCH, "count": int(file.part_count)},
        )
    checksums = {n: policy.crc64nvme_checked(part_checksums[n], name=file.name) for n in numbers}
    return PartsSigned(
        part_urls=storage.multipart_part_urls(
            key=file.s3_key, upload_id=upload_id, part_sizes=_part_sizes(file, numbers), part_checksums=checksums
        ),
        expires_at=later(now, settings.FXFER_PART_URL_SECONDS),
    )


@unavailable_when_aws_fails
def upload_parts_list(
    *,
    transfer_id: str,
    file_id: str,
    upload_id: str,
    owner_id: str | None = None,
    recipient_id: str | None = None,
    grant: str | None = None,
    now: datetime | None = None,
) -> tuple[PartDone, ...]:
    """The parts S3 already holds (resume after a reload)."""
    now = utc(now)
    file = _multipart_file(
        transfer_id=transfer_id,
        file_id=file_id,
        upload_id=upload_id,
        now=now,
        owner_id=owner_id,
        recipient_id=recipient_id,
        grant=grant,
    ).file
    parts = storage.multipart_parts(key=file.s3_key, upload_id=upload_id)
    if parts is None:
        raise TransferError("state_conflict", _("This upload is no longer in progress."))
    return tuple(PartDone(part_number=p.part_number, size=p.size, etag=p.etag) for p in parts)


def composite_etag(parts: list[storage.UploadedPart]) -> str:
    """The ETag S3 gives an object assembled from these parts: MD5 over the parts' binary ETags, "-<count>"."""
    digest = hashlib.md5(b"".join(bytes.fromhex(p.etag.strip('"')) for p in parts), usedforsecurity=False)
    return f'"{digest.hexdigest()}-{len(parts)}"'


@dataclass(frozen=True)
class FileVerified:
    transfer_id: str | None
    file_id: str | None
    key: str
    # "verified" | "refused" | "missing" | "cancelled" | "unknown_key" | "foreign_bucket" | "stray_version"
    # | "error" (the S3 event met an error that retrying cannot fix; logged)
    outcome: str
    reason: str | None = None
    released: bool = False


@unavailable_when_aws_fails
def upload_complete_multipart(
    *,
    transfer_id: str,
    file_id: str,
    upload_id: str,
    sha256: str | None = None,
    crc64nvme: str | None = None,
    owner_id: str | None = None,
    recipient_id: str | None = None,
    grant: str | None = None,
    now: datetime | None = None,
) -> FileVerified:
    """Complete a multipart upload from the parts S3 holds, after checking they are exactly the declared
    size in the planned layout, then verify the object. `sha256` (hex, as `sha256sum` prints it) and
    `crc64nvme` (base64) are the whole file's, computed by the uploader's browser as it read the file: the
    SHA-256 is kept as the sender's word and shown to recipients; the CRC goes to S3, which refuses to assemble
    an object whose full-object checksum differs (the file is then refused: "checksum"). Missing parts:
    `upload_incomplete`, nothing lost. Called again after an earlier call completed (its answer lost, the
    Lambda killed), it finishes that call's work and answers what it found."""
    now = utc(now)
    scope = dict(owner_id=owner_id, recipient_id=recipient_id, grant=grant)
    scoped = _scoped_file(transfer_id=transfer_id, file_id=file_id, now=now, pending=False, **scope)
    file, actor = scoped.file, scoped.actor
    # A hostile or broken checksum is refused before anything is touched.
    declared_sha256 = policy.sha256_checked(sha256, name=file.name)
    declared_crc = policy.crc64nvme_checked(crc64nvme, name=file.name) if file.multipart_checksum else None
    if file.state == FILE_VERIFIED or (file.state == FILE_REFUSED and file.multipart_upload_id == upload_id):
        return _verify(file=file, version_id=None, actor=actor, now=now)
    _require_open(scoped, now)
    if file.state != FILE_PENDING or not file.multipart_upload_id or file.multipart_upload_id != upload_id:
        raise TransferError("state_conflict", _("This upload is no longer in progress."))
    parts = storage.multipart_parts(key=file.s3_key, upload_id=upload_id)
    if parts is None:
        # Completed by an earlier call whose answer was lost (S3 no longer lists a completed upload): the
        # object the server assembled is there, with the ETag it expected.
        head = storage.object_head(key=file.s3_key) if file.expected_etag else None
        if head is not None and head.etag == file.expected_etag:
            return _verify(file=file, version_id=None, actor=actor, now=now)
        raise TransferError("state_conflict", _("This upload is no longer in progress."))
    part_count = int(file.part_count)
    numbers = [p.part_number for p in parts]
    missing = sorted(set(range(1, part_count + 1)) - set(numbers))
    extra = [n for n in numbers if n > part_count]
    if missing and not extra:
        raise TransferError(
            "upload_incomplete",
            _("%(count)d part(s) of %(name)s have not arrived yet.") % {"count": len(missing), "name": file.name},
            missing_parts=missing[:50],
        )
    expected_sizes = list(_part_sizes(file, list(range(1, part_count + 1))).values())
    if extra or [p.size for p in parts] != expected_sizes:
        reason = "size" if sum(p.size for p in parts) != int(file.declared_size) else "part_layout"
        return _refuse(file=file, reason=reason, ref=upload_id, now=now, actor=actor)
    expected = composite_etag(parts)
    if (file.expected_etag, file.declared_sha256, file.declared_crc64nvme) != (
        expected,
        declared_sha256,
        declared_crc,
    ):
        # Repeating this update (a lost answer) meets the same condition and sets the same values.
        file.update(
            actions=[
                File.expected_etag.set(expected),
                File.declared_sha256.set(declared_sha256),
                File.declared_crc64nvme.set(declared_crc) if declared_crc else File.declared_crc64nvme.remove(),
            ],
            condition=(File.state == FILE_PENDING) & (File.multipart_upload_id == upload_id),
        )
        file.expected_etag, file.declared_sha256, file.declared_crc64nvme = expected, declared_sha256, declared_crc
    try:
        storage.multipart_complete(key=file.s3_key, upload_id=upload_id, parts=parts, checksum_crc64nvme=declared_crc)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in {"BadDigest", "InvalidPart"} or transient(exc):
            raise
        # S3 checked every part's bytes against its CRC; the whole file's CRC the browser gave does not match
        # them. Not what the uploader read: refused (and aborted), and the file may be uploaded again.
        return _refuse(file=file, reason="checksum", ref=upload_id, now=now, actor=actor)
    except Exception:
        # The answer may be what was lost: S3 assembled the object and the retry found no upload. The object
        # at the key tells; anything else (AWS still busy) goes to the caller, and calling again is safe.
        head = storage.object_head(key=file.s3_key)
        if head is None or head.etag != expected:
            raise
        logger.info("upload.multipart_completed_before", extra={"key": file.s3_key})
    return _verify(file=file, version_id=None, actor=actor, now=now)


@unavailable_when_aws_fails
def upload_cancel(
    *,
    transfer_id: str,
    file_id: str,
    owner_id: str | None = None,
    recipient_id: str | None = None,
    grant: str | None = None,
    now: datetime | None = None,
) -> FileVerified:
    """Remove a file the uploader no longer wants to send (before it is verified): its multipart upload is
    aborted, whatever arrived is deleted, the totals shrink (a guest gets their allowance back). The rest of
    a transfer may then be released. The state change, the totals and "upload.cancelled" commit together;
    calling again finishes what an earlier call left (the S3 clean-up, the release)."""
    now = utc(now)
    scope = dict(owner_id=owner_id, recipient_id=recipient_id, grant=grant)
    scoped = _scoped_file(transfer_id=transfer_id, file_id=file_id, now=now, pending=False, **scope)
    file = scoped.file
    if file.state == FILE_VERIFIED:
        raise TransferError("state_conflict", _("%(name)s has already been uploaded.") % {"name": file.name})
    if file.state != FILE_CANCELLED:
        _require_open(scoped, now)
        _cancel_commit(file=file, transfer=scoped.transfer, actor=scoped.actor, now=now)
    # After the commit, and safe to repeat: nothing at a cancelled file's key is ever served.
    _leftovers_remove(file)
    released = transfer_release(transfer_id=transfer_id, now=now).released
    return FileVerified(
        transfer_id=transfer_id, file_id=file_id, key=file.s3_key, outcome="cancelled", released=released
    )


def _cancel_commit(*, file: File, transfer: Transfer, actor: str, now: datetime) -> None:
    size = int(file.declared_size)
    change = Change(op=f"cancel:{file.parent_id}:{file.file_id}", now=now)
    change.update(
        file,
        actions=[File.state.set(FILE_CANCELLED)],
        condition=File.state.is_in(FILE_PENDING, FILE_REFUSED),
        label="file",
    )
    # The sender's quota gets the file's bytes back (once: the file's condition), unless a deleter holds it.
    refund, condition = quota.refund_on_cancel(change, transfer, size=size)
    change.update(
        Transfer(transfer_id=file.parent_id),
        actions=[Transfer.file_count.add(-1), Transfer.total_bytes.add(-size), *refund],
        condition=condition,
        label="transfer",
    )
    if file.uploader_id:
        change.update(
            Recipient(parent_id=file.parent_id, recipient_id=file.uploader_id),
            actions=[Recipient.files_reserved.add(-1), Recipient.bytes_reserved.add(-size)],
            condition=Recipient.recipient_id.exists(),
        )
    change.audit(
        "upload.cancelled", actor=actor, subject=f"transfer:{file.parent_id}", file_id=file.file_id, name=file.name
    )
    try:
        change.commit()
    except ChangeRefused as exc:
        if exc.own_effect():
            return
        refusal = exc.failed("file")
        if refusal is None and exc.failed("transfer") is not None:
            raise TransferError("state_conflict", _("The files of this transfer are being deleted.")) from None
        if refusal is None:
            raise
        if old_value(refusal, "state") != FILE_CANCELLED:
            raise TransferError("state_conflict") from None  # verified meanwhile
    except Exception as exc:
        if not transient(exc):
            raise
        # Perhaps only the answer was lost: the file tells whether the cancellation committed.
        file.refresh(consistent_read=True)
        if file.state != FILE_CANCELLED:
            raise


@unavailable_when_aws_fails
def upload_done(
    *,
    transfer_id: str,
    file_id: str,
    owner_id: str | None = None,
    recipient_id: str | None = None,
    grant: str | None = None,
    now: datetime | None = None,
) -> FileVerified:
    """The browser's "this file is uploaded" call (POST uploads): the same verification as the S3 event."""
    now = utc(now)
    scoped = _scoped_file(
        transfer_id=transfer_id,
        file_id=file_id,
        now=now,
        owner_id=owner_id,
        recipient_id=recipient_id,
        grant=grant,
        pending=False,
    )
    return _verify(file=scoped.file, version_id=None, actor=scoped.actor, now=now)


def file_verify(
    *, key: str, version_id: str | None = None, actor: str = "system", now: datetime | None = None
) -> FileVerified:
    """Verify the object at `key` against its file record (idempotent; at-least-once callers are fine). For a
    file verified before, it finishes what follows (the transfer's release): callers that repeat it heal."""
    now = utc(now)
    parsed = storage.parse_file_key(key)
    file = file_get(*parsed) if parsed else None
    if file is None or file.s3_key != key:
        return FileVerified(transfer_id=None, file_id=None, key=key, outcome="unknown_key")
    return _verify(file=file, version_id=version_id, actor=actor, now=now)


def upload_object_noticed(*, bucket: str, key: str, size: int, version_id: str | None = None) -> FileVerified:
    """React to an S3 ObjectCreated notification (at-least-once: repeating it changes nothing, and finishes
    what an earlier delivery left). AWS busy raises, so Lambda delivers it again; an error that retrying
    cannot fix is logged and ends the event (outcome "error")."""
    if bucket != settings.FXFER_BUCKET:
        result = FileVerified(transfer_id=None, file_id=None, key=key, outcome="foreign_bucket")
    else:
        try:
            result = file_verify(key=key, version_id=version_id, actor="job:on_object_created")
        except Exception as exc:
            if not _aws_refused(exc):
                raise
            logger.exception("upload.object_noticed.failed", extra={"bucket": bucket, "key": key})
            result = FileVerified(transfer_id=None, file_id=None, key=key, outcome="error", reason=type(exc).__name__)
    logger.info("upload.object_noticed", extra={"bucket": bucket, "key": key, "size": size, "outcome": result.outcome})
    return result


def _verify(*, file: File, version_id: str | None, actor: str, now: datetime) -> FileVerified:
    ids = {"transfer_id": file.parent_id, "file_id": file.file_id, "key": file.s3_key}
    if file.state == FILE_CANCELLED:
        return FileVerified(**ids, outcome="cancelled")
    if file.state == FILE_VERIFIED:
        # A later version at a verified key (a re-used POST policy) is never served: downloads are pinned to
        # the verified version. Remove it all the same.
        if version_id and file.version_id and version_id != file.version_id:
            _strays_remove(file=file, actor=actor, now=now)
            return FileVerified(**ids, outcome="stray_version")
        return _verified_finish(file=file, actor=actor, now=now)
    if file.state == FILE_REFUSED:
        _leftovers_remove(file)
        return FileVerified(**ids, outcome="refused", reason=file.refused_reason)

    head = storage.object_head(key=file.s3_key)
    if head is None:
        return FileVerified(**ids, outcome="missing")
    reason = None
    if head.size != int(file.declared_size):
        reason = "size"
    elif head.encryption != storage.SSE:
        reason = "encryption"
    elif head.kms_key_id != storage.kms_key_arn():
        reason = "kms_key"
    elif file.upload_mode != UPLOAD_MULTIPART and file.declared_sha256 and head.checksum_sha256 != file.declared_sha256:
        reason = "checksum"  # S3 checked the POSTed body against the SHA-256 declared with the file
    elif file.upload_mode == UPLOAD_MULTIPART and file.multipart_checksum and not _full_object_checked(head):
        reason = "checksum"  # assembled without S3's full-object checksum: nothing but the sizes was checked
    elif file.upload_mode == UPLOAD_MULTIPART and head.etag != file.expected_etag:
        reason = "etag"  # not the object the server assembled from the checked parts
    parent = transfer_get(file.parent_id)
    if not reason and parent is not None and parent.kind == KIND_REQUEST and status_at(parent, now) != READY:
        reason = "request_closed"  # a POST signed before the request closed, landing after it
    ref = head.version_id or head.etag.strip('"')
    if reason:
        return _refuse(file=file, reason=reason, ref=ref, now=now, actor=actor, size=head.size)

    change = Change(op=f"verify:{file.file_id}:{ref}", now=now)
    change.update(
        file,
        actions=[
            File.state.set(FILE_VERIFIED),
            File.verified_size.set(head.size),
            File.etag.set(head.etag),
            File.checksum_sha256.set(head.checksum_sha256) if head.checksum_sha256 else File.checksum_sha256.remove(),
            File.checksum_crc64nvme.set(head.checksum_crc64nvme)
            if head.checksum_crc64nvme
            else File.checksum_crc64nvme.remove(),
            File.version_id.set(head.version_id) if head.version_id else File.version_id.remove(),
            File.verified_at.set(now),
            File.multipart_upload_id.remove(),
            *scanning.verify_actions(),  # it needs a clean verdict before anyone downloads it
        ],
        condition=File.state == FILE_PENDING,
        label="file",
    )
    change.audit(
        "file.verified",
        actor=actor,
        subject=f"transfer:{file.parent_id}",
        file_id=file.file_id,
        name=file.name,
        size=head.size,
        etag=head.etag,
        checksum_sha256=head.checksum_sha256,
        checksum_crc64nvme=head.checksum_crc64nvme,
        declared_sha256=file.declared_sha256,  # the uploader's browser computed it
    )
    state = _commit_verdict(change, file)
    if state != FILE_VERIFIED:
        # Another caller decided first (refused it, or it was cancelled): that verdict stands.
        file.refresh(consistent_read=True)
        return FileVerified(**ids, outcome=file.state, reason=file.refused_reason)
    file.state, file.version_id = FILE_VERIFIED, head.version_id  # what committed: the version to keep
    file.etag, file.verified_at, file.scan_required = head.etag, now, bool(scanning.verify_actions())
    return _verified_finish(file=file, actor=actor, now=now)


def _full_object_checked(head: storage.ObjectHead) -> bool:
    """Whether S3 holds its full-object CRC-64/NVME for the object (which it checked at completion)."""
    return head.checksum_type == storage.FULL_OBJECT and bool(head.checksum_crc64nvme)


def _commit_verdict(change: Change, file: File) -> str:
    """Commit a verdict on a pending file; the file's state afterwards. An earlier attempt of the same
    operation that committed (a lost answer, a concurrent caller for the same version) counts as this one."""
    try:
        change.commit()
    except ChangeRefused as exc:
        if exc.own_effect():
            return _state_after(change)
        refusal = exc.failed("file")
        if refusal is None:
            raise
        return old_value(refusal, "state") or ""
    except Exception as exc:
        if not transient(exc):
            raise
        # The write may have happened with its answer lost for good: the file tells.
        file.refresh(consistent_read=True)
        if file.state == FILE_PENDING:
            raise
        return file.state
    return _state_after(change)


def _state_after(change: Change) -> str:
    return FILE_VERIFIED if change.op.startswith("verify:") else FILE_REFUSED


def _verified_finish(*, file: File, now: datetime, actor: str = "system") -> FileVerified:
    """What follows a verification, repeated by every later caller until it is done: every other version at
    the key goes, a legal hold for a held transfer's file, then the transfer's release (re-entrant: it sends
    whatever link mail is still pending)."""
    ids = {"transfer_id": file.parent_id, "file_id": file.file_id, "key": file.s3_key}
    _strays_remove(file=file, actor=actor, now=now)
    scanning.scan_after_verify(file, now=now)  # the verdict, when it can be had now (the release below asks it)
    transfer = transfer_get(file.parent_id)
    if transfer is None:
        return FileVerified(**ids, outcome="verified")
    if transfer.held:
        # A file that arrives after the transfer was put on legal hold is held in S3 too, so the lifecycle
        # backstop cannot remove it either.
        storage.legal_hold(key=file.s3_key, on=True)
    released = transfer_release(transfer_id=file.parent_id, now=now).released
    return FileVerified(**ids, outcome="verified", released=released)


def _strays_remove(*, file: File, actor: str, now: datetime) -> int:
    """Delete every version at a verified file's key but the verified one (a POST policy re-used within its
    minutes leaves more), at once, whichever version S3 notified. Downloads are pinned to the verified
    version, so a stray is never served; it must not stay either. The event, naming the versions, commits
    before S3 is asked (its op derives from them): a run killed in between is recognised by the next caller,
    which deletes the same versions. How many versions were removed."""
    if not file.version_id:
        return 0  # an unversioned bucket holds one object per key: nothing beside it
    strays = [v for v in storage.object_versions(key=file.s3_key) if (v.version_id or "null") != file.version_id]
    versions = sorted(v.version_id or "null" for v in strays if not v.delete_marker)
    markers = sorted(v.version_id or "null" for v in strays if v.delete_marker)
    if versions:
        digest = hashlib.sha256(",".join(versions).encode()).hexdigest()[:16]
        change = Change(op=f"stray:{file.file_id}:{digest}", now=now)
        change.audit(
            "file.stray_version_removed",
            actor=actor,
            subject=f"transfer:{file.parent_id}",
            file_id=file.file_id,
            kept_version_id=file.version_id,
            version_ids=versions[:20],
            count=len(versions),
        )
        change.commit()  # an earlier attempt of the same op counts as this one
    if versions or markers:
        storage.object_versions_delete(key=file.s3_key, version_ids=versions, delete_markers=markers)
    return len(versions)


def _refuse(
    *,
    file: File,
    reason: str,
    ref: str,
    now: datetime,
    actor: str,
    size: int | None = None,
) -> FileVerified:
    """Mark the file refused with its "file.verified" (outcome refused) event in one commit, then delete what
    arrived (every version at the key) and abort its multipart upload; a later call finishes that clean-up."""
    ids = {"transfer_id": file.parent_id, "file_id": file.file_id, "key": file.s3_key}
    change = Change(op=f"refuse:{file.file_id}:{ref}", now=now)
    # The multipart upload id stays on the refused file until it is uploaded again: a retry can still abort it.
    change.update(
        file,
        actions=[File.state.set(FILE_REFUSED), File.refused_reason.set(reason)],
        condition=File.state == FILE_PENDING,
        label="file",
    )
    change.audit(
        "file.verified",
        actor=actor,
        subject=f"transfer:{file.parent_id}",
        outcome="refused",
        file_id=file.file_id,
        name=file.name,
        reason=reason,
        declared_size=int(file.declared_size),
        size=size,
    )
    state = _commit_verdict(change, file)
    if state != FILE_REFUSED:
        file.refresh(consistent_read=True)
        return FileVerified(**ids, outcome=file.state, reason=file.refused_reason)
    _leftovers_remove(file)
    return FileVerified(**ids, outcome="refused", reason=reason)


def _leftovers_remove(file: File) -> None:
    """Remove what a refused or cancelled file's upload left: its multipart upload (aborted, so its parts stop
    costing and its part URLs die) and every version at its key (a POST policy re-used within its minutes
    leaves several; deleting only the newest kept the others). Runs after the verdict committed and is safe to
    repeat; nothing at such a key is ever served."""
    if file.multipart_upload_id:
        storage.multipart_abort(key=file.s3_key, upload_id=file.multipart_upload_id)
    try:
        current = File.get(file.parent_id, file.file_id, consistent_read=True)
    except File.DoesNotExist:
        return
    if current.state not in {FILE_REFUSED, FILE_CANCELLED}:
        return  # uploaded again meanwhile: what is at the key now is the new upload's, not ours to delete
    storage.object_delete_all_versions(key=file.s3_key)
