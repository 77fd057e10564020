"""The web layer of sending files, through Django's test client on in-process moto: the sender's pages and the
uploader's JSON endpoints (who may use them, what a refusal looks like), and the guest's pages (a GET uses
nothing up, codes, the guest session, downloads by POST only, one 404 for every bad link)."""

import base64
import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.conf import settings
from django.test import Client

from accounts.services import user_id_for
from devtools.idp import server as idp
from devtools.idp.identities import DEMO_IDENTITIES
from reports.models import AuditEvent
from tests.accounts.conftest import post_to_acs, start_signin
from tests.faults import ERROR, inject
from tests.transfers.conftest import (
    ANY_CRC,
    CODE,
    LINK,
    MALLORY,
    browser_put_parts,
    checksums_of,
    put_object_as_browser,
)
from tests.transfers.guest_links import open_link
from transfers import policy, services
from transfers.models import File, Recipient, Transfer
from transfers.policy import FileDeclared
from transfers.services.sending import FIRST_MULTIPART_UPLOADS

MiB = 1024**2
BIG = bytes(range(256)) * (12 * MiB // 256)  # 12 MiB: parts of 5, 5 and 2 MiB
SMALL = "こんにちは, small file\n".encode() * 10


def sign_in(client, identity: str = "alice"):
    started = start_signin(client)
    xml = idp.authn_response(idp.idp_server(), identity=DEMO_IDENTITIES[identity], in_response_to=started.request_id)
    assert post_to_acs(client, xml, started.relay_state).status_code == 302
    return client


def alice_id() -> str:
    return user_id_for(idp_entity_id=settings.FXFER_SAML_IDP_ENTITY_ID, name_id="alice@example.com")


@pytest.fixture
def alice(client):
    client.defaults["HTTP_USER_AGENT"] = "pytest-browser/1.0"
    return sign_in(client)


@pytest.fixture
def small_parts(settings):
    settings.FXFER_MULTIPART_THRESHOLD = 6 * MiB
    settings.FXFER_MULTIPART_PART_BYTES = 5 * MiB
    settings.FXFER_PART_URL_BATCH = 2


def post_json(client, url: str, data: dict | None = None):
    return client.post(url, json.dumps(data or {}), content_type="application/json")


def form_data(**changes) -> dict:
    data = {
        "recipients": "bob@partner.example, dave@partner.example",
        "subject": "Quarterly figures",
        "message": "Here they are.",
        "expiry_amount": 7,
        "expiry_unit": "days",
        "download_limit": 2,
        "notify_on_download": True,
        "files": [{"name": "レポート.txt", "size": len(SMALL), "type": "text/plain"}],
    }
    return {**data, **changes}


def create(client, **changes) -> dict:
    response = post_json(client, "/transfers/new", form_data(**changes))
    assert response.status_code == 201, response.content
    return response.json()


def file_url(created: dict, index: int, action: str) -> str:
    return f"/transfers/{created['transferId']}/files/{created['files'][index]['fileId']}/{action}"


def send_small_file(client, mailoutbox, **changes) -> dict:
    """Create a transfer of SMALL, upload it the way the uploader does (with the POST policy Send's answer
    brought: no authorize call), and let the server verify it."""
    created = create(client, **changes)
    upload = created["files"][0]["upload"]
    assert upload["mode"] == "post"
    put_object_as_browser(upload["fields"]["key"], SMALL)
    done = post_json(client, file_url(created, 0, "done")).json()
    assert done == {"outcome": "verified", "reason": None, "released": True}
    return created


def links(mailoutbox) -> dict[str, str]:
    found = {}
    for message in mailoutbox:
        match = LINK.search(message.body)
        if match:
            found[message.to[0]] = match[0]
    return found


def code_for(mailoutbox, to: str) -> str:
    for message in reversed(mailoutbox):
        if message.to == [to] and "one-time code" in message.subject:
            return CODE.search(message.body)[1]
    raise AssertionError(f"no code mail to {to}")


def audit(action: str) -> list[AuditEvent]:
    return sorted((e for e in AuditEvent.scan() if e.action == action), key=lambda e: e.sort_key)


def text(response) -> str:
    """The page as compared: whitespace collapsed, the CSRF token (masked afresh in every response) blanked."""
    page = re.sub(r'(name="csrfmiddlewaretoken" value=)"[^"]*"', r'\1""', response.content.decode())
    return re.sub(r"\s+", " ", page)


# --- who may send --------------------------------------------------------------------------------------------


def test_signed_out_people_are_sent_to_sign_in(client):
    response = client.get("/transfers/new")
    assert response.status_code == 302
    assert response["Location"].startswith("/saml/login/?next=/transfers/new")
    upload_call = post_json(client, "/transfers/abcdefgh12345678/files/abcdefgh12345678/authorize")
    assert upload_call.status_code == 401
    assert upload_call.json()["error"] == "signed_out"


def test_compliance_staff_cannot_send(client):
    sign_in(client, "carol")
    for path in ("/transfers/new", "/transfers/"):
        response = client.get(path)
        assert response.status_code == 403
        assert "Only employees may send files" in text(response)
    refused = post_json(client, "/transfers/new", form_data())
    assert refused.status_code == 403
    assert not list(Transfer.scan())
    call = post_json(client, "/transfers/abcdefgh12345678/files/abcdefgh12345678/authorize")
    assert (call.status_code, call.json()["error"]) == (403, "forbidden")


def test_the_nav_shows_the_transfer_pages_to_employees_only(client):
    sign_in(client, "carol")
    assert "My transfers" not in text(client.get("/"))
    client.logout()
    sign_in(client, "alice")
    page = text(client.get("/"))
    assert 'href="/transfers/new"' in page and 'href="/transfers/"' in page


# --- New transfer --------------------------------------------------------------------------------------------


def test_the_new_transfer_page_has_labelled_fields_and_the_uploader(alice):
    response = alice.get("/transfers/new")
    page = text(response)
    assert response.status_code == 200
    for label in ("Recipients", "Subject", "Message", "Available for", "Downloads per recipient"):
        assert f">{label}</" in page
    assert 'name="notify_on_download" id="id_notify_on_download" checked' in page  # on by default
    assert 'id="id_expiry_amount"' in page and 'value="7"' in page  # a week by default
    assert 'id="error-summary" class="error-summary" role="alert"' in page
    config = json.loads(re.search(r'id="uploader-config" type="application/json">(.*?)</script>', page)[1])
    assert config["maxFileSize"] == settings.FXFER_MAX_FILE_BYTES
    assert "exe" in config["blockedExtensions"]
    assert config["fileUrl"] == "/transfers/TRANSFER/files/FILE/"
    assert "<script>" not in page  # no inline script: the uploader reads its data from a JSON element


def test_the_uploader_plans_the_parts_the_server_will_so_one_read_gives_every_checksum(alice, settings):
    # A configured part size below S3's 5 MiB minimum: the server uploads in 5 MiB parts, and tells the page so
    # (static/js/send.js reads the file once for the SHA-256 and these parts' CRCs, from the moment it is added).
    settings.FXFER_MULTIPART_PART_BYTES = 1024**2
    settings.FXFER_MULTIPART_THRESHOLD = 8 * 1024**2
    config = json.loads(
        re.search(r'id="uploader-config" type="application/json">(.*?)</script>', text(alice.get("/transfers/new")))[1]
    )
    assert config["partPlan"] == {
        "from": 8 * 1024**2,
        "partSize": policy.part_layout(8 * 1024**2)[0],
        "maxParts": 10_000,
        "maxPartSize": 5 * 1024**3,
    }
    assert config["partPlan"]["partSize"] == 5 * 1024**2


def test_sending_creates_a_pending_transfer_and_says_how_each_file_goes_up(alice, small_parts):
    created = create(
        alice,
        files=[
            {"name": "small.txt", "size": len(SMALL), "type": "text/plain"},
            {"name": "big.zip", "size": len(BIG), "type": ""},
        ],
    )
    assert created["url"] == f"/transfers/{created['transferId']}/"
    assert [(f["name"], f["mode"], f["partSize"]) for f in created["files"]] == [
        ("small.txt", "post", None),
        ("big.zip", "multipart", 5 * MiB),
    ]
    transfer = Transfer.get(created["transferId"])
    assert (transfer.status, transfer.owner_id, transfer.download_limit) == ("pending", alice_id(), 2)
    assert transfer.notify_on_download is True
    assert sorted(r.email for r in Recipient.query(created["transferId"])) == [
        "bob@partner.example",
        "dave@partner.example",
    ]
    assert (transfer.expires_at - transfer.created_at).days == 7
    assert not list(File.query(created["transferId"], filter_condition=File.state != "pending"))


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        (
            {"files": [{"name": "setup.exe", "size": 10}]},
            "files",
            "Files of type .exe may not be sent (setup.exe).",
        ),
        ({"files": []}, "files", "Add at least one file."),
        ({"recipients": "bob@partner.example, not-an-address"}, "recipients", "not-an-address is not a valid"),
        ({"expiry_amount": 400}, "expiry_amount", "Choose an expiry between one hour and"),
        ({"expiry_amount": 10**12}, "expiry_amount", "less than or equal to 100000"),
        ({"download_limit": 0}, "download_limit", "greater than or equal to 1"),
        ({"recipients": ""}, "recipients", "This field is required."),
    ],
)
def test_a_refusal_names_the_field_and_nothing_is_created(alice, changes, field, message):
    response = post_json(alice, "/transfers/new", form_data(**changes))
    assert response.status_code == 400
    body = response.json()
    assert message in " ".join(body["fields"][field]), body
    assert body["message"]
    assert not list(Transfer.scan())


