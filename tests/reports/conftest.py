"""Shared set-up for the compliance tests: people as the IdP made them (DynamoDB user items), signed-in test
clients, transfers made through the transfer services, and a guest who downloads."""

import hashlib
from datetime import UTC, datetime

import pytest

from accounts.selectors import user_from_record
from accounts.tables import UserRecord

NOW = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)  # 10:00 on 28 November in Tokyo
UA = "pytest-compliance/1.0"


def user_id(email: str) -> str:
    return hashlib.sha256(f"https://idp.example/\n{email}".encode()).hexdigest()


def make_user(email: str, *, roles: list[str], department: str = "", display_name: str = "") -> UserRecord:
    record = UserRecord(
        user_id=user_id(email),
        idp_entity_id="https://idp.example/",
        name_id=email,
        email=email,
        display_name=display_name or email.partition("@")[0].title(),
        department=department,
        groups=[],
        roles=roles,
        created_at=NOW,
        last_sign_in_at=NOW,
    )
    record.save()
    return record


@pytest.fixture
def carol():
    return make_user("carol@corp.example", roles=["compliance"], department="Compliance", display_name="Carol")


@pytest.fixture
def alice():
    return make_user("alice@corp.example", roles=["employee"], department="Sales", display_name="Alice")


def signed_in(client, record: UserRecord):
    client.defaults["HTTP_USER_AGENT"] = UA
    client.force_login(user_from_record(record), backend="accounts.backends.SamlUserBackend")
    return client


@pytest.fixture
def officer(client, carol):
    """A test client signed in as the compliance officer."""
    return signed_in(client, carol)


@pytest.fixture
def employee(client, alice):
    """A test client signed in as an employee (no compliance role)."""
    return signed_in(client, alice)


def audit_events() -> list:
    """Every audit event, oldest first (a Scan: tests only)."""
    from reports.models import AuditEvent

    return sorted(AuditEvent.scan(), key=lambda event: event.sort_key)


def events_of(action: str) -> list:
    return [e for e in audit_events() if e.action == action]
