"""Helpers for SAML tests: start a real sign-in at fxfer, answer it with a real pysaml2 IdP."""

import base64
import zlib
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest
from lxml import etree

from devtools.idp import server as idp
from devtools.idp.identities import DEMO_IDENTITIES


@dataclass(frozen=True)
class Started:
    request_id: str
    relay_state: str
    query: dict


def start_signin(client, next_path: str | None = None) -> Started:
    """GET /saml/login/ as a browser would, and read the AuthnRequest from the redirect to the IdP."""
    response = client.get("/saml/login/", {"next": next_path} if next_path else {})
    assert response.status_code == 302
    query = parse_qs(urlsplit(response["Location"]).query)
    xml = zlib.decompress(base64.b64decode(query["SAMLRequest"][0]), -15)
    request_id = etree.fromstring(xml).get("ID")
    return Started(request_id=request_id, relay_state=query.get("RelayState", [""])[0], query=query)


def post_to_acs(client, xml: str | bytes, relay_state: str | None = None):
    data = {"SAMLResponse": base64.b64encode(xml.encode() if isinstance(xml, str) else xml).decode()}
    if relay_state is not None:
        data["RelayState"] = relay_state
    return client.post("/saml/acs/", data)


@pytest.fixture
def idp_server():
    return idp.idp_server()


@pytest.fixture
def identities():
    return DEMO_IDENTITIES


def audit_events() -> list:
    """Every audit event, oldest first (a Scan: tests only)."""
    from reports.models import AuditEvent

    return sorted(AuditEvent.scan(), key=lambda event: event.sort_key)


def last_audit_event():
    events = audit_events()
    assert events, "no audit event was written"
    return events[-1]


def signed_in_sessions() -> list:
    """Session items that carry a signed-in user (a Scan: tests only)."""
    from accounts.tables import SessionItem

    return [item for item in SessionItem.scan() if item.user_id]


@pytest.fixture
def browser(client):
    """Django's test client, with a user agent the audit trail can record."""
    client.defaults["HTTP_USER_AGENT"] = "pytest-browser/1.0"
    return client


def assert_refused_without_session(response, client, *, reason: str, status: int = 400, action="signin.failed"):
    """The attacker sees a clear 4xx page, the audit trail says why, and nobody is signed in. With nobody
    signed in the trail counts such posts (one event per IP, reason and minute) instead of one event each."""
    assert response.status_code == status
    page = response.content.decode()
    assert ("Sign-in failed" if status == 400 else "not authorised for fxfer") in page
    event = last_audit_event()
    assert event.action == action
    assert event.outcome == ("failed" if status == 400 else "refused")
    assert event.details["reason"] == reason, event.details
    assert event.ip == "127.0.0.1"
    if event.actor == "anonymous":
        assert event.count >= 1
    else:
        assert event.user_agent == "pytest-browser/1.0"
    assert signed_in_sessions() == []
    home = client.get("/")
    assert "Sign in with your company account" in home.content.decode()
