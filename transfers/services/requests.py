"""Upload requests: an employee asks outside people for files.

A request is an item of the transfers table with `kind = "request"`, so expiry, the sweep, delete-now, legal
hold, search and the compliance pages work on it as on a transfer. Each guest gets their own link (the same
256-bit tokens, one-time codes and grants as a transfer's recipients, transfers.services.guests); with a grant
they declare files here, within the request's limits, and upload them through transfers.services.uploads
(direct to S3, verified by the server) like a sender does. A guest sees only their own files and downloads
nothing; the employee downloads what was verified.

A transfer that allows replies has a request of its own (`reply_to`), whose guests are the transfer's
recipients: they reach it from the transfer's guest page, with the access they proved there.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils.translation import gettext as _

from fxfer import i18n
from fxfer.change import MAX_ITEMS, Change, ChangeRefused
from transfers import mails, policy
from transfers.errors import TransferError
from transfers.models import (
    CLOSED,
    FILE_CANCELLED,
    FILE_VERIFIED,
    KIND_REQUEST,
    PARENT_REQUEST,
    READY,
    File,
    Recipient,
    Transfer,
    TransferSearchTerm,
)
from transfers.outbox import link_token, new_nonce
from transfers.policy import FileDeclared
from transfers.services import scanning
from transfers.services.common import (
    audit,
    file_get,
    new_id,
    new_token,
    owned_transfer,
    rate_limit_refund,
    rate_limited,
    recipient_ref,
    request_limits,
    status_at,
    sweep_shard,
    token_hash,
    transfer_get,
    unavailable_when_aws_fails,
    utc,
)
from transfers.services.guests import AccessGranted, grant_open, guest_access
from transfers.services.sending import (
    RELEASE_MAIL,
    FileCreated,
    MailOutcome,
    SenderIdentity,
    abort_unfinished_uploads,
    add_link_mail,
    commit_recognised,
    file_item,
    files_created,
    link_mail_key,
    metadata_purge_at,
    owner_fields,
    save_all,
    search_sort_key,
    search_terms,
)
from transfers.services.uploads import upload_cancel


def longest_kept(created_at: datetime) -> datetime:
    """The latest a request created then may keep what it receives: FXFER_MAX_RETENTION_DAYS."""
    return created_at + timedelta(days=settings.FXFER_MAX_RETENTION_DAYS)


@dataclass(frozen=True)
class RequestCreated:
    request_id: str
    closes_at: datetime
    expires_at: datetime
    recipients: tuple[str, ...]
    mails: tuple[MailOutcome, ...] = ()  # each guest's link mail: sent, pending (retrying) or failed

    @property
    def mails_sent(self) -> int:
        return sum(m.sent for m in self.mails)


def _request_prepare(
    *,
    change: Change,
    request_id: str,
    sender: SenderIdentity,
    recipients: list[tuple[str, str]],
    subject: str,
    message: str,
    closes_at: datetime,
    keep_days: int,
    limits: policy.RequestLimits,
    reply_to: str | None,
    mail_language: str | None = None,
    ip: str | None,
    user_agent: str | None,
    now: datetime,
    token_hashes: dict[str, str] | None = None,
) -> Transfer:
    """Write an open request's guests and search terms (nothing reaches them until the request exists) and add
    the request and its "request.created" event to `change`. `token_hashes`: each guest's first link."""
    # Never past the longest any object may stay (the S3 lifecycle backstop counts from the upload, which is
    # after this): the "kept until" the employee is shown always holds.
    expires_at = min(closes_at + timedelta(days=keep_days), longest_kept(now))
    purge_at = metadata_purge_at(expires_at)
    addresses = [email for _id, email in recipients]
    sort_key = search_sort_key(created_at=now, transfer_id=request_id)
    guests = [
        Recipient(
            parent_id=request_id,
            recipient_id=rid,
            parent_kind=PARENT_REQUEST,
            email=email,
            language=i18n.mail_language(mail_language, email),
            token_hash=(token_hashes or {}).get(rid),
            purge_at=purge_at,
        )
        for rid, email in recipients
    ]
    terms = [
        TransferSearchTerm(
            term=term,
            sort_key=sort_key,
            transfer_id=request_id,
            parent_kind=PARENT_REQUEST,
            created_at=now,
            purge_at=purge_at,
        )
        for term in search_terms(sender_email=sender.email, recipients=addresses, file_names=[])
    ]
    save_all((Recipient, guests), (TransferSearchTerm, terms))
    request = Transfer(
        transfer_id=request_id,
        kind=KIND_REQUEST,
        **owner_fields(sender, now),
        subject=subject,
        message=message,
        status=READY,
        released_at=now,
        closes_at=closes_at,
        expires_at=expires_at,
        keep_days=keep_days,
        download_limit=0,
        notify_on_download=False,
        max_files=limits.max_files,
        max_file_bytes=limits.max_file_bytes,
        max_total_bytes=limits.max_total_bytes,
        allowed_extensions=",".join(limits.allowed_extensions),
        recipient_emails=",".join(addresses),
        recipient_ids={rid for rid, _email in recipients},
        reply_to=reply_to,
        purge_at=purge_at,
        due_shard=sweep_shard(request_id),  # the sweep deletes what was received once it expires
    )
    change.put(request, condition=Transfer.transfer_id.does_not_exist())
    change.audit(
        "request.created",
        actor=f"user:{sender.id}",
        subject=f"transfer:{request_id}",
        ip=ip,
        user_agent=user_agent,
        recipients=addresses,
        closes_at=closes_at.isoformat(),
        expires_at=expires_at.isoformat(),
        keep_days=keep_days,
        max_files=limits.max_files,
        max_file_bytes=limits.max_file_bytes,
        max_total_bytes=limits.max_total_bytes,
        allowed_extensions=list(limits.allowed_extensions) or None,
        reply_to=reply_to,
    )
    return request


