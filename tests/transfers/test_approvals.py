"""Supervisor approval (issue 16): the policy's branches decided at creation, the gate that keeps recipients'
mails back until the approver says yes, approve / reject / timeout / escalation, delegation, and the refusals
(the sender approving their own transfer, anyone else approving someone's)."""

from dataclasses import dataclass, field
from datetime import date, timedelta

import pytest
from django.test import Client

from accounts.selectors import user_from_record
from accounts.tables import UserRecord
from reports.models import AuditEvent
from tests.transfers.conftest import APPROVERS_GROUP, LINK, NOW, approval_by_manager, create, put_object_as_browser
from transfers import services
from transfers.errors import TransferError
from transfers.models import DELETED, FILE_DELETED, PENDING, READY, REVOKED, File, OutboxMail, Recipient, Transfer
from transfers.policy import FileDeclared
from transfers.services import approvals
from transfers.services.approvals import approval_decide, approval_timeouts, delegation_set

GROUP = APPROVERS_GROUP
# A delegation period the portal accepts today (it ends in the future) and that covers NOW.
PERIOD = {
    "delegate_email": "frank@corp.example",
    "first_day": "2026-11-28",
    "last_day": (date.today() + timedelta(days=2)).isoformat(),
}


@dataclass(frozen=True)
class Person:
    """A signed-in employee as the services see one (accounts.User has these)."""

    id: str
    email: str
    display_name: str = ""
    department: str = "Sales"
    manager_email: str = ""
    idp_groups: tuple[str, ...] = field(default_factory=tuple)


ALICE = Person(id="u-alice", email="alice@corp.example", display_name="Alice", manager_email="dave@corp.example")
DAVE = Person(id="u-dave", email="dave@corp.example", display_name="Dave", manager_email="erin@corp.example")
ERIN = Person(id="u-erin", email="erin@corp.example", display_name="Erin", idp_groups=(GROUP,))
FRANK = Person(id="u-frank", email="frank@corp.example", display_name="Frank", idp_groups=(GROUP,))
MALLORY = Person(id="u-mallory", email="mallory@corp.example", display_name="Mallory")


@pytest.fixture(autouse=True)
def _policy(settings):
    approval_by_manager(settings)


def send(sender=ALICE, recipients=None, size=11, **kwargs) -> services.TransferCreated:
    return create(
        sender=sender,
        recipients=recipients or ["bob@partner.example"],
        files=[FileDeclared(name="report.pdf", size=size)],
        **kwargs,
    )


def upload(created: services.TransferCreated, sender=ALICE, now=NOW):
    """The sender's one file arrives and is checked (the release then asks the gate)."""
    file = created.files[0]
    services.upload_authorize(owner_id=sender.id, transfer_id=created.transfer_id, file_id=file.file_id, now=now)
    put_object_as_browser(file.key, b"x" * file.size)
    return services.upload_done(owner_id=sender.id, transfer_id=created.transfer_id, file_id=file.file_id, now=now)


def transfer(created) -> Transfer:
    return Transfer.get(created.transfer_id, consistent_read=True)


def mails_to(mailoutbox, address: str) -> list:
    return [m for m in mailoutbox if m.to == [address]]


def events(transfer_id: str, action: str, outcome: str = "ok") -> list[AuditEvent]:
    return [
        e
        for e in AuditEvent.scan(AuditEvent.subject == f"transfer:{transfer_id}")
        if e.action == action and e.outcome == outcome
    ]


# --- the policy's branches ---------------------------------------------------------------------------------------


def test_off_needs_no_approval_and_sends_at_once(settings, mailoutbox):
    settings.FXFER_APPROVAL = "off"
    created = send()
    assert transfer(created).approval_state == "not_required"
    assert upload(created).released
    assert LINK.search(mails_to(mailoutbox, "bob@partner.example")[0].body)


