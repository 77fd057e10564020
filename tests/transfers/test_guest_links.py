"""A guest link's token leaves the URL at once (issue 12, item 5), as a guest and as an attacker see it: the
mailed link /t/<token> only moves its token into a per-link `__Host-` cookie and redirects to a token-free
page; every later step reads the cookie, the old code URLs no longer act, two links in one browser stay
apart, guest pages send no Referer at all, and no log line holds the token or the code."""

import json
import re

import pytest
from django.test import Client

from reports.models import AuditEvent
from tests import logleaks
from tests.faults import ERROR, LOST, PERSISTENT, TIMEOUT, inject
from tests.transfers.conftest import code_from, ready_transfer
from tests.transfers.guest_links import open_link
from transfers.models import OneTimeCode, Recipient

BOB = "bob@partner.example"


@pytest.fixture
def token(mailoutbox) -> str:
    _created, tokens = ready_transfer(recipients=[BOB], mailoutbox=mailoutbox, name="first.pdf")
    mailoutbox.clear()
    return tokens[BOB]


def _events(action: str) -> list[AuditEvent]:
    return [e for e in AuditEvent.scan() if e.action == action]


def _csrf(page: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]


def test_the_link_moves_its_token_into_a_host_cookie_and_every_later_url_is_token_free(token, mailoutbox, settings):
    settings.SESSION_COOKIE_SECURE = True  # as in production (https)
    guest = Client()
    seen = []  # every URL the browser goes to and every page it shows, after the mailed link itself

    opened = guest.get(f"/t/{token}", secure=True)
    assert opened.status_code == 303
    page = opened["Location"]
    assert re.fullmatch(r"/guest/link/[0-9a-f]{16}", page)
    [(name, cookie)] = opened.cookies.items()
    assert name == f"__Host-fxfer-link-{page.rsplit('/', 1)[1]}" and cookie.value == token
    assert (cookie["secure"], cookie["httponly"], cookie["samesite"], cookie["path"]) == (True, True, "Lax", "/")
    assert cookie["domain"] == "" and 0 < cookie["max-age"] <= 3600
    assert "no-store" in opened["Cache-Control"]  # no cache keeps the answer that carries the token

    shown = guest.get(page, secure=True)
    sent = guest.post(f"{page}/code", secure=True)
    form = guest.get(sent["Location"], secure=True)
    granted = guest.post(sent["Location"], {"code": code_from(mailoutbox, BOB)}, secure=True)
    files = guest.get(granted["Location"], secure=True)
    assert [r.status_code for r in (shown, sent, form, granted, files)] == [200, 303, 200, 303, 200]
    assert "first.pdf" in files.content.decode()
    seen += [page, sent["Location"], granted["Location"]]
    seen += [r.content.decode() for r in (shown, form, files)]
    assert not [s for s in seen if token in s]
    # The session holds the grant now: the token's cookie is gone from the browser.
    assert granted.cookies[name].value == "" and granted.cookies[name]["max-age"] == 0


def test_a_scanner_prefetching_the_link_looks_nothing_up_and_uses_nothing(token, mailoutbox):
    for method in ("get", "head", "get"):
        assert getattr(Client(), method)(f"/t/{token}").status_code == 303
    assert _events("link.opened") == [] and mailoutbox == [] and list(OneTimeCode.scan()) == []
    # Following the redirect is the link's page, as before: it looks, and still uses nothing.
    assert Client().get(f"/t/{token}", follow=True).status_code == 200
    assert len(_events("link.opened")) == 1 and mailoutbox == [] and list(OneTimeCode.scan()) == []


def test_the_old_code_urls_with_the_token_send_no_code_and_check_none(token, mailoutbox):
    guest = Client()
    page = open_link(guest, f"/t/{token}")
    for old in (f"/t/{token}/code", f"/t/{token}/verify"):
        response = guest.post(old, {"code": "123456"})
        assert (response.status_code, response["Location"]) == (303, page)  # on to the token-free page
        assert guest.get(old)["Location"] == page
    assert mailoutbox == [] and list(OneTimeCode.scan()) == []
    assert _events("code.sent") == [] and _events("code.failed") == []
    [bob] = Recipient.scan()
    assert (bob.failed_code_attempts or 0) == 0


