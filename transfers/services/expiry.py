"""The hourly expiry sweep and healer (the Zappa scheduled event transfers.jobs.expire_sweep). Upload requests
are items of the transfers table too: their received files are deleted here when the request expires, alike.

It never Scans: transfers past their expiry come from the sparse `by-due` index (Query `expires_at <= now`
per shard), unreleased transfers (abandoned uploads, verified ones a crash left unreleased, deletions a killed
run left half done) from the sparse `by-pending` index, reply requests from the `by-day` index (today and
yesterday), mails still due from the outbox's `by-unsent` index, objects without a live record from one
page of the bucket's listing per run (ListObjectVersions, the cursor kept in DynamoDB), and multipart uploads
without one from a page of ListMultipartUploads per run (its own cursor).
Every deletion goes through transfers.services.deletion: claimed with a conditional write, every version,
one receipt per file. Reads already treat a transfer past its expiry as expired, whether or not this ran.

Both the sweep and the healer take a `deadline` (the Lambda's remaining time less a margin, see
transfers.jobs): they stop before it between two units of work, and what they did not reach is found by the
next run. The orphan listing's cursor moves past a page only once that page's work is done.
"""

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from pynamodb.exceptions import UpdateError

from fxfer.change import Change, ChangeRefused
from reports.services import local_day
from transfers import storage
from transfers.models import (
    FILE_CANCELLED,
    FILE_DELETED,
    FILE_PENDING,
    FILE_VERIFIED,
    KIND_REQUEST,
    PENDING,
    File,
    Recipient,
    SweepCursor,
    Transfer,
    TransferSearchTerm,
)
from transfers.services.common import (
    SWEEP_PAGE,
    conditional_failed,
    new_id,
    shard_hits,
    shard_transfers,
    transfer_get,
    utc,
)
from transfers.services.deletion import (
    BY_ORPHAN_SWEEP,
    BY_SWEEP,
    CLAIM_SECONDS,
    SWEEP_ACTOR,
    Claim,
    claim_versions,
    commit_once,
    delete_transfer_files,
    deletion_resume,
    out_of_time,
    receipt_audit,
    receipt_for,
)
from transfers.services.sending import search_sort_key, search_terms

logger = logging.getLogger(__name__)
ORPHAN_CURSOR = "orphan-objects"
# A reply request is written before the transfer that names it: give that transfer time to commit before the
# healer calls the request an orphan.
ORPHAN_REPLY_GRACE = timedelta(minutes=15)


@dataclass(frozen=True)
class SweepDone:
    started_at: datetime
    transfers_expired: int
    abandoned_deleted: int = 0  # transfers never released within FXFER_ORPHAN_PENDING_HOURS
    held_skipped: int = 0
    files_deleted: int = 0
    orphan_objects_deleted: int = 0
    orphan_keys_checked: int = 0
    orphan_uploads_aborted: int = 0  # multipart uploads no live file record owns
    complete: bool = True  # False: the deadline stopped it; the next run goes on


def _due(now: datetime, page_size: int):
    """Each transfer of the by-due index past `now`, as (index hit, the transfer as its page read it): a page of
    hits at a time, its transfers in consistent BatchGetItem calls. A legal-hold case stays at the head of the
    index for as long as it lasts, and is passed over on this read, at a few calls an hour for thousands of
    transfers instead of a GetItem each (the sweep runs in a Lambda of 30 s). A transfer acted on is read again
    just before."""
    return shard_transfers(Transfer.by_due, Transfer.expires_at <= now, page_size=page_size)


def _pending(before: datetime, page_size: int):
    return shard_hits(Transfer.by_pending, Transfer.created_at <= before, page_size=page_size)


def _claim_stale(transfer: Transfer, now: datetime) -> bool:
    return transfer.deletion_claimed_at is not None and transfer.deletion_claimed_at <= now - timedelta(
        seconds=CLAIM_SECONDS
    )


def _all_verified(transfer_id: str) -> bool:
    files = [f for f in File.query(transfer_id, consistent_read=True) if f.state != FILE_CANCELLED]
    return bool(files) and all(f.state == FILE_VERIFIED for f in files)


