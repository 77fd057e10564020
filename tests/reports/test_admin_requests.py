"""Compliance and upload requests: search finds requests and replies (with their kind) by guest and by a file a
guest sent; a request's page shows its terms, guests and received files; a transfer's page shows its replies and
their events in its timeline; revoke, extend, hold and delete-now work on requests; the daily figures count
requests, received files and their downloads."""

import base64
import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from fxfer import aws
from reports.models import DailyStats
from reports.services import daily_stats_rebuild, local_day
from tests.reports.conftest import UA, events_of
from tests.transfers.conftest import (  # noqa: F401 - fixtures the transfer helpers need
    ALICE,
    LINK,
    Sender,
    _bucket_policy_without_conditions_is_not_ours,
    _fresh_kms_key_arn,
    code_from,
    put_object_as_browser,
    ready_transfer,
    tokens_from,
)
from transfers import services
from transfers.errors import TransferError
from transfers.models import Transfer, TransferSearchTerm
from transfers.policy import FileDeclared

NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
BOB, DAN = "bob@partner.example", "dan@supplier.example"
GUEST_IP, GUEST_UA = "198.51.100.7", "BobMail/2.0"


# --- helpers: real requests, made through the services -----------------------------------------------------


def _grant(mailoutbox, address: str, *, now: datetime = NOW) -> services.AccessGranted:
    """The guest opens their link and proves their address with the code from their mail."""
    token = tokens_from(mailoutbox)[address]
    ids = {"ip": GUEST_IP, "user_agent": GUEST_UA, "now": now}
    services.guest_link_open(token=token, **ids)
    services.guest_code_send(token=token, **ids)
    return services.guest_code_verify(token=token, code=code_from(mailoutbox, address), **ids)


