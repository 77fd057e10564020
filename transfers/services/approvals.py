"""Supervisor approval (上長承認, issue 16): a transfer that needs it reaches its recipients only after its
approver said yes.

The policy (settings FXFER_APPROVAL*) is applied once, when the transfer is created (`approval_plan`), and what
it decided is recorded on the transfer (`approval_fields`): the state, the reasons, who may decide, by when and
what happens then. A later change of the settings never releases or blocks a transfer made before it.

Who may decide: an address named on the transfer (the sender's manager), a member of the recorded IdP group
(at their last sign-in), or the delegate of a named approver while the delegation runs. Never the sender: not
when the manager attribute names the sender (the group decides instead, `approval_fallback`), not when the
sender is in the group or named as a delegate (refused when they try).

Each step commits with its audit event and its mails (fxfer.change.Change): "approval.required" (with the
transfer: who approves, why), "approval.requested" (the approvers' mails and the timeout's start, once every
file is verified and clean and the mis-send hold is over: approval_request, from the release's blocked path),
"approval.granted", "approval.rejected", "approval.timed_out", "approval.delegated". A granted
approval then calls transfer_release (the release gate may still wait for the scan or the mis-send hold); a
rejection or a timeout ends the transfer (status revoked, no recipient mail ever) and deletes its files with the
deletion service's receipts. The hourly job (approval_timeouts) applies FXFER_APPROVAL_ON_TIMEOUT and finishes a
deletion a crash left undone; a timeout never releases anything.

The reads the pages need (approval_page, approvals_pending, approvals_waiting_for, delegation_get) are here too,
beside the writes they explain; they write nothing.
"""

import hmac
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils import translation

from fxfer import i18n
from fxfer.change import Change, ChangeRefused
from transfers import mails
from transfers.errors import TransferError
from transfers.models import (
    FILE_CANCELLED,
    FILE_VERIFIED,
    GATE_APPROVAL,
    KIND_SEND,
    PENDING,
    REVOKED,
    ApprovalDelegation,
    File,
    Recipient,
    Transfer,
)
from transfers.services import gate
from transfers.services.common import (
    SWEEP_PAGE,
    AccessDenied,
    audit,
    file_get,
    shard_hits,
    shard_transfers,
    transfer_get,
    unavailable_when_aws_fails,
    utc,
)

logger = logging.getLogger(__name__)

NOT_REQUIRED, REQUIRED, APPROVED, REJECTED, TIMED_OUT = "not_required", "required", "approved", "rejected", "timed_out"
# What blocks the release: waiting, and the two ends (their status is revoked as well).
BLOCKING = {REQUIRED, REJECTED, TIMED_OUT}
APPROVE, REJECT = "approve", "reject"
BY_APPROVAL = "approval"  # the deleter's name on a rejected or timed-out transfer (Transfer.deleted_by)
APPROVAL_ACTOR = "job:approval_timeouts"
MAX_COMMENT = 2000
MAX_DELEGATION_DAYS = 92


