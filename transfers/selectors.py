"""Reads for transfers: the sender's lists and details, and what a guest session may see.

Every read applies its own expiry (DynamoDB TTL deletes late): a transfer past `expires_at` shows as
expired and gives guests nothing, whatever the sweep has or has not done yet.
"""

import base64
import binascii
import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from django.utils.translation import ngettext
from pynamodb.models import Model

from fxfer import dynamo
from reports.models import AuditEvent
from transfers import policy
from transfers.errors import TransferError
from transfers.models import (
    DELETED,
    FILE_CANCELLED,
    FILE_VERIFIED,
    GATE_APPROVAL,
    GATE_HOLD,
    KIND_REQUEST,
    KIND_SEND,
    MAIL_PENDING,
    PENDING,
    READY,
    REVOKED,
    File,
    OutboxMail,
    QuotaUsage,
    Recipient,
    Transfer,
)
from transfers.outbox import LINK_KINDS
from transfers.services.common import (
    owned_transfer,
    request_limits,
    status_at,
    transfer_get,
    unavailable_when_aws_fails,
    utc,
)
from transfers.services.gate import gate_word, release_blockers
from transfers.services.guests import guest_access
from transfers.services.quota import QuotaState, quota_state_of
from transfers.services.scanning import PASSING as SCAN_PASSING
from transfers.services.scanning import scan_state, scan_state_text


@dataclass(frozen=True)
class MailState:
    """What happened to one mail, as the outbox knows it: pages tell the sender the truth."""

    kind: str
    status: str  # "pending" (not sent yet, or retrying), "sent", "failed", "bounced", "complained"
    attempts: int
    last_error: str | None
    sent_at: datetime | None
    next_attempt_at: datetime | None
    bounce_reason: str | None

    @property
    def retrying(self) -> bool:
        return self.status == MAIL_PENDING and self.attempts > 0


def link_mail_states(parent_id: str) -> dict[str, MailState]:
    """Each recipient's latest link mail of a transfer or request (recipient id → its state)."""
    states: dict[str, MailState] = {}
    for mail in OutboxMail.by_parent.query(parent_id):  # oldest first: a later mail replaces an earlier one
        if mail.recipient_id and mail.kind in LINK_KINDS:
            states[mail.recipient_id] = MailState(
                kind=mail.kind,
                status=mail.status,
                attempts=int(mail.attempts or 0),
                last_error=mail.last_error,
                sent_at=mail.sent_at,
                next_attempt_at=mail.next_attempt_at,
                bounce_reason=mail.bounce_reason,
            )
    return states


@dataclass(frozen=True)
class RecipientSummary:
    recipient_id: str
    email: str
    downloads_used: int
    file_downloads: dict[str, int]
    last_download_at: datetime | None
    link_sent_at: datetime | None
    locked: bool
    link_mail: MailState | None = None


class ScanShown:
    """What a file's page shows of its malware scan, from its `scan` state (scanning.scan_state; "" when none)."""

    scan: str

    @property
    def scan_text(self) -> str:
        return scan_state_text(self.scan)

    @property
    def scan_blocked(self) -> bool:
        return bool(self.scan) and self.scan not in SCAN_PASSING


@dataclass(frozen=True)
class FileSummary(ScanShown):
    file_id: str
    name: str
    size: int
    state: str  # "pending" | "verified" | "refused"
    refused_reason: str | None
    checksum: str | None  # "sha256:<hex>" when there is one, else "etag:<etag>"
    checksum_by: str | None = None  # who vouches for the SHA-256: CHECKED_BY_S3 or SENDERS_WORD
    scan: str = ""  # the malware scan's state (transfers.services.scanning.scan_state; "" until verified)


@dataclass(frozen=True)
class ReceivedFile(ScanShown):
    """A file a guest uploaded into a request (or a reply), as the employee sees it."""

    file_id: str
    name: str
    size: int
    state: str  # "pending" | "verified" | "refused"
    refused_reason: str | None
    checksum: str | None
    uploader_email: str
    created_at: datetime
    verified_at: datetime | None
    checksum_by: str | None = None
    scan: str = ""


