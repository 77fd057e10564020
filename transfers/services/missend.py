"""Mis-send prevention (誤送信対策, issue 16 item 3): the sender confirms each recipient address before Send, and
the recipients' mails wait for a hold during which the sender can still cancel.

Policy (settings):
- FXFER_CONFIRM_RECIPIENTS: "external" (the recipients outside FXFER_INTERNAL_DOMAINS), "all" or "off" — whom
  the sender ticks one by one. The New transfer page asks in a dialog; transfer_create refuses a send whose
  confirmed addresses are not exactly those recipients (a client that skips the dialog gets the same refusal).
- FXFER_SEND_HOLD_SECONDS: the hold. `release_not_before` = the moment the sender pressed Send + the hold; the
  release gate's "hold" check (registered below) keeps the transfer pending until then. The uploads' own
  release call meets the hold; the minute job (held_release_due) releases each transfer whose hold has just
  ended; the hourly healer releases any it missed.

The hold counts from Send, whatever else the gate waits for: a transfer approved (or scanned) after its hold
ended leaves at once, with no second hold.

Which flows: a transfer (and the replies it allows, which are part of it) is confirmed and held: its files
leave the company. An upload request is neither: it carries no file of ours, and a mistaken address can only
send files to the employee, which are scanned like every upload.

Cancel and release race on one item: both are conditional writes on the transfer's status (pending), in their
own transactions, so exactly one wins; the loser re-reads and says what happened (released: "too late, the
mails went out"; cancelled: nothing is released and no mail is ever committed).
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.utils.translation import gettext as _

from fxfer.change import Change, ChangeRefused
from transfers.errors import TransferError
from transfers.models import KIND_SEND, PENDING, READY, REVOKED, File, Transfer
from transfers.services.common import (
    SWEEP_PAGE,
    owned_transfer,
    shard_hits,
    sweep_shard,
    transfer_get,
    unavailable_when_aws_fails,
    utc,
)
from transfers.services.gate import CHECKS

logger = logging.getLogger(__name__)

CONFIRM_EXTERNAL, CONFIRM_ALL, CONFIRM_OFF = "external", "all", "off"
HOLD = "hold"  # the release gate's blocker
# The minute job looks this far back for holds that ended; older ones are the hourly healer's.
RELEASE_WINDOW = timedelta(hours=1)


# --- confirmation --------------------------------------------------------------------------------------------


def internal(address: str) -> bool:
    """Whether an address is in one of the company's own domains (FXFER_INTERNAL_DOMAINS, subdomains too)."""
    domain = address.rpartition("@")[2].lower().rstrip(".")
    entries = (e.lower().lstrip("@.") for e in settings.FXFER_INTERNAL_DOMAINS)
    return any(domain == e or domain.endswith("." + e) for e in entries if e)


def confirm_policy() -> str:
    return settings.FXFER_CONFIRM_RECIPIENTS


def needs_confirming(addresses: Sequence[str]) -> list[str]:
    """The recipients (checked addresses) the sender must tick one by one, in their order."""
    policy = confirm_policy()
    if policy == CONFIRM_OFF:
        return []
    if policy == CONFIRM_ALL:
        return list(addresses)
    return [a for a in addresses if not internal(a)]


def _normal(address: str) -> str:
    return str(address).strip().casefold()


def confirmation_checked(addresses: Sequence[str], confirmed: Sequence[str] | None) -> list[str]:
    """The recipients the sender confirmed, when they are exactly those that need confirming (address by
    address, case aside); else "recipients_unconfirmed", naming the first one missing or not a recipient."""
    needed = needs_confirming(addresses)
    given = {_normal(a) for a in confirmed or () if str(a).strip()}
    missing = [a for a in needed if _normal(a) not in given]
    extra = sorted(given - {_normal(a) for a in needed})
    if missing:
        raise TransferError(
            "recipients_unconfirmed",
            _("Confirm each recipient before sending: %(email)s was not confirmed.") % {"email": missing[0]},
        )
    if extra:
        # A list confirmed for other recipients (the field was edited after the dialog): ask again.
        raise TransferError(
            "recipients_unconfirmed",
            _("The recipients changed after you confirmed them: %(email)s is not one of them. Confirm again.")
            % {"email": extra[0]},
        )
    return needed


# --- the hold ------------------------------------------------------------------------------------------------


def hold_fields(transfer_id: str, now: datetime) -> dict:
    """The new transfer's hold attributes: mails not before Send + FXFER_SEND_HOLD_SECONDS (none when 0)."""
    seconds = settings.FXFER_SEND_HOLD_SECONDS
    if seconds <= 0:
        return {}
    return {"release_not_before": now + timedelta(seconds=seconds), "hold_shard": sweep_shard(transfer_id)}


def hold_blockers(transfer: Transfer, files: Sequence[File], now: datetime) -> tuple[str, ...]:
    """The release gate's check: "hold" until the transfer's hold has ended."""
    if transfer.release_not_before is not None and now < transfer.release_not_before:
        return (HOLD,)
    return ()


CHECKS.append(hold_blockers)


@dataclass(frozen=True)
class SendHold:
    """What the sender's page shows of a pending transfer's hold."""

    release_not_before: datetime
    seconds_left: int  # 0: the hold has ended (the mails go once nothing else blocks)
    cancellable: bool


