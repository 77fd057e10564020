"""No log line carries a secret: a guest link's token (in /t/<token> and its cookie), a one-time code, a
presigned URL, a SAML message or a session key; and the suite-wide check (tests/logleaks.py) that every line
the tests write is clean really catches a leak."""

import json
import logging
import secrets
from types import SimpleNamespace

import pluggy
import pytest
from _pytest.reports import TestReport

from fxfer import logs
from tests import logleaks

TOKEN = secrets.token_urlsafe(32)  # registered with the check as a secret, like every token the suite makes
SIGNED = (
    "https://fxfer-test-transfers.s3.amazonaws.com/files/t1/f1?response-content-disposition=attachment"
    "&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIAEXAMPLE%2F20261130%2Fap-northeast-1%2Fs3%2Faws4_request"
    "&X-Amz-Date=20261130T000000Z&X-Amz-Expires=120&X-Amz-Security-Token=IQoJb3JpZ2luX2Vj"
    "&X-Amz-SignedHeaders=host&X-Amz-Signature=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)


def _lines() -> list[dict]:
    """The lines written since the last look, as the console handler wrote them (parsed)."""
    return [json.loads(line) for line in logleaks.CAPTURE.take()]


def _text(lines: list[dict]) -> str:
    return "\n".join(json.dumps(line, ensure_ascii=False) for line in lines)


@pytest.mark.parametrize(
    ("written", "kept"),
    [
        (f"Not Found: /t/{TOKEN}/code", "Not Found: /t/[redacted]"),
        (f'"GET /t/{TOKEN} HTTP/1.1" 303 0', '"GET /t/[redacted] HTTP/1.1" 303 0'),
        (SIGNED, "X-Amz-Signature=[redacted]"),
        ("{'policy': 'eyJleHBpcmF0aW9uIjoi', 'x-amz-signature': 'abc123'}", "{'policy': '[redacted]'"),
        ("GET /saml/acs/?SAMLResponse=PHNhbWxwOlJlc3BvbnNl&RelayState=%2F", "SAMLResponse=[redacted]&RelayState=%2F"),
        ("/saml/logout/?SAMLRequest=fZJBT4Mw&SigAlg=rsa-sha256&Signature=K2b%2Fd", "SAMLRequest=[redacted]&SigAlg"),
        ('<samlp:Response ID="_1"><saml:Assertion/></samlp:Response>', "[redacted]"),
        ("Your one-time code: 482913", "Your one-time code: [redacted]"),
        ("Cookie: __Host-fxfer-session=abc; fxfer-link-0123456789abcdef=xyz", "__Host-fxfer-session=[redacted]"),
        ("session key abcdefghijklmnopqrstuvwxyz012345 ended", "session key [redacted] ended"),
        (f"grant {TOKEN} for transfer MzR2VTTegkSuEryXVpCh1w", "grant [redacted] for transfer MzR2VTTegkSuEryXVpCh1w"),
    ],
    # Stable names (the token is random): every xdist worker must collect the same tests.
    ids=["404", "runserver", "presigned", "policy", "acs", "slo", "xml", "code", "cookie", "session", "grant"],
)
def test_redact_removes_each_kind_of_secret_and_keeps_the_rest(written, kept):
    redacted = logs.redact(written)
    assert kept in redacted
    assert not logleaks.leaks([redacted]), redacted


def test_a_404_for_a_wrong_token_logs_no_token(client):
    _lines()
    # A path Django itself does not know (the resolver's 404), and a well-formed token nobody holds (the link
    # page's 404, after the redirect).
    assert client.get(f"/t/{TOKEN}/download").status_code == 404
    assert client.get(f"/t/{TOKEN}", follow=True).status_code == 404
    lines = _lines()
    warnings = [line for line in lines if line["logger"] == "django.request"]
    messages = [w["message"] for w in warnings]
    assert messages[0] == "Not Found: /t/[redacted]" and messages[1].startswith("Not Found: /guest/link/")
    assert {w["status_code"] for w in warnings} == {404}
    assert TOKEN not in _text(lines) and not logleaks.leaks(map(json.dumps, lines))


def test_the_runserver_access_line_and_a_traceback_are_redacted():
    _lines()
    logging.getLogger("django.server").warning(
        '"%s" %s %s', f"POST /t/{TOKEN}/verify HTTP/1.1", "403", "2412", extra={"request": object(), "server_time": "x"}
    )
    try:
        raise ValueError(f"could not fetch {SIGNED}")
    except ValueError:
        logging.getLogger("transfers.services").exception("download.failed", extra={"url": SIGNED})
    server, failure = _lines()
    assert server["message"] == '"POST /t/[redacted] HTTP/1.1" 403 2412'
    assert "X-Amz-Signature=[redacted]" in failure["url"] and "X-Amz-Signature=[redacted]" in failure["exception"]
    assert "0123456789abcdef" not in json.dumps(failure) and TOKEN not in json.dumps(server)


# --- the suite-wide check catches what it must ------------------------------------------------------------------


def test_the_check_catches_a_token_that_reaches_a_log_line(client, monkeypatch):
    monkeypatch.setattr(logs, "_RULES", [])  # the redaction broken on purpose
    _lines()
    client.get(f"/t/{TOKEN}/download")
    lines = logleaks.CAPTURE.take()  # taken, so this test's own check does not fail on them
    assert any(f"/t/{TOKEN}/download" in line for line in lines)
    found = logleaks.leaks(lines)
    assert found and TOKEN in found[0] and "a link token in a path" in found[0]


@pytest.mark.parametrize(
    ("line", "what"),
    [
        (SIGNED, "a presigned URL signature"),
        ('{"fields": {"policy": "eyJleHBpcmF0aW9uIjoi", "x-amz-signature": "9f86d081"}}', "a POST policy"),
        ("SAMLResponse=PHNhbWxwOlJlc3BvbnNlIElEPSJfMSI%2B", "a SAML message"),
        ('<saml2p:LogoutRequest ID="_9">', "SAML XML"),
        ('{"message": "code sent", "code": "482913"}', "a one-time code"),
        (f"opened with {TOKEN}", "a secret value"),
    ],
    ids=["presigned", "policy", "saml", "xml", "code", "token"],
)
def test_the_check_recognises_every_kind_of_secret(line, what):
    assert what in logleaks.SECRETS.leaks(line)[0]


def test_the_check_knows_the_secrets_the_suite_made(client):
    """Session keys and codes are found by value, wherever they are and however they are written."""
    client.get("/healthz")
    session = client.session
    session["x"] = 1
    session.save()
    assert session.session_key in logleaks.SECRETS.values
    assert logleaks.SECRETS.leaks(f"touched {session.session_key}!")
    from transfers.outbox import one_time_code

    code = one_time_code("some-nonce")
    assert code in logleaks.SECRETS.codes and logleaks.SECRETS.leaks(f"n={code}")
    # A request id or a hash that happens to hold the same six digits among its letters is not the code.
    assert logleaks.SECRETS.leaks(f'{{"request_id": "3f2fa6f38bb{code}c"}}') == []


def test_a_test_that_logged_a_secret_fails(monkeypatch):
    """The check's verdict on a test: a clean run passes, a secret in any line fails it, naming the line."""
    monkeypatch.setattr(logs, "_RULES", [])

    def teardown_report(lines_written: list[str]) -> TestReport:
        for line in lines_written:
            logging.getLogger("transfers.guest").warning(line)
        hook = logleaks.pytest_runtest_makereport(item=None, call=SimpleNamespace(when="teardown"))
        next(hook)
        report = TestReport("t.py::t", ("t.py", 0, "t"), {}, "passed", None, "teardown")
        with pytest.raises(StopIteration):
            hook.send(pluggy.Result(report, None))
        return report

    assert teardown_report(["link.opened"]).outcome == "passed"
    report = teardown_report([f"opened /t/{TOKEN}"])
    assert report.outcome == "failed" and f"/t/{TOKEN}" in str(report.longrepr)


def test_zappas_access_line_on_lambda_is_redacted():
    """On Lambda every request's access line comes from Zappa (zappa.wsgi.common_log), with its path, query and
    Referer: it goes through the same handler."""
    from zappa.wsgi import common_log

    _lines()
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": f"/t/{TOKEN}",
        "QUERY_STRING": "SAMLRequest=fZJBT4Mw&Signature=K2bd",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "203.0.113.9",
        "HTTP_REFERER": f"https://mail.example/read?u=https://fxfer.example/t/{TOKEN}",
        "HTTP_USER_AGENT": "guest-browser/1.0",
    }
    common_log(environ, SimpleNamespace(status_code=303, content=b""), response_time=1200)
    [line] = _lines()
    assert line["logger"] == "zappa.wsgi" and "GET /t/[redacted]" in line["message"]
    assert "SAMLRequest=[redacted]" in line["message"] and TOKEN not in json.dumps(line)
