"""The outbox: every mail fxfer sends is first an OutboxMail item, committed with the change that causes it
(fxfer.change.Change.mail), then sent by outbox_send, right after the commit and, until SES accepts it, by the
retry job (outbox_retry, every minute).

SES has no idempotency key. A mail is claimed before it is sent (one sender at a time) and marked "sent" right
after SES accepts it; a sender killed between the two sends it again once its claim lapses: a rare duplicate is
accepted over a lost mail. Every mail ends "sent" (then perhaps "bounced" or "complained") or, after
MAX_ATTEMPTS or an error retrying cannot fix, "failed", each with exactly one "mail.sent" audit event.

Secrets (a link token, a one-time code) are derived from the item's `nonce` with the site's secret key
when the mail is sent, so the outbox table alone never reveals one.
"""

import base64
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.core.mail import EmailMessage
from pynamodb.exceptions import UpdateError

from fxfer.change import Change
from transfers.models import (
    MAIL_FAILED,
    MAIL_PENDING,
    MAIL_SENT,
    OneTimeCode,
    OutboxMail,
    Recipient,
)

logger = logging.getLogger(__name__)

PLACEHOLDER = "[[fxfer:derived]]"
UNSENT = "pending"
MAX_ATTEMPTS = 10
CLAIM_SECONDS = 90
# SES errors that the same message will meet again: give up at once.
PERMANENT_ERRORS = {"MessageRejected", "InvalidParameterValue", "MailFromDomainNotVerifiedException"}
LINK_KINDS = {"link", "request_link"}
STAFF_KINDS = {"summary"}


def new_nonce() -> str:
    return secrets.token_urlsafe(16)


def _derive(nonce: str, purpose: str) -> bytes:
    return hmac.new(settings.SECRET_KEY.encode(), f"fxfer.outbox.{purpose}|{nonce}".encode(), hashlib.sha256).digest()


def link_token(nonce: str) -> str:
    """The 256-bit link token a link mail carries (43 URL-safe characters)."""
    return base64.urlsafe_b64encode(_derive(nonce, "link")).rstrip(b"=").decode()


def one_time_code(nonce: str) -> str:
    """The six-digit code a code mail carries."""
    return f"{int.from_bytes(_derive(nonce, 'code'), 'big') % 1_000_000:06d}"


def derived_text(kind: str | None, nonce: str | None) -> str | None:
    if kind == "link" and nonce:
        return f"{settings.FXFER_BASE_URL}/t/{link_token(nonce)}"
    if kind == "code" and nonce:
        return one_time_code(nonce)
    return None


def outbox_item(
    *,
    key: str,
    kind: str,
    to: str,
    subject: str,
    body: str,
    now: datetime,
    reply_to: str | None = None,
    parent_id: str | None = None,
    recipient_id: str | None = None,
    audit_subject: str | None = None,
    derive: str | None = None,
    nonce: str | None = None,
    activates_token_hash: str | None = None,
) -> OutboxMail:
    """A new outbox mail. `body` holds PLACEHOLDER where the secret (`derive` "link": the whole link URL;
    "code": the code) goes."""
    return OutboxMail(
        mail_key=key,
        kind=kind,
        parent_id=parent_id,
        recipient_id=recipient_id,
        audit_subject=audit_subject or (f"transfer:{parent_id}" if parent_id else "system"),
        to=to,
        # Subjects carry user input: one line, so no header can be smuggled in.
        subject=" ".join(subject.split())[:250],
        body=body,
        reply_to=reply_to,
        derive=derive,
        nonce=nonce,
        activates_token_hash=activates_token_hash,
        status=MAIL_PENDING,
        created_at=now,
        next_attempt_at=now,
        unsent=UNSENT,
        purge_at=now + timedelta(days=settings.FXFER_AUDIT_RETENTION_DAYS),
    )


@dataclass(frozen=True)
class MailSent:
    mail_key: str
    sent: bool  # SES accepted it (now or before)
    status: str  # pending (to be retried), sent, failed, ...
    error: str | None = None


