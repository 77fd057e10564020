"""The guest's side: open a link (consumes nothing), get a one-time code, prove it, download (a transfer's
files) or upload (an upload request's: transfers.services.requests and .uploads take the grant from here).

A link token is 256 random bits; only its SHA-256 is stored. An unknown token, another transfer's, a
revoked or expired one all raise the same `not_found`. Codes go only to the recipient's own address, are
stored as an HMAC, expire, and five wrong ones lock the recipient. Each download URL consumes one download.

Crash consistency (issue 11). Every state change here is one `fxfer.change.Change`: the change, its audit
event and the mail it causes (an outbox item) commit in one TransactWriteItems whose ClientRequestToken derives
from the operation, so botocore's retry after a lost answer is a no-op instead of a second download or a second
failed try. Limited things (a file's downloads, a recipient's failed tries, the code allowance) are written
with the exact value read as the condition: a write that lost a race is refused with the item as it is now
(ALL_OLD), and the call decides again from that, so concurrent downloads or guesses never exceed a limit and
each event says the exact count. When the answer never comes at all (botocore gave up), the operation's own
audit event tells whether it committed (it commits with the change or not at all): a consumed download then
still gets its URL, a failed try is still reported as one. AWS failing for good is `unavailable` (503,
"nothing was lost"), never a 500.

Two writes stay outside: the per-IP lookup brake (a lost answer may count one lookup twice: a brake, not an
allowance) and a request grant's sliding expiry (a session refresh, idempotent, not an access decision).
"""

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from botocore.exceptions import BotoCoreError
from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from pynamodb.exceptions import PynamoDBException

from fxfer import i18n
from fxfer.change import Change, ChangeRefused, Committed
from reports.models import AuditEvent
from reports.services import audit_count
from transfers import mails, storage
from transfers.errors import TransferError
from transfers.models import (
    FILE_VERIFIED,
    KIND_REQUEST,
    KIND_SEND,
    READY,
    GuestGrant,
    OneTimeCode,
    OutboxMail,
    RateLimit,
    Recipient,
    Transfer,
)
from transfers.outbox import PLACEHOLDER, new_nonce, one_time_code
from transfers.services import scanning
from transfers.services.common import (
    audit,
    code_hash,
    file_get,
    later,
    mask_email,
    new_token,
    rate_limited,
    recipient_ref,
    same,
    status_at,
    token_hash,
    token_well_formed,
    transfer_get,
    unavailable_when_aws_fails,
    utc,
    valid_id,
)

logger = logging.getLogger(__name__)
CODE_DIGITS = 6

# PynamoDB sends a transaction's items grouped: condition checks, deletes, puts (audit events and outbox mails
# are puts), then updates, while ChangeRefused labels refusals by the order items were added. Every change
# here adds its items in that same order, so a refusal's label names the item that was refused.


def _commit(change: Change, *, proof: str) -> Committed:
    """Commit `change`, whose audit event `proof` commits with it or not at all: Change.commit recognises an
    earlier commit of the same operation by it (an answer lost for good, a token that lapsed) and goes on."""
    committed = change.commit()
    return committed


def _old_number(old: dict | None, *path: str) -> int:
    """A number inside an item as it was when its condition failed (ALL_OLD), e.g. ("file_downloads", id)."""
    value = {"M": old or {}}
    for name in path:
        value = (value.get("M") or {}).get(name) or {}
    return int(float(value["N"])) if "N" in value else 0


def _old_link(old: dict | None) -> tuple[str | None, bool]:
    """The link token hash and lock of a recipient as it was when a condition on it failed."""
    if not old:
        return None, False
    return (old.get("token_hash") or {}).get("S"), bool((old.get("locked") or {}).get("BOOL"))


