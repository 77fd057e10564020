"""Upload requests (issue 5) through their services and selectors, on in-process moto: an employee asks outside
people for files; each guest proves their address with a code, uploads within the request's limits straight
to S3, sees only their own files and downloads nothing; the employee is told when they finish, downloads what
was verified, closes early or lets the request expire. Replies to a transfer go through the same request."""

import hashlib
from datetime import timedelta
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import requests
from django.conf import settings

from fxfer import aws
from reports.models import AuditEvent
from tests.transfers.conftest import (
    ALICE,
    MALLORY,
    NOW,
    as_guest,
    browser_post,
    browser_put_parts,
    checksums_of,
    code_from,
    create,
    create_request,
    guest_grant,
    guest_upload,
    later,
    put_object_as_browser,
    ready_transfer,
    sign_parts,
    tokens_from,
)
from transfers import selectors, services, storage
from transfers.errors import TransferError
from transfers.models import File, OneTimeCode, Recipient, Transfer
from transfers.policy import FileDeclared

BOB = "bob@partner.example"
CAROL = "carol@other.example"
OFFICER = "u-carol"
MiB = 1024**2
BIG = bytes(range(256)) * (12 * MiB // 256)  # 12 MiB: with `small_parts`, parts of 5, 5 and 2 MiB


def _events(transfer_id: str, action: str | None = None) -> list[AuditEvent]:
    events = sorted(AuditEvent.by_subject.query(f"transfer:{transfer_id}"), key=lambda e: e.sort_key)
    return [e for e in events if action is None or e.action == action]


def _all_events(action: str) -> list[AuditEvent]:
    return sorted((e for e in AuditEvent.scan() if e.action == action), key=lambda e: e.sort_key)


def _refused(code: str, call) -> TransferError:
    with pytest.raises(TransferError) as caught:
        call()
    assert caught.value.code == code, caught.value
    return caught.value


def _guest(request_id: str, email: str) -> Recipient:
    return next(r for r in Recipient.query(request_id, consistent_read=True) if r.email == email)


def _versions(key: str) -> list:
    page = aws.client("s3").list_object_versions(Bucket=settings.FXFER_BUCKET, Prefix=key)
    return [v for v in page.get("Versions", []) + page.get("DeleteMarkers", []) if v["Key"] == key]


def _declare(access, *files: tuple[str, int], now=NOW) -> services.FilesDeclared:
    return services.request_files_declare(
        **as_guest(access), files=[FileDeclared(name=name, size=size) for name, size in files], now=now
    )


@pytest.fixture
def small_parts(settings):
    settings.FXFER_MULTIPART_THRESHOLD = 6 * MiB
    settings.FXFER_MULTIPART_PART_BYTES = 5 * MiB


@pytest.fixture
def asked(mailoutbox):
    """An open request to Bob and Carol, and each one's link token read from their own mail."""
    created = create_request(recipients=[BOB, CAROL])
    tokens = tokens_from(mailoutbox)
    mailoutbox.clear()
    return created, tokens


@pytest.fixture
def bob(asked, mailoutbox):
    """Bob in his guest session of the request."""
    _created, tokens = asked
    access = guest_grant(tokens[BOB], mailoutbox, BOB)
    mailoutbox.clear()
    return access


@pytest.fixture
def limited(mailoutbox):
    """A request with tight limits: 2 files of at most 100 bytes, 150 bytes in all, PDFs only; Bob and Carol
    are in their guest sessions."""
    created = create_request(
        recipients=[BOB, CAROL], max_files=2, max_file_bytes=100, max_total_bytes=150, allowed_extensions=["PDF"]
    )
    tokens = tokens_from(mailoutbox)
    access = {who: guest_grant(tokens[who], mailoutbox, who) for who in (BOB, CAROL)}
    mailoutbox.clear()
    return created, access


# --- request_create --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        (lambda s: {"recipients": [" ", ""]}, "recipients_missing"),
        (lambda s: {"recipients": [BOB, "not-an-address"]}, "recipient_invalid"),
        (lambda s: {"closes_in": timedelta(minutes=59)}, "expiry_invalid"),
        (lambda s: {"closes_in": timedelta(days=s.FXFER_MAX_EXPIRY_DAYS, seconds=1)}, "expiry_invalid"),
        (lambda s: {"keep_days": 0}, "keep_days_invalid"),
        (lambda s: {"keep_days": s.FXFER_MAX_RETENTION_DAYS + 1}, "keep_days_invalid"),
        (lambda s: {"max_files": 0}, "max_files_invalid"),
        (lambda s: {"max_files": s.FXFER_MAX_FILES + 1}, "max_files_invalid"),
        (lambda s: {"max_file_bytes": s.FXFER_MAX_FILE_BYTES + 1}, "max_file_bytes_invalid"),
        (lambda s: {"max_file_bytes": 10 * MiB, "max_total_bytes": 10 * MiB - 1}, "max_total_bytes_invalid"),
        (lambda s: {"max_total_bytes": s.FXFER_MAX_TRANSFER_BYTES + 1}, "max_total_bytes_invalid"),
        (lambda s: {"allowed_extensions": ["pdf", "exe"]}, "extensions_invalid"),
        (lambda s: {"allowed_extensions": [".EXE"]}, "extensions_invalid"),
        (lambda s: {"allowed_extensions": ["pdf", "p*f"]}, "extensions_invalid"),
        (lambda s: {"allowed_extensions": ["pdf/../x"]}, "extensions_invalid"),
    ],
)
def test_a_request_outside_the_policy_is_refused_and_nothing_is_sent(changes, code, mailoutbox):
    _refused(code, lambda: create_request(**changes(settings)))
    assert list(Transfer.scan()) == [] and list(Recipient.scan()) == []
    assert mailoutbox == []
    assert _all_events("request.created") == [] and _all_events("mail.sent") == []


