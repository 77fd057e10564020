"""SES bounces and complaints: the SNS-delivered notification marks the guest's mail on the sender's page, writes
one audit event and tells the sender once, however often it is delivered; anything else is ignored."""

import json
import re
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy

import pytest
from django.conf import settings
from django.core.mail import send_mail
from django.test import Client
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from reports.models import AuditEvent
from tests.transfers.conftest import ALICE, create_request, ready_transfer
from transfers import selectors
from transfers.models import MAIL_BOUNCED, MAIL_COMPLAINED, MAIL_SENT, OutboxMail
from transfers.notifications import (
    on_ses_notification,
    ses_bounce_message,
    ses_complaint_message,
    sns_event,
)

GUEST = "nobody@partner.example"


@pytest.fixture(autouse=True)
def through_ses(settings):
    """Mail goes through (in-process) SES, as in production: bounces name SES's message ids."""
    settings.EMAIL_BACKEND = "fxfer.mail.SESBackend"


def ses_mail() -> list[dict]:
    """What SES accepted, oldest first: its message id, recipient, subject and text."""
    backend = ses_backends[DEFAULT_ACCOUNT_ID][settings.AWS_SES_REGION_NAME]
    out = []
    for message in backend.sent_messages:
        parsed = message_from_bytes(message.raw_data.encode("utf-8", "surrogateescape"), policy=policy.default)
        body = parsed.get_body(preferencelist=("plain",))
        out.append(
            {
                "id": message.id,
                "to": list(message.destinations),
                "subject": str(parsed["subject"]),
                "body": body.get_content() if body else "",
            }
        )
    return out


def mail_to(address: str) -> list[dict]:
    return [m for m in ses_mail() if set(m["to"]) == {address}]


def events(action: str) -> list[AuditEvent]:
    return [e for e in AuditEvent.scan() if e.action == action]


def recipient_state(transfer_id: str):
    detail = selectors.transfer_detail_for_owner(owner_id=ALICE.id, transfer_id=transfer_id)
    (recipient,) = detail.summary.recipients
    return recipient.link_mail


def test_a_permanent_bounce_marks_the_recipient_bounced_and_tells_the_sender_once():
    created, _ = ready_transfer(recipients=[GUEST], subject="Quarterly figures")
    (link,) = mail_to(GUEST)
    event = sns_event(
        ses_bounce_message(
            message_id=link["id"], to=GUEST, bounce_subtype="NoEmail", diagnostic="smtp; 550 5.1.1 user unknown"
        )
    )

    assert on_ses_notification(event, None) == {"records": [{"outcome": "bounced"}]}
    assert on_ses_notification(event, None) == {"records": [{"outcome": "already"}]}  # SNS delivers twice

    state = recipient_state(created.transfer_id)
    assert state.status == MAIL_BOUNCED
    assert state.bounce_reason == "the address does not exist (smtp; 550 5.1.1 user unknown)"
    (bounced,) = events("mail.bounced")
    assert bounced.subject == f"transfer:{created.transfer_id}"
    assert bounced.outcome == "ok"
    assert bounced.details["to"] == GUEST
    assert bounced.details["bounce_type"] == "Permanent"
    (notice,) = mail_to(ALICE.email)
    assert notice["subject"] == f"Mail to {GUEST} could not be delivered"
    assert f"Your mail to {GUEST} could not be delivered: the address does not exist" in notice["body"]
    assert "make a new transfer to the correct address" in notice["body"]
    assert "Quarterly figures" in notice["body"]
    assert f"{settings.FXFER_BASE_URL}/transfers/{created.transfer_id}/" in notice["body"]
    # The notice itself went through the outbox and its "mail.sent" event, like every mail.
    notices = [m for m in OutboxMail.by_parent.query(created.transfer_id) if m.kind == "bounce_notice"]
    assert [m.status for m in notices] == [MAIL_SENT]


def test_the_same_bounce_much_later_is_still_recorded_once():
    ready_transfer(recipients=[GUEST])
    (link,) = mail_to(GUEST)
    event = sns_event(ses_bounce_message(message_id=link["id"], to=GUEST))
    on_ses_notification(event, None)
    from devtools.moto_atomic import forget_transaction_tokens

    forget_transaction_tokens()  # past the ten minutes a transaction token lasts
    assert on_ses_notification(event, None)["records"] == [{"outcome": "already"}]
    assert len(events("mail.bounced")) == 1
    assert len(mail_to(ALICE.email)) == 1


