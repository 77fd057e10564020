"""The guest side as a recipient and as an attacker see it: links that consume nothing, codes only to the
recipient, five tries, one 404 for every wrong token, atomic download limits, expiry at read time."""

import hashlib
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import requests

from reports.models import AuditEvent
from tests.transfers.conftest import ALICE, NOW, code_from, later, ready_transfer
from transfers import selectors, services
from transfers.errors import TransferError
from transfers.models import OneTimeCode, Recipient, Transfer

BOB = "bob@partner.example"
CAROL = "carol@other.example"


@pytest.fixture
def ready(mailoutbox):
    created, tokens = ready_transfer(recipients=[BOB, CAROL], mailoutbox=mailoutbox, subject="Figures")
    mailoutbox.clear()
    return created, tokens


def _actions() -> list[tuple[str, str]]:
    return [(e.action, e.outcome) for e in sorted(AuditEvent.scan(), key=lambda e: e.sort_key)]


def _refused(code: str, call) -> TransferError:
    with pytest.raises(TransferError) as caught:
        call()
    assert caught.value.code == code, caught.value
    return caught.value


def _recipient(created, email) -> Recipient:
    return next(r for r in Recipient.query(created.transfer_id, consistent_read=True) if r.email == email)


def _grant(tokens, mailoutbox, who=BOB, now=NOW) -> services.AccessGranted:
    services.guest_code_send(token=tokens[who], ip="198.51.100.7", now=now)
    return services.guest_code_verify(token=tokens[who], code=code_from(mailoutbox, who), ip="198.51.100.7", now=now)


def _download(created, access, now=NOW, ip="198.51.100.7"):
    return services.guest_download_url(
        transfer_id=access.transfer_id,
        recipient_id=access.recipient_id,
        grant=access.grant,
        file_id=created.files[0].file_id,
        ip=ip,
        now=now,
    )


# --- links -----------------------------------------------------------------------------------------------------


def test_each_recipient_gets_their_own_link_and_only_its_hash_is_stored(mailoutbox):
    created, tokens = ready_transfer(recipients=[BOB, CAROL], mailoutbox=mailoutbox)
    assert set(tokens) == {BOB, CAROL} and tokens[BOB] != tokens[CAROL]
    for message in mailoutbox:
        other = CAROL if message.to == [BOB] else BOB
        assert tokens[message.to[0]] in message.body and tokens[other] not in message.body
        assert "Alice Sender" in message.subject and "report.pdf" in message.body
    for recipient in Recipient.query(created.transfer_id):
        token = tokens[recipient.email]
        assert recipient.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert token not in str(recipient.attribute_values)


def test_opening_a_link_shows_the_sender_and_consumes_nothing(ready, mailoutbox):
    created, tokens = ready
    for _ in range(10):  # a mail scanner prefetching, then the person
        link = services.guest_link_open(token=tokens[BOB], ip="203.0.113.9", now=NOW)
    assert (link.sender_name, link.sender_email, link.recipient_email_masked) == (
        "Alice Sender",
        ALICE.email,
        "b***@partner.example",
    )
    assert link.locked is False
    bob = _recipient(created, BOB)
    assert (bob.downloads_used, bob.failed_code_attempts, bob.locked) == (0, 0, False)
    assert list(OneTimeCode.scan()) == [] and mailoutbox == []
    assert _actions().count(("link.opened", "ok")) == 10
    # Everything is still there for the real person.
    access = _grant(tokens, mailoutbox)
    assert _download(created, access).downloads_left == 2


def test_unknown_malformed_revoked_and_expired_tokens_all_get_the_same_not_found(ready, mailoutbox):
    _created, tokens = ready
    other_created, other_tokens = ready_transfer(recipients=[BOB], mailoutbox=mailoutbox)
    services.transfer_revoke(owner_id=ALICE.id, transfer_id=other_created.transfer_id)
    errors = [
        _refused("not_found", lambda t=t: services.guest_link_open(token=t, now=NOW))
        for t in ("A" * 43, "short", "", tokens[BOB] + "x", other_tokens[BOB])
    ]
    errors.append(_refused("not_found", lambda: services.guest_link_open(token=tokens[BOB], now=later(days=8))))
    assert {(e.code, e.status, e.message) for e in errors} == {("not_found", 404, errors[0].message)}


