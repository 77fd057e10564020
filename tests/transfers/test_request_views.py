"""The web layer of upload requests (issue 5), through Django's test client on in-process moto: the employee's
Request files form, Received list and request page (download, close, delete); the guest's link, code and
upload page with the uploader's JSON endpoints (scoped to their session, never to ids they send); replies to
a transfer from the recipient's download page."""

import json
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.conf import settings
from django.test import Client

from fxfer import aws
from reports.models import AuditEvent
from tests.transfers.conftest import (
    ANY_CRC,
    MALLORY,
    browser_put_parts,
    checksums_of,
    create_request,
    put_object_as_browser,
)
from tests.transfers.guest_links import open_link
from tests.transfers.test_views import (
    SMALL,
    alice_id,
    code_for,
    links,
    post_json,
    send_small_file,
    sign_in,
    text,
)
from tests.transfers.test_views import create as create_transfer
from transfers.models import File, Recipient, Transfer

BOB = "bob@partner.example"
CAROL = "carol@other.example"
MiB = 1024**2
BIG = bytes(range(256)) * (12 * MiB // 256)  # 12 MiB: with `small_parts`, parts of 5, 5 and 2 MiB


@pytest.fixture
def alice(client):
    client.defaults["HTTP_USER_AGENT"] = "pytest-browser/1.0"
    return sign_in(client)


@pytest.fixture
def small_parts(settings):
    settings.FXFER_MULTIPART_THRESHOLD = 6 * MiB
    settings.FXFER_MULTIPART_PART_BYTES = 5 * MiB
    settings.FXFER_PART_URL_BATCH = 2


def request_form(**changes) -> dict:
    data = {
        "recipients": f"{BOB}, {CAROL}",
        "subject": "Signed contract",
        "message": "Please send the signed copies.",
        "closes_amount": 7,
        "closes_unit": "days",
        "keep_days": 14,
        "max_files": 3,
        "max_file_size": 10,
        "max_file_size_unit": "MB",
        "max_total_size": 20,
        "max_total_size_unit": "MB",
        "allowed_extensions": "pdf, zip",
    }
    return {**data, **changes}


def ask(alice, **changes) -> str:
    """Create a request through the Request files form; its id."""
    response = alice.post("/requests/new", request_form(**changes))
    assert response.status_code == 302, text(response)
    match = re.fullmatch(r"/requests/([A-Za-z0-9_-]+)/", response["Location"])
    assert match, response["Location"]
    return match[1]


def guest_in(mailoutbox, link: str, to: str = BOB) -> Client:
    """A guest's browser: the link's code mailed and typed in, landing on the upload page."""
    guest = Client()
    guest.defaults["HTTP_USER_AGENT"] = "guest-browser/1.0"
    page = open_link(guest, link)
    assert guest.post(f"{page}/code").status_code == 303
    response = guest.post(f"{page}/verify", {"code": code_for(mailoutbox, to)})
    assert (response.status_code, response["Location"]) == (303, "/guest/upload/")
    return guest


def declare(guest, *files: tuple[str, int]):
    return post_json(guest, "/guest/upload/files", {"files": [{"name": n, "size": s, "type": ""} for n, s in files]})


def upload_small(guest, name: str = "contract.pdf", body: bytes = SMALL) -> dict:
    """Declare one file on the guest's page, POST it to S3 as the uploader does (with the policy the declaration's
    answer brought: no authorize call), and report it done."""
    response = declare(guest, (name, len(body)))
    assert response.status_code == 201, response.content
    file = response.json()["files"][0]
    assert file["upload"]["mode"] == "post"
    put_object_as_browser(file["upload"]["fields"]["key"], body)
    done = post_json(guest, f"/guest/upload/files/{file['fileId']}/done").json()
    assert done == {"outcome": "verified", "reason": None, "released": False}
    return file


def audit(action: str, transfer_id: str | None = None) -> list[AuditEvent]:
    events = (e for e in AuditEvent.scan() if e.action == action)
    if transfer_id:
        events = (e for e in events if e.subject == f"transfer:{transfer_id}")
    return sorted(events, key=lambda e: e.sort_key)


def uploader_config(page: str) -> dict:
    return json.loads(re.search(r'id="uploader-config" type="application/json">(.*?)</script>', page)[1])


def _versions(key: str) -> list:
    page = aws.client("s3").list_object_versions(Bucket=settings.FXFER_BUCKET, Prefix=key)
    return [v for v in page.get("Versions", []) + page.get("DeleteMarkers", []) if v["Key"] == key]


@pytest.fixture
def asked(alice, mailoutbox):
    """An open request to Bob and Carol, made on the form; each one's link path from their own mail."""
    request_id = ask(alice)
    found = links(mailoutbox)
    mailoutbox.clear()
    return request_id, found


@pytest.fixture
def bob(asked, mailoutbox):
    """Bob's browser in his guest session of the request."""
    _request_id, found = asked
    guest = guest_in(mailoutbox, found[BOB])
    mailoutbox.clear()
    return guest


# --- Request files -------------------------------------------------------------------------------------------


def test_the_request_files_form_has_labelled_fields_with_the_sites_defaults(alice):
    response = alice.get("/requests/new")
    page = text(response)
    assert response.status_code == 200
    for label in (
        "Ask these people",
        "Subject",
        "Message",
        "Keep received files for (days)",
        "Files per person, at most",
        "Size of each file, at most",
        "All files of one person, at most",
        "Only these file types",
    ):
        assert f">{label}</label>" in page
    assert f'name="keep_days" value="{settings.FXFER_REQUEST_KEEP_DAYS}"' in page
    assert f'name="max_files" value="{settings.FXFER_REQUEST_DEFAULT_MAX_FILES}"' in page


def test_requesting_files_mails_each_guest_their_own_link_and_shows_the_request(alice, mailoutbox):
    response = alice.post("/requests/new", request_form())
    assert response.status_code == 302
    request_id = response["Location"].split("/")[2]
    page = text(alice.get(response["Location"]))
    assert "Each person was mailed their own upload link." in page
    assert "<h1>Signed contract</h1>" in page and "Open</span>" in page
    assert "Up to 3 files, 10 MB each, 20 MB in all. Types: .pdf, .zip." in page
    assert BOB in page and CAROL in page and page.count("Send link again") == 2
    assert "Close now" in page and "Nothing has arrived yet." in page
    found = links(mailoutbox)
    assert sorted(found) == [BOB, CAROL] and found[BOB] != found[CAROL]
    for message in mailoutbox:
        assert message.subject == "Alice Example asks you for files: Signed contract"
        assert "Please send the signed copies." in message.body
    request = Transfer.get(request_id)
    assert (request.kind, request.owner_id, request.owner_email) == ("request", alice_id(), "alice@example.com")
    assert (request.closes_at - request.created_at) == timedelta(days=7)
    assert (request.expires_at - request.closes_at) == timedelta(days=14)
    [event] = audit("request.created", request_id)
    assert (event.actor, event.user_agent) == (f"user:{alice_id()}", "pytest-browser/1.0")
    assert [e.details["kind"] for e in audit("mail.sent", request_id)] == ["request_link", "request_link"]


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"recipients": f"{BOB}, nope"}, "recipients", "nope is not a valid e-mail address."),
        ({"closes_amount": 400}, "closes_amount", "Choose an expiry between one hour and"),
        ({"closes_amount": 10**12}, "closes_amount", "Ensure this value is less than or equal to 100000."),
        ({"keep_days": 31}, "keep_days", "Received files may be kept between 1 and 30 days."),
        ({"max_files": 101}, "max_files", "Choose between 1 and 100 files per person."),
        (
            {"max_file_size": 51, "max_file_size_unit": "GB", "max_total_size": 60, "max_total_size_unit": "GB"},
            "max_file_size",
            "Choose a file size limit up to 50 GB.",
        ),
        ({"max_total_size": 5}, "max_total_size", "Choose a total between the file size limit and"),
        ({"max_file_size": "ten"}, "max_file_size", "Enter a number."),
        ({"max_file_size_unit": "KB"}, "max_file_size", "Choose MB or GB."),
        ({"allowed_extensions": "pdf, exe"}, "allowed_extensions", "Files of type .exe are blocked and cannot be"),
        ({"allowed_extensions": "pdf, *.doc?"}, "allowed_extensions", "*.doc? is not a file extension."),
        ({"max_files": 0}, "max_files", "Ensure this value is greater than or equal to 1."),
    ],
)
def test_a_refused_request_names_the_field_and_nothing_is_sent(alice, mailoutbox, changes, field, message):
    response = alice.post("/requests/new", request_form(**changes))
    assert response.status_code == 400
    page = text(response)
    assert 'class="error-summary" role="alert"' in page
    error = re.search(rf'<p class="field-error" id="id_{field}-error" >([^<]*)</p>', page)
    assert error and message in error[1], page
    assert list(Transfer.scan()) == [] and mailoutbox == []