def _counted(attribute, value: int):
    """The condition "this number is still `value`" (a missing number is 0)."""
    return (attribute.does_not_exist() | (attribute == 0)) if value == 0 else (attribute == value)


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
        # Anyone on the internet can try tokens: counted per IP and minute, not one event per hit.
        audit_count(action=action, outcome="refused", ip=ip, now=now)
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
    attempts_left: int = 0  # wrong codes the recipient may still enter; the one that makes it 0 locks the link
    language: str = ""  # the language the sender chose for this person's mails: their pages start in it


@unavailable_when_aws_fails
def guest_link_open(
    *, token: str, ip: str | None = None, user_agent: str | None = None, now: datetime | None = None
) -> GuestLink:
    """The link's page (GET): a read-only lookup. It consumes nothing, so mail scanners that prefetch links
    use nothing up; it only leaves an audit event (its own item, written once even after a lost answer)."""
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
        attempts_left=max(0, settings.FXFER_CODE_ATTEMPTS - int(recipient.failed_code_attempts or 0)),
        language=i18n.mail_language(recipient.language, recipient.email),
    )


@dataclass(frozen=True)
class CodeSent:
    recipient_email_masked: str
    expires_at: datetime


def _window(counter: str, window_seconds: int, now: datetime) -> tuple[RateLimit, datetime]:
    """The fixed-window counter item `rate_limited` uses, and when it may go."""
    start = int(now.timestamp()) // window_seconds * window_seconds
    return RateLimit(counter=f"{counter}#{start}"), datetime.fromtimestamp(start + 2 * window_seconds, UTC)


@unavailable_when_aws_fails
def guest_code_send(
    *, token: str, ip: str | None = None, user_agent: str | None = None, now: datetime | None = None
) -> CodeSent:
    """Mail a new one-time code to the recipient's own address (a POST; replaces any earlier code).
    Limited per recipient (FXFER_CODE_SENDS_PER_WINDOW per code lifetime) and per IP. Refuses with
    `mail_delayed` when SES did not take the mail now (the allowance is given back; the outbox retries it)."""
    now = utc(now)
    transfer, recipient = _by_token(token=token, ip=ip, action="code.sent", now=now)
    actor = f"guest:{recipient.recipient_id}"
    refused = {"actor": actor, "transfer_id": transfer.transfer_id, "now": now, "outcome": "refused", "ip": ip}
    if recipient.locked:
        audit("code.sent", **refused, reason="locked")
        raise TransferError("locked")
    ref = recipient_ref(transfer.transfer_id, recipient.recipient_id)
    # The allowance, the code, its "code.sent" event and its mail commit together: a lost answer cannot take
    # the allowance twice, and a failure before the commit takes nothing. The code itself is derived from the
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
    proof = change.audit(
        "code.sent",
        actor=actor,
        subject=f"transfer:{transfer.transfer_id}",
        ip=ip,
        user_agent=user_agent,
        to=recipient.email,
    )
    with translation.override(i18n.mail_language(recipient.language, recipient.email)):  # the guest's language
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
    allowance, purge_at = _window(f"code-send:{ref}", settings.FXFER_CODE_SECONDS, now)
    change.update(
        allowance,
        actions=[RateLimit.count.add(1), RateLimit.purge_at.set(purge_at)],
        condition=RateLimit.count.does_not_exist() | (RateLimit.count < settings.FXFER_CODE_SENDS_PER_WINDOW),
        label="allowance",
    )
    try:
        committed = _commit(change, proof=proof)
    except ChangeRefused as exc:
        if exc.failed("allowance") is None:
            raise
        audit("code.sent", **refused, reason="rate_limited")
        raise TransferError(
            "rate_limited", _("A code was sent a moment ago. Please check your mailbox or wait a few minutes.")
        ) from None
    if not committed.sent.get(key):
        # The mail is in the outbox and will be retried; the guest must not count on it now. Give back the
        # allowance this attempt took, and say so.
        _allowance_refund(allowance, op=change.op, now=now)
        raise TransferError(
            "mail_delayed",
            _("We could not send the code just now. It may still arrive in a few minutes; otherwise ask again."),
        )
    return CodeSent(recipient_email_masked=mask_email(recipient.email), expires_at=expires_at)


