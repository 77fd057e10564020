"""In Chromium: sign in through the local IdP (pysaml2) as the employee and as the compliance officer, and be
refused as the person in no group. The same ACS code as production handles every answer."""

import pytest

from tests.conftest import sign_in_as

pytestmark = [pytest.mark.browser]


def test_the_employee_signs_in_and_out(page, site):
    sign_in_as(page, site, "alice")
    page.wait_for_url(f"{site}/")
    assert page.get_by_text("Signed in as Alice Example.").is_visible()
    assert page.get_by_text("Employee: you may send files and request files.").is_visible()
    assert not page.get_by_text("Compliance: you have access").count()

    page.get_by_role("link", name="Sign out").click()
    page.get_by_role("button", name="Sign out of fxfer").click()
    page.wait_for_url(f"{site}/saml/logout/?SAMLResponse=**")
    assert page.get_by_role("heading", name="You are signed out").is_visible()
    assert not page.get_by_text("did not confirm").count()
    page.goto(f"{site}/")
    assert page.get_by_role("link", name="Sign in with your company account").is_visible()


def test_the_compliance_officer_signs_in(page, site):
    sign_in_as(page, site, "carol")
    page.wait_for_url(f"{site}/")
    assert page.get_by_text("Signed in as Carol Example.").is_visible()
    assert page.get_by_text("Compliance: you have access to the administration.").is_visible()


def test_the_person_in_no_group_is_refused(page, site):
    responses = []
    page.on("response", lambda response: responses.append(response) if "/saml/acs/" in response.url else None)
    sign_in_as(page, site, "nobody")
    assert page.get_by_role("heading", name="You are not authorised for fxfer").is_visible()
    assert [response.status for response in responses] == [403]
    page.goto(f"{site}/")
    assert page.get_by_role("link", name="Sign in with your company account").is_visible()
    assert not page.get_by_text("Signed in as").count()


@pytest.fixture
def idp_on_another_site(site, settings):
    """fxfer at http://localhost:<port>, its IdP at http://127.0.0.1:<port>: two sites, as with a real IdP, so
    the IdP's POST to the ACS is cross-site (what `make run` against an Entra test tenant does)."""
    idp_base = site.replace("//localhost:", "//127.0.0.1:")
    settings.FXFER_LOCAL_IDP_BASE_URL = idp_base
    settings.FXFER_SAML_IDP_ENTITY_ID = f"{idp_base}/idp/metadata/"
    settings.FXFER_SAML_IDP_SSO_URL = f"{idp_base}/idp/sso/"
    settings.FXFER_SAML_IDP_SLO_URL = f"{idp_base}/idp/slo/"
    return idp_base


def _sign_in_across_sites(page, site, idp_base, identity):
    page.goto(f"{site}/")
    page.get_by_role("link", name="Sign in with your company account").click()
    page.wait_for_url(f"{idp_base}/idp/sso/**")
    with page.expect_navigation(url=lambda url: "/idp/" not in url):
        page.locator(f'button[data-identity="{identity}"]').click()


def test_a_cross_site_idp_signs_in_when_the_binding_cookie_may_cross_sites(page, site, idp_on_another_site, settings):
    settings.FXFER_SAML_BINDING_COOKIE_CROSS_SITE = True  # what `make run` sets when it trusts a real IdP
    _sign_in_across_sites(page, site, idp_on_another_site, "alice")
    page.wait_for_url(f"{site}/")
    assert page.get_by_text("Signed in as Alice Example.").is_visible()


def test_a_cross_site_idp_cannot_sign_in_a_browser_whose_binding_cookie_stays_behind(page, site, idp_on_another_site):
    """A Lax binding cookie stays behind on the IdP's cross-site POST: the ACS refuses rather than sign in a
    browser it cannot tell from a victim's (this is why `make run` with a real IdP makes the cookie cross-site)."""
    responses = []
    page.on("response", lambda response: responses.append(response) if "/saml/acs/" in response.url else None)
    _sign_in_across_sites(page, site, idp_on_another_site, "alice")
    assert [response.status for response in responses] == [400]
    assert page.get_by_role("heading", name="Sign-in failed").is_visible()
    assert page.locator("code.signin-error").inner_text() == "binding_missing"
