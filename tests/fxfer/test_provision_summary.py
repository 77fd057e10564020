"""`manage.py provision` against a fresh account: its last lines say how much it changed and what is left to the
operator, without counting the steps it cannot do (verify the SES domain) as changes."""

from io import StringIO

from django.core.management import call_command
from django.test import override_settings


@override_settings(FXFER_SES_VERIFY_SENDER=False, DEFAULT_FROM_EMAIL="fxfer@unverified.example.org")
def test_a_step_left_to_the_operator_is_listed_and_not_counted_as_a_change():
    out = StringIO()
    call_command("provision", stdout=out)
    call_command("provision", stdout=(second := StringIO()))
    for text in (out.getvalue(), second.getvalue()):
        assert "unsupported  ses sender fxfer@unverified.example.org" in text
        assert "1 step(s) left to you:" in text
        assert "ses sender fxfer@unverified.example.org: verify the domain unverified.example.org in SES" in text
    assert "Provisioned: 0 change(s)." in second.getvalue()


def test_nothing_left_says_nothing_more():
    out = StringIO()
    call_command("provision", stdout=out)
    assert out.getvalue().rstrip().endswith("Provisioned: 0 change(s).")
