"""In Chromium: the compliance officer signs in through the IdP, finds a transfer by its recipient's address,
sees who downloaded it and from where, puts it on legal hold with a reason, and exports the audit log as CSV."""

import uuid
from datetime import UTC, datetime

import pytest

from tests.conftest import sign_in_as
from tests.transfers.conftest import (  # noqa: F401 - fixtures the transfer helpers need
    _bucket_policy_without_conditions_is_not_ours,
    _fresh_kms_key_arn,
    code_from,
    ready_transfer,
)
from transfers import services

pytestmark = [pytest.mark.browser, pytest.mark.integration]


# The integration tier shares its stand-ins across tests: a recipient of this test alone.
BOB = f"bob-{uuid.uuid4().hex[:8]}@partner.example"


@pytest.fixture
def downloaded(site, mailoutbox):
    now = datetime.now(UTC)
    created, tokens = ready_transfer(recipients=[BOB], name="契約書.pdf", now=now, mailoutbox=mailoutbox)
    token = tokens[BOB]
    ids = {"ip": "198.51.100.23", "user_agent": "BobMail/2.0", "now": now}
    services.guest_code_send(token=token, **ids)
    granted = services.guest_code_verify(token=token, code=code_from(mailoutbox, BOB), **ids)
    services.guest_download_url(
        transfer_id=granted.transfer_id,
        recipient_id=granted.recipient_id,
        grant=granted.grant,
        file_id=created.files[0].file_id,
        **ids,
    )
    return created


def test_the_officer_finds_a_transfer_sees_its_downloads_acts_and_exports(page, site, downloaded, tmp_path):
    sign_in_as(page, site, "carol")
    page.goto(f"{site}/admin/")
    assert page.get_by_role("heading", name="The last 30 days", exact=True).is_visible()

    page.get_by_role("link", name="Transfers", exact=True).click()
    page.get_by_label("Search by").select_option("recipient")
    page.get_by_label("Value").fill(BOB.replace("bob", "Bob").replace("partner", "Partner"))  # any case
    page.get_by_role("button", name="Search").click()
    results = page.locator("#transfer-results")
    assert results.get_by_text(BOB).is_visible()
    results.get_by_role("link").first.click()
    page.wait_for_url(f"{site}/admin/transfers/{downloaded.transfer_id}/")

    downloads = page.locator("#downloads")
    assert downloads.get_by_text(BOB).is_visible()
    assert downloads.get_by_text("198.51.100.23").is_visible()
    assert "契約書.pdf" in page.content()

    hold = page.get_by_role("form", name="Put on legal hold")
    hold.get_by_label("Reason (recorded in the audit trail)").fill("Litigation hold, case 2026-17")
    hold.get_by_role("button", name="Put on legal hold").click()
    assert page.get_by_text("The transfer is on legal hold (1 stored object versions held).").is_visible()
    assert page.locator("#legal-hold").inner_text().startswith("On since")
    assert page.locator("#timeline").get_by_text("Litigation hold, case 2026-17", exact=False).is_visible()
    assert page.get_by_role("form", name="Release legal hold").is_visible()
    assert not page.get_by_role("form", name="Delete files now").count()  # a held transfer cannot be deleted

    page.get_by_role("link", name="Audit log").click()
    page.get_by_role("button", name="Filter").click()
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export CSV").click()
    download = download_info.value
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    body = path.read_bytes()
    assert body.startswith(b"\xef\xbb\xbf")
    text = body.decode("utf-8-sig")
    assert "legal_hold.set" in text and "Litigation hold, case 2026-17" in text
    assert "download.url_issued" in text and "契約書.pdf" in text
