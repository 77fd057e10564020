"""SES bounces and complaints: SES publishes them, through the configuration set every mail is sent with, to an
SNS topic, and the topic invokes `on_ses_notification` (a Zappa event source). Each one is recorded on the
outbox mail it is about (found by SES's message id, the `by-message` index), so the transfer's or request's
page shows the recipient's mail as bounced, and the sender is told so they can correct the address.

What a notification changes, in ONE transaction (fxfer.change.Change) whose operation id derives from SES's
message id and the kind of notification, so a notification delivered twice (SNS and Lambda both deliver at
least once) records nothing twice:

- a **permanent** bounce (the address does not exist, the mailbox is disabled, SES suppresses the address):
  the mail becomes "bounced" with the reason, a "mail.bounced" audit event, and for a guest's link mail
  (a transfer's or a request's) a notice to the sender naming the address and the reason;
- a **transient** or undetermined bounce (mailbox full, message too large, a server refusing for now): the
  mail stays "sent", since it may still arrive and sending again may work; a "mail.bounced" event with outcome
  "transient" and, for a link mail, a notice to the sender that it may not have arrived (they can send the
  link again). Only permanent bounces count as bounces in the daily figures;
- a **complaint** (the recipient marked it as spam): the mail becomes "complained" and a "mail.complained"
  event is written. No mail to the sender: the guest said they do not want mail from us, and the page
  shows it.

Only a mail to a guest (a link mail) causes a notice; a bounced notice or a bounced mail to an employee never
causes another mail, so bounces cannot loop.

What is verified: SNS invokes the Lambda only through the permission Zappa grants the topic, and a record from
another topic than ours (named by `FXFER_SES_NOTIFICATIONS_TOPIC`) is ignored. A malformed record, a kind
of notification we do not handle and a message that is not ours are logged and skipped, never retried: a
retry cannot fix them. An AWS failure raises, after the other records are done, so Lambda retries the
event (the records already recorded are no-ops then). A message id not found yet while the notification is
fresh raises too: the index is eventually consistent and the "sent" record may land a moment after SES has
the mail, so Lambda's retry a minute later finds it.
"""

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.urls import reverse

from fxfer import i18n
from fxfer.change import Change, ChangeRefused, old_value
from fxfer.observability import observed_job
from transfers import mails
from transfers.models import (
    KIND_REQUEST,
    MAIL_BOUNCED,
    MAIL_COMPLAINED,
    MAIL_SENT,
    OutboxMail,
    Transfer,
)
from transfers.outbox import LINK_KINDS

logger = logging.getLogger(__name__)

BOUNCE, SOFT_BOUNCE, COMPLAINT = "bounce", "soft-bounce", "complaint"
PERMANENT = "Permanent"
# A message id not found within this long after SES took the mail may still be on its way to the index.
FRESH = timedelta(minutes=15)
REASON_MAX = 300

# What each SES bounce subtype means to a person (https://docs.aws.amazon.com/ses/latest/dg/notification-contents.html)
_SUBTYPES = {
    ("Permanent", "General"): "the receiving mail server refused it",
    ("Permanent", "NoEmail"): "the address does not exist",
    ("Permanent", "Suppressed"): "the address bounced before and is on Amazon SES's suppression list",
    ("Permanent", "OnAccountSuppressionList"): "the address is on this site's suppression list",
    ("Transient", "General"): "the receiving mail server did not accept it for now",
    ("Transient", "MailboxFull"): "the mailbox is full",
    ("Transient", "MessageTooLarge"): "the message was too large for the receiving server",
    ("Transient", "ContentRejected"): "the receiving server rejected its content",
    ("Transient", "AttachmentRejected"): "the receiving server rejected an attachment",
}


class MalformedNotification(ValueError):
    """A record that is not an SES bounce or complaint as SES writes them: logged and skipped."""


class NotificationNotReady(Exception):
    """The mail a fresh notification names is not found yet: Lambda retries the event."""


@dataclass(frozen=True)
class SesNotification:
    """One SES bounce or complaint, as far as fxfer needs it."""

    kind: str  # BOUNCE, SOFT_BOUNCE or COMPLAINT
    message_id: str  # SES's id of the mail ("mail.messageId"), as SendRawEmail returned it
    mail_timestamp: datetime | None  # when SES took the mail
    feedback_id: str | None = None
    bounce_type: str | None = None  # "Permanent", "Transient", "Undetermined"
    bounce_subtype: str | None = None
    recipients: tuple[tuple[str, str | None], ...] = ()  # (address, the receiving server's diagnostic)
    complaint_type: str | None = None  # "abuse", "not-spam", ... when the mailbox provider says


