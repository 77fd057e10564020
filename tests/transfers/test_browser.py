"""In Chromium, against LocalStack's S3 (which enforces CORS, POST policies and signatures): an employee sends two
files (one small, by presigned POST; one in parts) to two recipients; a recipient follows the link from the
local mailbox, gets a code, downloads both files and gets exactly the bytes that were sent; the sender's
My transfers shows the downloads. Also: a reload in the middle of a multipart upload resumes it, the New transfer
page is usable at phone width, and runs no animation while files upload; a small file whose policy from Send's
answer is about to expire asks for a fresh one."""

import hashlib
import os
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from tests.conftest import sign_in_as

pytestmark = [pytest.mark.integration, pytest.mark.browser]

MiB = 1024**2
LINK = re.compile(r"https?://[^\s\"<]+/t/[A-Za-z0-9_-]{43}")
CODE = re.compile(r"^\s+(\d{6})\s*$", re.MULTILINE)
SCREENSHOTS = os.environ.get("FXFER_SCREENSHOTS")  # a folder: save screenshots of the pages there


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def shot(page, name: str) -> None:
    if SCREENSHOTS:
        page.screenshot(path=os.path.join(SCREENSHOTS, f"{name}.png"), full_page=True)


def mail_to(page, site: str, to: str, subject_contains: str) -> str:
    """The newest mail to `to` whose subject contains the text, from the local mailbox page."""
    page.goto(f"{site}/dev/mailbox/")
    article = page.locator("article").filter(has_text=f"To: {to}").filter(has_text=subject_contains).first
    return article.locator("pre").inner_text()


def add_files(page, *paths) -> None:
    add_more = page.get_by_role("button", name="Add more files")
    if add_more.is_visible():
        add_more.click()
    page.locator("#uploader input[type=file]").first.set_input_files([str(p) for p in paths])


def fill_new_transfer(page, recipients: str, subject: str) -> None:
    page.get_by_label("Recipients", exact=True).fill(recipients)
    page.get_by_label("Subject").fill(subject)