def test_compliance_staff_and_signed_out_people_cannot_request_files(client):
    assert client.get("/requests/new")["Location"].startswith("/saml/login/?next=/requests/new")
    sign_in(client, "carol")
    assert client.post("/requests/new", request_form()).status_code == 403
    assert client.get("/requests/").status_code == 403
    assert list(Transfer.scan()) == []


# --- the guest's link, code and upload page -----------------------------------------------------------------------


def test_the_link_shows_who_asks_uses_nothing_up_and_the_code_leads_to_the_upload_page(asked, mailoutbox):
    request_id, found = asked
    for _ in range(3):  # a mail scanner prefetching, then the person
        response = Client().get(found[BOB], follow=True)
        assert response.status_code == 200
    page = text(response)
    assert "Alice Example asks you for files" in page and "Signed contract" in page
    assert "b***@partner.example" in page and BOB not in page
    assert mailoutbox == [] and len(audit("link.opened", request_id)) == 3

    guest = Client()
    link_page = open_link(guest, found[BOB])
    assert guest.post(f"{link_page}/code").status_code == 303
    [code_mail] = mailoutbox
    assert code_mail.to == [BOB] and code_mail.subject == "Your one-time code"
    response = guest.post(f"{link_page}/verify", {"code": code_for(mailoutbox, BOB)})
    assert (response.status_code, response["Location"]) == (303, "/guest/upload/")
    assert sorted(guest.session["guest_upload"]) == ["grant", "recipient_id", "transfer_id"]
    assert "guest_access" not in guest.session  # an upload session, not a download one

    upload = text(guest.get("/guest/upload/"))
    assert "Upload files for Alice Example" in upload and "Please send the signed copies." in upload
    assert "Up to 3 files, 10 MB each, 20 MB in all. Types: .pdf, .zip." in upload
    assert "Nothing uploaded yet." in upload and 'id="finish-form"' in upload
    config = uploader_config(upload)
    assert (config["createUrl"], config["fileUrl"]) == ("/guest/upload/files", "/guest/upload/files/FILE/")
    assert (config["maxFiles"], config["maxFileSize"], config["allowedExtensions"]) == (3, 10 * MiB, ["pdf", "zip"])
    assert "exe" in config["blockedExtensions"] and request_id not in json.dumps(config)
    # The upload session downloads nothing.
    assert guest.get("/guest/files/").status_code == 403


