"""Mis-send prevention (issue 16 item 3): each recipient the policy names is confirmed before Send (refused by the
server otherwise, whatever the page did), and the mails wait for the hold, during which Cancel stops everything.
A Cancel racing the release: exactly one wins, under lost answers too."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings

from fxfer import aws
from reports.models import AuditEvent
from tests.faults import ERROR, LOST, inject
from tests.transfers.conftest import ALICE, MALLORY, NOW, create, put_object_as_browser
from transfers import services
from transfers.errors import TransferError
from transfers.models import DELETED, FILE_DELETED, READY, File, OutboxMail, Transfer
from transfers.policy import FileDeclared
from transfers.services import missend
from transfers.services.sending import transfer_release

HOLD = 180
OUTSIDE = ["bob@partner.example", "Dave@Other.example"]


@pytest.fixture
def policy(settings):
    settings.FXFER_CONFIRM_RECIPIENTS = "external"
    settings.FXFER_INTERNAL_DOMAINS = ["corp.example"]
    settings.FXFER_SEND_HOLD_SECONDS = HOLD
    return settings


def at(seconds: int) -> datetime:
    return NOW + timedelta(seconds=seconds)


def events(transfer_id: str, action: str) -> list[AuditEvent]:
    return [e for e in AuditEvent.by_subject.query(f"transfer:{transfer_id}") if e.action == action]


def uploaded(created: services.TransferCreated, *, now: datetime = NOW, body: bytes = b"hello world"):
    """Its one file uploaded the way the browser does it and verified (which asks for the release)."""
    file = created.files[0]
    services.upload_authorize(owner_id=ALICE.id, transfer_id=created.transfer_id, file_id=file.file_id, now=now)
    put_object_as_browser(file.key, body)
    return services.upload_done(owner_id=ALICE.id, transfer_id=created.transfer_id, file_id=file.file_id, now=now)


def held(**kwargs) -> services.TransferCreated:
    """A transfer to two outside recipients, confirmed, its file verified at once: waiting for its hold."""
    recipients = kwargs.pop("recipients", OUTSIDE)
    created = create(
        recipients=recipients,
        files=[FileDeclared(name="report.pdf", size=11)],
        confirmed_recipients=kwargs.pop("confirmed", recipients),
        **kwargs,
    )
    verified = uploaded(created)
    assert verified.outcome == "verified" and not verified.released
    return created


def link_mails(mailoutbox) -> list[str]:
    return sorted(m.to[0] for m in mailoutbox if "/t/" in m.body)


# --- who must be confirmed ----------------------------------------------------------------------------------


def test_external_policy_asks_for_addresses_outside_the_company_domains_only(policy):
    addresses = ["carol@corp.example", "erin@tokyo.corp.example", "bob@partner.example", "eve@corp.example.evil"]
    assert missend.needs_confirming(addresses) == ["bob@partner.example", "eve@corp.example.evil"]
    policy.FXFER_INTERNAL_DOMAINS = []  # no company domain configured: everyone is outside
    assert missend.needs_confirming(addresses) == addresses


def test_all_policy_asks_for_every_address_and_off_for_none(policy):
    addresses = ["carol@corp.example", "bob@partner.example"]
    policy.FXFER_CONFIRM_RECIPIENTS = "all"
    assert missend.needs_confirming(addresses) == addresses
    with pytest.raises(TransferError) as refused:
        create(recipients=addresses, confirmed_recipients=["bob@partner.example"])
    assert refused.value.code == "recipients_unconfirmed" and "carol@corp.example" in refused.value.message
    policy.FXFER_CONFIRM_RECIPIENTS = "off"
    assert missend.needs_confirming(addresses) == []
    assert create(recipients=addresses).transfer_id  # nothing to confirm


def test_only_internal_recipients_need_no_confirmation(policy):
    created = create(recipients=["carol@corp.example"])
    [event] = events(created.transfer_id, "transfer.created")
    assert event.details["recipients_confirmed"] == []


@pytest.mark.parametrize(
    "confirmed",
    [None, [], ["bob@partner.example"], ["bob@partner.example", "dave@other.example", "mallory@evil.example"]],
    ids=["absent", "empty", "partial", "one-too-many"],
)
def test_a_send_without_exactly_the_confirmed_outside_recipients_is_refused_and_writes_nothing(policy, confirmed):
    with pytest.raises(TransferError) as refused:
        create(recipients=OUTSIDE, confirmed_recipients=confirmed)
    assert refused.value.code == "recipients_unconfirmed"
    assert not list(Transfer.scan()) and not list(File.scan())


def test_the_confirmation_is_compared_address_by_address_case_aside_and_audited(policy):
    created = create(recipients=OUTSIDE, confirmed_recipients=["BOB@partner.example", "dave@other.example"])
    [event] = events(created.transfer_id, "transfer.created")
    assert event.details["recipients_confirmed"] == ["bob@partner.example", "Dave@other.example"]
    assert event.details["release_not_before"] == at(HOLD).isoformat()


# --- the hold -----------------------------------------------------------------------------------------------


def test_without_a_hold_the_mails_go_as_soon_as_the_files_are_verified(policy, mailoutbox):
    policy.FXFER_SEND_HOLD_SECONDS = 0
    created = create(recipients=OUTSIDE, confirmed_recipients=OUTSIDE)
    assert uploaded(created).released
    assert link_mails(mailoutbox) == ["Dave@other.example", "bob@partner.example"]


def test_the_mails_wait_for_the_hold_then_the_minute_job_sends_them(policy, mailoutbox):
    created = held()
    assert transfer_release(transfer_id=created.transfer_id, now=at(HOLD - 1)).blockers == ("hold",)
    assert missend.held_release_due(now=at(HOLD - 1)).released == 0
    assert link_mails(mailoutbox) == []
    assert Transfer.get(created.transfer_id).status == "pending"

    done = missend.held_release_due(now=at(HOLD))
    assert (done.tried, done.released, done.complete) == (1, 1, True)
    assert link_mails(mailoutbox) == ["Dave@other.example", "bob@partner.example"]
    transfer = Transfer.get(created.transfer_id)
    assert transfer.status == READY and transfer.hold_shard is None  # out of the by-hold index
    assert missend.held_release_due(now=at(HOLD + 60)).tried == 0


def test_the_hold_counts_from_send_so_a_slow_upload_leaves_at_once(policy, mailoutbox):
    created = create(recipients=OUTSIDE, confirmed_recipients=OUTSIDE)
    assert missend.held_release_due(now=at(HOLD)).released == 0  # nothing uploaded yet: stays pending
    assert uploaded(created, now=at(HOLD + 600)).released  # the upload's own release: no second hold
    assert len(link_mails(mailoutbox)) == 2


def test_the_minute_job_releases_a_transfer_whose_hold_just_ended(policy, mailoutbox):
    from reports.jobs import every_minute

    sent_at = datetime.now(UTC) - timedelta(seconds=HOLD + 5)  # the job reads the wall clock
    created = create(recipients=OUTSIDE, confirmed_recipients=OUTSIDE, now=sent_at)
    assert not uploaded(created, now=sent_at).released
    result = every_minute({}, None)
    assert (result["holds_tried"], result["holds_released"]) == (1, 1)
    assert len(link_mails(mailoutbox)) == 2


# --- cancel -------------------------------------------------------------------------------------------------


def test_cancel_during_the_hold_stops_every_mail_and_deletes_the_files(policy, mailoutbox):
    created = held()
    cancelled = missend.transfer_send_cancel(owner_id=ALICE.id, transfer_id=created.transfer_id, now=at(60))
    assert cancelled.files_deleted

    assert missend.held_release_due(now=at(HOLD)).released == 0
    assert not transfer_release(transfer_id=created.transfer_id, now=at(HOLD + 1)).released
    assert mailoutbox == [] and not list(OutboxMail.scan())
    transfer = Transfer.get(created.transfer_id)
    assert transfer.send_cancelled_at == at(60) and transfer.status == DELETED
    assert [f.state for f in File.query(created.transfer_id)] == [FILE_DELETED]
    versions = aws.client("s3").list_object_versions(Bucket=settings.FXFER_BUCKET, Prefix=created.files[0].key)
    assert not versions.get("Versions") and not versions.get("DeleteMarkers")
    [event] = events(created.transfer_id, "transfer.send_cancelled")
    assert event.actor == f"user:{ALICE.id}" and event.details["recipients"] == [
        "bob@partner.example",
        "Dave@other.example",
    ]
    assert events(created.transfer_id, "transfer.deleted")  # with its receipts, as the sender's delete-now


def test_only_the_sender_can_cancel(policy):
    created = held()
    with pytest.raises(TransferError) as refused:
        missend.transfer_send_cancel(owner_id=MALLORY.id, transfer_id=created.transfer_id, now=at(60))
    assert refused.value.code == "not_found"
    assert Transfer.get(created.transfer_id).status == "pending"


def test_cancel_after_the_release_is_told_the_mails_went_out(policy, mailoutbox):
    created = held()
    assert missend.held_release_due(now=at(HOLD)).released == 1
    with pytest.raises(TransferError) as refused:
        missend.transfer_send_cancel(owner_id=ALICE.id, transfer_id=created.transfer_id, now=at(HOLD + 1))
    assert refused.value.code == "already_sent"
    assert Transfer.get(created.transfer_id).status == READY and not events(
        created.transfer_id, "transfer.send_cancelled"
    )


def test_cancel_racing_the_release_exactly_one_wins(policy, mailoutbox):
    """Both read the transfer pending; the release commits first; the cancel's condition fails and it says so."""
    created = held()
    stale = Transfer.get(created.transfer_id)
    assert transfer_release(transfer_id=created.transfer_id, now=at(HOLD)).released
    from unittest import mock

    with mock.patch("transfers.services.missend.owned_transfer", return_value=stale):
        with pytest.raises(TransferError) as refused:
            missend.transfer_send_cancel(owner_id=ALICE.id, transfer_id=created.transfer_id, now=at(HOLD))
    assert refused.value.code == "already_sent"
    assert len(link_mails(mailoutbox)) == 2


