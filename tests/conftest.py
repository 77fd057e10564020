"""Fast tier: every test runs on in-process moto, provisioned by the same code production uses (once per
process, put back as provisioned before each test: tests/moto_world.py).
Browser tier: Django's live server thread, driven by Playwright in Debian's Chromium."""

import os

import pytest

_INTEGRATION = bool(os.environ.get("FXFER_DYNAMODB_ENDPOINT"))

if not _INTEGRATION:
    # Fake credentials before anything builds a boto3 client; never real ones in tests.
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "ap-northeast-1",
        # Every client retries the same way (django-ses builds its own): tests/faults.py relies on it.
        "AWS_RETRY_MODE": "standard",
    }.items():
        os.environ[name] = value


def pytest_configure(config):
    from devtools.moto_atomic import patch_moto_dynamodb
    from tests import logleaks

    patch_moto_dynamodb()
    config.addinivalue_line(
        "markers", "fresh_world: the test gets moto provisioned anew, not the per-process world put back"
    )
    # Every log line the suite writes is checked for secrets (tokens, codes, presigned URLs, SAML messages,
    # session keys): a test that made one fails.
    config.pluginmanager.register(logleaks, "fxfer-logleaks")
    if not _INTEGRATION:
        from tests import awscalls

        # Every AWS call the application makes must be allowed by the Lambda role's policy (fxfer/iam.py), and
        # after a whole fast-tier run every grant must have had a caller.
        config.pluginmanager.register(awscalls, "fxfer-awscalls")


def pytest_collection_modifyitems(config, items):
    """The integration tier needs the stand-ins (python -m devtools.stack); the fast tier must not hit them."""
    for item in items:
        if item.get_closest_marker("integration") and not _INTEGRATION:
            item.add_marker(pytest.mark.skip(reason="needs the local stand-ins: make test-integration"))


@pytest.fixture(scope="session")
def moto_world():
    """In-process moto for the whole process (each xdist worker), provisioned once (tests/moto_world.py)."""
    from tests import moto_world

    moto_world.start()
    yield moto_world
    moto_world.stop()


@pytest.fixture(autouse=True)
def aws(request):
    """In-process moto with every table, the KMS key, the bucket and the SES sender provisioned: the world
    provisioned once per process, put back as provisioned before each test (no item, object, mail or message
    left, every table, key, bucket setting as provisioned). A test marked `fresh_world` gets a world
    provisioned anew."""
    if _INTEGRATION:
        yield
        return
    world = request.getfixturevalue("moto_world")
    if request.node.get_closest_marker("fresh_world"):
        world.fresh()
    else:
        world.restore()
    yield


# --- Browser tests -----------------------------------------------------------------------------------------

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def live_url():
    """Django's live server thread. (pytest-django's `live_server` flushes the SQL database after each test,
    which fails loudly here by design: DATABASES is empty.)"""
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.test.testcases import LiveServerThread

    # Static files from the source folders (the finders), as StaticLiveServerTestCase serves them: the plain
    # handler serves STATIC_ROOT, a `staticfiles/` that `make package` left behind, so a changed script or
    # style sheet was not what the browser ran.
    thread = LiveServerThread("localhost", StaticFilesHandler, port=0)
    thread.daemon = True
    thread.start()
    thread.is_ready.wait()
    if thread.error:
        raise thread.error
    yield f"http://localhost:{thread.port}"
    thread.terminate()


@pytest.fixture
def site(live_url, settings):
    """The live server's address is the public base URL, the local IdP lives under it, and the bucket's CORS
    rule admits it (provisioning converges the rule to FXFER_BASE_URL)."""
    from fxfer.provisioning import provision

    original = settings.FXFER_BASE_URL
    base = live_url
    settings.FXFER_BASE_URL = base
    settings.FXFER_SAML_IDP_ENTITY_ID = f"{base}/idp/metadata/"
    settings.FXFER_SAML_IDP_SSO_URL = f"{base}/idp/sso/"
    settings.FXFER_SAML_IDP_SLO_URL = f"{base}/idp/slo/"
    list(provision())
    yield base
    settings.FXFER_BASE_URL = original
    list(provision())  # the bucket's CORS rule back to the configured site, for the tests that follow


@pytest.fixture(scope="session")
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


def sign_in_as(page, site: str, identity: str) -> None:
    """Sign in through the local IdP as one of its demo identities ("alice", "carol", "nobody")."""
    page.goto(f"{site}/")
    page.get_by_role("link", name="Sign in with your company account").click()
    page.wait_for_url(f"{site}/idp/sso/**")
    assert "Local IdP: choose who you are" in page.content()
    with page.expect_navigation(url=lambda url: "/idp/" not in url):
        page.locator(f'button[data-identity="{identity}"]').click()
