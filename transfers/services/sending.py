"""The sender's side: create a transfer, release it to its recipients, revoke, extend, resend a link."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from django.conf import settings
from pynamodb.exceptions import UpdateError

from reports.services import local_day
from transfers import mails, policy, storage
from transfers.errors import TransferError
from transfers.models import (
    CLOSED,
    FILE_CANCELLED,
    FILE_PENDING,
    FILE_VERIFIED,
    KIND_REQUEST,
    KIND_SEND,
    PENDING,
    READY,
    REVOKED,
    UPLOAD_MULTIPART,
    UPLOAD_POST,
    File,
    OneTimeCode,
    Recipient,
    Transfer,
    TransferSearchTerm,
)
from transfers.policy import FileDeclared
from transfers.services.common import (
    audit,
    conditional_failed,
    mail_and_audit,
    new_id,
    new_token,
    owned_transfer,
    recipient_ref,
    request_limits,
    status_at,
    sweep_shard,
    token_hash,
    transfer_get,
    utc,
    valid_id,
)


class SenderIdentity(Protocol):
    """What a transfer needs to know about its sender (accounts.User has these)."""

    id: str
    email: str
    display_name: str


@dataclass(frozen=True)
class FileCreated:
    file_id: str
    name: str
    size: int
    key: str
    upload_mode: str  # "post" or "multipart"


@dataclass(frozen=True)
class TransferCreated:
    transfer_id: str
    expires_at: datetime
    recipients: tuple[str, ...]
    files: tuple[FileCreated, ...]


def metadata_purge_at(expires_at: datetime) -> datetime:
    """Metadata outlives the files: it is the record of who sent what to whom, kept as long as the audit trail."""
    return expires_at + timedelta(days=settings.FXFER_AUDIT_RETENTION_DAYS)


def file_item(*, parent_id: str, declared: FileDeclared, now: datetime, purge_at: datetime, **extra) -> File:
    """A new file record for a checked declaration: its own id, a key the server makes (never from the name),
    and how it will be uploaded. `extra`: the parent kind and uploader of a request's file."""
    file_id = new_id()
    return File(
        parent_id=parent_id,
        file_id=file_id,
        s3_key=storage.file_key(parent_id=parent_id, file_id=file_id),
        name=declared.name,
        content_type=declared.content_type,
        declared_size=declared.size,
        declared_sha256=declared.sha256,
        upload_mode=UPLOAD_MULTIPART if policy.uses_multipart(declared.size) else UPLOAD_POST,
        created_at=now,
        purge_at=purge_at,
        **extra,
    )


def owner_fields(sender: SenderIdentity, now: datetime) -> dict:
    """Who made a transfer or request, and when. Snapshots: mails and pages show the sender even if the IdP
    changes later."""
    return {
        "owner_id": str(sender.id),
        "owner_email": sender.email,
        "owner_name": getattr(sender, "display_name", "") or "",
        "created_at": now,
        "created_day": local_day(now).isoformat(),
    }


def save_all(*groups: tuple[type, list]) -> None:
    """Write each (model, items) group in batches: a transfer's (or request's) children, before the parent."""
    for model, items in groups:
        with model.batch_write() as batch:
            for item in items:
                batch.save(item)


def search_sort_key(*, created_at: datetime, transfer_id: str) -> str:
    """The range key of a transfer's search-term items: date ranges are key conditions."""
    return f"{created_at.isoformat()}#{transfer_id}"


def search_terms(*, sender_email: str, recipients: list[str], file_names: list[str]) -> set[str]:
    """The terms compliance search finds a transfer by (issue 7), all casefolded."""
    terms = {f"sender:{sender_email.casefold()}"}
    for address in recipients:
        terms.add(f"recipient:{address.casefold()}")
        terms.add(f"domain:{address.rpartition('@')[2].casefold()}")
    terms.update(f"file:{name.casefold()}" for name in file_names)
    return terms


