"""SAML sign-in through the ACS, with real signed responses from an independent IdP (pysaml2).

A valid sign-in works end to end; every kind of forged, stale, misdirected or tampered response is refused
with a clear page, an audit event naming the reason, and no session.
"""

import copy
from datetime import timedelta

import pytest
from django.conf import settings
from lxml import etree
from saml2.xmldsig import DIGEST_SHA1, SIG_RSA_SHA1

from accounts.tables import SamlAssertionSeen, UserRecord
from devtools import devkeys
from devtools.idp import server as idp
from devtools.idp.identities import EMPLOYEES_GROUP, DemoIdentity
from tests.accounts.conftest import (
    assert_refused_without_session,
    last_audit_event,
    post_to_acs,
    signed_in_sessions,
    start_signin,
)

NS = {
    "samlp": "urn:oasis:names:tc:SAML:2.0:protocol",
    "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
}


def _answer(idp_server, identity, started, **kwargs) -> str:
    return idp.authn_response(idp_server, identity=identity, in_response_to=started.request_id, **kwargs)


# --- the happy paths -----------------------------------------------------------------------------------------


def test_an_insiders_valid_response_posted_from_a_browser_without_the_binding_is_refused(
    browser, idp_server, identities
):
    """Login CSRF: an insider starts a sign-in in their own browser, takes the IdP's genuine signed answer and
    makes a victim's browser (which never started a sign-in) post it. The victim must not end up signed in as
    the insider (their uploads and downloads would land in the insider's account)."""
    from django.test import Client

    insider = Client(HTTP_USER_AGENT="insider")
    insiders_request = start_signin(insider, "/transfers/new/")
    xml = _answer(idp_server, identities["alice"], insiders_request)

    response = post_to_acs(browser, xml, insiders_request.relay_state)  # the victim: no binding cookie

    assert_refused_without_session(response, browser, reason="binding_missing")
    assert "not started in this browser" in response.content.decode()
    assert UserRecord.count() == 0  # nobody was signed in, not even as a side effect


def test_an_employee_signs_in_end_to_end(browser, idp_server, identities):
    started = start_signin(browser, "/transfers/new/")
    assert started.relay_state == "/transfers/new/"

    response = post_to_acs(browser, _answer(idp_server, identities["alice"], started), started.relay_state)

    assert response.status_code == 302
    assert response["Location"] == "/transfers/new/"
    home = browser.get("/").content.decode()
    assert "Signed in as Alice Example" in home
    assert "Employee: you may send files" in home
    assert "Compliance" not in home
    event = last_audit_event()
    assert (event.action, event.outcome) == ("signin.succeeded", "ok")
    assert event.details["email"] == "alice@example.com"
    assert event.ip == "127.0.0.1" and event.user_agent == "pytest-browser/1.0"
    record = UserRecord.get(event.actor.removeprefix("user:"))
    assert (record.email, record.display_name, record.department) == ("alice@example.com", "Alice Example", "Sales")
    assert record.roles == ["employee"]
    assert [item.user_id for item in signed_in_sessions()] == [record.user_id]


def test_a_compliance_officer_gets_admin_rights_and_an_employee_does_not(browser, idp_server, identities):
    from django.contrib.auth import get_user

    started = start_signin(browser)
    post_to_acs(browser, _answer(idp_server, identities["carol"], started), started.relay_state)
    request = browser.get("/").wsgi_request
    carol = get_user(request)
    assert carol.is_authenticated and carol.is_staff and carol.is_active
    assert carol.has_perm("reports.view_audit") and carol.has_module_perms("reports")
    assert not carol.has_perm("transfers.send_files")
    assert "Compliance: you have access to the administration." in browser.get("/").content.decode()

    browser.post("/saml/logout/")
    started = start_signin(browser)
    post_to_acs(browser, _answer(idp_server, identities["alice"], started), started.relay_state)
    alice = get_user(browser.get("/").wsgi_request)
    assert alice.is_authenticated and not alice.is_staff
    assert alice.has_perm("transfers.send_files") and not alice.has_perm("reports.view_audit")


def test_the_same_person_keeps_one_user_across_sign_ins(browser, idp_server, identities):
    for _ in range(2):
        started = start_signin(browser)
        post_to_acs(browser, _answer(idp_server, identities["alice"], started), started.relay_state)
    assert [record.email for record in UserRecord.scan()] == ["alice@example.com"]


def test_someone_in_no_fxfer_group_is_told_they_are_not_authorised(browser, idp_server, identities):
    started = start_signin(browser)
    response = post_to_acs(browser, _answer(idp_server, identities["nobody"], started), started.relay_state)
    assert_refused_without_session(response, browser, reason="not_authorised", status=403, action="signin.refused")
    assert "You are not authorised for fxfer" in response.content.decode()
    assert last_audit_event().details["claimed"]["email"] == "nobody@example.com"