def test_each_guest_gets_their_own_mail_with_their_own_link(mailoutbox):
    created = create_request(
        recipients=[BOB, CAROL],
        subject="Signed contract",
        message="Please send the signed copies.",
        closes_in=timedelta(days=3),
        keep_days=10,
        max_files=5,
        allowed_extensions=["PDF", ".xlsx", "pdf"],
        ip="203.0.113.5",
        user_agent="UA/1",
    )
    assert created.recipients == (BOB, CAROL) and created.mails_sent == 2
    assert created.closes_at == later(days=3) and created.expires_at == later(days=13)
    assert sorted(m.to[0] for m in mailoutbox) == [BOB, CAROL]
    tokens = tokens_from(mailoutbox)
    assert tokens[BOB] != tokens[CAROL]
    for message in mailoutbox:
        me, other = message.to[0], (CAROL if message.to == [BOB] else BOB)
        assert message.cc == [] and message.bcc == [] and message.reply_to == [ALICE.email]
        assert f"/t/{tokens[me]}" in message.body and tokens[other] not in message.body
        assert message.subject == "Alice Sender asks you for files: Signed contract"
        assert "Alice Sender <alice@corp.example> asks you to send files" in message.body
        assert "Please send the signed copies." in message.body
        assert "You can upload until 1 Dec 2026, 10:00 JST." in message.body  # the company's time zone
        assert "Up to 5 files" in message.body and "Types: .pdf, .xlsx." in message.body
    request = Transfer.get(created.request_id)
    assert (request.kind, request.status, request.owner_id) == ("request", "ready", ALICE.id)
    assert (request.keep_days, request.max_files, request.allowed_extensions) == (10, 5, "pdf,xlsx")
    for guest in Recipient.query(created.request_id):
        assert guest.token_hash == hashlib.sha256(tokens[guest.email].encode()).hexdigest()
        assert guest.parent_kind == "request"
    [event] = _events(created.request_id, "request.created")
    assert (event.actor, event.outcome, event.ip, event.user_agent) == (f"user:{ALICE.id}", "ok", "203.0.113.5", "UA/1")
    assert event.details["recipients"] == [BOB, CAROL] and event.details["keep_days"] == 10
    assert event.details["allowed_extensions"] == ["pdf", "xlsx"]
    sent = _events(created.request_id, "mail.sent")
    assert sorted((e.details["kind"], e.details["to"], e.outcome) for e in sent) == [
        ("request_link", BOB, "ok"),
        ("request_link", CAROL, "ok"),
    ]


def test_a_request_never_keeps_files_longer_than_the_site_keeps_any_file():
    """The S3 lifecycle backstop deletes objects FXFER_MAX_RETENTION_DAYS (+1) after upload: a request must
    not promise to keep a received file longer, or the employee finds it gone before its "kept until"."""
    longest = timedelta(days=settings.FXFER_MAX_RETENTION_DAYS)
    try:
        created = create_request(closes_in=longest, keep_days=settings.FXFER_MAX_RETENTION_DAYS)
    except TransferError as refused:
        assert refused.code in {"keep_days_invalid", "expiry_invalid"}
    else:
        assert created.expires_at - NOW <= longest, f"received files kept until {created.expires_at}"


# --- the guest's link and code ---------------------------------------------------------------------------------


def test_opening_a_request_link_shows_who_asks_and_consumes_nothing(asked, mailoutbox):
    created, tokens = asked
    for _ in range(5):  # a mail scanner prefetching, then the person
        link = services.guest_link_open(token=tokens[BOB], ip="203.0.113.9", now=NOW)
    assert (link.kind, link.transfer_id, link.recipient_email_masked) == (
        "request",
        created.request_id,
        "b***@partner.example",
    )
    assert (link.sender_name, link.subject, link.message) == (
        "Alice Sender",
        "Signed contract",
        "Please send the signed copies.",
    )
    assert link.closes_at == created.closes_at and link.locked is False
    bob = _guest(created.request_id, BOB)
    assert (bob.failed_code_attempts, bob.locked, bob.files_reserved) == (0, False, 0)
    assert list(OneTimeCode.scan()) == [] and mailoutbox == []
    opened = _events(created.request_id, "link.opened")
    assert len(opened) == 5 and {(e.actor, e.outcome) for e in opened} == {(f"guest:{bob.recipient_id}", "ok")}


def test_the_code_goes_to_the_guests_own_address_and_grants_an_upload_session(asked, mailoutbox):
    created, tokens = asked
    sent = services.guest_code_send(token=tokens[BOB], now=NOW)
    assert sent.recipient_email_masked == "b***@partner.example"
    [message] = mailoutbox
    assert message.to == [BOB] and message.cc == [] and "one-time code" in message.subject
    assert "Alice Sender" in message.body
    access = services.guest_code_verify(token=tokens[BOB], code=code_from(mailoutbox, BOB), now=NOW)
    assert (access.kind, access.transfer_id) == ("request", created.request_id)
    assert access.recipient_id == _guest(created.request_id, BOB).recipient_id
    assert access.expires_at == later(30)
    shown = selectors.guest_request(**as_guest(access), now=NOW)
    assert (shown.recipient_email, shown.subject, shown.uploads, shown.is_reply) == (BOB, "Signed contract", (), False)
    assert [e.outcome for e in _events(created.request_id, "access.granted")] == ["ok"]


def test_wrong_codes_count_and_lock_the_guest_as_on_a_transfer(asked, mailoutbox):
    created, tokens = asked
    services.guest_code_send(token=tokens[BOB], now=NOW)
    right = code_from(mailoutbox, BOB)
    wrong = f"{(int(right) + 1) % 1000000:06d}"
    lefts = [
        _refused(
            "code_wrong", lambda: services.guest_code_verify(token=tokens[BOB], code=wrong, ip="192.0.2.9", now=NOW)
        )
        for _ in range(4)
    ]
    assert [e.params["attempts_left"] for e in lefts] == [4, 3, 2, 1]
    _refused("locked", lambda: services.guest_code_verify(token=tokens[BOB], code=wrong, ip="192.0.2.9", now=NOW))
    _refused("locked", lambda: services.guest_code_verify(token=tokens[BOB], code=right, now=NOW))
    assert _guest(created.request_id, BOB).locked is True
    [notice] = [m for m in mailoutbox if m.to == [ALICE.email]]
    assert BOB in notice.subject and "192.0.2.9" in notice.body
    assert [e.outcome for e in _events(created.request_id, "access.locked")] == ["refused"]
    # Carol's link is not affected.
    assert guest_grant(tokens[CAROL], mailoutbox, CAROL).kind == "request"