def test_link_lookups_are_rate_limited_per_ip(ready, settings):
    _created, tokens = ready
    settings.FXFER_LINK_LOOKUPS_PER_IP = 5
    for n in range(5):
        _refused("not_found", lambda n=n: services.guest_link_open(token=f"{n}" * 43, ip="192.0.2.66", now=NOW))
    # Even the right token is refused from that address for the rest of the minute; others are unaffected.
    _refused("rate_limited", lambda: services.guest_link_open(token=tokens[BOB], ip="192.0.2.66", now=NOW))
    assert services.guest_link_open(token=tokens[BOB], ip="192.0.2.77", now=NOW).recipient_email_masked
    assert services.guest_link_open(token=tokens[BOB], ip="192.0.2.66", now=later(seconds=61))


# --- codes -----------------------------------------------------------------------------------------------------


def test_the_code_goes_only_to_the_recipients_own_address(ready, mailoutbox):
    _created, tokens = ready
    sent = services.guest_code_send(token=tokens[BOB], ip="198.51.100.7", now=NOW)
    assert sent.recipient_email_masked == "b***@partner.example"
    assert sent.expires_at == later(10)
    [message] = mailoutbox
    assert message.to == [BOB] and message.cc == [] and message.bcc == []
    code = code_from(mailoutbox, BOB)
    assert len(code) == 6
    stored = OneTimeCode.scan().next()
    assert code not in str(stored.attribute_values)  # only an HMAC


def test_a_right_code_grants_access_once(ready, mailoutbox):
    created, tokens = ready
    services.guest_code_send(token=tokens[BOB], now=NOW)
    code = code_from(mailoutbox, BOB)
    access = services.guest_code_verify(token=tokens[BOB], code=code, now=NOW)
    assert access.transfer_id == created.transfer_id and access.expires_at == later(30)
    files = selectors.guest_files(
        transfer_id=access.transfer_id, recipient_id=access.recipient_id, grant=access.grant, now=NOW
    )
    assert [(f.name, f.size) for f in files.files] == [("report.pdf", 11)]
    assert files.files[0].checksum and files.subject == "Figures" and files.recipient_email == BOB
    _refused("code_wrong", lambda: services.guest_code_verify(token=tokens[BOB], code=code, now=NOW))
    assert ("access.granted", "ok") in _actions() and ("code.sent", "ok") in _actions()


def test_a_code_expires_after_ten_minutes(ready, mailoutbox):
    _created, tokens = ready
    services.guest_code_send(token=tokens[BOB], now=NOW)
    code = code_from(mailoutbox, BOB)
    _refused("code_expired", lambda: services.guest_code_verify(token=tokens[BOB], code=code, now=later(10)))


def test_a_code_for_one_recipient_does_not_open_anothers_link(ready, mailoutbox):
    _created, tokens = ready
    services.guest_code_send(token=tokens[BOB], now=NOW)
    _refused("code_wrong", lambda: services.guest_code_verify(token=tokens[CAROL], code=code_from(mailoutbox, BOB)))


def test_code_sending_is_limited_per_recipient(ready, mailoutbox, settings):
    _created, tokens = ready
    for _ in range(settings.FXFER_CODE_SENDS_PER_WINDOW):
        services.guest_code_send(token=tokens[BOB], now=NOW)
    _refused("rate_limited", lambda: services.guest_code_send(token=tokens[BOB], now=NOW))
    assert len(mailoutbox) == settings.FXFER_CODE_SENDS_PER_WINDOW
    assert services.guest_code_send(token=tokens[CAROL], now=NOW)  # others are not affected


