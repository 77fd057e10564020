"""Django sessions in DynamoDB (SESSION_ENGINE = "accounts.sessions").

Two timeouts, both enforced here on every read (DynamoDB's TTL deletes late, so it is only the clean-up):
- idle: SESSION_COOKIE_AGE seconds after the last request; each request that finds the session pushes it on;
- absolute: FXFER_SESSION_ABSOLUTE_SECONDS after the session was created. Signing in cycles the key (a new
  item), so the absolute timeout counts from sign-in.
Logout (`flush()`) deletes the item, so a copied cookie is worthless afterwards.
"""

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.base import CreateError, SessionBase, UpdateError
from pynamodb.exceptions import PutError
from pynamodb.exceptions import UpdateError as DynamoUpdateError

if TYPE_CHECKING:
    from accounts.tables import SessionItem

logger = logging.getLogger(__name__)

# Push the idle expiry on at most once a minute: a page with many requests costs one write, not many.
_TOUCH_AFTER = timedelta(seconds=60)


def _now() -> datetime:
    return datetime.now(UTC)


def _items():
    """The sessions table, imported when a session is first read or written: Django loads this engine with the
    session middleware, and a request that never touches its session (a health check) need not load PynamoDB."""
    from accounts.tables import SessionItem

    return SessionItem


class SessionStore(SessionBase):
    def __init__(self, session_key=None):
        super().__init__(session_key)
        self._created_at: datetime | None = None
        self._absolute_expires_at: datetime | None = None

    def _idle_expiry(self, now: datetime) -> datetime:
        return now + timedelta(seconds=settings.SESSION_COOKIE_AGE)

    def _get_item(self, session_key: str) -> "SessionItem | None":
        try:
            item = _items().get(session_key, consistent_read=True)
        except _items().DoesNotExist:
            return None
        now = _now()
        if item.expires_at <= now or item.absolute_expires_at <= now:
            return None
        return item

    def load(self) -> dict:
        item = self._get_item(self._session_key) if self._session_key else None
        if item is None:
            self._session_key = None
            return {}
        self._created_at, self._absolute_expires_at = item.created_at, item.absolute_expires_at
        now = _now()
        if self._idle_expiry(now) - item.expires_at >= _TOUCH_AFTER:
            try:
                item.update(
                    actions=[_items().expires_at.set(min(self._idle_expiry(now), item.absolute_expires_at))],
                    condition=_items().session_key.exists(),
                )
            except DynamoUpdateError as exc:
                if _condition_failed(exc):
                    self._session_key = None  # deleted meanwhile (signed out in another tab)
                    return {}
                # Still a valid session: its idle expiry moves on with a later request.
                logger.warning("session.touch_failed", extra={"error": exc.cause_response_code})
        return self.decode(item.data)

    def exists(self, session_key: str) -> bool:
        return self._get_item(session_key) is not None

    def create(self) -> None:
        # Only a key already taken is worth another try (with a new key); any other error is raised.
        for _ in range(10):
            self._session_key = self._get_new_session_key()
            self._created_at = self._absolute_expires_at = None
            try:
                self.save(must_create=True)
            except CreateError:
                continue
            self.modified = True
            return
        raise RuntimeError("Unable to create a new session key.")

    def save(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return self.create()
        now = _now()
        if self._absolute_expires_at is None:
            self._created_at = now
            self._absolute_expires_at = now + timedelta(seconds=settings.FXFER_SESSION_ABSOLUTE_SECONDS)
        data = self._get_session(no_load=must_create)
        item = _items()(
            session_key=self._get_or_create_session_key(),
            data=self.encode(data),
            user_id=data.get(SESSION_KEY),
            created_at=self._created_at or now,
            absolute_expires_at=self._absolute_expires_at,
            expires_at=min(self._idle_expiry(now), self._absolute_expires_at),
        )
        # Never resurrect a session another request deleted (sign-out), and never overwrite someone else's key.
        condition = _items().session_key.does_not_exist() if must_create else _items().session_key.exists()
        try:
            item.save(condition=condition)
        except PutError as exc:
            if not _condition_failed(exc):
                raise
            if must_create:
                raise CreateError from exc
            raise UpdateError from exc

    def delete(self, session_key: str | None = None) -> None:
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        # An unconditional delete of a missing item succeeds: an error here is real, and a sign-out must not
        # claim to have ended a session it did not end.
        _items()(session_key=session_key).delete()

    @classmethod
    def clear_expired(cls) -> None:
        """Nothing to do: DynamoDB's TTL removes expired items, and every read checks the expiry itself."""


def _condition_failed(exc: Exception) -> bool:
    return getattr(exc, "cause_response_code", "") == "ConditionalCheckFailedException"
