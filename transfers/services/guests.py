"""The guest's side: open a link (consumes nothing), get a one-time code, prove it, download (a transfer's
files) or upload (an upload request's: transfers.services.requests and .uploads take the grant from here).

A link token is 256 random bits; only its SHA-256 is stored. An unknown token, another transfer's, a
revoked or expired one all raise the same `not_found`. Codes go only to the recipient's own address, are
stored as an HMAC, expire, and five wrong ones lock the recipient (conditional writes, so concurrent guesses
cannot exceed the count). Each download URL consumes one download with a conditional update.
"""

import logging
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.utils.translation import gettext as _
from pynamodb.exceptions import DeleteError, UpdateError

from fxfer.change import Change
from transfers import mails, storage
from transfers.errors import TransferError
from transfers.models import (
    FILE_VERIFIED,
    KIND_REQUEST,
    KIND_SEND,
    READY,
    File,
    GuestGrant,
    OneTimeCode,
    Recipient,
    Transfer,
)
from transfers.outbox import PLACEHOLDER, new_nonce, one_time_code
from transfers.services.common import (
    audit,
    code_hash,
    conditional_failed,
    later,
    mail_and_audit,
    mask_email,
    new_token,
    rate_limit_refund,
    rate_limited,
    recipient_ref,
    same,
    status_at,
    token_hash,
    token_well_formed,
    transfer_get,
    utc,
    valid_id,
)

logger = logging.getLogger(__name__)
CODE_DIGITS = 6


def _ip_brake(*, ip: str | None, now: datetime) -> None:
    """Token guessing is limited per IP address: every token lookup counts, found or not."""
    if rate_limited(
        counter=f"link-ip:{ip or 'unknown'}",
        limit=settings.FXFER_LINK_LOOKUPS_PER_IP,
        window_seconds=settings.FXFER_LINK_LOOKUP_WINDOW_SECONDS,
        now=now,
    ):
        logger.warning("transfers.guest.rate_limited", extra={"ip": ip})
        raise TransferError("rate_limited")


def _by_token(*, token: str, ip: str | None, action: str, now: datetime) -> tuple[Transfer, Recipient]:
    """The live (ready, unexpired) transfer and the recipient a token belongs to, or the one `not_found`."""
    _ip_brake(ip=ip, now=now)
    found = None
    if token_well_formed(token):
        wanted = token_hash(token)
        for hit in Recipient.by_token.query(wanted, limit=1):
            # The index lags; the item itself (read consistently) decides whether this is still the link.
            try:
                recipient = Recipient.get(hit.parent_id, hit.recipient_id, consistent_read=True)
            except Recipient.DoesNotExist:
                break
            transfer = transfer_get(recipient.parent_id)
            if same(recipient.token_hash, wanted) and transfer and status_at(transfer, now) == READY:
                found = (transfer, recipient)
            break
    if found is None:
        audit(action, actor="anonymous", transfer_id=None, now=now, outcome="refused", ip=ip, reason="not_found")
        raise TransferError("not_found")
    return found


@dataclass(frozen=True)
class GuestLink:
    """What the link's page shows before any code: who sent it (or asks for files), and where the code will go."""

    kind: str  # "send" (files to download) or "request" (files asked for)
    transfer_id: str
    recipient_id: str
    recipient_email_masked: str
    sender_name: str
    sender_email: str
    file_count: int
    expires_at: datetime
    locked: bool
    subject: str = ""
    message: str = ""
    closes_at: datetime | None = None


def guest_link_open(
    *, token: str, ip: str | None = None, user_agent: str | None = None, now: datetime | None = None
) -> GuestLink:
    """The link's page (GET): a read-only lookup. It consumes nothing, so mail scanners that prefetch links
    use nothing up; it only leaves an audit event."""
    now = utc(now)
    transfer, recipient = _by_token(token=token, ip=ip, action="link.opened", now=now)
    audit(
        "link.opened",
        actor=f"guest:{recipient.recipient_id}",
        transfer_id=transfer.transfer_id,
        now=now,
        ip=ip,
        user_agent=user_agent,
    )
    return GuestLink(
        kind=transfer.kind,
        transfer_id=transfer.transfer_id,
        recipient_id=recipient.recipient_id,
        recipient_email_masked=mask_email(recipient.email),
        sender_name=transfer.owner_name,
        sender_email=transfer.owner_email,
        file_count=int(transfer.file_count),
        expires_at=transfer.expires_at,
        locked=bool(recipient.locked),
        subject=transfer.subject if transfer.kind == KIND_REQUEST else "",
        message=transfer.message if transfer.kind == KIND_REQUEST else "",
        closes_at=transfer.closes_at,
    )


@dataclass(frozen=True)
class CodeSent:
    recipient_email_masked: str
    expires_at: datetime