def test_external_with_the_allow_list(mailoutbox):
    inside = send(recipients=["bob@corp.example", "carl@sub.corp.example"])
    assert transfer(inside).approval_state == "not_required"
    outside = send(recipients=["bob@corp.example", "eve@partner.example"])
    item = transfer(outside)
    assert (item.approval_state, item.approval_reasons, item.approval_approvers) == (
        "required",
        "external",
        {"dave@corp.example"},
    )
    # Decided at creation, asked once the file is there and clean: no mail, no timeout running before.
    [required] = events(outside.transfer_id, "approval.required")
    assert required.details["approvers"] == ["dave@corp.example"] and required.details["reasons"] == ["external"]
    assert item.approval_due_at is None and not events(outside.transfer_id, "approval.requested")
    assert not mails_to(mailoutbox, "dave@corp.example")
    later = NOW + timedelta(hours=3)
    assert upload(outside, now=later).released is False
    item = transfer(outside)
    assert (item.approval_requested_at, item.approval_due_at) == (later, later + timedelta(hours=24))
    [requested] = events(outside.transfer_id, "approval.requested")
    assert requested.details["approvers"] == ["dave@corp.example"]
    [mail] = mails_to(mailoutbox, "dave@corp.example")
    assert f"/approvals/{outside.transfer_id}/" in mail.body
    assert "partner.example" in mail.body and "report.pdf" in mail.body


def test_always(settings):
    settings.FXFER_APPROVAL = "always"
    assert transfer(send(recipients=["bob@corp.example"])).approval_reasons == "always"


def test_size_over_the_limit(settings):
    settings.FXFER_APPROVAL = "off"
    settings.FXFER_APPROVAL_OVER_BYTES = 100
    assert transfer(send(size=100)).approval_state == "not_required"
    assert transfer(send(size=101)).approval_reasons == "size"


def test_department(settings):
    settings.FXFER_APPROVAL = "off"
    settings.FXFER_APPROVAL_DEPARTMENTS = ["Legal"]
    assert transfer(send()).approval_state == "not_required"
    legal = Person(id="u-lee", email="lee@corp.example", department="legal", manager_email="dave@corp.example")
    assert transfer(send(sender=legal)).approval_reasons == "department"


def test_group_approver(settings, mailoutbox):
    settings.FXFER_APPROVER = f"group:{GROUP}"
    item = transfer(created := send())
    assert (item.approval_group, item.approval_approvers) == (GROUP, None)
    upload(created)
    assert mails_to(mailoutbox, "approvers@corp.example") and not mails_to(mailoutbox, "dave@corp.example")
    with pytest.raises(TransferError) as refused:  # not in the group
        approval_decide(person=DAVE, transfer_id=created.transfer_id, decision="approve", now=NOW)
    assert refused.value.code == "not_found"
    assert approval_decide(person=ERIN, transfer_id=created.transfer_id, decision="approve", now=NOW)


@pytest.mark.parametrize("manager, fallback", [("", "no_manager"), ("ALICE@corp.example", "self_manager")])
def test_no_manager_or_own_manager_falls_back_to_the_group(manager, fallback):
    sender = Person(id="u-alice", email="alice@corp.example", manager_email=manager)
    item = transfer(send(sender=sender))
    assert (item.approval_approvers, item.approval_group, item.approval_fallback) == (None, GROUP, fallback)


def test_no_approver_at_all_is_refused_before_anything_is_written(settings):
    settings.FXFER_APPROVAL_GROUP = ""
    with pytest.raises(TransferError) as refused:
        send(sender=Person(id="u-alice", email="alice@corp.example"))
    assert refused.value.code == "approver_missing"
    assert not list(Transfer.by_owner.query("u-alice"))


def test_a_later_settings_change_does_not_release(settings):
    created = send()
    settings.FXFER_APPROVAL = "off"
    assert not upload(created).released
    assert transfer(created).status == PENDING


# --- approve, reject ---------------------------------------------------------------------------------------------


def test_recipients_are_mailed_only_after_the_approval(mailoutbox):
    created = send()
    done = upload(created)
    assert not done.released
    assert not mails_to(mailoutbox, "bob@partner.example")
    decided = approval_decide(person=DAVE, transfer_id=created.transfer_id, decision="approve", comment="ok", now=NOW)
    assert decided.released
    assert LINK.search(mails_to(mailoutbox, "bob@partner.example")[0].body)
    item = transfer(created)
    assert (item.status, item.approval_state, item.approval_decided_by) == (READY, "approved", "dave@corp.example")
    [granted] = events(created.transfer_id, "approval.granted")
    assert granted.actor == "user:u-dave" and granted.details["authority"] == "approver"
    assert "Dave approved" in mails_to(mailoutbox, "alice@corp.example")[-1].body