def test_send_two_files_and_a_recipient_downloads_exactly_them(page, guest, site, sending, tmp_path):
    small = tmp_path / "見積書 2026.pdf"
    small.write_bytes(os.urandom(300 * 1024))
    large = tmp_path / "dataset.bin"
    large.write_bytes(os.urandom(12 * MiB))
    part_puts = []
    page.on("request", lambda r: part_puts.append(r.url) if r.method == "PUT" and "partNumber=" in r.url else None)
    signing_calls = []
    page.on("request", lambda r: signing_calls.append(r.url) if r.url.endswith("/parts") else None)
    authorize_calls = []
    page.on("request", lambda r: authorize_calls.append(r.url) if r.url.endswith("/authorize") else None)
    # A file's checksum worker ends once it has read the whole file (the page keeps one more ready, unused).
    hashed = []
    page.on("worker", lambda worker: worker.on("close", lambda _: hashed.append(worker.url)))

    sign_in_as(page, site, "alice")
    page.get_by_role("link", name="New transfer").click()
    expect(page.get_by_role("heading", name="New transfer")).to_be_visible()
    fill_new_transfer(page, "bob@partner.example\ndave@partner.example", "Quarterly figures")
    page.get_by_label("Message").fill("Here they are.")
    expect(page.get_by_label("Tell me about each download")).to_be_checked()
    add_files(page, small, large)
    expect(page.get_by_text("dataset.bin")).to_be_visible()
    shot(page, "new-transfer-desktop")
    # Both files read and hashed before Send, as when a person adds files and then reads the form over (a Send
    # right after adding a file signs each part's URL as its CRC comes instead, one call each).
    deadline = time.monotonic() + 30
    while len(hashed) < 2 and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert len(hashed) == 2, hashed
    page.get_by_role("button", name="Send").click()

    # Sent: the page becomes the transfer's own page once the server has verified both files.
    expect(page.locator(".page-heading .status-ready")).to_have_text("Sent", timeout=60_000)
    transfer_url = page.url
    assert re.search(r"/transfers/[A-Za-z0-9_-]{22}/$", transfer_url)
    assert len(part_puts) == 3  # 5 + 5 + 2 MiB, straight to S3
    # A batch (2 here) at a time, each URL signed for its part's CRC-64/NVME, which the browser's worker had
    # computed for every part before Send: parts 1 and 2, then 3.
    assert len(signing_calls) == 2
    # Send's answer brought how each file goes up (the small file's POST policy, which LocalStack enforced; the
    # large one's multipart upload): no file asked authorize first.
    assert authorize_calls == []
    expect(page.get_by_text("見積書 2026.pdf")).to_be_visible()
    expect(page.locator("code.checksum")).to_have_count(2)
    # The browser declared the small file's SHA-256 (S3 checked it): the page shows it as sha256sum prints it.
    expect(page.locator("tr").filter(has_text="見積書 2026.pdf").locator("code.checksum")).to_have_text(
        f"sha256:{sha256(small.read_bytes())}"
    )
    shot(page, "transfer-desktop")

    # Bob opens his own link from the mailbox; looking uses nothing up.
    body = mail_to(guest, site, "bob@partner.example", "sent you files")
    link = LINK.search(body)[0]
    assert "dataset.bin" in body and "2026.pdf" in body
    guest.goto(link)
    expect(guest.get_by_role("heading", name="Alice Example sent you files")).to_be_visible()
    shot(guest, "guest-link")
    guest.get_by_role("button", name="Send me a code").click()
    expect(guest.get_by_role("heading", name="Enter your one-time code")).to_be_visible()
    code_page = guest.url
    code = CODE.search(mail_to(guest, site, "bob@partner.example", "one-time code"))[1]
    guest.goto(code_page)
    guest.get_by_label("One-time code").fill(code)
    guest.get_by_role("button", name="Continue").click()
    expect(guest.get_by_role("heading", name="Files from Alice Example")).to_be_visible()
    shot(guest, "guest-files")

    for original in (small, large):
        with guest.expect_download() as download_info:
            guest.get_by_role("button", name=f"Download {original.name}").click()
        download = download_info.value
        assert download.suggested_filename == original.name  # RFC 6266: the Japanese name survives
        saved = tmp_path / f"downloaded-{original.name}"
        download.save_as(saved)
        assert sha256(saved.read_bytes()) == sha256(original.read_bytes())

    # The sender sees the downloads.
    page.goto(f"{site}/transfers/")
    row = page.locator("tr").filter(has_text="Quarterly figures")
    expect(row).to_contain_text("bob@partner.example: 2 downloads")
    expect(row).to_contain_text("dave@partner.example: 0 downloads")
    shot(page, "my-transfers-desktop")
    notice = mail_to(page, site, "alice@example.com", "downloaded")
    assert "bob@partner.example downloaded" in notice


def test_a_reload_in_the_middle_of_a_multipart_upload_resumes_it(page, site, sending, tmp_path):
    large = tmp_path / "resume.bin"
    large.write_bytes(os.urandom(12 * MiB))
    parts = re.compile(r"[?&]partNumber=(\d+)(&|$)")

    def part_number(url: str) -> int | None:
        match = parts.search(url)
        return int(match[1]) if match else None

    # Part 1 goes through; parts 2 and 3 fail (Uppy retries them) until the page is reloaded.
    def hold_back(route, request):
        route.continue_() if part_number(request.url) == 1 else route.abort()

    sign_in_as(page, site, "alice")
    page.goto(f"{site}/transfers/new")
    page.route(parts, hold_back)
    fill_new_transfer(page, "bob@partner.example", "Resumed")
    add_files(page, large)
    with page.expect_response(lambda r: r.request.method == "PUT" and part_number(r.url) == 1) as first_part:
        page.get_by_role("button", name="Send").click()
    assert first_part.value.ok
    assert re.search(r"/transfers/[A-Za-z0-9_-]{22}/$", page.url)  # the address is already the transfer's

    # Reload with parts 2 and 3 still held back (the old page cannot sneak them in). The transfer's page asks
    # for the file again; S3 holds part 1, so only parts 2 and 3 are sent.
    page.reload()
    page.unroute(parts)
    sent_after_reload = []
    page.on("request", lambda r: sent_after_reload.append(part_number(r.url)) if r.method == "PUT" else None)
    expect(page.get_by_role("heading", name="Finish uploading")).to_be_visible()
    expect(page.locator("#upload-status")).to_contain_text("resume.bin")
    with page.expect_response(lambda r: r.url.endswith("/authorize")) as listed:
        add_files(page, large)
    assert [p["PartNumber"] for p in listed.value.json()["partsDone"]] == [1]  # S3's list, as authorize found it
    expect(page.locator(".page-heading .status-ready")).to_have_text("Sent", timeout=60_000)
    assert sorted(sent_after_reload) == [2, 3]