@unavailable_when_aws_fails
def request_create(
    *,
    sender: SenderIdentity,
    recipients: list[str],
    subject: str = "",
    message: str = "",
    closes_in: timedelta | None = None,
    keep_days: int | None = None,
    max_files: int | None = None,
    max_file_bytes: int | None = None,
    max_total_bytes: int | None = None,
    allowed_extensions: list[str] = (),
    mail_language: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
    now: datetime | None = None,
) -> RequestCreated:
    """Ask outside people for files: check everything against policy, record the open request and mail each
    guest their own link. Uploads stop at `closes_at` (or when the employee closes it); what was received is
    kept `keep_days` after that, then deleted. The request, its event and every guest's link mail commit
    together; the result says which mails SES accepted and which the outbox is still retrying.
    `mail_language`: the language of every guest's mails; None: Japanese for .jp addresses, else the site's."""
    now = utc(now)
    addresses = policy.recipients_checked(recipients)
    closes_in = policy.expiry_checked(closes_in or timedelta(days=settings.FXFER_DEFAULT_EXPIRY_DAYS))
    keep_days = policy.keep_days_checked(settings.FXFER_REQUEST_KEEP_DAYS if keep_days is None else keep_days)
    if now + closes_in + timedelta(days=keep_days) > longest_kept(now):
        raise TransferError(
            "keep_days_invalid",
            _("Open for uploads and kept afterwards may be %(days)d days at most together.")
            % {"days": settings.FXFER_MAX_RETENTION_DAYS},
        )
    limits = policy.request_limits_checked(
        max_files=settings.FXFER_REQUEST_DEFAULT_MAX_FILES if max_files is None else max_files,
        max_file_bytes=settings.FXFER_MAX_FILE_BYTES if max_file_bytes is None else max_file_bytes,
        max_total_bytes=settings.FXFER_MAX_TRANSFER_BYTES if max_total_bytes is None else max_total_bytes,
        allowed_extensions=list(allowed_extensions),
    )
    subject = policy.subject_checked(subject)
    message = policy.message_checked(message)
    if not sender.email:
        raise TransferError("invalid", "The sender has no e-mail address.")
    request_id = new_id()
    guests = [(new_id(), address) for address in addresses]
    nonces = {rid: new_nonce() for rid, _email in guests}
    change = Change(op=f"request:{request_id}", now=now)
    request = _request_prepare(
        change=change,
        request_id=request_id,
        sender=sender,
        recipients=guests,
        subject=subject,
        message=message,
        closes_at=now + closes_in,
        keep_days=keep_days,
        limits=limits,
        reply_to=None,
        mail_language=mail_language,
        ip=ip,
        user_agent=user_agent,
        now=now,
        # The links work once the request exists, which the same transaction as their mails makes it.
        token_hashes={rid: token_hash(link_token(nonce)) for rid, nonce in nonces.items()},
    )
    for rid, email in guests:
        add_link_mail(
            change,
            transfer=request,
            recipient=Recipient(
                parent_id=request_id,
                recipient_id=rid,
                email=email,
                language=i18n.mail_language(mail_language, email),
            ),
            files=[],
            key=link_mail_key(request_id, rid, RELEASE_MAIL),
            nonce=nonces[rid],
        )
    outcomes = commit_recognised(change)
    return RequestCreated(
        request_id=request_id,
        closes_at=request.closes_at,
        expires_at=request.expires_at,
        recipients=tuple(addresses),
        mails=outcomes,
    )


