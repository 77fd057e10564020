"""Files do not stay: deletion with receipts, the hourly sweep, legal holds.

One path deletes a transfer's files, whoever asks (the sweep at expiry, the sender or compliance at once, the
sweep for abandoned uploads, the hourly healer finishing an interrupted deletion):

1. Claim the transfer (one conditional write in a transaction whose token derives from this run, so a lost
   answer is not mistaken for another deleter's claim): two sweeps, or a sweep and a "delete now", never both
   delete. The claim names who deletes (`deleted_by`) and puts the transfer in the sparse `by-pending` index,
   so the hourly healer finds a deletion a killed run left half done, whatever its expiry.
2. Kill its links (idempotent).
3. For each file: record the versions S3 holds for its key on the file item (the file's deletion claim)
   BEFORE deleting anything, delete exactly those versions, then commit the file's `deleted` state and its
   receipt (`file.deleted`, naming the version ids) in ONE transaction whose op derives from the file. A run
   killed between S3 and DynamoDB leaves the claim: the next run deletes what is left of it (a version already
   gone is fine) and commits the same receipt, once (its event id derives from the op).
4. Commit the transfer's end (`expired` / `deleted`) and its event in one transaction.

A missing object is fine; an object S3 refuses to delete (Object Lock legal hold) stops the deletion and is
never reported gone. A held transfer is skipped by the sweep and refused by "delete now" until the hold is
released; hold and release commit the transfer's state with their event, after S3's object holds are set.

Upload requests are items of the transfers table (`kind = "request"`): their received files are deleted, held
and receipted by the same steps.
"""

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.utils.translation import gettext as _
from pynamodb.exceptions import UpdateError

from fxfer.change import Change, ChangeRefused, old_value
from transfers import storage
from transfers.errors import TransferError
from transfers.models import (
    CLOSED,
    DELETED,
    EXPIRED,
    FILE_CANCELLED,
    FILE_DELETED,
    FILE_VERIFIED,
    PENDING,
    READY,
    File,
    OneTimeCode,
    Recipient,
    Transfer,
    TransferSearchTerm,
)
from transfers.services import quota
from transfers.services.common import (
    audit,
    conditional_failed,
    new_id,
    owned_transfer,
    recipient_ref,
    sweep_shard,
    transfer_get,
    utc,
)
from transfers.services.sending import search_sort_key, search_terms

logger = logging.getLogger(__name__)

# A claim older than this is a deleter that died: the next sweep may take the transfer over. Longer than one
# Lambda run (30 s) by far, shorter than the hour between sweeps.
CLAIM_SECONDS = 15 * 60
BY_SWEEP, BY_SENDER, BY_COMPLIANCE, BY_ORPHAN_SWEEP = "sweep", "sender", "compliance", "orphan-sweep"
SWEEP_ACTOR = "job:expire_sweep"


@dataclass(frozen=True)
class Claim:
    versions: tuple[str, ...]  # object versions to delete ("null": the unversioned one)
    markers: tuple[str, ...]  # delete markers to delete
    size: int | None  # of the newest version
    etag: str | None
    at: datetime  # when the deletion was claimed: the receipt's time, the same on every retry

    def text(self) -> str:
        return json.dumps(
            {
                "versions": list(self.versions),
                "markers": list(self.markers),
                "size": self.size,
                "etag": self.etag,
                "at": self.at.isoformat(),
            },
            sort_keys=True,
        )

    @classmethod
    def parse(cls, text: str | None) -> "Claim | None":
        if not text:
            return None
        data = json.loads(text)
        return cls(
            versions=tuple(data.get("versions") or ()),
            markers=tuple(data.get("markers") or ()),
            size=data.get("size"),
            etag=data.get("etag"),
            at=datetime.fromisoformat(data["at"]),
        )


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
    # "deleted", "held" (S3 refused a version), "claimed" (another deleter has it), "stopped" (out of time:
    # the next run finishes it)
    outcome: str
    receipts: tuple[Receipt, ...] = ()


# --- commits that recognise their own earlier effect ---------------------------------------------------------


def commit_once(change: Change) -> bool:
    """Commit `change`; True when it committed now, False when an earlier attempt of the same op had (Change
    recognises it). Other refusals propagate as ChangeRefused."""
    return not change.commit().repeated