def test_refused_recipient_domains_come_from_settings(alice, settings):
    settings.FXFER_RECIPIENT_DOMAINS_DENY = ["rival.example"]
    response = post_json(alice, "/transfers/new", form_data(recipients="eve@mail.rival.example"))
    assert response.status_code == 400
    assert response.json()["fields"]["recipients"] == ["Files may not be sent to mail.rival.example."]


def test_a_file_too_large_for_the_policy_is_refused_before_any_byte_moves(alice, settings):
    settings.FXFER_MAX_FILE_BYTES = 1024
    response = post_json(alice, "/transfers/new", form_data(files=[{"name": "a.bin", "size": 2048}]))
    assert (response.status_code, response.json()["error"]) == (400, "file_too_large")


def test_every_post_needs_the_csrf_token(alice):
    strict = Client(enforce_csrf_checks=True)
    strict.cookies = alice.cookies
    assert post_json(strict, "/transfers/new", form_data()).status_code == 403
    assert not list(Transfer.scan())


# --- uploading ---------------------------------------------------------------------------------------------


def test_a_small_file_is_posted_to_s3_verified_and_the_recipients_mailed(alice, mailoutbox):
    created = create(alice)
    authorized = post_json(alice, file_url(created, 0, "authorize")).json()
    assert authorized["fields"]["key"] == f"files/{created['transferId']}/{created['files'][0]['fileId']}"
    assert authorized["fields"]["x-amz-server-side-encryption"] == "aws:kms"
    assert authorized["fields"]["policy"]
    not_yet = post_json(alice, file_url(created, 0, "done")).json()
    assert (not_yet["outcome"], not_yet["released"]) == ("missing", False)
    assert mailoutbox == []

    put_object_as_browser(authorized["fields"]["key"], SMALL)
    done = post_json(alice, file_url(created, 0, "done")).json()
    assert done == {"outcome": "verified", "reason": None, "released": True}
    assert sorted(links(mailoutbox)) == ["bob@partner.example", "dave@partner.example"]
    again = post_json(alice, file_url(created, 0, "done")).json()  # idempotent: nobody is mailed twice
    assert (again["outcome"], again["released"], len(mailoutbox)) == ("verified", False, 2)