def reply_limits_checked(limits: policy.RequestLimits | None) -> policy.RequestLimits:
    """What each recipient of a transfer may send back: the sender's choice, checked like a request's limits
    (never more than the site allows), or the request defaults (not the site's maxima) when not chosen."""
    limits = limits or policy.request_limits_default()
    return policy.request_limits_checked(
        max_files=limits.max_files,
        max_file_bytes=limits.max_file_bytes,
        max_total_bytes=limits.max_total_bytes,
        allowed_extensions=list(limits.allowed_extensions),
    )


def reply_request_create(
    *,
    sender: SenderIdentity,
    transfer_id: str,
    subject: str,
    recipients: list[tuple[str, str]],
    closes_at: datetime,
    limits: policy.RequestLimits | None = None,
    mail_language: str | None = None,
    change: Change,
    ip: str | None,
    user_agent: str | None,
    now: datetime,
) -> str:
    """The request through which a transfer's recipients may send files back (called by transfer_create, whose
    `change` then commits it with the transfer: never one without the other), each recipient within `limits`
    (the sender's; the request defaults when None). Its guests have the recipients' ids; no link is mailed:
    they come in from the transfer's guest page."""
    limits = reply_limits_checked(limits)
    reply_subject = (_("Reply: %(subject)s") % {"subject": subject}) if subject else _("Reply")
    request = _request_prepare(
        change=change,
        request_id=new_id(),
        sender=sender,
        recipients=recipients,
        subject=policy.subject_checked(reply_subject),
        message="",
        closes_at=closes_at,
        keep_days=settings.FXFER_REQUEST_KEEP_DAYS,
        limits=limits,
        reply_to=transfer_id,
        mail_language=mail_language,
        ip=ip,
        user_agent=user_agent,
        now=now,
    )
    return request.transfer_id


# --- the guest ------------------------------------------------------------------------------------------------


@unavailable_when_aws_fails
def reply_open(
    *,
    transfer_id: str,
    recipient_id: str,
    grant: str,
    ip: str | None = None,
    user_agent: str | None = None,
    now: datetime | None = None,
) -> AccessGranted:
    """A transfer's recipient, in their guest session, starts a reply: a grant for the same person in the
    transfer's reply request. Their access was proven on the transfer; the reply guest gets a fresh link token
    that is never sent anywhere, so only this grant (and later ones made the same way) reaches the request."""
    now = utc(now)
    transfer, _recipient = guest_access(transfer_id=transfer_id, recipient_id=recipient_id, grant=grant, now=now)
    ids = {"actor": f"guest:{recipient_id}", "now": now, "ip": ip, "user_agent": user_agent}
    request = transfer_get(transfer.reply_request_id) if transfer.reply_request_id else None
    if request is None or status_at(request, now) != READY:
        audit("reply.opened", **ids, transfer_id=transfer_id, outcome="refused", reason="replies_closed")
        raise TransferError("replies_closed")
    try:
        guest = Recipient.get(request.transfer_id, recipient_id, consistent_read=True)
    except Recipient.DoesNotExist:
        raise TransferError("not_found") from None
    # The reply guest's fresh token, the "reply.opened" event and the grant commit together.
    change = Change(op=f"reply:{request.transfer_id}:{recipient_id}:{new_nonce()}", now=now)
    fresh = token_hash(new_token())
    change.update(
        guest,
        actions=[Recipient.token_hash.set(fresh), Recipient.link_sent_at.set(now)],
        condition=Recipient.recipient_id.exists(),
    )
    change.audit(
        "reply.opened",
        actor=ids["actor"],
        subject=f"transfer:{transfer_id}",
        ip=ip,
        user_agent=user_agent,
        reply_request_id=request.transfer_id,
    )
    guest.token_hash = fresh  # the grant is tied to the new token, committed with it
    return grant_open(
        transfer=request, recipient=guest, ids={**ids, "transfer_id": request.transfer_id}, now=now, change=change
    )


