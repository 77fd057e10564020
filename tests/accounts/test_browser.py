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
