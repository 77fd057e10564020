"""Helpers for Lambda event payloads."""

from datetime import UTC, datetime


def scheduled_time(event: dict | None) -> datetime:
    """The time an EventBridge scheduled event was due ("time"), so a late retry acts for its own slot;
    now when the event carries none (a manual invocation)."""
    raw = (event or {}).get("time")
    if not raw:
        return datetime.now(UTC)
    return datetime.fromisoformat(raw.replace("Z", "+00:00")).astimezone(UTC)