@dataclass(frozen=True)
class NotificationRecorded:
    outcome: str  # "bounced", "soft_bounce", "complained", "already" (recorded before), "unknown_message", "ignored"
    mail_key: str | None = None
    notice_key: str | None = None  # the outbox key of the sender's notice, when one was committed now


def parse_ses_notification(message: dict) -> SesNotification | None:
    """An SES notification (identity notification or configuration-set event) → SesNotification; None for a
    kind fxfer does not record (a delivery, an open, ...). Raises MalformedNotification."""
    if not isinstance(message, dict):
        raise MalformedNotification("not an object")
    kind = message.get("notificationType") or message.get("eventType")
    if not isinstance(kind, str):
        raise MalformedNotification("no notificationType or eventType")
    if kind not in ("Bounce", "Complaint"):
        return None
    mail = message.get("mail")
    message_id = mail.get("messageId") if isinstance(mail, dict) else None
    if not isinstance(message_id, str) or not message_id or len(message_id) > 256:
        raise MalformedNotification("no mail.messageId")
    timestamp = _time(mail.get("timestamp"))
    if kind == "Bounce":
        bounce = message.get("bounce")
        if not isinstance(bounce, dict) or not isinstance(bounce.get("bounceType"), str):
            raise MalformedNotification("no bounce.bounceType")
        recipients = tuple(
            (str(r.get("emailAddress") or ""), _text(r.get("diagnosticCode")))
            for r in bounce.get("bouncedRecipients") or ()
            if isinstance(r, dict)
        )
        return SesNotification(
            kind=BOUNCE if bounce["bounceType"] == PERMANENT else SOFT_BOUNCE,
            message_id=message_id,
            mail_timestamp=timestamp,
            feedback_id=_text(bounce.get("feedbackId")),
            bounce_type=bounce["bounceType"],
            bounce_subtype=_text(bounce.get("bounceSubType")),
            recipients=recipients,
        )
    complaint = message.get("complaint")
    if not isinstance(complaint, dict):
        raise MalformedNotification("no complaint")
    recipients = tuple(
        (str(r.get("emailAddress") or ""), None)
        for r in complaint.get("complainedRecipients") or ()
        if isinstance(r, dict)
    )
    return SesNotification(
        kind=COMPLAINT,
        message_id=message_id,
        mail_timestamp=timestamp,
        feedback_id=_text(complaint.get("feedbackId")),
        recipients=recipients,
        complaint_type=_text(complaint.get("complaintFeedbackType")),
    )


def _text(value) -> str | None:
    return str(value)[:REASON_MAX] if value not in (None, "") else None


def _time(value) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def bounce_reason(notification: SesNotification, address: str) -> str:
    """What a person is told: the meaning of the bounce, and the receiving server's own words when it gave any."""
    meaning = _SUBTYPES.get((notification.bounce_type, notification.bounce_subtype))
    if meaning is None:
        meaning = (
            "the receiving mail server refused it"
            if notification.bounce_type == PERMANENT
            else "the receiving mail server did not accept it (it did not say why)"
        )
    diagnostic = next((d for a, d in notification.recipients if a.casefold() == address.casefold() and d), None)
    if diagnostic is None:
        diagnostic = next((d for _a, d in notification.recipients if d), None)
    reason = f"{meaning} ({diagnostic})" if diagnostic else meaning
    return " ".join(reason.split())[:REASON_MAX]


def complaint_reason(notification: SesNotification) -> str:
    kind = f" ({notification.complaint_type})" if notification.complaint_type else ""
    return f"the recipient marked it as spam{kind}"[:REASON_MAX]


