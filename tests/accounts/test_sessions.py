"""Sessions live in DynamoDB: a new key at sign-in, idle and absolute timeouts, sign-out deletes them."""

from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings

from accounts import sessions
from accounts.tables import SessionItem
from devtools.idp import server as idp
from tests.accounts.conftest import last_audit_event, post_to_acs, signed_in_sessions, start_signin


def _sign_in(client, identity):
    started = start_signin(client)
    xml = idp.authn_response(idp.idp_server(), identity=identity, in_response_to=started.request_id)
    response = post_to_acs(client, xml, started.relay_state)
    assert response.status_code == 302
    return response


def _signed_in(client) -> bool:
    return "Signed in as" in client.get("/").content.decode()


@pytest.fixture
def clock(monkeypatch):
    """Move the session store's clock forward."""
    state = {"now": datetime.now(UTC)}
    monkeypatch.setattr(sessions, "_now", lambda: state["now"])

    def advance(**delta):
        state["now"] += timedelta(**delta)

    return advance


def test_signing_in_gives_a_new_session_key(browser, identities):
    planted = sessions.SessionStore()
    planted["planted"] = True
    planted.create()
    browser.cookies[settings.SESSION_COOKIE_NAME] = planted.session_key  # session fixation attempt

    _sign_in(browser, identities["alice"])

    new_key = browser.cookies[settings.SESSION_COOKIE_NAME].value
    assert new_key != planted.session_key
    assert not SessionItem.count(planted.session_key)
    assert [item.session_key for item in signed_in_sessions()] == [new_key]


def test_an_idle_session_ends_and_activity_keeps_it_alive(browser, identities, clock):
    _sign_in(browser, identities["alice"])
    for _ in range(3):
        clock(seconds=settings.SESSION_COOKIE_AGE - 300)
        assert _signed_in(browser)
    clock(seconds=settings.SESSION_COOKIE_AGE + 1)
    assert not _signed_in(browser)


def test_a_session_ends_at_its_absolute_timeout_however_busy(browser, identities, clock):
    _sign_in(browser, identities["alice"])
    elapsed = 0
    step = settings.SESSION_COOKIE_AGE // 2
    while elapsed + step < settings.FXFER_SESSION_ABSOLUTE_SECONDS:
        clock(seconds=step)
        elapsed += step
        assert _signed_in(browser)
    clock(seconds=step)
    assert not _signed_in(browser)


def test_signing_out_deletes_the_session_at_the_server(browser, identities):
    _sign_in(browser, identities["alice"])
    stolen_cookie = browser.cookies[settings.SESSION_COOKIE_NAME].value
    assert "Sign out of fxfer" in browser.get("/saml/logout/").content.decode()

    response = browser.post("/saml/logout/", follow=True)

    assert response.status_code == 200
    assert "You are signed out" in response.content.decode()
    assert signed_in_sessions() == []
    assert not SessionItem.count(stolen_cookie)
    event = last_audit_event()
    assert (event.action, event.outcome, event.user_agent) == ("signout", "ok", "pytest-browser/1.0")

    browser.cookies[settings.SESSION_COOKIE_NAME] = stolen_cookie
    assert not _signed_in(browser)


def test_sign_out_goes_through_the_idps_single_logout_and_back(browser, identities):
    _sign_in(browser, identities["alice"])
    to_idp = browser.post("/saml/logout/")
    assert to_idp.status_code == 302
    assert to_idp["Location"].startswith(settings.FXFER_SAML_IDP_SLO_URL + "?SAMLRequest=")

    idp_answer = browser.get(to_idp["Location"].removeprefix(settings.FXFER_BASE_URL))
    assert idp_answer.status_code == 302
    assert idp_answer["Location"].startswith(f"{settings.FXFER_BASE_URL}/saml/logout/?SAMLResponse=")

    back = browser.get(idp_answer["Location"].removeprefix(settings.FXFER_BASE_URL))
    page = back.content.decode()
    assert back.status_code == 200
    assert "You are signed out" in page
    assert "did not confirm" not in page  # the signed LogoutResponse from the IdP was accepted

    again = browser.get(idp_answer["Location"].removeprefix(settings.FXFER_BASE_URL))
    assert "did not confirm" in again.content.decode()  # a logout response is accepted once


def test_without_an_idp_logout_url_sign_out_is_local(browser, identities, settings):
    settings.FXFER_SAML_IDP_SLO_URL = ""
    _sign_in(browser, identities["alice"])
    response = browser.post("/saml/logout/")
    assert response.status_code == 200
    assert "You are signed out" in response.content.decode()
    assert signed_in_sessions() == []


def test_production_cookies_are_host_prefixed_and_secure(browser, identities, settings):
    settings.SESSION_COOKIE_SECURE = True
    settings.SESSION_COOKIE_NAME = "__Host-fxfer-session"
    login = browser.get("/saml/login/")
    binding = login.cookies["__Host-fxfer-saml"]
    assert binding["secure"] and binding["httponly"] and binding["path"] == "/" and not binding["domain"]
    assert binding["samesite"] == "None"  # so it may come along on the IdP's cross-site POST

    response = _sign_in(browser, identities["alice"])
    cookie = response.cookies["__Host-fxfer-session"]
    assert cookie["secure"] and cookie["httponly"] and cookie["path"] == "/" and not cookie["domain"]
    assert cookie["samesite"] == "Lax"


def test_signing_in_again_as_the_same_person_gives_a_new_key_and_restarts_the_absolute_timeout(
    browser, identities, clock
):
    _sign_in(browser, identities["alice"])
    first_key = browser.cookies[settings.SESSION_COOKIE_NAME].value
    step = settings.SESSION_COOKIE_AGE // 2
    elapsed = 0
    while elapsed + 2 * step < settings.FXFER_SESSION_ABSOLUTE_SECONDS:  # busy until just before the end
        clock(seconds=step)
        elapsed += step
        assert _signed_in(browser)

    _sign_in(browser, identities["alice"])  # the same person, the same browser, still signed in

    second_key = browser.cookies[settings.SESSION_COOKIE_NAME].value
    assert second_key != first_key
    assert not SessionItem.count(first_key)  # the old key is dead at the server
    assert [item.session_key for item in signed_in_sessions()] == [second_key]
    # Past the first session's absolute end: the new one counts from the second sign-in.
    for _ in range(4):
        clock(seconds=step)
        assert _signed_in(browser)
    stolen = sessions.SessionStore(first_key)
    assert stolen.load() == {}
