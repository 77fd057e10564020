"""Each employee's quota of bytes in flight: the bytes declared in their transfers whose files may still be in
S3, from creation until the files are deleted (expiry, delete now, compliance's delete, an abandoned upload's
deletion) or a file is cancelled.

How it stays exact when requests race and AWS fails:
- The charge is one conditional ADD on the sender's QuotaUsage item, in the same transaction as the transfer
  and its "transfer.created" event: `in_flight <= allowance - new`. The allowance is the one read just before
  (the override, or the site default), and the condition also pins it (`quota_bytes` equal to what was read,
  or absent), so two creates at once cannot both pass and a quota lowered meanwhile is not overrun.
- The bytes charged are recorded on the transfer (`Transfer.quota_bytes`). The refund goes with the change
  that records the deletion: the transfer's end (a commit made once: its claim condition) gives back what
  is left, a file's cancellation (a commit made once: the file's state condition) gives back that file's
  bytes. A retried or repeated deletion meets those conditions and refunds nothing twice.
- A cancellation refunds only while no deleter holds the transfer, so the bytes the transfer's end gives back
  (read after its claim) cannot change under it.

Transfers made before quotas carry no charge until `manage.py quota_backfill` charges them (quota_backfill).

Upload requests do not count: what guests send is bounded by each request's own limits, and a guest must not
be able to use up the employee's quota (or be refused for a reason only the employee could see).
"""

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.utils.translation import gettext as _

from fxfer.change import Change, ChangeRefused, old_value
from transfers.errors import TransferError
from transfers.models import KIND_SEND, QuotaUsage, Transfer
from transfers.policy import bytes_text
from transfers.services.common import sweep_shards, transfer_get, unavailable_when_aws_fails, utc, valid_id

QUOTA_LABEL = "quota"


@dataclass(frozen=True)
class QuotaState:
    """An employee's usage as read now: bytes in flight, the allowance that applies, and whether compliance
    set it (`override`) or it is the site default."""

    user_id: str
    in_flight: int
    allowance: int
    override: int | None
    version: int
    set_by: str | None = None
    set_at: datetime | None = None

    @property
    def left(self) -> int:
        return max(0, self.allowance - self.in_flight)


def quota_state(*, user_id: str) -> QuotaState:
    """The employee's usage and allowance (one consistent GetItem; no item yet: nothing in flight)."""
    try:
        usage = QuotaUsage.get(user_id, consistent_read=True)
    except QuotaUsage.DoesNotExist:
        usage = None
    return quota_state_of(user_id=user_id, usage=usage)


def quota_state_of(*, user_id: str, usage: QuotaUsage | None) -> QuotaState:
    """The state a QuotaUsage item read elsewhere says (My transfers reads it with the page's BatchGetItem)."""
    if usage is None:
        return QuotaState(
            user_id=user_id, in_flight=0, allowance=settings.FXFER_USER_QUOTA_BYTES, override=None, version=0
        )
    override = int(usage.quota_bytes) if usage.quota_bytes is not None else None
    return QuotaState(
        user_id=user_id,
        in_flight=int(usage.in_flight or 0),
        allowance=override if override is not None else settings.FXFER_USER_QUOTA_BYTES,
        override=override,
        version=int(usage.quota_version or 0),
        set_by=usage.quota_set_by,
        set_at=usage.quota_set_at,
    )


def quota_exceeded(*, in_flight: int, size: int, allowance: int) -> TransferError:
    return TransferError(
        "quota_exceeded",
        _(
            "You have %(in_flight)s in transfers still being kept; this would bring it to %(total)s of your "
            "%(allowance)s allowance. Delete a transfer or ask compliance to raise it."
        )
        % {
            "in_flight": bytes_text(in_flight),
            "total": bytes_text(in_flight + size),
            "allowance": bytes_text(allowance),
        },
    )


