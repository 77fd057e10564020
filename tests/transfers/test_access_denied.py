"""Issue 12, item 8: an employee probing another employee's transfers and requests (pages, buttons and the
uploader's JSON endpoints) gets exactly the 404 of an id that does not exist, and compliance sees it: an
`access.denied` event per prober, route and minute (and per id, for an id that exists), whose count says how
often. A script trying thousands of ids writes a handful of items; an audit write that fails changes nothing
in the answer."""

import json
import re
from datetime import UTC, datetime

import pytest
from django.test import Client

from reports.models import AuditEvent
from tests.faults import ERROR, LOST, PERSISTENT, inject
from tests.reports.conftest import make_user, signed_in
from tests.transfers.conftest import ALICE, create, create_request
from transfers.models import File, Recipient, Transfer
from transfers.policy import FileDeclared

MISSING = "nosuchtransfer1234"
EXTEND_TO = {"expires_at": "2026-12-20T00:00:00+0000"}


@pytest.fixture
def mallory(client):
    """Another employee, signed in: the attacker."""
    return signed_in(client, make_user("mallory@corp.example", roles=["employee"], display_name="Mallory"))


def mallory_actor() -> str:
    from tests.reports.conftest import user_id

    return f"user:{user_id('mallory@corp.example')}"


@pytest.fixture
def alices():
    """Alice's pending transfer (a file still to upload) and her open request with one guest."""
    now = datetime.now(UTC)
    transfer = create(sender=ALICE, files=[FileDeclared(name="plan.pdf", size=11)], now=now)
    request = create_request(sender=ALICE, recipients=["bob@partner.example"], now=now)
    return transfer, request


def text(response) -> str:
    """The page as compared: whitespace collapsed, the CSRF token (masked afresh in every response) blanked."""
    page = re.sub(r'(name="csrfmiddlewaretoken" value=)"[^"]*"', r'\1""', response.content.decode())
    return re.sub(r"\s+", " ", page)


def post_json(client, url: str, data: dict | None = None):
    return client.post(url, json.dumps(data or {}), content_type="application/json")


def denied_events() -> list[AuditEvent]:
    return sorted((e for e in AuditEvent.scan() if e.action == "access.denied"), key=lambda e: e.sort_key)


def sender_probes(client, transfer_id: str, file_id: str, recipient_id: str) -> dict:
    """Every sender page and button on one transfer id: route name → response."""
    base = f"/transfers/{transfer_id}"
    upload = f"{base}/files/{file_id}"
    return {
        "detail": client.get(f"{base}/"),
        "revoke": client.post(f"{base}/revoke"),
        "extend": client.post(f"{base}/extend", EXTEND_TO),
        "delete": client.get(f"{base}/delete"),
        "delete:POST": client.post(f"{base}/delete"),
        "resend": client.post(f"{base}/recipients/{recipient_id}/resend"),
        "upload_authorize": post_json(client, f"{upload}/authorize"),
        "upload_parts": post_json(client, f"{upload}/parts", {"uploadId": "x", "partNumbers": [1]}),
        "upload_parts_list": client.get(f"{upload}/parts/list", {"uploadId": "x"}),
        "upload_complete": post_json(client, f"{upload}/complete", {"uploadId": "x"}),
        "upload_done": post_json(client, f"{upload}/done"),
        "upload_cancel": post_json(client, f"{upload}/cancel"),
    }


def request_probes(client, request_id: str, file_id: str, recipient_id: str) -> dict:
    base = f"/requests/{request_id}"
    return {
        "request_detail": client.get(f"{base}/"),
        "request_close": client.post(f"{base}/close"),
        "request_delete": client.get(f"{base}/delete"),
        "request_delete:POST": client.post(f"{base}/delete"),
        "request_download": client.post(f"{base}/files/{file_id}/download"),
        "request_resend": client.post(f"{base}/recipients/{recipient_id}/resend"),
    }


def same_answer(foreign, missing) -> None:
    """What the prober sees of an id that exists is what they see of one that does not."""
    assert (foreign.status_code, missing.status_code) == (404, 404)
    assert foreign["Content-Type"] == missing["Content-Type"]
    if foreign["Content-Type"].startswith("application/json"):
        assert foreign.json() == missing.json() == {"error": "not_found", "message": missing.json()["message"]}
    else:
        assert text(foreign) == text(missing)


def test_probing_alices_transfer_answers_the_missing_id_404_and_records_who_probed_what(mallory, alices):
    transfer, _request = alices
    file_id = transfer.files[0].file_id
    [recipient] = Recipient.query(transfer.transfer_id)
    foreign = sender_probes(mallory, transfer.transfer_id, file_id, recipient.recipient_id)
    missing = sender_probes(mallory, MISSING, file_id, recipient.recipient_id)
    for route, response in foreign.items():
        same_answer(response, missing[route])
    assert "Transfer not found" in text(foreign["detail"])

    # Nothing of Alice's moved.
    assert Transfer.get(transfer.transfer_id).status == "pending"
    assert File.get(transfer.transfer_id, file_id).state == "pending"
    assert Recipient.get(transfer.transfer_id, recipient.recipient_id).token_hash == recipient.token_hash

    events = denied_events()
    on_alices = [e for e in events if e.subject == f"transfer:{transfer.transfer_id}"]
    routes = {r.partition(":")[0] for r in foreign}
    assert {e.details["reason"] for e in on_alices} == routes
    for event in on_alices:
        assert (event.actor, event.outcome, event.details["exists"]) == (mallory_actor(), "refused", True)
        assert event.details["transfer_id"] == transfer.transfer_id
        assert event.user_agent == "pytest-compliance/1.0"
    # GET and POST of the delete page are one route: two hits in its minute (or one in each of two minutes).
    assert sum(e.count for e in on_alices if e.details["reason"] == "delete") == 2
    # The ids that do not exist are counted too, told apart only here.
    not_there = [e for e in events if e.subject == "system"]
    assert {e.details["reason"] for e in not_there} == routes
    assert all(e.details["exists"] is False and e.details["transfer_id"] == MISSING for e in not_there)
    assert all(e.actor == mallory_actor() for e in not_there)