def test_a_requests_grant_downloads_nothing_and_a_transfers_grant_uploads_nothing(bob, mailoutbox):
    transfer, transfer_tokens = ready_transfer(recipients=[BOB], mailoutbox=mailoutbox)
    downloader = guest_grant(transfer_tokens[BOB], mailoutbox, BOB)
    # Bob's upload grant names his request: it opens no download of the request or of the transfer.
    _refused("not_found", lambda: selectors.guest_files(**as_guest(bob), now=NOW))
    declared = _declare(bob, ("mine.pdf", 11))
    guest_upload(bob, declared.files[0], b"hello world")
    _refused(
        "not_found",
        lambda: services.guest_download_url(**as_guest(bob), file_id=declared.files[0].file_id, now=NOW),
    )
    # His download grant of the transfer uploads nothing into it.
    _refused("not_found", lambda: _declare(downloader, ("extra.pdf", 5)))
    _refused("not_found", lambda: selectors.guest_request(**as_guest(downloader), now=NOW))
    for call in (services.upload_authorize, services.upload_done, services.upload_cancel):
        _refused(
            "not_found",
            lambda call=call: call(**as_guest(downloader), file_id=transfer.files[0].file_id, now=NOW),
        )
    _refused("not_found", lambda: services.request_finish(**as_guest(downloader), note="hi", now=NOW))
    assert File.get(transfer.transfer_id, transfer.files[0].file_id).state == "verified"
    assert len(list(File.query(transfer.transfer_id))) == 1


# --- limits ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second", "code"),
    [
        ([], [("big.pdf", 101)], "file_too_large"),
        ([], [("sheet.xlsx", 10)], "extension_not_allowed"),
        ([], [("invoice.pdf.exe", 10)], "extension_blocked"),
        ([], [("a.pdf", 10), ("b.pdf", 10), ("c.pdf", 10)], "too_many_files"),
        ([("a.pdf", 10)], [("b.pdf", 10), ("c.pdf", 10)], "too_many_files"),
        ([("a.pdf", 100)], [("b.pdf", 51)], "transfer_too_large"),
    ],
)
def test_a_guest_declaring_files_beyond_the_limits_is_refused(limited, first, second, code):
    created, access = limited
    bob = access[BOB]
    if first:
        _declare(bob, *first)
    _refused(code, lambda: _declare(bob, *second))
    refused = [e for e in _events(created.request_id, "upload.started") if e.outcome == "refused"]
    assert [(e.actor, e.details["reason"]) for e in refused] == [(f"guest:{bob.recipient_id}", code)]
    assert [f["name"] for f in refused[0].details["files"]] == [name for name, _size in second]
    # Nothing of the refused declaration was recorded or reserved.
    files = list(File.query(created.request_id))
    assert sorted(f.name for f in files) == sorted(name for name, _size in first)
    guest = _guest(created.request_id, BOB)
    assert (guest.files_reserved, guest.bytes_reserved) == (len(first), sum(size for _name, size in first))


def test_declared_files_get_server_made_keys_and_count_against_the_guest(limited):
    created, access = limited
    declared = _declare(access[BOB], ("../../Contract.PDF", 40))
    [file] = declared.files
    assert (file.name, file.size, file.upload_mode) == ("Contract.PDF", 40, "post")
    assert file.key == f"files/{created.request_id}/{file.file_id}"
    item = File.get(created.request_id, file.file_id)
    assert (item.uploader_id, item.uploader_email, item.parent_kind) == (access[BOB].recipient_id, BOB, "request")
    shown = selectors.guest_request(**as_guest(access[BOB]), now=NOW)
    assert (shown.files_left, shown.bytes_left) == (1, 110)
    assert "Up to 2 files, 100 B each, 150 B in all. Types: .pdf." == shown.limits_text
    [started] = [e for e in _events(created.request_id, "upload.started") if e.outcome == "ok"]
    assert started.details["files"] == [{"file_id": file.file_id, "name": "Contract.PDF", "size": 40}]


def test_limits_are_per_guest(limited):
    created, access = limited
    _declare(access[BOB], ("a.pdf", 75), ("b.pdf", 75))
    _refused("too_many_files", lambda: _declare(access[BOB], ("c.pdf", 1)))
    # Carol still has her whole allowance.
    carol = _declare(access[CAROL], ("x.pdf", 75), ("y.pdf", 75))
    assert len(carol.files) == 2
    assert Transfer.get(created.request_id).file_count == 4


def test_cancelling_a_pending_file_gives_the_allowance_back(limited):
    created, access = limited
    bob = access[BOB]
    first, second = _declare(bob, ("a.pdf", 100), ("b.pdf", 50)).files
    _refused("too_many_files", lambda: _declare(bob, ("c.pdf", 1)))
    cancelled = services.upload_cancel(**as_guest(bob), file_id=first.file_id, now=NOW)
    assert cancelled.outcome == "cancelled"
    guest = _guest(created.request_id, BOB)
    assert (guest.files_reserved, guest.bytes_reserved) == (1, 50)
    again = _declare(bob, ("c.pdf", 100))
    assert [f.name for f in again.files] == ["c.pdf"]
    shown = selectors.guest_request(**as_guest(bob), now=NOW)
    assert sorted(u.name for u in shown.uploads) == ["b.pdf", "c.pdf"]  # the cancelled one is gone
    assert [e.details["name"] for e in _events(created.request_id, "upload.cancelled")] == ["a.pdf"]
    assert second.file_id in {u.file_id for u in shown.uploads}


# --- scoping -----------------------------------------------------------------------------------------------------