@dataclass(frozen=True)
class FilesDeclared:
    request_id: str
    files: tuple[FileCreated, ...]


@unavailable_when_aws_fails
def request_files_declare(
    *,
    transfer_id: str,
    recipient_id: str,
    grant: str,
    files: list[FileDeclared],
    ip: str | None = None,
    user_agent: str | None = None,
    now: datetime | None = None,
) -> FilesDeclared:
    """A guest says which files they are about to upload. Each is checked against the site's policy and the
    request's limits; the guest's count and total are reserved with one conditional write (so two tabs cannot
    together exceed them); then each file gets its server-made key and uploads like a sender's."""
    now = utc(now)
    request, guest = guest_access(
        transfer_id=transfer_id, recipient_id=recipient_id, grant=grant, now=now, kind=KIND_REQUEST
    )
    actor = f"guest:{recipient_id}"
    ids = {"actor": actor, "transfer_id": transfer_id, "now": now, "ip": ip, "user_agent": user_agent}
    limits = request_limits(request)
    try:
        declared = policy.requested_files_checked(files, limits)
    except TransferError as error:
        audit("upload.started", **ids, outcome="refused", reason=error.code, files=_names(files))
        raise
    count, total = len(declared), sum(f.size for f in declared)
    if count > limits.max_files or total > limits.max_total_bytes:
        code, message = _over_limit(guest, limits, count=count, total=total)
        audit("upload.started", **ids, outcome="refused", reason=code, files=_names(files))
        raise TransferError(code, message)
    purge_at = request.purge_at
    extra = {"parent_kind": PARENT_REQUEST, "uploader_id": recipient_id, "uploader_email": guest.email}
    items = [file_item(parent_id=transfer_id, declared=item, now=now, purge_at=purge_at, **extra) for item in declared]
    if len(items) > MAX_ITEMS - 3:
        raise TransferError("too_many_files")
    # The search terms first: until the files commit they lead to nothing new (the request is findable already).
    sort_key = search_sort_key(created_at=request.created_at, transfer_id=transfer_id)
    save_all(
        (
            TransferSearchTerm,
            [
                TransferSearchTerm(
                    term=f"file:{name}",
                    sort_key=sort_key,
                    transfer_id=transfer_id,
                    parent_kind=PARENT_REQUEST,
                    created_at=request.created_at,
                    purge_at=purge_at,
                )
                for name in {f.name.casefold() for f in items}
            ],
        )
    )
    # The reservation (one conditional write: two tabs cannot together exceed the limits), the files, the
    # request's totals and the event commit together: a lost answer neither reserves twice nor counts twice.
    change = Change(op=f"declare:{transfer_id}:{recipient_id}:{items[0].file_id}", now=now)
    change.update(
        guest,
        actions=[Recipient.files_reserved.add(count), Recipient.bytes_reserved.add(total)],
        condition=(Recipient.files_reserved.does_not_exist() | (Recipient.files_reserved <= limits.max_files - count))
        & (Recipient.bytes_reserved.does_not_exist() | (Recipient.bytes_reserved <= limits.max_total_bytes - total))
        & (Recipient.token_hash == guest.token_hash),
        label="guest",
    )
    for item in items:
        change.put(item, condition=File.file_id.does_not_exist())
    change.update(
        Transfer(transfer_id=transfer_id),
        # The ids with the totals: the Received list reads the files by them (transfers.selectors).
        actions=[
            Transfer.file_count.add(count),
            Transfer.total_bytes.add(total),
            Transfer.file_ids.add({item.file_id for item in items}),
        ],
        condition=Transfer.transfer_id.exists(),
    )
    change.audit(
        "upload.started",
        actor=actor,
        subject=f"transfer:{transfer_id}",
        ip=ip,
        user_agent=user_agent,
        files=[{"file_id": f.file_id, "name": f.name, "size": int(f.declared_size)} for f in items],
        total_bytes=total,
    )
    try:
        change.commit()
    except ChangeRefused as refused:
        if refused.failed("guest") is None:
            raise
        guest.refresh(consistent_read=True)
        code, message = _over_limit(guest, limits, count=count, total=total)
        audit("upload.started", **ids, outcome="refused", reason=code, files=_names(files))
        raise TransferError(code, message) from None
    return FilesDeclared(
        request_id=transfer_id,
        # A guest's POST policies end when the request closes: S3 refuses them from then on.
        files=files_created(items, until=request.closes_at, now=now),
    )