def test_the_new_transfer_form_is_usable_at_phone_width(page, site, sending, tmp_path):
    page.set_viewport_size({"width": 375, "height": 812})
    sign_in_as(page, site, "alice")
    page.goto(f"{site}/transfers/new")
    # Nothing is wider than the screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    fill_new_transfer(page, "not-an-address", "Phone")
    small = tmp_path / "note.txt"
    small.write_text("hello")
    add_files(page, small)
    page.get_by_role("button", name="Send").click()
    summary = page.get_by_role("alert").filter(has_text="There is a problem")
    expect(summary).to_be_visible()
    expect(summary).to_contain_text("not-an-address is not a valid e-mail address.")
    expect(summary).to_be_focused()
    expect(page.get_by_label("Recipients", exact=True)).to_have_attribute("aria-invalid", "true")
    shot(page, "new-transfer-phone-error")

    page.get_by_label("Recipients", exact=True).fill("bob@partner.example")
    page.get_by_role("button", name="Send").focus()
    page.keyboard.press("Enter")
    expect(page.locator(".page-heading .status-ready")).to_have_text("Sent", timeout=30_000)
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    shot(page, "transfer-phone")


def test_while_files_upload_the_page_runs_no_animation(page, site, sending, tmp_path):
    # Uppy's spinner turned all along an upload, and its bars ran a transition after every progress report: the
    # page's main thread and compositor never rested, on the CPU the hashing and the upload need.
    large = tmp_path / "steady.bin"
    large.write_bytes(os.urandom(12 * MiB))
    parts = re.compile(r"[?&]partNumber=\d+(&|$)")
    sign_in_as(page, site, "alice")
    page.goto(f"{site}/transfers/new")
    page.route(parts, lambda route, request: route.abort())  # the upload stays in progress, retrying
    fill_new_transfer(page, "bob@partner.example", "Steady")
    add_files(page, large)
    with page.expect_request(parts):
        page.get_by_role("button", name="Send").click()
    expect(page.locator(".uppy-StatusBar.is-uploading")).to_be_visible()
    running = (
        "() => document.getAnimations().filter((a) => a.playState === 'running').map((a) => a.animationName"
        " || a.transitionProperty)"
    )
    assert page.evaluate(running) == []
    # Nor does a progress report start one: the bars step.
    steps = page.evaluate(
        "() => [...document.querySelectorAll('.uppy-StatusBar-progress, .uppy-Dashboard-Item-progressIcon--progress')]"
        ".map((e) => getComputedStyle(e).transitionDuration)"
    )
    assert steps and set(", ".join(steps).split(", ")) == {"0s"}
    page.unroute(parts)
    expect(page.locator(".page-heading .status-ready")).to_have_text("Sent", timeout=60_000)


def test_a_small_files_policy_from_sends_answer_that_is_about_to_expire_is_not_used(page, site, sending, tmp_path):
    # Send's answer carries each small file's POST policy, valid a few minutes. One with less than a minute left
    # (a slow machine, a suspended laptop) is not tried: the page asks authorize for a fresh one.
    small = tmp_path / "notes.txt"
    small.write_bytes(os.urandom(50 * 1024))
    soon = (datetime.now(UTC) + timedelta(seconds=20)).isoformat()

    def send_answer_nearly_expired(route, request):
        if request.method != "POST":
            route.continue_()
            return
        response = route.fetch()
        body = response.json()
        for file in body.get("files", []):
            file["upload"]["expiresAt"] = soon
        route.fulfill(response=response, json=body)

    authorize_calls = []
    page.on("request", lambda r: authorize_calls.append(r.url) if r.url.endswith("/authorize") else None)
    sign_in_as(page, site, "alice")
    page.goto(f"{site}/transfers/new")
    page.route(re.compile(r"/transfers/new$"), send_answer_nearly_expired)
    fill_new_transfer(page, "bob@partner.example", "Notes")
    add_files(page, small)
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".page-heading .status-ready")).to_have_text("Sent", timeout=60_000)
    assert len(authorize_calls) == 1
    expect(page.locator("code.checksum")).to_have_text(f"sha256:{sha256(small.read_bytes())}")