@dataclass(frozen=True)
class TransferSummary:
    transfer_id: str
    subject: str
    status: str  # as of now: "pending" | "ready" | "revoked" | "expired" | "deleted"
    created_at: datetime
    expires_at: datetime
    file_count: int
    total_bytes: int
    download_limit: int
    notify_on_download: bool
    recipients: tuple[RecipientSummary, ...]
    allows_replies: bool = False
    held: bool = False  # on legal hold: its files are kept, "delete now" is refused (the reason is not shown)
    # What its badge says it waits for (gate_badge): "scan", "infected", "hold", "approval", "rejected",
    # "timed_out"; None: the status says it ("Uploading" while pending).
    gate: str | None = None
    sending_at: datetime | None = None  # the mis-send hold's end, for "Sending at HH:MM"


@dataclass(frozen=True)
class TransferPage:
    items: tuple[TransferSummary, ...]
    next_cursor: str | None
    quota: QuotaState | None = None  # the owner's usage, when asked for with the page (`with_quota`)


@dataclass(frozen=True)
class DeletionReceipt:
    """One deleted file, as its "file.deleted" audit event records it."""

    key: str
    name: str | None
    size: int | None
    checksum: str | None  # "sha256:<hex>" or "etag:<etag>"
    version_count: int
    deleted_at: datetime
    by: str  # "sweep", "sender", "compliance", "orphan-sweep"


@dataclass(frozen=True)
class TransferDetail:
    summary: TransferSummary
    message: str
    files: tuple[FileSummary, ...]
    released_at: datetime | None
    revoked_at: datetime | None
    deleted_at: datetime | None = None
    receipts: tuple[DeletionReceipt, ...] = ()
    reply_request_id: str | None = None
    replies: tuple[ReceivedFile, ...] = ()


def checksum_text(*, sha256: str | None, etag: str | None) -> str | None:
    """How a file's checksum is shown: the SHA-256 in hex (what `sha256sum` or `certutil -hashfile` print, so
    anyone can compare it with the file they saved), else S3's ETag."""
    if sha256:
        try:
            return f"sha256:{base64.b64decode(sha256, validate=True).hex()}"
        except (binascii.Error, ValueError):
            return f"sha256:{sha256}"
    return f"etag:{etag.strip(chr(34))}" if etag else None


# Who vouches for a file's SHA-256. The uploader's browser computes it for every file; for a file sent in one
# POST, S3 also checked it against the bytes it stored ("s3"); for a file sent in parts, S3 checked the parts'
# and the whole object's CRC-64/NVME, and the SHA-256 is the uploader's word ("sender").
CHECKED_BY_S3 = "s3"
SENDERS_WORD = "sender"


def _checksum(file: File) -> str | None:
    return checksum_text(sha256=file.checksum_sha256 or file.declared_sha256, etag=file.etag)


def _checksum_by(file: File) -> str | None:
    if file.checksum_sha256:
        return CHECKED_BY_S3
    return SENDERS_WORD if file.declared_sha256 else None


def _file_summary(file: File, now: datetime | None = None) -> FileSummary:
    return FileSummary(
        file_id=file.file_id,
        name=file.name,
        size=int(file.verified_size or file.declared_size),
        state=file.state,
        refused_reason=file.refused_reason,
        checksum=_checksum(file),
        checksum_by=_checksum_by(file),
        scan=scan_state(file, utc(now)),
    )


def _recipient_summary(r: Recipient, link_mail: MailState | None = None) -> RecipientSummary:
    return RecipientSummary(
        recipient_id=r.recipient_id,
        email=r.email,
        downloads_used=int(r.downloads_used or 0),
        file_downloads={k: int(v) for k, v in (r.file_downloads.as_dict() if r.file_downloads else {}).items()},
        last_download_at=r.last_download_at,
        link_sent_at=r.link_sent_at,
        locked=bool(r.locked),
        link_mail=link_mail,
    )


def _recipients(transfer_id: str) -> tuple[RecipientSummary, ...]:
    mails = link_mail_states(transfer_id)
    return tuple(_recipient_summary(r, mails.get(r.recipient_id)) for r in Recipient.query(transfer_id))


def gate_badge(transfer: Transfer, status: str, now: datetime, gate: str | None = None) -> str | None:
    """What a transfer's status badge says it waits for, from the item alone (no read per row): while pending,
    the release gate's word its blocked path keeps on it (Transfer.gate; `gate`: one worked out from the files
    just read), unless the item's own attributes have overtaken it (an approval given, a hold run out); after a
    refused approval, "rejected" or "timed_out". None: the status says it."""
    if status == PENDING:
        word = gate or transfer.gate
        if word == GATE_APPROVAL and transfer.approval_state != "required":
            return None  # approved: released in the same request, or the healer releases it
        if word == GATE_HOLD and (transfer.release_not_before is None or transfer.release_not_before <= now):
            # The hold ended before the minute job's release call: next is the approval, or the mails.
            return GATE_APPROVAL if transfer.approval_state == "required" else GATE_HOLD
        return word
    if status in (REVOKED, DELETED) and transfer.approval_state in ("rejected", "timed_out"):
        return transfer.approval_state
    return None


