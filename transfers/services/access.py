"""Refused access of one employee to another's transfers and requests (or to ids that do not exist), recorded
for compliance without letting a probing script fill the audit trail."""

import logging
from datetime import datetime

from fxfer.aws import transient
from reports.services import audit_count
from transfers.services.common import utc

logger = logging.getLogger(__name__)

ACCESS_DENIED = "access.denied"
# A page's route names are a fixed set; anything longer is not one of ours and is cut before it is stored.
_ROUTE_MAX = 40
_ID_MAX = 80


def access_denied_record(
    *,
    actor_id: str,
    transfer_id: str,
    exists: bool,
    route: str,
    method: str,
    ip: str | None = None,
    user_agent: str | None = None,
    now: datetime | None = None,
) -> bool:
    """Record that employee `actor_id` was refused transfer or request `transfer_id` on page `route` (whose
    answer is the same 404 as for a missing id). Aggregated per employee, route, minute and, for an id that
    exists, that id (then the event's subject, so it shows on that transfer's compliance page); an id that
    does not exist counts in one event per employee, route and minute, which keeps the minute's first id.
    A script probing thousands of ids writes a few items a minute.

    Never raises for AWS: the person's answer stays the 404 it was (a lost record is logged). True when
    recorded."""
    try:
        audit_count(
            action=ACCESS_DENIED,
            actor=f"user:{actor_id}",
            subject=f"transfer:{transfer_id}" if exists else "system",
            outcome="refused",
            ip=ip,
            user_agent=user_agent,
            reason=(route or "unknown")[:_ROUTE_MAX],
            details={"transfer_id": str(transfer_id)[:_ID_MAX], "exists": exists, "method": method[:10]},
            now=utc(now),
        )
    except Exception as exc:
        # AWS busy is expected now and then; anything else is a bug worth its traceback.
        logger.warning(
            "access_denied.not_recorded",
            extra={"route": route, "error": type(exc).__name__},
            exc_info=not transient(exc),
        )
        return False
    return True
