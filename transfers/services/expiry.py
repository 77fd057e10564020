"""The hourly expiry sweep's entry into the services (the sweep itself, deletion receipts and legal holds
are issue 6). Reads already treat a transfer past its expiry as expired, whether or not this has run."""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepDone:
    started_at: datetime
    transfers_expired: int


def expiry_sweep(*, now: datetime | None = None) -> SweepDone:
    """Delete what has passed its expiry (files, links). Idempotent and safe to run concurrently."""
    started_at = now or datetime.now(UTC)
    logger.info("expiry.sweep", extra={"started_at": started_at.isoformat(), "transfers_expired": 0})
    return SweepDone(started_at=started_at, transfers_expired=0)
