"""The status badge says what a transfer whose files are all verified waits for (issue 16 follow-up), on My
transfers, the transfer page and compliance's transfer list and page: "Malware scan", "Blocked: malware found",
"Waiting for approval", "Sending at HH:MM", "Rejected", instead of "Uploading" for every pending transfer. The
list reads it from the Transfer item (Transfer.gate, kept by the release's blocked path), not from the files."""

from datetime import timedelta

import pytest
from django.test import Client

from tests.faults import ERROR, inject, recording
from tests.transfers.conftest import NOW, approval_by_manager, put_object_as_browser
from tests.transfers.test_approvals import ALICE, DAVE, Person, as_user, employee, send, transfer
from tests.transfers.test_scan import INFECTED_BODY
from transfers import services
from transfers.services.approvals import approval_decide


@pytest.fixture(autouse=True)
def _policy(settings):
    """Transfers outside corp.example wait for the sender's manager (dave)."""
    approval_by_manager(settings, group_email="")
    settings.FXFER_COMPLIANCE_EMAIL = ["compliance@corp.example"]


ALICE_SIGNED_IN = as_user(ALICE)


def sent(body: bytes = b"x" * 11, recipients=("bob@partner.example",), subject: str = "", now=NOW):
    created = send(sender=ALICE_SIGNED_IN, recipients=list(recipients), size=len(body), subject=subject)
    file = created.files[0]
    owner = ALICE_SIGNED_IN.id
    services.upload_authorize(owner_id=owner, transfer_id=created.transfer_id, file_id=file.file_id, now=now)
    put_object_as_browser(file.key, body)
    services.upload_done(owner_id=owner, transfer_id=created.transfer_id, file_id=file.file_id, now=now)
    return created


def badge(html: str, transfer_id: str | None = None) -> str:
    """The status badge in the list's row of `transfer_id` (None: the page's first badge)."""
    row = html[html.index(f"/transfers/{transfer_id}/") :] if transfer_id else html
    start = row.index('class="status status-')
    return row[row.index(">", start) + 1 : row.index("</span>", start)]


def test_my_transfers_and_the_transfer_page_say_what_the_gate_waits_for(settings):
    uploading = send(sender=ALICE_SIGNED_IN, subject="uploading")
    approval = sent(subject="approval")
    infected = sent(INFECTED_BODY, subject="infected")
    rejected = sent(subject="rejected")
    approval_decide(person=DAVE, transfer_id=rejected.transfer_id, decision="reject", comment="no", now=NOW)
    settings.FXFER_SCANNER = "guardduty"  # production's scanner: the verdict comes later
    scanning = sent(subject="scanning")
    settings.FXFER_SCANNER = "eicar"
    settings.FXFER_SEND_HOLD_SECONDS = 180
    held = sent(recipients=("carl@corp.example",), subject="held")  # inside: no approval, only the hold

    alice = employee(Client(), ALICE)
    listing = alice.get("/transfers/").content.decode()
    expected = {
        uploading: "Uploading",
        approval: "Waiting for approval",
        infected: "Blocked: malware found",
        rejected: "Rejected",
        scanning: "Malware scan",
        held: "Sending at 10:03 JST",  # NOW is 01:00 UTC
    }
    for created, words in expected.items():
        assert badge(listing, created.transfer_id) == words
        page = alice.get(f"/transfers/{created.transfer_id}/").content.decode()
        assert badge(page) == words


def test_the_list_reads_no_file_for_its_badges():
    """A page of gated transfers costs the DynamoDB calls of a page of sent ones."""
    alice = employee(Client(), ALICE)
    sent(recipients=("carl@corp.example",))  # released at once
    with recording() as plain:
        alice.get("/transfers/")
    sent()
    sent(INFECTED_BODY)
    with recording() as gated:
        html = alice.get("/transfers/").content.decode()
    assert "Waiting for approval" in html and "Blocked: malware found" in html
    dynamodb = [[op for service, op in r.calls if service == "dynamodb"] for r in (plain, gated)]
    assert dynamodb[0] == dynamodb[1]


def test_an_approval_given_or_a_hold_run_out_is_not_shown_from_a_stale_word(settings):
    settings.FXFER_SEND_HOLD_SECONDS = 180
    created = sent()  # held, and waiting for an approval after it
    assert transfer(created).gate == "hold"
    alice = employee(Client(), ALICE)
    # The hold has ended (the pages' clock is today's) and the minute job has not called the release yet: the
    # approval is next, and the badge says so rather than a time gone by.
    assert badge(alice.get("/transfers/").content.decode(), created.transfer_id) == "Waiting for approval"
    services.transfer_release(transfer_id=created.transfer_id, now=NOW + timedelta(minutes=4))
    assert transfer(created).gate == "approval"
    assert badge(alice.get("/transfers/").content.decode(), created.transfer_id) == "Waiting for approval"
    approval_decide(person=DAVE, transfer_id=created.transfer_id, decision="approve", now=NOW + timedelta(minutes=5))
    assert badge(alice.get("/transfers/").content.decode(), created.transfer_id) == "Sent"


def test_a_failed_gate_write_keeps_the_release_answer_and_the_next_call_writes_it():
    created = send(sender=ALICE_SIGNED_IN, size=len(INFECTED_BODY))
    file = created.files[0]
    owner = ALICE_SIGNED_IN.id
    services.upload_authorize(owner_id=owner, transfer_id=created.transfer_id, file_id=file.file_id, now=NOW)
    put_object_as_browser(file.key, INFECTED_BODY)
    with inject(ERROR, service="dynamodb", operation="UpdateItem", times=100) as fault:  # the mails' claims too
        services.upload_done(owner_id=owner, transfer_id=created.transfer_id, file_id=file.file_id, now=NOW)
    assert fault.fired
    assert transfer(created).gate is None  # the badge says "Uploading" until a later call writes it
    assert services.transfer_release(transfer_id=created.transfer_id, now=NOW).blockers[0] == "scan"
    assert transfer(created).gate == "infected"


def test_compliance_sees_the_same_words():
    approval = sent(subject="approval")
    infected = sent(INFECTED_BODY, subject="infected")
    officer = employee(Client(), Person(id="u-carol", email="carol@corp.example"), roles=("compliance",))
    for created, words in ((approval, "Waiting for approval"), (infected, "Blocked: malware found")):
        page = officer.get(f"/admin/transfers/{created.transfer_id}/").content.decode()
        assert words in page
    day = NOW.strftime("%Y-%m-%d")
    listing = officer.get("/admin/transfers/", {"start": day, "end": day}).content.decode()
    assert "Waiting for approval" in listing and "Blocked: malware found" in listing
