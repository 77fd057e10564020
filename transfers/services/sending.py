"""The sender's side: create a transfer, release it to its recipients, revoke, extend, resend a link.

Every state change here commits with its audit event (and the mails it causes, as outbox items) in one
transaction (fxfer.change.Change, STYLE shape 7). A call that failed after its commit took effect (a lost
answer that outlasted botocore's retries) recognises its own effect by its audit event, whose id derives from the
operation, and finishes the rest; side effects (aborting multipart uploads, sending mails) run after the commit
and are safe to repeat. What a service returns about mails is what SES did: accepted now, still pending (the
outbox retries it), or failed with its reason.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.utils import translation
from pynamodb.exceptions import PynamoDBException, UpdateError

from fxfer import i18n
from fxfer.change import Change, ChangeRefused
from reports.services import local_day
from transfers import mails, policy, storage
from transfers.errors import TransferError
from transfers.models import (
    CLOSED,
    FILE_CANCELLED,
    FILE_PENDING,
    FILE_VERIFIED,
    GATE_APPROVAL,
    KIND_REQUEST,
    KIND_SEND,
    MAIL_FAILED,
    MAIL_PENDING,
    MAIL_SENT,
    PENDING,
    READY,
    REVOKED,
    UPLOAD_MULTIPART,
    UPLOAD_POST,
    File,
    OutboxMail,
    Recipient,
    Transfer,
    TransferSearchTerm,
)
from transfers.outbox import PLACEHOLDER, MailSent, link_token, new_nonce, outbox_send
from transfers.policy import FileDeclared
from transfers.services import missend, quota
from transfers.services.approvals import approval_fields, approval_plan, approval_recorded, approval_request
from transfers.services.common import (
    conditional_failed,
    new_id,
    owned_transfer,
    request_limits,
    status_at,
    sweep_shard,
    token_hash,
    transfer_get,
    unavailable_when_aws_fails,
    utc,
    valid_id,
)
from transfers.services.gate import gate_word, release_blockers

logger = logging.getLogger(__name__)


# What AWS failing looks like through boto3 and PynamoDB once their retries are spent.
@dataclass(frozen=True)
class MailOutcome:
    """What happened to one mail right after its change committed."""

    mail_key: str
    to: str
    status: str  # "sent" (SES accepted it), "pending" (the outbox retries it), "failed" (given up: `error`)
    error: str | None = None

    @property
    def sent(self) -> bool:
        return self.status == MAIL_SENT


def send_now(mails_to: dict[str, str], *, now: datetime | None = None) -> tuple[MailOutcome, ...]:
    """Send committed outbox mails (key → address) once now; what fails stays in the outbox for its retry job."""
    outcomes = []
    for key, to in mails_to.items():
        try:
            result = outbox_send(mail_key=key, now=now)
        except Exception as exc:  # committed, so not lost: the retry job sends it
            logger.exception("transfers.mail_send_failed", extra={"mail_kind": key.split(":", 1)[0]})
            result = MailSent(mail_key=key, sent=False, status=MAIL_PENDING, error=type(exc).__name__)
        status = result.status if result.status in {MAIL_SENT, MAIL_FAILED} else MAIL_PENDING
        if result.sent and status != MAIL_FAILED:
            status = MAIL_SENT
        outcomes.append(MailOutcome(mail_key=key, to=to, status=status, error=result.error))
    return tuple(outcomes)


def commit_recognised(change: Change) -> tuple[MailOutcome, ...]:
    """Commit `change` (an earlier commit of the same operation counts as this one: Change.commit), then send
    its mails once with the service's own clock; what fails stays in the outbox for the retry job."""
    change.commit(send_mails=False)
    return send_now({item.mail_key: item.to for item in change.mail_items}, now=change.now)


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
    # How it goes up, given with the answer that declared it (see files_created): a small file's POST policy, a
    # large one's multipart upload (and its part size). None: the uploader asks upload_authorize.
    post: storage.PresignedPost | None = field(default=None, compare=False)  # not the file's identity
    upload_id: str | None = field(default=None, compare=False)
    part_size: int | None = field(default=None, compare=False)
    part_count: int | None = field(default=None, compare=False)


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