def test_wrong_codes_on_a_request_link_count_down_and_lock(asked, mailoutbox):
    _request_id, found = asked
    guest = Client()
    link_page = open_link(guest, found[BOB])
    guest.post(f"{link_page}/code")
    right = code_for(mailoutbox, BOB)
    wrong = "000000" if right != "000000" else "111111"
    response = guest.post(f"{link_page}/verify", {"code": wrong})
    assert response.status_code == 400 and "You can try 4 more times" in text(response)
    for _ in range(4):
        response = guest.post(f"{link_page}/verify", {"code": wrong})
    assert response.status_code == 403 and "Access locked" in text(response)
    assert guest.post(f"{link_page}/verify", {"code": right}).status_code == 403
    [notice] = [m for m in mailoutbox if m.to == ["alice@example.com"]]
    assert "locked" in notice.subject.lower() and BOB in notice.subject
    # Carol's link still works.
    assert guest_in(mailoutbox, found[CAROL], CAROL).get("/guest/upload/").status_code == 200


def test_a_guest_uploads_a_file_finishes_with_a_note_and_the_employee_downloads_it(asked, bob, alice, mailoutbox):
    request_id, _found = asked
    file = upload_small(bob, "contract.pdf")
    page = text(bob.get("/guest/upload/"))
    assert "contract.pdf" in page and "Received and checked" in page
    assert re.search(r'<code class="checksum">(sha256|etag):[^<]+</code>', page)
    assert "2 more files" in page

    response = bob.post("/guest/upload/finish", {"note": "Signed on both pages."})
    assert (response.status_code, response["Location"]) == (303, "/guest/upload/")
    after = text(bob.get("/guest/upload/"))
    assert "Thank you. The person who asked for the files has been told by mail." in after
    assert "You finished (" in after
    [mail] = mailoutbox
    assert mail.to == ["alice@example.com"] and mail.subject == f"Files from {BOB}"
    assert "contract.pdf" in mail.body and "Signed on both pages." in mail.body
    assert f"/requests/{request_id}/" in mail.body
    [finished] = audit("request.finished", request_id)
    assert finished.user_agent == "guest-browser/1.0" and finished.actor.startswith("guest:")

    detail = text(alice.get(f"/requests/{request_id}/"))
    assert "contract.pdf" in detail and BOB in detail and "Signed on both pages." in detail
    assert re.search(r'<code class="checksum">(sha256|etag):[^<]+</code>', detail)
    download_url = f"/requests/{request_id}/files/{file['fileId']}/download"
    assert f'action="{download_url}"' in detail
    assert alice.get(download_url).status_code == 405  # a GET hands out nothing
    response = alice.post(download_url)
    assert response.status_code == 303
    query = parse_qs(urlsplit(response["Location"]).query)
    assert query["response-content-disposition"][0].startswith("attachment;")
    assert requests.get(response["Location"], timeout=10).content == SMALL
    [event] = audit("request.downloaded", request_id)
    assert (event.outcome, event.actor, event.details["uploader"]) == ("ok", f"user:{alice_id()}", BOB)