# --- the transfer's claim ------------------------------------------------------------------------------------


def _claim_condition(now: datetime):
    return Transfer.deletion_claimed_at.does_not_exist() | (
        Transfer.deletion_claimed_at <= now - timedelta(seconds=CLAIM_SECONDS)
    )


def _claim(transfer_id: str, *, by: str, now: datetime, extra_condition=None) -> Transfer | None:
    """Take the transfer for deletion with one conditional write; None when it is held, already deleted, or
    being deleted by someone else."""
    condition = (
        Transfer.transfer_id.exists()
        & Transfer.deleted_at.does_not_exist()
        & (Transfer.held.does_not_exist() | (Transfer.held == False))  # noqa: E712 - a DynamoDB condition
        & _claim_condition(now)
    )
    if extra_condition is not None:
        condition &= extra_condition
    # The token derives from this run: botocore's retry after a lost answer is a no-op that succeeds, where a
    # plain update's retry would meet its own claim and give the transfer up.
    change = Change(op=f"deletion.claim:{transfer_id}:{new_id()}", now=now)
    change.update(
        Transfer(transfer_id=transfer_id),
        actions=[
            Transfer.deletion_claimed_at.set(now),
            Transfer.deleted_by.set(by),
            # In the sparse by-pending index until the end is committed: the healer finds an interrupted one.
            Transfer.pending_shard.set(sweep_shard(transfer_id)),
        ],
        condition=condition,
        label="transfer",
    )
    try:
        change.commit()
    except ChangeRefused:
        return None
    return transfer_get(transfer_id)