def _allowance_refund(allowance: RateLimit, *, op: str, now: datetime) -> None:
    """Give back the one send an unsent code took. Its own transaction token: a lost answer gives back one, not
    two. If AWS refuses even this, the send stays counted (the window ends within the code's lifetime)."""
    change = Change(op=f"refund:{op}", now=now)
    change.update(allowance, actions=[RateLimit.count.add(-1)], condition=RateLimit.count > 0)
    try:
        change.commit(send_mails=False)
    except ChangeRefused:
        pass  # already back at zero
    except (PynamoDBException, BotoCoreError):
        logger.warning("transfers.guest.refund_failed", exc_info=True)


@dataclass(frozen=True)
class AccessGranted:
    """A short guest session for one recipient of one transfer (or request: `kind`). The view keeps the ids and
    the grant in the session and passes them to the guest services and selectors; `grant` is a secret."""

    kind: str
    transfer_id: str
    recipient_id: str
    grant: str
    expires_at: datetime


def _live(recipient: Recipient, link: str | None = None):
    """The condition "still this link, not locked"."""
    return (Recipient.locked == False) & (Recipient.token_hash == (link or recipient.token_hash))  # noqa: E712


@unavailable_when_aws_fails
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
    attempt = new_nonce()  # this try: every commit it makes derives its token from it
    if right and not expired:
        return _verified(transfer=transfer, recipient=recipient, stored=stored, attempt=attempt, ids=ids, now=now)
    return _failed_try(
        transfer=transfer,
        recipient=recipient,
        ref=ref,
        reason="expired" if right else "wrong",
        attempt=attempt,
        ids=ids,
        now=now,
    )


def _verified(
    *, transfer: Transfer, recipient: Recipient, stored: OneTimeCode, attempt: str, ids: dict, now: datetime
) -> AccessGranted:
    """A right code: it is used up, the failed tries are forgotten and a grant is opened, in one commit."""
    change = Change(op=f"code-ok:{stored.recipient_ref}:{attempt}", now=now)
    # Single use: of two concurrent right answers, one deletes the code, the other is refused here.
    change.delete(stored, condition=OneTimeCode.code_hash == stored.code_hash, label="code")
    granted, proof = _grant_into(change, transfer=transfer, recipient=recipient, ids=ids, now=now)
    change.update(
        recipient, actions=[Recipient.failed_code_attempts.set(0)], condition=_live(recipient), label="recipient"
    )
    try:
        _commit(change, proof=proof)
    except ChangeRefused as refused:
        other = refused.failed("recipient")
        if other is not None:
            link, _locked = _old_link(other.old)
            reason = "locked" if same(link, recipient.token_hash) else "not_found"
            audit("access.granted", **ids, outcome="refused", reason=reason)
            raise TransferError(reason) from None
        if refused.failed("code") is not None:
            audit("access.granted", **ids, outcome="refused", reason="code_used")
            raise TransferError("code_expired") from None
        raise
    return granted


def _grant_end(transfer: Transfer, now: datetime) -> datetime:
    end = transfer.closes_at if transfer.kind == KIND_REQUEST and transfer.closes_at else transfer.expires_at
    return min(later(now, settings.FXFER_GUEST_ACCESS_SECONDS), end, transfer.expires_at)


def _grant_into(
    change: Change, *, transfer: Transfer, recipient: Recipient, ids: dict, now: datetime
) -> tuple[AccessGranted, str]:
    """Add a new grant for the recipient (its hash, tied to their current link) and its "access.granted" event
    to `change`. Returns the grant and the event's id."""
    grant = new_token()
    expires_at = _grant_end(transfer, now)
    change.put(
        GuestGrant(
            grant_hash=token_hash(grant),
            parent_id=transfer.transfer_id,
            recipient_id=recipient.recipient_id,
            token_hash=recipient.token_hash,
            created_at=now,
            expires_at=expires_at,
            purge_at=expires_at,
        ),
        condition=GuestGrant.grant_hash.does_not_exist(),
    )
    proof = change.audit(
        "access.granted",
        actor=ids["actor"],
        subject=f"transfer:{transfer.transfer_id}",
        ip=ids.get("ip"),
        user_agent=ids.get("user_agent"),
        expires_at=expires_at.isoformat(),
    )
    granted = AccessGranted(
        kind=transfer.kind,
        transfer_id=transfer.transfer_id,
        recipient_id=recipient.recipient_id,
        grant=grant,
        expires_at=expires_at,
    )
    return granted, proof