class ApprovalRefused(TransferError):
    """The person may see the approval but not decide it (the sender themselves): 403, never a 404."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)
        self.status = 403


def _(text: str) -> str:
    return translation.gettext(text)


# --- the policy, applied at creation -------------------------------------------------------------------------


@dataclass(frozen=True)
class ApprovalPlan:
    """What the policy decided for a new transfer."""

    required: bool
    reasons: tuple[str, ...] = ()
    approvers: tuple[str, ...] = ()  # casefolded addresses (the manager)
    group: str | None = None  # an IdP group whose members may decide
    fallback: str | None = None  # "no_manager", "self_manager": the group decides instead of the manager
    on_timeout: str = "reject"

    @property
    def state(self) -> str:
        return REQUIRED if self.required else NOT_REQUIRED


def _domain_listed(domain: str, entries: list[str]) -> bool:
    domain = domain.lower().rstrip(".")
    return any(domain == e or domain.endswith("." + e) for e in (x.lower().strip().lstrip("@.") for x in entries))


def external_domains(addresses: list[str]) -> tuple[str, ...]:
    """The recipients' domains outside the company's own (FXFER_APPROVAL_ALLOWED_DOMAINS), each once."""
    found: list[str] = []
    for address in addresses:
        domain = address.rpartition("@")[2].lower()
        if not _domain_listed(domain, settings.FXFER_APPROVAL_ALLOWED_DOMAINS) and domain not in found:
            found.append(domain)
    return tuple(found)


def approval_reasons(*, department: str, recipients: list[str], total_bytes: int) -> tuple[str, ...]:
    """Why the policy asks for an approval (empty: it does not)."""
    reasons = []
    if settings.FXFER_APPROVAL == "always":
        reasons.append("always")
    elif settings.FXFER_APPROVAL == "external" and external_domains(recipients):
        reasons.append("external")
    if settings.FXFER_APPROVAL_OVER_BYTES > 0 and total_bytes > settings.FXFER_APPROVAL_OVER_BYTES:
        reasons.append("size")
    departments = {d.casefold() for d in settings.FXFER_APPROVAL_DEPARTMENTS}
    if department and department.casefold() in departments:
        reasons.append("department")
    return tuple(reasons)


def _approver_group() -> str | None:
    if settings.FXFER_APPROVER.startswith("group:"):
        return settings.FXFER_APPROVER[6:].strip()
    return settings.FXFER_APPROVAL_GROUP or None


def approval_plan(*, sender, recipients: list[str], total_bytes: int, now: datetime) -> ApprovalPlan:
    """Apply the approval policy to a new transfer. Refuses ("approver_missing") a transfer that needs an
    approval nobody but the sender could give: no manager (or the sender is their own) and no group."""
    reasons = approval_reasons(
        department=getattr(sender, "department", "") or "", recipients=recipients, total_bytes=total_bytes
    )
    if not reasons:
        return ApprovalPlan(required=False)
    sender_email = (sender.email or "").casefold()
    approvers: tuple[str, ...] = ()
    group = fallback = None
    if settings.FXFER_APPROVER == "manager":
        manager = (getattr(sender, "manager_email", "") or "").strip().casefold()
        if manager and manager != sender_email:
            approvers = (manager,)
        else:
            fallback = "self_manager" if manager else "no_manager"
            group = settings.FXFER_APPROVAL_GROUP or None
    else:
        group = _approver_group()
    if not approvers and not group:
        raise TransferError(
            "approver_missing",
            _("This transfer needs an approval, but no approver is known for you. Ask your administrator."),
        )
    escalate = settings.FXFER_APPROVAL_ON_TIMEOUT == "escalate" and bool(approvers) and bool(_escalation_group())
    return ApprovalPlan(
        required=True,
        reasons=reasons,
        approvers=approvers,
        group=group,
        fallback=fallback,
        on_timeout="escalate" if escalate else "reject",
    )


def _escalation_group() -> str | None:
    return settings.FXFER_APPROVAL_GROUP or None


def approval_fields(plan: ApprovalPlan) -> dict:
    """The Transfer attributes that record `plan`."""
    if not plan.required:
        return {"approval_state": NOT_REQUIRED}
    return {
        "approval_state": REQUIRED,
        "approval_reasons": ",".join(plan.reasons),
        "approval_approvers": set(plan.approvers) or None,
        "approval_group": plan.group,
        "approval_fallback": plan.fallback,
        "approval_on_timeout": plan.on_timeout,
    }


def approval_recorded(change: Change, *, transfer: Transfer, plan: ApprovalPlan, ip=None) -> None:
    """Add the "approval.required" event (who approves, why) to the change that creates `transfer`. Nobody is
    mailed yet: the approvers are asked once the files are there and clean (approval_request)."""
    if not plan.required:
        return
    change.audit(
        "approval.required",
        actor=f"user:{transfer.owner_id}",
        subject=f"transfer:{transfer.transfer_id}",
        ip=ip,
        reasons=list(plan.reasons),
        approvers=list(plan.approvers) or None,
        group=plan.group,
        fallback=plan.fallback,
        on_timeout=plan.on_timeout,
    )


def _notify(transfer: Transfer, now: datetime) -> list[str]:
    """Who is mailed the request: the approvers, their delegates of the moment (never the sender), the group's
    list address when the group decides."""
    sender = (transfer.owner_email or "").casefold()
    approvers = sorted(transfer.approval_approvers or ())
    notify = list(approvers)
    for approver in approvers:
        delegate = _active_delegate(approver, now)
        if delegate and delegate != sender and delegate not in notify:
            notify.append(delegate)
    if transfer.approval_group and not approvers and settings.FXFER_APPROVAL_GROUP_EMAIL:
        notify.append(settings.FXFER_APPROVAL_GROUP_EMAIL.casefold())
    return notify


def approval_request(transfer: Transfer, files, now: datetime) -> bool:
    """Ask the approvers, once every file is verified and clean and approval is all the gate waits for (the
    release's blocked path calls this; so does every later call of it, until it has committed once). One
    transaction (op "approval.request:<transfer id>") sets approval_requested_at and the timeout, records
    "approval.requested" and puts the approvers' mails in the outbox; a repeat (a lost answer, a second caller,
    a transfer that asked at creation before this existed) changes nothing. True: this call asked them."""
    if (
        transfer.approval_state != REQUIRED
        or transfer.status != PENDING
        or transfer.approval_requested_at is not None
        or transfer.approval_due_at is not None
    ):
        return False
    notify = _notify(transfer, now)
    due_at = now + timedelta(hours=settings.FXFER_APPROVAL_TIMEOUT_HOURS)
    change = Change(op=f"approval.request:{transfer.transfer_id}", now=now)
    change.update(
        transfer,
        actions=[
            Transfer.approval_requested_at.set(now),
            Transfer.approval_due_at.set(due_at),
            Transfer.gate.set(GATE_APPROVAL),
        ],
        condition=(Transfer.status == PENDING)
        & (Transfer.approval_state == REQUIRED)
        & Transfer.approval_requested_at.does_not_exist()
        & Transfer.approval_due_at.does_not_exist(),
        label="transfer",
    )
    change.audit(
        "approval.requested",
        actor="system",
        subject=f"transfer:{transfer.transfer_id}",
        reasons=[r for r in (transfer.approval_reasons or "").split(",") if r],
        approvers=sorted(transfer.approval_approvers or ()) or None,
        group=transfer.approval_group,
        notified=notify,
        due_at=due_at.isoformat(),
        on_timeout=transfer.approval_on_timeout,
        file_count=len(files),
    )
    transfer.approval_due_at = due_at  # for the mail
    listed = [(f.name, int(f.verified_size or f.declared_size)) for f in files]
    for to in notify:
        _request_mail(change, transfer=transfer, to=to, files=listed, key=f"approval:{transfer.transfer_id}:{to}")
    from transfers.services.sending import commit_recognised

    try:
        commit_recognised(change)
    except ChangeRefused as refused:
        if refused.failed("transfer") is None:
            raise
        return False  # asked by another caller meanwhile, or decided, cancelled or deleted
    return True


def _request_mail(change: Change, *, transfer: Transfer, to: str, files: list, key: str) -> None:
    with translation.override(i18n.mail_language(None, to)):
        draft = mails.approval_request_mail(
            to=to,
            sender_name=transfer.owner_name,
            sender_email=transfer.owner_email,
            subject=transfer.subject,
            message=transfer.message,
            recipients=[a for a in (transfer.recipient_emails or "").split(",") if a],
            external=list(external_domains((transfer.recipient_emails or "").split(","))),
            files=files,
            due_at=transfer.approval_due_at,
            link=f"{settings.FXFER_BASE_URL}/approvals/{transfer.transfer_id}/",
        )
    change.mail(key=key, kind="approval_request", parent_id=transfer.transfer_id, **draft.fields())


# --- the gate --------------------------------------------------------------------------------------------------


def approval_blockers(transfer: Transfer, files, now: datetime) -> tuple[str, ...]:
    """The release gate's check: blocked while an approval is awaited (or was refused)."""
    return ("approval",) if transfer.approval_state in BLOCKING else ()