def test_a_next_address_on_another_site_is_dropped_at_the_start(browser):
    assert start_signin(browser, "https://evil.example/phish").relay_state == "/"
    assert start_signin(browser, "//evil.example/phish").relay_state == "/"


def test_urls_come_from_the_base_url_not_from_the_host_header(browser, settings):
    settings.ALLOWED_HOSTS = ["*"]
    response = browser.get("/saml/metadata/", HTTP_HOST="evil.example")
    xml = response.content.decode()
    assert response.status_code == 200
    assert f'entityID="{settings.FXFER_BASE_URL}/saml/metadata/"' in xml
    assert f'Location="{settings.FXFER_BASE_URL}/saml/acs/"' in xml
    assert "evil.example" not in xml
    started = start_signin(browser)
    assert "evil.example" not in str(started.query)


# --- refused: the attack matrix -----------------------------------------------------------------------------


def test_unsigned_response_is_refused(browser, idp_server, identities):
    started = start_signin(browser)
    xml = _answer(idp_server, identities["alice"], started, sign_response=False, sign_assertion=False)
    response = post_to_acs(browser, xml, started.relay_state)
    assert_refused_without_session(response, browser, reason="no_signed_assertion")


def test_response_with_only_the_assertion_signed_is_refused(browser, idp_server, identities):
    started = start_signin(browser)
    xml = _answer(idp_server, identities["alice"], started, sign_response=False, sign_assertion=True)
    response = post_to_acs(browser, xml, started.relay_state)
    assert_refused_without_session(response, browser, reason="no_signed_message")


def test_response_signed_with_another_key_is_refused(browser, identities, tmp_path, caplog):
    devkeys.self_signed("impostor IdP", tmp_path, "impostor")
    impostor = idp.idp_server(key_file=str(tmp_path / "impostor.key"), cert_file=str(tmp_path / "impostor.crt"))
    started = start_signin(browser)
    response = post_to_acs(browser, _answer(impostor, identities["carol"], started), started.relay_state)
    assert_refused_without_session(response, browser, reason="invalid_signature")
    # Counted in the audit trail (anyone can post); the log says whom the forged response claimed.
    (logged,) = [r for r in caplog.records if r.getMessage() == "signin.failed"]
    assert logged.claimed_name_id == "carol@example.com"


def test_response_signed_with_sha1_is_refused(browser, idp_server, identities):
    started = start_signin(browser)
    xml = _answer(idp_server, identities["alice"], started, sign_alg=SIG_RSA_SHA1, digest_alg=DIGEST_SHA1)
    response = post_to_acs(browser, xml, started.relay_state)
    assert_refused_without_session(response, browser, reason="deprecated_signature_method")


def test_response_altered_after_signing_is_refused(browser, idp_server, identities):
    started = start_signin(browser)
    xml = _answer(idp_server, identities["alice"], started)
    # Alice promotes herself: the employees group becomes the compliance group.
    forged = xml.replace(EMPLOYEES_GROUP, settings.FXFER_ROLE_GROUPS["compliance"][0])
    assert forged != xml
    response = post_to_acs(browser, forged, started.relay_state)
    assert_refused_without_session(response, browser, reason="invalid_signature")


def _evil_assertion(original: etree._Element, new_id: str) -> etree._Element:
    """A copy of the signed assertion claiming to be Carol (compliance), with its signature removed."""
    evil = copy.deepcopy(original)
    evil.set("ID", new_id)
    for signature in evil.findall("ds:Signature", NS):
        evil.remove(signature)
    evil.find("saml:Subject/saml:NameID", NS).text = "carol@example.com"
    for value in evil.iterfind(".//saml:AttributeValue", NS):
        if value.text == EMPLOYEES_GROUP:
            value.text = settings.FXFER_ROLE_GROUPS["compliance"][0]
    return evil


def _wrap_beside(xml: str) -> bytes:
    """XSW: an unsigned evil assertion before the genuine signed one."""
    root = etree.fromstring(xml.encode())
    original = root.find("saml:Assertion", NS)
    original.addprevious(_evil_assertion(original, "id-evil"))
    return etree.tostring(root)


def _wrap_inside_extensions(xml: str) -> bytes:
    """XSW: the genuine signed assertion hidden in Extensions; an evil one, reusing its ID, in its place."""
    root = etree.fromstring(xml.encode())
    original = root.find("saml:Assertion", NS)
    evil = _evil_assertion(original, original.get("ID"))
    extensions = etree.Element(f"{{{NS['samlp']}}}Extensions")
    root.find("saml:Issuer", NS).addnext(extensions)
    original.addprevious(evil)
    extensions.append(original)
    return etree.tostring(root)


