"""The hourly expiry sweep (the Zappa scheduled event transfers.jobs.expire_sweep). Upload requests are items
of the transfers table too: their received files are deleted here when the request expires, alike.

It never Scans: transfers past their expiry come from the sparse `by-due` index (Query `expires_at <= now`
per shard), uploads abandoned before release from the sparse `by-pending` index, and objects without a live
record from one page of the bucket's listing per run (ListObjectVersions, the cursor kept in DynamoDB).
Every deletion goes through transfers.services.deletion: claimed with a conditional write, every version,
one receipt per file. Reads already treat a transfer past its expiry as expired, whether or not this ran.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from pynamodb.exceptions import UpdateError

from transfers import storage
from transfers.models import (
    CLOSED,
    DELETED,
    EXPIRED,
    FILE_CANCELLED,
    FILE_DELETED,
    PENDING,
    READY,
    File,
    SweepCursor,
    Transfer,
)
from transfers.services.common import conditional_failed, sweep_shards, transfer_get, utc
from transfers.services.deletion import (
    BY_ORPHAN_SWEEP,
    BY_SWEEP,
    delete_transfer_files,
    receipt_for,
    receipt_record,
)

logger = logging.getLogger(__name__)
SWEEP_ACTOR = "job:expire_sweep"
ORPHAN_CURSOR = "orphan-objects"


@dataclass(frozen=True)
class SweepDone:
    started_at: datetime
    transfers_expired: int
    abandoned_deleted: int = 0  # transfers never released within FXFER_ORPHAN_PENDING_HOURS
    held_skipped: int = 0
    files_deleted: int = 0
    orphan_objects_deleted: int = 0
    orphan_keys_checked: int = 0


def _due(now: datetime, limit: int):
    for shard in sweep_shards():
        yield from Transfer.by_due.query(shard, Transfer.expires_at <= now, limit=limit)


def _abandoned(now: datetime, limit: int):
    before = now - timedelta(hours=settings.FXFER_ORPHAN_PENDING_HOURS)
    for shard in sweep_shards():
        yield from Transfer.by_pending.query(shard, Transfer.created_at <= before, limit=limit)


def expiry_sweep(*, now: datetime | None = None, limit: int = 200) -> SweepDone:
    """Hourly: delete the files of every transfer past its expiry (every version, with receipts), kill its
    links and mark it expired; then transfers abandoned before release, then objects no live record owns.
    Idempotent and safe to run concurrently (claims are conditional writes); held transfers are skipped."""
    now = utc(now)
    expired = abandoned = held = files = 0
    for hit in _due(now, limit):
        transfer = transfer_get(hit.transfer_id)
        if transfer is None or transfer.deleted_at or transfer.expires_at > now:
            continue  # the index lags: the item decides
        if transfer.held:
            held += 1
            continue
        done = delete_transfer_files(
            transfer.transfer_id,
            by=BY_SWEEP,
            actor=SWEEP_ACTOR,
            now=now,
            final_status=EXPIRED if transfer.status in {PENDING, READY, CLOSED} else None,
            action="transfer.expired",
            extra_condition=Transfer.expires_at <= now,
        )
        held += done.outcome == "held"
        expired += done.outcome == "deleted"
        files += len(done.receipts)
    for hit in _abandoned(now, limit):
        transfer = transfer_get(hit.transfer_id)
        if transfer is None or transfer.deleted_at or transfer.status != PENDING:
            continue
        if transfer.held:
            held += 1
            continue
        done = delete_transfer_files(
            transfer.transfer_id,
            by=BY_ORPHAN_SWEEP,
            actor=SWEEP_ACTOR,
            now=now,
            final_status=DELETED,
            action="transfer.deleted",
            reason="upload abandoned before release",
            extra_condition=Transfer.status == PENDING,
        )
        held += done.outcome == "held"
        abandoned += done.outcome == "deleted"
        files += len(done.receipts)
    orphans, checked = _orphan_objects(now=now)
    result = SweepDone(
        started_at=now,
        transfers_expired=expired,
        abandoned_deleted=abandoned,
        held_skipped=held,
        files_deleted=files,
        orphan_objects_deleted=orphans,
        orphan_keys_checked=checked,
    )
    logger.info("expiry.sweep", extra={k: (v.isoformat() if k == "started_at" else v) for k, v in vars(result).items()})
    return result


# --- objects without a live record ---------------------------------------------------------------------------


def _take_page(now: datetime) -> storage.VersionsPage | None:
    """List the next page of the bucket's files/ prefix and move the cursor past it with a conditional write,
    so concurrent sweeps never take the same page; None when another sweep took it first.

    The cursor keeps only the last key: each listed key has all its versions deleted or none, so the next page
    may start after that key (a version marker of a version just deleted would not resolve)."""
    try:
        cursor = SweepCursor.get(ORPHAN_CURSOR, consistent_read=True)
    except SweepCursor.DoesNotExist:
        cursor = SweepCursor(name=ORPHAN_CURSOR, pass_number=0)
    taken = int(cursor.pass_number or 0)
    page = storage.versions_page(
        prefix="files/", key_marker=cursor.key_marker, limit=settings.FXFER_ORPHAN_KEYS_PER_RUN
    )
    # At the end of the listing the next run starts over from the beginning.
    last_key = page.next_key_marker  # the last key listed (S3's NextKeyMarker)
    actions = [
        SweepCursor.pass_number.set(taken + 1),
        SweepCursor.updated_at.set(now),
        SweepCursor.key_marker.set(last_key) if last_key else SweepCursor.key_marker.remove(),
    ]
    condition = SweepCursor.pass_number == taken if taken else SweepCursor.name.does_not_exist()
    try:
        SweepCursor(name=ORPHAN_CURSOR).update(actions=actions, condition=condition)
    except UpdateError as exc:
        if conditional_failed(exc):
            return None
        raise
    return page


def _owner_alive(key: str, cache: dict) -> tuple[bool, str | None, File | None]:
    """(whether a live record owns the key, the transfer id for the receipt, the file record)."""
    parsed = storage.parse_file_key(key)
    if parsed is None:
        return False, None, None  # not a key this app makes
    parent_id, file_id = parsed
    try:
        file = File.get(parent_id, file_id, consistent_read=True)
    except File.DoesNotExist:
        return False, parent_id, None
    # Transfers and upload requests are both items of the transfers table: the same rules apply.
    if parent_id not in cache:
        cache[parent_id] = transfer_get(parent_id)
    transfer = cache[parent_id]
    if transfer is None:
        return False, parent_id, file
    if transfer.held:
        return True, parent_id, file
    if transfer.deleted_at or file.state in {FILE_CANCELLED, FILE_DELETED}:
        return False, parent_id, file
    return True, parent_id, file  # live, or past expiry and left to the transfer's own deletion


def _orphan_objects(*, now: datetime) -> tuple[int, int]:
    """Delete objects under files/ that no live record owns (late uploads to a deleted transfer, files of
    vanished records, foreign keys), a page per run; (objects deleted, keys checked)."""
    page = _take_page(now)
    if page is None:
        return 0, 0
    keys = list(dict.fromkeys(v.key for v in page.versions))
    cache: dict = {}
    deleted = 0
    for key in keys:
        alive, parent_id, file = _owner_alive(key, cache)
        if alive:
            continue
        removed = storage.object_delete_all_versions(key=key)
        if removed.held or not (removed.version_ids or removed.delete_markers):
            continue
        if not removed.version_ids:
            continue  # only delete markers: nothing was stored, nothing to receipt
        receipt = receipt_for(file=file, key=key, removed=removed, by=BY_ORPHAN_SWEEP, now=now)
        receipt_record(
            receipt,
            transfer_id=parent_id,
            actor=SWEEP_ACTOR,
            ip=None,
            user_agent=None,
            reason="no live record owns the object",
        )
        deleted += 1
    return deleted, len(keys)