def test_send_hands_each_file_how_it_goes_up_so_its_bytes_move_at_once(alice, small_parts, mailoutbox):
    sha256 = base64.b64encode(hashlib.sha256(SMALL).digest()).decode()
    before = datetime.now(UTC)
    created = create(
        alice,
        files=[
            {"name": "small.txt", "size": len(SMALL), "type": "text/plain", "sha256": sha256},
            {"name": "big.zip", "size": len(BIG), "type": ""},
        ],
    )
    small, big = created["files"]
    upload = small["upload"]
    key = f"files/{created['transferId']}/{small['fileId']}"
    assert (upload["mode"], upload["key"], upload["fields"]["key"]) == ("post", key, key)
    # The policy pins what authorize's does: this key, exactly this size, the declared SHA-256, SSE-KMS.
    conditions = json.loads(base64.b64decode(upload["fields"]["policy"]))["conditions"]
    assert ["content-length-range", len(SMALL), len(SMALL)] in conditions
    assert {"x-amz-checksum-sha256": sha256} in conditions and {"key": key} in conditions
    assert {"x-amz-server-side-encryption": "aws:kms"} in conditions
    expires = datetime.fromisoformat(upload["expiresAt"])
    assert before < expires <= datetime.now(UTC) + timedelta(seconds=settings.FXFER_UPLOAD_POLICY_SECONDS)

    put_object_as_browser(key, SMALL, ChecksumAlgorithm="SHA256")  # as the POST does: S3 checks the SHA-256
    done = post_json(alice, file_url(created, 0, "done")).json()
    assert (done["outcome"], done["released"]) == ("verified", False)  # the big file is still to come
    assert mailoutbox == []

    # The big file's multipart upload is started too; its part URLs wait for the parts' CRCs.
    started = big["upload"]
    assert (started["mode"], started["partSize"], started["partCount"], started["partsDone"]) == (
        "multipart",
        5 * MiB,
        3,
        [],
    )
    assert File.get(created["transferId"], big["fileId"]).multipart_upload_id == started["uploadId"]
    # A reload's authorize finds that same upload: nothing is started twice.
    assert post_json(alice, file_url(created, 1, "authorize")).json()["uploadId"] == started["uploadId"]
    for batch in (("1", "2"), ("3",)):  # small_parts signs two at a time
        crcs = dict.fromkeys(batch, ANY_CRC)
        signed = post_json(alice, file_url(created, 1, "parts"), {"uploadId": started["uploadId"], "parts": crcs})
        browser_put_parts({int(n): url for n, url in signed.json()["partUrls"].items()}, BIG, 5 * MiB)
    sums = checksums_of(BIG)
    complete = post_json(alice, file_url(created, 1, "complete"), {"uploadId": started["uploadId"], **sums})
    assert complete.json() == {"outcome": "verified", "reason": None, "released": True}
    assert sorted(links(mailoutbox)) == ["bob@partner.example", "dave@partner.example"]