@pytest.fixture
def two_requests(mailoutbox):
    """Request A to Bob and Carol, request B to Bob; each guest in their session with one declared file."""
    first = create_request(recipients=[BOB, CAROL], subject="A")
    tokens_a = tokens_from(mailoutbox)
    mailoutbox.clear()
    second = create_request(recipients=[BOB], subject="B")
    tokens_b = tokens_from(mailoutbox)
    bob_a = guest_grant(tokens_a[BOB], mailoutbox, BOB)
    carol_a = guest_grant(tokens_a[CAROL], mailoutbox, CAROL)
    bob_b = guest_grant(tokens_b[BOB], mailoutbox, BOB)
    files = {
        "bob_a": _declare(bob_a, ("bob-a.pdf", 11)).files[0],
        "carol_a": _declare(carol_a, ("carol-a.pdf", 11)).files[0],
        "bob_b": _declare(bob_b, ("bob-b.pdf", 11)).files[0],
    }
    mailoutbox.clear()
    return first, second, {"bob_a": bob_a, "carol_a": carol_a, "bob_b": bob_b}, files


@pytest.mark.parametrize("call", ["upload_authorize", "upload_done", "upload_cancel"])
def test_a_guest_cannot_touch_another_guests_or_another_requests_file(two_requests, call):
    first, second, access, files = two_requests
    service = getattr(services, call)
    bob_a = as_guest(access["bob_a"])
    attempts = [
        {**bob_a, "file_id": files["carol_a"].file_id},  # another guest's file, same request
        {**bob_a, "file_id": files["bob_b"].file_id},  # another request's file, named in this one
        {**bob_a, "transfer_id": second.request_id, "file_id": files["bob_b"].file_id},  # the other request
        {**bob_a, "recipient_id": access["carol_a"].recipient_id, "file_id": files["carol_a"].file_id},
        {**bob_a, "file_id": "nosuchfile123456"},
    ]
    errors = [_refused("not_found", lambda kw=kw: service(**kw, now=NOW)) for kw in attempts]
    assert {(e.status, e.message) for e in errors} == {(404, errors[0].message)}  # all look the same
    assert File.get(first.request_id, files["carol_a"].file_id).state == "pending"
    assert File.get(second.request_id, files["bob_b"].file_id).state == "pending"
    assert _guest(first.request_id, CAROL).files_reserved == 1
    # His own file is his to use.
    assert service(**bob_a, file_id=files["bob_a"].file_id, now=NOW)


def test_a_guest_sees_only_their_own_uploads(two_requests):
    first, _second, access, _files = two_requests
    bob = selectors.guest_request(**as_guest(access["bob_a"]), now=NOW)
    carol = selectors.guest_request(**as_guest(access["carol_a"]), now=NOW)
    assert [u.name for u in bob.uploads] == ["bob-a.pdf"]
    assert [u.name for u in carol.uploads] == ["carol-a.pdf"]
    assert bob.request_id == first.request_id


def test_a_verified_file_cannot_be_uploaded_again_or_cancelled(bob):
    [file] = _declare(bob, ("contract.pdf", 11)).files
    assert guest_upload(bob, file, b"hello world").outcome == "verified"
    error = _refused(
        "state_conflict", lambda: services.upload_authorize(**as_guest(bob), file_id=file.file_id, now=NOW)
    )
    assert "contract.pdf has already been uploaded." == error.message
    _refused("state_conflict", lambda: services.upload_cancel(**as_guest(bob), file_id=file.file_id, now=NOW))
    stored = File.get(bob.transfer_id, file.file_id)
    assert stored.state == "verified" and len(_versions(file.key)) == 1


def test_a_closed_request_refuses_its_links_and_its_guests(asked, bob, mailoutbox, small_parts):
    created, tokens = asked
    file, big = _declare(bob, ("a.pdf", 11), ("big.zip", len(BIG))).files
    multipart = services.upload_authorize(**as_guest(bob), file_id=big.file_id, now=NOW)
    services.guest_code_send(token=tokens[CAROL], now=NOW)
    closed = services.request_close(owner_id=ALICE.id, transfer_id=created.request_id, ip="203.0.113.5", now=later(5))
    assert closed.closed_at == later(5)
    assert closed.expires_at == later(5, days=settings.FXFER_REQUEST_KEEP_DAYS)
    _refused("not_found", lambda: services.guest_link_open(token=tokens[BOB], now=later(6)))
    _refused(
        "not_found",
        lambda: services.guest_code_verify(token=tokens[CAROL], code=code_from(mailoutbox, CAROL), now=later(6)),
    )
    _refused("not_found", lambda: _declare(bob, ("b.pdf", 5), now=later(6)))
    _refused("not_found", lambda: services.upload_authorize(**as_guest(bob), file_id=file.file_id, now=later(6)))
    _refused("not_found", lambda: services.upload_done(**as_guest(bob), file_id=file.file_id, now=later(6)))
    _refused("not_found", lambda: services.request_finish(**as_guest(bob), note="done", now=later(6)))
    _refused("not_found", lambda: selectors.guest_request(**as_guest(bob), now=later(6)))
    # Its unfinished multipart upload was aborted.
    assert storage.multipart_parts(key=big.key, upload_id=multipart.upload_id) is None
    request = Transfer.get(created.request_id)
    assert (request.status, request.closes_at, request.expires_at) == ("closed", later(5), closed.expires_at)
    [event] = _events(created.request_id, "request.closed")
    assert (event.actor, event.ip, event.details["expires_at"]) == (
        f"user:{ALICE.id}",
        "203.0.113.5",
        closed.expires_at.isoformat(),
    )
    detail = selectors.request_detail_for_owner(owner_id=ALICE.id, request_id=created.request_id, now=later(6))
    assert detail.summary.status == "closed"
    _refused(
        "state_conflict",
        lambda: services.request_close(owner_id=ALICE.id, transfer_id=created.request_id, now=later(7)),
    )


def test_a_file_that_lands_after_the_request_was_closed_is_not_received(bob):
    """Closing stops uploads at once, also one whose POST policy was signed just before."""
    [file] = _declare(bob, ("late.pdf", 11)).files
    services.upload_authorize(**as_guest(bob), file_id=file.file_id, now=NOW)  # its POST policy lasts minutes
    services.request_close(owner_id=ALICE.id, transfer_id=bob.transfer_id, now=later(1))
    put_object_as_browser(file.key, b"hello world")  # the browser's POST, a moment later
    noticed = services.file_verify(key=file.key, actor="job:on_object_created", now=later(2))
    assert noticed.outcome != "verified"
    _refused(
        "not_found",
        lambda: services.received_download_url(
            owner_id=ALICE.id, transfer_id=bob.transfer_id, file_id=file.file_id, now=later(3)
        ),
    )