def test_a_guests_post_policy_comes_with_the_declaration_and_ends_when_the_request_closes(alice, mailoutbox, settings):
    settings.FXFER_UPLOAD_POLICY_SECONDS = 3 * 24 * 3600  # longer than the request stays open
    request_id = ask(alice, closes_amount=1, closes_unit="days")
    bob = guest_in(mailoutbox, links(mailoutbox)[BOB])
    file = declare(bob, ("contract.pdf", len(SMALL))).json()["files"][0]
    closes_at = Transfer.get(request_id).closes_at
    expires = datetime.fromisoformat(file["upload"]["expiresAt"])
    assert closes_at - timedelta(seconds=5) <= expires <= closes_at
    put_object_as_browser(file["upload"]["fields"]["key"], SMALL)
    done = post_json(bob, f"/guest/upload/files/{file['fileId']}/done").json()
    assert done == {"outcome": "verified", "reason": None, "released": False}


def test_a_large_file_goes_up_in_parts_through_the_guest_endpoints(alice, mailoutbox, small_parts):
    ask(alice, max_file_size=20, max_total_size=40)
    bob = guest_in(mailoutbox, links(mailoutbox)[BOB])
    response = declare(bob, ("scans.zip", len(BIG)))
    assert response.status_code == 201
    file = response.json()["files"][0]
    assert (file["mode"], file["partSize"]) == ("multipart", 5 * MiB)
    base = f"/guest/upload/files/{file['fileId']}/"
    first = post_json(bob, f"{base}authorize").json()
    assert (first["mode"], first["partCount"], first["partUrls"]) == ("multipart", 3, {})
    assert first["uploadId"] == file["upload"]["uploadId"]  # started with the declaration, found again
    one = post_json(bob, f"{base}parts", {"uploadId": first["uploadId"], "parts": {"1": ANY_CRC}}).json()
    browser_put_parts({1: one["partUrls"]["1"]}, BIG, 5 * MiB)
    listed = bob.get(f"{base}parts/list", {"uploadId": first["uploadId"]}).json()
    assert [p["PartNumber"] for p in listed["parts"]] == [1]
    sums = checksums_of(BIG)
    early = post_json(bob, f"{base}complete", {"uploadId": first["uploadId"], **sums})
    assert (early.status_code, early.json()["error"]) == (409, "upload_incomplete")
    batch = {"2": ANY_CRC, "3": ANY_CRC}
    signed = post_json(bob, f"{base}parts", {"uploadId": first["uploadId"], "parts": batch}).json()
    browser_put_parts({int(n): url for n, url in signed["partUrls"].items()}, BIG, 5 * MiB)
    done = post_json(bob, f"{base}complete", {"uploadId": first["uploadId"], **sums})
    assert done.json() == {"outcome": "verified", "reason": None, "released": False}
    assert "scans.zip" in text(bob.get("/guest/upload/"))


@pytest.mark.parametrize(
    ("files", "code", "message"),
    [
        ([("sheet.xlsx", 10)], "extension_not_allowed", "sheet.xlsx: only these types are asked for: .pdf, .zip."),
        ([("setup.pdf.exe", 10)], "extension_blocked", "Files of type .exe may not be sent (setup.pdf.exe)."),
        ([("big.pdf", 10 * MiB + 1)], "file_too_large", "big.pdf is larger than the 10 MB allowed per file."),
        ([("a.pdf", 1), ("b.pdf", 1), ("c.pdf", 1), ("d.pdf", 1)], "too_many_files", "You may send 3 files in all"),
        ([("a.pdf", 10 * MiB), ("b.pdf", 10 * MiB), ("c.pdf", 1)], "transfer_too_large", "You may send 20 MB in all"),
    ],
)
def test_files_beyond_the_requests_limits_are_refused_with_their_reason(asked, bob, files, code, message):
    request_id, _found = asked
    response = declare(bob, *files)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == code and message in body["message"] and body["fields"]["files"] == [body["message"]]
    [event] = audit("upload.started", request_id)
    assert (event.outcome, event.details["reason"]) == ("refused", code)
    assert list(File.query(request_id)) == []