def grant_open(
    *, transfer: Transfer, recipient: Recipient, ids: dict, now: datetime, change: Change | None = None
) -> AccessGranted:
    """Store a new grant for the recipient and its "access.granted" event, in one commit (with whatever else
    `change` already holds)."""
    change = change or Change(op=f"grant:{transfer.transfer_id}:{recipient.recipient_id}:{new_nonce()}", now=now)
    granted, proof = _grant_into(change, transfer=transfer, recipient=recipient, ids=ids, now=now)
    _commit(change, proof=proof)
    return granted


def _failed_try(
    *, transfer: Transfer, recipient: Recipient, ref: str, reason: str, attempt: str, ids: dict, now: datetime
):
    """Count one failed try: the count goes from the value read to one more, on condition that it is still
    that value, with its "code.failed" event. The try that makes the count FXFER_CODE_ATTEMPTS also locks
    the recipient, drops the code, records "access.locked" and mails the sender, in the same commit. A try
    that lost a race decides again from the item as the refusal returned it, so of any number of concurrent
    guesses exactly one locks, and each event tells the tries left as they were."""
    attempts = settings.FXFER_CODE_ATTEMPTS
    link = recipient.token_hash
    failed, locked = int(recipient.failed_code_attempts or 0), bool(recipient.locked)
    audit_ids = {"actor": ids["actor"], "subject": f"transfer:{transfer.transfer_id}", "ip": ids["ip"]}
    for _round in range(attempts + 3):
        if locked or failed >= attempts:
            audit("code.failed", **ids, outcome="refused", reason="locked")
            raise TransferError("locked")
        left = attempts - failed - 1
        change = Change(op=f"code-failed:{ref}:{attempt}:{failed}", now=now)
        actions = [Recipient.failed_code_attempts.set(failed + 1)]
        if left == 0:
            actions += [Recipient.locked.set(True), Recipient.locked_at.set(now)]
        if left == 0:
            change.delete(OneTimeCode(recipient_ref=ref))
        proof = change.audit(
            "code.failed",
            **audit_ids,
            user_agent=ids["user_agent"],
            outcome="refused",
            reason=reason,
            attempts_left=left,
        )
        if left == 0:
            change.audit(
                "access.locked",
                **audit_ids,
                outcome="refused",
                recipient_id=recipient.recipient_id,
                email=recipient.email,
            )
            with i18n.in_owner_language(transfer):
                notice = mails.locked_notice_mail(
                    to=transfer.owner_email, recipient=recipient.email, subject=transfer.subject, at=now, ip=ids["ip"]
                )
            change.mail(
                key=f"locked_notice:{ref}:{attempt}",
                kind="locked_notice",
                parent_id=transfer.transfer_id,
                **notice.fields(),
            )
        change.update(
            recipient,
            actions=actions,
            condition=_live(recipient, link) & _counted(Recipient.failed_code_attempts, failed),
            label="recipient",
        )
        try:
            _commit(change, proof=proof)
        except ChangeRefused as refused:
            other = refused.failed("recipient")
            if other is None:
                raise
            now_link, locked = _old_link(other.old)
            if not same(now_link, link):
                audit("code.failed", **ids, outcome="refused", reason="not_found")
                raise TransferError("not_found") from None
            failed = _old_number(other.old, "failed_code_attempts")
            continue
        if left == 0:
            raise TransferError("locked")
        # An expired code costs a try too (it may be a guess): both say exactly how many are left before the lock.
        if reason == "expired":
            message = ngettext(
                "The code has expired. Request a new one. You can try %(left)d more time.",
                "The code has expired. Request a new one. You can try %(left)d more times.",
                left,
            )
            raise TransferError("code_expired", message % {"left": left}, attempts_left=left)
        message = ngettext(
            "The code is not correct. You can try %(left)d more time.",
            "The code is not correct. You can try %(left)d more times.",
            left,
        )
        raise TransferError("code_wrong", message % {"left": left}, attempts_left=left)
    raise TransferError("unavailable")  # the count kept moving under us: busy, nothing of this try was counted