def test_a_request_past_its_closing_time_refuses_everything_before_any_sweep(mailoutbox):
    created = create_request(recipients=[BOB, CAROL], closes_in=timedelta(hours=1))
    tokens = tokens_from(mailoutbox)
    bob = guest_grant(tokens[BOB], mailoutbox, BOB, now=later(40))
    [file] = _declare(bob, ("a.pdf", 11), now=later(40)).files
    closes_at = created.closes_at
    _refused("not_found", lambda: services.guest_link_open(token=tokens[CAROL], now=closes_at))
    _refused("not_found", lambda: services.guest_code_send(token=tokens[CAROL], now=closes_at))
    _refused("not_found", lambda: _declare(bob, ("b.pdf", 5), now=closes_at))
    _refused("not_found", lambda: services.upload_authorize(**as_guest(bob), file_id=file.file_id, now=closes_at))
    _refused("not_found", lambda: services.request_finish(**as_guest(bob), note="late", now=closes_at))
    assert Transfer.get(created.request_id).status == "ready"  # nothing ran: the read decided
    detail = selectors.request_detail_for_owner(owner_id=ALICE.id, request_id=created.request_id, now=closes_at)
    assert detail.summary.status == "closed"
    _refused(
        "state_conflict",
        lambda: services.request_close(owner_id=ALICE.id, transfer_id=created.request_id, now=closes_at),
    )


# --- the whole flow ------------------------------------------------------------------------------------------------


def test_a_guest_uploads_small_and_large_files_and_finishes_with_a_note(asked, bob, mailoutbox, small_parts):
    created, _tokens = asked
    small, big = _declare(bob, ("契約書.pdf", 11), ("scans.zip", len(BIG))).files
    assert (small.upload_mode, big.upload_mode) == ("post", "multipart")

    posted = services.upload_authorize(**as_guest(bob), file_id=small.file_id, now=NOW)
    assert posted.fields["key"] == small.key
    assert int(browser_post(posted, b"hello world").status_code) == 201  # moto hands `requests` the status as text
    verified = services.upload_done(**as_guest(bob), file_id=small.file_id, now=NOW)
    assert (verified.outcome, verified.released) == ("verified", False)  # a request releases nothing

    plan = services.upload_authorize(**as_guest(bob), file_id=big.file_id, now=later(1))
    assert (plan.mode, plan.part_size, plan.part_count) == ("multipart", 5 * MiB, 3)
    _refused(
        "upload_incomplete",
        lambda: services.upload_complete_multipart(
            **as_guest(bob), file_id=big.file_id, upload_id=plan.upload_id, now=later(2), **checksums_of(BIG)
        ),
    )
    urls = sign_parts({**as_guest(bob), "file_id": big.file_id}, plan.upload_id, [1, 2, 3], now=later(2))
    browser_put_parts(urls, BIG, plan.part_size)
    done = services.upload_complete_multipart(
        **as_guest(bob), file_id=big.file_id, upload_id=plan.upload_id, now=later(3), **checksums_of(BIG)
    )
    assert done.outcome == "verified"
    verified_events = _events(created.request_id, "file.verified")
    assert [(e.actor, e.outcome, e.details["name"]) for e in verified_events] == [
        (f"guest:{bob.recipient_id}", "ok", "契約書.pdf"),
        (f"guest:{bob.recipient_id}", "ok", "scans.zip"),
    ]
    shown = selectors.guest_request(**as_guest(bob), now=later(4))
    assert {u.name: u.state for u in shown.uploads} == {"契約書.pdf": "verified", "scans.zip": "verified"}

    finished = services.request_finish(
        **as_guest(bob), note="Signed on both pages.\nCall me with questions.", ip="198.51.100.7", now=later(5)
    )
    assert (finished.files, finished.dropped, finished.mailed) == (2, 0, True)
    [mail] = mailoutbox
    assert mail.to == [ALICE.email] and mail.subject == f"Files from {BOB}"
    assert f"{BOB} has finished uploading files." in mail.body
    assert "  - 契約書.pdf (11 B)" in mail.body and "  - scans.zip (12 MB)" in mail.body
    assert "Signed on both pages.\nCall me with questions." in mail.body
    assert f"{settings.FXFER_BASE_URL}/requests/{created.request_id}/" in mail.body
    [event] = _events(created.request_id, "request.finished")
    assert (event.actor, event.ip, event.details["note"]) == (f"guest:{bob.recipient_id}", "198.51.100.7", True)
    assert sorted(f["name"] for f in event.details["files"]) == ["scans.zip", "契約書.pdf"]
    [sent] = [e for e in _events(created.request_id, "mail.sent") if e.details["kind"] == "request_finished"]
    assert (sent.outcome, sent.details["to"]) == ("ok", ALICE.email)
    guest = _guest(created.request_id, BOB)
    assert guest.finished_at == later(5) and guest.note == "Signed on both pages.\nCall me with questions."

    # The employee sees every file with its size, checksum and uploader, and Bob's note.
    detail = selectors.request_detail_for_owner(owner_id=ALICE.id, request_id=created.request_id, now=later(6))
    files = {f.name: f for f in detail.files}
    assert (files["契約書.pdf"].size, files["scans.zip"].size) == (11, len(BIG))
    assert {f.uploader_email for f in detail.files} == {BOB}
    assert files["契約書.pdf"].checksum.startswith(("sha256:", "etag:"))
    assert (files["scans.zip"].checksum, files["scans.zip"].checksum_by) == (
        f"sha256:{hashlib.sha256(BIG).hexdigest()}",
        "sender",  # computed by the guest's browser; S3 checked the parts' CRCs, not this
    )
    assert {(g.email, g.note) for g in detail.summary.guests if g.finished_at} == {
        (BOB, "Signed on both pages.\nCall me with questions.")
    }
    assert (detail.summary.file_count, detail.summary.total_bytes) == (2, 11 + len(BIG))


