"""The site's own pages and their rough edges, through the test client (DEBUG is off in the test settings, as in
production): the home page of a compliance officer, the help page, the 404 and 500 pages, the favicon, who is
offered "Sign in", and dates that read as a sentence."""

import re
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.test import Client

from tests.transfers.conftest import (  # noqa: F401 (autouse: transfers made the way the transfer tests make them)
    _bucket_policy_without_conditions_is_not_ours,
    _fresh_kms_key_arn,
)
from tests.transfers.guest_links import open_link
from tests.transfers.test_views import links, send_small_file, sign_in, text

SIGN_IN = 'href="/saml/login/'
STYLESHEET = 'href="/static/css/fxfer.css"'


def header(response) -> str:
    return re.search(r'<header class="site-header">.*?</header>', text(response))[0]


# --- home ----------------------------------------------------------------------------------------------------


def test_a_compliance_officer_gets_a_link_to_the_administration(client):
    sign_in(client, "carol")
    home = client.get("/")
    assert "you have access to the administration" in text(home)
    link = re.search(r'<a class="button" href="([^"]+)">Open the compliance administration</a>', text(home))
    assert link and link[1] == "/admin/"
    assert client.get(link[1]).status_code == 200


def test_an_employee_is_not_shown_the_administration(client):
    sign_in(client, "alice")
    home = text(client.get("/"))
    assert "Open the compliance administration" not in home and 'href="/admin/' not in home


# --- dates ---------------------------------------------------------------------------------------------------


def test_a_time_at_the_end_of_a_sentence_has_one_full_stop_and_names_the_zone(client, mailoutbox):
    # Django's English format ended in "p.m.", so "available until Nov 28, 2026, 9:00 p.m.." on the page.
    sign_in(client, "alice")
    created = send_small_file(client, mailoutbox)
    page = text(client.get(created["url"]))
    choices = re.findall(r'<option value="([^"]+)">([^<]+)</option>', page)
    assert choices and all(re.fullmatch(r"\d{1,2} \w{3} \d{4}, \d\d:\d\d JST", label) for _, label in choices)
    client.post(f"/transfers/{created['transferId']}/extend", {"expires_at": choices[-1][0]})
    page = text(client.get(created["url"]))
    said = re.search(r"The transfer is now available until ([^<]*)<", page)[1]
    assert re.fullmatch(r"\d{1,2} \w{3} \d{4}, \d\d:\d\d JST\.", said), said
    assert ".." not in said and "p.m." not in page and "a.m." not in page


# --- who is offered "Sign in" ----------------------------------------------------------------------------------


def test_guests_are_never_invited_to_sign_in(client, mailoutbox):
    sign_in(client, "alice")
    send_small_file(client, mailoutbox)
    guest = Client()
    link_page = guest.get(open_link(guest, urlsplit(links(mailoutbox)["bob@partner.example"]).path))
    no_session = guest.get("/guest/files/")  # the guest error page: the code step was skipped
    bad_link = Client().get("/t/" + "A" * 43, follow=True)
    missing = Client().get("/no/such/page")
    assert (link_page.status_code, no_session.status_code, bad_link.status_code, missing.status_code) == (
        200,
        403,
        404,
        404,
    )
    for response in (link_page, no_session, bad_link, missing):
        assert SIGN_IN not in text(response)


def test_the_start_page_still_offers_employees_to_sign_in():
    home = Client().get("/")
    assert SIGN_IN in header(home)
    assert "Sign in with your company account" in text(home)


# --- error pages ---------------------------------------------------------------------------------------------


def test_an_unknown_address_gets_the_sites_404_page():
    response = Client().get("/no/such/page")
    assert response.status_code == 404
    page = text(response)
    assert "<h1>Page not found</h1>" in page
    assert STYLESHEET in page and 'class="site-header"' in page  # the site's look, not Django's bare page
    assert 'href="/help"' in page and 'href="/"' in page


def test_a_failing_view_gets_the_sites_500_page_without_context_processors(settings):
    """Django renders 500.html with an empty context. A context processor that fails (as one reading DynamoDB
    would while DynamoDB is down) must not matter."""
    assert settings.DEBUG is False
    settings.ROOT_URLCONF = "tests.fxfer.urls_failing"
    templates = [{**settings.TEMPLATES[0]}]
    templates[0]["OPTIONS"] = {
        **templates[0]["OPTIONS"],
        "context_processors": [*templates[0]["OPTIONS"]["context_processors"], "tests.fxfer.test_pages.broken"],
    }
    settings.TEMPLATES = templates
    client = Client(raise_request_exception=False)
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    response = client.get("/fails")
    assert response.status_code == 500
    page = text(response)
    assert "<h1>Something went wrong</h1>" in page
    assert STYLESHEET in page and 'class="site-header"' in page
    assert "a bug nobody caught" not in page and "Traceback" not in page
    assert SIGN_IN not in page


def broken(request):
    raise RuntimeError("this context processor must not be needed by the 500 page")


# --- favicon -------------------------------------------------------------------------------------------------


def test_every_page_links_the_icon_and_favicon_ico_leads_to_it():
    page = text(Client().get("/help"))
    icon = re.search(r'<link rel="icon" href="([^"]+)" type="image/svg\+xml">', page)
    assert icon
    response = Client().get("/favicon.ico")
    assert response.status_code == 301 and response["Location"] == icon[1]
    served = Client().get(icon[1])
    assert served.status_code == 200 and served["Content-Type"] == "image/svg+xml"
    assert b"<svg" in b"".join(served.streaming_content)


def test_the_compliance_pages_link_the_icon_too(client):
    sign_in(client, "carol")
    for path in ("/admin/", "/admin/transfers/"):
        assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in text(client.get(path)), path


# --- help ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["guest", "employee"])
def test_the_help_page_explains_links_codes_expiry_and_limits_without_signing_in(client, who):
    if who == "employee":
        sign_in(client, "alice")
    response = client.get("/help")
    assert response.status_code == 200
    page = text(response)
    for heading in ("The link", "The one-time code", "Expiry", "Limits"):
        assert f">{heading}</h2>" in page
    # The figures are the site's own settings.
    assert f"valid for {settings.FXFER_CODE_SECONDS // 60} minutes" in page
    assert f"After {settings.FXFER_CODE_ATTEMPTS} wrong codes the link locks" in page
    assert f"at most {settings.FXFER_MAX_EXPIRY_DAYS} days after sending" in page
    assert SIGN_IN not in header(response)


def test_help_is_linked_from_every_page_guests_see(client, mailoutbox):
    sign_in(client, "alice")
    send_small_file(client, mailoutbox)
    assert 'href="/help"' in text(client.get("/transfers/"))
    guest = Client()
    link_page = guest.get(open_link(guest, urlsplit(links(mailoutbox)["bob@partner.example"]).path))
    for response in (link_page, Client().get("/t/" + "A" * 43, follow=True), Client().get("/")):
        assert re.search(r'<footer class="site-footer">.*href="/help".*</footer>', text(response))


def test_help_answers_get_only():
    assert Client().post("/help").status_code == 405
