"""The transfer-flow rough edges a new user hit (issue 13), through the pages: extend offers only real
extensions, a legal hold shows and hides what it forbids, revoke asks first and download URLs only start a
download, one download notice per visit, the code page tells the truth, an empty New transfer names every
missing field."""

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.test import Client

from tests.transfers.guest_links import open_link
from tests.transfers.test_views import (
    audit,
    code_for,
    create,
    file_url,
    links,
    post_json,
    put_object_as_browser,
    send_small_file,
    sign_in,
    text,
)
from transfers import services
from transfers.models import Transfer

EXTEND = re.compile(r'<select id="extend-to" name="expires_at">(.*?)</select>')
OPTION = re.compile(r'<option value="([^"]+)"')


def offered(page: str) -> list[str]:
    """The new expiries the transfer's page offers (none without its Extend form)."""
    found = EXTEND.search(page)
    return OPTION.findall(found[1]) if found else []


@pytest.fixture
def alice(client):
    return sign_in(client)


# --- extend ------------------------------------------------------------------------------------------------------


def test_extend_offers_only_real_extensions_and_says_when_none_is_left(alice, mailoutbox):
    created = send_small_file(alice, mailoutbox)
    url, extend = created["url"], f"/transfers/{created['transferId']}/extend"
    expires_at = Transfer.get(created["transferId"]).expires_at
    choices = offered(text(alice.get(url)))
    assert choices
    # Every choice is later than the current expiry (as posted: whole seconds) and each one is accepted.
    first = choices[0]
    assert alice.post(extend, {"expires_at": first}).status_code == 302
    assert Transfer.get(created["transferId"]).expires_at > expires_at
    # The last choice is the latest allowed; once there, nothing is offered (it used to offer the current date,
    # then refuse it with "The expiry is outside what is allowed").
    assert alice.post(extend, {"expires_at": offered(text(alice.get(url)))[-1]}).status_code == 302
    page = text(alice.get(url))
    assert "now available until" in page
    assert offered(page) == [] and 'name="expires_at"' not in page
    assert "it cannot be extended further" in page
    assert "Revoke: stop every link now" in page  # the rest of Manage stays


def test_a_transfer_sent_for_the_longest_time_offers_no_extension(alice, mailoutbox):
    created = send_small_file(alice, mailoutbox, expiry_amount=settings.FXFER_MAX_EXPIRY_DAYS)
    page = text(alice.get(created["url"]))
    assert offered(page) == [] and "it cannot be extended further" in page


# --- legal hold --------------------------------------------------------------------------------------------------


def test_a_held_transfer_shows_the_hold_without_its_reason_and_offers_no_deletion(alice, mailoutbox):
    created = send_small_file(alice, mailoutbox)
    transfer_id = created["transferId"]
    services.transfer_hold_set(officer_id="u-officer", transfer_id=transfer_id, reason="Case 2026-99 secret")
    page = text(alice.get(created["url"]))
    assert "On legal hold: files are kept for compliance" in page
    assert "Case 2026-99" not in page
    assert "Delete files now" not in page and f"/transfers/{transfer_id}/delete" not in page
    listed = text(alice.get("/transfers/"))
    assert "On legal hold: files are kept for compliance" in listed and "Case 2026-99" not in listed
    # Typed in by hand, the confirmation page says why and offers no button.
    confirm = text(alice.get(f"/transfers/{transfer_id}/delete"))
    assert "On legal hold" in confirm and "Yes, delete the files now" not in confirm
    # A transfer not on hold shows nothing of the kind and keeps its delete button.
    other = send_small_file(alice, mailoutbox)
    page = text(alice.get(other["url"]))
    assert "On legal hold" not in page and "Delete files now" in page


