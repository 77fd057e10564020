"""A false positive of the malware scan (issue 16): compliance releases a blocked file with a reason, audited; the
transfer then leaves. The sender cannot: their POST to the same URL is refused and changes nothing."""

from dataclasses import dataclass

import pytest

from reports.models import AuditEvent
from tests.reports.conftest import NOW, audit_events, signed_in, user_id
from tests.transfers.conftest import (  # noqa: F401 - fixtures the transfer helpers need
    _bucket_policy_without_conditions_is_not_ours,
    _fresh_kms_key_arn,
    put_object_as_browser,
)
from transfers import services
from transfers.models import File, Transfer
from transfers.policy import FileDeclared
from transfers.services import scanning

BOB = "bob@partner.example"
# The EICAR test string, from two halves (no scanner on a developer's machine quarantines this file).
INFECTED = ("X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*").encode()


@dataclass(frozen=True)
class Sender:
    id: str
    email: str = "alice@corp.example"
    display_name: str = "Alice"


@pytest.fixture
def blocked(alice, mailoutbox):
    """Alice's transfer to Bob whose one file the scanner found infected: pending, Bob not mailed."""
    created = services.transfer_create(
        sender=Sender(id=user_id("alice@corp.example")),
        recipients=[BOB],
        files=[FileDeclared(name="figures.xlsx", size=len(INFECTED))],
        now=NOW,
    )
    file = created.files[0]
    owner = user_id("alice@corp.example")
    services.upload_authorize(owner_id=owner, transfer_id=created.transfer_id, file_id=file.file_id, now=NOW)
    put_object_as_browser(file.key, INFECTED)
    services.upload_done(owner_id=owner, transfer_id=created.transfer_id, file_id=file.file_id, now=NOW)
    assert File.get(created.transfer_id, file.file_id).scan_status == scanning.INFECTED
    assert Transfer.get(created.transfer_id).status == "pending"
    mailoutbox.clear()
    return created


def _url(created) -> str:
    return f"/admin/transfers/{created.transfer_id}/files/{created.files[0].file_id}/release-scan/"


def test_compliance_sees_the_blocked_file_and_releases_it_with_a_reason(officer, carol, blocked, mailoutbox):
    page = officer.get(f"/admin/transfers/{blocked.transfer_id}/").content.decode()
    assert "Malware found: blocked" in page and scanning.EICAR_THREAT in page and _url(blocked) in page

    assert officer.post(_url(blocked), {"reason": "x"}).status_code == 302  # too short: refused, nothing changes
    assert File.get(blocked.transfer_id, blocked.files[0].file_id).scan_overridden_at is None

    answer = officer.post(_url(blocked), {"reason": "Test file from the security team, not malware"})
    assert answer.status_code == 302
    file = File.get(blocked.transfer_id, blocked.files[0].file_id)
    assert (file.scan_overridden_status, file.scan_overridden_by) == (scanning.INFECTED, f"user:{carol.user_id}")
    [event] = [e for e in audit_events() if e.action == "file.scan_overridden"]
    assert (event.actor, event.outcome) == (f"user:{carol.user_id}", "ok")
    assert event.details["reason"] == "Test file from the security team, not malware"
    assert event.details["result"] == scanning.INFECTED
    # The release is retried at once: the transfer leaves, Bob gets his link.
    assert Transfer.get(blocked.transfer_id).status == "ready"
    assert [m.to for m in mailoutbox] == [[BOB]]
    page = officer.get(f"/admin/transfers/{blocked.transfer_id}/").content.decode()
    assert "Released by compliance after the malware scan" in page and _url(blocked) not in page

    # Released already: a second release is refused, and that refusal is on record too.
    officer.post(_url(blocked), {"reason": "Test file from the security team, not malware"})
    refused = [e for e in audit_events() if e.action == "file.scan_overridden" and e.outcome == "refused"]
    assert len(refused) == 1


def test_the_sender_cannot_release_their_own_blocked_file(client, alice, blocked, mailoutbox):
    employee = signed_in(client, alice)
    answer = employee.post(_url(blocked), {"reason": "It is only a spreadsheet, trust me"})
    assert answer.status_code == 403
    file = File.get(blocked.transfer_id, blocked.files[0].file_id)
    assert file.scan_overridden_at is None and Transfer.get(blocked.transfer_id).status == "pending"
    assert [e.details["method"] for e in audit_events() if e.action == "admin.refused"] == ["POST"]
    assert not [e for e in AuditEvent.scan() if e.action == "file.scan_overridden"] and mailoutbox == []
    # Nor through the transfers service's own door: the sender's page has no such action.
    assert employee.post(f"/transfers/{blocked.transfer_id}/release-scan/").status_code in {403, 404, 405}


def test_a_new_verdict_after_the_release_blocks_the_file_again(officer, blocked, settings):
    """Compliance released a file that had no verdict yet (the scan hung); the verdict that then comes says
    malware: the release named "no verdict", so the file is blocked again and no guest gets it."""
    settings.FXFER_SCANNER = "guardduty"
    created = services.transfer_create(
        sender=Sender(id=user_id("alice@corp.example")),
        recipients=[BOB],
        files=[FileDeclared(name="slow.bin", size=11)],
        now=NOW,
    )
    file = created.files[0]
    owner = user_id("alice@corp.example")
    services.upload_authorize(owner_id=owner, transfer_id=created.transfer_id, file_id=file.file_id, now=NOW)
    put_object_as_browser(file.key, b"hello world")
    services.upload_done(owner_id=owner, transfer_id=created.transfer_id, file_id=file.file_id, now=NOW)
    url = f"/admin/transfers/{created.transfer_id}/files/{file.file_id}/release-scan/"
    officer.post(url, {"reason": "The scan has hung for hours; the customer is waiting"})
    assert Transfer.get(created.transfer_id).status == "ready"
    stored = File.get(created.transfer_id, file.file_id)
    scanning.scan_result_record(
        key=stored.s3_key, version_id=stored.version_id, status=scanning.INFECTED, source="guardduty", now=NOW
    )
    stored.refresh()
    assert scanning.scan_state(stored, NOW) == scanning.STATE_INFECTED
    assert scanning.download_refusal(stored, NOW) is not None


def test_aws_failing_during_the_release_loses_nothing_and_says_so(officer, blocked):
    from tests.faults import ERROR, inject

    with inject(ERROR, service="dynamodb", operation="TransactWriteItems", nth=1, times=10):
        answer = officer.post(_url(blocked), {"reason": "Test file from the security team, not malware"}, follow=True)
    assert answer.status_code == 200 and "try again" in answer.content.decode()
    assert File.get(blocked.transfer_id, blocked.files[0].file_id).scan_overridden_at is None
    answer = officer.post(_url(blocked), {"reason": "Test file from the security team, not malware"})
    assert Transfer.get(blocked.transfer_id).status == "ready"
