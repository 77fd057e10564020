"""Each employee's quota of bytes in flight (issue 12 item 9), through the pages: a transfer that would pass it
is refused at the files field with nothing created; two creates at once cannot both pass; deleting the files
(delete now, expiry) or cancelling a file gives the bytes back exactly once; compliance raises the allowance
from the admin (audited), and nobody else can."""

import io
import json
import threading
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client

from accounts.tables import UserRecord
from reports.models import AuditEvent
from tests.reports.conftest import make_user, signed_in
from transfers import services
from transfers.models import File, QuotaUsage, Recipient, Transfer, TransferSearchTerm
from transfers.services import quota

GiB = 1024**3
REFUSAL = (
    "You have %s in transfers still being kept; this would bring it to %s of your %s allowance. "
    "Delete a transfer or ask compliance to raise it."
)


def _person(email: str, roles: list[str]) -> UserRecord:
    record = make_user(email, roles=roles)
    record.email_key = email.lower()  # what a sign-in records, so compliance finds the person by address
    record.save()
    return record


@pytest.fixture
def alice_record():
    return _person("alice@corp.example", ["employee"])


@pytest.fixture
def alice(alice_record):
    return signed_in(Client(), alice_record)


@pytest.fixture
def officer():
    return signed_in(Client(), _person("carol@corp.example", ["compliance"]))


def _create(client, *sizes: int):
    data = {
        "recipients": "bob@partner.example",
        "subject": "Figures",
        "message": "",
        "expiry_amount": 7,
        "expiry_unit": "days",
        "download_limit": 2,
        "notify_on_download": True,
        "files": [
            {"name": f"part{n}.dat", "size": size, "type": "application/octet-stream"} for n, size in enumerate(sizes)
        ],
    }
    return client.post("/transfers/new", json.dumps(data), content_type="application/json")


def _in_flight(record: UserRecord) -> int:
    try:
        return int(QuotaUsage.get(record.user_id).in_flight)
    except QuotaUsage.DoesNotExist:
        return 0


def _stored() -> dict:
    """How many items of each kind exist (a Scan: tests only)."""
    return {
        "transfers": len(list(Transfer.scan())),
        "files": len(list(File.scan())),
        "recipients": len(list(Recipient.scan())),
        "terms": len(list(TransferSearchTerm.scan())),
        "created": len([e for e in AuditEvent.scan() if e.action == "transfer.created"]),
    }


def _events(action: str) -> list[AuditEvent]:
    return [e for e in AuditEvent.scan() if e.action == action]


def test_a_create_over_the_quota_is_refused_at_the_files_field_and_creates_nothing(alice, alice_record):
    # The default allowance is 200 GiB: two transfers of the largest size fit, a third file does not.
    for _ in range(2):
        assert _create(alice, 50 * GiB, 50 * GiB).status_code == 201
    assert _in_flight(alice_record) == 200 * GiB
    before = _stored()

    refused = _create(alice, 50 * GiB)

    assert refused.status_code == 409
    body = refused.json()
    assert body["error"] == "quota_exceeded"
    assert body["fields"] == {"files": [REFUSAL % ("200 GB", "250 GB", "200 GB")]}
    assert _stored() == before, "a refused transfer left items behind"
    assert _in_flight(alice_record) == 200 * GiB


def test_my_transfers_shows_what_counts_against_the_allowance(alice, officer):
    assert "In transfers still being kept: 0 B of your 200 GB allowance." in alice.get("/transfers/").content.decode()
    created = _create(alice, 50 * GiB, 20 * GiB).json()
    alice.post(f"/transfers/{created['transferId']}/files/{created['files'][1]['fileId']}/cancel")
    form = _change_form(officer, "alice@corp.example")
    officer.post("/admin/quotas/", {**form, "allowance_gb": 300, "reason": "Project Atlas"})

    page = alice.get("/transfers/").content.decode()

    assert "In transfers still being kept: 50 GB of your 300 GB allowance." in page


