"""The guest's flows under every fault at every AWS call (tests/faults.py): asking for a code, a right code, a
wrong code, a download. After each case what runs next in production runs here too (the outbox retry job; for a
download whose answer never came, the browser sending the same press again), then the invariants are checked:
the guest was told the truth (a URL given ⇔ a download counted; "code sent" ⇔ SES took a code mail, or the
error said otherwise); every state change has exactly one audit event; a failed mail does not use up the
allowance; a lost answer costs no try the guest did not make; the audit chain verifies once linked.

    FXFER_FAULT_MATRIX=fault-matrix.md python -m pytest tests/reliability/test_guests.py
"""

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from reports.models import AuditEvent
from tests.faults import Killed, sweep_faults
from tests.reliability.chain import chain_verifies
from tests.transfers.conftest import (  # noqa: F401 - the autouse fixtures of the transfer tests apply here too
    _bucket_policy_without_conditions_is_not_ours,
    _fresh_kms_key_arn,
    code_from,
    ready_transfer,
)
from transfers import services
from transfers.errors import TransferError
from transfers.models import MAIL_SENT, GuestGrant, OneTimeCode, OutboxMail, RateLimit, Recipient
from transfers.outbox import outbox_retry

_n = itertools.count()
NOW = datetime.now(UTC).replace(microsecond=0)  # real time: the outbox's claims run on the clock
LATER = NOW + timedelta(hours=6)  # past every retry delay and claim: the retry job sends what is still due


def _accepted(to: str) -> int:
    """How many mails SES accepted for `to`."""
    from django.conf import settings

    sent = ses_backends[DEFAULT_ACCOUNT_ID][settings.AWS_SES_REGION_NAME].sent_messages
    return sum(1 for m in sent if to in m.destinations)


def _events(transfer_id: str, action: str, outcome: str = "ok") -> list[AuditEvent]:
    return [
        e
        for e in AuditEvent.scan(AuditEvent.subject == f"transfer:{transfer_id}")
        if e.action == action and e.outcome == outcome
    ]


def _chain_verifies():
    chain_verifies(LATER)


def _told(error, *codes):
    """The flow ended as one of `codes` (None: it returned), or the process was killed."""
    code = None if error is None else getattr(error, "code", type(error).__name__)
    assert error is None or isinstance(error, (TransferError, Killed)), f"not a clear answer: {error!r}"
    assert isinstance(error, Killed) or code in codes, f"told {code!r}"
    return code


@pytest.fixture
def guest(settings, mailoutbox):
    """A fresh released transfer for a fresh address (link mail read from Django's test outbox), then mail goes
    through (moto's) SES, so SES faults are injected like any other AWS call."""

    def make(*, download_limit=3, code=False):
        settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
        to = f"guest{next(_n)}@partner.example"
        created, tokens = ready_transfer(recipients=[to], mailoutbox=mailoutbox, now=NOW, download_limit=download_limit)
        state = {"created": created, "to": to, "token": tokens[to], "request_id": f"press-{next(_n):08d}"}
        state["ip"] = f"2001:db8::{next(_n):x}"  # the per-IP brake counts each guest's lookups on their own
        state["recipient"] = Recipient.query(created.transfer_id).next()
        if code:
            services.guest_code_send(token=state["token"], ip=state["ip"], now=NOW)
            state["code"] = code_from(mailoutbox, to)
        settings.EMAIL_BACKEND = "fxfer.mail.SESBackend"
        return state

    return make


def _recipient(state) -> Recipient:
    r = state["recipient"]
    return Recipient.get(r.parent_id, r.recipient_id, consistent_read=True)


def _allowance(state) -> int:
    ref = f"{state['created'].transfer_id}#{state['recipient'].recipient_id}"
    from django.conf import settings

    window = settings.FXFER_CODE_SECONDS
    start = int(NOW.timestamp()) // window * window
    try:
        return int(RateLimit.get(f"code-send:{ref}#{start}", consistent_read=True).count)
    except RateLimit.DoesNotExist:
        return 0


def _heal(_state):
    outbox_retry(now=LATER)


def test_asking_for_a_code_under_every_fault(guest):
    def act(state):
        return services.guest_code_send(token=state["token"], ip=state["ip"], now=NOW)

    def check(state, result, error):
        transfer_id = state["created"].transfer_id
        code = _told(error, None, "mail_delayed", "unavailable")
        sent = _events(transfer_id, "code.sent")
        codes = list(OneTimeCode.query(f"{transfer_id}#{state['recipient'].recipient_id}"))
        assert len(sent) == len(codes) <= 1, f"{len(sent)} code.sent events for {len(codes)} codes"
        if code is None:
            assert _accepted(state["to"]) >= 1, "told 'code sent' but SES took no code mail"
            assert _allowance(state) == 1
        if code in {"mail_delayed", "unavailable"}:
            assert _allowance(state) == 0, "a code that was not sent used up the allowance"
        if code == "unavailable":
            assert not codes or isinstance(error, Killed), "'nothing happened' but a code was stored"
        if codes:  # a stored code always reaches the guest (now or from the retry job)
            assert _accepted(state["to"]) >= 1, "a stored code was never mailed"
        mails = [m for m in OutboxMail.scan(OutboxMail.parent_id == transfer_id) if m.kind == "code"]
        assert all(m.status == MAIL_SENT for m in mails), "a code mail left unsent after the retry job"
        _chain_verifies()

    sweep_faults("guest code send", setup=guest, act=act, check=check, heal=_heal)