def test_five_wrong_codes_lock_the_recipient_and_tell_the_sender(ready, mailoutbox):
    created, tokens = ready
    services.guest_code_send(token=tokens[BOB], now=NOW)
    right = code_from(mailoutbox, BOB)
    wrong = f"{(int(right) + 1) % 1000000:06d}"
    lefts = []
    for _ in range(4):
        lefts.append(
            _refused("code_wrong", lambda: services.guest_code_verify(token=tokens[BOB], code=wrong, ip="192.0.2.9"))
        )
    assert [e.params["attempts_left"] for e in lefts] == [4, 3, 2, 1]
    _refused("locked", lambda: services.guest_code_verify(token=tokens[BOB], code=wrong, ip="192.0.2.9"))
    # The sixth try, even with the right code, is refused; so are new codes.
    _refused("locked", lambda: services.guest_code_verify(token=tokens[BOB], code=right))
    _refused("locked", lambda: services.guest_code_send(token=tokens[BOB]))
    assert services.guest_link_open(token=tokens[BOB]).locked is True
    bob = _recipient(created, BOB)
    assert bob.locked and bob.failed_code_attempts == 5
    [notice] = [m for m in mailoutbox if m.to == [ALICE.email]]
    assert BOB in notice.subject and "192.0.2.9" in notice.body
    assert _actions().count(("access.locked", "refused")) == 1
    assert _actions().count(("code.failed", "refused")) >= 6
    # Carol is not affected.
    assert _grant(tokens, mailoutbox, who=CAROL)


def test_concurrent_wrong_codes_lock_exactly_once(ready, mailoutbox):
    created, tokens = ready

    def guess(n):
        try:
            services.guest_code_verify(token=tokens[BOB], code=f"{n:06d}", now=NOW)
        except TransferError as error:
            return error.code

    with ThreadPoolExecutor(max_workers=12) as pool:
        codes = list(pool.map(guess, range(12)))
    assert codes.count("code_wrong") == 4 and codes.count("locked") == 8
    assert _recipient(created, BOB).failed_code_attempts == 5
    assert len([m for m in mailoutbox if m.to == [ALICE.email]]) == 1


def test_resending_the_link_kills_the_old_one_and_unlocks(ready, mailoutbox):
    created, tokens = ready
    for _ in range(5):
        with pytest.raises(TransferError):
            services.guest_code_verify(token=tokens[BOB], code="000000")
    bob = _recipient(created, BOB)
    services.recipient_resend(owner_id=ALICE.id, transfer_id=created.transfer_id, recipient_id=bob.recipient_id)
    [mail] = [m for m in mailoutbox if m.to == [BOB]]
    new_token = mail.body.split("/t/")[1].split()[0]
    _refused("not_found", lambda: services.guest_link_open(token=tokens[BOB]))
    assert services.guest_link_open(token=new_token).locked is False
    assert _grant({BOB: new_token}, mailoutbox)


# --- downloads -------------------------------------------------------------------------------------------------


def test_a_download_url_is_short_lived_attachment_octet_stream_and_pinned_to_the_verified_version(mailoutbox, settings):
    created, tokens = ready_transfer(recipients=[BOB], mailoutbox=mailoutbox, name="見積書 2026.pdf")
    access = _grant(tokens, mailoutbox)
    issued = _download(created, access)
    query = parse_qs(urlsplit(issued.url).query)
    assert query["response-content-type"] == ["application/octet-stream"]
    disposition = query["response-content-disposition"][0]
    assert disposition.startswith("attachment; filename=\"download_2026.pdf\"; filename*=UTF-8''")
    assert unquote(disposition.split("''")[1]) == "見積書 2026.pdf"
    assert query["X-Amz-Expires"] == [str(settings.FXFER_DOWNLOAD_URL_SECONDS)]
    assert "versionId" in query
    response = requests.get(issued.url, timeout=10)
    assert response.content == b"hello world"
    assert issued.file_name == "見積書 2026.pdf" and issued.size == 11