def transfer_create(
    *,
    sender: SenderIdentity,
    recipients: list[str],
    files: list[FileDeclared],
    subject: str = "",
    message: str = "",
    expires_in: timedelta | None = None,
    download_limit: int = 3,
    notify_on_download: bool = True,
    allow_replies: bool = False,
    ip: str | None = None,
    user_agent: str | None = None,
    now: datetime | None = None,
) -> TransferCreated:
    """Check the whole request against policy, then record the transfer (pending) with its files and
    recipients. Nothing is uploaded yet; each file then asks upload_authorize for its own upload.
    `allow_replies`: its recipients may send files back, through an upload request tied to the transfer."""
    now = utc(now)
    addresses = policy.recipients_checked(recipients)
    declared = policy.files_checked(files)
    expires_in = policy.expiry_checked(expires_in or timedelta(days=settings.FXFER_DEFAULT_EXPIRY_DAYS))
    download_limit = policy.download_limit_checked(download_limit)
    subject = policy.subject_checked(subject)
    message = policy.message_checked(message)
    if not sender.email:
        raise TransferError("invalid", "The sender has no e-mail address.")

    transfer_id = new_id()
    purge_at = metadata_purge_at(now + timedelta(days=settings.FXFER_MAX_RETENTION_DAYS))
    file_items = [file_item(parent_id=transfer_id, declared=item, now=now, purge_at=purge_at) for item in declared]
    recipient_items = [
        Recipient(parent_id=transfer_id, recipient_id=new_id(), email=address, purge_at=purge_at)
        for address in addresses
    ]
    reply_request_id = None
    if allow_replies:
        from transfers.services.requests import reply_request_create  # it builds on this module

        reply_request_id = reply_request_create(
            sender=sender,
            transfer_id=transfer_id,
            subject=subject,
            recipients=[(r.recipient_id, r.email) for r in recipient_items],
            closes_at=now + expires_in,
            ip=ip,
            user_agent=user_agent,
            now=now,
        )
    sort_key = search_sort_key(created_at=now, transfer_id=transfer_id)
    term_items = [
        TransferSearchTerm(term=term, sort_key=sort_key, transfer_id=transfer_id, created_at=now, purge_at=purge_at)
        for term in search_terms(sender_email=sender.email, recipients=addresses, file_names=[f.name for f in declared])
    ]
    # Children first, the transfer last: until the transfer item exists nothing can reach them, so a crash
    # in between leaves only unreachable items that their TTL removes.
    save_all((File, file_items), (Recipient, recipient_items), (TransferSearchTerm, term_items))
    transfer = Transfer(
        transfer_id=transfer_id,
        **owner_fields(sender, now),
        subject=subject,
        message=message,
        status=PENDING,
        expires_at=now + expires_in,
        download_limit=download_limit,
        notify_on_download=bool(notify_on_download),
        file_count=len(file_items),
        total_bytes=sum(f.declared_size for f in file_items),
        recipient_emails=",".join(addresses),
        purge_at=purge_at,
        # Both sweep indexes list it until its files are deleted (due) or it is released (pending).
        due_shard=sweep_shard(transfer_id),
        pending_shard=sweep_shard(transfer_id),
        kind=KIND_SEND,
        reply_request_id=reply_request_id,
    )
    transfer.save(condition=Transfer.transfer_id.does_not_exist())
    audit(
        "transfer.created",
        actor=f"user:{sender.id}",
        transfer_id=transfer_id,
        now=now,
        ip=ip,
        user_agent=user_agent,
        recipients=addresses,
        files=[{"file_id": f.file_id, "name": f.name, "size": f.declared_size} for f in file_items],
        total_bytes=transfer.total_bytes,
        expires_at=transfer.expires_at.isoformat(),
        download_limit=download_limit,
        reply_request_id=reply_request_id,
    )
    return TransferCreated(
        transfer_id=transfer_id,
        expires_at=transfer.expires_at,
        recipients=tuple(addresses),
        files=tuple(
            FileCreated(file_id=f.file_id, name=f.name, size=f.declared_size, key=f.s3_key, upload_mode=f.upload_mode)
            for f in file_items
        ),
    )


@dataclass(frozen=True)
class TransferReleased:
    transfer_id: str
    released: bool  # False: it was released before (or cannot be): nothing was sent this time
    mails_sent: int


def transfer_release(*, transfer_id: str, now: datetime | None = None) -> TransferReleased:
    """Once every file is verified: mark the transfer ready and mail each recipient their own new link.
    Idempotent: the conditional status change lets exactly one caller send the mails."""
    now = utc(now)
    transfer = transfer_get(transfer_id)
    if transfer is None:
        raise TransferError("not_found")
    files = [f for f in File.query(transfer_id, consistent_read=True) if f.state != FILE_CANCELLED]
    if transfer.status != PENDING or not files or any(f.state != FILE_VERIFIED for f in files):
        return TransferReleased(transfer_id=transfer_id, released=False, mails_sent=0)
    try:
        transfer.update(
            actions=[Transfer.status.set(READY), Transfer.released_at.set(now), Transfer.pending_shard.remove()],
            # Not while its deletion runs (an abandoned upload's, or the sender's "delete now").
            condition=(Transfer.status == PENDING)
            & (Transfer.expires_at > now)
            & Transfer.deletion_claimed_at.does_not_exist()
            & Transfer.deleted_at.does_not_exist(),
        )
    except UpdateError as exc:
        if conditional_failed(exc):
            return TransferReleased(transfer_id=transfer_id, released=False, mails_sent=0)
        raise
    audit("transfer.released", actor="system", transfer_id=transfer_id, now=now, file_count=len(files))
    sent = 0
    for recipient in Recipient.query(transfer_id, consistent_read=True):
        sent += send_link(transfer=transfer, recipient=recipient, files=files, now=now)
    return TransferReleased(transfer_id=transfer_id, released=True, mails_sent=sent)


