"""In Chromium with a Japanese browser (locale ja-JP: Accept-Language ja), against LocalStack's S3: an employee
sends a file with a Japanese name to a .jp address; every page, Uppy's own texts, the guest's mails and the
sender's list are in Japanese, and the guest downloads exactly the bytes that were sent under their Japanese
name."""

import hashlib
import os
import re

import pytest
from playwright.sync_api import expect

from tests.transfers.test_browser import CODE, LINK, mail_to

pytestmark = [pytest.mark.integration, pytest.mark.browser]


@pytest.fixture
def page_ja(chromium):
    context = chromium.new_context(locale="ja-JP")
    yield context.new_page()
    context.close()


@pytest.fixture
def guest_ja(chromium):
    context = chromium.new_context(locale="ja-JP", accept_downloads=True)
    yield context.new_page()
    context.close()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_whole_send_and_download_in_japanese(page_ja, guest_ja, site, sending, tmp_path):
    page = page_ja
    original = tmp_path / "見積書_2026年度.pdf"
    original.write_bytes(os.urandom(200 * 1024))

    page.goto(f"{site}/")
    expect(page.locator("html")).to_have_attribute("lang", "ja")
    page.get_by_role("link", name="会社のアカウントでサインイン").click()
    page.wait_for_url(f"{site}/idp/sso/**")
    with page.expect_navigation(url=lambda url: "/idp/" not in url):
        page.locator('button[data-identity="alice"]').click()

    page.get_by_role("link", name="新しい転送").click()
    expect(page.get_by_role("heading", name="新しい転送")).to_be_visible()
    expect(page.locator("#uploader")).to_contain_text("ここにファイルをドロップするか")  # Uppy's own texts
    page.get_by_label("受信者", exact=True).fill("taro@partner.co.jp")
    page.get_by_label("件名").fill("見積書の送付")
    page.locator("#uploader input[type=file]").first.set_input_files([str(original)])
    expect(page.locator("#uploader").get_by_text("見積書_2026年度.pdf")).to_be_visible()
    page.get_by_role("button", name="送信", exact=True).click()
    expect(page.locator(".page-heading .status-ready")).to_have_text("送信済み", timeout=60_000)
    expect(page.get_by_text("JST").first).to_be_visible()  # times name the zone

    # The .jp recipient's mail is Japanese (the automatic rule), in polite form.
    body = mail_to(guest_ja, site, "taro@partner.co.jp", "様からファイルが届いています")
    assert "以下のリンクからダウンロードしてください" in body and "JST" in body
    guest_ja.goto(LINK.search(body)[0])
    expect(guest_ja.locator("html")).to_have_attribute("lang", "ja")
    expect(guest_ja.get_by_role("heading", name="Alice Example 様からファイルが届いています")).to_be_visible()
    guest_ja.get_by_role("button", name="コードを送ってください").click()
    expect(guest_ja.get_by_role("heading", name="ワンタイムコードを入力してください")).to_be_visible()
    code_page = guest_ja.url
    code = CODE.search(mail_to(guest_ja, site, "taro@partner.co.jp", "ワンタイムコードのお知らせ"))[1]
    guest_ja.goto(code_page)
    guest_ja.get_by_label("ワンタイムコード").fill(code)
    guest_ja.get_by_role("button", name="次へ").click()
    expect(guest_ja.get_by_role("heading", name="Alice Example からのファイル")).to_be_visible()

    with guest_ja.expect_download() as download_info:
        guest_ja.get_by_role("button", name="見積書_2026年度.pdf をダウンロード").click()
    download = download_info.value
    assert download.suggested_filename == original.name  # filename*: the Japanese name survives
    saved = tmp_path / "downloaded.pdf"
    download.save_as(saved)
    assert sha256(saved.read_bytes()) == sha256(original.read_bytes())

    page.get_by_role("link", name="送信した転送", exact=True).click()
    row = page.locator("tr").filter(has_text="見積書の送付")
    expect(row).to_contain_text("taro@partner.co.jp: 1 回ダウンロード")
    assert re.search(r"\d{4}年\d{1,2}月\d{1,2}日 \d\d:\d\d JST", row.inner_text())