def test_release_racing_a_cancel_that_committed_first_sends_nothing(policy, mailoutbox):
    from unittest import mock

    created = held()
    stale = Transfer.get(created.transfer_id)
    # The cancel commits; its files are not deleted yet (that runs after the commit) when the release, which read
    # the transfer pending just before, tries its own transaction: its condition refuses it.
    with mock.patch("transfers.services.deletion.delete_transfer_files", side_effect=RuntimeError("later")):
        missend.transfer_send_cancel(owner_id=ALICE.id, transfer_id=created.transfer_id, now=at(HOLD - 1))
    current = Transfer.get(created.transfer_id)
    with mock.patch("transfers.services.sending.transfer_get", side_effect=[stale, current]):
        assert not transfer_release(transfer_id=created.transfer_id, now=at(HOLD)).released
    assert mailoutbox == [] and not list(OutboxMail.scan())


@pytest.mark.parametrize("times", [1, 100], ids=["retry-absorbs", "outlasts-retries"])
def test_a_lost_answer_at_the_cancel_is_a_cancel_and_no_release_follows(policy, mailoutbox, times):
    created = held()
    with inject(LOST, service="dynamodb", operation="TransactWriteItems", nth=1, times=times) as fault:
        missend.transfer_send_cancel(owner_id=ALICE.id, transfer_id=created.transfer_id, now=at(60))
    assert fault.fired
    assert len(events(created.transfer_id, "transfer.send_cancelled")) == 1
    assert missend.held_release_due(now=at(HOLD)).released == 0
    assert mailoutbox == []
    assert Transfer.get(created.transfer_id).send_cancelled_at == at(60)