def send_link(*, transfer: Transfer, recipient: Recipient, files: list[File], now: datetime) -> int:
    """Give the recipient (of a transfer or a request) a new link token (only its hash is kept; the old link
    dies) and mail it."""
    token = new_token()
    recipient.update(
        actions=[
            Recipient.token_hash.set(token_hash(token)),
            Recipient.link_sent_at.set(now),
            Recipient.failed_code_attempts.set(0),
            Recipient.locked.set(False),
            Recipient.locked_at.remove(),
        ]
    )
    # A code sent for the old link must not open the new one.
    OneTimeCode(recipient_ref=recipient_ref(transfer.transfer_id, recipient.recipient_id)).delete()
    link = f"{settings.FXFER_BASE_URL}/t/{token}"
    who = {
        "to": recipient.email,
        "link": link,
        "sender_name": transfer.owner_name,
        "sender_email": transfer.owner_email,
    }
    what = {"subject": transfer.subject, "message": transfer.message}

    def send() -> mails.Draft:
        if transfer.kind == KIND_REQUEST:
            limits = policy.limits_text(request_limits(transfer))
            return mails.request_mail(**who, **what, closes_at=transfer.closes_at, limits=limits)
        else:
            listed = [(f.name, int(f.declared_size)) for f in files]
            return mails.link_mail(**who, **what, files=listed, expires_at=transfer.expires_at)

    sent = mail_and_audit(
        send,
        kind="request_link" if transfer.kind == KIND_REQUEST else "link",
        to=recipient.email,
        transfer_id=transfer.transfer_id,
        now=now,
        recipient_id=recipient.recipient_id,
    )
    return int(sent)


@dataclass(frozen=True)
class TransferRevoked:
    transfer_id: str
    revoked_at: datetime


def transfer_revoke(
    *, owner_id: str, transfer_id: str, ip: str | None = None, now: datetime | None = None
) -> TransferRevoked:
    """The sender stops the transfer at once (see revoke)."""
    transfer = owned_transfer(owner_id=owner_id, transfer_id=transfer_id, kind=KIND_SEND)
    return revoke(transfer=transfer, actor=f"user:{owner_id}", now=utc(now), ip=ip)


def revoke(
    *, transfer: Transfer, actor: str, now: datetime, ip: str | None = None, user_agent: str | None = None, **details
) -> TransferRevoked:
    """Stop `transfer` for `actor` (its sender, or a compliance officer with `details` such as the reason): every
    link, code and guest session of it stops working on its next use. Unfinished multipart uploads are aborted;
    the expiry sweep deletes the stored files."""
    try:
        transfer.update(
            actions=[Transfer.status.set(REVOKED), Transfer.revoked_at.set(now)],
            condition=Transfer.status.is_in(PENDING, READY, CLOSED),
        )
    except UpdateError as exc:
        if conditional_failed(exc):
            raise TransferError("state_conflict") from None
        raise
    for file in File.query(transfer.transfer_id, consistent_read=True):
        if file.state == FILE_PENDING and file.multipart_upload_id:
            storage.multipart_abort(key=file.s3_key, upload_id=file.multipart_upload_id)
    ids = {"transfer_id": transfer.transfer_id, "now": now, "ip": ip, "user_agent": user_agent}
    audit("transfer.revoked", actor=actor, **ids, **details)
    return TransferRevoked(transfer_id=transfer.transfer_id, revoked_at=now)


@dataclass(frozen=True)
class TransferExtended:
    transfer_id: str
    expires_at: datetime


def transfer_extend(
    *, owner_id: str, transfer_id: str, expires_at: datetime, ip: str | None = None, now: datetime | None = None
) -> TransferExtended:
    """The sender moves the expiry later (see extend)."""
    transfer = owned_transfer(owner_id=owner_id, transfer_id=transfer_id, kind=KIND_SEND)
    return extend(transfer=transfer, actor=f"user:{owner_id}", expires_at=expires_at, now=utc(now), ip=ip)