def test_a_held_request_shows_the_hold_on_its_pages_and_offers_no_deletion(alice):
    from tests.transfers.test_request_views import ask

    request_id = ask(alice)
    services.transfer_hold_set(officer_id="u-officer", transfer_id=request_id, reason="Case 2026-77 secret")
    page = text(alice.get(f"/requests/{request_id}/"))
    assert "On legal hold: files are kept for compliance" in page and "Case 2026-77" not in page
    assert "Delete files now" not in page and f"/requests/{request_id}/delete" not in page
    listed = text(alice.get("/requests/"))
    assert "On legal hold: files are kept for compliance" in listed and "Case 2026-77" not in listed
    confirm = text(alice.get(f"/requests/{request_id}/delete"))
    assert "On legal hold" in confirm and "Yes, delete the files now" not in confirm
    # Posted by hand all the same, the deletion is refused and the request keeps its files.
    refused = alice.post(f"/requests/{request_id}/delete")
    assert refused.status_code in (302, 409) and Transfer.get(request_id).deleted_at is None
    other = ask(alice)
    page = text(alice.get(f"/requests/{other}/"))
    assert "On legal hold" not in page and "Delete files now" in page


# --- revoke ------------------------------------------------------------------------------------------------------


def test_revoke_asks_first_and_only_a_post_with_its_csrf_token_revokes(mailoutbox):
    sender = sign_in(Client())
    created = send_small_file(sender, mailoutbox)
    sender.handler.enforce_csrf_checks = True  # from here on, as a browser's cross-site request would be checked
    transfer_id = created["transferId"]
    revoke = f"/transfers/{transfer_id}/revoke"
    page = text(sender.get(created["url"]))
    # The transfer's page links to the confirmation; no form there revokes on one click.
    assert f'href="{revoke}"' in page and f'action="{revoke}"' not in page
    confirm = sender.get(revoke)
    assert confirm.status_code == 200 and "no-store" in confirm["Cache-Control"]
    shown = text(confirm)
    assert "Yes, revoke the transfer" in shown and "bob@partner.example" in shown
    assert Transfer.get(transfer_id).status == "ready" and not audit("transfer.revoked")
    assert sender.post(revoke).status_code == 403  # no CSRF token: nothing happens
    assert Transfer.get(transfer_id).status == "ready"
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', confirm.content.decode())[1]  # text() blanks it
    assert sender.post(revoke, {"csrfmiddlewaretoken": csrf}).status_code == 302
    assert Transfer.get(transfer_id).status == "revoked" and len(audit("transfer.revoked")) == 1
    assert "nothing to revoke" in text(sender.get(revoke))


def test_a_download_url_only_lives_long_enough_to_start_the_download(alice, mailoutbox):
    created = send_small_file(alice, mailoutbox)
    guest = _guest_in(mailoutbox, links(mailoutbox)["bob@partner.example"], "bob@partner.example")
    response = guest.post(f"/guest/files/{created['files'][0]['fileId']}/download")
    assert response.status_code == 303
    seconds = int(parse_qs(urlsplit(response["Location"]).query)["X-Amz-Expires"][0])
    assert seconds == settings.FXFER_DOWNLOAD_URL_SECONDS and 10 <= seconds <= 15


# --- download notices --------------------------------------------------------------------------------------------


def _guest_in(mailoutbox, link: str, to: str) -> Client:
    guest = Client()
    page = open_link(guest, link)
    assert guest.post(f"{page}/code").status_code == 303
    assert guest.post(f"{page}/verify", {"code": code_for(mailoutbox, to)}).status_code == 303
    return guest


def _two_files_sent(sender, mailoutbox) -> dict:
    files = [{"name": "見積書.pdf", "size": 3, "type": ""}, {"name": "b.pdf", "size": 3, "type": ""}]
    created = create(sender, files=files)
    for index in range(2):
        authorized = post_json(sender, file_url(created, index, "authorize")).json()
        put_object_as_browser(authorized["fields"]["key"], b"abc")
        assert post_json(sender, file_url(created, index, "done")).status_code == 200
    return created


def _notices(mailoutbox) -> list:
    return [m for m in mailoutbox if m.to == ["alice@example.com"] and " downloaded " in m.subject]


