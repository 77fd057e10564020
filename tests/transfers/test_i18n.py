"""Two languages everywhere: the catalogue is complete and current, every page (employee, guest, compliance,
error) and every mail reads Japanese with no English sentence left, the person's choice of language is
remembered, and a guest's mails and pages start in the language the sender chose for them."""

import email
import json
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from email.header import decode_header, make_header
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.template.loader import render_to_string
from django.test import Client
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _

from reports import summary
from reports.summary import Anomaly
from tests.reports.conftest import make_user, signed_in
from tests.transfers.conftest import CODE, LINK, put_object_as_browser
from tests.transfers.guest_links import open_link
from tests.transfers.test_request_views import request_form
from tests.transfers.test_views import file_url, form_data, post_json
from transfers import mails

ROOT = Path(__file__).resolve().parents[2]
PO = ROOT / "locale" / "ja" / "LC_MESSAGES" / "django.po"
SMALL = "見積書の本文\n".encode() * 10
JA = {"HTTP_ACCEPT_LANGUAGE": "ja"}

# Three English words in a row is a sentence left untranslated. What may stay English in a Japanese page: the
# product's name, people's data (names, addresses) and technical names that Japanese writes in Latin letters.
ALLOWED = re.compile(
    r"fxfer|Alice|Carol|Bob|SHA-256|ETag|S3|ZIP|CSV|IP|JST|UTC|PDF|Excel|Entra ID|SAML|pdf|xlsx|zip|\S+@\S+|\.\w+"
    r"|Django|Python|PynamoDB|boto3|botocore",
)
ENGLISH_RUN = re.compile(r"[A-Za-z][A-Za-z'\u2019]*(?:[ ,]+[A-Za-z][A-Za-z'\u2019]*){2,}")


# --- the catalogue ------------------------------------------------------------------------------------------


def po_entries(text: str) -> list[dict]:
    """msgid, msgstr(s) and flags of each entry of a .po (enough of the format for our own catalogue)."""
    entries = []
    for block in text.split("\n\n"):
        entry: dict = {"flags": "", "strings": {}}
        key = None
        for line in block.splitlines():
            if line.startswith("#,"):
                entry["flags"] += line
            elif line.startswith("#"):
                continue
            elif match := re.match(r'^(msgid|msgid_plural|msgstr(?:\[\d\])?|msgctxt) "(.*)"$', line):
                key = match[1]
                entry["strings"][key] = match[2]
            elif line.startswith('"') and key:
                entry["strings"][key] += line[1:-1]
        if "msgid" in entry["strings"]:
            entries.append(entry)
    return entries


def test_every_msgid_of_the_catalogue_is_translated_and_none_is_fuzzy():
    entries = [e for e in po_entries(PO.read_text()) if e["strings"]["msgid"]]
    assert len(entries) > 300
    untranslated = [
        e["strings"]["msgid"]
        for e in entries
        if "fuzzy" in e["flags"] or not all(v for k, v in e["strings"].items() if k.startswith("msgstr"))
    ]
    assert untranslated == []


