"""Anonymous traffic is counted, not logged post by post: a flood of junk at the ACS from one address is one
audit event with a count, the daily figures still count every post, and an employee's sign-in is still its own
event."""

import base64
from datetime import UTC, datetime

from accounts import services
from devtools.idp import server as idp
from reports.models import AuditEvent
from reports.services import daily_stats_rebuild, local_day
from tests.accounts.conftest import post_to_acs, start_signin

AT = datetime.now(UTC).replace(second=5, microsecond=0)


class _Clock(datetime):
    @classmethod
    def now(cls, tz=None):
        return AT


def test_fifty_junk_acs_posts_from_one_ip_in_a_minute_are_one_event_with_count_50(browser, monkeypatch):
    monkeypatch.setattr(services, "datetime", _Clock)
    for n in range(50):
        response = browser.post("/saml/acs/", {"SAMLResponse": base64.b64encode(f"junk {n}".encode()).decode()})
        assert response.status_code == 400
        assert "Sign-in failed" in response.content.decode()

    (event,) = AuditEvent.scan()
    assert (event.action, event.outcome, event.actor, event.ip) == ("signin.failed", "failed", "anonymous", "127.0.0.1")
    assert event.details == {"reason": "malformed_response"}
    assert event.count == 50
    # The daily figures count every post, not the one event.
    assert daily_stats_rebuild(day=local_day(AT)).figures["failed_signins"] == 50


def test_different_reasons_and_addresses_are_counted_apart(browser, monkeypatch):
    monkeypatch.setattr(services, "datetime", _Clock)
    junk = {"SAMLResponse": base64.b64encode(b"junk").decode()}
    browser.post("/saml/acs/", junk)
    browser.post("/saml/acs/", junk, REMOTE_ADDR="192.0.2.7")
    browser.post("/saml/acs/", {})  # no SAMLResponse at all
    counted = sorted((e.ip, e.details["reason"], int(e.count)) for e in AuditEvent.scan())
    assert counted == [
        ("127.0.0.1", "malformed_response", 1),
        ("127.0.0.1", "missing_response", 1),
        ("192.0.2.7", "malformed_response", 1),
    ]


def test_an_employees_sign_in_is_still_its_own_event_amid_junk(browser, idp_server, identities):
    junk = {"SAMLResponse": base64.b64encode(b"junk").decode()}
    for _ in range(5):
        browser.post("/saml/acs/", junk)
    started = start_signin(browser)
    answer = idp.authn_response(idp_server, identity=identities["alice"], in_response_to=started.request_id)
    response = post_to_acs(browser, answer, started.relay_state)
    assert response.status_code == 302
    (signed_in,) = [e for e in AuditEvent.scan() if e.action == "signin.succeeded"]
    assert signed_in.actor.startswith("user:") and signed_in.count is None
    assert signed_in.details["email"] == "alice@example.com"
    counted = [e for e in AuditEvent.scan() if e.action == "signin.failed"]
    assert sum(int(e.count) for e in counted) == 5 and len(counted) <= 2  # a minute may turn over meanwhile