def _wrap_inside_evil(xml: str) -> bytes:
    """XSW: the evil assertion carries the genuine signature (and the genuine assertion inside it)."""
    root = etree.fromstring(xml.encode())
    original = root.find("saml:Assertion", NS)
    evil = _evil_assertion(original, "id-evil")
    signature = copy.deepcopy(original.find("ds:Signature", NS))
    evil.find("saml:Issuer", NS).addnext(signature)
    obj = etree.SubElement(signature, f"{{{NS['ds']}}}Object")
    original.addprevious(evil)
    obj.append(original)
    return etree.tostring(root)


@pytest.mark.parametrize("wrap", [_wrap_beside, _wrap_inside_extensions, _wrap_inside_evil])
def test_signature_wrapping_is_refused(browser, idp_server, identities, wrap):
    started = start_signin(browser)
    forged = wrap(_answer(idp_server, identities["alice"], started))
    response = post_to_acs(browser, forged, started.relay_state)
    assert response.status_code == 400
    event = last_audit_event()
    assert (event.action, event.outcome) == ("signin.failed", "failed")
    assert event.details["reason"]
    assert_refused_without_session(response, browser, reason=event.details["reason"])
    assert UserRecord.count() == 0


def test_replayed_response_is_refused(browser, idp_server, identities):
    started = start_signin(browser)
    binding = browser.cookies["fxfer-saml"].value
    xml = _answer(idp_server, identities["alice"], started)
    assert post_to_acs(browser, xml, started.relay_state).status_code == 302
    browser.post("/saml/logout/")
    assert signed_in_sessions() == []

    browser.cookies["fxfer-saml"] = binding  # even from the browser that started it (a kept cookie)
    response = post_to_acs(browser, xml, started.relay_state)
    assert_refused_without_session(response, browser, reason="replayed")


def test_assertion_ids_are_remembered_until_they_expire(browser, idp_server, identities):
    started = start_signin(browser)
    post_to_acs(browser, _answer(idp_server, identities["alice"], started), started.relay_state)
    (seen,) = list(SamlAssertionSeen.scan())
    stored = last_audit_event().details["assertion_id"]
    assert seen.assertion_id == stored
    # NotOnOrAfter (5 minutes, the IdP's lifetime) plus the clock-drift margin.
    assert timedelta(minutes=10) < seen.expires_at - seen.seen_at <= timedelta(minutes=16)


def test_unsolicited_response_is_refused(browser, idp_server, identities):
    xml = idp.authn_response(idp_server, identity=identities["alice"], in_response_to=None)
    response = post_to_acs(browser, xml, "/")
    assert_refused_without_session(response, browser, reason="unsolicited")


def test_response_to_a_request_this_site_never_made_is_refused(browser, idp_server, identities):
    start_signin(browser)
    xml = idp.authn_response(idp_server, identity=identities["alice"], in_response_to="ONELOGIN_not-ours")
    response = post_to_acs(browser, xml, "/")
    assert_refused_without_session(response, browser, reason="unknown_request")


def test_response_answering_another_browsers_request_is_refused(client, browser, idp_server, identities):
    from django.test import Client

    attacker = Client(HTTP_USER_AGENT="attacker")
    attackers_request = start_signin(attacker)
    start_signin(browser)  # the victim's own sign-in, bound to the victim's browser
    xml = _answer(idp_server, identities["alice"], attackers_request)
    response = post_to_acs(browser, xml, attackers_request.relay_state)
    assert_refused_without_session(response, browser, reason="other_browser")


def test_response_whose_assertion_answers_another_request_is_refused(browser, idp_server, identities):
    first, second = start_signin(browser), start_signin(browser)
    root = etree.fromstring(_answer(idp_server, identities["alice"], first).encode())
    root.set("InResponseTo", second.request_id)  # the envelope now claims to answer the second request
    response = post_to_acs(browser, etree.tostring(root), second.relay_state)
    assert_refused_without_session(response, browser, reason="wrong_subjectconfirmation")


OTHER_SP = """<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"
 entityID="https://other-sp.example/saml/metadata/"><md:SPSSODescriptor
 protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:AssertionConsumerService
 Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://other-sp.example/saml/acs/" index="1"/>
</md:SPSSODescriptor></md:EntityDescriptor>"""


def test_response_for_another_audience_is_refused(browser, identities):
    # The same IdP also serves another application; its response for that application is posted here.
    shared_idp = idp.idp_server(other_sp_metadata=(OTHER_SP,))
    started = start_signin(browser)
    xml = _answer(shared_idp, identities["alice"], started, audience="https://other-sp.example/saml/metadata/")
    response = post_to_acs(browser, xml, started.relay_state)
    assert_refused_without_session(response, browser, reason="wrong_audience")