def _summary(
    transfer: Transfer,
    now: datetime,
    recipients: tuple[RecipientSummary, ...] | None = None,
    gate: str | None = None,
) -> TransferSummary:
    status = status_at(transfer, now)
    return TransferSummary(
        transfer_id=transfer.transfer_id,
        subject=transfer.subject,
        status=status,
        created_at=transfer.created_at,
        expires_at=transfer.expires_at,
        file_count=int(transfer.file_count),
        total_bytes=int(transfer.total_bytes),
        download_limit=int(transfer.download_limit),
        notify_on_download=bool(transfer.notify_on_download),
        recipients=_recipients(transfer.transfer_id) if recipients is None else recipients,
        allows_replies=bool(transfer.reply_request_id),
        held=bool(transfer.held),
        gate=gate_badge(transfer, status, now, gate),
        sending_at=transfer.release_not_before,
    )


def _encode_cursor(key: dict | None) -> str | None:
    if not key:
        return None
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, owner_id: str) -> dict:
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        raise TransferError("invalid") from None
    # A cursor can only continue the owner's own list.
    if not isinstance(key, dict) or key.get("owner_id", {}).get("S") != owner_id:
        raise TransferError("invalid")
    return key


@unavailable_when_aws_fails
def transfer_list_for_owner(
    *,
    owner_id: str,
    cursor: str | None = None,
    limit: int = 20,
    now: datetime | None = None,
    with_quota: bool = False,
) -> TransferPage:
    """The owner's transfers, newest first, a page at a time (GSI by-owner; `next_cursor` continues), each with
    its recipients' downloads and locks (not their mails' states: the transfer's own page shows those).

    One Query for the page and one BatchGetItem for every row's recipients together (a hundred keys a call),
    with the owner's quota usage riding along when `with_quota` (`page.quota`)."""
    now = utc(now)
    limit = max(1, min(int(limit), 100))
    results = _owner_query(owner_id=owner_id, kind=KIND_SEND, cursor=cursor, limit=limit)
    transfers = list(results)
    also = [_key(QuotaUsage, user_id=owner_id)] if with_quota else []
    children = _children_of(transfers, files=False, also=also)
    items = tuple(
        _summary(t, now, recipients=tuple(_recipient_summary(r) for r in children.recipients[t.transfer_id]))
        for t in transfers
    )
    quota = None
    if with_quota:
        quota = quota_state_of(user_id=str(owner_id), usage=next(iter(children.also.get(QuotaUsage, ())), None))
    return TransferPage(items=items, next_cursor=_encode_cursor(results.last_evaluated_key), quota=quota)


# --- list pages: every row's children with one BatchGetItem ----------------------------------------------------

_BATCH_KEYS = 100  # BatchGetItem's most keys in one call
_BATCH_RETRIES = 5  # calls for keys DynamoDB left unprocessed (throttled) before the page says "unavailable"


@dataclass(frozen=True)
class _Children:
    recipients: dict[str, list[Recipient]]  # parent id → its recipients, by id (the order a Query gives)
    files: dict[str, list[File]]  # parent id → its files, by id
    also: dict[type[Model], list[Model]]  # the other items asked for, by model


def _key(model: type[Model], **values: str) -> tuple[type[Model], dict]:
    """An item's key as BatchGetItem takes it: `_key(Recipient, parent_id=..., recipient_id=...)`."""
    return model, {getattr(model, name).attr_name: {"S": str(value)} for name, value in values.items()}