# --- who may decide --------------------------------------------------------------------------------------------


def _active_delegate(approver: str, now: datetime) -> str | None:
    try:
        delegation = ApprovalDelegation.get(approver.casefold(), consistent_read=True)
    except ApprovalDelegation.DoesNotExist:
        return None
    if delegation.starts_at <= now < delegation.ends_at:
        return delegation.delegate_email
    return None


def _is_sender(transfer: Transfer, person) -> bool:
    return hmac.compare_digest(str(person.id).encode(), transfer.owner_id.encode()) or (
        bool(person.email) and person.email.casefold() == (transfer.owner_email or "").casefold()
    )


def authority(transfer: Transfer, person, now: datetime) -> str | None:
    """Why `person` may decide `transfer`'s approval: "approver", "group", "delegate:<approver>"; None: they may
    not. The sender never may (the caller checks that first)."""
    email = (person.email or "").casefold()
    if not email:
        return None
    approvers = set(transfer.approval_approvers or ())
    if email in approvers:
        return "approver"
    if transfer.approval_group and transfer.approval_group in tuple(getattr(person, "idp_groups", ()) or ()):
        return "group"
    for approver in sorted(approvers):
        if _active_delegate(approver, now) == email:
            return f"delegate:{approver}"
    return None


def _approval_transfer(transfer_id: str, person, now: datetime) -> tuple[Transfer, str | None, bool]:
    """The transfer whose approval `person` opens, why they may decide it, and whether they are its sender.
    Anyone else (and a transfer that never needed an approval) gets the same not_found as a missing id."""
    transfer = transfer_get(transfer_id)
    if transfer is None:
        raise AccessDenied(transfer_id=transfer_id, exists=False)
    if transfer.kind != KIND_SEND or transfer.approval_state in (None, NOT_REQUIRED):
        raise AccessDenied(transfer_id=transfer_id, exists=True)
    if _is_sender(transfer, person):
        return transfer, None, True
    why = authority(transfer, person, now)
    if why is None:
        raise AccessDenied(transfer_id=transfer_id, exists=True)
    return transfer, why, False


# --- reads for the pages ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApprovalFile:
    name: str
    size: int
    state: str
    file_id: str = ""
    checksum: str | None = None  # "sha256:<hex>" (transfers.selectors.checksum_text)
    checksum_by: str | None = None  # who vouches for it: "s3" or "sender"
    scan: str = ""  # transfers.services.scanning.scan_state ("" while not uploaded)
    scan_text: str = ""

    @property
    def clean(self) -> bool:
        """Verified and passed the malware scan (or released by compliance): the approver may have it."""
        from transfers.services.scanning import PASSING

        return self.scan in PASSING

    @property
    def scan_blocked(self) -> bool:
        return bool(self.scan) and not self.clean


@dataclass(frozen=True)
class ApprovalRecipient:
    email: str
    external: bool