def guest_code_send(
    *, token: str, ip: str | None = None, user_agent: str | None = None, now: datetime | None = None
) -> CodeSent:
    """Mail a new one-time code to the recipient's own address (a POST; replaces any earlier code).
    Limited per recipient (FXFER_CODE_SENDS_PER_WINDOW per code lifetime) and per IP."""
    now = utc(now)
    transfer, recipient = _by_token(token=token, ip=ip, action="code.sent", now=now)
    actor = f"guest:{recipient.recipient_id}"
    if recipient.locked:
        audit(
            "code.sent",
            actor=actor,
            transfer_id=transfer.transfer_id,
            now=now,
            outcome="refused",
            ip=ip,
            reason="locked",
        )
        raise TransferError("locked")
    ref = recipient_ref(transfer.transfer_id, recipient.recipient_id)
    if rate_limited(
        counter=f"code-send:{ref}",
        limit=settings.FXFER_CODE_SENDS_PER_WINDOW,
        window_seconds=settings.FXFER_CODE_SECONDS,
        now=now,
    ):
        audit(
            "code.sent",
            actor=actor,
            transfer_id=transfer.transfer_id,
            now=now,
            outcome="refused",
            ip=ip,
            reason="rate_limited",
        )
        raise TransferError(
            "rate_limited", _("A code was sent a moment ago. Please check your mailbox or wait a few minutes.")
        )
    # The code, its "code.sent" event and its mail commit together; the code itself is derived from the
    # outbox item's nonce when the mail is sent, so no table holds it.
    nonce = new_nonce()
    code = one_time_code(nonce)
    expires_at = later(now, settings.FXFER_CODE_SECONDS)
    change = Change(op=f"code:{ref}:{nonce}", now=now)
    change.put(
        OneTimeCode(
            recipient_ref=ref,
            code_hash=code_hash(recipient_ref=ref, code=code),
            created_at=now,
            expires_at=expires_at,
            purge_at=expires_at,
        )
    )
    change.audit(
        "code.sent",
        actor=actor,
        subject=f"transfer:{transfer.transfer_id}",
        ip=ip,
        user_agent=user_agent,
        to=recipient.email,
    )
    draft = mails.code_mail(
        to=recipient.email,
        code=PLACEHOLDER,
        sender_name=transfer.owner_name or transfer.owner_email,
        expires_at=expires_at,
        upload=transfer.kind == KIND_REQUEST,
    )
    key = change.mail(
        key=f"code:{ref}:{nonce}",
        kind="code",
        parent_id=transfer.transfer_id,
        recipient_id=recipient.recipient_id,
        derive="code",
        nonce=nonce,
        **draft.fields(),
    )
    if not change.commit().sent.get(key):
        # The mail is in the outbox and will be retried; the guest must not count on it now. Give back the
        # code allowance this attempt took, and say so.
        rate_limit_refund(counter=f"code-send:{ref}", window_seconds=settings.FXFER_CODE_SECONDS, now=now)
        raise TransferError(
            "mail_delayed",
            _("We could not send the code just now. It may still arrive in a few minutes; otherwise ask again."),
        )
    return CodeSent(recipient_email_masked=mask_email(recipient.email), expires_at=expires_at)


@dataclass(frozen=True)
class AccessGranted:
    """A short guest session for one recipient of one transfer (or request: `kind`). The view keeps the ids and
    the grant in the session and passes them to the guest services and selectors; `grant` is a secret."""

    kind: str
    transfer_id: str
    recipient_id: str
    grant: str
    expires_at: datetime


def guest_code_verify(
    *, token: str, code: str, ip: str | None = None, user_agent: str | None = None, now: datetime | None = None
) -> AccessGranted:
    """Check a one-time code (constant-time). Right: the code is used up and access is granted. Wrong: one of
    FXFER_CODE_ATTEMPTS tries is gone; the last one locks the recipient and tells the sender."""
    now = utc(now)
    transfer, recipient = _by_token(token=token, ip=ip, action="code.failed", now=now)
    actor = f"guest:{recipient.recipient_id}"
    ids = {"actor": actor, "transfer_id": transfer.transfer_id, "now": now, "ip": ip, "user_agent": user_agent}
    if recipient.locked:
        audit("code.failed", **ids, outcome="refused", reason="locked")
        raise TransferError("locked")
    ref = recipient_ref(transfer.transfer_id, recipient.recipient_id)
    try:
        stored = OneTimeCode.get(ref, consistent_read=True)
    except OneTimeCode.DoesNotExist:
        stored = None
    offered = code_hash(recipient_ref=ref, code="".join((code or "").split()))
    right = stored is not None and same(stored.code_hash, offered)
    expired = stored is not None and stored.expires_at <= now
    if right and not expired:
        try:
            # Single use: of two concurrent right answers, one deletes the code, the other fails here.
            stored.delete(condition=OneTimeCode.code_hash == stored.code_hash)
        except DeleteError as exc:
            if not conditional_failed(exc):
                raise
            raise TransferError("code_expired") from None
        return _grant(transfer=transfer, recipient=recipient, ids=ids, now=now)
    return _fail(
        transfer=transfer, recipient=recipient, ref=ref, reason="expired" if right else "wrong", ids=ids, now=now
    )