def test_without_the_links_cookie_its_pages_do_nothing_and_say_to_open_the_mail_again(token, mailoutbox):
    page = open_link(Client(), f"/t/{token}")
    stranger = Client()  # another browser, or the same one after the cookie lapsed: only the token-free URL
    for response in (stranger.get(page), stranger.post(f"{page}/code"), stranger.post(f"{page}/verify")):
        assert response.status_code == 403
        assert "Open the link from the mail again" in response.content.decode()
    # A cookie under this link's name whose token is another link's (or made up) counts for nothing either.
    other = ready_transfer(recipients=[BOB], mailoutbox=mailoutbox, name="second.pdf")[1][BOB]
    stranger.cookies[f"fxfer-link-{page.rsplit('/', 1)[1]}"] = other
    assert stranger.post(f"{page}/code").status_code == 403
    assert stranger.get("/guest/link/not-an-id").status_code == 403
    assert _events("code.sent") == [] and list(OneTimeCode.scan()) == []


def test_the_brakes_still_hold_on_the_token_free_pages(token, mailoutbox, settings):
    """Code requests per recipient, and token lookups per address, are limited as before the move."""
    settings.FXFER_CODE_SENDS_PER_WINDOW = 2
    guest = Client()
    page = open_link(guest, f"/t/{token}")
    asked = [guest.post(f"{page}/code") for _ in range(3)]
    assert [r.status_code for r in asked] == [303, 303, 429]
    assert "A code was sent a moment ago" in asked[-1].content.decode() and len(mailoutbox) == 2
    settings.FXFER_LINK_LOOKUPS_PER_IP = 3
    guesser = Client(REMOTE_ADDR="192.0.2.99")
    guessed = [guesser.get("/t/" + str(n) * 43, follow=True).status_code for n in range(3)]
    assert [*guessed, guesser.get(f"/t/{token}", follow=True).status_code] == [404, 404, 404, 429]


def test_two_links_opened_in_one_browser_stay_apart(token, mailoutbox):
    """Two transfers to the same guest, both opened before either code is typed: each page keeps its link."""
    second = ready_transfer(recipients=[BOB], mailoutbox=mailoutbox, name="second.pdf")[1][BOB]
    guest = Client()
    first_page, second_page = open_link(guest, f"/t/{token}"), open_link(guest, f"/t/{second}")
    assert first_page != second_page
    assert guest.post(f"{first_page}/code").status_code == 303
    first_code = code_from(mailoutbox, BOB)
    assert guest.post(f"{second_page}/code").status_code == 303
    second_code = code_from(mailoutbox, BOB)
    # The second link's code does not open the first link, on the first link's page.
    assert guest.post(f"{first_page}/verify", {"code": second_code}).status_code == 400
    assert guest.post(f"{first_page}/verify", {"code": first_code})["Location"] == "/guest/files/"
    files = guest.get("/guest/files/").content.decode()
    assert "first.pdf" in files and "second.pdf" not in files
    # The second link is still there in this browser, with its own code.
    assert guest.get(second_page).status_code == 200
    assert guest.post(f"{second_page}/verify", {"code": second_code})["Location"] == "/guest/files/"
    files = guest.get("/guest/files/").content.decode()
    assert "second.pdf" in files and "first.pdf" not in files


def test_guest_pages_send_no_referrer_and_employee_pages_keep_same_origin(token, mailoutbox):
    guest = Client()
    opened = guest.get(f"/t/{token}")
    page = opened["Location"]
    guest.post(f"{page}/code")
    code_page = guest.get(f"{page}/verify")
    guest.post(f"{page}/verify", {"code": code_from(mailoutbox, BOB)})
    for response in (opened, guest.get(page), code_page, guest.get("/guest/files/"), Client().get(page)):
        assert response["Referrer-Policy"] == "no-referrer"
    assert Client().get("/")["Referrer-Policy"] == "same-origin"


