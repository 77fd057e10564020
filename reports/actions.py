"""What compliance staff may do to any transfer, each with a reason, each audited (actor: the officer).

Revoke and extend run the same transfers services as the sender's (`revoke`, `extend`), with the officer as the
actor and the reason in the audit event. Every attempt is audited, a refused one too.

Actions are listed in ACTIONS: the transfer page shows the form of each one the transfer's status allows, and
one URL runs them. Legal hold on/off and delete now (issue 6) call the transfers services, which audit every
attempt themselves (the officer as actor, the reason in the details); their refusals become AuditErrors here.

Upload requests (a transfer's reply request too) are items of the same table and take the same actions: revoke
an open or closed request (its guests' links stop, and the employee no longer downloads what was received),
extend an open or closed one (when its received files are deleted; uploads still stop at `closes_at`), hold, release
and delete now in any state a transfer allows them, "closed" included. A legal hold on a transfer (and its
release) covers its reply request too: what the recipients sent back belongs to the same matter. Revoke and
delete now act on that one item (an extended transfer's reply request stays open as long, as with the sender's
extend: the transfers service does that).
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from django import forms
from django.utils.translation import gettext_lazy as _

from reports.errors import AuditError
from reports.services import audit_record


@dataclass(frozen=True)
class Officer:
    """The compliance officer acting, and where from."""

    user_id: str
    ip: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True)
class ActionDone:
    transfer_id: str
    action: str
    message: str


class ReasonForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason (recorded in the audit trail)"),
        min_length=5,
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 2}),
    )


class ExtendForm(ReasonForm):
    expires_at = forms.DateTimeField(
        label=_("New expiry (local time)"), widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )


def _audit(officer: Officer, action: str, transfer_id: str, *, now: datetime, outcome: str = "ok", **details):
    audit_record(
        action=action,
        actor=f"user:{officer.user_id}",
        subject=f"transfer:{transfer_id}",
        outcome=outcome,
        ip=officer.ip,
        user_agent=officer.user_agent,
        details={"by": "compliance", **{k: v for k, v in details.items() if v is not None}},
        now=now,
    )


def _refuse(officer: Officer, action: str, transfer_id: str, *, now: datetime, code: str, reason: str, message: str):
    _audit(officer, action, transfer_id, now=now, outcome="refused", reason=reason, refused=code)
    raise AuditError(code, message)


def _transfer(transfer_id: str):
    from transfers.services.common import transfer_get

    transfer = transfer_get(transfer_id)
    if transfer is None:
        raise AuditError("not_found", "There is no such transfer.")
    return transfer


def _noun(transfer) -> str:
    from transfers.models import KIND_REQUEST

    return "request" if transfer.kind == KIND_REQUEST else "transfer"


def _noun_of(transfer_id: str) -> str:
    from transfers.services.common import transfer_get

    transfer = transfer_get(transfer_id)
    return _noun(transfer) if transfer is not None else "transfer"


def _as_officer(officer: Officer, transfer, reason: str) -> dict:
    """How the transfers services record a compliance officer's act: the officer as actor, the reason, the owner."""
    return {
        "actor": f"user:{officer.user_id}",
        "ip": officer.ip,
        "user_agent": officer.user_agent,
        "by": "compliance",
        "reason": reason,
        "owner": f"user:{transfer.owner_id}",
    }


def transfer_revoke_by_compliance(*, officer: Officer, transfer_id: str, reason: str, now: datetime) -> ActionDone:
    """Stop a transfer or request at once, as its sender's revoke does (links, codes and guest sessions stop
    working; unfinished multipart uploads are aborted; a request's received files are no longer downloaded).
    Audited as transfer.revoked with the officer and the reason."""
    from transfers.errors import TransferError
    from transfers.services.common import status_at
    from transfers.services.sending import revoke

    transfer = _transfer(transfer_id)
    noun = _noun(transfer)
    try:
        revoke(transfer=transfer, now=now, **_as_officer(officer, transfer, reason))
    except TransferError:
        allowed = "an open or closed request" if noun == "request" else "a pending or ready transfer"
        message = f"The {noun} is {status_at(transfer, now)}; only {allowed} can be revoked."
        _refuse(
            officer, "transfer.revoked", transfer_id, now=now, code="state_conflict", reason=reason, message=message
        )
    return ActionDone(transfer_id=transfer_id, action="revoke", message=f"The {noun} is revoked.")