def test_twenty_simultaneous_requests_with_a_limit_of_one_get_exactly_one_url(mailoutbox):
    created, tokens = ready_transfer(recipients=[BOB], mailoutbox=mailoutbox, download_limit=1)
    access = _grant(tokens, mailoutbox)

    def attempt(_):
        try:
            return _download(created, access).url
        except TransferError as error:
            return error.code

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(attempt, range(20)))
    urls = [r for r in results if r.startswith("http")]
    assert len(urls) == 1
    assert results.count("download_limit_reached") == 19
    bob = _recipient(created, BOB)
    assert bob.downloads_used == 1
    assert _actions().count(("download.url_issued", "ok")) == 1


def test_the_limit_counts_per_file_and_the_sender_hears_of_the_visit_once(mailoutbox):
    created, tokens = ready_transfer(recipients=[BOB], mailoutbox=mailoutbox, download_limit=2)
    access = _grant(tokens, mailoutbox)
    mailoutbox.clear()
    assert _download(created, access, ip="203.0.113.50").downloads_left == 1
    assert _download(created, access).downloads_left == 0
    _refused("download_limit_reached", lambda: _download(created, access))
    notices = [m for m in mailoutbox if m.to == [ALICE.email]]
    assert len(notices) == 1  # both downloads were in one visit (one code, one guest session)
    assert BOB in notices[0].body and "report.pdf" in notices[0].body and "203.0.113.50" in notices[0].body
    assert "28 Nov 2026, 10:00 JST" in notices[0].body  # when, in the company's time zone, the zone named


def test_no_download_notice_when_the_sender_did_not_ask(mailoutbox):
    created, tokens = ready_transfer(recipients=[BOB], mailoutbox=mailoutbox, notify_on_download=False)
    access = _grant(tokens, mailoutbox)
    mailoutbox.clear()
    _download(created, access)
    assert mailoutbox == []


def test_guest_access_is_scoped_to_its_recipient_and_transfer(ready, mailoutbox):
    created, tokens = ready
    other, other_tokens = ready_transfer(recipients=[BOB], mailoutbox=mailoutbox)
    access = _grant(tokens, mailoutbox)
    other_access = _grant(other_tokens, mailoutbox)
    carol = _recipient(created, CAROL)
    for transfer_id, recipient_id, file_id in (
        (other.transfer_id, access.recipient_id, other.files[0].file_id),  # another transfer with this grant
        (created.transfer_id, carol.recipient_id, created.files[0].file_id),  # another recipient
        (created.transfer_id, access.recipient_id, other.files[0].file_id),  # another transfer's file
    ):
        _refused(
            "not_found",
            lambda t=transfer_id, r=recipient_id, f=file_id: services.guest_download_url(
                transfer_id=t, recipient_id=r, grant=access.grant, file_id=f, now=NOW
            ),
        )
    _refused(
        "not_found",
        lambda: selectors.guest_files(
            transfer_id=created.transfer_id, recipient_id=access.recipient_id, grant=other_access.grant, now=NOW
        ),
    )


def test_revoking_ends_links_codes_and_guest_sessions_at_once(ready, mailoutbox):
    created, tokens = ready
    access = _grant(tokens, mailoutbox)
    services.guest_code_send(token=tokens[CAROL], now=NOW)
    services.transfer_revoke(owner_id=ALICE.id, transfer_id=created.transfer_id, now=NOW)
    _refused("not_found", lambda: _download(created, access))
    _refused("not_found", lambda: services.guest_link_open(token=tokens[BOB], now=NOW))
    _refused("not_found", lambda: services.guest_code_verify(token=tokens[CAROL], code=code_from(mailoutbox, CAROL)))
    assert Transfer.get(created.transfer_id).status == "revoked"
    assert ("transfer.revoked", "ok") in _actions()