def test_a_form_from_a_no_referrer_page_passes_csrf_only_when_the_browser_says_it_is_same_origin(token, mailoutbox):
    """Under `no-referrer` Chromium posts a form with `Origin: null` and no Referer; its `Sec-Fetch-Site` (which
    no page can set) tells a same-origin form from a cross-site one. The CSRF token is checked as ever."""
    guest = Client(enforce_csrf_checks=True)
    page = open_link(guest, f"/t/{token}")
    csrf = _csrf(guest.get(page).content.decode())
    hidden = {"HTTP_ORIGIN": "null"}
    cross = guest.post(f"{page}/code", {"csrfmiddlewaretoken": csrf}, **hidden, HTTP_SEC_FETCH_SITE="cross-site")
    untokened = guest.post(f"{page}/code", **hidden, HTTP_SEC_FETCH_SITE="same-origin")
    assert (cross.status_code, untokened.status_code, mailoutbox) == (403, 403, [])
    same = guest.post(f"{page}/code", {"csrfmiddlewaretoken": csrf}, **hidden, HTTP_SEC_FETCH_SITE="same-origin")
    assert same.status_code == 303 and [m.to for m in mailoutbox] == [[BOB]]
    # A page of another origin is still refused whatever it claims.
    forged = guest.post(f"{page}/code", {"csrfmiddlewaretoken": csrf}, HTTP_ORIGIN="https://evil.example")
    assert forged.status_code == 403


def test_no_line_the_guest_walk_writes_holds_the_token_or_the_code(token, mailoutbox):
    guest = Client()
    logleaks.CAPTURE.take()
    page = guest.get(f"/t/{token}/code")["Location"]  # an old URL, too
    guest.get(page)
    guest.post(f"{page}/code")
    code = code_from(mailoutbox, BOB)
    guest.post(f"{page}/verify", {"code": "000000" if code != "000000" else "111111"})  # a 400, logged
    guest.post(f"{page}/verify", {"code": code})
    assert guest.get("/guest/files/").status_code == 200
    lines = logleaks.CAPTURE.take()
    warnings = [json.loads(line)["message"] for line in lines if '"django.request"' in line]
    assert warnings == [f"Bad Request: {page}/verify"]
    assert not [line for line in lines if token in line or code in line] and not logleaks.leaks(lines)
    # The suite-wide check knows this link's token and code by value (they were made inside the services).
    assert token in logleaks.SECRETS.values and code in logleaks.SECRETS.codes


# --- AWS failing: the token stays in the cookie, so trying again works --------------------------------------------


@pytest.mark.parametrize("kind", [ERROR, TIMEOUT])
def test_aws_failing_on_the_links_page_says_try_again_and_the_reload_works(token, mailoutbox, kind):
    guest = Client()
    page = open_link(guest, f"/t/{token}")
    with inject(kind, service="dynamodb", times=PERSISTENT) as fault:
        busy = guest.get(page)
    assert fault.fired and busy.status_code == 503 and "Nothing was lost" in busy.content.decode()
    assert guest.get(page).status_code == 200  # the same page again, from the same cookie
    assert guest.post(f"{page}/code").status_code == 303 and [m.to for m in mailoutbox] == [[BOB]]


@pytest.mark.parametrize("kind", [ERROR, LOST])
def test_a_fault_on_the_code_request_from_the_token_free_page_sends_one_code_at_most(token, mailoutbox, kind):
    """The code request is the one write after the link: AWS busy for good is a 503 with nothing used up; a lost
    answer, absorbed by botocore's retry, still sends exactly one code."""
    guest = Client()
    page = open_link(guest, f"/t/{token}")
    times = PERSISTENT if kind == ERROR else 1
    with inject(kind, service="dynamodb", operation="TransactWriteItems", times=times) as fault:
        asked = guest.post(f"{page}/code")
    assert fault.fired
    if kind == ERROR:
        assert asked.status_code == 503 and mailoutbox == [] and list(OneTimeCode.scan()) == []
        assert guest.post(f"{page}/code").status_code == 303  # again, from the same cookie
    else:
        assert asked.status_code == 303
    assert [m.to for m in mailoutbox] == [[BOB]] and len(_events("code.sent")) == 1
    right = guest.post(f"{page}/verify", {"code": code_from(mailoutbox, BOB)})
    assert right["Location"] == "/guest/files/"
