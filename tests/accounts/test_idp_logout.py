"""A logout the IdP starts (SAML Single Logout, HTTP-Redirect): a genuine, signed LogoutRequest ends every
session of the person it names and is answered with a signed LogoutResponse; anything forged, unsigned, stale,
misdirected or replayed changes nothing and gets a clear page. Requests come from a real pysaml2 IdP."""

import base64
import zlib
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.test import Client
from lxml import etree
from saml2 import time_util
from saml2.xmldsig import SIG_RSA_SHA1

from devtools import devkeys
from devtools.idp import server as idp
from tests.accounts.conftest import audit_events, post_to_acs, signed_in_sessions, start_signin

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"


def _browser(name: str) -> Client:
    return Client(HTTP_USER_AGENT=f"pytest-{name}/1.0")


def _sign_in(client, identity) -> None:
    started = start_signin(client)
    xml = idp.authn_response(idp.idp_server(), identity=identity, in_response_to=started.request_id)
    assert post_to_acs(client, xml, started.relay_state).status_code == 302


def _signed_in(client) -> bool:
    return "Signed in as" in client.get("/").content.decode()


def _local(url: str) -> str:
    return url.removeprefix(settings.FXFER_BASE_URL)


def _events(action: str) -> list:
    return [e for e in audit_events() if e.action == action]


@pytest.fixture
def alice_signed_in(identities):
    laptop = _browser("laptop")
    _sign_in(laptop, identities["alice"])
    return laptop


def _refused(response, laptop, reason: str) -> None:
    assert response.status_code == 400
    page = response.content.decode()
    assert "Sign-out not accepted" in page and reason in page
    assert _signed_in(laptop), "a refused logout request ended the session"
    assert _events("signout.idp") == []
    (counted,) = _events("signout.idp_failed")
    assert (counted.outcome, counted.details["reason"], counted.actor) == ("failed", reason, "anonymous")


def test_a_signed_logout_request_ends_the_session_in_another_browser_and_gets_a_signed_answer(
    alice_signed_in, identities
):
    phone = _browser("phone")
    _sign_in(phone, identities["alice"])
    carol = _browser("carol")
    _sign_in(carol, identities["carol"])
    url = idp.logout_request_url(idp.idp_server(), name_id="alice@example.com", relay_state="from-idp")
    request_id = etree.fromstring(
        zlib.decompress(base64.b64decode(parse_qs(urlsplit(url).query)["SAMLRequest"][0]), -15)
    ).get("ID")

    at_idp = _browser("idp-tab")  # the IdP's page in a browser with no fxfer session
    answer = at_idp.get(_local(url))

    assert answer.status_code == 302
    assert answer["Location"].startswith(settings.FXFER_SAML_IDP_SLO_URL + "?SAMLResponse=")
    query = parse_qs(urlsplit(answer["Location"]).query)
    assert set(query) == {"SAMLResponse", "RelayState", "SigAlg", "Signature"}
    assert query["RelayState"] == ["from-idp"]
    assert query["SigAlg"] == ["http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"]
    response = etree.fromstring(zlib.decompress(base64.b64decode(query["SAMLResponse"][0]), -15))
    assert response.get("InResponseTo") == request_id
    status = response.find(f"{{{SAMLP}}}Status/{{{SAMLP}}}StatusCode").get("Value")
    assert status == "urn:oasis:names:tc:SAML:2.0:status:Success"

    assert not _signed_in(alice_signed_in) and not _signed_in(phone)  # every session of hers, everywhere
    assert _signed_in(carol)  # nobody else's
    (event,) = _events("signout.idp")
    assert event.subject == event.actor and event.details["sessions"] == 2
    assert event.details["request_id"] == request_id

    # The IdP accepts the answer: its signature over the query verifies with fxfer's certificate.
    confirmed = at_idp.get(_local(answer["Location"]))
    assert confirmed.status_code == 200
    assert "signed out of every app" in confirmed.content.decode()


def test_the_browser_that_carries_the_logout_is_signed_out_too(alice_signed_in):
    url = idp.logout_request_url(idp.idp_server(), name_id="alice@example.com")
    answer = alice_signed_in.get(_local(url))
    assert answer.status_code == 302
    assert not _signed_in(alice_signed_in)
    assert signed_in_sessions() == []


def test_an_unsigned_logout_request_is_refused(alice_signed_in):
    url = idp.logout_request_url(idp.idp_server(), name_id="alice@example.com", sign=False)
    _refused(_browser("attacker").get(_local(url)), alice_signed_in, "invalid_signature")


def test_a_logout_request_signed_with_another_key_is_refused(alice_signed_in, tmp_path):
    devkeys.self_signed("impostor IdP", tmp_path, "impostor")
    impostor = idp.idp_server(key_file=str(tmp_path / "impostor.key"), cert_file=str(tmp_path / "impostor.crt"))
    url = idp.logout_request_url(impostor, name_id="alice@example.com")
    _refused(_browser("attacker").get(_local(url)), alice_signed_in, "invalid_signature")


