"""Ending a person's sessions: a refused sign-in (removed from every fxfer group) ends all of them, and compliance
can sign a person out everywhere from the admin. Through the views, with real signed responses."""

import dataclasses
import re

import pytest
from django.test import Client

from accounts.tables import SessionItem, UserRecord
from devtools.idp import server as idp
from tests.accounts.conftest import audit_events, post_to_acs, signed_in_sessions, start_signin
from tests.faults import Killed, sweep_faults


def _browser(name: str = "browser") -> Client:
    return Client(HTTP_USER_AGENT=f"pytest-{name}/1.0")


def _sign_in(client, identity):
    started = start_signin(client)
    xml = idp.authn_response(idp.idp_server(), identity=identity, in_response_to=started.request_id)
    return post_to_acs(client, xml, started.relay_state)


def _signed_in(client) -> bool:
    return "Signed in as" in client.get("/").content.decode()


def _user_id(email: str) -> str:
    return next(r.user_id for r in UserRecord.scan() if r.email == email)


def _events(action: str) -> list:
    return [e for e in audit_events() if e.action == action]


# --- deprovisioning --------------------------------------------------------------------------------------------


def test_a_refused_sign_in_ends_every_live_session_of_that_person(identities):
    laptop, phone = _browser("laptop"), _browser("phone")
    assert _sign_in(laptop, identities["alice"]).status_code == 302
    assert _sign_in(phone, identities["alice"]).status_code == 302
    assert _signed_in(laptop) and _signed_in(phone)

    removed = dataclasses.replace(identities["alice"], groups=())  # IT removed her from every fxfer group
    response = _sign_in(_browser("kiosk"), removed)

    assert response.status_code == 403
    assert "not authorised for fxfer" in response.content.decode()
    assert not _signed_in(laptop) and not _signed_in(phone)  # both browsers are out at once
    assert signed_in_sessions() == []
    alice = UserRecord.get(_user_id("alice@example.com"))
    assert alice.roles == [] and alice.groups == []
    refused = _events("signin.refused")[-1]
    assert (refused.actor, refused.outcome) == (f"user:{alice.user_id}", "refused")
    assert refused.details["reason"] == "not_authorised"
    ended = _events("user.sessions_ended")[-1]
    assert (ended.subject, ended.details["sessions"], ended.details["reason"]) == (
        f"user:{alice.user_id}",
        2,
        "deprovisioned",
    )


def test_a_refused_person_who_never_signed_in_is_only_recorded(identities):
    response = _sign_in(_browser(), identities["nobody"])
    assert response.status_code == 403
    assert [e.details["reason"] for e in _events("signin.refused")] == ["not_authorised"]
    assert _events("user.sessions_ended") == []
    assert UserRecord.count() == 0


def test_someone_elses_sessions_stay_when_a_person_is_refused(identities):
    carol = _browser("carol")
    _sign_in(carol, identities["carol"])
    _sign_in(_browser("alice"), identities["alice"])
    _sign_in(_browser("kiosk"), dataclasses.replace(identities["alice"], groups=()))
    assert _signed_in(carol)
    assert [s.user_id for s in signed_in_sessions()] == [_user_id("carol@example.com")]


# --- compliance: sign out everywhere ----------------------------------------------------------------------------


@pytest.fixture
def officer(identities):
    client = Client(HTTP_USER_AGENT="pytest-officer/1.0", enforce_csrf_checks=True)
    assert _sign_in(client, identities["carol"]).status_code == 302
    return client


@pytest.fixture
def alices(identities):
    """Alice signed in on two browsers."""
    browsers = [_browser("laptop"), _browser("phone")]
    for browser in browsers:
        _sign_in(browser, identities["alice"])
    return browsers


def _csrf(page) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)


def test_compliance_finds_a_person_and_signs_them_out_everywhere(officer, alices):
    page = officer.get("/admin/people/", {"email": "Alice@Example.com"})
    assert page.status_code == 200
    html = page.content.decode()
    assert "Alice Example &lt;alice@example.com&gt;" in html
    assert re.search(r'class="fx-sessions">2<', html)
    alice_id = _user_id("alice@example.com")
    url = f"/admin/people/{alice_id}/sign-out/"
    assert f'action="{url}"' in html

    done = officer.post(url, {"csrfmiddlewaretoken": _csrf(page), "email": "alice@example.com"}, follow=True)

    assert done.status_code == 200
    assert "Signed out everywhere: 2 live session(s) ended." in done.content.decode()
    assert re.search(r'class="fx-sessions">0<', done.content.decode())
    assert not any(_signed_in(browser) for browser in alices)
    assert _signed_in(officer)  # the officer's own session is not touched
    event = _events("user.sessions_ended")[-1]
    carol_id = _user_id("carol@example.com")
    assert (event.actor, event.subject, event.outcome) == (f"user:{carol_id}", f"user:{alice_id}", "ok")
    assert (event.details["reason"], event.details["sessions"]) == ("compliance", 2)
    assert event.ip == "127.0.0.1" and event.user_agent == "pytest-officer/1.0"
    # Alice may sign in again through the IdP: this is a sign-out, not a ban.


