"""The local mailbox (development only) shows what the SES stand-in received, Japanese text included."""

import uuid

import pytest
from django.core.mail import send_mail

pytestmark = pytest.mark.integration


def test_the_mailbox_shows_a_sent_mail_with_japanese_text_and_its_link(client, settings):
    settings.EMAIL_BACKEND = "fxfer.mail.SESBackend"  # through the SES stand-in, not pytest-django's locmem
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


def test_simulate_bounce_marks_the_guests_link_mail_and_mails_the_sender(client, settings):
    """What a person clicking through `make run` does: the mailbox reads the stand-in's mail (its message ids
    included) and the button hands SES's notification to the handler, against the same stand-ins."""
    from datetime import UTC, datetime

    from tests.transfers.conftest import sent_link_mail
    from transfers.models import MAIL_BOUNCED
    from transfers.selectors import link_mail_states

    settings.EMAIL_BACKEND = "fxfer.mail.SESBackend"
    now = datetime.now(UTC)
    transfer_id, guest = f"t-{uuid.uuid4().hex}", f"nobody-{uuid.uuid4().hex[:8]}@partner.example"
    _key, message_id = sent_link_mail(
        transfer_id=transfer_id,
        to=guest,
        now=now,
        owner_id="u-alice",
        owner_email="alice@corp.example",
        subject="Quarterly figures",
    )
    assert f'action="/dev/mailbox/{message_id}/bounce"' in client.get("/dev/mailbox/").content.decode()

    page = client.post(f"/dev/mailbox/{message_id}/bounce", follow=True).content.decode()

    assert f"Simulated bounce of the mail to {guest}: The mail is marked bounced" in page
    assert f"Mail to {guest} could not be delivered" in page
    assert link_mail_states(transfer_id)["r1"].status == MAIL_BOUNCED
