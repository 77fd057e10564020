"""In Chromium (issue 16, "Prove it"): an employee sends a file to an outside domain; nothing reaches the
recipient while it waits for approval; her manager signs in through the IdP, opens the link from his mail, sees
the file (its SHA-256, its clean scan, a download to inspect it), the outside recipient and the message, and
approves; only then does the recipient get the link."""

import re
import uuid

import pytest
from playwright.sync_api import expect

from tests.conftest import sign_in_as
from tests.transfers.test_browser import LINK, add_files, fill_new_transfer, mail_to

pytestmark = [pytest.mark.integration, pytest.mark.browser]

APPROVAL_LINK = re.compile(r"https?://[^\s\"<]+/approvals/[A-Za-z0-9_-]{22}/")


@pytest.fixture
def approvals_on(settings):
    """Outside example.com (the demo identities' domain) a transfer waits for the sender's manager: alice's
    manager in the local IdP is dave."""
    settings.FXFER_APPROVAL = "external"
    settings.FXFER_APPROVAL_ALLOWED_DOMAINS = ["example.com"]
    settings.FXFER_APPROVER = "manager"


def mails_in_mailbox(page, site: str, to: str) -> str:
    page.goto(f"{site}/dev/mailbox/")
    return " ".join(page.locator("article").filter(has_text=f"To: {to}").all_inner_texts())


def test_the_recipient_is_mailed_only_after_the_manager_approves(page, guest, site, sending, approvals_on, tmp_path):
    figures = tmp_path / "figures.csv"
    figures.write_bytes(b"quarter,revenue\nQ3,1200\n")

    bob = f"bob-{uuid.uuid4().hex[:8]}@partner.example"  # the dev mailbox holds other tests' mails to bob too
    sign_in_as(page, site, "alice")
    page.get_by_role("link", name="New transfer").click()
    fill_new_transfer(page, bob, "Figures for Bob")
    page.get_by_label("Message").fill("The numbers we discussed.")
    add_files(page, figures)
    page.get_by_role("button", name="Send").click()

    # The transfer's page says who approves it (asked once the file is uploaded and scanned clean).
    expect(page.locator("#approval-state")).to_contain_text("approval by dave@example.com", timeout=60_000)
    expect(page.locator(".page-heading .status-pending")).to_be_visible()
    transfer_url = page.url

    # Dave is mailed once the file is there and clean; in his own browser he follows the link and signs in.
    request = mail_to(guest, site, "dave@example.com", "Approval requested")
    assert "figures.csv" in request and "partner.example" in request
    page.goto(transfer_url)  # uploaded and checked, but not sent: the badge says what it waits for
    expect(page.locator(".page-heading .status-pending")).to_have_text("Waiting for approval")
    expect(page.locator("#approval-state")).to_contain_text("Waiting for approval by dave@example.com")
    assert "sent you files" not in mails_in_mailbox(page, site, bob)
    link = APPROVAL_LINK.search(request)[0]
    sign_in_as(guest, site, "dave")
    guest.goto(link)
    expect(guest.locator("#approval-sender")).to_contain_text("alice@example.com")
    expect(guest.locator(".approval-recipients li.external")).to_contain_text(bob)
    expect(guest.get_by_text("figures.csv")).to_be_visible()
    expect(guest.locator("code.checksum")).to_contain_text("sha256:")
    expect(guest.locator(".scan-state")).to_have_attribute("data-scan", "clean")
    expect(guest.get_by_role("button", name="Download figures.csv")).to_be_visible()
    expect(guest.get_by_text("The numbers we discussed.")).to_be_visible()
    guest.get_by_role("button", name="Approve").click()
    expect(guest.locator("#approval-state")).to_contain_text("Approved by Dave Example")

    # Now, and only now, Bob has his link; Alice's page says it is sent.
    body = mail_to(guest, site, bob, "sent you files")
    assert LINK.search(body) and "figures.csv" in body
    page.goto(transfer_url)
    expect(page.locator(".page-heading .status-ready")).to_have_text("Sent")
    expect(page.locator("#approval-state")).to_contain_text("Approved by Dave Example")


def test_alice_cannot_approve_her_own_transfer_in_the_browser(page, site, sending, approvals_on, tmp_path):
    note = tmp_path / "note.txt"
    note.write_bytes(b"hello")
    sign_in_as(page, site, "alice")
    page.get_by_role("link", name="New transfer").click()
    fill_new_transfer(page, "bob@partner.example", "Note")
    add_files(page, note)
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#approval-state")).to_contain_text("approval by dave@example.com", timeout=60_000)
    transfer_id = page.url.rstrip("/").rsplit("/", 1)[1]
    page.goto(f"{site}/approvals/{transfer_id}/")
    expect(page.locator("#own-transfer")).to_be_visible()
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