def test_two_recipients_downloading_two_files_each_make_two_notices_not_four(alice, mailoutbox):
    created = _two_files_sent(alice, mailoutbox)
    found = links(mailoutbox)
    for to in ("bob@partner.example", "dave@partner.example"):
        guest = _guest_in(mailoutbox, found[to], to)
        press = re.search(r'name="request_id" value="([^"]+)"', text(guest.get("/guest/files/")))[1]
        for file in created["files"]:
            downloaded = guest.post(f"/guest/files/{file['fileId']}/download", {"request_id": press})
            assert downloaded.status_code == 303
    notices = _notices(mailoutbox)
    assert len(notices) == 2
    assert sorted(n.subject.split(" ")[0] for n in notices) == ["bob@partner.example", "dave@partner.example"]
    assert "one such mail per visit" in notices[0].body
    assert len(audit("download.url_issued")) == 4  # every download is still counted and audited


def test_a_new_visit_is_a_new_notice(alice, mailoutbox):
    created = _two_files_sent(alice, mailoutbox)
    link = links(mailoutbox)["bob@partner.example"]
    file_id = created["files"][0]["fileId"]
    for _visit in range(2):
        guest = _guest_in(mailoutbox, link, "bob@partner.example")
        assert guest.post(f"/guest/files/{file_id}/download").status_code == 303
    assert len(_notices(mailoutbox)) == 2


def test_no_notice_when_the_sender_did_not_ask(alice, mailoutbox):
    created = send_small_file(alice, mailoutbox, notify_on_download=False)
    guest = _guest_in(mailoutbox, links(mailoutbox)["bob@partner.example"], "bob@partner.example")
    assert guest.post(f"/guest/files/{created['files'][0]['fileId']}/download").status_code == 303
    assert _notices(mailoutbox) == []


# --- the code page -----------------------------------------------------------------------------------------------


def test_the_code_page_says_a_code_was_sent_only_when_one_was(alice, mailoutbox):
    send_small_file(alice, mailoutbox)
    guest = Client()
    page = open_link(guest, links(mailoutbox)["bob@partner.example"])
    assert f'href="{page}/verify"' in text(guest.get(page))  # "I already have a code"
    already = text(guest.get(f"{page}/verify"))
    assert "We sent" not in already and "Enter the six-digit code from your mail" in already
    assert "more time" not in already  # no try used yet: nothing to count down
    sent = guest.post(f"{page}/code")
    assert "We sent a six-digit code to b***@partner.example" in text(guest.get(sent["Location"]))


def test_the_tries_left_match_the_lock(alice, mailoutbox):
    send_small_file(alice, mailoutbox)
    guest = Client()
    page = open_link(guest, links(mailoutbox)["bob@partner.example"])
    guest.post(f"{page}/code")
    right = code_for(mailoutbox, "bob@partner.example")
    wrong = "000000" if right != "000000" else "111111"
    told, shown = [], []
    for _ in range(settings.FXFER_CODE_ATTEMPTS):
        response = guest.post(f"{page}/verify", {"code": wrong})
        told.append(re.search(r"You can try (\d+) more times?\.", text(response)))
        shown.append(
            re.search(r"You can try (\d+) more times?; then this link locks", text(guest.get(f"{page}/verify")))
        )
    # Tries left = attempts - wrong codes so far, after each wrong code and on the page reopened; the fifth
    # wrong code locks instead of saying "0 left".
    assert [int(m[1]) for m in told[:-1]] == [4, 3, 2, 1] and told[-1] is None
    assert [int(m[1]) for m in shown[:-1]] == [4, 3, 2, 1]
    assert response.status_code == 403
    assert guest.post(f"{page}/verify", {"code": right}).status_code == 403  # locked: even the right code


# --- New transfer -----------------------------------------------------------------------------------------------


def test_an_empty_new_transfer_names_every_missing_field_at_once(alice):
    # What the page sends when nothing was filled in (the number fields keep their initial values).
    empty = {"recipients": "", "subject": "", "message": "", "expiry_amount": 7, "expiry_unit": "days",
             "download_limit": 3, "notify_on_download": True, "files": []}  # fmt: skip
    response = post_json(alice, "/transfers/new", empty)
    assert response.status_code == 400
    fields = response.json()["fields"]
    assert fields["recipients"] == ["This field is required."]
    assert fields["files"] == ["Add at least one file."]
    everything = post_json(alice, "/transfers/new", {}).json()["fields"]
    assert {"recipients", "files", "expiry_amount", "download_limit"} <= set(everything)
    assert not list(Transfer.scan())