def test_the_catalogue_holds_every_string_the_code_marks(tmp_path):
    """makemessages over a copy of the sources: a string marked for translation but missing from the .po (run
    `make messages` and translate it) fails here, before a Japanese reader meets it in English."""
    if not shutil.which("xgettext"):
        pytest.fail("xgettext is missing: make setup installs GNU gettext")
    for name in ("accounts", "fxfer", "reports", "transfers", "templates", "locale", "devtools"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
    shutil.copy(ROOT / "manage.py", tmp_path / "manage.py")
    subprocess.run(
        [sys.executable, "manage.py", "makemessages", "-l", "ja", "--no-obsolete", "-v", "0", "--ignore=devtools"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    current = {e["strings"]["msgid"] for e in po_entries(PO.read_text())}
    wanted = {e["strings"]["msgid"] for e in po_entries((tmp_path / PO.relative_to(ROOT)).read_text())}
    assert sorted(wanted - current) == []


# --- what a Japanese reader sees ----------------------------------------------------------------------------


class _Visible(HTMLParser):
    """The text a person sees or hears on a page: text outside script/style, and the attributes read aloud."""

    def __init__(self):
        super().__init__()
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "svg"):
            self._hidden += 1
        for name, value in attrs:
            if value and (
                name in ("title", "aria-label", "placeholder", "alt") or (name == "value" and tag == "button")
            ):
                self.parts.append(value)

    def handle_endtag(self, tag):
        if tag in ("script", "style", "svg"):
            self._hidden -= 1

    def handle_data(self, data):
        if not self._hidden:
            self.parts.append(data)


def english_left(text: str, *, html: bool = True) -> list[str]:
    if html:
        parser = _Visible()
        parser.feed(text)
        text = "\n".join(parser.parts)
    text = ALLOWED.sub(" ", text)
    return [run for run in ENGLISH_RUN.findall(text) if len(run.split()) >= 3]


def assert_japanese(response, what: str) -> None:
    assert response.status_code in (200, 400, 403, 404), (what, response.status_code)
    page = response.content.decode()
    assert '<html lang="ja"' in page, what
    assert english_left(page) == [], what


def code_from(mailoutbox, to: str) -> str:
    for message in reversed(mailoutbox):
        if message.to == [to] and CODE.search(message.body):
            return CODE.search(message.body)[1]
    raise AssertionError(f"no code mail to {to}")


@pytest.fixture
def alice_ja(client):
    client.defaults.update(JA, HTTP_USER_AGENT="pytest-ja/1.0")
    return signed_in(client, make_user("alice@corp.example", roles=["employee"], display_name="Alice"))


def send_small(client, **changes) -> dict:
    """A transfer of SMALL made on the New transfer page and uploaded as the uploader does; released."""
    changes.setdefault("files", [{"name": "見積書_2026年度.pdf", "size": len(SMALL), "type": "application/pdf"}])
    response = post_json(client, "/transfers/new", form_data(**changes))
    assert response.status_code == 201, response.content
    created = response.json()
    authorized = post_json(client, file_url(created, 0, "authorize")).json()
    put_object_as_browser(authorized["fields"]["key"], SMALL)
    assert post_json(client, file_url(created, 0, "done")).json()["released"]
    return created


JA_TRANSFER = {
    "recipients": "taro@partner.co.jp",
    "subject": "見積書",
    "message": "ご確認ください。",
    "files": [{"name": "見積書_2026年度.pdf", "size": len(SMALL), "type": "application/pdf"}],
}


def test_an_english_page_is_caught_by_the_check(client):
    """The check below can fail: the same page without a Japanese browser is full of English sentences."""
    assert len(english_left(client.get("/help").content.decode())) > 5
    assert english_left(client.get("/help", **JA).content.decode()) == []


def test_every_page_of_an_employee_and_a_guest_reads_japanese(alice_ja, mailoutbox):
    pages = {name: alice_ja.get(path) for name, path in [("home", "/"), ("help", "/help"), ("new", "/transfers/new")]}
    pages["request new"] = alice_ja.get("/requests/new")
    pages["empty lists"] = alice_ja.get("/transfers/")
    created = send_small(alice_ja, **JA_TRANSFER, allow_replies=True)
    detail = f"/transfers/{created['transferId']}/"
    pages |= {"list": alice_ja.get("/transfers/"), "detail": alice_ja.get(detail)}
    pages["delete confirm"] = alice_ja.get(f"{detail}delete")
    pages["revoke confirm"] = alice_ja.get(f"{detail}revoke")
    pages["refused form"] = alice_ja.post("/requests/new", {"recipients": "宛先"})
    pages["unknown transfer"] = alice_ja.get("/transfers/nope/")
    pages["404"] = alice_ja.get("/no/such/page")

    link = LINK.search(mailoutbox[-1].body)[0]
    guest = Client(**JA)
    page = open_link(guest, link)
    pages["guest link"] = guest.get(page)
    assert guest.post(f"{page}/code").status_code == 303
    pages["guest code"] = guest.get(f"{page}/verify")
    pages["guest wrong code"] = guest.post(f"{page}/verify", {"code": "000000"})
    guest.post(f"{page}/verify", {"code": code_from(mailoutbox, "taro@partner.co.jp")})
    pages["guest files"] = guest.get("/guest/files/")
    pages["guest reply"] = guest.post("/guest/reply", follow=True)
    pages["guest bad link"] = Client(**JA).get("/t/" + "A" * 43, follow=True)

    japanese = {"subject": "契約書", "message": "署名済みの契約書をお送りください。", "allowed_extensions": "pdf"}
    alice_ja.post("/requests/new", request_form(recipients="hanako@partner.co.jp", **japanese))
    pages["requests"] = alice_ja.get("/requests/")
    for name, response in pages.items():
        assert_japanese(response, name)
    assert "見積書_2026年度.pdf" in pages["guest files"].content.decode()


def test_the_uploaders_texts_and_uppys_own_read_japanese(alice_ja):
    page = alice_ja.get("/transfers/new").content.decode()
    config = json.loads(re.search(r'id="uploader-config" type="application/json">(.*?)</script>', page)[1])
    uppy = [
        text
        for value in config["uppyStrings"].values()
        for text in (value.values() if isinstance(value, dict) else [value])
    ]
    assert english_left("\n".join([*config["strings"].values(), *uppy]), html=False) == []
    assert config["uppyStrings"]["dropPasteFiles"] == "ここにファイルをドロップするか、%{browseFiles}"
    assert config["strings"]["checking"] == "転送を確認しています…"


def test_every_page_of_the_compliance_administration_reads_japanese(client, mailoutbox):
    alice = signed_in(Client(**JA), make_user("alice@corp.example", roles=["employee"], display_name="Alice"))
    created = send_small(alice, **JA_TRANSFER)
    officer = signed_in(client, make_user("carol@corp.example", roles=["compliance"], display_name="Carol"))
    officer.defaults.update(JA)
    names = ["index", "fxfer_transfers", "fxfer_audit", "fxfer_verify", "fxfer_daily", "fxfer_monthly"]
    names += ["fxfer_quota", "fxfer_people", "fxfer_operations"]
    for name in names:
        assert_japanese(officer.get(reverse(f"admin:{name}")), name)
        # Single words slip through the sentence check: a choice or a state in English is caught here.
        page = officer.get(reverse(f"admin:{name}")).content.decode()
        # (The audit log's cells are the record itself, as exported and filtered: "system", "ok"; the operations
        # page's are technical names: the stage, tables, library names.)
        tags = "option|th|label" if name in ("fxfer_audit", "fxfer_operations") else "option|td|th|label"
        english_words = re.findall(rf"<(?:{tags})\b[^>]*>\s*([A-Za-z][A-Za-z ()':-]*?)\s*<", page)
        assert [w for w in english_words if not ALLOWED.fullmatch(w)] == [], name
    assert_japanese(officer.get(reverse("admin:fxfer_transfer", args=[created["transferId"]])), "transfer")
    assert_japanese(officer.get(reverse("admin:fxfer_transfers") + "?email=taro@partner.co.jp"), "search")
    assert_japanese(alice.get(reverse("admin:index"), follow=True), "refused")


# --- mails ------------------------------------------------------------------------------------------------------

AT = datetime(2026, 11, 30, 12, 44, tzinfo=UTC)


def every_mail():
    who = {"sender_name": "Alice", "sender_email": "alice@corp.example", "subject": "見積書", "message": ""}
    yield mails.link_mail(to="t@x.jp", link="https://x/t/x", **who, files=[("見積書.pdf", 2048)], expires_at=AT)
    yield mails.request_mail(to="t@x.jp", link="https://x/t/x", **who, closes_at=AT, limits="最大 3 個")
    yield mails.code_mail(to="t@x.jp", code="123456", sender_name="Alice", expires_at=AT)
    yield mails.code_mail(to="t@x.jp", code="123456", sender_name="Alice", expires_at=AT, upload=True)
    yield mails.download_notice_mail(
        to="a@corp", recipient="t@x.jp", file_name="見積書.pdf", subject="見積書", at=AT, ip="192.0.2.1"
    )
    yield mails.locked_notice_mail(to="a@corp", recipient="t@x.jp", subject="見積書", at=AT, ip="192.0.2.1")


def test_every_mail_reads_japanese_with_the_time_in_japanese_form():
    with translation.override("ja"):
        drafts = list(every_mail())
        anomaly = Anomaly("new_domain", _("New external domain: %(domain)s") % {"domain": "partner.co.jp"})
        context = {
            "day": AT.date(),
            "rows": summary._figure_rows({}),
            "report_url": "https://x/",
            "anomalies": [anomaly],
        }
        summary_body = render_to_string("reports/summary_mail.txt", context)
    for draft in drafts:
        assert english_left(f"{draft.subject}\n{draft.body}", html=False) == [], draft.subject
    assert english_left(summary_body, html=False) == [] and "送信された転送: 0" in summary_body
    assert "2026年11月30日 21:44 JST" in drafts[0].body
    with translation.override("en"):
        assert "30 Nov 2026, 21:44 JST" in next(every_mail()).body


# --- choosing the language ------------------------------------------------------------------------------------


def test_the_switcher_overrides_the_browser_and_is_remembered(client):
    assert '<html lang="ja">' in client.get("/", **JA).content.decode()
    response = client.post(reverse("set_language"), {"language": "en", "next": "/help"}, **JA)
    assert (response.status_code, response["Location"]) == (302, "/help")
    cookie = response.cookies[settings.LANGUAGE_COOKIE_NAME]
    assert cookie.value == "en" and cookie["httponly"] and cookie["samesite"] == "Lax"
    page = client.get("/help", **JA).content.decode()
    assert '<html lang="en">' in page and 'action="/language"' in page


def test_the_switcher_returns_to_the_page_it_was_used_on(client):
    """The form has no per-page field: the browser's same-origin Referer brings the person back."""
    page = client.get("/help").content.decode()
    assert 'action="/language"' in page and 'name="next"' not in page
    response = client.post(reverse("set_language"), {"language": "ja"}, HTTP_REFERER="http://testserver/help")
    assert (response.status_code, urlsplit(response["Location"]).path) == (302, "/help")
    assert '<html lang="ja">' in client.get("/help").content.decode()


def test_the_switcher_needs_the_csrf_token_and_stays_on_this_site():
    browser = Client(enforce_csrf_checks=True)
    assert browser.post(reverse("set_language"), {"language": "ja"}).status_code == 403
    response = Client().post(reverse("set_language"), {"language": "ja", "next": "https://evil.example/"})
    assert urlsplit(response["Location"]).netloc == ""


def test_a_jp_address_gets_japanese_mails_and_pages_unless_the_sender_chose(client, mailoutbox):
    alice = signed_in(client, make_user("alice@corp.example", roles=["employee"], display_name="Alice"))
    send_small(alice, recipients="taro@partner.co.jp, bob@partner.example")
    by_to = {m.to[0]: m for m in mailoutbox}
    assert by_to["taro@partner.co.jp"].subject.startswith("Alice 様からファイルが届いています")
    assert "有効期限は" in by_to["taro@partner.co.jp"].body and "JST" in by_to["taro@partner.co.jp"].body
    assert by_to["bob@partner.example"].subject.startswith("Alice sent you files")

    mailoutbox.clear()
    send_small(alice, recipients="bob@partner.example", mail_language="ja")
    assert mailoutbox[-1].subject.startswith("Alice 様からファイルが届いています")

    # Bob's browser asks for English; the link opens in the language Alice chose for him, and stays so.
    guest = Client(HTTP_ACCEPT_LANGUAGE="en")
    page = open_link(guest, LINK.search(mailoutbox[-1].body)[0])
    assert '<html lang="ja">' in guest.get(page).content.decode()
    guest.post(f"{page}/code")
    assert mailoutbox[-1].subject == "ワンタイムコードのお知らせ"
    assert '<html lang="ja">' in guest.get(f"{page}/verify").content.decode()
    # He switches: his choice wins over the sender's from then on.
    guest.post(reverse("set_language"), {"language": "en", "next": page})
    assert '<html lang="en">' in guest.get(page).content.decode()


def test_an_unknown_language_is_refused_at_its_field(client):
    alice = signed_in(client, make_user("alice@corp.example", roles=["employee"], display_name="Alice"))
    response = post_json(alice, "/transfers/new", form_data(mail_language="xx"))
    assert response.status_code == 400
    assert "mail_language" in response.json()["fields"]


def test_japanese_subjects_and_sender_names_are_mime_encoded(client, mailoutbox, settings):
    settings.DEFAULT_FROM_EMAIL = "ファイル転送 <fxfer@corp.example>"
    alice = signed_in(client, make_user("alice@corp.example", roles=["employee"], display_name="山田 花子"))
    send_small(alice, recipients="taro@partner.co.jp")
    raw = mailoutbox[-1].message().as_bytes()
    headers = raw.split(b"\n\n", 1)[0].decode("ascii")  # every header is ASCII on the wire
    assert re.search(r"^Subject:\s+=\?utf-8\?", headers, re.MULTILINE | re.IGNORECASE)
    assert re.search(r"^From:\s+=\?utf-8\?[^<]*\?=\s+<fxfer@corp\.example>", headers, re.MULTILINE | re.IGNORECASE)
    subject = email.message_from_bytes(raw)["Subject"]
    assert str(make_header(decode_header(subject))).startswith("山田 花子 様からファイルが届いています")


def guest_downloads(mailoutbox, to: str, accept_language: str) -> None:
    """The guest `to` opens their newest link in a browser asking for `accept_language`, and downloads."""
    link = next(LINK.search(m.body)[0] for m in reversed(mailoutbox) if m.to == [to] and LINK.search(m.body))
    guest = Client(HTTP_ACCEPT_LANGUAGE=accept_language)
    page = open_link(guest, link)
    guest.post(f"{page}/code")
    assert guest.post(f"{page}/verify", {"code": code_from(mailoutbox, to)}).status_code == 303
    file_id = re.search(r"/guest/files/([A-Za-z0-9_-]+)/download", guest.get("/guest/files/").content.decode())[1]
    assert guest.post(f"/guest/files/{file_id}/download").status_code == 303  # to the presigned GET


@pytest.mark.parametrize(
    ("sender_language", "notice_subject"), [("en", " downloaded "), ("ja", " をダウンロードしました")]
)
def test_the_senders_notices_are_in_the_senders_language_not_the_guests(
    client, mailoutbox, sender_language, notice_subject
):
    alice = signed_in(client, make_user("alice@corp.example", roles=["employee"], display_name="Alice"))
    alice.defaults["HTTP_ACCEPT_LANGUAGE"] = sender_language
    guest_language = "en" if sender_language == "ja" else "ja"
    send_small(alice, recipients="bob@partner.example", mail_language=guest_language)
    guest_downloads(mailoutbox, "bob@partner.example", guest_language)
    notice = next(m for m in mailoutbox if m.to == ["alice@corp.example"])
    assert notice_subject in notice.subject