def test_send_starts_the_first_few_multipart_uploads_and_leaves_the_rest_to_authorize(alice, small_parts):
    created = create(alice, files=[{"name": f"part{n}.zip", "size": len(BIG), "type": ""} for n in range(5)])
    started = [f["upload"]["uploadId"] for f in created["files"] if f["upload"]]
    assert len(started) == FIRST_MULTIPART_UPLOADS == 3  # two S3 calls each, one after another
    assert [f["upload"] for f in created["files"][3:]] == [None, None]
    later = post_json(alice, file_url(created, 4, "authorize")).json()
    assert later["mode"] == "multipart" and later["uploadId"] not in started


def test_when_aws_fails_after_the_transfer_is_created_send_says_created_and_authorize_gives_the_policy(
    alice, mailoutbox
):
    # KMS (the key's ARN, which a policy pins) keeps failing after the transfer committed: Send still tells the
    # truth (created), with no policy for the file, and the uploader asks authorize for it as on a resume.
    with inject(ERROR, service="kms", operation="DescribeKey", times=10) as fault:
        created = create(alice)
    assert fault.fired
    assert created["files"][0]["upload"] is None
    assert Transfer.get(created["transferId"]).status == "pending"
    authorized = post_json(alice, file_url(created, 0, "authorize")).json()
    assert authorized["mode"] == "post"
    put_object_as_browser(authorized["fields"]["key"], SMALL)
    done = post_json(alice, file_url(created, 0, "done")).json()
    assert done == {"outcome": "verified", "reason": None, "released": True}
    assert sorted(links(mailoutbox)) == ["bob@partner.example", "dave@partner.example"]


