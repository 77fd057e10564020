"""The sender's side after creation: release mails (through SES too), revoke, extend, resend, and the lists."""

from datetime import timedelta
from email import message_from_string, policy

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends
from pynamodb.exceptions import TransactWriteError

from reports.models import AuditEvent
from tests.faults import ERROR, LOST, inject
from tests.transfers.conftest import (
    ALICE,
    LINK,
    MALLORY,
    NOW,
    code_from,
    create,
    later,
    put_object_as_browser,
    ready_transfer,
)
from transfers import selectors, services
from transfers.errors import TransferError
from transfers.models import File, Recipient, Transfer
from transfers.outbox import outbox_retry
from transfers.policy import FileDeclared

BOB = "bob@partner.example"


def _refused(code: str, call) -> TransferError:
    with pytest.raises(TransferError) as caught:
        call()
    assert caught.value.code == code, caught.value
    return caught.value


def _actions() -> list[tuple[str, str]]:
    return [(e.action, e.outcome) for e in sorted(AuditEvent.scan(), key=lambda e: e.sort_key)]


def test_release_mails_go_through_ses_one_message_per_recipient(settings):
    settings.EMAIL_BACKEND = "fxfer.mail.SESBackend"
    ready_transfer(recipients=[BOB, "carol@other.example"])
    sent = ses_backends[DEFAULT_ACCOUNT_ID][settings.AWS_SES_REGION_NAME].sent_messages
    # moto lists a raw message's destinations from the call and from its headers: the same address twice.
    assert sorted(tuple(set(m.destinations)) for m in sent) == [(BOB,), ("carol@other.example",)]
    links = set()
    for raw in sent:
        message = message_from_string(raw.raw_data, policy=policy.default)
        body = message.get_body(preferencelist=("plain",)).get_content()
        assert message["From"] == settings.DEFAULT_FROM_EMAIL and message["Reply-To"] == ALICE.email
        links.add(body.split(f"{settings.FXFER_BASE_URL}/t/")[1].split()[0])
    assert len(links) == 2
    assert _actions().count(("mail.sent", "ok")) == 2


def test_release_happens_once_however_often_it_is_asked(mailoutbox):
    created, _tokens = ready_transfer(recipients=[BOB], mailoutbox=mailoutbox)
    again = services.transfer_release(transfer_id=created.transfer_id)
    assert (again.released, again.mails_sent) == (False, 0)
    assert len(mailoutbox) == 1


def test_a_transfer_past_its_expiry_is_never_released(mailoutbox):
    created = create(expires_in=timedelta(hours=1))
    put_object_as_browser(created.files[0].key, b"hello world")
    result = services.file_verify(key=created.files[0].key, now=later(61))
    assert (result.outcome, result.released) == ("verified", False)
    assert Transfer.get(created.transfer_id).status == "pending" and mailoutbox == []


def test_revoke_is_for_the_owner_only_and_happens_once(mailoutbox):
    created, _tokens = ready_transfer(recipients=[BOB], mailoutbox=mailoutbox)
    _refused("not_found", lambda: services.transfer_revoke(owner_id=MALLORY.id, transfer_id=created.transfer_id))
    revoked = services.transfer_revoke(owner_id=ALICE.id, transfer_id=created.transfer_id, ip="192.0.2.1", now=NOW)
    assert revoked.revoked_at == NOW
    _refused("state_conflict", lambda: services.transfer_revoke(owner_id=ALICE.id, transfer_id=created.transfer_id))
    [event] = [e for e in AuditEvent.scan() if e.action == "transfer.revoked"]
    assert (event.actor, event.ip) == (f"user:{ALICE.id}", "192.0.2.1")


