"""One download notice per visit (issue 13) under every fault at every AWS call (tests/faults.py): a guest
downloads two files in one visit; after each case the guest presses again whatever got no URL (the same
presses) and the outbox retry job runs. Then: each file counted once with one event, and the sender has exactly
one notice for the visit, sent. Also the race: two downloads of one visit at once make one notice.

    FXFER_FAULT_MATRIX=fault-matrix.md python -m pytest tests/reliability/test_download_notices.py
"""

import itertools
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.faults import Killed, sweep_faults
from tests.reliability.test_guests import LATER, NOW, _chain_verifies, _events
from tests.transfers.conftest import (  # noqa: F401 - the autouse fixtures of the transfer tests apply here too
    ALICE,
    _bucket_policy_without_conditions_is_not_ours,
    _fresh_kms_key_arn,
    code_from,
    create,
    put_object_as_browser,
    tokens_from,
)
from transfers import services
from transfers.errors import TransferError
from transfers.models import MAIL_SENT, OutboxMail, Recipient
from transfers.outbox import outbox_retry
from transfers.policy import FileDeclared

_n = itertools.count()


@pytest.fixture
def visit(settings, mailoutbox):
    """A released transfer of two files for a fresh address, and that guest's session (a right code); then mail
    goes through (moto's) SES, so SES faults are injected like any other AWS call."""

    def make():
        settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
        to = f"visitor{next(_n)}@partner.example"
        files = [FileDeclared(name="見積書.pdf", size=3), FileDeclared(name="b.pdf", size=3)]
        created = create(files=files, recipients=[to], now=NOW, notify_on_download=True)
        for file in created.files:
            services.upload_authorize(owner_id=ALICE.id, transfer_id=created.transfer_id, file_id=file.file_id, now=NOW)
            put_object_as_browser(file.key, b"abc")
            services.upload_done(owner_id=ALICE.id, transfer_id=created.transfer_id, file_id=file.file_id, now=NOW)
        token = tokens_from(mailoutbox)[to]
        ip = f"2001:db8::1:{next(_n):x}"
        services.guest_code_send(token=token, ip=ip, now=NOW)
        access = services.guest_code_verify(token=token, code=code_from(mailoutbox, to), ip=ip, now=NOW)
        settings.EMAIL_BACKEND = "fxfer.mail.SESBackend"
        return {"created": created, "access": access, "presses": [f"press-{next(_n):08d}" for _ in files], "urls": {}}

    return make


def _press(state, index: int):
    access, file = state["access"], state["created"].files[index]
    issued = services.guest_download_url(
        transfer_id=access.transfer_id,
        recipient_id=access.recipient_id,
        grant=access.grant,
        file_id=file.file_id,
        request_id=state["presses"][index],
        now=NOW,
    )
    state["urls"][index] = issued.url
    return issued


def _counted(state) -> dict:
    access = state["access"]
    recipient = Recipient.get(access.transfer_id, access.recipient_id, consistent_read=True)
    return recipient.file_downloads.as_dict() if recipient.file_downloads else {}


def _notices(transfer_id: str) -> list:
    return [m for m in OutboxMail.scan(OutboxMail.parent_id == transfer_id) if m.kind == "download_notice"]


def test_a_visit_of_two_downloads_under_every_fault_makes_one_notice(visit):
    def act(state):
        return [_press(state, index) for index in range(2)]

    def heal(state):
        for index in range(2):
            if index not in state["urls"]:
                try:
                    _press(state, index)  # the guest presses again (the same press: its page did not change)
                except TransferError:
                    pass
        outbox_retry(now=LATER)

    def check(state, result, error):
        assert error is None or isinstance(error, (TransferError, Killed)), f"not a clear answer: {error!r}"
        if isinstance(error, TransferError):
            assert error.code == "unavailable", f"told {error.code!r}"
        transfer_id = state["created"].transfer_id
        counted = _counted(state)
        assert sorted(state["urls"]) == [0, 1], "a press got no URL once AWS answered again"
        assert counted == {f.file_id: 1 for f in state["created"].files}, f"downloads counted {counted}"
        issued = _events(transfer_id, "download.url_issued")
        assert len(issued) == 2, f"{len(issued)} download events for 2 downloads"
        notices = _notices(transfer_id)
        assert len(notices) == 1, f"{len(notices)} notices for one visit"
        assert notices[0].status == MAIL_SENT, "the visit's notice was left unsent after the retry job"
        _chain_verifies()

    sweep_faults("download notice per visit", setup=visit, act=act, check=check, heal=heal)


def test_two_downloads_of_one_visit_at_once_make_one_notice(visit):
    state = visit()
    with ThreadPoolExecutor(max_workers=2) as pool:
        issued = list(pool.map(lambda index: _press(state, index), range(2)))
    assert all(i.url for i in issued)
    assert _counted(state) == {f.file_id: 1 for f in state["created"].files}
    assert len(_notices(state["created"].transfer_id)) == 1


def test_a_download_that_read_before_the_visits_notice_committed_goes_on_without_it(visit, monkeypatch):
    """The race made certain: the second download did not see the first one's notice when it looked, so its
    transaction meets the notice's key and is refused; it commits again without the notice."""
    state = visit()
    _press(state, 0)
    monkeypatch.setattr("transfers.services.guests._outbox_has", lambda _key: False)
    assert _press(state, 1).downloads_left == 2
    assert _counted(state) == {f.file_id: 1 for f in state["created"].files}
    assert len(_events(state["created"].transfer_id, "download.url_issued")) == 2
    assert len(_notices(state["created"].transfer_id)) == 1
