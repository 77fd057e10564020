"""Helpers the transfer services share: ids, hashes, time, loading with ownership, audit, rate limits."""

import functools
import hashlib
import hmac
import itertools
import logging
import re
import secrets
from datetime import UTC, datetime, timedelta

from django.utils.crypto import salted_hmac
from pynamodb.exceptions import UpdateError

from fxfer.aws import transient
from reports.services import audit_record
from transfers import policy
from transfers.errors import TransferError
from transfers.models import CLOSED, EXPIRED, KIND_REQUEST, PENDING, READY, SWEEP_SHARDS, File, RateLimit, Transfer

logger = logging.getLogger(__name__)

TOKEN_BYTES = 32  # 256-bit link tokens
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")
_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


def utc(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC)


def new_id() -> str:
    """A random, URL-safe id (128 bits): transfers, files, recipients."""
    return secrets.token_urlsafe(16)


def valid_id(value: str) -> bool:
    return bool(value) and isinstance(value, str) and bool(_ID.match(value))


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    """SHA-256 of a 256-bit token: unguessable tokens need no salt, and the hash is a stable lookup key."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_well_formed(token: str) -> bool:
    return isinstance(token, str) and bool(_TOKEN.match(token))


def code_hash(*, recipient_ref: str, code: str) -> str:
    """HMAC with the secret key: a six-digit code has too few values for a plain hash to hide it."""
    return salted_hmac("transfers.one-time-code", f"{recipient_ref}|{code}", algorithm="sha256").hexdigest()


def same(a: str | None, b: str | None) -> bool:
    """Constant-time equality of two secrets' hashes."""
    return a is not None and b is not None and hmac.compare_digest(a.encode(), b.encode())


def recipient_ref(parent_id: str, recipient_id: str) -> str:
    return f"{parent_id}#{recipient_id}"


def sweep_shard(parent_id: str) -> str:
    """The partition of the sweep indexes an item lives in: "live#0" … "live#<SWEEP_SHARDS - 1>"."""
    return f"live#{hashlib.sha256(parent_id.encode()).digest()[0] % SWEEP_SHARDS}"


def sweep_shards() -> list[str]:
    return [f"live#{n}" for n in range(SWEEP_SHARDS)]


# The jobs' page of index keys: one Query answers this many, and the next page is asked for only when needed.
SWEEP_PAGE = 200


def shard_hits(index, condition, *, page_size: int = SWEEP_PAGE):
    """Every hit of `condition` in each shard of one of the jobs' sparse indexes (by-due, by-pending, by-hold),
    a Query page of `page_size` keys at a time.

    Never a `limit`: what a job passes over (a transfer on legal hold, one waiting for an approval, a scan or its
    upload) stays in the index, oldest first, and a limit would let enough of those hide every later hit from
    every run; a held case of a few hundred transfers would stop expiry for good. The job's deadline bounds a
    run instead, and the next run finds what it did not reach."""
    for shard in sweep_shards():
        yield from index.query(shard, condition, page_size=page_size)


def shard_transfers(index, condition, *, page_size: int = SWEEP_PAGE):
    """shard_hits, each with its transfer as (hit, transfer or None when gone): the transfers of a page of hits
    read together, in consistent BatchGetItem calls (100 keys each), instead of a GetItem per hit."""
    for page in itertools.batched(shard_hits(index, condition, page_size=page_size), page_size, strict=False):
        found = {t.transfer_id: t for t in Transfer.batch_get({h.transfer_id for h in page}, consistent_read=True)}
        for hit in page:
            yield hit, found.get(hit.transfer_id)


def status_at(transfer: Transfer, now: datetime) -> str:
    """The status as of `now`: a pending, ready (or closed) transfer past its expiry is expired, and an open
    request past `closes_at` is closed, whatever the sweep did."""
    if transfer.status in {PENDING, READY, CLOSED} and transfer.expires_at <= now:
        return EXPIRED
    if transfer.status == READY and transfer.kind == KIND_REQUEST and transfer.closes_at and transfer.closes_at <= now:
        return CLOSED
    return transfer.status


def request_limits(request: Transfer) -> policy.RequestLimits:
    """An upload request's limits for each guest, as stored with it."""
    return policy.RequestLimits(
        max_files=int(request.max_files or 0),
        max_file_bytes=int(request.max_file_bytes or 0),
        max_total_bytes=int(request.max_total_bytes or 0),
        allowed_extensions=tuple(e for e in (request.allowed_extensions or "").split(",") if e),
    )