def upload_post(file: File, *, until: datetime | None, now: datetime) -> storage.PresignedPost:
    """The POST policy of a file that goes up in one request: its key, its exact declared size and SHA-256,
    valid a short while (never past `until`, when a request closes)."""
    return storage.presigned_post(
        key=file.s3_key, size=int(file.declared_size), sha256=file.declared_sha256, now=now, until=until
    )


# Multipart uploads files_created starts itself, at most: each is two AWS calls, one after another, in the answer
# to Send; the uploader asks upload_authorize for the rest, all at once.
FIRST_MULTIPART_UPLOADS = 3


def files_created(items: list[File], *, until: datetime | None, now: datetime) -> tuple[FileCreated, ...]:
    """The committed files, each with how it goes up: a small file's POST policy, a large file's multipart upload
    (the first FIRST_MULTIPART_UPLOADS). The uploader then moves bytes at once instead of first asking
    upload_authorize for each file (one round trip fewer per Send: most of a small file's time). After the commit
    and best effort: if AWS fails here, a file goes without one and the uploader asks upload_authorize for it, as
    when it resumes (which finds an upload started here, or starts one). Telling "failed" now would be untrue."""
    created = []
    multipart = 0
    for item in items:
        post = upload_id = None
        try:
            if item.upload_mode == UPLOAD_POST:
                post = upload_post(item, until=until, now=now)
            elif multipart < FIRST_MULTIPART_UPLOADS:
                multipart += 1
                upload_id = multipart_start(item)
        except (ClientError, BotoCoreError, PynamoDBException, RuntimeError, TransferError) as exc:
            logger.warning("transfers.first_upload_unavailable", extra={"file_id": item.file_id, "error": repr(exc)})
        created.append(
            FileCreated(
                file_id=item.file_id,
                name=item.name,
                size=int(item.declared_size),
                key=item.s3_key,
                upload_mode=item.upload_mode,
                post=post,
                upload_id=upload_id,
                part_size=int(item.part_size) if upload_id else None,
                part_count=int(item.part_count) if upload_id else None,
            )
        )
    return tuple(created)


def multipart_start(file: File) -> str:
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
                File.multipart_checksum.set(storage.MULTIPART_CHECKSUM),
                File.declared_crc64nvme.remove(),
            ],
            condition=condition & (File.state == FILE_PENDING),
        )
    except UpdateError as exc:
        if not conditional_failed(exc):
            storage.multipart_abort(key=file.s3_key, upload_id=upload_id)
            raise
        file.refresh(consistent_read=True)
        if file.multipart_upload_id == upload_id:
            return upload_id  # our own write, whose answer was lost: the retry met it
        storage.multipart_abort(key=file.s3_key, upload_id=upload_id)
        if file.state != FILE_PENDING or not file.multipart_upload_id:
            raise TransferError("state_conflict") from None
        return file.multipart_upload_id
    return upload_id


def owner_fields(sender: SenderIdentity, now: datetime) -> dict:
    """Who made a transfer or request, and when. Snapshots: mails and pages show the sender even if the IdP
    changes later."""
    return {
        "owner_id": str(sender.id),
        "owner_email": sender.email,
        "owner_name": getattr(sender, "display_name", "") or "",
        "owner_language": i18n.page_language(),
        "created_at": now,
        "created_day": local_day(now).isoformat(),
        "created_month": local_day(now).strftime("%Y-%m"),
    }


def save_all(*groups: tuple[type, list]) -> None:
    """Write each (model, items) group in batches: a transfer's (or request's) children, before the parent."""
    for model, items in groups:
        with model.batch_write() as batch:
            for item in items:
                batch.save(item)


def delete_all(*groups: tuple[type, list]) -> None:
    """Remove children written for a parent that was refused (best effort: unreachable, their TTL removes them)."""
    try:
        for model, items in groups:
            with model.batch_write() as batch:
                for item in items:
                    batch.delete(item)
    except (PynamoDBException, BotoCoreError, ClientError):
        logger.warning("transfers.children_cleanup_failed", exc_info=True)


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