def test_an_unknown_address_finds_nobody_and_a_bad_one_is_explained(officer):
    assert (
        "Nobody has signed in to fxfer with this address."
        in officer.get("/admin/people/", {"email": "who@example.com"}).content.decode()
    )
    bad = officer.get("/admin/people/", {"email": "not an address"})
    assert bad.status_code == 200 and "Enter a valid email address." in bad.content.decode()


def test_signing_out_everywhere_needs_the_csrf_token(officer, alices):
    url = f"/admin/people/{_user_id('alice@example.com')}/sign-out/"
    assert officer.post(url, {"email": "alice@example.com"}).status_code == 403
    assert all(_signed_in(browser) for browser in alices)
    assert _events("user.sessions_ended") == []


def test_a_get_cannot_sign_anyone_out(officer, alices):
    url = f"/admin/people/{_user_id('alice@example.com')}/sign-out/"
    assert officer.get(url).status_code == 405
    assert all(_signed_in(browser) for browser in alices)


def test_an_unknown_person_is_not_found(officer):
    page = officer.get("/admin/people/")
    response = officer.post("/admin/people/" + "0" * 64 + "/sign-out/", {"csrfmiddlewaretoken": _csrf(page)})
    assert response.status_code == 404
    assert _events("user.sessions_ended") == []


def test_an_employee_cannot_reach_the_page_or_the_button(identities, alices):
    mallory = _browser("mallory")
    _sign_in(mallory, dataclasses.replace(identities["alice"], key="m", email="mallory@example.com"))
    target = _user_id("alice@example.com")
    assert mallory.get("/admin/people/", {"email": "alice@example.com"}).status_code == 403
    assert mallory.post(f"/admin/people/{target}/sign-out/").status_code == 403
    assert all(_signed_in(browser) for browser in alices)
    assert [e.details["path"] for e in _events("admin.refused")] == [
        "/admin/people/",
        f"/admin/people/{target}/sign-out/",
    ]

    anonymous = _browser("anonymous")
    response = anonymous.post(f"/admin/people/{target}/sign-out/")
    assert response.status_code == 302 and response["Location"].startswith("/saml/login/")
    assert all(_signed_in(browser) for browser in alices)


def test_sign_out_everywhere_under_aws_faults_ends_all_or_nothing_and_says_so(identities):
    """Every AWS call of the button under a lost answer, an error that outlasts the retries, and a kill right
    after: the sessions end all together with exactly one event, or none ends, no event, and the page says
    nothing was lost; pressing again then finishes the job."""

    def setup():
        officer = Client(HTTP_USER_AGENT="pytest-officer/1.0")
        _sign_in(officer, identities["carol"])
        for name in ("laptop", "phone"):
            _sign_in(_browser(name), identities["alice"])
        alice_id = _user_id("alice@example.com")
        return {"officer": officer, "alice": alice_id, "events": len(_events("user.sessions_ended"))}

    def act(state):
        return state["officer"].post(f"/admin/people/{state['alice']}/sign-out/", {"email": "alice@example.com"})

    def alive(state) -> int:
        return sum(1 for s in signed_in_sessions() if s.user_id == state["alice"])

    def check(state, response, error):
        events = _events("user.sessions_ended")[state["events"] :]
        if alive(state) == 0:
            assert len(events) == 1 and events[0].details["sessions"] == 2, events
            if not isinstance(error, Killed):
                assert error is None and response.status_code == 302, error or response.status_code
        else:
            assert alive(state) == 2, "some sessions ended, some not"
            assert events == [], "an event without the change"
            if not isinstance(error, Killed):
                assert error is None, f"not a clear answer: {error!r}"
                assert response.status_code == 503, response.status_code
                assert "Nothing was lost; try again." in response.content.decode()
            again = act(state)  # the officer presses again once AWS answers
            assert again.status_code == 302 and alive(state) == 0
            assert len(_events("user.sessions_ended")[state["events"] :]) == 1

    def reset():
        for item in list(SessionItem.scan()):
            item.delete()

    def setup_fresh():
        reset()
        return setup()

    sweep_faults(
        "sign out everywhere",
        setup=setup_fresh,
        act=act,
        check=check,
        only=lambda service, operation: service == "dynamodb" and operation in ("Query", "TransactWriteItems"),
    )