@dataclass(frozen=True)
class ApprovalStatus:
    """A transfer's approval as its sender, its approvers and compliance see it."""

    transfer_id: str
    state: str  # "required", "approved", "rejected", "timed_out"
    reasons: tuple[str, ...]
    approvers: tuple[str, ...]
    group: str | None
    fallback: str | None
    due_at: datetime | None
    escalated_at: datetime | None
    decided_by: str | None
    decided_name: str | None
    decided_at: datetime | None
    comment: str | None

    @property
    def waiting(self) -> bool:
        return self.state == REQUIRED

    @property
    def who(self) -> str:
        """Who is asked, for "waiting for approval by …"."""
        names = list(self.approvers)
        if self.group and (not names or self.escalated_at):
            names.append(_("the approvers' group"))
        return ", ".join(names)


def _status(transfer: Transfer) -> ApprovalStatus:
    return ApprovalStatus(
        transfer_id=transfer.transfer_id,
        state=transfer.approval_state,
        reasons=tuple(r for r in (transfer.approval_reasons or "").split(",") if r),
        approvers=tuple(sorted(transfer.approval_approvers or ())),
        group=transfer.approval_group,
        fallback=transfer.approval_fallback,
        due_at=transfer.approval_due_at,
        escalated_at=transfer.approval_escalated_at,
        decided_by=transfer.approval_decided_by,
        decided_name=transfer.approval_decided_name,
        decided_at=transfer.approval_decided_at,
        comment=transfer.approval_comment,
    )


def approval_status(transfer: Transfer | None) -> ApprovalStatus | None:
    """The approval of `transfer`, or None when it needed none."""
    if transfer is None or transfer.approval_state in (None, NOT_REQUIRED):
        return None
    return _status(transfer)


def approval_status_for_owner(*, owner_id: str, transfer_id: str) -> ApprovalStatus | None:
    """The approval of the owner's transfer (None: none needed, or not theirs: their page already refused it)."""
    transfer = transfer_get(transfer_id)
    if transfer is None or transfer.owner_id != str(owner_id):
        return None
    return approval_status(transfer)


@dataclass(frozen=True)
class ApprovalPage:
    """What the approver sees before deciding."""

    status: ApprovalStatus
    transfer_id: str
    subject: str
    message: str
    sender_name: str
    sender_email: str
    sender_is_viewer: bool
    authority: str | None
    created_at: datetime
    expires_at: datetime
    transfer_status: str
    files: tuple[ApprovalFile, ...]
    recipients: tuple[ApprovalRecipient, ...]
    total_bytes: int

    @property
    def may_decide(self) -> bool:
        return (
            self.authority is not None
            and not self.sender_is_viewer
            and self.status.waiting
            and self.transfer_status == PENDING
        )

    @property
    def all_clean(self) -> bool:
        """Every file is there and passed the malware scan: only then is there something to approve."""
        return bool(self.files) and all(f.clean for f in self.files)

    @property
    def may_approve(self) -> bool:
        return self.may_decide and self.all_clean

    @property
    def may_download(self) -> bool:
        """The approver (not the sender) may inspect each clean file before deciding."""
        return self.authority is not None and not self.sender_is_viewer and self.transfer_status == PENDING


def _approval_file(file: File, now: datetime) -> ApprovalFile:
    from transfers.selectors import CHECKED_BY_S3, SENDERS_WORD, checksum_text
    from transfers.services.scanning import scan_state, scan_state_text

    scan = scan_state(file, now)
    by = CHECKED_BY_S3 if file.checksum_sha256 else (SENDERS_WORD if file.declared_sha256 else None)
    return ApprovalFile(
        name=file.name,
        size=int(file.verified_size or file.declared_size),
        state=file.state,
        file_id=file.file_id,
        checksum=checksum_text(sha256=file.checksum_sha256 or file.declared_sha256, etag=file.etag),
        checksum_by=by,
        scan=scan,
        scan_text=scan_state_text(scan),
    )


def approval_page(*, person, transfer_id: str, now: datetime | None = None) -> ApprovalPage:
    """The transfer as its approver sees it: files with sizes, recipients (outside domains marked), message,
    sender. not_found for anyone who may not decide it (the sender sees it, and is told they may not)."""
    now = utc(now)
    transfer, why, is_sender = _approval_transfer(transfer_id, person, now)
    items = File.query(transfer_id, consistent_read=True)
    files = tuple(_approval_file(f, now) for f in items if f.state != FILE_CANCELLED)
    addresses = [r.email for r in Recipient.query(transfer_id, consistent_read=True)]
    outside = set(external_domains(addresses))
    recipients = tuple(ApprovalRecipient(email=a, external=a.rpartition("@")[2].lower() in outside) for a in addresses)
    return ApprovalPage(
        status=_status(transfer),
        transfer_id=transfer_id,
        subject=transfer.subject,
        message=transfer.message,
        sender_name=transfer.owner_name,
        sender_email=transfer.owner_email,
        sender_is_viewer=is_sender,
        authority=why,
        created_at=transfer.created_at,
        expires_at=transfer.expires_at,
        transfer_status=transfer.status,
        files=files,
        recipients=recipients,
        total_bytes=int(transfer.total_bytes or 0),
    )