def test_a_soft_bounce_leaves_the_mail_sent_and_says_it_may_still_arrive():
    created, _ = ready_transfer(recipients=[GUEST])
    (link,) = mail_to(GUEST)
    soft = ses_bounce_message(
        message_id=link["id"], to=GUEST, bounce_type="Transient", bounce_subtype="MailboxFull", diagnostic=None
    )

    assert on_ses_notification(sns_event(soft), None)["records"] == [{"outcome": "soft_bounce"}]
    on_ses_notification(sns_event(soft), None)

    assert recipient_state(created.transfer_id).status == MAIL_SENT
    (bounced,) = events("mail.bounced")
    assert (bounced.outcome, bounced.details["reason"]) == ("transient", "the mailbox is full")
    (notice,) = mail_to(ALICE.email)
    assert notice["subject"] == f"Mail to {GUEST} may not have arrived"
    assert "It may still arrive" in notice["body"]
    assert "send the link again" in notice["body"]

    # SES gives up later: now it is a permanent bounce, recorded on its own.
    hard = ses_bounce_message(message_id=link["id"], to=GUEST)
    assert on_ses_notification(sns_event(hard), None)["records"] == [{"outcome": "bounced"}]
    assert recipient_state(created.transfer_id).status == MAIL_BOUNCED
    assert len(mail_to(ALICE.email)) == 2


def test_a_request_guest_bounce_tells_the_employee_to_ask_again():
    created = create_request(recipients=[GUEST], subject="Signed contract")
    (link,) = mail_to(GUEST)
    on_ses_notification(sns_event(ses_bounce_message(message_id=link["id"], to=GUEST)), None)

    detail = selectors.request_detail_for_owner(owner_id=ALICE.id, request_id=created.request_id)
    (guest,) = detail.summary.guests
    assert guest.link_mail.status == MAIL_BOUNCED
    (notice,) = mail_to(ALICE.email)
    assert "make a new request to the correct address" in notice["body"]
    assert f"/requests/{created.request_id}/" in notice["body"]


def test_a_complaint_marks_the_mail_and_mails_nobody():
    created, _ = ready_transfer(recipients=[GUEST])
    (link,) = mail_to(GUEST)
    event = sns_event(ses_complaint_message(message_id=link["id"], to=GUEST))

    assert on_ses_notification(event, None)["records"] == [{"outcome": "complained"}]
    on_ses_notification(event, None)

    state = recipient_state(created.transfer_id)
    assert (state.status, state.bounce_reason) == (MAIL_COMPLAINED, "the recipient marked it as spam (abuse)")
    (complained,) = events("mail.complained")
    assert complained.subject == f"transfer:{created.transfer_id}"
    assert mail_to(ALICE.email) == []


def test_a_bounced_notice_to_the_sender_causes_no_further_mail():
    ready_transfer(recipients=[GUEST])
    (link,) = mail_to(GUEST)
    on_ses_notification(sns_event(ses_bounce_message(message_id=link["id"], to=GUEST)), None)
    (notice,) = mail_to(ALICE.email)

    result = on_ses_notification(sns_event(ses_bounce_message(message_id=notice["id"], to=ALICE.email)), None)

    assert result["records"] == [{"outcome": "bounced"}]
    assert len(events("mail.bounced")) == 2
    assert len(ses_mail()) == 2  # the link and the one notice: nothing more


def test_configuration_set_events_are_understood_too():
    created, _ = ready_transfer(recipients=[GUEST])
    (link,) = mail_to(GUEST)
    message = ses_bounce_message(message_id=link["id"], to=GUEST)
    message["eventType"] = message.pop("notificationType")  # configuration-set event publishing

    assert on_ses_notification(sns_event(message), None)["records"] == [{"outcome": "bounced"}]
    assert recipient_state(created.transfer_id).status == MAIL_BOUNCED