def expiry_sweep(
    *, now: datetime | None = None, page_size: int = SWEEP_PAGE, deadline: datetime | None = None
) -> SweepDone:
    """Hourly: delete the files of every transfer past its expiry (every version, with receipts), kill its
    links and mark it expired; then transfers abandoned before release, then objects no live record owns.
    Idempotent and safe to run concurrently (claims are conditional writes); held transfers are skipped.
    Stops before `deadline` (wall clock) between two transfers or two objects."""
    now = utc(now)
    expired = abandoned = held = files = 0
    complete = True
    for hit, seen in _due(now, page_size):
        if out_of_time(deadline):
            complete = False
            break
        # One on hold as its page read it is passed over (a hold released since waits for the next hour); any
        # other is read again now, and that read decides.
        transfer = seen if seen is None or seen.held else transfer_get(hit.transfer_id)
        if transfer is None or transfer.deleted_at or transfer.expires_at > now:
            continue  # gone, or the index lags: the item decides
        if transfer.held:
            held += 1
            continue
        if transfer.deleted_by and _claim_stale(transfer, now):
            done = deletion_resume(transfer, now=now, deadline=deadline)  # a killed deleter's, as it meant it
        else:
            done = delete_transfer_files(
                transfer.transfer_id,
                by=BY_SWEEP,
                actor=SWEEP_ACTOR,
                now=now,
                extra_condition=Transfer.expires_at <= now,
                deadline=deadline,
            )
        held += done.outcome == "held"
        expired += done.outcome == "deleted"
        files += len(done.receipts)
        if done.outcome == "stopped":
            complete = False
            break
    if complete:
        for hit in _pending(now - timedelta(hours=settings.FXFER_ORPHAN_PENDING_HOURS), page_size):
            if out_of_time(deadline):
                complete = False
                break
            transfer = transfer_get(hit.transfer_id)
            if transfer is None or transfer.deleted_at or transfer.status != PENDING:
                continue
            if transfer.held:
                held += 1
                continue
            if _all_verified(transfer.transfer_id):
                continue  # verified, only its release was lost: the healer releases it, never delete it
            done = delete_transfer_files(
                transfer.transfer_id,
                by=BY_ORPHAN_SWEEP,
                actor=SWEEP_ACTOR,
                now=now,
                reason="upload abandoned before release",
                extra_condition=Transfer.status == PENDING,
                deadline=deadline,
            )
            held += done.outcome == "held"
            abandoned += done.outcome == "deleted"
            files += len(done.receipts)
            if done.outcome == "stopped":
                complete = False
                break
    orphans = checked = uploads = 0
    if complete:
        orphans, checked, complete = orphan_objects_sweep(now=now, deadline=deadline)
    if complete:
        uploads, complete = orphan_uploads_sweep(now=now, deadline=deadline)
    result = SweepDone(
        started_at=now,
        transfers_expired=expired,
        abandoned_deleted=abandoned,
        held_skipped=held,
        files_deleted=files,
        orphan_objects_deleted=orphans,
        orphan_keys_checked=checked,
        orphan_uploads_aborted=uploads,
        complete=complete,
    )
    logger.info("expiry.sweep", extra={k: (v.isoformat() if k == "started_at" else v) for k, v in vars(result).items()})
    return result


# --- objects without a live record ---------------------------------------------------------------------------


def _lease(now: datetime, run: str, name: str = ORPHAN_CURSOR) -> SweepCursor | None:
    """Take the page for this run (one sweep at a time; a lease a killed run left expires); None when another
    sweep holds it."""
    try:
        cursor = SweepCursor.get(name, consistent_read=True)
    except SweepCursor.DoesNotExist:
        cursor = None
    if cursor is not None and cursor.lease_op and cursor.lease_until and cursor.lease_until > now:
        return None
    free = SweepCursor.lease_until.does_not_exist() | (SweepCursor.lease_until <= now)
    try:
        SweepCursor(name=name).update(
            actions=[
                SweepCursor.lease_op.set(run),
                SweepCursor.lease_until.set(now + timedelta(seconds=CLAIM_SECONDS)),
            ],
            # A retry after a lost answer meets its own lease and goes on.
            condition=free | (SweepCursor.lease_op == run),
        )
    except UpdateError as exc:
        if conditional_failed(exc):
            return None
        raise
    return SweepCursor.get(name, consistent_read=True)