def _children_of(parents: list[Transfer], *, files: bool, also: list[tuple[type[Model], dict]] = ()) -> _Children:
    """Each parent's recipients (and files, with `files`) read by the ids kept on the parent, and the `also`
    items, all in one BatchGetItem per hundred keys. A parent made before the ids were kept is queried."""
    recipients: dict[str, list[Recipient]] = {p.transfer_id: [] for p in parents}
    found_files: dict[str, list[File]] = {p.transfer_id: [] for p in parents}
    wanted = list(also)
    for parent in parents:
        pid = parent.transfer_id
        if parent.recipient_ids is None:
            recipients[pid] = list(Recipient.query(pid))
            if files:
                found_files[pid] = list(File.query(pid, consistent_read=True))
            continue
        wanted += [_key(Recipient, parent_id=pid, recipient_id=rid) for rid in sorted(parent.recipient_ids)]
        if files:
            wanted += [_key(File, parent_id=pid, file_id=fid) for fid in sorted(parent.file_ids or ())]
    read = _batch_read(wanted)
    for recipient in read.pop(Recipient, []):
        recipients[recipient.parent_id].append(recipient)
    for file in read.pop(File, []):
        found_files[file.parent_id].append(file)
    for children in recipients.values():
        children.sort(key=lambda r: r.recipient_id)
    for children in found_files.values():
        children.sort(key=lambda f: f.file_id)
    return _Children(recipients=recipients, files=found_files, also=read)