@pytest.mark.parametrize("times", [1, 100], ids=["retry-absorbs", "outlasts-retries"])
def test_a_lost_answer_at_the_release_is_a_release_and_the_cancel_is_told_too_late(policy, mailoutbox, times):
    created = held()
    with inject(LOST, service="dynamodb", operation="TransactWriteItems", nth=1, times=times) as fault:
        released = missend.held_release_due(now=at(HOLD))
    assert fault.fired and released.tried == 1
    assert len(events(created.transfer_id, "transfer.released")) == 1
    with pytest.raises(TransferError) as refused:
        missend.transfer_send_cancel(owner_id=ALICE.id, transfer_id=created.transfer_id, now=at(HOLD + 1))
    assert refused.value.code == "already_sent"
    assert link_mails(mailoutbox) == ["Dave@other.example", "bob@partner.example"]


def test_a_cancel_aws_refused_changes_nothing_and_the_sender_may_try_again(policy, mailoutbox):
    created = held()
    with inject(ERROR, service="dynamodb", operation="TransactWriteItems", times=100):
        with pytest.raises(TransferError) as refused:
            missend.transfer_send_cancel(owner_id=ALICE.id, transfer_id=created.transfer_id, now=at(60))
    assert refused.value.code == "unavailable"
    assert Transfer.get(created.transfer_id).status == "pending"
    assert missend.transfer_send_cancel(owner_id=ALICE.id, transfer_id=created.transfer_id, now=at(61)).files_deleted
    assert missend.held_release_due(now=at(HOLD)).released == 0 and mailoutbox == []


