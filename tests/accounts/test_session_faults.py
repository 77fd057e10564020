"""The two other ways a person's sessions end, under every fault at their DynamoDB calls (tests/faults.py): a
refused sign-in (deprovisioning) and a logout the IdP starts. Invariants: all of the person's sessions end with
their events in one go, or none ends and there is no event; the page says which; doing it again finishes it.
(Compliance's "sign out everywhere" has its sweep in test_deprovisioning.py.)"""

import dataclasses

from django.conf import settings
from django.test import Client

from accounts.tables import SessionItem, UserRecord
from devtools.idp import server as idp
from tests.accounts.conftest import audit_events, post_to_acs, start_signin
from tests.faults import Killed, sweep_faults

_OUR_CALLS = ("Query", "TransactWriteItems")


def _browser(name: str) -> Client:
    return Client(HTTP_USER_AGENT=f"pytest-{name}/1.0")


def _answer(client, identity):
    started = start_signin(client)
    xml = idp.authn_response(idp.idp_server(), identity=identity, in_response_to=started.request_id)
    return xml, started.relay_state


def _sign_in(client, identity):
    xml, relay_state = _answer(client, identity)
    return post_to_acs(client, xml, relay_state)


def _events(action: str) -> list:
    return [e for e in audit_events() if e.action == action]


def _alice_everywhere(identities) -> dict:
    for item in list(SessionItem.scan()):
        item.delete()
    for name in ("laptop", "phone"):
        assert _sign_in(_browser(name), identities["alice"]).status_code == 302
    alice = next(r for r in UserRecord.scan() if r.email == "alice@example.com")
    return {"alice": alice.user_id, "before": {a: len(_events(a)) for a in ("signin.refused", "signout.idp")}}


def _alive(user_id: str) -> int:
    return sum(1 for item in SessionItem.scan() if item.user_id == user_id)


def _new_events(state, action: str) -> list:
    return _events(action)[state["before"].get(action, 0) :]


def test_a_refused_sign_in_under_faults_ends_all_sessions_or_none(identities):
    removed = dataclasses.replace(identities["alice"], groups=())

    def setup():
        state = _alice_everywhere(identities)
        state["kiosk"] = _browser("kiosk")
        state["answer"] = _answer(state["kiosk"], removed)
        state["ended_before"] = len(_events("user.sessions_ended"))
        return state

    def act(state):
        return post_to_acs(state["kiosk"], *state["answer"])

    def check(state, response, error):
        refused = _new_events(state, "signin.refused")
        ended = _events("user.sessions_ended")[state["ended_before"] :]
        roles = UserRecord.get(state["alice"]).roles
        if _alive(state["alice"]) == 0:
            assert len(refused) == 1 and len(ended) == 1 and roles == [], (refused, ended, roles)
            assert isinstance(error, Killed) or response.status_code == 403
            return
        assert _alive(state["alice"]) == 2, "some sessions ended, some not"
        assert ended == [] and roles == ["employee"], "events or roles without the sessions' end"
        if not isinstance(error, Killed):
            assert error is None, f"not a clear answer: {error!r}"
            assert response.status_code == 503 and "Nothing was lost" in response.content.decode()
        # She tries again (a fresh sign-in at the IdP): now it goes through.
        assert _sign_in(_browser("kiosk-again"), removed).status_code == 403
        assert _alive(state["alice"]) == 0 and UserRecord.get(state["alice"]).roles == []

    sweep_faults(
        "refused sign-in", setup=setup, act=act, check=check, only=lambda s, o: s == "dynamodb" and o in _OUR_CALLS
    )


def test_an_idp_logout_under_faults_ends_all_sessions_or_none(identities):
    def setup():
        state = _alice_everywhere(identities)
        state["url"] = idp.logout_request_url(idp.idp_server(), name_id="alice@example.com")
        return state

    def act(state):
        return _browser("idp-tab").get(state["url"].removeprefix(settings.FXFER_BASE_URL))

    def check(state, response, error):
        logged_out = _new_events(state, "signout.idp")
        if _alive(state["alice"]) == 0:
            assert len(logged_out) == 1, logged_out
            assert isinstance(error, Killed) or response.status_code == 302
            return
        assert _alive(state["alice"]) == 2, "some sessions ended, some not"
        assert logged_out == [], "an event without the sessions' end"
        if not isinstance(error, Killed):
            assert error is None, f"not a clear answer: {error!r}"
            assert response.status_code == 503 and "Nothing changed" in response.content.decode()
        # The IdP (or the person) sends it again: nothing was remembered, so it goes through now.
        assert act(state).status_code == 302 and _alive(state["alice"]) == 0

    sweep_faults("IdP logout", setup=setup, act=act, check=check, only=lambda s, o: s == "dynamodb" and o in _OUR_CALLS)
