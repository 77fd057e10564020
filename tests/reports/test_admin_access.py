"""Who gets into the compliance admin: compliance staff only. Employees are refused (403, audited); people who
are not signed in are sent to SAML sign-in, never to a password form."""

from urllib.parse import parse_qs, urlsplit

import pytest

from tests.reports.conftest import UA, events_of

PAGES = [
    "/admin/",
    "/admin/transfers/",
    "/admin/transfers/aaaaaaaaaaaaaaaaaaaaaa/",
    "/admin/audit/",
    "/admin/audit/export.csv",
    "/admin/audit/verify/",
    "/admin/reports/daily/",
    "/admin/reports/daily.csv",
    "/admin/reports/monthly/",
    "/admin/reports/monthly.csv",
]


@pytest.mark.parametrize("url", PAGES)
def test_someone_not_signed_in_is_sent_to_saml_sign_in(client, url):
    response = client.get(url)
    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert location.path == "/saml/login/"
    assert parse_qs(location.query)["next"] == [url]


@pytest.mark.parametrize("url", PAGES)
def test_an_employee_is_refused_and_the_refusal_audited(employee, alice, url):
    response = employee.get(url)
    assert response.status_code == 403
    assert "only open to members of the compliance group" in response.content.decode()
    refused = events_of("admin.refused")
    assert len(refused) == 1
    assert refused[0].actor == f"user:{alice.user_id}"
    assert refused[0].outcome == "refused"
    assert refused[0].details["path"] == url
    assert refused[0].ip == "127.0.0.1"
    assert refused[0].user_agent == UA


def test_an_employee_cannot_run_an_action(employee):
    response = employee.post("/admin/transfers/aaaaaaaaaaaaaaaaaaaaaa/revoke/", {"revoke-reason": "because"})
    assert response.status_code == 403
    assert not events_of("transfer.revoked")
    assert events_of("admin.refused")[0].details["method"] == "POST"


@pytest.mark.parametrize("url", [u for u in PAGES if "/transfers/a" not in u])
def test_the_compliance_officer_gets_every_page(officer, url):
    response = officer.get(url)
    assert response.status_code == 200, url
    assert not events_of("admin.refused")


def test_a_missing_transfer_is_a_404_for_the_officer(officer):
    assert officer.get("/admin/transfers/aaaaaaaaaaaaaaaaaaaaaa/").status_code == 404


def test_the_admin_login_page_is_saml_not_a_password_form(client):
    response = client.get("/admin/login/?next=/admin/audit/")
    assert response.status_code == 302
    assert response["Location"] == "/saml/login/?next=%2Fadmin%2Faudit%2F"


def test_the_admin_login_does_not_send_anyone_elsewhere(officer):
    response = officer.get("/admin/login/?next=https://evil.example/")
    assert response["Location"] == "/admin/"


def test_the_admin_login_refuses_a_signed_in_employee(employee):
    assert employee.get("/admin/login/").status_code == 403


def test_log_out_goes_to_saml_sign_out(officer):
    response = officer.post("/admin/logout/")
    assert response.status_code == 302
    assert response["Location"] == "/saml/logout/"


def test_no_orm_admin_page_is_reachable(officer):
    # Django's password change and "view on site" need an ORM; the compliance site does not mount them.
    assert officer.get("/admin/password_change/").status_code == 404
    assert officer.get("/admin/r/1/1/").status_code == 404


def test_the_dashboard_is_the_compliance_dashboard(officer):
    page = officer.get("/admin/").content.decode()
    assert "fxfer compliance" in page
    assert "<svg" in page and "Transfers sent and downloads per day" in page
    assert "recent actions" not in page.lower()  # Django's LogEntry sidebar is replaced