@unavailable_when_aws_fails
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
    reply_limits: policy.RequestLimits | None = None,
    mail_language: str | None = None,
    confirmed_recipients: list[str] | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
    now: datetime | None = None,
) -> TransferCreated:
    """Check the whole request against policy, then record the transfer (pending) with its files and
    recipients. Nothing is uploaded yet; each file then asks upload_authorize for its own upload.
    `allow_replies`: its recipients may send files back, through an upload request tied to the transfer, each
    within `reply_limits` (the sender's choice, checked like a request's; the request defaults when None).
    `mail_language`: the language of every recipient's mails; None: Japanese for .jp addresses, else the site's.
    `confirmed_recipients`: the addresses the sender ticked in the confirmation dialog; they must be exactly the
    recipients the mis-send policy asks to confirm (transfers.services.missend), and the mails wait for its hold.

    The children (files, recipients, search terms; the reply request's guests and terms) are written first:
    nothing reaches them until their parent exists. Then one transaction puts the transfer, its
    "transfer.created" event and, with replies, the reply request and its "request.created" event: a failure
    leaves neither a transfer without its event nor a reply request without its transfer."""
    now = utc(now)
    addresses = policy.recipients_checked(recipients)
    confirmed = missend.confirmation_checked(addresses, confirmed_recipients)
    declared = policy.files_checked(files)
    expires_in = policy.expiry_checked(expires_in or timedelta(days=settings.FXFER_DEFAULT_EXPIRY_DAYS))
    download_limit = policy.download_limit_checked(download_limit)
    subject = policy.subject_checked(subject)
    message = policy.message_checked(message)
    if not sender.email:
        raise TransferError("invalid", "The sender has no e-mail address.")
    if allow_replies:
        from transfers.services.requests import reply_limits_checked  # it builds on this module

        reply_limits = reply_limits_checked(reply_limits)  # refused before anything is written
    # Over the sender's quota: refused before anything is written. The transaction below checks it again.
    charge = quota.charge_for(user_id=str(sender.id), size=sum(item.size for item in declared))
    # Supervisor approval: decided now and recorded on the transfer ("approver_missing" refuses it here).
    approval = approval_plan(sender=sender, recipients=addresses, total_bytes=charge.size, now=now)

    transfer_id = new_id()
    change = Change(op=f"create:{transfer_id}", now=now)
    purge_at = metadata_purge_at(now + timedelta(days=settings.FXFER_MAX_RETENTION_DAYS))
    file_items = [file_item(parent_id=transfer_id, declared=item, now=now, purge_at=purge_at) for item in declared]
    recipient_items = [
        Recipient(
            parent_id=transfer_id,
            recipient_id=new_id(),
            email=address,
            language=i18n.mail_language(mail_language, address),
            purge_at=purge_at,
        )
        for address in addresses
    ]
    sort_key = search_sort_key(created_at=now, transfer_id=transfer_id)
    term_items = [
        TransferSearchTerm(term=term, sort_key=sort_key, transfer_id=transfer_id, created_at=now, purge_at=purge_at)
        for term in search_terms(sender_email=sender.email, recipients=addresses, file_names=[f.name for f in declared])
    ]
    # Children first, the transfer last: until the transfer item exists nothing can reach them, so a crash
    # in between leaves only unreachable items that their TTL removes.
    save_all((File, file_items), (Recipient, recipient_items), (TransferSearchTerm, term_items))
    reply_request_id = None
    if allow_replies:
        from transfers.services.requests import reply_request_create  # it builds on this module

        reply_request_id = reply_request_create(
            sender=sender,
            transfer_id=transfer_id,
            subject=subject,
            recipients=[(r.recipient_id, r.email) for r in recipient_items],
            closes_at=now + expires_in,
            limits=reply_limits,
            mail_language=mail_language,
            change=change,
            ip=ip,
            user_agent=user_agent,
            now=now,
        )
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
        recipient_ids={r.recipient_id for r in recipient_items},
        purge_at=purge_at,
        # Both sweep indexes list it until its files are deleted (due) or it is released (pending).
        due_shard=sweep_shard(transfer_id),
        pending_shard=sweep_shard(transfer_id),
        kind=KIND_SEND,
        reply_request_id=reply_request_id,
        quota_bytes=charge.size,
        **approval_fields(approval),
        **missend.hold_fields(transfer_id, now),
    )
    change.put(transfer, condition=Transfer.transfer_id.does_not_exist())
    charge.add_to(change)
    change.audit(
        "transfer.created",
        actor=f"user:{sender.id}",
        subject=f"transfer:{transfer_id}",
        ip=ip,
        user_agent=user_agent,
        recipients=addresses,
        files=[{"file_id": f.file_id, "name": f.name, "size": f.declared_size} for f in file_items],
        total_bytes=transfer.total_bytes,
        expires_at=transfer.expires_at.isoformat(),
        download_limit=download_limit,
        reply_request_id=reply_request_id,
        approval=approval.state,
        recipients_confirmed=confirmed if missend.confirm_policy() != missend.CONFIRM_OFF else None,
        release_not_before=transfer.release_not_before.isoformat() if transfer.release_not_before else None,
    )
    approval_recorded(change, transfer=transfer, plan=approval, ip=ip)
    try:
        commit_recognised(change)
    except ChangeRefused as refused:
        over = charge.refusal(refused)
        if over is None:
            raise
        # Another create (or a lowered quota) took the room after our check: nothing reaches the children.
        delete_all((File, file_items), (Recipient, recipient_items), (TransferSearchTerm, term_items))
        raise over from None
    return TransferCreated(
        transfer_id=transfer_id,
        expires_at=transfer.expires_at,
        recipients=tuple(addresses),
        files=files_created(file_items, until=None, now=now),
    )


