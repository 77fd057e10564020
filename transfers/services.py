"""Writes for transfers and upload requests."""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ObjectNoticed:
    bucket: str
    key: str
    outcome: str  # "foreign_bucket" | "unknown_key" | "verified" | "refused"


def upload_object_noticed(*, bucket: str, key: str, size: int) -> ObjectNoticed:
    """React to an S3 ObjectCreated notification (at-least-once: repeating it changes nothing).

    Objects outside the transfer bucket are ignored. Verification of a known file is the same idempotent
    service the browser's "done" call uses; until a file record exists for the key, the object is unknown
    and left for the orphan sweep.
    """
    if bucket != settings.FXFER_BUCKET:
        outcome = "foreign_bucket"
    else:
        outcome = "unknown_key"
    logger.info("upload.object_noticed", extra={"bucket": bucket, "key": key, "size": size, "outcome": outcome})
    return ObjectNoticed(bucket=bucket, key=key, outcome=outcome)


@dataclass(frozen=True)
class SweepDone:
    started_at: datetime
    transfers_expired: int


def expiry_sweep(*, now: datetime | None = None) -> SweepDone:
    """Delete what has passed its expiry (files, links). Idempotent and safe to run concurrently."""
    started_at = now or datetime.now(UTC)
    logger.info("expiry.sweep", extra={"started_at": started_at.isoformat(), "transfers_expired": 0})
    return SweepDone(started_at=started_at, transfers_expired=0)
