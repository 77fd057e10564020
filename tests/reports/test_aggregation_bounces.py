"""Bounces and complaints in the daily figures: each bounced or complained mail counts once, however often SES
notified, for the company and for the department of the person whose transfer it was; a soft bounce is not
counted as a bounce."""

from datetime import UTC, date, datetime

import pytest

from reports.models import DailyStats
from reports.services import daily_stats_rebuild
from tests.reports.conftest import make_user
from tests.transfers.conftest import sent_link_mail
from transfers.notifications import (
    parse_ses_notification,
    ses_bounce_message,
    ses_complaint_message,
    ses_notification_record,
)

DAY = date(2026, 11, 28)


def _at(hour: int) -> datetime:
    return datetime(2026, 11, 28, hour, tzinfo=UTC)  # 28 November in Tokyo for hours 0-14


@pytest.fixture(autouse=True)
def through_ses(settings):
    settings.EMAIL_BACKEND = "fxfer.mail.SESBackend"


def _transfer_with_link_mail(transfer_id: str, owner, to: str) -> str:
    """A transfer of `owner` whose link mail to `to` SES accepted; returns SES's message id."""
    _key, message_id = sent_link_mail(
        transfer_id=transfer_id,
        to=to,
        now=_at(0),
        owner_id=owner.user_id,
        owner_email=owner.email,
        owner_name=owner.display_name,
    )
    return message_id


def _record(message: dict, hour: int) -> None:
    ses_notification_record(notification=parse_ses_notification(message), now=_at(hour))


def test_bounces_and_complaints_are_counted_once_per_mail_for_the_company_and_the_owners_department():
    alice = make_user("alice@corp.example", roles=["employee"], department="Sales")
    bob = make_user("bob@corp.example", roles=["employee"], department="Legal")
    wrong = _transfer_with_link_mail("t-wrong", alice, "nobody@partner.example")
    full = _transfer_with_link_mail("t-full", alice, "full@partner.example")
    spam = _transfer_with_link_mail("t-spam", bob, "grumpy@other.example")

    bounce = ses_bounce_message(message_id=wrong, to="nobody@partner.example", sent_at=_at(0))
    _record(bounce, 2)
    _record(bounce, 3)  # SNS delivered it again
    _record(
        ses_bounce_message(
            message_id=full, to="full@partner.example", bounce_type="Transient", bounce_subtype="MailboxFull"
        ),
        4,
    )
    _record(ses_complaint_message(message_id=spam, to="grumpy@other.example", sent_at=_at(0)), 5)

    daily_stats_rebuild(day=DAY)

    whole = DailyStats.get(DAY.isoformat(), "all").figures
    assert (whole["mails_bounced"], whole["mails_complained"]) == (1, 1)
    assert whole["by_action"]["mail.bounced.transient"] == 1
    sales = DailyStats.get(DAY.isoformat(), "dept:Sales").figures
    legal = DailyStats.get(DAY.isoformat(), "dept:Legal").figures
    assert (sales["mails_bounced"], sales["mails_complained"]) == (1, 0)
    assert (legal["mails_bounced"], legal["mails_complained"]) == (0, 1)


def test_a_day_without_bounces_shows_zero():
    make_user("alice@corp.example", roles=["employee"], department="Sales")
    daily_stats_rebuild(day=DAY)
    whole = DailyStats.get(DAY.isoformat(), "all").figures
    assert (whole["mails_bounced"], whole["mails_complained"]) == (0, 0)
