"""Compliance finds transfers by recipient, domain, sender, file name, dates and status; sees files, recipients,
who downloaded what from where, and the timeline; revokes and extends with a reason, each audited."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from reports.selectors import transfer_search
from tests.reports.conftest import UA, events_of
from tests.transfers.conftest import (  # noqa: F401 - fixtures the transfer helpers need
    _bucket_policy_without_conditions_is_not_ours,
    _fresh_kms_key_arn,
    code_from,
    ready_transfer,
)
from transfers import services
from transfers.models import Transfer

NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
GUEST_IP, GUEST_UA = "198.51.100.7", "BobMail/2.0"


def _day(moment: datetime) -> str:
    return timezone.localtime(moment).date().isoformat()


def _search(client, **query):
    query = {"first_day": _day(NOW - timedelta(days=1)), "last_day": _day(NOW + timedelta(days=1)), **query}
    return client.get("/admin/transfers/", query)


def _download(mailoutbox, token: str, address: str, file_id: str):
    services.guest_link_open(token=token, ip=GUEST_IP, user_agent=GUEST_UA, now=NOW)
    services.guest_code_send(token=token, ip=GUEST_IP, user_agent=GUEST_UA, now=NOW)
    granted = services.guest_code_verify(
        token=token, code=code_from(mailoutbox, address), ip=GUEST_IP, user_agent=GUEST_UA, now=NOW
    )
    services.guest_download_url(
        transfer_id=granted.transfer_id,
        recipient_id=granted.recipient_id,
        grant=granted.grant,
        file_id=file_id,
        ip=GUEST_IP,
        user_agent=GUEST_UA,
        now=NOW,
    )


@pytest.fixture
def sent(mailoutbox):
    created, tokens = ready_transfer(
        recipients=["bob@partner.example", "dan@other.example"], name="見積書.pdf", now=NOW, mailoutbox=mailoutbox
    )
    _download(mailoutbox, tokens["bob@partner.example"], "bob@partner.example", created.files[0].file_id)
    return created


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("recipient", "BOB@Partner.example"),
        ("domain", "@partner.example"),
        ("sender", "alice@corp.example"),
        ("file", "見積書.PDF"),
    ],
)
def test_a_transfer_is_found_by_each_search_term(officer, sent, mailoutbox, field, value):
    ready_transfer(recipients=["eve@elsewhere.example"], name="other.pdf", now=NOW, mailoutbox=mailoutbox)
    page = _search(officer, field=field, value=value).content.decode()
    assert sent.transfer_id in page
    if field != "sender":
        results = page.split('id="transfer-results"')[1].split("</table>")[0]
        assert results.count('href="/admin/transfers/') == 1  # only the matching transfer


def test_dates_and_status_narrow_the_search(officer, sent):
    outside = {"first_day": _day(NOW - timedelta(days=20)), "last_day": _day(NOW - timedelta(days=10))}
    assert sent.transfer_id not in _search(officer, field="domain", value="partner.example", **outside).content.decode()
    assert (
        sent.transfer_id in _search(officer, field="domain", value="partner.example", status="ready").content.decode()
    )
    assert (
        sent.transfer_id
        not in _search(officer, field="domain", value="partner.example", status="revoked").content.decode()
    )


def test_results_come_a_page_at_a_time(officer, mailoutbox, settings):
    settings.FXFER_ADMIN_PAGE_SIZE = 2
    ids = {
        ready_transfer(recipients=["pat@partner.example"], now=NOW + timedelta(seconds=i), mailoutbox=mailoutbox)[
            0
        ].transfer_id
        for i in range(3)
    }
    first_day, last_day = (
        timezone.localtime(NOW).date() - timedelta(days=1),
        timezone.localtime(NOW).date() + timedelta(days=1),
    )
    for field, value in (("recipient", "pat@partner.example"), ("", "")):
        first = transfer_search(field=field, value=value, first_day=first_day, last_day=last_day)
        assert len(first.rows) == 2 and first.next_cursor
        second = transfer_search(
            field=field, value=value, first_day=first_day, last_day=last_day, cursor=first.next_cursor
        )
        assert {r.transfer_id for r in first.rows + second.rows} == ids
        assert (
            second.next_cursor is None
            or not transfer_search(
                field=field, value=value, first_day=first_day, last_day=last_day, cursor=second.next_cursor
            ).rows
        )
    page = _search(officer, field="recipient", value="pat@partner.example")
    assert "Next page" in page.content.decode()


def test_a_forged_page_link_is_refused_cleanly(officer, sent):
    page = _search(officer, field="recipient", value="bob@partner.example", cursor="not-a-cursor!")
    assert page.status_code == 200
    assert "The page link is not valid" in page.content.decode()


def test_the_detail_shows_files_recipients_downloads_and_timeline(officer, sent):
    page = officer.get(f"/admin/transfers/{sent.transfer_id}/").content.decode()
    assert "見積書.pdf" in page
    assert "Alice Sender" in page and "alice@corp.example" in page
    downloads = page.split('id="downloads"')[1].split("</section>")[0]
    assert "bob@partner.example" in downloads and GUEST_IP in downloads and GUEST_UA in downloads
    assert "dan@other.example" not in downloads
    recipients = page.split('id="recipients"')[1].split("</table>")[0]
    bob_row = recipients.split("bob@partner.example")[1].split("</tr>")[0]
    assert "<td>1</td>" in bob_row
    timeline = page.split('id="timeline"')[1]
    for action in ("transfer.created", "file.verified", "mail.sent", "link.opened", "access.granted"):
        assert action in timeline
    assert "Revoke" in page and "Extend" in page


def test_revoking_asks_for_a_reason_and_is_audited(officer, carol, sent):
    url = f"/admin/transfers/{sent.transfer_id}/revoke/"
    officer.post(url, {"revoke-reason": ""})
    assert Transfer.get(sent.transfer_id).status == "ready"
    assert not events_of("transfer.revoked")

    response = officer.post(url, {"revoke-reason": "Sent to the wrong customer"}, follow=True)
    assert "The transfer is revoked." in response.content.decode()
    assert Transfer.get(sent.transfer_id).status == "revoked"
    [event] = events_of("transfer.revoked")
    assert event.actor == f"user:{carol.user_id}"
    assert event.subject == f"transfer:{sent.transfer_id}"
    assert event.details["reason"] == "Sent to the wrong customer"
    assert event.details["by"] == "compliance"
    assert (event.ip, event.user_agent) == ("127.0.0.1", UA)

    again = officer.post(url, {"revoke-reason": "Twice to be sure"}, follow=True)
    assert "only a pending or ready transfer can be revoked" in again.content.decode()
    refused = events_of("transfer.revoked")[-1]
    assert refused.outcome == "refused" and refused.details["reason"] == "Twice to be sure"


def test_extending_moves_the_expiry_and_is_audited(officer, carol, sent):
    new_expiry = timezone.localtime(NOW + timedelta(days=10)).replace(second=0, tzinfo=None)
    response = officer.post(
        f"/admin/transfers/{sent.transfer_id}/extend/",
        {"extend-reason": "Customer asked for more time", "extend-expires_at": new_expiry.strftime("%Y-%m-%dT%H:%M")},
        follow=True,
    )
    assert "The expiry is moved." in response.content.decode()
    expires_at = Transfer.get(sent.transfer_id).expires_at
    assert timezone.localtime(expires_at).replace(tzinfo=None) == new_expiry
    [event] = events_of("transfer.extended")
    assert event.actor == f"user:{carol.user_id}"
    assert event.details["reason"] == "Customer asked for more time"
    assert event.details["expires_at"] == expires_at.isoformat()


def test_an_extension_past_the_limit_is_refused_and_audited(officer, sent):
    too_late = timezone.localtime(NOW + timedelta(days=90)).strftime("%Y-%m-%dT%H:%M")
    officer.post(
        f"/admin/transfers/{sent.transfer_id}/extend/",
        {"extend-reason": "A long project", "extend-expires_at": too_late},
    )
    assert Transfer.get(sent.transfer_id).expires_at == NOW + timedelta(days=7)
    [event] = events_of("transfer.extended")
    assert event.outcome == "refused" and event.details["refused"] == "expiry_invalid"


def test_an_unknown_action_is_a_404(officer, sent):
    assert officer.post(f"/admin/transfers/{sent.transfer_id}/hold/", {"hold-reason": "x" * 10}).status_code == 404