def test_finishing_with_no_file_and_no_note_is_refused_and_mails_nobody(bob, mailoutbox):
    error = _refused("files_missing", lambda: services.request_finish(**as_guest(bob), now=NOW))
    assert "Upload at least one file, or write a note" in error.message
    assert mailoutbox == [] and _events(bob.transfer_id, "request.finished") == []
    assert _guest(bob.transfer_id, BOB).finished_at is None
    # A note alone is enough ("I have nothing for you").
    finished = services.request_finish(**as_guest(bob), note="We have no such documents.", now=NOW)
    assert (finished.files, finished.mailed) == (0, True)
    [mail] = mailoutbox
    assert "No files were uploaded." in mail.body and "We have no such documents." in mail.body


def test_finishing_drops_uploads_that_did_not_finish(bob, mailoutbox):
    done, unfinished, refused = _declare(bob, ("done.pdf", 11), ("half.pdf", 20), ("bad.pdf", 5)).files
    guest_upload(bob, done, b"hello world")
    services.upload_authorize(**as_guest(bob), file_id=unfinished.file_id, now=NOW)
    services.upload_authorize(**as_guest(bob), file_id=refused.file_id, now=NOW)
    put_object_as_browser(refused.key, b"not five bytes")
    assert services.upload_done(**as_guest(bob), file_id=refused.file_id, now=NOW).outcome == "refused"

    finished = services.request_finish(**as_guest(bob), now=later(1))
    assert (finished.files, finished.dropped) == (1, 2)
    states = {f.name: f.state for f in File.query(bob.transfer_id)}
    assert states == {"done.pdf": "verified", "half.pdf": "cancelled", "bad.pdf": "cancelled"}
    [mail] = mailoutbox
    assert "done.pdf" in mail.body and "half.pdf" not in mail.body and "bad.pdf" not in mail.body
    guest = _guest(bob.transfer_id, BOB)
    assert (guest.files_reserved, guest.bytes_reserved) == (1, 11)
    assert sorted(e.details["name"] for e in _events(bob.transfer_id, "upload.cancelled")) == ["bad.pdf", "half.pdf"]
    assert _events(bob.transfer_id, "request.finished")[0].details["dropped"] == 2


# --- the employee ------------------------------------------------------------------------------------------------


def test_the_received_list_shows_requests_and_my_transfers_does_not(mailoutbox):
    sent = create(subject="Outgoing")
    asked = create_request(recipients=[BOB], subject="Incoming")
    theirs = create_request(recipients=[BOB], subject="Mallory's", sender=MALLORY)
    received = selectors.request_list_for_owner(owner_id=ALICE.id, now=NOW)
    assert [(r.request_id, r.subject, r.status) for r in received.items] == [(asked.request_id, "Incoming", "ready")]
    assert [g.email for g in received.items[0].guests] == [BOB]
    mine = selectors.transfer_list_for_owner(owner_id=ALICE.id, now=NOW)
    assert [t.transfer_id for t in mine.items] == [sent.transfer_id]
    _refused("not_found", lambda: selectors.request_detail_for_owner(owner_id=ALICE.id, request_id=theirs.request_id))
    _refused("not_found", lambda: selectors.request_detail_for_owner(owner_id=ALICE.id, request_id=sent.transfer_id))
    _refused("not_found", lambda: selectors.transfer_detail_for_owner(owner_id=ALICE.id, transfer_id=asked.request_id))


def test_the_employee_downloads_a_verified_file_as_an_attachment(bob, mailoutbox):
    done, pending = _declare(bob, ("見積書 2026.pdf", 11), ("later.pdf", 5)).files
    guest_upload(bob, done, b"hello world")
    issued = services.received_download_url(
        owner_id=ALICE.id, transfer_id=bob.transfer_id, file_id=done.file_id, ip="203.0.113.5", now=later(1)
    )
    query = parse_qs(urlsplit(issued.url).query)
    disposition = query["response-content-disposition"][0]
    assert disposition.startswith("attachment;")
    assert unquote(disposition.split("''")[1]) == "見積書 2026.pdf"
    assert query["X-Amz-Expires"] == [str(settings.FXFER_DOWNLOAD_URL_SECONDS)]
    assert requests.get(issued.url, timeout=10).content == b"hello world"
    assert issued.file_name == "見積書 2026.pdf" and issued.expires_at == later(1) + timedelta(
        seconds=settings.FXFER_DOWNLOAD_URL_SECONDS
    )
    [event] = _events(bob.transfer_id, "request.downloaded")
    assert (event.actor, event.outcome, event.ip) == (f"user:{ALICE.id}", "ok", "203.0.113.5")
    assert (event.details["file_id"], event.details["uploader"], event.details["size"]) == (done.file_id, BOB, 11)

    # A file still uploading, someone else, another kind: the same refusal, on record.
    _refused(
        "not_found",
        lambda: services.received_download_url(
            owner_id=ALICE.id, transfer_id=bob.transfer_id, file_id=pending.file_id, now=later(1)
        ),
    )
    _refused(
        "not_found",
        lambda: services.received_download_url(
            owner_id=MALLORY.id, transfer_id=bob.transfer_id, file_id=done.file_id, now=later(1)
        ),
    )
    _refused(
        "not_found",
        lambda: services.received_download_url(
            owner_id=ALICE.id, transfer_id=bob.transfer_id, file_id="../x", now=later(1)
        ),
    )
    refused = [e for e in _events(bob.transfer_id, "request.downloaded") if e.outcome == "refused"]
    assert [e.details["reason"] for e in refused] == ["not_found", "not_found"]  # Mallory's is not even found
    transfer = create()
    _refused(
        "not_found",
        lambda: services.received_download_url(
            owner_id=ALICE.id, transfer_id=transfer.transfer_id, file_id=transfer.files[0].file_id, now=later(1)
        ),
    )


