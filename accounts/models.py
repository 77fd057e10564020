"""Accounts: the Django user object (no table). The DynamoDB items behind it are in accounts/tables.py.

`User` is what Django's auth, permissions and admin see. It is never saved through the ORM (`managed = False`,
`DATABASES = {}`): the authentication backend builds it from a `UserRecord` item on every request. Django imports
this module when it starts; the tables are imported by the code that reads them, so a cold start whose first
request reads none (a health check) does not load PynamoDB.
"""

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import models
from django.utils.crypto import salted_hmac

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