def latest_expiry(transfer: Transfer) -> datetime:
    """The latest a transfer may be kept: FXFER_MAX_EXPIRY_DAYS after it was created. A request's received
    files: FXFER_MAX_RETENTION_DAYS after it was created (never past the S3 lifecycle backstop)."""
    if transfer.kind == KIND_REQUEST:
        return transfer.created_at + timedelta(days=settings.FXFER_MAX_RETENTION_DAYS)
    return transfer.created_at + policy.max_expiry()


def _extendable(transfer: Transfer) -> tuple[str, ...]:
    # A request keeps what it received after it closes: that time may be extended too.
    return (PENDING, READY, CLOSED) if transfer.kind == KIND_REQUEST else (PENDING, READY)


def extend(
    *,
    transfer: Transfer,
    actor: str,
    expires_at: datetime,
    now: datetime,
    ip: str | None = None,
    user_agent: str | None = None,
    **details,
) -> TransferExtended:
    """Move the expiry of a pending or ready `transfer` (an open or closed request: when its received files are
    deleted) later, at most to latest_expiry(), for `actor`. "state_conflict" when it is in another state (or
    changed meanwhile), "expiry_invalid" otherwise."""
    if status_at(transfer, now) not in _extendable(transfer):
        raise TransferError("state_conflict")
    if expires_at.tzinfo is None or not transfer.expires_at < expires_at <= latest_expiry(transfer):
        raise TransferError("expiry_invalid")
    previous = transfer.expires_at
    try:
        transfer.update(
            actions=[Transfer.expires_at.set(expires_at)],
            condition=Transfer.status.is_in(*_extendable(transfer)) & (Transfer.expires_at == previous),
        )
    except UpdateError as exc:
        if conditional_failed(exc):
            raise TransferError("state_conflict") from None
        raise
    audit(
        "transfer.extended",
        actor=actor,
        transfer_id=transfer.transfer_id,
        now=now,
        ip=ip,
        user_agent=user_agent,
        expires_at=expires_at.isoformat(),
        previous_expires_at=previous.isoformat(),
        **details,
    )
    if transfer.reply_request_id:
        _reply_window_follow(transfer.reply_request_id, closes_at=expires_at)
    return TransferExtended(transfer_id=transfer.transfer_id, expires_at=expires_at)


def _reply_window_follow(request_id: str, *, closes_at: datetime) -> None:
    """Replies stay open as long as the transfer is available: its reply request closes (and keeps what it
    received) later too, unless it was closed or ended meanwhile."""
    reply = transfer_get(request_id)
    if reply is None or reply.keep_days is None:
        return
    try:
        reply.update(
            actions=[
                Transfer.closes_at.set(closes_at),
                Transfer.expires_at.set(
                    min(
                        closes_at + timedelta(days=int(reply.keep_days)),
                        reply.created_at + timedelta(days=settings.FXFER_MAX_RETENTION_DAYS),
                    )
                ),
            ],
            condition=(Transfer.status == READY)
            & (Transfer.closes_at < closes_at)
            & Transfer.deleted_at.does_not_exist(),
        )
    except UpdateError as exc:
        if not conditional_failed(exc):
            raise


@dataclass(frozen=True)
class LinkResent:
    transfer_id: str
    recipient_id: str
    email: str


def recipient_resend(
    *,
    owner_id: str,
    transfer_id: str,
    recipient_id: str,
    kind: str | None = None,
    ip: str | None = None,
    now: datetime | None = None,
) -> LinkResent:
    """Mail the recipient a new link. The old link, its codes and its guest sessions die; a lock is lifted
    (the sender vouches for the recipient by resending)."""
    now = utc(now)
    transfer = owned_transfer(owner_id=owner_id, transfer_id=transfer_id, kind=kind)
    if status_at(transfer, now) != READY or transfer.reply_to:
        raise TransferError("state_conflict")  # a reply request's guests come in through the transfer's link
    if not valid_id(recipient_id):
        raise TransferError("not_found")
    try:
        recipient = Recipient.get(transfer_id, recipient_id, consistent_read=True)
    except Recipient.DoesNotExist:
        raise TransferError("not_found") from None
    files = [f for f in File.query(transfer_id, consistent_read=True) if f.state == FILE_VERIFIED]
    audit(
        "link.resent",
        actor=f"user:{owner_id}",
        transfer_id=transfer_id,
        now=now,
        ip=ip,
        recipient_id=recipient_id,
        was_locked=bool(recipient.locked),
    )
    if not send_link(transfer=transfer, recipient=recipient, files=files, now=now):
        raise TransferError("invalid", "The mail could not be sent. Try again later.")
    return LinkResent(transfer_id=transfer_id, recipient_id=recipient_id, email=recipient.email)