def test_received_files_stay_downloadable_after_close_until_they_expire(bob):
    [file] = _declare(bob, ("a.pdf", 11)).files
    guest_upload(bob, file, b"hello world")
    closed = services.request_close(owner_id=ALICE.id, transfer_id=bob.transfer_id, now=later(1))
    assert services.received_download_url(
        owner_id=ALICE.id, transfer_id=bob.transfer_id, file_id=file.file_id, now=later(2)
    ).url
    _refused(
        "not_found",
        lambda: services.received_download_url(
            owner_id=ALICE.id, transfer_id=bob.transfer_id, file_id=file.file_id, now=closed.expires_at
        ),
    )


def test_only_the_owner_may_close_a_request(asked):
    created, tokens = asked
    _refused("not_found", lambda: services.request_close(owner_id=MALLORY.id, transfer_id=created.request_id, now=NOW))
    transfer = create()
    _refused("not_found", lambda: services.request_close(owner_id=ALICE.id, transfer_id=transfer.transfer_id, now=NOW))
    assert Transfer.get(created.request_id).status == "ready"
    assert services.guest_link_open(token=tokens[BOB], now=NOW)


# --- replies to a transfer -----------------------------------------------------------------------------------------


def test_a_transfer_that_allows_replies_has_its_own_request(mailoutbox):
    transfer, _tokens = ready_transfer(recipients=[BOB, CAROL], mailoutbox=mailoutbox, allow_replies=True)
    item = Transfer.get(transfer.transfer_id)
    reply = Transfer.get(item.reply_request_id)
    assert (reply.kind, reply.reply_to, reply.status, reply.owner_id) == (
        "request",
        transfer.transfer_id,
        "ready",
        ALICE.id,
    )
    assert reply.closes_at == item.expires_at
    assert reply.subject == "Reply: Quarterly figures"
    # The reply's guests are the transfer's recipients; no upload link is mailed to anyone.
    assert {(g.recipient_id, g.email) for g in Recipient.query(reply.transfer_id)} == {
        (r.recipient_id, r.email) for r in Recipient.query(transfer.transfer_id)
    }
    assert all(g.token_hash is None for g in Recipient.query(reply.transfer_id))
    assert not [e for e in _events(reply.transfer_id, "mail.sent")]
    assert sorted(m.to[0] for m in mailoutbox) == [BOB, CAROL]  # the transfer's two link mails only
    [created] = _events(reply.transfer_id, "request.created")
    assert created.details["reply_to"] == transfer.transfer_id


def test_a_recipient_replies_with_files_and_the_sender_is_told(mailoutbox):
    transfer, tokens = ready_transfer(recipients=[BOB], mailoutbox=mailoutbox, allow_replies=True)
    downloader = guest_grant(tokens[BOB], mailoutbox, BOB)
    assert selectors.guest_files(**as_guest(downloader), now=NOW).can_reply is True
    mailoutbox.clear()

    reply = services.reply_open(**as_guest(downloader), ip="198.51.100.7", now=NOW)
    reply_id = Transfer.get(transfer.transfer_id).reply_request_id
    assert (reply.kind, reply.transfer_id, reply.recipient_id) == ("request", reply_id, downloader.recipient_id)
    assert selectors.guest_request(**as_guest(reply), now=NOW).is_reply is True
    [file] = _declare(reply, ("answer.pdf", 11)).files
    assert guest_upload(reply, file, b"hello world").outcome == "verified"
    finished = services.request_finish(**as_guest(reply), note="Here is our answer.", now=later(1))
    assert finished.mailed
    [mail] = mailoutbox
    assert mail.to == [ALICE.email] and f"{BOB} replied with files." in mail.body
    assert f"{settings.FXFER_BASE_URL}/transfers/{transfer.transfer_id}/" in mail.body
    assert "answer.pdf" in mail.body and "Here is our answer." in mail.body

    detail = selectors.transfer_detail_for_owner(owner_id=ALICE.id, transfer_id=transfer.transfer_id, now=later(2))
    assert detail.summary.allows_replies and detail.reply_request_id == reply_id
    assert [(f.name, f.size, f.state, f.uploader_email) for f in detail.replies] == [
        ("answer.pdf", 11, "verified", BOB)
    ]
    received = selectors.request_list_for_owner(owner_id=ALICE.id, now=later(2))
    assert [(r.request_id, r.reply_to) for r in received.items] == [(reply_id, transfer.transfer_id)]
    assert services.received_download_url(
        owner_id=ALICE.id, transfer_id=reply_id, file_id=file.file_id, now=later(2)
    ).url
    assert [e.outcome for e in _events(transfer.transfer_id, "reply.opened")] == ["ok"]
    # The reply grant is an upload grant only: it downloads nothing of the transfer.
    _refused("not_found", lambda: selectors.guest_files(**as_guest(reply), now=NOW))


def test_without_allow_replies_there_is_no_reply(mailoutbox):
    transfer, tokens = ready_transfer(recipients=[BOB], mailoutbox=mailoutbox)
    downloader = guest_grant(tokens[BOB], mailoutbox, BOB)
    assert selectors.guest_files(**as_guest(downloader), now=NOW).can_reply is False
    _refused("replies_closed", lambda: services.reply_open(**as_guest(downloader), now=NOW))
    [event] = _events(transfer.transfer_id, "reply.opened")
    assert (event.outcome, event.details["reason"]) == ("refused", "replies_closed")
    assert Transfer.get(transfer.transfer_id).reply_request_id is None


def test_replies_stop_when_the_sender_closes_them(mailoutbox):
    transfer, tokens = ready_transfer(recipients=[BOB], mailoutbox=mailoutbox, allow_replies=True)
    downloader = guest_grant(tokens[BOB], mailoutbox, BOB)
    reply_id = Transfer.get(transfer.transfer_id).reply_request_id
    services.request_close(owner_id=ALICE.id, transfer_id=reply_id, now=later(1))
    assert selectors.guest_files(**as_guest(downloader), now=later(2)).can_reply is False
    _refused("replies_closed", lambda: services.reply_open(**as_guest(downloader), now=later(2)))


def test_revoking_a_transfer_ends_its_reply_sessions(mailoutbox):
    """A revoke ends every guest session of the transfer, the reply upload opened from it too."""
    transfer, tokens = ready_transfer(recipients=[BOB], mailoutbox=mailoutbox, allow_replies=True)
    reply = services.reply_open(**as_guest(guest_grant(tokens[BOB], mailoutbox, BOB)), now=NOW)
    services.transfer_revoke(owner_id=ALICE.id, transfer_id=transfer.transfer_id, now=later(1))
    _refused("not_found", lambda: _declare(reply, ("after-revoke.pdf", 5), now=later(2)))