def test_a_large_file_goes_up_in_parts_signed_in_batches_and_resumes(alice, small_parts, mailoutbox):
    created = create(alice, files=[{"name": "big.zip", "size": len(BIG)}])
    first = post_json(alice, file_url(created, 0, "authorize")).json()
    assert (first["mode"], first["partSize"], first["partCount"]) == ("multipart", 5 * MiB, 3)
    assert first["partUrls"] == {}  # each URL is signed for its part's CRC, computed by the browser first
    crcs = dict.fromkeys(("1", "2", "3"), ANY_CRC)  # moto checks none (LocalStack does: tests/integration)
    signed = post_json(alice, file_url(created, 0, "parts"), {"uploadId": first["uploadId"], "parts": {"1": crcs["1"]}})
    browser_put_parts({1: signed.json()["partUrls"]["1"]}, BIG, 5 * MiB)

    # The page is reloaded: authorize again finds the same upload and the part that arrived.
    resumed = post_json(alice, file_url(created, 0, "authorize")).json()
    assert resumed["uploadId"] == first["uploadId"]
    assert [p["PartNumber"] for p in resumed["partsDone"]] == [1]
    listed = alice.get(file_url(created, 0, "parts/list"), {"uploadId": first["uploadId"]}).json()
    assert [(p["PartNumber"], p["Size"]) for p in listed["parts"]] == [(1, 5 * MiB)]

    sums = checksums_of(BIG)
    incomplete = post_json(alice, file_url(created, 0, "complete"), {"uploadId": first["uploadId"], **sums})
    assert (incomplete.status_code, incomplete.json()["error"]) == (409, "upload_incomplete")

    too_many = post_json(alice, file_url(created, 0, "parts"), {"uploadId": first["uploadId"], "parts": crcs})
    assert (too_many.status_code, too_many.json()["error"]) == (400, "parts_invalid")
    batch = {"2": crcs["2"], "3": crcs["3"]}
    signed = post_json(alice, file_url(created, 0, "parts"), {"uploadId": first["uploadId"], "parts": batch})
    browser_put_parts({int(n): url for n, url in signed.json()["partUrls"].items()}, BIG, 5 * MiB)

    complete = post_json(alice, file_url(created, 0, "complete"), {"uploadId": first["uploadId"], **sums})
    assert complete.json() == {"outcome": "verified", "reason": None, "released": True}
    assert len(links(mailoutbox)) == 2


def test_a_removed_file_is_cancelled_and_the_rest_is_sent(alice, mailoutbox):
    created = create(
        alice,
        files=[{"name": "keep.txt", "size": len(SMALL)}, {"name": "drop.txt", "size": 5}],
    )
    authorized = post_json(alice, file_url(created, 0, "authorize")).json()
    put_object_as_browser(authorized["fields"]["key"], SMALL)
    assert post_json(alice, file_url(created, 0, "done")).json()["released"] is False
    cancelled = post_json(alice, file_url(created, 1, "cancel")).json()
    assert (cancelled["outcome"], cancelled["released"]) == ("cancelled", True)
    assert "drop.txt" not in mailoutbox[0].body and "keep.txt" in mailoutbox[0].body


def test_the_sender_may_continue_from_another_browser_and_unknown_files_are_a_404(alice):
    created = create(alice)
    other = sign_in(Client(), "alice")
    assert post_json(other, file_url(created, 0, "authorize")).status_code == 200
    response = post_json(alice, f"/transfers/{created['transferId']}/files/unknownfile12345/authorize")
    assert (response.status_code, response.json()["error"]) == (404, "not_found")
    bogus = post_json(alice, "/transfers/nosuchtransfer1234/files/nosuchfile123456/done")
    assert (bogus.status_code, bogus.json()["error"]) == (404, "not_found")


def test_upload_endpoints_refuse_get_and_pages_refuse_other_methods(alice):
    created = create(alice)
    assert alice.get(file_url(created, 0, "authorize")).status_code == 405
    assert alice.put(f"/transfers/{created['transferId']}/revoke").status_code == 405


# --- My transfers and a transfer's page ----------------------------------------------------------------------


def test_my_transfers_lists_status_files_downloads_and_expiry(alice, mailoutbox):
    created = send_small_file(alice, mailoutbox)
    create(alice, subject="Still uploading")
    response = alice.get("/transfers/")
    page = text(response)
    assert response.status_code == 200
    assert page.index("Still uploading") < page.index("Quarterly figures")  # newest first
    assert "Uploading</span>" in page and "Sent</span>" in page
    assert 'bob@partner.example: <span class="downloads">0 downloads</span>' in page
    assert f'href="/transfers/{created["transferId"]}/"' in page
    assert "1 file," in page


def test_my_transfers_pages_with_a_cursor(alice, settings, monkeypatch):
    from transfers import selectors

    real = selectors.transfer_list_for_owner
    monkeypatch.setattr(selectors, "transfer_list_for_owner", lambda **kw: real(**kw, limit=1))
    create(alice, subject="First")
    create(alice, subject="Second")
    page_one = text(alice.get("/transfers/"))
    assert "Second" in page_one and "First" not in page_one
    cursor = re.search(r'href="\?cursor=([^"]+)"', page_one)[1]
    page_two = text(alice.get("/transfers/", {"cursor": cursor}))
    assert "First" in page_two and "Second" not in page_two
    assert alice.get("/transfers/", {"cursor": "not-a-cursor"}).status_code == 400