def test_a_malformed_declaration_and_a_missing_session_are_refused(bob):
    bad = post_json(bob, "/guest/upload/files", {"files": "not a list"})
    assert (bad.status_code, bad.json()["error"]) == (400, "invalid")
    stranger = post_json(Client(), "/guest/upload/files", {"files": [{"name": "a.pdf", "size": 1}]})
    assert (stranger.status_code, stranger.json()["error"]) == (403, "access_expired")
    assert Client().get("/guest/upload/").status_code == 403


def test_finishing_with_nothing_says_what_to_do_and_mails_nobody(bob, mailoutbox):
    response = bob.post("/guest/upload/finish", {"note": ""})
    assert (response.status_code, response["Location"]) == (303, "/guest/upload/")
    assert "Upload at least one file, or write a note, before you finish." in text(bob.get("/guest/upload/"))
    assert mailoutbox == []
    too_long = bob.post("/guest/upload/finish", {"note": "x" * 5001})
    page = text(too_long)
    assert too_long.status_code == 400 and "at most 5000 characters" in page
    assert "x" * 5001 in page  # the note as typed, to shorten: nothing lost
    assert mailoutbox == []


def test_finishing_drops_unfinished_uploads_and_says_so(bob, mailoutbox):
    upload_small(bob, "done.pdf")
    half = declare(bob, ("half.pdf", 20)).json()["files"][0]
    post_json(bob, f"/guest/upload/files/{half['fileId']}/authorize")
    bob.post("/guest/upload/finish", {"note": ""})
    page = text(bob.get("/guest/upload/"))
    assert "1 unfinished upload(s) were dropped." in page
    assert "half.pdf" not in page and "done.pdf" in page
    assert "half.pdf" not in mailoutbox[0].body


def test_every_guest_post_needs_the_csrf_token(bob):
    strict = Client(enforce_csrf_checks=True)
    strict.cookies = bob.cookies
    assert declare(strict, ("a.pdf", 5)).status_code == 403
    assert strict.post("/guest/upload/finish", {"note": "hi"}).status_code == 403


# --- what a guest session reaches ---------------------------------------------------------------------------------


def test_a_guest_cannot_touch_another_guests_file_and_does_not_see_it(asked, bob, mailoutbox):
    request_id, found = asked
    carol = guest_in(mailoutbox, found[CAROL], CAROL)
    carols = declare(carol, ("carol-private.pdf", 11)).json()["files"][0]
    base = f"/guest/upload/files/{carols['fileId']}/"
    for call in (
        post_json(bob, f"{base}authorize"),
        post_json(bob, f"{base}done"),
        post_json(bob, f"{base}cancel"),
        post_json(bob, f"{base}complete", {"uploadId": "x"}),
        post_json(bob, f"{base}parts", {"uploadId": "x", "partNumbers": [1]}),
        bob.get(f"{base}parts/list", {"uploadId": "x"}),
        post_json(bob, "/guest/upload/files/nosuchfile123456/authorize"),
    ):
        assert (call.status_code, call.json()["error"]) == (404, "not_found")
    assert File.get(request_id, carols["fileId"]).state == "pending"
    assert "carol-private.pdf" not in text(bob.get("/guest/upload/"))
    assert "carol-private.pdf" in text(carol.get("/guest/upload/"))


def test_a_download_session_uploads_nothing_and_an_upload_session_downloads_nothing(alice, bob, mailoutbox):
    mailoutbox.clear()
    sent = send_small_file(alice, mailoutbox)
    downloader = Client()
    transfer_link = open_link(downloader, links(mailoutbox)[BOB])
    downloader.post(f"{transfer_link}/code")
    response = downloader.post(f"{transfer_link}/verify", {"code": code_for(mailoutbox, BOB)})
    assert response["Location"] == "/guest/files/"
    file_id = sent["files"][0]["fileId"]
    assert downloader.get("/guest/upload/").status_code == 403
    refused = declare(downloader, ("a.pdf", 5))
    assert (refused.status_code, refused.json()["error"]) == (403, "access_expired")
    call = post_json(downloader, f"/guest/upload/files/{file_id}/authorize")
    assert (call.status_code, call.json()["error"]) == (403, "access_expired")
    assert downloader.post("/guest/upload/finish", {"note": "hi"}).status_code == 403
    # Bob's request session cannot download the transfer's file either.
    assert bob.get("/guest/files/").status_code == 403
    assert bob.post(f"/guest/files/{file_id}/download").status_code == 403
    assert File.get(sent["transferId"], file_id).state == "verified"


