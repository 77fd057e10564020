"""The local mailbox (development only) shows what the SES stand-in received, Japanese text included."""

import uuid

import pytest
from django.core.mail import send_mail

pytestmark = pytest.mark.integration


def test_the_mailbox_shows_a_sent_mail_with_japanese_text_and_its_link(client, settings):
    settings.EMAIL_BACKEND = "django_ses.SESBackend"  # through the SES stand-in, not pytest-django's locmem
    marker = uuid.uuid4().hex
    send_mail(
        "ファイルが届きました",
        f"請求書_2026年11月.pdf をお送りします。\nhttp://127.0.0.1:8000/t/{marker}",
        None,
        ["guest@partner.example"],
    )
    page = client.get("/dev/mailbox/").content.decode()
    assert "ファイルが届きました" in page
    assert "請求書_2026年11月.pdf をお送りします。" in page
    assert f'href="http://127.0.0.1:8000/t/{marker}"' in page
    assert "guest@partner.example" in page