def _names(files: list[FileDeclared]) -> list[dict]:
    return [{"name": str(f.name)[:255], "size": f.size} for f in files[:100]]


def _over_limit(guest: Recipient, limits: policy.RequestLimits, *, count: int, total: int) -> tuple[str, str]:
    used_files, used_bytes = int(guest.files_reserved or 0), int(guest.bytes_reserved or 0)
    if used_files + count > limits.max_files:
        return "too_many_files", _("You may send %(max)d files in all; %(left)d more fit.") % {
            "max": limits.max_files,
            "left": max(0, limits.max_files - used_files),
        }
    if used_bytes + total > limits.max_total_bytes:
        return "transfer_too_large", _("You may send %(max)s in all; %(left)s more fit.") % {
            "max": policy.bytes_text(limits.max_total_bytes),
            "left": policy.bytes_text(max(0, limits.max_total_bytes - used_bytes)),
        }
    return "state_conflict", _("Your link changed meanwhile. Open the newest link you were sent.")


@dataclass(frozen=True)
class RequestFinished:
    request_id: str
    files: int
    dropped: int  # unfinished uploads removed when the guest finished
    mailed: bool  # SES accepted the employee's mail now (otherwise the outbox retries it)
    mail_status: str = "sent"  # "sent", "pending" (retrying) or "failed"


@unavailable_when_aws_fails
def request_finish(
    *,
    transfer_id: str,
    recipient_id: str,
    grant: str,
    note: str = "",
    ip: str | None = None,
    user_agent: str | None = None,
    now: datetime | None = None,
) -> RequestFinished:
    """The guest is done: uploads they did not complete are dropped, their note is kept, the employee gets a
    mail listing what arrived. Finishing again later (after more uploads) tells the employee again. The finish,
    its event and the employee's mail commit together."""
    now = utc(now)
    request, guest = guest_access(
        transfer_id=transfer_id, recipient_id=recipient_id, grant=grant, now=now, kind=KIND_REQUEST
    )
    note = policy.message_checked(note)
    # Each finish mails the employee: a guest may not turn that into a mail cannon.
    counter = f"request-finish:{recipient_ref(transfer_id, recipient_id)}"
    if rate_limited(counter=counter, limit=3, window_seconds=3600, now=now):
        audit(
            "request.finished",
            actor=f"guest:{recipient_id}",
            transfer_id=transfer_id,
            now=now,
            ip=ip,
            outcome="refused",
            reason="rate_limited",
        )
        raise TransferError("rate_limited", _("You have finished several times in the last hour. Please wait a while."))
    try:
        return _finish(request=request, guest=guest, grant=grant, note=note, ip=ip, user_agent=user_agent, now=now)
    except Exception:
        # Nothing was finished: the guest's allowance is given back for the next try.
        rate_limit_refund(counter=counter, window_seconds=3600, now=now)
        raise


def _finish(
    *, request: Transfer, guest: Recipient, grant: str, note: str, ip: str | None, user_agent: str | None, now: datetime
) -> RequestFinished:
    transfer_id, recipient_id = request.transfer_id, guest.recipient_id
    mine = [f for f in File.query(transfer_id, consistent_read=True) if f.uploader_id == recipient_id]
    verified = [f for f in mine if f.state == FILE_VERIFIED]
    if not verified and not note:
        raise TransferError("files_missing", _("Upload at least one file, or write a note, before you finish."))
    unfinished = [f for f in mine if f.state not in {FILE_VERIFIED, FILE_CANCELLED}]
    for file in unfinished:
        upload_cancel(transfer_id=transfer_id, file_id=file.file_id, recipient_id=recipient_id, grant=grant, now=now)
    finish_id = new_id()
    change = Change(op=f"finish:{transfer_id}:{recipient_id}:{finish_id}", now=now)
    change.update(
        guest,
        actions=[Recipient.finished_at.set(now), Recipient.note.set(note) if note else Recipient.note.remove()],
        condition=Recipient.token_hash.exists(),
    )
    change.audit(
        "request.finished",
        actor=f"guest:{recipient_id}",
        subject=f"transfer:{transfer_id}",
        ip=ip,
        user_agent=user_agent,
        files=[{"file_id": f.file_id, "name": f.name, "size": int(f.verified_size or 0)} for f in verified],
        dropped=len(unfinished) or None,
        note=bool(note),
    )
    link_to = request.reply_to if request.reply_to else transfer_id
    path = "transfers" if request.reply_to else "requests"
    with i18n.in_owner_language(request):
        draft = mails.request_finished_mail(
            to=request.owner_email,
            guest=guest.email,
            subject=request.subject,
            note=note,
            files=[(f.name, int(f.verified_size or 0)) for f in verified],
            link=f"{settings.FXFER_BASE_URL}/{path}/{link_to}/",
            reply=bool(request.reply_to),
            at=now,
        )
    change.mail(
        key=f"request_finished:{transfer_id}:{recipient_id}:{finish_id}",
        kind="request_finished",
        parent_id=transfer_id,
        **draft.fields(),
    )
    [mail] = commit_recognised(change)
    return RequestFinished(
        request_id=transfer_id,
        files=len(verified),
        dropped=len(unfinished),
        mailed=mail.sent,
        mail_status=mail.status,
    )