@dataclass(frozen=True)
class Charge:
    """What a new transfer will charge to its sender, checked against the usage read before anything is written;
    `add_to` puts the conditional charge into the transfer's own transaction."""

    user_id: str
    size: int
    read: QuotaState

    def add_to(self, change: Change) -> None:
        allowance = self.read.allowance
        pinned = (
            QuotaUsage.quota_bytes.does_not_exist()
            if self.read.override is None
            else (QuotaUsage.quota_bytes == self.read.override)
        )
        fits = QuotaUsage.in_flight.does_not_exist() | (QuotaUsage.in_flight <= allowance - self.size)
        change.update(
            QuotaUsage(user_id=self.user_id),
            actions=[QuotaUsage.in_flight.add(self.size), QuotaUsage.updated_at.set(change.now)],
            condition=pinned & fits,
            label=QUOTA_LABEL,
        )

    def refusal(self, refused: ChangeRefused) -> TransferError | None:
        """The clear "over your quota" error when the charge's condition is what refused the transaction (another
        create took the room, or compliance lowered the allowance, after our read); None otherwise."""
        failed = refused.failed(QUOTA_LABEL)
        if failed is None:
            return None
        override = old_value(failed, "quota_bytes")
        allowance = int(override) if override is not None else settings.FXFER_USER_QUOTA_BYTES
        in_flight = int(old_value(failed, "in_flight") or 0)
        if in_flight + self.size <= allowance:
            # It fits: only the allowance we read had changed (compliance raised it meanwhile). Nothing was written.
            return TransferError("state_conflict", _("Your allowance was changed just now. Please send again."))
        return quota_exceeded(in_flight=in_flight, size=self.size, allowance=allowance)


def charge_for(*, user_id: str, size: int) -> Charge:
    """Check that `size` more bytes fit the employee's allowance (before anything is written: a refusal leaves
    nothing behind), and return the charge for the transfer's transaction, which checks again atomically."""
    read = quota_state(user_id=user_id)
    if read.in_flight + size > read.allowance:
        raise quota_exceeded(in_flight=read.in_flight, size=size, allowance=read.allowance)
    return Charge(user_id=user_id, size=size, read=read)


def refund_into(change: Change, *, user_id: str, size: int) -> None:
    """Give `size` bytes back to the employee, in the change that records their deletion (whose own condition
    makes it happen once)."""
    if size:
        change.update(
            QuotaUsage(user_id=user_id),
            actions=[QuotaUsage.in_flight.add(-int(size)), QuotaUsage.updated_at.set(change.now)],
            label=f"{QUOTA_LABEL}:refund",
        )


def refund_on_end(change: Change, transfer: Transfer) -> list:
    """For the change that ends `transfer` (its files deleted): the refund of what is still charged, added to
    the change, and the actions that clear the charge on the transfer's own update."""
    if transfer.quota_bytes is None:
        return []
    refund_into(change, user_id=transfer.owner_id, size=int(transfer.quota_bytes))
    return [Transfer.quota_bytes.remove()]


def refund_on_cancel(change: Change, transfer: Transfer, *, size: int) -> tuple[list, object]:
    """For the change that cancels one file of `transfer`: the refund of its bytes, added to the change, and the
    actions and condition for the transfer's own update (it exists; and when charged, no deleter holds it: what
    its end gives back was read after its claim)."""
    exists = Transfer.transfer_id.exists()
    if transfer.quota_bytes is None:
        return [], exists
    refund_into(change, user_id=transfer.owner_id, size=size)
    return [Transfer.quota_bytes.add(-int(size))], (
        exists & Transfer.quota_bytes.exists() & Transfer.deletion_claimed_at.does_not_exist()
    )


# --- transfers made before quotas ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Backfilled:
    charged: int  # transfers charged by this run
    skipped: int  # charged before, not a sent transfer, being deleted or gone, or changed meanwhile (next run)