def test_response_for_another_destination_is_refused(browser, idp_server, identities):
    started = start_signin(browser)
    xml = _answer(idp_server, identities["alice"], started, destination="https://other-sp.example/saml/acs/")
    response = post_to_acs(browser, xml, started.relay_state)
    assert_refused_without_session(response, browser, reason="wrong_destination")


def test_assertion_for_another_recipient_is_refused(browser, idp_server, identities):
    started = start_signin(browser)
    xml = _answer(idp_server, identities["alice"], started, recipient="https://other-sp.example/saml/acs/")
    assert 'Recipient="https://other-sp.example/saml/acs/"' in xml
    response = post_to_acs(browser, xml, started.relay_state)
    assert_refused_without_session(response, browser, reason="wrong_subjectconfirmation")


def test_expired_response_is_refused(browser, idp_server, identities):
    started = start_signin(browser)
    with idp.idp_clock(-timedelta(hours=1)):
        xml = _answer(idp_server, identities["alice"], started)
    response = post_to_acs(browser, xml, started.relay_state)
    assert_refused_without_session(response, browser, reason="assertion_expired")


def test_response_not_yet_valid_is_refused(browser, idp_server, identities):
    started = start_signin(browser)
    with idp.idp_clock(timedelta(hours=1)):
        xml = _answer(idp_server, identities["alice"], started)
    response = post_to_acs(browser, xml, started.relay_state)
    assert_refused_without_session(response, browser, reason="assertion_too_early")


def test_nameid_with_an_xml_comment_inside_is_refused(browser, idp_server):
    # Mallory owns "carol@example.com.evil.example" at the IdP. A comment does not change the signed
    # (canonical, comment-free) text, so the signature stays valid; a careless SP would read only the text
    # before the comment and sign her in as Carol.
    mallory = DemoIdentity(
        key="mallory",
        email="carol@example.com.evil.example",
        display_name="Mallory",
        department="Sales",
        groups=(EMPLOYEES_GROUP,),
    )
    started = start_signin(browser)
    xml = _answer(idp_server, mallory, started)
    forged = xml.replace(">carol@example.com.evil.example</", ">carol@example.com<!---->.evil.example</", 1)
    assert forged != xml
    response = post_to_acs(browser, forged, started.relay_state)
    assert_refused_without_session(response, browser, reason="xml_comment")
    assert UserRecord.count() == 0


def test_relay_state_pointing_to_another_site_is_refused(browser, idp_server, identities):
    started = start_signin(browser)
    response = post_to_acs(browser, _answer(idp_server, identities["alice"], started), "https://evil.example/")
    assert_refused_without_session(response, browser, reason="relay_state_not_local")
    assert "evil.example" not in response.get("Location", "")


def test_garbage_is_refused(browser):
    response = browser.post("/saml/acs/", {"SAMLResponse": "bm90IHhtbA=="})
    assert_refused_without_session(response, browser, reason="malformed_response")


def test_a_second_answer_to_an_answered_request_is_refused(browser, idp_server, identities):
    started = start_signin(browser)
    binding = browser.cookies["fxfer-saml"].value
    first = _answer(idp_server, identities["alice"], started)
    second = _answer(idp_server, identities["alice"], started)  # fresh ids, same request
    assert post_to_acs(browser, first, started.relay_state).status_code == 302
    browser.post("/saml/logout/")
    browser.cookies["fxfer-saml"] = binding
    response = post_to_acs(browser, second, started.relay_state)
    assert_refused_without_session(response, browser, reason="request_already_answered")


def test_a_request_older_than_its_lifetime_is_not_answered(browser, idp_server, identities, settings):
    settings.FXFER_SAML_REQUEST_SECONDS = -1  # already expired (DynamoDB's TTL may not have removed it yet)
    started = start_signin(browser)
    response = post_to_acs(browser, _answer(idp_server, identities["alice"], started), started.relay_state)
    assert_refused_without_session(response, browser, reason="unknown_request")


def test_a_certificate_rollover_needs_no_downtime(browser, identities, tmp_path, settings):
    # The IdP announces its next certificate; the operator lists both, then the IdP switches keys.
    devkeys.self_signed("next IdP certificate", tmp_path, "next")
    settings.FXFER_SAML_IDP_CERTS = settings.FXFER_SAML_IDP_CERTS + (tmp_path / "next.crt").read_text()
    for idp_after_switch in (
        idp.idp_server(),
        idp.idp_server(key_file=str(tmp_path / "next.key"), cert_file=str(tmp_path / "next.crt")),
    ):
        started = start_signin(browser)
        xml = _answer(idp_after_switch, identities["alice"], started)
        assert post_to_acs(browser, xml, started.relay_state).status_code == 302
        browser.post("/saml/logout/")