def transfer_get(transfer_id: str) -> Transfer | None:
    if not valid_id(transfer_id):
        return None
    try:
        return Transfer.get(transfer_id, consistent_read=True)
    except Transfer.DoesNotExist:
        return None


def file_get(parent_id: str, file_id: str) -> File | None:
    """A file, read consistently; None when either id is not of this app's shape or there is no such file."""
    if not (valid_id(parent_id) and valid_id(file_id)):
        return None
    try:
        return File.get(parent_id, file_id, consistent_read=True)
    except File.DoesNotExist:
        return None


class AccessDenied(TransferError):
    """`not_found` for an id that is not the employee's: another employee's transfer or request, or no such id.
    To the person it is the same `not_found` as any other (same code, status, message, no params); inside, it
    says which id was probed and whether it exists, so the view can record "access.denied" (the owner check
    runs in selectors too, which must not write)."""

    def __init__(self, *, transfer_id: str, exists: bool) -> None:
        super().__init__("not_found")
        self.transfer_id = transfer_id
        self.exists = exists


def owned_transfer(*, owner_id: str, transfer_id: str, kind: str | None = None) -> Transfer:
    """The owner's transfer (or request: `kind`); another owner's, another kind and a missing one are the same
    `not_found` (AccessDenied when the id is not the owner's at all)."""
    transfer = transfer_get(transfer_id)
    if transfer is None:
        raise AccessDenied(transfer_id=transfer_id, exists=False)
    if not hmac.compare_digest(transfer.owner_id.encode(), str(owner_id).encode()):
        raise AccessDenied(transfer_id=transfer_id, exists=True)
    if kind is not None and transfer.kind != kind:
        raise TransferError("not_found")
    return transfer


def audit(
    action: str,
    *,
    actor: str,
    transfer_id: str | None,
    now: datetime,
    outcome: str = "ok",
    ip: str | None = None,
    user_agent: str | None = None,
    **details,
) -> None:
    audit_record(
        action=action,
        actor=actor,
        subject=f"transfer:{transfer_id}" if transfer_id else "system",
        outcome=outcome,
        ip=ip,
        user_agent=user_agent,
        details={k: v for k, v in details.items() if v is not None} or None,
        now=now,
    )


def unavailable_when_aws_fails(service):
    """A person's action (a page, the uploader) whose AWS calls kept failing after botocore's retries answers
    TransferError("unavailable") (503: "nothing was lost; try again"), never a server error. That is true: each
    change commits whole or not at all, one that did commit is recognised (Change.commit), and calling again
    finishes what an earlier call left. Errors retrying cannot fix stay errors."""

    @functools.wraps(service)
    def wrapped(*args, **kwargs):
        try:
            return service(*args, **kwargs)
        except TransferError:
            raise
        except Exception as exc:
            if not transient(exc):
                raise
            logger.warning("transfers.aws_unavailable", extra={"service": service.__name__, "error": repr(exc)})
            raise TransferError("unavailable") from exc

    return wrapped


def conditional_failed(exc: Exception) -> bool:
    cause = getattr(exc, "cause_response_code", None) or ""
    return cause == "ConditionalCheckFailedException"


def rate_limited(*, counter: str, limit: int, window_seconds: int, now: datetime) -> bool:
    """Count one event in the current fixed window; True when the window already holds `limit` events.
    One conditional ADD: concurrent requests cannot both take the last slot."""
    start = int(now.timestamp()) // window_seconds * window_seconds
    item = RateLimit(counter=f"{counter}#{start}")
    try:
        item.update(
            actions=[
                RateLimit.count.add(1),
                RateLimit.purge_at.set(datetime.fromtimestamp(start + 2 * window_seconds, UTC)),
            ],
            condition=RateLimit.count.does_not_exist() | (RateLimit.count < limit),
        )
    except UpdateError as exc:
        if conditional_failed(exc):
            return True
        raise
    return False


def rate_limit_refund(*, counter: str, window_seconds: int, now: datetime) -> None:
    """Give back one event counted in the current window (the action it allowed did not happen)."""
    start = int(now.timestamp()) // window_seconds * window_seconds
    try:
        RateLimit(counter=f"{counter}#{start}").update(actions=[RateLimit.count.add(-1)], condition=RateLimit.count > 0)
    except UpdateError as exc:
        if not conditional_failed(exc):
            raise


def mask_email(address: str) -> str:
    """ "b***@example.com": enough for a guest to recognise where the code goes."""
    local, _at, domain = address.rpartition("@")
    return f"{local[:1]}***@{domain}"


def later(now: datetime, seconds: int) -> datetime:
    return now + timedelta(seconds=seconds)
