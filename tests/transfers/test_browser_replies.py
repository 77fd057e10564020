"""In Chromium: on New transfer, ticking "Let recipients send files back" shows what each recipient may send
back (issue 12, item 10), starting from the request defaults; a limit the site does not allow is refused at its
field; the limits chosen are the reply request's, as its page under Received says."""

import uuid

import pytest
from playwright.sync_api import expect

from tests.conftest import sign_in_as
from tests.transfers.test_browser import add_files, fill_new_transfer, shot

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def test_the_sender_chooses_what_recipients_may_send_back(page, site, sending, settings, tmp_path):
    subject = f"Figures {uuid.uuid4().hex[:6]}"
    note = tmp_path / "note.txt"
    note.write_text("hello")
    sign_in_as(page, site, "alice")
    page.goto(f"{site}/transfers/new")
    fill_new_transfer(page, "bob@partner.example", subject)
    add_files(page, note)

    files_per_person = page.get_by_label("Files per person, at most")
    expect(files_per_person).to_be_hidden()
    page.get_by_label("Let recipients send files back").check()
    expect(files_per_person).to_be_visible()
    expect(files_per_person).to_have_value(str(settings.FXFER_REQUEST_DEFAULT_MAX_FILES))
    size_each = page.get_by_label("Size of each file, at most", exact=True)
    # The request defaults, in the unit a person thinks in: 2 GB.
    assert settings.FXFER_REQUEST_DEFAULT_MAX_FILE_BYTES == 2 * 1024**3
    expect(size_each).to_have_value("2")
    expect(page.get_by_label("Unit of “Size of each file, at most”")).to_have_value("GB")

    files_per_person.fill("500")
    page.get_by_role("button", name="Send").click()
    summary = page.get_by_role("alert").filter(has_text="There is a problem")
    expect(summary).to_contain_text(f"Choose between 1 and {settings.FXFER_MAX_FILES} files per person.")
    expect(files_per_person).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#id_reply_max_files-error")).to_be_visible()
    shot(page, "new-transfer-reply-limits-error")

    files_per_person.fill("2")
    size_each.fill("1")
    page.get_by_label("Unit of “Size of each file, at most”").select_option("MB")
    page.get_by_label("All files of one person, at most", exact=True).fill("1")
    page.get_by_label("Unit of “All files of one person, at most”").select_option("MB")
    page.get_by_label("Only these file types").fill("pdf")
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".page-heading .status-ready")).to_have_text("Sent", timeout=30_000)

    page.goto(f"{site}/requests/")
    page.get_by_role("link", name=f"Reply: {subject}").click()
    expect(page.get_by_text("Up to 2 files, 1 MB each, 1 MB in all. Types: .pdf.")).to_be_visible()
