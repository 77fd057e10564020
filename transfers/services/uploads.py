"""Uploads straight from the browser to S3, and the server's verification of every object before release.

Small files: one presigned POST whose policy pins key, exact size, SSE-KMS with our key and a short expiry.
Large files: a multipart upload the server creates (with SSE-KMS), part URLs signed a batch at a time, and
completion by the server after it has checked the parts add up to the declared size. Either way the file is
released only by file_verify, which the browser's "done" call and the S3 ObjectCreated event both reach.

The uploader is either the sender of a pending transfer (`owner_id`) or a guest of an open upload request
(`recipient_id` and the `grant` of their session), who may touch only the files they declared themselves.
"""

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.utils.translation import gettext as _
from pynamodb.exceptions import UpdateError

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
from transfers.services.common import (
    audit,
    conditional_failed,
    later,
    owned_transfer,
    status_at,
    transfer_get,
    utc,
    valid_id,
)
from transfers.services.guests import guest_access
from transfers.services.sending import transfer_release

logger = logging.getLogger(__name__)


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
    if pending and status_at(transfer, now) != PENDING:
        raise TransferError("state_conflict", _("This transfer no longer accepts uploads."))
    return _Scoped(transfer=transfer, file=file, actor=f"user:{owner_id}")


def _file(parent_id: str, file_id: str) -> File:
    if not valid_id(file_id):
        raise TransferError("not_found")
    try:
        return File.get(parent_id, file_id, consistent_read=True)
    except File.DoesNotExist:
        raise TransferError("not_found") from None


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
        file.update(
            actions=[File.state.set(FILE_PENDING), File.refused_reason.remove()],
            condition=File.state == FILE_REFUSED,
        )
    if file.upload_mode != UPLOAD_MULTIPART:
        # A request's guest cannot use a policy after the request closes: S3 refuses it from then on.
        until = scoped.transfer.closes_at if scoped.transfer.kind == KIND_REQUEST else None
        post = storage.presigned_post(
            key=file.s3_key, size=int(file.declared_size), sha256=file.declared_sha256, now=now, until=until
        )
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
    if upload_id:
        listed = storage.multipart_parts(key=file.s3_key, upload_id=upload_id)
        if listed is None:
            upload_id = None  # aborted or expired meanwhile: start over
        else:
            parts_done = listed
    if not upload_id:
        upload_id = _multipart_start(file)
    part_size, part_count = int(file.part_size), int(file.part_count)
    done_numbers = {p.part_number for p in parts_done}
    missing = [n for n in range(1, part_count + 1) if n not in done_numbers][: settings.FXFER_PART_URL_BATCH]
    return UploadAuthorized(
        file_id=file.file_id,
        key=file.s3_key,
        mode=UPLOAD_MULTIPART,
        expires_at=later(now, settings.FXFER_PART_URL_SECONDS),
        upload_id=upload_id,
        part_size=part_size,
        part_count=part_count,
        parts_done=tuple(PartDone(part_number=p.part_number, size=p.size, etag=p.etag) for p in parts_done),
        part_urls=storage.multipart_part_urls(key=file.s3_key, upload_id=upload_id, part_numbers=missing),
    )


def _multipart_start(file: File) -> str:
    """Create the multipart upload and record it; when two calls race, the second aborts its own and uses
    the first one's, so parts never land in an upload nobody completes."""
    part_size, part_count = policy.part_layout(int(file.declared_size))
    previous = file.multipart_upload_id
    upload_id = storage.multipart_create(key=file.s3_key)
    condition = File.multipart_upload_id == previous if previous else File.multipart_upload_id.does_not_exist()
    try:
        file.update(
            actions=[
                File.multipart_upload_id.set(upload_id),
                File.part_size.set(part_size),
                File.part_count.set(part_count),
                File.expected_etag.remove(),
            ],
            condition=condition & (File.state == FILE_PENDING),
        )
    except UpdateError as exc:
        storage.multipart_abort(key=file.s3_key, upload_id=upload_id)
        if not conditional_failed(exc):
            raise
        file.refresh(consistent_read=True)
        if file.state != FILE_PENDING or not file.multipart_upload_id:
            raise TransferError("state_conflict") from None
        return file.multipart_upload_id
    return upload_id


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