def _grant(*, transfer: Transfer, recipient: Recipient, ids: dict, now: datetime) -> AccessGranted:
    """Access for the recipient after a right code (their failed tries are forgotten)."""
    try:
        recipient.update(
            actions=[Recipient.failed_code_attempts.set(0)],
            condition=(Recipient.locked == False) & (Recipient.token_hash == recipient.token_hash),  # noqa: E712
        )
    except UpdateError as exc:
        if not conditional_failed(exc):
            raise
        audit("access.granted", **ids, outcome="refused", reason="locked")
        raise TransferError("locked") from None
    return grant_open(transfer=transfer, recipient=recipient, ids=ids, now=now)


def _grant_end(transfer: Transfer, now: datetime) -> datetime:
    end = transfer.closes_at if transfer.kind == KIND_REQUEST and transfer.closes_at else transfer.expires_at
    return min(later(now, settings.FXFER_GUEST_ACCESS_SECONDS), end, transfer.expires_at)


def grant_open(*, transfer: Transfer, recipient: Recipient, ids: dict, now: datetime) -> AccessGranted:
    """Store a new grant for the recipient (its hash, tied to their current link) and record it."""
    grant = new_token()
    expires_at = _grant_end(transfer, now)
    GuestGrant(
        grant_hash=token_hash(grant),
        parent_id=transfer.transfer_id,
        recipient_id=recipient.recipient_id,
        token_hash=recipient.token_hash,
        created_at=now,
        expires_at=expires_at,
        purge_at=expires_at,
    ).save()
    audit("access.granted", **ids, expires_at=expires_at.isoformat())
    return AccessGranted(
        kind=transfer.kind,
        transfer_id=transfer.transfer_id,
        recipient_id=recipient.recipient_id,
        grant=grant,
        expires_at=expires_at,
    )


def _fail(*, transfer: Transfer, recipient: Recipient, ref: str, reason: str, ids: dict, now: datetime):
    """Count one failed try with conditional writes: exactly one caller makes the last try, locks the
    recipient and mails the sender, however many guesses arrive at once."""
    last = settings.FXFER_CODE_ATTEMPTS - 1
    live = (Recipient.locked == False) & (Recipient.token_hash == recipient.token_hash)  # noqa: E712
    try:
        recipient.update(
            actions=[Recipient.failed_code_attempts.add(1)], condition=live & (Recipient.failed_code_attempts < last)
        )
    except UpdateError as exc:
        if not conditional_failed(exc):
            raise
    else:
        left = settings.FXFER_CODE_ATTEMPTS - int(recipient.failed_code_attempts)
        audit("code.failed", **ids, outcome="refused", reason=reason, attempts_left=left)
        if reason == "expired":
            raise TransferError("code_expired", attempts_left=left)
        raise TransferError(
            "code_wrong",
            _("The code is not correct. %(left)d attempt(s) left.") % {"left": left},
            attempts_left=left,
        )
    try:
        recipient.update(
            actions=[
                Recipient.failed_code_attempts.add(1),
                Recipient.locked.set(True),
                Recipient.locked_at.set(now),
            ],
            condition=live & (Recipient.failed_code_attempts >= last),
        )
    except UpdateError as exc:
        if not conditional_failed(exc):
            raise
        audit("code.failed", **ids, outcome="refused", reason="locked")
        raise TransferError("locked") from None
    OneTimeCode(recipient_ref=ref).delete()
    audit("code.failed", **ids, outcome="refused", reason=reason, attempts_left=0)
    audit("access.locked", **ids, outcome="refused", recipient_id=recipient.recipient_id, email=recipient.email)
    mail_and_audit(
        lambda: mails.locked_notice_mail(
            to=transfer.owner_email, recipient=recipient.email, subject=transfer.subject, at=now, ip=ids["ip"]
        ),
        kind="locked_notice",
        to=transfer.owner_email,
        transfer_id=transfer.transfer_id,
        now=now,
    )
    raise TransferError("locked")


