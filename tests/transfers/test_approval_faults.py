"""Supervisor approval when AWS fails (tests/faults.py injects below botocore's retries): a lost answer at the
approve transaction, a process killed right after it, two deciders at once, the timeout job and delegation
under faults. What the approver is told is true, each step has one audit event, recipients are mailed once and
only after an approval, and what a crash left is finished by the hourly job."""

from datetime import timedelta

import pytest

from reports.models import AuditEvent
from tests.faults import ERROR, KILLED, LOST, TIMEOUT, Killed, inject, recording
from tests.transfers.conftest import LINK, NOW
from tests.transfers.test_approvals import ALICE, DAVE, FRANK, GROUP, events, mails_to, send, transfer, upload
from transfers.errors import TransferError
from transfers.models import DELETED, READY, REVOKED, Transfer
from transfers.services import approvals
from transfers.services.approvals import approval_decide, approval_timeouts, delegation_set
from transfers.services.expiry import sweep_heal


@pytest.fixture(autouse=True)
def _policy(settings):
    settings.FXFER_APPROVAL = "external"
    settings.FXFER_APPROVAL_ALLOWED_DOMAINS = ["corp.example"]
    settings.FXFER_APPROVAL_OVER_BYTES = 0
    settings.FXFER_APPROVAL_DEPARTMENTS = []
    settings.FXFER_APPROVER = "manager"
    settings.FXFER_APPROVAL_GROUP = GROUP
    settings.FXFER_APPROVAL_GROUP_EMAIL = "approvers@corp.example"
    settings.FXFER_APPROVAL_TIMEOUT_HOURS = 24
    settings.FXFER_APPROVAL_ON_TIMEOUT = "reject"


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


def test_the_delegation_lookup_failing_at_creation_refuses_with_503_before_anything_is_written():
    from transfers.services import quota

    with recording() as before:  # the GetItems transfer_create makes before the approver's delegation
        quota.charge_for(user_id=ALICE.id, size=11)
    nth = sum(op == ("dynamodb", "GetItem") for op in before.calls) + 1
    with inject(ERROR, service="dynamodb", operation="GetItem", nth=nth, times=10) as fault:
        with pytest.raises(TransferError) as refused:
            send()
    assert fault.fired and refused.value.code == "unavailable"
    assert not list(Transfer.by_owner.query(ALICE.id))
    assert send().transfer_id  # AWS back: the same transfer goes through
