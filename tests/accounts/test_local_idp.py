"""The local IdP (`make run`): pick a demo identity, and the answer goes through the production ACS."""

import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

from django.conf import settings


def _follow_to_idp(client):
    login = client.get("/saml/login/?next=/somewhere/")
    assert login["Location"].startswith(settings.FXFER_SAML_IDP_SSO_URL)
    return login["Location"].removeprefix(settings.FXFER_BASE_URL)


def _hidden_fields(html: str) -> dict:
    return {
        unescape(name): unescape(value)
        for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html)
    }


def test_the_local_idp_offers_the_demo_identities_and_signs_in_through_the_acs(browser):
    choose = browser.get(_follow_to_idp(browser))
    page = choose.content.decode()
    assert choose.status_code == 200
    for email in ("alice@example.com", "carol@example.com", "nobody@example.com"):
        assert email in page

    answer = browser.post("/idp/sso/", {**_hidden_fields(page), "identity": "carol"})
    fields = _hidden_fields(answer.content.decode())
    assert f'action="{settings.FXFER_BASE_URL}/saml/acs/"' in answer.content.decode()
    assert fields["RelayState"] == "/somewhere/"

    signed_in = browser.post("/saml/acs/", fields)
    assert signed_in.status_code == 302 and signed_in["Location"] == "/somewhere/"
    assert "Signed in as Carol Example" in browser.get("/").content.decode()


def test_the_local_idp_refuses_a_request_whose_signature_does_not_match(browser):
    url = _follow_to_idp(browser)
    query = parse_qs(urlsplit(url).query)
    query["RelayState"] = ["/elsewhere/"]  # covered by the redirect-binding signature
    tampered = browser.get("/idp/sso/", {name: values[0] for name, values in query.items()})
    assert tampered.status_code == 400
    assert "Not a valid AuthnRequest" in tampered.content.decode()


def test_the_local_idp_publishes_its_metadata(browser):
    response = browser.get("/idp/metadata/")
    xml = response.content.decode()
    assert response.status_code == 200
    assert f'entityID="{settings.FXFER_SAML_IDP_ENTITY_ID}"' in xml
    assert "IDPSSODescriptor" in xml and "X509Certificate" in xml