def ses_notification_record(*, notification: SesNotification, now: datetime | None = None) -> NotificationRecorded:
    """Record one SES bounce or complaint on the outbox mail it names (see the module's docstring). Idempotent:
    a repeated notification records nothing again. Raises NotificationNotReady when a fresh notification's
    mail is not found yet, and ChangeRefused / AWS errors when retrying may help."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    mail = _mail_for(notification.message_id)
    if mail is None:
        if notification.mail_timestamp is not None and now - notification.mail_timestamp < FRESH:
            raise NotificationNotReady(notification.message_id)
        logger.info("ses.notification.unknown_message", extra={"notification_kind": notification.kind})
        return NotificationRecorded(outcome="unknown_message")
    target = {BOUNCE: MAIL_BOUNCED, COMPLAINT: MAIL_COMPLAINED}.get(notification.kind)
    if mail.status in (MAIL_BOUNCED, MAIL_COMPLAINED):
        # Recorded before (together with its event and notice), or a complaint about a mail that bounced.
        return NotificationRecorded(outcome="already", mail_key=mail.mail_key)
    if mail.status != MAIL_SENT:
        logger.warning("ses.notification.unsent_mail", extra={"mail_status": mail.status})
        return NotificationRecorded(outcome="ignored", mail_key=mail.mail_key)

    op = f"ses-{notification.kind}:{notification.message_id}"
    change = Change(op=op, now=now)
    label = f"outbox:{mail.mail_key}"
    if notification.kind == COMPLAINT:
        reason = complaint_reason(notification)
        action, outcome = "mail.complained", "ok"
    else:
        reason = bounce_reason(notification, mail.to)
        action, outcome = "mail.bounced", "ok" if notification.kind == BOUNCE else "transient"
    if target is not None:
        actions = [OutboxMail.status.set(target), OutboxMail.bounce_reason.set(reason)]
        if target == MAIL_BOUNCED:
            actions.append(OutboxMail.bounced_at.set(now))
        change.update(mail, actions=actions, condition=OutboxMail.status == MAIL_SENT, label=label)
    change.audit(
        action,
        actor="system",
        subject=mail.audit_subject,
        outcome=outcome,
        kind=mail.kind,
        to=mail.to,
        recipient_id=mail.recipient_id,
        reason=reason,
        bounce_type=notification.bounce_type,
        bounce_subtype=notification.bounce_subtype,
        complaint_type=notification.complaint_type,
        ses_message_id=notification.message_id,
        feedback_id=notification.feedback_id,
    )
    notice_key = None
    if notification.kind != COMPLAINT and mail.kind in LINK_KINDS and mail.parent_id:
        notice_key = _notice(change, mail=mail, notification=notification, reason=reason, now=now)
    try:
        change.commit()
    except ChangeRefused as exc:
        refusal = exc.failed(label)
        others = [r for r in exc.refusals if refusal is None or r.index != refusal.index]
        recorded_before = refusal is not None and old_value(refusal, "status") in (MAIL_BOUNCED, MAIL_COMPLAINED)
        own = all(r.code == "ConditionalCheckFailed" and exc.labels[r.index].startswith("own:") for r in others)
        if exc.own_effect() or (recorded_before and own):
            return NotificationRecorded(outcome="already", mail_key=mail.mail_key)
        raise
    outcome_name = {BOUNCE: "bounced", SOFT_BOUNCE: "soft_bounce", COMPLAINT: "complained"}[notification.kind]
    logger.info("ses.notification.recorded", extra={"notification_kind": notification.kind, "mail_kind": mail.kind})
    return NotificationRecorded(outcome=outcome_name, mail_key=mail.mail_key, notice_key=notice_key)


def _mail_for(message_id: str) -> OutboxMail | None:
    for key in OutboxMail.by_message.query(message_id, limit=1):
        try:
            return OutboxMail.get(key.mail_key, consistent_read=True)
        except OutboxMail.DoesNotExist:
            return None
    return None


def _notice(
    change: Change, *, mail: OutboxMail, notification: SesNotification, reason: str, now: datetime
) -> str | None:
    """Add the sender's notice to the change: their mail to a guest bounced."""
    try:
        parent = Transfer.get(mail.parent_id, consistent_read=True)
    except Transfer.DoesNotExist:
        return None
    request = parent.kind == KIND_REQUEST
    page = reverse("transfers:request_detail" if request else "transfers:detail", args=[parent.transfer_id])
    with i18n.in_owner_language(parent):
        draft = mails.bounce_notice_mail(
            to=parent.owner_email,
            recipient=mail.to,
            subject=parent.subject,
            reason=reason,
            permanent=notification.kind == BOUNCE,
            request=request,
            at=now,
            page=f"{settings.FXFER_BASE_URL}{page}",
        )
    return change.mail(
        key=f"bounce_notice:{parent.transfer_id}:{notification.kind}:{notification.message_id}",
        kind="bounce_notice",
        parent_id=parent.transfer_id,
        audit_subject=mail.audit_subject,
        **draft.fields(),
    )


# --- the Lambda entry point ------------------------------------------------------------------------------------


def our_topic() -> str | None:
    """The name of our SNS topic of SES notifications (FXFER_SES_NOTIFICATIONS_TOPIC); None: not configured."""
    return getattr(settings, "FXFER_SES_NOTIFICATIONS_TOPIC", None) or None


