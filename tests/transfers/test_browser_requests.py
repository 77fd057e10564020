"""In Chromium, against LocalStack's S3: an employee asks an outside person for files; the guest follows the
link from the local mailbox, proves the address with a one-time code, uploads two files (one small, by
presigned POST; one in parts) straight to S3 and finishes with a note; the employee is told by mail, opens
the request under Received and downloads exactly the bytes the guest sent. The guest never sees a download."""

import os
import re
import uuid

import pytest
from playwright.sync_api import expect

from tests.conftest import sign_in_as
from tests.transfers.test_browser import CODE, LINK, add_files, mail_to, sha256, shot

pytestmark = [pytest.mark.integration, pytest.mark.browser]

MiB = 1024**2
DOWNLOAD = re.compile("download", re.IGNORECASE)


def test_an_employee_requests_files_and_downloads_exactly_what_the_guest_uploaded(page, guest, site, sending, tmp_path):
    erin = f"erin-{uuid.uuid4().hex[:8]}@partner.example"  # the SES stand-in's mailbox outlives the test
    subject = f"Signed contract {uuid.uuid4().hex[:6]}"
    small = tmp_path / "契約書 2026.pdf"
    small.write_bytes(os.urandom(200 * 1024))
    large = tmp_path / "scans.zip"
    large.write_bytes(os.urandom(12 * MiB))
    part_puts = []
    guest.on("request", lambda r: part_puts.append(r.url) if r.method == "PUT" and "partNumber=" in r.url else None)

    # Alice asks Erin for files.
    sign_in_as(page, site, "alice")
    page.get_by_role("navigation", name="Transfers").get_by_role("link", name="Request files").click()
    expect(page.get_by_role("heading", name="Request files")).to_be_visible()
    page.get_by_label("Ask these people").fill(erin)
    page.get_by_label("Subject").fill(subject)
    page.get_by_label("Message").fill("Please send the signed contract and the scans.")
    page.get_by_label("Files per person, at most").fill("3")
    page.get_by_label("Size of each file, at most", exact=True).fill("20")
    page.get_by_label("Unit of “Size of each file, at most”").select_option("MB")
    page.get_by_label("All files of one person, at most", exact=True).fill("40")
    page.get_by_label("Unit of “All files of one person, at most”").select_option("MB")
    page.get_by_role("button", name="Send the requests").click()
    expect(page.get_by_text("Each person was mailed their own upload link.")).to_be_visible()
    expect(page.get_by_role("heading", name=subject)).to_be_visible()
    shot(page, "request-asked")  # (a full-page shot of the form just before the click loses the click)
    request_url = page.url
    assert re.search(r"/requests/[A-Za-z0-9_-]{22}/$", request_url)

    # Erin opens her own link from the mailbox and proves her address.
    body = mail_to(guest, site, erin, "asks you for files")
    assert subject in body and "Up to 3 files" in body
    guest.goto(LINK.search(body)[0])
    expect(guest.get_by_role("heading", name="Alice Example asks you for files")).to_be_visible()
    guest.get_by_role("button", name="Send me a code").click()
    expect(guest.get_by_role("heading", name="Enter your one-time code")).to_be_visible()
    code_page = guest.url
    code = CODE.search(mail_to(guest, site, erin, "one-time code"))[1]
    guest.goto(code_page)
    guest.get_by_label("One-time code").fill(code)
    guest.get_by_role("button", name="Continue").click()
    expect(guest.get_by_role("heading", name="Upload files for Alice Example")).to_be_visible()
    expect(guest.get_by_text("Please send the signed contract and the scans.")).to_be_visible()
    expect(guest.get_by_role("button", name=DOWNLOAD)).to_have_count(0)

    # Two files straight to S3: the small one by POST, the large one in three parts.
    add_files(guest, small, large)
    expect(guest.get_by_text("scans.zip")).to_be_visible()
    shot(guest, "guest-upload")
    guest.locator("#send-button").click()
    expect(guest.locator("#upload-status")).to_contain_text("Every file arrived and was checked", timeout=60_000)
    # The page reloads itself and lists both uploads as checked.
    uploads = guest.locator("table.guest-uploads tbody tr")
    expect(uploads.filter(has_text="Received and checked")).to_have_count(2, timeout=15_000)
    assert len(part_puts) == 3  # 5 + 5 + 2 MiB
    expect(guest.locator("table.guest-uploads code.checksum")).to_have_count(2)

    guest.get_by_label("Note for the person who asked (optional)").fill("Both files, as asked. — Erin")
    guest.get_by_role("button", name="Finish", exact=True).click()
    expect(guest.get_by_text("Thank you. The person who asked for the files has been told by mail.")).to_be_visible()
    expect(guest.get_by_text(re.compile(r"You finished \("))).to_be_visible()
    expect(guest.get_by_role("button", name=DOWNLOAD)).to_have_count(0)
    expect(guest.get_by_role("link", name=DOWNLOAD)).to_have_count(0)
    shot(guest, "guest-finished")
    # A request's guest session is not a recipient's: no file list, no download.
    assert guest.goto(f"{site}/guest/files/").status == 403

    # Alice is told, finds the request under Received and downloads both files.
    notice = mail_to(page, site, "alice@example.com", f"Files from {erin}")
    assert "契約書 2026.pdf" in notice and "scans.zip" in notice and "Both files, as asked." in notice
    assert request_url in notice
    page.goto(f"{site}/transfers/")
    page.get_by_role("navigation", name="Transfers").get_by_role("link", name="Received").click()
    row = page.locator("tr").filter(has_text=subject)
    expect(row.locator(".received-files li")).to_have_count(2)
    expect(row).to_contain_text(f"scans.zip (12.0 MB), {erin}")
    expect(row).to_contain_text("Finished")
    row.get_by_role("link", name=subject).click()
    expect(page.get_by_role("heading", name=subject)).to_be_visible()
    expect(page.locator("table.recipients")).to_contain_text("Both files, as asked.")
    shot(page, "request-detail")
    for original in (small, large):
        with page.expect_download() as download_info:
            page.get_by_role("button", name=f"Download {original.name}").click()
        download = download_info.value
        assert download.suggested_filename == original.name  # RFC 6266: the Japanese name survives
        saved = tmp_path / f"downloaded-{original.name}"
        download.save_as(saved)
        assert sha256(saved.read_bytes()) == sha256(original.read_bytes())