def test_nothing_to_approve_before_the_files_are_there(mailoutbox):
    created = send()
    with pytest.raises(TransferError) as refused:
        approval_decide(person=DAVE, transfer_id=created.transfer_id, decision="approve", now=NOW)
    assert refused.value.code == "state_conflict"
    assert transfer(created).approval_state == "required"
    assert not upload(created).released
    assert approval_decide(person=DAVE, transfer_id=created.transfer_id, decision="approve", now=NOW).released
    assert mails_to(mailoutbox, "bob@partner.example")


def test_the_approvers_are_asked_once_whoever_calls_the_release(mailoutbox):
    created = send()
    upload(created)
    for _ in range(3):  # a second S3 event, the hourly healer
        assert services.transfer_release(transfer_id=created.transfer_id, now=NOW).blockers == ("approval",)
    assert len(mails_to(mailoutbox, "dave@corp.example")) == 1
    assert len(events(created.transfer_id, "approval.requested")) == 1
    assert transfer(created).gate == "approval"


def test_reject_needs_a_comment_then_ends_the_transfer(mailoutbox):
    created = send()
    upload(created)
    with pytest.raises(TransferError) as refused:
        approval_decide(person=DAVE, transfer_id=created.transfer_id, decision="reject", comment="  ", now=NOW)
    assert refused.value.code == "comment_required"
    decided = approval_decide(
        person=DAVE, transfer_id=created.transfer_id, decision="reject", comment="Customer data", now=NOW
    )
    assert decided.deleted
    item = transfer(created)
    assert (item.status, item.approval_state, item.approval_comment) == (DELETED, "rejected", "Customer data")
    assert item.deleted_by == "approval"
    assert all(f.state == FILE_DELETED for f in File.query(created.transfer_id))
    assert not mails_to(mailoutbox, "bob@partner.example")
    assert "Customer data" in mails_to(mailoutbox, "alice@corp.example")[-1].body
    assert events(created.transfer_id, "approval.rejected") and events(created.transfer_id, "transfer.deleted")
    # Never released afterwards, whoever asks.
    assert not services.transfer_release(transfer_id=created.transfer_id, now=NOW).released


def test_the_sender_never_approves_their_own_transfer():
    # Alice is in the approvers' group and her manager attribute names herself: the group decides, not her.
    alice = Person(id="u-alice", email="alice@corp.example", manager_email="alice@corp.example", idp_groups=(GROUP,))
    created = send(sender=alice)
    for decision in ("approve", "reject"):
        with pytest.raises(TransferError) as refused:
            approval_decide(person=alice, transfer_id=created.transfer_id, decision=decision, comment="x", now=NOW)
        assert (refused.value.code, refused.value.status) == ("self_approval", 403)
    assert transfer(created).approval_state == "required"
    assert len(events(created.transfer_id, "approval.granted", "refused")) == 1


def test_someone_else_cannot_approve(mailoutbox):
    created = send()
    with pytest.raises(TransferError) as refused:
        approval_decide(person=MALLORY, transfer_id=created.transfer_id, decision="approve", now=NOW)
    assert refused.value.code == "not_found"
    with pytest.raises(TransferError):
        approvals.approval_page(person=MALLORY, transfer_id=created.transfer_id, now=NOW)
    assert transfer(created).approval_state == "required"


def test_a_double_click_is_one_approval():
    created = send()
    upload(created)
    first = approval_decide(person=DAVE, transfer_id=created.transfer_id, decision="approve", now=NOW)
    again = approval_decide(person=DAVE, transfer_id=created.transfer_id, decision="approve", now=NOW)
    assert (first.repeated, again.repeated) == (False, True)
    assert len(events(created.transfer_id, "approval.granted")) == 1