def test_closing_a_request_stops_its_links_and_its_guests_at_once(asked, bob, alice, mailoutbox):
    request_id, found = asked
    file = declare(bob, ("late.pdf", 11)).json()["files"][0]
    response = alice.post(f"/requests/{request_id}/close")
    assert (response.status_code, response["Location"]) == (302, f"/requests/{request_id}/")
    page = text(alice.get(response["Location"]))
    assert "The request is closed: its links no longer work." in page and "Closed</span>" in page
    assert "Close now" not in page and "Send link again" not in page
    not_found = text(Client().get(found[CAROL], follow=True))
    assert "This link does not work" in not_found
    assert Client().get(found[CAROL], follow=True).status_code == 404
    assert bob.get("/guest/upload/").status_code == 404
    assert text(bob.get("/guest/upload/")) == not_found
    for call in (declare(bob, ("b.pdf", 5)), post_json(bob, f"/guest/upload/files/{file['fileId']}/authorize")):
        assert (call.status_code, call.json()["error"]) == (404, "not_found")
    assert bob.post("/guest/upload/finish", {"note": "done"}).status_code == 404
    assert alice.post(f"/requests/{request_id}/close").status_code == 409  # already closed
    assert [e.outcome for e in audit("request.closed", request_id)] == ["ok"]


def test_a_request_past_its_closing_time_refuses_its_guests(asked, bob, alice):
    request_id, found = asked
    # As if its time had run out: no sweep has run, the reads decide.
    Transfer(transfer_id=request_id).update(actions=[Transfer.closes_at.set(datetime.now(UTC) - timedelta(seconds=1))])
    assert Client().get(found[CAROL], follow=True).status_code == 404
    assert bob.get("/guest/upload/").status_code == 404
    assert declare(bob, ("a.pdf", 5)).status_code == 404
    assert "Closed</span>" in text(alice.get("/requests/"))


# --- the employee's pages ------------------------------------------------------------------------------------------


def test_received_lists_requests_and_my_transfers_lists_transfers(alice, mailoutbox):
    request_id = ask(alice, subject="Incoming documents")
    transfer = create_transfer(alice, subject="Outgoing figures")
    received = text(alice.get("/requests/"))
    assert "Incoming documents" in received and "Outgoing figures" not in received
    assert f'href="/requests/{request_id}/"' in received and "Open</span>" in received
    assert BOB in received and CAROL in received
    mine = text(alice.get("/transfers/"))
    assert "Outgoing figures" in mine and "Incoming documents" not in mine
    assert alice.get(f"/requests/{transfer['transferId']}/").status_code == 404


def test_received_lists_what_arrived_from_whom(alice, asked, mailoutbox):
    request_id, found = asked
    assert "Nothing yet" in text(alice.get("/requests/"))
    upload_small(guest_in(mailoutbox, found[BOB]), name="signed-contract.pdf")
    row = text(alice.get("/requests/")).split(f'href="/requests/{request_id}/"', 1)[1].split("</tr>", 1)[0]
    assert "signed-contract.pdf" in row and BOB in row and "Nothing yet" not in row


def test_a_guest_who_used_up_their_allowance_gets_no_uploader_but_can_finish(alice, mailoutbox):
    ask(alice, max_files=1)
    guest = guest_in(mailoutbox, links(mailoutbox)[BOB])
    assert "uploader-config" in text(guest.get("/guest/upload/"))
    upload_small(guest)
    page = text(guest.get("/guest/upload/"))
    assert "uploader-config" not in page and "You have sent as much as this request allows" in page
    assert "0 more files" in page and 'id="finish-button"' in page


def test_transfer_pages_do_not_serve_a_request(alice, asked):
    request_id, _found = asked
    alice.get("/requests/")  # shows (and so clears) the flash message of its creation
    missing = text(alice.get("/transfers/nosuchtransfer1234/"))
    response = alice.get(f"/transfers/{request_id}/")
    assert response.status_code == 404 and text(response) == missing
    assert alice.post(f"/transfers/{request_id}/revoke").status_code == 404
    assert alice.post(f"/transfers/{request_id}/extend", {"expires_at": "2999-01-01T00:00:00+0000"}).status_code == 404
    assert alice.get(f"/transfers/{request_id}/delete").status_code == 404
    call = post_json(alice, f"/transfers/{request_id}/files/nosuchfile123456/authorize")
    assert (call.status_code, call.json()["error"]) == (404, "not_found")
    assert Transfer.get(request_id).status == "ready"