@unavailable_when_aws_fails
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


def _counted_before(base_op: str, *, recipient: Recipient, now: datetime) -> int | bool | None:
    """Did an earlier run of this same press count a download? False: no. The download number it counted,
    when that was through the recipient's current link and its URL's lifetime has not ended. None: it did,
    but that second chance is over."""
    from reports.services import event_id_for

    try:
        event = AuditEvent.get(event_id_for(base_op, 0), consistent_read=True)
    except AuditEvent.DoesNotExist:
        return False
    details = event.details or {}
    if event.actor != f"guest:{recipient.recipient_id}" or details.get("link") != (recipient.token_hash or "")[:16]:
        return None
    if (now - event.at).total_seconds() >= settings.FXFER_DOWNLOAD_URL_SECONDS:
        return None
    return int(details.get("download") or 0)


def download_notice_key(*, transfer_id: str, recipient_id: str, grant: str) -> str:
    """The outbox key of the sender's notice for one visit of a recipient. The grant is a secret: the key holds
    a hash derived from it that is not the grant's lookup key."""
    visit = hashlib.sha256(f"download-notice:{token_hash(grant)}".encode()).hexdigest()[:32]
    return f"download_notice:{transfer_id}:{recipient_id}:{visit}"


def _outbox_has(mail_key: str) -> bool:
    try:
        OutboxMail.get(mail_key, consistent_read=True)
    except OutboxMail.DoesNotExist:
        return False
    return True


@dataclass(frozen=True)
class DownloadIssued:
    url: str
    expires_at: datetime
    file_name: str
    size: int
    downloads_left: int


