"""Files do not stay: deletion with receipts, the hourly sweep, legal holds.

One path deletes a transfer's files, whoever asks (the sweep at expiry, the sender or compliance at once, the
orphan sweep for abandoned uploads): claim the transfer with a conditional write (so two sweeps, or a sweep
and a "delete now", never both delete), kill its links, delete every version of every file's object, mark
each file deleted with a conditional write and, only when that write succeeds, append its receipt
("file.deleted"), then record the transfer's end ("transfer.expired" / "transfer.deleted"). A missing object
is fine; an object S3 refuses to delete (Object Lock legal hold) stops the deletion and is never reported
gone. A held transfer is skipped by the sweep and refused by "delete now" until the hold is released.

Upload requests are items of the transfers table (`kind = "request"`): their received files are deleted, held
and receipted by the same steps.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils.translation import gettext as _
from pynamodb.exceptions import UpdateError

from transfers import storage
from transfers.errors import TransferError
from transfers.models import (
    DELETED,
    FILE_CANCELLED,
    FILE_DELETED,
    FILE_VERIFIED,
    File,
    OneTimeCode,
    Recipient,
    Transfer,
    TransferSearchTerm,
)
from transfers.services.common import (
    audit,
    conditional_failed,
    owned_transfer,
    recipient_ref,
    transfer_get,
    utc,
)
from transfers.services.sending import search_sort_key, search_terms

logger = logging.getLogger(__name__)

# A claim older than this is a deleter that died: the next sweep may take the transfer over. Longer than one
# Lambda run (30 s) by far, shorter than the hour between sweeps.
CLAIM_SECONDS = 15 * 60
BY_SWEEP, BY_SENDER, BY_COMPLIANCE, BY_ORPHAN_SWEEP = "sweep", "sender", "compliance", "orphan-sweep"


@dataclass(frozen=True)
class Receipt:
    """What a "file.deleted" audit event records."""

    key: str
    file_id: str | None
    name: str | None
    size: int | None
    sha256: str | None
    etag: str | None
    version_ids: tuple[str, ...]
    deleted_at: datetime
    by: str


@dataclass(frozen=True)
class TransferDeleted:
    transfer_id: str
    outcome: str  # "deleted", "held" (S3 refused a version), "claimed" (another deleter has it), "done" (before)
    receipts: tuple[Receipt, ...] = ()


def _claim(transfer_id: str, *, now: datetime, extra_condition=None) -> Transfer | None:
    """Take the transfer for deletion with one conditional write; None when it is held, already deleted, or
    being deleted by someone else."""
    transfer = Transfer(transfer_id=transfer_id)
    condition = (
        Transfer.transfer_id.exists()
        & Transfer.deleted_at.does_not_exist()
        & (Transfer.held.does_not_exist() | (Transfer.held == False))  # noqa: E712 - a DynamoDB condition
        & (
            Transfer.deletion_claimed_at.does_not_exist()
            | (Transfer.deletion_claimed_at <= now - timedelta(seconds=CLAIM_SECONDS))
        )
    )
    if extra_condition is not None:
        condition &= extra_condition
    try:
        transfer.update(actions=[Transfer.deletion_claimed_at.set(now)], condition=condition)
    except UpdateError as exc:
        if conditional_failed(exc):
            return None
        raise
    return transfer


def _unclaim(transfer_id: str, *, now: datetime) -> None:
    try:
        Transfer(transfer_id=transfer_id).update(
            actions=[Transfer.deletion_claimed_at.remove()], condition=Transfer.deletion_claimed_at == now
        )
    except UpdateError as exc:
        if not conditional_failed(exc):
            raise


def _kill_links(transfer_id: str) -> None:
    """Every recipient's link stops resolving (the token hash leaves the sparse by-token index) and any
    one-time code is gone; guest sessions end because the grant's token no longer matches."""
    for recipient in Recipient.query(transfer_id, consistent_read=True):
        if recipient.token_hash:
            recipient.update(actions=[Recipient.token_hash.remove()])
        OneTimeCode(recipient_ref=recipient_ref(transfer_id, recipient.recipient_id)).delete()