def test_the_transfer_delete_button_does_not_delete_a_request(alice, asked, mailoutbox):
    """A request id on a transfer URL is "not found" for every button, delete too."""
    request_id, found = asked
    bob = guest_in(mailoutbox, found[BOB])
    upload_small(bob)
    assert alice.post(f"/transfers/{request_id}/delete").status_code == 404
    assert Transfer.get(request_id).deleted_at is None


def test_the_transfer_resend_button_does_not_resend_a_request_link(alice, asked, mailoutbox):
    request_id, _found = asked
    [guest] = [r for r in Recipient.query(request_id) if r.email == BOB]
    before = guest.token_hash
    assert alice.post(f"/transfers/{request_id}/recipients/{guest.recipient_id}/resend").status_code == 404
    assert mailoutbox == [] and Recipient.get(request_id, guest.recipient_id).token_hash == before
    # The request's own button does it.
    response = alice.post(f"/requests/{request_id}/recipients/{guest.recipient_id}/resend")
    assert response.status_code == 302 and [m.to for m in mailoutbox] == [[BOB]]
    assert Recipient.get(request_id, guest.recipient_id).token_hash != before


def test_someone_elses_request_looks_exactly_like_a_missing_one(alice, mailoutbox):
    theirs = create_request(sender=MALLORY, recipients=[BOB], now=datetime.now(UTC))
    missing = alice.get("/requests/nosuchrequest1234/")
    for response in (
        alice.get(f"/requests/{theirs.request_id}/"),
        alice.get(f"/requests/{theirs.request_id}/delete"),
        alice.post(f"/requests/{theirs.request_id}/close"),
        alice.post(f"/requests/{theirs.request_id}/delete"),
        alice.post(f"/requests/{theirs.request_id}/files/nosuchfile123456/download"),
    ):
        assert response.status_code == 404 and text(response) == text(missing)
    assert Transfer.get(theirs.request_id).status == "ready"
    assert Transfer.get(theirs.request_id).deleted_at is None
    assert "Signed contract" not in text(alice.get("/requests/"))


def test_a_file_still_uploading_is_not_downloadable(asked, bob, alice):
    request_id, _found = asked
    pending = declare(bob, ("half.pdf", 20)).json()["files"][0]
    detail = text(alice.get(f"/requests/{request_id}/"))
    assert "half.pdf" in detail and "Still uploading" in detail
    assert f"/files/{pending['fileId']}/download" not in detail
    response = alice.post(f"/requests/{request_id}/files/{pending['fileId']}/download")
    assert response.status_code == 404
    [event] = audit("request.downloaded", request_id)
    assert (event.outcome, event.details["reason"]) == ("refused", "not_found")


def test_delete_now_removes_every_received_file_with_a_receipt(asked, bob, alice, mailoutbox):
    request_id, found = asked
    file = upload_small(bob, "contract.pdf")
    key = File.get(request_id, file["fileId"]).s3_key
    confirm = text(alice.get(f"/requests/{request_id}/delete"))
    assert "Yes, delete the files now" in confirm and f"contract.pdf ({len(SMALL)} bytes, {BOB})" in confirm
    response = alice.post(f"/requests/{request_id}/delete")
    assert (response.status_code, response["Location"]) == (302, f"/requests/{request_id}/")
    page = text(alice.get(response["Location"]))
    assert "The files were deleted. 1 deletion receipts are listed below." in page
    assert "Deletion receipts" in page and key in page and "Deleted</span>" in page
    assert "Delete files now…" not in page and f"/files/{file['fileId']}/download" not in page
    assert _versions(key) == []
    [receipt] = audit("file.deleted", request_id)
    assert (receipt.actor, receipt.details["by"], receipt.details["key"]) == (f"user:{alice_id()}", "sender", key)
    assert Client().get(found[CAROL], follow=True).status_code == 404
    assert bob.get("/guest/upload/").status_code == 404


# --- replies ---------------------------------------------------------------------------------------------------------