def test_expiry_is_applied_at_read_time_whatever_the_sweep_did(ready, mailoutbox):
    created, tokens = ready
    expires_at = Transfer.get(created.transfer_id).expires_at
    access = _grant(tokens, mailoutbox, now=expires_at - timedelta(minutes=5))
    assert access.expires_at == expires_at  # a guest session never outlives its transfer
    assert Transfer.get(created.transfer_id).status == "ready"  # no sweep has run
    _refused("not_found", lambda: _download(created, access, now=expires_at))
    _refused("not_found", lambda: services.guest_link_open(token=tokens[CAROL], now=expires_at))
    owner_view = selectors.transfer_detail_for_owner(owner_id=ALICE.id, transfer_id=created.transfer_id, now=expires_at)
    assert owner_view.summary.status == "expired"


def test_a_guest_session_ends_after_its_time(ready, mailoutbox):
    created, tokens = ready
    access = _grant(tokens, mailoutbox)
    _refused("access_expired", lambda: _download(created, access, now=later(30)))
    assert _download(created, access, now=later(29))


# --- crash consistency (issue 11) --------------------------------------------------------------------------------


def _lost_answer_at(operation: str, *, times: int = 1):
    from tests.faults import LOST, inject

    return inject(LOST, service="dynamodb", operation=operation, times=times)


@pytest.mark.parametrize("times", [1, 10])
def test_a_lost_answer_on_the_download_counter_still_gives_the_guest_their_only_download(mailoutbox, times):
    """Issue 11, bug 5: the counter's write happened, its answer was lost; the guest must get the URL, once."""
    created, tokens = ready_transfer(recipients=[BOB], mailoutbox=mailoutbox, download_limit=1)
    access = _grant(tokens, mailoutbox)
    mailoutbox.clear()
    with _lost_answer_at("TransactWriteItems", times=times) as fault:
        issued = _download(created, access)
    assert fault.fired
    assert requests.get(issued.url, timeout=10).content == b"hello world"
    assert issued.downloads_left == 0
    bob = _recipient(created, BOB)
    assert bob.downloads_used == 1 and bob.file_downloads.as_dict() == {created.files[0].file_id: 1}
    assert _actions().count(("download.url_issued", "ok")) == 1
    assert len([m for m in mailoutbox if m.to == [ALICE.email]]) == 1  # the sender hears of it once
    _refused("download_limit_reached", lambda: _download(created, access))


def test_a_throttled_download_counter_uses_nothing_and_says_try_again(mailoutbox):
    from tests.faults import ERROR, inject

    created, tokens = ready_transfer(recipients=[BOB], mailoutbox=mailoutbox, download_limit=1)
    access = _grant(tokens, mailoutbox)
    with inject(ERROR, service="dynamodb", operation="TransactWriteItems", times=10):
        error = _refused("unavailable", lambda: _download(created, access))
    assert error.status == 503 and "Nothing was lost" in error.message
    assert _recipient(created, BOB).downloads_used == 0
    assert ("download.url_issued", "ok") not in _actions()
    assert _download(created, access).downloads_left == 0  # the one download is still there


def test_a_lost_answer_on_a_wrong_code_costs_exactly_one_try(ready, mailoutbox):
    created, tokens = ready
    with _lost_answer_at("TransactWriteItems"):
        error = _refused("code_wrong", lambda: services.guest_code_verify(token=tokens[BOB], code="000000", now=NOW))
    assert error.params["attempts_left"] == 4
    assert _recipient(created, BOB).failed_code_attempts == 1
    assert _actions().count(("code.failed", "refused")) == 1


def test_a_lost_answer_on_the_locking_try_locks_once_and_mails_the_sender_once(ready, mailoutbox):
    created, tokens = ready
    for _ in range(4):
        _refused("code_wrong", lambda: services.guest_code_verify(token=tokens[BOB], code="000000", now=NOW))
    with _lost_answer_at("TransactWriteItems", times=10):
        _refused("locked", lambda: services.guest_code_verify(token=tokens[BOB], code="000000", now=NOW))
    bob = _recipient(created, BOB)
    assert bob.locked and bob.failed_code_attempts == 5
    assert _actions().count(("access.locked", "refused")) == 1
    assert len([m for m in mailoutbox if m.to == [ALICE.email]]) == 1