@dataclass(frozen=True)
class TransferReleased:
    transfer_id: str
    released: bool  # this call released it; False: released before (or not releasable yet)
    mails_sent: int = 0  # link mails SES accepted during this call
    mails_pending: int = 0  # committed link mails not accepted yet: the outbox retries them
    mails_failed: int = 0  # link mails given up (the transfer page shows why)
    mails: tuple[MailOutcome, ...] = ()
    blockers: tuple[str, ...] = ()  # what the release gate still waits for (transfers.services.gate)


RELEASE_MAIL = "release"


def link_mail_key(parent_id: str, recipient_id: str, cause: str) -> str:
    """The outbox key of a recipient's link mail: one per release, one per resend."""
    return f"link:{parent_id}:{recipient_id}:{cause}"


def transfer_release(*, transfer_id: str, now: datetime | None = None) -> TransferReleased:
    """Once every file is verified: mark the transfer ready and mail each recipient their own new link.

    One transaction (op "release:<transfer id>") sets the status pending → ready, records "transfer.released",
    gives each recipient their new link's token hash and puts each recipient's link mail in the outbox; then the
    mails are sent. Re-entrant: called again (a second S3 event, the upload's "done", the healing job) after the
    transfer was released, by this caller or another, it sends the committed link mails that are still pending,
    so a verified transfer always reaches its recipients."""
    now = utc(now)
    transfer = transfer_get(transfer_id)
    if transfer is None:
        raise TransferError("not_found")
    if transfer.status == PENDING:
        files = [f for f in File.query(transfer_id, consistent_read=True) if f.state != FILE_CANCELLED]
        if not files or any(f.state != FILE_VERIFIED for f in files):
            return TransferReleased(transfer_id=transfer_id, released=False)
        blockers = release_blockers(transfer, files, now)
        if blockers:
            _blocked(transfer, files, blockers, now)
            return TransferReleased(transfer_id=transfer_id, released=False, blockers=blockers)
        recipients = list(Recipient.query(transfer_id, consistent_read=True))
        change = Change(op=f"release:{transfer_id}", now=now)
        change.update(
            transfer,
            actions=[
                Transfer.status.set(READY),
                Transfer.released_at.set(now),
                Transfer.pending_shard.remove(),
                Transfer.hold_shard.remove(),
            ],
            # Not while its deletion runs (an abandoned upload's, or the sender's "delete now").
            condition=(Transfer.status == PENDING)
            & (Transfer.expires_at > now)
            & Transfer.deletion_claimed_at.does_not_exist()
            & Transfer.deleted_at.does_not_exist(),
            label="transfer",
        )
        change.audit("transfer.released", actor="system", subject=f"transfer:{transfer_id}", file_count=len(files))
        for recipient in recipients:
            nonce = new_nonce()
            # The link only works once the transfer is ready, which this same transaction makes it.
            change.update(
                recipient,
                actions=[Recipient.token_hash.set(token_hash(link_token(nonce)))],
                condition=Recipient.recipient_id.exists(),
            )
            add_link_mail(
                change,
                transfer=transfer,
                recipient=recipient,
                files=files,
                key=link_mail_key(transfer_id, recipient.recipient_id, RELEASE_MAIL),
                nonce=nonce,
            )
        try:
            outcomes = commit_recognised(change)
        except ChangeRefused as exc:
            if exc.failed("transfer") is None:
                raise
            # Released (or being deleted) by someone else meanwhile: make sure its mails go, below.
            transfer = transfer_get(transfer_id)
        else:
            return _released(transfer_id, released=True, outcomes=outcomes)
    if transfer is None or transfer.status != READY or status_at(transfer, now) != READY:
        return TransferReleased(transfer_id=transfer_id, released=False)
    return _released(transfer_id, released=False, outcomes=release_mails_finish(transfer_id, now=now))