def test_two_deciders_one_wins_the_other_is_told(settings):
    created = send()
    delegation_set(
        approver=DAVE, delegate_email="frank@corp.example", starts_at=NOW, ends_at=NOW + timedelta(days=2), now=NOW
    )
    approval_decide(person=FRANK, transfer_id=created.transfer_id, decision="reject", comment="no", now=NOW)
    with pytest.raises(TransferError) as late:
        approval_decide(person=DAVE, transfer_id=created.transfer_id, decision="approve", now=NOW)
    assert late.value.code == "state_conflict"
    assert "rejected by Frank" in late.value.message
    assert transfer(created).approval_state == "rejected"


# --- timeouts ------------------------------------------------------------------------------------------------------


def test_timeout_rejects_and_never_releases(mailoutbox):
    created = send()
    upload(created)
    assert approval_timeouts(now=NOW + timedelta(hours=23)).timed_out == 0
    assert approval_timeouts(now=NOW + timedelta(hours=24)).timed_out == 1
    item = transfer(created)
    assert (item.approval_state, item.status) == ("timed_out", DELETED)
    assert not mails_to(mailoutbox, "bob@partner.example")
    assert "in time" in mails_to(mailoutbox, "alice@corp.example")[-1].subject
    [event] = events(created.transfer_id, "approval.timed_out")
    assert event.details["then"] == "rejected"
    assert approval_timeouts(now=NOW + timedelta(hours=25)).timed_out == 0  # once


def test_timeout_escalates_to_the_group_then_rejects(settings, mailoutbox):
    settings.FXFER_APPROVAL_ON_TIMEOUT = "escalate"
    created = send()
    upload(created)
    assert transfer(created).approval_on_timeout == "escalate"
    assert approval_timeouts(now=NOW + timedelta(hours=24)).escalated == 1
    item = transfer(created)
    assert (item.approval_group, item.status) == (GROUP, PENDING)
    assert len(mails_to(mailoutbox, "approvers@corp.example")) == 1
    assert approval_timeouts(now=NOW + timedelta(hours=47)).timed_out == 0
    assert approval_timeouts(now=NOW + timedelta(hours=48)).timed_out == 1
    assert transfer(created).approval_state == "timed_out"
    assert [e.details["then"] for e in events(created.transfer_id, "approval.timed_out")].count("escalated") == 1


def test_escalated_requests_may_be_decided_by_the_group(settings):
    settings.FXFER_APPROVAL_ON_TIMEOUT = "escalate"
    created = send()
    upload(created)
    approval_timeouts(now=NOW + timedelta(hours=24))
    later = NOW + timedelta(hours=25)
    assert approval_decide(person=ERIN, transfer_id=created.transfer_id, decision="approve", now=later)


def test_a_rejection_whose_deletion_failed_is_finished_by_the_job(monkeypatch):
    created = send()
    upload(created)
    monkeypatch.setattr(approvals, "_end", lambda *a, **k: False)  # the process died after the rejection
    approval_decide(person=DAVE, transfer_id=created.transfer_id, decision="reject", comment="no", now=NOW)
    assert transfer(created).status == REVOKED
    monkeypatch.undo()
    assert approval_timeouts(now=NOW + timedelta(hours=1)).deletions_finished == 1
    assert transfer(created).status == DELETED


# --- delegation ----------------------------------------------------------------------------------------------------


def test_delegation_sends_requests_to_the_delegate_who_may_decide(mailoutbox):
    delegation_set(
        approver=DAVE, delegate_email="Frank@corp.example", starts_at=NOW, ends_at=NOW + timedelta(days=3), now=NOW
    )
    created = send()
    upload(created)
    assert mails_to(mailoutbox, "frank@corp.example")
    page = approvals.approval_page(person=FRANK, transfer_id=created.transfer_id, now=NOW)
    assert page.may_decide and page.authority == "delegate:dave@corp.example"
    [delegated] = [e for e in AuditEvent.scan(AuditEvent.action == "approval.delegated")]
    assert delegated.details["delegate"] == "frank@corp.example"
    # After the period the delegate may no longer decide.
    with pytest.raises(TransferError):
        approval_decide(person=FRANK, transfer_id=created.transfer_id, decision="approve", now=NOW + timedelta(days=4))
    assert approval_decide(person=FRANK, transfer_id=created.transfer_id, decision="approve", now=NOW)