def test_a_right_code_under_every_fault(guest):
    def act(state):
        return services.guest_code_verify(token=state["token"], code=state["code"], ip=state["ip"], now=NOW)

    def check(state, result, error):
        transfer_id = state["created"].transfer_id
        code = _told(error, None, "unavailable")
        granted = _events(transfer_id, "access.granted")
        grants = list(GuestGrant.scan(GuestGrant.parent_id == transfer_id))
        assert len(granted) == len(grants) <= 1, f"{len(granted)} access.granted events for {len(grants)} grants"
        assert _recipient(state).failed_code_attempts == 0 and not _recipient(state).locked
        assert _events(transfer_id, "code.failed", "refused") == [], "a right code counted as a failed try"
        if code is None:
            scope = {"transfer_id": transfer_id, "recipient_id": result.recipient_id, "grant": result.grant}
            assert services.guest_download_url(**scope, file_id=state["created"].files[0].file_id, now=NOW).url
        if code == "unavailable":
            assert grants == [], "'nothing happened' but access was granted"
            again = services.guest_code_verify(token=state["token"], code=state["code"], ip=state["ip"], now=NOW)
            assert again.grant  # the guest tries again and gets in
        _chain_verifies()

    sweep_faults("guest code verify (right)", setup=lambda: guest(code=True), act=act, check=check, heal=_heal)


def test_a_wrong_code_under_every_fault(guest):
    def act(state):
        wrong = f"{(int(state['code']) + 1) % 1_000_000:06d}"
        try:
            services.guest_code_verify(token=state["token"], code=wrong, ip=state["ip"], now=NOW)
        except TransferError as refusal:
            if refusal.code != "code_wrong":
                raise
            return refusal  # the answer the guest sees; the sweep records what the flow raised otherwise
        raise AssertionError("a wrong code was accepted")

    def check(state, result, error):
        error = result if isinstance(result, TransferError) else error
        transfer_id = state["created"].transfer_id
        code = _told(error, "code_wrong", "unavailable")
        tries = int(_recipient(state).failed_code_attempts or 0)
        failed = _events(transfer_id, "code.failed", "refused")
        assert len(failed) == tries, f"{len(failed)} code.failed events for {tries} counted tries"
        assert not _recipient(state).locked, "one wrong code locked the guest"
        if code == "code_wrong":
            assert tries == 1 and error.params["attempts_left"] == 4, f"one wrong code counted {tries} tries"
        if code == "unavailable":
            assert tries == 0, "'nothing happened' but a try was counted"
        assert tries <= 1
        _chain_verifies()

    sweep_faults("guest code verify (wrong)", setup=lambda: guest(code=True), act=act, check=check, heal=_heal)


def test_a_download_under_every_fault(guest):
    def setup():
        state = guest(download_limit=1, code=True)
        state["access"] = services.guest_code_verify(token=state["token"], code=state["code"], ip=state["ip"], now=NOW)
        return state

    def press(state):
        access = state["access"]
        return services.guest_download_url(
            transfer_id=access.transfer_id,
            recipient_id=access.recipient_id,
            grant=access.grant,
            file_id=state["created"].files[0].file_id,
            request_id=state["request_id"],
            now=NOW,
        )

    def heal(state):
        state["again"] = None
        if isinstance(state.get("error"), Killed):
            # No answer reached the browser: it sends the same press again.
            try:
                state["again"] = press(state)
            except TransferError as error:
                state["again"] = error
        outbox_retry(now=LATER)

    def act(state):
        try:
            return press(state)
        except (Exception, Killed) as exc:
            state["error"] = exc
            raise

    def check(state, result, error):
        transfer_id = state["created"].transfer_id
        file_id = state["created"].files[0].file_id
        code = _told(error, None, "unavailable")
        counted = int(_recipient(state).file_downloads.as_dict().get(file_id, 0))
        issued = _events(transfer_id, "download.url_issued")
        assert counted <= 1 and len(issued) == counted, f"{len(issued)} events for {counted} downloads"
        urls = [r for r in (result, state.get("again")) if isinstance(r, services.DownloadIssued)]
        assert bool(urls) == bool(counted), f"{len(urls)} URL(s) given for {counted} download(s) counted"
        if code == "unavailable":
            assert counted == 0, "'nothing was lost' but the download was used up"
        notices = [m for m in OutboxMail.scan(OutboxMail.parent_id == transfer_id) if m.kind == "download_notice"]
        assert len(notices) == counted and all(m.status == MAIL_SENT for m in notices), "the sender was not told"
        _chain_verifies()

    sweep_faults("guest download", setup=setup, act=act, check=check, heal=heal)