def test_probing_alices_request_answers_the_missing_id_404_and_is_recorded(mallory, alices):
    _transfer, request = alices
    [guest] = Recipient.query(request.request_id)
    foreign = request_probes(mallory, request.request_id, "nosuchfile123456", guest.recipient_id)
    missing = request_probes(mallory, MISSING, "nosuchfile123456", guest.recipient_id)
    for route, response in foreign.items():
        same_answer(response, missing[route])
    assert Transfer.get(request.request_id).status == "ready"
    assert Transfer.get(request.request_id).deleted_at is None
    on_alices = [e for e in denied_events() if e.subject == f"transfer:{request.request_id}"]
    assert {e.details["reason"] for e in on_alices} == {r.partition(":")[0] for r in foreign}
    assert all(e.actor == mallory_actor() and e.details["exists"] is True for e in on_alices)


def test_an_employees_own_pages_and_their_own_wrong_file_ids_record_nothing(client, alices):
    alice = signed_in(client, make_user("alice@corp.example", roles=["employee"]))
    transfer = create(sender=_sender_of("alice@corp.example"), now=datetime.now(UTC))
    assert alice.get(f"/transfers/{transfer.transfer_id}/").status_code == 200
    assert post_json(alice, f"/transfers/{transfer.transfer_id}/files/nosuchfile123456/done").status_code == 404
    assert denied_events() == []


def _sender_of(email: str):
    from tests.reports.conftest import user_id
    from tests.transfers.conftest import Sender

    return Sender(id=user_id(email), email=email, display_name="Alice")


def test_five_hundred_probes_write_a_bounded_number_of_audit_items(mallory, alices):
    transfer, _request = alices
    before = len(list(AuditEvent.scan()))
    started = datetime.now(UTC)
    for n in range(400):
        assert mallory.get(f"/transfers/guess{n:012d}/").status_code == 404
    for _ in range(100):
        assert mallory.post(f"/transfers/{transfer.transfer_id}/revoke").status_code == 404
    finished = datetime.now(UTC)
    minute = {"second": 0, "microsecond": 0}
    minutes = int((finished.replace(**minute) - started.replace(**minute)).total_seconds() // 60) + 1
    events = denied_events()
    # One item per (route, id that exists) and minute: two keys here, whatever the number of guesses.
    assert len(events) <= 2 * minutes
    assert len(list(AuditEvent.scan())) - before == len(events)
    # Every probe is counted.
    assert sum(e.count for e in events if e.subject == "system") == 400
    assert sum(e.count for e in events if e.subject == f"transfer:{transfer.transfer_id}") == 100
    assert Transfer.get(transfer.transfer_id).status == "pending"


@pytest.mark.parametrize("kind", [ERROR, LOST])
def test_a_failing_audit_write_still_answers_the_same_404(mallory, alices, kind, caplog):
    transfer, _request = alices
    missing = mallory.get(f"/transfers/{MISSING}/")
    missing_json = post_json(mallory, f"/transfers/{MISSING}/files/{transfer.files[0].file_id}/done")
    times = PERSISTENT if kind == ERROR else 1
    with inject(kind, service="dynamodb", operation="UpdateItem", times=times) as fault:
        page = mallory.get(f"/transfers/{transfer.transfer_id}/")
    assert fault.fired
    same_answer(page, missing)
    with inject(kind, service="dynamodb", operation="UpdateItem", times=times) as fault:
        answer = post_json(mallory, f"/transfers/{transfer.transfer_id}/files/{transfer.files[0].file_id}/done")
    assert fault.fired
    same_answer(answer, missing_json)
    on_alices = [e for e in denied_events() if e.subject == f"transfer:{transfer.transfer_id}"]
    if kind == ERROR:
        assert on_alices == []  # AWS kept refusing: not recorded, and said so in the log
        assert [r.message for r in caplog.records].count("access_denied.not_recorded") == 2
    else:
        # The answer was lost after the write: it is there (a retried ADD may count a hit twice).
        assert {e.details["reason"] for e in on_alices} == {"detail", "upload_done"}


def test_compliance_sees_the_probes_in_the_audit_log_and_on_the_transfer(mallory, alices):
    transfer, _request = alices
    for _ in range(3):
        mallory.get(f"/transfers/{transfer.transfer_id}/")
    mallory.get(f"/transfers/{MISSING}/")
    officer = signed_in(Client(), make_user("carol@corp.example", roles=["compliance"], display_name="Carol"))
    log = text(officer.get("/admin/audit/", {"action": "access.denied"}))
    assert "mallory@corp.example" in log and "exists=True" in log and "exists=False" in log
    assert f'href="/admin/transfers/{transfer.transfer_id}/"' in log
    assert f"transfer_id={MISSING}" in log
    page = text(officer.get(f"/admin/transfers/{transfer.transfer_id}/"))
    assert "access.denied" in page and "mallory@corp.example" in page
    on_alices = [e for e in denied_events() if e.subject == f"transfer:{transfer.transfer_id}"]
    assert sum(e.count for e in on_alices) == 3
    for event in on_alices:  # three probes: one event, or two when a minute ended between them
        assert f"{event.count} times in this minute" in log
        assert f"{event.count} times in this minute" in page