def _claims(cursor: SweepCursor) -> dict:
    return json.loads(cursor.claims) if cursor.claims else {}


def _save_claims(claims: dict, run: str, name: str = ORPHAN_CURSOR) -> None:
    SweepCursor(name=name).update(
        actions=[SweepCursor.claims.set(json.dumps(claims, sort_keys=True)) if claims else SweepCursor.claims.remove()],
        condition=SweepCursor.lease_op == run,
    )


def _page_done(cursor: SweepCursor, page: storage.VersionsPage, *, now: datetime, run: str) -> None:
    """Move the cursor past the page whose work is done (at the end, back to the start) and free the lease."""
    last_key = page.next_key_marker  # the last key listed (S3's NextKeyMarker); None: the listing is complete
    SweepCursor(name=ORPHAN_CURSOR).update(
        actions=[
            SweepCursor.pass_number.set(int(cursor.pass_number or 0) + 1),
            SweepCursor.updated_at.set(now),
            SweepCursor.key_marker.set(last_key) if last_key else SweepCursor.key_marker.remove(),
            SweepCursor.lease_op.remove(),
            SweepCursor.lease_until.remove(),
        ],
        condition=SweepCursor.lease_op == run,
    )


def _lease_free(run: str, name: str = ORPHAN_CURSOR) -> None:
    """Out of time: give the page back unfinished; the next run lists it again from the same place."""
    try:
        SweepCursor(name=name).update(
            actions=[SweepCursor.lease_op.remove(), SweepCursor.lease_until.remove()],
            condition=SweepCursor.lease_op == run,
        )
    except UpdateError as exc:
        if not conditional_failed(exc):
            raise


# Keys whose owners are read together: one BatchGetItem of their files, one of those files' transfers.
OWNERS_PER_READ = 100


def _owners(keys: list[str]) -> dict[str, tuple[bool, str | None, File | None]]:
    """For each key: (whether a live record owns it, the transfer id for the receipt, the file record). Read
    consistently, a hundred keys at a time (two BatchGetItem calls instead of a GetItem per key and parent)."""
    parsed = {key: storage.parse_file_key(key) for key in keys}
    wanted = {p for p in parsed.values() if p is not None}
    files = {(f.parent_id, f.file_id): f for f in File.batch_get(wanted, consistent_read=True)} if wanted else {}
    # Transfers and upload requests are both items of the transfers table: the same rules apply.
    parents = {parent_id for parent_id, _ in files}
    transfers = {t.transfer_id: t for t in Transfer.batch_get(parents, consistent_read=True)} if parents else {}
    owners = {}
    for key, ids in parsed.items():
        if ids is None:
            owners[key] = (False, None, None)  # not a key this app makes
            continue
        file, transfer = files.get(ids), transfers.get(ids[0])
        if file is None or transfer is None:
            alive = False
        elif transfer.held:
            alive = True
        else:  # live, or past expiry and left to the transfer's own deletion
            alive = not transfer.deleted_at and file.state not in {FILE_CANCELLED, FILE_DELETED}
        owners[key] = (alive, ids[0], file)
    return owners


def _orphan_finish(key: str, entry: dict, *, run: str, claims: dict) -> bool:
    """Delete the versions a claim names and commit its receipt (once: the op derives from key and versions);
    True when a receipt exists for them now."""
    claim = Claim.parse(entry["claim"])
    removed = storage.object_versions_delete(
        key=key, version_ids=list(claim.versions), delete_markers=list(claim.markers)
    )
    receipted = False
    if not removed.held and claim.versions:
        file = None
        if entry.get("parent_id") and entry.get("file_id"):
            try:
                file = File.get(entry["parent_id"], entry["file_id"], consistent_read=True)
            except File.DoesNotExist:
                file = None
        receipt = receipt_for(file=file, key=key, claim=claim, by=BY_ORPHAN_SWEEP)
        versions = hashlib.sha256(",".join(sorted(claim.versions)).encode()).hexdigest()[:16]
        change = Change(op=f"orphan.deleted:{key}:{versions}", now=claim.at)
        receipt_audit(
            change,
            receipt,
            parent_id=entry.get("parent_id"),
            actor=SWEEP_ACTOR,
            ip=None,
            user_agent=None,
            reason="no live record owns the object",
        )
        commit_once(change)
        receipted = True
    claims.pop(key, None)
    _save_claims(claims, run)
    return receipted


