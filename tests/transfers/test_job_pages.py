"""The jobs walk all of their index, however much of it they pass over: a legal-hold case, transfers still
uploading or waiting for an approval stay in the sparse indexes, oldest first, and must never hide a later
transfer from every run (a per-shard `limit` did: a held case of 200 transfers in one shard stopped expiry there
for good). Each test puts more passed-over transfers ahead of the one to act on than a Query page holds."""

from datetime import timedelta

import pytest
from django.conf import settings

from fxfer import aws
from tests.faults import recording
from tests.transfers.conftest import (
    ALICE,
    NOW,
    approval_by_manager,
    create,
    later,
    put_object_as_browser,
    ready_transfer,
)
from transfers import services
from transfers.models import Transfer
from transfers.policy import FileDeclared
from transfers.services import approvals, missend

BOB = "bob@partner.example"
OFFICER = "u-carol"
PAGE = 2  # the jobs' page is 200 keys; the tests put three ahead of a page of two
AHEAD = 3


@pytest.fixture(autouse=True)
def one_shard(monkeypatch):
    """Every transfer in the same shard of the indexes, so the ones passed over are ahead in the same Query."""
    monkeypatch.setattr("transfers.services.common.SWEEP_SHARDS", 1)


def _versions(key: str) -> list:
    page = aws.client("s3").list_object_versions(Bucket=settings.FXFER_BUCKET, Prefix=key)
    return page.get("Versions", []) + page.get("DeleteMarkers", [])


def _hold(transfer_id: str) -> None:
    services.transfer_hold_set(officer_id=OFFICER, transfer_id=transfer_id, reason="Case 2026-30")


def test_a_held_case_larger_than_a_page_does_not_stop_expiry_behind_it(mailoutbox):
    for _ in range(AHEAD):
        _hold(ready_transfer(recipients=[BOB], mailoutbox=mailoutbox)[0].transfer_id)
    behind, _tokens = ready_transfer(recipients=[BOB], mailoutbox=mailoutbox, now=later(60))
    expires_at = Transfer.get(behind.transfer_id).expires_at

    swept = services.expiry_sweep(now=expires_at, page_size=PAGE)

    assert (swept.held_skipped, swept.transfers_expired) == (AHEAD, 1)
    assert _versions(behind.files[0].key) == []
    assert Transfer.get(behind.transfer_id).status == "expired"


def test_a_held_case_costs_the_hourly_sweep_a_read_per_page_not_a_read_per_transfer(mailoutbox):
    def hold(count: int) -> Transfer:
        for _ in range(count):
            created = ready_transfer(recipients=[BOB], mailoutbox=mailoutbox)[0]
            _hold(created.transfer_id)
        return Transfer.get(created.transfer_id)

    def reads(at) -> tuple[int, int]:
        with recording() as calls:
            swept = services.expiry_sweep(now=at)
        return swept.held_skipped, sum(operation.endswith("GetItem") for _service, operation in calls.calls)

    expires_at = hold(2).expires_at
    small = reads(expires_at)
    hold(5)
    large = reads(expires_at + timedelta(hours=1))
    assert (small[0], large[0]) == (2, 7)
    assert large[1] == small[1], "each held transfer costs the sweep a read of its own"


def test_held_unreleased_transfers_do_not_hide_an_abandoned_upload_behind_them(settings):
    settings.FXFER_ORPHAN_PENDING_HOURS = 24
    for _ in range(AHEAD):
        _hold(create(files=[FileDeclared(name="a.pdf", size=3)]).transfer_id)  # never uploaded, then held
    abandoned = create(files=[FileDeclared(name="a.pdf", size=3)], now=later(60))
    file = abandoned.files[0]
    services.upload_authorize(owner_id=ALICE.id, transfer_id=abandoned.transfer_id, file_id=file.file_id, now=later(60))
    put_object_as_browser(file.key, b"abc")  # uploaded, never completed: no release

    swept = services.expiry_sweep(now=later(60, days=1), page_size=PAGE)

    assert (swept.held_skipped, swept.abandoned_deleted) == (AHEAD, 1)
    assert Transfer.get(abandoned.transfer_id).deleted_by == "orphan-sweep"
    assert _versions(file.key) == []


def test_the_minute_job_releases_a_transfer_behind_a_page_of_ones_still_uploading(settings, mailoutbox):
    settings.FXFER_CONFIRM_RECIPIENTS = "external"
    settings.FXFER_INTERNAL_DOMAINS = ["corp.example"]
    settings.FXFER_SEND_HOLD_SECONDS = 180
    for n in range(AHEAD):  # their holds end first, but their files never come: they stay pending
        create(recipients=[BOB], confirmed_recipients=[BOB], now=NOW - timedelta(seconds=10 - n))
    ready = create(recipients=[BOB], confirmed_recipients=[BOB])
    file = ready.files[0]
    services.upload_authorize(owner_id=ALICE.id, transfer_id=ready.transfer_id, file_id=file.file_id, now=NOW)
    put_object_as_browser(file.key, b"hello world")
    assert not services.upload_done(
        owner_id=ALICE.id, transfer_id=ready.transfer_id, file_id=file.file_id, now=NOW
    ).released  # waiting for its hold

    done = missend.held_release_due(now=NOW + timedelta(seconds=180), page_size=PAGE)

    assert (done.tried, done.released, done.complete) == (AHEAD + 1, 1, True)
    assert Transfer.get(ready.transfer_id).status == "ready"
    assert [m.to for m in mailoutbox] == [[BOB]]  # its link mail, and no other transfer's


def test_the_approvals_list_shows_one_waiting_behind_unreleased_transfers_that_need_none(settings):
    approval_by_manager(settings)
    for n in range(AHEAD):  # older, unreleased (their files never came), to an inside address: no approval
        create(recipients=["carl@corp.example"], now=NOW - timedelta(minutes=10 - n))
    waiting = create(recipients=[BOB], now=NOW)
    file = waiting.files[0]
    services.upload_authorize(owner_id=ALICE.id, transfer_id=waiting.transfer_id, file_id=file.file_id, now=NOW)
    put_object_as_browser(file.key, b"hello world")
    services.upload_done(owner_id=ALICE.id, transfer_id=waiting.transfer_id, file_id=file.file_id, now=NOW)

    with recording() as calls:
        rows = approvals.approvals_pending(now=later(1), limit=1)

    assert [row.transfer_id for row in rows] == [waiting.transfer_id]
    # One Query for the index's keys and one BatchGetItem for their transfers, not a GetItem per transfer.
    assert sorted(operation for _service, operation in calls.calls) == ["BatchGetItem", "Query"]