def _batch_read(wanted: list[tuple[type[Model], dict]]) -> dict[type[Model], list[Model]]:
    """Items of any of our tables by key: a hundred keys per BatchGetItem, consistent reads (a page shows what
    was just written). Keys DynamoDB leaves unprocessed are asked for again at once, a few times; a page never
    sleeps for them: it answers "unavailable" (try again), as for any read that kept failing."""
    models = {model.Meta.table_name: model for model, _key in wanted}
    pending = [(model.Meta.table_name, key) for model, key in wanted]
    found: dict[type[Model], list[Model]] = {model: [] for model in models.values()}
    calls_left = -(-len(pending) // _BATCH_KEYS) + _BATCH_RETRIES
    while pending:
        if calls_left == 0:
            raise TransferError("unavailable")
        calls_left -= 1
        chunk, pending = pending[:_BATCH_KEYS], pending[_BATCH_KEYS:]
        request_items: dict[str, dict] = {}
        for table, key in chunk:
            request_items.setdefault(table, {"Keys": [], "ConsistentRead": True})["Keys"].append(key)
        answer = dynamo.connection().dispatch("BatchGetItem", {"RequestItems": request_items})
        for table, items in (answer.get("Responses") or {}).items():
            found[models[table]] += [models[table].from_raw_data(item) for item in items]
        for table, left in (answer.get("UnprocessedKeys") or {}).items():
            pending += [(table, key) for key in left.get("Keys", [])]
    return found


def _owner_query(*, owner_id: str, kind: str, cursor: str | None, limit: int):
    """One page of the owner's transfers or requests, newest first (GSI by-owner, filtered by kind).

    DynamoDB's Limit counts the items it reads before the kind filter, so each Query reads three pages' worth:
    transfers and requests share the index (a transfer that allows replies has its reply request beside it),
    and a page of one kind then usually takes one Query instead of two or three. The cursor continues after the
    last item shown, not the last one read."""
    limit = max(1, min(int(limit), 100))
    return Transfer.by_owner.query(
        str(owner_id),
        scan_index_forward=False,
        limit=limit,
        page_size=min(100, 3 * limit),
        filter_condition=Transfer.kind == kind,
        last_evaluated_key=_decode_cursor(cursor, str(owner_id)) if cursor else None,
    )


def deletion_receipts(transfer_id: str) -> tuple[DeletionReceipt, ...]:
    """The deletion receipts of a transfer's files, oldest first (audit events by subject)."""
    receipts = []
    for event in AuditEvent.by_subject.query(f"transfer:{transfer_id}"):
        if event.action != "file.deleted" or event.outcome != "ok":
            continue
        details = event.details or {}
        sha256, etag = details.get("sha256"), details.get("etag")
        receipts.append(
            DeletionReceipt(
                key=details.get("key", ""),
                name=details.get("name"),
                size=details.get("size"),
                checksum=checksum_text(sha256=sha256, etag=etag),
                version_count=len(details.get("version_ids") or ()),
                deleted_at=event.at,
                by=details.get("by", ""),
            )
        )
    return tuple(receipts)


def transfer_detail_for_owner(*, owner_id: str, transfer_id: str, now: datetime | None = None) -> TransferDetail:
    """One of the owner's transfers with its files and each recipient's downloads."""
    now = utc(now)
    transfer = owned_transfer(owner_id=owner_id, transfer_id=transfer_id, kind=KIND_SEND)
    items = [f for f in File.query(transfer_id, consistent_read=True) if f.state != FILE_CANCELLED]
    files = tuple(_file_summary(f, now) for f in items)
    gate = None
    if transfer.status == PENDING and items and all(f.state == FILE_VERIFIED for f in items):
        # The page has the files: what the gate waits for right now, not what its last call wrote.
        gate = gate_word(release_blockers(transfer, items, now), items, now)
    return TransferDetail(
        summary=_summary(transfer, now, gate=gate),
        message=transfer.message,
        files=files,
        released_at=transfer.released_at,
        revoked_at=transfer.revoked_at,
        deleted_at=transfer.deleted_at,
        receipts=deletion_receipts(transfer_id),
        reply_request_id=transfer.reply_request_id,
        replies=_received(transfer.reply_request_id, now) if transfer.reply_request_id else (),
    )


def _received(request_id: str, now: datetime | None = None) -> tuple[ReceivedFile, ...]:
    return _received_files(File.query(request_id, consistent_read=True), now)


def _received_files(files, now: datetime | None = None) -> tuple[ReceivedFile, ...]:
    now = utc(now)
    return tuple(
        ReceivedFile(
            file_id=f.file_id,
            name=f.name,
            size=int(f.verified_size or f.declared_size),
            state=f.state,
            refused_reason=f.refused_reason,
            checksum=_checksum(f),
            uploader_email=f.uploader_email or "",
            created_at=f.created_at,
            verified_at=f.verified_at,
            checksum_by=_checksum_by(f),
            scan=scan_state(f, now),
        )
        for f in files
        if f.state != FILE_CANCELLED
    )


# --- upload requests ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GuestSummary:
    recipient_id: str
    email: str
    link_sent_at: datetime | None
    locked: bool
    finished_at: datetime | None
    note: str | None
    link_mail: MailState | None = None


@dataclass(frozen=True)
class RequestSummary:
    request_id: str
    subject: str
    status: str  # as of now: "ready" (open) | "closed" | "revoked" | "expired" | "deleted"
    created_at: datetime
    closes_at: datetime
    expires_at: datetime
    file_count: int
    total_bytes: int
    guests: tuple[GuestSummary, ...]
    reply_to: str | None
    held: bool
    files: tuple[ReceivedFile, ...] = ()  # on the Received list: what arrived, from whom


@dataclass(frozen=True)
class RequestPage:
    items: tuple[RequestSummary, ...]
    next_cursor: str | None


@dataclass(frozen=True)
class RequestDetail:
    summary: RequestSummary
    message: str
    limits: str
    files: tuple[ReceivedFile, ...]
    deleted_at: datetime | None
    receipts: tuple[DeletionReceipt, ...]


def _guest_summary(r: Recipient, link_mail: MailState | None = None) -> GuestSummary:
    return GuestSummary(
        recipient_id=r.recipient_id,
        email=r.email,
        link_sent_at=r.link_sent_at,
        locked=bool(r.locked),
        finished_at=r.finished_at,
        note=r.note,
        link_mail=link_mail,
    )


def _request_summary(
    request: Transfer, now: datetime, guests: tuple[GuestSummary, ...] | None = None
) -> RequestSummary:
    if guests is None:
        mails = link_mail_states(request.transfer_id)
        guests = tuple(_guest_summary(r, mails.get(r.recipient_id)) for r in Recipient.query(request.transfer_id))
    return RequestSummary(
        request_id=request.transfer_id,
        subject=request.subject,
        status=status_at(request, now),
        created_at=request.created_at,
        closes_at=request.closes_at,
        expires_at=request.expires_at,
        file_count=int(request.file_count),
        total_bytes=int(request.total_bytes),
        guests=guests,
        reply_to=request.reply_to,
        held=bool(request.held),
    )


@unavailable_when_aws_fails
def request_list_for_owner(
    *, owner_id: str, cursor: str | None = None, limit: int = 20, now: datetime | None = None
) -> RequestPage:
    """The owner's upload requests (and replies to their transfers), newest first, a page at a time, each with
    its guests and what they sent (not their mails' states: the request's own page shows those).

    One Query for the page and one BatchGetItem for every row's guests and files together (a hundred keys a
    call)."""
    now = utc(now)
    results = _owner_query(owner_id=owner_id, kind=KIND_REQUEST, cursor=cursor, limit=limit)
    requests = list(results)
    children = _children_of(requests, files=True)
    items = tuple(
        replace(
            _request_summary(r, now, guests=tuple(_guest_summary(g) for g in children.recipients[r.transfer_id])),
            files=_received_files(children.files[r.transfer_id]),
        )
        for r in requests
    )
    return RequestPage(items=items, next_cursor=_encode_cursor(results.last_evaluated_key))


def request_detail_for_owner(*, owner_id: str, request_id: str, now: datetime | None = None) -> RequestDetail:
    """One of the owner's requests: each guest (finished? note?) and every file they uploaded, with checksums."""
    now = utc(now)
    request = owned_transfer(owner_id=owner_id, transfer_id=request_id, kind=KIND_REQUEST)
    return RequestDetail(
        summary=_request_summary(request, now),
        message=request.message,
        limits=policy.limits_text(request_limits(request)),
        files=_received(request_id, now),
        deleted_at=request.deleted_at,
        receipts=deletion_receipts(request_id),
    )


@dataclass(frozen=True)
class GuestRequest:
    request_id: str
    sender_name: str
    sender_email: str
    subject: str
    message: str
    closes_at: datetime
    recipient_email: str
    limits: policy.RequestLimits
    limits_text: str
    files_left: int
    bytes_left: int
    left_text: str  # "18 more files (99.9 GiB) fit.", in the limits' own units
    uploads: tuple[FileSummary, ...]  # their own files only
    finished_at: datetime | None
    note: str | None
    is_reply: bool


def guest_request(*, transfer_id: str, recipient_id: str, grant: str, now: datetime | None = None) -> GuestRequest:
    """What a guest of a request sees: what is asked, the limits left, and their own uploads only."""
    now = utc(now)
    request, guest = guest_access(
        transfer_id=transfer_id, recipient_id=recipient_id, grant=grant, now=now, kind=KIND_REQUEST
    )
    limits = request_limits(request)
    files_left = max(0, limits.max_files - int(guest.files_reserved or 0))
    bytes_left = max(0, limits.max_total_bytes - int(guest.bytes_reserved or 0))
    left = ngettext("%(count)d more file (%(size)s) fits.", "%(count)d more files (%(size)s) fit.", files_left)
    return GuestRequest(
        request_id=transfer_id,
        sender_name=request.owner_name,
        sender_email=request.owner_email,
        subject=request.subject,
        message=request.message,
        closes_at=request.closes_at,
        recipient_email=guest.email,
        limits=limits,
        limits_text=policy.limits_text(limits),
        files_left=files_left,
        bytes_left=bytes_left,
        left_text=left % {"count": files_left, "size": policy.bytes_text(bytes_left)},
        uploads=tuple(
            _file_summary(f)
            for f in File.query(transfer_id, consistent_read=True)
            if f.uploader_id == recipient_id and f.state != FILE_CANCELLED
        ),
        finished_at=guest.finished_at,
        note=guest.note,
        is_reply=bool(request.reply_to),
    )


@dataclass(frozen=True)
class GuestFile(ScanShown):
    file_id: str
    name: str
    size: int
    checksum: str | None
    downloads_left: int
    checksum_by: str | None = None
    scan: str = ""


@dataclass(frozen=True)
class GuestFiles:
    transfer_id: str
    sender_name: str
    sender_email: str
    subject: str
    message: str
    expires_at: datetime
    recipient_email: str
    files: tuple[GuestFile, ...]
    can_reply: bool = False


def guest_files(*, transfer_id: str, recipient_id: str, grant: str, now: datetime | None = None) -> GuestFiles:
    """What a guest session shows: the verified files (name, size, checksum) and the downloads left."""
    now = utc(now or datetime.now(UTC))
    transfer, recipient = guest_access(transfer_id=transfer_id, recipient_id=recipient_id, grant=grant, now=now)
    used = recipient.file_downloads.as_dict() if recipient.file_downloads else {}
    limit = int(transfer.download_limit)
    return GuestFiles(
        transfer_id=transfer_id,
        sender_name=transfer.owner_name,
        sender_email=transfer.owner_email,
        subject=transfer.subject,
        message=transfer.message,
        expires_at=transfer.expires_at,
        recipient_email=recipient.email,
        files=tuple(
            GuestFile(
                file_id=f.file_id,
                name=f.name,
                size=int(f.verified_size),
                checksum=_checksum(f),
                downloads_left=max(0, limit - int(used.get(f.file_id, 0))),
                checksum_by=_checksum_by(f),
                scan=scan_state(f, now),
            )
            for f in File.query(transfer_id, consistent_read=True)
            if f.state == FILE_VERIFIED
        ),
        can_reply=_replies_open(transfer, now),
    )


def _replies_open(transfer: Transfer, now: datetime) -> bool:
    reply = transfer_get(transfer.reply_request_id) if transfer.reply_request_id else None
    return reply is not None and status_at(reply, now) == READY