def test_a_delegate_who_is_the_sender_cannot_approve(mailoutbox):
    # Dave names Alice as his delegate: Alice's own transfer still is not hers to approve.
    delegation_set(
        approver=DAVE, delegate_email="alice@corp.example", starts_at=NOW, ends_at=NOW + timedelta(days=3), now=NOW
    )
    created = send()
    assert not mails_to(mailoutbox, "alice@corp.example")
    with pytest.raises(TransferError) as refused:
        approval_decide(person=ALICE, transfer_id=created.transfer_id, decision="approve", now=NOW)
    assert refused.value.code == "self_approval"


def test_delegation_periods_and_delegates_are_checked():
    for delegate, start, end in [
        ("dave@corp.example", NOW, NOW + timedelta(days=1)),  # himself
        ("not an address", NOW, NOW + timedelta(days=1)),
        ("frank@corp.example", NOW, NOW - timedelta(days=1)),
        ("frank@corp.example", NOW, NOW + timedelta(days=200)),
    ]:
        with pytest.raises(TransferError):
            delegation_set(approver=DAVE, delegate_email=delegate, starts_at=start, ends_at=end, now=NOW)


# --- the portal and the compliance admin ---------------------------------------------------------------------------


def employee(client: Client, person: Person, roles=("employee",)) -> Client:
    record = UserRecord(
        user_id=person.id.ljust(64, "0")[:64],
        idp_entity_id="https://idp.example/",
        name_id=person.email,
        email=person.email,
        display_name=person.display_name,
        department=person.department,
        manager_email=person.manager_email,
        groups=list(person.idp_groups),
        roles=list(roles),
        created_at=NOW,
        last_sign_in_at=NOW,
    )
    record.save()
    client.force_login(user_from_record(record), backend="accounts.backends.SamlUserBackend")
    return client


def _uid(person: Person) -> str:
    return person.id.ljust(64, "0")[:64]


def as_user(person: Person) -> Person:
    """The person with the id their signed-in user has (the portal's tests sign in through force_login)."""
    return Person(**{**person.__dict__, "id": _uid(person)})