def receipt_for(*, file: File | None, key: str, removed: storage.VersionsDeleted, by: str, now: datetime) -> Receipt:
    return Receipt(
        key=key,
        file_id=file.file_id if file else None,
        name=file.name if file else None,
        size=int(file.verified_size or file.declared_size) if file and file.state == FILE_VERIFIED else removed.size,
        sha256=file.checksum_sha256 if file else None,
        etag=((file.etag if file and file.etag else removed.etag) or "").strip('"') or None,
        version_ids=removed.version_ids,
        deleted_at=now,
        by=by,
    )


def receipt_record(receipt: Receipt, *, transfer_id: str | None, actor: str, ip, user_agent, reason) -> None:
    audit(
        "file.deleted",
        actor=actor,
        transfer_id=transfer_id,
        now=receipt.deleted_at,
        ip=ip,
        user_agent=user_agent,
        key=receipt.key,
        file_id=receipt.file_id,
        name=receipt.name,
        size=receipt.size,
        sha256=receipt.sha256,
        etag=receipt.etag,
        version_ids=list(receipt.version_ids),
        deleted_at=receipt.deleted_at.isoformat(),
        by=receipt.by,
        reason=reason,
    )


def _delete_files(
    transfer: Transfer, *, by: str, actor: str, now: datetime, ip=None, user_agent=None, reason=None
) -> tuple[list[Receipt], bool]:
    """Delete each file's object (every version) and write its receipt once; (receipts, held)."""
    receipts = []
    for file in File.query(transfer.transfer_id, consistent_read=True):
        if file.state == FILE_DELETED:
            continue  # a deleter before us finished this one (and wrote its receipt)
        if file.multipart_upload_id:
            storage.multipart_abort(key=file.s3_key, upload_id=file.multipart_upload_id)
        removed = storage.object_delete_all_versions(key=file.s3_key)
        if removed.held:
            return receipts, True
        had_content = bool(removed.version_ids) or file.state == FILE_VERIFIED
        if file.state == FILE_CANCELLED and not had_content:
            continue
        receipt = receipt_for(file=file, key=file.s3_key, removed=removed, by=by, now=now)
        try:
            file.update(
                actions=[File.state.set(FILE_DELETED), File.deleted_at.set(now), File.multipart_upload_id.remove()],
                condition=File.state != FILE_DELETED,
            )
        except UpdateError as exc:
            if conditional_failed(exc):
                continue
            raise
        if had_content:
            receipt_record(
                receipt, transfer_id=transfer.transfer_id, actor=actor, ip=ip, user_agent=user_agent, reason=reason
            )
            receipts.append(receipt)
    return receipts, False


def delete_transfer_files(
    transfer_id: str,
    *,
    by: str,
    actor: str,
    now: datetime,
    final_status: str | None,
    action: str,
    ip: str | None = None,
    user_agent: str | None = None,
    reason: str | None = None,
    extra_condition=None,
) -> TransferDeleted:
    """Claim, kill the links, delete the files with receipts, then close the transfer (status, indexes)."""
    claimed = _claim(transfer_id, now=now, extra_condition=extra_condition)
    if claimed is None:
        return TransferDeleted(transfer_id=transfer_id, outcome="claimed")
    transfer = transfer_get(transfer_id)
    _kill_links(transfer_id)
    receipts, held = _delete_files(transfer, by=by, actor=actor, now=now, ip=ip, user_agent=user_agent, reason=reason)
    if held:
        _unclaim(transfer_id, now=now)
        logger.warning("transfers.deletion.held_by_s3", extra={"transfer_id": transfer_id})
        return TransferDeleted(transfer_id=transfer_id, outcome="held", receipts=tuple(receipts))
    previous_status = transfer.status
    transfer.update(
        actions=[
            Transfer.status.set(final_status or previous_status),
            Transfer.deleted_at.set(now),
            Transfer.deleted_by.set(by),
            Transfer.due_shard.remove(),
            Transfer.pending_shard.remove(),
            Transfer.deletion_claimed_at.remove(),
        ],
        condition=Transfer.deletion_claimed_at == now,
    )
    audit(
        action,
        actor=actor,
        transfer_id=transfer_id,
        now=now,
        ip=ip,
        user_agent=user_agent,
        by=by,
        reason=reason,
        previous_status=previous_status,
        files_deleted=len(receipts),
        bytes_deleted=sum(r.size or 0 for r in receipts),
        deleted_at=now.isoformat(),
    )
    return TransferDeleted(transfer_id=transfer_id, outcome="deleted", receipts=tuple(receipts))


# --- delete now ----------------------------------------------------------------------------------------------


