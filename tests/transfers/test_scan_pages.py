"""The malware scan's state shows where a file's state shows, in words (issue 16): the sender's transfer page, the
guest's file list, the employee's Received page; with the scanner off, the pages say the files are not scanned."""

from urllib.parse import urlsplit

import pytest

from tests.transfers.conftest import put_object_as_browser
from tests.transfers.test_views import create, file_url, guest_in, links, post_json, send_small_file, sign_in, text

# The EICAR test string, from two halves (no scanner on a developer's machine quarantines this file).
INFECTED = ("X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*").encode()


@pytest.fixture
def alice(client):
    client.defaults["HTTP_USER_AGENT"] = "pytest-browser/1.0"
    return sign_in(client)


def test_the_sender_and_the_guest_see_the_clean_verdict(alice, mailoutbox):
    created = send_small_file(alice, mailoutbox)
    tokens = links(mailoutbox)
    page = text(alice.get(f"/transfers/{created['transferId']}/"))
    assert "Scanned: no malware found" in page
    guest = guest_in(mailoutbox, urlsplit(tokens["bob@partner.example"]).path)
    assert "Scanned: no malware found" in text(guest.get("/guest/files/"))


def test_the_sender_sees_a_blocked_file_and_that_nothing_was_sent(alice, mailoutbox):
    created = create(alice, files=[{"name": "figures.xlsx", "size": len(INFECTED), "type": "text/plain"}])
    authorized = post_json(alice, file_url(created, 0, "authorize")).json()
    put_object_as_browser(authorized["fields"]["key"], INFECTED)
    done = post_json(alice, file_url(created, 0, "done")).json()
    assert done == {"outcome": "verified", "reason": None, "released": False}
    page = text(alice.get(f"/transfers/{created['transferId']}/"))
    assert "Malware found: blocked" in page
    assert links(mailoutbox) == {}


def test_with_the_scanner_off_the_pages_say_files_are_not_scanned(alice, mailoutbox, settings):
    settings.FXFER_SCANNER = "off"
    created = send_small_file(alice, mailoutbox)
    page = text(alice.get(f"/transfers/{created['transferId']}/"))
    assert "Not scanned for malware (scanning is off)" in page
