"""Supervisor approval when AWS fails (tests/faults.py injects below botocore's retries): a lost answer at the
approve transaction, a process killed right after it, two deciders at once, the timeout job and delegation
under faults. What the approver is told is true, each step has one audit event, recipients are mailed once and
only after an approval, and what a crash left is finished by the hourly job."""

from datetime import timedelta

import pytest
from django.test import Client

from reports.models import AuditEvent
from tests.faults import ERROR, KILLED, LOST, PERSISTENT, TIMEOUT, Killed, inject
from tests.transfers.conftest import LINK, NOW, approval_by_manager
from tests.transfers.test_approvals import (
    DAVE,
    FRANK,
    Person,
    employee,
    events,
    mails_to,
    send,
    transfer,
    upload,
)
from transfers import services
from transfers.errors import TransferError
from transfers.models import DELETED, READY, REVOKED, Transfer
from transfers.outbox import outbox_retry
from transfers.services import approvals
from transfers.services.approvals import approval_decide, approval_timeouts, delegation_set
from transfers.services.expiry import sweep_heal

CAROL = Person(id="u-carol", email="carol@corp.example")  # compliance


@pytest.fixture(autouse=True)
def _policy(settings):
    approval_by_manager(settings)


def links_to(mailoutbox, address: str) -> int:
    return sum(bool(LINK.search(m.body)) for m in mails_to(mailoutbox, address))


@pytest.mark.parametrize("kind", [ERROR, TIMEOUT, LOST])
def test_a_fault_at_the_approve_transaction_that_retries_absorb(kind, mailoutbox):
    created = send()
    upload(created)
    with inject(kind, service="dynamodb", operation="TransactWriteItems") as fault:
        decided = approval_decide(person=DAVE, transfer_id=created.transfer_id, decision="approve", now=NOW)
    assert fault.fired
    assert decided.released and not decided.repeated
    assert len(events(created.transfer_id, "approval.granted")) == 1
    assert links_to(mailoutbox, "bob@partner.example") == 1


def test_a_lost_answer_every_retry_at_the_approve_transaction_is_recognised(mailoutbox):
    created = send()
    upload(created)
    # Every attempt of the approval's transaction takes effect and loses its answer (then the release's too).
    with inject(LOST, service="dynamodb", operation="TransactWriteItems", times=10) as fault:
        decided = approval_decide(person=DAVE, transfer_id=created.transfer_id, decision="approve", now=NOW)
    assert fault.fired
    assert transfer(created).approval_state == "approved"
    assert len(events(created.transfer_id, "approval.granted")) == 1
    if not decided.released:  # the release's answers were lost too: the hourly healer finishes it
        sweep_heal(now=NOW + timedelta(hours=1))
    assert transfer(created).status == READY
    assert links_to(mailoutbox, "bob@partner.example") == 1
    # The approver clicks again: told it is done, nothing written twice.
    assert approval_decide(person=DAVE, transfer_id=created.transfer_id, decision="approve", now=NOW).repeated
    assert len(events(created.transfer_id, "approval.granted")) == 1


@pytest.mark.parametrize("kind", [ERROR, TIMEOUT])
def test_aws_down_at_the_approve_transaction_answers_503_and_loses_nothing(kind, mailoutbox):
    created = send()
    upload(created)
    with inject(kind, service="dynamodb", operation="TransactWriteItems", times=10):
        with pytest.raises(TransferError) as refused:
            approval_decide(person=DAVE, transfer_id=created.transfer_id, decision="approve", now=NOW)
    assert refused.value.code == "unavailable"
    assert transfer(created).approval_state == "required"
    assert not events(created.transfer_id, "approval.granted")
    assert not mails_to(mailoutbox, "bob@partner.example")
    assert approval_decide(person=DAVE, transfer_id=created.transfer_id, decision="approve", now=NOW).released


def test_killed_after_the_approval_the_healer_releases(mailoutbox):
    created = send()
    upload(created)
    with inject(KILLED, service="dynamodb", operation="TransactWriteItems"):
        with pytest.raises(Killed):
            approval_decide(person=DAVE, transfer_id=created.transfer_id, decision="approve", now=NOW)
    assert transfer(created).approval_state == "approved"
    assert not mails_to(mailoutbox, "bob@partner.example")
    assert sweep_heal(now=NOW + timedelta(hours=1)).released == 1
    assert links_to(mailoutbox, "bob@partner.example") == 1