def _blocked(transfer: Transfer, files: list[File], blockers: tuple[str, ...], now: datetime) -> None:
    """The release's blocked path, files all verified: ask the approvers when approval is the first thing the
    gate waits for (approval_request: once), else keep Transfer.gate saying what it waits for. The gate word is
    what the pages show, not a state: a failed write of it is logged and the next call (a verdict, the hold's
    end, the hourly healer) writes it again."""
    if blockers[0] == GATE_APPROVAL and approval_request(transfer, files, now):
        return
    word = gate_word(blockers, files, now)
    if word == transfer.gate:
        return
    try:
        transfer.update(actions=[Transfer.gate.set(word)], condition=Transfer.status == PENDING)
    except Exception:
        logger.warning("release.gate_not_written", extra={"transfer_id": transfer.transfer_id}, exc_info=True)


def release_mails_finish(transfer_id: str, *, now: datetime | None = None) -> tuple[MailOutcome, ...]:
    """Send a released transfer's link mails that are still pending (the outbox's retry job does the same on
    its schedule). Mails already accepted or given up are left alone."""
    pending = {}
    for recipient in Recipient.query(transfer_id, consistent_read=True):
        key = link_mail_key(transfer_id, recipient.recipient_id, RELEASE_MAIL)
        try:
            mail = OutboxMail.get(key, consistent_read=True)
        except OutboxMail.DoesNotExist:
            continue
        if mail.status == MAIL_PENDING:
            pending[key] = mail.to
    return send_now(pending, now=now)


def _released(transfer_id: str, *, released: bool, outcomes: tuple[MailOutcome, ...]) -> TransferReleased:
    return TransferReleased(
        transfer_id=transfer_id,
        released=released,
        mails_sent=sum(o.status == MAIL_SENT for o in outcomes),
        mails_pending=sum(o.status == MAIL_PENDING for o in outcomes),
        mails_failed=sum(o.status == MAIL_FAILED for o in outcomes),
        mails=outcomes,
    )