def send_hold_for_owner(*, owner_id: str, transfer_id: str, now: datetime | None = None) -> SendHold | None:
    """The hold of the owner's pending transfer, or None (no hold, released, cancelled, not theirs). Reads only."""
    now = utc(now)
    transfer = transfer_get(transfer_id)
    if (
        transfer is None
        or transfer.owner_id != str(owner_id)
        or transfer.release_not_before is None
        or transfer.status != PENDING
        or transfer.deleted_at is not None
    ):
        return None
    left = max(0, int((transfer.release_not_before - now).total_seconds() + 0.999))
    return SendHold(release_not_before=transfer.release_not_before, seconds_left=left, cancellable=True)


# --- cancel --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SendCancelled:
    transfer_id: str
    cancelled_at: datetime
    files_deleted: bool  # False: kept by a legal hold, or AWS failed (the expiry sweep deletes them)


def _too_late(transfer: Transfer | None) -> TransferError:
    if transfer is not None and transfer.status == READY:
        return TransferError(
            "already_sent",
            _("Too late to cancel: the mails have gone out. You can still revoke the transfer to stop its links."),
        )
    return TransferError("state_conflict", _("This transfer can no longer be cancelled."))


@unavailable_when_aws_fails
def transfer_send_cancel(
    *,
    owner_id: str,
    transfer_id: str,
    ip: str | None = None,
    user_agent: str | None = None,
    now: datetime | None = None,
) -> SendCancelled:
    """The sender cancels a transfer not released yet: no mail ever leaves. One transaction sets it revoked
    (pending → revoked, only while no release has committed) with its "transfer.send_cancelled" event; then its
    unfinished uploads are aborted and its files deleted like the sender's "delete now", with receipts."""
    from transfers.services.deletion import BY_SENDER, delete_transfer_files
    from transfers.services.sending import abort_unfinished_uploads

    now = utc(now)
    transfer = owned_transfer(owner_id=owner_id, transfer_id=transfer_id, kind=KIND_SEND)
    cancelled_at = transfer.send_cancelled_at
    if cancelled_at is None:
        if transfer.status != PENDING:
            raise _too_late(transfer)
        change = Change(op=f"send_cancel:{transfer_id}", now=now)
        change.update(
            transfer,
            actions=[
                Transfer.status.set(REVOKED),
                Transfer.revoked_at.set(now),
                Transfer.send_cancelled_at.set(now),
                Transfer.hold_shard.remove(),
            ],
            # The release's own condition is status == pending: one of the two commits, never both.
            condition=(Transfer.status == PENDING)
            & Transfer.released_at.does_not_exist()
            & Transfer.deletion_claimed_at.does_not_exist()
            & Transfer.deleted_at.does_not_exist(),
            label="transfer",
        )
        change.audit(
            "transfer.send_cancelled",
            actor=f"user:{owner_id}",
            subject=f"transfer:{transfer_id}",
            ip=ip,
            user_agent=user_agent,
            release_not_before=transfer.release_not_before.isoformat() if transfer.release_not_before else None,
            recipients=[a for a in transfer.recipient_emails.split(",") if a],
        )
        try:
            change.commit(send_mails=False)
        except ChangeRefused as exc:
            if exc.failed("transfer") is None:
                raise
            current = transfer_get(transfer_id)
            if current is None or current.send_cancelled_at is None:
                raise _too_late(current) from None
            # Cancelled by another attempt (another tab): the same outcome.
        cancelled_at = now
    elif transfer.deleted_at is not None:
        return SendCancelled(transfer_id=transfer_id, cancelled_at=cancelled_at, files_deleted=True)  # done before
    abort_unfinished_uploads(transfer_id)
    files_deleted = False
    try:
        done = delete_transfer_files(
            transfer_id,
            by=BY_SENDER,
            actor=f"user:{owner_id}",
            now=now,
            ip=ip,
            user_agent=user_agent,
            reason="send cancelled",
        )
        files_deleted = done.outcome == "deleted"
    except Exception:  # the cancel has committed; the sweeps delete the files at expiry (or finish a claim)
        logger.warning("transfers.send_cancel.delete_failed", exc_info=True)
    return SendCancelled(transfer_id=transfer_id, cancelled_at=cancelled_at, files_deleted=files_deleted)


# --- the minute job ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeldReleased:
    tried: int
    released: int
    complete: bool = True  # False: stopped at the deadline; the next minute goes on


def held_release_due(
    *, now: datetime | None = None, deadline: datetime | None = None, page_size: int = SWEEP_PAGE
) -> HeldReleased:
    """Release the transfers whose hold ended in the last hour: every hit of the by-hold index (see shard_hits),
    however many stay pending. A transfer still uploading, or blocked by the scan or an approval, stays pending
    (its own event releases it later). One transfer failing does not stop the others; the first failure is
    raised after the rest were tried. Stops before `deadline`."""
    from transfers.services.sending import transfer_release

    now = utc(now)
    tried = released = 0
    failures: list[Exception] = []
    window = Transfer.release_not_before.between(now - RELEASE_WINDOW, now)
    for hit in shard_hits(Transfer.by_hold, window, page_size=page_size):
        if deadline is not None and datetime.now(UTC) >= deadline:
            return HeldReleased(tried=tried, released=released, complete=False)
        tried += 1
        try:
            released += transfer_release(transfer_id=hit.transfer_id, now=now).released
        except TransferError:
            continue  # gone meanwhile
        except Exception as exc:
            logger.exception("transfers.hold_release_failed", extra={"transfer_id": hit.transfer_id})
            failures.append(exc)
    if failures:
        raise failures[0]
    return HeldReleased(tried=tried, released=released)