def transfer_extend_by_compliance(
    *, officer: Officer, transfer_id: str, expires_at: datetime, reason: str, now: datetime
) -> ActionDone:
    """Move the expiry later, within the same limit as the sender's extend (FXFER_MAX_EXPIRY_DAYS after creation).
    For an open request it is when the received files are deleted; uploads still stop at `closes_at`."""
    from transfers.errors import TransferError
    from transfers.models import CLOSED, PENDING, READY
    from transfers.services.common import status_at
    from transfers.services.sending import extend, latest_expiry

    transfer = _transfer(transfer_id)
    noun = _noun(transfer)
    if expires_at.tzinfo is not None:
        expires_at = expires_at.astimezone(UTC)  # the form gives local time; UTC inside
    try:
        extend(transfer=transfer, expires_at=expires_at, now=now, **_as_officer(officer, transfer, reason))
    except TransferError as error:
        if error.code == "expiry_invalid":
            latest = f"{latest_expiry(transfer):%Y-%m-%d %H:%M} UTC"
            if latest_expiry(transfer) <= transfer.expires_at:  # a request's keep_days may take it there already
                message = f"The {noun} is kept past the latest an extension may reach ({latest}) already."
            else:
                message = f"The new expiry must be after the current one and no later than {latest}."
        elif status_at(transfer, now) not in {PENDING, READY, CLOSED}:
            allowed = "an open or closed request" if noun == "request" else "a pending or ready transfer"
            message = f"Only {allowed} can be extended."
        else:
            message = f"The {noun} changed meanwhile; try again."
        _refuse(officer, "transfer.extended", transfer_id, now=now, code=error.code, reason=reason, message=message)
    return ActionDone(transfer_id=transfer_id, action="extend", message="The expiry is moved.")


def _call_as_officer(service, *, officer: Officer, transfer_id: str, reason: str, now: datetime):
    """Run a transfers service that acts for a compliance officer; its refusal becomes an AuditError."""
    from transfers.errors import TransferError

    try:
        return service(
            officer_id=officer.user_id,
            transfer_id=transfer_id,
            reason=reason,
            ip=officer.ip,
            user_agent=officer.user_agent,
            now=now,
        )
    except TransferError as exc:
        raise AuditError(exc.code, exc.message) from None


def _with_replies(service, *, officer: Officer, transfer_id: str, reason: str, now: datetime):
    """Run a hold service on the transfer, then on its reply request (what the recipients sent back belongs to
    the same matter); (the transfer's result, the reply's or None). A reply already in that state is left."""
    done = _call_as_officer(service, officer=officer, transfer_id=transfer_id, reason=reason, now=now)
    reply_id = getattr(_transfer(transfer_id), "reply_request_id", None)
    if not reply_id:
        return done, None
    try:
        return done, _call_as_officer(service, officer=officer, transfer_id=reply_id, reason=reason, now=now)
    except AuditError:
        return done, None  # already held (or released, or deleted): the service recorded the refusal


def transfer_hold_by_compliance(*, officer: Officer, transfer_id: str, reason: str, now: datetime) -> ActionDone:
    """Put the transfer (and its replies) on legal hold: no sweep, "delete now" or lifecycle rule deletes their
    files until release."""
    from transfers import services

    done, reply = _with_replies(
        services.transfer_hold_set, officer=officer, transfer_id=transfer_id, reason=reason, now=now
    )
    message = f"The {_noun_of(transfer_id)} is on legal hold ({done.versions} stored object versions held)."
    if reply is not None:
        message += f" Its replies are held too ({reply.versions} stored object versions)."
    return ActionDone(transfer_id=transfer_id, action="legal-hold", message=message)