def add_link_mail(
    change: Change,
    *,
    transfer: Transfer,
    recipient: Recipient,
    files: list[File],
    key: str,
    nonce: str,
    activates_token_hash: str | None = None,
) -> str:
    """Add the recipient's (of a transfer or a request) link mail to `change`. The link is derived from `nonce`
    when the mail is sent; only its hash is ever stored. `activates_token_hash`: a resent link, which replaces
    the old one only once SES has accepted the mail."""
    who = {
        "to": recipient.email,
        "link": PLACEHOLDER,
        "sender_name": transfer.owner_name,
        "sender_email": transfer.owner_email,
    }
    what = {"subject": transfer.subject, "message": transfer.message}
    # In the recipient's language (the sender's choice), whatever language the sender's page is in.
    with translation.override(i18n.mail_language(recipient.language, recipient.email)):
        if transfer.kind == KIND_REQUEST:
            limits = policy.limits_text(request_limits(transfer))
            draft = mails.request_mail(**who, **what, closes_at=transfer.closes_at, limits=limits)
        else:
            listed = [(f.name, int(f.declared_size)) for f in files]
            draft = mails.link_mail(**who, **what, files=listed, expires_at=transfer.expires_at)
    return change.mail(
        key=key,
        kind="request_link" if transfer.kind == KIND_REQUEST else "link",
        parent_id=transfer.transfer_id,
        recipient_id=recipient.recipient_id,
        derive="link",
        nonce=nonce,
        activates_token_hash=activates_token_hash,
        **draft.fields(),
    )


@dataclass(frozen=True)
class TransferRevoked:
    transfer_id: str
    revoked_at: datetime


@unavailable_when_aws_fails
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
    link, code and guest session of it stops working on its next use. The status and its "transfer.revoked"
    event commit together; then unfinished multipart uploads are aborted (a failure there is logged, and the
    expiry sweep deletes what is stored either way)."""
    change = Change(op=f"revoke:{transfer.transfer_id}:{new_id()}", now=now)
    change.update(
        transfer,
        actions=[Transfer.status.set(REVOKED), Transfer.revoked_at.set(now)],
        condition=Transfer.status.is_in(PENDING, READY, CLOSED),
        label="transfer",
    )
    change.audit(
        "transfer.revoked",
        actor=actor,
        subject=f"transfer:{transfer.transfer_id}",
        ip=ip,
        user_agent=user_agent,
        **details,
    )
    try:
        commit_recognised(change)
    except ChangeRefused as exc:
        if exc.failed("transfer") is not None:
            raise TransferError("state_conflict") from None
        raise
    abort_unfinished_uploads(transfer.transfer_id)
    return TransferRevoked(transfer_id=transfer.transfer_id, revoked_at=now)


def abort_unfinished_uploads(parent_id: str) -> int:
    """After a transfer or request stopped: abort its unfinished multipart uploads, so no part is kept. Safe to
    repeat; a failure is logged, not raised (the change it follows has committed, and the bucket's lifecycle
    rule aborts what is left)."""
    aborted = 0
    try:
        for file in File.query(parent_id, consistent_read=True):
            if file.state == FILE_PENDING and file.multipart_upload_id:
                storage.multipart_abort(key=file.s3_key, upload_id=file.multipart_upload_id)
                aborted += 1
    except (PynamoDBException, BotoCoreError, ClientError):
        logger.warning("transfers.multipart_abort_failed", exc_info=True)
    return aborted


@dataclass(frozen=True)
class TransferExtended:
    transfer_id: str
    expires_at: datetime


@unavailable_when_aws_fails
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
    changed meanwhile), "expiry_invalid" otherwise. A transfer's open reply request follows it in the same
    transaction, with its own event."""
    if status_at(transfer, now) not in _extendable(transfer):
        raise TransferError("state_conflict")
    if expires_at.tzinfo is None or not transfer.expires_at < expires_at <= latest_expiry(transfer):
        raise TransferError("expiry_invalid")
    previous = transfer.expires_at
    reply = transfer_get(transfer.reply_request_id) if transfer.reply_request_id else None
    op = f"extend:{transfer.transfer_id}:{new_id()}"
    follow = reply is not None and _reply_follows(reply, closes_at=expires_at)
    while True:
        change = Change(op=op + (":reply" if follow else ""), now=now)
        change.update(
            transfer,
            actions=[Transfer.expires_at.set(expires_at)],
            condition=Transfer.status.is_in(*_extendable(transfer)) & (Transfer.expires_at == previous),
            label="transfer",
        )
        change.audit(
            "transfer.extended",
            actor=actor,
            subject=f"transfer:{transfer.transfer_id}",
            ip=ip,
            user_agent=user_agent,
            expires_at=expires_at.isoformat(),
            previous_expires_at=previous.isoformat(),
            **details,
        )
        if follow:
            _reply_window_follow(change, reply, closes_at=expires_at, actor=actor)
        try:
            commit_recognised(change)
        except ChangeRefused as exc:
            if exc.failed("transfer") is not None:
                raise TransferError("state_conflict") from None
            if follow and exc.failed("reply") is not None:
                follow = False  # the reply request closed or ended meanwhile: extend the transfer alone
                continue
            raise
        return TransferExtended(transfer_id=transfer.transfer_id, expires_at=expires_at)