# --- the employee -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestClosed:
    request_id: str
    closed_at: datetime
    expires_at: datetime


@unavailable_when_aws_fails
def request_close(
    *,
    owner_id: str,
    transfer_id: str,
    ip: str | None = None,
    user_agent: str | None = None,
    now: datetime | None = None,
) -> RequestClosed:
    """Close an open request early: its links and guest sessions stop at once, unfinished uploads are
    aborted, and what was received is kept `keep_days` from now (never longer than it would have been). The
    status and its event commit together; the aborts follow (safe to repeat)."""
    now = utc(now)
    request = owned_transfer(owner_id=owner_id, transfer_id=transfer_id, kind=KIND_REQUEST)
    if status_at(request, now) != READY:
        raise TransferError("state_conflict", _("This request is no longer open."))
    expires_at = min(request.expires_at, now + timedelta(days=int(request.keep_days or 0)))
    change = Change(op=f"close:{transfer_id}:{new_id()}", now=now)
    change.update(
        request,
        actions=[Transfer.status.set(CLOSED), Transfer.closes_at.set(now), Transfer.expires_at.set(expires_at)],
        condition=(Transfer.status == READY) & (Transfer.closes_at > now),
        label="request",
    )
    change.audit(
        "request.closed",
        actor=f"user:{owner_id}",
        subject=f"transfer:{transfer_id}",
        ip=ip,
        user_agent=user_agent,
        expires_at=expires_at.isoformat(),
    )
    try:
        commit_recognised(change)
    except ChangeRefused as exc:
        if exc.failed("request") is not None:
            raise TransferError("state_conflict", _("This request is no longer open.")) from None
        raise
    abort_unfinished_uploads(transfer_id)
    return RequestClosed(request_id=transfer_id, closed_at=now, expires_at=expires_at)


@dataclass(frozen=True)
class ReceivedDownload:
    url: str
    expires_at: datetime
    file_name: str


def received_download_url(
    *,
    owner_id: str,
    transfer_id: str,
    file_id: str,
    ip: str | None = None,
    user_agent: str | None = None,
    now: datetime | None = None,
) -> ReceivedDownload:
    """A short-lived presigned GET (attachment) of a received file, for the employee who asked for it; only a
    verified file, of a request (or a reply to their transfer) that is not expired or deleted."""
    now = utc(now)
    request = owned_transfer(owner_id=owner_id, transfer_id=transfer_id, kind=KIND_REQUEST)
    ids = {"actor": f"user:{owner_id}", "transfer_id": transfer_id, "now": now, "ip": ip, "user_agent": user_agent}
    file = file_get(transfer_id, file_id)
    gone = status_at(request, now) not in {READY, CLOSED} or request.deleted_at
    if file is None or file.state != FILE_VERIFIED or gone:
        audit("request.downloaded", **ids, outcome="refused", reason="not_found", file_id=file_id)
        raise TransferError("not_found")
    # Received files pass the same malware scan before the employee may have them.
    url, expires_at = scanning.clean_download_url(
        file, event="request.downloaded", ids=ids, uploader=file.uploader_email
    )
    return ReceivedDownload(url=url, expires_at=expires_at, file_name=file.name)