def test_killed_after_a_rejection_the_job_deletes_and_never_releases(mailoutbox):
    created = send()
    upload(created)
    with inject(KILLED, service="dynamodb", operation="TransactWriteItems"):
        with pytest.raises(Killed):
            approval_decide(person=DAVE, transfer_id=created.transfer_id, decision="reject", comment="no", now=NOW)
    assert transfer(created).status == REVOKED
    assert sweep_heal(now=NOW + timedelta(hours=1)).released == 0
    assert approval_timeouts(now=NOW + timedelta(hours=1)).deletions_finished == 1
    assert transfer(created).status == DELETED
    assert not mails_to(mailoutbox, "bob@partner.example")


def test_two_deciders_at_the_same_moment(monkeypatch, mailoutbox):
    """Both read the request as still awaited; the delegate's rejection commits first. The manager's approval
    then fails its condition and he is told who decided, not that he approved."""
    created = send()
    upload(created)
    delegation_set(
        approver=DAVE, delegate_email="frank@corp.example", starts_at=NOW, ends_at=NOW + timedelta(days=1), now=NOW
    )
    stale = Transfer.get(created.transfer_id, consistent_read=True)  # what Dave's request read
    approval_decide(person=FRANK, transfer_id=created.transfer_id, decision="reject", comment="Wrong file", now=NOW)
    reads = iter([stale])
    real_get = approvals.transfer_get
    monkeypatch.setattr(approvals, "transfer_get", lambda transfer_id: next(reads, None) or real_get(transfer_id))
    with pytest.raises(TransferError) as late:
        approval_decide(person=DAVE, transfer_id=created.transfer_id, decision="approve", now=NOW)
    assert late.value.code == "state_conflict" and "rejected by Frank" in late.value.message
    assert transfer(created).approval_state == "rejected"
    assert not events(created.transfer_id, "approval.granted")
    assert not mails_to(mailoutbox, "bob@partner.example")


def test_the_timeout_job_under_a_lost_answer_times_out_once(mailoutbox):
    created = send()
    upload(created)
    with inject(LOST, service="dynamodb", operation="TransactWriteItems") as fault:
        assert approval_timeouts(now=NOW + timedelta(hours=24)).timed_out == 1
    assert fault.fired
    approval_timeouts(now=NOW + timedelta(hours=25))
    assert len(events(created.transfer_id, "approval.timed_out")) == 1
    assert transfer(created).status == DELETED
    assert not mails_to(mailoutbox, "bob@partner.example")


def test_delegation_set_under_a_lost_answer_is_one_delegation():
    with inject(LOST, service="dynamodb", operation="TransactWriteItems") as fault:
        delegation_set(
            approver=DAVE, delegate_email="frank@corp.example", starts_at=NOW, ends_at=NOW + timedelta(days=1), now=NOW
        )
    assert fault.fired
    assert approvals.delegation_get(approver_email="dave@corp.example", now=NOW).delegate_email == "frank@corp.example"
    assert len([e for e in AuditEvent.scan(AuditEvent.action == "approval.delegated")]) == 1


# --- the request: once the files are there and clean -----------------------------------------------------------


def uploaded_not_asked(monkeypatch, created):
    """The file arrives and is verified; the process dies before the approvers are asked."""
    from transfers.services import sending

    monkeypatch.setattr(sending, "approval_request", lambda *args, **kwargs: False)
    upload(created)
    monkeypatch.undo()
    assert transfer(created).approval_requested_at is None


@pytest.mark.parametrize("kind", [ERROR, TIMEOUT, LOST])
def test_a_fault_at_the_request_transaction_asks_once(kind, monkeypatch, mailoutbox):
    created = send()
    uploaded_not_asked(monkeypatch, created)
    with inject(kind, service="dynamodb", operation="TransactWriteItems") as fault:
        released = services.transfer_release(transfer_id=created.transfer_id, now=NOW)
    assert fault.fired and released.blockers == ("approval",)
    services.transfer_release(transfer_id=created.transfer_id, now=NOW)  # the hourly healer, later
    assert len(mails_to(mailoutbox, "dave@corp.example")) == 1
    assert len(events(created.transfer_id, "approval.requested")) == 1
    assert transfer(created).approval_due_at == NOW + timedelta(hours=24)