@observed_job("transfers.notifications.on_ses_notification")
def on_ses_notification(event: dict, context=None) -> dict:
    """SNS → each SES bounce or complaint recorded (see the module's docstring). Raises, after trying every
    record, when one failed in a way a retry may fix, so Lambda retries the event."""
    results = []
    failed = 0
    for record in (event or {}).get("Records") or ():
        try:
            notification = _notification_of(record)
        except MalformedNotification as exc:
            logger.warning("ses.notification.malformed", extra={"reason": str(exc)})
            results.append({"outcome": "malformed"})
            continue
        if notification is None:
            results.append({"outcome": "ignored"})
            continue
        try:
            recorded = ses_notification_record(notification=notification)
        except Exception:
            logger.exception("ses.notification.failed", extra={"notification_kind": notification.kind})
            failed += 1
            results.append({"outcome": "failed"})
            continue
        results.append({"outcome": recorded.outcome})
    if failed:
        raise NotificationFailed(f"{failed} of {len(results)} SES notifications not recorded; Lambda retries them")
    return {"records": results}


class NotificationFailed(Exception):
    """Some records of an event could not be recorded now: raised so Lambda retries the event."""


def _notification_of(record) -> SesNotification | None:
    """The SES notification an SNS record carries; None when it is from another topic or of another kind."""
    if not isinstance(record, dict) or not isinstance(record.get("Sns"), dict):
        raise MalformedNotification("not an SNS record")
    sns = record["Sns"]
    topic = our_topic()
    # arn:aws:sns:<region>:<account>:<name>; the account is not in the settings, and only our topic's
    # subscription may invoke the function anyway.
    if topic is not None and str(sns.get("TopicArn") or "").rpartition(":")[2] != topic:
        logger.warning("ses.notification.foreign_topic")
        return None
    try:
        message = json.loads(sns.get("Message") or "")
    except (TypeError, ValueError):
        raise MalformedNotification("Message is not JSON") from None
    return parse_ses_notification(message)


def sns_event(message: dict, *, topic_arn: str | None = None) -> dict:
    """An SNS → Lambda event carrying one SES notification, as AWS delivers it (the dev mailbox's "Simulate
    bounce" builds its events with this)."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    name = our_topic() or "fxfer-ses-notifications"
    topic = topic_arn or f"arn:aws:sns:{settings.FXFER_AWS_REGION}:000000000000:{name}"
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": f"{topic}:local",
                "Sns": {
                    "Type": "Notification",
                    "MessageId": f"local-{message.get('mail', {}).get('messageId', '')}-{now}",
                    "TopicArn": topic,
                    "Subject": None,
                    "Message": json.dumps(message),
                    "Timestamp": now,
                },
            }
        ]
    }


def ses_bounce_message(
    *,
    message_id: str,
    to: str,
    bounce_type: str = PERMANENT,
    bounce_subtype: str = "General",
    diagnostic: str | None = "smtp; 550 5.1.1 user unknown",
    sent_at: datetime | None = None,
) -> dict:
    """An SES bounce notification for one of our messages, as SES writes it (for the dev mailbox and tests)."""
    recipient = {"emailAddress": to, "action": "failed", "status": "5.1.1"}
    if diagnostic:
        recipient["diagnosticCode"] = diagnostic
    return {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": bounce_type,
            "bounceSubType": bounce_subtype,
            "bouncedRecipients": [recipient],
            "timestamp": _iso(datetime.now(UTC)),
            "feedbackId": f"{message_id}-bounce",
        },
        "mail": _mail_part(message_id=message_id, to=to, sent_at=sent_at),
    }


def ses_complaint_message(*, message_id: str, to: str, sent_at: datetime | None = None) -> dict:
    """An SES complaint notification for one of our messages, as SES writes it."""
    return {
        "notificationType": "Complaint",
        "complaint": {
            "complainedRecipients": [{"emailAddress": to}],
            "complaintFeedbackType": "abuse",
            "timestamp": _iso(datetime.now(UTC)),
            "feedbackId": f"{message_id}-complaint",
        },
        "mail": _mail_part(message_id=message_id, to=to, sent_at=sent_at),
    }


def _mail_part(*, message_id: str, to: str, sent_at: datetime | None) -> dict:
    return {
        "timestamp": _iso(sent_at or datetime.now(UTC)),
        "messageId": message_id,
        "source": settings.DEFAULT_FROM_EMAIL,
        "destination": [to],
    }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