def outbox_send(*, mail_key: str, now: datetime | None = None) -> MailSent:
    """Send one outbox mail if it is still unsent and nobody else is sending it; record the outcome."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    try:
        mail = OutboxMail.get(mail_key, consistent_read=True)
    except OutboxMail.DoesNotExist:
        return MailSent(mail_key=mail_key, sent=False, status="missing")
    if mail.status != MAIL_PENDING:
        return MailSent(mail_key=mail_key, sent=mail.status != MAIL_FAILED, status=mail.status)
    attempt = int(mail.attempts or 0) + 1
    claim = now + timedelta(seconds=CLAIM_SECONDS)
    try:
        mail.update(
            actions=[OutboxMail.claimed_until.set(claim), OutboxMail.attempts.set(attempt)],
            condition=(OutboxMail.status == MAIL_PENDING)
            & (OutboxMail.attempts == int(mail.attempts or 0))
            & (OutboxMail.claimed_until.does_not_exist() | (OutboxMail.claimed_until < now)),
        )
    except UpdateError as exc:
        if getattr(exc, "cause_response_code", "") != "ConditionalCheckFailedException":
            raise
        mail.refresh(consistent_read=True)
        # Our own claim, whose answer was lost (botocore's retry met it): go on. Anyone else's: theirs to send.
        if not (mail.status == MAIL_PENDING and int(mail.attempts or 0) == attempt and mail.claimed_until == claim):
            return MailSent(mail_key=mail_key, sent=False, status=MAIL_PENDING)
    if attempt > MAX_ATTEMPTS:
        # Sent or tried often enough, and still not recorded as sent: stop rather than mail someone forever.
        return _failed(mail, attempt=attempt, exc=GaveUp("attempts"), now=now)
    try:
        message_id = _deliver(mail)
    except Exception as exc:  # any failure of the mail backend: record it, retry later or give up
        return _failed(mail, attempt=attempt, exc=exc, now=now)
    return _sent(mail, message_id=message_id, now=now)


class GaveUp(Exception):
    """The outbox stopped trying a mail."""


def _deliver(mail: OutboxMail) -> str | None:
    body = mail.body
    secret = derived_text(mail.derive, mail.nonce)
    if secret is not None:
        body = body.replace(PLACEHOLDER, secret)
    # `to` is one address; only a mail to staff named in settings (the daily summary) lists several. A guest's
    # address is never split: a quoted local part may hold a comma.
    to = [a.strip() for a in mail.to.split(",")] if mail.kind in STAFF_KINDS else [mail.to]
    message = EmailMessage(
        subject=mail.subject,
        body=body,
        to=to,
        reply_to=[mail.reply_to] if mail.reply_to else None,
    )
    message.send()
    return message.extra_headers.get("message_id")


def _sent(mail: OutboxMail, *, message_id: str | None, now: datetime) -> MailSent:
    from fxfer.change import ChangeRefused

    try:
        try:
            _commit_outcome(_sent_change(mail, message_id=message_id, now=now, with_recipient=True))
        except ChangeRefused as exc:
            if not exc.failed(_recipient_label(mail)):
                raise
            # The recipient is gone (its transfer was deleted meanwhile): the mail was still sent.
            _commit_outcome(_sent_change(mail, message_id=message_id, now=now, with_recipient=False))
    except Exception:
        # SES has it; recording that failed. The claim lapses and the retry job sends it again: a rare
        # duplicate, never a lost mail (and never more than MAX_ATTEMPTS).
        logger.exception("outbox.record.failed", extra={"mail_kind": mail.kind})
    return MailSent(mail_key=mail.mail_key, sent=True, status=MAIL_SENT)


def _recipient_label(mail: OutboxMail) -> str:
    return f"recipient:{mail.parent_id}:{mail.recipient_id}"


def _sent_change(mail: OutboxMail, *, message_id: str | None, now: datetime, with_recipient: bool) -> Change:
    change = Change(op=f"mail-sent:{mail.mail_key}" + ("" if with_recipient else ":alone"), now=now)
    actions = [
        OutboxMail.status.set(MAIL_SENT),
        OutboxMail.sent_at.set(now),
        OutboxMail.unsent.remove(),
        OutboxMail.claimed_until.remove(),
        OutboxMail.last_error.remove(),
    ]
    if message_id:
        actions.append(OutboxMail.ses_message_id.set(message_id))
    change.update(mail, actions=actions, condition=OutboxMail.status == MAIL_PENDING)
    if with_recipient and mail.recipient_id and mail.parent_id and mail.kind in LINK_KINDS:
        recipient = Recipient(parent_id=mail.parent_id, recipient_id=mail.recipient_id)
        link_actions = [Recipient.link_sent_at.set(now)]
        if mail.activates_token_hash:
            # The new link works from now on; the old one, its codes and its lock end here, not before.
            link_actions += [
                Recipient.token_hash.set(mail.activates_token_hash),
                Recipient.failed_code_attempts.set(0),
                Recipient.locked.set(False),
                Recipient.locked_at.remove(),
            ]
            change.delete(OneTimeCode(recipient_ref=f"{mail.parent_id}#{mail.recipient_id}"))
        change.update(
            recipient,
            actions=link_actions,
            condition=Recipient.recipient_id.exists(),
            label=_recipient_label(mail),
        )
    change.audit(
        "mail.sent",
        actor="system",
        subject=mail.audit_subject,
        kind=mail.kind,
        to=mail.to,
        recipient_id=mail.recipient_id,
        attempts=int(mail.attempts or 1),
    )
    return change


def _failed(mail: OutboxMail, *, attempt: int, exc: Exception, now: datetime) -> MailSent:
    code = _error_code(exc)
    final = code in PERMANENT_ERRORS or attempt >= MAX_ATTEMPTS
    logger.warning("outbox.send.failed", extra={"mail_kind": mail.kind, "error": code, "final": final})
    change = Change(op=f"mail-failed:{mail.mail_key}:{attempt}", now=now)
    if final:
        actions = [
            OutboxMail.status.set(MAIL_FAILED),
            OutboxMail.last_error.set(code),
            OutboxMail.unsent.remove(),
            OutboxMail.claimed_until.remove(),
        ]
        change.audit(
            "mail.sent",
            actor="system",
            subject=mail.audit_subject,
            outcome="failed",
            kind=mail.kind,
            to=mail.to,
            recipient_id=mail.recipient_id,
            error=code,
            attempts=attempt,
        )
    else:
        actions = [
            OutboxMail.last_error.set(code),
            OutboxMail.next_attempt_at.set(now + retry_delay(attempt)),
            OutboxMail.claimed_until.remove(),
        ]
    change.update(mail, actions=actions, condition=OutboxMail.status == MAIL_PENDING)
    try:
        _commit_outcome(change)
    except Exception:
        # The claim lapses and the retry job tries again: the mail is not lost.
        logger.exception("outbox.record.failed", extra={"mail_kind": mail.kind})
    return MailSent(mail_key=mail.mail_key, sent=False, status=MAIL_FAILED if final else MAIL_PENDING, error=code)


def _commit_outcome(change: Change) -> None:
    from fxfer.change import ChangeRefused

    try:
        change.commit(send_mails=False)
    except ChangeRefused as exc:
        if not exc.own_effect() and not exc.failed(_label_of(change)):
            raise


def _label_of(change: Change) -> str:
    return change._ops[0][0]


def retry_delay(attempt: int) -> timedelta:
    """1, 2, 4, … minutes, at most an hour: MAX_ATTEMPTS spans about five hours."""
    return timedelta(minutes=min(60, 2 ** (attempt - 1)))


def _error_code(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code", "ClientError")
    if isinstance(exc, BotoCoreError):
        return type(exc).__name__
    return type(exc).__name__


RETRY_PAGE = 200


@dataclass(frozen=True)
class OutboxRetried:
    tried: int
    sent: int
    complete: bool  # False: the deadline stopped it with mails still due


def outbox_retry(
    *, now: datetime | None = None, deadline: datetime | None = None, page_size: int = RETRY_PAGE
) -> OutboxRetried:
    """Send every mail due for another attempt (the retry job, every minute), a Query page of `page_size` at a
    time, stopping at `deadline` (then `complete` is False and the next minute goes on)."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    tried = sent = 0
    for key in OutboxMail.by_unsent.query(UNSENT, OutboxMail.next_attempt_at <= now, page_size=page_size):
        if deadline is not None and datetime.now(UTC) >= deadline:
            return OutboxRetried(tried=tried, sent=sent, complete=False)
        tried += 1
        sent += int(outbox_send(mail_key=key.mail_key, now=now).sent)
    return OutboxRetried(tried=tried, sent=sent, complete=True)