def test_extend_moves_the_expiry_within_policy(mailoutbox, settings):
    settings.FXFER_MAX_EXPIRY_DAYS = 14
    created, _tokens = ready_transfer(recipients=[BOB], mailoutbox=mailoutbox)
    ids = {"owner_id": ALICE.id, "transfer_id": created.transfer_id, "now": NOW}
    extended = services.transfer_extend(**ids, expires_at=NOW + timedelta(days=14))
    assert Transfer.get(created.transfer_id).expires_at == extended.expires_at == NOW + timedelta(days=14)
    _refused("expiry_invalid", lambda: services.transfer_extend(**ids, expires_at=NOW + timedelta(days=14, seconds=1)))
    _refused("expiry_invalid", lambda: services.transfer_extend(**ids, expires_at=NOW + timedelta(days=3)))
    _refused("not_found", lambda: services.transfer_extend(**{**ids, "owner_id": MALLORY.id}, expires_at=later(days=9)))
    assert ("transfer.extended", "ok") in _actions()


def test_an_expired_or_revoked_transfer_cannot_be_extended(mailoutbox):
    created, _tokens = ready_transfer(recipients=[BOB], mailoutbox=mailoutbox)
    ids = {"owner_id": ALICE.id, "transfer_id": created.transfer_id}
    _refused("state_conflict", lambda: services.transfer_extend(**ids, expires_at=later(days=9), now=later(days=7)))
    services.transfer_revoke(**ids)
    _refused("state_conflict", lambda: services.transfer_extend(**ids, expires_at=later(days=9), now=NOW))


def test_resend_is_for_ready_transfers_and_known_recipients_only(mailoutbox):
    created = create()
    bob = next(iter(Recipient.query(created.transfer_id)))
    ids = {"owner_id": ALICE.id, "transfer_id": created.transfer_id}
    _refused("state_conflict", lambda: services.recipient_resend(**ids, recipient_id=bob.recipient_id))
    put_object_as_browser(created.files[0].key, b"hello world")
    services.upload_done(**ids, file_id=created.files[0].file_id)
    _refused("not_found", lambda: services.recipient_resend(**ids, recipient_id="nobody-at-all-0"))
    _refused(
        "not_found", lambda: services.recipient_resend(**{**ids, "owner_id": MALLORY.id}, recipient_id=bob.recipient_id)
    )
    mailoutbox.clear()
    resent = services.recipient_resend(**ids, recipient_id=bob.recipient_id)
    assert resent.email == BOB and [m.to for m in mailoutbox] == [[BOB]]
    assert ("link.resent", "ok") in _actions()


# --- selectors --------------------------------------------------------------------------------------------------


def test_my_transfers_lists_newest_first_a_page_at_a_time_and_only_mine(mailoutbox):
    for day in range(5):
        create(now=NOW + timedelta(days=day), subject=f"transfer {day}")
    create(sender=MALLORY, subject="not alice's")
    first = selectors.transfer_list_for_owner(owner_id=ALICE.id, limit=2, now=NOW)
    assert [t.subject for t in first.items] == ["transfer 4", "transfer 3"]
    second = selectors.transfer_list_for_owner(owner_id=ALICE.id, cursor=first.next_cursor, limit=2, now=NOW)
    third = selectors.transfer_list_for_owner(owner_id=ALICE.id, cursor=second.next_cursor, limit=2, now=NOW)
    assert [t.subject for t in second.items + third.items] == ["transfer 2", "transfer 1", "transfer 0"]
    assert all(t.status == "pending" and t.recipients[0].email == BOB for t in first.items)
    # Alice's cursor cannot page through Mallory's list.
    _refused("invalid", lambda: selectors.transfer_list_for_owner(owner_id=MALLORY.id, cursor=first.next_cursor))
    _refused("invalid", lambda: selectors.transfer_list_for_owner(owner_id=ALICE.id, cursor="not-a-cursor!"))


