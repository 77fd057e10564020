"""In Chromium (issue 13): Send on an empty New transfer names every missing field at once (it named only the
files), and a transfer's Revoke asks first."""

import uuid

import pytest
from playwright.sync_api import expect

from tests.conftest import sign_in_as
from tests.transfers.test_browser import add_files, fill_new_transfer

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def test_an_empty_new_transfer_names_every_missing_field(page, site, sending):
    sign_in_as(page, site, "alice")
    page.goto(f"{site}/transfers/new")
    page.get_by_role("button", name="Send").click()
    summary = page.get_by_role("alert").filter(has_text="There is a problem")
    expect(summary).to_contain_text("This field is required.")
    expect(summary).to_contain_text("Add at least one file.")
    expect(page.get_by_label("Recipients", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#id_recipients-error")).to_be_visible()
    expect(page.locator("#id_files-error")).to_have_text("Add at least one file.")


def test_revoke_asks_first(page, site, sending, tmp_path):
    subject = f"Revoke me {uuid.uuid4().hex[:6]}"
    note = tmp_path / "note.txt"
    note.write_text("hello")
    sign_in_as(page, site, "alice")
    page.goto(f"{site}/transfers/new")
    fill_new_transfer(page, "bob@partner.example", subject)
    add_files(page, note)
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".page-heading .status-ready")).to_have_text("Sent", timeout=30_000)
    page.reload()
    page.get_by_role("link", name="Revoke: stop every link now…").click()
    expect(page.get_by_role("heading", name="Revoke the transfer")).to_be_visible()
    page.get_by_role("link", name="Cancel").click()
    expect(page.locator(".page-heading .status-ready")).to_have_text("Sent")
    page.get_by_role("link", name="Revoke: stop every link now…").click()
    page.get_by_role("button", name="Yes, revoke the transfer").click()
    expect(page.locator(".page-heading .status-revoked")).to_have_text("Revoked")