def _delete_now(
    transfer: Transfer, *, by: str, actor: str, reason: str | None, ip, user_agent, now: datetime
) -> TransferDeleted:
    refusal = {"actor": actor, "transfer_id": transfer.transfer_id, "now": now, "ip": ip, "user_agent": user_agent}
    if transfer.held:
        audit("transfer.deleted", **refusal, outcome="refused", by=by, reason=reason, refused="on_legal_hold")
        raise TransferError("on_legal_hold")
    if transfer.deleted_at:
        audit("transfer.deleted", **refusal, outcome="refused", by=by, reason=reason, refused="already_deleted")
        raise TransferError("state_conflict", _("The files of this transfer are already deleted."))
    done = delete_transfer_files(
        transfer.transfer_id,
        by=by,
        actor=actor,
        now=now,
        final_status=DELETED,
        action="transfer.deleted",
        ip=ip,
        user_agent=user_agent,
        reason=reason,
    )
    if done.outcome == "deleted":
        return done
    current = transfer_get(transfer.transfer_id)
    code = "on_legal_hold" if done.outcome == "held" or (current and current.held) else "state_conflict"
    audit("transfer.deleted", **refusal, outcome="refused", by=by, reason=reason, refused=code)
    if code == "on_legal_hold":
        raise TransferError(code)
    raise TransferError("state_conflict", _("The files of this transfer are being deleted already."))


def transfer_delete_now(
    *,
    owner_id: str,
    transfer_id: str,
    reason: str | None = None,
    kind: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
    now: datetime | None = None,
) -> TransferDeleted:
    """The sender deletes the transfer's (or, `kind`, the request's received) files at once (every version),
    with a receipt for each; its links die. Refused while the transfer is on legal hold."""
    now = utc(now)
    transfer = owned_transfer(owner_id=owner_id, transfer_id=transfer_id, kind=kind)
    return _delete_now(
        transfer, by=BY_SENDER, actor=f"user:{owner_id}", reason=reason, ip=ip, user_agent=user_agent, now=now
    )


def transfer_delete_for_compliance(
    *,
    officer_id: str,
    transfer_id: str,
    reason: str,
    ip: str | None = None,
    user_agent: str | None = None,
    now: datetime | None = None,
) -> TransferDeleted:
    """Compliance deletes any transfer's files at once, with the same receipts (the officer as actor)."""
    now = utc(now)
    transfer = transfer_get(transfer_id)
    if transfer is None:
        raise TransferError("not_found")
    return _delete_now(
        transfer, by=BY_COMPLIANCE, actor=f"user:{officer_id}", reason=reason, ip=ip, user_agent=user_agent, now=now
    )


# --- legal hold ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HoldChanged:
    transfer_id: str
    held: bool
    versions: int  # object versions whose S3 legal hold was set or lifted


def _retention_purge_at(transfer: Transfer, now: datetime) -> datetime:
    return max(transfer.expires_at, now) + timedelta(days=settings.FXFER_AUDIT_RETENTION_DAYS)


def transfer_hold_set(
    *,
    officer_id: str,
    transfer_id: str,
    reason: str,
    ip: str | None = None,
    user_agent: str | None = None,
    now: datetime | None = None,
) -> HoldChanged:
    """Put the transfer on legal hold: neither the sweep, nor "delete now", nor the lifecycle rule (S3 Object
    Lock legal hold on every version) deletes its files, and its metadata loses its TTL, until release."""
    now = utc(now)
    actor = f"user:{officer_id}"
    transfer = transfer_get(transfer_id)
    if transfer is None:
        raise TransferError("not_found")
    refusal = {"actor": actor, "transfer_id": transfer_id, "now": now, "ip": ip, "user_agent": user_agent}
    try:
        transfer.update(
            actions=[
                Transfer.held.set(True),
                Transfer.hold_reason.set(reason),
                Transfer.held_by.set(actor),
                Transfer.held_at.set(now),
                Transfer.purge_at.remove(),
            ],
            condition=(
                Transfer.deleted_at.does_not_exist()
                & (Transfer.held.does_not_exist() | (Transfer.held == False))  # noqa: E712
                & (
                    Transfer.deletion_claimed_at.does_not_exist()
                    | (Transfer.deletion_claimed_at <= now - timedelta(seconds=CLAIM_SECONDS))
                )
            ),
        )
    except UpdateError as exc:
        if not conditional_failed(exc):
            raise
        transfer.refresh(consistent_read=True)
        code = "already_held" if transfer.held else "already_deleted" if transfer.deleted_at else "being_deleted"
        audit("legal_hold.set", **refusal, outcome="refused", reason=reason, refused=code)
        message = {
            "already_held": _("The transfer is already on legal hold."),
            "already_deleted": _("The files of this transfer are already deleted; there is nothing to hold."),
            "being_deleted": _("The files of this transfer are being deleted right now."),
        }[code]
        raise TransferError("state_conflict", message) from None
    versions = 0
    for file in File.query(transfer_id, consistent_read=True):
        file.update(actions=[File.purge_at.remove()])
        versions += storage.legal_hold(key=file.s3_key, on=True)
    recipients = list(Recipient.query(transfer_id, consistent_read=True))
    for recipient in recipients:
        recipient.update(actions=[Recipient.purge_at.remove()])
    _search_terms_purge_at(transfer, recipients=recipients, purge_at=None)
    audit("legal_hold.set", **refusal, reason=reason, versions_held=versions)
    return HoldChanged(transfer_id=transfer_id, held=True, versions=versions)