@unavailable_when_aws_fails
def guest_download_url(
    *,
    transfer_id: str,
    recipient_id: str,
    grant: str,
    file_id: str,
    request_id: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
    now: datetime | None = None,
) -> DownloadIssued:
    """A presigned GET of one verified file, valid a few minutes. Issuing it uses one of the recipient's
    downloads of that file, with its "download.url_issued" event and the sender's notice (when they asked for
    one) in one commit: with a limit of 1, of any number of simultaneous requests exactly one gets a URL, and
    a download counted always came with its URL (a lost answer is recognised as this call's own effect).

    `request_id` names the guest's press of the button (the files page puts one in its forms): the same press
    sent again, because the answer never reached the browser (a Lambda killed after the commit, a timeout), gets
    a URL for the download it already counted instead of counting another, within the URL's lifetime (in which
    the first URL could have been used again anyway)."""
    now = utc(now)
    transfer, recipient = guest_access(transfer_id=transfer_id, recipient_id=recipient_id, grant=grant, now=now)
    actor = f"guest:{recipient_id}"
    ids = {"actor": actor, "transfer_id": transfer_id, "now": now, "ip": ip, "user_agent": user_agent}
    file = file_get(transfer_id, file_id)
    if file is None or file.state != FILE_VERIFIED:
        audit("download.url_issued", **ids, outcome="refused", reason="not_found", file_id=file_id)
        raise TransferError("not_found")
    scanning.refuse_unless_clean(file, event="download.url_issued", ids=ids)  # a file the scan blocks is never served
    limit = int(transfer.download_limit)
    link = recipient.token_hash
    count = int((recipient.file_downloads.as_dict() if recipient.file_downloads else {}).get(file_id, 0))
    locked = bool(recipient.locked)
    # Signed before anything is used up: a URL that cannot be made costs no download.
    url = storage.download_url(key=file.s3_key, version_id=file.version_id, filename=file.name)
    expires_at = later(now, settings.FXFER_DOWNLOAD_URL_SECONDS)
    attempt = request_id if request_id and valid_id(request_id) else new_nonce()
    base_op = f"download:{transfer_id}:{recipient_id}:{file_id}:{attempt}"
    earlier = _counted_before(base_op, recipient=recipient, now=now) if attempt == request_id else False
    if earlier is None:
        # That press counted a download long ago (or through another link): this is a new download.
        attempt = new_nonce()
        base_op = f"download:{transfer_id}:{recipient_id}:{file_id}:{attempt}"
    elif earlier is not False:
        logger.info("transfers.guest.download_again", extra={"transfer_id": transfer_id})
        return DownloadIssued(
            url=url,
            expires_at=expires_at,
            file_name=file.name,
            size=int(file.verified_size or 0),
            downloads_left=max(0, limit - earlier),
        )
    used = Recipient.file_downloads[file_id]
    # One notice per visit (the guest session a code opened), not one per file: the visit's first download
    # commits it, later ones see it in the outbox (or, racing, meet its key's condition and go on without it).
    notice_key = download_notice_key(transfer_id=transfer_id, recipient_id=recipient_id, grant=grant)
    notify = bool(transfer.notify_on_download) and not _outbox_has(notice_key)
    for round_ in range(limit + 3):
        if locked:
            audit("download.url_issued", **ids, outcome="refused", reason="locked", file_id=file_id)
            raise TransferError("locked")
        if count >= limit:
            audit("download.url_issued", **ids, outcome="refused", reason="download_limit_reached", file_id=file_id)
            raise TransferError("download_limit_reached")
        op = base_op if round_ == 0 else f"{base_op}:{round_}:{count}"
        change = Change(op=op, now=now)
        proof = change.audit(
            "download.url_issued",
            actor=actor,
            subject=f"transfer:{transfer_id}",
            ip=ip,
            user_agent=user_agent,
            file_id=file_id,
            name=file.name,
            size=int(file.verified_size or 0),
            download=count + 1,
            link=(link or "")[:16],  # which of the recipient's links (a resend ends a press's second chance)
        )
        if notify:
            # The guest still gets the file when the notice is not sent at once: the outbox retries it.
            with i18n.in_owner_language(transfer):
                notice = mails.download_notice_mail(
                    to=transfer.owner_email,
                    recipient=recipient.email,
                    file_name=file.name,
                    subject=transfer.subject,
                    at=now,
                    ip=ip,
                )
            change.mail(key=notice_key, kind="download_notice", parent_id=transfer_id, **notice.fields())
        change.update(
            recipient,
            actions=[used.set(count + 1), Recipient.downloads_used.add(1), Recipient.last_download_at.set(now)],
            condition=_live(recipient, link) & _counted(used, count),
            label="recipient",
        )
        try:
            _commit(change, proof=proof)
        except ChangeRefused as refused:
            other = refused.failed("recipient")
            noticed = notify and refused.failed(f"own:mail:{notice_key}") is not None
            if other is None and not noticed:
                raise
            if noticed:
                notify = False  # another download of this visit committed the visit's notice meanwhile
            if other is not None:
                now_link, locked = _old_link(other.old)
                if not same(now_link, link):
                    audit("download.url_issued", **ids, outcome="refused", reason="not_found", file_id=file_id)
                    raise TransferError("not_found") from None
                count = _old_number(other.old, "file_downloads", file_id)
            continue
        return DownloadIssued(
            url=url,
            expires_at=expires_at,
            file_name=file.name,
            size=int(file.verified_size or 0),
            downloads_left=max(0, limit - count - 1),
        )
    raise TransferError("unavailable")  # the count kept moving under us: busy, nothing of this call was counted