def test_two_creates_at_once_cannot_both_pass(alice, alice_record, monkeypatch):
    assert _create(alice, 50 * GiB).status_code == 201
    # Both requests read the usage (50 GiB: each 100 GiB more fits on its own) before either commits, so only
    # the transaction's condition can tell them apart.
    both_read = threading.Barrier(2, timeout=30)
    read = quota.quota_state

    def read_then_wait(**kwargs):
        state = read(**kwargs)
        both_read.wait()
        return state

    monkeypatch.setattr(quota, "quota_state", read_then_wait)
    second = signed_in(Client(), alice_record)
    answers = {}

    def send(name, client):
        answers[name] = _create(client, 50 * GiB, 50 * GiB)

    threads = [threading.Thread(target=send, args=(n, c)) for n, c in (("first", alice), ("second", second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    statuses = sorted(a.status_code for a in answers.values())
    assert statuses == [201, 409], statuses
    [refused] = [a.json() for a in answers.values() if a.status_code == 409]
    assert refused["fields"]["files"] == [REFUSAL % ("150 GB", "250 GB", "200 GB")]
    assert _in_flight(alice_record) == 150 * GiB
    owned = [t for t in Transfer.scan() if t.owner_id == alice_record.user_id]
    assert sorted(int(t.quota_bytes) for t in owned) == [50 * GiB, 100 * GiB]
    # The refused create's files and recipients (written before its transaction) are removed again.
    assert len(list(File.scan())) == 3 and len(list(Recipient.scan())) == 2


def _officer_changes_it_after_the_read(monkeypatch, user_id: str, quota_bytes: int) -> None:
    read = quota.quota_state

    def read_then_change(**kwargs):
        state = read(**kwargs)
        monkeypatch.setattr(quota, "quota_state", read)  # once
        quota.quota_set(officer_id="u-carol", user_id=user_id, quota_bytes=quota_bytes, version=0, reason="Review")
        return state

    monkeypatch.setattr(quota, "quota_state", read_then_change)


def test_an_allowance_lowered_during_a_create_is_not_overrun(alice, alice_record, monkeypatch):
    assert _create(alice, 50 * GiB).status_code == 201
    _officer_changes_it_after_the_read(monkeypatch, alice_record.user_id, 100 * GiB)

    refused = _create(alice, 30 * GiB, 30 * GiB)

    assert refused.status_code == 409
    assert refused.json()["fields"] == {"files": [REFUSAL % ("50 GB", "110 GB", "100 GB")]}
    assert _in_flight(alice_record) == 50 * GiB
    assert len(list(File.scan())) == 1, "the refused transfer's files were left behind"


def test_an_allowance_raised_during_a_create_asks_to_send_again(alice, alice_record, monkeypatch):
    assert _create(alice, 50 * GiB).status_code == 201
    _officer_changes_it_after_the_read(monkeypatch, alice_record.user_id, 500 * GiB)

    refused = _create(alice, 30 * GiB)

    assert refused.status_code == 409
    assert refused.json()["message"] == "Your allowance was changed just now. Please send again."
    assert _create(alice, 30 * GiB).status_code == 201
    assert _in_flight(alice_record) == 80 * GiB


def test_delete_now_gives_the_bytes_back_once_even_when_repeated(alice, alice_record):
    created = _create(alice, 50 * GiB, 50 * GiB).json()
    assert _create(alice, 50 * GiB, 50 * GiB).status_code == 201
    assert _create(alice, 10 * GiB).status_code == 409

    deleted = alice.post(f"/transfers/{created['transferId']}/delete")
    assert deleted.status_code == 302
    assert _in_flight(alice_record) == 100 * GiB
    [ended] = _events("transfer.deleted")
    assert ended.details["quota_refunded"] == 100 * GiB
    assert Transfer.get(created["transferId"]).quota_bytes is None

    again = alice.post(f"/transfers/{created['transferId']}/delete")
    assert again.status_code == 409
    assert _in_flight(alice_record) == 100 * GiB, "a repeated deletion gave the bytes back twice"
    # The room is there again, and only once.
    assert _create(alice, 50 * GiB, 50 * GiB).status_code == 201
    assert _create(alice, 1 * GiB).status_code == 409


def test_expiry_gives_the_bytes_back(alice, alice_record):
    created = _create(alice, 40 * GiB).json()
    transfer = Transfer.get(created["transferId"])
    assert _in_flight(alice_record) == 40 * GiB

    services.expiry_sweep(now=transfer.expires_at + timedelta(minutes=1))
    services.expiry_sweep(now=transfer.expires_at + timedelta(hours=1))

    assert Transfer.get(created["transferId"]).deleted_at is not None
    assert _in_flight(alice_record) == 0
    [expired] = _events("transfer.expired")
    assert expired.details["quota_refunded"] == 40 * GiB


def test_cancelling_a_file_gives_its_bytes_back_once(alice, alice_record):
    created = _create(alice, 30 * GiB, 20 * GiB).json()
    url = f"/transfers/{created['transferId']}/files/{created['files'][0]['fileId']}/cancel"

    assert alice.post(url, "{}", content_type="application/json").status_code == 200
    assert _in_flight(alice_record) == 20 * GiB
    assert alice.post(url, "{}", content_type="application/json").status_code == 200  # the page retried it
    assert _in_flight(alice_record) == 20 * GiB

    assert alice.post(f"/transfers/{created['transferId']}/delete").status_code == 302
    assert _in_flight(alice_record) == 0
    assert _events("transfer.deleted")[0].details["quota_refunded"] == 20 * GiB


def test_upload_requests_do_not_count(alice, alice_record):
    for _ in range(2):
        assert _create(alice, 50 * GiB, 50 * GiB).status_code == 201
    # At the full allowance, the employee can still ask outside people for files: guests are bounded by the
    # request's own limits, and must not be refused because of the employee's transfers.
    response = alice.post(
        "/requests/new",
        {
            "recipients": "bob@partner.example",
            "subject": "Contracts",
            "closes_amount": 7,
            "closes_unit": "days",
            "keep_days": 14,
            "max_files": 20,
            "max_file_size": 50,
            "max_file_size_unit": "GB",
            "max_total_size": 100,
            "max_total_size_unit": "GB",
        },
    )
    assert response.status_code == 302, response.content.decode()[:500]
    assert _in_flight(alice_record) == 200 * GiB


def test_the_backfill_charges_transfers_made_before_quotas_once(alice, alice_record):
    kept = _create(alice, 50 * GiB, 30 * GiB).json()["transferId"]
    gone = _create(alice, 10 * GiB).json()["transferId"]
    assert alice.post(f"/transfers/{gone}/delete").status_code == 302
    # What a transfer made before quotas looks like: no charge on it, no usage.
    Transfer(transfer_id=kept).update(actions=[Transfer.quota_bytes.remove()])
    QuotaUsage(user_id=alice_record.user_id).delete()
    assert _create(alice, 50 * GiB, 50 * GiB).status_code == 201
    assert _create(alice, 50 * GiB, 50 * GiB).status_code == 201  # 200 GiB counted: the old 80 GiB are not

    call_command("quota_backfill", stdout=io.StringIO())
    call_command("quota_backfill", stdout=io.StringIO())

    assert _in_flight(alice_record) == 280 * GiB
    assert int(Transfer.get(kept).quota_bytes) == 80 * GiB
    assert [e.details["bytes"] for e in _events("quota.charged")] == [80 * GiB]
    assert _create(alice, 1 * GiB).status_code == 409
    assert alice.post(f"/transfers/{kept}/delete").status_code == 302
    assert _in_flight(alice_record) == 200 * GiB


# --- compliance raises (or lowers) a person's allowance -----------------------------------------------------------


def _change_form(officer, email: str) -> dict:
    page = officer.get("/admin/quotas/", {"email": email})
    assert page.status_code == 200
    [person] = page.context["people"]
    return {"user_id": person.user_id, "version": person.usage.version, "email": email}


def test_compliance_raises_the_allowance_and_the_create_goes_through(alice, alice_record, officer):
    for _ in range(2):
        assert _create(alice, 50 * GiB, 50 * GiB).status_code == 201
    assert _create(alice, 50 * GiB).status_code == 409

    page = officer.get("/admin/quotas/", {"email": "Alice@corp.example"}).content.decode()
    assert "200 GB (site default)" in page and 'id="in-flight-1">200 GB<' in page

    form = _change_form(officer, "alice@corp.example")
    done = officer.post(
        "/admin/quotas/", {**form, "allowance_gb": 500, "reason": "Data room migration, ticket 4411"}, follow=True
    )
    assert "The allowance is now 500 GB." in done.content.decode()

    assert _create(alice, 50 * GiB).status_code == 201
    assert _in_flight(alice_record) == 250 * GiB
    [event] = _events("quota.changed")
    assert UserRecord.get(event.actor.removeprefix("user:")).email == "carol@corp.example"
    assert event.subject == f"user:{alice_record.user_id}"
    assert (event.details["old"], event.details["new"]) == (200 * GiB, 500 * GiB)
    assert event.details["reason"] == "Data room migration, ticket 4411"

    # Back to the default: the transfers in flight stay, new ones are refused.
    form = _change_form(officer, "alice@corp.example")
    officer.post("/admin/quotas/", {**form, "use_default": "on", "reason": "Migration done"})
    assert _create(alice, 1 * GiB).status_code == 409
    assert [e.details["new"] for e in sorted(_events("quota.changed"), key=lambda e: e.sort_key)] == [
        500 * GiB,
        200 * GiB,
    ]


def test_a_stale_form_does_not_undo_another_officers_change(alice_record, officer):
    stale = _change_form(officer, "alice@corp.example")
    officer.post("/admin/quotas/", {**stale, "allowance_gb": 300, "reason": "First officer"})

    response = officer.post("/admin/quotas/", {**stale, "allowance_gb": 250, "reason": "Second officer"}, follow=True)

    assert "Someone changed this person&#x27;s quota meanwhile" in response.content.decode()
    assert int(QuotaUsage.get(alice_record.user_id).quota_bytes) == 300 * GiB
    assert len(_events("quota.changed")) == 1


def test_a_reason_and_a_value_are_required(alice_record, officer):
    form = _change_form(officer, "alice@corp.example")
    officer.post("/admin/quotas/", {**form, "allowance_gb": 500, "reason": ""})
    officer.post("/admin/quotas/", {**form, "reason": "No value"})
    assert _events("quota.changed") == []
    assert quota.quota_state(user_id=alice_record.user_id).override is None


def test_employees_cannot_reach_the_quota_page(alice, alice_record):
    assert alice.get("/admin/quotas/", {"email": "alice@corp.example"}).status_code == 403
    posted = alice.post(
        "/admin/quotas/",
        {"user_id": alice_record.user_id, "version": 0, "email": "alice@corp.example", "allowance_gb": 9999}
        | {"reason": "Me"},
    )
    assert posted.status_code == 403
    assert quota.quota_state(user_id=alice_record.user_id).override is None
    assert _events("quota.changed") == []
    assert any(e.details.get("path") == "/admin/quotas/" for e in _events("admin.refused"))
    anonymous = Client().get("/admin/quotas/")
    assert anonymous.status_code == 302 and "/login" in anonymous["Location"]


def test_the_change_needs_the_csrf_token(alice_record):
    officer = signed_in(Client(enforce_csrf_checks=True), _person("carol@corp.example", ["compliance"]))
    response = officer.post(
        "/admin/quotas/",
        {"user_id": alice_record.user_id, "version": 0, "email": "alice@corp.example", "allowance_gb": 900}
        | {"reason": "Forged"},
    )
    assert response.status_code == 403
    assert quota.quota_state(user_id=alice_record.user_id).override is None