def orphan_objects_sweep(*, now: datetime, deadline: datetime | None = None) -> tuple[int, int, bool]:
    """Delete objects under files/ that no live record owns (late uploads to a deleted transfer, files of
    vanished records, foreign keys), a page per run, each with a receipt naming its versions; (objects
    deleted, keys checked, complete). The cursor moves past the page only once all of it is done."""
    run = new_id()
    cursor = _lease(now, run)
    if cursor is None:
        return 0, 0, True
    claims = _claims(cursor)
    deleted = 0
    for key, entry in list(claims.items()):  # what a killed run left between S3 and its receipts
        deleted += _orphan_finish(key, entry, run=run, claims=claims)
    page = storage.versions_page(
        prefix="files/", key_marker=cursor.key_marker, limit=settings.FXFER_ORPHAN_KEYS_PER_RUN
    )
    keys = list(dict.fromkeys(v.key for v in page.versions))
    owners: dict = {}
    checked = 0
    for index, key in enumerate(keys):
        if out_of_time(deadline):
            _lease_free(run)
            return deleted, checked, False
        if key not in owners:  # read just before their turn, so a record is never older than a few keys' work
            owners = _owners(keys[index : index + OWNERS_PER_READ])
        checked += 1
        alive, parent_id, file = owners[key]
        if alive:
            continue
        claim = claim_versions(key, earlier=None, now=now)
        if not (claim.versions or claim.markers):
            continue
        claims[key] = {
            "parent_id": parent_id,
            "file_id": file.file_id if file else None,
            "claim": claim.text(),
        }
        _save_claims(claims, run)  # recorded before S3 is asked
        deleted += _orphan_finish(key, claims[key], run=run, claims=claims)
    _page_done(cursor, page, now=now, run=run)
    return deleted, checked, True


# --- multipart uploads without a live record ----------------------------------------------------------------

ORPHAN_UPLOADS_CURSOR = "orphan-uploads"
# An upload is created a moment before its file records it (transfers.services.sending.multipart_start):
# one younger than this may be one being authorized right now, and is left for a later run.
ORPHAN_UPLOAD_GRACE = timedelta(hours=1)


def _upload_owned(upload: storage.MultipartUpload, cache: dict) -> bool:
    """Whether a live file record owns the upload: a pending file at that key that names this very upload id,
    of a transfer or request that still exists. A replaced, refused, cancelled or deleted file's upload (and
    one whose CreateMultipartUpload answer was lost, so nothing ever recorded it) is nobody's."""
    parsed = storage.parse_file_key(upload.key)
    if parsed is None:
        return False
    try:
        file = File.get(*parsed, consistent_read=True)
    except File.DoesNotExist:
        return False
    if file.state != FILE_PENDING or file.multipart_upload_id != upload.upload_id:
        return False
    if parsed[0] not in cache:
        cache[parsed[0]] = transfer_get(parsed[0])
    transfer = cache[parsed[0]]
    return transfer is not None and not transfer.deleted_at


def _uploads_next(
    page: storage.UploadsPage, *, cursor: SweepCursor, aborted: list[list[str]]
) -> tuple[str | None, str | None]:
    """Where the next run lists from: after the page's last upload that is still there (an aborted upload is
    no marker S3 can go on from). A page whose uploads were all aborted is listed again from the same place,
    where the uploads after it now come first; a complete listing starts over."""
    if page.next_key_marker is None:
        return None, None
    gone = {tuple(pair) for pair in aborted}
    kept = [u for u in page.uploads if (u.key, u.upload_id) not in gone]
    if kept:
        return kept[-1].key, kept[-1].upload_id
    return cursor.key_marker, cursor.upload_id_marker