def test_a_lost_answer_on_a_right_code_still_opens_the_session(ready, mailoutbox):
    created, tokens = ready
    services.guest_code_send(token=tokens[BOB], now=NOW)
    with _lost_answer_at("TransactWriteItems", times=10):
        access = services.guest_code_verify(token=tokens[BOB], code=code_from(mailoutbox, BOB), now=NOW)
    assert _download(created, access).url
    assert _actions().count(("access.granted", "ok")) == 1
    assert list(OneTimeCode.scan()) == []  # used up


def test_a_throttled_code_mail_says_so_and_gives_the_allowance_back(ready, mailoutbox, settings):
    """Issue 11, bug 7: a throttled code mail was a 500 that used up the guest's allowance."""
    from tests.faults import ERROR, inject

    _created, tokens = ready
    settings.EMAIL_BACKEND = "fxfer.mail.SESBackend"
    for _ in range(settings.FXFER_CODE_SENDS_PER_WINDOW):
        with inject(ERROR, service="ses", times=10):
            error = _refused("mail_delayed", lambda: services.guest_code_send(token=tokens[BOB], now=NOW))
        assert error.status == 503 and "may still arrive" in error.message
    # None of those took the allowance: every send the window allows is still there.
    for _ in range(settings.FXFER_CODE_SENDS_PER_WINDOW):
        assert services.guest_code_send(token=tokens[BOB], now=NOW)
    _refused("rate_limited", lambda: services.guest_code_send(token=tokens[BOB], now=NOW))


def test_a_lost_answer_on_the_code_send_takes_one_allowance(ready, mailoutbox, settings):
    _created, tokens = ready
    with _lost_answer_at("TransactWriteItems"):
        services.guest_code_send(token=tokens[BOB], now=NOW)
    for _ in range(settings.FXFER_CODE_SENDS_PER_WINDOW - 1):
        services.guest_code_send(token=tokens[BOB], now=NOW)
    _refused("rate_limited", lambda: services.guest_code_send(token=tokens[BOB], now=NOW))
    assert len(mailoutbox) == settings.FXFER_CODE_SENDS_PER_WINDOW
    assert _actions().count(("code.sent", "ok")) == settings.FXFER_CODE_SENDS_PER_WINDOW


def test_two_files_downloaded_from_one_page_are_two_downloads_with_one_notice_for_the_visit(mailoutbox):
    """The files page names its presses with one request id; each file's press is its own download (found in
    the browser: the second file's notice shared the first's outbox key and its download was taken for a
    repeat of the first). The sender hears of the visit once, not of each file."""
    from tests.transfers.conftest import LINK, create, put_object_as_browser
    from transfers.policy import FileDeclared

    created = create(files=[FileDeclared(name="a.pdf", size=3), FileDeclared(name="b.pdf", size=3)], recipients=[BOB])
    for file in created.files:
        services.upload_authorize(owner_id=ALICE.id, transfer_id=created.transfer_id, file_id=file.file_id, now=NOW)
        put_object_as_browser(file.key, b"abc")
        services.upload_done(owner_id=ALICE.id, transfer_id=created.transfer_id, file_id=file.file_id, now=NOW)
    [token] = [LINK.search(m.body).group(1) for m in mailoutbox if m.to == [BOB]]
    access = _grant({BOB: token}, mailoutbox)
    mailoutbox.clear()
    press = "press-of-one-page-0001"
    for file in created.files:
        services.guest_download_url(
            transfer_id=access.transfer_id,
            recipient_id=access.recipient_id,
            grant=access.grant,
            file_id=file.file_id,
            request_id=press,
            now=NOW,
        )
    bob = _recipient(created, BOB)
    assert bob.downloads_used == 2
    assert bob.file_downloads.as_dict() == {f.file_id: 1 for f in created.files}
    assert _actions().count(("download.url_issued", "ok")) == 2
    assert [m.subject for m in mailoutbox if m.to == [ALICE.email]] == [f"{BOB} downloaded a.pdf"]