def test_malformed_foreign_and_unknown_records_are_skipped_and_never_retried(settings):
    created, _ = ready_transfer(recipients=[GUEST])
    (link,) = mail_to(GUEST)
    settings.FXFER_SES_NOTIFICATIONS_TOPIC = "fxfer-test-ses-notifications"
    ours = "arn:aws:sns:ap-northeast-1:123456789012:fxfer-test-ses-notifications"
    bounce = ses_bounce_message(message_id=link["id"], to=GUEST)
    long_ago = datetime.now(UTC) - timedelta(days=3)
    delivery = {"notificationType": "Delivery", "mail": {"messageId": link["id"]}, "delivery": {}}
    records = [
        {"Sns": {"TopicArn": ours, "Message": "not json"}},
        {"Sns": {"TopicArn": ours, "Message": json.dumps({"notificationType": "Bounce", "mail": {}})}},
        {"Sns": {"TopicArn": ours, "Message": json.dumps({"notificationType": "Bounce", "mail": {"messageId": "m"}})}},
        {"not": "sns"},
        {"Sns": {"TopicArn": "arn:aws:sns:ap-northeast-1:123456789012:someone-else", "Message": json.dumps(bounce)}},
        {"Sns": {"TopicArn": ours, "Message": json.dumps(delivery)}},
        sns_event(ses_bounce_message(message_id="not-ours", to=GUEST, sent_at=long_ago), topic_arn=ours)["Records"][0],
    ]

    result = on_ses_notification({"Records": records}, None)

    assert [r["outcome"] for r in result["records"]] == [
        "malformed",
        "malformed",
        "malformed",
        "malformed",
        "ignored",
        "ignored",
        "unknown_message",
    ]
    assert recipient_state(created.transfer_id).status == MAIL_SENT
    assert events("mail.bounced") == []
    assert mail_to(ALICE.email) == []


def test_a_fresh_notification_for_a_mail_not_found_yet_raises_so_lambda_retries():
    event = sns_event(ses_bounce_message(message_id="sent-a-moment-ago", to=GUEST))
    with pytest.raises(Exception, match="Lambda retries"):
        on_ses_notification(event, None)


# --- the local dev mailbox: "Simulate bounce" -------------------------------------------------------------------

CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def test_the_dev_mailbox_bounces_a_mail_the_way_ses_reports_it():
    created, _ = ready_transfer(recipients=[GUEST], subject="Quarterly figures")
    (link,) = mail_to(GUEST)
    browser = Client(enforce_csrf_checks=True)
    page = browser.get("/dev/mailbox/").content.decode()
    action = f"/dev/mailbox/{link['id']}/bounce"
    assert f'action="{action}"' in page
    assert "Simulate complaint" in page

    assert browser.post(action).status_code == 403  # no CSRF token: nothing happens
    assert recipient_state(created.transfer_id).status == MAIL_SENT

    response = browser.post(action, {"csrfmiddlewaretoken": CSRF_FIELD.search(page)[1]})
    assert response.status_code == 302
    page = browser.get(response["Location"]).content.decode()

    assert f"Simulated bounce of the mail to {GUEST}: The mail is marked bounced" in page
    assert f"Mail to {GUEST} could not be delivered" in page  # the sender's notice, in the same mailbox
    state = recipient_state(created.transfer_id)
    assert state.status == MAIL_BOUNCED
    assert state.bounce_reason.startswith("the address does not exist")
    (notice,) = mail_to(ALICE.email)
    assert "the address does not exist" in notice["body"]


def test_the_dev_mailbox_simulates_a_complaint_and_says_when_a_mail_is_not_ours(settings):
    created, _ = ready_transfer(recipients=[GUEST])
    (link,) = mail_to(GUEST)
    browser = Client()
    response = browser.post(f"/dev/mailbox/{link['id']}/complaint", follow=True)
    assert "The mail is marked as a complaint" in response.content.decode()
    assert recipient_state(created.transfer_id).status == MAIL_COMPLAINED

    # A mail that did not go through the outbox (sent a moment ago): the handler would have Lambda retry it.
    send_mail("Hello", "Just a note.", None, ["someone@partner.example"])
    (direct,) = mail_to("someone@partner.example")
    response = browser.post(f"/dev/mailbox/{direct['id']}/bounce", follow=True)
    assert "Not recorded: the handler raised" in response.content.decode()
    assert browser.post("/dev/mailbox/no-such-message/bounce").status_code == 404
    assert browser.post(f"/dev/mailbox/{link['id']}/explode").status_code == 404
    assert browser.get(f"/dev/mailbox/{link['id']}/bounce").status_code == 405