def _uploads_aborted(
    claimed: list[list[str]],
    *,
    run: str,
    now: datetime,
    page: storage.UploadsPage | None,
    cursor: SweepCursor,
) -> int:
    """Abort the claimed uploads (already recorded on the cursor), then commit their event with the cursor
    (claims cleared; with `page`, moved past it and the lease freed) in one transaction: a run killed before
    that commit leaves the claims, and the next run aborts them again (a gone upload is fine) and records them."""
    for key, upload_id in claimed:
        storage.multipart_abort(key=key, upload_id=upload_id)
    actions = [SweepCursor.claims.remove(), SweepCursor.updated_at.set(now)]
    if page is not None:
        key_marker, upload_id_marker = _uploads_next(page, cursor=cursor, aborted=claimed)
        actions += [
            SweepCursor.pass_number.set(int(cursor.pass_number or 0) + 1),
            SweepCursor.key_marker.set(key_marker) if key_marker else SweepCursor.key_marker.remove(),
            SweepCursor.upload_id_marker.set(upload_id_marker)
            if upload_id_marker
            else SweepCursor.upload_id_marker.remove(),
            SweepCursor.lease_op.remove(),
            SweepCursor.lease_until.remove(),
        ]
    change = Change(op=f"uploads.orphans_aborted:{run}:{'page' if page else 'claims'}", now=now)
    change.update(SweepCursor(name=ORPHAN_UPLOADS_CURSOR), actions=actions, condition=SweepCursor.lease_op == run)
    if claimed:
        change.audit(
            "upload.orphans_aborted",
            actor=SWEEP_ACTOR,
            subject="system",
            reason="no live file record owns the multipart upload",
            count=len(claimed),
            uploads=[{"key": key, "upload_id": upload_id} for key, upload_id in claimed[:20]],
        )
    change.commit()
    return len(claimed)


def orphan_uploads_sweep(*, now: datetime, deadline: datetime | None = None) -> tuple[int, bool]:
    """Abort multipart uploads under files/ that no live file record owns (replaced, refused, cancelled or
    deleted files' uploads a failed abort left, uploads whose creation answer was lost), older than
    ORPHAN_UPLOAD_GRACE: their parts cost money and their part URLs would still take bytes. A page of
    ListMultipartUploads per run, the cursor kept in DynamoDB and moved only once the page's aborts are
    recorded (one aggregated event per run); (uploads aborted, complete)."""
    run = new_id()
    cursor = _lease(now, run, name=ORPHAN_UPLOADS_CURSOR)
    if cursor is None:
        return 0, True
    aborted = 0
    earlier = _claims(cursor).get("uploads")
    if earlier:  # what a killed run claimed: abort and record them before going on
        aborted += _uploads_aborted(earlier, run=run, now=now, page=None, cursor=cursor)
    page = storage.multipart_uploads_page(
        prefix="files/",
        key_marker=cursor.key_marker,
        upload_id_marker=cursor.upload_id_marker,
        limit=settings.FXFER_ORPHAN_KEYS_PER_RUN,
    )
    cache: dict = {}
    orphans: list[list[str]] = []
    for upload in page.uploads:
        if out_of_time(deadline):
            _lease_free(run, name=ORPHAN_UPLOADS_CURSOR)
            return aborted, False
        if upload.initiated > now - ORPHAN_UPLOAD_GRACE or _upload_owned(upload, cache):
            continue
        orphans.append([upload.key, upload.upload_id])
    if orphans:
        _save_claims({"uploads": orphans}, run, name=ORPHAN_UPLOADS_CURSOR)  # recorded before S3 is asked
    aborted += _uploads_aborted(orphans, run=run, now=now, page=page, cursor=cursor)
    if aborted:
        logger.info("expiry.orphan_uploads", extra={"aborted": aborted})
    return aborted, True


# --- healing: what a crash left -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Healed:
    released: int = 0  # verified transfers a crash left unreleased
    deletions_finished: int = 0  # deletions a killed run left claimed
    mails_sent: int = 0  # outbox mails still due
    orphan_replies_removed: int = 0  # reply requests whose transfer never committed
    complete: bool = True


