"""In Chromium: sign in through the local IdP (pysaml2) as the employee and as the compliance officer, and be
refused as the person in no group. The same ACS code as production handles every answer."""

import os

import pytest

pytestmark = [pytest.mark.browser]

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def live_url():
    """Django's live server thread. (pytest-django's `live_server` flushes the SQL database after each test,
    which fails loudly here by design: DATABASES is empty.)"""
    from django.test.testcases import LiveServerThread, _StaticFilesHandler

    thread = LiveServerThread("localhost", _StaticFilesHandler, port=0)
    thread.daemon = True
    thread.start()
    thread.is_ready.wait()
    if thread.error:
        raise thread.error
    yield f"http://localhost:{thread.port}"
    thread.terminate()


@pytest.fixture
def site(live_url, settings):
    """The live server's address is the public base URL, and the local IdP lives under it."""
    base = live_url
    settings.FXFER_BASE_URL = base
    settings.FXFER_SAML_IDP_ENTITY_ID = f"{base}/idp/metadata/"
    settings.FXFER_SAML_IDP_SSO_URL = f"{base}/idp/sso/"
    settings.FXFER_SAML_IDP_SLO_URL = f"{base}/idp/slo/"
    return base


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; only while it runs, never for other tests
    # (a leaked variable would fail the production deployment checks run in subprocesses).
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(chromium):
    context = chromium.new_context()  # a fresh browser profile per test: no cookies carried over
    yield context.new_page()
    context.close()


def _sign_in_as(page, site: str, identity: str):
    page.goto(f"{site}/")
    page.get_by_role("link", name="Sign in with your company account").click()
    page.wait_for_url(f"{site}/idp/sso/**")
    assert "Local IdP: choose who you are" in page.content()
    with page.expect_navigation(url=lambda url: "/idp/" not in url):
        page.locator(f'button[data-identity="{identity}"]').click()


def test_the_employee_signs_in_and_out(page, site):
    _sign_in_as(page, site, "alice")
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
    _sign_in_as(page, site, "carol")
    page.wait_for_url(f"{site}/")
    assert page.get_by_text("Signed in as Carol Example.").is_visible()
    assert page.get_by_text("Compliance: you have access to the administration.").is_visible()


def test_the_person_in_no_group_is_refused(page, site):
    responses = []
    page.on("response", lambda response: responses.append(response) if "/saml/acs/" in response.url else None)
    _sign_in_as(page, site, "nobody")
    assert page.get_by_role("heading", name="You are not authorised for fxfer").is_visible()
    assert [response.status for response in responses] == [403]
    page.goto(f"{site}/")
    assert page.get_by_role("link", name="Sign in with your company account").is_visible()
    assert not page.get_by_text("Signed in as").count()