def quota_backfill(*, now: datetime | None = None) -> Backfilled:
    """Charge each sender for their transfers made before quotas existed whose files are still kept (the sparse
    by-due index lists exactly those), so that their usage is true from the day quotas are deployed. Each
    transfer's charge, its usage and "quota.charged" commit together, on the condition that it is still uncharged,
    not being deleted and unchanged since read (a cancellation meanwhile is picked up by the next run). Existing
    transfers are kept even past the allowance: only new ones are refused. Safe to run again at any time."""
    now = utc(now)
    charged = skipped = 0
    for shard in sweep_shards():
        for hit in Transfer.by_due.query(shard):
            transfer = transfer_get(hit.transfer_id)
            if (
                transfer is None
                or transfer.kind != KIND_SEND
                or transfer.quota_bytes is not None
                or transfer.deleted_at is not None
                or transfer.deletion_claimed_at is not None
            ):
                skipped += 1
                continue
            size = int(transfer.total_bytes or 0)
            change = Change(op=f"quota.backfill:{transfer.transfer_id}", now=now)
            change.update(
                transfer,
                actions=[Transfer.quota_bytes.set(size)],
                condition=Transfer.quota_bytes.does_not_exist()
                & Transfer.deleted_at.does_not_exist()
                & Transfer.deletion_claimed_at.does_not_exist()
                & (Transfer.total_bytes == size),
                label="transfer",
            )
            change.update(
                QuotaUsage(user_id=transfer.owner_id),
                actions=[QuotaUsage.in_flight.add(size), QuotaUsage.updated_at.set(now)],
                label=QUOTA_LABEL,
            )
            change.audit(
                "quota.charged",
                actor="job:quota_backfill",
                subject=f"transfer:{transfer.transfer_id}",
                owner=f"user:{transfer.owner_id}",
                bytes=size,
            )
            try:
                committed = change.commit()
            except ChangeRefused:
                skipped += 1
                continue
            charged += not committed.repeated
            skipped += committed.repeated
    return Backfilled(charged=charged, skipped=skipped)


# --- compliance: raise or lower one employee's quota ------------------------------------------------------


@dataclass(frozen=True)
class QuotaChanged:
    user_id: str
    old: int  # the allowance before (override or default)
    new: int
    override: int | None  # None: back to the site default
    repeated: bool = False  # this form had been submitted before and committed then


@unavailable_when_aws_fails
def quota_set(
    *,
    officer_id: str,
    user_id: str,
    quota_bytes: int | None,
    version: int,
    reason: str,
    ip: str | None = None,
    user_agent: str | None = None,
    now: datetime | None = None,
) -> QuotaChanged:
    """Compliance sets the employee's allowance (`quota_bytes`; None: back to the site default). `version` is
    the one the officer's form showed: a change made meanwhile by someone else is refused ("state_conflict")
    rather than undone, and the same form submitted again after a lost answer is recognised as done. The new
    override, its version and "quota.changed" (old and new) commit together. Lowering it below what is in flight
    keeps the transfers there; only new ones are refused."""
    now = utc(now)
    if not user_id or not valid_id(user_id):
        raise TransferError("not_found")
    if quota_bytes is not None and quota_bytes < 0:
        raise TransferError("invalid")
    read = quota_state(user_id=user_id)
    # The op names the version it changes and the value it sets: the same form submitted again (after a lost
    # answer) is the same operation, recognised by its event; another value from the same version is refused.
    change = Change(op=f"quota.changed:{user_id}:{version}:{quota_bytes}", now=now)
    new = quota_bytes if quota_bytes is not None else settings.FXFER_USER_QUOTA_BYTES
    actions = [
        QuotaUsage.quota_bytes.set(quota_bytes) if quota_bytes is not None else QuotaUsage.quota_bytes.remove(),
        QuotaUsage.quota_version.set(version + 1),
        QuotaUsage.quota_set_by.set(f"user:{officer_id}"),
        QuotaUsage.quota_set_at.set(now),
        QuotaUsage.updated_at.set(now),
    ]
    condition = (
        QuotaUsage.quota_version.does_not_exist() | (QuotaUsage.quota_version == 0)
        if version == 0
        else QuotaUsage.quota_version == version
    )
    change.update(QuotaUsage(user_id=user_id), actions=actions, condition=condition, label=QUOTA_LABEL)
    change.audit(
        "quota.changed",
        actor=f"user:{officer_id}",
        subject=f"user:{user_id}",
        ip=ip,
        user_agent=user_agent,
        old=read.allowance,
        new=new,
        old_override=read.override,
        new_override=quota_bytes,
        default=settings.FXFER_USER_QUOTA_BYTES,
        in_flight=read.in_flight,
        reason=reason,
    )
    try:
        committed = change.commit()
    except ChangeRefused as refused:
        if refused.failed(QUOTA_LABEL) is None:
            raise
        raise TransferError(
            "state_conflict", _("Someone changed this person's quota meanwhile. Check the new value and try again.")
        ) from None
    return QuotaChanged(
        user_id=user_id,
        old=read.allowance,
        new=new,
        override=quota_bytes,
        repeated=committed.repeated,
    )
