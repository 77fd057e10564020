"""In Chromium: mis-send prevention (issue 16 item 3). Send opens a dialog listing the recipients outside the
company, marked; Send in it stays disabled until each is ticked (by keyboard here); Escape goes back to the form
with nothing confirmed. Then the transfer's page shows when its mails go out, with Cancel, and Cancel stops it."""

import os
import re
import uuid

import pytest
from playwright.sync_api import expect

from tests.conftest import sign_in_as
from tests.transfers.test_browser import add_files, fill_new_transfer

pytestmark = [pytest.mark.integration, pytest.mark.browser]


@pytest.fixture
def missend(settings):
    settings.FXFER_CONFIRM_RECIPIENTS = "external"
    settings.FXFER_INTERNAL_DOMAINS = ["example.com"]  # the demo employees' domain
    settings.FXFER_SEND_HOLD_SECONDS = 180


def test_outside_recipients_are_confirmed_one_by_one_and_the_held_transfer_can_be_cancelled(
    page, site, sending, missend, tmp_path
):
    created = []
    page.on("response", lambda r: created.append(r) if r.url.endswith("/transfers/new") and r.status == 201 else None)
    small = tmp_path / "figures.txt"
    small.write_bytes(os.urandom(2048))
    sign_in_as(page, site, "alice")
    page.goto(f"{site}/transfers/new")
    token = uuid.uuid4().hex[:8]  # the dev mailbox holds other tests' mails to these domains
    bob, dave = f"bob-{token}@partner.example", f"Dave-{token}@other.example"
    fill_new_transfer(page, f"carol@example.com\nbob-{token}@partner.example, Dave-{token}@Other.example", "Figures")
    add_files(page, small)
    page.get_by_role("button", name="Send").click()

    dialog = page.get_by_role("dialog", name="Check each recipient")
    expect(dialog).to_be_visible()
    boxes = dialog.get_by_role("checkbox")
    expect(boxes).to_have_count(2)  # the colleague at example.com is not asked about
    expect(dialog.locator(".confirm-item.outside")).to_have_count(2)
    expect(dialog.locator(".confirm-item.outside .confirm-domain")).to_have_text(["partner.example", "other.example"])
    expect(dialog.get_by_text("Outside the company", exact=True)).to_have_count(2)
    send = dialog.get_by_role("button", name="Send")
    expect(send).to_be_disabled()
    assert not created  # nothing reached the server yet

    # Escape: back to the form, nothing confirmed, nothing sent.
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert not created
    page.get_by_role("button", name="Send").click()
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("checkbox", name=f"Confirm {bob}")).to_be_focused()
    page.keyboard.press("Space")
    expect(send).to_be_disabled()  # one of two
    page.keyboard.press("Tab")
    expect(dialog.get_by_role("checkbox", name=f"Confirm {dave}")).to_be_focused()
    page.keyboard.press("Space")
    expect(send).to_be_enabled()
    page.keyboard.press("Tab")
    expect(send).to_be_focused()
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()

    # The transfer exists (the uploader goes on with its file); its page says when the mails go out.
    page.wait_for_url(re.compile(r"/transfers/[A-Za-z0-9_-]{22}/$"))
    assert created and created[0].request.post_data_json["confirmed_recipients"] == [
        bob,
        dave,
    ]
    transfer_url = page.url
    page.goto(transfer_url)
    hold = page.locator("#send-hold")
    expect(hold.get_by_role("heading")).to_have_text(re.compile(r"^Sending at \d\d:\d\d JST$"))
    expect(hold.get_by_role("timer")).to_have_text(re.compile(r"^[0-3]:[0-5]\d$"))  # the countdown runs
    hold.get_by_role("button", name="Cancel sending").click()
    expect(page.get_by_text("Sending was cancelled. No mail was sent")).to_be_visible()
    expect(page.locator("#send-hold")).to_have_count(0)

    page.goto(f"{site}/dev/mailbox/")
    expect(page.locator("article").filter(has_text=token)).to_have_count(0)