def _sha256(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode()


def _upload(granted, name: str, body: bytes, *, now: datetime = NOW, by_s3_event: bool = False) -> str:
    """A guest declares one file and uploads it straight to S3; the server verifies it (the browser's "done"
    call, or the S3 event when `by_s3_event`). Returns the file id."""
    guest = {"transfer_id": granted.transfer_id, "recipient_id": granted.recipient_id, "grant": granted.grant}
    declared = services.request_files_declare(
        **guest, files=[FileDeclared(name=name, size=len(body), sha256=_sha256(body))], now=now
    )
    file = declared.files[0]
    services.upload_authorize(**guest, file_id=file.file_id, now=now)
    put_object_as_browser(file.key, body, ChecksumAlgorithm="SHA256", ChecksumSHA256=_sha256(body))
    if by_s3_event:
        # What the S3 event handler (upload_object_noticed) calls, at the test's time
        verified = services.file_verify(key=file.key, actor="job:on_object_created", now=now)
    else:
        verified = services.upload_done(**guest, file_id=file.file_id, now=now)
    assert verified.outcome == "verified"
    return file.file_id


def _finish(granted, note: str = "", *, now: datetime = NOW) -> None:
    services.request_finish(
        transfer_id=granted.transfer_id, recipient_id=granted.recipient_id, grant=granted.grant, note=note, now=now
    )


def _ask(*, sender=ALICE, now: datetime = NOW, **kwargs) -> services.RequestCreated:
    return services.request_create(
        sender=sender,
        recipients=kwargs.pop("recipients", [BOB, DAN]),
        subject=kwargs.pop("subject", "Drawings for the bid"),
        message="Please send the drawings.",
        closes_in=kwargs.pop("closes_in", timedelta(days=5)),
        now=now,
        **kwargs,
    )


def _reply(granted: services.AccessGranted, *, now: datetime = NOW) -> services.AccessGranted:
    """A recipient of a transfer, in their guest session on it, starts a reply."""
    return services.reply_open(
        transfer_id=granted.transfer_id, recipient_id=granted.recipient_id, grant=granted.grant, now=now, ip=GUEST_IP
    )


def _sent(*, sender, recipients: list[str], body: bytes, now: datetime, allow_replies: bool = False):
    """A released transfer of one file, sent by `sender` (ready_transfer's are always Alice's)."""
    created = services.transfer_create(
        sender=sender,
        recipients=recipients,
        files=[FileDeclared(name="offer.pdf", size=len(body))],
        allow_replies=allow_replies,
        now=now,
    )
    file = created.files[0]
    owner = {"owner_id": sender.id, "transfer_id": created.transfer_id, "file_id": file.file_id, "now": now}
    services.upload_authorize(**owner)
    put_object_as_browser(file.key, body)
    assert services.upload_done(**owner).released
    return created


def _day(moment: datetime) -> str:
    return timezone.localtime(moment).date().isoformat()


def _search(client, **query) -> str:
    query = {"first_day": _day(NOW - timedelta(days=1)), "last_day": _day(NOW + timedelta(days=1)), **query}
    return client.get("/admin/transfers/", query).content.decode()


def _results(page: str) -> str:
    return page.split('id="transfer-results"')[1].split("</table>")[0]


def _row_of(page: str, transfer_id: str) -> str:
    return _results(page).split(f"/admin/transfers/{transfer_id}/")[1].split("</tr>")[0]


def _section(page: str, section_id: str) -> str:
    return page.split(f'id="{section_id}"')[1].split("</section>")[0]


@pytest.fixture
def asked(mailoutbox):
    """An open request to Bob and Dan: Bob uploads a drawing and finishes with a note; Dan has done nothing."""
    created = _ask(max_files=4, max_file_bytes=10 * 1024**2, allowed_extensions=["pdf", "zip"])
    bob = _grant(mailoutbox, BOB)
    file_id = _upload(bob, "図面.pdf", b"drawing bytes")
    _finish(bob, "Here are the drawings, rev. B")
    return created, bob, file_id


@pytest.fixture
def replied(mailoutbox):
    """A transfer sent with "allow replies": Bob sends a file back through its reply request, Alice fetches it."""
    created, _tokens = ready_transfer(
        recipients=[BOB], name="見積依頼.pdf", now=NOW, mailoutbox=mailoutbox, allow_replies=True
    )
    reply_id = Transfer.get(created.transfer_id).reply_request_id
    granted = _reply(_grant(mailoutbox, BOB), now=NOW + timedelta(minutes=1))
    assert granted.transfer_id == reply_id
    file_id = _upload(granted, "見積書.xlsx", b"our quotation", now=NOW + timedelta(minutes=2))
    _finish(granted, "Quotation attached", now=NOW + timedelta(minutes=3))
    services.received_download_url(
        owner_id=ALICE.id, transfer_id=reply_id, file_id=file_id, ip="203.0.113.9", now=NOW + timedelta(minutes=4)
    )
    return created, reply_id, file_id


# --- search ------------------------------------------------------------------------------------------------


@pytest.fixture
def no_scan(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the transfer search scanned a table")

    for model in (Transfer, TransferSearchTerm):
        monkeypatch.setattr(model, "scan", refuse)


def test_the_list_shows_sent_transfers_requests_and_replies_and_filters_by_kind(officer, asked, replied, no_scan):
    request_id = asked[0].request_id
    transfer_id, reply_id = replied[0].transfer_id, replied[1]
    page = _search(officer)
    assert '<td class="fx-kind">Request</td>' in _row_of(page, request_id)
    assert '<td class="fx-kind">Sent</td>' in _row_of(page, transfer_id)
    assert '<td class="fx-kind">Reply</td>' in _row_of(page, reply_id)
    assert "<td>open</td>" in _row_of(page, request_id)  # a request that takes uploads is "open", not "ready"

    for kind, only in (("request", request_id), ("reply", reply_id), ("send", transfer_id)):
        for search in ({}, {"field": "recipient", "value": BOB}):  # by date (GSI by-day) and by term
            results = _results(_search(officer, kind=kind, **search))
            assert results.count('href="/admin/transfers/') == 1 and only in results, (kind, search)

    assert "Select a valid choice" in _search(officer, kind="everything")  # not a kind: the form says so


def test_a_request_is_found_by_a_guest_who_sent_nothing_and_by_a_file_a_guest_sent(officer, asked, no_scan):
    request_id = asked[0].request_id
    for field, value in (("recipient", DAN.upper()), ("domain", "supplier.example"), ("file", "図面.PDF")):
        results = _results(_search(officer, field=field, value=value))
        assert results.count('href="/admin/transfers/') == 1 and request_id in results, field


def test_a_reply_is_found_by_the_file_sent_back(officer, replied, no_scan):
    results = _results(_search(officer, field="file", value="見積書.xlsx"))
    assert results.count('href="/admin/transfers/') == 1 and replied[1] in results


def test_the_status_filter_knows_closed_requests(officer, asked, no_scan):
    request_id = asked[0].request_id
    services.request_close(owner_id=ALICE.id, transfer_id=request_id, now=NOW + timedelta(minutes=5))
    assert request_id in _results(_search(officer, field="recipient", value=BOB, status="closed"))
    assert "No transfer matches." in _search(officer, field="recipient", value=BOB, status="ready")


# --- the request's page ------------------------------------------------------------------------------------


def test_the_request_page_shows_its_terms_guests_and_received_files(officer, asked):
    created, _bob, file_id = asked
    services.received_download_url(
        owner_id=ALICE.id, transfer_id=created.request_id, file_id=file_id, ip="203.0.113.9", user_agent="Edge/1"
    )
    page = officer.get(f"/admin/transfers/{created.request_id}/").content.decode()
    assert "Request: files Alice Sender asked outside people for" in page
    assert timezone.localtime(created.closes_at).strftime("%Y-%m-%d %H:%M:%S") in page.split('id="closes-at"')[1]
    limits = page.split('id="request-limits"')[1].split("</dd>")[0]
    assert "4 files" in limits and "10.0\xa0MB" in limits and "pdf, zip" in limits

    guests = _section(page, "guests")
    bob_row = guests.split(BOB)[1].split("</tr>")[0]
    assert "Here are the drawings, rev. B" in bob_row and "not yet" not in bob_row
    assert "not yet" in guests.split(DAN)[1].split("</tr>")[0]  # Dan has not finished

    files = _section(page, "files")
    row = files.split("図面.pdf")[1].split("</tr>")[0]
    assert BOB in row and _sha256(b"drawing bytes") in row and "verified" in row
    assert hashlib.sha256(b"drawing bytes").hexdigest() in row  # as sha256sum prints it
    assert timezone.localtime(NOW).strftime("%Y-%m-%d %H:%M:%S") in row  # when it was verified

    downloads = _section(page, "downloads")
    assert "request.downloaded" in downloads and "203.0.113.9" in downloads and "Edge/1" in downloads

    timeline = _section(page, "timeline")
    for action in ("request.created", "mail.sent", "access.granted", "upload.started", "file.verified"):
        assert action in timeline
    assert "request.finished" in timeline and "fx-reply" not in timeline  # a request's own events


def test_a_transfer_shows_its_replies_and_their_events_in_its_own_timeline(officer, replied):
    created, reply_id, _file_id = replied
    page = officer.get(f"/admin/transfers/{created.transfer_id}/").content.decode()
    replies = _section(page, "replies")
    assert f'href="/admin/transfers/{reply_id}/"' in replies
    row = replies.split("見積書.xlsx")[1].split("</tr>")[0]
    assert BOB in row and _sha256(b"our quotation") in row and "13\xa0bytes" in row
    assert timezone.localtime(NOW + timedelta(minutes=2)).strftime("%Y-%m-%d %H:%M:%S") in row
    assert "Quotation attached" in replies  # Bob's note
    assert "request.downloaded" in replies and "203.0.113.9" in replies  # Alice fetched the reply
    assert "request.downloaded" not in _section(page, "downloads")  # the transfer's downloads are the recipients'

    rows = _section(page, "timeline").split("<tr>")[2:]  # after the header row

    def position(action: str, *, from_reply: bool) -> int:
        return next(i for i, row in enumerate(rows) if action in row and ("fx-reply" in row) == from_reply)

    assert (
        position("transfer.created", from_reply=False)
        < position("reply.opened", from_reply=False)  # the transfer's own event: Bob opened a reply
        < position("file.verified", from_reply=True)  # then the reply request's, merged by time
        < position("request.finished", from_reply=True)
        < position("request.downloaded", from_reply=True)
    )
    marked = [row for row in rows if "fx-reply" in row]
    assert all(f'href="/admin/transfers/{reply_id}/"' in row for row in marked)

    reply_page = officer.get(f"/admin/transfers/{reply_id}/").content.decode()
    kind = reply_page.split('id="transfer-kind"')[1].split("</dd>")[0]
    assert "Reply" in kind and f'href="/admin/transfers/{created.transfer_id}/"' in kind
    assert "見積書.xlsx" in _section(reply_page, "files")


# --- actions -----------------------------------------------------------------------------------------------


def _offered(client, transfer_id: str) -> set[str]:
    page = client.get(f"/admin/transfers/{transfer_id}/").content.decode()
    labels = ("Revoke", "Extend", "Put on legal hold", "Release legal hold", "Delete files now")
    return {label for label in labels if f'aria-label="{label}"' in page}


def test_compliance_revokes_an_open_request(officer, carol, asked, mailoutbox):
    created, bob, file_id = asked
    assert _offered(officer, created.request_id) == {"Revoke", "Extend", "Put on legal hold", "Delete files now"}
    response = officer.post(
        f"/admin/transfers/{created.request_id}/revoke/", {"revoke-reason": "Asked the wrong company"}, follow=True
    )
    assert "The request is revoked." in response.content.decode()
    assert Transfer.get(created.request_id).status == "revoked"
    [event] = events_of("transfer.revoked")
    assert event.actor == f"user:{carol.user_id}" and event.details["reason"] == "Asked the wrong company"
    assert (event.ip, event.user_agent) == ("127.0.0.1", UA)
    with pytest.raises(TransferError):  # the guest uploads nothing more
        services.request_files_declare(
            transfer_id=bob.transfer_id,
            recipient_id=bob.recipient_id,
            grant=bob.grant,
            files=[FileDeclared(name="more.pdf", size=3)],
        )
    with pytest.raises(TransferError):  # and the employee no longer fetches what came
        services.received_download_url(owner_id=ALICE.id, transfer_id=created.request_id, file_id=file_id)


@pytest.mark.parametrize("closed_by", ["employee", "time"])
def test_a_closed_request_can_be_extended_revoked_held_and_deleted(officer, mailoutbox, closed_by):
    if closed_by == "employee":
        created = _ask()
        services.request_close(owner_id=ALICE.id, transfer_id=created.request_id, now=NOW)
    else:  # still "ready" in the table, closed as of now
        created = _ask(now=NOW - timedelta(hours=2), closes_in=timedelta(hours=1))
    assert _offered(officer, created.request_id) == {"Extend", "Revoke", "Put on legal hold", "Delete files now"}

    # What was received may be kept longer (an inquiry), uploads stay closed.
    stored = Transfer.get(created.request_id)
    later = timezone.localtime(stored.expires_at + timedelta(days=1)).replace(second=0, tzinfo=None)
    done = officer.post(
        f"/admin/transfers/{created.request_id}/extend/",
        {"extend-reason": "Keep them longer", "extend-expires_at": later.strftime("%Y-%m-%dT%H:%M")},
        follow=True,
    )
    assert "The expiry is moved." in done.content.decode()
    extended = Transfer.get(created.request_id)
    assert timezone.localtime(extended.expires_at).replace(tzinfo=None) == later
    assert extended.closes_at == stored.closes_at
    assert events_of("transfer.extended")[-1].outcome == "ok"

    done = officer.post(f"/admin/transfers/{created.request_id}/revoke/", {"revoke-reason": "Stop it"}, follow=True)
    assert "The request is revoked." in done.content.decode()
    assert Transfer.get(created.request_id).status == "revoked"


def test_extending_an_open_request_moves_when_its_received_files_go(officer, asked):
    created = asked[0]
    new_expiry = timezone.localtime(created.expires_at + timedelta(days=3)).replace(second=0, tzinfo=None)
    response = officer.post(
        f"/admin/transfers/{created.request_id}/extend/",
        {"extend-reason": "Audit of the bid", "extend-expires_at": new_expiry.strftime("%Y-%m-%dT%H:%M")},
        follow=True,
    )
    assert "The expiry is moved." in response.content.decode()
    stored = Transfer.get(created.request_id)
    assert timezone.localtime(stored.expires_at).replace(tzinfo=None) == new_expiry
    assert stored.closes_at == created.closes_at  # uploads still stop when they would have
    assert events_of("transfer.extended")[-1].details["by"] == "compliance"


def test_a_request_is_never_extended_past_the_longest_retention(officer, mailoutbox, settings):
    created = _ask(closes_in=timedelta(days=5), keep_days=14)
    too_late = NOW + timedelta(days=settings.FXFER_MAX_RETENTION_DAYS, hours=1)  # created at NOW
    refused = officer.post(
        f"/admin/transfers/{created.request_id}/extend/",
        {
            "extend-reason": "Keep them longer",
            "extend-expires_at": timezone.localtime(too_late).strftime("%Y-%m-%dT%H:%M"),
        },
        follow=True,
    )
    assert "The new expiry must be after the current one and no later than" in refused.content.decode()
    assert Transfer.get(created.request_id).expires_at == created.expires_at
    assert events_of("transfer.extended")[-1].outcome == "refused"


def test_a_legal_hold_on_a_transfer_holds_its_replies_until_released(officer, replied):
    created, reply_id, file_id = replied
    reply_key = f"files/{reply_id}/{file_id}"
    base = f"/admin/transfers/{created.transfer_id}/"
    held = officer.post(base + "legal-hold/", {"legal-hold-reason": "Bid dispute 2026-7"}, follow=True)
    assert "Its replies are held too (1 stored object versions)." in held.content.decode()
    reply = Transfer.get(reply_id)
    assert reply.held and reply.hold_reason == "Bid dispute 2026-7"
    # What the recipient sent back survives its own expiry and a delete attempt while held.
    swept = services.expiry_sweep(now=reply.expires_at + timedelta(hours=1))
    assert swept.held_skipped >= 1 and len(_versions(reply_key)) == 1
    refused = officer.post(f"/admin/transfers/{reply_id}/delete-now/", {"delete-now-reason": "x"}, follow=True)
    assert "legal hold" in refused.content.decode() and len(_versions(reply_key)) == 1

    released = officer.post(base + "release-hold/", {"release-hold-reason": "Settled"}, follow=True)
    assert "So do its replies." in released.content.decode()
    assert not Transfer.get(reply_id).held and not Transfer.get(created.transfer_id).held


def _versions(key: str) -> list:
    page = aws.client("s3").list_object_versions(Bucket=settings.FXFER_BUCKET, Prefix=key)
    return [v for v in page.get("Versions", []) if v["Key"] == key]


def test_hold_release_and_delete_now_on_a_closed_request(officer, carol, asked):
    created, _bob, file_id = asked
    key = f"files/{created.request_id}/{file_id}"
    services.request_close(owner_id=ALICE.id, transfer_id=created.request_id)
    base = f"/admin/transfers/{created.request_id}/"

    held = officer.post(base + "legal-hold/", {"legal-hold-reason": "Bid dispute 2026-4"}, follow=True)
    assert "The request is on legal hold (1 stored object versions held)." in held.content.decode()
    assert _offered(officer, created.request_id) == {"Extend", "Revoke", "Release legal hold"}
    refused = officer.post(base + "delete-now/", {"delete-now-reason": "Clean up"}, follow=True)
    assert "legal hold" in refused.content.decode() and _versions(key)

    released = officer.post(base + "release-hold/", {"release-hold-reason": "Dispute settled"}, follow=True)
    assert "the request follows its normal expiry again" in released.content.decode()
    done = officer.post(base + "delete-now/", {"delete-now-reason": "Received by mistake"}, follow=True)
    html = done.content.decode()
    assert "The files are deleted (1 deletion receipts recorded)." in html
    assert _versions(key) == []
    [receipt] = events_of("file.deleted")
    assert receipt.actor == f"user:{carol.user_id}" and receipt.details["reason"] == "Received by mistake"
    assert "file.deleted" in html.split("Deletion receipts", 1)[1].split("Actions", 1)[0]


# --- daily figures -----------------------------------------------------------------------------------------

DAY_NOW = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)  # 10:00 on 28 November in Tokyo


def test_the_day_counts_requests_files_received_and_their_downloads(alice, officer, mailoutbox):
    sender = Sender(id=alice.user_id, email=alice.email, display_name=alice.display_name)
    at = {"now": DAY_NOW}
    created = _ask(sender=sender, recipients=[BOB, DAN], **at)
    bob = _grant(mailoutbox, BOB, **at)
    first = _upload(bob, "a.pdf", b"12345", **at)
    _upload(bob, "b.pdf", b"1234567", by_s3_event=True, **at)  # the S3 event verified it, not the guest
    _finish(bob, **at)
    services.received_download_url(owner_id=sender.id, transfer_id=created.request_id, file_id=first, **at)

    sent = _sent(sender=sender, recipients=["eve@client.example"], body=b"hello", allow_replies=True, **at)
    eve = _grant(mailoutbox, "eve@client.example", **at)
    _upload(_reply(eve, **at), "c.pdf", b"123", **at)
    services.guest_download_url(
        transfer_id=eve.transfer_id, recipient_id=eve.recipient_id, grant=eve.grant, file_id=sent.files[0].file_id, **at
    )

    daily_stats_rebuild(day=local_day(DAY_NOW))
    for scope in ("all", "dept:Sales"):
        figures = DailyStats.get("2026-11-28", scope).figures
        assert {k: figures[k] for k in ("transfers_sent", "requests", "files", "files_received")} == {
            "transfers_sent": 1,
            "requests": 1,  # the reply request that came with the transfer is not an upload request
            "files": 1,
            "files_received": 3,  # two through the request, one through the reply
        }, scope
        assert figures["bytes_uploaded"] == 5 + 5 + 7 + 3, scope  # what was sent and what was received
        assert (figures["downloads"], figures["bytes_downloaded"], figures["received_downloads"]) == (1, 5, 1)
        assert figures["domains"] == ["client.example", "partner.example", "supplier.example"], scope

    report = officer.get("/admin/reports/daily/", {"day": "2026-11-28"}).content.decode()
    assert "Files received" in report and "Received files downloaded" in report


def test_a_reply_request_alone_is_not_an_upload_request(alice):
    from reports.aggregation import DayEvent, tally

    user = f"user:{alice.user_id}"
    figures = tally(
        [
            DayEvent("1", "request.created", "ok", user, "transfer:q1", {"recipients": ["x@one.example"]}),
            DayEvent("2", "request.created", "ok", user, "transfer:q2", {"reply_to": "t1", "recipients": []}),
            DayEvent("3", "request.created", "refused", user, "transfer:q3", {}),
        ]
    ).figures()
    assert figures["requests"] == 1 and figures["domains"] == ["one.example"]


def test_the_dashboard_shows_the_new_figures(officer):
    page = officer.get("/admin/").content.decode()
    assert "Files received" in page and "Received files downloaded" in page