def _reply_follows(reply: Transfer, *, closes_at: datetime) -> bool:
    return (
        reply.keep_days is not None
        and reply.status == READY
        and reply.closes_at is not None
        and reply.closes_at < closes_at
        and not reply.deleted_at
    )


def _reply_window_follow(change: Change, reply: Transfer, *, closes_at: datetime, actor: str) -> None:
    """Replies stay open as long as the transfer is available: its reply request closes (and keeps what it
    received) later too, unless it was closed or ended meanwhile (the condition; the caller then extends the
    transfer alone)."""
    reply_expires_at = min(
        closes_at + timedelta(days=int(reply.keep_days)),
        reply.created_at + timedelta(days=settings.FXFER_MAX_RETENTION_DAYS),
    )
    change.update(
        reply,
        actions=[Transfer.closes_at.set(closes_at), Transfer.expires_at.set(reply_expires_at)],
        condition=(Transfer.status == READY) & (Transfer.closes_at < closes_at) & Transfer.deleted_at.does_not_exist(),
        label="reply",
    )
    change.audit(
        "request.extended",
        actor=actor,
        subject=f"transfer:{reply.transfer_id}",
        closes_at=closes_at.isoformat(),
        expires_at=reply_expires_at.isoformat(),
        previous_closes_at=reply.closes_at.isoformat(),
        reason="follows_transfer",
    )


@dataclass(frozen=True)
class LinkResent:
    transfer_id: str
    recipient_id: str
    email: str
    status: str = MAIL_SENT  # "sent" (the new link works now), "pending" (retrying), "failed" (see `error`)
    error: str | None = None

    @property
    def mailed(self) -> bool:
        return self.status == MAIL_SENT


@unavailable_when_aws_fails
def recipient_resend(
    *,
    owner_id: str,
    transfer_id: str,
    recipient_id: str,
    kind: str | None = None,
    ip: str | None = None,
    now: datetime | None = None,
) -> LinkResent:
    """Mail the recipient a new link. Until SES accepts that mail the old link keeps working; once it has, the
    old link, its codes and its guest sessions die and a lock is lifted (the sender vouches for the recipient by
    resending) — the outbox swaps the token hash when it records the mail as sent. The event and the mail
    commit together; the result says whether the mail went, is being retried, or failed and why."""
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
    nonce = new_nonce()
    change = Change(op=f"resend:{transfer_id}:{recipient_id}:{nonce}", now=now)
    change.check(transfer, condition=Transfer.status == READY, label="transfer")
    change.audit(
        "link.resent",
        actor=f"user:{owner_id}",
        subject=f"transfer:{transfer_id}",
        ip=ip,
        recipient_id=recipient_id,
        was_locked=bool(recipient.locked),
    )
    add_link_mail(
        change,
        transfer=transfer,
        recipient=recipient,
        files=files,
        key=link_mail_key(transfer_id, recipient_id, f"resend:{nonce}"),
        nonce=nonce,
        activates_token_hash=token_hash(link_token(nonce)),
    )
    try:
        [outcome] = commit_recognised(change)
    except ChangeRefused as exc:
        if exc.failed("transfer") is not None:
            raise TransferError("state_conflict") from None
        raise
    return LinkResent(
        transfer_id=transfer_id,
        recipient_id=recipient_id,
        email=recipient.email,
        status=outcome.status,
        error=outcome.error,
    )