def test_a_pending_transfer_page_is_its_upload_page(alice):
    created = create(alice)
    page = text(alice.get(created["url"]))
    assert "Finish uploading" in page
    config = json.loads(re.search(r'id="uploader-config" type="application/json">(.*?)</script>', page)[1])
    assert config["transferId"] == created["transferId"]
    assert [f["fileId"] for f in config["files"]] == [created["files"][0]["fileId"]]


def test_the_transfer_page_shows_files_checksums_and_each_recipients_downloads(alice, mailoutbox):
    created = send_small_file(alice, mailoutbox)
    page = text(alice.get(created["url"]))
    assert "Finish uploading" not in page
    assert "レポート.txt" in page
    assert re.search(r'<code class="checksum">(sha256|etag):[^<]+</code>', page)
    assert "bob@partner.example" in page and "dave@partner.example" in page
    assert page.count("Send link again") == 2
    assert "Revoke: stop every link now" in page
    assert page.count('name="csrfmiddlewaretoken"') >= 4  # every button is a POST form with CSRF


def test_someone_elses_transfer_looks_exactly_like_a_missing_one(alice):
    theirs = services.transfer_create(
        sender=MALLORY, recipients=["bob@partner.example"], files=[FileDeclared(name="x.txt", size=3)]
    )
    foreign = alice.get(f"/transfers/{theirs.transfer_id}/")
    missing = alice.get("/transfers/nosuchtransfer1234/")
    assert (foreign.status_code, missing.status_code) == (404, 404)
    assert text(foreign) == text(missing)
    assert "Transfer not found" in text(foreign)
    assert alice.post(f"/transfers/{theirs.transfer_id}/revoke").status_code == 404
    assert Transfer.get(theirs.transfer_id).status == "pending"
    upload_call = post_json(alice, f"/transfers/{theirs.transfer_id}/files/{theirs.files[0].file_id}/authorize")
    assert (upload_call.status_code, upload_call.json()["error"]) == (404, "not_found")


def test_revoke_kills_the_links_at_once(alice, client, mailoutbox):
    created = send_small_file(alice, mailoutbox)
    link = links(mailoutbox)["bob@partner.example"]
    response = alice.post(f"/transfers/{created['transferId']}/revoke")
    assert response.status_code == 302
    page = text(alice.get(created["url"]))
    assert "The transfer was revoked" in page and "Revoked</span>" in page
    guest = Client()
    assert guest.get(urlsplit(link).path, follow=True).status_code == 404
    assert audit("transfer.revoked")


def test_extend_offers_only_dates_the_policy_allows(alice, mailoutbox):
    created = send_small_file(alice, mailoutbox)
    before = Transfer.get(created["transferId"]).expires_at
    page = text(alice.get(created["url"]))
    choices = re.findall(r'<option value="([^"]+)"', page)
    assert choices
    response = alice.post(f"/transfers/{created['transferId']}/extend", {"expires_at": choices[-1]})
    assert response.status_code == 302
    after = Transfer.get(created["transferId"]).expires_at
    assert after > before
    assert (after - Transfer.get(created["transferId"]).created_at).days <= settings.FXFER_MAX_EXPIRY_DAYS
    assert "now available until" in text(alice.get(created["url"]))
    beyond = alice.post(f"/transfers/{created['transferId']}/extend", {"expires_at": "2999-01-01T00:00:00+0000"})
    assert beyond.status_code == 400
    assert "The expiry is outside what is allowed." in text(beyond)


def test_resend_mails_a_new_link_and_the_old_one_dies(alice, client, mailoutbox):
    created = send_small_file(alice, mailoutbox)
    old = links(mailoutbox)["bob@partner.example"]
    bob = next(r for r in Recipient.query(created["transferId"]) if r.email == "bob@partner.example")
    response = alice.post(f"/transfers/{created['transferId']}/recipients/{bob.recipient_id}/resend")
    assert response.status_code == 302
    assert "A new link was sent to bob@partner.example" in text(alice.get(created["url"]))
    new = [m for m in mailoutbox if m.to == ["bob@partner.example"]][-1]
    assert LINK.search(new.body)[0] != old
    assert Client().get(urlsplit(old).path, follow=True).status_code == 404
    assert Client().get(urlsplit(LINK.search(new.body)[0]).path, follow=True).status_code == 200