def test_portal_approve_by_post_with_csrf(mailoutbox):
    alice = as_user(ALICE)
    created = send(sender=alice)
    upload(created, sender=alice)
    dave = employee(Client(enforce_csrf_checks=True), DAVE)
    page = dave.get(f"/approvals/{created.transfer_id}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "report.pdf" in html and 'class="external"' in html and "alice@corp.example" in html
    assert dave.post(f"/approvals/{created.transfer_id}/", {"decision": "approve"}).status_code == 403  # no token
    token = page.cookies["csrftoken"].value if "csrftoken" in page.cookies else dave.cookies["csrftoken"].value
    answer = dave.post(f"/approvals/{created.transfer_id}/", {"decision": "approve", "csrfmiddlewaretoken": token})
    assert answer.status_code == 302
    assert transfer(created).status == READY
    assert mails_to(mailoutbox, "bob@partner.example")
    assert created.transfer_id not in dave.get("/approvals/").content.decode()  # decided: no longer waiting


def test_portal_refuses_the_sender_and_strangers():
    alice = as_user(ALICE)
    created = send(sender=alice)
    sender = employee(Client(), ALICE)
    assert sender.post(f"/approvals/{created.transfer_id}/", {"decision": "approve"}).status_code == 403
    stranger = employee(Client(), MALLORY)
    assert stranger.get(f"/approvals/{created.transfer_id}/").status_code == 404
    assert stranger.post(f"/approvals/{created.transfer_id}/", {"decision": "approve"}).status_code == 404
    assert transfer(created).approval_state == "required"
    assert events(created.transfer_id, "access.denied", "refused")


def test_sender_page_says_who_it_waits_for_and_the_rejection():
    alice = as_user(ALICE)
    created = send(sender=alice)
    sender = employee(Client(), ALICE)
    html = sender.get(f"/transfers/{created.transfer_id}/").content.decode()
    assert "Needs approval by dave@corp.example: they are asked once every file is uploaded" in html
    upload(created, sender=alice)
    html = sender.get(f"/transfers/{created.transfer_id}/").content.decode()
    assert "Waiting for approval by dave@corp.example" in html
    approval_decide(person=DAVE, transfer_id=created.transfer_id, decision="reject", comment="Wrong customer", now=NOW)
    html = sender.get(f"/transfers/{created.transfer_id}/").content.decode()
    assert "Rejected by Dave" in html and "Wrong customer" in html


def test_approvals_page_lists_mine_and_sets_a_delegate():
    created = send()
    dave = employee(Client(), DAVE)
    assert created.transfer_id not in dave.get("/approvals/").content.decode()  # nothing to approve yet
    upload(created)
    assert created.transfer_id in dave.get("/approvals/").content.decode()
    answer = dave.post(
        "/approvals/delegation",
        PERIOD,
    )
    assert answer.status_code == 302
    assert approvals.delegation_get(approver_email="dave@corp.example", now=NOW).delegate_email == "frank@corp.example"
    assert created.transfer_id not in employee(Client(), MALLORY).get("/approvals/").content.decode()


def test_compliance_sees_pending_approvals_and_their_history():
    created = send()
    officer = employee(Client(), Person(id="u-carol", email="carol@corp.example"), roles=("compliance",))
    listing = officer.get("/admin/approvals/")
    assert listing.status_code == 200 and created.transfer_id in listing.content.decode()
    assert "approvals/" in officer.get("/admin/").content.decode()
    upload(created)
    approval_decide(person=DAVE, transfer_id=created.transfer_id, decision="approve", now=NOW)
    assert created.transfer_id not in officer.get("/admin/approvals/").content.decode()
    history = officer.get(f"/admin/transfers/{created.transfer_id}/").content.decode()
    assert "approval.requested" in history and "approval.granted" in history


def test_outbox_items_of_the_approval_are_keyed_by_their_cause():
    created = send()
    upload(created)
    approval_decide(person=DAVE, transfer_id=created.transfer_id, decision="approve", now=NOW)
    keys = {m.mail_key for m in OutboxMail.by_parent.query(created.transfer_id)}
    assert f"approval:{created.transfer_id}:dave@corp.example" in keys
    assert f"approval-result:{created.transfer_id}:approved" in keys


def test_ending_a_delegation_stops_the_delegate_at_once():
    created = send()
    dave = employee(Client(), DAVE)
    dave.post(
        "/approvals/delegation",
        PERIOD,
    )
    assert approvals.approval_page(person=FRANK, transfer_id=created.transfer_id, now=NOW).may_decide
    assert dave.post("/approvals/delegation", {"end": "1"}).status_code == 302
    assert approvals.delegation_get(approver_email="dave@corp.example", now=NOW) is None
    with pytest.raises(TransferError):
        approval_decide(person=FRANK, transfer_id=created.transfer_id, decision="approve", now=NOW)
    ended = [e for e in AuditEvent.scan(AuditEvent.action == "approval.delegated") if e.details.get("ended")]
    assert len(ended) == 1


def test_the_manager_comes_from_the_idp_at_sign_in(client, settings, mailoutbox):
    """Alice signs in through the (local) IdP, whose manager claim names dave; her transfer to an outside
    address made on the New transfer page waits for him."""
    from tests.transfers.test_views import alice_id, create, sign_in

    settings.FXFER_APPROVAL_ALLOWED_DOMAINS = ["example.com"]
    sign_in(client, "alice")
    assert UserRecord.get(alice_id()).manager_email == "dave@example.com"
    created = create(client, recipients="bob@partner.example")
    item = Transfer.get(created["transferId"], consistent_read=True)
    assert (item.approval_state, item.approval_approvers) == ("required", {"dave@example.com"})
    assert not mails_to(mailoutbox, "dave@example.com")  # asked once the file is there and clean


def test_the_portal_nav_links_approvals_for_employees_only():
    dave = employee(Client(), DAVE)
    assert 'href="/approvals/"' in dave.get("/transfers/").content.decode()
    assert 'href="/approvals/" aria-current="page"' in dave.get("/approvals/").content.decode()
    assert 'href="/approvals/"' not in Client().get("/").content.decode()  # nobody signed in


# --- the approver's page: the files as they are, and a look inside them ----------------------------------------


def test_the_approver_sees_files_checksums_and_verdicts_and_approves_only_when_clean():
    alice = as_user(ALICE)
    created = send(sender=alice)
    dave = employee(Client(), DAVE)
    html = dave.get(f"/approvals/{created.transfer_id}/").content.decode()
    assert "Not uploaded yet" in html and 'id="not-ready"' in html
    assert 'id="approve"' not in html and 'id="reject"' in html and "/download" not in html
    upload(created, sender=alice)
    html = dave.get(f"/approvals/{created.transfer_id}/").content.decode()
    assert 'id="approve"' in html and 'id="not-ready"' not in html
    assert "Scanned: no malware found" in html and '<code class="checksum">' in html
    assert f"/approvals/{created.transfer_id}/files/{created.files[0].file_id}/download" in html


def test_the_approver_downloads_a_file_to_inspect_it_audited_as_approver():
    alice = as_user(ALICE)
    created = send(sender=alice)
    upload(created, sender=alice)
    file_id = created.files[0].file_id
    url = f"/approvals/{created.transfer_id}/files/{file_id}/download"
    answer = employee(Client(), DAVE).post(url)
    assert answer.status_code == 303 and "X-Amz-Signature=" in answer["Location"]
    assert "attachment" in answer["Location"]
    [downloaded] = events(created.transfer_id, "file.downloaded")
    assert downloaded.actor == f"user:{_uid(DAVE)}"
    assert (downloaded.details["role"], downloaded.details["file_id"]) == ("approver", file_id)
    assert (downloaded.details["authority"], downloaded.details["size"]) == ("approver", 11)
    # The recipients' counts are theirs alone.
    for recipient in Recipient.query(created.transfer_id):
        assert (recipient.downloads_used, dict(recipient.file_downloads)) == (0, {})
    # Neither the sender nor someone else may have it this way.
    assert employee(Client(), ALICE).post(url).status_code == 404
    assert employee(Client(), MALLORY).post(url).status_code == 404
    assert len(events(created.transfer_id, "file.downloaded", "refused")) >= 1


def test_the_approver_cannot_download_a_file_not_clean(settings):
    settings.FXFER_SCANNER = "guardduty"  # no verdict yet
    alice = as_user(ALICE)
    created = send(sender=alice)
    upload(created, sender=alice)
    dave = employee(Client(), DAVE)
    html = dave.get(f"/approvals/{created.transfer_id}/").content.decode()
    assert 'class="scan-state scan-blocked"' in html and 'id="approve"' not in html and "/download" not in html
    answer = dave.post(f"/approvals/{created.transfer_id}/files/{created.files[0].file_id}/download")
    assert answer.status_code == 409
    [refused] = events(created.transfer_id, "file.downloaded", "refused")
    assert refused.details["reason"] in ("scan_scanning", "scan_overdue")  # the pages' clock is today's
    assert (refused.details["role"], refused.details["file_id"]) == ("approver", created.files[0].file_id)


def test_an_approvers_list_is_never_filled_by_approvals_that_are_not_theirs(monkeypatch):
    monkeypatch.setattr("transfers.services.common.SWEEP_SHARDS", 1)  # both in one shard of the pending index
    others = send(sender=DAVE)  # Erin decides it (Dave's manager); older, so the walk meets it first
    upload(others, sender=DAVE)
    mine = send(sender=ALICE, now=NOW + timedelta(minutes=1))  # Dave decides it
    upload(mine, now=NOW + timedelta(minutes=1))
    later = NOW + timedelta(minutes=5)

    rows = approvals.approvals_waiting_for(person=DAVE, now=later, limit=1)

    assert [row.transfer_id for row in rows] == [mine.transfer_id]
    assert [r.transfer_id for r in approvals.approvals_waiting_for(person=ERIN, now=later)] == [others.transfer_id]