def test_a_logout_request_signed_with_sha1_is_refused(alice_signed_in):
    url = idp.logout_request_url(idp.idp_server(), name_id="alice@example.com", sign_alg=SIG_RSA_SHA1)
    _refused(_browser("attacker").get(_local(url)), alice_signed_in, "invalid_signature")


def test_a_logout_request_from_another_issuer_is_refused(alice_signed_in):
    # Signed with the IdP's key (a key shared between tenants, say), but naming another issuer.
    url = idp.logout_request_url(idp.idp_server(), name_id="alice@example.com", issuer="https://evil.example/idp")
    _refused(_browser("attacker").get(_local(url)), alice_signed_in, "wrong_issuer")


def test_a_logout_request_without_an_issuer_is_refused(alice_signed_in):
    # python3-saml lets a LogoutRequest without Issuer through; fxfer does not.
    url = idp.logout_request_url(idp.idp_server(), name_id="alice@example.com", issuer="")
    assert (
        "Issuer" not in zlib.decompress(base64.b64decode(parse_qs(urlsplit(url).query)["SAMLRequest"][0]), -15).decode()
    )
    _refused(_browser("attacker").get(_local(url)), alice_signed_in, "wrong_issuer")


def test_a_logout_request_for_another_endpoint_is_refused(alice_signed_in):
    url = idp.logout_request_url(
        idp.idp_server(), name_id="alice@example.com", destination="https://other-sp.example/saml/logout/"
    )
    query = urlsplit(url).query
    _refused(_browser("attacker").get(f"/saml/logout/?{query}"), alice_signed_in, "wrong_destination")


def test_an_expired_logout_request_is_refused(alice_signed_in):
    expired = time_util.instant(time_stamp=int((datetime.now(UTC) - timedelta(minutes=1)).timestamp()))
    url = idp.logout_request_url(idp.idp_server(), name_id="alice@example.com", expire=expired)
    _refused(_browser("attacker").get(_local(url)), alice_signed_in, "response_expired")


def test_an_old_logout_request_is_refused(alice_signed_in):
    with idp.idp_clock(timedelta(minutes=-30)):  # captured half an hour ago
        url = idp.logout_request_url(idp.idp_server(), name_id="alice@example.com")
    _refused(_browser("attacker").get(_local(url)), alice_signed_in, "stale_request")


def test_a_logout_request_whose_name_was_changed_after_signing_is_refused(alice_signed_in, identities):
    carol = _browser("carol")
    _sign_in(carol, identities["carol"])
    url = idp.logout_request_url(idp.idp_server(), name_id="carol@example.com")
    query = parse_qs(urlsplit(url).query)
    xml = zlib.decompress(base64.b64decode(query["SAMLRequest"][0]), -15).replace(b"carol@", b"alice@")
    compress = zlib.compressobj(wbits=-15)
    query["SAMLRequest"] = [base64.b64encode(compress.compress(xml) + compress.flush()).decode()]
    response = _browser("attacker").get("/saml/logout/", {name: values[0] for name, values in query.items()})
    _refused(response, alice_signed_in, "invalid_signature")
    assert _signed_in(carol)


def test_a_replayed_logout_request_is_refused(alice_signed_in, identities):
    url = idp.logout_request_url(idp.idp_server(), name_id="alice@example.com")
    assert _browser("idp").get(_local(url)).status_code == 302
    assert not _signed_in(alice_signed_in)
    _sign_in(alice_signed_in, identities["alice"])  # she signs in again

    replay = _browser("attacker").get(_local(url))

    assert replay.status_code == 400 and "replayed" in replay.content.decode()
    assert _signed_in(alice_signed_in)
    assert len(_events("signout.idp")) == 1


def test_garbage_is_refused(alice_signed_in):
    response = _browser("attacker").get("/saml/logout/", {"SAMLRequest": "bm90IHNhbWw=", "Signature": "x"})
    _refused(response, alice_signed_in, "malformed_request")


def test_the_local_idp_signs_a_person_out_of_every_app(alice_signed_in):
    """`make run`: the built-in IdP's "sign out of every app" page starts the same logout."""
    idp_tab = _browser("idp-tab")
    page = idp_tab.get("/idp/logout/")
    assert page.status_code == 200 and 'data-logout="alice"' in page.content.decode()
    to_fxfer = idp_tab.post("/idp/logout/", {"identity": "alice"})
    assert to_fxfer.status_code == 302 and to_fxfer["Location"].startswith(f"{settings.FXFER_BASE_URL}/saml/logout/")
    back = idp_tab.get(_local(to_fxfer["Location"]))
    done = idp_tab.get(_local(back["Location"]))
    assert "signed out of every app" in done.content.decode()
    assert not _signed_in(alice_signed_in)