def sweep_heal(*, now: datetime | None = None, deadline: datetime | None = None, page_size: int = SWEEP_PAGE) -> Healed:
    """Hourly, before the sweep: release transfers whose files are all verified but whose release was lost,
    finish deletions a killed run left half done (receipts included), send mails still in the outbox, and
    remove reply requests whose transfer never committed. Every query uses an index; stops before
    `deadline`."""
    from transfers.outbox import outbox_retry
    from transfers.services.sending import transfer_release

    now = utc(now)
    released = finished = removed = 0
    for hit in _pending(now, page_size):
        if out_of_time(deadline):
            return Healed(released=released, deletions_finished=finished, complete=False)
        transfer = transfer_get(hit.transfer_id)
        if transfer is None or transfer.deleted_at or transfer.held:
            continue
        if transfer.deletion_claimed_at is not None:
            if _claim_stale(transfer, now):
                finished += deletion_resume(transfer, now=now, deadline=deadline).outcome == "deleted"
            continue
        if transfer.status == PENDING and transfer.expires_at > now and _all_verified(transfer.transfer_id):
            released += transfer_release(transfer_id=transfer.transfer_id, now=now).released
    mails = outbox_retry(now=now, deadline=deadline)
    if not mails.complete:
        return Healed(released=released, deletions_finished=finished, mails_sent=mails.sent, complete=False)
    complete = True
    for request in _reply_requests(now, page_size):
        if out_of_time(deadline):
            complete = False
            break
        if transfer_get(request.reply_to) is None:
            removed += reply_orphan_remove(request, now=now)
    healed = Healed(
        released=released,
        deletions_finished=finished,
        mails_sent=mails.sent,
        orphan_replies_removed=removed,
        complete=complete,
    )
    logger.info("expiry.heal", extra=vars(healed))
    return healed


def _reply_requests(now: datetime, page_size: int):
    """Reply requests made in the last two days and older than the grace time (the by-day index)."""
    newest = now - ORPHAN_REPLY_GRACE
    oldest = now - timedelta(days=2)
    days = sorted({local_day(oldest).isoformat(), local_day(newest).isoformat(), local_day(now).isoformat()})
    for day in days:
        yield from Transfer.by_day.query(
            day,
            Transfer.created_at.between(oldest, newest),
            filter_condition=(Transfer.kind == KIND_REQUEST) & Transfer.reply_to.exists(),
            page_size=page_size,  # every one of the two days, however many: an orphan is never left unseen
        )


def reply_orphan_remove(request: Transfer, *, now: datetime) -> bool:
    """Remove a reply request whose transfer never committed (its guests, its search terms, the request) with
    its own event, so it never shows in the sender's Received list. True when removed now or before."""
    if any(True for _ in File.query(request.transfer_id, limit=1)):
        logger.warning("expiry.orphan_reply.has_files", extra={"transfer_id": request.transfer_id})
        return False  # nobody can reach it to upload; should a file be there, keep it for a person to decide
    guests = list(Recipient.query(request.transfer_id, consistent_read=True))
    sort_key = search_sort_key(created_at=request.created_at, transfer_id=request.transfer_id)
    terms = [
        TransferSearchTerm(term=term, sort_key=sort_key)
        for term in search_terms(sender_email=request.owner_email, recipients=[g.email for g in guests], file_names=[])
    ]
    children = [*guests, *terms]
    change = Change(op=f"reply.orphan_removed:{request.transfer_id}", now=now)
    if len(children) > 95:
        for child in children:  # unreachable once the request goes; deleting them first is safe to repeat
            child.delete()
        children = []
    for child in children:
        change.delete(child)
    # The transfer must still not exist when the request goes (it might commit late).
    change.check(Transfer(transfer_id=request.reply_to), condition=Transfer.transfer_id.does_not_exist())
    change.delete(request, condition=Transfer.reply_to == request.reply_to, label="request")
    change.audit(
        "reply_request.removed",
        actor=SWEEP_ACTOR,
        subject=f"transfer:{request.transfer_id}",
        reason="the transfer it belongs to was never created",
        reply_to=request.reply_to,
        created_at=request.created_at.isoformat(),
    )
    try:
        commit_once(change)
    except ChangeRefused:
        return transfer_get(request.transfer_id) is None and transfer_get(request.reply_to) is None
    return True
