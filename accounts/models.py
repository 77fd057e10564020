"""Accounts: the Django user object (no table) and the DynamoDB items behind it.

`User` is what Django's auth, permissions and admin see. It is never saved through the ORM (`managed = False`,
`DATABASES = {}`): the authentication backend builds it from a `UserRecord` item on every request.
"""

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import models
from django.utils.crypto import salted_hmac
from pynamodb.attributes import (
    ListAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.indexes import GlobalSecondaryIndex, IncludeProjection, KeysOnlyProjection
from pynamodb.models import Model as DynamoModel

from fxfer import dynamo

ROLE_EMPLOYEE = "employee"
ROLE_COMPLIANCE = "compliance"

# What each role may do. Compliance staff use the admin; employees send and request files.
ROLE_PERMISSIONS = {
    ROLE_EMPLOYEE: {"transfers.send_files", "transfers.request_files"},
    ROLE_COMPLIANCE: {
        "reports.view_audit",
        "reports.view_reports",
        "transfers.view_all_transfers",
        "transfers.revoke_transfer",
        "transfers.hold_transfer",
        "transfers.export_transfers",
    },
}


class User(AbstractBaseUser):
    """A signed-in employee or compliance officer, as the IdP described them at their last sign-in."""

    id = models.CharField(primary_key=True, max_length=64)
    email = models.EmailField(blank=True)
    display_name = models.CharField(max_length=256, blank=True)
    department = models.CharField(max_length=256, blank=True)
    # The manager's address as the IdP gave it (supervisor approval asks them); empty when it gave none.
    manager_email = models.EmailField(blank=True)
    # No local passwords anywhere, and no last_login column to update on sign-in.
    password = None
    last_login = None

    USERNAME_FIELD = "id"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        managed = False

    def __init__(self, *args, roles: frozenset[str] = frozenset(), groups: tuple[str, ...] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.roles = frozenset(roles)
        self.idp_groups = tuple(groups)

    def __str__(self) -> str:
        return self.display_name or self.email or self.id

    def get_full_name(self) -> str:
        return str(self)

    def get_short_name(self) -> str:
        return str(self)

    @property
    def is_active(self) -> bool:
        return bool(self.roles)

    @property
    def is_staff(self) -> bool:
        return ROLE_COMPLIANCE in self.roles

    @property
    def is_superuser(self) -> bool:
        return False

    @property
    def is_employee(self) -> bool:
        return ROLE_EMPLOYEE in self.roles

    @property
    def is_compliance(self) -> bool:
        return ROLE_COMPLIANCE in self.roles

    def get_all_permissions(self, obj=None) -> set[str]:
        return set().union(*(ROLE_PERMISSIONS.get(role, set()) for role in self.roles))

    def has_perm(self, perm: str, obj=None) -> bool:
        return self.is_active and perm in self.get_all_permissions(obj)

    def has_perms(self, perm_list, obj=None) -> bool:
        return all(self.has_perm(perm, obj) for perm in perm_list)

    def has_module_perms(self, app_label: str) -> bool:
        return self.is_active and any(perm.startswith(f"{app_label}.") for perm in self.get_all_permissions())

    def get_session_auth_hash(self) -> str:
        # Ties the session to the user's roles: a session made for a compliance officer stops working once a
        # later sign-in shows they left the group (Django compares this hash on every request).
        return salted_hmac(
            "accounts.User.get_session_auth_hash", f"{self.id}|{','.join(sorted(self.roles))}", algorithm="sha256"
        ).hexdigest()

    def set_password(self, raw_password):
        raise NotImplementedError("fxfer users have no password; they sign in through the IdP.")

    def check_password(self, raw_password) -> bool:
        return False

    def set_unusable_password(self):
        pass

    def has_usable_password(self) -> bool:
        return False

    def save(self, *args, **kwargs):
        raise NotImplementedError("Users are stored in DynamoDB (accounts.services), never through the ORM.")

    def delete(self, *args, **kwargs):
        raise NotImplementedError("Users are stored in DynamoDB (accounts.services), never through the ORM.")


class UserByEmail(GlobalSecondaryIndex):
    """People by their address as the IdP last gave it (compliance finds a person by email). Sparse: a key
    attribute of an index cannot be empty, so `email_key` is absent when the IdP sent no address."""

    class Meta:
        index_name = "by-email"
        projection = KeysOnlyProjection()

    email_key = UnicodeAttribute(hash_key=True)


class UserRecord(DynamoModel):
    """A person known from the IdP, keyed by a stable id derived from (IdP entity id, NameID)."""

    Meta = dynamo.meta("users")
    by_email = UserByEmail()

    user_id = UnicodeAttribute(hash_key=True)  # sha256 hex of "<idp entity id>\n<NameID>"
    idp_entity_id = UnicodeAttribute()
    name_id = UnicodeAttribute()
    email = UnicodeAttribute(default="")
    # `email` lowercased, or absent (see UserByEmail). Set at each sign-in: everyone with a live session has
    # signed in within the absolute timeout, so everyone who can be signed out can be found.
    email_key = UnicodeAttribute(null=True)
    display_name = UnicodeAttribute(default="")
    department = UnicodeAttribute(default="")
    manager_email = UnicodeAttribute(default="")
    groups = ListAttribute(of=UnicodeAttribute, default=list)
    roles = ListAttribute(of=UnicodeAttribute, default=list)
    created_at = UTCDateTimeAttribute()
    last_sign_in_at = UTCDateTimeAttribute()


class SamlRequest(DynamoModel):
    """An AuthnRequest (or LogoutRequest) this SP sent and has not yet seen answered.

    Keyed by the request id, not by the browser's session: the IdP's POST to the ACS is cross-site, and a
    browser drops SameSite=Lax cookies (the session's) on it, so the ACS finds the request through the response's
    InResponseTo. The browser that started it must still come back with its binding cookie (SameSite=None), or the
    response is refused (login CSRF). It is marked answered with a conditional update, so one request is answered
    at most once;
    the item stays (until its TTL) so that a replayed response reaches the assertion replay check and is
    reported as what it is.
    """

    Meta = dynamo.meta("saml-requests")

    request_id = UnicodeAttribute(hash_key=True)
    kind = UnicodeAttribute()  # "authn" or "logout"
    relay_state = UnicodeAttribute(default="/")
    # sha256 of a random value kept in a cookie of the browser that started the sign-in (when it sends one).
    browser_binding = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    answered_at = UTCDateTimeAttribute(null=True)
    expires_at = TTLAttribute()


class SamlAssertionSeen(DynamoModel):
    """Replay cache: an assertion id accepted once. Kept until the assertion's NotOnOrAfter has passed."""

    Meta = dynamo.meta("saml-assertions-seen")

    assertion_id = UnicodeAttribute(hash_key=True)
    user_id = UnicodeAttribute(null=True)
    seen_at = UTCDateTimeAttribute()
    expires_at = TTLAttribute()


class SessionByUser(GlobalSecondaryIndex):
    """A signed-in person's sessions (sparse: anonymous sessions carry no user_id), so that all of them can be
    ended at once: deprovisioning, "sign out everywhere", a logout the IdP started."""

    class Meta:
        index_name = "by-user"
        projection = IncludeProjection(["expires_at", "absolute_expires_at"])

    user_id = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class SessionItem(DynamoModel):
    """A Django session. `expires_at` (idle) slides with use; `absolute_expires_at` is fixed at creation."""

    Meta = dynamo.meta("sessions")
    by_user = SessionByUser()

    session_key = UnicodeAttribute(hash_key=True)
    data = UnicodeAttribute()
    user_id = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    absolute_expires_at = UTCDateTimeAttribute()
    expires_at = TTLAttribute()