def test_a_lost_answer_every_retry_at_the_request_is_one_mail_one_event(monkeypatch, mailoutbox):
    created = send()
    uploaded_not_asked(monkeypatch, created)
    # Every attempt takes effect and loses its answer: the change recognises its own commit.
    with inject(LOST, service="dynamodb", operation="TransactWriteItems", times=10) as fault:
        assert services.transfer_release(transfer_id=created.transfer_id, now=NOW).blockers == ("approval",)
    assert fault.fired
    assert transfer(created).approval_requested_at == NOW
    assert services.transfer_release(transfer_id=created.transfer_id, now=NOW).blockers == ("approval",)
    outbox_retry(now=NOW + timedelta(minutes=5))
    assert len(mails_to(mailoutbox, "dave@corp.example")) == 1
    assert len(events(created.transfer_id, "approval.requested")) == 1


def test_the_delegation_lookup_failing_at_the_request_writes_nothing_and_the_next_call_asks(monkeypatch, mailoutbox):
    delegation_set(
        approver=DAVE, delegate_email="frank@corp.example", starts_at=NOW, ends_at=NOW + timedelta(days=1), now=NOW
    )
    created = send()
    uploaded_not_asked(monkeypatch, created)
    with inject(ERROR, service="dynamodb", operation="GetItem", nth=2, times=10) as fault:
        with pytest.raises(Exception):  # noqa: B017
            services.transfer_release(transfer_id=created.transfer_id, now=NOW)
    assert fault.fired
    assert transfer(created).approval_requested_at is None and not mails_to(mailoutbox, "dave@corp.example")
    assert services.transfer_release(transfer_id=created.transfer_id, now=NOW).blockers == ("approval",)
    assert len(mails_to(mailoutbox, "dave@corp.example")) == 1 and len(mails_to(mailoutbox, "frank@corp.example")) == 1


@pytest.mark.parametrize("kind", [ERROR, TIMEOUT])
def test_aws_down_at_the_approvers_download_answers_503_and_hands_out_nothing(kind):
    created = send()
    upload(created)
    asked = {"person": DAVE, "transfer_id": created.transfer_id, "file_id": created.files[0].file_id, "now": NOW}
    with inject(kind, service="dynamodb", operation="GetItem", times=PERSISTENT) as fault:
        with pytest.raises(TransferError) as refused:
            approvals.approval_file_download_url(**asked)
    assert fault.fired and refused.value.code == "unavailable"
    assert not events(created.transfer_id, "file.downloaded")
    issued = approvals.approval_file_download_url(**asked)
    assert issued.url and len(events(created.transfer_id, "file.downloaded")) == 1


@pytest.mark.parametrize("kind", [ERROR, TIMEOUT])
def test_aws_down_at_the_approvals_lists_read_answers_503_not_an_empty_list(kind):
    created = send()
    upload(created)
    dave = employee(Client(raise_request_exception=False), DAVE)
    officer = employee(Client(raise_request_exception=False), CAROL, roles=("compliance",))
    for client, path in ((dave, "/approvals/"), (officer, "/admin/approvals/")):
        with inject(kind, service="dynamodb", operation="BatchGetItem", times=PERSISTENT) as fault:
            page = client.get(path)
        assert fault.fired and page.status_code == 503, path
        assert "Nothing was lost" in page.content.decode() and created.transfer_id not in page.content.decode()
        assert "No approval is waiting" not in page.content.decode()
        assert created.transfer_id in client.get(path).content.decode()  # AWS back: the list is there


def test_a_lost_answer_at_the_approvals_lists_read_is_retried_and_the_list_shown():
    created = send()
    upload(created)
    with inject(LOST, service="dynamodb", operation="BatchGetItem") as fault:
        rows = approvals.approvals_waiting_for(person=DAVE, now=NOW)
    assert fault.fired and [row.transfer_id for row in rows] == [created.transfer_id]
