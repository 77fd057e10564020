"""Reads of the accounts app."""

from dataclasses import dataclass
from datetime import UTC, datetime

from accounts.models import User
from accounts.tables import SessionItem, UserRecord


@dataclass(frozen=True)
class UserSessions:
    """A person's session items: every one still stored (TTL deletes late), and how many are live now."""

    user_id: str
    session_keys: tuple[str, ...]
    live: int


@dataclass(frozen=True)
class Person:
    """A person as compliance sees them on the sessions page."""

    user: User
    idp_entity_id: str
    last_sign_in_at: datetime
    live_sessions: int


def user_from_record(record: UserRecord) -> User:
    return User(
        id=record.user_id,
        email=record.email,
        display_name=record.display_name,
        department=record.department,
        manager_email=record.manager_email or "",
        roles=frozenset(record.roles or ()),
        groups=tuple(record.groups or ()),
    )


def user_get(*, user_id: str) -> User | None:
    """The user with this id as of their last sign-in, or None."""
    if not user_id or len(user_id) != 64:
        return None
    try:
        return user_from_record(UserRecord.get(user_id))
    except UserRecord.DoesNotExist:
        return None


def user_sessions(*, user_id: str, now: datetime | None = None) -> UserSessions:
    """Every session item of the user (one Query on the by-user index), and how many are still live."""
    at = now or datetime.now(UTC)
    keys, live = [], 0
    for item in SessionItem.by_user.query(user_id):
        keys.append(item.session_key)
        live += item.expires_at > at and item.absolute_expires_at > at
    return UserSessions(user_id=user_id, session_keys=tuple(keys), live=live)


def people_by_email(*, email: str, now: datetime | None = None, limit: int = 20) -> list[Person]:
    """The people whose address (at their last sign-in) is `email`, with their live session counts."""
    address = (email or "").strip().lower()
    if not address or len(address) > 320:
        return []
    found = []
    for key in UserRecord.by_email.query(address, limit=limit):
        try:
            record = UserRecord.get(key.user_id, consistent_read=True)
        except UserRecord.DoesNotExist:
            continue
        found.append(
            Person(
                user=user_from_record(record),
                idp_entity_id=record.idp_entity_id,
                last_sign_in_at=record.last_sign_in_at,
                live_sessions=user_sessions(user_id=record.user_id, now=now).live,
            )
        )
    return found


def person_get(*, user_id: str, now: datetime | None = None) -> Person | None:
    """One person with their live session count, or None."""
    if not user_id or len(user_id) != 64:
        return None
    try:
        record = UserRecord.get(user_id, consistent_read=True)
    except UserRecord.DoesNotExist:
        return None
    return Person(
        user=user_from_record(record),
        idp_entity_id=record.idp_entity_id,
        last_sign_in_at=record.last_sign_in_at,
        live_sessions=user_sessions(user_id=user_id, now=now).live,
    )
