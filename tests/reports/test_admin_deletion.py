"""Compliance on the admin's transfer page: legal hold, release and delete now, each with a reason, audited with
the officer as actor; the deletion receipts show on the page."""

from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings

from fxfer import aws
from tests.reports.conftest import events_of
from tests.transfers.conftest import (  # noqa: F401 - fixtures the transfer helpers need
    _bucket_policy_without_conditions_is_not_ours,
    _fresh_kms_key_arn,
    ready_transfer,
)
from transfers.models import Transfer

NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def _versions(key: str) -> list:
    page = aws.client("s3").list_object_versions(Bucket=settings.FXFER_BUCKET, Prefix=key)
    return [v for v in page.get("Versions", []) if v["Key"] == key]


@pytest.fixture
def sent(mailoutbox):
    created, _tokens = ready_transfer(recipients=["bob@partner.example"], now=NOW, mailoutbox=mailoutbox)
    return created


def test_hold_blocks_deletion_until_released_then_delete_now_writes_receipts(officer, carol, sent):
    base = f"/admin/transfers/{sent.transfer_id}/"
    page = officer.get(base).content.decode()
    assert "Put on legal hold" in page and "Delete files now" in page
    assert "Release legal hold" not in page

    held = officer.post(base + "legal-hold/", {"legal-hold-reason": "Litigation 2026-17"}, follow=True)
    page = held.content.decode()
    assert "The transfer is on legal hold" in page
    assert '<dd id="legal-hold"><strong>On</strong>' in page and "Litigation 2026-17" in page
    assert "Release legal hold" in page
    assert "Put on legal hold" not in page and "Delete files now" not in page  # offered only when they apply
    assert Transfer.get(sent.transfer_id).held
    [event] = events_of("legal_hold.set")
    assert event.actor == f"user:{carol.user_id}" and event.details["reason"] == "Litigation 2026-17"

    refused = officer.post(base + "delete-now/", {"delete-now-reason": "Clean up now"}, follow=True)
    assert "legal hold" in refused.content.decode()
    assert _versions(sent.files[0].key)

    officer.post(base + "release-hold/", {"release-hold-reason": "Litigation settled"})
    assert not Transfer.get(sent.transfer_id).held
    [released] = events_of("legal_hold.released")
    assert released.details["reason"] == "Litigation settled"

    done = officer.post(base + "delete-now/", {"delete-now-reason": "Sent to the wrong customer"}, follow=True)
    html = done.content.decode()
    assert "The files are deleted (1 deletion receipts recorded)." in html
    assert _versions(sent.files[0].key) == []
    [receipt] = events_of("file.deleted")
    assert receipt.actor == f"user:{carol.user_id}" and receipt.details["by"] == "compliance"
    assert receipt.details["key"] == sent.files[0].key and receipt.details["reason"] == "Sent to the wrong customer"
    assert "file.deleted" in html.split("Deletion receipts", 1)[1].split("Actions", 1)[0]


def test_releasing_a_transfer_that_is_not_held_is_refused_and_audited(officer, sent):
    response = officer.post(
        f"/admin/transfers/{sent.transfer_id}/release-hold/", {"release-hold-reason": "By mistake"}, follow=True
    )
    assert "not on legal hold" in response.content.decode()
    [event] = events_of("legal_hold.released")
    assert event.outcome == "refused"


def test_a_reason_is_required(officer, sent):
    officer.post(f"/admin/transfers/{sent.transfer_id}/legal-hold/", {"legal-hold-reason": ""})
    assert not Transfer.get(sent.transfer_id).held
    assert events_of("legal_hold.set") == []