def test_the_detail_shows_files_and_each_recipients_downloads(mailoutbox):
    created, tokens = ready_transfer(recipients=[BOB, "carol@other.example"], mailoutbox=mailoutbox)
    services.guest_code_send(token=tokens[BOB], now=NOW)
    access = services.guest_code_verify(token=tokens[BOB], code=code_from(mailoutbox, BOB), now=NOW)
    services.guest_download_url(
        transfer_id=access.transfer_id,
        recipient_id=access.recipient_id,
        grant=access.grant,
        file_id=created.files[0].file_id,
        now=NOW,
    )
    detail = selectors.transfer_detail_for_owner(owner_id=ALICE.id, transfer_id=created.transfer_id, now=NOW)
    assert detail.summary.status == "ready" and detail.released_at
    [file] = detail.files
    assert (file.name, file.size, file.state) == ("report.pdf", 11, "verified") and file.checksum
    downloads = {r.email: (r.downloads_used, r.file_downloads) for r in detail.summary.recipients}
    assert downloads == {BOB: (1, {file.file_id: 1}), "carol@other.example": (0, {})}
    _refused(
        "not_found", lambda: selectors.transfer_detail_for_owner(owner_id=MALLORY.id, transfer_id=created.transfer_id)
    )


def test_a_refused_file_shows_why_in_the_detail():
    created = create(files=[FileDeclared(name="a.pdf", size=11)])
    put_object_as_browser(created.files[0].key, b"too many bytes")
    services.upload_done(owner_id=ALICE.id, transfer_id=created.transfer_id, file_id=created.files[0].file_id)
    detail = selectors.transfer_detail_for_owner(owner_id=ALICE.id, transfer_id=created.transfer_id)
    assert [(f.state, f.refused_reason) for f in detail.files] == [("refused", "size")]


# --- crash consistency (issue 11: items 2, 3, 7, 9) --------------------------------------------------------------


def _ses_sent(settings) -> list:
    return ses_backends[DEFAULT_ACCOUNT_ID][settings.AWS_SES_REGION_NAME].sent_messages


def _verified_not_released(recipients):
    created = create(recipients=recipients)
    put_object_as_browser(created.files[0].key, b"hello world")
    File(parent_id=created.transfer_id, file_id=created.files[0].file_id).update(
        actions=[File.state.set("verified"), File.verified_size.set(11), File.verified_at.set(NOW)]
    )
    return created


def test_a_release_whose_mails_ses_throttled_says_so_and_the_next_call_sends_them(settings):
    settings.EMAIL_BACKEND = "fxfer.mail.SESBackend"
    created = _verified_not_released([BOB, "carol@other.example"])
    with inject(ERROR, service="ses", operation="SendRawEmail", times=100):
        released = services.transfer_release(transfer_id=created.transfer_id, now=NOW)
    assert (released.released, released.mails_sent, released.mails_pending) == (True, 0, 2)
    assert _ses_sent(settings) == []
    # link_sent_at only once a mail was accepted; the page shows the retry.
    assert all(r.link_sent_at is None for r in Recipient.query(created.transfer_id))
    detail = selectors.transfer_detail_for_owner(owner_id=ALICE.id, transfer_id=created.transfer_id, now=NOW)
    assert all(r.link_mail.retrying and r.link_mail.last_error == "Throttling" for r in detail.summary.recipients)
    # Released before: a later call (the S3 event again, the hourly job) still sends what is pending.
    again = services.transfer_release(transfer_id=created.transfer_id, now=later(5))
    assert (again.released, again.mails_sent, again.mails_pending) == (False, 2, 0)
    assert sorted(tuple(set(m.destinations)) for m in _ses_sent(settings)) == [(BOB,), ("carol@other.example",)]
    assert all(r.link_sent_at == later(5) for r in Recipient.query(created.transfer_id))
    assert [a for a in _actions() if a[0] == "transfer.released"] == [("transfer.released", "ok")]


def test_a_release_that_failed_to_commit_changes_nothing_and_the_next_call_releases(mailoutbox):
    created = _verified_not_released([BOB])
    fault = inject(ERROR, service="dynamodb", operation="TransactWriteItems", times=100)
    with fault, pytest.raises(TransactWriteError):
        services.transfer_release(transfer_id=created.transfer_id, now=NOW)
    assert Transfer.get(created.transfer_id).status == "pending" and mailoutbox == []
    assert ("transfer.released", "ok") not in _actions()
    released = services.transfer_release(transfer_id=created.transfer_id, now=NOW)
    assert (released.released, released.mails_sent) == (True, 1) and [m.to for m in mailoutbox] == [[BOB]]