@dataclass(frozen=True)
class PendingApproval:
    transfer_id: str
    subject: str
    sender_name: str
    sender_email: str
    created_at: datetime
    total_bytes: int
    recipients: tuple[str, ...]
    status: ApprovalStatus


def _asked(transfer: Transfer) -> bool:
    """The approvers were asked (a transfer from before approval_request was asked at creation)."""
    return transfer.approval_requested_at is not None or transfer.approval_due_at is not None


# The approvals pages' reads: index keys per Query page, and transfers per BatchGetItem (DynamoDB's most).
WAITING_PAGE = 100


def _waiting(now: datetime, limit: int, asked_only: bool = False, shown=None):
    """Up to `limit` transfers awaiting an approval: of the unreleased ones (the sparse by-pending index, all of
    it, see shard_hits: one still uploading or on legal hold never hides a later one), those with an approval
    still required (`asked_only`: and asked for, their files there and clean) that `shown(transfer)` keeps, if
    given, so that others' approvals never fill the list before one's own. The transfers are read a page of
    keys at a time, in one consistent BatchGetItem each, not one GetItem per unreleased transfer."""
    seen = 0
    for _hit, transfer in shard_transfers(Transfer.by_pending, Transfer.created_at <= now, page_size=WAITING_PAGE):
        if transfer is None or transfer.approval_state != REQUIRED or transfer.status != PENDING:
            continue
        if asked_only and not _asked(transfer):
            continue
        if shown is not None and not shown(transfer):
            continue
        yield transfer
        seen += 1
        if seen >= limit:
            return


def _pending_row(transfer: Transfer) -> PendingApproval:
    return PendingApproval(
        transfer_id=transfer.transfer_id,
        subject=transfer.subject,
        sender_name=transfer.owner_name,
        sender_email=transfer.owner_email,
        created_at=transfer.created_at,
        total_bytes=int(transfer.total_bytes or 0),
        recipients=tuple(a for a in (transfer.recipient_emails or "").split(",") if a),
        status=_status(transfer),
    )


@unavailable_when_aws_fails
def approvals_pending(*, now: datetime | None = None, limit: int = 200) -> list[PendingApproval]:
    """Every approval still awaited (compliance's list), oldest due first."""
    now = utc(now)
    rows = [_pending_row(t) for t in _waiting(now, limit)]
    return sorted(rows, key=lambda r: (r.status.due_at or r.created_at, r.transfer_id))


@unavailable_when_aws_fails
def approvals_waiting_for(*, person, now: datetime | None = None, limit: int = 200) -> list[PendingApproval]:
    """The approvals `person` may decide now (their "Approvals" page), oldest due first."""
    now = utc(now)
    rows = [
        _pending_row(t)
        for t in _waiting(
            now,
            limit,
            asked_only=True,
            shown=lambda t: not _is_sender(t, person) and authority(t, person, now) is not None,
        )
    ]
    return sorted(rows, key=lambda r: (r.status.due_at or r.created_at, r.transfer_id))


