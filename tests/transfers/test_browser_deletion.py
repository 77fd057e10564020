"""In Chromium, against the local stand-ins: an employee sends a file, the recipient's link works; the sender
deletes the transfer's files now (with a confirmation step) and sees a deletion receipt for the file; the
recipient's link then shows "expired or deleted"."""

import re

import pytest
from playwright.sync_api import expect

from tests.conftest import sign_in_as
from tests.transfers.test_browser import LINK, add_files, fill_new_transfer, mail_to, shot

pytestmark = [pytest.mark.integration, pytest.mark.browser]


@pytest.fixture
def sending(settings):
    """Mail goes to the SES stand-in, readable at /dev/mailbox/."""
    settings.EMAIL_BACKEND = "fxfer.mail.SESBackend"


@pytest.fixture
def guest(chromium):
    context = chromium.new_context()  # a browser without the sender's session
    yield context.new_page()
    context.close()


def test_the_sender_deletes_now_sees_the_receipts_and_the_link_is_dead(page, guest, site, sending, tmp_path):
    report = tmp_path / "議事録.txt"
    report.write_text("minutes of the meeting\n" * 100)

    sign_in_as(page, site, "alice")
    page.goto(f"{site}/transfers/new")
    fill_new_transfer(page, "erin@partner.example", "Minutes to delete")
    add_files(page, report)
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".page-heading .status-ready")).to_have_text("Sent", timeout=60_000)
    transfer_url = page.url

    link = LINK.search(mail_to(guest, site, "erin@partner.example", "sent you files"))[0]
    guest.goto(link)
    expect(guest.get_by_role("button", name="Send me a code")).to_be_visible()

    page.goto(transfer_url)
    page.get_by_role("link", name="Delete files now…").click()
    expect(page.get_by_role("heading", name="Delete files now")).to_be_visible()
    page.get_by_role("button", name="Yes, delete the files now").click()

    expect(page.locator(".page-heading .status-deleted")).to_have_text("Deleted")
    receipts = page.locator("#deletion-receipts")
    expect(receipts.get_by_role("heading", name="Deletion receipts")).to_be_visible()
    row = receipts.locator("tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("議事録.txt")
    expect(row).to_contain_text(re.compile(r"files/[A-Za-z0-9_-]{22}/[A-Za-z0-9_-]{22}"))
    expect(row).to_contain_text(re.compile(r"(sha256|etag):\S+"))
    expect(row).to_contain_text("You")
    expect(page.get_by_role("link", name="Delete files now…")).to_have_count(0)
    shot(page, "transfer-deleted-receipts")

    response = guest.goto(link)
    assert response.status == 404
    expect(
        guest.get_by_text("This transfer or request has expired, was closed or deleted, or the link is not valid.")
    ).to_be_visible()