# --- expiry and legal hold ---------------------------------------------------------------------------------------


def _received(bob) -> tuple[services.FileCreated, Transfer]:
    [file] = _declare(bob, ("a.pdf", 11)).files
    guest_upload(bob, file, b"hello world")
    return file, Transfer.get(bob.transfer_id)


def test_the_sweep_deletes_received_files_once_the_request_expires(bob):
    file, request = _received(bob)
    assert request.expires_at == request.closes_at + timedelta(days=settings.FXFER_REQUEST_KEEP_DAYS)
    early = services.expiry_sweep(now=request.expires_at - timedelta(seconds=1))
    assert (early.transfers_expired, early.files_deleted) == (0, 0)
    assert len(_versions(file.key)) == 1

    swept = services.expiry_sweep(now=request.expires_at)
    assert (swept.transfers_expired, swept.files_deleted) == (1, 1)
    assert _versions(file.key) == []
    [receipt] = _events(request.transfer_id, "file.deleted")
    assert (receipt.actor, receipt.details["key"], receipt.details["by"]) == ("job:expire_sweep", file.key, "sweep")
    assert receipt.details["name"] == "a.pdf" and receipt.details["size"] == 11
    detail = selectors.request_detail_for_owner(
        owner_id=ALICE.id, request_id=request.transfer_id, now=request.expires_at
    )
    assert detail.summary.status == "expired" and [r.key for r in detail.receipts] == [file.key]
    assert Transfer.get(request.transfer_id).status == "expired"
    assert services.expiry_sweep(now=request.expires_at + timedelta(hours=1)).files_deleted == 0  # once


def test_a_closed_request_expires_keep_days_after_closing(bob):
    file, _request = _received(bob)
    closed = services.request_close(owner_id=ALICE.id, transfer_id=bob.transfer_id, now=later(10))
    assert closed.expires_at == later(10, days=settings.FXFER_REQUEST_KEEP_DAYS)
    assert services.expiry_sweep(now=closed.expires_at - timedelta(seconds=1)).files_deleted == 0
    assert services.expiry_sweep(now=closed.expires_at).files_deleted == 1
    assert _versions(file.key) == []


def test_a_legal_hold_on_a_request_stops_the_sweep(bob):
    file, request = _received(bob)
    services.transfer_hold_set(
        officer_id=OFFICER, transfer_id=request.transfer_id, reason="Litigation 2026-7", now=later(1)
    )
    swept = services.expiry_sweep(now=request.expires_at + timedelta(days=1))
    assert (swept.transfers_expired, swept.held_skipped, swept.files_deleted) == (0, 1, 0)
    assert len([v for v in _versions(file.key) if "VersionId" in v]) == 1
    assert _events(request.transfer_id, "file.deleted") == []
    detail = selectors.request_detail_for_owner(owner_id=ALICE.id, request_id=request.transfer_id, now=later(2))
    assert detail.summary.held is True
    # Released, it goes at the next run.
    services.transfer_hold_release(
        officer_id=OFFICER, transfer_id=request.transfer_id, reason="Case closed", now=request.expires_at
    )
    assert services.expiry_sweep(now=request.expires_at + timedelta(days=1, hours=1)).files_deleted == 1
    assert _versions(file.key) == []


@pytest.mark.parametrize("times", [1, 10])
def test_a_lost_answer_on_a_declaration_reserves_and_counts_it_once(limited, times):
    """The reservation, the files, the request's totals and the event commit together: a lost answer (once, or
    for good) neither reserves the guest's allowance twice nor counts the files twice."""
    from tests.faults import LOST, inject

    created, access = limited
    with inject(LOST, service="dynamodb", operation="TransactWriteItems", times=times) as fault:
        declared = _declare(access[BOB], ("a.pdf", 40))
    assert fault.fired
    guest = _guest(created.request_id, BOB)
    assert (guest.files_reserved, guest.bytes_reserved) == (1, 40)
    assert [f.file_id for f in File.query(created.request_id)] == [declared.files[0].file_id]
    request = Transfer.get(created.request_id)
    assert (request.file_count, request.total_bytes) == (1, 40)
    assert len([e for e in _events(created.request_id, "upload.started") if e.outcome == "ok"]) == 1


def test_a_declaration_while_dynamodb_is_throttled_reserves_nothing_and_says_try_again(limited):
    from tests.faults import ERROR, inject

    created, access = limited
    with inject(ERROR, service="dynamodb", operation="TransactWriteItems", times=10):
        error = _refused("unavailable", lambda: _declare(access[BOB], ("a.pdf", 40)))
    assert error.status == 503
    guest = _guest(created.request_id, BOB)
    assert (guest.files_reserved or 0, guest.bytes_reserved or 0) == (0, 0)
    assert list(File.query(created.request_id)) == []
    assert _declare(access[BOB], ("a.pdf", 40)).files  # and then it works


@pytest.mark.parametrize("times", [1, 10])
def test_a_reply_opened_through_a_lost_answer_works_and_is_recorded_once(mailoutbox, times):
    """The reply guest's fresh token, its "reply.opened" event and the grant commit together: a lost answer
    (once, or for good) gives a grant that works and one event."""
    from tests.faults import LOST, inject

    transfer, tokens = ready_transfer(recipients=[BOB], mailoutbox=mailoutbox, allow_replies=True)
    downloader = guest_grant(tokens[BOB], mailoutbox, BOB)
    with inject(LOST, service="dynamodb", operation="TransactWriteItems", times=times) as fault:
        reply = services.reply_open(**as_guest(downloader), now=NOW)
    assert fault.fired
    assert selectors.guest_request(**as_guest(reply), now=NOW).is_reply is True
    assert [e.outcome for e in _events(transfer.transfer_id, "reply.opened")] == ["ok"]
    assert len(_events(reply.transfer_id, "access.granted")) == 1