@dataclass(frozen=True)
class Delegation:
    delegate_email: str
    starts_at: datetime
    ends_at: datetime

    def running(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at


def delegation_get(*, approver_email: str, now: datetime | None = None) -> Delegation | None:
    """The approver's delegation that has not ended yet, or None."""
    now = utc(now)
    if not approver_email:
        return None
    try:
        item = ApprovalDelegation.get(approver_email.casefold(), consistent_read=True)
    except ApprovalDelegation.DoesNotExist:
        return None
    if item.ends_at <= now:
        return None
    return Delegation(delegate_email=item.delegate_email, starts_at=item.starts_at, ends_at=item.ends_at)


# --- deciding ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApprovalDecided:
    transfer_id: str
    decision: str  # "approve" or "reject"
    repeated: bool  # the same person's same decision had already committed (a double click, a retry)
    released: bool = False  # the approval let the transfer go now (else the gate still waits, or it is not uploaded)
    deleted: bool = False  # a rejection's files are deleted (else the hourly job finishes it)


def _decided_message(transfer: Transfer) -> str:
    who = transfer.approval_decided_name or transfer.approval_decided_by or "-"
    if transfer.approval_state == APPROVED:
        return _("This transfer was already approved by %(who)s.") % {"who": who}
    if transfer.approval_state == REJECTED:
        return _("This transfer was already rejected by %(who)s.") % {"who": who}
    if transfer.approval_state == TIMED_OUT:
        return _("This approval request timed out; the transfer was not sent.")
    return _("This transfer is no longer waiting for approval.")


@unavailable_when_aws_fails
def approval_decide(
    *,
    person,
    transfer_id: str,
    decision: str,
    comment: str = "",
    ip: str | None = None,
    user_agent: str | None = None,
    now: datetime | None = None,
) -> ApprovalDecided:
    """`person` approves or rejects (with a comment: required) the transfer's approval. One transaction sets
    the state with its event and the sender's mail, on condition that it is still awaited: of two deciders (or
    two clicks) one wins and the other is told what happened. Approving then calls transfer_release; rejecting
    ends the transfer (revoked, no recipient mail) and deletes its files."""
    now = utc(now)
    if decision not in (APPROVE, REJECT):
        raise TransferError("invalid")
    comment = (comment or "").strip()
    if len(comment) > MAX_COMMENT:
        raise TransferError("invalid", _("The comment is too long."))
    if decision == REJECT and not comment:
        raise TransferError("comment_required", _("Say why you reject it: the sender reads your comment."))
    transfer, why, is_sender = _approval_transfer(transfer_id, person, now)
    action = "approval.granted" if decision == APPROVE else "approval.rejected"
    if is_sender:
        audit(
            action,
            actor=f"user:{person.id}",
            transfer_id=transfer_id,
            now=now,
            outcome="refused",
            ip=ip,
            user_agent=user_agent,
            refused="own_transfer",
        )
        raise ApprovalRefused("self_approval", _("You cannot approve or reject your own transfer."))
    email = (person.email or "").casefold()
    decided_state = APPROVED if decision == APPROVE else REJECTED
    if transfer.approval_state != REQUIRED or transfer.status != PENDING:
        if transfer.approval_state == decided_state and transfer.approval_decided_by == email:
            # A double click, or a retry after an answer that was lost: done before; finish what follows it.
            return _after(transfer_id, decision=decision, repeated=True, actor=f"user:{person.id}", now=now)
        raise TransferError("state_conflict", _decided_message(transfer))
    if decision == APPROVE and not _asked(transfer):
        # Nothing to approve yet: the approvers are asked once every file is there and clean (a rejection may
        # come at any time).
        raise TransferError(
            "state_conflict", _("The files are not all uploaded and scanned yet: approve once they are.")
        )
    change = Change(op=f"approval.{decision}:{transfer_id}:{person.id}", now=now)
    actions = [
        Transfer.approval_state.set(decided_state),
        Transfer.approval_decided_by.set(email),
        Transfer.approval_decided_name.set(str(getattr(person, "display_name", "") or email)),
        Transfer.approval_decided_at.set(now),
    ]
    if comment:
        actions.append(Transfer.approval_comment.set(comment))
    if decision == REJECT:
        actions += [Transfer.status.set(REVOKED), Transfer.revoked_at.set(now)]
    change.update(
        transfer,
        actions=actions,
        condition=(Transfer.status == PENDING) & (Transfer.approval_state == REQUIRED),
        label="transfer",
    )
    change.audit(
        action,
        actor=f"user:{person.id}",
        subject=f"transfer:{transfer_id}",
        ip=ip,
        user_agent=user_agent,
        approver=email,
        authority=why,
        comment=comment or None,
    )
    _sender_mail(
        change, transfer=transfer, state=decided_state, by=getattr(person, "display_name", "") or email, comment=comment
    )
    from transfers.services.sending import commit_recognised

    try:
        repeated = False
        commit_recognised(change)
    except ChangeRefused as refused:
        if refused.failed("transfer") is None:
            raise
        current = transfer_get(transfer_id) or transfer
        if current.approval_state == decided_state and current.approval_decided_by == email:
            repeated = True  # our own earlier attempt (past the token's ten minutes)
        else:
            raise TransferError("state_conflict", _decided_message(current)) from None
    return _after(transfer_id, decision=decision, repeated=repeated, actor=f"user:{person.id}", now=now)


def _after(transfer_id: str, *, decision: str, repeated: bool, actor: str, now: datetime) -> ApprovalDecided:
    """What follows a committed decision (safe to repeat): the release, or the end of a rejected transfer."""
    if decision == APPROVE:
        released = _release(transfer_id, now)
        return ApprovalDecided(transfer_id=transfer_id, decision=decision, repeated=repeated, released=released)
    deleted = _end(transfer_id, actor=actor, reason="approval rejected", now=now)
    return ApprovalDecided(transfer_id=transfer_id, decision=decision, repeated=repeated, deleted=deleted)


def _sender_mail(change: Change, *, transfer: Transfer, state: str, by: str, comment: str = "") -> None:
    with translation.override(i18n.mail_language(transfer.owner_language, transfer.owner_email)):
        draft = mails.approval_decided_mail(
            to=transfer.owner_email,
            state=state,
            by=by,
            comment=comment,
            subject=transfer.subject,
            page=f"{settings.FXFER_BASE_URL}/transfers/{transfer.transfer_id}/",
        )
    change.mail(
        key=f"approval-result:{transfer.transfer_id}:{state}",
        kind="approval_result",
        parent_id=transfer.transfer_id,
        **draft.fields(),
    )


def _release(transfer_id: str, now: datetime) -> bool:
    """After the approval committed: release now if nothing else blocks. A failure here loses nothing: the
    hourly healer releases every verified transfer the gate lets go."""
    from transfers.services.sending import transfer_release

    try:
        return transfer_release(transfer_id=transfer_id, now=now).released
    except Exception:
        logger.warning("approvals.release_failed", extra={"transfer_id": transfer_id}, exc_info=True)
        return False


def _end(transfer_id: str, *, actor: str, reason: str, now: datetime) -> bool:
    """After a rejection or a timeout committed: abort unfinished uploads, delete the files with receipts (the
    deletion service). A failure loses nothing: the hourly job finishes it (approval_timeouts)."""
    from transfers.services.deletion import delete_transfer_files
    from transfers.services.sending import abort_unfinished_uploads

    try:
        abort_unfinished_uploads(transfer_id)
        done = delete_transfer_files(transfer_id, by=BY_APPROVAL, actor=actor, now=now, reason=reason)
    except Exception:
        logger.warning("approvals.deletion_failed", extra={"transfer_id": transfer_id}, exc_info=True)
        return False
    return done.outcome == "deleted"


# --- the approver inspects a file ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ApproverDownload:
    url: str
    expires_at: datetime
    file_name: str


@unavailable_when_aws_fails
def approval_file_download_url(
    *,
    person,
    transfer_id: str,
    file_id: str,
    ip: str | None = None,
    user_agent: str | None = None,
    now: datetime | None = None,
) -> ApproverDownload:
    """A short-lived presigned GET (attachment) of one of the transfer's files, for its approver or their
    delegate to inspect before deciding (the sender and anyone else get not_found); only a verified file that
    passed the malware scan, of a transfer still waiting. Audited "file.downloaded" with role=approver; the
    recipients' download counts are not touched."""
    from transfers.services.scanning import clean_download_url

    now = utc(now)
    transfer, why, is_sender = _approval_transfer(transfer_id, person, now)
    ids = {"actor": f"user:{person.id}", "transfer_id": transfer_id, "now": now, "ip": ip, "user_agent": user_agent}
    file = file_get(transfer_id, file_id)
    reason = "own_transfer" if is_sender else None
    if reason is None and (file is None or file.state != FILE_VERIFIED):
        reason = "not_found"
    if reason is None and (transfer.status != PENDING or transfer.deleted_at or transfer.deletion_claimed_at):
        reason = "not_pending"
    if reason is not None:
        audit("file.downloaded", **ids, outcome="refused", reason=reason, file_id=file_id, role="approver")
        raise TransferError("not_found")
    url, expires_at = clean_download_url(file, event="file.downloaded", ids=ids, role="approver", authority=why)
    return ApproverDownload(url=url, expires_at=expires_at, file_name=file.name)


# --- timeouts (the hourly job) ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApprovalTimeouts:
    timed_out: int = 0  # rejected for want of an answer
    escalated: int = 0  # handed to the approvers' group
    deletions_finished: int = 0  # rejected or timed-out transfers whose files were still there
    complete: bool = True


def approval_timeouts(*, now: datetime | None = None, deadline: datetime | None = None, page_size: int = SWEEP_PAGE):
    """Hourly: every awaited approval past its time is escalated to the approvers' group (once, when the
    policy said so at creation) or ends the transfer; a rejected or timed-out transfer whose files a crash left
    is deleted. Never releases anything. Safe to run twice (conditional transactions)."""
    from transfers.services.deletion import out_of_time

    now = utc(now)
    timed_out = escalated = finished = 0
    for hit in shard_hits(Transfer.by_pending, Transfer.created_at <= now, page_size=page_size):
        if out_of_time(deadline):
            return ApprovalTimeouts(timed_out, escalated, finished, complete=False)
        transfer = transfer_get(hit.transfer_id)
        if transfer is None or transfer.deleted_at or transfer.held:
            continue
        if transfer.approval_state in (REJECTED, TIMED_OUT):
            if transfer.deletion_claimed_at is None:
                finished += _end(transfer.transfer_id, actor=APPROVAL_ACTOR, reason="approval refused", now=now)
            continue
        if transfer.approval_state != REQUIRED or transfer.status != PENDING:
            continue
        if transfer.approval_due_at is None or transfer.approval_due_at > now:
            continue
        if transfer.approval_on_timeout == "escalate" and transfer.approval_escalated_at is None:
            escalated += _escalate(transfer, now=now)
        else:
            timed_out += _time_out(transfer, now=now)
    return ApprovalTimeouts(timed_out, escalated, finished)


def _escalate(transfer: Transfer, *, now: datetime) -> bool:
    group = _escalation_group()
    if not group:  # the group was unset since: the policy's other answer
        return False
    change = Change(op=f"approval.escalate:{transfer.transfer_id}", now=now)
    change.update(
        transfer,
        actions=[
            Transfer.approval_group.set(group),
            Transfer.approval_escalated_at.set(now),
            Transfer.approval_due_at.set(now + timedelta(hours=settings.FXFER_APPROVAL_TIMEOUT_HOURS)),
            Transfer.approval_on_timeout.set("reject"),
        ],
        condition=(Transfer.status == PENDING)
        & (Transfer.approval_state == REQUIRED)
        & Transfer.approval_escalated_at.does_not_exist(),
        label="transfer",
    )
    change.audit(
        "approval.timed_out",
        actor=APPROVAL_ACTOR,
        subject=f"transfer:{transfer.transfer_id}",
        then="escalated",
        group=group,
        due_at=transfer.approval_due_at.isoformat() if transfer.approval_due_at else None,
    )
    if settings.FXFER_APPROVAL_GROUP_EMAIL:
        transfer.approval_due_at = now + timedelta(hours=settings.FXFER_APPROVAL_TIMEOUT_HOURS)
        files = [(f.name, int(f.declared_size)) for f in File.query(transfer.transfer_id) if f.state != FILE_CANCELLED]
        to = settings.FXFER_APPROVAL_GROUP_EMAIL.casefold()
        _request_mail(change, transfer=transfer, to=to, files=files, key=f"approval-escalated:{transfer.transfer_id}")
    try:
        return not change.commit().repeated
    except ChangeRefused:
        return False  # decided (or escalated) meanwhile


def _time_out(transfer: Transfer, *, now: datetime) -> bool:
    change = Change(op=f"approval.timeout:{transfer.transfer_id}", now=now)
    change.update(
        transfer,
        actions=[
            Transfer.approval_state.set(TIMED_OUT),
            Transfer.approval_decided_by.set("system"),
            Transfer.approval_decided_at.set(now),
            Transfer.status.set(REVOKED),
            Transfer.revoked_at.set(now),
        ],
        condition=(Transfer.status == PENDING) & (Transfer.approval_state == REQUIRED),
        label="transfer",
    )
    change.audit(
        "approval.timed_out",
        actor=APPROVAL_ACTOR,
        subject=f"transfer:{transfer.transfer_id}",
        then="rejected",
        due_at=transfer.approval_due_at.isoformat() if transfer.approval_due_at else None,
    )
    _sender_mail(change, transfer=transfer, state=TIMED_OUT, by="")
    try:
        committed = change.commit()
    except ChangeRefused:
        return False  # decided meanwhile: never released by a timeout
    _end(transfer.transfer_id, actor=APPROVAL_ACTOR, reason="approval timed out", now=now)
    return not committed.repeated


# --- delegation -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DelegationSet:
    approver_email: str
    delegate_email: str | None  # None: the delegation was ended
    starts_at: datetime | None = None
    ends_at: datetime | None = None


def _delegation_audit(change: Change, approver, *, ip: str | None, user_agent: str | None, **details) -> None:
    """The "approval.delegated" event of a delegation set or ended, by the approver about themselves."""
    change.audit(
        "approval.delegated",
        actor=f"user:{approver.id}",
        subject=f"user:{approver.id}",
        ip=ip,
        user_agent=user_agent,
        approver=(approver.email or "").casefold(),
        **details,
    )


@unavailable_when_aws_fails
def delegation_set(
    *,
    approver,
    delegate_email: str,
    starts_at: datetime,
    ends_at: datetime,
    ip: str | None = None,
    user_agent: str | None = None,
    now: datetime | None = None,
) -> DelegationSet:
    """The approver names a delegate for a period (an absence): approval requests naming the approver go to the
    delegate too, who may decide them while it runs. Replaces the approver's earlier delegation."""
    now = utc(now)
    own = (approver.email or "").casefold()
    delegate = (delegate_email or "").strip().casefold()
    try:
        validate_email(delegate)
    except ValidationError:
        raise TransferError("delegate_invalid", _("Enter the delegate's e-mail address.")) from None
    if not own or delegate == own:
        raise TransferError("delegate_invalid", _("You cannot be your own delegate."))
    starts_at, ends_at = utc(starts_at), utc(ends_at)
    if ends_at <= max(starts_at, now) or ends_at - starts_at > timedelta(days=MAX_DELEGATION_DAYS):
        raise TransferError(
            "delegation_period_invalid",
            _("The period must end after it starts, in the future, within %(days)s days.")
            % {"days": MAX_DELEGATION_DAYS},
        )
    item = ApprovalDelegation(
        approver_key=own,
        approver_id=str(approver.id),
        delegate_email=delegate,
        starts_at=starts_at,
        ends_at=ends_at,
        set_at=now,
        purge_at=ends_at + timedelta(days=1),
    )
    change = Change(
        op=f"approval.delegate:{approver.id}:{delegate}:{starts_at.isoformat()}:{ends_at.isoformat()}", now=now
    )
    change.put(item, label="delegation")
    _delegation_audit(
        change,
        approver,
        ip=ip,
        user_agent=user_agent,
        delegate=delegate,
        starts_at=starts_at.isoformat(),
        ends_at=ends_at.isoformat(),
    )
    change.commit()
    return DelegationSet(approver_email=own, delegate_email=delegate, starts_at=starts_at, ends_at=ends_at)


@unavailable_when_aws_fails
def delegation_end(
    *, approver, ip: str | None = None, user_agent: str | None = None, now: datetime | None = None
) -> DelegationSet:
    """The approver ends their delegation now (back from the absence)."""
    now = utc(now)
    own = (approver.email or "").casefold()
    change = Change(op=f"approval.delegation_end:{approver.id}:{now.isoformat()}", now=now)
    change.delete(ApprovalDelegation(approver_key=own), label="delegation")
    _delegation_audit(change, approver, ip=ip, user_agent=user_agent, delegate=None, ended=True)
    change.commit()
    return DelegationSet(approver_email=own, delegate_email=None)


if approval_blockers not in gate.CHECKS:
    gate.CHECKS.append(approval_blockers)