def transfer_hold_release(
    *,
    officer_id: str,
    transfer_id: str,
    reason: str,
    ip: str | None = None,
    user_agent: str | None = None,
    now: datetime | None = None,
) -> HoldChanged:
    """Release the legal hold: the transfer follows its normal expiry again (the next sweep deletes it if it is
    past expiry) and its metadata gets its audit-retention TTL back."""
    now = utc(now)
    actor = f"user:{officer_id}"
    transfer = transfer_get(transfer_id)
    if transfer is None:
        raise TransferError("not_found")
    refusal = {"actor": actor, "transfer_id": transfer_id, "now": now, "ip": ip, "user_agent": user_agent}
    purge_at = _retention_purge_at(transfer, now)
    # S3 first: once the record says "not held" the sweep may act, and it must find the objects deletable.
    versions = 0
    files = list(File.query(transfer_id, consistent_read=True))
    if transfer.held:
        for file in files:
            versions += storage.legal_hold(key=file.s3_key, on=False)
    try:
        transfer.update(
            actions=[
                Transfer.held.set(False),
                Transfer.hold_reason.remove(),
                Transfer.held_by.remove(),
                Transfer.held_at.remove(),
                Transfer.purge_at.set(purge_at),
            ],
            condition=Transfer.held == True,  # noqa: E712
        )
    except UpdateError as exc:
        if not conditional_failed(exc):
            raise
        audit("legal_hold.released", **refusal, outcome="refused", reason=reason, refused="not_held")
        raise TransferError("state_conflict", _("The transfer is not on legal hold.")) from None
    for file in files:
        file.update(actions=[File.purge_at.set(purge_at)])
    recipients = list(Recipient.query(transfer_id, consistent_read=True))
    for recipient in recipients:
        recipient.update(actions=[Recipient.purge_at.set(purge_at)])
    _search_terms_purge_at(transfer, recipients=recipients, purge_at=purge_at)
    audit(
        "legal_hold.released",
        **refusal,
        reason=reason,
        versions_released=versions,
        held_since=transfer.held_at.isoformat() if transfer.held_at else None,
        held_by=transfer.held_by,
    )
    return HoldChanged(transfer_id=transfer_id, held=False, versions=versions)


def _search_terms_purge_at(transfer: Transfer, *, recipients: list[Recipient], purge_at: datetime | None) -> None:
    """Keep compliance search finding a held transfer: its search terms lose their TTL while it is held and
    get it back on release. Terms that are gone already stay gone (the update is conditional)."""
    files = File.query(transfer.transfer_id, consistent_read=True)
    terms = search_terms(
        sender_email=transfer.owner_email,
        recipients=[recipient.email for recipient in recipients],
        file_names=[file.name for file in files],
    )
    sort_key = search_sort_key(created_at=transfer.created_at, transfer_id=transfer.transfer_id)
    action = TransferSearchTerm.purge_at.set(purge_at) if purge_at else TransferSearchTerm.purge_at.remove()
    for term in terms:
        try:
            TransferSearchTerm(term=term, sort_key=sort_key).update(
                actions=[action], condition=TransferSearchTerm.term.exists()
            )
        except UpdateError as exc:
            if not conditional_failed(exc):
                raise