# --- guests --------------------------------------------------------------------------------------------------


@pytest.fixture
def sent(alice, mailoutbox):
    created = send_small_file(alice, mailoutbox)
    return created, links(mailoutbox)


def guest_in(mailoutbox, link: str, to: str = "bob@partner.example") -> Client:
    guest = Client()
    guest.defaults["HTTP_USER_AGENT"] = "guest-browser/1.0"
    page = open_link(guest, link)
    assert guest.post(f"{page}/code").status_code == 303
    response = guest.post(f"{page}/verify", {"code": code_for(mailoutbox, to)})
    assert (response.status_code, response["Location"]) == (303, "/guest/files/")
    return guest


def test_opening_the_link_uses_nothing_up(sent, mailoutbox):
    created, tokens = sent
    link = urlsplit(tokens["bob@partner.example"]).path
    mails_before = len(mailoutbox)
    for _ in range(3):  # a mail scanner prefetching the link, then the person
        response = Client().get(link, follow=True)
        assert response.status_code == 200
    page = text(response)
    assert "Alice Example sent you files" in page
    assert "b***@partner.example" in page and "bob@partner.example" not in page
    assert "1 file" in page
    assert '<button type="submit">Send me a code</button>' in page
    assert len(mailoutbox) == mails_before  # no code was sent by looking
    bob = next(r for r in Recipient.query(created["transferId"]) if r.email == "bob@partner.example")
    assert (bob.downloads_used, bob.failed_code_attempts) == (0, 0)


def test_the_code_goes_to_the_recipients_own_address_and_opens_a_guest_session(sent, mailoutbox):
    _created, tokens = sent
    link = urlsplit(tokens["bob@partner.example"]).path
    guest = Client()
    page = open_link(guest, link)
    session_before = (
        guest.cookies[settings.SESSION_COOKIE_NAME].value if settings.SESSION_COOKIE_NAME in guest.cookies else None
    )
    response = guest.post(f"{page}/code")
    assert (response.status_code, response["Location"]) == (303, f"{page}/verify?sent=1")
    code_mail = mailoutbox[-1]
    assert (code_mail.to, code_mail.subject) == (["bob@partner.example"], "Your one-time code")
    form = text(guest.get(response["Location"]))
    assert 'autocomplete="one-time-code"' in form and "We sent a six-digit code to b***@partner.example" in form

    response = guest.post(f"{page}/verify", {"code": code_for(mailoutbox, "bob@partner.example")})
    assert (response.status_code, response["Location"]) == (303, "/guest/files/")
    assert guest.cookies[settings.SESSION_COOKIE_NAME].value != session_before  # a new session key
    held = guest.session["guest_access"]
    assert sorted(held) == ["grant", "recipient_id", "transfer_id"]
    files = text(guest.get("/guest/files/"))
    assert "Files from Alice Example" in files and "レポート.txt" in files
    assert re.search(r'<code class="checksum">(sha256|etag):[^<]+</code>', files)
    assert "2 downloads left" in files


def test_a_wrong_code_says_so_and_five_lock_the_recipient_and_tell_the_sender(sent, mailoutbox):
    _created, tokens = sent
    link = urlsplit(tokens["bob@partner.example"]).path
    guest = Client()
    page = open_link(guest, link)
    guest.post(f"{page}/code")
    right = code_for(mailoutbox, "bob@partner.example")
    wrong = "000000" if right != "000000" else "111111"
    response = guest.post(f"{page}/verify", {"code": wrong})
    assert response.status_code == 400
    shown = text(response)
    assert 'class="error-summary" role="alert"' in shown and "You can try 4 more times." in shown
    # Exactly as many tries as the lock allows: 5 wrong codes in all, the page counting down to the last one.
    for left in (3, 2):
        assert f"You can try {left} more times." in text(guest.post(f"{page}/verify", {"code": wrong}))
    last = text(guest.post(f"{page}/verify", {"code": wrong}))
    assert "You can try 1 more time." in last and "1 more times" not in last
    assert "You can try 1 more time; then this link locks." in text(guest.get(f"{page}/verify"))
    response = guest.post(f"{page}/verify", {"code": wrong})
    assert response.status_code == 403
    assert "Access locked" in text(response)
    assert "locked" in mailoutbox[-1].subject.lower() and mailoutbox[-1].to == ["alice@example.com"]
    assert guest.post(f"{page}/verify", {"code": right}).status_code == 403  # the right code no longer helps
    assert "Access locked" in text(Client().get(link, follow=True))