def test_the_minute_job_goes_on_past_a_transfer_it_cannot_release(policy, mailoutbox):
    from unittest import mock

    from botocore.exceptions import ReadTimeoutError

    first, second = held(), held(recipients=["frank@partner.example"])
    release = transfer_release

    def failing_first(*, transfer_id, now):
        if transfer_id == first.transfer_id:
            raise ReadTimeoutError(endpoint_url="dynamodb")
        return release(transfer_id=transfer_id, now=now)

    with mock.patch("transfers.services.sending.transfer_release", side_effect=failing_first):
        with pytest.raises(ReadTimeoutError):
            missend.held_release_due(now=at(HOLD))
    assert Transfer.get(first.transfer_id).status == "pending"
    assert Transfer.get(second.transfer_id).status == READY  # released all the same
    assert missend.held_release_due(now=at(HOLD + 60)).released == 1  # the next minute finishes it
    assert len(link_mails(mailoutbox)) == 3


# --- the pages ----------------------------------------------------------------------------------------------


def _client_as_alice(client):
    from tests.transfers.test_views import sign_in

    return sign_in(client)


def test_a_post_that_skips_the_dialog_is_refused_at_the_recipients_field(policy, client):
    from tests.transfers.test_views import form_data

    alice = _client_as_alice(client)
    response = alice.post("/transfers/new", json.dumps(form_data()), content_type="application/json")
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "recipients_unconfirmed"
    assert "bob@partner.example" in body["fields"]["recipients"][0]
    confirmed = form_data(confirmed_recipients=["bob@partner.example", "dave@partner.example"])
    assert alice.post("/transfers/new", json.dumps(confirmed), content_type="application/json").status_code == 201


def test_the_transfer_page_shows_the_hold_and_cancel_works(policy, client, mailoutbox):
    from tests.transfers.test_views import form_data

    alice = _client_as_alice(client)
    data = form_data(confirmed_recipients=["bob@partner.example", "dave@partner.example"])
    created = alice.post("/transfers/new", json.dumps(data), content_type="application/json").json()
    page = alice.get(created["url"]).content.decode()
    assert 'id="send-hold"' in page and "Sending at" in page and "JST" in page
    response = alice.post(f"/transfers/{created['transferId']}/cancel-send", follow=True)
    assert "Sending was cancelled. No mail was sent" in response.content.decode()
    assert 'id="send-hold"' not in response.content.decode()
    assert alice.get(f"/transfers/{created['transferId']}/cancel-send").status_code == 405
    again = alice.post(f"/transfers/{created['transferId']}/cancel-send", follow=True)
    assert again.status_code == 200 and mailoutbox == []
