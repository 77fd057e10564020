"""The only authentication backend: users come from DynamoDB, never from an ORM table."""

from django.contrib.auth.backends import BaseBackend

from accounts.models import User
from accounts.selectors import user_get


class SamlUserBackend(BaseBackend):
    """Builds the request's user from its DynamoDB item. There is no `authenticate()` with credentials: the
    ACS verifies the SAML response (accounts.services.saml_signin) and logs the user in explicitly."""

    def authenticate(self, request, **credentials):
        return None

    def get_user(self, user_id) -> User | None:
        user = user_get(user_id=str(user_id))
        return user if user is not None and user.is_active else None

    def get_all_permissions(self, user_obj, obj=None) -> set[str]:
        return user_obj.get_all_permissions(obj) if user_obj.is_active else set()

    def has_perm(self, user_obj, perm, obj=None) -> bool:
        return user_obj.has_perm(perm, obj)

    def has_module_perms(self, user_obj, app_label) -> bool:
        return user_obj.has_module_perms(app_label)