def test_unknown_foreign_and_revoked_links_all_get_the_same_404(sent, alice, mailoutbox):
    created, tokens = sent
    bob_link = urlsplit(tokens["bob@partner.example"]).path
    unknown = Client().get("/t/" + "A" * 43, follow=True)
    malformed = Client().get("/t/short", follow=True)
    alice.post(f"/transfers/{created['transferId']}/revoke")
    revoked = Client().get(bob_link, follow=True)
    bodies = {text(r) for r in (unknown, malformed, revoked)}
    assert {r.status_code for r in (unknown, malformed, revoked)} == {404}
    assert len(bodies) == 1
    assert "has expired, was closed or deleted" in bodies.pop()
    guest = Client()
    assert guest.post(f"{open_link(guest, bob_link)}/code").status_code == 404


def test_link_guessing_is_rate_limited_per_ip(settings):
    settings.FXFER_LINK_LOOKUPS_PER_IP = 3
    guesser = Client()
    statuses = [guesser.get("/t/" + str(n) * 43, follow=True).status_code for n in range(5)]
    assert statuses == [404, 404, 404, 429, 429]
    assert "Too many attempts" in text(guesser.get("/t/" + "x" * 43, follow=True))


def test_a_download_is_a_post_that_redirects_to_a_short_lived_attachment_url(sent, mailoutbox):
    created, tokens = sent
    guest = guest_in(mailoutbox, urlsplit(tokens["bob@partner.example"]).path)
    file_id = created["files"][0]["fileId"]
    assert guest.get(f"/guest/files/{file_id}/download").status_code == 405  # a GET uses nothing up
    response = guest.post(f"/guest/files/{file_id}/download")
    assert response.status_code == 303
    query = parse_qs(urlsplit(response["Location"]).query)
    disposition = query["response-content-disposition"][0]
    assert disposition.startswith("attachment;")
    assert "filename*=UTF-8''%E3%83%AC%E3%83%9D%E3%83%BC%E3%83%88.txt" in disposition
    assert int(query["X-Amz-Expires"][0]) <= 300
    assert requests.get(response["Location"], timeout=10).content == SMALL
    notice = mailoutbox[-1]
    assert notice.to == ["alice@example.com"] and "downloaded" in notice.subject
    assert "1 download left" in text(guest.get("/guest/files/"))


def test_the_download_limit_is_enforced_per_recipient(sent, mailoutbox):
    created, tokens = sent
    file_id = created["files"][0]["fileId"]
    bob = guest_in(mailoutbox, urlsplit(tokens["bob@partner.example"]).path)
    assert [bob.post(f"/guest/files/{file_id}/download").status_code for _ in range(3)] == [303, 303, 403]
    assert "The download limit for this file has been reached." in text(bob.post(f"/guest/files/{file_id}/download"))
    assert "Download limit reached" in text(bob.get("/guest/files/"))
    dave = guest_in(mailoutbox, urlsplit(tokens["dave@partner.example"]).path, "dave@partner.example")
    assert dave.post(f"/guest/files/{file_id}/download").status_code == 303


def test_without_a_guest_session_there_are_no_files(sent):
    created, _tokens = sent
    stranger = Client()
    response = stranger.get("/guest/files/")
    assert response.status_code == 403
    assert "Your access has ended" in text(response)
    assert stranger.post(f"/guest/files/{created['files'][0]['fileId']}/download").status_code == 403


def test_a_guest_session_never_reaches_another_transfer(alice, mailoutbox):
    first = send_small_file(alice, mailoutbox)
    bob_first = links(mailoutbox)["bob@partner.example"]
    second = send_small_file(alice, mailoutbox, subject="Other")
    guest = guest_in(mailoutbox, urlsplit(bob_first).path)
    response = guest.post(f"/guest/files/{second['files'][0]['fileId']}/download")
    assert response.status_code == 404
    assert guest.post(f"/guest/files/{first['files'][0]['fileId']}/download").status_code == 303