def transfer_release_hold_by_compliance(
    *, officer: Officer, transfer_id: str, reason: str, now: datetime
) -> ActionDone:
    """Release the legal hold of the transfer (and its replies): they follow their normal expiry again."""
    from transfers import services

    _done, reply = _with_replies(
        services.transfer_hold_release, officer=officer, transfer_id=transfer_id, reason=reason, now=now
    )
    message = f"The legal hold is released; the {_noun_of(transfer_id)} follows its normal expiry again."
    if reply is not None:
        message += " So do its replies."
    return ActionDone(transfer_id=transfer_id, action="release-hold", message=message)


def transfer_delete_by_compliance(*, officer: Officer, transfer_id: str, reason: str, now: datetime) -> ActionDone:
    """Delete the transfer's files at once (every version), with a receipt for each; its links die."""
    from transfers import services

    ids = {"officer": officer, "transfer_id": transfer_id, "reason": reason, "now": now}
    done = _call_as_officer(services.transfer_delete_for_compliance, **ids)
    return ActionDone(
        transfer_id=transfer_id,
        action="delete-now",
        message=f"The files are deleted ({len(done.receipts)} deletion receipts recorded).",
    )


def file_scan_release_by_compliance(
    *, officer: Officer, transfer_id: str, file_id: str, reason: str, now: datetime
) -> ActionDone:
    """Release a file the malware scan blocks (a false positive, a file that could not be scanned, a scan that
    never finished), with a reason: audited "file.scan_overridden"; then its transfer leaves if nothing else
    blocks it. A refused attempt is audited too."""
    from transfers.errors import TransferError
    from transfers.services.scanning import file_scan_release

    _transfer(transfer_id)
    try:
        done = file_scan_release(
            officer_id=officer.user_id,
            transfer_id=transfer_id,
            file_id=file_id,
            reason=reason,
            ip=officer.ip,
            user_agent=officer.user_agent,
            now=now,
        )
    except TransferError as exc:
        if exc.code == "not_found":
            raise AuditError("not_found", "There is no such file.") from None
        _refuse(
            officer, "file.scan_overridden", transfer_id, now=now, code=exc.code, reason=reason, message=exc.message
        )
    message = _("The file is released despite the malware scan.")
    if done.released:
        message = _("The file is released despite the malware scan, and the transfer has been sent.")
    return ActionDone(transfer_id=transfer_id, action="release-scan", message=str(message))


@dataclass(frozen=True)
class ComplianceAction:
    key: str
    label: str
    form: type[forms.Form]
    statuses: frozenset[str]  # the statuses (as of now) it applies to
    run: Callable[..., ActionDone]  # run(officer=, transfer_id=, now=, **form.cleaned_data)
    danger: bool = False
    held: bool | None = None  # applies only to a held (True) or an unheld (False) transfer; None: either

    def applies_to(self, *, status: str, held: bool) -> bool:
        return status in self.statuses and (self.held is None or self.held == held)


ACTIONS: dict[str, ComplianceAction] = {
    "revoke": ComplianceAction(
        key="revoke",
        label=_("Revoke"),
        form=ReasonForm,
        statuses=frozenset({"pending", "ready", "closed"}),
        run=transfer_revoke_by_compliance,
        danger=True,
    ),
    "extend": ComplianceAction(
        key="extend",
        label=_("Extend"),
        form=ExtendForm,
        statuses=frozenset({"pending", "ready", "closed"}),  # "closed": a request's received files
        run=transfer_extend_by_compliance,
    ),
    "legal-hold": ComplianceAction(
        key="legal-hold",
        label=_("Put on legal hold"),
        form=ReasonForm,
        statuses=frozenset({"pending", "ready", "closed", "revoked", "expired"}),
        run=transfer_hold_by_compliance,
        held=False,
    ),
    "release-hold": ComplianceAction(
        key="release-hold",
        label=_("Release legal hold"),
        form=ReasonForm,
        statuses=frozenset({"pending", "ready", "closed", "revoked", "expired"}),
        run=transfer_release_hold_by_compliance,
        held=True,
    ),
    "delete-now": ComplianceAction(
        key="delete-now",
        label=_("Delete files now"),
        form=ReasonForm,
        statuses=frozenset({"pending", "ready", "closed", "revoked", "expired"}),
        run=transfer_delete_by_compliance,
        danger=True,
        held=False,
    ),
}