def _unclaim(transfer: Transfer, *, now: datetime) -> None:
    actions = [Transfer.deletion_claimed_at.remove(), Transfer.deleted_by.remove()]
    if transfer.status != PENDING:
        actions.append(Transfer.pending_shard.remove())
    try:
        Transfer(transfer_id=transfer.transfer_id).update(
            actions=actions, condition=Transfer.deletion_claimed_at == now
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


# --- one file: claim its versions, delete them, commit its state with its receipt ---------------------------


def receipt_for(*, file: File | None, key: str, claim: Claim, by: str) -> Receipt:
    verified = file is not None and file.state == FILE_VERIFIED
    return Receipt(
        key=key,
        file_id=file.file_id if file else None,
        name=file.name if file else None,
        size=int(file.verified_size or file.declared_size) if verified else claim.size,
        sha256=file.checksum_sha256 if file else None,
        etag=((file.etag if file and file.etag else claim.etag) or "").strip('"') or None,
        version_ids=claim.versions,
        deleted_at=claim.at,
        by=by,
    )


def receipt_audit(
    change: Change, receipt: Receipt, *, parent_id: str | None, actor: str, ip, user_agent, reason
) -> None:
    """Add the receipt ("file.deleted", naming the version ids) to the change that records the deletion."""
    change.audit(
        "file.deleted",
        actor=actor,
        subject=f"transfer:{parent_id}" if parent_id else "system",
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


def claim_versions(key: str, *, earlier: Claim | None, now: datetime) -> Claim:
    """What S3 holds for the key now, merged with what an earlier run claimed (and may have deleted already)."""
    listed = storage.object_versions(key=key)
    contents = [v for v in listed if not v.delete_marker]
    versions = list(earlier.versions) if earlier else []
    versions += [v.version_id or "null" for v in contents if (v.version_id or "null") not in versions]
    markers = list(earlier.markers) if earlier else []
    markers += [v.version_id or "null" for v in listed if v.delete_marker and (v.version_id or "null") not in markers]
    return Claim(
        versions=tuple(versions),
        markers=tuple(markers),
        size=earlier.size if earlier and earlier.size is not None else (contents[0].size if contents else None),
        etag=earlier.etag if earlier and earlier.etag else (contents[0].etag if contents else None),
        at=earlier.at if earlier else now,
    )


_HELD = "held"


def _delete_file(
    file: File, *, parent_id: str, by: str, actor: str, now: datetime, ip, user_agent, reason
) -> Receipt | str | None:
    """Delete one file's object (the versions its claim names) and commit its state with its receipt. The
    receipt, None (nothing was stored: no receipt), or "held" (S3 refused a version)."""
    if file.multipart_upload_id:
        storage.multipart_abort(key=file.s3_key, upload_id=file.multipart_upload_id)
    earlier = Claim.parse(file.deletion_claim)
    claim = claim_versions(file.s3_key, earlier=earlier, now=now)
    had_content = bool(claim.versions) or file.state == FILE_VERIFIED
    if file.state == FILE_CANCELLED and not had_content and not claim.markers:
        return None  # never stored anything: nothing to delete, nothing to receipt
    if claim != earlier:
        try:
            file.update(actions=[File.deletion_claim.set(claim.text())], condition=File.state != FILE_DELETED)
        except UpdateError as exc:
            if conditional_failed(exc):
                return None  # finished by a run before us, with its receipt
            raise
    removed = storage.object_versions_delete(
        key=file.s3_key, version_ids=list(claim.versions), delete_markers=list(claim.markers)
    )
    if removed.held:
        return _HELD
    receipt = receipt_for(file=file, key=file.s3_key, claim=claim, by=by)
    change = Change(op=f"file.deleted:{parent_id}:{file.file_id}", now=claim.at)
    change.update(
        file,
        actions=[
            File.state.set(FILE_DELETED),
            File.deleted_at.set(claim.at),
            File.multipart_upload_id.remove(),
            File.deletion_claim.remove(),
        ],
        condition=File.state != FILE_DELETED,
        label="file",
    )
    if had_content:
        receipt_audit(change, receipt, parent_id=parent_id, actor=actor, ip=ip, user_agent=user_agent, reason=reason)
    try:
        commit_once(change)
    except ChangeRefused as refused:
        if old_value(refused.failed("file"), "state") != FILE_DELETED:
            raise
        # Deleted before, with its receipt in the same transaction (ours, past the token's ten minutes).
    return receipt if had_content else None


def _delete_files(
    transfer: Transfer, *, by: str, actor: str, now: datetime, deadline=None, ip=None, user_agent=None, reason=None
) -> tuple[list[Receipt], str | None]:
    """Delete each file's object with its receipt; (receipts, None | "held" | "stopped")."""
    receipts = []
    for file in File.query(transfer.transfer_id, consistent_read=True):
        if file.state == FILE_DELETED:
            continue  # a deleter before us finished this one (and wrote its receipt)
        if out_of_time(deadline):
            return receipts, "stopped"
        done = _delete_file(
            file,
            parent_id=transfer.transfer_id,
            by=by,
            actor=actor,
            now=now,
            ip=ip,
            user_agent=user_agent,
            reason=reason,
        )
        if done == _HELD:
            return receipts, _HELD
        if isinstance(done, Receipt):
            receipts.append(done)
    return receipts, None


def out_of_time(deadline: datetime | None) -> bool:
    """True once the Lambda's time (less a margin, see transfers.jobs) is used up."""
    return deadline is not None and datetime.now(UTC) >= deadline


def _earlier_deleted(transfer_id: str) -> tuple[int, int]:
    """(files, bytes) an interrupted earlier run of this deletion finished before us (their receipts exist)."""
    count = total = 0
    for file in File.query(transfer_id, consistent_read=True):
        if file.state == FILE_DELETED and file.verified_at is not None:
            count += 1
            total += int(file.verified_size or file.declared_size or 0)
    return count, total


def ending_of(by: str, status: str) -> tuple[str, str]:
    """The transfer's end for a deleter: (its audit action, its final status)."""
    if by == BY_SWEEP:
        return "transfer.expired", EXPIRED if status in {PENDING, READY, CLOSED} else status
    return "transfer.deleted", DELETED


def delete_transfer_files(
    transfer_id: str,
    *,
    by: str,
    actor: str,
    now: datetime,
    ip: str | None = None,
    user_agent: str | None = None,
    reason: str | None = None,
    extra_condition=None,
    deadline: datetime | None = None,
) -> TransferDeleted:
    """Claim, kill the links, delete the files with receipts, then commit the transfer's end with its event."""
    claimed = _claim(transfer_id, by=by, now=now, extra_condition=extra_condition)
    if claimed is None:
        return TransferDeleted(transfer_id=transfer_id, outcome="claimed")
    earlier_files, earlier_bytes = _earlier_deleted(transfer_id)
    _kill_links(transfer_id)
    receipts, stop = _delete_files(
        claimed, by=by, actor=actor, now=now, deadline=deadline, ip=ip, user_agent=user_agent, reason=reason
    )
    if stop == _HELD:
        _unclaim(claimed, now=now)
        logger.warning("transfers.deletion.held_by_s3", extra={"transfer_id": transfer_id})
        return TransferDeleted(transfer_id=transfer_id, outcome="held", receipts=tuple(receipts))
    if stop is not None:
        # Out of time: the claim stays and goes stale; the next hourly run takes the transfer over and finishes.
        return TransferDeleted(transfer_id=transfer_id, outcome="stopped", receipts=tuple(receipts))
    action, final_status = ending_of(by, claimed.status)
    change = Change(op=f"transfer.deletion:{transfer_id}", now=now)
    # The sender's quota gets back what the transfer still holds, with the end (committed once: the claim).
    refunded = quota.refund_on_end(change, claimed)
    change.update(
        claimed,
        actions=[
            Transfer.status.set(final_status),
            Transfer.deleted_at.set(now),
            Transfer.deleted_by.set(by),
            Transfer.due_shard.remove(),
            Transfer.pending_shard.remove(),
            Transfer.deletion_claimed_at.remove(),
            *refunded,
        ],
        condition=Transfer.deletion_claimed_at == now,
        label="transfer",
    )
    change.audit(
        action,
        actor=actor,
        subject=f"transfer:{transfer_id}",
        ip=ip,
        user_agent=user_agent,
        by=by,
        reason=reason,
        previous_status=claimed.status,
        files_deleted=earlier_files + len(receipts),
        bytes_deleted=earlier_bytes + sum(r.size or 0 for r in receipts),
        deleted_at=now.isoformat(),
        quota_refunded=int(claimed.quota_bytes) if claimed.quota_bytes is not None else None,
    )
    try:
        commit_once(change)
    except ChangeRefused as refused:
        if old_value(refused.failed("transfer"), "deleted_at") is None:
            return TransferDeleted(transfer_id=transfer_id, outcome="claimed", receipts=tuple(receipts))
        # Ended before by an earlier attempt of this run (past the token's lifetime): done.
    return TransferDeleted(transfer_id=transfer_id, outcome="deleted", receipts=tuple(receipts))


def deletion_resume(transfer: Transfer, *, now: datetime, deadline: datetime | None = None) -> TransferDeleted:
    """Finish a deletion a killed run left claimed (the claim is stale): the same deleter's end, by the job."""
    by = transfer.deleted_by or BY_SWEEP
    return delete_transfer_files(
        transfer.transfer_id,
        by=by,
        actor=SWEEP_ACTOR,
        now=now,
        reason="finishing an interrupted deletion",
        deadline=deadline,
    )


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
        transfer.transfer_id, by=by, actor=actor, now=now, ip=ip, user_agent=user_agent, reason=reason
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


def _hold_refused(transfer: Transfer, *, refusal: dict, reason: str) -> TransferError:
    code = "already_held" if transfer.held else "already_deleted" if transfer.deleted_at else "being_deleted"
    audit("legal_hold.set", **refusal, outcome="refused", reason=reason, refused=code)
    message = {
        "already_held": _("The transfer is already on legal hold."),
        "already_deleted": _("The files of this transfer are already deleted; there is nothing to hold."),
        "being_deleted": _("The files of this transfer are being deleted right now."),
    }[code]
    return TransferError("state_conflict", message)


def _children_purge_at(transfer: Transfer, *, files: list[File], purge_at: datetime | None) -> None:
    """The TTL of a transfer's files, recipients and search terms: none while held, the retention after.
    Idempotent updates, written before (hold) or after (release) the transfer's own commit."""
    action = File.purge_at.set(purge_at) if purge_at else File.purge_at.remove()
    for file in files:
        file.update(actions=[action])
    recipients = list(Recipient.query(transfer.transfer_id, consistent_read=True))
    for recipient in recipients:
        recipient.update(actions=[Recipient.purge_at.set(purge_at) if purge_at else Recipient.purge_at.remove()])
    _search_terms_purge_at(transfer, recipients=recipients, purge_at=purge_at)


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
    Lock legal hold on every version) deletes its files, and its metadata loses its TTL, until release.

    S3's holds come first (they only ever stop a deletion), then the children's TTL, then the transfer's held
    state with its event in one transaction; a failure before that commit leaves nothing the record claims."""
    now = utc(now)
    actor = f"user:{officer_id}"
    transfer = transfer_get(transfer_id)
    if transfer is None:
        raise TransferError("not_found")
    refusal = {"actor": actor, "transfer_id": transfer_id, "now": now, "ip": ip, "user_agent": user_agent}
    stale = now - timedelta(seconds=CLAIM_SECONDS)
    claimed = transfer.deletion_claimed_at is not None and transfer.deletion_claimed_at > stale
    if transfer.held or transfer.deleted_at or claimed:
        raise _hold_refused(transfer, refusal=refusal, reason=reason)
    files = list(File.query(transfer_id, consistent_read=True))
    versions = sum(storage.legal_hold(key=file.s3_key, on=True) for file in files)
    _children_purge_at(transfer, files=files, purge_at=None)
    change = Change(op=f"legal_hold.set:{transfer_id}:{now.isoformat()}", now=now)
    change.update(
        transfer,
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
            & _claim_condition(now)
        ),
        label="transfer",
    )
    change.audit(
        "legal_hold.set",
        actor=actor,
        subject=f"transfer:{transfer_id}",
        ip=ip,
        user_agent=user_agent,
        reason=reason,
        versions_held=versions,
    )
    try:
        commit_once(change)
    except ChangeRefused:
        transfer.refresh(consistent_read=True)
        if not transfer.held:
            # A deleter claimed it meanwhile: let its deletion go on, and give the metadata its TTL back.
            for file in files:
                storage.legal_hold(key=file.s3_key, on=False)
            _children_purge_at(transfer, files=files, purge_at=transfer.purge_at)
        raise _hold_refused(transfer, refusal=refusal, reason=reason) from None
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
    past expiry) and its metadata gets its audit-retention TTL back. S3's holds are lifted first (once the
    record says "not held" the sweep may act and must find the objects deletable); the transfer's state and
    its event commit together; the children's TTL follows."""
    now = utc(now)
    actor = f"user:{officer_id}"
    transfer = transfer_get(transfer_id)
    if transfer is None:
        raise TransferError("not_found")
    refusal = {"actor": actor, "transfer_id": transfer_id, "now": now, "ip": ip, "user_agent": user_agent}
    if not transfer.held:
        audit("legal_hold.released", **refusal, outcome="refused", reason=reason, refused="not_held")
        raise TransferError("state_conflict", _("The transfer is not on legal hold."))
    purge_at = _retention_purge_at(transfer, now)
    files = list(File.query(transfer_id, consistent_read=True))
    versions = sum(storage.legal_hold(key=file.s3_key, on=False) for file in files)
    held_at = transfer.held_at
    change = Change(op=f"legal_hold.released:{transfer_id}:{held_at.isoformat() if held_at else ''}", now=now)
    change.update(
        transfer,
        actions=[
            Transfer.held.set(False),
            Transfer.hold_reason.remove(),
            Transfer.held_by.remove(),
            Transfer.held_at.remove(),
            Transfer.purge_at.set(purge_at),
        ],
        condition=Transfer.held == True,  # noqa: E712
        label="transfer",
    )
    change.audit(
        "legal_hold.released",
        actor=actor,
        subject=f"transfer:{transfer_id}",
        ip=ip,
        user_agent=user_agent,
        reason=reason,
        versions_released=versions,
        held_since=held_at.isoformat() if held_at else None,
        held_by=transfer.held_by,
    )
    try:
        commit_once(change)
    except ChangeRefused:
        audit("legal_hold.released", **refusal, outcome="refused", reason=reason, refused="not_held")
        raise TransferError("state_conflict", _("The transfer is not on legal hold.")) from None
    _children_purge_at(transfer, files=files, purge_at=purge_at)
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