@pytest.mark.parametrize("times", [1, 100])
def test_a_lost_answer_on_create_is_not_an_error_for_a_transfer_that_exists(times):
    with inject(LOST, service="dynamodb", operation="TransactWriteItems", times=times):
        created = create(allow_replies=True)
    transfer = Transfer.get(created.transfer_id)
    assert transfer.status == "pending" and transfer.reply_request_id
    assert _actions().count(("transfer.created", "ok")) == 1
    assert _actions().count(("request.created", "ok")) == 1


def test_a_failed_create_with_replies_leaves_no_orphan_reply_request():
    with inject(ERROR, service="dynamodb", operation="TransactWriteItems", times=100):
        _refused("unavailable", lambda: create(allow_replies=True))
    assert selectors.request_list_for_owner(owner_id=ALICE.id).items == ()
    assert selectors.transfer_list_for_owner(owner_id=ALICE.id).items == ()
    assert _actions() == []


def test_a_resend_ses_throttled_keeps_the_old_link_until_the_new_mail_is_accepted(settings, mailoutbox):
    created, tokens = ready_transfer(recipients=[BOB], mailoutbox=mailoutbox)
    [bob] = Recipient.query(created.transfer_id)
    settings.EMAIL_BACKEND = "fxfer.mail.SESBackend"
    ids = {"owner_id": ALICE.id, "transfer_id": created.transfer_id, "recipient_id": bob.recipient_id}
    with inject(ERROR, service="ses", operation="SendRawEmail", times=100):
        resent = services.recipient_resend(**ids, now=later(1))
    assert (resent.status, resent.mailed, resent.error) == ("pending", False, "Throttling")
    assert services.guest_link_open(token=tokens[BOB], now=later(2)).recipient_id == bob.recipient_id
    assert Recipient.get(created.transfer_id, bob.recipient_id).link_sent_at == NOW
    outbox_retry(now=later(30))
    [raw] = _ses_sent(settings)
    new_token = LINK.search(message_from_string(raw.raw_data).get_payload(decode=True).decode())[1]
    _refused("not_found", lambda: services.guest_link_open(token=tokens[BOB], now=later(31)))
    assert services.guest_link_open(token=new_token, now=later(31)).recipient_id == bob.recipient_id
    assert Recipient.get(created.transfer_id, bob.recipient_id).link_sent_at == later(30)


def test_revoke_and_its_event_commit_together():
    created = create()
    with inject(ERROR, service="dynamodb", operation="TransactWriteItems", times=100):
        _refused("unavailable", lambda: services.transfer_revoke(owner_id=ALICE.id, transfer_id=created.transfer_id))
    assert Transfer.get(created.transfer_id).status == "pending" and ("transfer.revoked", "ok") not in _actions()
    with inject(LOST, service="dynamodb", operation="TransactWriteItems", times=100):
        services.transfer_revoke(owner_id=ALICE.id, transfer_id=created.transfer_id, now=NOW)
    assert Transfer.get(created.transfer_id).status == "revoked"
    assert _actions().count(("transfer.revoked", "ok")) == 1


def test_an_expired_transfer_refuses_release_by_its_own_condition():
    created = create(expires_in=timedelta(hours=1))
    put_object_as_browser(created.files[0].key, b"hello world")
    File(parent_id=created.transfer_id, file_id=created.files[0].file_id).update(
        actions=[File.state.set("verified"), File.verified_size.set(11)]
    )
    # The item says pending, the clock says expired: the transaction's condition refuses, nothing is mailed.
    assert services.transfer_release(transfer_id=created.transfer_id, now=later(61)).released is False
    assert Transfer.get(created.transfer_id).status == "pending"
