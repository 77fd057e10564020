"""Reads of the accounts app."""

from accounts.models import User, UserRecord


def user_from_record(record: UserRecord) -> User:
    return User(
        id=record.user_id,
        email=record.email,
        display_name=record.display_name,
        department=record.department,
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