def guest_access(
    *, transfer_id: str, recipient_id: str, grant: str, now: datetime, kind: str = KIND_SEND
) -> tuple[Transfer, Recipient]:
    """The transfer (or request, `kind`) and recipient a guest session may use, checked on every use: the grant
    is live, the link it came through is still the recipient's, the recipient is not locked, the transfer is
    ready (the request open). A request's grant lasts FXFER_GUEST_ACCESS_SECONDS from its last use, so a long
    upload keeps it alive; a transfer's grant does not slide."""
    if not (valid_id(transfer_id) and valid_id(recipient_id) and token_well_formed(grant)):
        raise TransferError("not_found")
    try:
        stored = GuestGrant.get(token_hash(grant), consistent_read=True)
    except GuestGrant.DoesNotExist:
        raise TransferError("not_found") from None
    if stored.parent_id != transfer_id or stored.recipient_id != recipient_id:
        raise TransferError("not_found")
    transfer = transfer_get(transfer_id)
    try:
        recipient = Recipient.get(transfer_id, recipient_id, consistent_read=True)
    except Recipient.DoesNotExist:
        raise TransferError("not_found") from None
    if (
        transfer is None
        or transfer.kind != kind
        or status_at(transfer, now) != READY
        or not same(recipient.token_hash, stored.token_hash)
    ):
        raise TransferError("not_found")
    if transfer.reply_to:
        # Replies live only while the transfer they answer does: a revoke, deletion or expiry ends them too.
        answered = transfer_get(transfer.reply_to)
        if answered is None or status_at(answered, now) != READY:
            raise TransferError("not_found")
    if recipient.locked:
        raise TransferError("locked")
    if stored.expires_at <= now:
        raise TransferError("access_expired")
    if kind == KIND_REQUEST and (stored.expires_at - now).total_seconds() < settings.FXFER_GUEST_ACCESS_SECONDS / 2:
        end = _grant_end(transfer, now)
        stored.update(actions=[GuestGrant.expires_at.set(end), GuestGrant.purge_at.set(end)])
    return transfer, recipient


@dataclass(frozen=True)
class DownloadIssued:
    url: str
    expires_at: datetime
    file_name: str
    size: int
    downloads_left: int


def guest_download_url(
    *,
    transfer_id: str,
    recipient_id: str,
    grant: str,
    file_id: str,
    ip: str | None = None,
    user_agent: str | None = None,
    now: datetime | None = None,
) -> DownloadIssued:
    """A presigned GET of one verified file, valid a few minutes. Issuing it uses one of the recipient's
    downloads of that file, atomically: with a limit of 1, of any number of simultaneous requests exactly
    one gets a URL. The sender is told, if they asked to be."""
    now = utc(now)
    transfer, recipient = guest_access(transfer_id=transfer_id, recipient_id=recipient_id, grant=grant, now=now)
    actor = f"guest:{recipient_id}"
    ids = {"actor": actor, "transfer_id": transfer_id, "now": now, "ip": ip, "user_agent": user_agent}
    file = None
    if valid_id(file_id):
        try:
            file = File.get(transfer_id, file_id, consistent_read=True)
        except File.DoesNotExist:
            file = None
    if file is None or file.state != FILE_VERIFIED:
        audit("download.url_issued", **ids, outcome="refused", reason="not_found", file_id=file_id)
        raise TransferError("not_found")
    limit = int(transfer.download_limit)
    used = Recipient.file_downloads[file_id]
    try:
        recipient.update(
            actions=[
                used.set((used | 0) + 1),
                Recipient.downloads_used.add(1),
                Recipient.last_download_at.set(now),
            ],
            condition=(Recipient.locked == False)  # noqa: E712
            & (Recipient.token_hash == recipient.token_hash)
            & (used.does_not_exist() | (used < limit)),
        )
    except UpdateError as exc:
        if not conditional_failed(exc):
            raise
        audit("download.url_issued", **ids, outcome="refused", reason="download_limit_reached", file_id=file_id)
        raise TransferError("download_limit_reached") from None
    count = int(recipient.file_downloads.as_dict().get(file_id, 0))
    url = storage.download_url(key=file.s3_key, version_id=file.version_id, filename=file.name)
    expires_at = later(now, settings.FXFER_DOWNLOAD_URL_SECONDS)
    audit(
        "download.url_issued", **ids, file_id=file_id, name=file.name, size=int(file.verified_size or 0), download=count
    )
    if transfer.notify_on_download:
        # The guest still gets the file when the notice fails; the failure is on record.
        mail_and_audit(
            lambda: mails.download_notice_mail(
                to=transfer.owner_email,
                recipient=recipient.email,
                file_name=file.name,
                subject=transfer.subject,
                at=now,
                ip=ip,
            ),
            kind="download_notice",
            to=transfer.owner_email,
            transfer_id=transfer_id,
            now=now,
        )
    return DownloadIssued(
        url=url,
        expires_at=expires_at,
        file_name=file.name,
        size=int(file.verified_size or 0),
        downloads_left=max(0, limit - count),
    )