def test_a_recipient_replies_with_files_from_their_download_page(alice, mailoutbox):
    sent = send_small_file(alice, mailoutbox, allow_replies=True)
    transfer_id = sent["transferId"]
    reply_id = Transfer.get(transfer_id).reply_request_id
    assert "Recipients may reply with files from their download page." in text(alice.get(f"/transfers/{transfer_id}/"))
    guest = Client()
    link = open_link(guest, links(mailoutbox)[BOB])
    guest.post(f"{link}/code")
    assert guest.post(f"{link}/verify", {"code": code_for(mailoutbox, BOB)})["Location"] == "/guest/files/"
    files = text(guest.get("/guest/files/"))
    assert "Reply with files" in files and 'action="/guest/reply"' in files
    response = guest.post("/guest/reply")
    assert (response.status_code, response["Location"]) == (303, "/guest/upload/")
    page = text(guest.get("/guest/upload/"))
    assert "Send files back to Alice Example" in page and "Reply: Quarterly figures" in page
    mailoutbox.clear()

    file = upload_small(guest, "answer.pdf")
    guest.post("/guest/upload/finish", {"note": "Our answer."})
    [mail] = mailoutbox
    assert mail.to == ["alice@example.com"] and f"{BOB} replied with files." in mail.body
    assert f"/transfers/{transfer_id}/" in mail.body and "answer.pdf" in mail.body

    detail = text(alice.get(f"/transfers/{transfer_id}/"))
    replies = detail[detail.index('id="replies"') : detail.index('id="recipients-heading"')]
    assert "Replies</h2>" in replies and "answer.pdf" in replies and BOB in replies
    assert f'action="/requests/{reply_id}/files/{file["fileId"]}/download"' in replies
    assert alice.post(f"/requests/{reply_id}/files/{file['fileId']}/download").status_code == 303
    received = text(alice.get("/requests/"))
    assert "Reply: Quarterly figures" in received and "(replies to a transfer)" in received
    assert [e.outcome for e in audit("reply.opened", transfer_id)] == ["ok"]


def test_without_allow_replies_the_recipient_cannot_reply(alice, mailoutbox):
    send_small_file(alice, mailoutbox)
    guest = Client()
    link = open_link(guest, links(mailoutbox)[BOB])
    guest.post(f"{link}/code")
    guest.post(f"{link}/verify", {"code": code_for(mailoutbox, BOB)})
    assert "Reply with files" not in text(guest.get("/guest/files/"))
    response = guest.post("/guest/reply")
    assert response.status_code == 409 and "Replies to this transfer are closed." in text(response)
    assert "guest_upload" not in guest.session
    assert guest.get("/guest/reply").status_code == 405
    assert not [r for r in Recipient.scan() if r.parent_kind == "request"]


def test_no_reply_without_a_download_session():
    response = Client().post("/guest/reply")
    assert response.status_code == 403 and "Your access has ended" in text(response)


# --- pages tell the truth about mails (issue 11, item 7) ---------------------------------------------------------


def test_a_throttled_request_mail_is_reported_as_being_retried_and_a_bounce_shows_on_the_page(alice, settings):
    from tests.faults import ERROR, inject
    from transfers.models import OutboxMail
    from transfers.outbox import outbox_retry

    settings.EMAIL_BACKEND = "fxfer.mail.SESBackend"
    with inject(ERROR, service="ses", operation="SendRawEmail", times=100):
        response = alice.post("/requests/new", request_form(), follow=True)
    page = text(response)
    assert "Each person was mailed their own upload link." not in page
    assert f"Not mailed yet, being retried: {BOB}, {CAROL}." in page
    assert page.count("Not sent yet (Throttling, 1 attempt); retrying") == 2
    request_id = response.redirect_chain[-1][0].split("/")[2]
    outbox_retry(now=datetime.now(UTC) + timedelta(hours=1))
    page = text(alice.get(f"/requests/{request_id}/"))
    assert page.count("Mailed ") >= 2 and "retrying" not in page
    # The bounce handler marks the mail; the page says so.
    [bob_mail] = [m for m in OutboxMail.by_parent.query(request_id) if m.to == BOB]
    bob_mail.update(actions=[OutboxMail.status.set("bounced"), OutboxMail.bounce_reason.set("mailbox does not exist")])
    assert "Bounced: mailbox does not exist" in text(alice.get(f"/requests/{request_id}/"))


def test_an_aws_failure_on_request_files_keeps_the_form_and_says_nothing_was_lost(alice):
    from tests.faults import ERROR, inject

    with inject(ERROR, service="dynamodb", operation="TransactWriteItems", times=100):
        response = alice.post("/requests/new", request_form())
    assert response.status_code == 503
    assert "Nothing was lost" in text(response)
    assert not [t for t in Transfer.scan() if t.kind == "request"]