def upload_parts_sign(
    *,
    transfer_id: str,
    file_id: str,
    upload_id: str,
    part_numbers: list[int],
    owner_id: str | None = None,
    recipient_id: str | None = None,
    grant: str | None = None,
    now: datetime | None = None,
) -> PartsSigned:
    """URLs for the next batch of parts (at most FXFER_PART_URL_BATCH), each valid FXFER_PART_URL_SECONDS."""
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
    numbers = sorted(set(part_numbers))
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
    return PartsSigned(
        part_urls=storage.multipart_part_urls(key=file.s3_key, upload_id=upload_id, part_numbers=numbers),
        expires_at=later(now, settings.FXFER_PART_URL_SECONDS),
    )


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
    outcome: (
        str  # "verified" | "refused" | "missing" | "cancelled" | "unknown_key" | "foreign_bucket" | "stray_version"
    )
    reason: str | None = None
    released: bool = False


def upload_complete_multipart(
    *,
    transfer_id: str,
    file_id: str,
    upload_id: str,
    owner_id: str | None = None,
    recipient_id: str | None = None,
    grant: str | None = None,
    now: datetime | None = None,
) -> FileVerified:
    """Complete a multipart upload from the parts S3 holds, after checking they are exactly the declared
    size in the planned layout, then verify the object. Missing parts: `upload_incomplete`, nothing lost."""
    now = utc(now)
    scoped = _multipart_file(
        transfer_id=transfer_id,
        file_id=file_id,
        upload_id=upload_id,
        now=now,
        owner_id=owner_id,
        recipient_id=recipient_id,
        grant=grant,
    )
    file, actor = scoped.file, scoped.actor
    parts = storage.multipart_parts(key=file.s3_key, upload_id=upload_id)
    if parts is None:
        raise TransferError("state_conflict", _("This upload is no longer in progress."))
    part_size, part_count = int(file.part_size), int(file.part_count)
    numbers = [p.part_number for p in parts]
    missing = sorted(set(range(1, part_count + 1)) - set(numbers))
    extra = [n for n in numbers if n > part_count]
    if missing and not extra:
        raise TransferError(
            "upload_incomplete",
            _("%(count)d part(s) of %(name)s have not arrived yet.") % {"count": len(missing), "name": file.name},
            missing_parts=missing[:50],
        )
    declared = int(file.declared_size)
    expected_sizes = [part_size] * (part_count - 1) + [declared - part_size * (part_count - 1)]
    if extra or [p.size for p in parts] != expected_sizes:
        reason = "size" if sum(p.size for p in parts) != declared else "part_layout"
        return _refuse(file=file, reason=reason, version_id=None, now=now, actor=actor)
    expected = composite_etag(parts)
    file.update(
        actions=[File.expected_etag.set(expected)],
        condition=(File.state == FILE_PENDING) & (File.multipart_upload_id == upload_id),
    )
    storage.multipart_complete(key=file.s3_key, upload_id=upload_id, parts=parts)
    return _verify(file=file, version_id=None, actor=actor, now=now)


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
    a transfer may then be released."""
    now = utc(now)
    scoped = _scoped_file(
        transfer_id=transfer_id, file_id=file_id, now=now, owner_id=owner_id, recipient_id=recipient_id, grant=grant
    )
    file = scoped.file
    if file.state == FILE_CANCELLED:
        return FileVerified(transfer_id=transfer_id, file_id=file_id, key=file.s3_key, outcome="cancelled")
    if file.state == FILE_VERIFIED:
        raise TransferError("state_conflict", _("%(name)s has already been uploaded.") % {"name": file.name})
    try:
        file.update(actions=[File.state.set(FILE_CANCELLED)], condition=File.state.is_in(FILE_PENDING, FILE_REFUSED))
    except UpdateError as exc:
        if conditional_failed(exc):
            raise TransferError("state_conflict") from None
        raise
    if file.multipart_upload_id:
        storage.multipart_abort(key=file.s3_key, upload_id=file.multipart_upload_id)
    head = storage.object_head(key=file.s3_key)
    if head:
        storage.object_version_delete(key=file.s3_key, version_id=head.version_id)
    Transfer(transfer_id=transfer_id).update(
        actions=[Transfer.file_count.add(-1), Transfer.total_bytes.add(-int(file.declared_size))]
    )
    if file.uploader_id:
        Recipient(parent_id=transfer_id, recipient_id=file.uploader_id).update(
            actions=[Recipient.files_reserved.add(-1), Recipient.bytes_reserved.add(-int(file.declared_size))]
        )
    audit("upload.cancelled", actor=scoped.actor, transfer_id=transfer_id, now=now, file_id=file_id, name=file.name)
    released = transfer_release(transfer_id=transfer_id, now=now).released
    return FileVerified(
        transfer_id=transfer_id, file_id=file_id, key=file.s3_key, outcome="cancelled", released=released
    )


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
    """Verify the object at `key` against its file record (idempotent; at-least-once callers are fine)."""
    now = utc(now)
    parsed = storage.parse_file_key(key)
    file = None
    if parsed:
        try:
            file = File.get(*parsed, consistent_read=True)
        except File.DoesNotExist:
            file = None
    if file is None or file.s3_key != key:
        return FileVerified(transfer_id=None, file_id=None, key=key, outcome="unknown_key")
    return _verify(file=file, version_id=version_id, actor=actor, now=now)


def upload_object_noticed(*, bucket: str, key: str, size: int, version_id: str | None = None) -> FileVerified:
    """React to an S3 ObjectCreated notification (at-least-once: repeating it changes nothing)."""
    if bucket != settings.FXFER_BUCKET:
        result = FileVerified(transfer_id=None, file_id=None, key=key, outcome="foreign_bucket")
    else:
        result = file_verify(key=key, version_id=version_id, actor="job:on_object_created")
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
            # The event may come again (at-least-once): only a version still there is removed and recorded.
            if storage.object_head(key=file.s3_key, version_id=version_id) is not None:
                storage.object_version_delete(key=file.s3_key, version_id=version_id)
                audit(
                    "file.stray_version_removed", actor=actor, transfer_id=file.parent_id, now=now, file_id=file.file_id
                )
            return FileVerified(**ids, outcome="stray_version")
        return FileVerified(**ids, outcome="verified")
    if file.state == FILE_REFUSED:
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
    elif file.declared_sha256 and head.checksum_sha256 != file.declared_sha256:
        reason = "checksum"
    elif file.upload_mode == UPLOAD_MULTIPART and head.etag != file.expected_etag:
        reason = "etag"  # not the object the server assembled from the checked parts
    parent = transfer_get(file.parent_id)
    if not reason and parent is not None and parent.kind == KIND_REQUEST and status_at(parent, now) != READY:
        reason = "request_closed"  # a POST signed before the request closed, landing after it
    if reason:
        return _refuse(file=file, reason=reason, version_id=head.version_id, now=now, actor=actor, size=head.size)

    try:
        file.update(
            actions=[
                File.state.set(FILE_VERIFIED),
                File.verified_size.set(head.size),
                File.etag.set(head.etag),
                File.checksum_sha256.set(head.checksum_sha256)
                if head.checksum_sha256
                else File.checksum_sha256.remove(),
                File.version_id.set(head.version_id) if head.version_id else File.version_id.remove(),
                File.verified_at.set(now),
                File.multipart_upload_id.remove(),
            ],
            condition=File.state == FILE_PENDING,
        )
    except UpdateError as exc:
        if not conditional_failed(exc):
            raise
        file.refresh(consistent_read=True)  # another caller verified (or refused) it first
        return FileVerified(
            **ids, outcome="verified" if file.state == FILE_VERIFIED else file.state, reason=file.refused_reason
        )
    audit(
        "file.verified",
        actor=actor,
        transfer_id=file.parent_id,
        now=now,
        file_id=file.file_id,
        name=file.name,
        size=head.size,
        etag=head.etag,
        checksum_sha256=head.checksum_sha256,
    )
    transfer = parent
    if transfer is not None and transfer.held:
        # A file that arrives after the transfer was put on legal hold is held in S3 too, so the lifecycle
        # backstop cannot remove it either.
        storage.legal_hold(key=file.s3_key, on=True)
    released = transfer_release(transfer_id=file.parent_id, now=now).released
    return FileVerified(**ids, outcome="verified", released=released)


def _refuse(
    *, file: File, reason: str, version_id: str | None, now: datetime, actor: str, size: int | None = None
) -> FileVerified:
    """Mark the file refused, delete what arrived (that exact version), and say why in the audit trail."""
    ids = {"transfer_id": file.parent_id, "file_id": file.file_id, "key": file.s3_key}
    try:
        file.update(
            actions=[File.state.set(FILE_REFUSED), File.refused_reason.set(reason), File.multipart_upload_id.remove()],
            condition=File.state == FILE_PENDING,
        )
    except UpdateError as exc:
        if not conditional_failed(exc):
            raise
        file.refresh(consistent_read=True)
        return FileVerified(**ids, outcome=file.state, reason=file.refused_reason)
    if file.multipart_upload_id:
        storage.multipart_abort(key=file.s3_key, upload_id=file.multipart_upload_id)
    if version_id is None:
        head = storage.object_head(key=file.s3_key)
        version_id = head.version_id if head else None
        present = head is not None
    else:
        present = True
    if present:
        storage.object_version_delete(key=file.s3_key, version_id=version_id)
    audit(
        "file.verified",
        actor=actor,
        transfer_id=file.parent_id,
        now=now,
        outcome="refused",
        file_id=file.file_id,
        name=file.name,
        reason=reason,
        declared_size=int(file.declared_size),
        size=size,
    )
    return FileVerified(**ids, outcome="refused", reason=reason)
